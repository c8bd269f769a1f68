//! The bounded, non-blocking, batch and shutdown calls of the client API
//! on the kernel backend (the userspace backend's are client/tests/api.rs).

use crate::check;
use crate::harness::{Test, TestResult};
use secure_ipc::{Backend, Channel, Error, Options, Receiver, Sender, WaitPolicy};
use std::time::{Duration, Instant};

/// The tests of this file.
pub const TESTS: &[Test] = &[
    Test::new(
        "client_api_try_reserve_before_attach_is_not_connected",
        client_api_try_reserve_before_attach_is_not_connected,
    ),
    Test::new(
        "client_api_shutdown_wakes_a_receiver_blocked_in_recv_wait",
        client_api_shutdown_wakes_a_receiver_blocked_in_recv_wait,
    ),
    Test::new(
        "client_api_shutdown_wakes_an_owner_waiting_for_its_first_peer",
        client_api_shutdown_wakes_an_owner_waiting_for_its_first_peer,
    ),
    Test::new(
        "client_api_peer_attached_and_is_closed_follow_the_peer",
        client_api_peer_attached_and_is_closed_follow_the_peer,
    ),
    Test::new(
        "client_api_recv_batch_in_order_and_releases_slots",
        client_api_recv_batch_in_order_and_releases_slots,
    ),
    Test::new(
        "client_api_send_timeout_on_a_full_store_hands_the_message_back",
        client_api_send_timeout_on_a_full_store_hands_the_message_back,
    ),
    Test::new(
        "client_api_shutdown_wakes_a_sender_blocked_on_a_full_store",
        client_api_shutdown_wakes_a_sender_blocked_on_a_full_store,
    ),
    Test::new(
        "client_api_sender_drop_never_waits_for_a_stalled_peer",
        client_api_sender_drop_never_waits_for_a_stalled_peer,
    ),
    Test::new(
        "client_api_close_reports_what_a_stalled_peer_never_took",
        client_api_close_reports_what_a_stalled_peer_never_took,
    ),
];

fn opts(slots: u32, wait: WaitPolicy) -> Options {
    Options::new()
        .backend(Backend::Kernel)
        .slots(slots)
        .slot_size(256)
        .wait(wait)
}

fn name(tag: &str) -> String {
    format!("ca-{tag}-{}", std::process::id())
}

type Halves = (Sender, Receiver);

fn pair(tag: &str, o: &Options) -> Result<(Halves, Halves), String> {
    let n = name(tag);
    let owner = Channel::create(&n, o).map_err(|e| format!("create {n}: {e}"))?;
    let peer = Channel::attach(&n, o).map_err(|e| format!("attach {n}: {e}"))?;
    Ok((owner, peer))
}

fn client_api_try_reserve_before_attach_is_not_connected() -> TestResult {
    let (mut otx, _orx) = Channel::create(&name("early"), &opts(8, WaitPolicy::Block))
        .map_err(|e| format!("create: {e}"))?;
    let r = otx.try_reserve(8).map(|_| ());
    check!(matches!(r, Err(Error::NotConnected)), "try_reserve: {r:?}");
    check!(!otx.peer_attached(), "peer_attached before any attach");
    Ok(())
}

fn client_api_shutdown_wakes_a_receiver_blocked_in_recv_wait() -> TestResult {
    let ((_otx, _orx), (_ptx, mut prx)) = pair("shr", &opts(8, WaitPolicy::Block))?;
    let stop = prx.shutdown_handle().map_err(|e| format!("handle: {e}"))?;
    let t = std::thread::spawn(move || {
        let start = Instant::now();
        let r = prx.recv().map(|m| m.payload().to_vec());
        (r, start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    stop.shutdown();
    let (r, took) = t.join().map_err(|_| "receiver panicked")?;
    check!(matches!(r, Err(Error::Shutdown)), "recv: {r:?}");
    check!(took < Duration::from_secs(5), "woke after {took:?}");
    Ok(())
}

fn client_api_shutdown_wakes_an_owner_waiting_for_its_first_peer() -> TestResult {
    let (mut otx, mut orx) = Channel::create(&name("shpre"), &opts(8, WaitPolicy::Block))
        .map_err(|e| format!("create: {e}"))?;
    let rstop = orx.shutdown_handle().map_err(|e| format!("handle: {e}"))?;
    let tstop = otx.shutdown_handle().map_err(|e| format!("handle: {e}"))?;
    let r = std::thread::spawn(move || orx.recv().map(|_| ()));
    let s = std::thread::spawn(move || otx.send(b"nobody"));
    std::thread::sleep(Duration::from_millis(300));
    rstop.shutdown();
    tstop.shutdown();
    let r = r.join().map_err(|_| "receiver panicked")?;
    let s = s.join().map_err(|_| "sender panicked")?;
    check!(matches!(r, Err(Error::Shutdown)), "recv: {r:?}");
    // The kernel sender's message was committed to TX before it waited
    // for the peer: that is a send, not a wait for a slot.
    check!(matches!(s, Err(Error::Shutdown) | Ok(())), "send: {s:?}");
    Ok(())
}

fn client_api_peer_attached_and_is_closed_follow_the_peer() -> TestResult {
    let n = name("state");
    let (mut otx, mut orx) =
        Channel::create(&n, &opts(8, WaitPolicy::Block)).map_err(|e| format!("create: {e}"))?;
    check!(
        !otx.peer_attached() && !orx.is_closed(),
        "state before attach"
    );
    let (mut ptx, prx) =
        Channel::attach(&n, &opts(8, WaitPolicy::Block)).map_err(|e| format!("attach: {e}"))?;
    ptx.send(b"bye").map_err(|e| format!("send: {e}"))?;
    check!(otx.peer_attached(), "owner: peer_attached after attach");
    check!(ptx.peer_attached(), "peer: peer_attached");
    drop((ptx, prx));
    check!(
        orx.is_closed() && otx.is_closed(),
        "is_closed after the peer closed"
    );
    let m = orx
        .recv_timeout(Duration::from_secs(5))
        .map_err(|e| format!("recv: {e}"))?
        .map(|m| m.payload().to_vec());
    check!(m.as_deref() == Some(&b"bye"[..]), "drained {m:?}");
    let r = orx.recv().map(|_| ());
    check!(
        matches!(r, Err(Error::PeerClosed)),
        "after the drain: {r:?}"
    );
    Ok(())
}

fn client_api_recv_batch_in_order_and_releases_slots() -> TestResult {
    let ((mut otx, _orx), (_ptx, mut prx)) = pair("batch", &opts(8, WaitPolicy::Block))?;
    for round in 0..3u8 {
        for i in 0..8u8 {
            otx.send_batched(0, &[round, i])
                .map_err(|e| format!("send_batched: {e}"))?;
        }
        otx.flush().map_err(|e| format!("flush: {e}"))?;
        let mut got = Vec::new();
        let mut n = 0;
        while n < 8 {
            n += prx
                .recv_batch(8, |m| got.push(m.payload().to_vec()))
                .map_err(|e| format!("recv_batch: {e}"))?;
        }
        let want: Vec<Vec<u8>> = (0..8u8).map(|i| vec![round, i]).collect();
        check!(got == want, "round {round}: {got:?}");
    }
    Ok(())
}

/// Sends `0, 1, 2, ...` with `send_timeout` until one times out with
/// nobody receiving (TX ring, sealed store and the peer's RX all full);
/// checks that the timed-out message came back and that `try_send` agrees
/// the channel is full; returns how many went in.
fn fill(tx: &mut Sender) -> Result<u64, String> {
    let mut accepted: u64 = 0;
    loop {
        match tx
            .send_timeout(accepted.to_le_bytes(), Duration::from_millis(50))
            .map_err(|e| e.into_parts())
        {
            Ok(()) => accepted += 1,
            Err((Error::TimedOut, back)) => {
                check!(
                    back == accepted.to_le_bytes(),
                    "send_timeout handed back {back:?}"
                );
                break;
            }
            Err((e, _)) => return Err(format!("send_timeout {accepted}: {e}")),
        }
        check!(accepted <= 1024, "send_timeout never timed out");
    }
    match tx.try_send(*b"one more").map_err(|e| e.into_error()) {
        Err(Error::Full) => Ok(accepted),
        other => Err(format!(
            "try_send on a channel send_timeout found full: {other:?}"
        )),
    }
}

/// Commits `first, first + 1, ...` (`n` messages) with `send_batched`:
/// queued in TX, published only by a later flush, send, close or drop.
fn queue_unflushed(tx: &mut Sender, first: u64, n: u64) -> Result<(), String> {
    for i in first..first + n {
        tx.send_batched(0, &i.to_le_bytes())
            .map_err(|e| format!("send_batched {i}: {e}"))?;
    }
    Ok(())
}

/// Receives until nothing arrives for 500 ms; checks the payloads are
/// `0, 1, 2, ...` in order; returns how many arrived.
fn drain_in_order(rx: &mut Receiver) -> Result<u64, String> {
    let mut got: u64 = 0;
    while let Some(m) = rx
        .recv_timeout(Duration::from_millis(500))
        .map_err(|e| format!("recv after {got}: {e}"))?
    {
        check!(
            m.payload() == got.to_le_bytes(),
            "message {got}: {:?}",
            m.payload()
        );
        got += 1;
    }
    Ok(got)
}

fn client_api_send_timeout_on_a_full_store_hands_the_message_back() -> TestResult {
    let ((mut otx, _orx), (_ptx, mut prx)) = pair("sto", &opts(4, WaitPolicy::Block))?;
    let accepted = fill(&mut otx)?;
    let start = Instant::now();
    let r = otx.send_timeout(*b"timed out", Duration::from_millis(200));
    let took = start.elapsed();
    let (e, back) = match r {
        Err(e) => e.into_parts(),
        Ok(()) => {
            return Err(format!(
                "send_timeout on a full channel ({accepted} in) sent"
            ))
        }
    };
    check!(matches!(e, Error::TimedOut), "send_timeout: {e}");
    check!(&back == b"timed out", "handed back {back:?}");
    check!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(5),
        "send_timeout(200 ms) returned after {took:?}"
    );
    // Not sent means not queued: the peer gets exactly the accepted ones.
    let got = drain_in_order(&mut prx)?;
    check!(got == accepted, "accepted {accepted}, received {got}");
    Ok(())
}

fn client_api_shutdown_wakes_a_sender_blocked_on_a_full_store() -> TestResult {
    let ((mut otx, _orx), (_ptx, mut prx)) = pair("shs", &opts(4, WaitPolicy::Block))?;
    let accepted = fill(&mut otx)?;
    let stop = otx.shutdown_handle().map_err(|e| format!("handle: {e}"))?;
    let t = std::thread::spawn(move || {
        let start = Instant::now();
        let r = otx.send(b"blocked");
        (r, start.elapsed(), otx)
    });
    std::thread::sleep(Duration::from_millis(300));
    check!(!t.is_finished(), "send on a full channel did not block");
    stop.shutdown();
    let (r, took, _otx) = t.join().map_err(|_| "sender panicked")?;
    check!(matches!(r, Err(Error::Shutdown)), "send: {r:?}");
    check!(took < Duration::from_secs(5), "woke after {took:?}");
    let got = drain_in_order(&mut prx)?;
    check!(got == accepted, "accepted {accepted}, received {got}");
    Ok(())
}

fn client_api_sender_drop_never_waits_for_a_stalled_peer() -> TestResult {
    let ((mut otx, _orx), (_ptx, mut prx)) = pair("dst", &opts(4, WaitPolicy::Block))?;
    let accepted = fill(&mut otx)?;
    // Two more committed to TX behind the full store: only a wait could
    // deliver them. What the kernel sealed reaches the peer.
    let extra: u64 = 2;
    queue_unflushed(&mut otx, accepted, extra)?;
    let sealed = otx.stats().map_err(|e| format!("stats: {e}"))?.sealed_msgs;
    check!(sealed == accepted, "sealed {sealed} of {accepted}");
    let dropper = std::thread::spawn(move || drop(otx));
    let start = Instant::now();
    while !dropper.is_finished() {
        check!(
            start.elapsed() < Duration::from_secs(5),
            "dropping a sender with a queued message and a stalled peer hangs"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    dropper.join().map_err(|_| "drop panicked")?;
    // What was delivered before the drop arrives whole and in order.
    let got = drain_in_order(&mut prx)?;
    check!(
        got >= sealed && got <= accepted + extra,
        "sent {}, sealed {sealed}, received {got}",
        accepted + extra
    );
    Ok(())
}

fn client_api_close_reports_what_a_stalled_peer_never_took() -> TestResult {
    let ((mut otx, _orx), (_ptx, mut prx)) = pair("cst", &opts(4, WaitPolicy::Block))?;
    let accepted = fill(&mut otx)?;
    // Two more committed to TX: close must publish them and wait for a
    // store that never frees, no longer than its timeout.
    let extra: u64 = 2;
    queue_unflushed(&mut otx, accepted, extra)?;
    let accepted = accepted + extra;
    let start = Instant::now();
    let r = otx.close(Duration::from_millis(300));
    let took = start.elapsed();
    let undelivered = match r {
        Err(Error::NotDelivered { undelivered }) => undelivered as u64,
        other => return Err(format!("close with a stalled peer: {other:?}")),
    };
    check!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "close(300 ms) returned after {took:?}"
    );
    check!(
        undelivered >= extra,
        "close reported {undelivered} undelivered, {extra} never left TX"
    );
    // Nothing is lost unreported: every message arrives or was counted.
    // (The owner's receiving half keeps the device open, so records sealed
    // before the deadline may still arrive after it: counted and received.)
    let got = drain_in_order(&mut prx)?;
    check!(
        got + undelivered >= accepted && got <= accepted,
        "sent {accepted}, received {got}, reported undelivered {undelivered}"
    );
    Ok(())
}
