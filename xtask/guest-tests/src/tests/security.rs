//! Security of secure_ipc.ko: the key schedule against the pinned vectors,
//! identity proofs, pre-shared keys, attach policies, credentials from the
//! opener (not the caller), and rekeying.

use super::kchan::{self, Endpoint};
use crate::check;
use crate::harness::{expect_errno, Needs, Test, TestResult};
use crate::sys::{self, ioctl_struct, Errno};
use secure_ipc::keys;
use secure_ipc::IdentityKey;
use secure_ipc_ring::abi;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};

/// The tests of this file.
pub const TESTS: &[Test] = &[
    Test::new(
        "key_schedule_reproduces_pinned_vectors",
        key_schedule_reproduces_pinned_vectors,
    )
    .needs(Needs::TestHooksModule),
    Test::new(
        "info_reports_security_features",
        info_reports_security_features,
    ),
    Test::new(
        "identity_attach_with_correct_proof_is_accepted",
        identity_attach_with_correct_proof_is_accepted,
    ),
    Test::new(
        "identity_attach_without_proof_is_ekeyrejected",
        identity_attach_without_proof_is_ekeyrejected,
    ),
    Test::new(
        "identity_attach_with_wrong_key_is_ekeyrejected",
        identity_attach_with_wrong_key_is_ekeyrejected,
    ),
    Test::new(
        "replayed_identity_proof_is_ekeyrejected",
        replayed_identity_proof_is_ekeyrejected,
    ),
    Test::new(
        "challenge_for_missing_name_is_enoent",
        challenge_for_missing_name_is_enoent,
    ),
    Test::new(
        "matching_psk_attach_is_accepted",
        matching_psk_attach_is_accepted,
    ),
    Test::new(
        "mismatched_psk_attach_is_ekeyrejected",
        mismatched_psk_attach_is_ekeyrejected,
    ),
    Test::new(
        "missing_psk_attach_is_ekeyrejected",
        missing_psk_attach_is_ekeyrejected,
    ),
    Test::new("all_zero_psk_is_einval", all_zero_psk_is_einval),
    Test::new(
        "attach_with_wrong_uid_is_eacces",
        attach_with_wrong_uid_is_eacces,
    ),
    Test::new(
        "attach_with_wrong_gid_is_eacces",
        attach_with_wrong_gid_is_eacces,
    ),
    Test::new(
        "attach_with_wrong_pid_namespace_is_eacces",
        attach_with_wrong_pid_namespace_is_eacces,
    ),
    Test::new(
        "attach_matching_every_policy_is_accepted",
        attach_matching_every_policy_is_accepted,
    ),
    Test::new(
        "create_from_child_pid_namespace_is_eacces",
        create_from_child_pid_namespace_is_eacces,
    ),
    Test::new(
        "attach_from_container_namespaces_checks_policy",
        attach_from_container_namespaces_checks_policy,
    ),
    Test::new(
        "fd_passed_to_root_keeps_openers_rights",
        fd_passed_to_root_keeps_openers_rights,
    ),
    Test::new(
        "per_user_channel_limit_is_enospc",
        per_user_channel_limit_is_enospc,
    ),
    Test::new(
        "channel_beyond_max_channel_bytes_is_enospc",
        channel_beyond_max_channel_bytes_is_enospc,
    ),
    Test::new("rekey_ioctl_advances_epoch", rekey_ioctl_advances_epoch),
    Test::new(
        "automatic_rekey_every_n_records_loses_nothing",
        automatic_rekey_every_n_records_loses_nothing,
    )
    .timeout(300),
    Test::new(
        "rekey_erases_the_old_sealing_key",
        rekey_erases_the_old_sealing_key,
    )
    .needs(Needs::TestHooksModule),
    Test::new(
        "kernel_seals_pinned_record_vectors_byte_for_byte",
        kernel_seals_pinned_record_vectors_byte_for_byte,
    )
    .needs(Needs::TestHooksModule),
    Test::new(
        "test_set_seal_ioctl_is_enotty_in_normal_build",
        test_set_seal_ioctl_is_enotty_in_normal_build,
    ),
    Test::new(
        "record_sealed_in_an_erased_epoch_does_not_open",
        record_sealed_in_an_erased_epoch_does_not_open,
    )
    .needs(Needs::TestHooksModule),
];

const VECTORS: &str = include_str!("../../../../client/tests/vectors/key-schedule.txt");

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap_or(0))
        .collect()
}

fn arr32(v: &[u8]) -> [u8; 32] {
    let mut a = [0u8; 32];
    a.copy_from_slice(&v[..32]);
    a
}

/// The blocks of one kind in the vector file, as key/value maps.
fn blocks(kind: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut out = Vec::new();
    let mut cur: Option<std::collections::HashMap<String, String>> = None;
    for line in VECTORS.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.starts_with('[') {
            if let Some(b) = cur.take() {
                out.push(b);
            }
            if line.starts_with(&format!("[{kind}]")) {
                cur = Some(Default::default());
            }
        } else if let (Some(b), Some((k, v))) = (cur.as_mut(), line.split_once('=')) {
            b.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    out.extend(cur);
    out
}

fn key_schedule_reproduces_pinned_vectors() -> TestResult {
    let f = sys::open_device()?;
    let sessions = blocks("session");
    check!(
        sessions.len() >= 2,
        "only {} session vectors",
        sessions.len()
    );
    let mut o2p_keys = Vec::new();
    for (i, v) in sessions.iter().enumerate() {
        let get = |k: &str| v.get(k).cloned().unwrap_or_default();
        let mut a = abi::TestKx {
            size: std::mem::size_of::<abi::TestKx>() as u32,
            ..Default::default()
        };
        a.name = kchan::name_buf(&get("name"));
        a.owner_priv = arr32(&hex(&get("owner_priv")));
        a.peer_priv = arr32(&hex(&get("peer_priv")));
        if get("identity_priv") != "-" {
            a.flags |= abi::SIPC_TEST_KX_IDENTITY;
            a.identity_pub = arr32(&hex(&get("identity_pub")));
            a.nonce = arr32(&hex(&get("nonce")));
        }
        if get("psk") != "-" {
            a.flags |= abi::SIPC_TEST_KX_PSK;
            a.psk = arr32(&hex(&get("psk")));
        }
        ioctl_struct(&f, abi::SIPC_IOC_TEST_KEY_SCHEDULE, &mut a)
            .map_err(|e| format!("session {i}: TEST_KEY_SCHEDULE: {e}"))?;
        for (field, got) in [
            ("owner_pub", &a.owner_pub[..]),
            ("peer_pub", &a.peer_pub[..]),
            ("o2p_key", &a.o2p_key[..]),
            ("o2p_salt", &a.o2p_salt[..]),
            ("p2o_key", &a.p2o_key[..]),
            ("p2o_salt", &a.p2o_salt[..]),
        ] {
            check!(
                hex(&get(field)) == got,
                "session {i} ({}): {field} differs",
                get("name")
            );
        }
        if a.flags & abi::SIPC_TEST_KX_IDENTITY != 0 {
            check!(hex(&get("proof")) == a.proof, "session {i}: proof differs");
        }
        o2p_keys.push((a.o2p_key, a.o2p_key_epoch1));
    }
    let ratchets = blocks("ratchet");
    check!(!ratchets.is_empty(), "no ratchet vector");
    for r in ratchets {
        let key0 = arr32(&hex(r.get("key0").map(String::as_str).unwrap_or("")));
        let key1 = hex(r.get("key1").map(String::as_str).unwrap_or(""));
        let (_, epoch1) = o2p_keys
            .iter()
            .find(|(k, _)| *k == key0)
            .ok_or("the ratchet vector starts from no session's o2p key")?;
        check!(key1 == epoch1, "ratchet step differs");
    }
    Ok(())
}

fn info_reports_security_features() -> TestResult {
    let f = sys::open_device()?;
    let i = crate::harness::info(&f)?;
    let want =
        abi::SIPC_FEAT_X25519 | abi::SIPC_FEAT_IDENTITY | abi::SIPC_FEAT_PSK | abi::SIPC_FEAT_REKEY;
    check!(i.features & want == want, "features {:#x}", i.features);
    Ok(())
}

fn identity_channel(tag: &str, identity: &IdentityKey) -> Result<(String, Endpoint), String> {
    let name = kchan::unique_name(tag);
    let f = sys::open_device()?;
    let mut c = kchan::create_arg(&name, 4, 64);
    c.flags = abi::SIPC_POLICY_IDENTITY;
    c.identity_pub = identity.public_key();
    ioctl_struct(&f, abi::SIPC_IOC_CREATE, &mut c).map_err(|e| format!("CREATE: {e}"))?;
    let owner = kchan::endpoint_from(f, &c)?;
    Ok((name, owner))
}

fn challenge(f: &File, name: &str) -> Result<abi::Challenge, Errno> {
    let mut ch = abi::Challenge {
        size: std::mem::size_of::<abi::Challenge>() as u32,
        name: kchan::name_buf(name),
        ..Default::default()
    };
    ioctl_struct(f, abi::SIPC_IOC_CHALLENGE, &mut ch)?;
    Ok(ch)
}

fn attach_with_proof(f: &File, name: &str, proof: [u8; 32]) -> Result<abi::Attach, Errno> {
    let mut a = kchan::attach_arg(name);
    a.flags = abi::SIPC_ATTACH_PROOF;
    a.proof = proof;
    ioctl_struct(f, abi::SIPC_IOC_ATTACH, &mut a)?;
    Ok(a)
}

fn prove(id: &IdentityKey, name: &str, ch: &abi::Challenge) -> [u8; 32] {
    keys::prove_identity(id, &kchan::name_buf(name), &ch.kernel_pub, &ch.nonce).0
}

fn identity_attach_with_correct_proof_is_accepted() -> TestResult {
    let id = IdentityKey::from([7u8; 32]);
    let (name, mut owner) = identity_channel("id-ok", &id)?;
    let f = sys::open_device()?;
    let ch = challenge(&f, &name).map_err(|e| format!("CHALLENGE: {e}"))?;
    let a =
        attach_with_proof(&f, &name, prove(&id, &name, &ch)).map_err(|e| format!("ATTACH: {e}"))?;
    let mut peer = kchan::endpoint_from_attach(f, &a)?;
    owner.send_one(b"for the verified peer", 0)?;
    check!(
        peer.recv_one()?.payload == b"for the verified peer",
        "message"
    );
    let mut c = abi::PeerCred {
        size: std::mem::size_of::<abi::PeerCred>() as u32,
        ..Default::default()
    };
    ioctl_struct(&owner.file, abi::SIPC_IOC_PEER_CRED, &mut c)
        .map_err(|e| format!("PEER_CRED: {e}"))?;
    check!(
        c.identity_verified == 1,
        "identity_verified {}",
        c.identity_verified
    );
    Ok(())
}

fn identity_attach_without_proof_is_ekeyrejected() -> TestResult {
    let id = IdentityKey::from([8u8; 32]);
    let (name, owner) = identity_channel("id-none", &id)?;
    let f = sys::open_device()?;
    let mut a = kchan::attach_arg(&name);
    expect_errno(
        ioctl_struct(&f, abi::SIPC_IOC_ATTACH, &mut a),
        libc::EKEYREJECTED,
        "ATTACH without proof",
    )?;
    // A proof without a CHALLENGE first is refused too.
    expect_errno(
        attach_with_proof(&f, &name, [1u8; 32]),
        libc::EKEYREJECTED,
        "ATTACH with a proof but no challenge",
    )?;
    check!(
        owner.stats()?.attach_refused == 2,
        "attach_refused {}",
        owner.stats()?.attach_refused
    );
    Ok(())
}

fn identity_attach_with_wrong_key_is_ekeyrejected() -> TestResult {
    let id = IdentityKey::from([9u8; 32]);
    let wrong = IdentityKey::from([10u8; 32]);
    let (name, _owner) = identity_channel("id-wrong", &id)?;
    let f = sys::open_device()?;
    let ch = challenge(&f, &name).map_err(|e| format!("CHALLENGE: {e}"))?;
    expect_errno(
        attach_with_proof(&f, &name, prove(&wrong, &name, &ch)),
        libc::EKEYREJECTED,
        "ATTACH proven with another key",
    )
}

fn replayed_identity_proof_is_ekeyrejected() -> TestResult {
    let id = IdentityKey::from([11u8; 32]);
    let (name, _owner) = identity_channel("id-replay", &id)?;
    let f = sys::open_device()?;
    let ch = challenge(&f, &name).map_err(|e| format!("CHALLENGE: {e}"))?;
    let proof = prove(&id, &name, &ch);
    let peer = attach_with_proof(&f, &name, proof).map_err(|e| format!("first ATTACH: {e}"))?;
    let _ = peer;
    drop(f);
    // The recorded proof, replayed on a fresh challenge and on none.
    let g = sys::open_device()?;
    expect_errno(
        attach_with_proof(&g, &name, proof),
        libc::EKEYREJECTED,
        "replay without challenge",
    )?;
    challenge(&g, &name).map_err(|e| format!("CHALLENGE: {e}"))?;
    expect_errno(
        attach_with_proof(&g, &name, proof),
        libc::EKEYREJECTED,
        "replay on a new challenge",
    )
}

fn challenge_for_missing_name_is_enoent() -> TestResult {
    let f = sys::open_device()?;
    expect_errno(
        challenge(&f, &kchan::unique_name("nobody")),
        libc::ENOENT,
        "CHALLENGE",
    )
}

fn psk_channel(tag: &str, psk: [u8; 32]) -> Result<(String, Endpoint), String> {
    let name = kchan::unique_name(tag);
    let f = sys::open_device()?;
    let mut c = kchan::create_arg(&name, 4, 64);
    c.flags = abi::SIPC_CREATE_PSK;
    c.psk = psk;
    ioctl_struct(&f, abi::SIPC_IOC_CREATE, &mut c).map_err(|e| format!("CREATE: {e}"))?;
    check!(c.psk == [0u8; 32], "CREATE returned the PSK");
    Ok((name, kchan::endpoint_from(f, &c)?))
}

fn attach_psk(name: &str, psk: Option<[u8; 32]>) -> Result<(File, abi::Attach), Errno> {
    let f = sys::open_device().map_err(|_| Errno(libc::ENODEV))?;
    let mut a = kchan::attach_arg(name);
    if let Some(p) = psk {
        a.flags = abi::SIPC_ATTACH_PSK;
        a.psk = p;
    }
    ioctl_struct(&f, abi::SIPC_IOC_ATTACH, &mut a)?;
    Ok((f, a))
}

fn matching_psk_attach_is_accepted() -> TestResult {
    let (name, mut owner) = psk_channel("psk-ok", [0x42; 32])?;
    let (f, a) = attach_psk(&name, Some([0x42; 32])).map_err(|e| format!("ATTACH: {e}"))?;
    check!(a.psk == [0u8; 32], "ATTACH returned the PSK");
    let mut peer = kchan::endpoint_from_attach(f, &a)?;
    owner.send_one(b"psk", 0)?;
    check!(peer.recv_one()?.payload == b"psk", "message");
    Ok(())
}

fn mismatched_psk_attach_is_ekeyrejected() -> TestResult {
    let (name, owner) = psk_channel("psk-bad", [0x42; 32])?;
    expect_errno(
        attach_psk(&name, Some([0x43; 32])).map(|_| 0),
        libc::EKEYREJECTED,
        "ATTACH",
    )?;
    check!(
        owner.stats()?.attach_refused == 1,
        "attach_refused not counted"
    );
    Ok(())
}

fn missing_psk_attach_is_ekeyrejected() -> TestResult {
    let (name, _owner) = psk_channel("psk-none", [0x42; 32])?;
    expect_errno(
        attach_psk(&name, None).map(|_| 0),
        libc::EKEYREJECTED,
        "ATTACH without PSK",
    )?;
    let name2 = kchan::unique_name("psk-extra");
    let _o2 = Endpoint::create(&name2, 4, 64)?;
    expect_errno(
        attach_psk(&name2, Some([1; 32])).map(|_| 0),
        libc::EKEYREJECTED,
        "ATTACH with an unexpected PSK",
    )
}

fn all_zero_psk_is_einval() -> TestResult {
    let f = sys::open_device()?;
    let mut c = kchan::create_arg(&kchan::unique_name("psk0"), 4, 64);
    c.flags = abi::SIPC_CREATE_PSK;
    expect_errno(
        ioctl_struct(&f, abi::SIPC_IOC_CREATE, &mut c),
        libc::EINVAL,
        "CREATE",
    )
}

fn policy_channel(
    tag: &str,
    flags: u32,
    uid: u32,
    gid: u32,
    pidns_fd: i32,
) -> Result<(String, Endpoint), String> {
    let name = kchan::unique_name(tag);
    let f = sys::open_device()?;
    let mut c = kchan::create_arg(&name, 4, 64);
    c.flags = flags;
    c.peer_uid = uid;
    c.peer_gid = gid;
    c.peer_pidns_fd = pidns_fd;
    ioctl_struct(&f, abi::SIPC_IOC_CREATE, &mut c).map_err(|e| format!("CREATE: {e}"))?;
    Ok((name, kchan::endpoint_from(f, &c)?))
}

/// An open nsfs file of `path` (kept open by the caller while it is used).
fn ns_file(path: &str) -> Result<std::fs::File, String> {
    std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))
}

/// A pid namespace this process is not in: after unshare(CLONE_NEWPID) our
/// next child is the first process of a new one; its /proc/PID/ns/pid names
/// it. The child waits until the file is open, then exits.
fn foreign_pidns() -> Result<std::fs::File, String> {
    // SAFETY: plain syscall; it affects only children created afterwards
    // (each guest test is its own process).
    let r = unsafe { libc::unshare(libc::CLONE_NEWPID) };
    check!(r == 0, "unshare(CLONE_NEWPID) failed");
    let mut fds = [0; 2];
    // SAFETY: a pipe into a two-element array.
    check!(unsafe { libc::pipe(fds.as_mut_ptr()) } == 0, "pipe failed");
    // SAFETY: the test process is single-threaded; the child only blocks
    // in read(2) and leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let mut b = 0u8;
        // SAFETY: closes our copy of the write end (so the parent's close
        // ends the read), reads one byte into a local, then leaves.
        unsafe {
            libc::close(fds[1]);
            libc::read(fds[0], (&mut b as *mut u8).cast(), 1);
            libc::_exit(0);
        }
    }
    check!(pid > 0, "fork failed");
    let f = ns_file(&format!("/proc/{pid}/ns/pid"));
    // SAFETY: closing our pipe ends releases the child; we reap it.
    unsafe {
        libc::close(fds[1]);
        libc::close(fds[0]);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
    f
}

fn attach_with_wrong_uid_is_eacces() -> TestResult {
    let (name, owner) = policy_channel("uid", abi::SIPC_POLICY_UID, 4321, 0, 0)?;
    expect_errno(
        attach_psk(&name, None).map(|_| 0),
        libc::EACCES,
        "ATTACH as uid 0",
    )?;
    check!(
        owner.stats()?.attach_refused == 1,
        "attach_refused not counted"
    );
    Ok(())
}

fn attach_with_wrong_gid_is_eacces() -> TestResult {
    let (name, _owner) = policy_channel("gid", abi::SIPC_POLICY_GID, 0, 4321, 0)?;
    expect_errno(
        attach_psk(&name, None).map(|_| 0),
        libc::EACCES,
        "ATTACH as gid 0",
    )
}

fn attach_with_wrong_pid_namespace_is_eacces() -> TestResult {
    let other = foreign_pidns()?;
    let (name, _owner) = policy_channel("pidns", abi::SIPC_POLICY_PIDNS, 0, 0, other.as_raw_fd())?;
    expect_errno(
        attach_psk(&name, None).map(|_| 0),
        libc::EACCES,
        "ATTACH from the host pid namespace",
    )
}

fn attach_matching_every_policy_is_accepted() -> TestResult {
    let flags = abi::SIPC_POLICY_UID | abi::SIPC_POLICY_GID | abi::SIPC_POLICY_PIDNS;
    let own = ns_file("/proc/self/ns/pid")?;
    let (name, _owner) = policy_channel("allok", flags, 0, 0, own.as_raw_fd())?;
    attach_psk(&name, None).map_err(|e| format!("ATTACH: {e}"))?;
    Ok(())
}

/// Runs `child` in a forked process; its return value is the exit code.
fn in_child(child: impl FnOnce() -> i32) -> Result<i32, String> {
    // SAFETY: the test process is single-threaded; the child runs `child`
    // and leaves with _exit, never returning into the test.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err("fork failed".into());
    }
    if pid == 0 {
        let code = child();
        // SAFETY: leave the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut st = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    if libc::WIFEXITED(st) {
        Ok(libc::WEXITSTATUS(st))
    } else {
        Err(format!("child died: status {st:#x}"))
    }
}

fn errno_code(r: Result<i32, Errno>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(Errno(e)) => e,
    }
}

fn create_from_child_pid_namespace_is_eacces() -> TestResult {
    // SAFETY: plain syscall; affects only children created afterwards.
    let r = unsafe { libc::unshare(libc::CLONE_NEWPID) };
    check!(r == 0, "unshare(CLONE_NEWPID) failed");
    let code = in_child(|| {
        let Ok(f) = sys::open_device() else {
            return 100;
        };
        let mut c = kchan::create_arg("nscreate", 4, 64);
        errno_code(ioctl_struct(&f, abi::SIPC_IOC_CREATE, &mut c))
    })?;
    check!(
        code == libc::EACCES,
        "CREATE in a child pid namespace gave {}",
        sys::errno_name(code)
    );
    Ok(())
}

fn attach_from_container_namespaces_checks_policy() -> TestResult {
    // The "container": new user + pid + mount namespaces, as LXC makes them.
    let host = ns_file("/proc/self/ns/pid")?;
    let (name_ok, _o1) = policy_channel("ct-any", 0, 0, 0, 0)?;
    let (name_host, _o2) =
        policy_channel("ct-host", abi::SIPC_POLICY_PIDNS, 0, 0, host.as_raw_fd())?;
    let code = in_child(|| {
        // SAFETY: plain syscall in the single-threaded child.
        if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWPID | libc::CLONE_NEWNS) }
            != 0
        {
            return 101;
        }
        in_child(|| {
            let Ok(f) = sys::open_device() else {
                return 100;
            };
            let mut a = kchan::attach_arg(&name_host);
            let e = errno_code(ioctl_struct(&f, abi::SIPC_IOC_ATTACH, &mut a));
            if e != libc::EACCES {
                return 10;
            }
            let g = match sys::open_device() {
                Ok(g) => g,
                Err(_) => return 100,
            };
            let mut a = kchan::attach_arg(&name_ok);
            if errno_code(ioctl_struct(&g, abi::SIPC_IOC_ATTACH, &mut a)) != 0 {
                return 11;
            }
            0
        })
        .unwrap_or(102)
    })?;
    check!(code != 101, "unshare(user|pid|mnt) failed in the guest");
    check!(
        code != 10,
        "ATTACH from the container to a host-pidns channel was not EACCES"
    );
    check!(
        code != 11,
        "ATTACH from the container to an open channel failed"
    );
    check!(code == 0, "container child exited {code}");
    Ok(())
}

fn fd_passed_to_root_keeps_openers_rights() -> TestResult {
    // A file opened by uid 1000 and handed to root over SCM_RIGHTS: root's
    // ATTACH through it is judged by the opener's credentials.
    let (name, _owner) = policy_channel("passfd", abi::SIPC_POLICY_UID, 0, 0, 0)?;
    let _ = std::fs::set_permissions(
        sys::DEVICE,
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    );
    let mut sv = [0i32; 2];
    // SAFETY: out array of two fds.
    let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM, 0, sv.as_mut_ptr()) };
    check!(r == 0, "socketpair");
    let child_sock = sv[1];
    let code = in_child(move || {
        // SAFETY: drop privileges in the child only.
        if unsafe { libc::setgid(1000) } != 0 || unsafe { libc::setuid(1000) } != 0 {
            return 20;
        }
        let Ok(f) = sys::open_device() else { return 21 };
        if send_fd(child_sock, f.as_raw_fd()).is_err() {
            return 22;
        }
        0
    })?;
    let _ = std::fs::set_permissions(
        sys::DEVICE,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    );
    check!(code == 0, "unprivileged child failed ({code})");
    let fd = recv_fd(sv[0]).map_err(|e| format!("recv_fd: {e}"))?;
    // SAFETY: a descriptor we just received and now own.
    let f = unsafe { File::from_raw_fd(fd) };
    let mut a = kchan::attach_arg(&name);
    expect_errno(
        ioctl_struct(&f, abi::SIPC_IOC_ATTACH, &mut a),
        libc::EACCES,
        "ATTACH as root through uid 1000's file",
    )?;
    let mut c = kchan::create_arg(&kchan::unique_name("passfd2"), 4, 64);
    c.flags = 0;
    // uid 1000 in the initial namespaces may create: this only checks that
    // the file works and that what it creates is owned by uid 1000.
    ioctl_struct(&f, abi::SIPC_IOC_CREATE, &mut c).map_err(|e| format!("CREATE: {e}"))?;
    Ok(())
}

fn send_fd(sock: i32, fd: i32) -> Result<(), ()> {
    let mut buf = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(4) } as usize;
    let mut cbuf = vec![0u8; space];
    // SAFETY: zeroed msghdr, then valid pointers into live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: the control buffer has room for one SCM_RIGHTS header + fd.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(4) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<i32>(), fd);
        if libc::sendmsg(sock, &msg, 0) < 0 {
            return Err(());
        }
    }
    Ok(())
}

fn recv_fd(sock: i32) -> Result<i32, String> {
    let mut buf = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(4) } as usize;
    let mut cbuf = vec![0u8; space];
    // SAFETY: zeroed msghdr, then valid pointers into live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: recvmsg into our buffers; the header is checked before use.
    unsafe {
        if libc::recvmsg(sock, &mut msg, 0) < 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        let c = libc::CMSG_FIRSTHDR(&msg);
        if c.is_null() || (*c).cmsg_type != libc::SCM_RIGHTS {
            return Err("no SCM_RIGHTS".into());
        }
        Ok(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<i32>()))
    }
}

fn rekey(f: &File) -> Result<u32, Errno> {
    let mut r = abi::Rekey {
        size: std::mem::size_of::<abi::Rekey>() as u32,
        flags: abi::SIPC_REKEY_TX,
        ..Default::default()
    };
    ioctl_struct(f, abi::SIPC_IOC_REKEY, &mut r)?;
    Ok(r.new_epoch)
}

fn rekey_ioctl_advances_epoch() -> TestResult {
    let (mut owner, mut peer) = Endpoint::pair("rekey", 4, 64)?;
    owner.send_one(b"epoch 0", 0)?;
    check!(rekey(&owner.file) == Ok(1), "first REKEY");
    owner.send_one(b"epoch 1", 0)?;
    check!(rekey(&owner.file) == Ok(2), "second REKEY");
    check!(rekey(&owner.file) == Ok(3), "third REKEY");
    owner.send_one(b"epoch 3", 0)?;
    for (want, epoch) in [(&b"epoch 0"[..], 0), (b"epoch 1", 1), (b"epoch 3", 3)] {
        let r = peer.recv_one()?;
        check!(
            r.payload == want && r.desc.epoch == epoch,
            "got {:?} epoch {}",
            r.payload,
            r.desc.epoch
        );
    }
    let s = peer.stats()?;
    check!(s.rx_epoch == 3, "receiver epoch {}", s.rx_epoch);
    check!(owner.stats()?.tx_epoch == 3, "sender epoch");
    let mut r = abi::Rekey {
        size: std::mem::size_of::<abi::Rekey>() as u32,
        ..Default::default()
    };
    expect_errno(
        ioctl_struct(&owner.file, abi::SIPC_IOC_REKEY, &mut r),
        libc::EINVAL,
        "REKEY without flags",
    )?;
    let f = sys::open_device()?;
    expect_errno(rekey(&f), libc::ENOTCONN, "REKEY on a plain file")
}

fn automatic_rekey_every_n_records_loses_nothing() -> TestResult {
    let name = kchan::unique_name("autorekey");
    let f = sys::open_device()?;
    let mut c = kchan::create_arg(&name, 64, 128);
    c.rekey_records = 1000;
    ioctl_struct(&f, abi::SIPC_IOC_CREATE, &mut c).map_err(|e| format!("CREATE: {e}"))?;
    let mut owner = kchan::endpoint_from(f, &c)?;
    let mut peer = Endpoint::attach(&name)?;
    let total = 10_500u64;
    let (mut sent, mut got) = (0u64, 0u64);
    while got < total {
        while sent < total && owner.tx.push(&kchan::payload(8, sent, 128), 0) {
            sent += 1;
        }
        owner.send().map_err(|e| format!("SEND: {e}"))?;
        peer.recv().map_err(|e| format!("RECV: {e}"))?;
        while let Some(r) = peer.rx.pop() {
            check!(
                r.desc.seq == got && r.payload == kchan::payload(8, got, 128),
                "message {got}"
            );
            check!(
                u64::from(r.desc.epoch) == got / 1000,
                "message {got} in epoch {}",
                r.desc.epoch
            );
            got += 1;
        }
    }
    let s = owner.stats()?;
    check!(
        s.tx_epoch == 10 && s.rekeys == 10,
        "owner: epoch {} rekeys {}",
        s.tx_epoch,
        s.rekeys
    );
    check!(peer.stats()?.rx_epoch == 10, "peer epoch");
    Ok(())
}

fn rekey_erases_the_old_sealing_key() -> TestResult {
    let (owner, _peer) = Endpoint::pair("erase", 4, 64)?;
    let k0 = test_keys(&owner.file)?;
    rekey(&owner.file).map_err(|e| format!("REKEY: {e}"))?;
    let k1 = test_keys(&owner.file)?;
    check!(
        k1.tx_epoch == 1 && k0.tx_epoch == 0,
        "epochs {} {}",
        k0.tx_epoch,
        k1.tx_epoch
    );
    check!(k1.tx_key != k0.tx_key, "the key did not change");
    check!(k1.tx_salt == k0.tx_salt, "the salt changed");
    check!(
        *keys::ratchet(&k0.tx_key) == k1.tx_key,
        "the new key is not the ratchet of the old one"
    );
    Ok(())
}

fn test_keys(f: &File) -> Result<abi::TestKeys, String> {
    let mut k = abi::TestKeys {
        size: std::mem::size_of::<abi::TestKeys>() as u32,
        ..Default::default()
    };
    ioctl_struct(f, abi::SIPC_IOC_TEST_KEYS, &mut k).map_err(|e| format!("TEST_KEYS: {e}"))?;
    Ok(k)
}

fn per_user_channel_limit_is_enospc() -> TestResult {
    crate::harness::unload_module()?;
    crate::harness::load_module(Needs::Module, &["max_user_channels=2"])?;
    let _a = Endpoint::create(&kchan::unique_name("lim1"), 4, 64)?;
    let b = Endpoint::create(&kchan::unique_name("lim2"), 4, 64)?;
    let f = sys::open_device()?;
    let mut c = kchan::create_arg(&kchan::unique_name("lim3"), 4, 64);
    expect_errno(
        ioctl_struct(&f, abi::SIPC_IOC_CREATE, &mut c),
        libc::ENOSPC,
        "third CREATE",
    )?;
    // Closing one channel gives its slot back.
    drop(b);
    let mut c = kchan::create_arg(&kchan::unique_name("lim3"), 4, 64);
    ioctl_struct(&f, abi::SIPC_IOC_CREATE, &mut c)
        .map_err(|e| format!("CREATE after a close: {e}"))?;
    Ok(())
}

fn channel_beyond_max_channel_bytes_is_enospc() -> TestResult {
    let f = sys::open_device()?;
    let i = crate::harness::info(&f)?;
    // Six rings' worth of slots at the largest geometry exceeds the default.
    let mut c = kchan::create_arg(&kchan::unique_name("huge"), i.max_entries, i.max_slot_size);
    expect_errno(
        ioctl_struct(&f, abi::SIPC_IOC_CREATE, &mut c),
        libc::ENOSPC,
        "CREATE",
    )
}

/// SIPC_IOC_TEST_SET_SEAL: the sealing state of `f`'s sending direction.
fn set_seal(
    f: &File,
    key: [u8; 32],
    salt: [u8; 4],
    epoch: u32,
    channel_id: u64,
    seq: u64,
    clock_ns: u64,
) -> Result<(), String> {
    let mut a = abi::TestSeal {
        size: std::mem::size_of::<abi::TestSeal>() as u32,
        key,
        salt,
        epoch,
        channel_id,
        seq,
        clock_ns,
        ..Default::default()
    };
    ioctl_struct(f, abi::SIPC_IOC_TEST_SET_SEAL, &mut a)
        .map_err(|e| format!("TEST_SET_SEAL: {e}"))?;
    Ok(())
}

/// SIPC_IOC_TEST_PEEK_SEALED: the oldest record `f` sealed that its peer
/// has not opened yet.
fn first_difference(a: &[u8], b: &[u8]) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => format!("byte {i}: {:#04x} where {:#04x} is pinned", a[i], b[i]),
        None => format!("length {} where {} is pinned", a.len(), b.len()),
    }
}

fn kernel_seals_pinned_record_vectors_byte_for_byte() -> TestResult {
    let records = blocks("record");
    check!(records.len() >= 3, "only {} record vectors", records.len());
    for (i, v) in records.iter().enumerate() {
        let get = |k: &str| v.get(k).cloned().unwrap_or_default();
        let num = |k: &str| -> Result<u64, String> {
            get(k)
                .parse::<u64>()
                .map_err(|e| format!("record {i}: {k} = {:?}: {e}", get(k)))
        };
        let plaintext = hex(&get("plaintext"));
        let want = hex(&get("record"));
        let salt: [u8; 4] = hex(&get("salt"))
            .try_into()
            .map_err(|_| format!("record {i}: salt is not 4 bytes"))?;
        let epoch = num("epoch")? as u32;
        let direction = num("direction")?;
        check!(direction <= 1, "record {i}: direction {direction}");
        let (owner, peer) = Endpoint::pair("vec", 4, 128)?;
        let (mut sender, receiver) = if direction == u64::from(abi::SIPC_DIR_OWNER_TO_PEER) {
            (owner, peer)
        } else {
            (peer, owner)
        };
        // The epoch-0 key goes in; the kernel's own ratchet (REKEY) makes
        // the vector's epoch key, and its SEND path seals.
        set_seal(
            &sender.file,
            arr32(&hex(&get("key"))),
            salt,
            0,
            num("channel_id")?,
            num("seq")?,
            num("timestamp_ns")?,
        )?;
        for e in 1..=epoch {
            check!(
                rekey(&sender.file) == Ok(e),
                "record {i}: REKEY to epoch {e}"
            );
        }
        sender.send_one(&plaintext, num("type")? as u16)?;
        let got = kchan::peek_sealed(&sender.file)?;
        check!(
            got == want,
            "record {i} (seq {}): the kernel sealed {} bytes that differ from the pinned record at {}",
            get("seq"),
            got.len(),
            first_difference(&got, &want)
        );
        drop(receiver);
    }
    Ok(())
}

fn test_set_seal_ioctl_is_enotty_in_normal_build() -> TestResult {
    let (owner, _peer) = Endpoint::pair("noseal", 4, 64)?;
    let mut a = abi::TestSeal {
        size: std::mem::size_of::<abi::TestSeal>() as u32,
        key: [0x5a; 32],
        ..Default::default()
    };
    expect_errno(
        ioctl_struct(&owner.file, abi::SIPC_IOC_TEST_SET_SEAL, &mut a),
        libc::ENOTTY,
        "TEST_SET_SEAL on an attached endpoint",
    )
}

fn record_sealed_in_an_erased_epoch_does_not_open() -> TestResult {
    let (mut owner, mut peer) = Endpoint::pair("erased", 4, 64)?;
    let k0 = test_keys(&owner.file)?;
    check!(k0.tx_epoch == 0, "epoch {} after attach", k0.tx_epoch);
    owner.send_one(b"epoch 0 record", 1)?;
    check!(peer.recv_one()?.desc.epoch == 0, "first record's epoch");
    rekey(&owner.file).map_err(|e| format!("REKEY: {e}"))?;
    let k1 = test_keys(&owner.file)?;
    owner.send_one(b"epoch 1 record", 1)?;
    let r = peer.recv_one()?;
    check!(
        r.desc.epoch == 1 && r.payload == b"epoch 1 record",
        "second record: epoch {} {:?}",
        r.desc.epoch,
        r.payload
    );
    // Both ends are at epoch 1: the epoch-0 key is erased. Roll the sealer
    // back to it (test hook) so that the next record is an authentic epoch-0
    // record with the sequence number the receiver expects.
    set_seal(
        &owner.file,
        k0.tx_key,
        k0.tx_salt,
        0,
        owner.channel_id,
        2,
        0,
    )?;
    owner.send_one(b"old-epoch record", 1)?;
    let rec = kchan::peek_sealed(&owner.file)?;
    let (hdr, pt) = secure_ipc::record::open(&k0.tx_key, &k0.tx_salt, &rec)
        .map_err(|e| format!("the rolled-back record does not open with the epoch-0 key: {e:?}"))?;
    check!(
        hdr.epoch == 0 && hdr.seq == 2 && pt == b"old-epoch record",
        "rolled-back record {hdr:?}"
    );
    expect_errno(peer.recv(), libc::EBADMSG, "RECV of the epoch-0 record")?;
    check!(peer.rx.pop().is_none(), "the epoch-0 record was delivered");
    let s = peer.stats()?;
    check!(
        s.badmsg == 1 && s.rx_epoch == 1,
        "receiver: badmsg {} epoch {}",
        s.badmsg,
        s.rx_epoch
    );
    // Control: the same hook with the current key seals a record that opens.
    set_seal(
        &owner.file,
        k1.tx_key,
        k1.tx_salt,
        1,
        owner.channel_id,
        3,
        0,
    )?;
    owner.send_one(b"epoch 1 again", 1)?;
    let r = peer.recv_one()?;
    check!(
        r.desc.seq == 3 && r.desc.epoch == 1 && r.payload == b"epoch 1 again",
        "control record: seq {} epoch {} {:?}",
        r.desc.seq,
        r.desc.epoch,
        r.payload
    );
    Ok(())
}
