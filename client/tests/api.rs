//! The bounded, non-blocking, batch and shutdown calls of the client API
//! on the userspace backend (docs/client-api.md). Both halves live in this
//! process; the kernel backend's counterparts run in the guest suite
//! (xtask/guest-tests, `client_kernel_api_*`).

use secure_ipc::{Backend, Channel, Error, Options, Receiver, Sender, WaitPolicy};
use std::time::{Duration, Instant};

fn opts() -> Options {
    Options::new().backend(Backend::Userspace)
}

fn uniq(tag: &str) -> String {
    format!("api{}-{tag}", std::process::id())
}

type Pair = ((Sender, Receiver), (Sender, Receiver));

fn pair(tag: &str, o: &Options) -> Pair {
    let name = uniq(tag);
    let owner = Channel::create(&name, o).expect("create");
    let peer = Channel::attach(&name, o).expect("attach");
    (owner, peer)
}

/// Fills the owner's direction (4 slots) with try_send; returns how many.
fn fill(tx: &mut Sender) -> u8 {
    let mut n = 0u8;
    loop {
        match tx.try_send([n]) {
            Ok(()) => n += 1,
            Err(e) if e.is_full() => return n,
            Err(e) => panic!("try_send {n}: {e}"),
        }
        assert!(n <= 64, "never full");
    }
}

#[test]
fn try_send_before_attach_is_not_connected_and_hands_the_payload_back() {
    let (mut otx, _orx) = Channel::create(&uniq("early"), &opts()).expect("create");
    let payload = vec![7u8; 10];
    let e = otx.try_send(payload).expect_err("no peer yet");
    assert!(matches!(e.error(), Error::NotConnected), "{e}");
    assert_eq!(e.into_payload(), vec![7u8; 10]);
    let r = otx.try_reserve(8).map(|_| ());
    assert!(matches!(r, Err(Error::NotConnected)), "{r:?}");
}

#[test]
fn send_timeout_on_a_full_ring_times_out_and_queues_nothing() {
    let ((mut otx, _orx), (_ptx, mut prx)) = pair("sto", &opts().slots(4).slot_size(128));
    let n = fill(&mut otx);
    let start = Instant::now();
    let e = otx
        .send_timeout(&b"late"[..], Duration::from_millis(100))
        .expect_err("full");
    let took = start.elapsed();
    assert!(e.is_timeout(), "{e}");
    assert_eq!(e.into_payload(), b"late");
    assert!(
        took >= Duration::from_millis(100),
        "returned after {took:?}"
    );
    assert!(took < Duration::from_secs(2), "returned after {took:?}");
    for i in 0..n {
        assert_eq!(prx.recv().expect("recv").payload(), [i]);
    }
    assert!(
        prx.try_recv().expect("try_recv").is_none(),
        "the timed-out message was queued"
    );
    // Room again: a deadline in the future succeeds at once.
    otx.send_deadline(b"now", Instant::now() + Duration::from_secs(5))
        .expect("send_deadline");
    assert_eq!(prx.recv().expect("recv").payload(), b"now");
}

#[test]
fn send_timeout_saturates_instead_of_overflowing() {
    let ((mut otx, _orx), (_ptx, mut prx)) = pair("stmax", &opts());
    otx.send_timeout(b"x", Duration::MAX).expect("send");
    assert_eq!(prx.recv().expect("recv").payload(), b"x");
}

#[test]
fn try_reserve_on_a_full_ring_is_full_and_reserve_timeout_times_out() {
    let ((mut otx, _orx), (_ptx, mut prx)) = pair("res", &opts().slots(4).slot_size(128));
    let n = fill(&mut otx);
    assert!(matches!(otx.try_reserve(8).map(|_| ()), Err(Error::Full)));
    let start = Instant::now();
    let r = otx
        .reserve_timeout(8, Duration::from_millis(50))
        .map(|_| ());
    assert!(matches!(r, Err(Error::TimedOut)), "{r:?}");
    assert!(start.elapsed() >= Duration::from_millis(50));
    drop(prx.recv().expect("recv"));
    let mut slot = otx.try_reserve(3).expect("room after one recv");
    slot.copy_from_slice(b"abc");
    slot.commit(3).expect("commit");
    otx.flush().expect("flush");
    for i in 1..n {
        assert_eq!(prx.recv().expect("recv").payload(), [i]);
    }
    assert_eq!(prx.recv().expect("recv").payload(), b"abc");
}

#[test]
fn recv_deadline_returns_none_at_the_deadline() {
    let ((_otx, _orx), (_ptx, mut prx)) = pair("rdl", &opts());
    let start = Instant::now();
    let r = prx
        .recv_deadline(start + Duration::from_millis(80))
        .expect("recv_deadline");
    assert!(r.is_none());
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(80) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[test]
fn shutdown_wakes_a_receiver_blocked_in_recv() {
    for wait in [WaitPolicy::Block, WaitPolicy::default()] {
        let ((_otx, _orx), (_ptx, mut prx)) = pair("shr", &opts().wait(wait));
        let stop = prx.shutdown_handle().expect("handle");
        let t = std::thread::spawn(move || {
            let start = Instant::now();
            let r = prx.recv().map(|m| m.payload().to_vec());
            (r, start.elapsed())
        });
        std::thread::sleep(Duration::from_millis(100));
        stop.shutdown();
        let (r, took) = t.join().expect("join");
        assert!(matches!(r, Err(Error::Shutdown)), "{wait:?}: {r:?}");
        assert!(took < Duration::from_secs(2), "woke after {took:?}");
    }
}

#[test]
fn shutdown_wakes_an_owner_waiting_for_its_first_peer() {
    let (mut otx, mut orx) = Channel::create(&uniq("shpre"), &opts()).expect("create");
    let (rstop, tstop) = (
        orx.shutdown_handle().unwrap(),
        otx.shutdown_handle().unwrap(),
    );
    let r = std::thread::spawn(move || orx.recv().map(|_| ()));
    let s = std::thread::spawn(move || otx.send(b"nobody"));
    std::thread::sleep(Duration::from_millis(100));
    rstop.shutdown();
    tstop.shutdown();
    assert!(matches!(r.join().unwrap(), Err(Error::Shutdown)));
    assert!(matches!(s.join().unwrap(), Err(Error::Shutdown)));
}

#[test]
fn shutdown_wakes_a_sender_blocked_on_a_full_ring() {
    let ((mut otx, _orx), (_ptx, mut prx)) = pair(
        "shs",
        &opts().slots(4).slot_size(128).wait(WaitPolicy::Block),
    );
    let n = fill(&mut otx);
    let stop = otx.shutdown_handle().expect("handle");
    let t = std::thread::spawn(move || {
        let r = otx.send(b"blocked");
        (r, otx)
    });
    std::thread::sleep(Duration::from_millis(100));
    stop.shutdown();
    let (r, mut otx) = t.join().expect("join");
    assert!(matches!(r, Err(Error::Shutdown)), "{r:?}");
    // Nothing half-sent; calls that need no wait still work after it.
    for i in 0..n {
        assert_eq!(prx.recv().expect("recv").payload(), [i]);
    }
    assert!(prx.try_recv().unwrap().is_none());
    otx.try_send(b"after").expect("try_send after shutdown");
    assert_eq!(prx.recv().expect("recv").payload(), b"after");
    assert!(matches!(
        otx.send_timeout(b"x", Duration::ZERO)
            .map_err(|e| e.into_error()),
        Ok(())
    ));
}

#[test]
fn after_shutdown_recv_drains_what_is_there_then_says_shutdown() {
    let ((mut otx, _orx), (_ptx, mut prx)) = pair("shd", &opts());
    otx.send(b"one").unwrap();
    otx.send(b"two").unwrap();
    prx.shutdown_handle().unwrap().shutdown();
    assert_eq!(prx.recv().unwrap().payload(), b"one");
    assert_eq!(prx.recv().unwrap().payload(), b"two");
    assert!(matches!(prx.recv().map(|_| ()), Err(Error::Shutdown)));
    assert!(matches!(
        prx.recv_timeout(Duration::from_secs(5)).map(|_| ()),
        Err(Error::Shutdown)
    ));
}

#[test]
fn peer_attached_and_is_closed_follow_the_peer() {
    let name = uniq("state");
    let (mut otx, mut orx) = Channel::create(&name, &opts()).expect("create");
    assert!(!otx.peer_attached() && !orx.peer_attached());
    assert!(!otx.is_closed() && !orx.is_closed());
    let (mut ptx, prx) = Channel::attach(&name, &opts()).expect("attach");
    ptx.send(b"bye").unwrap();
    assert!(otx.peer_attached() && ptx.peer_attached());
    drop((ptx, prx));
    let start = Instant::now();
    while !orx.is_closed() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "hang-up never seen"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(otx.is_closed() && !otx.peer_attached());
    // Closed, yet what the peer sent is still delivered.
    assert_eq!(orx.recv().unwrap().payload(), b"bye");
    assert!(matches!(orx.recv().map(|_| ()), Err(Error::PeerClosed)));
}

#[test]
fn recv_batch_hands_over_what_is_waiting_in_order_and_releases_the_slots() {
    let ((mut otx, _orx), (_ptx, mut prx)) = pair("batch", &opts().slots(8).slot_size(128));
    for round in 0..3u8 {
        for i in 0..8u8 {
            otx.send_batched(0, &[round, i]).unwrap();
        }
        otx.flush().unwrap();
        let mut got = Vec::new();
        let n = prx
            .recv_batch(5, |m| got.push(m.payload().to_vec()))
            .unwrap();
        assert_eq!(n, 5);
        let n = prx
            .try_recv_batch(100, |m| got.push(m.payload().to_vec()))
            .unwrap();
        assert_eq!(n, 3);
        let want: Vec<Vec<u8>> = (0..8u8).map(|i| vec![round, i]).collect();
        assert_eq!(got, want);
        // Every slot was released: the next round of 8 fits again.
        assert_eq!(prx.try_recv_batch(100, |_| {}).unwrap(), 0);
    }
}
