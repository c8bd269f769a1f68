//! The async halves (feature `tokio`) on the kernel backend, under the
//! multi-threaded runtime (the userspace backend's are
//! client/tests/tokio.rs): pending `send`/`recv` futures dropped over and
//! over by a `select!` lose and reorder nothing, and a pending `recv` ends
//! on Shutdown and on the peer's hang-up.

use crate::check;
use crate::harness::{Test, TestResult};
use secure_ipc::{AsyncReceiver, AsyncSender, Backend, Channel, Error, Options, WaitPolicy};
use std::time::Duration;

/// The tests of this file.
pub const TESTS: &[Test] = &[
    Test::new(
        "client_api_tokio_select_drops_lose_nothing",
        client_api_tokio_select_drops_lose_nothing,
    )
    .timeout(300),
    Test::new(
        "client_api_tokio_pending_recv_ends_on_shutdown_and_peer_closed",
        client_api_tokio_pending_recv_ends_on_shutdown_and_peer_closed,
    ),
];

fn opts() -> Options {
    Options::new()
        .backend(Backend::Kernel)
        .slots(16)
        .slot_size(256)
        .wait(WaitPolicy::Block)
}

fn name(tag: &str) -> String {
    format!("tk-{tag}-{}", std::process::id())
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))
}

/// The stream length of the datapath stream test: 100,000 by default,
/// 24,000 on the sanitizer kernels, `SIPC_GUEST_STREAM_COUNT` when set.
fn count() -> Result<u64, String> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    match std::env::var("SIPC_GUEST_STREAM_COUNT") {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("SIPC_GUEST_STREAM_COUNT={v}: not a count")),
        Err(_) if release.contains("-sipc-") => Ok(24_000),
        Err(_) => Ok(100_000),
    }
}

fn client_api_tokio_select_drops_lose_nothing() -> TestResult {
    let n = count()?;
    let nm = name("sel");
    let (otx, _orx) = Channel::create(&nm, &opts()).map_err(|e| format!("create: {e}"))?;
    let (_ptx, prx) = Channel::attach(&nm, &opts()).map_err(|e| format!("attach: {e}"))?;
    let rt = runtime()?;
    rt.block_on(async move {
        let mut tx = AsyncSender::new(otx).map_err(|e| format!("async tx: {e}"))?;
        let mut rx = AsyncReceiver::new(prx).map_err(|e| format!("async rx: {e}"))?;
        let producer = tokio::spawn(async move {
            let mut dropped = 0u64;
            let mut tick = tokio::time::interval(Duration::from_micros(50));
            let mut i = 0u64;
            while i < n {
                let payload = i.to_le_bytes();
                tokio::select! {
                    r = tx.send(&payload) => { r.map_err(|e| format!("send {i}: {e}"))?; i += 1; }
                    _ = tick.tick() => dropped += 1,
                }
            }
            Ok::<_, String>((dropped, tx))
        });
        let consumer = tokio::spawn(async move {
            let mut dropped = 0u64;
            let mut tick = tokio::time::interval(Duration::from_micros(50));
            let mut next = 0u64;
            while next < n {
                tokio::select! {
                    m = rx.recv() => {
                        let m = m.map_err(|e| format!("recv {next}: {e}"))?;
                        let v = u64::from_le_bytes(m.payload().try_into().map_err(|_| "not 8 bytes")?);
                        if v != next {
                            return Err(format!("got {v}, expected {next}: lost or reordered"));
                        }
                        next += 1;
                    }
                    _ = tick.tick() => dropped += 1,
                }
            }
            let extra = rx.try_recv().map_err(|e| format!("try_recv: {e}"))?.is_some();
            Ok::<_, String>((dropped, extra, rx))
        });
        let (sdrop, _tx) = producer.await.map_err(|e| format!("producer: {e}"))??;
        let (rdrop, extra, _rx) = consumer.await.map_err(|e| format!("consumer: {e}"))??;
        println!("{n} messages; dropped futures: send {sdrop}, recv {rdrop}");
        check!(!extra, "a message beyond the {n} sent");
        check!(
            sdrop > 0 && rdrop > 0,
            "no future dropped: send {sdrop}, recv {rdrop}"
        );
        Ok(())
    })
}

fn client_api_tokio_pending_recv_ends_on_shutdown_and_peer_closed() -> TestResult {
    let nm = name("shut");
    let (otx, orx) = Channel::create(&nm, &opts()).map_err(|e| format!("create: {e}"))?;
    let (ptx, prx) = Channel::attach(&nm, &opts()).map_err(|e| format!("attach: {e}"))?;
    let rt = runtime()?;
    rt.block_on(async move {
        let mut rx = AsyncReceiver::new(orx).map_err(|e| format!("async rx: {e}"))?;
        let stop = rx.shutdown_handle();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            stop.shutdown();
        });
        let r = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .map_err(|_| "recv hung after shutdown")?
            .map(|_| ());
        check!(matches!(r, Err(Error::Shutdown)), "after shutdown: {r:?}");
        // The kernel endpoint hangs up when both its halves are gone.
        drop(rx);

        let mut rx = AsyncReceiver::new(prx).map_err(|e| format!("async rx: {e}"))?;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            drop(otx);
        });
        let r = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .map_err(|_| "recv hung after the peer closed")?
            .map(|_| ());
        check!(matches!(r, Err(Error::PeerClosed)), "after hang-up: {r:?}");
        drop(ptx);
        Ok(())
    })
}
