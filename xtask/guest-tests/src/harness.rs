//! Test registry types and helpers shared by the test files.

use crate::sys::{self, Errno};
use secure_ipc_ring::abi;
use std::path::Path;
use std::process::Command;

/// Outcome of a test: Err carries what went wrong, in words.
pub type TestResult = Result<(), String>;

/// Which module build must be loaded when the test starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// The normal build (what users get).
    Module,
    /// The `SIPC_TEST_HOOKS=1` build (SIPC_FEAT_TEST_HOOKS set).
    TestHooksModule,
}

/// One registered test.
pub struct Test {
    /// Unique name, saying the behaviour checked (`info_too_short_is_einval`).
    pub name: &'static str,
    /// Module build loaded before the test starts.
    pub needs: Needs,
    /// Killed and failed after this many seconds.
    pub timeout_s: u32,
    /// The test body; runs in its own process.
    pub run: fn() -> TestResult,
}

impl Test {
    /// A test that needs the normal module and finishes within 60 s.
    pub const fn new(name: &'static str, run: fn() -> TestResult) -> Self {
        Self {
            name,
            needs: Needs::Module,
            timeout_s: 60,
            run,
        }
    }

    /// The same test with another module build.
    pub const fn needs(self, needs: Needs) -> Self {
        Self { needs, ..self }
    }

    /// The same test with another timeout.
    pub const fn timeout(self, timeout_s: u32) -> Self {
        Self { timeout_s, ..self }
    }
}

/// The environment variable that scales every race's wall-time budget, in
/// percent (default 100). `cargo xtask test` runs the races of the kernels
/// that are not the primary or a sanitizer one at a share of their budget;
/// a soak run by hand raises it (`SIPC_GUEST_RACE_PERCENT=1000`).
pub const RACE_PERCENT_VAR: &str = "SIPC_GUEST_RACE_PERCENT";

/// `budget` scaled by `SIPC_GUEST_RACE_PERCENT` (1 to 10000; anything else
/// is 100, said once on stderr so a typo does not pass unnoticed).
pub fn race_time(budget: std::time::Duration) -> std::time::Duration {
    let percent = match std::env::var(RACE_PERCENT_VAR) {
        Err(_) => 100,
        Ok(v) => match v.trim().parse::<u32>() {
            Ok(p) if (1..=10_000).contains(&p) => p,
            _ => {
                eprintln!("{RACE_PERCENT_VAR}={v}: not a percent in 1..=10000; using 100");
                100
            }
        },
    };
    budget * percent / 100
}

/// Fails the test with a formatted message unless `cond` holds.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// `r` must fail with exactly `want`.
pub fn expect_errno<T: std::fmt::Debug>(r: Result<T, Errno>, want: i32, what: &str) -> TestResult {
    match r {
        Err(Errno(e)) if e == want => Ok(()),
        Err(e) => Err(format!(
            "{what}: expected {}, got {e}",
            sys::errno_name(want)
        )),
        Ok(v) => Err(format!(
            "{what}: expected {}, got success ({v:?})",
            sys::errno_name(want)
        )),
    }
}

/// INFO with a correctly sized struct.
pub fn info(f: &std::fs::File) -> Result<abi::Info, String> {
    let mut i = abi::Info {
        size: std::mem::size_of::<abi::Info>() as u32,
        ..Default::default()
    };
    sys::ioctl_struct(f, abi::SIPC_IOC_INFO, &mut i).map_err(|e| format!("SIPC_IOC_INFO: {e}"))?;
    Ok(i)
}

/// Is secure_ipc loaded?
pub fn module_loaded() -> bool {
    Path::new("/sys/module/secure_ipc").exists()
}

fn sh(prog: &str, args: &[&str]) -> TestResult {
    let out = Command::new(prog)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {prog}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{prog} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Records which build and parameters are loaded (see [`ensure_module`]).
const LOADED_MARKER: &str = "/tmp/sipc-loaded-module";

/// insmod the given build with module parameters (`name=value`). Tests may
/// reload the module with parameters; the runner reloads the default
/// before the next test.
pub fn load_module(needs: Needs, params: &[&str]) -> TestResult {
    let mut args = vec![needs.ko_path()];
    args.extend_from_slice(params);
    let _ = std::fs::remove_file(LOADED_MARKER);
    sh("insmod", &args)?;
    std::fs::write(LOADED_MARKER, args.join(" ")).map_err(|e| format!("{LOADED_MARKER}: {e}"))
}

/// rmmod secure_ipc if it is loaded.
pub fn unload_module() -> TestResult {
    let _ = std::fs::remove_file(LOADED_MARKER);
    if module_loaded() {
        sh("rmmod", &["secure_ipc"])?;
    }
    check!(
        !module_loaded(),
        "/sys/module/secure_ipc still exists after rmmod"
    );
    Ok(())
}

/// Makes sure exactly the build `needs` is loaded, with default parameters.
pub fn ensure_module(needs: Needs) -> TestResult {
    if module_loaded() {
        let loaded = std::fs::read_to_string(LOADED_MARKER).unwrap_or_default();
        if loaded == needs.ko_path() {
            return Ok(());
        }
        unload_module()?;
    }
    load_module(needs, &[])
}
