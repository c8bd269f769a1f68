//! `sipc bench`: one channel's throughput and latency, two threads.

use crate::Fail;
use secure_ipc::cli::args::Bench;
use secure_ipc::{resolve_backend, Channel, Error, Options, Sender};
use std::time::{Duration, Instant};

/// The `p` quantile (0..=1) of sorted samples; 0 when there are none.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// `sipc bench`: throughput, then ping-pong latency, of one channel
/// between two threads of this process. The table it prints is what
/// `cargo xtask bench --userspace --against REV` reads: keep its columns.
pub fn run(a: &Bench) -> Result<(), Fail> {
    let (size, batch, count) = (a.size, a.batch, a.count);
    let wait = a.wait.policy();
    let slot_size = (size + 56).next_power_of_two().max(128) as u32;
    let name = format!("sipc-bench-{}", std::process::id());
    let o = Options::new()
        .backend(a.backend)
        .wait(wait)
        .slots(1024)
        .slot_size(slot_size);
    let backend = resolve_backend(o.selected_backend());
    let (mut otx, mut orx) = Channel::create(&name, &o)?;
    let (mut ptx, mut prx) = Channel::attach(&name, &o)?;
    eprintln!("sipc bench: {backend:?} backend, {size} B messages, batch {batch}, {count} messages; two threads in one process");

    // Throughput: owner thread sends, this thread receives.
    let payload = vec![0xA5u8; size];
    let sender = std::thread::spawn(move || -> Result<Sender, Error> {
        let mut sent = 0;
        while sent < count {
            let n = batch.min(count - sent);
            for _ in 0..n {
                otx.send_batched(1, &payload)?;
            }
            otx.flush()?;
            sent += n;
        }
        Ok(otx)
    });
    let t0 = Instant::now();
    let mut last = t0;
    let mut bytes = 0u64;
    for i in 0..count {
        let m = prx.recv()?;
        bytes += m.payload().len() as u64;
        drop(m);
        if last.elapsed() >= Duration::from_millis(500) {
            last = Instant::now();
            let s = t0.elapsed().as_secs_f64();
            eprint!(
                "\r  {i:>10} / {count} messages, {:>12.0} msg/s",
                i as f64 / s
            );
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let mut otx = sender
        .join()
        .map_err(|_| Fail("sender thread panicked".into(), 1))??;
    eprintln!("\r  {count:>10} / {count} messages, done{:30}", "");

    // Latency: 20k ping-pongs of `size` bytes; one-way = round trip / 2.
    let rounds = 20_000usize.min(count as usize).max(100);
    let echo = std::thread::spawn(move || -> Result<(), Error> {
        let mut buf = vec![0u8; size];
        for _ in 0..rounds {
            let m = orx.recv()?;
            let n = m.payload().len();
            buf[..n].copy_from_slice(m.payload());
            drop(m);
            otx.send(&buf[..n])?;
        }
        Ok(())
    });
    let ping = vec![0x5Au8; size];
    let mut rtt = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        ptx.send(&ping)?;
        let m = prx.recv()?;
        drop(m);
        rtt.push(t.elapsed().as_nanos() as u64 / 2);
    }
    echo.join()
        .map_err(|_| Fail("echo thread panicked".into(), 1))??;
    rtt.sort_unstable();

    println!("| backend | size | batch | messages | seconds | msg/s | MB/s | one-way p50 | p99 | p99.9 |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {backend:?} | {size} | {batch} | {count} | {secs:.3} | {:.0} | {:.1} | {:.1} us | {:.1} us | {:.1} us |",
        count as f64 / secs,
        bytes as f64 / secs / 1e6,
        percentile(&rtt, 0.5) as f64 / 1e3,
        percentile(&rtt, 0.99) as f64 / 1e3,
        percentile(&rtt, 0.999) as f64 / 1e3,
    );
    Ok(())
}
