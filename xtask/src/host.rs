//! Host-side test steps: everything that needs no kernel module.

use crate::util::{run, Steps};
use std::process::Command;

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Unit and integration tests of the whole workspace (includes the C/Rust ABI check).
pub fn unit_tests() -> Result<(), String> {
    run(cargo().args(["test", "--workspace", "--all-targets"]))
}

/// Doc tests (`--all-targets` leaves them out): among them the ring's
/// `compile_fail` tests that pin the borrow rules of its API.
pub fn doc_tests() -> Result<(), String> {
    run(cargo().args(["test", "--workspace", "--doc"]))
}

/// The fuzz targets (fuzz/, its own workspace): every saved input
/// replayed on stable, then, where `cargo fuzz` and a nightly toolchain are
/// installed, each target under libFuzzer for a bounded number of runs
/// (`SIPC_FUZZ_RUNS`, default 20000; longer runs by hand: fuzz/README.md).
pub fn fuzz() -> Result<(), String> {
    let manifest = crate::util::root().join("fuzz/Cargo.toml");
    run(cargo()
        .args(["test", "--manifest-path"])
        .arg(&manifest)
        .env_remove("RUSTFLAGS"))?;
    let have_fuzz = Command::new("rustup")
        .args(["run", "nightly", "cargo", "fuzz", "--version"])
        .env_remove("CARGO")
        .env_remove("RUSTUP_TOOLCHAIN")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have_fuzz {
        println!("xtask: cargo fuzz or nightly missing: replayed the corpora only (cargo install cargo-fuzz)");
        return Ok(());
    }
    let runs = std::env::var("SIPC_FUZZ_RUNS").unwrap_or_else(|_| "20000".into());
    for t in [
        "record_open",
        "ring_consumer",
        "attach_handshake",
        "owner_handshake",
    ] {
        run(Command::new("rustup")
            .args(["run", "nightly", "cargo", "fuzz", "run", "--fuzz-dir"])
            .arg(crate::util::root().join("fuzz"))
            .arg(t)
            .arg("--")
            .arg(format!("-runs={runs}"))
            .current_dir(crate::util::root())
            .env_remove("CARGO")
            .env_remove("RUSTUP_TOOLCHAIN"))?;
    }
    Ok(())
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
