//! Debian's arm64 6.12 kernel as a guest (`--kernel 6.12-arm64`), booted
//! with `qemu-system-aarch64 -M virt -cpu max` under TCG.
//!
//! The arm64 `linux-image` and `linux-headers` packages of the same ABI as
//! the host's amd64 6.12, and arm64 `busybox-static`, are downloaded with an
//! apt state of their own (in the cache, so the host's dpkg never learns
//! the arm64 architecture) and unpacked to
//! `~/.cache/secure-ipc/arm64-<abi>/root/`. The module is cross-built with
//! `gcc-aarch64-linux-gnu` against those headers: Debian's kbuild tools are
//! per build machine, so the host's amd64 `linux-kbuild` serves the arm64
//! header tree (its `scripts` and `tools` links are pointed at it).

use crate::util::{cache_dir, run};
use crate::vm::{Arch, Builder, Kernel};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Rust target of the arm64 guest binaries.
pub const GUEST_TARGET: &str = "aarch64-unknown-linux-musl";
/// The cross linker of [`GUEST_TARGET`].
pub const LINKER: &str = "aarch64-linux-gnu-gcc";

/// The ABI of the host's amd64 6.12 headers (e.g. `6.12.118+deb12`): the
/// arm64 packages must match it, since they share its `-common` headers and
/// `linux-kbuild`.
fn host_abi() -> Result<String, String> {
    let mut abis: Vec<String> = fs::read_dir("/usr/src")
        .map_err(|e| format!("/usr/src: {e}"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter_map(|n| {
            n.strip_prefix("linux-headers-6.12.")
                .and_then(|r| r.strip_suffix("-amd64"))
                .map(|r| format!("6.12.{r}"))
        })
        .filter(|abi| Path::new(&format!("/usr/lib/linux-kbuild-{abi}")).is_dir())
        .collect();
    abis.sort_by_key(|v| crate::vm::version_key(v));
    abis.pop().ok_or_else(|| {
        "no amd64 6.12 headers with their linux-kbuild on this host (cargo xtask deps)".into()
    })
}

fn apt(state: &Path) -> Command {
    let mut c = Command::new("apt-get");
    c.arg("-q")
        .arg(format!("-oDir::State={}", state.join("state").display()))
        .arg(format!(
            "-oDir::State::status={}",
            state.join("status").display()
        ))
        .arg(format!("-oDir::Cache={}", state.join("cache").display()))
        .arg("-oAPT::Architecture=arm64")
        .arg("-oAPT::Architectures::=arm64")
        .arg("-oAPT::Sandbox::User=root");
    c
}

/// Downloads and unpacks the arm64 packages once; returns the root.
fn ensure_root(abi: &str) -> Result<PathBuf, String> {
    let base = cache_dir().join(format!("arm64-{abi}"));
    let root = base.join("root");
    let version = format!("{abi}-arm64");
    if root
        .join("lib/modules")
        .join(&version)
        .join("modules.dep")
        .exists()
    {
        return Ok(root);
    }
    let state = base.join("apt");
    for d in ["state/lists/partial", "cache/archives/partial", "debs"] {
        fs::create_dir_all(state.join(d)).map_err(|e| format!("{}: {e}", state.display()))?;
    }
    fs::write(state.join("status"), "").map_err(|e| e.to_string())?;
    run(apt(&state).arg("update"))?;
    let debs = state.join("debs");
    // apt-get download writes to the current directory.
    let mut dl = Command::new("sh");
    dl.args(["-c", "cd \"$0\" && exec \"$@\""])
        .arg(&debs)
        .arg(apt(&state).get_program())
        .args(apt(&state).get_args())
        .arg("download")
        .arg(format!("linux-image-{version}"))
        .arg(format!("linux-headers-{version}"))
        .arg("busybox-static");
    run(&mut dl)?;
    let tmp = base.join("root.tmp");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    }
    fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    for e in fs::read_dir(&debs).map_err(|e| format!("{}: {e}", debs.display()))? {
        let p = e.map_err(|e| e.to_string())?.path();
        if p.extension().is_some_and(|x| x == "deb") {
            run(Command::new("dpkg-deb").arg("-x").arg(&p).arg(&tmp))?;
        }
    }
    // The header tree's scripts/tools are relative links into an arm64
    // linux-kbuild that is not here; the host's amd64 one serves.
    let headers = tmp.join("usr/src").join(format!("linux-headers-{version}"));
    for link in ["scripts", "tools"] {
        let l = headers.join(link);
        let _ = fs::remove_file(&l);
        std::os::unix::fs::symlink(format!("/usr/lib/linux-kbuild-{abi}/{link}"), &l)
            .map_err(|e| format!("{}: {e}", l.display()))?;
    }
    run(Command::new("depmod").arg("-b").arg(&tmp).arg(&version))?;
    if root.exists() {
        fs::remove_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    }
    fs::rename(&tmp, &root).map_err(|e| format!("{}: {e}", root.display()))?;
    Ok(root)
}

/// Debian's arm64 6.12, fetched on first use.
pub fn kernel() -> Result<Kernel, String> {
    let abi = host_abi()?;
    let lock = cache_dir().join(format!("arm64-{abi}.lock"));
    let _lock = crate::util::CacheLock::acquire(&lock)?;
    let root = ensure_root(&abi)?;
    let version = format!("{abi}-arm64");
    Ok(Kernel {
        series: "6.12-arm64",
        headers: root
            .join("usr/src")
            .join(format!("linux-headers-{version}")),
        image: root.join("boot").join(format!("vmlinuz-{version}")),
        modules: root.join("lib/modules").join(&version),
        config: root.join("boot").join(format!("config-{version}")),
        busybox: root.join("bin/busybox"),
        uefi: None,
        version,
        arch: Arch::Arm64,
        builder: Builder::Host,
        cmdline: String::new(),
        slowdown: 2,
    })
}

/// Adds the arm64 musl target when missing.
pub fn ensure_target() -> Result<(), String> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("cannot run rustup: {e}"))?;
    if !String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == GUEST_TARGET)
    {
        run(Command::new("rustup").args(["target", "add", GUEST_TARGET]))?;
    }
    Ok(())
}
