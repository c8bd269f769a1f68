//! Raw access to secure_ipc channels for the data-path tests: CREATE /
//! ATTACH through the uapi structs, the two rings mapped with mmap(2), and
//! the ring protocol of the header ([O1]-[O7]) written out by hand, so the
//! tests exercise the kernel and nothing else.
//!
//! This is the tests' only unsafe code besides `sys.rs`: the mapped rings
//! are shared with the kernel, so they are touched only through raw
//! pointers and atomics, never through references to plain memory.

use crate::sys::{self, ioctl_none, ioctl_struct, Errno};
use secure_ipc_ring::abi;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// Byte offsets of the header words (checked against the header by the
/// ring crate's layout asserts).
const OFF_PROD: usize = 128;
const OFF_CONS: usize = 256;
const OFF_PROD_FLAGS: usize = 384;
const OFF_CONS_FLAGS: usize = 512;
const OFF_STORE_PROD: usize = 640;
const OFF_STORE_CONS: usize = 644;
const OFF_STATUS: usize = 652;

/// A name buffer for CREATE/ATTACH.
pub fn name_buf(name: &str) -> [u8; abi::SIPC_NAME_MAX] {
    let mut b = [0u8; abi::SIPC_NAME_MAX];
    b[..name.len()].copy_from_slice(name.as_bytes());
    b
}

/// A channel name unique within this guest run.
pub fn unique_name(tag: &str) -> String {
    format!("{tag}-{}", std::process::id())
}

/// One shared mapping of a ring, unmapped on drop.
pub struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain shared memory accessed only through raw
// pointers and atomics; moving the handle between threads is fine.
unsafe impl Send for Mapping {}
// SAFETY: as above: every access is a raw copy or an atomic.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// mmap(len, PROT_READ|PROT_WRITE|extra_prot, flags) at `offset` of `f`.
    pub fn map_with(
        f: &File,
        offset: u64,
        len: usize,
        prot: i32,
        flags: i32,
    ) -> Result<Self, Errno> {
        // SAFETY: a fresh mapping chosen by the kernel (addr NULL); nothing
        // in this process is overwritten.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                flags,
                f.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Errno(
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            ));
        }
        Ok(Self { ptr: p.cast(), len })
    }

    /// The normal ring mapping: shared, read-write.
    pub fn map(f: &File, offset: u64, len: usize) -> Result<Self, Errno> {
        Self::map_with(
            f,
            offset,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
        )
    }

    /// An anonymous shared mapping of `len` zeroed bytes, shared with the
    /// children this process forks afterwards (a control block for tests
    /// that run several processes).
    pub fn anon_shared(len: usize) -> Result<Self, Errno> {
        // SAFETY: a fresh anonymous mapping chosen by the kernel (addr NULL);
        // nothing in this process is overwritten.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Errno(
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            ));
        }
        Ok(Self { ptr: p.cast(), len })
    }

    /// Start address.
    pub fn addr(&self) -> *mut u8 {
        self.ptr
    }

    /// Length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The 32-bit word at byte offset `off` (4-byte aligned, inside the mapping).
    pub fn word(&self, off: usize) -> &AtomicU32 {
        assert!(off % 4 == 0 && off + 4 <= self.len);
        // SAFETY: in bounds and aligned (checked above); the mapping lives as
        // long as `self`, and AtomicU32 tolerates concurrent kernel writes.
        unsafe { &*(self.ptr.add(off) as *const AtomicU32) }
    }

    /// The 64-bit word at byte offset `off` (8-byte aligned, inside the mapping).
    pub fn word64(&self, off: usize) -> &AtomicU64 {
        assert!(off % 8 == 0 && off + 8 <= self.len);
        // SAFETY: in bounds and aligned (checked above; mappings are page
        // aligned); the mapping lives as long as `self`, and AtomicU64
        // tolerates concurrent writes by other processes.
        unsafe { &*(self.ptr.add(off) as *const AtomicU64) }
    }

    /// Copies `src` to byte offset `off`.
    pub fn write(&self, off: usize, src: &[u8]) {
        assert!(off + src.len() <= self.len);
        // SAFETY: in bounds (checked); raw copy into shared memory.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(off), src.len()) }
    }

    /// Copies `dst.len()` bytes from byte offset `off`.
    pub fn read(&self, off: usize, dst: &mut [u8]) {
        assert!(off + dst.len() <= self.len);
        // SAFETY: in bounds (checked); raw copy out of shared memory.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.add(off), dst.as_mut_ptr(), dst.len()) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the region mmap returned; no reference into
        // it outlives `self` (word() borrows self).
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Ring geometry read back from line 0 of a mapped header.
#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    /// Slots.
    pub entries: u32,
    /// Bytes per slot.
    pub slot_size: u32,
    /// Offset of the descriptors.
    pub desc_offset: usize,
    /// Offset of the slots.
    pub slots_offset: usize,
}

fn geometry(m: &Mapping) -> Geometry {
    let mut h = [0u8; 40];
    m.read(0, &mut h);
    let u32_at = |i: usize| u32::from_ne_bytes(h[i..i + 4].try_into().unwrap());
    let u64_at = |i: usize| u64::from_ne_bytes(h[i..i + 8].try_into().unwrap());
    Geometry {
        entries: u32_at(8),
        slot_size: u32_at(12),
        desc_offset: u32_at(20) as usize,
        slots_offset: u64_at(24) as usize,
    }
}

/// The TX ring: this process produces, the kernel consumes on SEND.
pub struct Tx {
    /// The mapping.
    pub m: Mapping,
    /// Its geometry.
    pub g: Geometry,
    prod: u32,
}

impl Tx {
    /// Free TX slots now ([O4]).
    pub fn room(&self) -> u32 {
        // [O4]: pairs with the kernel's smp_store_release of TX cons in sipc_send().
        let cons = self.m.word(OFF_CONS).load(Ordering::Acquire);
        self.g.entries - self.prod.wrapping_sub(cons)
    }

    /// Writes one message into the next slot and publishes it ([O1]).
    /// Returns false when TX is full.
    pub fn push(&mut self, payload: &[u8], type_: u16) -> bool {
        if self.room() == 0 {
            return false;
        }
        let i = (self.prod & (self.g.entries - 1)) as usize;
        self.m
            .write(self.g.slots_offset + i * self.g.slot_size as usize, payload);
        let d = abi::TxDesc {
            len: payload.len() as u32,
            type_,
            flags: 0,
            reserved: 0,
        };
        self.m
            .write(self.g.desc_offset + i * 16, bytemuck::bytes_of(&d));
        self.prod = self.prod.wrapping_add(1);
        // [O1]: pairs with the kernel's smp_load_acquire of TX prod in sipc_send().
        self.m.word(OFF_PROD).store(self.prod, Ordering::Release);
        true
    }

    /// Writes a raw descriptor (for the hostile-input tests) and publishes it.
    pub fn push_raw_desc(&mut self, d: &abi::TxDesc) {
        let i = (self.prod & (self.g.entries - 1)) as usize;
        self.m
            .write(self.g.desc_offset + i * 16, bytemuck::bytes_of(d));
        self.prod = self.prod.wrapping_add(1);
        // [O1]: pairs with the kernel's smp_load_acquire of TX prod in sipc_send().
        self.m.word(OFF_PROD).store(self.prod, Ordering::Release);
    }

    /// Overwrites the published producer index (hostile-input tests).
    pub fn set_prod_raw(&mut self, v: u32) {
        self.m.word(OFF_PROD).store(v, Ordering::Release);
    }

    /// Kernel status line: (store_prod, store_cons, status).
    pub fn status(&self) -> (u32, u32, u32) {
        // [O9]: pairs with the kernel's smp_store_release of the status line.
        (
            self.m.word(OFF_STORE_PROD).load(Ordering::Acquire),
            self.m.word(OFF_STORE_CONS).load(Ordering::Acquire),
            self.m.word(OFF_STATUS).load(Ordering::Acquire),
        )
    }

    /// The producer's flags word (NEED_WAKEUP for room, [O7]).
    pub fn prod_flags(&self) -> &AtomicU32 {
        self.m.word(OFF_PROD_FLAGS)
    }
}

/// One received message.
#[derive(Debug, Clone)]
pub struct Received {
    /// The stamped descriptor.
    pub desc: abi::RxDesc,
    /// The payload.
    pub payload: Vec<u8>,
}

/// The RX ring: the kernel produces on RECV, this process consumes.
pub struct Rx {
    /// The mapping.
    pub m: Mapping,
    /// Its geometry.
    pub g: Geometry,
    cons: u32,
}

impl Rx {
    /// Takes the next published message, if any ([O2], [O3]).
    pub fn pop(&mut self) -> Option<Received> {
        // [O2]: pairs with the kernel's smp_store_release of RX prod in sipc_recv().
        let prod = self.m.word(OFF_PROD).load(Ordering::Acquire);
        if prod == self.cons {
            return None;
        }
        let i = (self.cons & (self.g.entries - 1)) as usize;
        let mut d = abi::RxDesc::default();
        self.m
            .read(self.g.desc_offset + i * 64, bytemuck::bytes_of_mut(&mut d));
        let len = (d.len as usize).min(self.g.slot_size as usize);
        let mut payload = vec![0u8; len];
        self.m.read(
            self.g.slots_offset + i * self.g.slot_size as usize,
            &mut payload,
        );
        self.cons = self.cons.wrapping_add(1);
        // [O3]: pairs with the kernel's smp_load_acquire of RX cons in sipc_recv().
        self.m.word(OFF_CONS).store(self.cons, Ordering::Release);
        Some(Received { desc: d, payload })
    }

    /// Overwrites the published consumer index (hostile-input tests).
    pub fn set_cons_raw(&mut self, v: u32) {
        self.m.word(OFF_CONS).store(v, Ordering::Release);
    }

    /// The consumer's flags word (NEED_WAKEUP, [O5]).
    pub fn cons_flags(&self) -> &AtomicU32 {
        self.m.word(OFF_CONS_FLAGS)
    }

    /// Records waiting in the incoming sealed store ([O9] hint).
    pub fn records_waiting(&self) -> bool {
        // [O9]: pairs with the kernel's smp_store_release of the status line.
        self.m.word(OFF_STORE_PROD).load(Ordering::Acquire)
            != self.m.word(OFF_STORE_CONS).load(Ordering::Acquire)
    }

    /// Kernel status bits.
    pub fn status(&self) -> u32 {
        // [O9]: pairs with the kernel's smp_store_release of status.
        self.m.word(OFF_STATUS).load(Ordering::Acquire)
    }
}

/// An endpoint: the file plus both rings.
pub struct Endpoint {
    /// The open file of /dev/secure_ipc.
    pub file: Arc<File>,
    /// TX ring.
    pub tx: Tx,
    /// RX ring.
    pub rx: Rx,
    /// Channel id from CREATE/ATTACH.
    pub channel_id: u64,
}

/// Fills a CREATE argument.
pub fn create_arg(name: &str, entries: u32, slot_size: u32) -> abi::Create {
    abi::Create {
        size: std::mem::size_of::<abi::Create>() as u32,
        name: name_buf(name),
        entries,
        slot_size,
        ..Default::default()
    }
}

/// Fills an ATTACH argument.
pub fn attach_arg(name: &str) -> abi::Attach {
    abi::Attach {
        size: std::mem::size_of::<abi::Attach>() as u32,
        name: name_buf(name),
        ..Default::default()
    }
}

fn map_rings(file: File, tx_len: u64, rx_len: u64, channel_id: u64) -> Result<Endpoint, String> {
    let txm = Mapping::map(&file, abi::SIPC_OFF_TX_RING, tx_len as usize)
        .map_err(|e| format!("mmap TX: {e}"))?;
    let rxm = Mapping::map(&file, abi::SIPC_OFF_RX_RING, rx_len as usize)
        .map_err(|e| format!("mmap RX: {e}"))?;
    let (tg, rg) = (geometry(&txm), geometry(&rxm));
    Ok(Endpoint {
        file: Arc::new(file),
        tx: Tx {
            m: txm,
            g: tg,
            prod: 0,
        },
        rx: Rx {
            m: rxm,
            g: rg,
            cons: 0,
        },
        channel_id,
    })
}

/// Maps the rings of a file after a successful CREATE.
pub fn endpoint_from(file: File, c: &abi::Create) -> Result<Endpoint, String> {
    map_rings(file, c.tx_ring_bytes, c.rx_ring_bytes, c.channel_id)
}

/// Maps the rings of a file after a successful ATTACH.
pub fn endpoint_from_attach(file: File, a: &abi::Attach) -> Result<Endpoint, String> {
    map_rings(file, a.tx_ring_bytes, a.rx_ring_bytes, a.channel_id)
}

impl Endpoint {
    /// CREATE a channel on a fresh file and map its rings.
    pub fn create(name: &str, entries: u32, slot_size: u32) -> Result<Self, String> {
        let f = sys::open_device()?;
        let mut c = create_arg(name, entries, slot_size);
        ioctl_struct(&f, abi::SIPC_IOC_CREATE, &mut c)
            .map_err(|e| format!("CREATE {name}: {e}"))?;
        map_rings(f, c.tx_ring_bytes, c.rx_ring_bytes, c.channel_id)
    }

    /// ATTACH to a channel on a fresh file and map its rings.
    pub fn attach(name: &str) -> Result<Self, String> {
        let f = sys::open_device()?;
        let mut a = attach_arg(name);
        ioctl_struct(&f, abi::SIPC_IOC_ATTACH, &mut a)
            .map_err(|e| format!("ATTACH {name}: {e}"))?;
        map_rings(f, a.tx_ring_bytes, a.rx_ring_bytes, a.channel_id)
    }

    /// A connected pair: (owner, peer).
    pub fn pair(tag: &str, entries: u32, slot_size: u32) -> Result<(Self, Self), String> {
        let name = unique_name(tag);
        let owner = Self::create(&name, entries, slot_size)?;
        let peer = Self::attach(&name)?;
        Ok((owner, peer))
    }

    /// SIPC_IOC_SEND.
    pub fn send(&self) -> Result<i32, Errno> {
        ioctl_none(&self.file, abi::SIPC_IOC_SEND)
    }

    /// SIPC_IOC_RECV.
    pub fn recv(&self) -> Result<i32, Errno> {
        ioctl_none(&self.file, abi::SIPC_IOC_RECV)
    }

    /// SIPC_IOC_STATS.
    pub fn stats(&self) -> Result<abi::Stats, String> {
        stats(&self.file)
    }

    /// Pushes one message and SENDs it; retries while the store is full.
    pub fn send_one(&mut self, payload: &[u8], type_: u16) -> Result<(), String> {
        for _ in 0..1_000_000 {
            if self.tx.push(payload, type_) {
                break;
            }
            self.send().map_err(|e| format!("SEND: {e}"))?;
            std::thread::yield_now();
        }
        self.send().map_err(|e| format!("SEND: {e}"))?;
        Ok(())
    }

    /// RECVs until one message is in RX, then pops it (busy polling).
    pub fn recv_one(&mut self) -> Result<Received, String> {
        for _ in 0..10_000_000 {
            if let Some(r) = self.rx.pop() {
                return Ok(r);
            }
            match self.recv() {
                Ok(_) => {}
                Err(e) => return Err(format!("RECV: {e}")),
            }
            std::thread::yield_now();
        }
        Err("no message arrived".into())
    }
}

/// SIPC_IOC_TEST_PEEK_SEALED (test-hooks module): the oldest unopened group
/// of `f`'s outgoing store, serialized (docs/record-format.md).
pub fn peek_sealed(f: &File) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; 32 * (40 + 65536) + 16];
    let mut t = abi::TestSealed {
        size: std::mem::size_of::<abi::TestSealed>() as u32,
        buf: buf.as_mut_ptr() as u64,
        buf_len: buf.len() as u32,
        ..Default::default()
    };
    ioctl_struct(f, abi::SIPC_IOC_TEST_PEEK_SEALED, &mut t)
        .map_err(|e| format!("TEST_PEEK_SEALED: {e}"))?;
    buf.truncate(t.record_len as usize);
    Ok(buf)
}

/// SIPC_IOC_STATS on any file.
pub fn stats(f: &File) -> Result<abi::Stats, String> {
    let mut s = abi::Stats {
        size: std::mem::size_of::<abi::Stats>() as u32,
        ..Default::default()
    };
    ioctl_struct(f, abi::SIPC_IOC_STATS, &mut s).map_err(|e| format!("STATS: {e}"))?;
    Ok(s)
}

/// A fresh eventfd registered as `f`'s doorbell.
pub fn doorbell(f: &File) -> Result<File, String> {
    let efd = eventfd()?;
    set_doorbell(f, std::os::fd::AsRawFd::as_raw_fd(&efd))
        .map_err(|e| format!("SET_DOORBELL: {e}"))?;
    Ok(efd)
}

/// SIPC_IOC_SET_DOORBELL with an eventfd (or -1).
pub fn set_doorbell(f: &File, fd: i32) -> Result<(), Errno> {
    let mut d = abi::Doorbell {
        size: 16,
        flags: 0,
        eventfd: fd,
        reserved: 0,
    };
    ioctl_struct(f, abi::SIPC_IOC_SET_DOORBELL, &mut d).map(|_| ())
}

/// A new non-blocking eventfd.
pub fn eventfd() -> Result<File, String> {
    // SAFETY: plain syscall; the returned fd is owned by the File below.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!("eventfd: {}", std::io::Error::last_os_error()));
    }
    use std::os::fd::FromRawFd;
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Reads and clears an eventfd counter (0 if it was not signalled).
pub fn eventfd_take(f: &File) -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    match (&*f).read(&mut b) {
        Ok(8) => u64::from_ne_bytes(b),
        _ => 0,
    }
}

/// poll(2) on one fd; returns revents.
pub fn poll1(f: &File, events: i16, timeout_ms: i32) -> i16 {
    let mut p = libc::pollfd {
        fd: f.as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd on the stack.
    let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    if r <= 0 {
        0
    } else {
        p.revents
    }
}

/// write(2) of one whole message.
pub fn write_msg(f: &File, buf: &[u8]) -> Result<usize, Errno> {
    // SAFETY: buf is a valid readable slice of buf.len() bytes.
    let r = unsafe { libc::write(f.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    if r < 0 {
        Err(Errno(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ))
    } else {
        Ok(r as usize)
    }
}

/// read(2) of one whole message.
pub fn read_msg(f: &File, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: buf is a valid writable slice of buf.len() bytes.
    let r = unsafe { libc::read(f.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        Err(Errno(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ))
    } else {
        Ok(r as usize)
    }
}

/// Sets O_NONBLOCK on a file.
pub fn set_nonblock(f: &File) {
    // SAFETY: fcntl on a valid fd.
    unsafe {
        let fl = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(f.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

/// Full barrier of the [O5]/[O7] sleep protocol on the user side.
pub fn full_barrier() {
    // Pairs with smp_mb() in sipc_seal_publish()/sipc_open_publish() (kernel).
    fence(Ordering::SeqCst);
}

/// A small deterministic PRNG (xorshift64*), so failures replay.
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (seed 0 is replaced).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    /// Next 64 random bits.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform-ish in 0..n.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Payload for message `seq` of a stream: its length and bytes are derived
/// from (seed, seq), so the receiver can check every byte.
pub fn payload(seed: u64, seq: u64, max: usize) -> Vec<u8> {
    let mut r = Rng::new(seed ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xA5A5);
    let len = 1 + r.below(max as u64) as usize;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        v.extend_from_slice(&r.next().to_le_bytes());
    }
    v.truncate(len);
    v
}
