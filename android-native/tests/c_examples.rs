//! The C examples (android-native/examples/c) built with the system C
//! compiler against include/secure_ipc_client.h and this crate's .so, and
//! their demos run on the userspace backend: each must exit 0 and end with
//! "N passed, 0 failed". (xtask's "android: C example" step does the same.)

use std::path::PathBuf;
use std::process::Command;

/// target/debug (or the profile's directory): where cargo put
/// libsecure_ipc_jni.so, two levels above this test binary (deps/).
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(|d| d.parent()).unwrap().to_path_buf()
}

fn build_and_run_demo(example: &str) {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut lib = lib_dir();
    if !lib.join("libsecure_ipc_jni.so").is_file() {
        // A plain `cargo test` on a fresh tree builds the crate's rlib
        // only: build the .so in a directory of this test's own (the
        // outer cargo holds the lock of the main target directory).
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("c-examples-lib");
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "secure-ipc-jni", "--lib", "--target-dir"])
            .arg(&dir)
            .current_dir(&manifest)
            .status()
            .expect("run cargo");
        assert!(status.success(), "cargo build of the .so: {status}");
        lib = dir.join("debug");
    }
    assert!(
        lib.join("libsecure_ipc_jni.so").is_file(),
        "no libsecure_ipc_jni.so in {}",
        lib.display()
    );
    let exe = std::env::temp_dir().join(format!("{example}-{}", std::process::id()));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(cc)
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-O2",
            "-pthread",
        ])
        .arg(format!("-I{}", manifest.join("include").display()))
        .arg(manifest.join(format!("examples/c/{example}.c")))
        .arg(format!("-L{}", lib.display()))
        .arg("-lsecure_ipc_jni")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-o")
        .arg(&exe)
        .status()
        .expect("cannot run the C compiler");
    assert!(status.success(), "{example}.c does not compile");
    let out = Command::new(&exe)
        .args(["demo", "userspace"])
        .output()
        .expect("cannot run the example");
    let _ = std::fs::remove_file(&exe);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("");
    let passed = last
        .strip_suffix(" passed, 0 failed")
        .and_then(|n| n.parse::<u32>().ok());
    assert!(
        out.status.success() && passed.is_some_and(|n| n > 0),
        "{example} demo userspace: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn c_example_epoll_loop_demo_passes_on_the_userspace_backend() {
    build_and_run_demo("sipc_epoll");
}

#[test]
fn c_example_two_process_demo_passes_on_the_userspace_backend() {
    build_and_run_demo("sipc_example");
}
