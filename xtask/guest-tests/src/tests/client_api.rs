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
