//! android-native/android/Android.bp declares, for each Rust module, every
//! crate its Cargo.toml depends on (AOSP module name lib<crate_name>).

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
        ("libsecure_ipc_jni", "android-native/Cargo.toml"),
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
                libs.contains(&format!("lib{d}")),
                wanted,
                "{module}: lib{d} ({manifest}, optional: {optional}) in rustlibs \
                 must match whether the module builds it; rustlibs: {libs:?}, \
                 features: {features:?}"
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
