//! A blocking sensor producer and consumer: the host side (owner) streams
//! IMU samples, the container side (peer) consumes them in batches.
//!
//! - The producer never blocks for long: a sample it cannot queue within
//!   `send_timeout` is stale by the time there is room, so it is dropped
//!   here, counted, and the payload handed back is reused for the next one.
//! - The consumer takes what is waiting in batches (`recv_batch`) and ends
//!   on `PeerClosed`, which comes only after every sample sent was received.
//! - The producer ends with `Sender::close`, which waits for the consumer
//!   to take everything and says how many it never took.
//! - A watchdog thread's `Shutdown` ends the consumer if it has not seen
//!   the hang-up 10 s after the producer finished.
//!
//! `cargo run -p secure-ipc --example sensor_pipeline [SAMPLES [CONSUMER_DELAY_US]]`
//! runs both on the userspace backend in one process (two threads, two
//! endpoints) and prints a summary; client/tests/sensor_pipeline.rs runs
//! the same `run` and checks it.

use secure_ipc::{Backend, Channel, Error, Options};
use std::io::Write;
use std::time::{Duration, Instant};

/// One sample on the wire: index, capture time, three axes.
const SAMPLE_LEN: usize = 8 + 8 + 3 * 4;

fn encode(index: u64, t_ns: u64, axes: [f32; 3]) -> [u8; SAMPLE_LEN] {
    let mut b = [0u8; SAMPLE_LEN];
    b[0..8].copy_from_slice(&index.to_le_bytes());
    b[8..16].copy_from_slice(&t_ns.to_le_bytes());
    for (i, a) in axes.iter().enumerate() {
        b[16 + 4 * i..20 + 4 * i].copy_from_slice(&a.to_le_bytes());
    }
    b
}

fn index_of(payload: &[u8]) -> Result<u64, Error> {
    if payload.len() != SAMPLE_LEN {
        return Err(Error::Protocol(format!(
            "sample of {} bytes",
            payload.len()
        )));
    }
    Ok(u64::from_le_bytes(
        payload[0..8].try_into().expect("8 bytes"),
    ))
}

/// What the producer did.
#[derive(Debug, Default)]
pub struct Produced {
    /// Samples sent (queued for the consumer).
    pub sent: u64,
    /// Samples dropped because the channel stayed full for `send_timeout`.
    pub dropped: u64,
    /// What `Sender::close` reported never taken (0 when all were).
    pub undelivered: usize,
}

/// What the consumer saw.
#[derive(Debug, Default)]
pub struct Consumed {
    /// Samples received.
    pub received: u64,
    /// `recv_batch` calls that returned samples.
    pub batches: u64,
    /// Largest batch.
    pub largest_batch: usize,
    /// Sample indices strictly increased and sequence numbers had no gap.
    pub in_order: bool,
    /// Samples whose index skipped ahead (the producer dropped some before).
    pub gaps: u64,
}

/// Owner side: `samples` samples, each waiting at most `patience` for room.
pub fn produce(tx: &mut secure_ipc::Sender, samples: u64, patience: Duration) -> Produced {
    let mut p = Produced::default();
    let start = Instant::now();
    for i in 0..samples {
        let t = start.elapsed().as_nanos() as u64;
        let axes = [(i as f32).sin(), (i as f32).cos(), 9.81];
        match tx.send_timeout(encode(i, t, axes), patience) {
            Ok(()) => p.sent += 1,
            // Full for the whole wait: the sample is stale, drop it.
            Err(e) if matches!(e.error(), Error::TimedOut) => p.dropped += 1,
            // PeerClosed and the rest: stop producing.
            Err(e) => {
                eprintln!("producer: {}", e.error());
                break;
            }
        }
    }
    p
}

/// Peer side: batches of at most 64 until the producer hangs up (or the
/// watchdog shuts the receiver down). `delay` is a per-batch processing
/// time, to make the consumer the slow side.
pub fn consume(rx: &mut secure_ipc::Receiver, delay: Duration) -> Result<Consumed, Error> {
    let mut c = Consumed {
        in_order: true,
        ..Consumed::default()
    };
    let mut last_index: Option<u64> = None;
    let mut next_seq = 0u64;
    let mut bad: Option<Error> = None;
    loop {
        let got = rx.recv_batch(64, |m| {
            match index_of(m.payload()) {
                Ok(i) => {
                    if last_index.is_some_and(|l| i <= l) || m.seq() != next_seq {
                        c.in_order = false;
                    }
                    if last_index.is_some_and(|l| i > l + 1) {
                        c.gaps += 1;
                    }
                    last_index = Some(i);
                }
                Err(e) => bad = Some(e),
            }
            next_seq = m.seq() + 1;
            c.received += 1;
        });
        if let Some(e) = bad.take() {
            return Err(e);
        }
        match got {
            Ok(n) => {
                c.batches += 1;
                c.largest_batch = c.largest_batch.max(n);
                if !delay.is_zero() {
                    std::thread::sleep(delay);
                }
            }
            // Everything the producer sent was received.
            Err(Error::PeerClosed) => return Ok(c),
            // The watchdog: nothing came for too long.
            Err(Error::Shutdown) => return Ok(c),
            Err(e) => return Err(e),
        }
    }
}

/// Runs the pipeline on the userspace backend and writes the summary to `out`.
pub fn run(samples: u64, consumer_delay: Duration, out: &mut dyn Write) -> Result<(), Error> {
    let name = format!("sensor-{}-{}", std::process::id(), samples);
    // A small ring, so that a slow consumer makes the producer drop.
    let opts = Options::new()
        .backend(Backend::Userspace)
        .slots(64)
        .slot_size(128);
    let (mut tx, _owner_rx) = Channel::create(&name, &opts)?;
    let (_peer_tx, mut rx) = Channel::attach(&name, &opts)?;
    let stop = rx.shutdown_handle()?;
    let consumer = std::thread::spawn(move || consume(&mut rx, consumer_delay));
    let mut produced = produce(&mut tx, samples, Duration::from_micros(200));
    // Waits for the consumer to take everything; never longer than 10 s.
    produced.undelivered = match tx.close(Duration::from_secs(10)) {
        Ok(()) => 0,
        Err(Error::NotDelivered { undelivered }) => undelivered,
        Err(e) => return Err(e),
    };
    // The watchdog: the producer is done, the consumer has 10 s to drain.
    let (done, wait_done) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if wait_done.recv_timeout(Duration::from_secs(10)).is_err() {
            stop.shutdown();
        }
    });
    let consumed = consumer.join().expect("consumer panicked");
    let _ = done.send(());
    watchdog.join().expect("watchdog panicked");
    let consumed = consumed?;
    writeln!(out, "produced {samples}").map_err(Error::Io)?;
    writeln!(out, "sent {} dropped {}", produced.sent, produced.dropped).map_err(Error::Io)?;
    writeln!(out, "undelivered {}", produced.undelivered).map_err(Error::Io)?;
    writeln!(
        out,
        "received {} in {} batches (largest {}), gaps {}",
        consumed.received, consumed.batches, consumed.largest_batch, consumed.gaps
    )
    .map_err(Error::Io)?;
    writeln!(
        out,
        "in order: {}",
        if consumed.in_order { "yes" } else { "NO" }
    )
    .map_err(Error::Io)?;
    Ok(())
}

#[allow(dead_code)]
fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let samples = args.next().map_or(20_000, |s| s.parse().expect("SAMPLES"));
    let delay_us: u64 = args
        .next()
        .map_or(0, |s| s.parse().expect("CONSUMER_DELAY_US"));
    run(
        samples,
        Duration::from_micros(delay_us),
        &mut std::io::stdout(),
    )
}
