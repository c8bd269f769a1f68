//! The Secure Boot install test: kernel/install.sh in a guest that boots
//! Debian's signed-kernel chain the way a Secure Boot PC does, with keys of
//! the test's own.
//!
//! The firmware is Debian's OVMF built with Secure Boot
//! (`OVMF_CODE_4M.secboot.fd`), its variables written with virt-firmware's
//! `virt-fw-vars` (from PyPI, in a venv in the cache): the test's key is the
//! platform key, KEK and db entry, so the firmware verifies and starts a
//! copy of Debian's 6.12 kernel re-signed with it, and Secure Boot is on for
//! real: Debian's kernel then locks itself down (integrity) and accepts only
//! modules signed by a key it trusts. A second test key is in `MokListRT`,
//! the variable shim leaves for the kernel with the enrolled MOKs; Linux
//! (security/integrity/platform_certs/load_uefi.c) reads it only when Secure
//! Boot is on and puts its keys in the `.machine` keyring, which module
//! signature checks use. So the kernel trusts that key exactly as it trusts
//! a key enrolled through MokManager.
//!
//! In the guest (this machine's root over 9p, a tmpfs overlay, so DKMS and
//! install.sh write only there) xtask/guest/secure-boot.sh checks that an
//! unsigned build is refused, that install.sh run with a key the firmware
//! does not know installs but exits 3 with the enrollment steps, that a
//! failure undoes everything, and that install.sh with the enrolled key
//! installs a module that loads.

use crate::util::{cache_dir, newer_than, root, run, CacheLock};
use crate::vm::{self, Guest, Mode, Variant};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The step's name in `cargo xtask test`.
pub const STEP: &str =
    "android: install.sh under Secure Boot (6.12, OVMF, test keys): unsigned refused, signed loads";

/// The step's name for the quick mode (one DKMS build) that
/// `cargo xtask test` runs.
pub const STEP_QUICK: &str =
    "android: install.sh under Secure Boot, quick (6.12, OVMF, test keys): \
     unsigned refused, signed by install.sh loads, uninstall restores";

/// The checks each mode of xtask/guest/secure-boot.sh prints: a run that
/// reports fewer (a check skipped or the script cut short) fails.
const FULL_CHECKS: usize = 9;
const QUICK_CHECKS: usize = 6;

/// The virt-firmware release whose `virt-fw-vars` writes the variables.
const VIRT_FIRMWARE: &str = "26.10";
/// OVMF with Secure Boot and SMM, and its empty variable store (Debian's ovmf).
const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// The owner GUID of the test's signature list entries (any GUID does).
const OWNER: &str = "5ec1bc00-3c1e-4c0a-9b1e-5ec0b007ca11";
/// Shim's vendor GUID, under which MokList and MokListRT live.
const SHIM_GUID: &str = "605dab50-e046-4300-abb6-3dd810dd8b23";

/// The test's keys: `platform` is PK, KEK and db and signs the kernel image
/// (Linux does not trust db keys for modules: they go to the .platform
/// keyring); `enrolled` is the one MOK, in MokList and MokListRT.
const KEYS: [&str; 2] = ["platform", "enrolled"];

fn openssl_key(dir: &Path, name: &str) -> Result<(), String> {
    let key = dir.join(format!("{name}.key"));
    let pem = dir.join(format!("{name}.pem"));
    if key.exists() && pem.exists() {
        return Ok(());
    }
    run(Command::new("openssl")
        .args(["req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes"])
        .args(["-days", "36500", "-sha256"])
        .args(["-subj", &format!("/CN=secure_ipc test key {name}/")])
        .args(["-addext", "extendedKeyUsage=codeSigning"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&pem))
}

/// `virt-fw-vars` in a venv of its own under the cache.
fn virt_fw_vars() -> Result<PathBuf, String> {
    let venv = cache_dir().join(format!("virt-firmware-{VIRT_FIRMWARE}"));
    let bin = venv.join("bin/virt-fw-vars");
    if bin.exists() {
        return Ok(bin);
    }
    let _ = fs::remove_dir_all(&venv);
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet"])
        .arg(format!("virt-firmware=={VIRT_FIRMWARE}")))?;
    Ok(bin)
}

/// What one guest boot needs, made once in the cache: the keys, the
/// re-signed kernel image and the variable store.
struct Setup {
    dir: PathBuf,
    image: PathBuf,
    vars: PathBuf,
}

fn setup(k: &vm::Kernel) -> Result<Setup, String> {
    let dir = cache_dir().join("secureboot");
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let _lock = CacheLock::acquire(&dir.join(".lock"))?;
    for name in KEYS {
        openssl_key(&dir, name)?;
    }
    let enrolled = dir.join("enrolled.pem");
    let platform = dir.join("platform.pem");

    // Debian's image carries Debian's signature; the firmware here trusts
    // only the test's platform key, so the copy is signed with that one.
    let image = dir.join(format!("vmlinuz-{}.signed", k.version));
    if !newer_than(&image, &k.image) || !newer_than(&image, &platform) {
        let plain = dir.join(format!("vmlinuz-{}.plain", k.version));
        fs::copy(&k.image, &plain).map_err(|e| format!("{}: {e}", k.image.display()))?;
        run(Command::new("sbattach").arg("--remove").arg(&plain))?;
        run(Command::new("sbsign")
            .arg("--key")
            .arg(dir.join("platform.key"))
            .arg("--cert")
            .arg(&platform)
            .arg("--output")
            .arg(&image)
            .arg(&plain))?;
        let _ = fs::remove_file(&plain);
    }

    let vars = dir.join("OVMF_VARS_4M.sipc-test.fd");
    if !newer_than(&vars, &enrolled) || !newer_than(&vars, &platform) {
        let tool = virt_fw_vars()?;
        let step1 = dir.join("vars-step1.fd");
        let json = dir.join("vars-step1.json");
        run(Command::new(&tool)
            .args(["--input", OVMF_VARS, "--output"])
            .arg(&step1)
            .arg("--enroll-cert")
            .arg(&platform)
            .arg("--no-microsoft")
            .args(["--add-db", OWNER])
            .arg(&platform)
            .args(["--add-mok", OWNER])
            .arg(&enrolled)
            .arg("--secure-boot")
            .arg("--output-json")
            .arg(&json))?;
        // MokListRT: what shim copies MokList to at every boot (boot service
        // + runtime access), here stored once in the variable store.
        let rt = dir.join("moklistrt.json");
        run(Command::new("python3")
            .arg("-c")
            .arg(format!(
                "import json,sys\n\
                 d=json.load(open(sys.argv[1]))\n\
                 m=[v for v in d['variables'] if v['name']=='MokList' and v['guid']=='{SHIM_GUID}']\n\
                 assert len(m)==1, 'virt-fw-vars wrote no MokList'\n\
                 r=dict(m[0], name='MokListRT', attr=7)\n\
                 json.dump({{'version':d['version'],'variables':[r]}},open(sys.argv[2],'w'))\n"
            ))
            .arg(&json)
            .arg(&rt))?;
        run(Command::new(&tool)
            .arg("--input")
            .arg(&step1)
            .arg("--output")
            .arg(&vars)
            .arg("--set-json")
            .arg(&rt))?;
        for f in [step1, json, rt] {
            let _ = fs::remove_file(f);
        }
    }
    Ok(Setup { dir, image, vars })
}

/// Guest-side results: `test NAME ... ok|FAILED` lines and the summary.
fn results(log: &[String]) -> (Vec<String>, Vec<String>) {
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for l in log {
        if let Some((name, verdict)) = l.strip_prefix("test ").and_then(|r| r.split_once(" ... ")) {
            if verdict.starts_with("ok") {
                ok.push(name.to_string());
            } else {
                failed.push(format!("{name}: {verdict}"));
            }
        }
    }
    (ok, failed)
}

/// `cargo xtask secure-boot-test`: every check of xtask/guest/secure-boot.sh.
pub fn run_test() -> Result<(), String> {
    run_mode(false)
}

/// The step of `cargo xtask test`: the guest's checks 1-3 and 6 (Secure
/// Boot and lockdown on, the test key trusted, an unsigned module refused,
/// a mismatched key refused with nothing changed, install.sh's signed
/// module loads, uninstall restores): one DKMS build instead of three.
pub fn run_quick() -> Result<(), String> {
    run_mode(true)
}

/// Boots the Secure Boot guest and runs xtask/guest/secure-boot.sh in it.
fn run_mode(quick: bool) -> Result<(), String> {
    crate::deps::ensure()?;
    let mut k = vm::find_kernels("6.12")?
        .into_iter()
        .next()
        .ok_or("no 6.12 kernel")?;
    let s = setup(&k)?;
    // The unsigned module: the harness's own build (xtask builds it unsigned).
    let unsigned = vm::build_module(&k, Variant::Normal)?;
    // The guest writes its variables (boot entries): a fresh copy each run.
    fs::create_dir_all(k.work_dir()).map_err(|e| format!("{}: {e}", k.work_dir().display()))?;
    let vars = k.work_dir().join("secure-boot-vars.fd");
    fs::copy(&s.vars, &vars).map_err(|e| format!("{}: {e}", s.vars.display()))?;
    k.image = s.image.clone();
    k.uefi = Some((PathBuf::from(OVMF_CODE), vars));

    let script = root().join("xtask/guest/secure-boot.sh");
    let mut cmd = vec!["sh".to_string(), script.display().to_string()];
    cmd.push(unsigned.display().to_string());
    cmd.push(s.dir.display().to_string());
    cmd.push(if quick { "quick" } else { "full" }.to_string());
    let guest = Guest {
        mode: Mode::RunUnloaded(cmd),
        bins: Vec::new(),
        extra: None,
        // mokutil reads the EFI variables through efivarfs.
        extra_modules: vec!["efivarfs"],
        optional_modules: Vec::new(),
        extra_files: Vec::new(),
        host_root: Some(root()),
    };
    let initrd = vm::pack(&k, &guest)?;
    let o = vm::boot_with(
        &k,
        &initrd,
        "secure-boot",
        Duration::from_secs(1500),
        false,
        true,
    )?;
    let (ok, failed) = results(&o.log);
    let trouble = vm::kernel_trouble(&o.log);
    println!(
        "secure boot: {} passed, {} failed ({:.0}s)",
        ok.len(),
        failed.len(),
        o.elapsed.as_secs_f64()
    );
    if !trouble.is_empty() {
        return Err(format!(
            "kernel trouble in the Secure Boot guest:\n{}\nlog: {}",
            trouble.join("\n"),
            o.log_path.display()
        ));
    }
    let want = if quick { QUICK_CHECKS } else { FULL_CHECKS };
    if o.status != Some(0) || !failed.is_empty() || ok.len() != want {
        return Err(format!(
            "guest status {:?}; {} of {want} checks passed; failed: {}; log: {}",
            o.status,
            ok.len(),
            failed.join("; "),
            o.log_path.display()
        ));
    }
    Ok(())
}
