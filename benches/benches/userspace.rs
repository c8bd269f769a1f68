//! The userspace backend against the baseline a user would otherwise write:
//! a Unix `SOCK_SEQPACKET` socket pair carrying the same records, sealed with
//! RustCrypto AES-256-GCM in user space (same nonce = salt ‖ le64(seq), same
//! 40-byte header as AAD, same receive-side checks), one `send(2)` /
//! `recv(2)` per message.
//!
//! Both sides of every measurement are **two threads of one process**
//! (sender and receiver; ping and echo), pinned to CPUs 0 and 1, run in the
//! same invocation, so the ratios compare like with like on this machine.
//!
//! - throughput: 64 B messages in batches of 32 (messages/s) and 16 KiB
//!   messages (MB/s); the channel publishes once per batch, the socket sends
//!   each record (it has no batch);
//! - one-way latency: 64 B ping-pong, round trip / 2, busy-poll (spinning
//!   receivers; the socket side spins on `MSG_DONTWAIT`) and blocking
//!   (eventfd doorbell vs a blocking `recv`).
//!
//! criterion reports the means; a final table prints p50/p99 and the ratios
//! from one more fixed-size run of each. `cargo bench -p secure-ipc-benches
//! --bench userspace` (add `-- --quick` for a short run).

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use criterion::{black_box, BenchmarkId, Criterion, Throughput};
use secure_ipc::{Backend, Channel, Options, Receiver, Sender, WaitPolicy};
use secure_ipc_ring::abi::RecordHeader;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::thread;
use std::time::{Duration, Instant};

const SMALL: usize = 64;
const LARGE: usize = 16 * 1024;
const BATCH: u64 = 32;

/// Pins the calling thread to one CPU (modulo the CPUs online), so that the
/// two threads of every measurement run on CPUs 0 and 1 for both contenders.
fn pin(cpu: usize) {
    // SAFETY: sysconf has no memory effects.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
    // SAFETY: cpu_set_t is plain data; CPU_SET writes inside it; the syscall
    // reads the set we pass with its exact size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu % n, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

// ---------------------------------------------------------------------------
// The secure_ipc userspace backend
// ---------------------------------------------------------------------------

struct Chan {
    tx: Sender,
    rx: Receiver,
    /// The other endpoint, for echoing.
    ptx: Sender,
    prx: Receiver,
}

/// Ring memory per direction: 512 KiB (the baseline's socket buffers are
/// 4 MiB, so the channel buffers less, not more).
const RING_BYTES: u32 = 1 << 19;

fn chan(tag: &str, size: usize, wait: WaitPolicy) -> Chan {
    let name = format!("bench{}-{tag}", std::process::id());
    let slot = ((size + 56) as u32).next_power_of_two().max(128);
    let slots = (RING_BYTES / slot).clamp(16, 4096);
    let o = Options::new()
        .backend(Backend::Userspace)
        .slots(slots)
        .slot_size(slot)
        .wait(wait);
    let (tx, prx_owner) = Channel::create(&name, &o).expect("create");
    let (ptx, rx) = Channel::attach(&name, &o).expect("attach");
    // tx (owner) -> rx (peer); ptx (peer) -> prx (owner).
    Chan {
        tx,
        rx,
        ptx,
        prx: prx_owner,
    }
}

fn sipc_stream(c: &mut Chan, n: u64, size: usize, batch: u64) -> Duration {
    let payload = vec![0xA5u8; size];
    let (tx, rx) = (&mut c.tx, &mut c.rx);
    let start = Instant::now();
    thread::scope(|s| {
        pin(0);
        s.spawn(move || {
            pin(1);
            let mut sent = 0;
            while sent < n {
                let k = batch.min(n - sent);
                for _ in 0..k {
                    tx.send_batched(1, &payload).expect("send");
                }
                tx.flush().expect("flush");
                sent += k;
            }
        });
        let mut buf = vec![0u8; size];
        for _ in 0..n {
            let m = rx.recv().expect("recv");
            buf[..m.payload().len()].copy_from_slice(m.payload());
            black_box(&buf);
        }
    });
    start.elapsed()
}

/// `n` round trips; returns each one-way time (round trip / 2) in ns.
fn sipc_pingpong(c: &mut Chan, n: usize) -> Vec<u64> {
    let (tx, rx, ptx, prx) = (&mut c.tx, &mut c.rx, &mut c.ptx, &mut c.prx);
    let ping = [0x5Au8; SMALL];
    let mut out = Vec::with_capacity(n);
    thread::scope(|s| {
        pin(0);
        s.spawn(move || {
            pin(1);
            let mut buf = [0u8; SMALL];
            for _ in 0..n {
                let m = rx.recv().expect("echo recv");
                buf.copy_from_slice(m.payload());
                drop(m);
                ptx.send(buf).expect("echo send");
            }
        });
        for _ in 0..n {
            let t = Instant::now();
            tx.send(ping).expect("ping");
            let m = prx.recv().expect("pong");
            black_box(m.payload());
            drop(m);
            out.push(t.elapsed().as_nanos() as u64 / 2);
        }
    });
    out
}

// ---------------------------------------------------------------------------
// Baseline: SOCK_SEQPACKET + AES-256-GCM in user space
// ---------------------------------------------------------------------------

struct SealedSocket {
    fd: OwnedFd,
    cipher: Aes256Gcm,
    salt: [u8; 4],
    seq: u64,
    buf: Vec<u8>,
}

fn socketpair() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two descriptors into the array we pass.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    assert_eq!(r, 0, "socketpair: {}", std::io::Error::last_os_error());
    for fd in fds {
        let big: libc::c_int = 4 << 20;
        for opt in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
            // SAFETY: a valid int option value of the size we pass.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    opt,
                    (&big as *const libc::c_int).cast(),
                    4,
                );
            }
        }
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn sealed_pair(size: usize) -> (SealedSocket, SealedSocket) {
    let (a, b) = socketpair();
    let key = [0x11u8; 32];
    let mk = |fd| SealedSocket {
        fd,
        cipher: Aes256Gcm::new(&key.into()),
        salt: [1, 2, 3, 4],
        seq: 0,
        buf: vec![0u8; size + 56],
    };
    (mk(a), mk(b))
}

impl SealedSocket {
    fn header(&self, len: usize) -> RecordHeader {
        RecordHeader {
            channel_id: 7,
            seq: self.seq,
            timestamp_ns: secure_ipc::monotonic_ns(),
            epoch: 0,
            len: len as u32,
            type_: 1,
            direction: 0,
            version: 1,
            group_left: 0,
        }
    }

    fn nonce(&self, seq: u64) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[..4].copy_from_slice(&self.salt);
        n[4..].copy_from_slice(&seq.to_le_bytes());
        n
    }

    fn send(&mut self, payload: &[u8]) {
        let len = payload.len();
        let hdr = self.header(len);
        let aad = hdr.to_le_bytes();
        self.buf[..40].copy_from_slice(&aad);
        self.buf[40..40 + len].copy_from_slice(payload);
        let nonce = self.nonce(self.seq);
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut self.buf[40..40 + len])
            .expect("seal");
        self.buf[40 + len..56 + len].copy_from_slice(&tag);
        self.seq += 1;
        // SAFETY: sends 56 + len initialised bytes of our buffer.
        let r = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                self.buf.as_ptr().cast(),
                56 + len,
                libc::MSG_NOSIGNAL,
            )
        };
        assert_eq!(
            r,
            (56 + len) as isize,
            "send: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Receives, checks and opens one record; returns the payload length.
    fn recv(&mut self, spin: bool) -> usize {
        let flags = if spin { libc::MSG_DONTWAIT } else { 0 };
        let n = loop {
            // SAFETY: receives into our buffer of buf.len() bytes.
            let r = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    flags,
                )
            };
            if r >= 0 {
                break r as usize;
            }
            let e = std::io::Error::last_os_error();
            assert!(
                spin && e.kind() == std::io::ErrorKind::WouldBlock,
                "recv: {e}"
            );
            std::hint::spin_loop();
        };
        assert!(n >= 56, "short record");
        let mut hb = [0u8; 40];
        hb.copy_from_slice(&self.buf[..40]);
        let hdr = RecordHeader::from_le_bytes(&hb);
        assert_eq!(hdr.seq, self.seq, "sequence");
        assert_eq!(hdr.len as usize, n - 56, "length");
        let nonce = self.nonce(hdr.seq);
        let len = n - 56;
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&self.buf[40 + len..n]);
        self.cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(&nonce),
                &hb,
                &mut self.buf[40..40 + len],
                Tag::from_slice(&tag),
            )
            .expect("open");
        self.seq += 1;
        black_box(&self.buf[40..40 + len]);
        len
    }
}

fn base_stream(pair: &mut (SealedSocket, SealedSocket), n: u64, size: usize) -> Duration {
    let payload = vec![0xA5u8; size];
    let (a, b) = (&mut pair.0, &mut pair.1);
    let start = Instant::now();
    thread::scope(|s| {
        pin(0);
        s.spawn(move || {
            pin(1);
            for _ in 0..n {
                a.send(&payload);
            }
        });
        for _ in 0..n {
            b.recv(false);
        }
    });
    start.elapsed()
}

/// Ping-pong over two sealed socket pairs (one per direction, each with its
/// own sequence space), like the channel's two directions.
fn base_pingpong(
    fwd: &mut (SealedSocket, SealedSocket),
    back: &mut (SealedSocket, SealedSocket),
    n: usize,
    spin: bool,
) -> Vec<u64> {
    let ping = [0x5Au8; SMALL];
    let (a, b) = (&mut fwd.0, &mut fwd.1);
    let (c, d) = (&mut back.0, &mut back.1);
    let mut out = Vec::with_capacity(n);
    thread::scope(|s| {
        pin(0);
        s.spawn(move || {
            pin(1);
            let mut buf = [0u8; SMALL];
            for _ in 0..n {
                let len = b.recv(spin);
                buf[..len].copy_from_slice(&b.buf[40..40 + len]);
                c.send(&buf[..len]);
            }
        });
        for _ in 0..n {
            let t = Instant::now();
            a.send(&ping);
            d.recv(spin);
            out.push(t.elapsed().as_nanos() as u64 / 2);
        }
    });
    out
}

// ---------------------------------------------------------------------------
// criterion groups
// ---------------------------------------------------------------------------

fn bench_throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("userspace/throughput");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(1));
    let mut ch = chan("t64", SMALL, WaitPolicy::default());
    g.bench_function(BenchmarkId::new("secure_ipc", "64B-batch32"), |b| {
        b.iter_custom(|n| sipc_stream(&mut ch, n, SMALL, BATCH))
    });
    drop(ch);
    let mut pair = sealed_pair(SMALL);
    g.bench_function(BenchmarkId::new("socket+aes-gcm", "64B"), |b| {
        b.iter_custom(|n| base_stream(&mut pair, n, SMALL))
    });
    g.throughput(Throughput::Bytes(LARGE as u64));
    let mut ch = chan("t16k", LARGE, WaitPolicy::default());
    g.bench_function(BenchmarkId::new("secure_ipc", "16KiB"), |b| {
        b.iter_custom(|n| sipc_stream(&mut ch, n, LARGE, 1))
    });
    drop(ch);
    let mut pair = sealed_pair(LARGE);
    g.bench_function(BenchmarkId::new("socket+aes-gcm", "16KiB"), |b| {
        b.iter_custom(|n| base_stream(&mut pair, n, LARGE))
    });
    g.finish();
}

fn mean_of(v: &[u64]) -> Duration {
    Duration::from_nanos(v.iter().sum::<u64>() / v.len().max(1) as u64)
}

fn bench_latency(c: &mut Criterion) {
    let mut g = c.benchmark_group("userspace/latency-64B-one-way");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for (label, wait, spin) in [
        ("busy-poll", WaitPolicy::BusyPoll, true),
        ("blocking", WaitPolicy::Block, false),
    ] {
        let mut ch = chan(&format!("l{label}"), SMALL, wait);
        g.bench_function(BenchmarkId::new("secure_ipc", label), |b| {
            b.iter_custom(|n| mean_of(&sipc_pingpong(&mut ch, n as usize)) * n as u32)
        });
        drop(ch);
        let (mut f, mut bk) = (sealed_pair(SMALL), sealed_pair(SMALL));
        g.bench_function(BenchmarkId::new("socket+aes-gcm", label), |b| {
            b.iter_custom(|n| mean_of(&base_pingpong(&mut f, &mut bk, n as usize, spin)) * n as u32)
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------
// The side-by-side table
// ---------------------------------------------------------------------------

fn pct(v: &mut [u64], p: f64) -> f64 {
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p).round() as usize] as f64 / 1e3
}

fn table(quick: bool) {
    let scale = if quick { 5 } else { 1 };
    let n_small = 400_000 / scale;
    let n_large = 20_000 / scale;
    let rounds = 20_000 / scale as usize;

    let mut ch = chan("x64", SMALL, WaitPolicy::default());
    let ours_small = n_small as f64 / sipc_stream(&mut ch, n_small, SMALL, BATCH).as_secs_f64();
    drop(ch);
    let mut pair = sealed_pair(SMALL);
    let base_small = n_small as f64 / base_stream(&mut pair, n_small, SMALL).as_secs_f64();
    let mut ch = chan("x16k", LARGE, WaitPolicy::default());
    let ours_large = (n_large * LARGE as u64) as f64
        / 1e6
        / sipc_stream(&mut ch, n_large, LARGE, 1).as_secs_f64();
    drop(ch);
    let mut pair = sealed_pair(LARGE);
    let base_large = (n_large * LARGE as u64) as f64
        / 1e6
        / base_stream(&mut pair, n_large, LARGE).as_secs_f64();

    let mut ch = chan("xbusy", SMALL, WaitPolicy::BusyPoll);
    let mut ours_busy = sipc_pingpong(&mut ch, rounds);
    drop(ch);
    let mut ch = chan("xblock", SMALL, WaitPolicy::Block);
    let mut ours_block = sipc_pingpong(&mut ch, rounds);
    drop(ch);
    let (mut f, mut b) = (sealed_pair(SMALL), sealed_pair(SMALL));
    let mut base_busy = base_pingpong(&mut f, &mut b, rounds, true);
    let (mut f, mut b) = (sealed_pair(SMALL), sealed_pair(SMALL));
    let mut base_block = base_pingpong(&mut f, &mut b, rounds, false);

    println!();
    println!("userspace backend vs Unix SOCK_SEQPACKET + AES-256-GCM (two threads of one process pinned to CPUs 0 and 1, same run)");
    println!("| measurement | secure_ipc userspace | socket + aes-gcm | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| 64 B, batch 32: messages/s | {ours_small:.0} | {base_small:.0} | {:.2}x |",
        ours_small / base_small
    );
    println!(
        "| 16 KiB: MB/s | {ours_large:.0} | {base_large:.0} | {:.2}x |",
        ours_large / base_large
    );
    for (label, ours, base) in [
        ("busy-poll", &mut ours_busy, &mut base_busy),
        ("blocking", &mut ours_block, &mut base_block),
    ] {
        let (o50, b50) = (pct(ours, 0.5), pct(base, 0.5));
        let (o99, b99) = (pct(ours, 0.99), pct(base, 0.99));
        println!(
            "| 64 B one-way {label} p50 | {o50:.1} us | {b50:.1} us | {:.2}x |",
            o50 / b50
        );
        println!(
            "| 64 B one-way {label} p99 | {o99:.1} us | {b99:.1} us | {:.2}x |",
            o99 / b99
        );
    }
    println!("(throughput ratio = ours / baseline, higher is better; latency ratio = ours / baseline, lower is better)");
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let mut c = Criterion::default().configure_from_args();
    bench_throughput(&mut c);
    bench_latency(&mut c);
    c.final_summary();
    // `cargo bench` passes --bench; `cargo test --all-targets` does not, and
    // then criterion only smoke-tests each function once: skip the table.
    if std::env::args().any(|a| a == "--bench") {
        table(quick);
    }
}
