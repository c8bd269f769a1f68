//! Small helpers shared by the xtask steps.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

/// The workspace root (the parent of `xtask/`).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Runs a command in the workspace root, echoing it; Err on a non-zero exit.
pub fn run(cmd: &mut Command) -> Result<(), String> {
    cmd.current_dir(root());
    eprintln!("+ {}", show(cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start `{}`: {e}", show(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed with {status}", show(cmd)))
    }
}

/// The command line as a shell user would type it.
pub fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Is `prog` on PATH?
pub fn have(prog: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {prog} >/dev/null 2>&1"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Named steps with a final `N passed, N failed` line.
#[derive(Default)]
pub struct Steps {
    passed: Vec<String>,
    failed: Vec<(String, String)>,
}

impl Steps {
    /// Runs one step, timing it and recording its outcome.
    pub fn step(&mut self, name: &str, f: impl FnOnce() -> Result<(), String>) {
        eprintln!("==> {name}");
        let t = Instant::now();
        match f() {
            Ok(()) => {
                eprintln!("==> {name}: ok ({:.1}s)", t.elapsed().as_secs_f64());
                self.passed.push(name.to_string());
            }
            Err(e) => {
                eprintln!(
                    "==> {name}: FAILED ({:.1}s): {e}",
                    t.elapsed().as_secs_f64()
                );
                self.failed.push((name.to_string(), e));
            }
        }
    }

    /// Records an outcome computed elsewhere (for example one guest test).
    pub fn record(&mut self, name: &str, result: Result<(), String>) {
        match result {
            Ok(()) => self.passed.push(name.to_string()),
            Err(e) => self.failed.push((name.to_string(), e)),
        }
    }

    /// Prints the summary; Err if any step failed.
    pub fn finish(self) -> Result<(), String> {
        for (name, e) in &self.failed {
            println!("FAILED: {name}: {e}");
        }
        println!("{} passed, {} failed", self.passed.len(), self.failed.len());
        if self.failed.is_empty() {
            Ok(())
        } else {
            Err(format!("{} step(s) failed", self.failed.len()))
        }
    }
}

/// `cargo` as invoked by `cargo xtask` (the same toolchain).
pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Does `a` exist and is it at least as new as `b`?
pub fn newer_than(a: &std::path::Path, b: &std::path::Path) -> bool {
    let mtime = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (mtime(a), mtime(b)) {
        (Some(a), Some(b)) => a >= b,
        _ => false,
    }
}

/// The cache outside the work tree for what is slow to make and does not
/// depend on the sources (chroots, downloaded and self-built kernels):
/// `$XDG_CACHE_HOME/secure-ipc`, else `~/.cache/secure-ipc`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("secure-ipc")
}

/// An exclusive lock on a cache entry shared by every xtask on this machine
/// (other work trees use the same cache): a directory created atomically,
/// holding the owner's pid, removed on drop. A lock whose owner is gone is
/// taken over; a live one is waited for.
pub struct CacheLock {
    path: PathBuf,
}

impl CacheLock {
    /// Waits until `path` (a directory name) can be created, then holds it.
    pub fn acquire(path: &std::path::Path) -> Result<Self, String> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        let mut said = false;
        loop {
            match std::fs::create_dir(path) {
                Ok(()) => {
                    let pid = std::process::id().to_string();
                    std::fs::write(path.join("pid"), pid)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    return Ok(Self {
                        path: path.to_path_buf(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(path.join("pid")).unwrap_or_default();
                    let alive = !owner.trim().is_empty()
                        && std::path::Path::new("/proc").join(owner.trim()).exists();
                    if !alive {
                        // The owner died (or is between mkdir and writing
                        // its pid: give it a moment before taking over).
                        std::thread::sleep(std::time::Duration::from_secs(1));
                        let again = std::fs::read_to_string(path.join("pid")).unwrap_or_default();
                        if again == owner {
                            let _ = std::fs::remove_dir_all(path);
                        }
                        continue;
                    }
                    if !said {
                        eprintln!(
                            "==> waiting for pid {} to release {}",
                            owner.trim(),
                            path.display()
                        );
                        said = true;
                    }
                    std::thread::sleep(std::time::Duration::from_secs(2));
                }
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
        }
    }
}

impl Drop for CacheLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
