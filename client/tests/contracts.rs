//! Client API contracts of docs/client-api.md, on the userspace backend:
//! the readiness fd driven by a real level-triggered epoll loop, timeouts
//! that saturate, and `Sender::close` reporting what was not delivered.
//! (The kernel backend's half of the readiness test needs the module and
//! runs only in a guest; see docs/client-api.md.)

use secure_ipc::{Backend, Channel, Error, Options, Receiver, Sender, WaitPolicy};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

fn opts() -> Options {
    Options::new().backend(Backend::Userspace)
}

fn uniq(tag: &str) -> String {
    format!("ct{}-{tag}", std::process::id())
}

fn pair(tag: &str, o: Options) -> ((Sender, Receiver), (Sender, Receiver)) {
    let name = uniq(tag);
    let owner = Channel::create(&name, &o).expect("create");
    let peer = Channel::attach(&name, &opts()).expect("attach");
    (owner, peer)
}

/// A level-triggered epoll set watching one fd for EPOLLIN.
struct Epoll(RawFd);

impl Epoll {
    fn on(fd: RawFd) -> Self {
        // SAFETY: plain syscalls; results checked.
        unsafe {
            let ep = libc::epoll_create1(libc::EPOLL_CLOEXEC);
            assert!(ep >= 0);
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: 0,
            };
            assert_eq!(libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev), 0);
            Epoll(ep)
        }
    }
    /// Number of ready fds (0 on timeout).
    fn wait(&self, ms: i32) -> i32 {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: one valid event buffer.
        let n = unsafe { libc::epoll_wait(self.0, &mut ev, 1, ms) };
        assert!(n >= 0, "epoll_wait: {}", std::io::Error::last_os_error());
        n
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: our own epoll fd.
        unsafe { libc::close(self.0) };
    }
}

#[test]
fn epoll_loop_receives_everything_without_spinning() {
    const BURSTS: u32 = 200;
    const PER_BURST: u32 = 100;
    let ((mut otx, _orx), (_ptx, mut prx)) = pair("epoll-rx", opts().slots(256).slot_size(128));
    let sender = std::thread::spawn(move || {
        for b in 0..BURSTS {
            for i in 0..PER_BURST {
                otx.send((b * PER_BURST + i).to_le_bytes()).expect("send");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        otx
    });
    let ep = Epoll::on(prx.as_raw_fd());
    let (mut got, mut wakeups, mut empty_wakeups) = (0u32, 0u32, 0u32);
    let mut just_woke = false;
    while got < BURSTS * PER_BURST {
        let mut n = 0;
        while let Some(m) = prx.try_recv().expect("try_recv") {
            assert_eq!(m.payload(), got.to_le_bytes(), "message {got}");
            got += 1;
            n += 1;
        }
        if just_woke && n == 0 {
            empty_wakeups += 1;
        }
        just_woke = false;
        if got == BURSTS * PER_BURST || !prx.arm().expect("arm") {
            continue;
        }
        assert_eq!(ep.wait(5000), 1, "no wake-up with {got} messages received");
        wakeups += 1;
        just_woke = true;
    }
    let _otx = sender.join().expect("sender");
    // A doorbell left readable makes every epoll_wait return at once: tens
    // of thousands of empty wake-ups in the 1 ms gaps. A drained one leaves
    // at most a stale ring per arm.
    assert!(
        empty_wakeups <= 1000,
        "{empty_wakeups} of {wakeups} wake-ups found nothing (level-triggered spin)"
    );
}

#[test]
fn owner_readiness_fd_is_stable_and_wakes_when_a_peer_attaches() {
    let name = uniq("epoll-attach");
    let (_otx, mut orx) = Channel::create(&name, &opts()).expect("create");
    let fd = orx.as_raw_fd();
    let ep = Epoll::on(fd);
    assert!(
        orx.arm().expect("arm before attach"),
        "armed: wait for a peer"
    );
    assert_eq!(ep.wait(0), 0, "readable before anyone attached");
    let n2 = name.clone();
    let peer = std::thread::spawn(move || {
        let (mut ptx, prx) = Channel::attach(&n2, &opts()).expect("attach");
        ptx.send(b"hi").expect("send");
        (ptx, prx)
    });
    let t = Instant::now();
    loop {
        assert!(t.elapsed() < Duration::from_secs(10), "nothing arrived");
        assert_eq!(ep.wait(5000), 1, "the owner's fd never turned readable");
        if let Some(m) = orx.try_recv().expect("try_recv") {
            assert_eq!(m.payload(), b"hi");
            break;
        }
        if orx.arm().expect("arm") {
            continue;
        }
    }
    assert_eq!(orx.as_raw_fd(), fd, "as_raw_fd() changed at attach");
    let _peer = peer.join().expect("peer");
}

#[test]
fn sender_readiness_fd_wakes_when_room_appears_and_only_then() {
    let ((mut otx, _orx), (_ptx, mut prx)) = pair("epoll-tx", opts().slots(4).slot_size(128));
    let ep = Epoll::on(otx.as_raw_fd());
    for round in 0..3 {
        let mut sent = 0;
        loop {
            match otx.try_send(&[round]).map_err(|e| e.into_error()) {
                Ok(()) => sent += 1,
                Err(Error::Full) => break,
                Err(e) => panic!("try_send: {e}"),
            }
        }
        assert_eq!(sent, 4, "round {round}");
        assert!(
            otx.arm().expect("arm"),
            "arm on a full ring said there was room"
        );
        // Nobody reads: no readiness (a stale ring would show here).
        assert_eq!(ep.wait(100), 0, "round {round}: readable while still full");
        for _ in 0..4 {
            let m = prx.recv().expect("recv");
            assert_eq!(m.payload(), [round]);
        }
        assert_eq!(
            ep.wait(5000),
            1,
            "round {round}: no wake-up after room appeared"
        );
    }
}

#[test]
fn recv_timeout_of_duration_max_waits_instead_of_panicking() {
    let ((mut otx, _orx), (_ptx, mut prx)) = pair("tmax", opts());
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        otx.send(b"late").expect("send");
        otx
    });
    let m = prx.recv_timeout(Duration::MAX).expect("recv_timeout");
    assert_eq!(m.expect("a message").payload(), b"late");
    let _ = t.join();
}

#[test]
fn recv_timeout_of_thirty_days_sleeps_and_wakes() {
    let name = uniq("t30d");
    let (mut otx, _orx) = Channel::create(&name, &opts()).expect("create");
    let (_ptx, mut prx) = Channel::attach(&name, &opts().wait(WaitPolicy::Block)).expect("attach");
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        otx.send(b"late").expect("send");
        otx
    });
    let m = prx
        .recv_timeout(Duration::from_secs(30 * 86_400) + Duration::from_nanos(1))
        .expect("recv_timeout");
    assert_eq!(m.expect("a message").payload(), b"late");
    let _ = t.join();
}

#[test]
fn close_reports_the_messages_a_stalled_peer_never_took() {
    let ((mut otx, _orx), (_ptx, _prx)) = pair("close-stall", opts().slots(8));
    for i in 0..3u8 {
        otx.send([i]).expect("send");
    }
    let t = Instant::now();
    match otx.close(Duration::from_millis(200)) {
        Err(Error::NotDelivered { undelivered: 3 }) => {}
        other => panic!("expected NotDelivered {{ 3 }}, got {other:?}"),
    }
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "close overran its timeout"
    );
}

#[test]
fn close_returns_ok_once_the_peer_took_everything() {
    let ((mut otx, _orx), (_ptx, mut prx)) = pair("close-ok", opts().slots(8));
    let reader = std::thread::spawn(move || {
        for i in 0..100u8 {
            assert_eq!(prx.recv().expect("recv").payload(), [i]);
        }
        prx
    });
    for i in 0..100u8 {
        otx.send_batched(0, &[i]).expect("send");
    }
    otx.close(Duration::from_secs(10)).expect("close");
    let _ = reader.join();
}

#[test]
fn close_after_the_peer_hung_up_reports_the_loss_at_once() {
    let ((mut otx, _orx), (ptx, prx)) = pair("close-gone", opts().slots(8));
    for i in 0..5u8 {
        otx.send([i]).expect("send");
    }
    drop((ptx, prx));
    let t = Instant::now();
    match otx.close(Duration::from_secs(30)) {
        Err(Error::NotDelivered { undelivered: 5 }) => {}
        other => panic!("expected NotDelivered {{ 5 }}, got {other:?}"),
    }
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "close waited for a gone peer"
    );
}

#[test]
fn dropping_a_sender_with_queued_messages_never_waits_for_a_stalled_peer() {
    let ((mut otx, _orx), (_ptx, _prx)) = pair("drop-stall", opts().slots(4));
    for i in 0..4u8 {
        otx.send_batched(0, &[i]).expect("queue");
    }
    let t = Instant::now();
    drop(otx);
    assert!(t.elapsed() < Duration::from_secs(1));
}
