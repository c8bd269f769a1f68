//! `cargo xtask`: the project's build and test driver.
//!
//! `cargo xtask test` is the one command that checks everything: host tests
//! (unit, the C/Rust ABI cross-check, loom, Miri) and the kernel module in
//! QEMU guests. Each step prints its outcome; the run ends with
//! `N passed, N failed`.

mod android;
mod host;
mod util;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  test            everything: host tests, ABI check, loom, Miri (and the VM tests once they exist)
  host-test       the host part of `test` only
  android-test    only the Android/packaging steps of `test`
  install         DKMS install of the module + udev rule + group on this host (root; kernel/install.sh --help)
  help            this text
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    let result = match cmd.as_str() {
        "test" => host::run_all(rest),
        "host-test" => host::run_all(rest),
        "android-test" => android::run_all(rest),
        "install" => android::install(rest),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
