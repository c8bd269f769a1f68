//! The runner's only unsafe code: ioctl(2) on /dev/secure_ipc.

use bytemuck::Pod;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;

/// The device node.
pub const DEVICE: &str = "/dev/secure_ipc";

/// An errno value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({})",
            errno_name(self.0),
            std::io::Error::from_raw_os_error(self.0)
        )
    }
}

/// The symbolic name of the errnos the uapi uses.
pub fn errno_name(e: i32) -> &'static str {
    match e {
        libc::EINVAL => "EINVAL",
        libc::E2BIG => "E2BIG",
        libc::EFAULT => "EFAULT",
        libc::ENOTTY => "ENOTTY",
        libc::EEXIST => "EEXIST",
        libc::ENOENT => "ENOENT",
        libc::EBUSY => "EBUSY",
        libc::ENOTCONN => "ENOTCONN",
        libc::EPIPE => "EPIPE",
        libc::EAGAIN => "EAGAIN",
        libc::EMSGSIZE => "EMSGSIZE",
        libc::EBADMSG => "EBADMSG",
        libc::EACCES => "EACCES",
        libc::EPERM => "EPERM",
        libc::EKEYREJECTED => "EKEYREJECTED",
        libc::EPROTO => "EPROTO",
        libc::ENOSPC => "ENOSPC",
        libc::ENOMEM => "ENOMEM",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::EBADF => "EBADF",
        libc::EINTR => "EINTR",
        libc::ETIMEDOUT => "ETIMEDOUT",
        _ => "errno",
    }
}

/// Opens /dev/secure_ipc read-write.
pub fn open_device() -> Result<File, String> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(DEVICE)
        .map_err(|e| format!("open {DEVICE}: {e}"))
}

/// ioctl with a raw pointer argument (may be invalid on purpose: the
/// kernel must reject it with EFAULT, never touch it otherwise).
pub fn ioctl_ptr(f: &File, nr: u32, arg: *mut u8) -> Result<i32, Errno> {
    // SAFETY: the kernel validates `arg` with copy_{from,to}_user; a bad
    // pointer gives EFAULT, it is never dereferenced in this process.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), nr as _, arg) };
    if r < 0 {
        Err(Errno(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ))
    } else {
        Ok(r)
    }
}

/// ioctl over a byte buffer (structs of any size, for the size-rule tests).
pub fn ioctl_bytes(f: &File, nr: u32, buf: &mut [u8]) -> Result<i32, Errno> {
    ioctl_ptr(f, nr, buf.as_mut_ptr())
}

/// ioctl over an argument struct of the uapi.
pub fn ioctl_struct<T: Pod>(f: &File, nr: u32, arg: &mut T) -> Result<i32, Errno> {
    ioctl_bytes(f, nr, bytemuck::bytes_of_mut(arg))
}

/// ioctl without an argument (SEND, RECV).
pub fn ioctl_none(f: &File, nr: u32) -> Result<i32, Errno> {
    ioctl_ptr(f, nr, std::ptr::null_mut())
}
