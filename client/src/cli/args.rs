//! The `sipc` argument parser: argv to a [`Command`], with no side effect
//! (the binary reads key files and opens namespaces after parsing), and
//! back: [`Command::to_args`] gives an argv that parses to the same
//! command. The demo starts its container process with it; the `cli_args`
//! fuzz target checks the round trip on every argv it parses.

use super::frame::Frame;
use crate::{Backend, WaitPolicy};
use secure_ipc_ring::abi::SIPC_MAX_SLOT_SIZE;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

/// What was wrong with the command line (exit status 2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Usage(pub String);

fn usage(msg: impl Into<String>) -> Usage {
    Usage(msg.into())
}

/// Receive wait policy, as `--wait` names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Wait {
    /// `busy`: spin, never sleep.
    Busy,
    /// `block`: sleep on the doorbell at once.
    Block,
    /// `spin` (default): spin a while, then sleep.
    #[default]
    Spin,
}

impl Wait {
    /// The client API's policy.
    pub fn policy(self) -> WaitPolicy {
        match self {
            Wait::Busy => WaitPolicy::BusyPoll,
            Wait::Block => WaitPolicy::Block,
            Wait::Spin => WaitPolicy::default(),
        }
    }
    fn name(self) -> &'static str {
        match self {
            Wait::Busy => "busy",
            Wait::Block => "block",
            Wait::Spin => "spin",
        }
    }
}

/// A uid requirement: the backend's default (this uid), any uid, or one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UidRule {
    /// Not given: the backend's default.
    #[default]
    Default,
    /// `any`.
    Any,
    /// A number.
    Uid(u32),
}

/// `--pidns`: the pid namespace of a process, or an nsfs file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PidnsArg {
    /// A number: `/proc/PID/ns/pid`.
    Pid(u32),
    /// Anything else: a path.
    Path(PathBuf),
}

/// Which directions `listen`/`connect` carry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Direction {
    /// stdin to the peer and the peer to stdout.
    #[default]
    Both,
    /// `--send-only`: stdin to the peer; nothing is read from the channel.
    SendOnly,
    /// `--recv-only`: the peer to stdout; stdin is never read.
    RecvOnly,
}

/// Options `listen` and `connect` share.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stream {
    /// `--backend`.
    pub backend: Backend,
    /// `--socket-dir`.
    pub socket_dir: Option<PathBuf>,
    /// `--psk-file`.
    pub psk_file: Option<PathBuf>,
    /// `--identity-file`.
    pub identity_file: Option<PathBuf>,
    /// `--wait`.
    pub wait: Wait,
    /// `--frame`.
    pub frame: Frame,
    /// `--type`.
    pub msg_type: u16,
    /// `--send-only` / `--recv-only`.
    pub direction: Direction,
}

/// `sipc listen NAME ...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    /// The channel.
    pub name: String,
    /// Shared stream options.
    pub stream: Stream,
    /// `--slots`.
    pub slots: u32,
    /// `--slot-size`.
    pub slot_size: u32,
    /// `--uid`.
    pub uid: UidRule,
    /// `--gid`.
    pub gid: Option<u32>,
    /// `--pidns`.
    pub pidns: Option<PidnsArg>,
    /// `--identity-pub`.
    pub identity_pub: Option<[u8; 32]>,
}

/// `sipc connect NAME ...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect {
    /// The channel.
    pub name: String,
    /// Shared stream options.
    pub stream: Stream,
    /// `--owner-uid`.
    pub owner_uid: UidRule,
    /// `--owner-identity-pub`.
    pub owner_identity_pub: Option<[u8; 32]>,
}

/// `sipc stats NAME ...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    /// The channel.
    pub name: String,
    /// `--backend`.
    pub backend: Backend,
    /// `--socket-dir`.
    pub socket_dir: Option<PathBuf>,
}

/// `sipc bench ...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bench {
    /// `--size`: payload bytes (at most a 64 KiB slot's message).
    pub size: usize,
    /// `--batch`: messages per publish (at least 1).
    pub batch: u64,
    /// `--count`: messages of the throughput run.
    pub count: u64,
    /// `--backend`.
    pub backend: Backend,
    /// `--wait`.
    pub wait: Wait,
}

/// `sipc demo ...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Demo {
    /// `--seconds` (1..=3600).
    pub seconds: u64,
    /// `--rate` in Hz (1..=100000).
    pub rate: u64,
    /// `--backend` (auto means userspace here).
    pub backend: Backend,
}

/// The demo's container side (a hidden command the demo starts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoContainer {
    /// The channel.
    pub name: String,
    /// As [`Demo::seconds`].
    pub seconds: u64,
    /// As [`Demo::rate`].
    pub rate: u64,
    /// Kernel or userspace.
    pub backend: Backend,
}

/// What `sipc waydroid` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaydroidAction {
    /// `install`: write the boot hook into Waydroid's vendor overlay.
    Install,
    /// `status`: what is present and what is missing.
    Status,
    /// `uninstall`: remove what `install` wrote.
    Uninstall,
}

impl WaydroidAction {
    fn name(self) -> &'static str {
        match self {
            WaydroidAction::Install => "install",
            WaydroidAction::Status => "status",
            WaydroidAction::Uninstall => "uninstall",
        }
    }
}

/// `sipc waydroid install|status|uninstall ...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waydroid {
    /// The action.
    pub action: WaydroidAction,
    /// `--root`: the file system root the paths are under (default `/`).
    pub root: PathBuf,
    /// `--gid` (install only): the node's group; default: the `secure-ipc`
    /// group of ROOT/etc/group.
    pub gid: Option<u32>,
}

/// A parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `help`, `-h`, `--help` (anywhere after the command too).
    Help,
    /// `--version`, `-V`, `version`.
    Version,
    /// `listen`.
    Listen(Listen),
    /// `connect`.
    Connect(Connect),
    /// `stats`.
    Stats(Stats),
    /// `bench`.
    Bench(Bench),
    /// `info`.
    Info,
    /// `demo`.
    Demo(Demo),
    /// `__demo-container NAME SECONDS RATE BACKEND`.
    DemoContainer(DemoContainer),
    /// `waydroid`.
    Waydroid(Waydroid),
}

/// The hidden command of the demo's container process.
const DEMO_CONTAINER: &str = "__demo-container";
/// The largest payload `bench --size` takes (a 64 KiB slot less the record
/// overhead).
pub const BENCH_MAX_SIZE: usize = SIPC_MAX_SLOT_SIZE as usize - 56;
const DEMO_MAX_SECONDS: u64 = 3600;
const DEMO_MAX_RATE: u64 = 100_000;

/// Options that take no value.
const FLAGS: &[&str] = &["send-only", "recv-only"];
const STREAM_OPTS: &[&str] = &[
    "frame",
    "type",
    "backend",
    "socket-dir",
    "psk-file",
    "wait",
    "identity-file",
    "send-only",
    "recv-only",
];
const LISTEN_OPTS: &[&str] = &["slots", "slot-size", "uid", "gid", "pidns", "identity-pub"];
const CONNECT_OPTS: &[&str] = &["owner-uid", "owner-identity-pub"];

/// One command's `--key value` options (the last of a key counts) and
/// positional arguments.
struct Opts {
    pos: Vec<OsString>,
    opts: Vec<(String, Option<OsString>)>,
}

impl Opts {
    fn parse(raw: &[OsString], known: &[&[&str]]) -> Result<Self, Usage> {
        let is_known = |k: &str| known.iter().any(|set| set.contains(&k));
        let mut pos = Vec::new();
        let mut opts = Vec::new();
        let mut it = raw.iter();
        while let Some(a) = it.next() {
            let Some(rest) = a.as_bytes().strip_prefix(b"--") else {
                pos.push(a.clone());
                continue;
            };
            let (k, inline) = match rest.iter().position(|&b| b == b'=') {
                Some(i) => (&rest[..i], Some(OsStr::from_bytes(&rest[i + 1..]))),
                None => (rest, None),
            };
            let k = std::str::from_utf8(k)
                .ok()
                .filter(|k| is_known(k))
                .ok_or_else(|| usage(format!("unknown option --{}", String::from_utf8_lossy(k))))?;
            if FLAGS.contains(&k) {
                if inline.is_some() {
                    return Err(usage(format!("--{k} takes no value")));
                }
                opts.push((k.to_string(), None));
                continue;
            }
            let v = match inline {
                Some(v) => v.to_os_string(),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| usage(format!("--{k} needs a value")))?,
            };
            opts.push((k.to_string(), Some(v)));
        }
        Ok(Self { pos, opts })
    }

    fn os(&self, k: &str) -> Option<&OsStr> {
        self.opts
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .and_then(|(_, v)| v.as_deref())
    }

    fn str(&self, k: &str) -> Result<Option<&str>, Usage> {
        self.os(k)
            .map(|v| {
                v.to_str().ok_or_else(|| {
                    usage(format!(
                        "--{k}: '{}' is not valid UTF-8",
                        v.to_string_lossy()
                    ))
                })
            })
            .transpose()
    }

    fn path(&self, k: &str) -> Option<PathBuf> {
        self.os(k).map(PathBuf::from)
    }

    fn num<T: std::str::FromStr>(&self, k: &str, default: T) -> Result<T, Usage> {
        match self.str(k)? {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| usage(format!("--{k}: '{v}' is not a valid number"))),
        }
    }

    fn flag(&self, k: &str) -> bool {
        self.opts.iter().any(|(key, _)| key == k)
    }

    fn no_positional(&self) -> Result<(), Usage> {
        match self.pos.first() {
            None => Ok(()),
            Some(p) => Err(usage(format!(
                "unexpected argument '{}'",
                p.to_string_lossy()
            ))),
        }
    }

    fn name(&self) -> Result<String, Usage> {
        match self.pos.as_slice() {
            [n] => n
                .to_str()
                .map(str::to_string)
                .ok_or_else(|| usage("channel NAME is not valid UTF-8")),
            [] => Err(usage("missing channel NAME")),
            _ => Err(usage("too many arguments")),
        }
    }

    fn backend(&self) -> Result<Backend, Usage> {
        parse_backend(self.str("backend")?.unwrap_or("auto"))
    }

    fn wait(&self) -> Result<Wait, Usage> {
        match self.str("wait")?.unwrap_or("spin") {
            "busy" => Ok(Wait::Busy),
            "block" => Ok(Wait::Block),
            "spin" => Ok(Wait::Spin),
            w => Err(usage(format!("--wait: '{w}' is not busy, block or spin"))),
        }
    }

    fn uid_rule(&self, k: &str) -> Result<UidRule, Usage> {
        match self.str(k)? {
            None => Ok(UidRule::Default),
            Some("any") => Ok(UidRule::Any),
            Some(_) => Ok(UidRule::Uid(self.num(k, 0)?)),
        }
    }

    fn hex32(&self, k: &str) -> Result<Option<[u8; 32]>, Usage> {
        self.str(k)?.map(|h| parse_hex32(k, h)).transpose()
    }

    fn stream(&self) -> Result<Stream, Usage> {
        let direction = match (self.flag("send-only"), self.flag("recv-only")) {
            (true, true) => return Err(usage("--send-only and --recv-only exclude each other")),
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Both,
        };
        let frame = match self.str("frame")? {
            None => Frame::Lines,
            Some(f) => Frame::parse(f)
                .ok_or_else(|| usage(format!("--frame: '{f}' is not lines, len32 or raw:N")))?,
        };
        Ok(Stream {
            backend: self.backend()?,
            socket_dir: self.path("socket-dir"),
            psk_file: self.path("psk-file"),
            identity_file: self.path("identity-file"),
            wait: self.wait()?,
            frame,
            msg_type: self.num("type", 0)?,
            direction,
        })
    }
}

fn parse_backend(b: &str) -> Result<Backend, Usage> {
    match b {
        "auto" => Ok(Backend::Auto),
        "kernel" => Ok(Backend::Kernel),
        "userspace" => Ok(Backend::Userspace),
        b => Err(usage(format!(
            "--backend: '{b}' is not auto, kernel or userspace"
        ))),
    }
}

fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Auto => "auto",
        Backend::Kernel => "kernel",
        Backend::Userspace => "userspace",
    }
}

/// 64 hex digits; anything else (including non-ASCII) is a usage error.
pub fn parse_hex32(opt: &str, s: &str) -> Result<[u8; 32], Usage> {
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

fn hex(b: &[u8; 32]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn number<T: std::str::FromStr>(what: &str, v: &OsStr) -> Result<T, Usage> {
    v.to_str().and_then(|s| s.parse().ok()).ok_or_else(|| {
        usage(format!(
            "{what}: '{}' is not a valid number",
            v.to_string_lossy()
        ))
    })
}

/// Parses the arguments after the program name.
pub fn parse(argv: &[OsString]) -> Result<Command, Usage> {
    let Some(cmd) = argv.first() else {
        return Err(usage("no command given"));
    };
    let rest = &argv[1..];
    let cmd = cmd.to_str().unwrap_or("");
    if matches!(cmd, "-V" | "--version" | "version") {
        return Ok(Command::Version);
    }
    if matches!(cmd, "-h" | "--help" | "help") || rest.iter().any(|a| a == "--help" || a == "-h") {
        return Ok(Command::Help);
    }
    match cmd {
        "listen" => {
            let o = Opts::parse(rest, &[STREAM_OPTS, LISTEN_OPTS])?;
            Ok(Command::Listen(Listen {
                name: o.name()?,
                stream: o.stream()?,
                slots: o.num("slots", 256)?,
                slot_size: o.num("slot-size", 4096)?,
                uid: o.uid_rule("uid")?,
                gid: o.str("gid")?.map(|_| o.num("gid", 0)).transpose()?,
                pidns: o
                    .os("pidns")
                    .map(|v| match v.to_str().map(str::parse::<u32>) {
                        Some(Ok(pid)) => PidnsArg::Pid(pid),
                        _ => PidnsArg::Path(PathBuf::from(v)),
                    }),
                identity_pub: o.hex32("identity-pub")?,
            }))
        }
        "connect" => {
            let o = Opts::parse(rest, &[STREAM_OPTS, CONNECT_OPTS])?;
            Ok(Command::Connect(Connect {
                name: o.name()?,
                stream: o.stream()?,
                owner_uid: o.uid_rule("owner-uid")?,
                owner_identity_pub: o.hex32("owner-identity-pub")?,
            }))
        }
        "stats" => {
            let o = Opts::parse(rest, &[&["socket-dir", "backend"]])?;
            Ok(Command::Stats(Stats {
                name: o.name()?,
                backend: o.backend()?,
                socket_dir: o.path("socket-dir"),
            }))
        }
        "bench" => {
            let o = Opts::parse(rest, &[&["size", "batch", "count", "backend", "wait"]])?;
            o.no_positional()?;
            let size = o.num("size", 64)?;
            if size > BENCH_MAX_SIZE {
                return Err(usage(format!(
                    "--size: at most {BENCH_MAX_SIZE} bytes (a 64 KiB slot)"
                )));
            }
            Ok(Command::Bench(Bench {
                size,
                batch: o.num::<u64>("batch", 32)?.max(1),
                count: o.num("count", 1_000_000)?,
                backend: o.backend()?,
                wait: o.wait()?,
            }))
        }
        "info" => {
            let o = Opts::parse(rest, &[])?;
            o.no_positional()?;
            Ok(Command::Info)
        }
        "demo" => {
            let o = Opts::parse(rest, &[&["seconds", "rate", "backend"]])?;
            o.no_positional()?;
            let d = Demo {
                seconds: o.num("seconds", 10)?,
                rate: o.num("rate", 8000)?,
                backend: o.backend()?,
            };
            check_demo(d.seconds, d.rate)?;
            Ok(Command::Demo(d))
        }
        "waydroid" => {
            let o = Opts::parse(rest, &[&["root", "gid"]])?;
            let action = match o.pos.as_slice() {
                [a] => match a.to_str() {
                    Some("install") => WaydroidAction::Install,
                    Some("status") => WaydroidAction::Status,
                    Some("uninstall") => WaydroidAction::Uninstall,
                    _ => {
                        return Err(usage(format!(
                            "waydroid: '{}' is not install, status or uninstall",
                            a.to_string_lossy()
                        )))
                    }
                },
                [] => return Err(usage("waydroid: missing install, status or uninstall")),
                _ => return Err(usage("waydroid: too many arguments")),
            };
            let gid = o.str("gid")?.map(|_| o.num("gid", 0)).transpose()?;
            if gid.is_some() && action != WaydroidAction::Install {
                return Err(usage("waydroid: --gid is an install option"));
            }
            let root = o.path("root").unwrap_or_else(|| PathBuf::from("/"));
            if root.as_os_str().is_empty() {
                return Err(usage("waydroid: --root needs a directory"));
            }
            Ok(Command::Waydroid(Waydroid { action, root, gid }))
        }
        DEMO_CONTAINER => match rest {
            [name, secs, rate, backend] => {
                let d = DemoContainer {
                    name: name
                        .to_str()
                        .ok_or_else(|| usage("internal command: NAME"))?
                        .to_string(),
                    seconds: number("internal command: seconds", secs)?,
                    rate: number("internal command: rate", rate)?,
                    backend: match backend.to_str() {
                        Some("kernel") => Backend::Kernel,
                        Some("userspace") => Backend::Userspace,
                        _ => return Err(usage("internal command: backend")),
                    },
                };
                check_demo(d.seconds, d.rate)?;
                Ok(Command::DemoContainer(d))
            }
            _ => Err(usage("internal command")),
        },
        _ => Err(usage(format!(
            "unknown command '{}'",
            argv[0].to_string_lossy()
        ))),
    }
}

fn check_demo(seconds: u64, rate: u64) -> Result<(), Usage> {
    if !(1..=DEMO_MAX_RATE).contains(&rate) {
        return Err(usage(format!("--rate must be 1..={DEMO_MAX_RATE}")));
    }
    if !(1..=DEMO_MAX_SECONDS).contains(&seconds) {
        return Err(usage(format!("--seconds must be 1..={DEMO_MAX_SECONDS}")));
    }
    Ok(())
}

/// Builds an argv one `--key=value` at a time.
#[derive(Default)]
struct Argv(Vec<OsString>);

impl Argv {
    fn word(&mut self, w: impl Into<OsString>) -> &mut Self {
        self.0.push(w.into());
        self
    }
    fn opt(&mut self, k: &str, v: impl AsRef<OsStr>) -> &mut Self {
        let mut a = OsString::from(format!("--{k}=")).into_vec();
        a.extend_from_slice(v.as_ref().as_bytes());
        self.0.push(OsString::from_vec(a));
        self
    }
    fn opt_some(&mut self, k: &str, v: Option<impl AsRef<OsStr>>) -> &mut Self {
        if let Some(v) = v {
            self.opt(k, v);
        }
        self
    }
    fn uid(&mut self, k: &str, r: UidRule) -> &mut Self {
        match r {
            UidRule::Default => self,
            UidRule::Any => self.opt(k, "any"),
            UidRule::Uid(u) => self.opt(k, u.to_string()),
        }
    }
    fn stream(&mut self, s: &Stream) -> &mut Self {
        self.opt("backend", backend_name(s.backend))
            .opt_some("socket-dir", s.socket_dir.as_ref())
            .opt_some("psk-file", s.psk_file.as_ref())
            .opt_some("identity-file", s.identity_file.as_ref())
            .opt("wait", s.wait.name())
            .opt("frame", s.frame.to_string())
            .opt("type", s.msg_type.to_string());
        match s.direction {
            Direction::Both => self,
            Direction::SendOnly => self.word("--send-only"),
            Direction::RecvOnly => self.word("--recv-only"),
        }
    }
}

impl Command {
    /// An argv (without the program name) that [`parse`] turns back into
    /// this command.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut a = Argv::default();
        match self {
            Command::Help => {
                a.word("help");
            }
            Command::Version => {
                a.word("--version");
            }
            Command::Listen(l) => {
                a.word("listen")
                    .word(&l.name)
                    .stream(&l.stream)
                    .opt("slots", l.slots.to_string())
                    .opt("slot-size", l.slot_size.to_string())
                    .uid("uid", l.uid)
                    .opt_some("gid", l.gid.map(|g| g.to_string()))
                    .opt_some(
                        "pidns",
                        l.pidns.as_ref().map(|p| match p {
                            PidnsArg::Pid(pid) => OsString::from(pid.to_string()),
                            PidnsArg::Path(path) => path.clone().into_os_string(),
                        }),
                    )
                    .opt_some("identity-pub", l.identity_pub.as_ref().map(hex));
            }
            Command::Connect(c) => {
                a.word("connect")
                    .word(&c.name)
                    .stream(&c.stream)
                    .uid("owner-uid", c.owner_uid)
                    .opt_some("owner-identity-pub", c.owner_identity_pub.as_ref().map(hex));
            }
            Command::Stats(s) => {
                a.word("stats")
                    .word(&s.name)
                    .opt("backend", backend_name(s.backend))
                    .opt_some("socket-dir", s.socket_dir.as_ref());
            }
            Command::Bench(b) => {
                a.word("bench")
                    .opt("size", b.size.to_string())
                    .opt("batch", b.batch.to_string())
                    .opt("count", b.count.to_string())
                    .opt("backend", backend_name(b.backend))
                    .opt("wait", b.wait.name());
            }
            Command::Info => {
                a.word("info");
            }
            Command::Demo(d) => {
                a.word("demo")
                    .opt("seconds", d.seconds.to_string())
                    .opt("rate", d.rate.to_string())
                    .opt("backend", backend_name(d.backend));
            }
            Command::DemoContainer(d) => {
                a.word(DEMO_CONTAINER)
                    .word(&d.name)
                    .word(d.seconds.to_string())
                    .word(d.rate.to_string())
                    .word(backend_name(d.backend));
            }
            Command::Waydroid(w) => {
                a.word("waydroid")
                    .word(w.action.name())
                    .opt("root", &w.root)
                    .opt_some("gid", w.gid.map(|g| g.to_string()));
            }
        }
        a.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    fn round_trips(a: &[&str]) -> Command {
        let c = parse(&argv(a)).unwrap_or_else(|e| panic!("{a:?}: {e:?}"));
        assert_eq!(parse(&c.to_args()), Ok(c.clone()), "{a:?}");
        c
    }

    #[test]
    fn listen_options_parse_and_render_back() {
        let c = round_trips(&[
            "listen",
            "cam0",
            "--frame",
            "raw:4000",
            "--uid=any",
            "--gid",
            "27",
            "--pidns",
            "/run/ns",
            "--recv-only",
            "--identity-pub",
            &"ab".repeat(32),
        ]);
        let Command::Listen(l) = c else {
            panic!("{c:?}")
        };
        assert_eq!(l.name, "cam0");
        assert_eq!(l.stream.frame, Frame::Raw(4000));
        assert_eq!(l.uid, UidRule::Any);
        assert_eq!(l.gid, Some(27));
        assert_eq!(l.pidns, Some(PidnsArg::Path("/run/ns".into())));
        assert_eq!(l.stream.direction, Direction::RecvOnly);
        assert_eq!(l.identity_pub, Some([0xab; 32]));
    }

    #[test]
    fn every_command_renders_back_to_itself() {
        round_trips(&["connect", "x", "--owner-uid", "1000", "--wait", "busy"]);
        round_trips(&["stats", "x", "--socket-dir", "/tmp/a=b"]);
        round_trips(&["bench", "--batch", "0", "--size", "16"]);
        round_trips(&["demo", "--seconds", "2"]);
        round_trips(&["__demo-container", "n", "3", "100", "kernel"]);
        round_trips(&["info"]);
        round_trips(&["version"]);
        round_trips(&["listen", "x", "--help"]);
        round_trips(&["waydroid", "install", "--root", "/tmp/r", "--gid", "990"]);
        round_trips(&["waydroid", "status"]);
        round_trips(&["waydroid", "uninstall", "--root=/x"]);
    }

    #[test]
    fn waydroid_root_defaults_to_slash() {
        let Command::Waydroid(w) = round_trips(&["waydroid", "status"]) else {
            panic!()
        };
        assert_eq!(w.action, WaydroidAction::Status);
        assert_eq!(w.root, PathBuf::from("/"));
        assert_eq!(w.gid, None);
    }

    #[test]
    fn the_last_of_a_repeated_option_counts() {
        let Command::Bench(b) = round_trips(&["bench", "--size", "1", "--size=2"]) else {
            panic!()
        };
        assert_eq!(b.size, 2);
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for a in [
            &["listen"][..],
            &["listen", "a", "b"],
            &["listen", "a", "--bogus", "1"],
            &["listen", "a", "--type"],
            &["listen", "a", "--type", "65536"],
            &["listen", "a", "--send-only=1"],
            &["listen", "a", "--send-only", "--recv-only"],
            &["listen", "a", "--identity-pub", "é"],
            &["connect", "a", "--slots", "4"],
            &["bench", "--size", "65481"],
            &["bench", "extra"],
            &["demo", "--rate", "0"],
            &["demo", "--seconds", "18446744073709551615"],
            &["frobnicate"],
            &["waydroid"],
            &["waydroid", "reinstall"],
            &["waydroid", "install", "status"],
            &["waydroid", "status", "--gid", "990"],
            &["waydroid", "install", "--gid", "x"],
            &["waydroid", "install", "--root="],
            &[],
        ] {
            assert!(parse(&argv(a)).is_err(), "{a:?}");
        }
    }

    #[test]
    fn non_utf8_arguments_are_usage_errors_or_paths() {
        let bad = OsString::from_vec(vec![b'n', 0xff]);
        assert!(parse(&[OsString::from("listen"), bad.clone()]).is_err());
        let mut dir = argv(&["listen", "x", "--socket-dir"]);
        dir.push(bad.clone());
        let c = parse(&dir).unwrap();
        assert_eq!(parse(&c.to_args()), Ok(c));
        assert!(parse(&[bad]).is_err());
    }
}
