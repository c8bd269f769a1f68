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
