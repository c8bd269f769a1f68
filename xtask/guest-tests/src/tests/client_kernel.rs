//! The client crate's kernel backend (`secure_ipc` with `Backend::Kernel`)
//! against the real module: the API a service embeds, end to end.

use crate::check;
use crate::harness::{Test, TestResult};
use secure_ipc::{
    Backend, Channel, Error, IdentityKey, Options, PeerPolicy, Receiver, Sender, WaitPolicy,
};
use std::time::{Duration, Instant};

/// The tests of this file.
pub const TESTS: &[Test] = &[
    Test::new(
        "client_kernel_roundtrip_both_directions",
        client_kernel_roundtrip_both_directions,
    ),
    Test::new(
        "client_kernel_stamps_sender_credentials",
        client_kernel_stamps_sender_credentials,
    ),
    Test::new(
        "client_kernel_attach_unknown_name_is_no_such_channel",
        client_kernel_attach_unknown_name_is_no_such_channel,
    ),
    Test::new(
        "client_kernel_create_existing_name_is_channel_exists",
        client_kernel_create_existing_name_is_channel_exists,
    ),
    Test::new(
        "client_kernel_second_peer_is_busy",
        client_kernel_second_peer_is_busy,
    ),
    Test::new(
        "client_kernel_oversized_message_is_rejected",
        client_kernel_oversized_message_is_rejected,
    ),
    Test::new(
        "client_kernel_5000_messages_in_order_with_wraparound",
        client_kernel_5000_messages_in_order_with_wraparound,
    )
    .timeout(300),
    Test::new(
        "client_kernel_blocking_recv_wakes_on_send",
        client_kernel_blocking_recv_wakes_on_send,
    ),
    Test::new(
        "client_kernel_busy_consumer_gets_no_doorbells",
        client_kernel_busy_consumer_gets_no_doorbells,
    )
    .timeout(300),
    Test::new(
        "client_kernel_sender_waits_for_peer_to_attach",
        client_kernel_sender_waits_for_peer_to_attach,
    ),
    Test::new(
        "client_kernel_peer_close_drains_then_peer_closed",
        client_kernel_peer_close_drains_then_peer_closed,
    ),
    Test::new(
        "client_kernel_zero_copy_reserve_commit",
        client_kernel_zero_copy_reserve_commit,
    ),
    Test::new(
        "client_kernel_identity_proof_attaches",
        client_kernel_identity_proof_attaches,
    ),
    Test::new(
        "client_kernel_wrong_identity_is_identity_rejected",
        client_kernel_wrong_identity_is_identity_rejected,
    ),
    Test::new(
        "client_kernel_matching_psk_attaches",
        client_kernel_matching_psk_attaches,
    ),
    Test::new(
        "client_kernel_psk_mismatch_is_psk_mismatch",
        client_kernel_psk_mismatch_is_psk_mismatch,
    ),
    Test::new(
        "client_kernel_rekey_advances_the_epoch",
        client_kernel_rekey_advances_the_epoch,
    ),
    Test::new(
        "client_kernel_armed_receiver_gets_its_doorbell",
        client_kernel_armed_receiver_gets_its_doorbell,
    ),
    Test::new(
        "client_kernel_try_send_before_attach_is_not_connected",
        client_kernel_try_send_before_attach_is_not_connected,
    ),
    Test::new(
        "client_kernel_try_send_on_full_store_is_full_and_loses_nothing",
        client_kernel_try_send_on_full_store_is_full_and_loses_nothing,
    ),
    Test::new(
        "client_kernel_sender_drop_without_peer_returns",
        client_kernel_sender_drop_without_peer_returns,
    ),
    Test::new(
        "client_kernel_flush_into_full_store_waits_before_sending",
        client_kernel_flush_into_full_store_waits_before_sending,
    ),
];

fn opts(slots: u32, slot_size: u32, wait: WaitPolicy) -> Options {
    Options::new()
        .backend(Backend::Kernel)
        .slots(slots)
        .slot_size(slot_size)
        .wait(wait)
}

fn name(tag: &str) -> String {
    format!("ck-{tag}-{}", std::process::id())
}

/// One endpoint's two halves.
type Halves = (Sender, Receiver);

fn pair(tag: &str, o: &Options) -> Result<(Halves, Halves), String> {
    let n = name(tag);
    let owner = Channel::create(&n, o).map_err(|e| format!("create {n}: {e}"))?;
    let peer = Channel::attach(&n, o).map_err(|e| format!("attach {n}: {e}"))?;
    Ok((owner, peer))
}

fn recv_one(rx: &mut Receiver) -> Result<(Vec<u8>, u64, u16), String> {
    let m = rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|e| format!("recv: {e}"))?
        .ok_or("recv: nothing within 10 s")?;
    Ok((m.payload().to_vec(), m.seq(), m.msg_type()))
}

fn client_kernel_roundtrip_both_directions() -> TestResult {
    let ((mut otx, mut orx), (mut ptx, mut prx)) =
        pair("rt", &opts(8, 256, WaitPolicy::default()))?;
    otx.send_with_type(7, b"to peer")
        .map_err(|e| format!("owner send: {e}"))?;
    ptx.send_with_type(9, b"to owner")
        .map_err(|e| format!("peer send: {e}"))?;
    let (p, seq, ty) = recv_one(&mut prx)?;
    check!(
        p == b"to peer" && seq == 0 && ty == 7,
        "peer got {p:?} seq {seq} type {ty}"
    );
    let (p, seq, ty) = recv_one(&mut orx)?;
    check!(
        p == b"to owner" && seq == 0 && ty == 9,
        "owner got {p:?} seq {seq} type {ty}"
    );
    Ok(())
}

fn client_kernel_stamps_sender_credentials() -> TestResult {
    let ((mut otx, _orx), (_ptx, mut prx)) = pair("cred", &opts(8, 256, WaitPolicy::default()))?;
    otx.send(b"x").map_err(|e| format!("send: {e}"))?;
    let m = prx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|e| format!("recv: {e}"))?
        .ok_or("nothing received")?;
    let s = m.sender();
    check!(
        s.pid == std::process::id() && s.uid == 0 && s.gid == 0,
        "sender {s:?}"
    );
    check!(m.timestamp_ns() > 0, "timestamp 0");
    Ok(())
}

fn client_kernel_attach_unknown_name_is_no_such_channel() -> TestResult {
    match Channel::attach(&name("nobody"), &opts(8, 256, WaitPolicy::default())) {
        Err(Error::NoSuchChannel) => Ok(()),
        Err(e) => Err(format!("expected NoSuchChannel, got {e:?}")),
        Ok(_) => Err("attach to a missing channel succeeded".into()),
    }
}

fn client_kernel_create_existing_name_is_channel_exists() -> TestResult {
    let o = opts(8, 256, WaitPolicy::default());
    let n = name("dup");
    let _first = Channel::create(&n, &o).map_err(|e| format!("create: {e}"))?;
    match Channel::create(&n, &o) {
        Err(Error::ChannelExists) => Ok(()),
        Err(e) => Err(format!("expected ChannelExists, got {e:?}")),
        Ok(_) => Err("a second create of the same name succeeded".into()),
    }
}

fn client_kernel_second_peer_is_busy() -> TestResult {
    let o = opts(8, 256, WaitPolicy::default());
    let n = name("busy");
    let _owner = Channel::create(&n, &o).map_err(|e| format!("create: {e}"))?;
    let _peer = Channel::attach(&n, &o).map_err(|e| format!("attach: {e}"))?;
    match Channel::attach(&n, &o) {
        Err(Error::Busy) => Ok(()),
        Err(e) => Err(format!("expected Busy, got {e:?}")),
        Ok(_) => Err("a second peer attached".into()),
    }
}

fn client_kernel_oversized_message_is_rejected() -> TestResult {
    let ((mut otx, _), _peer) = pair("big", &opts(8, 256, WaitPolicy::default()))?;
    match otx.send([0u8; 257]) {
        Err(Error::MessageTooLarge { len: 257, max: 256 }) => Ok(()),
        r => Err(format!("expected MessageTooLarge {{257, 256}}, got {r:?}")),
    }
}

/// Message `i` of a test stream: its length and bytes derive from `i`.
fn message(i: u64, max: usize) -> Vec<u8> {
    let len = 1 + (i as usize * 7919) % max;
    (0..len).map(|k| (i as usize + k) as u8).collect()
}

fn client_kernel_5000_messages_in_order_with_wraparound() -> TestResult {
    // 4 slots: the TX ring, the sealed store and RX wrap thousands of times.
    let o = opts(4, 128, WaitPolicy::default());
    let ((mut otx, _orx), (_ptx, mut prx)) = pair("order", &o)?;
    const N: u64 = 5_000;
    let sender = std::thread::spawn(move || -> Result<(), String> {
        for i in 0..N {
            otx.send_batched(0, &message(i, 128))
                .map_err(|e| format!("send {i}: {e}"))?;
            if i % 3 == 2 {
                otx.flush().map_err(|e| format!("flush {i}: {e}"))?;
            }
        }
        otx.flush().map_err(|e| format!("flush: {e}"))?;
        // Keep the channel open until the receiver has everything.
        std::thread::sleep(Duration::from_secs(1));
        Ok(())
    });
    for i in 0..N {
        let (p, seq, _) = recv_one(&mut prx)?;
        check!(seq == i, "message {i} arrived with seq {seq}");
        check!(
            p == message(i, 128),
            "message {i}: payload differs ({} bytes)",
            p.len()
        );
    }
    sender.join().map_err(|_| "sender panicked")??;
    Ok(())
}

fn client_kernel_blocking_recv_wakes_on_send() -> TestResult {
    let ((mut otx, _orx), (_ptx, mut prx)) = pair("wake", &opts(8, 256, WaitPolicy::Block))?;
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        otx.send(b"late").map(|_| otx)
    });
    let start = Instant::now();
    let m = prx.recv().map_err(|e| format!("recv: {e}"))?;
    check!(m.payload() == b"late", "got {:?}", m.payload());
    drop(m);
    check!(
        start.elapsed() >= Duration::from_millis(250),
        "recv returned before the send"
    );
    let _otx = t
        .join()
        .map_err(|_| "sender panicked")?
        .map_err(|e| format!("send: {e}"))?;
    let st = prx.stats().map_err(|e| format!("stats: {e}"))?;
    // It slept in SIPC_IOC_RECV_WAIT: the sender woke it directly.
    check!(
        st.doorbells_signalled == 0 && st.opened_msgs == 1,
        "a receiver sleeping in the kernel needs no doorbell: {st:?}"
    );
    Ok(())
}

fn client_kernel_armed_receiver_gets_its_doorbell() -> TestResult {
    use std::os::fd::AsRawFd;
    let ((mut otx, _orx), (_ptx, mut prx)) = pair("armed", &opts(8, 256, WaitPolicy::Block))?;
    // An epoll user: arm, then sleep on the receiver's fd.
    check!(
        prx.arm().map_err(|e| format!("arm: {e}"))?,
        "arm says data is waiting on an empty channel"
    );
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        otx.send(b"ding").map(|_| otx)
    });
    let mut p = libc::pollfd {
        fd: prx.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let r = unsafe { libc::poll(&mut p, 1, 5000) };
    check!(
        r == 1 && p.revents & libc::POLLIN != 0,
        "poll on the armed receiver: {r}, revents {:#x}",
        p.revents
    );
    let (m, _, _) = recv_one(&mut prx)?;
    check!(m == b"ding", "got {m:?}");
    let _otx = t
        .join()
        .map_err(|_| "sender panicked")?
        .map_err(|e| format!("send: {e}"))?;
    let st = prx.stats().map_err(|e| format!("stats: {e}"))?;
    check!(st.doorbells_signalled == 1, "doorbells: {st:?}");
    Ok(())
}

fn client_kernel_busy_consumer_gets_no_doorbells() -> TestResult {
    let o = opts(64, 64, WaitPolicy::BusyPoll);
    let ((mut otx, _orx), (_ptx, mut prx)) = pair("busy", &o)?;
    const N: u64 = 2_000;
    let sender = std::thread::spawn(move || -> Result<(), String> {
        for i in 0..N {
            otx.send(i.to_le_bytes())
                .map_err(|e| format!("send {i}: {e}"))?;
        }
        std::thread::sleep(Duration::from_millis(500));
        Ok(())
    });
    for i in 0..N {
        let m = prx.recv().map_err(|e| format!("recv {i}: {e}"))?;
        check!(m.payload() == i.to_le_bytes(), "message {i} differs");
    }
    sender.join().map_err(|_| "sender panicked")??;
    let st = prx.stats().map_err(|e| format!("stats: {e}"))?;
    check!(st.opened_msgs == N, "opened {} of {N}", st.opened_msgs);
    check!(
        st.doorbells_signalled == 0,
        "a busy-polling receiver was rung {} times",
        st.doorbells_signalled
    );
    Ok(())
}

fn client_kernel_sender_waits_for_peer_to_attach() -> TestResult {
    let o = opts(8, 256, WaitPolicy::Block);
    let n = name("late-peer");
    let (mut otx, _orx) = Channel::create(&n, &o).map_err(|e| format!("create: {e}"))?;
    let (n2, o2) = (n.clone(), o.clone());
    let peer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        Channel::attach(&n2, &o2)
    });
    let start = Instant::now();
    otx.send(b"early")
        .map_err(|e| format!("send before attach: {e}"))?;
    check!(
        start.elapsed() >= Duration::from_millis(250),
        "send returned before a peer attached"
    );
    let (_ptx, mut prx) = peer
        .join()
        .map_err(|_| "attacher panicked")?
        .map_err(|e| format!("attach: {e}"))?;
    let (p, seq, _) = recv_one(&mut prx)?;
    check!(p == b"early" && seq == 0, "peer got {p:?} seq {seq}");
    Ok(())
}

fn client_kernel_peer_close_drains_then_peer_closed() -> TestResult {
    let ((mut otx, orx), (ptx, mut prx)) = pair("hup", &opts(8, 256, WaitPolicy::default()))?;
    for i in 0u8..5 {
        otx.send([i]).map_err(|e| format!("send {i}: {e}"))?;
    }
    drop(otx);
    drop(orx);
    for i in 0u8..5 {
        let (p, _, _) = recv_one(&mut prx)?;
        check!(p == [i], "message {i} after the owner closed: {p:?}");
    }
    match prx.recv_timeout(Duration::from_secs(10)) {
        Err(Error::PeerClosed) => {}
        r => return Err(format!("expected PeerClosed after the drain, got {r:?}")),
    }
    drop(ptx);
    Ok(())
}

fn client_kernel_zero_copy_reserve_commit() -> TestResult {
    let ((mut otx, _), (_, mut prx)) = pair("zc", &opts(8, 256, WaitPolicy::default()))?;
    let mut r = otx.reserve(200).map_err(|e| format!("reserve: {e}"))?;
    r.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
    r.set_type(3);
    r.commit(150).map_err(|e| format!("commit: {e}"))?;
    otx.flush().map_err(|e| format!("flush: {e}"))?;
    let (p, _, ty) = recv_one(&mut prx)?;
    check!(ty == 3 && p.len() == 150, "type {ty}, {} bytes", p.len());
    check!(
        p.iter().enumerate().all(|(i, &b)| b == i as u8),
        "payload differs"
    );
    Ok(())
}

const IDENTITY: [u8; 32] = [0x11; 32];

fn pinned(identity: [u8; 32]) -> Options {
    opts(8, 256, WaitPolicy::default()).policy(PeerPolicy {
        identity_pub: Some(secure_ipc::keys::public_key(&identity)),
        ..Default::default()
    })
}

fn client_kernel_identity_proof_attaches() -> TestResult {
    let n = name("id-ok");
    let (mut otx, orx) =
        Channel::create(&n, &pinned(IDENTITY)).map_err(|e| format!("create: {e}"))?;
    let peer_opts = opts(8, 256, WaitPolicy::default()).identity(IdentityKey::from(IDENTITY));
    let (_ptx, mut prx) =
        Channel::attach(&n, &peer_opts).map_err(|e| format!("attach with the identity: {e}"))?;
    otx.send(b"proved").map_err(|e| format!("send: {e}"))?;
    let (p, _, _) = recv_one(&mut prx)?;
    check!(p == b"proved", "got {p:?}");
    let cred = orx
        .peer_credentials()
        .map_err(|e| format!("peer_credentials: {e}"))?;
    check!(
        cred.identity_verified,
        "the owner does not see the peer as identity-verified: {cred:?}"
    );
    Ok(())
}

fn client_kernel_wrong_identity_is_identity_rejected() -> TestResult {
    let n = name("id-bad");
    let _owner = Channel::create(&n, &pinned(IDENTITY)).map_err(|e| format!("create: {e}"))?;
    let peer_opts = opts(8, 256, WaitPolicy::default()).identity(IdentityKey::from([0x22; 32]));
    match Channel::attach(&n, &peer_opts) {
        Err(Error::IdentityRejected) => Ok(()),
        Err(e) => Err(format!("expected IdentityRejected, got {e:?}")),
        Ok(_) => Err("attach with the wrong identity key succeeded".into()),
    }
}

fn client_kernel_matching_psk_attaches() -> TestResult {
    let o = opts(8, 256, WaitPolicy::default()).psk([7; 32]);
    let ((mut otx, _), (_, mut prx)) = pair("psk-ok", &o)?;
    otx.send(b"psk").map_err(|e| format!("send: {e}"))?;
    let (p, _, _) = recv_one(&mut prx)?;
    check!(p == b"psk", "got {p:?}");
    Ok(())
}

fn client_kernel_psk_mismatch_is_psk_mismatch() -> TestResult {
    let n = name("psk-bad");
    let _owner = Channel::create(&n, &opts(8, 256, WaitPolicy::default()).psk([7; 32]))
        .map_err(|e| format!("create: {e}"))?;
    match Channel::attach(&n, &opts(8, 256, WaitPolicy::default()).psk([8; 32])) {
        Err(Error::PskMismatch) => Ok(()),
        Err(e) => Err(format!("expected PskMismatch, got {e:?}")),
        Ok(_) => Err("attach with another PSK succeeded".into()),
    }
}

fn client_kernel_rekey_advances_the_epoch() -> TestResult {
    let ((mut otx, _), (_, mut prx)) = pair("rekey", &opts(8, 256, WaitPolicy::default()))?;
    otx.send(b"epoch 0").map_err(|e| format!("send: {e}"))?;
    let e = otx.rekey().map_err(|e| format!("rekey: {e}"))?;
    check!(e == 1, "rekey returned epoch {e}");
    otx.send(b"epoch 1").map_err(|e| format!("send: {e}"))?;
    for (want, epoch) in [(&b"epoch 0"[..], 0), (&b"epoch 1"[..], 1)] {
        let m = prx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|e| format!("recv: {e}"))?
            .ok_or("nothing received")?;
        check!(
            m.payload() == want && m.epoch() == epoch,
            "got {:?} at epoch {}",
            m.payload(),
            m.epoch()
        );
    }
    Ok(())
}

fn client_kernel_try_send_before_attach_is_not_connected() -> TestResult {
    let n = name("try-early");
    let (mut otx, _orx) = Channel::create(&n, &opts(8, 256, WaitPolicy::Block))
        .map_err(|e| format!("create: {e}"))?;
    let start = Instant::now();
    let r = otx.try_send(b"nobody there").map_err(|e| e.into_error());
    check!(
        matches!(r, Err(Error::NotConnected)),
        "try_send before any peer attached: {r:?}"
    );
    check!(
        start.elapsed() < Duration::from_secs(2),
        "try_send waited {:?}",
        start.elapsed()
    );
    // Refused means not queued: the first peer sees only what follows.
    let (_ptx, mut prx) = Channel::attach(&n, &opts(8, 256, WaitPolicy::Block))
        .map_err(|e| format!("attach: {e}"))?;
    otx.try_send(b"after attach")
        .map_err(|e| format!("try_send after attach: {e}"))?;
    let (p, seq, _) = recv_one(&mut prx)?;
    check!(p == b"after attach" && seq == 0, "peer got {p:?} seq {seq}");
    Ok(())
}

fn client_kernel_try_send_on_full_store_is_full_and_loses_nothing() -> TestResult {
    let ((mut otx, _orx), (_ptx, mut prx)) = pair("try-full", &opts(4, 64, WaitPolicy::Block))?;
    let start = Instant::now();
    let mut accepted: u64 = 0;
    loop {
        match otx
            .try_send(&accepted.to_le_bytes())
            .map_err(|e| e.into_error())
        {
            Ok(()) => accepted += 1,
            Err(Error::Full) => break,
            Err(e) => return Err(format!("try_send {accepted}: {e}")),
        }
        check!(accepted <= 64, "try_send never reported Full");
    }
    check!(
        start.elapsed() < Duration::from_secs(5),
        "filling took {:?}: try_send waited",
        start.elapsed()
    );
    check!(accepted >= 1, "nothing accepted");
    // Accepted means sealed: nothing is left behind in TX.
    let st = otx.stats().map_err(|e| format!("stats: {e}"))?;
    check!(
        st.sealed_msgs == accepted && st.tx_fill == 0,
        "accepted {accepted}, sealed {}, TX fill {}",
        st.sealed_msgs,
        st.tx_fill
    );
    for i in 0..accepted {
        let (p, seq, _) = recv_one(&mut prx)?;
        check!(
            p == i.to_le_bytes() && seq == i,
            "message {i}: got {p:?} seq {seq}"
        );
    }
    otx.try_send(b"room again")
        .map_err(|e| format!("try_send after the drain: {e}"))?;
    let (p, seq, _) = recv_one(&mut prx)?;
    check!(p == b"room again" && seq == accepted, "got {p:?} seq {seq}");
    Ok(())
}

fn client_kernel_sender_drop_without_peer_returns() -> TestResult {
    let n = name("drop-early");
    let (mut otx, orx) = Channel::create(&n, &opts(8, 256, WaitPolicy::Block))
        .map_err(|e| format!("create: {e}"))?;
    otx.send_batched(0, b"queued, never flushed")
        .map_err(|e| format!("send_batched: {e}"))?;
    let dropper = std::thread::spawn(move || drop(otx));
    let start = Instant::now();
    while !dropper.is_finished() {
        check!(
            start.elapsed() < Duration::from_secs(5),
            "dropping a sender with a queued message and no peer hangs"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    dropper.join().map_err(|_| "drop panicked")?;
    drop(orx);
    Ok(())
}

/// Issue 17 item 5: a flush that finds the sealed store full waits for room
/// before its SEND, instead of making a SEND that seals nothing (counted as
/// STATS `store_full`) and then waiting: one system call less per wait of
/// a producer that outpaces its consumer.
fn client_kernel_flush_into_full_store_waits_before_sending() -> TestResult {
    const SLOTS: u64 = 4;
    let ((mut otx, _orx), (_ptx, mut prx)) = pair("full-wait", &opts(4, 64, WaitPolicy::Block))?;
    for i in 0..SLOTS {
        otx.send(i.to_le_bytes())
            .map_err(|e| format!("send {i}: {e}"))?;
    }
    let before = otx.stats().map_err(|e| format!("stats: {e}"))?;
    check!(
        before.sealed_msgs == SLOTS,
        "sealed {} of {SLOTS}",
        before.sealed_msgs
    );
    // The consumer drains everything, later: one RECV frees the whole store.
    let consumer = std::thread::spawn(move || -> Result<(), String> {
        std::thread::sleep(Duration::from_millis(300));
        for i in 0..2 * SLOTS {
            let (p, seq, _) = recv_one(&mut prx)?;
            check!(
                p == i.to_le_bytes() && seq == i,
                "message {i}: got {p:?} seq {seq}"
            );
        }
        Ok(())
    });
    for i in SLOTS..2 * SLOTS {
        otx.send_batched(0, &i.to_le_bytes())
            .map_err(|e| format!("send_batched {i}: {e}"))?;
    }
    otx.flush().map_err(|e| format!("flush: {e}"))?;
    consumer
        .join()
        .map_err(|_| "the consumer panicked".to_string())??;
    let after = otx.stats().map_err(|e| format!("stats: {e}"))?;
    check!(
        after.sealed_msgs == 2 * SLOTS,
        "sealed {} of {}",
        after.sealed_msgs,
        2 * SLOTS
    );
    check!(
        after.full_events == before.full_events,
        "the flush made {} SEND(s) into the full store that sealed nothing",
        after.full_events - before.full_events
    );
    Ok(())
}
