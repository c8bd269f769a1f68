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

/// Runs every host step; with `--no-vm`-style filtering left to the caller.
pub fn run_all(_args: &[String]) -> Result<(), String> {
    let mut steps = Steps::default();
    steps.step("host: unit and integration tests", unit_tests);
    crate::android::register(&mut steps);
    steps.finish()
}
