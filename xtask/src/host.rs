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

/// Adds every host step to `steps` (`cargo xtask test` adds the VM tests after them).
pub fn add_steps(steps: &mut Steps, _args: &[String]) {
    steps.step("host: unit and integration tests", unit_tests);
    crate::android::register(steps);
}

/// Runs every host step and prints the summary.
pub fn run_all(args: &[String]) -> Result<(), String> {
    let mut steps = Steps::default();
    add_steps(&mut steps, args);
    steps.finish()
}
