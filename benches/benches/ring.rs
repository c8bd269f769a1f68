//! The ring in-process, one producer thread and one consumer thread, side by
//! side with `rtrb` and `crossbeam_queue::ArrayQueue` moving the same
//! payloads (8 B, 64 B, 4 KiB) singly and in batches of 32. Throughput is in
//! messages per second; each criterion iteration is one message.
//!
//! Every queue copies the payload in on the producer side and out on the
//! consumer side; the ring additionally writes and validates a 16-byte
//! descriptor per message. `secure_ipc_ring` publishes as for a busy-polling
//! consumer (like rtrb and ArrayQueue, which have no sleep protocol);
//! `secure_ipc_ring+wakeup` runs the NEED_WAKEUP check ([O6]: a SeqCst fence
//! and a flag load) once per publish, as a consumer that may sleep needs.
//!
//! The producer runs on CPU 1 and the consumer on CPU 0 (pinned).
//!
//! rtrb stores its elements with their own alignment: `[u8; 64]` payloads
//! start wherever the allocator put the buffer and straddle two cache lines,
//! where the ring's slots are cache-line aligned by its layout. The
//! interleaved table therefore also runs rtrb on the same bytes in a 64-byte
//! aligned element (`rtrb_aligned`, for payloads of 64 bytes and more), so
//! the comparison does not hinge on that.
//!
//! `rtrb_len` moves what one ring message carries besides its bytes, its
//! length: an element of a u32 length and the payload. The last table holds
//! the two targets of issue 17 item 6 at 64 bytes: the ring >= 1.0x
//! `rtrb_len` and >= 0.9x rtrb with bare `[u8; 64]` elements.
//!
//! `cargo bench -p secure-ipc-benches --bench ring`

use criterion::{black_box, criterion_group, BenchmarkId, Criterion, Throughput};
use crossbeam_queue::ArrayQueue;
use secure_ipc_benches::Backoff;
use secure_ipc_ring::abi::TxDesc;
use secure_ipc_ring::{channel, PeekError, Producer, PushError, ReserveError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Slots in every queue.
const CAPACITY: usize = 256;

/// Pins the calling thread to one CPU (modulo the CPUs present), so the
/// producer and the consumer never share a core: the bench measures the
/// cross-core protocol, not time-slicing on one core.
fn pin_to_cpu(cpu: usize) {
    let n = thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET and
    // sched_setaffinity only read and write this local set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu % n, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// `wake_check`: publish with the NEED_WAKEUP check ([O6] fence), as a
/// consumer that may sleep needs; without it, as for a busy-polling consumer.
fn run_ring<const S: usize>(n: u64, batch: u32, wake_check: bool) -> Duration {
    let slot_size = (S as u32).next_power_of_two().max(64);
    let (mut tx, mut rx) = channel::<TxDesc>(CAPACITY as u32, slot_size).unwrap();
    let start = Instant::now();
    thread::scope(|s| {
        s.spawn(move || {
            pin_to_cpu(1);
            let payload = [0xA5u8; S];
            let mut backoff = Backoff::default();
            let mut sent = 0u64;
            while sent < n {
                if batch == 1 {
                    match tx.push(TxDesc::default(), &payload) {
                        Ok(()) => {
                            publish(&mut tx, wake_check);
                            sent += 1;
                            backoff.reset();
                        }
                        Err(PushError::Full(_)) => backoff.snooze(),
                        Err(e) => panic!("{e}"),
                    }
                    continue;
                }
                let k = (n - sent).min(batch as u64) as u32;
                match tx.reserve_batch(k) {
                    Ok(mut b) => {
                        for i in 0..k {
                            b.write(i, TxDesc::default(), &payload).unwrap();
                        }
                        b.commit();
                        publish(&mut tx, wake_check);
                        sent += k as u64;
                        backoff.reset();
                    }
                    Err(ReserveError::Full { .. }) => backoff.snooze(),
                    Err(e) => panic!("{e}"),
                }
            }
        });
        pin_to_cpu(0);
        let mut buf = [0u8; S];
        let mut backoff = Backoff::default();
        let mut got = 0u64;
        while got < n {
            if batch == 1 {
                match rx.peek() {
                    Ok(m) => {
                        m.read_payload(&mut buf).unwrap();
                        black_box(&buf);
                        m.release();
                        got += 1;
                        backoff.reset();
                    }
                    Err(PeekError::Empty) => backoff.snooze(),
                    Err(e) => panic!("{e}"),
                }
                continue;
            }
            match rx.peek_batch(batch) {
                Ok(b) => {
                    for m in &b {
                        m.unwrap().read_payload(&mut buf).unwrap();
                        black_box(&buf);
                    }
                    got += b.len() as u64;
                    b.release();
                    backoff.reset();
                }
                Err(PeekError::Empty) => backoff.snooze(),
                Err(e) => panic!("{e}"),
            }
        }
    });
    start.elapsed()
}

#[inline]
fn publish(tx: &mut Producer<TxDesc>, wake_check: bool) {
    if wake_check {
        black_box(tx.publish());
    } else {
        tx.publish_without_wake_check();
    }
}

/// A payload type for rtrb: `[u8; S]` itself, the same bytes in a
/// cache-line aligned element, or a length and the bytes.
trait Payload<const S: usize>: Copy + Send + 'static {
    fn new(bytes: [u8; S]) -> Self;
    /// The message's bytes as the consumer sees them.
    fn bytes(&self) -> &[u8];
}

impl<const S: usize> Payload<S> for [u8; S] {
    fn new(bytes: [u8; S]) -> Self {
        bytes
    }
    fn bytes(&self) -> &[u8] {
        self
    }
}

/// What one ring message carries that a bare payload does not: its length
/// (issue 17 item 6: rtrb "moving the same information", an element of a
/// u32 length plus the payload; 68 bytes for a 64-byte payload). The
/// consumer reads the length and takes that many bytes, as the ring's
/// consumer does with the descriptor's `len`.
#[derive(Clone, Copy)]
#[repr(C)]
struct WithLen<const S: usize> {
    len: u32,
    bytes: [u8; S],
}

impl<const S: usize> Payload<S> for WithLen<S> {
    fn new(bytes: [u8; S]) -> Self {
        Self {
            len: S as u32,
            bytes,
        }
    }
    fn bytes(&self) -> &[u8] {
        &self.bytes[..(self.len as usize).min(S)]
    }
}

/// `S` bytes starting on a cache line (for S a multiple of 64 its size is
/// exactly S, so rtrb moves the same bytes per message).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct LineAligned<const S: usize>([u8; S]);

impl<const S: usize> Payload<S> for LineAligned<S> {
    fn new(bytes: [u8; S]) -> Self {
        Self(bytes)
    }
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

fn run_rtrb<const S: usize, P: Payload<S>>(n: u64, batch: usize) -> Duration {
    let (mut tx, mut rx) = rtrb::RingBuffer::<P>::new(CAPACITY);
    let start = Instant::now();
    thread::scope(|s| {
        s.spawn(move || {
            pin_to_cpu(1);
            let payload = P::new([0xA5u8; S]);
            let mut backoff = Backoff::default();
            let mut sent = 0u64;
            while sent < n {
                if batch == 1 {
                    match tx.push(payload) {
                        Ok(()) => {
                            sent += 1;
                            backoff.reset();
                        }
                        Err(_) => backoff.snooze(),
                    }
                    continue;
                }
                let k = (n - sent).min(batch as u64) as usize;
                match tx.write_chunk_uninit(k) {
                    Ok(chunk) => {
                        chunk.fill_from_iter(std::iter::repeat(payload));
                        sent += k as u64;
                        backoff.reset();
                    }
                    Err(_) => backoff.snooze(),
                }
            }
        });
        pin_to_cpu(0);
        let mut buf = [0u8; S];
        let mut backoff = Backoff::default();
        let mut got = 0u64;
        while got < n {
            if batch == 1 {
                match rx.pop() {
                    Ok(v) => {
                        black_box(v.bytes());
                        got += 1;
                        backoff.reset();
                    }
                    Err(_) => backoff.snooze(),
                }
                continue;
            }
            let k = rx.slots().min(batch);
            if k == 0 {
                backoff.snooze();
                continue;
            }
            let chunk = rx.read_chunk(k).unwrap();
            let (a, b) = chunk.as_slices();
            for v in a.iter().chain(b) {
                let p = v.bytes();
                buf[..p.len()].copy_from_slice(p);
                black_box(&buf);
            }
            chunk.commit_all();
            got += k as u64;
            backoff.reset();
        }
    });
    start.elapsed()
}

/// ArrayQueue has no batch API: a batch is `batch` single pushes/pops.
fn run_crossbeam<const S: usize>(n: u64) -> Duration {
    let q = Arc::new(ArrayQueue::<[u8; S]>::new(CAPACITY));
    let start = Instant::now();
    thread::scope(|s| {
        let tq = q.clone();
        s.spawn(move || {
            pin_to_cpu(1);
            let payload = [0xA5u8; S];
            let mut backoff = Backoff::default();
            let mut sent = 0u64;
            while sent < n {
                match tq.push(payload) {
                    Ok(()) => {
                        sent += 1;
                        backoff.reset();
                    }
                    Err(_) => backoff.snooze(),
                }
            }
        });
        pin_to_cpu(0);
        let mut backoff = Backoff::default();
        let mut got = 0u64;
        while got < n {
            match q.pop() {
                Some(v) => {
                    black_box(&v);
                    got += 1;
                    backoff.reset();
                }
                None => backoff.snooze(),
            }
        }
    });
    start.elapsed()
}

fn group<const S: usize>(c: &mut Criterion, label: &str) {
    for batch in [1u32, 32] {
        let mut g = c.benchmark_group(format!("spsc {label} batch {batch}"));
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::from_parameter("secure_ipc_ring"), |b| {
            b.iter_custom(|iters| run_ring::<S>(iters, batch, false))
        });
        g.bench_function(BenchmarkId::from_parameter("secure_ipc_ring+wakeup"), |b| {
            b.iter_custom(|iters| run_ring::<S>(iters, batch, true))
        });
        g.bench_function(BenchmarkId::from_parameter("rtrb"), |b| {
            b.iter_custom(|iters| run_rtrb::<S, [u8; S]>(iters, batch as usize))
        });
        g.bench_function(BenchmarkId::from_parameter("rtrb_len"), |b| {
            b.iter_custom(|iters| run_rtrb::<S, WithLen<S>>(iters, batch as usize))
        });
        g.bench_function(BenchmarkId::from_parameter("crossbeam_ArrayQueue"), |b| {
            b.iter_custom(run_crossbeam::<S>)
        });
        g.finish();
    }
}

fn spsc(c: &mut Criterion) {
    group::<8>(c, "8B");
    group::<64>(c, "64B");
    group::<4096>(c, "4KiB");
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = spsc
}

const IMPLS: [&str; 5] = [
    "secure_ipc_ring",
    "secure_ipc_ring+wakeup",
    "rtrb",
    "crossbeam_ArrayQueue",
    "rtrb_aligned",
];

/// Messages per second of implementation `which` moving `n` messages.
fn rate<const S: usize>(which: usize, n: u64, batch: u32) -> f64 {
    let t = match which {
        0 => run_ring::<S>(n, batch, false),
        1 => run_ring::<S>(n, batch, true),
        2 => run_rtrb::<S, [u8; S]>(n, batch as usize),
        3 => run_crossbeam::<S>(n),
        _ => run_rtrb::<S, LineAligned<S>>(n, batch as usize),
    };
    n as f64 / t.as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// One table row: `ROUNDS` rounds, each running every implementation once
/// in rotated order; reports each one's median rate and the median of the
/// per-round ratios to rtrb (a load burst hits one round, not one
/// implementation). `rtrb_aligned` runs only for payloads of 64 bytes and
/// more (an aligned 8-byte payload would be a 64-byte element).
fn summary_row<const S: usize>(label: &str, n: u64) {
    const ROUNDS: usize = 21;
    let impls = if S >= 64 {
        IMPLS.len()
    } else {
        IMPLS.len() - 1
    };
    for batch in [1u32, 32] {
        let mut rates = vec![Vec::new(); impls];
        let mut ratios = vec![Vec::new(); impls];
        let mut to_aligned = Vec::new();
        for round in 0..ROUNDS {
            let mut r = [0.0; IMPLS.len()];
            for k in 0..impls {
                let which = (round + k) % impls;
                r[which] = rate::<S>(which, n, batch);
            }
            for (i, v) in r.iter().take(impls).enumerate() {
                rates[i].push(*v);
                ratios[i].push(*v / r[2]);
            }
            if impls == IMPLS.len() {
                to_aligned.push(r[0] / r[4]);
            }
        }
        let mut cells: Vec<String> = rates
            .into_iter()
            .map(|v| format!("{:.2}", median(v) / 1e6))
            .collect();
        cells.resize(IMPLS.len(), "-".into());
        let aligned = if to_aligned.is_empty() {
            "-".to_string()
        } else {
            format!("{:.2}", median(to_aligned))
        };
        println!(
            "| {label} | {batch} | {} | {:.2} | {:.2} | {aligned} |",
            cells.join(" | "),
            median(ratios[0].clone()),
            median(ratios[1].clone()),
        );
    }
}

/// Issue 17 item 6: the ring moving 64-byte messages against rtrb moving
/// the same information (`WithLen<64>`, target >= 1.0x) and bare 64-byte
/// elements (`[u8; 64]`, target >= 0.9x), two pinned threads; `ROUNDS`
/// rounds in rotated order, medians of the per-round ratios.
fn item6_rows(n: u64) {
    const ROUNDS: usize = 21;
    let run = |which: usize, batch: u32| -> f64 {
        let t = match which {
            0 => run_ring::<64>(n, batch, false),
            1 => run_ring::<64>(n, batch, true),
            2 => run_rtrb::<64, WithLen<64>>(n, batch as usize),
            _ => run_rtrb::<64, [u8; 64]>(n, batch as usize),
        };
        n as f64 / t.as_secs_f64()
    };
    println!(
        "\nIssue 17 item 6 targets, 64-byte payloads, two pinned threads (Mmsg/s and ratios, medians of {ROUNDS} rounds):\n"
    );
    println!(
        "| batch | ring | ring+wakeup | rtrb_len (u32 + 64 B) | rtrb (64 B) | ring/rtrb_len (>= 1.0x) | ring/rtrb (>= 0.9x) | ring+wakeup/rtrb_len | ring+wakeup/rtrb |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for batch in [1u32, 32] {
        let mut rates = vec![Vec::new(); 4];
        let (mut to_len, mut to_bare, mut w_len, mut w_bare) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            let mut r = [0.0; 4];
            for k in 0..4 {
                let which = (round + k) % 4;
                r[which] = run(which, batch);
            }
            for (i, v) in r.iter().enumerate() {
                rates[i].push(*v);
            }
            to_len.push(r[0] / r[2]);
            to_bare.push(r[0] / r[3]);
            w_len.push(r[1] / r[2]);
            w_bare.push(r[1] / r[3]);
        }
        let cells: Vec<String> = rates
            .into_iter()
            .map(|v| format!("{:.2}", median(v) / 1e6))
            .collect();
        let (l, b) = (median(to_len), median(to_bare));
        let verdict = |x: f64, t: f64| if x >= t { "met" } else { "missed" };
        println!(
            "| {batch} | {} | {l:.2}x {} | {b:.2}x {} | {:.2}x | {:.2}x |",
            cells.join(" | "),
            verdict(l, 1.0),
            verdict(b, 0.9),
            median(w_len),
            median(w_bare),
        );
    }
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo bench` passes --bench; `cargo test --all-targets` does not, and
    // then criterion only smoke-tests each function once: skip the tables
    // (in a debug build their figures mean nothing).
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    println!("\nInterleaved side-by-side run (Mmsg/s, medians of 21 rounds):\n");
    println!(
        "| payload | batch | {} | ring/rtrb | ring+wakeup/rtrb | ring/rtrb_aligned |",
        IMPLS.join(" | ")
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    summary_row::<8>("8 B", 200_000);
    summary_row::<64>("64 B", 200_000);
    summary_row::<4096>("4 KiB", 20_000);
    item6_rows(200_000);
}
