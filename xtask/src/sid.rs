//! Debian sid's kernel (7.2) as a guest kernel.
//!
//! Its header tree needs sid's compiler (gcc-16) and its kbuild tools link
//! against a newer glibc than bookworm's, so the module is built inside a
//! sid chroot that `mmdebstrap` creates once and this module caches outside
//! the work tree (`~/.cache/secure-ipc/sid-<version>/`). The kernel image and
//! its modules come from sid's `linux-binary`, `linux-modules` and
//! `linux-base` packages, downloaded inside the chroot and unpacked on the
//! host; `depmod` writes the modules.dep that Debian's postinst would.

use crate::util::{cache_dir, run};
use crate::vm::{Builder, Kernel};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The kernel release of sid's 7.2 (Debian's ABI name).
pub const VERSION: &str = "7.2.13+deb14-amd64";
/// The compiler sid's 7.2 header tree was configured with.
const GCC: &str = "gcc-16";

fn base() -> PathBuf {
    cache_dir().join(format!("sid-{VERSION}"))
}

/// The chroot, created on first use. mmdebstrap writes it to a temporary
/// directory that is renamed only when it succeeded, so an interrupted run
/// leaves nothing that looks complete.
fn ensure_chroot() -> Result<PathBuf, String> {
    let root = base().join("chroot");
    if root
        .join("usr/src")
        .join(format!("linux-headers-{VERSION}"))
        .is_dir()
    {
        return Ok(root);
    }
    if !crate::util::have("mmdebstrap") {
        return Err("mmdebstrap not found (cargo xtask deps installs it)".into());
    }
    let tmp = base().join("chroot.tmp");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    }
    fs::create_dir_all(base()).map_err(|e| format!("{}: {e}", base().display()))?;
    eprintln!("==> creating the sid build chroot in {}", root.display());
    run(Command::new("mmdebstrap")
        .arg("--variant=apt")
        // The sid index is a dated snapshot: its Valid-Until has passed.
        .arg("--aptopt=Acquire::Check-Valid-Until \"false\"")
        // Kept so the image packages can be downloaded from the chroot.
        .arg("--skip=cleanup/apt/lists")
        .arg(format!("--include={GCC},make,linux-headers-{VERSION}"))
        .arg("sid")
        .arg(&tmp))?;
    fs::rename(&tmp, &root).map_err(|e| format!("{}: {e}", root.display()))?;
    Ok(root)
}

/// The unpacked kernel image and module tree, downloaded on first use.
fn ensure_image(chroot: &Path) -> Result<PathBuf, String> {
    let image = base().join("image");
    let moddir = image.join("usr/lib/modules").join(VERSION);
    if moddir.join("modules.dep").exists() && moddir.join("vmlinuz").exists() {
        return Ok(image);
    }
    let debs = chroot.join("opt/sipc-image");
    fs::create_dir_all(&debs).map_err(|e| format!("{}: {e}", debs.display()))?;
    run(Command::new("chroot").arg(chroot).args([
        "sh",
        "-c",
        &format!(
            "cd /opt/sipc-image && apt-get -q -o APT::Sandbox::User=root download \
             linux-binary-{VERSION} linux-modules-{VERSION} linux-base-{VERSION}"
        ),
    ]))?;
    let tmp = base().join("image.tmp");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    }
    fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let mut found = 0;
    for e in fs::read_dir(&debs).map_err(|e| format!("{}: {e}", debs.display()))? {
        let p = e.map_err(|e| e.to_string())?.path();
        if p.extension().is_some_and(|x| x == "deb") {
            run(Command::new("dpkg-deb").arg("-x").arg(&p).arg(&tmp))?;
            found += 1;
        }
    }
    if found < 3 {
        return Err(format!(
            "expected the linux-binary, linux-modules and linux-base packages in {}",
            debs.display()
        ));
    }
    run(Command::new("depmod")
        .arg("-b")
        .arg(tmp.join("usr"))
        .arg(VERSION))?;
    if image.exists() {
        fs::remove_dir_all(&image).map_err(|e| format!("{}: {e}", image.display()))?;
    }
    fs::rename(&tmp, &image).map_err(|e| format!("{}: {e}", image.display()))?;
    Ok(image)
}

/// Sid's 7.2 as a guest kernel; creates the chroot and fetches the image on
/// first use.
pub fn kernel() -> Result<Kernel, String> {
    let _lock =
        crate::util::CacheLock::acquire(&PathBuf::from(format!("{}.lock", base().display())))?;
    let chroot = ensure_chroot()?;
    let image = ensure_image(&chroot)?;
    let modules = image.join("usr/lib/modules").join(VERSION);
    Ok(Kernel {
        series: "7.2",
        version: VERSION.to_string(),
        headers: PathBuf::from(format!("/usr/src/linux-headers-{VERSION}")),
        image: modules.join("vmlinuz"),
        config: modules.join("config"),
        modules,
        builder: Builder::Chroot(chroot),
        cmdline: String::new(),
        slowdown: 1,
        arch: crate::vm::Arch::X86_64,
        busybox: PathBuf::from("/bin/busybox"),
        uefi: None,
    })
}

/// Runs `make ARGS` in `chroot` with the host directory `work` mounted at
/// /build, in a private mount namespace (the mounts vanish with it).
pub fn make_in_chroot(chroot: &Path, work: &Path, args: &[String]) -> Result<(), String> {
    fs::create_dir_all(chroot.join("build")).map_err(|e| e.to_string())?;
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--fork", "sh", "-c"])
        .arg(
            // objtool reads /proc; kbuild needs the sources under the chroot.
            "root=$1 work=$2; shift 2; mount -t proc proc \"$root/proc\" && \
             mount --bind \"$work\" \"$root/build\" && exec chroot \"$root\" make \"$@\"",
        )
        .arg("sh")
        .arg(chroot)
        .arg(work)
        .args(args);
    run(&mut cmd)
}
