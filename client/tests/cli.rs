//! Tests of the real `sipc` binary, run as a shell user would.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const SIPC: &str = env!("CARGO_BIN_EXE_sipc");

fn uniq(tag: &str) -> String {
    format!("cli{}-{tag}", std::process::id())
}

fn pseudo_random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `sipc listen NAME ARGS > out` fed nothing, and `sipc connect NAME ARGS < input`.
fn round_trip(name: &str, frame: &str, input: &[u8]) -> (Output, Output) {
    let listen = Command::new(SIPC)
        .args(["listen", name, "--frame", frame, "--backend", "userspace"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sipc listen");
    // Collect its output while the connect runs (a full pipe would stall it).
    let listen = std::thread::spawn(move || listen.wait_with_output().expect("listen output"));
    // The owner binds its socket right away; retry the connect until it does.
    let mut connect_out = None;
    for _ in 0..100 {
        let mut c = Command::new(SIPC)
            .args(["connect", name, "--frame", frame, "--backend", "userspace"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sipc connect");
        let mut stdin = c.stdin.take().expect("stdin");
        let data = input.to_vec();
        let w = std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
        let out = c.wait_with_output().expect("connect output");
        let _ = w.join();
        if out.status.code() == Some(3)
            && String::from_utf8_lossy(&out.stderr).contains("no such channel")
        {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        connect_out = Some(out);
        break;
    }
    let listen_out = listen.join().expect("listen collector");
    (
        listen_out,
        connect_out.expect("connect never found the channel"),
    )
}

#[test]
fn raw_frames_carry_a_binary_file_byte_identical() {
    let input = pseudo_random_bytes(3 * 1024 * 1024 + 17, 7);
    let (l, c) = round_trip(&uniq("raw"), "raw:4000", &input);
    assert!(
        c.status.success(),
        "connect: {}",
        String::from_utf8_lossy(&c.stderr)
    );
    assert!(
        l.status.success(),
        "listen: {}",
        String::from_utf8_lossy(&l.stderr)
    );
    assert_eq!(l.stdout.len(), input.len());
    assert!(l.stdout == input, "received bytes differ from the file");
}

#[test]
fn len32_frames_round_trip_byte_identical() {
    let mut input = Vec::new();
    for i in 0..2000usize {
        let msg = pseudo_random_bytes(i % 3000, i as u64 + 1);
        input.extend_from_slice(&(msg.len() as u32).to_le_bytes());
        input.extend_from_slice(&msg);
    }
    let (l, c) = round_trip(&uniq("len32"), "len32", &input);
    assert!(
        c.status.success(),
        "connect: {}",
        String::from_utf8_lossy(&c.stderr)
    );
    assert!(l.stdout == input, "len32 stream differs");
}

#[test]
fn lines_round_trip_byte_identical() {
    let input: Vec<u8> = (0..5000)
        .flat_map(|i| format!("line {i} of the text file\n").into_bytes())
        .collect();
    let (l, c) = round_trip(&uniq("lines"), "lines", &input);
    assert!(
        c.status.success(),
        "connect: {}",
        String::from_utf8_lossy(&c.stderr)
    );
    assert!(l.stdout == input, "lines differ");
}

#[test]
fn connect_to_a_missing_channel_exits_3_with_a_hint() {
    let out = Command::new(SIPC)
        .args(["connect", &uniq("none"), "--backend", "userspace"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no such channel") && err.contains("owner running"),
        "stderr: {err}"
    );
}

#[test]
fn unknown_option_exits_2_and_points_to_help() {
    let out = Command::new(SIPC)
        .args(["listen", "x", "--colour", "red"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--help"));
}

#[test]
fn invalid_channel_name_exits_2() {
    let out = Command::new(SIPC)
        .args(["connect", "bad/name", "--backend", "userspace"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn help_shows_commands_examples_and_exit_codes() {
    let out = Command::new(SIPC).arg("--help").output().unwrap();
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    for w in [
        "listen NAME",
        "connect NAME",
        "stats NAME",
        "bench",
        "info",
        "demo",
        "EXAMPLES",
        "EXIT CODES",
    ] {
        assert!(s.contains(w), "help lacks {w}");
    }
}

#[test]
fn stats_of_a_running_owner_shows_its_counters() {
    let name = uniq("stats");
    let mut listen = Command::new(SIPC)
        .args(["listen", &name, "--backend", "userspace"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = None;
    for _ in 0..100 {
        let o = Command::new(SIPC).args(["stats", &name]).output().unwrap();
        if o.status.success() {
            out = Some(o);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = listen.kill();
    let _ = listen.wait();
    let o = out.expect("stats never answered");
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("sealed messages") && s.contains("authentication failures"),
        "{s}"
    );
}

#[test]
fn info_reports_the_backend_auto_selects() {
    let out = Command::new(SIPC).arg("info").output().unwrap();
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("kernel module secure_ipc:") && s.contains("--backend auto selects:"),
        "{s}"
    );
}

#[test]
fn demo_streams_imu_samples_into_namespaces_without_loss() {
    let out = Command::new(SIPC)
        .args(["demo", "--seconds", "2", "--rate", "2000"])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {s}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        s.contains("received 4000 samples, lost 0, failed authentication 0"),
        "{s}"
    );
}

#[test]
fn non_ascii_identity_pub_is_a_usage_error_not_a_panic() {
    // 64 bytes, but a two-byte character straddles each pair of digits:
    // slicing by byte offsets used to panic (exit 101).
    let hex = format!("a{}a", "é".repeat(31));
    assert_eq!(hex.len(), 64);
    let out = Command::new(SIPC)
        .args(["listen", &uniq("nonascii"), "--identity-pub", &hex])
        .args(["--backend", "userspace"])
        .stdin(Stdio::null())
        .output()
        .expect("run sipc");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(err.contains("--identity-pub"), "stderr: {err}");
}

/// Spawns `sipc listen NAME ARGS` on the userspace backend, stdout piped.
fn spawn_listen(name: &str, args: &[&str], stdin: Stdio) -> std::process::Child {
    Command::new(SIPC)
        .args(["listen", name, "--backend", "userspace"])
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sipc listen")
}

/// Spawns `sipc connect NAME` once the owner is there, stdin piped.
fn spawn_connect(name: &str, args: &[&str]) -> std::process::Child {
    for _ in 0..100 {
        let mut c = Command::new(SIPC)
            .args(["connect", name, "--backend", "userspace"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sipc connect");
        std::thread::sleep(Duration::from_millis(100));
        match c.try_wait() {
            Ok(Some(st)) if st.code() == Some(3) => continue, // not listening yet
            _ => return c,
        }
    }
    panic!("the owner never came up");
}

fn read_first_line(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let out = child.stdout.take().expect("stdout");
    let mut r = std::io::BufReader::new(out);
    let mut line = String::new();
    r.read_line(&mut line).expect("read a line");
    // Keep the pipe open: the caller decides when it closes.
    std::mem::forget(r);
    line
}

#[test]
fn input_lost_to_a_killed_listener_is_a_non_zero_exit_with_the_delivered_count() {
    let name = uniq("killed");
    let mut listen = spawn_listen(&name, &[], Stdio::null());
    let mut connect = spawn_connect(&name, &[]);
    let mut stdin = connect.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let line = b"0123456789abcdef0123456789abcdef\n".repeat(64);
        while stdin.write_all(&line).is_ok() {}
    });
    let first = read_first_line(&mut listen);
    assert!(first.starts_with("0123"), "first line {first:?}");
    listen.kill().expect("kill listen");
    let _ = listen.wait();
    let out = connect.wait_with_output().expect("connect output");
    let _ = writer.join();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "stderr: {err}");
    assert!(err.contains("were delivered"), "stderr: {err}");
}

#[test]
fn a_closed_stdout_ends_listen_quietly() {
    let name = uniq("headed");
    let mut listen = spawn_listen(&name, &[], Stdio::null());
    let mut connect = spawn_connect(&name, &[]);
    let mut stdin = connect.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        for _ in 0..200_000 {
            if stdin.write_all(b"line\n").is_err() {
                break;
            }
        }
    });
    let out = listen.stdout.take().expect("stdout");
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .expect("first line");
        assert_eq!(line, "line\n");
        // `| head -1`: the reader goes away here.
    }
    let st = listen.wait_with_output().expect("listen output");
    let _ = connect.kill();
    let _ = connect.wait();
    let _ = writer.join();
    let err = String::from_utf8_lossy(&st.stderr);
    assert!(
        !err.contains("Broken pipe") && !err.contains("error"),
        "stderr: {err}"
    );
    assert_ne!(st.status.code(), Some(0), "it did not stop writing");
}

#[test]
fn version_flag_prints_the_version() {
    let out = Command::new(SIPC).arg("--version").output().expect("run");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("sipc {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn recv_only_listen_never_reads_stdin() {
    let name = uniq("recvonly");
    // stdin stays open and silent: a listen that read it would wait forever.
    let mut listen = spawn_listen(&name, &["--recv-only"], Stdio::piped());
    let mut connect = spawn_connect(&name, &["--send-only"]);
    connect
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"hi\n")
        .expect("write");
    let c = connect.wait_with_output().expect("connect");
    assert!(
        c.status.success(),
        "connect: {}",
        String::from_utf8_lossy(&c.stderr)
    );
    let t = std::time::Instant::now();
    loop {
        if let Some(st) = listen.try_wait().expect("try_wait") {
            assert!(st.success(), "listen exited {st:?}");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "listen --recv-only still waits on its stdin"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = listen.wait_with_output().expect("listen output");
    assert_eq!(out.stdout, b"hi\n");
}

#[test]
fn a_non_utf8_argument_is_a_usage_error_not_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    // std::env::args() panics on it (exit 101); the parser takes OsStrings.
    let out = Command::new(SIPC)
        .arg("listen")
        .arg(std::ffi::OsStr::from_bytes(b"cam\xff"))
        .args(["--backend", "userspace"])
        .stdin(Stdio::null())
        .output()
        .expect("run sipc");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(err.contains("NAME is not valid UTF-8"), "stderr: {err}");
}

#[test]
fn len32_input_ending_inside_a_length_prefix_is_an_error_not_a_clean_end() {
    let name = uniq("len32cut");
    // One whole frame, then two bytes of the next one's length.
    let (listen, connect) = round_trip(&name, "len32", b"\x05\0\0\0hello\x07\0");
    let err = String::from_utf8_lossy(&connect.stderr);
    assert_eq!(connect.status.code(), Some(2), "stderr: {err}");
    assert!(err.contains("truncated len32 frame"), "stderr: {err}");
    assert_eq!(listen.stdout, b"\x05\0\0\0hello");
}
