//! Host tests of the userspace backend (no kernel module, no VM).
//!
//! Own harness (`harness = false`): the tests run one after another, and the
//! same binary re-executes itself as the peer process of a test when
//! `SIPC_TEST_ROLE` is set, so every two-process test has a real second
//! process (its own pid, uid, pid namespace) rather than a thread.
//! Prints `N passed, N failed` at the end.

use secure_ipc::{
    Backend, Channel, Error, IdentityKey, Options, OwnerPolicy, PeerPolicy, WaitPolicy,
};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MILLION: u64 = 1_000_000;

fn opts() -> Options {
    Options::new().backend(Backend::Userspace)
}

/// A channel name unique to this process and test.
fn uniq(tag: &str) -> String {
    format!("ut{}-{tag}", std::process::id())
}

/// Deterministic payload of message `seq` in direction `dir`: length in
/// 1..=max and content both derived from (seq, dir).
fn fill_payload(seq: u64, dir: u64, max: usize, buf: &mut [u8]) -> usize {
    let mut x =
        seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (dir + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let len = 1 + (next() % max as u64) as usize;
    for chunk in buf[..len].chunks_mut(8) {
        let v = next().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    len
}

fn peer_cmd(role: &str, name: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("current exe"));
    c.env("SIPC_TEST_ROLE", role)
        .env("SIPC_TEST_NAME", name)
        .stdout(Stdio::piped());
    c
}

fn read_line(child: &mut Child) -> String {
    let out = child.stdout.as_mut().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .expect("read child line");
    line.trim().to_string()
}

fn finish(mut child: Child) -> (bool, String) {
    let mut rest = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = std::io::Read::read_to_string(&mut o, &mut rest);
    }
    let st = child.wait().expect("wait child");
    (st.success(), rest)
}

/// Streams `MILLION` messages out and checks `MILLION` coming in, at once.
fn stream_both_ways(
    tx: secure_ipc::Sender,
    mut rx: secure_ipc::Receiver,
    out_dir: u64,
) -> Result<(), String> {
    let in_dir = 1 - out_dir;
    let sender = std::thread::spawn(move || -> Result<(), String> {
        let mut tx = tx;
        let max = tx.max_message_size();
        let mut buf = vec![0u8; max];
        for seq in 0..MILLION {
            let len = fill_payload(seq, out_dir, max, &mut buf);
            tx.send_batched((seq % 65_536) as u16, &buf[..len])
                .map_err(|e| format!("send {seq}: {e}"))?;
            if seq % 32 == 31 {
                tx.flush().map_err(|e| format!("flush {seq}: {e}"))?;
            }
        }
        tx.flush().map_err(|e| format!("final flush: {e}"))?;
        // Dropping the sender hangs up this direction only; the records
        // stay in the ring for the other side to drain.
        drop(tx);
        Ok(())
    });
    let max = rx.max_message_size();
    let mut want = vec![0u8; max];
    for seq in 0..MILLION {
        let m = rx.recv().map_err(|e| format!("recv {seq}: {e}"))?;
        let len = fill_payload(seq, in_dir, max, &mut want);
        if m.seq() != seq {
            return Err(format!("expected sequence {seq}, got {}", m.seq()));
        }
        if m.msg_type() != (seq % 65_536) as u16 {
            return Err(format!("message {seq}: wrong type {}", m.msg_type()));
        }
        if m.payload() != &want[..len] {
            return Err(format!(
                "message {seq}: payload differs ({} vs {len} bytes)",
                m.payload().len()
            ));
        }
    }
    sender.join().map_err(|_| "sender panicked".to_string())??;
    // The other side hung up its direction after its last record.
    match rx.recv_timeout(Duration::from_secs(120)) {
        Err(Error::PeerClosed) => {}
        Ok(Some(_)) => return Err("a message beyond the million arrived".into()),
        Ok(None) => return Err("the peer did not hang up".into()),
        Err(e) => return Err(format!("after the stream: {e}")),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Peer roles (run in the re-executed child)
// ---------------------------------------------------------------------------

fn role_million_peer(name: &str) -> Result<(), String> {
    let (tx, rx) = Channel::attach(name, &opts()).map_err(|e| format!("attach: {e}"))?;
    stream_both_ways(tx, rx, 1)?;
    println!("peer ok");
    Ok(())
}

fn role_attach_report(name: &str) -> Result<(), String> {
    // The owner is the test process: expect its uid, whatever ours is.
    let owner_uid: u32 = std::env::var("SIPC_TEST_OWNER_UID")
        .ok()
        .and_then(|u| u.parse().ok())
        .ok_or("SIPC_TEST_OWNER_UID not set")?;
    let owner = OwnerPolicy {
        uid: Some(owner_uid),
        ..OwnerPolicy::default()
    };
    let r = Channel::attach(name, &opts().owner_policy(owner));
    let word = match &r {
        Ok(_) => "attached".to_string(),
        Err(e) => format!("{e:?}"),
    };
    println!("{word}");
    let _ = std::io::stdout().flush();
    if let Ok((mut tx, _rx)) = r {
        // Prove the session works: one message to the owner.
        tx.send(b"hello from the peer")
            .map_err(|e| format!("send: {e}"))?;
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

fn role_send_then_hang(name: &str) -> Result<(), String> {
    let (mut tx, _rx) = Channel::attach(name, &opts()).map_err(|e| format!("attach: {e}"))?;
    for i in 0..100u32 {
        tx.send_batched(0, &i.to_le_bytes())
            .map_err(|e| format!("send: {e}"))?;
    }
    tx.flush().map_err(|e| format!("flush: {e}"))?;
    println!("sent");
    let _ = std::io::stdout().flush();
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

fn million_messages_both_directions_arrive_intact_and_in_order() -> Result<(), String> {
    let name = uniq("million");
    let (tx, rx) =
        Channel::create(&name, &opts().slots(256).slot_size(256)).map_err(|e| e.to_string())?;
    let child = peer_cmd("million-peer", &name)
        .spawn()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let r = stream_both_ways(tx, rx, 0);
    let (ok, out) = finish(child);
    r?;
    if !ok || !out.contains("peer ok") {
        return Err(format!("peer process failed: {out}"));
    }
    println!(
        "    2 x {MILLION} messages in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn peer_killed_with_sigkill_is_drained_then_reported_closed() -> Result<(), String> {
    let name = uniq("kill");
    let (_tx, mut rx) = Channel::create(&name, &opts()).map_err(|e| e.to_string())?;
    let mut child = peer_cmd("send-then-hang", &name)
        .spawn()
        .map_err(|e| e.to_string())?;
    if read_line(&mut child) != "sent" {
        return Err("peer did not send".into());
    }
    child.kill().map_err(|e| e.to_string())?; // SIGKILL
    child.wait().map_err(|e| e.to_string())?;
    for i in 0..100u32 {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Some(m)) if m.payload() == i.to_le_bytes() => {}
            Ok(Some(m)) => {
                return Err(format!(
                    "message {i} has the wrong payload {:?}",
                    m.payload()
                ))
            }
            Ok(None) => return Err(format!("message {i} missing")),
            Err(e) => return Err(format!("message {i}: {e}")),
        }
    }
    let r = match rx.recv_timeout(Duration::from_secs(10)) {
        Err(Error::PeerClosed) => Ok(()),
        Ok(None) => Err("no PeerClosed within 10 s of the SIGKILL".into()),
        Ok(Some(_)) => Err("a message after the drained ones".into()),
        Err(e) => Err(format!("expected PeerClosed, got {e}")),
    };
    r
}

/// This process's uid, for a peer role that runs as another uid.
fn owner_uid() -> String {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m).to_string())
        .unwrap_or_default()
}

fn attach_as(name: &str, uid: Option<u32>, pid_ns: bool) -> Result<String, String> {
    let mut cmd = if pid_ns {
        let mut c = Command::new("unshare");
        c.args(["--pid", "--fork"])
            .arg(std::env::current_exe().map_err(|e| e.to_string())?);
        c.env("SIPC_TEST_ROLE", "attach-report")
            .env("SIPC_TEST_NAME", name)
            .env("SIPC_TEST_OWNER_UID", owner_uid())
            .stdout(Stdio::piped());
        c
    } else {
        let mut c = peer_cmd("attach-report", name);
        c.env("SIPC_TEST_OWNER_UID", owner_uid());
        c
    };
    if let Some(u) = uid {
        cmd.uid(u).gid(u);
    }
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let line = read_line(&mut child);
    let _ = finish(child);
    Ok(line)
}

fn peer_with_wrong_uid_is_refused() -> Result<(), String> {
    let name = uniq("uid-bad");
    let policy = PeerPolicy {
        uid: Some(4242),
        ..Default::default()
    };
    let (_tx, _rx) = Channel::create(&name, &opts().policy(policy)).map_err(|e| e.to_string())?;
    let got = attach_as(&name, Some(4243), false)?;
    if got == "NotPermitted" {
        Ok(())
    } else {
        Err(format!("uid 4243 against a uid-4242 policy: {got}"))
    }
}

fn peer_with_matching_uid_is_accepted_and_stamped() -> Result<(), String> {
    let name = uniq("uid-ok");
    let policy = PeerPolicy {
        uid: Some(4242),
        gid: Some(4242),
        ..Default::default()
    };
    let (_tx, mut rx) =
        Channel::create(&name, &opts().policy(policy)).map_err(|e| e.to_string())?;
    let got = attach_as(&name, Some(4242), false)?;
    if got != "attached" {
        return Err(format!("uid 4242 against a uid-4242 policy: {got}"));
    }
    let m = rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|e| e.to_string())?
        .ok_or("no message")?;
    let who = m.sender();
    if who.uid != 4242 || who.gid != 4242 || who.pid == 0 {
        return Err(format!("sender stamped as {who:?}"));
    }
    Ok(())
}

fn own_pidns() -> secure_ipc::PidNamespace {
    secure_ipc::PidNamespace::current().expect("open /proc/self/ns/pid")
}

fn peer_in_another_pid_namespace_is_refused() -> Result<(), String> {
    let name = uniq("pidns");
    let policy = PeerPolicy {
        pidns: Some(own_pidns()),
        ..Default::default()
    };
    let (_tx, _rx) = Channel::create(&name, &opts().policy(policy)).map_err(|e| e.to_string())?;
    let got = attach_as(&name, None, true)?;
    if got == "NotPermitted" {
        Ok(())
    } else {
        Err(format!("peer in a new pid namespace: {got}"))
    }
}

fn peer_in_the_policy_pid_namespace_is_accepted() -> Result<(), String> {
    let name = uniq("pidns-ok");
    let policy = PeerPolicy {
        pidns: Some(own_pidns()),
        ..Default::default()
    };
    let (_tx, _rx) = Channel::create(&name, &opts().policy(policy)).map_err(|e| e.to_string())?;
    let got = attach_as(&name, None, false)?;
    if got == "attached" {
        Ok(())
    } else {
        Err(format!("peer in our pid namespace: {got}"))
    }
}

fn second_attacher_is_refused_as_busy() -> Result<(), String> {
    let name = uniq("busy");
    let (mut otx, mut orx) = Channel::create(&name, &opts()).map_err(|e| e.to_string())?;
    let (_ptx, mut prx) =
        Channel::attach(&name, &opts()).map_err(|e| format!("first attach: {e}"))?;
    // Both owner halves take the session over; later attachers are still refused.
    otx.send(b"taken").map_err(|e| e.to_string())?;
    if orx.try_recv().map_err(|e| e.to_string())?.is_some() {
        return Err("the owner received a message nobody sent".into());
    }
    prx.recv_timeout(Duration::from_secs(5))
        .map_err(|e| e.to_string())?
        .ok_or("no message")?;
    match Channel::attach(&name, &opts()) {
        Err(Error::Busy) => Ok(()),
        Ok(_) => Err("a second peer attached".into()),
        Err(e) => Err(format!("expected Busy, got {e}")),
    }
}

fn attach_to_a_missing_channel_is_no_such_channel() -> Result<(), String> {
    match Channel::attach(&uniq("nobody"), &opts()) {
        Err(Error::NoSuchChannel) => Ok(()),
        Ok(_) => Err("attached to nothing".into()),
        Err(e) => Err(format!("expected NoSuchChannel, got {e}")),
    }
}

fn creating_an_existing_channel_is_channel_exists() -> Result<(), String> {
    let name = uniq("twice");
    let _a = Channel::create(&name, &opts()).map_err(|e| e.to_string())?;
    match Channel::create(&name, &opts()) {
        Err(Error::ChannelExists) => Ok(()),
        Ok(_) => Err("created twice".into()),
        Err(e) => Err(format!("expected ChannelExists, got {e}")),
    }
}

fn different_psks_are_refused_as_psk_mismatch() -> Result<(), String> {
    let name = uniq("psk");
    let _o = Channel::create(&name, &opts().psk([1; 32])).map_err(|e| e.to_string())?;
    match Channel::attach(&name, &opts().psk([2; 32])) {
        Err(Error::PskMismatch) => {}
        Ok(_) => return Err("attached with the wrong PSK".into()),
        Err(e) => return Err(format!("expected PskMismatch, got {e}")),
    }
    match Channel::attach(&name, &opts()) {
        Err(Error::PskMismatch) => Ok(()),
        Ok(_) => Err("attached without the PSK".into()),
        Err(e) => Err(format!("without PSK: expected PskMismatch, got {e}")),
    }
}

fn matching_psks_attach_and_carry_messages() -> Result<(), String> {
    let name = uniq("psk-ok");
    let (mut otx, _orx) =
        Channel::create(&name, &opts().psk([9; 32])).map_err(|e| e.to_string())?;
    let (_ptx, mut prx) =
        Channel::attach(&name, &opts().psk([9; 32])).map_err(|e| e.to_string())?;
    otx.send(b"psk").map_err(|e| e.to_string())?;
    let m = prx
        .recv_timeout(Duration::from_secs(5))
        .map_err(|e| e.to_string())?
        .ok_or("no message")?;
    if m.payload() == b"psk" {
        Ok(())
    } else {
        Err("payload differs".into())
    }
}

fn identity_proof_is_required_and_checked() -> Result<(), String> {
    let name = uniq("ident");
    let id = IdentityKey::from([0x42; 32]);
    let id_pub = id.public_key();
    let policy = PeerPolicy {
        identity_pub: Some(id_pub),
        ..Default::default()
    };
    let (_tx, orx) = Channel::create(&name, &opts().policy(policy)).map_err(|e| e.to_string())?;
    match Channel::attach(&name, &opts()) {
        Err(Error::IdentityRejected) => {}
        Ok(_) => return Err("attached without an identity".into()),
        Err(e) => return Err(format!("no identity: expected IdentityRejected, got {e}")),
    }
    match Channel::attach(&name, &opts().identity(IdentityKey::from([0x43; 32]))) {
        Err(Error::IdentityRejected) => {}
        Ok(_) => return Err("attached with the wrong identity".into()),
        Err(e) => {
            return Err(format!(
                "wrong identity: expected IdentityRejected, got {e}"
            ))
        }
    }
    let _peer =
        Channel::attach(&name, &opts().identity(id)).map_err(|e| format!("right identity: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match orx.peer_credentials() {
            Ok(pc) if pc.identity_verified => return Ok(()),
            Ok(_) => return Err("identity not marked verified".into()),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("peer credentials: {e}")),
        }
    }
}

/// Start of the shared memfd mapping of channel `name` in this process.
fn find_shared_mapping(name: &str) -> Option<usize> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let tag = format!("memfd:secure_ipc:{name} ");
    maps.lines()
        .find(|l| l.contains(&tag))
        .and_then(|l| usize::from_str_radix(l.split('-').next()?, 16).ok())
}

fn tampered_record_fails_authentication_and_is_never_delivered() -> Result<(), String> {
    let name = uniq("tamper");
    let (slots, slot_size) = (8u32, 256u32);
    let (mut otx, _orx) = Channel::create(&name, &opts().slots(slots).slot_size(slot_size))
        .map_err(|e| e.to_string())?;
    let (_ptx, mut prx) = Channel::attach(&name, &opts()).map_err(|e| e.to_string())?;
    otx.send(b"secret number one").map_err(|e| e.to_string())?;
    otx.send(b"secret number two").map_err(|e| e.to_string())?;
    // Any code in either process can write the shared pages: flip one
    // ciphertext bit of record 0 of the owner->peer ring (ring 0, slot 0).
    let base = find_shared_mapping(&name).ok_or("shared mapping not found in /proc/self/maps")?;
    let layout = secure_ipc_ring::RingLayout::new::<secure_ipc_ring::abi::TxDesc>(slots, slot_size)
        .map_err(|e| e.to_string())?;
    let byte = (base + layout.slots_offset as usize + 40 + 3) as *mut u8;
    // SAFETY: `byte` lies inside the live shared mapping found above (slot 0
    // of ring 0, within the record just published); the receiver is idle.
    unsafe { byte.write_volatile(byte.read_volatile() ^ 0x20) };
    match prx.try_recv() {
        Err(Error::AuthenticationFailed) => {}
        Ok(Some(m)) => return Err(format!("tampered record delivered: {:?}", m.payload())),
        Ok(None) => return Err("nothing received".into()),
        Err(e) => return Err(format!("expected AuthenticationFailed, got {e}")),
    }
    let m = prx
        .try_recv()
        .map_err(|e| e.to_string())?
        .ok_or("second record missing")?;
    if m.payload() != b"secret number two" || m.seq() != 1 {
        return Err(format!(
            "after the bad record: seq {} {:?}",
            m.seq(),
            m.payload()
        ));
    }
    drop(m);
    let st = prx.stats().map_err(|e| e.to_string())?;
    if st.auth_failures != 1 || st.opened_msgs != 1 {
        return Err(format!("stats {st:?}"));
    }
    Ok(())
}

fn replayed_record_fails_authentication() -> Result<(), String> {
    let name = uniq("replay");
    let (slots, slot_size) = (8u32, 256u32);
    let (mut otx, _orx) = Channel::create(&name, &opts().slots(slots).slot_size(slot_size))
        .map_err(|e| e.to_string())?;
    let (_ptx, mut prx) = Channel::attach(&name, &opts()).map_err(|e| e.to_string())?;
    otx.send(b"pay 10 coins").map_err(|e| e.to_string())?;
    otx.send(b"pay 20 coins").map_err(|e| e.to_string())?;
    let base = find_shared_mapping(&name).ok_or("shared mapping not found")?;
    let layout = secure_ipc_ring::RingLayout::new::<secure_ipc_ring::abi::TxDesc>(slots, slot_size)
        .map_err(|e| e.to_string())?;
    let s0 = (base + layout.slots_offset as usize) as *mut u8;
    // SAFETY: slots 0 and 1 of ring 0 are inside the live mapping; the
    // receiver is idle. Copy record 0 over record 1 (same length).
    unsafe { std::ptr::copy_nonoverlapping(s0, s0.add(slot_size as usize), 56 + 12) };
    let first = prx
        .try_recv()
        .map_err(|e| e.to_string())?
        .map(|m| m.payload().to_vec());
    if first.as_deref() != Some(&b"pay 10 coins"[..]) {
        return Err(format!("first record: {first:?}"));
    }
    let r = match prx.try_recv() {
        Err(Error::AuthenticationFailed) => Ok(()),
        Ok(Some(m)) => Err(format!("replayed record delivered: {:?}", m.payload())),
        Ok(None) => Err("nothing received".into()),
        Err(e) => Err(format!("expected AuthenticationFailed, got {e}")),
    };
    r
}

fn full_ring_reports_full_and_blocking_send_resumes() -> Result<(), String> {
    let name = uniq("full");
    let (mut otx, _orx) =
        Channel::create(&name, &opts().slots(4).slot_size(128)).map_err(|e| e.to_string())?;
    let (_ptx, mut prx) =
        Channel::attach(&name, &opts().wait(WaitPolicy::Block)).map_err(|e| e.to_string())?;
    for i in 0..4u8 {
        otx.try_send(&[i])
            .map_err(|e| format!("try_send {i}: {e}"))?;
    }
    match otx.try_send(&[4]).map_err(|e| e.into_error()) {
        Err(Error::Full) => {}
        other => return Err(format!("fifth try_send on 4 slots: {other:?}")),
    }
    let reader = std::thread::spawn(move || -> Result<Vec<u8>, String> {
        std::thread::sleep(Duration::from_millis(100));
        let mut got = Vec::new();
        for _ in 0..8 {
            let m = prx.recv().map_err(|e| e.to_string())?;
            got.push(m.payload()[0]);
        }
        Ok(got)
    });
    for i in 4..8u8 {
        otx.send([i])
            .map_err(|e| format!("blocking send {i}: {e}"))?;
    }
    let got = reader.join().map_err(|_| "reader panicked")??;
    if got == (0..8).collect::<Vec<u8>>() {
        Ok(())
    } else {
        Err(format!("received {got:?}"))
    }
}

fn message_larger_than_a_slot_is_refused() -> Result<(), String> {
    let name = uniq("big");
    let (mut otx, _orx) =
        Channel::create(&name, &opts().slot_size(128)).map_err(|e| e.to_string())?;
    let max = otx.max_message_size();
    if max != 128 - 56 {
        return Err(format!("max_message_size {max}"));
    }
    match otx.send(vec![0u8; max + 1]) {
        Err(Error::MessageTooLarge { len, max: m }) if len == max + 1 && m == max => Ok(()),
        other => Err(format!("oversized send: {other:?}")),
    }
}

fn keys_ratchet_every_n_records_without_loss() -> Result<(), String> {
    let name = uniq("rekey");
    let (mut otx, _orx) =
        Channel::create(&name, &opts().rekey_records(10)).map_err(|e| e.to_string())?;
    let (_ptx, mut prx) = Channel::attach(&name, &opts()).map_err(|e| e.to_string())?;
    let reader = std::thread::spawn(move || -> Result<u32, String> {
        let mut last_epoch = 0;
        for i in 0..100u32 {
            let m = prx.recv().map_err(|e| e.to_string())?;
            if m.payload() != i.to_le_bytes() || m.epoch() != i / 10 {
                return Err(format!(
                    "message {i}: epoch {} payload {:?}",
                    m.epoch(),
                    m.payload()
                ));
            }
            last_epoch = m.epoch();
        }
        Ok(last_epoch)
    });
    for i in 0..100u32 {
        otx.send(i.to_le_bytes()).map_err(|e| e.to_string())?;
    }
    let e = reader.join().map_err(|_| "reader panicked")??;
    let st = otx.stats().map_err(|e| e.to_string())?;
    if e == 9 && st.tx_epoch == 9 {
        Ok(())
    } else {
        Err(format!("last epoch {e}, stats {st:?}"))
    }
}

fn socket_dir_rendezvous_works_and_reuses_a_stale_socket_file() -> Result<(), String> {
    let dir = std::env::temp_dir().join(uniq("dir"));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let name = "fs-chan";
    // A stale socket file, as an owner killed with SIGKILL leaves behind.
    let stale = std::os::unix::net::UnixListener::bind(dir.join("fs-chan.sock"))
        .map_err(|e| e.to_string())?;
    drop(stale);
    let o = opts().socket_dir(&dir);
    let (mut otx, _orx) =
        Channel::create(name, &o).map_err(|e| format!("create over a stale file: {e}"))?;
    let (_ptx, mut prx) = Channel::attach(name, &o).map_err(|e| e.to_string())?;
    otx.send(b"via a path").map_err(|e| e.to_string())?;
    let m = prx
        .recv_timeout(Duration::from_secs(5))
        .map_err(|e| e.to_string())?
        .ok_or("no message")?;
    let ok = m.payload() == b"via a path";
    drop(m);
    let _ = std::fs::remove_dir_all(&dir);
    if ok {
        Ok(())
    } else {
        Err("payload differs".into())
    }
}

fn owner_sees_peer_closed_after_an_orderly_hang_up() -> Result<(), String> {
    let name = uniq("bye");
    let (_otx, mut orx) = Channel::create(&name, &opts()).map_err(|e| e.to_string())?;
    let (mut ptx, prx) = Channel::attach(&name, &opts()).map_err(|e| e.to_string())?;
    ptx.send(b"last words").map_err(|e| e.to_string())?;
    drop(ptx);
    drop(prx);
    let m = orx
        .recv_timeout(Duration::from_secs(5))
        .map_err(|e| e.to_string())?
        .ok_or("no message")?;
    if m.payload() != b"last words" {
        return Err("payload differs".into());
    }
    drop(m);
    let r = match orx.recv_timeout(Duration::from_secs(5)) {
        Err(Error::PeerClosed) => Ok(()),
        other => Err(format!(
            "expected PeerClosed, got {:?}",
            other.map(|m| m.map(|x| x.seq()))
        )),
    };
    r
}

type Test = (&'static str, fn() -> Result<(), String>);

const TESTS: &[Test] = &[
    (
        "armed_receiver_stops_asking_for_doorbells_once_it_has_data",
        armed_receiver_stops_asking_for_doorbells_once_it_has_data,
    ),
    (
        "armed_sender_stops_asking_for_doorbells_once_it_has_room",
        armed_sender_stops_asking_for_doorbells_once_it_has_room,
    ),
    (
        "million_messages_both_directions_arrive_intact_and_in_order",
        million_messages_both_directions_arrive_intact_and_in_order,
    ),
    (
        "peer_killed_with_sigkill_is_drained_then_reported_closed",
        peer_killed_with_sigkill_is_drained_then_reported_closed,
    ),
    (
        "peer_with_wrong_uid_is_refused",
        peer_with_wrong_uid_is_refused,
    ),
    (
        "peer_with_matching_uid_is_accepted_and_stamped",
        peer_with_matching_uid_is_accepted_and_stamped,
    ),
    (
        "peer_in_another_pid_namespace_is_refused",
        peer_in_another_pid_namespace_is_refused,
    ),
    (
        "peer_in_the_policy_pid_namespace_is_accepted",
        peer_in_the_policy_pid_namespace_is_accepted,
    ),
    (
        "second_attacher_is_refused_as_busy",
        second_attacher_is_refused_as_busy,
    ),
    (
        "attach_to_a_missing_channel_is_no_such_channel",
        attach_to_a_missing_channel_is_no_such_channel,
    ),
    (
        "creating_an_existing_channel_is_channel_exists",
        creating_an_existing_channel_is_channel_exists,
    ),
    (
        "different_psks_are_refused_as_psk_mismatch",
        different_psks_are_refused_as_psk_mismatch,
    ),
    (
        "matching_psks_attach_and_carry_messages",
        matching_psks_attach_and_carry_messages,
    ),
    (
        "identity_proof_is_required_and_checked",
        identity_proof_is_required_and_checked,
    ),
    (
        "tampered_record_fails_authentication_and_is_never_delivered",
        tampered_record_fails_authentication_and_is_never_delivered,
    ),
    (
        "replayed_record_fails_authentication",
        replayed_record_fails_authentication,
    ),
    (
        "full_ring_reports_full_and_blocking_send_resumes",
        full_ring_reports_full_and_blocking_send_resumes,
    ),
    (
        "message_larger_than_a_slot_is_refused",
        message_larger_than_a_slot_is_refused,
    ),
    (
        "keys_ratchet_every_n_records_without_loss",
        keys_ratchet_every_n_records_without_loss,
    ),
    (
        "socket_dir_rendezvous_works_and_reuses_a_stale_socket_file",
        socket_dir_rendezvous_works_and_reuses_a_stale_socket_file,
    ),
    (
        "owner_sees_peer_closed_after_an_orderly_hang_up",
        owner_sees_peer_closed_after_an_orderly_hang_up,
    ),
];

fn doorbells(s: &secure_ipc::Sender) -> Result<u64, String> {
    Ok(s.stats().map_err(|e| e.to_string())?.doorbells_signalled)
}

fn armed_receiver_stops_asking_for_doorbells_once_it_has_data() -> Result<(), String> {
    let name = uniq("armrx");
    let (mut otx, _orx) =
        Channel::create(&name, &opts().slots(8).slot_size(128)).map_err(|e| e.to_string())?;
    let (_ptx, mut prx) = Channel::attach(&name, &opts()).map_err(|e| e.to_string())?;
    // An epoll user arms once, is woken once, then keeps up without arming.
    if !prx.arm().map_err(|e| e.to_string())? {
        return Err("arm on an empty channel said data was waiting".into());
    }
    let before = doorbells(&otx)?;
    for i in 0..10u8 {
        otx.send([i]).map_err(|e| format!("send {i}: {e}"))?;
        let m = prx.recv().map_err(|e| format!("recv {i}: {e}"))?;
        if m.payload() != [i] {
            return Err(format!("message {i}: {:?}", m.payload()));
        }
    }
    match doorbells(&otx)? - before {
        1 => Ok(()),
        n => Err(format!("{n} doorbells for one arm()")),
    }
}

fn armed_sender_stops_asking_for_doorbells_once_it_has_room() -> Result<(), String> {
    let name = uniq("armtx");
    let (mut otx, _orx) =
        Channel::create(&name, &opts().slots(4).slot_size(128)).map_err(|e| e.to_string())?;
    let (ptx, mut prx) = Channel::attach(&name, &opts()).map_err(|e| e.to_string())?;
    for i in 0..4u8 {
        otx.try_send(&[i]).map_err(|e| format!("fill {i}: {e}"))?;
    }
    if !otx.arm().map_err(|e| e.to_string())? {
        return Err("arm on a full ring said there was room".into());
    }
    let before = doorbells(&ptx)?;
    for i in 0..4u8 {
        let m = prx.recv().map_err(|e| format!("recv {i}: {e}"))?;
        if m.payload() != [i] {
            return Err(format!("message {i}: {:?}", m.payload()));
        }
    }
    // Room again: the sender sends on without arming.
    for i in 4..14u8 {
        otx.try_send(&[i]).map_err(|e| format!("send {i}: {e}"))?;
        let m = prx.recv().map_err(|e| format!("recv {i}: {e}"))?;
        if m.payload() != [i] {
            return Err(format!("message {i}: {:?}", m.payload()));
        }
    }
    match doorbells(&ptx)? - before {
        1 => Ok(()),
        n => Err(format!("{n} room doorbells for one arm()")),
    }
}

fn main() {
    if let Ok(role) = std::env::var("SIPC_TEST_ROLE") {
        let name = std::env::var("SIPC_TEST_NAME").unwrap_or_default();
        let r = match role.as_str() {
            "million-peer" => role_million_peer(&name),
            "attach-report" => role_attach_report(&name),
            "send-then-hang" => role_send_then_hang(&name),
            other => Err(format!("unknown role {other}")),
        };
        if let Err(e) = r {
            eprintln!("peer role {role}: {e}");
            std::process::exit(1);
        }
        return;
    }
    // libtest-style arguments: run the tests whose name contains any
    // non-flag argument (all when there is none); --list lists them.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for (n, _) in TESTS {
            println!("{n}: test");
        }
        return;
    }
    // Flags libtest takes with a separate value: skip the value too.
    let mut filters: Vec<&String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if matches!(
            a.as_str(),
            "--test-threads" | "--skip" | "--color" | "--format" | "--logfile" | "-Z"
        ) {
            it.next();
        } else if !a.starts_with('-') {
            filters.push(a);
        }
    }
    let (mut passed, mut failed) = (0, 0);
    for (n, f) in TESTS {
        if !filters.is_empty() && !filters.iter().any(|flt| n.contains(flt.as_str())) {
            continue;
        }
        // A hung test must not hang the suite.
        let name = n.to_string();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let d2 = done.clone();
        std::thread::spawn(move || {
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(600) {
                if d2.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            eprintln!("test {name} ... TIMED OUT after 600 s");
            std::process::exit(2);
        });
        let r = std::panic::catch_unwind(f).unwrap_or_else(|_| Err("panicked".into()));
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        match r {
            Ok(()) => {
                println!("test {n} ... ok");
                passed += 1;
            }
            Err(e) => {
                println!("test {n} ... FAILED: {e}");
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
