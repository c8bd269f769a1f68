//! android-native/android/Android.bp declares, for each Rust module, every
//! crate its Cargo.toml depends on (AOSP module name lib<crate_name>).

use std::fs;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// The crate names of a Cargo.toml's `[dependencies]` table.
fn cargo_deps(manifest: &str) -> Vec<String> {
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
                deps.push(k.trim().replace('-', "_"));
            }
        }
    }
    deps
}

/// The `rustlibs` of the Android.bp module named `name`.
fn bp_rustlibs(bp: &str, name: &str) -> Vec<String> {
    let at = bp
        .find(&format!("name: \"{name}\""))
        .unwrap_or_else(|| panic!("no module {name}"));
    let rest = &bp[at..];
    let end = rest.find("\n}").unwrap();
    let module = &rest[..end];
    let Some(libs) = module.find("rustlibs: [") else {
        return Vec::new();
    };
    let list = &module[libs + "rustlibs: [".len()..];
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
        ("libsecure_ipc_jni", "android-native/Cargo.toml"),
    ] {
        let libs = bp_rustlibs(&bp, module);
        let deps = cargo_deps(manifest);
        assert!(!deps.is_empty(), "{manifest}: no dependencies read");
        for d in deps {
            assert!(
                libs.contains(&format!("lib{d}")),
                "{module} lacks lib{d} ({manifest}); rustlibs: {libs:?}"
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
