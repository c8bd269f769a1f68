//! `--against BASELINE.ko --current CURRENT.ko --labels NEW,OLD`: this
//! tree's module ("new") against the module of an older revision ("old",
//! `cargo xtask bench --against REV`), in the same guest boot.
//!
//! Both builds are named `secure_ipc`, so only one is loaded at a time: the
//! bench unloads one (delete_module) and loads the other (finit_module)
//! before every single measurement. A round measures every row once with
//! each module, the two back to back: new then old in even rounds, old then
//! new in odd ones. So the two figures of a pair are seconds apart (a drift
//! of the host's load, which other guests on the same cores cause, hits
//! both alike), the order is counterbalanced, and every measurement starts
//! right after a fresh load. A row's figure is the median over its rounds
//! (latency: the p50 of the pooled samples), and the range is that of the
//! per-round new/old ratios.
//!
//! ABI: the old module of 76e47ee speaks ABI version 1, this tree 2. The
//! rings and every ioctl struct this bench uses have the same sizes and
//! offsets in both (CREATE's `peer_pidns_ino` became `peer_pidns_fd` +
//! `reserved1`, left zero; INFO and STATS grew into reserved space), so
//! while the old module is loaded, and only then, the channels are opened
//! with `Options::accept_ring_compatible_abi(true)`, which accepts a ring
//! header of an ABI version listed in
//! `secure_ipc_ring::abi::SIPC_RING_COMPATIBLE_ABI_VERSIONS`. The INFO
//! ioctl after each load checks which module is in.

use super::*;
use secure_ipc_ring::abi;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set while the old module is loaded (before the measuring processes fork).
static RING_COMPATIBLE: AtomicBool = AtomicBool::new(false);

/// Whether channels must accept a ring-compatible older ABI version.
pub(crate) fn ring_compatible() -> bool {
    RING_COMPATIBLE.load(Ordering::Relaxed)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Which {
    New,
    Old,
}

/// What one row measures.
#[derive(Clone, Copy, Debug)]
enum Row {
    /// Channel throughput over the rings (SEND/RECV), messages/s.
    Rings { size: usize, batch: usize },
    /// write(2) on one side, read(2) on the other, messages/s.
    ReadWrite { size: usize },
    /// One-way 64 B latency p50, microseconds.
    Latency(LatKind),
    /// One process on one CPU: `batch` sends and one SEND, then the
    /// receives (RECV), messages/s: the CPU cost per message, without the
    /// two-CPU scheduling that makes the rows above noisy under TCG.
    OneCpuRings { size: usize, batch: usize },
    /// One process on one CPU: write(2) one message, read(2) it, messages/s.
    OneCpuReadWrite { size: usize },
}

impl Row {
    fn label(self) -> String {
        let sz = |s: usize| {
            if s >= 1024 {
                format!("{} KiB", s / 1024)
            } else {
                format!("{s} B")
            }
        };
        match self {
            Row::Rings { size, batch } => format!("rings {} batch {batch}, msg/s", sz(size)),
            Row::ReadWrite { size } => format!("write(2)/read(2) {}, msg/s", sz(size)),
            Row::Latency(k) => format!("{}, p50 us", k.label()),
            Row::OneCpuRings { size, batch } => {
                format!("1 CPU rings {} batch {batch}, msg/s", sz(size))
            }
            Row::OneCpuReadWrite { size } => format!("1 CPU write+read {}, msg/s", sz(size)),
        }
    }

    /// Rates: higher is better; latencies: lower.
    fn is_rate(self) -> bool {
        !matches!(self, Row::Latency(_))
    }
}

fn rows() -> Vec<Row> {
    let mut v = Vec::new();
    for size in SIZES {
        for batch in BATCHES {
            v.push(Row::Rings { size, batch });
        }
    }
    v.push(Row::ReadWrite { size: 64 });
    v.push(Row::ReadWrite { size: 16384 });
    v.push(Row::Latency(LatKind::ChannelBlock));
    v.push(Row::Latency(LatKind::ChannelBusy));
    for size in [64, 16384] {
        v.push(Row::OneCpuRings { size, batch: 32 });
    }
    for size in [64, 16384] {
        v.push(Row::OneCpuReadWrite { size });
    }
    v
}

/// Module files and which one is in.
struct Modules {
    current: String,
    baseline: String,
}

impl Modules {
    fn path(&self, w: Which) -> &str {
        match w {
            Which::New => &self.current,
            Which::Old => &self.baseline,
        }
    }

    /// Unloads whatever secure_ipc is loaded and loads `w`'s file.
    fn load(&mut self, w: Which) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match sys::unload_module(c"secure_ipc") {
                Ok(()) => break,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => break,
                // A measuring process's last close can still be on its way.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => return Err(format!("delete_module(secure_ipc): {e}")),
            }
        }
        RING_COMPATIBLE.store(false, Ordering::Relaxed);
        let path = self.path(w).to_string();
        sys::load_module(&path).map_err(|e| format!("finit_module({path}): {e}"))?;
        // devtmpfs creates the node inside misc_register(); wait anyway.
        while !std::path::Path::new("/dev/secure_ipc").exists() {
            if Instant::now() > deadline {
                return Err(format!("{path} loaded but /dev/secure_ipc did not appear"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let v = secure_ipc::kernel_info()
            .map_err(|e| format!("INFO after loading {path}: {e}"))?
            .abi_version;
        match w {
            Which::New if v != abi::SIPC_ABI_VERSION => {
                return Err(format!(
                    "{path} reports ABI {v}, this bench was built for {}",
                    abi::SIPC_ABI_VERSION
                ))
            }
            Which::New => {}
            Which::Old => {
                if v != abi::SIPC_ABI_VERSION
                    && !abi::SIPC_RING_COMPATIBLE_ABI_VERSIONS.contains(&v)
                {
                    return Err(format!(
                        "{path} reports ABI {v}: neither {} nor a ring-compatible older version {:?}",
                        abi::SIPC_ABI_VERSION,
                        abi::SIPC_RING_COMPATIBLE_ABI_VERSIONS
                    ));
                }
                RING_COMPATIBLE.store(true, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

/// write(2) messages on the creator's fd, read(2) them on the attacher's.
fn rw_throughput(size: usize, n: usize) -> Result<(Report, Report), String> {
    let name = unique_name("rw");
    let opts = channel_opts(size, WaitPolicy::default());
    let (pn, po) = (name.clone(), opts.clone());
    pair(
        move || {
            let (tx, _rx) = Channel::create(&pn, &po).map_err(|e| format!("create: {e}"))?;
            let fd = tx.as_raw_fd();
            let mut buf = vec![0u8; size];
            let deadline = Instant::now() + Duration::from_secs(10);
            for i in 0..n {
                pattern(&mut buf, i);
                loop {
                    match sys::write(fd, &buf) {
                        Ok(w) if w == size => break,
                        Ok(w) => return Err(format!("write {i}: {w} of {size} bytes")),
                        // Until the consumer has attached.
                        Err(e)
                            if i == 0
                                && e.raw_os_error() == Some(libc::ENOTCONN)
                                && Instant::now() < deadline =>
                        {
                            std::thread::sleep(Duration::from_millis(1))
                        }
                        Err(e) => return Err(format!("write {i}: {e}")),
                    }
                }
            }
            // Stay until the consumer is done.
            std::thread::sleep(Duration::from_millis(200));
            Ok(vec![])
        },
        move || {
            let (tx, _rx) = attach_retry(&name, &opts)?;
            let fd = tx.as_raw_fd();
            let mut buf = vec![0u8; size.next_power_of_two().max(64)];
            let mut t0 = None;
            for i in 0..n {
                let got = sys::read(fd, &mut buf).map_err(|e| format!("read {i}: {e}"))?;
                check_msg(&buf[..got], size, i)?;
                t0.get_or_insert_with(Instant::now);
            }
            Ok(vec![t0.map_or(0, |t| t.elapsed().as_nanos() as u64)])
        },
    )
}

/// write(2) then read(2) of each message, creator and attacher in one
/// process (messages/s).
fn rw_serial(size: usize, n: usize) -> Result<f64, String> {
    let name = unique_name("rw1");
    let opts = channel_opts(size, WaitPolicy::BusyPoll);
    let (tx, _orx) = Channel::create(&name, &opts).map_err(|e| format!("create: {e}"))?;
    let (ptx, _prx) = Channel::attach(&name, &opts).map_err(|e| format!("attach: {e}"))?;
    let (wfd, rfd) = (tx.as_raw_fd(), ptx.as_raw_fd());
    let mut buf = vec![0u8; size];
    let mut got_buf = vec![0u8; size.next_power_of_two().max(64)];
    let t = Instant::now();
    for i in 0..n {
        pattern(&mut buf, i);
        let w = sys::write(wfd, &buf).map_err(|e| format!("write {i}: {e}"))?;
        if w != size {
            return Err(format!("write {i}: {w} of {size} bytes"));
        }
        let got = sys::read(rfd, &mut got_buf).map_err(|e| format!("read {i}: {e}"))?;
        check_msg(&got_buf[..got], size, i)?;
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

/// `f` in a child pinned to the producer's CPU; its rate.
fn one_cpu(f: impl FnOnce() -> Result<f64, String>) -> Result<f64, String> {
    let (pid, r) = spawn(PRODUCER_CPU, move || f().map(|rate| vec![rate as u64]))?;
    let rep = collect(pid, r);
    if let Some(e) = rep.error {
        return Err(e);
    }
    rep.values
        .first()
        .map(|&v| v as f64)
        .ok_or_else(|| "no rate".to_string())
}

/// One measurement of `row`; latency rows also give their samples.
fn measure(row: Row, scale: f64) -> Result<(f64, Vec<u64>), String> {
    // Half of the main bench's count per measurement, in more rounds.
    let n_for = |size| (count(size, scale) / 2).max(64);
    match row {
        Row::Rings { size, batch } => {
            let n = n_for(size);
            let mut cpus = String::new();
            throughput_round(
                channel_throughput(size, batch, n, crate::Count::Nothing),
                n,
                &mut cpus,
            )
            .map(|r| (r, vec![]))
        }
        Row::ReadWrite { size } => {
            let n = n_for(size);
            let mut cpus = String::new();
            throughput_round(rw_throughput(size, n), n, &mut cpus).map(|r| (r, vec![]))
        }
        Row::OneCpuRings { size, batch } => {
            let n = n_for(size);
            one_cpu(move || channel_serial(size, batch, n)).map(|r| (r, vec![]))
        }
        Row::OneCpuReadWrite { size } => {
            let n = n_for(size);
            one_cpu(move || rw_serial(size, n)).map(|r| (r, vec![]))
        }
        Row::Latency(kind) => {
            let iters = ((2500.0 * scale) as usize).max(200);
            let (ping, pong) = latency(kind, iters, iters / 10)?;
            if let Some(e) = ping.error.or(pong.error) {
                return Err(e);
            }
            let mut v = ping.values;
            v.sort_unstable();
            Ok((percentile(&v, 0.5), v))
        }
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.is_empty() {
        f64::NAN
    } else if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Runs the comparison; returns the process exit status.
pub(crate) fn run(args: &[String], scale: f64) -> i32 {
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let (Some(baseline), Some(current)) = (arg("--against"), arg("--current")) else {
        eprintln!("--against BASELINE.ko needs --current CURRENT.ko");
        return 2;
    };
    let labels = arg("--labels").unwrap_or_else(|| "new,old".into());
    let (new_label, old_label) = labels.split_once(',').unwrap_or(("new", "old"));
    let mut m = Modules { current, baseline };
    let rounds = if scale < 1.0 { 2 } else { 6 };
    let order = |round: usize| {
        if round % 2 == 0 {
            [Which::New, Which::Old]
        } else {
            [Which::Old, Which::New]
        }
    };
    let rows = rows();
    println!(
        "\n== this module (new: {new_label}) against the baseline module (old: {old_label}), same guest boot"
    );
    println!(
        "{rounds} rounds; a round measures each row with both modules back to back (new old, then old new in the next round),"
    );
    println!(
        "each measurement right after delete_module + finit_module; one producer and one consumer process, CPUs {PRODUCER_CPU}/{CONSUMER_CPU}"
    );
    // values[row][which][round]; samples[row][which]
    let mut values = vec![[Vec::new(), Vec::new()]; rows.len()];
    let mut samples: Vec<[Vec<u64>; 2]> = vec![[Vec::new(), Vec::new()]; rows.len()];
    let mut errors = Vec::new();
    let mut seen = [false, false];
    let (mut loads, mut load_time) = (0u32, Duration::ZERO);
    let t = Instant::now();
    for round in 0..rounds {
        let tr = Instant::now();
        for (r, &row) in rows.iter().enumerate() {
            for w in order(round) {
                let tl = Instant::now();
                if let Err(e) = m.load(w) {
                    println!("module swap failed: {e}");
                    println!("\nbench done: the comparison stopped");
                    return 1;
                }
                load_time += tl.elapsed();
                loads += 1;
                let wi = w as usize;
                if !seen[wi] {
                    seen[wi] = true;
                    println!(
                        "{}: {} loaded, INFO reports ABI {}{}",
                        if w == Which::New { "new" } else { "old" },
                        m.path(w),
                        secure_ipc::kernel_info().map_or(0, |i| i.abi_version),
                        if ring_compatible() {
                            " (ring-compatible ABI accepted for this module only)"
                        } else {
                            ""
                        }
                    );
                }
                match measure(row, scale) {
                    Ok((v, mut smp)) => {
                        values[r][wi].push(v);
                        samples[r][wi].append(&mut smp);
                    }
                    Err(e) => errors.push(format!("round {round} {w:?} {}: {e}", row.label())),
                }
            }
        }
        println!("round {round} done in {:.1}s", tr.elapsed().as_secs_f64());
    }
    // Leave this tree's module loaded: /init's final rmmod checks it.
    if let Err(e) = m.load(Which::New) {
        errors.push(format!("reloading the new module at the end: {e}"));
    }

    println!(
        "\n{:<38} | {:>10} | {:>10} | {:>7} | {:>13} | {:>8}",
        "row", "new", "old", "new/old", "round range", "cost/msg"
    );
    for (r, &row) in rows.iter().enumerate() {
        let [nv, ov] = &values[r];
        let figure = |wi: usize, v: &[f64]| -> f64 {
            if row.is_rate() {
                median(v)
            } else {
                let mut s = samples[r][wi].clone();
                s.sort_unstable();
                percentile(&s, 0.5)
            }
        };
        let (n, o) = (figure(0, nv), figure(1, ov));
        if nv.is_empty() || ov.is_empty() {
            println!(
                "{:<38} | {:>10} | {:>10} | {:>7} |",
                row.label(),
                "n/a",
                "n/a",
                "n/a"
            );
            continue;
        }
        // Per-round ratio: the two measurements of one round.
        let per_round: Vec<f64> = nv.iter().zip(ov).map(|(a, b)| a / b).collect();
        let lo = per_round.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = per_round.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        // Time per message (or per one-way trip), new against old.
        let cost = if row.is_rate() { o / n } else { n / o };
        let prec = if row.is_rate() { 0 } else { 1 };
        println!(
            "{:<38} | {:>10.prec$} | {:>10.prec$} | {:>6.3}x | {:>5.2}x-{:.2}x | {:>+7.1}%",
            row.label(),
            n,
            o,
            n / o,
            lo,
            hi,
            (cost - 1.0) * 100.0
        );
    }
    println!(
        "(rates: median of the {rounds} rounds per module; latency: p50 of the pooled samples of its {rounds} rounds,"
    );
    println!(
        " one-way = half the round trip. round range: min-max of the {rounds} per-round new/old ratios. cost/msg:"
    );
    println!(
        " time per message (latency: per one-way trip) of new against old, + = new is slower."
    );
    println!(
        " total {:.0}s, of which {loads} module loads took {:.1}s)",
        t.elapsed().as_secs_f64(),
        load_time.as_secs_f64()
    );
    if !errors.is_empty() {
        println!("\n== errors");
        for e in &errors {
            println!("{e}");
        }
    }
    println!("\nbench done: {} measurements failed", errors.len());
    i32::from(!errors.is_empty())
}
