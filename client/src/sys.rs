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
use std::time::{Duration, Instant};

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

/// A doorbell: a connected pair of non-blocking `SOCK_SEQPACKET` sockets.
/// The sleeper keeps one end and polls it; the ringer gets the other end.
/// Unlike a shared eventfd, the two ends are separate open file
/// descriptions, and every send and receive passes `MSG_DONTWAIT`, so
/// nothing the other process does to its end (clearing `O_NONBLOCK`,
/// filling the buffer, never reading) can make a ring or a drain block.
pub fn bell_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: socketpair writes two descriptors into the array.
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: both descriptors are fresh and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Rings a doorbell: one 1-byte packet, never blocking. A full buffer
/// (EAGAIN) already means a pending ring; a gone sleeper (EPIPE) is seen
/// through the hang-up, so errors are ignored.
pub fn bell_ring(fd: &OwnedFd) {
    let b = [1u8];
    // SAFETY: sends one byte from a valid buffer; MSG_NOSIGNAL: no SIGPIPE.
    unsafe {
        libc::send(
            fd.as_raw_fd(),
            b.as_ptr().cast(),
            1,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
}

/// Most packets one drain takes: a ringer that floods its end only earns
/// itself spurious wake-ups, never a drain that does not end.
const BELL_DRAIN_MAX: usize = 64;

/// Takes one ring off a doorbell's sleeping end, never blocking: the
/// blocking path's drain after a wake-up (one packet is the common case;
/// any other pending ring only makes the next wait return at once).
pub fn bell_take_one(fd: &OwnedFd) {
    let mut b = [0u8; 8];
    // SAFETY: receives at most 8 bytes into a valid buffer; EAGAIN is fine.
    unsafe {
        libc::recv(
            fd.as_raw_fd(),
            b.as_mut_ptr().cast(),
            b.len(),
            libc::MSG_DONTWAIT,
        )
    };
}

/// Takes pending rings off a doorbell's sleeping end, never blocking: one
/// `recvmmsg` of up to [`BELL_DRAIN_MAX`] packets (one system call, like
/// the eventfd read it replaces). Returns whether the ringing end is shut
/// down or closed: such a doorbell stays readable forever and can never
/// ring again, so the caller must treat it as the other side's hang-up.
pub fn bell_drain(fd: &OwnedFd) -> bool {
    let mut bufs = [[0u8; 1]; BELL_DRAIN_MAX];
    let mut iovs: [libc::iovec; BELL_DRAIN_MAX] = std::array::from_fn(|_| libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    });
    // SAFETY: mmsghdr is plain data; all zero is valid.
    let mut msgs: [libc::mmsghdr; BELL_DRAIN_MAX] = unsafe { zeroed() };
    for ((m, iov), b) in msgs.iter_mut().zip(iovs.iter_mut()).zip(bufs.iter_mut()) {
        iov.iov_base = b.as_mut_ptr().cast();
        iov.iov_len = b.len();
        m.msg_hdr.msg_iov = iov;
        m.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: every header points at its own valid 1-byte buffer for the
    // duration of the call; errors (EAGAIN: nothing pending) are ignored.
    let n = unsafe {
        libc::recvmmsg(
            fd.as_raw_fd(),
            msgs.as_mut_ptr(),
            BELL_DRAIN_MAX as libc::c_uint,
            // `as _`: glibc takes c_int flags, musl and bionic c_uint.
            libc::MSG_DONTWAIT as _,
            std::ptr::null_mut(),
        )
    };
    // Descriptors a ringer attaches are never installed here: no control
    // buffer is offered, so the kernel drops them with the packet.
    //
    // At end of file recvmmsg counts each empty read as a datagram of
    // length 0, like a zero-length packet; rings are 1 byte, so only a
    // zero-length last entry costs the poll that tells the two apart.
    let last_empty = n > 0 && msgs[n as usize - 1].msg_len == 0;
    n == 0
        || (last_empty && poll(&[fd.as_raw_fd()], Some(Duration::ZERO)).is_ok_and(|r| r[0].hangup))
}

fn sock_opt_int(fd: RawFd, opt: libc::c_int) -> io::Result<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v and len are valid for writing an int.
    cvt(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok(v)
}

/// Checks that a received descriptor is a doorbell end: a connected,
/// non-listening `AF_UNIX` `SOCK_SEQPACKET` socket whose other end has no
/// address (a socketpair, not a rendezvous or someone's listener).
pub fn check_bell(fd: &OwnedFd) -> io::Result<()> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let raw = fd.as_raw_fd();
    // SAFETY: stat is plain data; fstat writes it.
    let mut st: libc::stat = unsafe { zeroed() };
    // SAFETY: st is valid for writing.
    cvt(unsafe { libc::fstat(raw, &mut st) })?;
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(bad("a doorbell descriptor is not a socket"));
    }
    if sock_opt_int(raw, libc::SO_DOMAIN)? != libc::AF_UNIX
        || sock_opt_int(raw, libc::SO_TYPE)? != libc::SOCK_SEQPACKET
        || sock_opt_int(raw, libc::SO_ACCEPTCONN)? != 0
    {
        return Err(bad(
            "a doorbell descriptor is not a Unix seqpacket socket pair",
        ));
    }
    // SAFETY: sockaddr_un is plain data; getpeername writes at most len bytes.
    let mut sa: libc::sockaddr_un = unsafe { zeroed() };
    let mut len = size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: as above.
    cvt(unsafe { libc::getpeername(raw, (&mut sa as *mut libc::sockaddr_un).cast(), &mut len) })
        .map_err(|_| bad("a doorbell descriptor is not connected"))?;
    if len as usize > size_of::<libc::sa_family_t>() {
        return Err(bad("a doorbell descriptor is connected to a named socket"));
    }
    Ok(())
}

/// A close-on-exec epoll instance: the stable readiness fd of one half of a
/// userspace endpoint (the descriptors behind it change at attach).
pub fn epoll() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })
}

/// Adds `fd` to `ep`, level-triggered, for input and hang-up.
pub fn epoll_add(ep: &OwnedFd, fd: RawFd) -> io::Result<()> {
    epoll_add_events(ep, fd, (libc::EPOLLIN | libc::EPOLLRDHUP) as u32)
}

/// Adds `fd` to `ep`, level-triggered, for `events`.
pub fn epoll_add_events(ep: &OwnedFd, fd: RawFd, events: u32) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events,
        u64: fd as u64,
    };
    // SAFETY: ev is a valid epoll_event for the call.
    cvt(unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) }).map(|_| ())
}

/// Removes `fd` from `ep` (ignores "not there").
pub fn epoll_del(ep: &OwnedFd, fd: RawFd) {
    // SAFETY: EPOLL_CTL_DEL ignores the event pointer (may be null).
    unsafe {
        libc::epoll_ctl(
            ep.as_raw_fd(),
            libc::EPOLL_CTL_DEL,
            fd,
            std::ptr::null_mut(),
        )
    };
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
        // Rounded up (a wait never ends early), saturated at poll's
        // largest timeout: callers loop until their deadline.
        Some(d) => {
            let up = u128::from(d.subsec_nanos() % 1_000_000 != 0);
            (d.as_millis() + up).min(i32::MAX as u128) as libc::c_int
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
    // Non-blocking: the accepting thread polls, and a connection that is
    // gone by the time it calls accept must not stall it.
    // SAFETY: fcntl on our own descriptor.
    cvt(unsafe {
        let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK)
    })?;
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

/// Shuts a socket down both ways: any wait on it, in any thread or
/// process holding it, ends with end of file.
pub fn shutdown(fd: &OwnedFd) {
    // SAFETY: plain syscall on a descriptor we hold; errors (not connected)
    // leave nothing to end.
    unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) };
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

/// `SO_PEERGROUPS` (Linux 4.13) and `SO_PEERPIDFD` (6.5) from
/// include/uapi/asm-generic/socket.h, which x86 and arm64 use; Android's
/// libc bindings lack them.
const SO_PEERGROUPS: libc::c_int = 59;
const SO_PEERPIDFD: libc::c_int = 77;

/// The other end's supplementary groups as captured at connect/listen
/// time (`SO_PEERGROUPS`, Linux 4.13). `None` where the kernel lacks it:
/// callers that need the groups then refuse (fail closed).
pub fn peer_groups(fd: &OwnedFd) -> Option<Vec<u32>> {
    let mut groups = vec![0 as libc::gid_t; 64];
    for _ in 0..2 {
        let mut len = (groups.len() * size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: groups is valid for writing len bytes.
        let r = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if r == 0 {
            groups.truncate(len as usize / size_of::<libc::gid_t>());
            return Some(groups);
        }
        if io::Error::last_os_error().raw_os_error() != Some(libc::ERANGE) {
            return None;
        }
        // ERANGE: `len` now holds the size needed.
        groups = vec![0; len as usize / size_of::<libc::gid_t>() + 1];
    }
    None
}

/// A pidfd of the process that connected (or listened on) `fd`, pinned
/// at connect time (`SO_PEERPIDFD`, Linux 6.5). `Ok(None)` where the
/// kernel lacks it (`ENOPROTOOPT`); an error where it has it but cannot
/// give one, which before Linux 6.17 means the process has been reaped
/// (`EINVAL`), so its pid may name another process by now. From 6.17 the
/// pidfd of a reaped process is returned: see [`pidfd_alive`].
pub fn peer_pidfd(fd: &OwnedFd) -> io::Result<Option<OwnedFd>> {
    let v = match sock_opt_int(fd.as_raw_fd(), SO_PEERPIDFD) {
        Ok(v) if v >= 0 => v,
        Ok(_) => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
        Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => return Ok(None),
        Err(e) => return Err(e),
    };
    // SAFETY: the kernel installed a fresh descriptor for us.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(v) }))
}

/// `PIDFD_GET_PID_NAMESPACE` = `_IO(0xFF, 5)` (include/uapi/linux/pidfd.h, Linux 6.11).
const PIDFD_GET_PID_NAMESPACE: libc::c_ulong = 0xFF05;
/// `PIDFD_GET_USER_NAMESPACE` = `_IO(0xFF, 9)`.
const PIDFD_GET_USER_NAMESPACE: libc::c_ulong = 0xFF09;

fn ino_of(fd: &OwnedFd) -> io::Result<u64> {
    // SAFETY: stat is plain data; fstat writes it.
    let mut st: libc::stat = unsafe { zeroed() };
    // SAFETY: st is valid for writing.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st.st_ino)
}

/// Whether the process behind `pidfd` is still alive (signal 0; a zombie
/// counts: its pid is not free for reuse until it is reaped). Only ESRCH
/// means gone: EPERM (a process of another uid we may not signal) is alive.
pub fn pidfd_alive(pidfd: &OwnedFd) -> bool {
    // SAFETY: pidfd_send_signal with signal 0 only checks existence.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// The pid of the process behind `pidfd` in this process's pid namespace
/// (`Pid:` of its fdinfo).
fn pidfd_pid(pidfd: &OwnedFd) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse::<i64>().ok())
        .and_then(|p| u32::try_from(p).ok())
        .filter(|&p| p > 0)
}

/// pid- and user-namespace inode numbers of the process behind `pidfd`.
/// Race-free: from the pidfd itself (Linux 6.11), or else read from
/// `/proc/PID/ns` and kept only if the pidfd's process is still alive
/// afterwards (so PID was not reused in between). `None` if neither works.
pub fn pidfd_namespaces(pidfd: &OwnedFd) -> Option<(u64, u64)> {
    let via_ioctl = |req: libc::c_ulong| -> Option<u64> {
        // SAFETY: the ioctl takes no argument and returns a new fd or -1.
        let r = unsafe { libc::ioctl(pidfd.as_raw_fd(), req as _, 0) };
        if r < 0 {
            return None;
        }
        // SAFETY: a fresh nsfs descriptor the kernel installed for us.
        let ns = unsafe { OwnedFd::from_raw_fd(r) };
        ino_of(&ns).ok()
    };
    if let (Some(p), Some(u)) = (
        via_ioctl(PIDFD_GET_PID_NAMESPACE),
        via_ioctl(PIDFD_GET_USER_NAMESPACE),
    ) {
        return Some((p, u));
    }
    use std::os::unix::fs::MetadataExt;
    let pid = pidfd_pid(pidfd)?;
    let ino = |what: &str| {
        std::fs::metadata(format!("/proc/{pid}/ns/{what}"))
            .map(|m| m.ino())
            .ok()
    };
    let (p, u) = (ino("pid")?, ino("user")?);
    pidfd_alive(pidfd).then_some((p, u))
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
    // MSG_DONTWAIT: a handshake packet fits an empty socket buffer; a peer
    // that filled ours by not reading fails the handshake instead of
    // blocking this side.
    let n = cvt_size(unsafe {
        libc::sendmsg(
            sock.as_raw_fd(),
            &msg,
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    })?;
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
fn recv_packet_flags(
    sock: &OwnedFd,
    buf: &mut [u8],
    flags: libc::c_int,
) -> io::Result<(usize, Vec<OwnedFd>)> {
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
    let n = cvt_size(unsafe {
        libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC | flags)
    })?;
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

/// Waits until `sock` is readable or `deadline` passes.
fn wait_readable(sock: &OwnedFd, deadline: Instant) -> io::Result<()> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::from(io::ErrorKind::TimedOut));
        }
        let r = poll(&[sock.as_raw_fd()], Some(left))?;
        if r[0].readable || r[0].hangup {
            return Ok(());
        }
    }
}

/// Receives one packet by `deadline`, refusing any control message: no
/// receive buffer is offered for them, so descriptors a sender attaches are
/// never installed in this process (the kernel drops them), and the
/// truncation flag turns the packet into an error.
pub fn recv_plain_packet(sock: &OwnedFd, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
    wait_readable(sock, deadline)?;
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; all zero is valid (no control buffer).
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    // SAFETY: msg describes a valid buffer for the call's duration.
    let n = cvt_size(unsafe {
        libc::recvmsg(
            sock.as_raw_fd(),
            &mut msg,
            libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
        )
    })?;
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "control message on the rendezvous socket",
        ));
    }
    if msg.msg_flags & libc::MSG_TRUNC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "oversized rendezvous packet",
        ));
    }
    Ok(n)
}

/// Receives one packet and its descriptors by `deadline`.
pub fn recv_packet_by(
    sock: &OwnedFd,
    buf: &mut [u8],
    deadline: Instant,
) -> io::Result<(usize, Vec<OwnedFd>)> {
    wait_readable(sock, deadline)?;
    recv_packet_flags(sock, buf, libc::MSG_DONTWAIT)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn clear_nonblock(fd: &OwnedFd) {
        // SAFETY: fcntl on a descriptor the test owns.
        unsafe {
            let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl & !libc::O_NONBLOCK);
        }
    }

    #[test]
    fn bell_ring_and_drain_never_block_whatever_the_other_end_does() {
        let (sleep, ring) = bell_pair().unwrap();
        // The other side clears O_NONBLOCK on both ends (it can only reach
        // its own; here the test reaches both) and never reads.
        clear_nonblock(&sleep);
        clear_nonblock(&ring);
        let t = std::time::Instant::now();
        for _ in 0..100_000 {
            bell_ring(&ring);
        }
        let r = poll(&[sleep.as_raw_fd()], Some(Duration::ZERO)).unwrap();
        assert!(r[0].readable, "a full bell is still a pending ring");
        for _ in 0..10_000 {
            bell_drain(&sleep);
        }
        let (_s2, ring2) = bell_pair().unwrap();
        drop(_s2);
        bell_ring(&ring2); // sleeper gone: EPIPE, no SIGPIPE
        assert!(t.elapsed() < Duration::from_secs(10));
        let r = poll(&[sleep.as_raw_fd()], Some(Duration::ZERO)).unwrap();
        assert!(!r[0].readable, "drained");
    }

    #[test]
    fn only_socket_pair_ends_pass_as_doorbells() {
        let (a, _b) = bell_pair().unwrap();
        assert!(check_bell(&a).is_ok());
        let efd = eventfd().unwrap();
        assert!(check_bell(&efd).is_err(), "an eventfd");
        let mut p = [0 as libc::c_int; 2];
        // SAFETY: pipe2 writes two fds.
        assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: fresh descriptors we own.
        let (r, _w) = unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
        assert!(check_bell(&r).is_err(), "a pipe");
        let mut s = [0 as libc::c_int; 2];
        // SAFETY: socketpair writes two fds.
        let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, s.as_mut_ptr()) };
        assert_eq!(r, 0);
        // SAFETY: fresh descriptors we own.
        let (st, _st2) = unsafe { (OwnedFd::from_raw_fd(s[0]), OwnedFd::from_raw_fd(s[1])) };
        assert!(check_bell(&st).is_err(), "a stream socket pair");
        let dir = std::env::temp_dir().join(format!("sipc-bell-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("l.sock");
        let _ = std::fs::remove_file(&path);
        let l = listen(&SockAddr::Path(&path)).unwrap();
        assert!(check_bell(&l).is_err(), "a listening socket");
        let c = connect(&SockAddr::Path(&path)).unwrap();
        assert!(check_bell(&c).is_err(), "a connection to a named socket");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn poll_timeout_of_thirty_days_does_not_overflow() {
        let (sleep, ring) = bell_pair().unwrap();
        bell_ring(&ring);
        let r = poll(&[sleep.as_raw_fd()], Some(Duration::from_secs(30 * 86_400))).unwrap();
        assert!(r[0].readable);
        let r = poll(&[sleep.as_raw_fd()], Some(Duration::MAX)).unwrap();
        assert!(r[0].readable);
    }
}
