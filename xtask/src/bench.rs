//! `cargo xtask bench`: the side-by-side benchmark (benches/guest) in a
//! QEMU guest with the module loaded.

use crate::vm::{self, Guest, Mode};
use std::path::PathBuf;
use std::time::Duration;

/// Runs the guest benchmark on the selected kernel (default 6.12).
pub fn run(args: &[String]) -> Result<(), String> {
    crate::deps::ensure()?;
    let mut kernel = "6.12".to_string();
    let mut bench_args = Vec::new();
    let mut tcrypt = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--kernel" => {
                kernel = it
                    .next()
                    .cloned()
                    .ok_or("--kernel needs 6.1, 6.12 or all")?
            }
            "--tcrypt" => tcrypt = true,
            "--quick" => bench_args.push(a.clone()),
            o => {
                return Err(format!(
                    "unknown option `{o}` (bench [--kernel K] [--quick] [--tcrypt])"
                ))
            }
        }
    }
    if tcrypt {
        bench_args.extend(["--tcrypt".into(), "/lib/sipc/opt/tcrypt.ko".into()]);
    }
    let bins = vm::build_guest_bins("sipc-guest-bench", "release", &["sipc-guest-bench"])?;
    let mut cmd = vec!["sipc-guest-bench".to_string()];
    cmd.extend(bench_args);
    let mut failed = 0;
    for k in vm::find_kernels(&kernel)? {
        let guest = Guest {
            mode: Mode::Run(cmd.clone()),
            bins: bins.clone(),
            extra: None,
            extra_modules: crate::initramfs::BENCH_MODULES.to_vec(),
            optional_modules: if tcrypt { vec!["tcrypt"] } else { vec![] },
        };
        let initrd = vm::pack(&k, &guest)?;
        let o = vm::boot(&k, &initrd, "bench", Duration::from_secs(1800), true)?;
        let report: Vec<&str> = o
            .log
            .iter()
            .filter(|l| !l.starts_with('[') && !l.starts_with("SIPC-HARNESS"))
            .map(String::as_str)
            .collect();
        let out = vm::target_dir().join(format!("bench-{}.txt", k.version));
        let (_, cpu, accel) = vm::accel();
        let head = format!(
            "guest: {accel} (-cpu {cpu}), 2 vCPUs, kernel {}\n",
            k.version
        );
        std::fs::write(&out, head + &report.join("\n") + "\n")
            .map_err(|e| format!("{}: {e}", out.display()))?;
        let trouble = vm::kernel_trouble(&o.log);
        if o.status != Some(0) || !trouble.is_empty() {
            failed += 1;
            eprintln!(
                "==> {}: bench guest failed (status {:?}){}",
                k.version,
                o.status,
                if trouble.is_empty() {
                    String::new()
                } else {
                    format!(":\n{}", trouble.join("\n"))
                }
            );
        } else {
            eprintln!(
                "==> {}: report saved to {} ({:.0}s)",
                k.version,
                PathBuf::from(&out).display(),
                o.elapsed.as_secs_f64()
            );
        }
    }
    if failed == 0 {
        Ok(())
    } else {
        Err(format!("{failed} bench run(s) failed"))
    }
}
