//! Binder, the incumbent inside Android containers, driven the way
//! libbinder drives it but with raw ioctls on `/dev/binder` (issue 17 item
//! 1): no servicemanager, no Parcel. The receiver becomes the context
//! manager (`BINDER_SET_CONTEXT_MGR`) and serves handle 0 as a looper
//! thread; the sender transacts to handle 0.
//!
//! * one-way throughput: `BC_TRANSACTION` with `TF_ONE_WAY`, one per
//!   `BINDER_WRITE_READ` (as `IPCThreadState::transact` does: it waits for
//!   `BR_TRANSACTION_COMPLETE` before returning). The driver copies the
//!   payload once, into the receiver's mapping; oneway transactions to one
//!   node are delivered one at a time, the next after the receiver's
//!   `BC_FREE_BUFFER` of the previous one, and may hold at most half the
//!   receiver's mapping (`free_async_space`): past that the sender gets
//!   `BR_FAILED_REPLY` (ENOSPC) and retries. The receiver frees each buffer
//!   in the same ioctl that reads the next transaction.
//! * two-way latency: a synchronous `BC_TRANSACTION` answered by
//!   `BC_REPLY`, each side freeing the buffer it received in its next
//!   ioctl (as libbinder's Parcel does): one `BINDER_WRITE_READ` per round
//!   trip on each side.
//!
//! The uapi structs and numbers are written from
//! include/uapi/linux/android/binder.h of 6.1 and 6.12 (identical for
//! everything used here; 64-bit `binder_size_t`/`binder_uintptr_t`,
//! protocol version 8); the layouts are checked at compile time.

use std::collections::VecDeque;
use std::ffi::CStr;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// The device the module creates with `devices=binder` (a misc device
/// while `CONFIG_ANDROID_BINDERFS` is off, as on Debian's kernels).
pub const DEVICE: &CStr = c"/dev/binder";
/// The receiver's mapping, as in the issue (libbinder maps 1 MiB - 2 pages).
pub const MAP_BYTES: usize = 1 << 20;

const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;

/// `_IOC(dir, type, nr, size)` of asm-generic/ioctl.h.
const fn ioc(dir: u32, ty: u8, nr: u8, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | ((ty as u32) << 8) | nr as u32
}

/// `struct binder_write_read`.
#[repr(C)]
#[derive(Default)]
struct WriteRead {
    write_size: u64,
    write_consumed: u64,
    write_buffer: u64,
    read_size: u64,
    read_consumed: u64,
    read_buffer: u64,
}

/// `struct binder_transaction_data` (the `target` union as its 64-bit
/// `ptr` arm; a handle is its low 32 bits on a little-endian machine; the
/// `data` union as its `ptr` arm).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct TransactionData {
    target: u64,
    cookie: u64,
    code: u32,
    flags: u32,
    sender_pid: i32,
    sender_euid: u32,
    data_size: u64,
    offsets_size: u64,
    buffer: u64,
    offsets: u64,
}

const _: () = {
    assert!(cfg!(target_endian = "little"));
    assert!(std::mem::size_of::<WriteRead>() == 48);
    assert!(std::mem::size_of::<TransactionData>() == 64);
    assert!(std::mem::offset_of!(TransactionData, code) == 16);
    assert!(std::mem::offset_of!(TransactionData, data_size) == 32);
    assert!(std::mem::offset_of!(TransactionData, buffer) == 48);
};

const BINDER_WRITE_READ: u32 = ioc(IOC_READ | IOC_WRITE, b'b', 1, 48);
const BINDER_SET_MAX_THREADS: u32 = ioc(IOC_WRITE, b'b', 5, 4);
const BINDER_SET_CONTEXT_MGR: u32 = ioc(IOC_WRITE, b'b', 7, 4);
const BINDER_VERSION: u32 = ioc(IOC_READ | IOC_WRITE, b'b', 9, 4);
const PROTOCOL_VERSION: i32 = 8;

const TF_ONE_WAY: u32 = 0x01;

const BC_TRANSACTION: u32 = ioc(IOC_WRITE, b'c', 0, 64);
const BC_REPLY: u32 = ioc(IOC_WRITE, b'c', 1, 64);
const BC_FREE_BUFFER: u32 = ioc(IOC_WRITE, b'c', 3, 8);
const BC_ENTER_LOOPER: u32 = ioc(0, b'c', 12, 0);

const BR_ERROR: u32 = ioc(IOC_READ, b'r', 0, 4);
const BR_OK: u32 = ioc(0, b'r', 1, 0);
const BR_TRANSACTION: u32 = ioc(IOC_READ, b'r', 2, 64);
const BR_REPLY: u32 = ioc(IOC_READ, b'r', 3, 64);
const BR_DEAD_REPLY: u32 = ioc(0, b'r', 5, 0);
const BR_TRANSACTION_COMPLETE: u32 = ioc(0, b'r', 6, 0);
const BR_NOOP: u32 = ioc(0, b'r', 12, 0);
const BR_FAILED_REPLY: u32 = ioc(0, b'r', 17, 0);
const BR_FROZEN_REPLY: u32 = ioc(0, b'r', 18, 0);
const BR_ONEWAY_SPAM_SUSPECT: u32 = ioc(0, b'r', 19, 0);

// Spot checks against the header's values as the C compiler computes them.
const _: () = {
    assert!(BINDER_WRITE_READ == 0xc030_6201);
    assert!(BC_TRANSACTION == 0x4040_6300);
    assert!(BR_TRANSACTION == 0x8040_7202);
    assert!(BR_TRANSACTION_COMPLETE == 0x7206);
};

/// What one returned command said.
#[derive(Debug)]
enum Event {
    /// A transaction (`BR_TRANSACTION`) or reply (`BR_REPLY`) delivered
    /// into our mapping at `buffer`, `size` bytes.
    Data {
        oneway: bool,
        buffer: u64,
        size: usize,
    },
    /// `BR_TRANSACTION_COMPLETE` (or `BR_ONEWAY_SPAM_SUSPECT`, which
    /// replaces it when the driver suspects oneway spam).
    Complete,
    /// `BR_FAILED_REPLY`: for a oneway transaction, the receiver's async
    /// space is full (ENOSPC).
    Failed,
    /// Anything else that ends the exchange: the command, and its `__s32`
    /// argument for `BR_ERROR`.
    Fatal(u32, i32),
}

/// One open `/dev/binder` with its 1 MiB mapping.
pub struct Binder {
    fd: OwnedFd,
    map: *mut libc::c_void,
    /// Commands for the next `BINDER_WRITE_READ`.
    out: Vec<u8>,
    /// Returned commands not yet handled.
    events: VecDeque<Event>,
    read_buf: Vec<u64>,
}

impl Drop for Binder {
    fn drop(&mut self) {
        // SAFETY: `map` is the live MAP_BYTES mapping made in open(); no
        // reference into it outlives `self`.
        unsafe { libc::munmap(self.map, MAP_BYTES) };
    }
}

fn os_err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

impl Binder {
    /// Opens the device, checks the protocol version, maps the receive
    /// area and asks for no extra looper threads.
    pub fn open() -> Result<Binder, String> {
        // SAFETY: DEVICE is a NUL-terminated path.
        let raw = unsafe { libc::open(DEVICE.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if raw < 0 {
            return Err(os_err("open /dev/binder"));
        }
        // SAFETY: `raw` is a descriptor we just opened and own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut version: i32 = 0;
        // SAFETY: BINDER_VERSION writes one __s32 to the pointer.
        if unsafe { libc::ioctl(raw, BINDER_VERSION as _, &mut version) } < 0 {
            return Err(os_err("BINDER_VERSION"));
        }
        if version != PROTOCOL_VERSION {
            return Err(format!(
                "binder protocol version {version}, this bench speaks {PROTOCOL_VERSION}"
            ));
        }
        // SAFETY: a fresh shared read-only mapping of the device; the
        // driver backs it and we only read what it hands us.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                MAP_BYTES,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_NORESERVE,
                raw,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(os_err("mmap /dev/binder"));
        }
        let b = Binder {
            fd,
            map,
            out: Vec::with_capacity(256),
            events: VecDeque::new(),
            read_buf: vec![0; 64],
        };
        let threads: u32 = 0;
        // SAFETY: BINDER_SET_MAX_THREADS reads one __u32.
        if unsafe { libc::ioctl(raw, BINDER_SET_MAX_THREADS as _, &threads) } < 0 {
            return Err(os_err("BINDER_SET_MAX_THREADS"));
        }
        Ok(b)
    }

    /// Becomes the context manager (the node behind handle 0) and enters
    /// the looper. EBUSY while the previous round's manager is still being
    /// released (the driver does that in deferred work after close): retry
    /// until `deadline`.
    pub fn serve_handle0(&mut self, deadline: Instant) -> Result<(), String> {
        let zero: i32 = 0;
        loop {
            // SAFETY: BINDER_SET_CONTEXT_MGR reads one __s32.
            let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), BINDER_SET_CONTEXT_MGR as _, &zero) };
            if r == 0 {
                break;
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EBUSY) || Instant::now() >= deadline {
                return Err(format!("BINDER_SET_CONTEXT_MGR: {e}"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        self.out.extend_from_slice(&BC_ENTER_LOOPER.to_ne_bytes());
        self.write_read(false)
    }

    fn queue_transaction(&mut self, cmd: u32, flags: u32, payload: &[u8]) {
        let tr = TransactionData {
            target: 0,
            flags,
            data_size: payload.len() as u64,
            buffer: payload.as_ptr() as u64,
            ..Default::default()
        };
        self.out.extend_from_slice(&cmd.to_ne_bytes());
        // SAFETY: TransactionData is repr(C) plain data without padding
        // (the asserts above), so its bytes are initialised.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&tr as *const TransactionData).cast::<u8>(),
                std::mem::size_of::<TransactionData>(),
            )
        };
        self.out.extend_from_slice(bytes);
    }

    /// Queues `BC_FREE_BUFFER` of a buffer the driver delivered to us.
    pub fn free(&mut self, buffer: u64) {
        self.out.extend_from_slice(&BC_FREE_BUFFER.to_ne_bytes());
        self.out.extend_from_slice(&buffer.to_ne_bytes());
    }

    /// Sends what is queued with one `BINDER_WRITE_READ`; with `read`,
    /// blocks until the driver returns something and parses it. The
    /// payloads that queued transactions point at must live until here.
    fn write_read(&mut self, read: bool) -> Result<(), String> {
        let mut bwr = WriteRead {
            write_size: self.out.len() as u64,
            write_buffer: self.out.as_ptr() as u64,
            read_size: if read {
                (self.read_buf.len() * 8) as u64
            } else {
                0
            },
            read_buffer: self.read_buf.as_mut_ptr() as u64,
            ..Default::default()
        };
        loop {
            // SAFETY: `bwr` points at our write buffer (its length) and read
            // buffer (its length); the driver reads/writes only those.
            let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), BINDER_WRITE_READ as _, &mut bwr) };
            if r == 0 {
                break;
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(format!("BINDER_WRITE_READ: {e}"));
            }
        }
        if bwr.write_consumed != bwr.write_size {
            return Err(format!(
                "BINDER_WRITE_READ consumed {} of {} command bytes",
                bwr.write_consumed, bwr.write_size
            ));
        }
        self.out.clear();
        self.parse(bwr.read_consumed as usize)
    }

    fn parse(&mut self, len: usize) -> Result<(), String> {
        // SAFETY: read_buf is `len` <= its size bytes the driver just
        // wrote; u8 has no alignment or validity requirement.
        let buf = unsafe { std::slice::from_raw_parts(self.read_buf.as_ptr().cast::<u8>(), len) };
        let mut off = 0;
        while off + 4 <= len {
            let cmd = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap());
            let size = ((cmd >> 16) & 0x3fff) as usize;
            let arg = buf
                .get(off + 4..off + 4 + size)
                .ok_or_else(|| format!("binder returned command {cmd:#x} cut short"))?;
            off += 4 + size;
            let ev = match cmd {
                BR_NOOP | BR_OK => continue,
                BR_TRANSACTION | BR_REPLY => {
                    // SAFETY: `arg` holds size_of::<TransactionData>() bytes
                    // (the command's size field); read_unaligned copies them.
                    let tr: TransactionData =
                        unsafe { std::ptr::read_unaligned(arg.as_ptr().cast()) };
                    let base = self.map as u64;
                    let end = tr.buffer.checked_add(tr.data_size);
                    let inside = matches!(end, Some(e) if e <= base + MAP_BYTES as u64);
                    if tr.buffer < base || !inside {
                        return Err(format!(
                            "binder buffer {:#x}+{} outside our mapping",
                            tr.buffer, tr.data_size
                        ));
                    }
                    Event::Data {
                        oneway: tr.flags & TF_ONE_WAY != 0,
                        buffer: tr.buffer,
                        size: tr.data_size as usize,
                    }
                }
                BR_TRANSACTION_COMPLETE | BR_ONEWAY_SPAM_SUSPECT => Event::Complete,
                BR_FAILED_REPLY => Event::Failed,
                BR_ERROR => Event::Fatal(cmd, i32::from_ne_bytes(arg.try_into().unwrap())),
                c => Event::Fatal(c, 0),
            };
            self.events.push_back(ev);
        }
        Ok(())
    }

    fn next_event(&mut self) -> Result<Event, String> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(e);
            }
            self.write_read(true)?;
        }
    }

    /// One oneway transaction of `payload` to handle 0, retried while the
    /// receiver's async space is full; returns how many tries failed.
    pub fn send_oneway(&mut self, payload: &[u8]) -> Result<u64, String> {
        let mut failed = 0;
        loop {
            self.queue_transaction(BC_TRANSACTION, TF_ONE_WAY, payload);
            self.write_read(true)?;
            match self.next_event()? {
                Event::Complete => return Ok(failed),
                Event::Failed => {
                    failed += 1;
                    std::thread::yield_now();
                }
                e => return Err(format!("oneway transaction: {}", describe(&e))),
            }
        }
    }

    /// The next transaction delivered to us: (oneway, buffer, size).
    pub fn next_transaction(&mut self) -> Result<(bool, u64, usize), String> {
        match self.next_event()? {
            Event::Data {
                oneway,
                buffer,
                size,
            } => Ok((oneway, buffer, size)),
            e => Err(format!("waiting for a transaction: {}", describe(&e))),
        }
    }

    /// Copies the first bytes of a delivered buffer of `size` bytes into
    /// `out` (no more than `size`: pages past it may not be mapped);
    /// returns how many.
    pub fn read_buffer(&self, buffer: u64, size: usize, out: &mut [u8]) -> usize {
        let off = (buffer - self.map as u64) as usize;
        let n = out.len().min(size);
        // SAFETY: parse() checked that [buffer, buffer + size) lies in our
        // mapping, and n <= size; the driver does not write a delivered
        // buffer before we free it.
        unsafe {
            std::ptr::copy_nonoverlapping(self.map.cast::<u8>().add(off), out.as_mut_ptr(), n)
        };
        n
    }

    /// Frees the transaction buffer `buffer` and replies with `payload`
    /// (one ioctl; the driver answers a reply's `BR_TRANSACTION_COMPLETE`
    /// at once).
    pub fn reply(&mut self, buffer: u64, payload: &[u8]) -> Result<(), String> {
        self.free(buffer);
        self.queue_transaction(BC_REPLY, 0, payload);
        self.write_read(true)?;
        match self.next_event()? {
            Event::Complete => Ok(()),
            e => Err(format!("reply: {}", describe(&e))),
        }
    }

    /// A synchronous transaction of `payload` to handle 0; copies the
    /// reply into `reply` and returns its length. Frees the reply buffer
    /// with the next ioctl.
    pub fn call(&mut self, payload: &[u8], reply: &mut [u8]) -> Result<usize, String> {
        self.queue_transaction(BC_TRANSACTION, 0, payload);
        self.write_read(true)?;
        loop {
            match self.next_event()? {
                Event::Complete => continue,
                Event::Data {
                    oneway: false,
                    buffer,
                    size,
                } => {
                    self.read_buffer(buffer, size, reply);
                    self.free(buffer);
                    return Ok(size);
                }
                e => return Err(format!("call: {}", describe(&e))),
            }
        }
    }

    /// Sends whatever is queued (frees) without reading.
    pub fn flush(&mut self) -> Result<(), String> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.write_read(false)
    }
}

fn describe(e: &Event) -> String {
    match e {
        Event::Fatal(BR_ERROR, arg) => format!("BR_ERROR {arg}"),
        Event::Fatal(BR_DEAD_REPLY, _) => "BR_DEAD_REPLY (no context manager)".into(),
        Event::Fatal(BR_FROZEN_REPLY, _) => "BR_FROZEN_REPLY".into(),
        Event::Fatal(c, _) => format!("unexpected return command {c:#x}"),
        Event::Failed => "BR_FAILED_REPLY".into(),
        Event::Complete => "unexpected BR_TRANSACTION_COMPLETE".into(),
        Event::Data { oneway, size, .. } => {
            format!("unexpected data (oneway {oneway}, {size} bytes)")
        }
    }
}

/// The two processes' rendezvous: the receiver says when it serves handle
/// 0 and when it has everything; the sender waits for both.
pub struct Rendezvous(UnixStream);

impl Rendezvous {
    /// A connected pair: (receiver's end, sender's end).
    pub fn pair() -> Result<(Rendezvous, Rendezvous), String> {
        let (a, b) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
        Ok((Rendezvous(a), Rendezvous(b)))
    }

    /// Tells the other side `what` (one byte).
    pub fn say(&mut self, what: u8) -> Result<(), String> {
        self.0
            .write_all(&[what])
            .map_err(|e| format!("rendezvous: {e}"))
    }

    /// Waits for the other side to say `what`.
    pub fn wait_for(&mut self, what: u8) -> Result<(), String> {
        let mut b = [0u8];
        self.0
            .read_exact(&mut b)
            .map_err(|e| format!("rendezvous: the other side is gone ({e})"))?;
        if b[0] != what {
            return Err(format!("rendezvous: got {:?}, wanted {:?}", b[0], what));
        }
        Ok(())
    }
}

/// Receiver says it serves handle 0.
pub const READY: u8 = b'R';
/// Receiver says it has received everything.
pub const DONE: u8 = b'D';

// ---------------------------------------------------------------- measurements

/// Oneway throughput: the sender (CPU 0) transacts `n` messages of `size`
/// bytes, one per ioctl; the receiver (CPU 1) checks and frees each.
/// Returns (sender's report: [failed tries], receiver's report: [ns from
/// the first message to the last]).
pub fn oneway_throughput(size: usize, n: usize) -> Result<(crate::Report, crate::Report), String> {
    let (mut rx_end, mut tx_end) = Rendezvous::pair()?;
    crate::pair(
        move || {
            let mut b = Binder::open()?;
            tx_end.wait_for(READY)?;
            let mut buf = vec![0u8; size];
            let mut failed = 0;
            for i in 0..n {
                crate::pattern(&mut buf, i);
                failed += b
                    .send_oneway(&buf)
                    .map_err(|e| format!("message {i}: {e}"))?;
            }
            tx_end.wait_for(DONE)?;
            Ok(vec![failed])
        },
        move || {
            let mut b = Binder::open()?;
            b.serve_handle0(Instant::now() + Duration::from_secs(10))?;
            rx_end.say(READY)?;
            let mut first = [0u8; 1];
            let mut t0 = None;
            for i in 0..n {
                let (oneway, buffer, len) = b.next_transaction()?;
                if !oneway {
                    return Err(format!("message {i}: not oneway"));
                }
                b.read_buffer(buffer, len, &mut first);
                b.free(buffer);
                if len != size || first[0] != i as u8 {
                    return Err(format!("message {i}: len {len} first byte {}", first[0]));
                }
                t0.get_or_insert_with(Instant::now);
            }
            let ns = t0.map_or(0, |t| t.elapsed().as_nanos() as u64);
            b.flush()?;
            rx_end.say(DONE)?;
            Ok(vec![ns])
        },
    )
}

/// Two-way ping-pong of `size` bytes: the caller (CPU 0) transacts, the
/// context manager (CPU 1) replies with the same bytes. The caller's
/// report holds the round-trip times of `total` calls.
pub fn call_latency(size: usize, total: usize) -> Result<(crate::Report, crate::Report), String> {
    let (mut rx_end, mut tx_end) = Rendezvous::pair()?;
    crate::pair(
        move || {
            let mut b = Binder::open()?;
            tx_end.wait_for(READY)?;
            let mut buf = vec![0u8; size];
            let mut back = vec![0u8; size];
            let mut v = Vec::with_capacity(total);
            for i in 0..total {
                crate::pattern(&mut buf, i);
                let t = Instant::now();
                let len = b
                    .call(&buf, &mut back)
                    .map_err(|e| format!("call {i}: {e}"))?;
                v.push(t.elapsed().as_nanos() as u64);
                crate::check_msg(&back[..len.min(size)], size, i)?;
            }
            b.flush()?;
            tx_end.wait_for(DONE)?;
            Ok(v)
        },
        move || {
            let mut b = Binder::open()?;
            b.serve_handle0(Instant::now() + Duration::from_secs(10))?;
            rx_end.say(READY)?;
            let mut buf = vec![0u8; size];
            let (mut oneway, mut buffer, mut len) = b.next_transaction()?;
            for i in 0..total {
                if oneway || len != size {
                    return Err(format!("call {i}: oneway {oneway}, {len} bytes"));
                }
                b.read_buffer(buffer, len, &mut buf);
                b.reply(buffer, &buf)?;
                if i + 1 < total {
                    (oneway, buffer, len) = b.next_transaction()?;
                }
            }
            rx_end.say(DONE)?;
            Ok(vec![])
        },
    )
}
