//! Every system call and raw pointer of the userspace backend: memfd, mmap,
//! eventfd, `SOCK_SEQPACKET` Unix sockets with `SCM_RIGHTS` and
//! `SO_PEERCRED`, poll. Nothing outside this module is `unsafe`, except the
//! one `clock_gettime` in lib.rs.

use secure_ipc_ring::abi::TxDesc;
use secure_ipc_ring::{Consumer, LayoutError, Producer, RingKind};
use std::ffi::CString;
use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cvt_size(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// Takes ownership of a fresh descriptor returned by a syscall.
fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    let fd = cvt(fd)?;
    // SAFETY: the kernel just returned this descriptor to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Seals that keep the owner from resizing the shared file under the peer
/// (a shrink would turn the peer's accesses into SIGBUS).
pub const REQUIRED_SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;

/// A memfd of `len` bytes sealed against shrinking, growing and re-sealing.
pub fn sealed_memfd(name: &str, len: usize) -> io::Result<OwnedFd> {
    let cname =
        CString::new(format!("secure_ipc:{name}")).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: cname is a valid NUL-terminated string for the call's duration.
    let fd = owned(unsafe {
        libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
    })?;
    // SAFETY: plain syscall on a descriptor we own.
    cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) })?;
    // SAFETY: plain syscall on a descriptor we own.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, REQUIRED_SEALS) })?;
    Ok(fd)
}

/// Size and seals of a received memfd.
pub fn memfd_size_and_seals(fd: &OwnedFd) -> io::Result<(u64, libc::c_int)> {
    // SAFETY: fstat writes one struct stat into the zeroed value we own.
    let mut st: libc::stat = unsafe { zeroed() };
    // SAFETY: valid fd and pointer.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    // SAFETY: plain syscall on a descriptor we own.
    let seals = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) })?;
    Ok((st.st_size as u64, seals))
}

/// A shared read/write mapping of a whole file, unmapped on drop.
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; all access to it goes through
// the ring crate's atomics and raw copies, which synchronise themselves.
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` exposes no reference into the memory.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd` shared and writable.
    pub fn new(fd: &OwnedFd, len: usize) -> io::Result<Arc<Self>> {
        // SAFETY: a fresh mapping chosen by the kernel; no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::from(io::ErrorKind::Other))?;
        Ok(Arc::new(Self { ptr, len }))
    }

    fn at(&self, off: usize, len: usize) -> Result<NonNull<u8>, LayoutError> {
        if off.checked_add(len).map_or(true, |end| end > self.len) {
            return Err(LayoutError::MappingTooSmall {
                needed: (off + len) as u64,
                mapped: self.len,
            });
        }
        // SAFETY: off + len <= self.len, so the result stays inside the mapping.
        Ok(unsafe { NonNull::new_unchecked(self.ptr.as_ptr().add(off)) })
    }

    /// Writes a fresh ring header (layout `l`) at `off`. Call before the
    /// mapping is shared with anyone.
    pub fn init_ring(
        &self,
        off: usize,
        l: &secure_ipc_ring::RingLayout,
    ) -> Result<(), LayoutError> {
        let base = self.at(off, l.ring_bytes())?;
        // SAFETY: the range is inside our private, not yet shared mapping.
        unsafe { l.init(base, l.ring_bytes(), RingKind::Tx) }
    }

    /// The producer half of the ring at `off..off+len`; keeps the mapping alive.
    pub fn producer(
        self: &Arc<Self>,
        off: usize,
        len: usize,
    ) -> Result<Producer<TxDesc>, LayoutError> {
        let base = self.at(off, len)?;
        // SAFETY: the range is inside this mapping, which the producer keeps
        // alive (keep_alive below); this process is the ring's only producer
        // by the rendezvous protocol (each side produces on one ring).
        let mut p = unsafe { Producer::<TxDesc>::from_raw(base, len, RingKind::Tx)? };
        p.keep_alive(self.clone());
        Ok(p)
    }

    /// The consumer half of the ring at `off..off+len`; keeps the mapping alive.
    pub fn consumer(
        self: &Arc<Self>,
        off: usize,
        len: usize,
    ) -> Result<Consumer<TxDesc>, LayoutError> {
        let base = self.at(off, len)?;
        // SAFETY: as in `producer`, with this process the only consumer.
        let mut c = unsafe { Consumer::<TxDesc>::from_raw(base, len, RingKind::Tx)? };
        c.keep_alive(self.clone());
        Ok(c)
    }

    /// `prod - cons` of the ring at `off` (a statistic; racy by nature).
    pub fn ring_fill(&self, off: usize) -> u32 {
        let word = |o: usize| -> u32 {
            let Ok(p) = self.at(off + o, 4) else { return 0 };
            // SAFETY: in bounds and 4-aligned (ring offsets are page aligned,
            // the words sit at 128 and 256); shared indices are only ever
            // read through atomics.
            let a = unsafe { AtomicU32::from_ptr(p.as_ptr().cast::<u32>()) };
            a.load(Ordering::Relaxed)
        };
        word(128).wrapping_sub(word(256))
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: we mapped exactly this range and nothing refers to it any
        // more (every ring half holds an Arc of us).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// A non-blocking, close-on-exec eventfd.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    owned(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })
}

/// Adds 1 to an eventfd (a doorbell ring).
pub fn eventfd_signal(fd: &OwnedFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a valid u64. EAGAIN (counter saturated)
    // still leaves the fd readable, which is all a doorbell needs.
    unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

/// Resets an eventfd to zero.
pub fn eventfd_drain(fd: &OwnedFd) {
    let mut v: u64 = 0;
    // SAFETY: reads 8 bytes into a valid u64; EAGAIN (already zero) is fine.
    unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
}

/// Readiness of one polled fd.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ready {
    /// POLLIN.
    pub readable: bool,
    /// POLLHUP, POLLRDHUP or POLLERR.
    pub hangup: bool,
}

/// Polls `fds` for POLLIN (and hang-up) for at most `timeout`
/// (`None` = forever). Interrupted waits return early with nothing ready.
pub fn poll(fds: &[RawFd], timeout: Option<Duration>) -> io::Result<Vec<Ready>> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN | libc::POLLRDHUP,
            revents: 0,
        })
        .collect();
    let ms = match timeout {
        None => -1,
        Some(d) => {
            d.as_millis().min(i32::MAX as u128) as libc::c_int
                + if d.subsec_nanos() % 1_000_000 != 0 {
                    1
                } else {
                    0
                }
        }
    };
    // SAFETY: p is a valid array of p.len() pollfds.
    let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![Ready::default(); fds.len()]);
        }
        return Err(e);
    }
    Ok(p.iter()
        .map(|x| Ready {
            readable: x.revents & libc::POLLIN != 0,
            hangup: x.revents & (libc::POLLHUP | libc::POLLRDHUP | libc::POLLERR | libc::POLLNVAL)
                != 0,
        })
        .collect())
}

/// Rendezvous address: abstract name or filesystem path.
pub enum SockAddr<'a> {
    /// Linux abstract socket (no file; scoped to the network namespace).
    Abstract(&'a [u8]),
    /// A socket file.
    Path(&'a Path),
}

fn sockaddr(addr: &SockAddr<'_>) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain data; all zero is a valid value.
    let mut sa: libc::sockaddr_un = unsafe { zeroed() };
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let (bytes, offset): (&[u8], usize) = match addr {
        SockAddr::Abstract(n) => (n, 1),
        SockAddr::Path(p) => (std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()), 0),
    };
    // Path sockets need room for the terminating NUL.
    if offset + bytes.len() + (1 - offset) > sa.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path too long",
        ));
    }
    for (i, b) in bytes.iter().enumerate() {
        sa.sun_path[offset + i] = *b as libc::c_char;
    }
    let base = size_of::<libc::sa_family_t>();
    let len = match addr {
        SockAddr::Abstract(_) => base + 1 + bytes.len(),
        SockAddr::Path(_) => base + bytes.len() + 1,
    };
    Ok((sa, len as libc::socklen_t))
}

fn seqpacket() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    owned(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) })
}

/// A listening `SOCK_SEQPACKET` socket bound to `addr`.
pub fn listen(addr: &SockAddr<'_>) -> io::Result<OwnedFd> {
    let fd = seqpacket()?;
    let (sa, len) = sockaddr(addr)?;
    // SAFETY: sa is a valid sockaddr_un of length len.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_un).cast(),
            len,
        )
    })?;
    // SAFETY: plain syscall.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), 8) })?;
    Ok(fd)
}

/// Connects a `SOCK_SEQPACKET` socket to `addr`.
pub fn connect(addr: &SockAddr<'_>) -> io::Result<OwnedFd> {
    let fd = seqpacket()?;
    let (sa, len) = sockaddr(addr)?;
    // SAFETY: sa is a valid sockaddr_un of length len.
    cvt(unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_un).cast(),
            len,
        )
    })?;
    Ok(fd)
}

/// Accepts one connection (close-on-exec).
pub fn accept(fd: &OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: null address pointers are allowed by accept4.
    owned(unsafe {
        libc::accept4(
            fd.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    })
}

/// Sets the receive and send timeouts of a socket.
pub fn set_timeouts(fd: &OwnedFd, t: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: t.as_secs() as _,
        tv_usec: t.subsec_micros() as libc::suseconds_t,
    };
    for opt in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        // SAFETY: tv is a valid timeval of the size we pass.
        cvt(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&tv as *const libc::timeval).cast(),
                size_of::<libc::timeval>() as libc::socklen_t,
            )
        })?;
    }
    Ok(())
}

/// The other end's credentials (`SO_PEERCRED`): pid, uid, gid as this
/// process's namespaces see them, captured at connect/listen time.
pub fn peer_cred(fd: &OwnedFd) -> io::Result<(u32, u32, u32)> {
    let mut c = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: c and len are valid for writing a ucred.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut c as *mut libc::ucred).cast(),
            &mut len,
        )
    })?;
    Ok((c.pid.max(0) as u32, c.uid, c.gid))
}

/// Maximum descriptors carried by one packet.
pub const MAX_FDS: usize = 8;

/// Sends one packet, with `fds` attached as `SCM_RIGHTS`.
pub fn send_packet(sock: &OwnedFd, data: &[u8], fds: &[&OwnedFd]) -> io::Result<()> {
    assert!(fds.len() <= MAX_FDS);
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut cbuf = [0u64; 16]; // 128 bytes, 8-aligned: room for CMSG_SPACE(8 fds)
                               // SAFETY: msghdr is plain data; all zero is valid.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let payload = (fds.len() * size_of::<libc::c_int>()) as u32;
        // SAFETY: CMSG_SPACE is a pure size computation.
        let space = unsafe { libc::CMSG_SPACE(payload) } as usize;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: msg_control points at `space` <= 128 writable bytes, so the
        // first header and its data fit; CMSG_FIRSTHDR/CMSG_DATA stay inside.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(payload) as _;
            let d = libc::CMSG_DATA(c).cast::<libc::c_int>();
            for (i, f) in fds.iter().enumerate() {
                d.add(i).write_unaligned(f.as_raw_fd());
            }
        }
    }
    // SAFETY: msg describes valid buffers for the call's duration.
    let n = cvt_size(unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) })?;
    if n != data.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short packet write",
        ));
    }
    Ok(())
}

/// Receives one packet into `buf` (returns its length; 0 = the other end
/// closed) and any descriptors attached to it.
pub fn recv_packet(sock: &OwnedFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cbuf = [0u64; 16];
    // SAFETY: msghdr is plain data; all zero is valid.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<[u64; 16]>() as _;
    // SAFETY: msg describes valid buffers; MSG_CMSG_CLOEXEC marks received fds close-on-exec.
    let n = cvt_size(unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) })?;
    let mut fds = Vec::new();
    // SAFETY: walking the control buffer the kernel filled, with the libc
    // macros that bound every header by msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data_len = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let d = libc::CMSG_DATA(c).cast::<libc::c_int>();
                for i in 0..data_len / size_of::<libc::c_int>() {
                    fds.push(OwnedFd::from_raw_fd(d.add(i).read_unaligned()));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "oversized rendezvous packet",
        ));
    }
    Ok((n, fds))
}

/// Effective uid of this process.
pub fn geteuid() -> u32 {
    // SAFETY: always succeeds.
    unsafe { libc::geteuid() }
}

/// `SIPC_IOC_INFO` on a freshly opened `/dev/secure_ipc`.
pub fn kernel_info(path: &str) -> io::Result<secure_ipc_ring::abi::Info> {
    use secure_ipc_ring::abi::{Info, SIPC_IOC_INFO};
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let mut info = Info {
        size: size_of::<Info>() as u32,
        ..Default::default()
    };
    // SAFETY: SIPC_IOC_INFO writes at most `info.size` bytes into the struct
    // we pass, which is exactly that large.
    cvt(unsafe { libc::ioctl(f.as_raw_fd(), SIPC_IOC_INFO as _, &mut info as *mut Info) })?;
    Ok(info)
}
