//! Host-side test steps: everything that needs no kernel module.

use crate::util::{run, Steps};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Unit and integration tests of the whole workspace (includes the C/Rust ABI check).
pub fn unit_tests() -> Result<(), String> {
    // `cargo test` builds a cdylib only as far as its tests need the rlib:
    // android-native/tests/c_examples.rs links the .so of this profile.
    run(cargo().args(["build", "-p", "secure-ipc-jni", "--lib"]))?;
    run(cargo().args(["test", "--workspace", "--all-targets"]))
}

/// Doc tests (`--all-targets` leaves them out): among them the ring's
/// `compile_fail` tests that pin the borrow rules of its API.
pub fn doc_tests() -> Result<(), String> {
    run(cargo().args(["test", "--workspace", "--doc"]))
}

/// The cargo-fuzz release `cargo xtask test` installs where none is: the
/// one this tree's targets were last run with.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Default libFuzzer executions per target in `cargo xtask test`.
const DEFAULT_FUZZ_RUNS: &str = "20000";

/// The fuzz targets: one entry point per file in fuzz/fuzz_targets/.
fn fuzz_targets() -> Result<Vec<String>, String> {
    let dir = crate::util::root().join("fuzz/fuzz_targets");
    let rd = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut v: Vec<String> = rd
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().into_string().ok()?;
            n.strip_suffix(".rs").map(str::to_string)
        })
        .collect();
    v.sort();
    Ok(v)
}

/// A command under the nightly toolchain, without the outer cargo's
/// `CARGO`/`RUSTUP_TOOLCHAIN` (they would pin the nightly cargo to stable).
fn nightly(args: &[&str]) -> Command {
    let mut c = Command::new("rustup");
    c.args(["run", "nightly"])
        .args(args)
        .env_remove("CARGO")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTFLAGS");
    c
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Installs the nightly toolchain and cargo-fuzz where they are missing,
/// so that a fresh machine fuzzes instead of skipping.
fn ensure_cargo_fuzz() -> Result<(), String> {
    if !succeeds(&mut nightly(&["rustc", "--version"])) {
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    if !succeeds(&mut nightly(&["cargo", "fuzz", "--version"])) {
        run(cargo().args([
            "install",
            "cargo-fuzz",
            "--locked",
            "--version",
            CARGO_FUZZ_VERSION,
        ]))?;
    }
    Ok(())
}

/// The fuzz targets (fuzz/, its own workspace): every saved input
/// replayed on stable, then each target under libFuzzer (cargo-fuzz and
/// nightly are installed when missing) for a bounded number of executions
/// (`SIPC_FUZZ_RUNS`, default 20000; longer runs by hand: fuzz/README.md).
///
/// libFuzzer keeps what it finds in target/fuzz/corpus/TARGET (the tree's
/// seeds in fuzz/corpus/ stay as committed) and writes a failing input to
/// fuzz/regressions/TARGET/, which the replay test runs from then on.
pub fn fuzz() -> Result<(), String> {
    fuzz_only(&[])
}

/// The fuzz step for the targets named in `only` (all when empty).
pub fn fuzz_only(only: &[String]) -> Result<(), String> {
    let root = crate::util::root();
    let manifest = root.join("fuzz/Cargo.toml");
    run(cargo()
        .args(["test", "--manifest-path"])
        .arg(&manifest)
        .env_remove("RUSTFLAGS"))?;
    ensure_cargo_fuzz()?;
    let runs = std::env::var("SIPC_FUZZ_RUNS").unwrap_or_else(|_| DEFAULT_FUZZ_RUNS.into());
    let runs: u64 = runs
        .parse()
        .map_err(|_| format!("SIPC_FUZZ_RUNS={runs}: not a number of executions"))?;
    let targets = fuzz_targets()?;
    for t in only {
        if !targets.contains(t) {
            return Err(format!(
                "no fuzz target {t} (fuzz/fuzz_targets/ has {})",
                targets.join(", ")
            ));
        }
    }
    let mut report = Vec::new();
    for t in targets
        .iter()
        .filter(|t| only.is_empty() || only.contains(t))
    {
        let execs = fuzz_target(t, runs)?;
        eprintln!("xtask: fuzz {t}: {execs} executions (libFuzzer)");
        report.push(format!("{t}: {execs}"));
    }
    println!("fuzz executions: {}", report.join(", "));
    Ok(())
}

/// One bounded libFuzzer run of `target`; returns the executions libFuzzer
/// reports. A failing input lands in fuzz/regressions/TARGET/ and fails the
/// step.
fn fuzz_target(target: &str, runs: u64) -> Result<u64, String> {
    let root = crate::util::root();
    let work = root.join("target/fuzz/corpus").join(target);
    let regressions = root.join("fuzz/regressions").join(target);
    for d in [&work, &regressions] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let mut cmd = nightly(&["cargo", "fuzz", "run", "--fuzz-dir"]);
    cmd.arg(root.join("fuzz"))
        .arg(target)
        // New inputs go to the first corpus directory (under target/);
        // the committed seeds and regressions are read only.
        .arg(&work)
        .arg(root.join("fuzz/corpus").join(target))
        .arg(&regressions)
        .arg("--")
        .arg(format!("-runs={runs}"))
        // After cargo-fuzz's own -artifact_prefix: the last one counts.
        .arg(format!("-artifact_prefix={}/", regressions.display()))
        // A hang is a finding too (every body must return promptly).
        .arg("-timeout=20")
        .arg("-print_final_stats=1")
        .current_dir(&root)
        .stderr(Stdio::piped());
    eprintln!("+ {}", crate::util::show(&cmd));
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start cargo fuzz: {e}"))?;
    let stderr = child.stderr.take().ok_or("cargo fuzz: no stderr")?;
    let mut execs = None;
    // Echoed as it comes (a long run shows progress), scanned for the count.
    for line in BufReader::new(stderr).lines() {
        let line = line.map_err(|e| format!("cargo fuzz output: {e}"))?;
        eprintln!("{line}");
        if let Some(n) = line
            .strip_prefix("stat::number_of_executed_units:")
            .and_then(|n| n.trim().parse::<u64>().ok())
        {
            execs = Some(n);
        }
    }
    let status = child.wait().map_err(|e| format!("cargo fuzz: {e}"))?;
    if !status.success() {
        return Err(format!(
            "fuzz target {target} failed ({status}): the input is in {}/ (rename it after what it \
             found; fuzz/tests/corpus.rs replays it)",
            regressions.display()
        ));
    }
    execs.ok_or_else(|| format!("fuzz target {target}: libFuzzer reported no execution count"))
}

/// The loom models of the ring (the production ring code built with
/// `--cfg loom`), in their own target directory so the normal build stays
/// valid. Includes the weakened twins that must fail.
pub fn loom_models() -> Result<(), String> {
    run(cargo()
        .args(["test", "-p", "secure-ipc-loom-tests", "--release"])
        .env("RUSTFLAGS", "--cfg loom")
        .env("LOOM_MAX_PREEMPTIONS", "2")
        .env("CARGO_TARGET_DIR", crate::util::root().join("target/loom")))
}

/// The ring's unit tests under Miri (nightly); installs the component when
/// missing.
pub fn miri() -> Result<(), String> {
    let have_miri = Command::new("rustup")
        .args(["run", "nightly", "cargo", "miri", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have_miri {
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
        run(Command::new("rustup").args([
            "component",
            "add",
            "--toolchain",
            "nightly",
            "miri",
            "rust-src",
        ]))?;
    }
    // The outer cargo's CARGO and RUSTUP_TOOLCHAIN must not leak into the
    // nightly cargo.
    run(Command::new("rustup")
        .args([
            "run",
            "nightly",
            "cargo",
            "miri",
            "test",
            "-p",
            "secure-ipc-ring",
        ])
        .env_remove("CARGO")
        .env_remove("RUSTUP_TOOLCHAIN"))
}

/// Adds every host step to `steps` (`cargo xtask test` adds the VM tests after them).
pub fn add_steps(steps: &mut Steps, _args: &[String]) {
    steps.step("host: unit and integration tests", unit_tests);
    steps.step("host: doc tests (compile_fail borrow rules)", doc_tests);
    steps.step("host: loom models of the ring", loom_models);
    steps.step("host: Miri on the ring", miri);
    steps.step(
        "host: fuzz targets (corpus replay, bounded libFuzzer runs)",
        fuzz,
    );
    crate::android::register(steps);
}

/// Runs every host step and prints the summary.
pub fn run_all(args: &[String]) -> Result<(), String> {
    let mut steps = Steps::default();
    add_steps(&mut steps, args);
    steps.finish()
}
