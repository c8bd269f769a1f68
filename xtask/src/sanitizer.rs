//! The sanitizer guest kernels, built from Debian's `linux-source-6.12`:
//! `6.12-kasan` (KASAN, lockdep, UBSAN, KFENCE, kmemleak, debug objects and
//! lists) and `6.12-kcsan` (the same with KCSAN instead of KASAN).
//!
//! The config is x86_64_defconfig with `xtask/kconfig/common.config` and
//! the variant's fragment merged over it: what the guest needs, the crypto
//! the module uses built in, the checkers, and defconfig's hardware drivers
//! off. Every option a fragment sets is checked in the final .config, so a
//! dependency Kconfig silently dropped fails the build instead of giving a
//! kernel without the checker. The build is cached outside the work tree,
//! under `~/.cache/secure-ipc/kernel-6.12-<variant>-<key>/`, keyed by the
//! source package's version and a hash of the fragments; it runs with
//! `nice -n 19` and `make -j2` (the machine is shared).

use crate::util::{cache_dir, run};
use crate::vm::{Builder, Kernel};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Debian's kernel source package the sanitizer kernels are built from.
const SOURCE_PACKAGE: &str = "linux-source-6.12";
const COMMON: &str = include_str!("../kconfig/common.config");
const KASAN: &str = include_str!("../kconfig/kasan.config");
const KCSAN: &str = include_str!("../kconfig/kcsan.config");

/// The sanitizer kernels `--kernel` accepts.
pub const SERIES: &[&str] = &["6.12-kasan", "6.12-kcsan"];
/// `make` variables of each variant's kernel build (part of the cache key).
/// KCSAN instruments only the module: the kernel's own objects are built
/// with `KCSAN_SANITIZE=n`, so the runtime is there but the core kernel's
/// (known, benign or not ours) data races stay silent, and every report is
/// a race with at least one access in secure_ipc. Our module's build does
/// not set it, so kbuild instruments it.
fn make_vars(series: &str) -> &'static [&'static str] {
    match series {
        "6.12-kcsan" => &["KCSAN_SANITIZE=n"],
        _ => &[],
    }
}

/// Those `--kernel all` (and so `cargo xtask test`) includes.
pub const IN_ALL: &[&str] = &["6.12-kasan", "6.12-kcsan"];

/// Kernel command line of a sanitizer guest: a report must not be rate
/// limited away, and a KASAN report must not stop at the first one.
const CMDLINE: &str = "kasan.fault=report kasan_multi_shot kfence.sample_interval=10 \
     kmemleak=on no_hash_pointers";

/// FNV-1a, 64 bits: a stable hash for the cache key (std's hasher may
/// change between Rust releases).
fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

fn source_version() -> Result<String, String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", SOURCE_PACKAGE])
        .output()
        .map_err(|e| format!("cannot run dpkg-query: {e}"))?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || v.is_empty() {
        return Err(format!(
            "{SOURCE_PACKAGE} is not installed (cargo xtask deps installs it)"
        ));
    }
    Ok(v)
}

/// The extracted source tree, shared by the variants.
fn ensure_source(version: &str) -> Result<PathBuf, String> {
    let dir = cache_dir().join(format!("{SOURCE_PACKAGE}_{version}"));
    let tree = dir.join(SOURCE_PACKAGE);
    let stamp = dir.join("extracted");
    if stamp.exists() {
        return Ok(tree);
    }
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tarball = format!("/usr/src/{SOURCE_PACKAGE}.tar.xz");
    run(Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .arg("-xf")
        .arg(&tarball))?;
    fs::write(&stamp, version).map_err(|e| format!("{}: {e}", stamp.display()))?;
    Ok(tree)
}

/// `CONFIG_X=v` lines of a fragment (comments and blanks skipped).
fn fragment_options(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("CONFIG_"))
        .filter_map(|l| l.split_once('='))
        .collect()
}

/// Options of the fragments that the final .config does not have as asked.
fn unmet_options(config: &str, fragments: &[&str]) -> Vec<String> {
    let mut want = std::collections::BTreeMap::new();
    for f in fragments {
        for (k, v) in fragment_options(f) {
            want.insert(k, v);
        }
    }
    want.into_iter()
        .filter(|(k, v)| {
            let set = format!("{k}={v}");
            let unset = format!("# {k} is not set");
            let ok = if *v == "n" {
                config.lines().any(|l| l == unset)
                    || !config.lines().any(|l| l.starts_with(&format!("{k}=")))
            } else {
                config.lines().any(|l| l == set)
            };
            !ok
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

fn make(src: &Path, out: &Path) -> Command {
    let mut c = Command::new("nice");
    c.args(["-n", "19", "make", "-s"])
        .arg("-C")
        .arg(src)
        .arg(format!("O={}", out.display()));
    c
}

/// The sanitizer kernel `series` ("6.12-kasan" or "6.12-kcsan"), built on
/// first use.
pub fn kernel(series: &'static str) -> Result<Kernel, String> {
    let variant = match series {
        "6.12-kasan" => KASAN,
        "6.12-kcsan" => KCSAN,
        s => return Err(format!("no sanitizer kernel {s}")),
    };
    let version = source_version()?;
    let vars = make_vars(series).join(" ");
    let key = if vars.is_empty() {
        fnv1a(&[&version, COMMON, variant])
    } else {
        fnv1a(&[&version, COMMON, variant, &vars])
    };
    let dir = cache_dir().join(format!("kernel-{series}-{key:016x}"));
    let build = dir.join("build");
    let mods = dir.join("mod");
    let done = dir.join("built");
    // Another work tree's xtask may build the same kernel: one at a time.
    let _lock = crate::util::CacheLock::acquire(&PathBuf::from(format!("{}.lock", dir.display())))?;
    if !done.exists() {
        let src = ensure_source(&version)?;
        fs::create_dir_all(&build).map_err(|e| format!("{}: {e}", build.display()))?;
        for (name, text) in [("common.config", COMMON), ("variant.config", variant)] {
            fs::write(dir.join(name), text).map_err(|e| format!("{name}: {e}"))?;
        }
        run(make(&src, &build).arg("x86_64_defconfig"))?;
        run(Command::new(src.join("scripts/kconfig/merge_config.sh"))
            .arg("-m")
            .arg("-O")
            .arg(&build)
            .arg(build.join(".config"))
            .arg(dir.join("common.config"))
            .arg(dir.join("variant.config")))?;
        run(make(&src, &build).arg("olddefconfig"))?;
        let config = fs::read_to_string(build.join(".config")).map_err(|e| e.to_string())?;
        let unmet = unmet_options(&config, &[COMMON, variant]);
        if !unmet.is_empty() {
            return Err(format!(
                "{series}: Kconfig did not take these options (a dependency is missing): {}",
                unmet.join(" ")
            ));
        }
        eprintln!(
            "==> building the {series} kernel in {} (nice -n 19, make -j2; the first build takes long)",
            build.display()
        );
        let t = Instant::now();
        run(make(&src, &build)
            .args(["-j2", "bzImage", "modules"])
            .args(make_vars(series)))?;
        if mods.exists() {
            fs::remove_dir_all(&mods).map_err(|e| format!("{}: {e}", mods.display()))?;
        }
        run(make(&src, &build)
            .arg(format!("INSTALL_MOD_PATH={}", mods.display()))
            .arg("modules_install"))?;
        let secs = t.elapsed().as_secs();
        eprintln!(
            "==> {series} kernel built in {}m{:02}s",
            secs / 60,
            secs % 60
        );
        fs::write(&done, format!("build time: {secs} s\n"))
            .map_err(|e| format!("{}: {e}", done.display()))?;
    }
    let release = fs::read_to_string(build.join("include/config/kernel.release"))
        .map_err(|e| format!("{}: {e}", build.display()))?
        .trim()
        .to_string();
    Ok(Kernel {
        series,
        image: build.join("arch/x86/boot/bzImage"),
        config: build.join(".config"),
        modules: mods.join("lib/modules").join(&release),
        headers: build,
        version: release,
        builder: Builder::Host,
        cmdline: CMDLINE.to_string(),
        slowdown: 4,
        arch: crate::vm::Arch::X86_64,
        busybox: PathBuf::from("/bin/busybox"),
        uefi: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_parse_and_have_the_checkers() {
        let all: Vec<_> = fragment_options(COMMON)
            .into_iter()
            .chain(fragment_options(KASAN))
            .collect();
        for want in [
            "CONFIG_KASAN",
            "CONFIG_PROVE_LOCKING",
            "CONFIG_DEBUG_KMEMLEAK",
        ] {
            assert!(all.iter().any(|(k, v)| *k == want && *v == "y"), "{want}");
        }
        assert!(fragment_options(KCSAN).contains(&("CONFIG_KCSAN", "y")));
    }

    #[test]
    fn a_dropped_option_is_reported() {
        let config = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=m\n";
        assert!(unmet_options(config, &["CONFIG_A=y\nCONFIG_B=n\n"]).is_empty());
        assert_eq!(unmet_options(config, &["CONFIG_C=y\n"]), ["CONFIG_C=y"]);
    }

    #[test]
    fn cache_key_changes_with_the_config() {
        assert_ne!(fnv1a(&["1", COMMON, KASAN]), fnv1a(&["1", COMMON, KCSAN]));
        assert_ne!(fnv1a(&["1", "a"]), fnv1a(&["1a", ""]));
    }
}
