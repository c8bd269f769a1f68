//! android-native/android/Android.bp declares, for each Rust module, every
//! crate its Cargo.toml depends on, and builds every crate below them from
//! the vendored sources (module libsipcdep_<crate>), generated here from
//! `cargo tree` and `cargo metadata` for aarch64-linux-android.

use std::fs;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// The crate names of a Cargo.toml's `[dependencies]` table, each with
/// whether it is optional (pulled in only by a cargo feature).
fn cargo_deps(manifest: &str) -> Vec<(String, bool)> {
    let text = fs::read_to_string(root().join(manifest)).unwrap();
    let mut in_deps = false;
    let mut deps = Vec::new();
    for l in text.lines() {
        let l = l.trim();
        if l.starts_with('[') {
            in_deps = l == "[dependencies]";
            continue;
        }
        if in_deps {
            if let Some((k, _)) = l.split_once('=') {
                let optional = l.contains("optional = true");
                deps.push((k.trim().replace('-', "_"), optional));
            }
        }
    }
    deps
}

/// The text of the Android.bp module named `name`.
fn bp_module<'a>(bp: &'a str, name: &str) -> &'a str {
    let at = bp
        .find(&format!("name: \"{name}\""))
        .unwrap_or_else(|| panic!("no module {name}"));
    let rest = &bp[at..];
    &rest[..rest.find("\n}").unwrap()]
}

/// The entries of the list property `prop` (`rustlibs`, `features`) of a
/// module's text.
fn bp_list(module: &str, prop: &str) -> Vec<String> {
    let key = format!("{prop}: [");
    let Some(libs) = module.find(&key) else {
        return Vec::new();
    };
    let list = &module[libs + key.len()..];
    let list = &list[..list.find(']').unwrap()];
    list.split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
fn every_cargo_dependency_is_a_rustlib_of_its_soong_module() {
    let bp = fs::read_to_string(root().join("android-native/android/Android.bp")).unwrap();
    for (module, manifest) in [
        ("libsecure_ipc_ring", "ring/Cargo.toml"),
        ("libsecure_ipc", "client/Cargo.toml"),
        ("libsecure_ipc_jni_rust", "android-native/Cargo.toml"),
    ] {
        let text = bp_module(&bp, module);
        let libs = bp_list(text, "rustlibs");
        let features = bp_list(text, "features");
        let deps = cargo_deps(manifest);
        assert!(!deps.is_empty(), "{manifest}: no dependencies read");
        for (d, optional) in deps {
            // An optional dependency comes with the cargo feature of its
            // name; the Soong module needs it only if it enables that.
            let wanted = !optional || features.contains(&d);
            assert_eq!(
                libs.contains(&dep_module(&d)),
                wanted,
                "{module}: {} ({manifest}, optional: {optional}) in rustlibs \
                 must match whether the module builds it; rustlibs: {libs:?}, \
                 features: {features:?}",
                dep_module(&d)
            );
        }
    }
}

#[test]
fn the_tree_goes_under_vendor_not_external() {
    let bp = fs::read_to_string(root().join("android-native/android/Android.bp")).unwrap();
    assert!(bp.contains("vendor/secure_ipc/Android.bp"));
    assert!(!bp.contains("BOARD_VENDOR_SEPOLICY_DIRS += external/"));
}

/// The Soong module that provides crate `dep` (underscored) to ours: this
/// workspace's own crates by their module names, third-party crates by the
/// generated libsipcdep_<crate>.
fn dep_module(dep: &str) -> String {
    match dep {
        "secure_ipc_ring" | "secure_ipc" => format!("lib{dep}"),
        _ => format!("libsipcdep_{dep}"),
    }
}

/// What the build scripts of the vendored crates would have told rustc,
/// since Soong runs no build.rs: the `cargo:rustc-cfg` lines of each
/// crate's build-script output for aarch64-linux-android (and the host,
/// for proc-macro dependencies), read from
/// target/*/debug/build/<crate>-*/output, and the files a crate includes
/// from OUT_DIR. A crate with a build script that is not listed here fails
/// `vendored_crates_match_the_lock_file`, so a new one gets looked at.
struct BuildScript {
    krate: &'static str,
    cfgs: &'static [&'static str],
    /// (arch, cfgs) for values that depend on the target.
    arch_cfgs: &'static [(&'static str, &'static [&'static str])],
    /// (file name, contents) the crate include!s from OUT_DIR.
    out_dir: &'static [(&'static str, &'static str)],
}

const BUILD_SCRIPTS: &[BuildScript] = &[
    BuildScript {
        krate: "curve25519-dalek",
        // build.rs picks "simd" on x86_64 (and then needs
        // curve25519-dalek-derive); "serial" is its documented override
        // and the value it picks on arm64.
        cfgs: &["curve25519_dalek_backend=\"serial\""],
        arch_cfgs: &[
            ("arm64", &["curve25519_dalek_bits=\"64\""]),
            ("x86_64", &["curve25519_dalek_bits=\"64\""]),
            ("arm", &["curve25519_dalek_bits=\"32\""]),
            ("x86", &["curve25519_dalek_bits=\"32\""]),
        ],
        out_dir: &[],
    },
    BuildScript {
        krate: "generic-array",
        cfgs: &["relaxed_coherence"],
        arch_cfgs: &[],
        out_dir: &[],
    },
    BuildScript {
        krate: "jni",
        cfgs: &["use_tls_attach_guard"],
        arch_cfgs: &[],
        out_dir: &[],
    },
    BuildScript {
        krate: "jni-macros",
        cfgs: &["has_unsafe_attr"],
        arch_cfgs: &[],
        out_dir: &[],
    },
    BuildScript {
        krate: "libc",
        cfgs: &["freebsd11", "libc_const_extern_fn"],
        arch_cfgs: &[],
        out_dir: &[],
    },
    BuildScript {
        krate: "proc-macro2",
        cfgs: &[
            "wrap_proc_macro",
            "proc_macro_span_location",
            "proc_macro_span_file",
        ],
        arch_cfgs: &[],
        out_dir: &[],
    },
    BuildScript {
        krate: "quote",
        cfgs: &[],
        arch_cfgs: &[],
        out_dir: &[],
    },
    BuildScript {
        krate: "thiserror",
        cfgs: &[],
        arch_cfgs: &[],
        out_dir: &[(
            "private.rs",
            "#[doc(hidden)]\npub mod __private21 {\n    #[doc(hidden)]\n    pub use crate::private::*;\n}\n",
        )],
    },
];

/// One vendored crate of the Android build.
#[derive(Debug)]
struct Crate {
    name: String,
    version: String,
    proc_macro: bool,
    features: Vec<String>,
    /// Indices into the crate list.
    deps: Vec<usize>,
}

fn cargo() -> std::process::Command {
    let mut c = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()));
    c.current_dir(root());
    c
}

/// The crates below libsecure_ipc_jni_rust (which uses libsecure_ipc and
/// libsecure_ipc_ring) for aarch64-linux-android, normal dependencies only
/// (Soong runs no build scripts), with the features cargo resolves for
/// that build.
fn android_crates() -> Vec<Crate> {
    let out = cargo()
        .args([
            "tree",
            "--locked",
            "-p",
            "secure-ipc-jni",
            "--target",
            "aarch64-linux-android",
            "-e",
            "normal",
            "--prefix",
            "depth",
            "--format",
            "{p}|{f}|",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut crates: Vec<Crate> = Vec::new();
    // The crate index at each depth of the current path (None: one of ours).
    let mut path: Vec<Option<usize>> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let digits = line.chars().take_while(|c| c.is_ascii_digit()).count();
        let depth: usize = line[..digits].parse().unwrap();
        let mut fields = line[digits..].split('|');
        let p = fields.next().unwrap();
        let features: Vec<String> = fields
            .next()
            .unwrap()
            .split(',')
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect();
        let mut words = p.split_whitespace();
        let name = words.next().unwrap().to_string();
        let version = words.next().unwrap().trim_start_matches('v').to_string();
        let ours = p.contains("(/");
        let index = if ours {
            None
        } else if let Some(i) = crates
            .iter()
            .position(|c| c.name == name && c.version == version)
        {
            assert_eq!(
                crates[i].features, features,
                "{name} {version} resolved with two feature sets: one Soong module cannot be both"
            );
            Some(i)
        } else {
            crates.push(Crate {
                name,
                version,
                proc_macro: p.contains("(proc-macro)"),
                features,
                deps: Vec::new(),
            });
            Some(crates.len() - 1)
        };
        path.truncate(depth);
        if let (Some(Some(parent)), Some(i)) = (path.last().copied(), index) {
            if !crates[parent].deps.contains(&i) {
                crates[parent].deps.push(i);
            }
        }
        path.push(index);
    }
    crates
}

/// From `cargo metadata`: per (name, version), the edition, the lib
/// target's crate name and root file (relative to the crate), and whether
/// it has a build script.
fn crate_facts() -> std::collections::HashMap<(String, String), (String, String, String, bool)> {
    let out = cargo()
        .args([
            "metadata",
            "--locked",
            "--format-version",
            "1",
            "--filter-platform",
            "aarch64-linux-android",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut facts = std::collections::HashMap::new();
    for p in meta["packages"].as_array().unwrap() {
        let s = |v: &serde_json::Value| v.as_str().unwrap().to_string();
        let manifest = Path::new(p["manifest_path"].as_str().unwrap());
        let dir = manifest.parent().unwrap();
        let targets = p["targets"].as_array().unwrap();
        let kinds = |t: &serde_json::Value| -> Vec<String> {
            t["kind"].as_array().unwrap().iter().map(s).collect()
        };
        let lib = targets.iter().find(|t| {
            kinds(t)
                .iter()
                .any(|k| k == "lib" || k == "rlib" || k == "proc-macro")
        });
        let build = targets
            .iter()
            .any(|t| kinds(t).iter().any(|k| k == "custom-build"));
        if let Some(lib) = lib {
            let src = Path::new(lib["src_path"].as_str().unwrap())
                .strip_prefix(dir)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            facts.insert(
                (s(&p["name"]), s(&p["version"])),
                (
                    s(&p["edition"]),
                    lib["name"].as_str().unwrap().replace('-', "_"),
                    src,
                    build,
                ),
            );
        }
    }
    facts
}

fn bp_strings(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("\"{}\"", i.replace('"', "\\\"")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The generated block of Android.bp: one module per vendored crate.
fn generated_block() -> String {
    let crates = android_crates();
    let facts = crate_facts();
    // A crate present at two versions gets the major (or 0.minor) in its
    // module name, so both can exist.
    let module_names: Vec<String> = crates
        .iter()
        .map(|c| {
            let lib = &facts[&(c.name.clone(), c.version.clone())].1;
            if crates.iter().filter(|o| o.name == c.name).count() > 1 {
                let mut v = c.version.split('.');
                let major = v.next().unwrap();
                let tag = if major == "0" {
                    format!("0_{}", v.next().unwrap())
                } else {
                    major.to_string()
                };
                format!("libsipcdep_{lib}_v{tag}")
            } else {
                format!("libsipcdep_{lib}")
            }
        })
        .collect();
    let mut order: Vec<usize> = (0..crates.len()).collect();
    order.sort_by(|&a, &b| module_names[a].cmp(&module_names[b]));
    let mut out = String::new();
    for i in order {
        let c = &crates[i];
        let (edition, lib, src, build) = &facts[&(c.name.clone(), c.version.clone())];
        let script = BUILD_SCRIPTS.iter().find(|b| b.krate == c.name);
        assert_eq!(
            *build,
            script.is_some(),
            "{} {}: build script {} but BUILD_SCRIPTS {} it",
            c.name,
            c.version,
            if *build { "present" } else { "absent" },
            if script.is_some() { "lists" } else { "lacks" }
        );
        let dir = format!("third_party/rust/{}-{}", c.name, c.version);
        let mut srcs = vec![format!("{dir}/{src}")];
        let mut genrules = String::new();
        for (file, text) in script.map_or(&[][..], |s| s.out_dir) {
            let gen = format!("{}_{}", module_names[i], file.replace('.', "_"));
            let escaped = text.replace('\\', "\\\\").replace('\n', "\\n");
            genrules.push_str(&format!(
                "genrule {{\n    name: \"{gen}\",\n    out: [\"{file}\"],\n    cmd: \"printf '%s' '{escaped}' > $(out)\",\n}}\n\n"
            ));
            srcs.push(format!(":{gen}"));
        }
        let (rustlibs, procs): (Vec<usize>, Vec<usize>) =
            c.deps.iter().partition(|&&d| !crates[d].proc_macro);
        let names = |v: Vec<usize>| -> Vec<String> {
            let mut n: Vec<String> = v.iter().map(|&d| module_names[d].clone()).collect();
            n.sort();
            n
        };
        out.push_str(&genrules);
        out.push_str(&format!(
            "// {} {} (third_party/rust/{}-{})\n",
            c.name, c.version, c.name, c.version
        ));
        if c.proc_macro {
            out.push_str("rust_proc_macro {\n");
        } else {
            out.push_str("rust_library_rlib {\n");
        }
        out.push_str(&format!("    name: \"{}\",\n", module_names[i]));
        out.push_str(&format!("    crate_name: \"{lib}\",\n"));
        if c.proc_macro {
            out.push_str("    lints: \"none\",\n    clippy_lints: \"none\",\n");
        } else {
            out.push_str("    defaults: [\"secure_ipc_dep_defaults\"],\n");
        }
        out.push_str(&format!("    srcs: [{}],\n", bp_strings(&srcs)));
        out.push_str(&format!("    edition: \"{edition}\",\n"));
        if !c.features.is_empty() {
            out.push_str(&format!("    features: [{}],\n", bp_strings(&c.features)));
        }
        if let Some(s) = script {
            let cfgs: Vec<String> = s.cfgs.iter().map(|c| c.to_string()).collect();
            if !cfgs.is_empty() {
                out.push_str(&format!("    cfgs: [{}],\n", bp_strings(&cfgs)));
            }
            if !s.arch_cfgs.is_empty() {
                out.push_str("    arch: {\n");
                for (arch, cfgs) in s.arch_cfgs {
                    let cfgs: Vec<String> = cfgs.iter().map(|c| c.to_string()).collect();
                    out.push_str(&format!(
                        "        {arch}: {{ cfgs: [{}] }},\n",
                        bp_strings(&cfgs)
                    ));
                }
                out.push_str("    },\n");
            }
        }
        let rustlibs = names(rustlibs);
        if !rustlibs.is_empty() {
            out.push_str(&format!("    rustlibs: [{}],\n", bp_strings(&rustlibs)));
        }
        let procs = names(procs);
        if !procs.is_empty() {
            out.push_str(&format!("    proc_macros: [{}],\n", bp_strings(&procs)));
        }
        out.push_str("}\n\n");
    }
    out
}

const BEGIN: &str = "// BEGIN generated by client/tests/android_bp.rs\n";
const END: &str = "// END generated by client/tests/android_bp.rs\n";

#[test]
fn vendored_crates_match_the_lock_file() {
    let path = root().join("android-native/android/Android.bp");
    let bp = fs::read_to_string(&path).unwrap();
    let start = bp.find(BEGIN).expect("no BEGIN marker") + BEGIN.len();
    let end = bp.find(END).expect("no END marker");
    let want = generated_block();
    if std::env::var_os("SIPC_BLESS_ANDROID_BP").is_some() {
        fs::write(&path, format!("{}{want}{}", &bp[..start], &bp[end..])).unwrap();
        return;
    }
    assert!(
        bp[start..end] == want,
        "the generated block of Android.bp is out of date with Cargo.lock; \
         rerun with SIPC_BLESS_ANDROID_BP=1.\n--- want:\n{want}"
    );
}

/// The crates (name version) of the Android build for one target.
fn crate_set(target: &str) -> std::collections::BTreeSet<String> {
    let out = cargo()
        .args([
            "tree",
            "--locked",
            "-p",
            "secure-ipc-jni",
            "--target",
            target,
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.replace(" (*)", ""))
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn x86_64_adds_only_the_crate_the_serial_backend_makes_unused() {
    // The generated block follows arm64; Waydroid on a PC is x86_64.
    let arm64 = crate_set("aarch64-linux-android");
    let x86_64 = crate_set("x86_64-linux-android");
    let extra: Vec<&String> = x86_64.difference(&arm64).collect();
    let missing: Vec<&String> = arm64.difference(&x86_64).collect();
    assert!(missing.is_empty(), "arm64 only: {missing:?}");
    // curve25519-dalek's Cargo.toml wants curve25519-dalek-derive on x86_64
    // unless curve25519_dalek_backend is "serial" or "fiat", which cargo
    // cannot evaluate; BUILD_SCRIPTS sets "serial" for every arch.
    assert!(
        extra
            .iter()
            .all(|c| c.starts_with("curve25519-dalek-derive ")),
        "x86_64 only: {extra:?}"
    );
    let dalek = BUILD_SCRIPTS
        .iter()
        .find(|b| b.krate == "curve25519-dalek")
        .unwrap();
    assert!(dalek.cfgs.contains(&"curve25519_dalek_backend=\"serial\""));
}

#[test]
fn every_module_a_module_uses_is_defined_in_the_file() {
    let bp = fs::read_to_string(root().join("android-native/android/Android.bp")).unwrap();
    // Module bodies only: comments (the app example) are not Soong input.
    let code: String = bp
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .map(|l| format!("{l}\n"))
        .collect();
    let defined: Vec<String> = code
        .lines()
        .filter_map(|l| l.trim().strip_prefix("name: \""))
        .map(|n| n.trim_end_matches("\",").to_string())
        .collect();
    let mut used = 0;
    for module in code.split("\n}").filter(|m| m.contains("name: \"")) {
        for prop in ["rustlibs", "proc_macros", "whole_static_libs", "defaults"] {
            for dep in bp_list(module, prop) {
                used += 1;
                assert!(
                    defined.contains(&dep),
                    "{prop} entry {dep} is not a module of Android.bp; \
                     Android 13's external/rust/crates is not used"
                );
            }
        }
    }
    assert!(used > 50, "only {used} dependencies read");
}

#[test]
fn the_echo_binary_has_each_crate_its_source_names() {
    let bp = fs::read_to_string(root().join("android-native/android/Android.bp")).unwrap();
    let libs = bp_list(bp_module(&bp, "secure_ipc_echo"), "rustlibs");
    let src = fs::read_to_string(root().join("android-native/src/bin/secure_ipc_echo.rs")).unwrap();
    for (d, _) in cargo_deps("android-native/Cargo.toml") {
        let named = src.contains(&format!("{d}::"));
        assert_eq!(
            libs.contains(&dep_module(&d)),
            named,
            "secure_ipc_echo: {} in rustlibs must match whether the source uses {d}::; \
             rustlibs: {libs:?}",
            dep_module(&d)
        );
    }
}
