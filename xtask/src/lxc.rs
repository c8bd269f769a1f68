//! The LXC step: Debian's `lxc` in a host-root guest of Debian's 6.12
//! kernel, containers started by `lxc-start` from Waydroid's own container
//! settings plus the `/dev/secure_ipc` mount entry, and the real `sipc` CLI
//! (a static build, the only program besides busybox in the containers'
//! root) attaching from inside with the pid-namespace and identity policy.
//! What the guest does is xtask/guest/lxc.sh; docs/verification.md says why.

use crate::util::root;
use crate::vm::{self, Guest, Mode};
use std::time::Duration;

/// The step's name in `cargo xtask test`.
pub const STEP: &str = "android: LXC containers with Waydroid's config (6.12, QEMU, host root): \
     stream 100000 each way, restart + re-pin, second container refused";

/// The checks xtask/guest/lxc.sh prints: a run that reports fewer (the
/// script cut short) fails.
const CHECKS: usize = 7;

/// Boots the guest and runs xtask/guest/lxc.sh; Ok when every check passed.
pub fn run_test() -> Result<(), String> {
    crate::deps::ensure()?;
    let sipc = vm::build_guest_bins("secure-ipc", "release", &["sipc"])?;
    let k = vm::find_kernels("6.12")?
        .into_iter()
        .next()
        .ok_or("no 6.12 kernel")?;
    let script = root().join("xtask/guest/lxc.sh");
    let guest = Guest {
        mode: Mode::Run(vec![
            "sh".into(),
            script.display().to_string(),
            sipc[0].display().to_string(),
        ]),
        bins: Vec::new(),
        extra: None,
        extra_modules: Vec::new(),
        optional_modules: Vec::new(),
        extra_files: Vec::new(),
        host_root: Some(root()),
    };
    let initrd = vm::pack(&k, &guest)?;
    let o = vm::boot_with(&k, &initrd, "lxc", Duration::from_secs(900), false, true)?;
    let mut ok = 0;
    let mut failed = Vec::new();
    for l in &o.log {
        if let Some((name, verdict)) = l.strip_prefix("test ").and_then(|r| r.split_once(" ... ")) {
            if verdict.starts_with("ok") {
                ok += 1;
            } else {
                failed.push(format!("{name}: {verdict}"));
            }
        } else if l.starts_with("lxc: ") {
            println!("{l}");
        }
    }
    println!(
        "lxc: {ok} passed, {} failed ({:.0}s)",
        failed.len(),
        o.elapsed.as_secs_f64()
    );
    let trouble = vm::kernel_trouble(&o.log);
    if !trouble.is_empty() {
        return Err(format!(
            "kernel trouble in the LXC guest:\n{}\nlog: {}",
            trouble.join("\n"),
            o.log_path.display()
        ));
    }
    if o.status != Some(0) || !failed.is_empty() || ok != CHECKS {
        return Err(format!(
            "guest status {:?}; {ok} of {CHECKS} checks passed; failed: {}; log: {}",
            o.status,
            failed.join("; "),
            o.log_path.display()
        ));
    }
    Ok(())
}
