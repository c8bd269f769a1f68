//! `sipc`: secure_ipc channels from the shell.
//!
//! Run `sipc --help` for the commands, examples and exit codes.

use secure_ipc::{
    resolve_backend, Backend, Channel, Error, Options, OwnerPolicy, PeerPolicy, PidNamespace,
    Receiver, Sender, StaticSecret, WaitPolicy,
};
use std::io::{self, BufRead, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

const HELP: &str = "\
sipc - sealed shared-memory channels (secure_ipc) from the shell

USAGE:
    sipc <command> [options]

COMMANDS:
    listen NAME       create channel NAME (owner); stdin -> messages, messages -> stdout
    connect NAME      attach to channel NAME (peer); stdin -> messages, messages -> stdout
    stats NAME        counters of a running userspace-backend owner of NAME
    bench             throughput and latency of one channel (two threads, one process)
    info              is the kernel module loaded? ABI version, features, limits
    --version         print the version
    demo              stream 8 kHz IMU samples from this \"host\" into a \"container\"
                      process (new user+pid+mount namespaces) and show rate,
                      latency and loss

OPTIONS (listen, connect):
    --frame lines|len32|raw:N   message framing on stdin/stdout (default lines):
                                  lines: one message per line, newline not sent
                                  len32: 4-byte little-endian length, then the message
                                  raw:N: stdin cut into N-byte messages; output unframed
    --type T                    message type of sent messages (0..65535, default 0)
    --backend auto|kernel|userspace   (default auto: kernel if /dev/secure_ipc opens)
    --socket-dir DIR            userspace rendezvous socket DIR/NAME.sock (default:
                                $XDG_RUNTIME_DIR/secure_ipc/NAME.sock where that is
                                this user's alone, else abstract @secure_ipc/NAME)
    --psk-file FILE             32-byte pre-shared key (both sides)
    --wait busy|block|spin      receive wait policy (default spin, then block)
    --send-only | --recv-only   one direction only (--recv-only never reads stdin)
  listen only:
    --slots N --slot-size N     geometry (powers of two; default 256 x 4096)
    --uid U|any --gid G --pidns PID|PATH peer policy (PATH: an nsfs file; userspace
                                default: the peer has this uid); --identity-pub HEX pins a peer identity
    --identity-file FILE        the owner's 32-byte X25519 identity key, proved to peers that pin it
  connect only:
    --identity-file FILE        32-byte X25519 private key proving the pinned identity
    --owner-uid U|any           the owner's uid (userspace; default: this uid)
    --owner-identity-pub HEX    the owner must prove this X25519 identity

OPTIONS (bench):
    --size N (64)  --batch N (32)  --count N (1000000)  --backend B  --wait W

OPTIONS (demo):
    --seconds N (10)  --rate HZ (8000)  --backend userspace|kernel (userspace)

EXAMPLES:
    sipc demo
    sipc listen cam0 > received.bin &  sipc connect cam0 --frame raw:4000 < frames.bin
    printf 'hello\\nworld\\n' | sipc connect cam0
    sipc listen sensors --uid 1000 --pidns $(pidof init)
    sipc bench --size 64 --batch 32 --backend userspace
    sipc stats cam0

EXIT CODES:
    0 ok   1 other error   2 bad usage   3 no such channel / exists / busy
    4 refused (policy, identity, PSK or wrong owner)   5 kernel module not loaded
    6 a record failed authentication   7 peer protocol error
    8 input not fully delivered (the peer hung up or stalled; the message says how many were)
    141 (SIGPIPE) stdout was closed
";

/// An error for the shell: message and exit code.
struct Fail(String, u8);

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        let code = match e {
            Error::NoSuchChannel | Error::ChannelExists | Error::Busy => 3,
            Error::NotPermitted
            | Error::IdentityRejected
            | Error::PskMismatch
            | Error::OwnerRejected => 4,
            Error::ModuleNotLoaded => 5,
            Error::AuthenticationFailed => 6,
            Error::Protocol(_) => 7,
            Error::InvalidName
            | Error::InvalidGeometry
            | Error::InvalidArgument(_)
            | Error::MessageTooLarge { .. } => 2,
            _ => 1,
        };
        Fail(e.to_string(), code)
    }
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Self {
        Fail(e.to_string(), 1)
    }
}

fn usage(msg: impl Into<String>) -> Fail {
    Fail(format!("{} (see sipc --help)", msg.into()), 2)
}

/// Parsed `--key value` options plus positional arguments.
/// Options that take no value.
const FLAGS: &[&str] = &["send-only", "recv-only"];

struct Args {
    pos: Vec<String>,
    opts: Vec<(String, String)>,
}

impl Args {
    fn parse(raw: &[String]) -> Result<Self, Fail> {
        let mut pos = Vec::new();
        let mut opts = Vec::new();
        let mut it = raw.iter();
        while let Some(a) = it.next() {
            if let Some(k) = a.strip_prefix("--") {
                if FLAGS.contains(&k) {
                    opts.push((k.to_string(), String::new()));
                    continue;
                }
                let (k, v) = match k.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => {
                        let v = it
                            .next()
                            .ok_or_else(|| usage(format!("--{k} needs a value")))?;
                        (k.to_string(), v.clone())
                    }
                };
                opts.push((k, v));
            } else {
                pos.push(a.clone());
            }
        }
        Ok(Self { pos, opts })
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.opts
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
    fn num<T: std::str::FromStr>(&self, k: &str, default: T) -> Result<T, Fail> {
        match self.get(k) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| usage(format!("--{k}: '{v}' is not a valid number"))),
        }
    }
    fn flag(&self, k: &str) -> bool {
        self.opts.iter().any(|(key, _)| key == k)
    }
    fn check_known(&self, known: &[&str]) -> Result<(), Fail> {
        for (k, _) in &self.opts {
            if !known.contains(&k.as_str()) {
                return Err(usage(format!("unknown option --{k}")));
            }
        }
        Ok(())
    }
    fn name(&self) -> Result<&str, Fail> {
        match self.pos.as_slice() {
            [n] => Ok(n),
            [] => Err(usage("missing channel NAME")),
            _ => Err(usage("too many arguments")),
        }
    }
}

/// Reads a 32-byte key file; neither the file's bytes nor the key outlive
/// their use in memory (both wiped on drop).
fn read_key_file(path: &str) -> Result<Zeroizing<[u8; 32]>, Fail> {
    let b = Zeroizing::new(std::fs::read(path).map_err(|e| Fail(format!("{path}: {e}"), 1))?);
    let mut key = Zeroizing::new([0u8; 32]);
    if b.len() != key.len() {
        return Err(usage(format!(
            "{path}: expected exactly 32 bytes, found {}",
            b.len()
        )));
    }
    key.copy_from_slice(&b);
    Ok(key)
}

/// 64 hex digits; anything else (including non-ASCII) is a usage error.
fn parse_hex32(opt: &str, s: &str) -> Result<[u8; 32], Fail> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return Err(usage(format!("--{opt}: expected 64 hex digits")));
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        match (digit(b[2 * i]), digit(b[2 * i + 1])) {
            (Some(h), Some(l)) => *o = h << 4 | l,
            _ => return Err(usage(format!("--{opt}: not hex"))),
        }
    }
    Ok(out)
}

fn backend_of(a: &Args) -> Result<Backend, Fail> {
    match a.get("backend").unwrap_or("auto") {
        "auto" => Ok(Backend::Auto),
        "kernel" => Ok(Backend::Kernel),
        "userspace" => Ok(Backend::Userspace),
        b => Err(usage(format!(
            "--backend: '{b}' is not auto, kernel or userspace"
        ))),
    }
}

fn wait_of(a: &Args) -> Result<WaitPolicy, Fail> {
    match a.get("wait").unwrap_or("spin") {
        "busy" => Ok(WaitPolicy::BusyPoll),
        "block" => Ok(WaitPolicy::Block),
        "spin" => Ok(WaitPolicy::default()),
        w => Err(usage(format!("--wait: '{w}' is not busy, block or spin"))),
    }
}

fn common_options(a: &Args) -> Result<Options, Fail> {
    let mut o = Options::new().backend(backend_of(a)?).wait(wait_of(a)?);
    if let Some(d) = a.get("socket-dir") {
        o = o.socket_dir(PathBuf::from(d));
    }
    if let Some(f) = a.get("psk-file") {
        o = o.psk(*read_key_file(f)?);
    }
    if let Some(f) = a.get("identity-file") {
        o = o.identity(StaticSecret::from(*read_key_file(f)?));
    }
    Ok(o)
}

#[derive(Clone, Copy)]
enum Frame {
    Lines,
    Len32,
    Raw(usize),
}

fn frame_of(a: &Args) -> Result<Frame, Fail> {
    match a.get("frame").unwrap_or("lines") {
        "lines" => Ok(Frame::Lines),
        "len32" => Ok(Frame::Len32),
        f => match f.strip_prefix("raw:").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) if n > 0 => Ok(Frame::Raw(n)),
            _ => Err(usage(format!(
                "--frame: '{f}' is not lines, len32 or raw:N"
            ))),
        },
    }
}

/// stdin -> messages until EOF; then hangs up this direction.
/// Exit status when input was read but not all of it reached the peer.
const EXIT_UNDELIVERED: u8 = 8;

/// stdin -> messages until EOF, then waits until the peer has taken them
/// all. Every way of losing input is an error that says how many messages
/// the peer did take.
fn pump_stdin(mut tx: Sender, frame: Frame, ty: u16) -> Result<u64, Fail> {
    let mut read = 0u64;
    let r = read_stdin_into(&mut tx, frame, ty, &mut read);
    // Delivered = read - what close says the peer never took.
    let closed = match &r {
        Ok(_) => tx.close(Duration::MAX),
        Err(_) => tx.close(Duration::ZERO),
    };
    let undelivered = match closed {
        Ok(()) => 0,
        Err(Error::NotDelivered { undelivered }) => undelivered as u64,
        Err(e) => return Err(e.into()),
    };
    match r {
        Ok(n) if undelivered == 0 => Ok(n),
        Err(Stop::Other(f)) if undelivered == 0 => Err(f),
        Err(Stop::Channel(e)) if undelivered == 0 && !matches!(e, Error::PeerClosed) => {
            Err(e.into())
        }
        r => Err(Fail(
            format!(
                "not all input reached the peer (it hung up or stalled): {} of the {read} \
                 messages read from stdin were delivered{}",
                read - undelivered.min(read),
                if r.is_err() {
                    "; the rest of stdin was not read"
                } else {
                    ""
                }
            ),
            EXIT_UNDELIVERED,
        )),
    }
}

/// Why reading stdin into the channel stopped early.
enum Stop {
    /// The channel failed (`PeerClosed`: the peer hung up).
    Channel(Error),
    /// Reading or framing stdin failed.
    Other(Fail),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Channel(e)
    }
}

impl From<Fail> for Stop {
    fn from(f: Fail) -> Self {
        Stop::Other(f)
    }
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Self {
        Stop::Other(e.into())
    }
}

fn read_stdin_into(tx: &mut Sender, frame: Frame, ty: u16, read: &mut u64) -> Result<u64, Stop> {
    let max = tx.max_message_size();
    let stdin = io::stdin();
    let mut input = io::BufReader::with_capacity(1 << 16, stdin.lock());
    let mut n = 0u64;
    let mut buf = Vec::with_capacity(max);
    loop {
        buf.clear();
        match frame {
            Frame::Lines => {
                if input.read_until(b'\n', &mut buf)? == 0 {
                    break;
                }
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
            }
            Frame::Len32 => {
                let mut l = [0u8; 4];
                match input.read_exact(&mut l) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(e.into()),
                }
                let len = u32::from_le_bytes(l) as usize;
                if len > max {
                    return Err(Error::MessageTooLarge { len, max }.into());
                }
                buf.resize(len, 0);
                input
                    .read_exact(&mut buf)
                    .map_err(|e| Fail(format!("truncated len32 frame: {e}"), 2))?;
            }
            Frame::Raw(chunk) => {
                if chunk > max {
                    return Err(Error::MessageTooLarge { len: chunk, max }.into());
                }
                buf.resize(chunk, 0);
                let mut got = 0;
                while got < chunk {
                    let r = input.read(&mut buf[got..])?;
                    if r == 0 {
                        break;
                    }
                    got += r;
                }
                buf.truncate(got);
                if got == 0 {
                    break;
                }
            }
        }
        *read += 1;
        tx.send_batched(ty, &buf)?;
        n += 1;
        // Publish when stdin has nothing buffered: batches under load, low
        // latency for interactive input.
        if input.buffer().is_empty() {
            tx.flush()?;
        }
    }
    tx.flush()?;
    Ok(n)
}

fn write_message(
    out: &mut impl Write,
    m: &secure_ipc::Message<'_>,
    frame: Frame,
) -> io::Result<()> {
    match frame {
        Frame::Lines => {
            out.write_all(m.payload())?;
            out.write_all(b"\n")
        }
        Frame::Len32 => {
            out.write_all(&(m.payload().len() as u32).to_le_bytes())?;
            out.write_all(m.payload())
        }
        Frame::Raw(_) => out.write_all(m.payload()),
    }
}

/// messages -> stdout until the peer hangs up.
fn pump_stdout(rx: &mut Receiver, frame: Frame) -> Result<u64, Fail> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut n = 0u64;
    loop {
        // Drain without flushing; flush only before sleeping.
        match rx.try_recv() {
            Ok(Some(m)) => {
                write_message(&mut out, &m, frame)?;
                n += 1;
                continue;
            }
            Ok(None) => {}
            Err(Error::PeerClosed) => break,
            Err(e) => return Err(e.into()),
        }
        out.flush()?;
        match rx.recv() {
            Ok(m) => {
                write_message(&mut out, &m, frame)?;
                n += 1;
            }
            Err(Error::PeerClosed) => break,
            Err(e) => return Err(e.into()),
        }
    }
    out.flush()?;
    Ok(n)
}

fn run_stream(tx: Sender, mut rx: Receiver, a: &Args) -> Result<(), Fail> {
    let frame = frame_of(a)?;
    let ty: u16 = a.num("type", 0)?;
    let (send, recv) = match (a.flag("send-only"), a.flag("recv-only")) {
        (true, true) => return Err(usage("--send-only and --recv-only exclude each other")),
        (s, r) => (!r, !s),
    };
    if !send {
        // Never touch stdin (a backgrounded job must not stop on SIGTTIN):
        // this direction closes at once.
        drop(tx);
        return pump_stdout(&mut rx, frame).map(|_| ());
    }
    let pump = std::thread::spawn(move || pump_stdin(tx, frame, ty));
    // Done when both directions are: the peer hung up its side, and stdin
    // reached EOF and the peer took all of it (or losing input failed).
    let got = if recv {
        pump_stdout(&mut rx, frame).map(|_| ())
    } else {
        Ok(())
    };
    let sent = pump
        .join()
        .map_err(|_| Fail("stdin thread panicked".into(), 1))?;
    sent?;
    got
}

fn cmd_listen(a: &Args) -> Result<(), Fail> {
    a.check_known(&[
        "frame",
        "type",
        "backend",
        "socket-dir",
        "psk-file",
        "wait",
        "slots",
        "slot-size",
        "uid",
        "gid",
        "pidns",
        "identity-pub",
        "identity-file",
        "send-only",
        "recv-only",
    ])?;
    let name = a.name()?;
    let policy = PeerPolicy {
        uid: match a.get("uid") {
            None | Some("any") => None,
            Some(_) => Some(a.num("uid", 0)?),
        },
        gid: a.get("gid").map(|_| a.num("gid", 0)).transpose()?,
        pidns: a.get("pidns").map(open_pidns).transpose()?,
        identity_pub: a
            .get("identity-pub")
            .map(|h| parse_hex32("identity-pub", h))
            .transpose()?,
    };
    let mut o = common_options(a)?
        .slots(a.num("slots", 256)?)
        .slot_size(a.num("slot-size", 4096)?);
    // No policy option: the backend's default (userspace: same uid only);
    // `--uid any` admits every uid.
    if a.get("uid") == Some("any") {
        o = o.policy(PeerPolicy {
            uid: None,
            ..policy
        });
    } else if policy != PeerPolicy::default() {
        o = o.policy(policy);
    }
    let (tx, rx) = Channel::create(name, &o)?;
    eprintln!(
        "sipc: channel {name} created ({:?} backend); waiting for a peer",
        resolve_backend(o.selected_backend())
    );
    run_stream(tx, rx, a)
}

fn cmd_connect(a: &Args) -> Result<(), Fail> {
    a.check_known(&[
        "frame",
        "type",
        "backend",
        "socket-dir",
        "psk-file",
        "wait",
        "identity-file",
        "owner-uid",
        "owner-identity-pub",
        "send-only",
        "recv-only",
    ])?;
    let name = a.name()?;
    let mut o = common_options(a)?;
    let owner = OwnerPolicy {
        uid: match a.get("owner-uid") {
            Some("any") => None,
            Some(_) => Some(a.num("owner-uid", 0)?),
            None => OwnerPolicy::same_user().uid,
        },
        identity_pub: a
            .get("owner-identity-pub")
            .map(|h| parse_hex32("owner-identity-pub", h))
            .transpose()?,
    };
    o = o.owner_policy(owner);
    let (tx, rx) = Channel::attach(name, &o)?;
    run_stream(tx, rx, a)
}

fn cmd_stats(a: &Args) -> Result<(), Fail> {
    a.check_known(&["socket-dir", "backend"])?;
    let name = a.name()?;
    let mut o = Options::new();
    if let Some(d) = a.get("socket-dir") {
        o = o.socket_dir(PathBuf::from(d));
    }
    if backend_of(a)? == Backend::Kernel {
        return Err(Fail(
            "kernel channels keep counters per endpoint: read them with Sender::stats() in the owning process".into(),
            2,
        ));
    }
    let s = secure_ipc::userspace::query_stats(name, &o)?;
    println!("channel {name} (owner side, userspace backend)");
    let rows: [(&str, u64); 13] = [
        ("sealed messages", s.sealed_msgs),
        ("sealed bytes", s.sealed_bytes),
        ("opened messages", s.opened_msgs),
        ("opened bytes", s.opened_bytes),
        ("authentication failures", s.auth_failures),
        ("ring-full events", s.full_events),
        ("doorbells signalled", s.doorbells_signalled),
        ("doorbells suppressed", s.doorbells_suppressed),
        ("rekeys", s.rekeys),
        ("outgoing ring fill", s.tx_fill as u64),
        ("incoming ring fill", s.rx_fill as u64),
        ("sending epoch", s.tx_epoch as u64),
        ("receiving epoch", s.rx_epoch as u64),
    ];
    for (k, v) in rows {
        println!("  {k:<24} {v:>16}");
    }
    Ok(())
}

fn cmd_info(a: &Args) -> Result<(), Fail> {
    a.check_known(&[])?;
    use secure_ipc_ring::abi as k;
    let loaded = std::path::Path::new("/sys/module/secure_ipc").exists();
    println!(
        "kernel module secure_ipc: {}",
        if loaded { "loaded" } else { "not loaded" }
    );
    println!(
        "device {}: {}",
        secure_ipc::DEVICE_PATH,
        if std::path::Path::new(secure_ipc::DEVICE_PATH).exists() {
            "present"
        } else {
            "absent"
        }
    );
    match secure_ipc::kernel_info() {
        Ok(i) => {
            println!(
                "  ABI version          {} (this tool: {})",
                i.abi_version,
                k::SIPC_ABI_VERSION
            );
            let names = [
                (k::SIPC_FEAT_MMAP_RINGS, "mmap-rings"),
                (k::SIPC_FEAT_READ_WRITE, "read-write"),
                (k::SIPC_FEAT_DOORBELL, "doorbell"),
                (k::SIPC_FEAT_X25519, "x25519"),
                (k::SIPC_FEAT_IDENTITY, "identity"),
                (k::SIPC_FEAT_PSK, "psk"),
                (k::SIPC_FEAT_REKEY, "rekey"),
                (k::SIPC_FEAT_TEST_HOOKS, "TEST-HOOKS"),
            ];
            let f: Vec<&str> = names
                .iter()
                .filter(|(b, _)| i.features & b != 0)
                .map(|(_, n)| *n)
                .collect();
            println!("  features             {}", f.join(" "));
            println!(
                "  slot size            {} .. {} bytes",
                i.min_slot_size, i.max_slot_size
            );
            println!(
                "  slots per ring       {} .. {}",
                i.min_entries, i.max_entries
            );
            println!(
                "  channels             {} of {}",
                i.nr_channels, i.max_channels
            );
            println!("  bytes per channel    {}", i.max_channel_bytes);
            println!("  records per epoch    {}", i.rekey_records);
        }
        Err(e) => println!("  {e}"),
    }
    println!("userspace backend: available (memfd + Unix socket rendezvous)");
    println!(
        "  slot size            {} .. {} bytes; largest message = slot size - 56",
        k::SIPC_MIN_SLOT_SIZE.max(128),
        k::SIPC_MAX_SLOT_SIZE
    );
    println!(
        "  records per epoch    {}",
        secure_ipc::DEFAULT_REKEY_RECORDS
    );
    println!(
        "--backend auto selects: {:?}",
        resolve_backend(Backend::Auto)
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// bench
// ---------------------------------------------------------------------------

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn cmd_bench(a: &Args) -> Result<(), Fail> {
    a.check_known(&["size", "batch", "count", "backend", "wait"])?;
    let size: usize = a.num("size", 64)?;
    let batch: u64 = a.num::<u64>("batch", 32)?.max(1);
    let count: u64 = a.num("count", 1_000_000)?;
    let wait = wait_of(a)?;
    let slot_size = (size + 56).next_power_of_two().max(128) as u32;
    let name = format!("sipc-bench-{}", std::process::id());
    let o = Options::new()
        .backend(backend_of(a)?)
        .wait(wait)
        .slots(1024)
        .slot_size(slot_size);
    let backend = resolve_backend(o.selected_backend());
    let (mut otx, mut orx) = Channel::create(&name, &o)?;
    let (mut ptx, mut prx) = Channel::attach(&name, &o)?;
    eprintln!("sipc bench: {backend:?} backend, {size} B messages, batch {batch}, {count} messages; two threads in one process");

    // Throughput: owner thread sends, this thread receives.
    let payload = vec![0xA5u8; size];
    let sender = std::thread::spawn(move || -> Result<Sender, Error> {
        let mut sent = 0;
        while sent < count {
            let n = batch.min(count - sent);
            for _ in 0..n {
                otx.send_batched(1, &payload)?;
            }
            otx.flush()?;
            sent += n;
        }
        Ok(otx)
    });
    let t0 = Instant::now();
    let mut last = t0;
    let mut bytes = 0u64;
    for i in 0..count {
        let m = prx.recv()?;
        bytes += m.payload().len() as u64;
        drop(m);
        if last.elapsed() >= Duration::from_millis(500) {
            last = Instant::now();
            let s = t0.elapsed().as_secs_f64();
            eprint!(
                "\r  {i:>10} / {count} messages, {:>12.0} msg/s",
                i as f64 / s
            );
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let mut otx = sender
        .join()
        .map_err(|_| Fail("sender thread panicked".into(), 1))??;
    eprintln!("\r  {count:>10} / {count} messages, done{:30}", "");

    // Latency: 20k ping-pongs of `size` bytes; one-way = round trip / 2.
    let rounds = 20_000usize.min(count as usize).max(100);
    let echo = std::thread::spawn(move || -> Result<(), Error> {
        let mut buf = vec![0u8; size];
        for _ in 0..rounds {
            let m = orx.recv()?;
            let n = m.payload().len();
            buf[..n].copy_from_slice(m.payload());
            drop(m);
            otx.send(&buf[..n])?;
        }
        Ok(())
    });
    let ping = vec![0x5Au8; size];
    let mut rtt = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        ptx.send(&ping)?;
        let m = prx.recv()?;
        drop(m);
        rtt.push(t.elapsed().as_nanos() as u64 / 2);
    }
    echo.join()
        .map_err(|_| Fail("echo thread panicked".into(), 1))??;
    rtt.sort_unstable();

    println!("| backend | size | batch | messages | seconds | msg/s | MB/s | one-way p50 | p99 | p99.9 |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {backend:?} | {size} | {batch} | {count} | {secs:.3} | {:.0} | {:.1} | {:.1} us | {:.1} us | {:.1} us |",
        count as f64 / secs,
        bytes as f64 / secs / 1e6,
        percentile(&rtt, 0.5) as f64 / 1e3,
        percentile(&rtt, 0.99) as f64 / 1e3,
        percentile(&rtt, 0.999) as f64 / 1e3,
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// demo
// ---------------------------------------------------------------------------

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

fn cmd_demo(a: &Args) -> Result<(), Fail> {
    a.check_known(&["seconds", "rate", "backend"])?;
    let backend = match backend_of(a)? {
        Backend::Auto => Backend::Userspace,
        b => b,
    };
    let backend_arg = if backend == Backend::Kernel {
        "kernel"
    } else {
        "userspace"
    };
    let seconds: u64 = a.num("seconds", 10)?;
    let rate: u64 = a.num("rate", 8000)?;
    if rate == 0 || rate > 100_000 {
        return Err(usage("--rate must be 1..=100000"));
    }
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
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--user", "--map-root-user", "--pid", "--mount", "--fork"])
        .arg(&exe);
    cmd.args([
        "__demo-container",
        &name,
        &seconds.to_string(),
        &rate.to_string(),
        backend_arg,
    ]);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let (mut child, namespaced) = match cmd.spawn() {
        Ok(c) => (c, true),
        Err(e) => {
            eprintln!("sipc demo: cannot run unshare ({e}); the container runs without namespaces");
            let c = std::process::Command::new(&exe)
                .args([
                    "__demo-container",
                    &name,
                    &seconds.to_string(),
                    &rate.to_string(),
                    backend_arg,
                ])
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
        PidNamespace::open(&format!("/proc/{}/ns/pid_for_children", child.id())).ok()
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
        tx.send_with_type(IMU_TYPE, &ImuSample::synth(seq, rate).encode())?;
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
fn demo_container(name: &str, seconds: u64, rate: u64, backend: Backend) -> Result<(), Fail> {
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
    let mut lat_all: Vec<u64> = Vec::with_capacity(total as usize);
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

fn real_main() -> Result<(), Fail> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = argv.first() else {
        print!("{HELP}");
        return Err(Fail("no command given".into(), 2));
    };
    let rest = &argv[1..];
    if matches!(cmd.as_str(), "-V" | "--version" | "version") {
        println!("sipc {}", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    if matches!(cmd.as_str(), "-h" | "--help" | "help")
        || rest.iter().any(|a| a == "--help" || a == "-h")
    {
        print!("{HELP}");
        return Ok(());
    }
    match cmd.as_str() {
        "listen" => cmd_listen(&Args::parse(rest)?),
        "connect" => cmd_connect(&Args::parse(rest)?),
        "stats" => cmd_stats(&Args::parse(rest)?),
        "bench" => cmd_bench(&Args::parse(rest)?),
        "info" => cmd_info(&Args::parse(rest)?),
        "demo" => cmd_demo(&Args::parse(rest)?),
        "__demo-container" => match rest {
            [name, secs, rate, backend] => demo_container(
                name,
                secs.parse().map_err(|_| usage("seconds"))?,
                rate.parse().map_err(|_| usage("rate"))?,
                if backend == "kernel" {
                    Backend::Kernel
                } else {
                    Backend::Userspace
                },
            ),
            _ => Err(usage("internal command")),
        },
        other => Err(usage(format!("unknown command '{other}'"))),
    }
}

fn main() -> ExitCode {
    // Like any shell tool, die quietly of SIGPIPE when stdout's reader goes
    // (`sipc listen x | head -1`). Rust ignores it by default, which turns
    // that into an error message; every socket write here passes
    // MSG_NOSIGNAL, so only stdout/stderr can raise it.
    // SAFETY: setting a signal's disposition to its default is always sound.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(msg, code)) => {
            eprintln!("sipc: {msg}");
            ExitCode::from(code)
        }
    }
}

/// `--pidns PID` (that process's pid namespace) or `--pidns PATH` (an nsfs file).
fn open_pidns(v: &str) -> Result<PidNamespace, Error> {
    match v.parse::<u32>() {
        Ok(pid) => PidNamespace::of_pid(pid),
        Err(_) => PidNamespace::open(v),
    }
}
