//! The benchmark's unsafe code besides Binder's ioctls (binder.rs): fork,
//! sockets, eventfd, AF_ALG, CPU affinity, modules. Every function
//! returns `io::Result` with the errno.

use std::io::{Error, Read, Result, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

fn check(r: libc::c_int) -> Result<libc::c_int> {
    if r < 0 {
        Err(Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn check_size(r: isize) -> Result<usize> {
    if r < 0 {
        Err(Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// Runs `child` in a forked process that exits with its return code;
/// returns the child's pid. The caller must be single-threaded.
pub fn fork(child: impl FnOnce() -> i32) -> Result<libc::pid_t> {
    // SAFETY: the benchmark is single-threaded when it forks, so the child
    // owns a consistent copy of the address space.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Error::last_os_error());
    }
    if pid == 0 {
        let code = child();
        // SAFETY: _exit skips the parent's atexit handlers and stdio
        // buffers that the child inherited; Rust's stdout is flushed here.
        unsafe {
            use std::io::Write;
            let _ = std::io::stdout().flush();
            libc::_exit(code)
        }
    }
    Ok(pid)
}

/// Waits for `pid`; returns its exit code (128+signal if killed).
pub fn wait(pid: libc::pid_t) -> Result<i32> {
    let mut status = 0;
    // SAFETY: `status` is a valid out pointer.
    check(unsafe { libc::waitpid(pid, &mut status, 0) })?;
    Ok(if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    })
}

/// A connected AF_UNIX SOCK_SEQPACKET pair.
pub fn seqpacket_pair() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    check(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0, fds.as_mut_ptr()) })?;
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sets SO_SNDBUF/SO_RCVBUF (bytes).
pub fn set_bufs(fd: &OwnedFd, bytes: i32) -> Result<()> {
    for opt in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        // SAFETY: the option value is a c_int of the given size.
        check(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&bytes as *const i32).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        })?;
    }
    Ok(())
}

/// send(2) of one message.
pub fn send(fd: RawFd, buf: &[u8]) -> Result<usize> {
    // SAFETY: `buf` is valid for reads of its length.
    check_size(unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), 0) })
}

/// recv(2) of one message; `nonblock` for busy polling.
pub fn recv(fd: RawFd, buf: &mut [u8], nonblock: bool) -> Result<usize> {
    let flags = if nonblock { libc::MSG_DONTWAIT } else { 0 };
    // SAFETY: `buf` is valid for writes of its length.
    check_size(unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), flags) })
}

/// sendmmsg(2) of whole buffers, one message each; returns how many went.
pub fn sendmmsg(fd: RawFd, bufs: &[&[u8]]) -> Result<usize> {
    let mut iov: Vec<libc::iovec> = bufs
        .iter()
        .map(|b| libc::iovec {
            iov_base: b.as_ptr() as *mut _,
            iov_len: b.len(),
        })
        .collect();
    // SAFETY: mmsghdr is plain data; all-zero is a valid empty header.
    let mut msgs: Vec<libc::mmsghdr> = (0..bufs.len())
        .map(|_| unsafe { std::mem::zeroed() })
        .collect();
    for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
        m.msg_hdr.msg_iov = v;
        m.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: every header points at one live iovec over a live buffer.
    let r = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), msgs.len() as _, 0) };
    check(r).map(|n| n as usize)
}

/// recvmmsg(2) into `bufs`, waiting for at least one; returns the lengths.
pub fn recvmmsg(fd: RawFd, bufs: &mut [Vec<u8>], lens: &mut Vec<usize>) -> Result<()> {
    let mut iov: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    // SAFETY: mmsghdr is plain data; all-zero is a valid empty header.
    let mut msgs: Vec<libc::mmsghdr> = (0..bufs.len())
        .map(|_| unsafe { std::mem::zeroed() })
        .collect();
    for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
        m.msg_hdr.msg_iov = v;
        m.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: every header points at one live iovec over a live, writable
    // buffer; no timeout.
    let r = unsafe {
        libc::recvmmsg(
            fd,
            msgs.as_mut_ptr(),
            msgs.len() as _,
            libc::MSG_WAITFORONE as _,
            std::ptr::null_mut(),
        )
    };
    let n = check(r)? as usize;
    lens.clear();
    lens.extend(msgs[..n].iter().map(|m| m.msg_len as usize));
    Ok(())
}

/// A blocking eventfd.
pub fn eventfd() -> Result<OwnedFd> {
    // SAFETY: plain syscall.
    let fd = check(unsafe { libc::eventfd(0, 0) })?;
    // SAFETY: just created, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds 1 to an eventfd.
pub fn eventfd_signal(fd: RawFd) -> Result<()> {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64.
    check_size(unsafe { libc::write(fd, (&one as *const u64).cast(), 8) }).map(|_| ())
}

/// Reads (and resets) an eventfd, blocking while it is zero.
pub fn eventfd_wait(fd: RawFd) -> Result<u64> {
    let mut v: u64 = 0;
    // SAFETY: reads 8 bytes into a live u64.
    check_size(unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) })?;
    Ok(v)
}

/// Pins the calling process to `cpu`.
pub fn pin_to(cpu: usize) -> Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_SET writes within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        check(libc::sched_setaffinity(
            0,
            std::mem::size_of::<libc::cpu_set_t>(),
            &set,
        ))?;
    }
    Ok(())
}

/// The CPU the caller runs on now.
pub fn current_cpu() -> i32 {
    // SAFETY: plain syscall wrapper without arguments.
    unsafe { libc::sched_getcpu() }
}

/// An AF_ALG AEAD operation socket for `alg` ("gcm(aes)") with `key` and a
/// 16-byte tag.
pub fn af_alg_aead(alg: &str, key: &[u8]) -> Result<OwnedFd> {
    // SAFETY: plain syscall.
    let tfm = check(unsafe { libc::socket(libc::AF_ALG, libc::SOCK_SEQPACKET, 0) })?;
    // SAFETY: just created, owned by nobody else.
    let tfm = unsafe { OwnedFd::from_raw_fd(tfm) };
    // SAFETY: sockaddr_alg is plain data.
    let mut sa: libc::sockaddr_alg = unsafe { std::mem::zeroed() };
    sa.salg_family = libc::AF_ALG as u16;
    sa.salg_type[..4].copy_from_slice(b"aead");
    sa.salg_name[..alg.len()].copy_from_slice(alg.as_bytes());
    // SAFETY: `sa` is a complete sockaddr_alg.
    check(unsafe {
        libc::bind(
            tfm.as_raw_fd(),
            (&sa as *const libc::sockaddr_alg).cast(),
            std::mem::size_of::<libc::sockaddr_alg>() as libc::socklen_t,
        )
    })?;
    // SAFETY: the key buffer is valid for its length.
    check(unsafe {
        libc::setsockopt(
            tfm.as_raw_fd(),
            libc::SOL_ALG,
            libc::ALG_SET_KEY,
            key.as_ptr().cast(),
            key.len() as _,
        )
    })?;
    // SAFETY: ALG_SET_AEAD_AUTHSIZE takes the size in optlen, no buffer.
    check(unsafe {
        libc::setsockopt(
            tfm.as_raw_fd(),
            libc::SOL_ALG,
            libc::ALG_SET_AEAD_AUTHSIZE,
            std::ptr::null(),
            16,
        )
    })?;
    // SAFETY: accept on a bound AF_ALG socket creates the operation socket.
    let op = check(unsafe {
        libc::accept(tfm.as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut())
    })?;
    // SAFETY: just created, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(op) })
}

/// One AF_ALG AEAD encryption: `input` = AAD ‖ plaintext, `out` receives
/// AAD ‖ ciphertext ‖ tag. Returns the bytes read.
pub fn af_alg_encrypt(
    op: RawFd,
    iv: &[u8; 12],
    assoclen: u32,
    input: &[u8],
    out: &mut [u8],
) -> Result<usize> {
    const IV_HDR: usize = 4; // struct af_alg_iv { __u32 ivlen; __u8 iv[]; }
                             // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe {
        libc::CMSG_SPACE(4) as usize
            + libc::CMSG_SPACE((IV_HDR + 12) as u32) as usize
            + libc::CMSG_SPACE(4) as usize
    };
    let mut cbuf = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: input.as_ptr() as *mut _,
        iov_len: input.len(),
    };
    // SAFETY: msghdr is plain data.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: the control buffer holds the three headers written below
    // (sizes from CMSG_SPACE); CMSG_* stay inside it.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_ALG;
        (*c).cmsg_type = libc::ALG_SET_OP;
        (*c).cmsg_len = libc::CMSG_LEN(4) as _;
        (libc::CMSG_DATA(c) as *mut u32).write_unaligned(libc::ALG_OP_ENCRYPT as u32);
        let c = libc::CMSG_NXTHDR(&msg, c);
        (*c).cmsg_level = libc::SOL_ALG;
        (*c).cmsg_type = libc::ALG_SET_IV;
        (*c).cmsg_len = libc::CMSG_LEN((IV_HDR + 12) as u32) as _;
        let d = libc::CMSG_DATA(c);
        (d as *mut u32).write_unaligned(12);
        std::ptr::copy_nonoverlapping(iv.as_ptr(), d.add(IV_HDR), 12);
        let c = libc::CMSG_NXTHDR(&msg, c);
        (*c).cmsg_level = libc::SOL_ALG;
        (*c).cmsg_type = libc::ALG_SET_AEAD_ASSOCLEN;
        (*c).cmsg_len = libc::CMSG_LEN(4) as _;
        (libc::CMSG_DATA(c) as *mut u32).write_unaligned(assoclen);
    }
    // SAFETY: `msg` points at live iovec and control buffers.
    check_size(unsafe { libc::sendmsg(op, &msg, 0) })?;
    // SAFETY: `out` is valid for writes of its length.
    check_size(unsafe { libc::read(op, out.as_mut_ptr().cast(), out.len()) })
}

/// Loads the kernel module file at `path` without parameters
/// (finit_module(2)).
pub fn load_module(path: &str) -> Result<()> {
    load_module_with(path, c"")
}

/// Loads the kernel module file at `path` with `params`
/// ("name=value ...", finit_module(2)).
pub fn load_module_with(path: &str, params: &std::ffi::CStr) -> Result<()> {
    let f = std::fs::File::open(path)?;
    // SAFETY: `f` is an open descriptor and `params` a NUL-terminated C
    // string; the kernel reads nothing else.
    let r = unsafe { libc::syscall(libc::SYS_finit_module, f.as_raw_fd(), params.as_ptr(), 0) };
    if r < 0 {
        Err(Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Unloads the module `name` (delete_module(2) with O_NONBLOCK: EBUSY
/// while something still holds it).
pub fn unload_module(name: &std::ffi::CStr) -> Result<()> {
    // SAFETY: `name` is a NUL-terminated C string that outlives the call.
    let r = unsafe { libc::syscall(libc::SYS_delete_module, name.as_ptr(), libc::O_NONBLOCK) };
    if r < 0 {
        Err(Error::last_os_error())
    } else {
        Ok(())
    }
}

/// write(2) of `buf` on `fd`.
pub fn write(fd: RawFd, buf: &[u8]) -> Result<usize> {
    // SAFETY: `buf` is valid for reads of its length.
    check_size(unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) })
}

/// read(2) into `buf` from `fd`.
pub fn read(fd: RawFd, buf: &mut [u8]) -> Result<usize> {
    // SAFETY: `buf` is valid for writes of its length.
    check_size(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
}

/// The leading fields of `struct perf_event_attr` (PERF_ATTR_SIZE_VER0,
/// 64 bytes; the flag bits all zero: counting from the open, user and
/// kernel, this thread only).
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
}

const PERF_TYPE_TRACEPOINT: u32 = 2;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;

/// The tracepoint id of raw_syscalls:sys_enter, from tracefs (mounted
/// at /sys/kernel/tracing first when nothing is there).
fn sys_enter_id() -> Result<u64> {
    let rel = "events/raw_syscalls/sys_enter/id";
    let dirs = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];
    for d in dirs {
        if let Ok(s) = std::fs::read_to_string(format!("{d}/{rel}")) {
            return s.trim().parse().map_err(Error::other);
        }
    }
    // SAFETY: NUL-terminated C strings that outlive the call; no data.
    let r = unsafe {
        libc::mount(
            c"tracefs".as_ptr(),
            c"/sys/kernel/tracing".as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    check(r)?;
    let s = std::fs::read_to_string(format!("{}/{rel}", dirs[0]))?;
    s.trim().parse().map_err(Error::other)
}

/// Counts the system calls the calling thread makes from its creation
/// on (a perf counter on the raw_syscalls:sys_enter tracepoint).
pub struct SyscallCounter(OwnedFd);

/// Switches system-call counting on for the rest of the boot.
///
/// The first perf counter on raw_syscalls:sys_enter switches the
/// tracepoint and perf's context-switch hooks on, and the last one to close
/// switches them off; each switch is a jump-label update, which patches
/// kernel text through int3 breakpoints. Under TCG that went wrong while
/// another vCPU ran: on Debian's 6.1 a bench process that made system calls
/// looped in the int3 handler until the watchdog reported soft lockups, and
/// on 6.12 an idle vCPU died of "Oops: int3" in `__schedule` after the
/// patch was done (docs/performance.md). So the switch is made once: a
/// child process opens a counter on itself and sleeps until the guest
/// powers off (the harness ends the boot without closing it), and the
/// bench's own counters only add to it and take from it.
pub struct SyscallsEnabled;

impl SyscallsEnabled {
    /// Forks the holder; returns once its counter is open.
    pub fn for_the_rest_of_the_boot() -> Result<()> {
        let (mut r, mut w) = std::os::unix::net::UnixStream::pair()?;
        fork(move || {
            let ok = SyscallCounter::start().map(|c| {
                std::mem::forget(c);
            });
            let _ = w.write_all(if ok.is_ok() { b"y" } else { b"n" });
            loop {
                // SAFETY: pause() takes no arguments; the guest powers off
                // under it.
                unsafe { libc::pause() };
            }
        })?;
        let mut b = [0u8; 1];
        r.read_exact(&mut b)?;
        if b[0] == b'y' {
            Ok(())
        } else {
            Err(Error::other("perf_event_open failed in the holder"))
        }
    }
}

impl SyscallCounter {
    /// Starts counting.
    pub fn start() -> Result<SyscallCounter> {
        let attr = PerfEventAttr {
            kind: PERF_TYPE_TRACEPOINT,
            size: std::mem::size_of::<PerfEventAttr>() as u32,
            config: sys_enter_id()?,
            ..Default::default()
        };
        // SAFETY: `attr` is a valid perf_event_attr of the size it states
        // and outlives the call; pid 0 / cpu -1 = this thread, any CPU.
        let r = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                &attr as *const PerfEventAttr,
                0,
                -1,
                -1,
                PERF_FLAG_FD_CLOEXEC,
            )
        };
        let fd = check(r as libc::c_int)?;
        // SAFETY: `fd` is a fresh descriptor this process owns alone.
        Ok(SyscallCounter(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// System calls counted so far (this read itself included).
    pub fn read(&self) -> Result<u64> {
        let mut v = [0u8; 8];
        let n = read(self.0.as_raw_fd(), &mut v)?;
        if n != 8 {
            return Err(Error::other("short read of the perf counter"));
        }
        Ok(u64::from_ne_bytes(v))
    }
}
