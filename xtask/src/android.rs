//! Android and packaging steps: DKMS builds of the module for every
//! installed kernel, `cargo check` of the Android targets, the C example and
//! the Java API on the real JVM (userspace backend on the host, kernel
//! backend in a guest), `cargo xtask install`.

use crate::util::{have, root, run, show, Steps};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// DKMS package name and module name (must match kernel/dkms.conf).
const DKMS_NAME: &str = "secure-ipc";
const MODULE_NAME: &str = "secure_ipc";

/// Registers the Android/packaging steps of `cargo xtask test`.
pub fn register(steps: &mut Steps) {
    register_matching(steps, "");
}

type Step = (String, Box<dyn FnOnce() -> Result<(), String>>);

/// Registers the steps whose name contains `filter`.
fn register_matching(steps: &mut Steps, filter: &str) {
    let mut all: Vec<Step> = vec![
        ("android: dkms build".into(), Box::new(dkms_build)),
        (
            "android: install.sh refuses to run without root".into(),
            Box::new(install_refuses_non_root),
        ),
    ];
    for target in ANDROID_TARGETS {
        all.push((
            format!("android: cargo check --target {target}"),
            Box::new(move || android_check(target)),
        ));
    }
    all.push(("android: C example".into(), Box::new(c_example)));
    for kernel in ["6.1", "6.12"] {
        all.push((
            format!("android: C example on the kernel backend ({kernel}, QEMU)"),
            Box::new(move || c_example_kernel(kernel)),
        ));
    }
    // The Secure Boot install test (`cargo xtask secure-boot-test`, about
    // 13 minutes of TCG: DKMS builds inside an OVMF guest) and the LXC
    // container test (`cargo xtask lxc-test`, not passing yet) are
    // commands of their own, outside `cargo xtask test`'s 20-minute budget.
    all.push(("android: JVM tests".into(), Box::new(jvm_tests)));
    all.push((
        "android: JVM tests on the kernel backend (6.12, QEMU, host root over 9p)".into(),
        Box::new(|| jvm_tests_kernel("6.12")),
    ));
    for (name, f) in all {
        if name.contains(filter) {
            steps.step(&name, f);
        }
    }
}

/// The Android ABIs Waydroid runs on (arm64 devices, x86_64 PCs).
const ANDROID_TARGETS: [&str; 2] = ["aarch64-linux-android", "x86_64-linux-android"];

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// `cargo check` of the JNI and client crates for an Android target. There
/// is no NDK here: checking compiles Rust only (no linking, no C), which is
/// what proves the crates build for Android.
fn android_check(target: &str) -> Result<(), String> {
    let mut list = Command::new("rustup");
    list.args(["target", "list", "--installed"]);
    let installed = list
        .output()
        .map_err(|e| format!("cannot start `{}`: {e}", show(&list)))?;
    if !String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == target)
    {
        run(Command::new("rustup").args(["target", "add", target]))?;
    }
    run(cargo().args([
        "check",
        "-p",
        "secure-ipc-jni",
        "-p",
        "secure-ipc",
        "--all-targets",
        "--target",
        target,
    ]))
}

/// Builds libsecure_ipc_jni.so (debug) and returns its directory.
fn build_jni_library() -> Result<PathBuf, String> {
    run(cargo().args(["build", "-p", "secure-ipc-jni"]))?;
    let dir = root().join("target/debug");
    if !dir.join("libsecure_ipc_jni.so").is_file() {
        return Err(format!("no libsecure_ipc_jni.so in {}", dir.display()));
    }
    Ok(dir)
}

/// Runs a test program; Ok only if it exits 0 and its last line is
/// `N passed, 0 failed` with N > 0.
fn run_harness(cmd: &mut Command) -> Result<(), String> {
    cmd.current_dir(root());
    eprintln!("+ {}", show(cmd));
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start `{}`: {e}", show(cmd)))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprint!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let last = stdout.lines().last().unwrap_or("");
    let ok = last
        .strip_suffix(" passed, 0 failed")
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| n > 0);
    // -Xcheck:jni reports JNI misuse as warnings without failing the run.
    if stdout.contains("WARNING in native method") {
        return Err(format!(
            "`{}` made JNI calls that -Xcheck:jni warns about",
            show(cmd)
        ));
    }
    if out.status.success() && ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` ended with {} ({last})",
            show(cmd),
            out.status
        ))
    }
}

/// Compiles the C examples in android-native/examples/c against
/// secure_ipc_client.h and the built .so, and runs their demos on the
/// userspace backend: sipc_example.c (two processes, the error paths) and
/// sipc_epoll.c (an epoll loop over the readiness calls, sipc_shutdown).
fn c_example() -> Result<(), String> {
    let lib = build_jni_library()?;
    let out_dir = root().join("target/android");
    fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    for example in ["sipc_example", "sipc_epoll"] {
        let exe = out_dir.join(example);
        run(Command::new(&cc)
            .args([
                "-std=c11",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-pedantic",
                "-O2",
                "-pthread",
            ])
            .arg("-Iandroid-native/include")
            .arg(format!("android-native/examples/c/{example}.c"))
            .arg(format!("-L{}", lib.display()))
            .arg("-lsecure_ipc_jni")
            .arg(format!("-Wl,-rpath,{}", lib.display()))
            .arg("-o")
            .arg(&exe))?;
        run_harness(Command::new(&exe).args(["demo", "userspace"]))?;
    }
    Ok(())
}

/// The C example linked statically (glibc) against libsecure_ipc_jni.a, for
/// the busybox guest, which has no dynamic loader for it.
fn build_static_c_example() -> Result<PathBuf, String> {
    run(cargo().args(["build", "-p", "secure-ipc-jni"]))?;
    let lib = root().join("target/debug/libsecure_ipc_jni.a");
    let dir = root().join("target/android/guest");
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    // The library never resolves user or host names, so glibc's warnings
    // about NSS in static binaries do not apply.
    run(Command::new(cc)
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-O2",
            "-static",
            "-s",
        ])
        .arg("-Iandroid-native/include")
        .arg("android-native/examples/c/sipc_example.c")
        .arg(&lib)
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(dir.join("sipc_example")))?;
    Ok(dir)
}

/// The C example's two-process demo on the kernel backend: the real module
/// in a QEMU guest running `kernel` (the harness's vm-run).
fn c_example_kernel(kernel: &str) -> Result<(), String> {
    crate::deps::ensure()?;
    let dir = build_static_c_example()?;
    match crate::vm::run_in_guest(kernel, &dir, &["./sipc_example", "demo", "kernel"])? {
        0 => Ok(()),
        status => Err(format!(
            "sipc_example demo kernel exited with {status} in the {kernel} guest"
        )),
    }
}

/// The JDK's bin directory: $JAVA_HOME, else OpenJDK 17's Debian path,
/// installing openjdk-17-jdk-headless when neither has javac.
fn jdk_bin() -> Result<PathBuf, String> {
    let candidates = std::env::var_os("JAVA_HOME")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from("/usr/lib/jvm/java-17-openjdk-amd64")]);
    for home in candidates {
        if home.join("bin/javac").is_file() {
            return Ok(home.join("bin"));
        }
    }
    run(Command::new("apt-get").args([
        "install",
        "-y",
        "--no-install-recommends",
        "openjdk-17-jdk-headless",
    ]))?;
    Ok(PathBuf::from("/usr/lib/jvm/java-17-openjdk-amd64/bin"))
}

/// All `.java` files below `dir`.
fn java_sources(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            out.extend(java_sources(&path)?);
        } else if path.extension().is_some_and(|e| e == "java") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Compiles the Java API (for Java 8, the language level Android accepts)
/// and the test driver, then runs the driver on the JVM with -Xcheck:jni
/// against the freshly built library.
fn jvm_tests() -> Result<(), String> {
    let (java, lib, classes) = build_jvm_tests()?;
    run_harness(
        Command::new(java)
            .arg("-Xcheck:jni")
            .arg(format!("-Djava.library.path={}", lib.display()))
            .arg("-cp")
            .arg(&classes)
            .arg("dev.secureipc.test.SecureIpcJvmTest"),
    )
}

/// The same JVM tests over `/dev/secure_ipc`: a guest of `kernel` with this
/// machine's root as its userland (`vm-run --host-root`), so the JDK and
/// the JNI library built here run against the real module.
fn jvm_tests_kernel(kernel: &str) -> Result<(), String> {
    crate::deps::ensure()?;
    let (java, lib, classes) = build_jvm_tests()?;
    let args: Vec<String> = ["--kernel", kernel, "--host-root", "--"]
        .iter()
        .map(|s| s.to_string())
        .chain([
            java.display().to_string(),
            "-Xcheck:jni".into(),
            // A crash report goes to the console log, not to a file in
            // the guest's throw-away overlay.
            "-XX:+ErrorFileToStdout".into(),
            "-Dsipc.backend=KERNEL".into(),
            format!("-Djava.library.path={}", lib.display()),
            "-cp".into(),
            classes.display().to_string(),
            "dev.secureipc.test.SecureIpcJvmTest".into(),
        ])
        .collect();
    match crate::vm::vm_run(&crate::vm::parse_args(&args, kernel)?)? {
        0 => Ok(()),
        status => Err(format!(
            "the JVM tests on the kernel backend exited with {status} in the {kernel} guest"
        )),
    }
}

/// Builds the JNI library and compiles the Java API, its example and its
/// tests; returns (the `java` launcher, the library's directory, the
/// classes directory).
fn build_jvm_tests() -> Result<(PathBuf, PathBuf, PathBuf), String> {
    let lib = build_jni_library()?;
    let bin = jdk_bin()?;
    let classes = root().join("target/android/classes");
    let _ = fs::remove_dir_all(&classes);
    fs::create_dir_all(&classes).map_err(|e| format!("{}: {e}", classes.display()))?;
    run(Command::new(bin.join("javac"))
        .args(["-Xlint:all", "-Werror", "--release", "8", "-d"])
        .arg(&classes)
        .args(java_sources(&root().join("android-native/java"))?))?;
    // The Java example, at the API's language level too; the tests run it.
    run(Command::new(bin.join("javac"))
        .args(["-Xlint:all", "-Werror", "--release", "8", "-cp"])
        .arg(&classes)
        .arg("-d")
        .arg(&classes)
        .args(java_sources(&root().join("android-native/examples/java"))?))?;
    run(Command::new(bin.join("javac"))
        .args(["-Xlint:all", "-Werror", "--release", "17", "-cp"])
        .arg(&classes)
        .arg("-d")
        .arg(&classes)
        .args(java_sources(&root().join("android-native/java-tests"))?))?;
    Ok((bin.join("java"), lib, classes))
}

/// `cargo xtask android-test [FILTER]`: the steps registered here (those
/// whose name contains FILTER).
pub fn run_all(args: &[String]) -> Result<(), String> {
    let mut steps = Steps::default();
    register_matching(&mut steps, args.first().map_or("", String::as_str));
    steps.finish()
}

/// `cargo xtask install [args]`: the DKMS install on this host (root only),
/// by kernel/install.sh, which checks for root itself.
pub fn install(args: &[String]) -> Result<i32, String> {
    let mut cmd = Command::new(root().join("kernel/install.sh"));
    cmd.args(args);
    eprintln!("+ {}", show(&cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start `{}`: {e}", show(&cmd)))?;
    Ok(status.code().unwrap_or(1))
}

/// Installs a Debian package when `prog` is missing (as `cargo xtask deps` does).
fn ensure_tool(prog: &str, package: &str) -> Result<(), String> {
    if have(prog) {
        return Ok(());
    }
    run(Command::new("apt-get").args(["install", "-y", "--no-install-recommends", package]))
}

/// kernel/install.sh run as `nobody` exits 1 with a message naming root,
/// before touching anything.
fn install_refuses_non_root() -> Result<(), String> {
    // A copy in a world-readable place: the checkout may be in a 0700 home.
    let dir = std::env::temp_dir().join(format!("sipc-install-test-{}", std::process::id()));
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for f in ["install.sh", "dkms.conf"] {
        fs::copy(root().join("kernel").join(f), dir.join(f))
            .map_err(|e| format!("copy kernel/{f}: {e}"))?;
    }
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(dir.join("install.sh"))
        .args(["--kernel", "0.0.0-none", "--no-load"]);
    let out = cmd.output();
    let _ = fs::remove_dir_all(&dir);
    let out = out.map_err(|e| format!("cannot start `{}`: {e}", show(&cmd)))?;
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(1) && err.contains("must run as root") {
        Ok(())
    } else {
        Err(format!(
            "`{}` exited with {} and said: {}",
            show(&cmd),
            out.status,
            err.trim()
        ))
    }
}

/// Reads `KEY="value"` from kernel/dkms.conf.
fn dkms_conf_value(key: &str) -> Result<String, String> {
    let path = root().join("kernel/dkms.conf");
    let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(|v| v.trim_matches('"').to_string())
        .ok_or_else(|| format!("{}: no {key}= line", path.display()))
}

/// Kernels with an installed build tree (`/lib/modules/<ver>/build`).
fn installed_kernels() -> Result<Vec<String>, String> {
    let mut kernels = Vec::new();
    let entries = fs::read_dir("/lib/modules").map_err(|e| format!("/lib/modules: {e}"))?;
    for entry in entries.flatten() {
        if entry.path().join("build/Makefile").is_file() {
            kernels.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    kernels.sort();
    if kernels.is_empty() {
        return Err("no kernel build tree under /lib/modules/*/build \
                    (Debian: apt-get install linux-headers-amd64)"
            .into());
    }
    Ok(kernels)
}

/// Runs `dkms` against a scratch tree under target/, never /var/lib/dkms.
fn dkms(tree: &Path, src: &Path, args: &[&str]) -> Result<(), String> {
    run(Command::new("dkms")
        .args(args)
        .arg("--dkmstree")
        .arg(tree)
        .arg("--sourcetree")
        .arg(src))
}

/// `dkms add` + `dkms build` of kernel/ for every installed kernel, in a
/// scratch DKMS tree under target/dkms/, then `dkms remove`. Checks that each
/// build produced a module whose vermagic names that kernel.
fn dkms_build() -> Result<(), String> {
    // The kernels (and their headers) DKMS builds for; `android-test` on a
    // fresh machine reaches this step first.
    crate::deps::ensure()?;
    ensure_tool("dkms", "dkms")?;
    // dkms sources dkms.conf with bash and carries on after a syntax error.
    run(Command::new("bash").args(["-n", "kernel/dkms.conf"]))?;
    let version = dkms_conf_value("PACKAGE_VERSION")?;
    let name = dkms_conf_value("PACKAGE_NAME")?;
    if name != DKMS_NAME {
        return Err(format!(
            "kernel/dkms.conf: PACKAGE_NAME is {name}, expected {DKMS_NAME}"
        ));
    }
    let cargo_version = env!("CARGO_PKG_VERSION");
    if version != cargo_version {
        return Err(format!(
            "kernel/dkms.conf: PACKAGE_VERSION {version} differs from the workspace version \
             {cargo_version} (root Cargo.toml): update dkms.conf"
        ));
    }
    let scratch = root().join("target/dkms");
    let src = scratch.join("src");
    let tree = scratch.join("tree");
    let remove = || {
        if tree.join(DKMS_NAME).join(&version).exists() {
            dkms(
                &tree,
                &src,
                &["remove", "-m", DKMS_NAME, "-v", &version, "--all"],
            )?;
        }
        Ok::<(), String>(())
    };
    // A previous run that was interrupted leaves its tree behind; whatever
    // `dkms remove` cannot undo there, the directory removal below does.
    let _ = remove();
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&tree).map_err(|e| format!("{}: {e}", tree.display()))?;
    let staged = src.join(format!("{DKMS_NAME}-{version}"));
    run(Command::new(root().join("kernel/install.sh"))
        .arg("--stage")
        .arg(&staged))?;

    let result = (|| {
        dkms(&tree, &src, &["add", "-m", DKMS_NAME, "-v", &version])?;
        let kernels = installed_kernels()?;
        for k in &kernels {
            dkms(
                &tree,
                &src,
                &["build", "-m", DKMS_NAME, "-v", &version, "-k", k],
            )?;
            check_built_module(&tree, &version, k)?;
        }
        eprintln!("dkms build ok for: {}", kernels.join(", "));
        Ok(())
    })();
    let cleanup = remove();
    let _ = fs::remove_dir_all(&scratch);
    result.and(cleanup)
}

/// The built module for kernel `k` exists and was built for `k`.
fn check_built_module(tree: &Path, version: &str, k: &str) -> Result<(), String> {
    let dir: PathBuf = tree.join(DKMS_NAME).join(version).join(k);
    let module = find_module(&dir).ok_or_else(|| {
        format!(
            "dkms reported success but no {MODULE_NAME}.ko* under {}",
            dir.display()
        )
    })?;
    let mut cmd = Command::new("modinfo");
    cmd.args(["-F", "vermagic"]).arg(&module);
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start `{}`: {e}", show(&cmd)))?;
    let vermagic = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || vermagic.split_whitespace().next() != Some(k) {
        return Err(format!(
            "{}: vermagic `{}` does not name kernel {k}",
            module.display(),
            vermagic.trim()
        ));
    }
    Ok(())
}

/// Finds `secure_ipc.ko` (possibly compressed) below `dir`.
fn find_module(dir: &Path) -> Option<PathBuf> {
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_module(&path) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|n| {
            n.to_string_lossy()
                .starts_with(&format!("{MODULE_NAME}.ko"))
        }) {
            return Some(path);
        }
    }
    None
}
