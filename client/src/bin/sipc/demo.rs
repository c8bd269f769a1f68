//! `sipc demo`: 8 kHz IMU samples from this "host" process into a
//! "container" child in new user, pid and mount namespaces.

use crate::bench::percentile;
use crate::Fail;
use secure_ipc::cli::args::{Command, Demo, DemoContainer};
use secure_ipc::{Backend, Channel, Error, Options, PeerPolicy, PidNamespace, WaitPolicy};
use std::io::{self, BufRead, Write};
use std::time::{Duration, Instant};

/// One synthetic IMU sample as it travels on the wire (40 bytes, little-endian).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct ImuSample {
    seq: u64,
    t_ns: u64,
    accel: [f32; 3],
    gyro: [f32; 3],
}

const IMU_TYPE: u16 = 0x1300;
const IMU_LEN: usize = 40;

impl ImuSample {
    fn encode(&self) -> [u8; IMU_LEN] {
        let mut b = [0u8; IMU_LEN];
        b[..8].copy_from_slice(&self.seq.to_le_bytes());
        b[8..16].copy_from_slice(&self.t_ns.to_le_bytes());
        for (i, v) in self.accel.iter().chain(self.gyro.iter()).enumerate() {
            b[16 + 4 * i..20 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
        b
    }
    fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != IMU_LEN {
            return None;
        }
        let f = |i: usize| {
            f32::from_le_bytes([b[16 + 4 * i], b[17 + 4 * i], b[18 + 4 * i], b[19 + 4 * i]])
        };
        Some(Self {
            seq: u64::from_le_bytes(b[..8].try_into().ok()?),
            t_ns: u64::from_le_bytes(b[8..16].try_into().ok()?),
            accel: [f(0), f(1), f(2)],
            gyro: [f(3), f(4), f(5)],
        })
    }
    /// A phone lying on a table, gently rocking.
    fn synth(seq: u64, rate: u64) -> Self {
        let t = seq as f32 / rate as f32;
        let w = 2.0 * std::f32::consts::PI * 1.5 * t;
        Self {
            seq,
            t_ns: secure_ipc::monotonic_ns(),
            accel: [0.3 * w.sin(), 0.2 * w.cos(), 9.81 + 0.05 * (3.0 * w).sin()],
            gyro: [0.02 * w.cos(), -0.01 * w.sin(), 0.001],
        }
    }
}

fn own_ns(what: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/self/ns/{what}"))
        .map(|m| m.ino())
        .unwrap_or(0)
}

/// `sipc demo`: this process is the host, a child in new namespaces the
/// container.
pub fn run(a: &Demo) -> Result<(), Fail> {
    let backend = match a.backend {
        Backend::Auto => Backend::Userspace,
        b => b,
    };
    let (seconds, rate) = (a.seconds, a.rate);
    let name = format!("imu-demo-{}", std::process::id());
    let exe = std::env::current_exe()?;
    let uid = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(0)
    };
    println!(
        "secure_ipc demo: {rate} Hz IMU samples (3-axis accel + gyro + timestamp, {IMU_LEN} B)"
    );
    println!(
        "  host process      pid {} (pid ns {}, user ns {})",
        std::process::id(),
        own_ns("pid"),
        own_ns("user")
    );

    // The "container": new user + pid + mount namespaces, as LXC makes them.
    let container = Command::DemoContainer(DemoContainer {
        name: name.clone(),
        seconds,
        rate,
        backend,
    })
    .to_args();
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--user", "--map-root-user", "--pid", "--mount", "--fork"])
        .arg(&exe)
        .args(&container)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let (mut child, namespaced) = match cmd.spawn() {
        Ok(c) => (c, true),
        Err(e) => {
            eprintln!("sipc demo: cannot run unshare ({e}); the container runs without namespaces");
            let c = std::process::Command::new(&exe)
                .args(&container)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()?;
            (c, false)
        }
    };
    let mut child_out = io::BufReader::new(
        child
            .stdout
            .take()
            .ok_or_else(|| Fail("no child stdout".into(), 1))?,
    );
    let mut line = String::new();
    child_out.read_line(&mut line)?;
    if line.trim() != "ready" {
        let _ = child.kill();
        return Err(Fail(
            format!(
                "the container process did not start (user namespaces disabled? got '{}')",
                line.trim()
            ),
            1,
        ));
    }
    // Pin the container's pid namespace (host view of the new namespace) and
    // the uid the host sees for it through SO_PEERCRED (its mapped root).
    let pidns = if namespaced {
        PidNamespace::open(format!("/proc/{}/ns/pid_for_children", child.id())).ok()
    } else {
        None
    };
    let pidns_ino = pidns.as_ref().map(PidNamespace::ino);
    let policy = PeerPolicy {
        uid: Some(uid),
        pidns,
        ..Default::default()
    };
    let o = Options::new()
        .backend(backend)
        .slots(1024)
        .slot_size(128)
        .policy(policy);
    let (mut tx, mut rx) = Channel::create(&name, &o)?;
    println!(
        "  channel {name}: {backend:?} backend, policy uid {uid}{}",
        pidns_ino
            .map(|p| format!(", pid ns {p}"))
            .unwrap_or_default()
    );
    if let Some(mut stdin) = child.stdin.take() {
        writeln!(stdin, "go")?;
    }
    // Wait for the container to attach (its hello), then stream.
    let hello = match rx.recv_timeout(Duration::from_secs(10))? {
        Some(m) => m.sender(),
        None => {
            let _ = child.kill();
            return Err(Fail("the container did not attach within 10 s".into(), 1));
        }
    };
    let pc = rx.peer_credentials()?;
    println!(
        "  container process pid {} as the host sees it, uid {} (root inside its user ns), pid ns {}, user ns {}",
        hello.pid, pc.cred.uid, pc.pidns_ino, pc.userns_ino
    );
    // Forward the container's report lines while streaming.
    let printer = std::thread::spawn(move || {
        let mut l = String::new();
        while child_out.read_line(&mut l).map(|n| n > 0).unwrap_or(false) {
            print!("{l}");
            let _ = io::stdout().flush();
            l.clear();
        }
    });
    let total = seconds * rate;
    let period = Duration::from_nanos(1_000_000_000 / rate);
    let start = Instant::now();
    for seq in 0..total {
        // Sleep until the sample is due (absolute schedule: no drift), as a
        // sensor daemon would, leaving the CPU to the receiver.
        let due = start + period * seq as u32;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        tx.send_with_type(IMU_TYPE, ImuSample::synth(seq, rate).encode())?;
    }
    // Hang up the whole endpoint: on the kernel backend both halves share
    // one file, and the container sees PeerClosed only once it is closed.
    drop(tx);
    drop(rx);
    let _ = printer.join();
    let st = child.wait()?;
    println!(
        "  host sent {total} samples in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    if st.success() {
        Ok(())
    } else {
        Err(Fail("the container reported a failure".into(), 1))
    }
}

/// The container side of the demo (hidden command).
pub fn container(a: &DemoContainer) -> Result<(), Fail> {
    let (name, seconds, rate, backend) = (a.name.as_str(), a.seconds, a.rate, a.backend);
    println!("ready");
    io::stdout().flush()?;
    let mut go = String::new();
    io::stdin().read_line(&mut go)?;
    println!(
        "  [container] pid {} inside, uid {} inside, pid ns {}, user ns {}",
        std::process::id(),
        {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata("/proc/self")
                .map(|m| m.uid())
                .unwrap_or(0)
        },
        own_ns("pid"),
        own_ns("user")
    );
    // A sensor HAL sleeps between samples: block on the doorbell at once.
    let o = Options::new().backend(backend).wait(WaitPolicy::Block);
    let (mut tx, mut rx) = Channel::attach(name, &o)?;
    tx.send(b"hello from the container")?;
    let total = seconds * rate;
    // Grows past a million samples only on long runs.
    let mut lat_all: Vec<u64> = Vec::with_capacity(total.min(1 << 20) as usize);
    let mut lat_win: Vec<u64> = Vec::new();
    let mut expected = 0u64;
    let mut lost = 0u64;
    let mut bad = 0u64;
    let start = Instant::now();
    let mut win_start = Instant::now();
    let mut win_count = 0u64;
    println!("  [container]   time |     rate | latency p50     p99   p99.9     max | lost");
    loop {
        let m = match rx.recv() {
            Ok(m) => m,
            Err(Error::PeerClosed) => break,
            Err(Error::AuthenticationFailed) => {
                bad += 1;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let now = secure_ipc::monotonic_ns();
        let Some(s) = ImuSample::decode(m.payload()) else {
            bad += 1;
            continue;
        };
        if m.msg_type() != IMU_TYPE {
            bad += 1;
        }
        lost += s.seq.saturating_sub(expected);
        expected = s.seq + 1;
        // End-to-end: from the sample's timestamp (taken by the host just
        // before sending; CLOCK_MONOTONIC is shared across the namespaces).
        let l = now.saturating_sub(s.t_ns);
        drop(m);
        lat_win.push(l);
        win_count += 1;
        if win_start.elapsed() >= Duration::from_secs(1) {
            lat_win.sort_unstable();
            println!(
                "  [container] {:>5.1} s | {:>6.0}/s | {:>7.1} {:>7.1} {:>7.1} {:>7.1} us | {lost}",
                start.elapsed().as_secs_f64(),
                win_count as f64 / win_start.elapsed().as_secs_f64(),
                percentile(&lat_win, 0.5) as f64 / 1e3,
                percentile(&lat_win, 0.99) as f64 / 1e3,
                percentile(&lat_win, 0.999) as f64 / 1e3,
                *lat_win.last().unwrap_or(&0) as f64 / 1e3,
            );
            lat_all.extend_from_slice(&lat_win);
            lat_win.clear();
            win_count = 0;
            win_start = Instant::now();
        }
    }
    lat_all.extend_from_slice(&lat_win);
    lat_all.sort_unstable();
    lost += total.saturating_sub(expected);
    let st = rx.stats()?;
    println!(
        "  [container] received {} samples, lost {lost}, failed authentication {}",
        lat_all.len(),
        st.auth_failures + bad
    );
    println!(
        "  [container] end-to-end latency: p50 {:.1} us, p90 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us",
        percentile(&lat_all, 0.5) as f64 / 1e3,
        percentile(&lat_all, 0.9) as f64 / 1e3,
        percentile(&lat_all, 0.99) as f64 / 1e3,
        percentile(&lat_all, 0.999) as f64 / 1e3,
        *lat_all.last().unwrap_or(&0) as f64 / 1e3
    );
    if lost == 0 && bad == 0 && st.auth_failures == 0 && lat_all.len() as u64 == total {
        Ok(())
    } else {
        Err(Fail(format!("lost {lost}, bad {bad}"), 1))
    }
}
