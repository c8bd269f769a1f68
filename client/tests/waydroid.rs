//! `sipc waydroid` against a temporary tree laid out like a Waydroid host
//! (var/lib/waydroid/overlay/vendor, etc/group, sys/, lxc/), and the shipped
//! boot script run by /bin/sh.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SIPC: &str = env!("CARGO_BIN_EXE_sipc");
const SCRIPT: &str = include_str!("../../android-native/waydroid/secure_ipc_node.sh");
const RC: &str = "var/lib/waydroid/overlay/vendor/etc/init/secure_ipc_node.rc";
const SH: &str = "var/lib/waydroid/overlay/vendor/bin/secure_ipc_node.sh";

struct TempTree(PathBuf);

impl TempTree {
    /// What `waydroid init` leaves (overlay/vendor, waydroid.cfg,
    /// config_nodes) plus a host group file.
    fn waydroid(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!("sipc-waydroid-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("var/lib/waydroid/overlay/vendor")).unwrap();
        fs::create_dir_all(d.join("var/lib/waydroid/lxc/waydroid")).unwrap();
        fs::create_dir_all(d.join("etc")).unwrap();
        fs::write(
            d.join("var/lib/waydroid/waydroid.cfg"),
            "[waydroid]\narch = x86_64\nmount_overlays = True\n",
        )
        .unwrap();
        fs::write(
            d.join("var/lib/waydroid/lxc/waydroid/config_nodes"),
            "lxc.mount.entry = /dev/null dev/null none bind,create=file,optional 0 0\n",
        )
        .unwrap();
        fs::write(d.join("etc/group"), "root:x:0:\nsecure-ipc:x:990:alice\n").unwrap();
        Self(d)
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
    fn sipc(&self, args: &[&str]) -> Output {
        Command::new(SIPC)
            .arg("waydroid")
            .args(args)
            .arg("--root")
            .arg(&self.0)
            .output()
            .expect("run sipc")
    }
    /// Every file under the tree with its mode and content.
    fn snapshot(&self) -> Vec<(PathBuf, u32, Vec<u8>)> {
        fn walk(d: &Path, out: &mut Vec<(PathBuf, u32, Vec<u8>)>) {
            let mut es: Vec<_> = fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            es.sort();
            for p in es {
                let m = fs::symlink_metadata(&p).unwrap();
                let body = if m.is_file() {
                    fs::read(&p).unwrap()
                } else {
                    Vec::new()
                };
                out.push((p.clone(), m.mode(), body));
                if m.is_dir() {
                    walk(&p, out);
                }
            }
        }
        let mut v = Vec::new();
        walk(&self.0, &mut v);
        v
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}stderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn install_writes_the_rc_and_the_script_with_the_host_group() {
    let t = TempTree::waydroid("install");
    let o = t.sipc(&["install"]);
    assert!(o.status.success(), "{}", text(&o));
    let rc = fs::read_to_string(t.p(RC)).unwrap();
    assert!(rc.contains("on early-init\n    exec -- /system/bin/sh /vendor/bin/secure_ipc_node.sh"));
    let sh = fs::read_to_string(t.p(SH)).unwrap();
    assert_eq!(sh, SCRIPT.replace("@GID@", "990"));
    assert_eq!(
        fs::metadata(t.p(SH)).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    assert_eq!(
        fs::metadata(t.p(RC)).unwrap().permissions().mode() & 0o7777,
        0o644
    );
}

#[test]
fn install_twice_changes_nothing_the_second_time() {
    let t = TempTree::waydroid("idem");
    assert!(t.sipc(&["install"]).status.success());
    let before = t.snapshot();
    let o = t.sipc(&["install"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout)
            .matches("unchanged:")
            .count(),
        2
    );
    assert_eq!(t.snapshot(), before);
}

#[test]
fn gid_option_overrides_the_group_file() {
    let t = TempTree::waydroid("gid");
    assert!(t.sipc(&["install", "--gid", "1234"]).status.success());
    let sh = fs::read_to_string(t.p(SH)).unwrap();
    assert!(sh.contains("\ngid=1234\n"));
    // status sees that the host group is now another one.
    let o = t.sipc(&["status"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("group is now 990"),
        "{}",
        text(&o)
    );
}

#[test]
fn uninstall_restores_the_tree_exactly() {
    let t = TempTree::waydroid("uninstall");
    let before = t.snapshot();
    assert!(t.sipc(&["install"]).status.success());
    assert_ne!(t.snapshot(), before);
    let o = t.sipc(&["uninstall"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(t.snapshot(), before);
    // And again: nothing to do, still success.
    let o = t.sipc(&["uninstall"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("nothing installed"));
}

#[test]
fn files_not_written_by_sipc_are_neither_replaced_nor_removed() {
    let t = TempTree::waydroid("foreign");
    fs::create_dir_all(t.p(RC).parent().unwrap()).unwrap();
    fs::write(t.p(RC), "on boot\n    start mine\n").unwrap();
    let before = t.snapshot();
    let o = t.sipc(&["install"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not written by sipc"));
    // Refused before writing anything, the script included.
    assert_eq!(t.snapshot(), before);
    let o = t.sipc(&["uninstall"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(
        fs::read_to_string(t.p(RC)).unwrap(),
        "on boot\n    start mine\n"
    );
}

#[test]
fn install_refuses_when_waydroid_is_not_initialized() {
    let t = TempTree::waydroid("noinit");
    fs::remove_dir_all(t.p("var/lib/waydroid")).unwrap();
    let o = t.sipc(&["install"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("waydroid init"));
}

#[test]
fn install_refuses_when_overlays_are_off() {
    let t = TempTree::waydroid("nooverlay");
    fs::write(
        t.p("var/lib/waydroid/waydroid.cfg"),
        "[waydroid]\nmount_overlays = False\n",
    )
    .unwrap();
    let o = t.sipc(&["install"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("mount_overlays = False"));
    assert!(!t.p(SH).exists() && !t.p(RC).exists());
}

#[test]
fn install_without_a_group_asks_for_one() {
    let t = TempTree::waydroid("nogroup");
    fs::write(t.p("etc/group"), "root:x:0:\n").unwrap();
    let o = t.sipc(&["install"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--gid"));
}

#[test]
fn status_lists_what_is_missing_then_reports_ready() {
    let t = TempTree::waydroid("status");
    let o = t.sipc(&["status"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    for m in [
        "boot hook rc",
        "boot hook script",
        "module",
        "device number",
    ] {
        assert!(err.contains(m), "{m}: {}", text(&o));
    }
    assert!(String::from_utf8_lossy(&o.stdout).contains("config_nodes bind entry: absent"));

    assert!(t.sipc(&["install"]).status.success());
    // The module as sysfs shows it once loaded.
    fs::create_dir_all(t.p("sys/module/secure_ipc")).unwrap();
    fs::create_dir_all(t.p("sys/class/secure_ipc/secure_ipc")).unwrap();
    fs::write(t.p("sys/class/secure_ipc/secure_ipc/dev"), "240:0\n").unwrap();
    let o = t.sipc(&["status"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("device number: 240:0"), "{out}");
    assert!(
        out.contains("boot hook script: installed, group 990"),
        "{out}"
    );
    assert!(out.contains("ready"), "{out}");
}

#[test]
fn status_sees_a_hand_added_bind_entry_and_an_edited_hook() {
    let t = TempTree::waydroid("edited");
    assert!(t.sipc(&["install"]).status.success());
    fs::write(
        t.p("var/lib/waydroid/lxc/waydroid/config_nodes"),
        "lxc.mount.entry = /dev/secure_ipc dev/secure_ipc none bind,create=file,optional 0 0\n",
    )
    .unwrap();
    let mut sh = fs::read_to_string(t.p(SH)).unwrap();
    sh.push_str("echo extra\n");
    fs::write(t.p(SH), sh).unwrap();
    let o = t.sipc(&["status"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("config_nodes bind entry: present"), "{out}");
    assert!(out.contains("boot hook script: out of date"), "{out}");
    // install brings the edited script back.
    let o = t.sipc(&["install"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("updated:"),
        "{}",
        text(&o)
    );
    assert_eq!(
        fs::read_to_string(t.p(SH)).unwrap(),
        SCRIPT.replace("@GID@", "990")
    );
}

/// Runs the shipped script with /bin/sh, its node and sysfs paths moved
/// into `dir`.
fn run_script(dir: &Path, dev: Option<&str>) -> Output {
    let script = dir.join("node.sh");
    fs::write(&script, SCRIPT.replace("@GID@", "990")).unwrap();
    let sysdev = dir.join("dev-file");
    let _ = fs::remove_file(&sysdev);
    if let Some(d) = dev {
        fs::write(&sysdev, format!("{d}\n")).unwrap();
    }
    Command::new("/bin/sh")
        .arg(&script)
        .env("SIPC_NODE", dir.join("secure_ipc"))
        .env("SIPC_SYSFS_DEV", &sysdev)
        .output()
        .expect("run /bin/sh")
}

#[test]
fn boot_script_refuses_a_missing_or_malformed_device_number() {
    let t = TempTree::waydroid("script-bad");
    let o = run_script(&t.0, None);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not loaded on the host"));
    for bad in ["", "240", "240:", ":0", "1:2:3", "a:b", "24 0:1"] {
        let o = run_script(&t.0, Some(bad));
        assert_eq!(o.status.code(), Some(1), "{bad:?}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("not MAJOR:MINOR"),
            "{bad:?}"
        );
        assert!(!t.p("secure_ipc").exists(), "{bad:?}");
    }
}

#[test]
fn boot_script_keeps_a_node_that_already_has_the_numbers() {
    let t = TempTree::waydroid("script-keep");
    // /dev/null is 1:3 everywhere; a symlink to it stands for a bind mount.
    std::os::unix::fs::symlink("/dev/null", t.p("secure_ipc")).unwrap();
    let o = run_script(&t.0, Some("1:3"));
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already 1:3"));
    assert!(fs::symlink_metadata(t.p("secure_ipc"))
        .unwrap()
        .file_type()
        .is_symlink());
}

/// The mknod path needs CAP_MKNOD: as root, the node appears with the
/// numbers, group and mode; otherwise the script reports the mknod failure
/// and exits 1.
#[test]
fn boot_script_makes_the_node_from_the_sysfs_numbers() {
    let t = TempTree::waydroid("script-mknod");
    // A stale node (a regular file here) is replaced.
    fs::write(t.p("secure_ipc"), "stale").unwrap();
    let o = run_script(&t.0, Some("240:7"));
    // SAFETY: geteuid() has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        assert!(o.status.success(), "{}", text(&o));
        let m = fs::symlink_metadata(t.p("secure_ipc")).unwrap();
        assert!(m.file_type().is_char_device());
        assert_eq!((libc::major(m.rdev()), libc::minor(m.rdev())), (240, 7));
        assert_eq!(m.gid(), 990);
        assert_eq!(m.uid(), 0);
        assert_eq!(m.mode() & 0o7777, 0o660);
        // Run again: same numbers, kept.
        let o = run_script(&t.0, Some("240:7"));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("already 240:7"),
            "{}",
            text(&o)
        );
        // A reloaded module with a new major: replaced.
        let o = run_script(&t.0, Some("241:0"));
        assert!(o.status.success(), "{}", text(&o));
        let m = fs::symlink_metadata(t.p("secure_ipc")).unwrap();
        assert_eq!(libc::major(m.rdev()), 241);
    } else {
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("mknod"),
            "{}",
            text(&o)
        );
    }
}
