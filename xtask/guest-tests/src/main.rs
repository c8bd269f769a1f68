//! The guest test runner of secure_ipc.ko (`cargo xtask vm-test`).
//!
//! Runs inside the QEMU guest as root, after the guest's /init loaded the
//! crypto modules. Every test runs in its own process (`--run-one NAME`), so
//! a crash, a hang (per-test timeout) or a leaked file descriptor stays with
//! that test; before each test the runner loads the module build the test
//! needs (normal or test-hooks), and after the last one it unloads the
//! module: a leaked reference fails that final unload.
//!
//! Output, parsed by the host: one `test NAME ... ok (T)` or
//! `test NAME ... FAILED (T): reason` line per test, then `N passed, N failed`.
//!
//! How to add tests: see the [`tests`] module.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, missing_docs)]

mod harness;
mod sys;
mod tests;

use harness::{Needs, Test};
use std::fs::File;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const USAGE: &str =
    "usage: sipc-guest-tests [--filter SUBSTRING] [--env SIPC_GUEST_X=V]... [--list] [--run-one NAME]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut filter = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--filter" => filter = it.next().cloned(),
            // Settings of the test plan that xtask chooses per kernel (the
            // race budgets, the stream length); inherited by every test
            // process. Only SIPC_GUEST_* names, so that nothing else of
            // the environment can be changed by accident.
            "--env" => {
                let Some((k, v)) = it.next().and_then(|kv| kv.split_once('=')) else {
                    eprintln!("{USAGE}");
                    return ExitCode::from(2);
                };
                if !k.starts_with("SIPC_GUEST_") {
                    eprintln!("--env {k}: only SIPC_GUEST_* settings");
                    return ExitCode::from(2);
                }
                println!("plan: {k}={v}");
                // SAFETY: still single-threaded; no test has started.
                unsafe { std::env::set_var(k, v) };
            }
            "--list" => {
                for t in tests::all() {
                    println!("{}", t.name);
                }
                return ExitCode::SUCCESS;
            }
            "--run-one" => {
                let Some(name) = it.next() else {
                    eprintln!("{USAGE}");
                    return ExitCode::from(2);
                };
                return run_one(name);
            }
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    run_all(filter.as_deref())
}

/// Child side: runs one test in this process.
fn run_one(name: &str) -> ExitCode {
    let Some(t) = tests::all().into_iter().find(|t| t.name == name) else {
        println!("no test named {name}");
        return ExitCode::from(2);
    };
    match std::panic::catch_unwind(t.run) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            println!("{e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            println!("panicked");
            ExitCode::FAILURE
        }
    }
}

/// Parent side: every selected test in its own process.
fn run_all(filter: Option<&str>) -> ExitCode {
    let me = std::env::current_exe().expect("current_exe");
    let selected: Vec<&Test> = tests::all()
        .into_iter()
        .filter(|t| filter.map_or(true, |f| f.split(',').any(|f| t.name.contains(f))))
        .collect();
    println!("running {} tests", selected.len());
    let (mut passed, mut failed) = (0, 0);
    let mut report = |name: &str, t: Instant, r: Result<(), String>| {
        let secs = t.elapsed().as_secs_f64();
        match r {
            Ok(()) => {
                passed += 1;
                println!("test {name} ... ok ({secs:.2}s)");
            }
            Err(e) => {
                failed += 1;
                println!("test {name} ... FAILED ({secs:.2}s): {e}");
            }
        }
    };
    for t in selected {
        let start = Instant::now();
        let r = harness::ensure_module(t.needs).and_then(|()| spawn_test(&me, t));
        report(t.name, start, r);
    }
    // The last step of every run: a leaked reference makes this fail.
    let start = Instant::now();
    report(
        "module_unloads_after_all_tests",
        start,
        harness::unload_module(),
    );
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn spawn_test(me: &std::path::Path, t: &Test) -> Result<(), String> {
    let out_path = format!("/tmp/sipc-test-{}.out", t.name);
    let out = File::create(&out_path).map_err(|e| format!("{out_path}: {e}"))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut child = Command::new(me)
        .args(["--run-one", t.name])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start the test process: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(t.timeout_s.into());
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    let output = output.trim().replace('\n', " | ");
    match status {
        Some(s) if s.success() => Ok(()),
        Some(s) => Err(if output.is_empty() {
            format!("{s}")
        } else {
            output
        }),
        None => Err(format!(
            "timed out after {}s; output: {output}",
            t.timeout_s
        )),
    }
}

impl Needs {
    /// Path of the module build a test needs.
    pub fn ko_path(self) -> &'static str {
        match self {
            Needs::Module => "/lib/sipc/secure_ipc.ko",
            Needs::TestHooksModule => "/lib/sipc/test-hooks/secure_ipc.ko",
        }
    }
}
