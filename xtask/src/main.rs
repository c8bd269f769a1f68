//! `cargo xtask`: the project's build and test driver.
//!
//! `cargo xtask test` is the one command that checks everything: host tests
//! (unit, the C/Rust ABI cross-check, loom, Miri) and the kernel module in
//! QEMU guests on Debian's 6.1, 6.12 (bookworm) and 7.2 (sid) kernels, arm64 6.12, and
//! the KASAN and KCSAN kernels built from Debian's 6.12 source, trinity on the KASAN one. Each step prints its
//! outcome; the run ends with `N passed, N failed`.

mod android;
mod arm64;
mod bench;
mod bench_userspace;
mod demo;
mod deps;
mod host;
mod initramfs;
mod lxc;
mod sanitizer;
mod secureboot;
mod sid;
mod trinity;
mod util;
mod vm;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  test               everything: host tests, then vm-test --kernel all
  host-test          the host part of `test` only
  deps               install what the kernel tests need (Debian packages, musl target)
  vm-test [--kernel K|all] [--filter NAME] [--extra DIR] [--timeout SECS]
                     build the module, boot each kernel in QEMU, run the guest tests;
                     K: 6.1, 6.12 (bookworm), 7.2 (sid), 6.12-arm64,
                     6.12-kasan, 6.12-kcsan (sanitizer kernels built from linux-source-6.12)
  vm-run [--kernel K] [--extra DIR] -- CMD...
                     load the module in a guest, run CMD in /extra (DIR's files), exit with its status
  vm-shell [--kernel K] [--extra DIR]
                     interactive guest shell with the module loaded (Ctrl-A X quits)
  vm-run/vm-shell --host-root
                     the guest's userland is this machine's root (read-only 9p, tmpfs overlay);
                     the command runs in the current directory
  trinity [--kernel K] [--ops N] [--seed S] [--children C]
                     Debian's trinity against /dev/secure_ipc as an unprivileged user
                     (default: 6.12-kasan, 10000 operations, seed 0x5ec04e1c, 4 children)
  android-test       only the Android/packaging steps of `test`
  fuzz [TARGET...]   only the fuzz step of `test`: replay the saved inputs, then SIPC_FUZZ_RUNS
                     (20000) libFuzzer executions per target (installs nightly and cargo-fuzz)
  install            DKMS install of the module + udev rule + group on this host (root; kernel/install.sh --help);
                     exits with install.sh's status (3: reboot into MokManager to enroll the signing key)
  lxc-test           only the LXC container step of `test` (Waydroid's LXC config, docs/verification.md)
  secure-boot-test   the Secure Boot install test, all checks (OVMF guest, docs/secure-boot.md);
                     --quick: only the step of `test` (one DKMS build)
  bench [--kernel K] [--quick] [--no-tcrypt]
                     side-by-side benchmark in a guest (channel vs socket+AES-GCM, eventfd, kernel gcm(aes))
  bench [--kernel K] [--quick] --against REV
                     this module against git revision REV's, alternating in one guest boot: new/old ratios
  bench --userspace --against REV [--rounds N] [--count N] [--sizes 64,4096]
                     this tree's userspace backend against REV's on this host (sipc bench of both,
                     built from git archive, run in ABBA order): new/old ratios of throughput and latency
  demo [--kernel [6.1|6.12]] [--seconds N]
                     the IMU streaming demo: on this host (userspace backend), or in a guest on the kernel backend
  help               this text
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    let result = match cmd.as_str() {
        "test" => test(rest),
        "host-test" => host::run_all(rest),
        "deps" => deps::ensure(),
        "vm-test" => vm_test(rest),
        "vm-run" => match deps::ensure()
            .and_then(|()| vm::parse_args(rest, "6.12"))
            .and_then(|a| vm::vm_run(&a))
        {
            Ok(0) => Ok(()),
            Ok(s) => return ExitCode::from(s.clamp(1, 255) as u8),
            Err(e) => Err(e),
        },
        "bench" => bench::run(rest),
        "trinity" => trinity::run_cli(rest),
        "demo" => demo::run_demo(rest),
        "vm-shell" => deps::ensure()
            .and_then(|()| vm::parse_args(rest, "6.12"))
            .and_then(|a| vm::vm_shell(&a)),
        "android-test" => android::run_all(rest),
        "fuzz" => host::fuzz_only(rest),
        "install" => match android::install(rest) {
            Ok(0) => Ok(()),
            Ok(s) => return ExitCode::from(s.clamp(1, 255) as u8),
            Err(e) => Err(e),
        },
        "lxc-test" => {
            let mut steps = util::Steps::default();
            steps.step(lxc::STEP, lxc::run_test);
            steps.finish()
        }
        "secure-boot-test" if rest.iter().any(|a| a == "--quick") => {
            let mut steps = util::Steps::default();
            steps.step(secureboot::STEP_QUICK, secureboot::run_quick);
            steps.finish()
        }
        "secure-boot-test" => {
            let mut steps = util::Steps::default();
            steps.step(secureboot::STEP, secureboot::run_test);
            steps.finish()
        }
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

fn vm_test(args: &[String]) -> Result<(), String> {
    deps::ensure()?;
    let a = vm::parse_args(args, "all")?;
    let mut steps = util::Steps::default();
    vm::vm_test(&a, &mut steps)?;
    steps.finish()
}

/// Host steps, then the guest tests on every kernel: one final summary.
fn test(args: &[String]) -> Result<(), String> {
    deps::ensure()?;
    let mut steps = util::Steps::default();
    host::add_steps(&mut steps, args);
    let mut a = vm::parse_args(&[], "all")?;
    a.quick_secondaries = true;
    // trinity boots a guest of its own; it takes a lane after the suites.
    let (kernel, ops, seed, children) = trinity::TEST_PLAN;
    let trinity = vm::Job {
        name: format!(
            "trinity: {ops} operations against /dev/secure_ipc ({kernel}, seed {seed:#x})"
        ),
        run: Box::new(move || {
            trinity::run_plan(&trinity::Plan {
                kernel: kernel.into(),
                ops,
                seed,
                children,
                echo: false,
            })
        }),
    };
    // The LXC and Secure Boot tests boot guests of their own too. The lanes
    // take jobs in this order: the longest (Secure Boot's DKMS build) first.
    let lxc = vm::Job {
        name: lxc::STEP.into(),
        run: Box::new(lxc::run_test),
    };
    let secure_boot = vm::Job {
        name: secureboot::STEP_QUICK.into(),
        run: Box::new(secureboot::run_quick),
    };
    if let Err(e) = vm::vm_test_with(&a, &mut steps, vec![secure_boot, lxc, trinity]) {
        steps.record("vm-test", Err(e));
    }
    steps.finish()
}
