//! The vendor policy in android/sepolicy/ against the neverallow rules of a
//! platform policy (AOSP or LineageOS system/sepolicy), through
//! android/sepolicy/check-neverallow.sh and checkpolicy.
//!
//! Needs a system/sepolicy checkout and checkpolicy, so it is ignored by
//! default:
//!   SIPC_SYSTEM_SEPOLICY=/path/to/system/sepolicy \
//!     cargo test -p secure-ipc-jni --test sepolicy_neverallow -- --ignored
//! docs/waydroid.md records the run against LineageOS 20.

use std::path::{Path, PathBuf};
use std::process::Command;

fn sepolicy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("android/sepolicy")
}

fn platform() -> PathBuf {
    PathBuf::from(
        std::env::var("SIPC_SYSTEM_SEPOLICY")
            .expect("set SIPC_SYSTEM_SEPOLICY to a system/sepolicy checkout"),
    )
}

/// Runs the check on a copy of sepolicy/ (plus app/) with `extra` added as
/// one more .te file; returns success and the output.
fn check_with(extra: &str) -> (bool, String) {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = std::env::temp_dir().join(format!("sipc-sepolicy-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let copy = tmp.join("sepolicy");
    std::fs::create_dir_all(copy.join("app")).unwrap();
    for sub in ["", "app"] {
        for e in std::fs::read_dir(sepolicy_dir().join(sub)).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), copy.join(sub).join(e.file_name())).unwrap();
            }
        }
    }
    std::fs::write(copy.join("extra.te"), extra).unwrap();
    let out = Command::new("bash")
        .arg(copy.join("check-neverallow.sh"))
        .arg(platform())
        .arg("app")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&tmp);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
#[ignore = "needs SIPC_SYSTEM_SEPOLICY and checkpolicy"]
fn the_vendor_policy_violates_no_platform_neverallow() {
    let (ok, out) = check_with("");
    assert!(ok, "{out}");
    assert!(out.contains("no neverallow violated"), "{out}");
}

#[test]
#[ignore = "needs SIPC_SYSTEM_SEPOLICY and checkpolicy"]
fn the_check_catches_the_neverallows_that_shape_the_design() {
    for rule in [
        // vendor domain writing core /data
        "allow vendor_secure_ipc_echo system_data_file:file write;",
        // vendor domain running a /system executable
        "allow vendor_secure_ipc_echo system_file:file execute_no_trans;",
        // core (non-app) domain reaching /data/vendor by path
        "allow system_server vendor_secure_ipc_data_file:dir search;",
    ] {
        let (ok, out) = check_with(rule);
        assert!(!ok, "{rule}: accepted\n{out}");
        assert!(out.contains("neverallow"), "{rule}: {out}");
    }
}
