//! `cargo xtask bench --userspace --against REV`: the userspace backend of
//! this tree against revision REV's, on this host, no module needed.
//!
//! Builds `sipc` (release) here and from `git archive REV` (into
//! target/bench-baseline/<hash>/, built with its own Cargo.lock and its own
//! target directory under that), then runs `sipc bench --backend
//! userspace` of both alternately in ABBA order (new old old new, then old
//! new new old, ...) so that drift of the host's load hits both alike, and
//! prints new/old ratios of the medians: throughput for each size, one-way
//! latency p50/p99 of the 64 B ping-pong, and the ratio within each ABBA
//! block (robust to slow drift of the host's load). `--control` runs REV
//! against a copy of itself: the noise floor of the same measurement. The
//! `sipc bench` table is the interface: both revisions print the same
//! columns.

use crate::util::{root, run, show};
use std::path::{Path, PathBuf};
use std::process::Command;

const USAGE: &str =
    "bench --userspace --against REV [--rounds N] [--count N] [--sizes 64,4096] [--control]";

struct Args {
    against: String,
    rounds: usize,
    count: u64,
    sizes: Vec<usize>,
    /// Run REV's binary against a copy of itself: the harness's noise floor.
    control: bool,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        against: String::new(),
        rounds: 2,
        count: 1_000_000,
        sizes: vec![64, 4096],
        control: false,
    };
    let mut it = args.iter();
    while let Some(x) = it.next() {
        let mut val = |what: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{x} needs {what} ({USAGE})"))
        };
        match x.as_str() {
            "--userspace" => {}
            "--control" => a.control = true,
            "--against" => a.against = val("a git revision")?,
            "--rounds" => {
                a.rounds = val("a number")?
                    .parse()
                    .map_err(|_| format!("--rounds: a number ({USAGE})"))?
            }
            "--count" => {
                a.count = val("a number")?
                    .parse()
                    .map_err(|_| format!("--count: a number ({USAGE})"))?
            }
            "--sizes" => {
                a.sizes = val("sizes")?
                    .split(',')
                    .map(|s| s.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| format!("--sizes: comma-separated byte counts ({USAGE})"))?
            }
            o => return Err(format!("unknown option `{o}` ({USAGE})")),
        }
    }
    if a.against.is_empty() {
        return Err(format!("--userspace compares against a revision: {USAGE}"));
    }
    if a.rounds == 0 || a.sizes.is_empty() || a.count < 100 {
        return Err(format!(
            "at least one round, one size and 100 messages ({USAGE})"
        ));
    }
    Ok(a)
}

/// A reported metric: its name, how to read it from a sample, and whether
/// higher is better.
type Metric = (&'static str, fn(&Sample) -> f64, bool);

/// What the report compares: throughput, then the 64 B ping-pong's latency.
fn metrics() -> [Metric; 4] {
    [
        ("msg/s", |s| s.msgs_per_s, true),
        ("MB/s", |s| s.mb_per_s, true),
        ("one-way p50 (us)", |s| s.p50_us, false),
        ("one-way p99 (us)", |s| s.p99_us, false),
    ]
}

/// One `sipc bench` row.
#[derive(Clone, Copy, Debug)]
struct Sample {
    msgs_per_s: f64,
    mb_per_s: f64,
    p50_us: f64,
    p99_us: f64,
}

/// Reads the data row of the table `sipc bench` prints:
/// `| backend | size | batch | messages | seconds | msg/s | MB/s | p50 us | p99 us | p99.9 us |`.
fn parse_row(out: &str) -> Option<Sample> {
    let row = out.lines().find(|l| l.starts_with("| Userspace |"))?;
    let f: Vec<&str> = row.split('|').map(str::trim).collect();
    let us = |s: &str| s.trim_end_matches(" us").trim().parse::<f64>().ok();
    Some(Sample {
        msgs_per_s: f.get(6)?.parse().ok()?,
        mb_per_s: f.get(7)?.parse().ok()?,
        p50_us: us(f.get(8)?)?,
        p99_us: us(f.get(9)?)?,
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn git(args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .current_dir(root())
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `sipc` of this tree, release profile.
fn build_current() -> Result<PathBuf, String> {
    run(crate::util::cargo().args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "secure-ipc",
        "--bin",
        "sipc",
    ]))?;
    Ok(crate::vm::target_dir().join("release/sipc"))
}

/// `sipc` of commit `full`, from `git archive` into
/// target/bench-baseline/<full>/tree, built into .../target.
fn build_baseline(full: &str) -> Result<PathBuf, String> {
    let base = crate::vm::target_dir().join("bench-baseline").join(full);
    let tree = base.join("tree");
    if !tree.join("Cargo.toml").exists() {
        let tmp = base.join("tree.tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        crate::bench::unpack_tree(full, &[], &tmp)?;
        std::fs::rename(&tmp, &tree).map_err(|e| format!("{}: {e}", tree.display()))?;
    }
    let target = base.join("target");
    run(crate::util::cargo()
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "secure-ipc",
            "--bin",
            "sipc",
        ])
        .arg("--manifest-path")
        .arg(tree.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS"))?;
    Ok(target.join("release/sipc"))
}

fn bench_once(sipc: &Path, size: usize, count: u64) -> Result<Sample, String> {
    let mut cmd = Command::new(sipc);
    cmd.args(["bench", "--backend", "userspace", "--batch", "32"])
        .arg("--size")
        .arg(size.to_string())
        .arg("--count")
        .arg(count.to_string())
        // Both revisions' default rendezvous (the old one has only the
        // abstract name): the same for both.
        .env_remove("XDG_RUNTIME_DIR");
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", show(&cmd)))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "`{}` failed ({}): {}",
            show(&cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse_row(&text).ok_or_else(|| format!("`{}` printed no result row:\n{text}", show(&cmd)))
}

/// Messages of the throughput run for `size`: `count` at 64 B, fewer for
/// larger messages (the same bytes as 256 B messages would move).
fn count_for(size: usize, count: u64) -> u64 {
    (count.saturating_mul(256) / size.max(256) as u64).clamp(100, count)
}

/// Runs the comparison and writes its report.
pub fn run_comparison(args: &[String]) -> Result<(), String> {
    let a = parse(args)?;
    let full = git(&[
        "rev-parse",
        "--verify",
        &format!("{}^{{commit}}", a.against),
    ])
    .map_err(|e| {
        format!(
            "--against {}: not a commit of this repository ({e})",
            a.against
        )
    })?;
    let short = git(&["rev-parse", "--short", &full])?;
    let subject = git(&["log", "-1", "--format=%s", &full])?;
    let head = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|_| "HEAD".into());
    let dirty = git(&[
        "status",
        "--porcelain",
        "--",
        "client",
        "ring",
        "Cargo.lock",
    ])
    .map(|s| !s.is_empty())
    .unwrap_or(false);
    let label = if dirty { format!("{head}+dirty") } else { head };
    let old = build_baseline(&full)?;
    let (new, label) = if a.control {
        // A/A: the same binary under another name, run in the "new" slot.
        let copy = old.with_file_name("sipc-control");
        std::fs::copy(&old, &copy).map_err(|e| format!("{}: {e}", copy.display()))?;
        (copy, format!("{short} (control copy)"))
    } else {
        (build_current()?, label)
    };
    eprintln!(
        "==> new: {} ({label})\n==> old: {} ({short})",
        new.display(),
        old.display()
    );

    // samples[size index][0 = new, 1 = old]
    let mut samples: Vec<[Vec<Sample>; 2]> =
        a.sizes.iter().map(|_| [Vec::new(), Vec::new()]).collect();
    // block_ratios[size index][metric index]: mean new / mean old within
    // each ABBA block (four adjacent runs), robust to slow drift of the load.
    let mut block_ratios: Vec<Vec<Vec<f64>>> =
        a.sizes.iter().map(|_| vec![Vec::new(); 4]).collect();
    let mut log = Vec::new();
    for round in 0..a.rounds {
        // ABBA, mirrored every other round: new old old new, old new new old.
        let order: [usize; 4] = if round % 2 == 0 {
            [0, 1, 1, 0]
        } else {
            [1, 0, 0, 1]
        };
        for (si, &size) in a.sizes.iter().enumerate() {
            let mut block: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
            for &which in &order {
                let bin = if which == 0 { &new } else { &old };
                let s = bench_once(bin, size, count_for(size, a.count))?;
                let line = format!(
                    "round {} size {size:>5} {}: {:>10.0} msg/s {:>8.1} MB/s  p50 {:>6.1} us  p99 {:>6.1} us",
                    round + 1,
                    if which == 0 { "new" } else { "old" },
                    s.msgs_per_s,
                    s.mb_per_s,
                    s.p50_us,
                    s.p99_us
                );
                eprintln!("    {line}");
                log.push(line);
                samples[si][which].push(s);
                block[which].push(s);
            }
            for (mi, (_, f, _)) in metrics().iter().enumerate() {
                let mean = |v: &[Sample]| v.iter().map(f).sum::<f64>() / v.len() as f64;
                block_ratios[si][mi].push(mean(&block[0]) / mean(&block[1]));
            }
        }
    }

    let mut report = vec![
        format!(
            "userspace backend: this tree ({label}) against {short} ({subject})"
        ),
        format!(
            "sipc bench --backend userspace --batch 32, two threads of one process; {} ABBA rounds, {} runs of each revision per size; medians; per block: mean new / mean old of each ABBA block of four adjacent runs",
            a.rounds,
            2 * a.rounds
        ),
        String::new(),
        "| size | metric | new | old | new/old (medians) | per block: median [min, max] |".into(),
        "|---|---|---|---|---|---|".into(),
    ];
    let mut worst: Vec<String> = Vec::new();
    for (si, &size) in a.sizes.iter().enumerate() {
        let med = |which: usize, f: fn(&Sample) -> f64| {
            let mut v: Vec<f64> = samples[si][which].iter().map(f).collect();
            median(&mut v)
        };
        for (mi, (metric, f, higher_is_better)) in metrics().into_iter().enumerate() {
            // Latency is the 64 B ping-pong's; other sizes report throughput.
            if size != 64 && mi >= 2 {
                continue;
            }
            let (n, o) = (med(0, f), med(1, f));
            let ratio = n / o;
            let mut blocks = block_ratios[si][mi].clone();
            let (lo, hi) = blocks
                .iter()
                .fold((f64::MAX, f64::MIN), |(l, h), &x| (l.min(x), h.max(x)));
            let bm = median(&mut blocks);
            report.push(format!(
                "| {size} B | {metric} | {n:.1} | {o:.1} | {ratio:.3} | {bm:.3} [{lo:.3}, {hi:.3}] |"
            ));
            // Judged by the per-block median: a load burst during a few runs
            // moves the plain medians, not most blocks.
            let regressed = if higher_is_better { bm < 0.9 } else { bm > 1.1 };
            if regressed && metric != "one-way p99 (us)" {
                worst.push(format!("{size} B {metric}: new/old {bm:.3} per block"));
            }
        }
    }
    report.push(String::new());
    if worst.is_empty() {
        report.push("no throughput or p50 latency regression beyond 10 %".into());
    } else {
        report.push(format!("beyond 10 %: {}", worst.join("; ")));
    }
    report.push(String::new());
    report.push("runs:".into());
    report.extend(log);
    let text = report.join("\n") + "\n";
    print!("{text}");
    let out = crate::vm::target_dir().join(format!("bench-userspace-against-{short}.txt"));
    std::fs::write(&out, &text).map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!("==> report saved to {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_row_sipc_bench_prints() {
        let out = "| backend | size | batch | messages | seconds | msg/s | MB/s | one-way p50 | p99 | p99.9 |\n\
                   |---|---|---|---|---|---|---|---|---|---|\n\
                   | Userspace | 64 | 32 | 1000 | 0.010 | 100000 | 6.4 | 3.5 us | 7.0 us | 9.9 us |\n";
        let s = parse_row(out).expect("a row");
        assert_eq!(s.msgs_per_s, 100000.0);
        assert_eq!(s.mb_per_s, 6.4);
        assert_eq!(s.p50_us, 3.5);
        assert_eq!(s.p99_us, 7.0);
        assert!(parse_row("| backend | size |\n").is_none());
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn larger_messages_run_fewer_of_them() {
        assert_eq!(count_for(64, 1_000_000), 1_000_000);
        assert_eq!(count_for(4096, 1_000_000), 62_500);
    }
}
