//! `sipc waydroid install|status|uninstall`: the boot hook that makes
//! /dev/secure_ipc inside a Waydroid container at every container boot.
//!
//! Waydroid rewrites its LXC configuration (`config`, `config_nodes`) on
//! `waydroid init` and `waydroid upgrade`, and starts LXC once per session,
//! so nothing written there lasts (docs/waydroid.md, section 2). What does
//! last is the vendor overlay, /var/lib/waydroid/overlay/vendor/, which
//! Waydroid creates once and mounts over /vendor at every start: the hook
//! is an init .rc file there plus the shell script it runs
//! (android-native/waydroid/). Every path is under `--root` so that the
//! tests run this against a temporary tree.

use crate::Fail;
use secure_ipc::cli::args::{Waydroid, WaydroidAction};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The init file, as shipped.
const NODE_RC: &str = include_str!("../../../../android-native/waydroid/secure_ipc_node.rc");
/// The script, with `@GID@` for the node's group.
const NODE_SH: &str = include_str!("../../../../android-native/waydroid/secure_ipc_node.sh");
/// A line both files carry: files without it are not ours to replace or
/// remove.
const MARKER: &str = "Installed by `sipc waydroid install`";
/// The host group the udev rule gives the node (kernel/udev/).
const GROUP: &str = "secure-ipc";

const WORK: &str = "var/lib/waydroid";
const OVERLAY_VENDOR: &str = "var/lib/waydroid/overlay/vendor";
const RC_PATH: &str = "etc/init/secure_ipc_node.rc";
const SH_PATH: &str = "bin/secure_ipc_node.sh";
const CONFIG_NODES: &str = "var/lib/waydroid/lxc/waydroid/config_nodes";
const SYSFS_DEV: &str = "sys/class/secure_ipc/secure_ipc/dev";

/// `sipc waydroid ...`.
pub fn run(w: &Waydroid) -> Result<(), Fail> {
    let t = Tree::new(&w.root);
    match w.action {
        WaydroidAction::Install => install(&t, w.gid),
        WaydroidAction::Status => status(&t),
        WaydroidAction::Uninstall => uninstall(&t),
    }
}

/// The paths under one root.
struct Tree {
    root: PathBuf,
}

impl Tree {
    fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }
    fn at(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
    fn vendor(&self, rel: &str) -> PathBuf {
        self.at(OVERLAY_VENDOR).join(rel)
    }
    /// The two files install writes: path, mode, content.
    fn files(&self, gid: u32) -> [(PathBuf, u32, String); 2] {
        [
            (self.vendor(RC_PATH), 0o644, NODE_RC.to_string()),
            (self.vendor(SH_PATH), 0o755, script(gid)),
        ]
    }
}

fn script(gid: u32) -> String {
    NODE_SH.replace("@GID@", &gid.to_string())
}

fn fail(msg: impl Into<String>) -> Fail {
    Fail(msg.into(), 1)
}

fn io_fail(what: &str, p: &Path, e: io::Error) -> Fail {
    fail(format!("{what} {}: {e}", p.display()))
}

/// `mount_overlays` from waydroid.cfg; Waydroid's default is True
/// (tools/config/__init__.py) and it turns it off when the overlay mount
/// fails (tools/helpers/images.py, mount_rootfs()).
fn mount_overlays(t: &Tree) -> Option<bool> {
    let cfg = fs::read_to_string(t.at(WORK).join("waydroid.cfg")).ok()?;
    cfg.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == "mount_overlays")
        .map(|(_, v)| v.trim() == "True")
}

/// The gid of `secure-ipc` in ROOT/etc/group.
fn group_gid(t: &Tree) -> Option<u32> {
    let g = fs::read_to_string(t.at("etc/group")).ok()?;
    g.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next() == Some(GROUP))
            .then(|| f.nth(1)?.parse().ok())
            .flatten()
    })
}

/// Checks that Waydroid is set up to read the overlay.
fn check_waydroid(t: &Tree) -> Result<(), Fail> {
    let work = t.at(WORK);
    if !t.at(OVERLAY_VENDOR).is_dir() {
        return Err(fail(format!(
            "{} is missing: Waydroid is not initialized here (run `waydroid init` first)",
            t.at(OVERLAY_VENDOR).display()
        )));
    }
    if mount_overlays(t) == Some(false) {
        return Err(fail(format!(
            "{}/waydroid.cfg has mount_overlays = False: Waydroid would not mount the overlay \
             the boot hook lives in; set it to True (Waydroid turns it off when mounting \
             the overlay failed, see its log)",
            work.display()
        )));
    }
    Ok(())
}

/// What is at one of our paths.
enum Found {
    Missing,
    /// Ours (carries the marker); the content.
    Ours(String),
    /// Not written by us.
    Foreign,
}

fn found(p: &Path) -> Result<Found, Fail> {
    match fs::read(p) {
        Ok(b) => {
            let s = String::from_utf8_lossy(&b).into_owned();
            Ok(if s.contains(MARKER) {
                Found::Ours(s)
            } else {
                Found::Foreign
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Found::Missing),
        Err(e) => Err(io_fail("cannot read", p, e)),
    }
}

/// Writes `content` to `p` through a temporary file and a rename, so that a
/// failure leaves either the old file or the new one.
fn write_atomically(p: &Path, mode: u32, content: &str) -> Result<(), Fail> {
    let dir = p.parent().expect("our paths have a parent");
    let tmp = dir.join(format!(
        ".{}.sipc-tmp",
        p.file_name()
            .expect("our paths name a file")
            .to_string_lossy()
    ));
    let r = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(content.as_bytes())?;
        // The umask may have narrowed the mode given at create.
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        f.sync_all()?;
        fs::rename(&tmp, p)
    })();
    r.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_fail("cannot write", p, e)
    })
}

fn install(t: &Tree, gid: Option<u32>) -> Result<(), Fail> {
    check_waydroid(t)?;
    let gid = match gid.or_else(|| group_gid(t)) {
        Some(g) => g,
        None => {
            return Err(fail(format!(
            "no '{GROUP}' group in {}: install the module first (kernel/install.sh), or pass --gid",
            t.at("etc/group").display()
        )))
        }
    };
    let files = t.files(gid);
    // Check every file before writing any: a refusal changes nothing.
    for (p, _, _) in &files {
        if let Found::Foreign = found(p)? {
            return Err(fail(format!(
                "{} exists and was not written by sipc: move it away first",
                p.display()
            )));
        }
    }
    for (p, mode, content) in &files {
        let state = match found(p)? {
            Found::Ours(s) if s == *content => "unchanged",
            Found::Ours(_) => "updated",
            _ => "installed",
        };
        if state != "unchanged" {
            let dir = p.parent().expect("our paths have a parent");
            fs::create_dir_all(dir).map_err(|e| io_fail("cannot create", dir, e))?;
            write_atomically(p, *mode, content)?;
        }
        println!("{state}: {}", p.display());
    }
    println!(
        "the node is made at the next container boot (group {gid}); restart the session: \
         waydroid session stop, then waydroid session start"
    );
    Ok(())
}

fn uninstall(t: &Tree) -> Result<(), Fail> {
    let mut foreign = Vec::new();
    let mut removed = 0;
    for rel in [RC_PATH, SH_PATH] {
        let p = t.vendor(rel);
        match found(&p)? {
            Found::Missing => {}
            Found::Foreign => foreign.push(p),
            Found::Ours(_) => {
                fs::remove_file(&p).map_err(|e| io_fail("cannot remove", &p, e))?;
                println!("removed: {}", p.display());
                removed += 1;
            }
        }
    }
    // The directories install may have created, deepest first, if empty
    // (never the overlay's vendor/ itself, which `waydroid init` made).
    for rel in ["etc/init", "etc", "bin"] {
        let _ = fs::remove_dir(t.vendor(rel));
    }
    if removed == 0 && foreign.is_empty() {
        println!("nothing installed under {}", t.at(OVERLAY_VENDOR).display());
    }
    if !foreign.is_empty() {
        let list: Vec<String> = foreign.iter().map(|p| p.display().to_string()).collect();
        return Err(fail(format!(
            "left alone, not written by sipc: {}",
            list.join(", ")
        )));
    }
    Ok(())
}

/// The `gid=N` line of an installed script.
fn script_gid(s: &str) -> Option<u32> {
    s.lines().find_map(|l| l.strip_prefix("gid=")?.parse().ok())
}

/// Major and minor of a `MAJOR:MINOR` line.
fn parse_dev(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.trim().split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn status(t: &Tree) -> Result<(), Fail> {
    let mut missing: Vec<&str> = Vec::new();

    let work = t.at(WORK);
    if t.at(OVERLAY_VENDOR).is_dir() {
        println!("waydroid: initialized ({})", work.display());
    } else {
        println!(
            "waydroid: not initialized (no {})",
            t.at(OVERLAY_VENDOR).display()
        );
        missing.push("waydroid");
    }
    match mount_overlays(t) {
        Some(true) => println!("mount_overlays: True"),
        None => println!("mount_overlays: not set (Waydroid's default, True)"),
        Some(false) => {
            println!("mount_overlays: False (the boot hook is not seen)");
            missing.push("mount_overlays");
        }
    }

    let group = group_gid(t);
    match found(&t.vendor(RC_PATH))? {
        Found::Ours(s) if s == NODE_RC => println!("boot hook rc: installed"),
        Found::Ours(_) => {
            println!("boot hook rc: out of date (run sipc waydroid install)");
            missing.push("boot hook rc");
        }
        Found::Foreign => {
            println!("boot hook rc: a file not written by sipc");
            missing.push("boot hook rc");
        }
        Found::Missing => {
            println!("boot hook rc: missing");
            missing.push("boot hook rc");
        }
    }
    match found(&t.vendor(SH_PATH))? {
        Found::Ours(s) => match script_gid(&s) {
            Some(g) if s == script(g) => {
                let note = match group {
                    Some(h) if h != g => {
                        missing.push("boot hook group");
                        format!(" (but the host's {GROUP} group is now {h})")
                    }
                    _ => String::new(),
                };
                println!("boot hook script: installed, group {g}{note}");
            }
            _ => {
                println!("boot hook script: out of date (run sipc waydroid install)");
                missing.push("boot hook script");
            }
        },
        Found::Foreign => {
            println!("boot hook script: a file not written by sipc");
            missing.push("boot hook script");
        }
        Found::Missing => {
            println!("boot hook script: missing");
            missing.push("boot hook script");
        }
    }

    // Informational: the hook does not need it, and Waydroid rewrites it.
    let bind = fs::read_to_string(t.at(CONFIG_NODES))
        .map(|c| {
            c.lines().any(|l| {
                let l = l.trim_start();
                l.starts_with("lxc.mount.entry") && l.contains("/dev/secure_ipc ")
            })
        })
        .unwrap_or(false);
    println!(
        "config_nodes bind entry: {}",
        if bind {
            "present (added by hand; Waydroid rewrites this file on init and upgrade)"
        } else {
            "absent (not needed with the boot hook)"
        }
    );

    if t.at("sys/module/secure_ipc").is_dir() {
        println!("module: loaded");
    } else {
        println!("module: not loaded");
        missing.push("module");
    }
    let dev = fs::read_to_string(t.at(SYSFS_DEV))
        .ok()
        .and_then(|s| parse_dev(&s));
    match dev {
        Some((ma, mi)) => println!("device number: {ma}:{mi}"),
        None => {
            println!("device number: unknown (no {})", t.at(SYSFS_DEV).display());
            missing.push("device number");
        }
    }
    let node = t.at("dev/secure_ipc");
    match fs::metadata(&node) {
        Ok(m) if m.file_type().is_char_device() => {
            // c_uint in glibc and musl, c_int in bionic.
            #[allow(clippy::unnecessary_cast)]
            let (ma, mi) = (libc::major(m.rdev()) as u32, libc::minor(m.rdev()) as u32);
            let agrees = dev.map_or(true, |d| d == (ma, mi));
            println!(
                "host node {}: {ma}:{mi}{}",
                node.display(),
                if agrees {
                    ""
                } else {
                    " (stale: differs from sysfs)"
                }
            );
        }
        Ok(_) => println!("host node {}: not a character device", node.display()),
        Err(_) => println!("host node {}: missing", node.display()),
    }

    if missing.is_empty() {
        println!("ready: the node is made at every container boot");
        Ok(())
    } else {
        Err(fail(format!(
            "waydroid setup incomplete: {}",
            missing.join(", ")
        )))
    }
}
