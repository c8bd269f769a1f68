//! Kernel tests in QEMU guests: `vm-test`, `vm-run`, `vm-shell`.
//!
//! For each Debian kernel installed on the host (the newest 6.1 and 6.12),
//! the module is built against its header tree, packed with busybox, the
//! crypto modules and the static guest binaries into an initramfs, and
//! booted with QEMU. The guest's `/init` reports its exit status through
//! `isa-debug-exit`; the host also scans the serial log for kernel
//! warnings and checks that the module unloaded at the end.

use crate::initramfs::{self, Cpio, ModuleDb};
use crate::util::{cargo, newer_than, root, run, show, Steps};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One guest kernel: its header tree, boot image and module tree.
#[derive(Clone, Debug)]
pub struct Kernel {
    /// "6.1" or "6.12".
    pub series: &'static str,
    /// Release string, e.g. `6.1.0-56-amd64`.
    pub version: String,
    /// /usr/src/linux-headers-<version>.
    pub headers: PathBuf,
    /// /boot/vmlinuz-<version>.
    pub image: PathBuf,
    /// /lib/modules/<version>.
    pub modules: PathBuf,
    /// The kernel's .config (/boot/config-<version>).
    pub config: PathBuf,
    /// Where the module is built against `headers`.
    pub builder: Builder,
    /// Kernel command line arguments besides the harness's own.
    pub cmdline: String,
    /// How many times slower than a production kernel the guest runs (the
    /// sanitizer kernels): scales the run's timeout.
    pub slowdown: u32,
    /// The guest's architecture.
    pub arch: Arch,
    /// The static busybox of that architecture.
    pub busybox: PathBuf,
    /// x86_64 only: boot through this UEFI firmware (code, a vars file the
    /// guest may write) with Secure Boot enforced, the EFI stub of `image`
    /// instead of PVH (xtask/src/secureboot.rs).
    pub uefi: Option<(PathBuf, PathBuf)>,
}

/// A guest architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// x86_64: qemu-system-x86_64, PVH boot, isa-debug-exit.
    X86_64,
    /// arm64: qemu-system-aarch64 -M virt, the module cross-built.
    Arm64,
}

impl Arch {
    /// The Rust target of this architecture's static guest binaries.
    pub fn guest_target(self) -> &'static str {
        match self {
            Arch::X86_64 => crate::deps::GUEST_TARGET,
            Arch::Arm64 => crate::arm64::GUEST_TARGET,
        }
    }
}

/// Where a kernel's module build runs.
#[derive(Clone, Debug)]
pub enum Builder {
    /// On this machine; `headers` is a host path.
    Host,
    /// In this chroot (the kernel's own compiler and libc); `headers` is a
    /// path inside it.
    Chroot(PathBuf),
}

impl Kernel {
    /// Scratch directory of this kernel's builds and logs.
    pub fn work_dir(&self) -> PathBuf {
        target_dir().join("vm").join(&self.version)
    }
}

/// The cargo target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// Every kernel `--kernel all` selects: bookworm's two series (installed on
/// the host), sid's 7.2 (built in a chroot, see sid.rs) and bookworm's arm64
/// 6.12 (cross-built, see arm64.rs).
pub const SERIES: &[&str] = &["6.1", "6.12", "7.2", "6.12-arm64"];

/// Sort key of a kernel version string.
pub fn version_key(v: &str) -> Vec<u64> {
    v.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or(0))
        .collect()
}

/// The newest installed kernel of each selected series ("6.1", "6.12", "all").
pub fn find_kernels(sel: &str) -> Result<Vec<Kernel>, String> {
    let wanted: Vec<&'static str> = match sel {
        "all" => SERIES
            .iter()
            .chain(crate::sanitizer::IN_ALL)
            .copied()
            .collect(),
        s => vec![*SERIES
            .iter()
            .chain(crate::sanitizer::SERIES)
            .find(|&&x| x == s)
            .ok_or_else(|| {
                format!(
                    "--kernel {s}: expected {}, {} or all",
                    SERIES.join(", "),
                    crate::sanitizer::SERIES.join(", ")
                )
            })?],
    };
    let names: Vec<String> = fs::read_dir("/usr/src")
        .map_err(|e| format!("/usr/src: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    let mut out = Vec::new();
    for series in wanted {
        if series == "7.2" {
            out.push(crate::sid::kernel()?);
            continue;
        }
        if series == "6.12-arm64" {
            out.push(crate::arm64::kernel()?);
            continue;
        }
        if crate::sanitizer::SERIES.contains(&series) {
            out.push(crate::sanitizer::kernel(series)?);
            continue;
        }
        let prefix = format!("linux-headers-{series}.");
        let newest = names
            .iter()
            .filter(|n| n.starts_with(&prefix) && n.ends_with("-amd64"))
            .map(|n| n["linux-headers-".len()..].to_string())
            .filter(|v| {
                Path::new("/boot").join(format!("vmlinuz-{v}")).exists()
                    && Path::new("/lib/modules")
                        .join(v)
                        .join("modules.dep")
                        .exists()
            })
            .max_by_key(|v| version_key(v))
            .ok_or_else(|| {
                format!(
                    "no {series} kernel with headers, /boot/vmlinuz and /lib/modules found \
                     (cargo xtask deps installs them)"
                )
            })?;
        out.push(Kernel {
            series,
            headers: PathBuf::from(format!("/usr/src/linux-headers-{newest}")),
            image: PathBuf::from(format!("/boot/vmlinuz-{newest}")),
            modules: PathBuf::from(format!("/lib/modules/{newest}")),
            config: PathBuf::from(format!("/boot/config-{newest}")),
            builder: Builder::Host,
            cmdline: String::new(),
            slowdown: 1,
            arch: Arch::X86_64,
            busybox: PathBuf::from("/bin/busybox"),
            uefi: None,
            version: newest,
        });
    }
    Ok(out)
}

fn is_build_product(name: &str) -> bool {
    name.starts_with('.')
        || [
            ".o", ".ko", ".mod", ".mod.c", ".cmd", ".o.d", ".symvers", ".order",
        ]
        .iter()
        .any(|s| name.ends_with(s))
}

/// Mirrors the module sources into `dst`, rewriting only changed files so
/// kbuild's incremental rebuild still works.
fn sync_tree(src: &Path, dst: &Path) -> Result<(), String> {
    fs::create_dir_all(dst).map_err(|e| format!("{}: {e}", dst.display()))?;
    for e in fs::read_dir(src).map_err(|e| format!("{}: {e}", src.display()))? {
        let e = e.map_err(|e| e.to_string())?;
        let name = e.file_name().to_string_lossy().into_owned();
        if is_build_product(&name) {
            continue;
        }
        let (s, d) = (e.path(), dst.join(&name));
        if s.is_dir() {
            sync_tree(&s, &d)?;
        } else {
            let data = fs::read(&s).map_err(|e| format!("{}: {e}", s.display()))?;
            if fs::read(&d).ok().as_deref() != Some(&data[..]) {
                fs::write(&d, &data).map_err(|e| format!("{}: {e}", d.display()))?;
            }
        }
    }
    Ok(())
}

/// Module build variants. The test-hooks build has the same module name
/// (`secure_ipc`), so it replaces the normal one in the guest only while a
/// test that needs it runs; it ships at /lib/sipc/test-hooks/secure_ipc.ko.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Variant {
    /// The build users get.
    Normal,
    /// `SIPC_TEST_HOOKS=1`: test-only ioctls that export keys.
    TestHooks,
}

/// Builds secure_ipc.ko for `k`; returns the path of the .ko.
pub fn build_module(k: &Kernel, v: Variant) -> Result<PathBuf, String> {
    // SIPC_KERNEL_SRC: build another tree's module (e.g. an older revision,
    // to show that a new guest test fails on it).
    let src = std::env::var_os("SIPC_KERNEL_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("kernel"));
    let (dir, hooks) = match v {
        Variant::Normal => ("kmod", false),
        Variant::TestHooks => ("kmod-test-hooks", true),
    };
    build_module_tree(k, &src, &k.work_dir().join(dir), hooks)
}

/// Builds the module sources of `src` for `k` in the build directory `dst`
/// (kept between runs for kbuild's incremental rebuild); returns the .ko.
pub fn build_module_tree(
    k: &Kernel,
    src: &Path,
    dst: &Path,
    test_hooks: bool,
) -> Result<PathBuf, String> {
    if !src.join("Kbuild").exists() {
        return Err(format!(
            "{} has no Kbuild: the module is missing",
            src.display()
        ));
    }
    sync_tree(src, dst)?;
    let hooks = u8::from(test_hooks);
    let make_args = |dir: &Path| -> Vec<String> {
        let cross = match k.arch {
            Arch::X86_64 => vec![],
            Arch::Arm64 => vec![
                "ARCH=arm64".into(),
                "CROSS_COMPILE=aarch64-linux-gnu-".into(),
            ],
        };
        cross
            .into_iter()
            .chain([
                "-s".into(),
                "-C".into(),
                dir.display().to_string(),
                "module".into(),
                format!("KDIR={}", k.headers.display()),
                format!("SIPC_TEST_HOOKS={hooks}"),
                // The module must build without warnings on every kernel.
                "KCFLAGS=-Werror".into(),
                "-j2".into(),
            ])
            .collect()
    };
    match &k.builder {
        Builder::Host => run(Command::new("make").args(make_args(dst)))?,
        Builder::Chroot(chroot) => {
            // The chroot sees the kernel's work directory at /build.
            let rel = dst.strip_prefix(k.work_dir()).map_err(|_| {
                format!(
                    "{}: a chroot build must live under {}",
                    dst.display(),
                    k.work_dir().display()
                )
            })?;
            crate::sid::make_in_chroot(
                chroot,
                &k.work_dir(),
                &make_args(&Path::new("/build").join(rel)),
            )?
        }
    }
    let ko = dst.join("secure_ipc.ko");
    if !ko.exists() {
        return Err(format!("the build did not produce {}", ko.display()));
    }
    Ok(ko)
}

/// The ELF vmlinux inside the bzImage (booted through its PVH entry, which
/// skips the real-mode setup and the decompressor: much faster under TCG).
/// None when the kernel lacks CONFIG_PVH or the payload cannot be unpacked;
/// the caller then boots the bzImage.
pub fn extract_vmlinux(k: &Kernel) -> Option<PathBuf> {
    if k.arch != Arch::X86_64 {
        return None;
    }
    let out = k.work_dir().join("vmlinux");
    if newer_than(&out, &k.image) {
        return Some(out);
    }
    let config = fs::read_to_string(&k.config).unwrap_or_default();
    if !config.lines().any(|l| l == "CONFIG_PVH=y") {
        eprintln!("note: {} has no CONFIG_PVH: booting the bzImage", k.version);
        return None;
    }
    match unpack_bzimage(&k.image) {
        Ok(elf) => {
            fs::create_dir_all(k.work_dir()).ok()?;
            fs::write(&out, elf).ok()?;
            Some(out)
        }
        Err(e) => {
            eprintln!(
                "note: cannot extract vmlinux from {}: {e}; booting the bzImage",
                k.image.display()
            );
            None
        }
    }
}

fn unpack_bzimage(image: &Path) -> Result<Vec<u8>, String> {
    let b = fs::read(image).map_err(|e| format!("{}: {e}", image.display()))?;
    let u32_at = |o: usize| -> Result<usize, String> {
        b.get(o..o + 4)
            .map(|s| u32::from_le_bytes(s.try_into().unwrap()) as usize)
            .ok_or_else(|| "truncated image".to_string())
    };
    if b.get(0x202..0x206) != Some(b"HdrS") {
        return Err("no x86 boot header".into());
    }
    let setup_sects = match b[0x1f1] {
        0 => 4,
        n => n as usize,
    };
    // Boot protocol 2.08+: payload_offset/payload_length, relative to the
    // protected-mode code after the setup sectors.
    let start = (setup_sects + 1) * 512 + u32_at(0x248)?;
    let len = u32_at(0x24c)?;
    let payload = b.get(start..start + len).ok_or("payload out of range")?;
    let tool = match payload {
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => "xz",
        [0x28, 0xb5, 0x2f, 0xfd, ..] => "zstd",
        [0x1f, 0x8b, ..] => "gzip",
        _ => return Err("unknown payload compression".into()),
    };
    // kbuild appends the uncompressed size (4 bytes) after an xz or zstd
    // stream; gzip has it in its own trailer.
    let stream = if tool == "gzip" {
        payload
    } else {
        &payload[..len - 4]
    };
    let tmp = std::env::temp_dir().join(format!("sipc-payload-{}", std::process::id()));
    fs::write(&tmp, stream).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let out = Command::new(tool).arg("-dc").arg(&tmp).output();
    let _ = fs::remove_file(&tmp);
    let out = out.map_err(|e| format!("cannot run {tool}: {e}"))?;
    if !out.status.success() || !out.stdout.starts_with(b"\x7fELF") {
        return Err(format!(
            "{tool} -dc: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out.stdout)
}

/// Builds static guest binaries of `package` (musl) with cargo profile
/// `profile` ("guest" for tests: fast to compile; "release" for benches);
/// returns the paths of the named binaries.
pub fn build_guest_bins(
    package: &str,
    profile: &str,
    bins: &[&str],
) -> Result<Vec<PathBuf>, String> {
    build_guest_bins_for(Arch::X86_64, package, profile, bins)
}

/// [`build_guest_bins`] for the guests of `arch`.
pub fn build_guest_bins_for(
    arch: Arch,
    package: &str,
    profile: &str,
    bins: &[&str],
) -> Result<Vec<PathBuf>, String> {
    let target = arch.guest_target();
    let mut cmd = cargo();
    cmd.args([
        "build",
        "--profile",
        profile,
        "--quiet",
        "-p",
        package,
        "--target",
        target,
    ]);
    if arch == Arch::Arm64 {
        crate::arm64::ensure_target()?;
        cmd.env(
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER",
            crate::arm64::LINKER,
        );
    }
    run(&mut cmd)?;
    let dir = target_dir().join(target).join(profile);
    bins.iter()
        .map(|b| {
            let p = dir.join(b);
            if p.exists() {
                Ok(p)
            } else {
                Err(format!("{} was not built", p.display()))
            }
        })
        .collect()
}

/// What the guest does after loading the crypto modules.
pub enum Mode {
    /// Runs the guest test runner with these arguments (it loads and
    /// unloads the module itself).
    Test(Vec<String>),
    /// Loads the module, runs a shell command line in /extra.
    Run(Vec<String>),
    /// [`Mode::Run`] without loading the module first (the command loads
    /// it, or shows that the kernel refuses it).
    RunUnloaded(Vec<String>),
    /// Loads the module, starts an interactive shell.
    Shell,
}

/// Everything that goes into one guest.
pub struct Guest {
    /// Guest behaviour.
    pub mode: Mode,
    /// Host binaries copied to /bin.
    pub bins: Vec<PathBuf>,
    /// A host directory copied to /extra.
    pub extra: Option<PathBuf>,
    /// Module names loaded at boot besides the crypto set.
    pub extra_modules: Vec<&'static str>,
    /// Module files shipped but not loaded (/lib/sipc/opt/<name>.ko).
    pub optional_modules: Vec<&'static str>,
    /// Further host files: (path in the guest, host path), e.g. a second
    /// build of our module for `cargo xtask bench --against`.
    pub extra_files: Vec<(String, PathBuf)>,
    /// Full userland: this machine's root, read-only over virtio-9p under
    /// a tmpfs overlay, becomes the guest's root for `Mode::Run`, whose
    /// command runs in this directory (a path that exists on the host).
    pub host_root: Option<PathBuf>,
}

/// The 9p and overlay modules a host-root guest loads (built in on the
/// sanitizer kernels, where resolving them finds nothing to ship).
pub const HOST_ROOT_MODULES: &[&str] = &["9pnet_virtio", "9p", "overlay"];

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

const INIT: &str = r#"#!/bin/busybox sh
# Generated by cargo xtask (xtask/src/vm.rs).
/bin/busybox --install -s /bin
export PATH=/bin:/extra
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
# Warnings and worse reach the console: the host fails the run on any
# WARNING/BUG/Oops/panic in the log.
dmesg -n 5
echo "SIPC-HARNESS: guest up: kernel $(uname -r), $(nproc) CPUs"
while read -r m; do
	[ -n "$m" ] || continue
	insmod "/lib/sipc/deps/$m" 2>/tmp/insmod.err ||
		echo "SIPC-HARNESS: note: $m not loaded: $(cat /tmp/insmod.err)"
done </lib/sipc/deps.list
# Sanitizer kernels: what boot leaked is not ours; forget it.
if mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null &&
	[ -e /sys/kernel/debug/kmemleak ]; then
	echo clear >/sys/kernel/debug/kmemleak
fi
rc=0
load_sipc() {
	insmod /lib/sipc/secure_ipc.ko && return 0
	echo "SIPC-HARNESS: FAILED: insmod secure_ipc.ko"
	rc=4
	return 1
}
# Full userland (vm-run --host-root): the host's root over virtio-9p,
# read-only, under a tmpfs overlay, with the guest's own kernel
# filesystems. The module stays loaded from the initramfs.
mount_host_root() {
	mkdir -p /host /rw /newroot
	mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose \
		hostroot /host || return 1
	mount -t tmpfs -o mode=0755 tmpfs /rw || return 1
	mkdir /rw/upper /rw/work
	mount -t overlay overlay \
		-o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work /newroot || return 1
	mount -t proc proc /newroot/proc &&
		mount -t sysfs sysfs /newroot/sys &&
		mount -t devtmpfs devtmpfs /newroot/dev &&
		mount -t tmpfs tmpfs /newroot/tmp &&
		mount -t tmpfs tmpfs /newroot/run || return 1
	mkdir -p /newroot/dev/pts /newroot/dev/shm
	mount -t devpts devpts /newroot/dev/pts
	mount -t tmpfs tmpfs /newroot/dev/shm
	mount -t cgroup2 cgroup2 /newroot/sys/fs/cgroup 2>/dev/null
	[ -e /sys/kernel/debug/kmemleak ] &&
		mount -t debugfs debugfs /newroot/sys/kernel/debug
	chmod 1777 /newroot/tmp
	return 0
}
# Runs "$@" with the host root as the root of a mount namespace of its
# own: moved onto "/" (as switch_root does), not a chroot into /newroot.
# A program that enters another mount namespace (setns, as lxc-attach
# does) lands at that namespace's root mount; under a bare chroot that
# would be this initramfs, not the host root or a container's root.
in_host_root() {
	unshare -m sh -c 'cd /newroot && mount --move . / && exec chroot . "$@"' sh "$@"
}
. /etc/sipc/run.sh
# Every run ends by unloading the module: a leaked reference fails here.
if [ -e /sys/module/secure_ipc ]; then
	if ! rmmod secure_ipc; then
		echo "SIPC-HARNESS: FAILED: rmmod secure_ipc at the end of the run (refcnt $(cat /sys/module/secure_ipc/refcnt))"
		[ "$rc" -ne 0 ] || rc=3
	fi
fi
# kmemleak: objects younger than 5 s are not reported, and one scan can
# miss a pointer in flight; wait, scan twice, print every report (the host
# fails the run on "unreferenced object").
if [ -e /sys/kernel/debug/kmemleak ]; then
	sleep 6
	echo scan >/sys/kernel/debug/kmemleak
	sleep 1
	echo scan >/sys/kernel/debug/kmemleak
	cat /sys/kernel/debug/kmemleak
	echo "SIPC-HARNESS: kmemleak scanned"
fi
# The port carries 7 bits; a status of 128 and more (a signal) is
# printed whole first.
if [ "$rc" -gt 127 ]; then
	echo "SIPC-HARNESS: the command's status was $rc (reported as 127)"
	rc=127
fi
echo "SIPC-HARNESS: exit status $rc"
printf "\\$(printf %03o "$rc")" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
poweroff -f
"#;

/// Guest exit status reserved by /init: the final rmmod failed.
pub const RC_RMMOD_FAILED: i32 = 3;

fn run_script(mode: &Mode, host_root: Option<&Path>) -> String {
    if let (Mode::Run(cmd) | Mode::RunUnloaded(cmd), Some(dir)) = (mode, host_root) {
        let load = if matches!(mode, Mode::Run(_)) {
            "load_sipc"
        } else {
            "true"
        };
        let cmd: Vec<String> = cmd.iter().map(|a| sh_quote(a)).collect();
        let inner = format!(
            "cd {} && exec {}",
            sh_quote(&dir.display().to_string()),
            cmd.join(" ")
        );
        let env: String = std::env::vars()
            .filter(|(k, _)| k.starts_with("SIPC_GUEST_"))
            .map(|(k, v)| format!("{k}={} ", sh_quote(&v)))
            .collect();
        return format!(
            "if {load}; then\n\tif mount_host_root; then\n\t\tin_host_root /usr/bin/env -i \
             PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
             TMPDIR=/tmp LANG=C.UTF-8 {env}/bin/sh -c {}\n\t\trc=$?\n\telse\n\t\t\
             echo 'SIPC-HARNESS: FAILED: mounting the host root over 9p'\n\t\trc=5\n\tfi\nfi\n\
             umount -l /newroot 2>/dev/null\n",
            sh_quote(&inner)
        );
    }
    match mode {
        Mode::Test(args) => {
            let args: Vec<String> = args.iter().map(|a| sh_quote(a)).collect();
            // SIPC_GUEST_* variables of the host reach the guest tests
            // (e.g. SIPC_GUEST_STRESS_SEED to replay a stress seed).
            let env: String = std::env::vars()
                .filter(|(k, _)| k.starts_with("SIPC_GUEST_"))
                .map(|(k, v)| format!("export {k}={}\n", sh_quote(&v)))
                .collect();
            format!("{env}sipc-guest-tests {}\nrc=$?\n", args.join(" "))
        }
        Mode::Run(cmd) | Mode::RunUnloaded(cmd) => {
            let cmd: Vec<String> = cmd.iter().map(|a| sh_quote(a)).collect();
            let load = if matches!(mode, Mode::Run(_)) {
                "load_sipc"
            } else {
                "true"
            };
            format!(
                "if {load}; then\n\tcd /extra 2>/dev/null || cd /\n\t{}\n\trc=$?\n\tcd /\nfi\n",
                cmd.join(" ")
            )
        }
        Mode::Shell if host_root.is_some() => "load_sipc\nmount_host_root || echo 'SIPC-HARNESS: FAILED: mounting the host root over 9p'\n\
             echo 'SIPC-HARNESS: shell in the host root; exit (or Ctrl-D) powers off'\n\
             setsid cttyhack unshare -m sh -c 'cd /newroot && mount --move . / && exec chroot . \"$@\"' sh /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=linux /bin/bash -l\n"
            .into(),
        Mode::Shell => "load_sipc\necho 'SIPC-HARNESS: shell; exit (or Ctrl-D) powers off'\nsetsid cttyhack sh -l\n".into(),
    }
}

/// Packs the initramfs of `guest` for kernel `k`; returns its path.
pub fn pack(k: &Kernel, guest: &Guest) -> Result<PathBuf, String> {
    let normal = build_module(k, Variant::Normal)?;
    let hooks = build_module(k, Variant::TestHooks)?;
    let ko = fs::read(&normal).map_err(|e| format!("{}: {e}", normal.display()))?;

    let db = ModuleDb::load(&k.modules)?;
    let crypto = match k.arch {
        Arch::X86_64 => initramfs::CRYPTO_MODULES,
        Arch::Arm64 => initramfs::ARM64_CRYPTO_MODULES,
    };
    let mut names: Vec<String> = crypto.iter().map(|s| s.to_string()).collect();
    names.extend(guest.extra_modules.iter().map(|s| s.to_string()));
    if guest.host_root.is_some() {
        names.extend(HOST_ROOT_MODULES.iter().map(|s| s.to_string()));
    }
    names.extend(initramfs::ko_depends(&ko));
    let resolved = db.resolve(&names);
    if !resolved.absent.is_empty() {
        eprintln!(
            "note: {}: modules neither built in nor shipped: {}",
            k.version,
            resolved.absent.join(" ")
        );
    }

    let mut c = Cpio::default();
    for d in [
        "bin",
        "dev",
        "proc",
        "sys",
        "tmp",
        "root",
        "extra",
        "etc/sipc",
        "lib/sipc/deps",
    ] {
        c.dir(d);
    }
    c.chardev("dev/console", 0o600, 5, 1);
    c.chardev("dev/null", 0o666, 1, 3);
    let busybox = fs::read(&k.busybox)
        .map_err(|e| format!("{} (busybox-static): {e}", k.busybox.display()))?;
    c.file("bin/busybox", 0o755, &busybox);
    c.file("init", 0o755, INIT.as_bytes());
    c.file(
        "etc/sipc/run.sh",
        0o644,
        run_script(&guest.mode, guest.host_root.as_deref()).as_bytes(),
    );
    let cache = k.work_dir().join("modules");
    let mut list = String::new();
    for (i, rel) in resolved.paths.iter().enumerate() {
        let data = db.read_module(rel, &cache)?;
        let base = rel.rsplit('/').next().unwrap_or(rel);
        let name = format!("{i:02}-{}.ko", base.split(".ko").next().unwrap_or(base));
        c.file(&format!("lib/sipc/deps/{name}"), 0o644, &data);
        list.push_str(&name);
        list.push('\n');
    }
    c.file("lib/sipc/deps.list", 0o644, list.as_bytes());
    for opt in &guest.optional_modules {
        for rel in db.resolve(&[opt.to_string()]).paths {
            let data = db.read_module(&rel, &cache)?;
            let base = rel.rsplit('/').next().unwrap_or(&rel);
            c.file(
                &format!(
                    "lib/sipc/opt/{}.ko",
                    base.split(".ko").next().unwrap_or(base)
                ),
                0o644,
                &data,
            );
        }
    }
    c.file("lib/sipc/secure_ipc.ko", 0o644, &ko);
    let hooks = fs::read(&hooks).map_err(|e| format!("{}: {e}", hooks.display()))?;
    c.file("lib/sipc/test-hooks/secure_ipc.ko", 0o644, &hooks);
    for (dest, src) in &guest.extra_files {
        let data = fs::read(src).map_err(|e| format!("{}: {e}", src.display()))?;
        c.file(dest, 0o644, &data);
    }
    for b in &guest.bins {
        let data = fs::read(b).map_err(|e| format!("{}: {e}", b.display()))?;
        let name = b.file_name().unwrap().to_string_lossy();
        c.file(&format!("bin/{name}"), 0o755, &data);
    }
    if let Some(dir) = &guest.extra {
        c.tree(dir, "extra")?;
    }
    let out = k.work_dir().join("initramfs.cpio");
    fs::write(&out, c.finish()).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(out)
}

/// QEMU accelerator, CPU model and a label: KVM where the CPU offers
/// vmx/svm and /dev/kvm exists, TCG otherwise.
pub fn accel() -> (&'static str, &'static str, &'static str) {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let hw = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    if hw && Path::new("/dev/kvm").exists() {
        ("kvm", "host", "KVM")
    } else {
        ("tcg", "max", "TCG")
    }
}

/// How a guest run ended.
pub struct Outcome {
    /// Status the guest wrote to isa-debug-exit (None: it never reported).
    pub status: Option<i32>,
    /// The run was killed after the timeout.
    pub timed_out: bool,
    /// The serial log, lines without `\r`.
    pub log: Vec<String>,
    /// Wall time.
    pub elapsed: Duration,
    /// Path of the log file.
    pub log_path: PathBuf,
}

/// QEMU arguments that export this machine's root, read-only, as the 9p
/// tag `hostroot` (`multidevs=remap`: files of different host filesystems
/// never share an inode number in the guest).
fn host_root_args(cmd: &mut Command, k: &Kernel) {
    let dev = match k.arch {
        Arch::X86_64 => "virtio-9p-pci",
        Arch::Arm64 => "virtio-9p-device",
    };
    cmd.args([
        "-fsdev",
        "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
        "-device",
        &format!("{dev},fsdev=hostroot,mount_tag=hostroot"),
    ]);
}

fn qemu_cmd(k: &Kernel, initrd: &Path, smp: u32, host_root: bool) -> (Command, String) {
    // A host-root guest runs other people's programs (trinity, a JVM,
    // LXC), whose memory is not ours to bound: 2 GiB there, 1 GiB for the
    // suites, whose own tests bound what they allocate.
    let mem = if host_root { "2G" } else { "1G" };
    if k.arch == Arch::Arm64 {
        // No isa-debug-exit on arm64: the guest's status is read from its
        // "exit status" line, and poweroff (PSCI) ends QEMU.
        let mut cmd = Command::new("qemu-system-aarch64");
        cmd.args(["-M", "virt", "-accel", "tcg", "-cpu", "max", "-m", mem])
            .args(["-nodefaults", "-no-reboot", "-display", "none"])
            .args(["-smp", &smp.to_string()])
            .arg("-kernel")
            .arg(&k.image)
            .arg("-initrd")
            .arg(initrd)
            .arg("-append")
            .arg(format!("console=ttyAMA0 quiet panic=-1 {}", k.cmdline).trim_end());
        if host_root {
            host_root_args(&mut cmd, k);
        }
        return (cmd, format!("TCG, -M virt -cpu max, {smp} CPUs"));
    }
    let (accel, cpu, accel_name) = accel();
    let mut cmd = Command::new("qemu-system-x86_64");
    let (image, how) = if let Some((code, vars)) = &k.uefi {
        // Secure Boot: edk2 keeps its authenticated variables in SMM, which
        // needs q35 and a pflash that only SMM code may write.
        cmd.args(["-machine", "q35,smm=on"])
            .args(["-global", "driver=cfi.pflash01,property=secure,value=on"])
            .arg("-drive")
            .arg(format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={}",
                code.display()
            ))
            .arg("-drive")
            .arg(format!(
                "if=pflash,format=raw,unit=1,file={}",
                vars.display()
            ));
        (k.image.clone(), "UEFI Secure Boot, EFI stub")
    } else {
        match extract_vmlinux(k) {
            Some(p) => (p, "vmlinux/PVH"),
            None => (k.image.clone(), "bzImage"),
        }
    };
    cmd.args([
        "-accel",
        accel,
        "-cpu",
        cpu,
        "-m",
        mem,
        "-nodefaults",
        "-no-reboot",
    ])
    .args(["-smp", &smp.to_string()])
    .args(["-display", "none"])
    .arg("-kernel")
    .arg(image)
    .arg("-initrd")
    .arg(initrd)
    .arg("-append")
    .arg(format!("console=ttyS0 quiet panic=-1 {}", k.cmdline).trim_end())
    .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    if host_root {
        host_root_args(&mut cmd, k);
    }
    (cmd, format!("{accel_name}, {how}, {smp} CPUs"))
}

/// Boots the guest, streaming the console to the terminal and to `log_path`.
pub fn boot(
    k: &Kernel,
    initrd: &Path,
    name: &str,
    timeout: Duration,
    echo: bool,
) -> Result<Outcome, String> {
    boot_with(k, initrd, name, timeout, echo, false)
}

/// [`boot`], optionally with this machine's root exported over 9p (for a
/// guest packed with [`Guest::host_root`]).
pub fn boot_with(
    k: &Kernel,
    initrd: &Path,
    name: &str,
    timeout: Duration,
    echo: bool,
    host_root: bool,
) -> Result<Outcome, String> {
    let o = boot_once(k, initrd, name, timeout, echo, host_root)?;
    // A guest that dies before /init's first line never ran anything of
    // ours (the module loads later): a TCG boot flake, e.g. an int3 Oops
    // while the kernel patches its own text at boot. One retry, said so.
    // (contains: the UEFI firmware's escape sequences precede it.)
    if o.status.is_none() && !o.log.iter().any(|l| l.contains(GUEST_UP)) {
        eprintln!(
            "==> {}: the guest died before /init ran (not a test result); booting it once more. \
             First boot's log tail:\n{}",
            k.version,
            tail(&o.log, 20)
        );
        return boot_once(k, initrd, name, timeout, echo, host_root);
    }
    Ok(o)
}

/// The first line /init prints.
const GUEST_UP: &str = "SIPC-HARNESS: guest up";

fn boot_once(
    k: &Kernel,
    initrd: &Path,
    name: &str,
    timeout: Duration,
    echo: bool,
    host_root: bool,
) -> Result<Outcome, String> {
    let (mut cmd, how) = qemu_cmd(k, initrd, 2, host_root);
    cmd.args(["-serial", "stdio", "-monitor", "none"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let log_path = k.work_dir().join(format!("{name}.log"));
    eprintln!(
        "==> booting {} ({}: {how}); log: {}",
        k.series,
        k.version,
        log_path.display()
    );
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", show(&cmd)))?;
    let stdout = child.stdout.take().unwrap();
    let mut file =
        fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            let line = String::from_utf8_lossy(&line)
                .trim_end_matches('\r')
                .to_string();
            let _ = writeln!(file, "{line}");
            if echo {
                println!("  | {line}");
            }
            lines.push(line);
        }
        lines
    });
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break s;
        }
        if start.elapsed() > timeout {
            timed_out = true;
            let _ = child.kill();
            break child.wait().map_err(|e| e.to_string())?;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = reader.join().unwrap_or_default();
    // isa-debug-exit: qemu exits with (status << 1) | 1; 0 means the guest
    // powered off or rebooted (panic=-1) without reporting.
    let status = match k.arch {
        // Under Secure Boot the kernel locks itself down and /init cannot
        // write /dev/port: the status comes from the log, as on arm64.
        Arch::X86_64 if k.uefi.is_some() && !timed_out => log
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("SIPC-HARNESS: exit status "))
            .and_then(|s| s.trim().parse().ok()),
        Arch::X86_64 => match status.code() {
            Some(c) if c & 1 == 1 && !timed_out => Some(c >> 1),
            _ => None,
        },
        // The last line /init prints before poweroff.
        Arch::Arm64 if !timed_out => log
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("SIPC-HARNESS: exit status "))
            .and_then(|s| s.trim().parse().ok()),
        Arch::Arm64 => None,
    };
    Ok(Outcome {
        status,
        timed_out,
        log,
        elapsed: start.elapsed(),
        log_path,
    })
}

/// Lines of a kernel log that mean the kernel is unhappy.
pub fn kernel_trouble(log: &[String]) -> Vec<String> {
    const BAD: &[&str] = &[
        "Kernel panic",
        "Oops",
        "BUG:",
        "WARNING:",
        "Call Trace:",
        "general protection fault",
        "kernel BUG at",
        "UBSAN:",
        "refcount_t:",
        "list_add corruption",
        "list_del corruption",
        "soft lockup",
        "hard LOCKUP",
        "self-detected stall",
        "blocked for more than",
        // Sanitizer kernels: KASAN, KCSAN, KFENCE and DEBUG_ATOMIC_SLEEP
        // say "BUG:", lockdep says "WARNING:"; these are the others.
        "unreferenced object",
        "ODEBUG:",
        "INFO: task",
        "kernel stack overflow",
    ];
    log.iter()
        .filter(|l| !l.starts_with("test ") && !l.starts_with("SIPC-"))
        .filter(|l| BAD.iter().any(|b| l.contains(b)))
        .cloned()
        .collect()
}

/// The guest tests that were running when the kernel logged trouble: a
/// test's result line follows whatever the kernel printed while it ran.
fn blamed_tests(log: &[String]) -> Vec<String> {
    let mut blamed = Vec::new();
    let mut pending = false;
    for line in log {
        if !kernel_trouble(std::slice::from_ref(line)).is_empty() {
            pending = true;
        } else if let Some((name, _)) = parse_test_line(line) {
            if pending && !blamed.contains(&name) {
                blamed.push(name);
            }
            pending = false;
        }
    }
    blamed
}

/// Each kernel report in the log, from its first line up to `n` lines (a
/// KASAN, KCSAN or lockdep report ends before the next report or the test
/// runner's next line), for the failure message.
pub fn reports(log: &[String], n: usize) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < log.len() {
        if kernel_trouble(std::slice::from_ref(&log[i])).is_empty() {
            i += 1;
            continue;
        }
        let end = (i + n).min(log.len());
        let mut j = i;
        while j < end && (j == i || !log[j].starts_with("test ")) {
            out.push_str(&format!("  | {}\n", log[j]));
            j += 1;
        }
        out.push_str("  | ...\n");
        i = j;
    }
    out
}

fn tail(log: &[String], n: usize) -> String {
    let from = log.len().saturating_sub(n);
    log[from..].iter().map(|l| format!("  | {l}\n")).collect()
}

/// Parses one `test NAME ... ok|FAILED` line of the guest runner.
fn parse_test_line(line: &str) -> Option<(String, Result<(), String>)> {
    let rest = line.strip_prefix("test ")?;
    let (name, verdict) = rest.split_once(" ... ")?;
    if verdict.starts_with("ok") {
        return Some((name.to_string(), Ok(())));
    }
    let why = verdict.strip_prefix("FAILED")?;
    Some((
        name.to_string(),
        Err(why.trim_start_matches([' ', ':']).to_string()),
    ))
}

/// Options shared by the vm-* commands.
pub struct VmArgs {
    /// 6.1, 6.12 or all.
    pub kernel: String,
    /// Test name filter.
    pub filter: Option<String>,
    /// Directory copied to /extra.
    pub extra: Option<PathBuf>,
    /// Command for vm-run.
    pub cmd: Vec<String>,
    /// `--host-root`: vm-run/vm-shell get this machine's root as the
    /// guest's userland (see [`Guest::host_root`]).
    pub host_root: bool,
    /// Per-kernel timeout.
    pub timeout: Duration,
    /// `cargo xtask test`'s plan: the kernels outside [`FULL_DEPTH`] run
    /// their races at [`QUICK_RACE_PERCENT`] of the budget and the short
    /// stream (see [`quick_plan`]).
    pub quick_secondaries: bool,
}

/// The kernels whose races run their whole budget in `cargo xtask test`:
/// the production kernel most users run and the two sanitizer builds of
/// it, where a race shows as a report and not only as a wrong count.
pub const FULL_DEPTH: &[&str] = &["6.12", "6.12-kasan", "6.12-kcsan"];
/// The race budget of the other kernels (6.1, 7.2, arm64) in
/// `cargo xtask test`; `cargo xtask vm-test` runs them whole.
pub const QUICK_RACE_PERCENT: u32 = 30;

/// The guest runner's `--env` settings of a kernel outside [`FULL_DEPTH`]:
/// what the host's environment already sets (a replay, a soak) wins.
fn quick_plan() -> Vec<String> {
    let mut args = Vec::new();
    for (k, v) in [
        ("SIPC_GUEST_RACE_PERCENT", QUICK_RACE_PERCENT.to_string()),
        ("SIPC_GUEST_STREAM_COUNT", "24000".to_string()),
    ] {
        if std::env::var_os(k).is_none() {
            args.extend(["--env".to_string(), format!("{k}={v}")]);
        }
    }
    args
}

/// Parses `[--kernel K] [--filter F] [--extra DIR] [--timeout SECS] [-- CMD...]`.
pub fn parse_args(args: &[String], default_kernel: &str) -> Result<VmArgs, String> {
    let mut a = VmArgs {
        kernel: default_kernel.into(),
        filter: None,
        extra: None,
        cmd: Vec::new(),
        host_root: false,
        timeout: Duration::from_secs(1200),
        quick_secondaries: false,
    };
    let mut it = args.iter();
    while let Some(x) = it.next() {
        let mut val = |what: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{x} needs {what}"))
        };
        match x.as_str() {
            "--kernel" => a.kernel = val("6.1, 6.12, 7.2 or all")?,
            "--filter" => a.filter = Some(val("a test name")?),
            "--extra" => a.extra = Some(PathBuf::from(val("a directory")?)),
            "--host-root" => a.host_root = true,
            "--timeout" => {
                let v = val("seconds")?;
                a.timeout = Duration::from_secs(
                    v.parse()
                        .map_err(|_| format!("--timeout {v}: not a number"))?,
                );
            }
            "--" => {
                a.cmd = it.cloned().collect();
                break;
            }
            o => return Err(format!("unknown option `{o}`")),
        }
    }
    if let Some(d) = &a.extra {
        if !d.is_dir() {
            return Err(format!("--extra {}: not a directory", d.display()));
        }
    }
    Ok(a)
}

/// `vm-test`: the guest test runner on each selected kernel; records one
/// item per guest test plus per-kernel health checks into `steps`.
pub fn vm_test(a: &VmArgs, steps: &mut Steps) -> Result<(), String> {
    vm_test_with(a, steps, Vec::new())
}

/// A further guest run that takes a lane after the kernels' suites (e.g.
/// trinity): its name as a step, and the run.
pub struct Job<'a> {
    pub name: String,
    pub run: Box<dyn FnOnce() -> Result<(), String> + Send + 'a>,
}

/// [`vm_test`], with `jobs` queued behind the kernels on the same lanes
/// (shortest last, so that the lanes end together). Each job's result is
/// one step, printed when it ends.
pub fn vm_test_with(a: &VmArgs, steps: &mut Steps, jobs: Vec<Job<'_>>) -> Result<(), String> {
    let kernels = find_kernels(&a.kernel)?;
    let t = Instant::now();
    // The module builds (kbuild, mostly serial) overlap the cargo build;
    // pack() below then finds them up to date. Their errors surface there.
    let mut arches: Vec<Arch> = Vec::new();
    for k in &kernels {
        if !arches.contains(&k.arch) {
            arches.push(k.arch);
        }
    }
    let bins = std::thread::scope(|scope| {
        scope.spawn(|| {
            for k in &kernels {
                let _ = extract_vmlinux(k);
                for v in [Variant::Normal, Variant::TestHooks] {
                    let _ = build_module(k, v);
                }
            }
        });
        arches
            .iter()
            .map(|&arch| {
                build_guest_bins_for(arch, "sipc-guest-tests", "guest", &["sipc-guest-tests"])
                    .map(|b| (arch, b))
            })
            .collect::<Result<Vec<_>, String>>()
    })?;
    eprintln!(
        "==> guest test binaries and modules built ({:.1}s)",
        t.elapsed().as_secs_f64()
    );
    let mut runner_args = Vec::new();
    if let Some(f) = &a.filter {
        runner_args.extend(["--filter".to_string(), f.clone()]);
    }
    // Slowest first, so the lanes end together: the sanitizer kernels and
    // arm64 (their `slowdown`) before the production x86_64 kernels.
    let mut order: Vec<usize> = (0..kernels.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(kernels[i].slowdown));
    let njobs = jobs.len();
    let jobs: Vec<std::sync::Mutex<Option<Job<'_>>>> = jobs
        .into_iter()
        .map(|j| std::sync::Mutex::new(Some(j)))
        .collect();
    type Step = (String, Result<(), String>);
    let job_results: Vec<std::sync::Mutex<Option<Step>>> =
        (0..njobs).map(|_| std::sync::Mutex::new(None)).collect();
    // Kernels are 0..n, jobs n..n+njobs.
    let queue = std::sync::Mutex::new(
        order
            .into_iter()
            .chain(kernels.len()..kernels.len() + njobs),
    );
    let results: Vec<std::sync::Mutex<Option<Records>>> = kernels
        .iter()
        .map(|_| std::sync::Mutex::new(None))
        .collect();
    let lanes = lanes(kernels.len() + njobs);
    if lanes > 1 {
        eprintln!(
            "==> {} kernels{} in {lanes} lanes (SIPC_VM_LANES); consoles go to their logs, \
             each result is printed when it ends",
            kernels.len(),
            match njobs {
                0 => String::new(),
                n => format!(" and {n} further guest run(s)"),
            }
        );
    }
    std::thread::scope(|scope| {
        for _ in 0..lanes {
            scope.spawn(|| loop {
                let Some(i) = queue.lock().unwrap().next() else {
                    break;
                };
                if i >= kernels.len() {
                    let j = jobs[i - kernels.len()].lock().unwrap().take();
                    if let Some(j) = j {
                        let t = Instant::now();
                        let r = (j.run)();
                        match &r {
                            Ok(()) => {
                                eprintln!("==> {}: ok ({:.1}s)", j.name, t.elapsed().as_secs_f64())
                            }
                            Err(e) => eprintln!(
                                "==> {}: FAILED ({:.1}s): {e}",
                                j.name,
                                t.elapsed().as_secs_f64()
                            ),
                        }
                        *job_results[i - kernels.len()].lock().unwrap() = Some((j.name, r));
                    }
                    continue;
                }
                let k = &kernels[i];
                let b = bins
                    .iter()
                    .find(|(arch, _)| *arch == k.arch)
                    .map(|(_, b)| b.clone())
                    .unwrap_or_default();
                let r = test_one_kernel(k, a, &runner_args, b, lanes == 1);
                *results[i].lock().unwrap() = Some(r);
            });
        }
    });
    // Recorded in the matrix's own order, whatever order they ended in.
    for (k, r) in kernels.iter().zip(results) {
        match r.into_inner().unwrap() {
            Some(Ok(records)) => {
                for (name, r) in records {
                    steps.record(&name, r);
                }
            }
            Some(Err(e)) => steps.record(&format!("{}: boot", k.version), Err(e)),
            None => steps.record(&format!("{}: boot", k.version), Err("not run".into())),
        }
    }
    for r in job_results {
        if let Some((name, r)) = r.into_inner().unwrap() {
            steps.record(&name, r);
        }
    }
    Ok(())
}

/// One kernel's test records: (name, result) per guest test and check.
type Records = Result<Vec<(String, Result<(), String>)>, String>;

/// How many guests boot at once: `SIPC_VM_LANES`, else 2 when there is
/// more than one kernel. Each guest has 2 vCPUs; on this 2-core machine two
/// guests still finish sooner than one after the other, because most of
/// the race tests run for a fixed wall time, not a fixed amount of work.
fn lanes(kernels: usize) -> usize {
    let want = std::env::var("SIPC_VM_LANES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2usize);
    want.clamp(1, kernels.max(1))
}

/// Packs, boots and judges one kernel's guest run.
fn test_one_kernel(
    k: &Kernel,
    a: &VmArgs,
    runner_args: &[String],
    bins: Vec<PathBuf>,
    echo: bool,
) -> Records {
    let mut rec: Vec<(String, Result<(), String>)> = Vec::new();
    let v = &k.version;
    let t = Instant::now();
    let mut runner_args = runner_args.to_vec();
    if a.quick_secondaries && !FULL_DEPTH.contains(&k.series) {
        runner_args.extend(quick_plan());
    }
    let guest = Guest {
        mode: Mode::Test(runner_args),
        bins,
        extra: a.extra.clone(),
        extra_modules: Vec::new(),
        optional_modules: Vec::new(),
        extra_files: Vec::new(),
        host_root: None,
    };
    let initrd = match pack(k, &guest) {
        Ok(p) => p,
        Err(e) => {
            rec.push((format!("{v}: build and pack the guest"), Err(e)));
            return Ok(rec);
        }
    };
    eprintln!(
        "==> {v}: module built, initramfs packed ({:.1}s)",
        t.elapsed().as_secs_f64()
    );
    let timeout = a.timeout * k.slowdown;
    let o = boot(k, &initrd, "vm-test", timeout, echo)?;
    let mut summary = false;
    let (mut np, mut nf) = (0, 0);
    for line in &o.log {
        if let Some((name, r)) = parse_test_line(line) {
            if r.is_ok() {
                np += 1
            } else {
                nf += 1
            }
            rec.push((format!("{v}: {name}"), r));
        }
        summary |= line.ends_with(" failed") && line.contains(" passed, ");
    }
    let trouble = kernel_trouble(&o.log);
    let show = || format!("\n{}log: {}", tail(&o.log, 40), o.log_path.display());
    let mut health: Vec<(&str, Result<(), String>)> = Vec::new();
    health.push((
        "guest ran to completion",
        if o.timed_out {
            Err(format!("timeout after {}s{}", timeout.as_secs(), show()))
        } else if o.status.is_none() {
            Err(format!(
                "the guest stopped without reporting (panic?){}",
                show()
            ))
        } else if !summary {
            Err(format!("the test runner printed no summary{}", show()))
        } else {
            Ok(())
        },
    ));
    health.push((
        "kernel log clean (no panic/Oops/BUG/WARNING, no sanitizer report)",
        if trouble.is_empty() {
            Ok(())
        } else {
            let during = blamed_tests(&o.log);
            Err(format!(
                "{}\n(during: {})\nthe reports:\n{}log: {}",
                trouble.join("\n"),
                if during.is_empty() {
                    "no test".into()
                } else {
                    during.join(", ")
                },
                reports(&o.log, 60),
                o.log_path.display()
            ))
        },
    ));
    health.push((
        "module unloaded at the end",
        match o.status {
            Some(RC_RMMOD_FAILED) => Err(format!("rmmod secure_ipc failed{}", show())),
            Some(_) if o.log.iter().any(|l| l.contains("FAILED: rmmod")) => {
                Err(format!("rmmod secure_ipc failed{}", show()))
            }
            Some(_) => Ok(()),
            None => Err("unknown: the guest did not finish".into()),
        },
    ));
    let healthy = health.iter().all(|(_, r)| r.is_ok());
    for (name, r) in health {
        rec.push((format!("{v}: {name}"), r));
    }
    let guest_ok = o.status == Some(0);
    if !guest_ok && healthy && nf == 0 {
        rec.push((
            format!("{v}: guest exit status"),
            Err(format!("guest exit status {:?}{}", o.status, show())),
        ));
    }
    if !echo {
        // Another lane's console may be on the terminal: name what failed.
        for (name, r) in &rec {
            if let Err(e) = r {
                eprintln!("==> FAILED: {name}: {}", e.lines().next().unwrap_or(""));
            }
        }
    }
    eprintln!(
        "==> {v}: {np} passed, {nf} failed; guest {} ({:.1}s); log: {}",
        if guest_ok && healthy {
            "healthy"
        } else {
            "NOT healthy"
        },
        t.elapsed().as_secs_f64(),
        o.log_path.display()
    );
    Ok(rec)
}

/// The current directory: where a host-root guest runs its command.
fn cwd() -> Result<PathBuf, String> {
    std::env::current_dir().map_err(|e| format!("current directory: {e}"))
}

/// `vm-run`: runs a command line in the guest; returns its exit status.
pub fn vm_run(a: &VmArgs) -> Result<i32, String> {
    if a.cmd.is_empty() {
        return Err("vm-run needs a command: cargo xtask vm-run [--extra DIR] -- CMD...".into());
    }
    let mut last = 0;
    for k in find_kernels(&a.kernel)? {
        let guest = Guest {
            mode: Mode::Run(a.cmd.clone()),
            bins: Vec::new(),
            extra: a.extra.clone(),
            extra_modules: Vec::new(),
            optional_modules: Vec::new(),
            extra_files: Vec::new(),
            host_root: a.host_root.then(cwd).transpose()?,
        };
        let initrd = pack(&k, &guest)?;
        let o = boot_with(&k, &initrd, "vm-run", a.timeout, true, a.host_root)?;
        let trouble = kernel_trouble(&o.log);
        if !trouble.is_empty() {
            eprintln!(
                "{}: kernel trouble in the log:\n{}",
                k.version,
                trouble.join("\n")
            );
            last = 125;
        }
        match o.status {
            Some(s) => {
                eprintln!(
                    "==> {}: exit status {s} ({:.1}s)",
                    k.version,
                    o.elapsed.as_secs_f64()
                );
                // The console is in a log file that a CI run does not keep:
                // a failure shows what the command printed last.
                if s != 0 {
                    eprintln!(
                        "{}: the last lines of {}:\n{}",
                        k.version,
                        o.log_path.display(),
                        tail(&o.log, 40)
                    );
                }
                if last == 0 {
                    last = s;
                }
            }
            None => {
                eprintln!(
                    "==> {}: the guest did not report (timeout or panic)\n{}",
                    k.version,
                    tail(&o.log, 40)
                );
                last = 124;
            }
        }
    }
    Ok(last)
}

/// Runs `cmd` in /extra of one `kernel` guest holding `extra`'s files
/// (the module loaded); returns the command's exit status.
pub fn run_in_guest(kernel: &str, extra: &Path, cmd: &[&str]) -> Result<i32, String> {
    let args: Vec<String> = ["--kernel", kernel, "--extra"]
        .iter()
        .map(|s| s.to_string())
        .chain([extra.display().to_string(), "--".into()])
        .chain(cmd.iter().map(|s| s.to_string()))
        .collect();
    vm_run(&parse_args(&args, kernel)?)
}

/// `vm-shell`: an interactive shell in the guest (module loaded).
pub fn vm_shell(a: &VmArgs) -> Result<(), String> {
    let k = find_kernels(&a.kernel)?.into_iter().next().unwrap();
    let bins = build_guest_bins("sipc-guest-tests", "guest", &["sipc-guest-tests"])?;
    let guest = Guest {
        mode: Mode::Shell,
        bins,
        extra: a.extra.clone(),
        extra_modules: initramfs::BENCH_MODULES.to_vec(),
        optional_modules: Vec::new(),
        extra_files: Vec::new(),
        host_root: a.host_root.then(cwd).transpose()?,
    };
    let initrd = pack(&k, &guest)?;
    let (mut cmd, how) = qemu_cmd(&k, &initrd, 2, a.host_root);
    cmd.args(["-serial", "mon:stdio"]);
    eprintln!("==> {} ({how}); Ctrl-A X quits QEMU", k.version);
    let _ = cmd
        .status()
        .map_err(|e| format!("cannot start qemu: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_lines_are_parsed() {
        assert_eq!(
            parse_test_line("test a_b ... ok (0.1s)"),
            Some(("a_b".into(), Ok(())))
        );
        assert_eq!(
            parse_test_line("test x ... FAILED (0.2s): got EINVAL"),
            Some(("x".into(), Err("(0.2s): got EINVAL".into())))
        );
        assert_eq!(parse_test_line("[  1.0] test"), None);
    }

    #[test]
    fn kernel_warnings_are_trouble() {
        let log = vec![
            "[    2.1] WARNING: CPU: 0 PID: 50 at sipc_ioctl.c:10".to_string(),
            "test no_warning_here ... ok".to_string(),
            "SIPC-HARNESS: fine".to_string(),
        ];
        assert_eq!(kernel_trouble(&log).len(), 1);
    }

    #[test]
    fn trouble_is_blamed_on_the_running_test() {
        let log: Vec<String> = [
            "test a ... ok (0.1s)",
            "[ 1.0] WARNING: CPU: 0 PID: 9 at x.c:1 f+0x1/0x2",
            "test b ... ok (0.1s)",
            "test c ... ok (0.1s)",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(blamed_tests(&log), ["b"]);
    }

    #[test]
    fn newest_version_wins() {
        assert!(version_key("6.1.0-56-amd64") > version_key("6.1.0-9-amd64"));
        assert!(version_key("6.12.117+deb12-amd64") > version_key("6.12.43+deb12-amd64"));
    }
}
