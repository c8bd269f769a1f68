//! Who pays for a channel's memory: the memory cgroup of its creator, for
//! both endpoints' rings and the sealed stores (DESIGN.md section 3), even
//! though the peer's half is allocated when the peer attaches.

use super::kchan;
use crate::check;
use crate::harness::{Test, TestResult};
use crate::sys::{self, ioctl_struct};
use secure_ipc_ring::abi;
use std::ffi::CString;
use std::fs;
use std::path::Path;

/// The tests of this file.
pub const TESTS: &[Test] = &[Test::new(
    "attach_charges_the_peers_memory_to_the_creators_cgroup",
    attach_charges_the_peers_memory_to_the_creators_cgroup,
)];

const CGROOT: &str = "/sys/fs/cgroup";

/// Mounts cgroup2 (once per guest) and enables the memory controller for
/// the root's children.
fn cgroup2_with_memory() -> TestResult {
    if !Path::new(CGROOT).join("cgroup.controllers").exists() {
        let _ = fs::create_dir_all(CGROOT);
        let (src, dir, ty) = (
            CString::new("cgroup2").unwrap(),
            CString::new(CGROOT).unwrap(),
            CString::new("cgroup2").unwrap(),
        );
        // SAFETY: three valid C strings and no data argument.
        let r =
            unsafe { libc::mount(src.as_ptr(), dir.as_ptr(), ty.as_ptr(), 0, std::ptr::null()) };
        check!(r == 0, "mount cgroup2: {}", std::io::Error::last_os_error());
    }
    let controllers = fs::read_to_string(Path::new(CGROOT).join("cgroup.controllers"))
        .map_err(|e| format!("cgroup.controllers: {e}"))?;
    check!(
        controllers.split_whitespace().any(|c| c == "memory"),
        "no memory controller in this kernel: {controllers:?}"
    );
    fs::write(Path::new(CGROOT).join("cgroup.subtree_control"), "+memory")
        .map_err(|e| format!("enable +memory: {e}"))
}

/// A fresh child cgroup of the root.
fn make_cgroup(name: &str) -> Result<String, String> {
    let dir = format!("{CGROOT}/{name}");
    let _ = fs::remove_dir(&dir);
    fs::create_dir(&dir).map_err(|e| format!("mkdir {dir}: {e}"))?;
    Ok(dir)
}

fn join_cgroup(dir: &str, pid: i32) -> Result<(), String> {
    fs::write(format!("{dir}/cgroup.procs"), pid.to_string())
        .map_err(|e| format!("join {dir}: {e}"))
}

fn memory_current(dir: &str) -> Result<i64, String> {
    fs::read_to_string(format!("{dir}/memory.current"))
        .map_err(|e| format!("{dir}/memory.current: {e}"))?
        .trim()
        .parse()
        .map_err(|e| format!("{dir}/memory.current: {e}"))
}

fn attach_charges_the_peers_memory_to_the_creators_cgroup() -> TestResult {
    cgroup2_with_memory()?;
    let creator_cg = make_cgroup("sipc-creator")?;
    let attacher_cg = make_cgroup("sipc-attacher")?;
    // SAFETY: getpid has no preconditions.
    join_cgroup(&creator_cg, unsafe { libc::getpid() })?;

    // 128 slots of 4 KiB: each ring about 0.5 MiB, each sealed store too.
    let name = kchan::unique_name("memcg");
    let owner = sys::open_device()?;
    let mut c = kchan::create_arg(&name, 128, 4096);
    ioctl_struct(&owner, abi::SIPC_IOC_CREATE, &mut c).map_err(|e| format!("CREATE: {e}"))?;
    let peer_half = (c.tx_ring_bytes + c.rx_ring_bytes) as i64;

    // The attacher runs in its own cgroup and keeps its endpoint open
    // until the parent has read both counters.
    let pipe = || -> Result<(i32, i32), String> {
        let mut fds = [0i32; 2];
        // SAFETY: pipe() writes two fds into the array.
        check!(unsafe { libc::pipe(fds.as_mut_ptr()) } == 0, "pipe");
        Ok((fds[0], fds[1]))
    };
    let (ready_r, ready_w) = pipe()?;
    let (go_r, go_w) = pipe()?;
    let (c0, a0) = (memory_current(&creator_cg)?, memory_current(&attacher_cg)?);

    // SAFETY: the test process is single-threaded; the child only makes
    // syscalls and leaves with _exit.
    let pid = unsafe { libc::fork() };
    check!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = (|| -> u8 {
            // SAFETY: getpid has no preconditions.
            if join_cgroup(&attacher_cg, unsafe { libc::getpid() }).is_err() {
                return 1;
            }
            let Ok(f) = sys::open_device() else {
                return 2;
            };
            let mut a = kchan::attach_arg(&name);
            if ioctl_struct(&f, abi::SIPC_IOC_ATTACH, &mut a).is_err() {
                return 3;
            }
            let mut b = [0u8; 1];
            // SAFETY: one byte to and from our own pipe fds.
            unsafe {
                libc::write(ready_w, b.as_ptr().cast(), 1);
                libc::read(go_r, b.as_mut_ptr().cast(), 1);
            }
            drop(f);
            0
        })();
        // SAFETY: leave the child without running the parent's destructors.
        unsafe { libc::_exit(i32::from(code)) };
    }
    let mut b = [0u8; 1];
    // SAFETY: one byte from our own pipe; returns 0 if the child died first.
    let got = unsafe { libc::read(ready_r, b.as_mut_ptr().cast(), 1) };
    let (c1, a1) = (memory_current(&creator_cg)?, memory_current(&attacher_cg)?);
    let mut st = 0;
    // SAFETY: one byte into our own pipe, then reap our own child.
    unsafe {
        libc::write(go_w, b.as_ptr().cast(), 1);
        libc::waitpid(pid, &mut st, 0);
        for fd in [ready_r, ready_w, go_r, go_w] {
            libc::close(fd);
        }
    }
    drop(owner);
    // SAFETY: getpid has no preconditions.
    join_cgroup(CGROOT, unsafe { libc::getpid() })?;
    let _ = fs::remove_dir(&attacher_cg);
    let _ = fs::remove_dir(&creator_cg);

    check!(
        got == 1 && libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0,
        "attacher failed: status {st:#x}"
    );
    let (creator_delta, attacher_delta) = (c1 - c0, a1 - a0);
    println!(
        "peer rings {peer_half} B; during ATTACH the creator's cgroup grew {creator_delta} B, the attacher's {attacher_delta} B"
    );
    // The peer's rings alone are ~1 MiB; the stores add as much again.
    check!(
        creator_delta >= peer_half,
        "the creator's cgroup grew only {creator_delta} B for {peer_half} B of peer rings"
    );
    // Had the rings gone to the attacher, it would have grown by at least
    // peer_half. What it does grow by is its own kernel allocations (task,
    // files, slab), which the sanitizer kernels inflate: KASAN's redzones
    // took one run to 270,336 B, past the quarter this bound once was.
    check!(
        attacher_delta < peer_half / 2,
        "the attacher's cgroup was charged {attacher_delta} B"
    );
    Ok(())
}
