//! `cargo xtask deps`: the Debian packages and the rustup target the kernel
//! tests need, installed when missing (as root) or named in an exact command.
//!
//! Every other subcommand calls [`ensure`] first; when everything is present
//! it costs two short queries (dpkg-query, rustup target list).

use crate::util::{run, show};
use std::process::Command;

/// Debian packages: bookworm's two kernel series (image + headers), QEMU, the guest
/// userland, and what the host needs to build the module and unpack the
/// kernel images.
pub const PACKAGES: &[&str] = &[
    "linux-image-amd64",
    "linux-headers-amd64",
    "linux-image-6.12-amd64",
    "linux-headers-6.12-amd64",
    "qemu-system-x86",
    "busybox-static",
    "cpio",
    "xz-utils",
    "zstd",
    "kmod",
    "make",
    "gcc",
    "libc6-dev",
    "sparse",
    // The sid chroot the 7.2 module is built in (sid.rs).
    "mmdebstrap",
    // The sanitizer kernels (sanitizer.rs): the source and its build tools.
    "linux-source-6.12",
    "bc",
    "flex",
    "bison",
    "libelf-dev",
    "libssl-dev",
    // The arm64 guest (arm64.rs): cross compiler and QEMU.
    "gcc-aarch64-linux-gnu",
    "qemu-system-arm",
    // The Secure Boot install test (secureboot.rs): DKMS, the firmware,
    // image signing, mokutil, the venv for virt-firmware.
    "dkms",
    "ovmf",
    "sbsigntool",
    "mokutil",
    "openssl",
    "python3-venv",
    // The LXC container step (lxc.rs).
    "lxc",
];

/// The Rust target of the guest binaries (static, runs in a busybox initramfs).
pub const GUEST_TARGET: &str = "x86_64-unknown-linux-musl";

fn missing_packages() -> Result<Vec<&'static str>, String> {
    if !crate::util::have("dpkg-query") {
        return Err(
            "dpkg-query not found: the kernel tests need a Debian-based host (bookworm or later)"
                .into(),
        );
    }
    let mut missing = Vec::new();
    for &p in PACKAGES {
        let out = Command::new("dpkg-query")
            .args(["-W", "-f=${Status}", p])
            .output()
            .map_err(|e| format!("cannot run dpkg-query: {e}"))?;
        let status = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !status.contains("install ok installed") {
            missing.push(p);
        }
    }
    Ok(missing)
}

fn target_installed() -> Result<bool, String> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("cannot run rustup (needed to add {GUEST_TARGET}): {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == GUEST_TARGET))
}

fn is_root() -> bool {
    // The effective uid of this process, from /proc (no libc dependency).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Checks for everything and installs what is missing.
pub fn ensure() -> Result<(), String> {
    let missing = missing_packages()?;
    if !missing.is_empty() {
        let mut install = Command::new("apt-get");
        install
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive");
        if !is_root() {
            return Err(format!(
                "missing packages: {}\nrun as root:\n    apt-get update && {}",
                missing.join(" "),
                show(&install)
            ));
        }
        eprintln!("xtask deps: installing {}", missing.join(" "));
        run(Command::new("apt-get").arg("update"))?;
        run(&mut install)?;
    }
    if !target_installed()? {
        eprintln!("xtask deps: adding the rustup target {GUEST_TARGET}");
        run(Command::new("rustup").args(["target", "add", GUEST_TARGET]))?;
    }
    Ok(())
}
