//! The guest's root file system: a `newc` cpio archive written directly (no
//! staging directory), and the kernel modules it needs, resolved from the
//! guest kernel's `modules.dep`.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Modules the guest loads before ours, in this order (their dependencies
/// first, from modules.dep). Loading them explicitly matters: on-demand
/// loading would pick the slow generic gcm (DESIGN §7). Names are
/// normalised (`-` and `_` are the same); one that is built in or absent
/// is skipped, one that fails to load is reported by the guest and skipped
/// (curve25519-x86_64 needs BMI2+ADX, aesni-intel needs AES-NI).
pub const CRYPTO_MODULES: &[&str] = &[
    "cryptd",
    "crypto_simd",
    "aesni_intel",
    "ghash_clmulni_intel",
    "gf128mul",
    "ghash_generic",
    "ctr",
    "gcm",
    "libcurve25519_generic",
    "curve25519_x86_64",
    "curve25519_generic",
    "hmac",
    "sha256_generic",
    "sha256_ssse3",
    // 6.18+: the curve25519 library module holds the x86_64 code itself.
    "libcurve25519",
];

/// The arm64 counterpart of [`CRYPTO_MODULES`]: the ARMv8 Crypto Extensions
/// drivers (`-cpu max` has them) for gcm(aes) and sha256, the generic
/// fallbacks, and X25519 (no arm64-specific code in 6.12).
pub const ARM64_CRYPTO_MODULES: &[&str] = &[
    "aes_ce_cipher",
    "aes_ce_blk",
    "ghash_ce",
    "gf128mul",
    "ghash_generic",
    "ctr",
    "gcm",
    "libcurve25519_generic",
    "curve25519_generic",
    "libcurve25519",
    "hmac",
    "sha256_generic",
    "sha2_ce",
    "sha256_arm64",
];

/// Extra modules for the benchmark: the AF_ALG AEAD socket (user-space
/// measurement of the kernel's gcm(aes)). `tcrypt` is shipped but not
/// loaded at boot: loading it *is* the measurement.
pub const BENCH_MODULES: &[&str] = &["af_alg", "algif_aead"];

/// Normalised module name of a path like `kernel/crypto/gcm.ko.xz`.
fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = base.split(".ko").next().unwrap_or(base);
    stem.replace('-', "_")
}

/// A guest kernel's module database.
pub struct ModuleDb {
    dir: PathBuf,
    /// name -> (path relative to dir, dependency paths)
    deps: BTreeMap<String, (String, Vec<String>)>,
    builtin: HashSet<String>,
}

/// Resolved modules: file paths in load order, plus notes on skipped names.
pub struct Resolved {
    /// Paths relative to /lib/modules/<ver>, dependencies first.
    pub paths: Vec<String>,
    /// Requested names that are built into the kernel.
    pub builtin: Vec<String>,
    /// Requested names that the kernel has neither as module nor built in.
    pub absent: Vec<String>,
}

impl ModuleDb {
    /// Reads `modules.dep` and `modules.builtin` of /lib/modules/<ver>.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let dep_file = dir.join("modules.dep");
        let text = fs::read_to_string(&dep_file)
            .map_err(|e| format!("cannot read {}: {e}", dep_file.display()))?;
        let mut deps = BTreeMap::new();
        for line in text.lines() {
            let Some((m, rest)) = line.split_once(':') else {
                continue;
            };
            let d = rest.split_whitespace().map(str::to_string).collect();
            deps.insert(module_name(m), (m.to_string(), d));
        }
        let builtin = fs::read_to_string(dir.join("modules.builtin"))
            .unwrap_or_default()
            .lines()
            .map(module_name)
            .collect();
        Ok(Self {
            dir: dir.to_path_buf(),
            deps,
            builtin,
        })
    }

    /// Resolves `names` (in order) to module files, each after its dependencies.
    pub fn resolve(&self, names: &[String]) -> Resolved {
        let mut out = Resolved {
            paths: Vec::new(),
            builtin: Vec::new(),
            absent: Vec::new(),
        };
        let mut seen = HashSet::new();
        for n in names {
            let n = n.replace('-', "_");
            if let Some((path, _)) = self.deps.get(&n) {
                self.visit(path, &mut seen, &mut out.paths);
            } else if self.builtin.contains(&n) {
                out.builtin.push(n);
            } else {
                out.absent.push(n);
            }
        }
        out
    }

    fn visit(&self, path: &str, seen: &mut HashSet<String>, order: &mut Vec<String>) {
        if !seen.insert(path.to_string()) {
            return;
        }
        if let Some((_, deps)) = self.deps.get(&module_name(path)) {
            // modules.dep lists the deepest dependency last: load it first.
            for d in deps.iter().rev() {
                self.visit(d, seen, order);
            }
        }
        order.push(path.to_string());
    }

    /// The module file's bytes, decompressed on the host (busybox insmod
    /// cannot load `.ko.xz`), cached under `cache`.
    pub fn read_module(&self, rel: &str, cache: &Path) -> Result<Vec<u8>, String> {
        let src = self.dir.join(rel);
        let (tool, ext) = if rel.ends_with(".ko.xz") {
            ("xz", ".ko.xz")
        } else if rel.ends_with(".ko.zst") {
            ("zstd", ".ko.zst")
        } else if rel.ends_with(".ko.gz") {
            ("gzip", ".ko.gz")
        } else {
            return fs::read(&src).map_err(|e| format!("cannot read {}: {e}", src.display()));
        };
        let name = rel.rsplit('/').next().unwrap_or(rel).trim_end_matches(ext);
        let cached = cache.join(format!("{name}.ko"));
        if crate::util::newer_than(&cached, &src) {
            if let Ok(b) = fs::read(&cached) {
                return Ok(b);
            }
        }
        let out = Command::new(tool)
            .arg("-dc")
            .arg(&src)
            .output()
            .map_err(|e| format!("cannot run {tool}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{tool} -dc {} failed: {}",
                src.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        fs::create_dir_all(cache).map_err(|e| format!("{}: {e}", cache.display()))?;
        fs::write(&cached, &out.stdout).map_err(|e| format!("{}: {e}", cached.display()))?;
        Ok(out.stdout)
    }
}

/// The `depends=` list from a module's `.modinfo` section.
pub fn ko_depends(ko: &[u8]) -> Vec<String> {
    let key = b"\0depends=";
    let Some(pos) = ko.windows(key.len()).position(|w| w == key) else {
        return Vec::new();
    };
    let rest = &ko[pos + key.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;

/// A `newc` cpio archive built in memory (owner root, fixed mtime).
#[derive(Default)]
pub struct Cpio {
    buf: Vec<u8>,
    ino: u32,
    dirs: HashSet<String>,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        self.ino += 1;
        let name = name.trim_start_matches('/');
        let fields = [
            self.ino,
            mode,
            0,
            0,
            if mode & S_IFDIR != 0 { 2 } else { 1 },
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
    }

    /// A directory and its parents.
    pub fn dir(&mut self, path: &str) {
        let path = path.trim_matches('/');
        if path.is_empty() || self.dirs.contains(path) {
            return;
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.dirs.insert(path.to_string());
        self.entry(path, S_IFDIR | 0o755, (0, 0), &[]);
    }

    /// A regular file with `perm` (e.g. 0o755), creating its parents.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) {
        if let Some((parent, _)) = path.trim_matches('/').rsplit_once('/') {
            self.dir(parent);
        }
        self.entry(path, S_IFREG | perm, (0, 0), data);
    }

    /// A character device node.
    pub fn chardev(&mut self, path: &str, perm: u32, major: u32, minor: u32) {
        if let Some((parent, _)) = path.trim_matches('/').rsplit_once('/') {
            self.dir(parent);
        }
        self.entry(path, S_IFCHR | perm, (major, minor), &[]);
    }

    /// Copies a host directory's regular files (recursively) under `dest`.
    pub fn tree(&mut self, src: &Path, dest: &str) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        self.dir(dest);
        let entries = fs::read_dir(src).map_err(|e| format!("{}: {e}", src.display()))?;
        for e in entries {
            let e = e.map_err(|e| format!("{}: {e}", src.display()))?;
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let meta = fs::metadata(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            let target = format!("{}/{name}", dest.trim_end_matches('/'));
            if meta.is_dir() {
                self.tree(&p, &target)?;
            } else if meta.is_file() {
                let data = fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
                self.file(&target, meta.permissions().mode() & 0o777, &data);
            }
        }
        Ok(())
    }

    /// The archive with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_are_normalised() {
        assert_eq!(
            module_name("kernel/arch/x86/crypto/aesni-intel.ko.xz"),
            "aesni_intel"
        );
        assert_eq!(module_name("kernel/crypto/gcm.ko"), "gcm");
    }

    #[test]
    fn depends_is_read_from_modinfo() {
        let ko = b"\x7fELF...\0license=GPL\0depends=cryptd,gf128mul\0vermagic=6.1\0";
        assert_eq!(ko_depends(ko), ["cryptd", "gf128mul"]);
        assert!(ko_depends(b"\0depends=\0").is_empty());
    }

    #[test]
    fn dependencies_load_first() {
        let db = ModuleDb {
            dir: PathBuf::new(),
            deps: [
                ("a", "k/a.ko", vec!["k/b.ko", "k/c.ko"]),
                ("b", "k/b.ko", vec!["k/c.ko"]),
                ("c", "k/c.ko", vec![]),
            ]
            .into_iter()
            .map(|(n, p, d)| {
                (
                    n.to_string(),
                    (p.to_string(), d.into_iter().map(String::from).collect()),
                )
            })
            .collect(),
            builtin: ["x".to_string()].into_iter().collect(),
        };
        let r = db.resolve(&["a".into(), "x".into(), "y".into(), "c".into()]);
        assert_eq!(r.paths, ["k/c.ko", "k/b.ko", "k/a.ko"]);
        assert_eq!(r.builtin, ["x"]);
        assert_eq!(r.absent, ["y"]);
    }

    #[test]
    fn cpio_entries_are_aligned_and_terminated() {
        let mut c = Cpio::default();
        c.file("/a/b", 0o644, b"hello");
        let out = c.finish();
        assert_eq!(out.len() % 4, 0);
        assert!(out.starts_with(b"070701"));
        assert!(out.windows(10).any(|w| w == b"TRAILER!!!"));
        assert!(out.windows(4).any(|w| w == b"a/b\0"));
    }
}
