//! The example service binary (secure_ipc_echo) against a channel created
//! here, on the userspace backend.

use secure_ipc::{Backend, Channel, Options};
use std::process::{Command, Stdio};
use std::time::Duration;

fn unique(tag: &str) -> String {
    format!("echo{}-{tag}", std::process::id())
}

fn echo_cmd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_secure_ipc_echo"))
}

#[test]
fn echo_service_returns_each_message_with_its_type() {
    let name = unique("a");
    let opts = Options::new().backend(Backend::Userspace);
    let (mut tx, mut rx) = Channel::create(&name, &opts).expect("create");
    let mut child = echo_cmd()
        .args([
            "--channel",
            &name,
            "--backend",
            "userspace",
            "--count",
            "100",
            "--wait-ms",
            "10000",
        ])
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn secure_ipc_echo");
    for i in 0..100u16 {
        let payload = vec![i as u8; 1 + usize::from(i)];
        tx.send_with_type(i, &payload).expect("send");
        let msg = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("recv")
            .expect("echo within 10 s");
        assert_eq!(msg.msg_type(), i);
        assert_eq!(msg.payload(), &payload[..]);
    }
    assert!(child.wait().expect("wait").success());
}

#[test]
fn echo_service_exits_cleanly_when_the_owner_closes() {
    let name = unique("b");
    let opts = Options::new().backend(Backend::Userspace);
    let (mut tx, mut rx) = Channel::create(&name, &opts).expect("create");
    let mut child = echo_cmd()
        .args([
            "--channel",
            &name,
            "--backend",
            "userspace",
            "--wait-ms",
            "10000",
        ])
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn secure_ipc_echo");
    // One echo proves it has attached; then hang up.
    tx.send(b"ping").expect("send");
    let echo = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("recv")
        .map(|m| m.payload().to_vec());
    assert_eq!(echo.as_deref(), Some(&b"ping"[..]));
    drop(tx);
    drop(rx);
    let status = child.wait().expect("wait");
    assert!(status.success(), "exit status {status}");
}

#[test]
fn echo_service_gives_up_on_a_missing_channel_after_its_wait() {
    let out = echo_cmd()
        .args([
            "--channel",
            &unique("missing"),
            "--backend",
            "userspace",
            "--wait-ms",
            "200",
        ])
        .output()
        .expect("run secure_ipc_echo");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no such channel"), "stderr: {err}");
}

#[test]
fn echo_service_without_channel_is_a_usage_error() {
    let out = echo_cmd().output().expect("run secure_ipc_echo");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn identity_create_makes_a_key_once_and_the_owner_can_pin_its_public_half() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(unique("key"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("echo.key");
    let key_s = key.to_str().unwrap().to_string();
    // No channel yet: the key is made, then the attach gives up.
    let out = echo_cmd()
        .args(["--channel", &unique("none"), "--backend", "userspace"])
        .args(["--wait-ms", "0", "--identity-create", &key_s])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let secret = std::fs::read(&key).unwrap();
    assert_eq!(secret.len(), 32);
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let public: [u8; 32] = std::fs::read(dir.join("echo.key.pub"))
        .unwrap()
        .try_into()
        .unwrap();
    let secret: [u8; 32] = secret.try_into().unwrap();
    assert_eq!(
        x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(secret)).to_bytes(),
        public
    );

    // Second start: the same key, accepted by an owner pinning the public half.
    let name = unique("pinned");
    let policy = secure_ipc::PeerPolicy {
        identity_pub: Some(public),
        ..Default::default()
    };
    let opts = Options::new().backend(Backend::Userspace).policy(policy);
    let (mut tx, mut rx) = Channel::create(&name, &opts).expect("create");
    let mut child = echo_cmd()
        .args(["--channel", &name, "--backend", "userspace", "--count", "1"])
        .args(["--wait-ms", "10000", "--identity-create", &key_s])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tx.send_with_type(7, b"hi").expect("send");
    let msg = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("recv")
        .expect("echo within 10 s");
    assert_eq!(msg.payload(), b"hi");
    assert!(child.wait().unwrap().success());
    assert_eq!(std::fs::read(&key).unwrap(), secret);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn identity_create_racing_starts_agree_on_one_key() {
    // Two starts of the service crossing the first-boot creation (init
    // restarting it, a second instance): every one must end up using the
    // key on disk, and the .pub must be its public half. Rounds, since the
    // window is small.
    for round in 0..20 {
        let dir = std::env::temp_dir().join(unique(&format!("race{round}")));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("echo.key");
        let key_s = key.to_str().unwrap().to_string();
        let children: Vec<_> = (0..6)
            .map(|_| {
                echo_cmd()
                    .args(["--channel", &unique("none"), "--backend", "userspace"])
                    .args(["--wait-ms", "0", "--identity-create", &key_s])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let secret: Vec<u8> = {
            let outs: Vec<_> = children
                .into_iter()
                .map(|c| c.wait_with_output().unwrap())
                .collect();
            let secret: [u8; 32] = std::fs::read(&key).unwrap().try_into().unwrap();
            let public = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(secret));
            let hex: String = public
                .as_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(
                std::fs::read(dir.join("echo.key.pub")).unwrap(),
                public.as_bytes(),
                "round {round}: echo.key.pub is not the public half of echo.key"
            );
            for o in outs {
                let err = String::from_utf8_lossy(&o.stderr);
                // Exit 1: the attach to the missing channel gave up, after
                // the key was settled.
                assert_eq!(o.status.code(), Some(1), "round {round}: {err}");
                assert!(
                    err.contains(&format!("identity public key {hex}")),
                    "round {round}: a start used another key than the one on disk: {err}"
                );
            }
            secret.to_vec()
        };
        assert_eq!(secret.len(), 32);
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != "echo.key" && n != "echo.key.pub")
            .collect();
        assert!(leftovers.is_empty(), "round {round}: left {leftovers:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn identity_create_alone_makes_the_key_and_exits_0() {
    // The first-boot `exec` of init/secure_ipc_echo.rc: no channel.
    let dir = std::env::temp_dir().join(unique("alone"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("echo.key");
    let out = echo_cmd()
        .args(["--identity-create", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let secret: [u8; 32] = std::fs::read(&key).unwrap().try_into().unwrap();
    let public = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(secret));
    assert_eq!(
        std::fs::read(dir.join("echo.key.pub")).unwrap(),
        public.as_bytes()
    );
    // A second run keeps the key.
    assert!(echo_cmd()
        .args(["--identity-create", key.to_str().unwrap()])
        .status()
        .unwrap()
        .success());
    assert_eq!(std::fs::read(&key).unwrap(), secret);
    let _ = std::fs::remove_dir_all(&dir);
}
