//! Hostile input: every argument-struct ioctl (the test-hook ones too) with
//! bad pointers, sizes and tails; ioctls in the wrong state; mapping abuse;
//! randomized stresses of processes, single- and multi-threaded, that
//! create, attach, stream, reopen, write garbage and get killed.

use super::kchan::{self, Endpoint, Mapping, Rng};
use crate::check;
use crate::harness::{expect_errno, Needs, Test, TestResult};
use crate::sys::{self, ioctl_bytes, ioctl_none, ioctl_ptr};
use secure_ipc_ring::abi;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The tests of this file.
pub const TESTS: &[Test] = &[
    Test::new(
        "every_ioctl_rejects_null_and_unmapped_pointers",
        every_ioctl_rejects_null_and_unmapped_pointers,
    ),
    Test::new(
        "every_ioctl_rejects_short_sizes_and_garbage_tails",
        every_ioctl_rejects_short_sizes_and_garbage_tails,
    ),
    Test::new(
        "test_hook_ioctls_reject_null_and_unmapped_pointers",
        test_hook_ioctls_reject_null_and_unmapped_pointers,
    )
    .needs(Needs::TestHooksModule),
    Test::new(
        "test_hook_ioctls_reject_short_sizes_and_garbage_tails",
        test_hook_ioctls_reject_short_sizes_and_garbage_tails,
    )
    .needs(Needs::TestHooksModule),
    Test::new(
        "test_hook_ioctls_are_enotty_for_every_pointer_and_size",
        test_hook_ioctls_are_enotty_for_every_pointer_and_size,
    ),
    Test::new(
        "mprotect_exec_of_ring_mapping_is_eacces",
        mprotect_exec_of_ring_mapping_is_eacces,
    ),
    Test::new(
        "mremap_growth_of_ring_mapping_is_efault",
        mremap_growth_of_ring_mapping_is_efault,
    ),
    Test::new(
        "misaligned_argument_pointer_works",
        misaligned_argument_pointer_works,
    ),
    Test::new(
        "ioctls_in_the_wrong_state_fail_cleanly",
        ioctls_in_the_wrong_state_fail_cleanly,
    ),
    Test::new(
        "fork_does_not_inherit_ring_mapping",
        fork_does_not_inherit_ring_mapping,
    ),
    Test::new(
        "munmap_during_send_is_harmless",
        munmap_during_send_is_harmless,
    ),
    Test::new(
        "randomized_processes_and_sigkills_leave_no_channel",
        randomized_processes_and_sigkills_leave_no_channel,
    )
    .timeout(300),
    Test::new(
        "threaded_endpoints_with_sigkills_keep_counters_consistent",
        threaded_endpoints_with_sigkills_keep_counters_consistent,
    )
    .timeout(300),
];

/// The argument pointers no ioctl can use: NULL, unmapped, kernel.
const BAD_POINTERS: [(usize, &str); 3] = [
    (0, "NULL"),
    (0xdead_0000, "unmapped"),
    (0xffff_8000_0000_0000, "kernel address"),
];

/// (name, number, first published size) of the test-hook ioctls, which
/// exist only in the `SIPC_TEST_HOOKS=1` build.
const TEST_HOOK_IOCTLS: &[(&str, u32, usize)] = &[
    ("TEST_KEYS", abi::SIPC_IOC_TEST_KEYS, 48),
    ("TEST_PEEK_SEALED", abi::SIPC_IOC_TEST_PEEK_SEALED, 32),
    ("TEST_KEY_SCHEDULE", abi::SIPC_IOC_TEST_KEY_SCHEDULE, 400),
    ("TEST_SET_SEAL", abi::SIPC_IOC_TEST_SET_SEAL, 72),
];

/// (name, number, first published size) of every ioctl with an argument.
const STRUCT_IOCTLS: &[(&str, u32, usize)] = &[
    ("INFO", abi::SIPC_IOC_INFO, 88),
    ("CREATE", abi::SIPC_IOC_CREATE, 200),
    ("CHALLENGE", abi::SIPC_IOC_CHALLENGE, 120),
    ("ATTACH", abi::SIPC_IOC_ATTACH, 168),
    ("SET_DOORBELL", abi::SIPC_IOC_SET_DOORBELL, 16),
    ("PEER_CRED", abi::SIPC_IOC_PEER_CRED, 56),
    ("STATS", abi::SIPC_IOC_STATS, 152),
    ("REKEY", abi::SIPC_IOC_REKEY, 16),
];

fn every_ioctl_rejects_null_and_unmapped_pointers() -> TestResult {
    bad_pointer_sweep(STRUCT_IOCTLS)
}

fn every_ioctl_rejects_short_sizes_and_garbage_tails() -> TestResult {
    size_sweep(STRUCT_IOCTLS)
}

/// NULL, unmapped and kernel argument pointers: EFAULT, each ioctl of `table`.
fn bad_pointer_sweep(table: &[(&str, u32, usize)]) -> TestResult {
    let f = sys::open_device()?;
    for &(name, nr, _) in table {
        for (ptr, what) in BAD_POINTERS {
            expect_errno(
                ioctl_ptr(&f, nr, ptr as *mut u8),
                libc::EFAULT,
                &format!("{name}({what})"),
            )?;
        }
    }
    Ok(())
}

/// Every size below the first published one: EINVAL; every size up to 63
/// bytes beyond it with a non-zero tail byte, and 8192: E2BIG. Each ioctl
/// of `table`, on a plain file (the size is checked before the state).
fn size_sweep(table: &[(&str, u32, usize)]) -> TestResult {
    let f = sys::open_device()?;
    for &(name, nr, ver0) in table {
        for size in 0..ver0 + 64 {
            let mut buf = vec![0u8; ver0 + 64];
            buf[..4].copy_from_slice(&(size as u32).to_ne_bytes());
            if size < ver0 {
                expect_errno(
                    ioctl_bytes(&f, nr, &mut buf),
                    libc::EINVAL,
                    &format!("{name} size {size}"),
                )?;
            } else if size > ver0 {
                // A non-zero byte in the unknown tail.
                buf[size - 1] = 0x5a;
                expect_errno(
                    ioctl_bytes(&f, nr, &mut buf),
                    libc::E2BIG,
                    &format!("{name} size {size}, garbage tail"),
                )?;
            }
        }
        let mut buf = vec![0u8; 8192];
        buf[..4].copy_from_slice(&8192u32.to_ne_bytes());
        expect_errno(
            ioctl_bytes(&f, nr, &mut buf),
            libc::E2BIG,
            &format!("{name} size 8192"),
        )?;
    }
    Ok(())
}

/// The test-hooks module must be loaded (the tests below need its ioctls).
fn require_test_hooks() -> TestResult {
    let f = sys::open_device()?;
    let i = crate::harness::info(&f)?;
    check!(
        i.features & abi::SIPC_FEAT_TEST_HOOKS != 0,
        "the loaded module is not the SIPC_TEST_HOOKS=1 build"
    );
    Ok(())
}

fn test_hook_ioctls_reject_null_and_unmapped_pointers() -> TestResult {
    require_test_hooks()?;
    bad_pointer_sweep(TEST_HOOK_IOCTLS)
}

fn test_hook_ioctls_reject_short_sizes_and_garbage_tails() -> TestResult {
    require_test_hooks()?;
    size_sweep(TEST_HOOK_IOCTLS)
}

fn test_hook_ioctls_are_enotty_for_every_pointer_and_size() -> TestResult {
    let plain = sys::open_device()?;
    let i = crate::harness::info(&plain)?;
    check!(
        i.features & abi::SIPC_FEAT_TEST_HOOKS == 0,
        "the normal build advertises SIPC_FEAT_TEST_HOOKS"
    );
    let (owner, peer) = Endpoint::pair("hooks-enotty", 4, 64)?;
    for (f, file) in [
        ("plain file", &plain),
        ("owner", &*owner.file),
        ("peer", &*peer.file),
    ] {
        for &(name, nr, ver0) in TEST_HOOK_IOCTLS {
            for (ptr, what) in BAD_POINTERS {
                expect_errno(
                    ioctl_ptr(file, nr, ptr as *mut u8),
                    libc::ENOTTY,
                    &format!("{name}({what}) on a {f}"),
                )?;
            }
            for size in (0..ver0 + 64).chain([8192]) {
                let mut buf = vec![0xa5u8; size.max(ver0 + 64)];
                buf[..4].copy_from_slice(&(size as u32).to_ne_bytes());
                let before = buf.clone();
                expect_errno(
                    ioctl_bytes(file, nr, &mut buf),
                    libc::ENOTTY,
                    &format!("{name} size {size} on a {f}"),
                )?;
                check!(
                    buf == before,
                    "{name} size {size} on a {f} wrote into the argument"
                );
            }
        }
    }
    Ok(())
}

fn misaligned_argument_pointer_works() -> TestResult {
    let f = sys::open_device()?;
    let mut buf = [0u8; 88 + 3];
    buf[3..7].copy_from_slice(&88u32.to_ne_bytes());
    ioctl_ptr(&f, abi::SIPC_IOC_INFO, buf[3..].as_mut_ptr())
        .map_err(|e| format!("INFO at an odd address: {e}"))?;
    let v = u32::from_ne_bytes(buf[7..11].try_into().unwrap());
    check!(v == abi::SIPC_ABI_VERSION, "abi_version {v}");
    Ok(())
}

fn ioctls_in_the_wrong_state_fail_cleanly() -> TestResult {
    let f = sys::open_device()?;
    expect_errno(
        ioctl_none(&f, abi::SIPC_IOC_SEND),
        libc::ENOTCONN,
        "SEND on a plain file",
    )?;
    expect_errno(
        ioctl_none(&f, abi::SIPC_IOC_RECV),
        libc::ENOTCONN,
        "RECV on a plain file",
    )?;
    let mut st = abi::Stats {
        size: 152,
        ..Default::default()
    };
    expect_errno(
        sys::ioctl_struct(&f, abi::SIPC_IOC_STATS, &mut st),
        libc::ENOTCONN,
        "STATS on a plain file",
    )?;
    let mut pc = abi::PeerCred {
        size: 56,
        ..Default::default()
    };
    expect_errno(
        sys::ioctl_struct(&f, abi::SIPC_IOC_PEER_CRED, &mut pc),
        libc::ENOTCONN,
        "PEER_CRED on a plain file",
    )?;
    let (owner, peer) = Endpoint::pair("state", 4, 64)?;
    let mut a = kchan::attach_arg(&kchan::unique_name("state"));
    expect_errno(
        sys::ioctl_struct(&peer.file, abi::SIPC_IOC_ATTACH, &mut a),
        libc::EBUSY,
        "ATTACH twice",
    )?;
    let mut c = kchan::create_arg(&kchan::unique_name("state-b"), 4, 64);
    expect_errno(
        sys::ioctl_struct(&owner.file, abi::SIPC_IOC_CREATE, &mut c),
        libc::EBUSY,
        "CREATE on an owner",
    )?;
    let mut ch = abi::Challenge {
        size: 120,
        name: kchan::name_buf(&kchan::unique_name("state")),
        ..Default::default()
    };
    expect_errno(
        sys::ioctl_struct(&peer.file, abi::SIPC_IOC_CHALLENGE, &mut ch),
        libc::EBUSY,
        "CHALLENGE on a peer",
    )?;
    expect_errno(
        kchan::set_doorbell(&owner.file, 12345),
        libc::EBADF,
        "doorbell on a closed fd",
    )?;
    let sock = std::os::unix::net::UnixDatagram::unbound().map_err(|e| e.to_string())?;
    expect_errno(
        kchan::set_doorbell(&owner.file, std::os::fd::AsRawFd::as_raw_fd(&sock)),
        libc::EINVAL,
        "doorbell on a socket",
    )?;
    expect_errno(
        kchan::set_doorbell(&owner.file, -2),
        libc::EBADF,
        "doorbell -2",
    )?;
    Ok(())
}

fn mprotect_exec_of_ring_mapping_is_eacces() -> TestResult {
    let (owner, _peer) = Endpoint::pair("mprotect", 4, 64)?;
    for (ring, m) in [("TX", &owner.tx.m), ("RX", &owner.rx.m)] {
        // SAFETY: mprotect of our own mapping; the kernel must refuse it
        // (the ring's VM_MAYEXEC is cleared at mmap).
        let r = unsafe {
            libc::mprotect(
                m.addr().cast(),
                m.len(),
                libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
            )
        };
        let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        check!(r == -1, "mprotect(PROT_EXEC) succeeded on the {ring} ring");
        check!(
            e == libc::EACCES,
            "mprotect(PROT_EXEC) of the {ring} ring: expected EACCES, got {}",
            sys::Errno(e)
        );
    }
    Ok(())
}

fn mremap_growth_of_ring_mapping_is_efault() -> TestResult {
    let (owner, _peer) = Endpoint::pair("mremap", 4, 64)?;
    let m = &owner.tx.m;
    for (flags, what) in [(libc::MREMAP_MAYMOVE, "MREMAP_MAYMOVE"), (0, "in place")] {
        // SAFETY: asks to grow our own mapping; the kernel must refuse it
        // (VM_DONTEXPAND), so nothing moves.
        let p = unsafe { libc::mremap(m.addr().cast(), m.len(), m.len() + 4096, flags) };
        let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        check!(p == libc::MAP_FAILED, "mremap ({what}) grew a ring mapping");
        check!(
            e == libc::EFAULT,
            "mremap growth ({what}): expected EFAULT, got {}",
            sys::Errno(e)
        );
    }
    // The mapping is untouched.
    check!(
        m.word(0).load(Relaxed) == abi::SIPC_RING_MAGIC,
        "the ring mapping changed after the refused mremap"
    );
    Ok(())
}

fn fork_does_not_inherit_ring_mapping() -> TestResult {
    let (owner, _peer) = Endpoint::pair("fork", 4, 64)?;
    let addr = owner.tx.m.addr() as usize;
    // SAFETY: single-threaded test process; the child only reads a file.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        let mapped = maps.lines().any(|l| {
            l.split('-')
                .next()
                .and_then(|s| usize::from_str_radix(s, 16).ok())
                == Some(addr)
        });
        // SAFETY: leave the child without running destructors.
        unsafe { libc::_exit(if mapped { 1 } else { 0 }) };
    }
    let mut st = 0;
    // SAFETY: wait for our child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    check!(
        libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0,
        "the child inherited the TX ring mapping"
    );
    Ok(())
}

fn munmap_during_send_is_harmless() -> TestResult {
    let (mut owner, mut peer) = Endpoint::pair("unmap", 64, 256)?;
    for i in 0..64u64 {
        owner.tx.push(&kchan::payload(12, i, 256), 0);
    }
    let file = owner.file.clone();
    let sender = std::thread::spawn(move || {
        let mut n = 0;
        for _ in 0..2000 {
            n += ioctl_none(&file, abi::SIPC_IOC_SEND).unwrap_or(0);
        }
        n
    });
    // Unmap and remap the TX ring while SENDs run.
    let len = owner.tx.m.len();
    for _ in 0..200 {
        let m = Mapping::map(&owner.file, abi::SIPC_OFF_TX_RING, len)
            .map_err(|e| format!("remap: {e}"))?;
        drop(m);
    }
    let Endpoint { tx, .. } = owner;
    drop(tx);
    let sealed = sender.join().map_err(|_| "sender panicked")?;
    check!(sealed == 64, "sealed {sealed}");
    for i in 0..64u64 {
        let r = peer.recv_one()?;
        check!(r.payload == kchan::payload(12, i, 256), "message {i}");
    }
    Ok(())
}

fn randomized_processes_and_sigkills_leave_no_channel() -> TestResult {
    let seed = 0x0051_eed5_u64;
    println!("seed {seed:#x}");
    let mut rng = Rng::new(seed);
    let t0 = Instant::now();
    for round in 0..40u32 {
        let name = format!("stress-{round}");
        let entries = 1u32 << (1 + rng.below(6));
        let slot = 64u32 << rng.below(4);
        let mut owner = Endpoint::create(&name, entries, slot)?;
        let mut kids = Vec::new();
        for k in 0..2u64 {
            let child_seed = rng.next();
            let name = name.clone();
            // SAFETY: single-threaded here; the child runs a random
            // workload and leaves with _exit.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                let mut r = Rng::new(child_seed);
                if let Ok(mut peer) = Endpoint::attach(&name) {
                    for _ in 0..(r.below(2000)) {
                        match r.below(6) {
                            0 => {
                                let _ = peer
                                    .tx
                                    .push(&kchan::payload(child_seed, r.next(), slot as usize), 1);
                            }
                            1 => {
                                let _ = peer.send();
                            }
                            2 => {
                                let _ = peer.recv();
                                while peer.rx.pop().is_some() {}
                            }
                            3 => {
                                let off = r.below(peer.tx.m.len() as u64 / 4) as usize * 4;
                                peer.tx
                                    .m
                                    .word(off)
                                    .store(r.next() as u32, std::sync::atomic::Ordering::Relaxed);
                            }
                            4 => {
                                let _ = kchan::write_msg(&peer.file, &[k as u8; 10]);
                            }
                            _ => {
                                let mut b = [0u8; 16];
                                kchan::set_nonblock(&peer.file);
                                let _ = kchan::read_msg(&peer.file, &mut b);
                            }
                        }
                    }
                }
                // SAFETY: leave the child without running destructors.
                unsafe { libc::_exit(0) };
            }
            kids.push(pid);
        }
        // The owner streams meanwhile; then kill the children at random times.
        let deadline = Instant::now() + Duration::from_millis(rng.below(200));
        while Instant::now() < deadline {
            let _ = owner.tx.push(b"owner", 2);
            let _ = owner.send();
            let _ = owner.recv();
            while owner.rx.pop().is_some() {}
        }
        for pid in kids {
            // SAFETY: our own children.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                let mut st = 0;
                libc::waitpid(pid, &mut st, 0);
            }
        }
        let s = owner.stats()?;
        check!(
            s.badmsg == 0,
            "round {round}: {} records failed to open",
            s.badmsg
        );
    }
    let f = sys::open_device()?;
    let i = crate::harness::info(&f)?;
    check!(
        i.nr_channels == 0,
        "{} channels left after all owners closed",
        i.nr_channels
    );
    println!("40 rounds in {:.1}s", t0.elapsed().as_secs_f64());
    Ok(())
}

/// Replaces the seed of the threaded stress (`0x` hex or decimal) to
/// replay a failure; `cargo xtask vm-test` forwards every `SIPC_GUEST_*`
/// variable of the host into the guest.
const STRESS_SEED_VAR: &str = "SIPC_GUEST_STRESS_SEED";
/// The threaded stress's default seed.
const THREADED_SEED: u64 = 0x7e1d_5eed;
/// Rounds of the threaded stress: one channel, two processes each.
const THREADED_ROUNDS: u32 = 30;
/// Threads per endpoint process, sharing its file and mappings.
const THREADS_PER_ENDPOINT: u64 = 3;
/// Random operations per thread: a fixed count, so a seed replays.
const OPS_PER_THREAD: u64 = 800;
/// The two endpoint processes of a round, by index.
const ROLE: [&str; 2] = ["owner", "peer"];

/// The control block a stress round shares with its two endpoint
/// processes: byte offsets of 64-bit words.
mod ctl {
    /// Round phase, written by the parent: [`RUN`], [`FLUSH`], [`DRAIN`].
    pub const PHASE: usize = 0;
    /// Random operations.
    pub const RUN: u64 = 0;
    /// Seal everything pending (and keep receiving).
    pub const FLUSH: u64 = 1;
    /// Nobody sends any more: receive everything, report STATS.
    pub const DRAIN: u64 = 2;
    /// Pid of each endpoint process (parent writes).
    pub const fn pid(p: usize) -> usize {
        8 + p * 8
    }
    /// Non-zero once the parent killed or reaped the process.
    pub const fn dead(p: usize) -> usize {
        24 + p * 8
    }
    /// Word `w` of process `p`'s area (the process writes it).
    pub const fn at(p: usize, w: usize) -> usize {
        64 + (p * 16 + w) * 8
    }
    /// Operations done by all threads.
    pub const OPS: usize = 0;
    /// Non-zero once the process wrote garbage into its rings.
    pub const GARBAGE: usize = 1;
    /// Close-and-reopen operations.
    pub const REOPENS: usize = 2;
    /// Broken expectations (printed by the process).
    pub const VIOLATIONS: usize = 3;
    /// Messages received that are not what some sender wrote.
    pub const MALFORMED: usize = 4;
    /// [`OPS_DONE`], [`FLUSHED`], [`REPORTED`].
    pub const STATE: usize = 5;
    /// Every thread finished its operations.
    pub const OPS_DONE: u64 = 1;
    /// TX sealed completely (or it cannot be).
    pub const FLUSHED: u64 = 2;
    /// STATS after the drain are in the words below.
    pub const REPORTED: u64 = 3;
    /// STATS: sealed_msgs.
    pub const SEALED: usize = 6;
    /// STATS: opened_msgs.
    pub const OPENED: usize = 7;
    /// STATS: badmsg.
    pub const BADMSG: usize = 8;
    /// STATS: eproto.
    pub const EPROTO: usize = 9;
    /// Messages taken from RX or read(2).
    pub const RECEIVED: usize = 10;
    /// Messages accepted into TX or by write(2).
    pub const SENT: usize = 11;
}

/// A stress message: 8 tag bytes, then bytes derived from the tag.
fn stress_msg(tag: u64, slot: usize) -> Vec<u8> {
    let mut v = tag.to_le_bytes().to_vec();
    v.extend(kchan::payload(tag, 0, slot - 8));
    v
}

/// Is `b` a whole [`stress_msg`]?
fn stress_msg_ok(b: &[u8], slot: usize) -> bool {
    b.len() > 8
        && b[8..] == kchan::payload(u64::from_le_bytes(b[..8].try_into().unwrap()), 0, slot - 8)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a process of a round may do besides the ordinary operations.
#[derive(Clone, Copy, Debug)]
struct Plan {
    /// Write random words into its TX ring / RX consumer index.
    garbage: bool,
    /// Close its endpoint and create / attach again.
    reopen: bool,
}

/// One endpoint as the threads of a process share it.
struct SharedEp {
    file: Arc<std::fs::File>,
    tx: Mutex<kchan::Tx>,
    rx: Mutex<kchan::Rx>,
}

/// One endpoint process of a stress round.
struct StressProc<'a> {
    p: usize,
    name: &'a str,
    entries: u32,
    slot: u32,
    plan: Plan,
    ctl: &'a Mapping,
    ep: Mutex<Option<Arc<SharedEp>>>,
}

impl StressProc<'_> {
    fn w(&self, word: usize) -> &AtomicU64 {
        self.ctl.word64(ctl::at(self.p, word))
    }

    fn violation(&self, what: &str) {
        self.w(ctl::VIOLATIONS).fetch_add(1, SeqCst);
        println!("{} (pid {}): {what}", ROLE[self.p], std::process::id());
    }

    /// CREATE (owner) or ATTACH (peer) on a fresh non-blocking file.
    fn open(&self) -> Option<Arc<SharedEp>> {
        let e = if self.p == 0 {
            Endpoint::create(self.name, self.entries, self.slot)
        } else {
            Endpoint::attach(self.name)
        }
        .ok()?;
        kchan::set_nonblock(&e.file);
        let Endpoint { file, tx, rx, .. } = e;
        Some(Arc::new(SharedEp {
            file,
            tx: Mutex::new(tx),
            rx: Mutex::new(rx),
        }))
    }

    /// The endpoint, opened again if a reopen left none.
    fn current(&self) -> Option<Arc<SharedEp>> {
        let mut g = lock(&self.ep);
        if g.is_none() {
            *g = self.open();
        }
        g.clone()
    }

    fn take_rx(&self, ep: &SharedEp) {
        let mut rx = lock(&ep.rx);
        while let Some(m) = rx.pop() {
            self.received(&m.payload);
        }
    }

    fn received(&self, b: &[u8]) {
        self.w(ctl::RECEIVED).fetch_add(1, SeqCst);
        if !stress_msg_ok(b, self.slot as usize) {
            self.w(ctl::MALFORMED).fetch_add(1, SeqCst);
        }
    }

    fn recv(&self, ep: &SharedEp) -> Result<i32, sys::Errno> {
        let r = ioctl_none(&ep.file, abi::SIPC_IOC_RECV);
        self.take_rx(ep);
        r
    }

    /// One random operation (opening the endpoint again counts as one).
    fn op(&self, r: &mut Rng) {
        if let Some(ep) = self.current() {
            self.op_on(&ep, r);
        }
        self.w(ctl::OPS).fetch_add(1, SeqCst);
    }

    fn op_on(&self, ep: &SharedEp, r: &mut Rng) {
        let slot = self.slot as usize;
        match r.below(16) {
            0 | 1 => {
                let m = stress_msg(r.next(), slot);
                if lock(&ep.tx).push(&m, 1) {
                    self.w(ctl::SENT).fetch_add(1, SeqCst);
                }
            }
            2 => {
                let _ = ioctl_none(&ep.file, abi::SIPC_IOC_SEND);
            }
            3 => {
                let ms = r.below(4) as usize;
                let _ = ioctl_ptr(&ep.file, abi::SIPC_IOC_SEND_WAIT, ms as *mut u8);
            }
            4 | 5 => {
                let _ = self.recv(ep);
            }
            6 => {
                let ms = r.below(4) as usize;
                let _ = ioctl_ptr(&ep.file, abi::SIPC_IOC_RECV_WAIT, ms as *mut u8);
                self.take_rx(ep);
            }
            7 => {
                if let Ok(s) = kchan::stats(&ep.file) {
                    if s.badmsg != 0 {
                        self.violation(&format!("STATS: badmsg {}", s.badmsg));
                    }
                    if s.eproto != 0 && self.w(ctl::GARBAGE).load(SeqCst) == 0 {
                        self.violation(&format!("STATS: eproto {} without garbage", s.eproto));
                    }
                } else {
                    self.violation("STATS failed on a connected endpoint");
                }
            }
            8 => {
                let mut pc = abi::PeerCred {
                    size: 56,
                    ..Default::default()
                };
                let other = self.ctl.word64(ctl::pid(1 - self.p)).load(SeqCst);
                if sys::ioctl_struct(&ep.file, abi::SIPC_IOC_PEER_CRED, &mut pc).is_ok()
                    && other != 0
                    && u64::from(pc.pid) != other
                {
                    self.violation(&format!(
                        "PEER_CRED pid {}, the other process is {other}",
                        pc.pid
                    ));
                }
            }
            9 => {
                let mut k = abi::Rekey {
                    size: 16,
                    flags: abi::SIPC_REKEY_TX,
                    ..Default::default()
                };
                let _ = sys::ioctl_struct(&ep.file, abi::SIPC_IOC_REKEY, &mut k);
            }
            10 => {
                let m = stress_msg(r.next(), slot);
                if kchan::write_msg(&ep.file, &m) == Ok(m.len()) {
                    self.w(ctl::SENT).fetch_add(1, SeqCst);
                }
            }
            11 => {
                let mut b = vec![0u8; slot];
                if let Ok(n) = kchan::read_msg(&ep.file, &mut b) {
                    self.received(&b[..n]);
                }
            }
            12 => {
                kchan::poll1(&ep.file, libc::POLLIN | libc::POLLOUT, r.below(3) as i32);
            }
            13 => {
                let (off, len, ring) = if r.below(2) == 0 {
                    (abi::SIPC_OFF_TX_RING, lock(&ep.tx).m.len(), "TX")
                } else {
                    (abi::SIPC_OFF_RX_RING, lock(&ep.rx).m.len(), "RX")
                };
                match Mapping::map(&ep.file, off, len) {
                    Ok(m) => {
                        let magic = m.word(0).load(SeqCst);
                        // Garbage may have overwritten the TX magic (the
                        // pages are the same; the flag is set before the
                        // write, so it is read after the word). The RX ring
                        // only gets its cons index garbled.
                        let garbled = ring == "TX" && self.w(ctl::GARBAGE).load(SeqCst) != 0;
                        if magic != abi::SIPC_RING_MAGIC && !garbled {
                            self.violation(&format!("a fresh {ring} mapping lacks the magic"));
                        }
                    }
                    Err(e) => self.violation(&format!("mmap of a connected endpoint: {e}")),
                }
            }
            14 if self.plan.reopen && r.below(4) == 0 => {
                self.w(ctl::REOPENS).fetch_add(1, SeqCst);
                let mut g = lock(&self.ep);
                // The file closes once no other thread uses it any more.
                *g = None;
                *g = self.open();
            }
            15 if self.plan.garbage && r.below(2) == 0 => {
                self.w(ctl::GARBAGE).store(1, SeqCst);
                if r.below(2) == 0 {
                    let tx = lock(&ep.tx);
                    let words = if r.below(2) == 0 {
                        1024
                    } else {
                        tx.m.len() / 4
                    };
                    let off = r.below(words as u64) as usize * 4;
                    tx.m.word(off).store(r.next() as u32, Relaxed);
                } else {
                    lock(&ep.rx).set_cons_raw(r.next() as u32);
                }
            }
            _ => {
                let _ = self.recv(ep);
            }
        }
    }

    /// FLUSH phase: SEND until TX is empty, receiving meanwhile.
    fn flush(&self) {
        let Some(ep) = lock(&self.ep).clone() else {
            return;
        };
        for _ in 0..2000 {
            let sent = ioctl_none(&ep.file, abi::SIPC_IOC_SEND);
            let _ = self.recv(&ep);
            if sent.is_err() || lock(&ep.tx).room() == self.entries {
                return;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        let garbage = (0..2).any(|p| self.ctl.word64(ctl::at(p, ctl::GARBAGE)).load(SeqCst) != 0);
        if !garbage {
            self.violation("TX did not empty while the other side received");
        }
    }

    /// DRAIN phase: receive until the incoming store is empty, then
    /// report STATS.
    fn drain_and_report(&self) {
        let Some(ep) = lock(&self.ep).clone() else {
            return;
        };
        for _ in 0..100_000 {
            match self.recv(&ep) {
                Ok(0) => {
                    if kchan::stats(&ep.file).map_or(true, |s| s.store_in_fill == 0) {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        self.take_rx(&ep);
        let Ok(s) = kchan::stats(&ep.file) else {
            self.violation("STATS failed after the drain");
            return;
        };
        for (w, v) in [
            (ctl::SEALED, s.sealed_msgs),
            (ctl::OPENED, s.opened_msgs),
            (ctl::BADMSG, s.badmsg),
            (ctl::EPROTO, s.eproto),
        ] {
            self.w(w).store(v, SeqCst);
        }
        self.w(ctl::STATE).store(ctl::REPORTED, SeqCst);
    }

    fn wait_phase(&self, phase: u64, receive: bool) {
        while self.ctl.word64(ctl::PHASE).load(SeqCst) < phase {
            if receive {
                if let Some(ep) = lock(&self.ep).clone() {
                    let _ = self.recv(&ep);
                }
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// The whole life of an endpoint process.
    fn run(&self, seed: u64) {
        if self.p == 0 {
            *lock(&self.ep) = self.open();
            if lock(&self.ep).is_none() {
                self.violation("CREATE failed");
            }
        } else {
            // Attach once the owner created the channel (or died trying).
            for _ in 0..10_000 {
                *lock(&self.ep) = self.open();
                if lock(&self.ep).is_some() || self.ctl.word64(ctl::dead(0)).load(SeqCst) != 0 {
                    break;
                }
                std::thread::sleep(Duration::from_micros(500));
            }
        }
        std::thread::scope(|s| {
            for t in 0..THREADS_PER_ENDPOINT {
                s.spawn(move || {
                    let mut r = Rng::new(seed ^ (t + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    for _ in 0..OPS_PER_THREAD {
                        self.op(&mut r);
                    }
                });
            }
        });
        self.w(ctl::STATE).store(ctl::OPS_DONE, SeqCst);
        self.wait_phase(ctl::FLUSH, false);
        self.flush();
        self.w(ctl::STATE).store(ctl::FLUSHED, SeqCst);
        self.wait_phase(ctl::DRAIN, true);
        self.drain_and_report();
    }
}

/// Parses [`STRESS_SEED_VAR`] if it is set.
fn stress_seed(default: u64) -> Result<u64, String> {
    let Ok(v) = std::env::var(STRESS_SEED_VAR) else {
        return Ok(default);
    };
    let r = match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => v.parse(),
    };
    r.map_err(|e| format!("{STRESS_SEED_VAR}={v}: {e}"))
}

/// Totals over the rounds, for the summary line.
#[derive(Default)]
struct StressTotals {
    kills: u32,
    reopens: u64,
    messages: u64,
    checked_pairs: u32,
}

fn threaded_endpoints_with_sigkills_keep_counters_consistent() -> TestResult {
    let seed = stress_seed(THREADED_SEED)?;
    println!("seed {seed:#x} (replay: {STRESS_SEED_VAR}={seed:#x})");
    let t0 = Instant::now();
    let mut rng = Rng::new(seed);
    let mut tot = StressTotals::default();
    for round in 0..THREADED_ROUNDS {
        threaded_round(round, &mut rng, &mut tot)
            .map_err(|e| format!("seed {seed:#x}, round {round}: {e}"))?;
    }
    let f = sys::open_device()?;
    let i = crate::harness::info(&f)?;
    drop(f);
    check!(
        i.nr_channels == 0,
        "seed {seed:#x}: {} channels left after every process exited",
        i.nr_channels
    );
    check!(
        tot.checked_pairs > 0 && tot.kills > 0 && tot.reopens > 0,
        "seed {seed:#x}: the rounds did not cover kills ({}), reopens ({}) and checked pairs ({})",
        tot.kills,
        tot.reopens,
        tot.checked_pairs
    );
    crate::harness::unload_module()
        .map_err(|e| format!("seed {seed:#x}: after the stress: {e}"))?;
    println!(
        "{THREADED_ROUNDS} rounds, {} ops, {} SIGKILLs, {} reopens, {} messages received, {} pairs checked exactly, {:.1}s",
        u64::from(THREADED_ROUNDS) * 2 * THREADS_PER_ENDPOINT * OPS_PER_THREAD,
        tot.kills,
        tot.reopens,
        tot.messages,
        tot.checked_pairs,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One round: an owner and a peer process, several threads each, random
/// operations, SIGKILLs at chosen operation counts; every third round
/// runs without kills, garbage or reopens and has its counters checked
/// exactly.
fn threaded_round(round: u32, rng: &mut Rng, tot: &mut StressTotals) -> TestResult {
    let name = format!("thr-{}-{round}", std::process::id());
    let entries = 1u32 << (1 + rng.below(5));
    let slot = 64u32 << rng.below(3);
    let clean = round % 3 == 0;
    let ops_total = THREADS_PER_ENDPOINT * OPS_PER_THREAD;
    let mut plans = [Plan {
        garbage: false,
        reopen: false,
    }; 2];
    let mut kill_at = [None; 2];
    let mut seeds = [0u64; 2];
    for p in 0..2 {
        if !clean {
            plans[p] = Plan {
                garbage: rng.below(3) == 0,
                reopen: rng.below(2) == 0,
            };
            if rng.below(3) != 0 {
                kill_at[p] = Some(rng.below(ops_total));
            }
        }
        seeds[p] = rng.next();
    }
    let ctlm = Mapping::anon_shared(4096).map_err(|e| format!("control block: {e}"))?;
    let w = |off: usize| ctlm.word64(off);
    let mut pids = [0i32; 2];
    for p in 0..2 {
        // SAFETY: this process has one thread; the child runs the endpoint
        // process and leaves with _exit, never returning into the runner.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let sp = StressProc {
                p,
                name: &name,
                entries,
                slot,
                plan: plans[p],
                ctl: &ctlm,
                ep: Mutex::new(None),
            };
            sp.run(seeds[p]);
            // SAFETY: leave the child without running the runner's code.
            unsafe { libc::_exit(0) };
        }
        check!(pid > 0, "fork: {}", std::io::Error::last_os_error());
        pids[p] = pid;
        w(ctl::pid(p)).store(pid as u64, SeqCst);
    }
    let mut alive = [true; 2];
    let mut killed = [false; 2];
    let mut status = [0i32; 2];
    let start = Instant::now();
    while alive.iter().any(|&a| a) {
        for p in 0..2 {
            if !alive[p] {
                continue;
            }
            if let Some(k) = kill_at[p] {
                if !killed[p] && w(ctl::at(p, ctl::OPS)).load(SeqCst) >= k {
                    // SAFETY: our own child.
                    unsafe { libc::kill(pids[p], libc::SIGKILL) };
                    killed[p] = true;
                    w(ctl::dead(p)).store(1, SeqCst);
                }
            }
            let mut st = 0;
            // SAFETY: our own child; does not block.
            if unsafe { libc::waitpid(pids[p], &mut st, libc::WNOHANG) } == pids[p] {
                alive[p] = false;
                status[p] = st;
                w(ctl::dead(p)).store(1, SeqCst);
            }
        }
        let all_at = |state: u64| {
            (0..2)
                .all(|p| !alive[p] || killed[p] || w(ctl::at(p, ctl::STATE)).load(SeqCst) >= state)
        };
        let phase = w(ctl::PHASE).load(SeqCst);
        if phase == ctl::RUN && all_at(ctl::OPS_DONE) {
            w(ctl::PHASE).store(ctl::FLUSH, SeqCst);
        } else if phase == ctl::FLUSH && all_at(ctl::FLUSHED) {
            w(ctl::PHASE).store(ctl::DRAIN, SeqCst);
        }
        if start.elapsed() > Duration::from_secs(40) {
            for p in 0..2 {
                if alive[p] {
                    // SAFETY: our own children.
                    unsafe {
                        libc::kill(pids[p], libc::SIGKILL);
                        libc::waitpid(pids[p], std::ptr::null_mut(), 0);
                    }
                }
            }
            return Err(format!(
                "stuck in phase {phase}: states {} {}",
                w(ctl::at(0, ctl::STATE)).load(SeqCst),
                w(ctl::at(1, ctl::STATE)).load(SeqCst)
            ));
        }
        std::thread::sleep(Duration::from_micros(200));
    }

    let v = |p: usize, word: usize| w(ctl::at(p, word)).load(SeqCst);
    let garbage = [v(0, ctl::GARBAGE) != 0, v(1, ctl::GARBAGE) != 0];
    let what = format!(
        "{entries}x{slot}, plans {plans:?}, kill at {kill_at:?}, ops {} {}",
        v(0, ctl::OPS),
        v(1, ctl::OPS)
    );
    for p in 0..2 {
        let st = status[p];
        if !killed[p] {
            check!(
                libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0,
                "{} exited with status {st:#x} ({what})",
                ROLE[p]
            );
        }
        check!(
            v(p, ctl::VIOLATIONS) == 0,
            "{}: {} broken expectations, printed above ({what})",
            ROLE[p],
            v(p, ctl::VIOLATIONS)
        );
        check!(
            garbage[0] || garbage[1] || v(p, ctl::MALFORMED) == 0,
            "{} received {} messages nobody sent, with no garbage written ({what})",
            ROLE[p],
            v(p, ctl::MALFORMED)
        );
        if v(p, ctl::STATE) == ctl::REPORTED {
            check!(
                v(p, ctl::BADMSG) == 0,
                "{}: badmsg {} ({what})",
                ROLE[p],
                v(p, ctl::BADMSG)
            );
            check!(
                garbage[p] || v(p, ctl::EPROTO) == 0,
                "{}: eproto {} without garbage ({what})",
                ROLE[p],
                v(p, ctl::EPROTO)
            );
        }
        tot.reopens += v(p, ctl::REOPENS);
        tot.messages += v(p, ctl::RECEIVED);
        tot.kills += u32::from(killed[p]);
    }
    if clean {
        for (p, role) in ROLE.iter().enumerate() {
            let o = 1 - p;
            check!(
                v(p, ctl::STATE) == ctl::REPORTED,
                "{} did not report after the drain ({what})",
                role
            );
            check!(
                v(p, ctl::OPENED) == v(o, ctl::SEALED),
                "{} opened {} records, {} sealed {} ({what})",
                role,
                v(p, ctl::OPENED),
                ROLE[o],
                v(o, ctl::SEALED)
            );
            check!(
                v(p, ctl::SEALED) == v(p, ctl::SENT),
                "{} sealed {} records of {} messages it sent ({what})",
                role,
                v(p, ctl::SEALED),
                v(p, ctl::SENT)
            );
            check!(
                v(p, ctl::RECEIVED) == v(p, ctl::OPENED),
                "{} took {} messages of {} opened ({what})",
                role,
                v(p, ctl::RECEIVED),
                v(p, ctl::OPENED)
            );
        }
        check!(
            v(0, ctl::SEALED) > 0 && v(1, ctl::SEALED) > 0,
            "a direction carried nothing ({what})"
        );
        tot.checked_pairs += 1;
    }
    let f = sys::open_device()?;
    let i = crate::harness::info(&f)?;
    check!(
        i.nr_channels == 0,
        "{} channels left after both processes exited ({what})",
        i.nr_channels
    );
    Ok(())
}
