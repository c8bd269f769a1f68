//! ABI-aware structured fuzzing of the ioctl interface: several processes,
//! each with several threads, issue random sequences of the real commands
//! (every SIPC_IOC_*, read, write, poll, mmap, munmap, mremap, mprotect,
//! dup, fork, close) on a shared pool of fds in every state (fresh, owner,
//! peer, closed peer, closed owner), with argument structs that are mostly
//! valid and randomly mutated (sizes, flags, reserved bytes, names,
//! geometry at and past its limits), and scribble random values into the
//! mapped ring pages (indices, flags, descriptors).
//!
//! Each thread has its own generator seeded from one printed seed (replay
//! with `SIPC_GUEST_ABIFUZZ_SEED=0x...`; interleavings still differ). The
//! wall budget scales with `SIPC_GUEST_RACE_PERCENT`.
//!
//! Oracle: every errno is in the documented set for its call (the uapi
//! header's errno table), the kernel log stays clean, no channel outlives
//! its files (INFO nr_channels back to 0), a fresh channel still works
//! afterwards and the module unloads.

use super::kchan::{self, Endpoint};
use super::races::{kernel_log_is_clean, Rng};
use crate::check;
use crate::harness::{self, Test, TestResult};
use crate::sys::{self, ioctl_ptr, Errno};
use secure_ipc_ring::abi;
use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const TESTS: &[Test] = &[Test::new(
    "abi_fuzz_random_commands_keep_errnos_documented_and_kernel_clean",
    abi_fuzz_random_commands_keep_errnos_documented_and_kernel_clean,
)
.timeout(180)];

/// The environment variable that replays a run.
const SEED_VAR: &str = "SIPC_GUEST_ABIFUZZ_SEED";
/// Wall budget of the fuzzing phase at 100 %.
const BUDGET: Duration = Duration::from_secs(15);
/// Forked fuzzing processes besides the test process itself.
const PROCS: u64 = 2;
/// Threads per process.
const THREADS: u64 = 3;
/// Open fds per process at most.
const POOL_MAX: usize = 10;
/// Mappings per thread at most.
const MAPS_MAX: usize = 6;
/// Channel names per process (few, so CREATE and ATTACH collide).
const NAMES: u64 = 3;

use libc::{
    E2BIG, EACCES, EAGAIN, EBADF, EBADMSG, EBUSY, EEXIST, EFAULT, EINTR, EINVAL, EKEYREJECTED,
    EMSGSIZE, ENOENT, ENOMEM, ENOSPC, ENOTCONN, ENOTTY, EOVERFLOW, EPIPE, EPROTO,
};

/// Errnos of every struct argument (size rules, bad pointers).
const ARG: &[i32] = &[EINVAL, E2BIG, EFAULT, ENOMEM];

struct Fd {
    f: Arc<File>,
    tx_len: u64,
    rx_len: u64,
}

struct Proc {
    tag: String,
    pool: Mutex<Vec<Fd>>,
    findings: Mutex<BTreeSet<String>>,
    ops: AtomicU64,
    /// (operation, errno or 0 for success) -> count: what the run reached.
    seen: Mutex<std::collections::BTreeMap<(&'static str, i32), u64>>,
    pidns: File,
    eventfd: File,
}

struct Map {
    addr: usize,
    len: usize,
    writable: bool,
    /// After MADV_DONTNEED: the ring's pages are inserted once at mmap and
    /// the VMA has no fault handler, so any later access is SIGBUS.
    dead: bool,
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn seed() -> u64 {
    let s = std::env::var(SEED_VAR)
        .ok()
        .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    println!("seed {s:#x} (replay: {SEED_VAR}={s:#x})");
    s
}

fn mix(seed: u64, p: u64, t: u64) -> u64 {
    (seed ^ (p.wrapping_add(1)).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(t.wrapping_mul(0xD1B5_4A32_D192_ED03))
        .max(1)
}

/// Interesting u32 values: limits, just past, huge.
fn pick_u32(r: &mut Rng) -> u32 {
    const V: &[u32] = &[
        0,
        1,
        2,
        3,
        15,
        16,
        17,
        63,
        64,
        65,
        4095,
        4096,
        32767,
        32768,
        32769,
        65535,
        65536,
        65537,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_fffe,
        0xffff_ffff,
    ];
    if r.below(4) == 0 {
        r.next() as u32
    } else {
        V[r.below(V.len() as u64) as usize]
    }
}

fn name_for(r: &mut Rng, tag: &str) -> [u8; abi::SIPC_NAME_MAX] {
    let mut n = [0u8; abi::SIPC_NAME_MAX];
    match r.below(10) {
        0 => n = [b'a'; abi::SIPC_NAME_MAX], // no NUL
        1 => {}                              // empty
        2 => n[..31].copy_from_slice(&[b'z'; 31]),
        3 => {
            n[0] = b'a';
            n[1] = [b'/', b' ', 0xff, b'*'][r.below(4) as usize];
        }
        _ => {
            let s = format!("{tag}{}", r.below(NAMES));
            n[..s.len()].copy_from_slice(s.as_bytes());
        }
    }
    n
}

/// The argument buffer: `body` (a valid struct), then a tail; the size
/// field and some bytes mutated. Returns the buffer.
fn mutate(r: &mut Rng, body: &[u8], fixed: usize) -> Vec<u8> {
    let mut b = vec![0u8; 4200];
    b[..body.len()].copy_from_slice(body);
    let size: u32 = match r.below(12) {
        0 => body.len() as u32 - 1 - r.below(body.len() as u64 - 1) as u32,
        1 => body.len() as u32 + 8 * (1 + r.below(4) as u32),
        2 => {
            let s = body.len() + 1 + r.below(4096 - body.len() as u64) as usize;
            if r.below(2) == 0 {
                b[s - 1] = 1 + r.below(255) as u8;
            }
            s as u32
        }
        3 => abi::SIPC_ARG_SIZE_MAX + r.below(2) as u32,
        4 => pick_u32(r),
        _ => body.len() as u32,
    };
    b[..4].copy_from_slice(&size.to_ne_bytes());
    if r.below(3) == 0 {
        for _ in 0..1 + r.below(3) {
            let at = fixed + r.below((body.len() - fixed) as u64) as usize;
            b[at] = match r.below(3) {
                0 => 0,
                1 => 0xff,
                _ => r.next() as u8,
            };
        }
    }
    b
}

fn bad_ptr(r: &mut Rng) -> Option<*mut u8> {
    match r.below(40) {
        0 => Some(std::ptr::null_mut()),
        1 => Some(8 as *mut u8),
        2 => Some(usize::MAX as *mut u8),
        _ => None,
    }
}

impl Proc {
    fn finding(&self, what: String) {
        let mut g = self.findings.lock().unwrap_or_else(|e| e.into_inner());
        if g.len() < 50 {
            g.insert(what);
        }
    }

    fn check(&self, op: &str, r: Result<i32, Errno>, allowed: &[&[i32]]) -> Option<i32> {
        let key: &'static str = match op {
            "CREATE" => "CREATE",
            "CHALLENGE" => "CHALLENGE",
            "ATTACH" => "ATTACH",
            "SEND" => "SEND",
            "RECV" => "RECV",
            "RECV_WAIT" => "RECV_WAIT",
            "SEND_WAIT" => "SEND_WAIT",
            "SET_DOORBELL" => "SET_DOORBELL",
            "PEER_CRED" => "PEER_CRED",
            "STATS" => "STATS",
            "REKEY" => "REKEY",
            "INFO" => "INFO",
            "write" => "write",
            "read" => "read",
            "mmap" => "mmap",
            "mremap" => "mremap",
            "mprotect" => "mprotect",
            _ => "unknown ioctl",
        };
        let e = r.err().map_or(0, |Errno(e)| e);
        *self
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((key, e))
            .or_default() += 1;
        match r {
            Ok(v) => Some(v),
            Err(Errno(e)) => {
                if e != ENOMEM && e != EINTR && !allowed.iter().any(|s| s.contains(&e)) {
                    self.finding(format!("{op}: undocumented {}", Errno(e)));
                }
                None
            }
        }
    }

    fn pick(&self, r: &mut Rng) -> Option<(Arc<File>, u64, u64)> {
        let g = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_empty() {
            return None;
        }
        let e = &g[r.below(g.len() as u64) as usize];
        Some((e.f.clone(), e.tx_len, e.rx_len))
    }

    fn set_lens(&self, f: &Arc<File>, tx: u64, rx: u64) {
        let mut g = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        for e in g.iter_mut().filter(|e| Arc::ptr_eq(&e.f, f)) {
            e.tx_len = tx;
            e.rx_len = rx;
        }
    }

    fn push(&self, f: File, tx: u64, rx: u64) {
        let mut g = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if g.len() < POOL_MAX {
            g.push(Fd {
                f: Arc::new(f),
                tx_len: tx,
                rx_len: rx,
            });
        }
    }

    fn struct_ioctl(
        &self,
        r: &mut Rng,
        f: &File,
        nr: u32,
        body: &[u8],
        fixed: usize,
    ) -> (Result<i32, Errno>, Vec<u8>) {
        let mut b = mutate(r, body, fixed);
        let res = match bad_ptr(r) {
            Some(p) => ioctl_ptr(f, nr, p),
            None => ioctl_ptr(f, nr, b.as_mut_ptr()),
        };
        (res, b)
    }

    fn step(&self, r: &mut Rng, maps: &mut Vec<Map>) {
        self.ops.fetch_add(1, SeqCst);
        let op = r.below(26);
        if op == 0 {
            let mut o = OpenOptions::new();
            match r.below(8) {
                0 => o.read(true),
                1 => o.write(true),
                _ => o.read(true).write(true),
            };
            let fl = if r.below(4) == 0 { 0 } else { libc::O_NONBLOCK };
            if let Ok(f) = o.custom_flags(fl | libc::O_CLOEXEC).open(sys::DEVICE) {
                self.push(f, 0, 0);
            }
            return;
        }
        if op == 1 {
            let mut g = self.pool.lock().unwrap_or_else(|e| e.into_inner());
            if !g.is_empty() {
                let i = r.below(g.len() as u64) as usize;
                g.swap_remove(i);
            }
            return;
        }
        let Some((f, tx_len, rx_len)) = self.pick(r) else {
            return;
        };
        let fd = f.as_raw_fd();
        match op {
            2 => {
                let mut c = kchan::create_arg("x", 4, 64);
                c.name = name_for(r, &self.tag);
                const E: &[u32] = &[2, 4, 16, 64];
                const S: &[u32] = &[64, 128, 1024, 4096];
                c.entries = E[r.below(4) as usize];
                c.slot_size = S[r.below(4) as usize];
                if r.below(6) == 0 {
                    c.entries = pick_u32(r);
                }
                if r.below(6) == 0 {
                    c.slot_size = pick_u32(r);
                }
                if r.below(4) == 0 {
                    c.flags = r.next() as u32 & abi::SIPC_CREATE_FLAGS_ALL;
                    c.peer_uid = [0, 1234][r.below(2) as usize];
                    c.peer_gid = [0, 1234][r.below(2) as usize];
                    c.peer_pidns_fd = match r.below(4) {
                        0 => fd,
                        1 => -1,
                        2 => 1000,
                        _ => self.pidns.as_raw_fd(),
                    };
                    c.psk = [r.below(2) as u8; 32];
                    c.identity_pub = [7; 32];
                }
                if r.below(8) == 0 {
                    c.flags |= 1 << (5 + r.below(27));
                }
                if r.below(8) == 0 {
                    c.rekey_records = [
                        1,
                        abi::SIPC_MAX_REKEY_RECORDS,
                        abi::SIPC_MAX_REKEY_RECORDS + 1,
                        u64::MAX,
                    ][r.below(4) as usize];
                    c.rekey_bytes = [
                        0,
                        1,
                        abi::SIPC_MAX_REKEY_BYTES,
                        abi::SIPC_MAX_REKEY_BYTES + 1,
                    ][r.below(4) as usize];
                }
                let (res, b) =
                    self.struct_ioctl(r, &f, abi::SIPC_IOC_CREATE, bytemuck::bytes_of(&c), 8);
                let ok = self.check(
                    "CREATE",
                    res,
                    &[ARG, &[EBADF, EEXIST, EBUSY, EACCES, ENOSPC]],
                );
                if ok.is_some() {
                    let out: abi::Create =
                        bytemuck::pod_read_unaligned(&b[..std::mem::size_of::<abi::Create>()]);
                    self.set_lens(&f, out.tx_ring_bytes, out.rx_ring_bytes);
                }
            }
            3 => {
                let mut c = abi::Challenge {
                    size: std::mem::size_of::<abi::Challenge>() as u32,
                    ..Default::default()
                };
                c.name = name_for(r, &self.tag);
                let (res, _) =
                    self.struct_ioctl(r, &f, abi::SIPC_IOC_CHALLENGE, bytemuck::bytes_of(&c), 4);
                self.check("CHALLENGE", res, &[ARG, &[EBADF, ENOENT, EBUSY, EACCES]]);
            }
            4 => {
                let mut a = kchan::attach_arg("x");
                a.name = name_for(r, &self.tag);
                if r.below(3) == 0 {
                    a.flags = r.next() as u32 & abi::SIPC_ATTACH_FLAGS_ALL;
                    a.psk = [r.below(2) as u8; 32];
                    a.proof = [r.next() as u8; 32];
                }
                let (res, b) =
                    self.struct_ioctl(r, &f, abi::SIPC_IOC_ATTACH, bytemuck::bytes_of(&a), 4);
                let ok = self.check(
                    "ATTACH",
                    res,
                    &[ARG, &[EBADF, ENOENT, EBUSY, EACCES, EKEYREJECTED, ENOSPC]],
                );
                if ok.is_some() {
                    let out: abi::Attach =
                        bytemuck::pod_read_unaligned(&b[..std::mem::size_of::<abi::Attach>()]);
                    self.set_lens(&f, out.tx_ring_bytes, out.rx_ring_bytes);
                }
            }
            5 => {
                let res = ioctl_ptr(&f, abi::SIPC_IOC_SEND, r.next() as usize as *mut u8);
                self.check("SEND", res, &[&[EBADF, ENOTCONN, EPIPE, EPROTO, EOVERFLOW]]);
            }
            6 => {
                let res = ioctl_ptr(&f, abi::SIPC_IOC_RECV, std::ptr::null_mut());
                self.check(
                    "RECV",
                    res,
                    &[&[EBADF, ENOTCONN, EPIPE, EPROTO, EBADMSG, EOVERFLOW]],
                );
            }
            7 => {
                let t: u64 = [0, 1, 3, 1 << 32, u64::MAX][r.below(5) as usize];
                let inval: &[i32] = if t > 0xffff_ffff { &[EINVAL] } else { &[] };
                if r.below(2) == 0 {
                    let res = ioctl_ptr(&f, abi::SIPC_IOC_RECV_WAIT, t as usize as *mut u8);
                    self.check(
                        "RECV_WAIT",
                        res,
                        &[inval, &[EBADF, ENOTCONN, EPIPE, EPROTO, EBADMSG, EOVERFLOW]],
                    );
                } else {
                    let res = ioctl_ptr(&f, abi::SIPC_IOC_SEND_WAIT, t as usize as *mut u8);
                    self.check(
                        "SEND_WAIT",
                        res,
                        &[inval, &[EBADF, ENOTCONN, EPIPE, EPROTO, EOVERFLOW, EINTR]],
                    );
                }
            }
            8 => {
                let d = abi::Doorbell {
                    size: std::mem::size_of::<abi::Doorbell>() as u32,
                    flags: 0,
                    eventfd: match r.below(5) {
                        0 => -1,
                        1 => fd,
                        2 => 1000,
                        3 => r.next() as i32,
                        _ => self.eventfd.as_raw_fd(),
                    },
                    reserved: 0,
                };
                let (res, _) =
                    self.struct_ioctl(r, &f, abi::SIPC_IOC_SET_DOORBELL, bytemuck::bytes_of(&d), 4);
                self.check("SET_DOORBELL", res, &[ARG, &[EBADF, ENOTCONN]]);
            }
            9 => {
                let p = abi::PeerCred {
                    size: std::mem::size_of::<abi::PeerCred>() as u32,
                    ..Default::default()
                };
                let (res, _) =
                    self.struct_ioctl(r, &f, abi::SIPC_IOC_PEER_CRED, bytemuck::bytes_of(&p), 4);
                self.check("PEER_CRED", res, &[ARG, &[ENOTCONN]]);
            }
            10 => {
                let s = abi::Stats {
                    size: std::mem::size_of::<abi::Stats>() as u32,
                    ..Default::default()
                };
                let (res, _) =
                    self.struct_ioctl(r, &f, abi::SIPC_IOC_STATS, bytemuck::bytes_of(&s), 4);
                self.check("STATS", res, &[ARG, &[ENOTCONN]]);
            }
            11 => {
                let k = abi::Rekey {
                    size: std::mem::size_of::<abi::Rekey>() as u32,
                    flags: abi::SIPC_REKEY_TX,
                    ..Default::default()
                };
                let (res, _) =
                    self.struct_ioctl(r, &f, abi::SIPC_IOC_REKEY, bytemuck::bytes_of(&k), 4);
                self.check(
                    "REKEY",
                    res,
                    &[ARG, &[EBADF, ENOTCONN, EPIPE, EBUSY, EOVERFLOW]],
                );
            }
            12 => {
                let i = abi::Info {
                    size: std::mem::size_of::<abi::Info>() as u32,
                    ..Default::default()
                };
                let (res, _) =
                    self.struct_ioctl(r, &f, abi::SIPC_IOC_INFO, bytemuck::bytes_of(&i), 4);
                self.check("INFO", res, &[ARG]);
            }
            13 => {
                // Unknown numbers, the test-hook numbers of a normal build,
                // and known numbers with direction/size bits set.
                let nr = match r.below(3) {
                    0 => (abi::SIPC_IOC_MAGIC << 8) | (0x0c + r.below(0x34) as u32),
                    1 => (abi::SIPC_IOC_MAGIC << 8) | (0x40 + r.below(0xc0) as u32),
                    _ => {
                        (abi::SIPC_IOC_MAGIC << 8)
                            | r.below(12) as u32
                            | ((1 + r.below(3) as u32) << 30)
                            | ((r.below(0x3fff) as u32) << 16)
                    }
                };
                let mut b = [0u8; 512];
                let res = ioctl_ptr(&f, nr, b.as_mut_ptr());
                self.check(&format!("ioctl {nr:#x}"), res, &[&[ENOTTY]]);
            }
            14 | 15 => self.mmap(r, &f, tx_len, rx_len, maps),
            16 => self.remap(r, maps),
            17..=19 => scribble(r, maps),
            20 => {
                let len = [0usize, 1, 16, 64, 65, 4096, 4097, 70000][r.below(8) as usize];
                if nonblocking(fd) {
                    let buf = vec![0x5au8; len];
                    let res = kchan::write_msg(&f, &buf).map(|n| n as i32);
                    self.check(
                        "write",
                        res,
                        &[&[
                            EBADF, ENOTCONN, EPIPE, EAGAIN, EMSGSIZE, EPROTO, EOVERFLOW, EFAULT,
                        ]],
                    );
                }
            }
            21 => {
                let len = [0usize, 1, 16, 64, 4096, 70000][r.below(6) as usize];
                if nonblocking(fd) {
                    let mut buf = vec![0u8; len];
                    let res = kchan::read_msg(&f, &mut buf).map(|n| n as i32);
                    self.check(
                        "read",
                        res,
                        &[&[
                            EBADF, ENOTCONN, EPIPE, EAGAIN, EMSGSIZE, EBADMSG, EPROTO, EFAULT,
                        ]],
                    );
                }
            }
            22 => {
                kchan::poll1(&f, libc::POLLIN | libc::POLLOUT, 0);
            }
            23 => {
                if let Ok(d) = f.try_clone() {
                    self.push(d, tx_len, rx_len);
                }
            }
            24 => {
                // O_NONBLOCK is fixed at open (another thread's toggle
                // could make a read/write below block for good).
                kchan::poll1(&f, libc::POLLIN, 0);
            }
            _ => {
                if r.below(8) == 0 {
                    self.fork_child(r);
                }
            }
        }
        drop(f);
    }

    fn mmap(&self, r: &mut Rng, f: &File, tx_len: u64, rx_len: u64, maps: &mut Vec<Map>) {
        if maps.len() >= MAPS_MAX {
            return;
        }
        let (off, good) = match r.below(6) {
            0..=2 => (abi::SIPC_OFF_TX_RING, tx_len),
            3 | 4 => (abi::SIPC_OFF_RX_RING, rx_len),
            _ => (
                [4096u64, 0x2000_0000, 0x1000_1000][r.below(3) as usize],
                tx_len,
            ),
        };
        let good = if good == 0 {
            4096 * (1 + r.below(8))
        } else {
            good
        };
        let len = match r.below(6) {
            0 => 4096,
            1 => good + 4096,
            2 => good.saturating_sub(4096).max(4096),
            _ => good,
        } as usize;
        let mut prot = libc::PROT_READ | libc::PROT_WRITE;
        if r.below(10) == 0 {
            prot |= libc::PROT_EXEC;
        }
        let flags = if r.below(10) == 0 {
            libc::MAP_PRIVATE
        } else {
            libc::MAP_SHARED
        };
        // SAFETY: a fresh mapping chosen by the kernel; tracked in `maps`
        // and unmapped by this thread only.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                flags,
                f.as_raw_fd(),
                off as i64,
            )
        };
        if p == libc::MAP_FAILED {
            let e = errno();
            self.check(
                "mmap",
                Err(Errno(e)),
                &[&[EINVAL, ENOTCONN, EACCES, libc::EPERM]],
            );
        } else {
            self.check("mmap", Ok(0), &[]);
            maps.push(Map {
                addr: p as usize,
                len,
                writable: true,
                dead: false,
            });
        }
    }

    fn remap(&self, r: &mut Rng, maps: &mut Vec<Map>) {
        if maps.is_empty() {
            return;
        }
        let i = r.below(maps.len() as u64) as usize;
        let m = &mut maps[i];
        match r.below(4) {
            0 => {
                let m = maps.swap_remove(i);
                // SAFETY: our own mapping, no reference into it survives.
                unsafe { libc::munmap(m.addr as *mut _, m.len) };
            }
            1 => {
                let new = if r.below(2) == 0 {
                    m.len + 4096
                } else {
                    (m.len / 2).max(4096) & !4095
                };
                // SAFETY: our own mapping; on success the old range is gone
                // and `maps` records the new one.
                let p = unsafe { libc::mremap(m.addr as *mut _, m.len, new, libc::MREMAP_MAYMOVE) };
                if p == libc::MAP_FAILED {
                    let e = errno();
                    self.check("mremap", Err(Errno(e)), &[&[EFAULT, EINVAL]]);
                } else {
                    m.addr = p as usize;
                    m.len = new;
                }
            }
            2 => {
                let prot = [
                    libc::PROT_READ,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::PROT_READ | libc::PROT_EXEC,
                ][r.below(3) as usize];
                // SAFETY: our own mapping; `writable` follows the result.
                let rc = unsafe { libc::mprotect(m.addr as *mut _, m.len, prot) };
                if rc == 0 {
                    m.writable = prot & libc::PROT_WRITE != 0;
                } else {
                    let e = errno();
                    self.check("mprotect", Err(Errno(e)), &[&[EACCES]]);
                }
            }
            _ => {
                // SAFETY: MADV_DONTNEED on our own shared mapping only drops
                // the page table entries.
                unsafe { libc::madvise(m.addr as *mut _, m.len, libc::MADV_DONTNEED) };
                m.dead = true;
            }
        }
    }

    /// A child that uses inherited fds with raw syscalls only (no
    /// allocation: other threads may hold the allocator's lock) and exits.
    fn fork_child(&self, r: &mut Rng) {
        let fds: Vec<i32> = {
            let g = self.pool.lock().unwrap_or_else(|e| e.into_inner());
            g.iter().map(|e| e.f.as_raw_fd()).collect()
        };
        let which = r.below(3);
        // SAFETY: the child only issues raw syscalls and _exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            for &fd in &fds {
                // SAFETY: raw syscalls on inherited fds.
                unsafe {
                    match which {
                        0 => {
                            libc::ioctl(fd, abi::SIPC_IOC_SEND as _, 0);
                        }
                        1 => {
                            libc::ioctl(fd, abi::SIPC_IOC_RECV as _, 0);
                        }
                        _ => {}
                    }
                    libc::close(fd);
                }
            }
            // SAFETY: leave without running this process's destructors.
            unsafe { libc::_exit(0) };
        }
        if pid > 0 {
            let mut st = 0;
            // SAFETY: reaps the child just forked.
            unsafe { libc::waitpid(pid, &mut st, 0) };
            if !(libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0) {
                self.finding(format!("forked child ended with status {st:#x}"));
            }
        }
    }
}

fn nonblocking(fd: i32) -> bool {
    // SAFETY: F_GETFL on an open fd.
    unsafe { libc::fcntl(fd, libc::F_GETFL) & libc::O_NONBLOCK != 0 }
}

/// Writes interesting values into our own ring mappings: indices, flags,
/// descriptors, slots; sometimes a well-formed TX publish.
fn scribble(r: &mut Rng, maps: &mut [Map]) {
    let ms: Vec<&Map> = maps.iter().filter(|m| m.writable && !m.dead).collect();
    if ms.is_empty() {
        return;
    }
    let m = ms[r.below(ms.len() as u64) as usize];
    let base = m.addr as *mut u8;
    let word = |at: usize| -> Option<*mut u32> {
        (at + 4 <= m.len).then(|| base.wrapping_add(at) as *mut u32)
    };
    // SAFETY: every access is inside a live, writable mapping of this
    // thread (checked above); the kernel treats these pages as hostile.
    unsafe {
        let entries = word(12).map(|p| std::ptr::read_volatile(p)).unwrap_or(0);
        let slot = word(16).map(|p| std::ptr::read_volatile(p)).unwrap_or(0);
        match r.below(5) {
            0 | 1 => {
                // A valid TX publish (when this is a TX ring).
                if let (Some(pp), true) = (word(128), entries.is_power_of_two()) {
                    let prod = std::ptr::read_volatile(pp);
                    let d = 4096 + ((prod & (entries - 1)) as usize) * 16;
                    if let Some(lp) = word(d) {
                        let len = if r.below(8) == 0 {
                            pick_u32(r)
                        } else {
                            r.below(slot as u64 + 1) as u32
                        };
                        std::ptr::write_volatile(lp, len);
                        if let Some(tp) = word(d + 4) {
                            std::ptr::write_volatile(
                                tp,
                                if r.below(8) == 0 { r.next() as u32 } else { 7 },
                            );
                        }
                        if let Some(rp) = word(d + 8) {
                            std::ptr::write_volatile(rp, if r.below(8) == 0 { 1 } else { 0 });
                        }
                        std::sync::atomic::fence(SeqCst);
                        std::ptr::write_volatile(pp, prod.wrapping_add(1));
                    }
                }
            }
            2 => {
                let at = [128usize, 256, 384, 512, 640, 644, 0, 12][r.below(8) as usize];
                if let Some(p) = word(at) {
                    let cur = std::ptr::read_volatile(p);
                    let v = match r.below(4) {
                        0 => cur.wrapping_add(entries),
                        1 => cur.wrapping_add(entries + 1),
                        2 => cur.wrapping_sub(1),
                        _ => pick_u32(r),
                    };
                    std::ptr::write_volatile(p, v);
                }
            }
            _ => {
                let at = r.below(m.len as u64 / 4) as usize * 4;
                if let Some(p) = word(at) {
                    std::ptr::write_volatile(p, pick_u32(r));
                }
            }
        }
    }
}

extern "C" fn on_fault(sig: i32, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let mut msg = *b"fault: signal 00 code 00 addr 0x0000000000000000\n";
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    msg[14] = b'0' + (sig / 10) as u8;
    msg[15] = b'0' + (sig % 10) as u8;
    msg[22] = b'0' + (code / 10) as u8;
    msg[23] = b'0' + (code % 10) as u8;
    for i in 0..16 {
        let d = (addr >> (60 - 4 * i)) & 0xf;
        msg[32 + i] = b"0123456789abcdef"[d];
    }
    // SAFETY: async-signal-safe write and _exit.
    unsafe {
        libc::write(1, msg.as_ptr().cast(), msg.len());
        libc::_exit(3);
    }
}

fn fault_handler() {
    // SAFETY: installs a handler that only writes and exits.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_fault as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigaction(libc::SIGSEGV, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
    }
}

fn worker(p: &Proc, seed: u64, until: Instant) {
    let mut r = Rng(seed);
    let mut maps = Vec::new();
    while Instant::now() < until {
        p.step(&mut r, &mut maps);
    }
    for m in maps {
        // SAFETY: our own mapping.
        unsafe { libc::munmap(m.addr as *mut _, m.len) };
    }
}

/// One fuzzing process: THREADS threads over one pool. Returns the
/// findings and the number of operations.
fn fuzz_process(index: u64, seed: u64, until: Instant) -> Result<(BTreeSet<String>, u64), String> {
    let pidns = File::open("/proc/self/ns/pid").map_err(|e| format!("pid ns: {e}"))?;
    let p = Proc {
        tag: format!("af{}-", std::process::id()),
        pool: Mutex::new(Vec::new()),
        findings: Mutex::new(BTreeSet::new()),
        ops: AtomicU64::new(0),
        seen: Mutex::new(Default::default()),
        pidns,
        eventfd: kchan::eventfd()?,
    };
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let p = &p;
            s.spawn(move || worker(p, mix(seed, index, t), until));
        }
    });
    p.pool.lock().unwrap_or_else(|e| e.into_inner()).clear();
    let seen = p.seen.lock().unwrap_or_else(|e| e.into_inner());
    let line: Vec<String> = seen
        .iter()
        .map(|((op, e), n)| match e {
            0 => format!("{op} ok {n}"),
            e => format!("{op} {} {n}", sys::errno_name(*e)),
        })
        .collect();
    println!("process {index}: {}", line.join(", "));
    drop(seen);
    let f = p.findings.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok((f, p.ops.load(SeqCst)))
}

/// The kernel stacks of every thread of `pid` (where a hang sits).
fn stacks(pid: i32) -> String {
    let mut out = String::new();
    if let Ok(d) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in d.flatten() {
            let st = std::fs::read_to_string(t.path().join("stack")).unwrap_or_default();
            out += &format!(
                "[{}] {}",
                t.file_name().to_string_lossy(),
                st.replace('\n', " < ")
            );
        }
    }
    out
}

fn abi_fuzz_random_commands_keep_errnos_documented_and_kernel_clean() -> TestResult {
    let seed = seed();
    fault_handler();
    let until = Instant::now() + harness::race_time(BUDGET);
    let mut kids = Vec::new();
    for i in 1..=PROCS {
        // SAFETY: the test process is single-threaded here; the child runs
        // its own fuzzing process and exits with its verdict.
        let pid = unsafe { libc::fork() };
        check!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = match fuzz_process(i, seed, until) {
                Ok((f, n)) => {
                    println!("process {i}: {n} operations");
                    for x in &f {
                        println!("finding (process {i}, seed {seed:#x}): {x}");
                    }
                    i32::from(!f.is_empty())
                }
                Err(e) => {
                    println!("process {i}: {e}");
                    2
                }
            };
            // SAFETY: leave the child without the runner's destructors.
            unsafe { libc::_exit(code) };
        }
        kids.push(pid);
    }
    let (mut findings, n) = fuzz_process(0, seed, until)?;
    println!("process 0: {n} operations");
    for (i, pid) in kids.into_iter().enumerate() {
        let mut st = 0;
        let give_up = Instant::now() + Duration::from_secs(30);
        // SAFETY: reaps our own child.
        while unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) } == 0 {
            if Instant::now() > give_up {
                findings.insert(format!(
                    "process {} still running 30 s after its budget; kernel stacks: {}",
                    i + 1,
                    stacks(pid)
                ));
                // SAFETY: kills and reaps our own child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut st, 0);
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !(libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0) {
            findings.insert(format!(
                "process {} ended with status {st:#x} (see its lines above)",
                i + 1
            ));
        }
    }
    for x in &findings {
        println!("finding (process 0, seed {seed:#x}): {x}");
    }
    kernel_log_is_clean()?;
    check!(
        findings.is_empty(),
        "seed {seed:#x}: {} findings: {:?}",
        findings.len(),
        findings
    );

    // No channel outlives its files (peer sessions are released at close).
    let dev = sys::open_device()?;
    let t0 = Instant::now();
    loop {
        let i = harness::info(&dev)?;
        if i.nr_channels == 0 {
            break;
        }
        check!(
            t0.elapsed() < Duration::from_secs(5),
            "seed {seed:#x}: nr_channels {} after every file closed",
            i.nr_channels
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(dev);

    // The module still works and unloads.
    let name = kchan::unique_name("afz");
    let owner = Endpoint::create(&name, 4, 64)?;
    let pf = sys::open_device()?;
    let mut a = kchan::attach_arg(&name);
    sys::ioctl_struct(&pf, abi::SIPC_IOC_ATTACH, &mut a)
        .map_err(|e| format!("ATTACH after fuzzing: {e}"))?;
    kchan::write_msg(&owner.file, b"still works")
        .map_err(|e| format!("write after fuzzing: {e}"))?;
    let mut buf = [0u8; 64];
    let n = kchan::read_msg(&pf, &mut buf).map_err(|e| format!("read after fuzzing: {e}"))?;
    check!(
        &buf[..n] == b"still works",
        "message after fuzzing: {:?}",
        &buf[..n]
    );
    drop(pf);
    drop(owner);
    kernel_log_is_clean()?;
    harness::unload_module()?;
    Ok(())
}
