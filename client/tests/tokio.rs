//! The async halves (feature `tokio`) on the userspace backend, under the
//! multi-threaded runtime: cancellation safety of `recv` and `send` in a
//! `select!` that keeps dropping them, and Shutdown / PeerClosed ending a
//! pending future. The kernel backend's twin is the guest test
//! `client_api_tokio_select_drops_lose_nothing`.

use secure_ipc::{AsyncReceiver, AsyncSender, Backend, Channel, Error, Options, WaitPolicy};
use std::time::Duration;

/// The example's service (client/examples/tokio_service.rs), driven here.
#[path = "../examples/tokio_service.rs"]
mod example;

fn opts() -> Options {
    Options::new()
        .backend(Backend::Userspace)
        .slots(16)
        .slot_size(256)
        .wait(WaitPolicy::Block)
}

fn uniq(tag: &str) -> String {
    format!("tk{}-{tag}", std::process::id())
}

/// Messages of the select! stream (`SIPC_TOKIO_COUNT` overrides).
fn count() -> u64 {
    std::env::var("SIPC_TOKIO_COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// A producer task and a consumer task, each in a `select!` against a
/// timer that fires every 50 µs, so pending `send` and `recv` futures are
/// dropped over and over (a small ring keeps the producer waiting for
/// room). Every message must arrive once, in order, and both sides must
/// actually have dropped futures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_drops_pending_send_and_recv_and_loses_nothing() {
    let n = count();
    let name = uniq("sel");
    let (otx, _orx) = Channel::create(&name, &opts()).expect("create");
    let (_ptx, prx) = Channel::attach(&name, &opts()).expect("attach");
    let mut tx = AsyncSender::new(otx).expect("async tx");
    let mut rx = AsyncReceiver::new(prx).expect("async rx");

    let producer = tokio::spawn(async move {
        let mut dropped = 0u64;
        let mut tick = tokio::time::interval(Duration::from_micros(50));
        let mut i = 0u64;
        while i < n {
            let payload = i.to_le_bytes();
            tokio::select! {
                r = tx.send(&payload) => { r.expect("send"); i += 1; }
                _ = tick.tick() => dropped += 1,
            }
        }
        (dropped, tx)
    });
    let consumer = tokio::spawn(async move {
        let mut dropped = 0u64;
        let mut tick = tokio::time::interval(Duration::from_micros(50));
        let mut next = 0u64;
        while next < n {
            tokio::select! {
                m = rx.recv() => {
                    let m = m.expect("recv");
                    let v = u64::from_le_bytes(m.payload().try_into().expect("8 bytes"));
                    assert_eq!(v, next, "message out of order or lost");
                    next += 1;
                }
                _ = tick.tick() => dropped += 1,
            }
        }
        assert!(rx.try_recv().expect("try_recv").is_none(), "extra message");
        (dropped, rx)
    });
    let (sdrop, _tx) = producer.await.expect("producer");
    let (rdrop, _rx) = consumer.await.expect("consumer");
    eprintln!("{n} messages; dropped futures: send {sdrop}, recv {rdrop}");
    assert!(
        sdrop > 0 && rdrop > 0,
        "no future was dropped: send {sdrop}, recv {rdrop}"
    );
}

/// A recv pending on an empty channel ends with Shutdown when the switch
/// is set from another task, and with PeerClosed when the peer hangs up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_recv_ends_on_shutdown_and_on_peer_closed() {
    let name = uniq("shut");
    let (otx, orx) = Channel::create(&name, &opts()).expect("create");
    let (ptx, prx) = Channel::attach(&name, &opts()).expect("attach");
    let mut rx = AsyncReceiver::new(orx).expect("async rx");
    let stop = rx.shutdown_handle();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.shutdown();
    });
    let r = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("recv hung after shutdown")
        .map(|_| ());
    assert!(matches!(r, Err(Error::Shutdown)), "{r:?}");

    let mut rx = AsyncReceiver::new(prx).expect("async rx");
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(otx);
    });
    let r = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("recv hung after the peer closed")
        .map(|_| ());
    assert!(matches!(r, Err(Error::PeerClosed)), "{r:?}");
    drop(ptx);
}

/// A send pending on a full channel ends with PeerClosed when the peer
/// hangs up, and an owner's send waits for its first peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_send_waits_for_attach_and_ends_on_peer_closed() {
    let name = uniq("full");
    let (otx, _orx) = Channel::create(&name, &opts()).expect("create");
    let mut tx = AsyncSender::new(otx).expect("async tx");
    let n2 = name.clone();
    let peer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let halves = Channel::attach(&n2, &opts()).expect("attach");
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(halves);
    });
    let r = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            tx.send(b"x").await?;
        }
        #[allow(unreachable_code)]
        Ok::<(), Error>(())
    })
    .await
    .expect("send hung after the peer closed");
    assert!(matches!(r, Err(Error::PeerClosed)), "{r:?}");
    peer.await.expect("peer");
}

/// The tokio_service example: a channel and a TCP listener in one
/// `select!` loop; a TCP client is answered while readings stream in,
/// and the service counts every reading before the peer hangs up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_tokio_service_serves_tcp_while_receiving() {
    let name = uniq("svc");
    let o = Options::new().backend(Backend::Userspace);
    let (_tx, rx) = Channel::create(&name, &o).expect("create");
    let rx = AsyncReceiver::new(rx).expect("async rx");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let service = tokio::spawn(example::serve(rx, listener));
    let o2 = o.clone();
    let producer = std::thread::spawn(move || example::produce(&name, &o2, 5000));
    let line = example::query(addr).await.expect("query");
    assert!(line.starts_with("count="), "{line:?}");
    producer.join().expect("producer").expect("produce");
    let n = tokio::time::timeout(Duration::from_secs(20), service)
        .await
        .expect("service did not end after the peer hung up")
        .expect("join")
        .expect("serve");
    assert_eq!(n, 5000);
}
