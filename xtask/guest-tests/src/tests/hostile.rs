//! Hostile input: every argument-struct ioctl with bad pointers, sizes and
//! tails; ioctls in the wrong state; mapping abuse; a randomized stress of
//! processes that create, attach, stream and get killed.

use super::kchan::{self, Endpoint, Mapping, Rng};
use crate::check;
use crate::harness::{expect_errno, Test, TestResult};
use crate::sys::{self, ioctl_bytes, ioctl_none, ioctl_ptr};
use secure_ipc_ring::abi;
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
    let f = sys::open_device()?;
    for &(name, nr, _) in STRUCT_IOCTLS {
        expect_errno(
            ioctl_ptr(&f, nr, std::ptr::null_mut()),
            libc::EFAULT,
            &format!("{name}(NULL)"),
        )?;
        expect_errno(
            ioctl_ptr(&f, nr, 0xdead_0000_usize as *mut u8),
            libc::EFAULT,
            &format!("{name}(unmapped)"),
        )?;
        expect_errno(
            ioctl_ptr(&f, nr, 0xffff_8000_0000_0000_usize as *mut u8),
            libc::EFAULT,
            &format!("{name}(kernel address)"),
        )?;
    }
    Ok(())
}

fn every_ioctl_rejects_short_sizes_and_garbage_tails() -> TestResult {
    let f = sys::open_device()?;
    for &(name, nr, ver0) in STRUCT_IOCTLS {
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
