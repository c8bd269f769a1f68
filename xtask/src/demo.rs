//! `cargo xtask demo [--kernel [6.1|6.12]] [--seconds N]`: the README's demo.
//!
//! Without `--kernel` it runs `sipc demo` on this host over the userspace
//! backend (the README's first command does the same through cargo run).
//! With `--kernel` it builds `sipc` statically, boots a guest of that kernel
//! with the module loaded, and runs the same demo there on the kernel
//! backend: the "container" side attaches from new user, pid and mount
//! namespaces through /dev/secure_ipc.

use crate::util::{cargo, run};
use std::fs;

/// Parses the options and runs the demo on the host or in a guest.
pub fn run_demo(args: &[String]) -> Result<(), String> {
    let mut kernel: Option<String> = None;
    let mut seconds = "10".to_string();
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--kernel" => {
                // `--kernel` alone means the newest supported kernel.
                let v = match it.peek() {
                    Some(v) if !v.starts_with("--") => it.next().cloned(),
                    _ => None,
                };
                kernel = Some(v.unwrap_or_else(|| "6.12".into()));
            }
            "--seconds" => {
                let v = it.next().ok_or("--seconds needs a number")?;
                v.parse::<u32>()
                    .map_err(|_| format!("--seconds {v}: not a whole number"))?;
                seconds = v.clone();
            }
            o => {
                return Err(format!(
                "unknown option `{o}`; usage: cargo xtask demo [--kernel [6.1|6.12]] [--seconds N]"
            ))
            }
        }
    }
    let Some(kernel) = kernel else {
        return run(cargo().args([
            "run",
            "--release",
            "--quiet",
            "-p",
            "secure-ipc",
            "--bin",
            "sipc",
            "--",
            "demo",
            "--seconds",
            &seconds,
        ]));
    };
    if kernel == "all" {
        return Err("--kernel takes one kernel (6.1 or 6.12) for the demo".into());
    }
    crate::deps::ensure()?;
    let sipc = crate::vm::build_guest_bins("secure-ipc", "release", &["sipc"])?;
    let dir = crate::vm::target_dir().join("demo/guest");
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    fs::copy(&sipc[0], dir.join("sipc")).map_err(|e| format!("copying sipc: {e}"))?;
    let cmd = [
        "./sipc",
        "demo",
        "--backend",
        "kernel",
        "--seconds",
        &seconds,
    ];
    match crate::vm::run_in_guest(&kernel, &dir, &cmd)? {
        0 => Ok(()),
        s => Err(format!(
            "the demo exited with status {s} in the {kernel} guest"
        )),
    }
}
