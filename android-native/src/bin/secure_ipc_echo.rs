//! secure_ipc_echo: a native service that attaches to a channel and sends
//! every message back unchanged (same type, same payload). The example
//! vendor service of android-native/android/ (init/secure_ipc_echo.rc), and
//! a loopback a host daemon can use to check the path end to end.
//!
//! ```text
//! secure_ipc_echo --channel NAME [--identity KEYFILE | --identity-create KEYFILE]
//!                 [--psk KEYFILE]
//!                 [--backend auto|kernel|userspace] [--socket-dir DIR]
//!                 [--count N] [--wait-ms MS]
//! secure_ipc_echo --identity-create KEYFILE
//! ```
//!
//! It waits up to `--wait-ms` (default: forever) for the owner to create the
//! channel, echoes until the owner closes it (exit 0) or `--count` messages
//! were echoed, and exits 1 with a message on any other error.
//!
//! `--identity-create KEYFILE` uses KEYFILE when it exists and otherwise
//! makes a new key there first (0600, from getrandom) with its public half
//! in KEYFILE.pub (0644) for the host daemon to pin: a key per device made
//! at first boot (init/secure_ipc_echo.rc puts it under /data/vendor),
//! instead of one baked into an image and the same on every device. It
//! prints the public half (hex) on stderr, which goes to the log.

use secure_ipc::{Backend, Channel, Error, IdentityKey, Options};
use std::process::ExitCode;
use std::time::{Duration, Instant};

struct Args {
    /// None: only `--identity-create` was asked for (the first-boot exec).
    channel: Option<String>,
    opts: Options,
    count: Option<u64>,
    wait: Option<Duration>,
}

const USAGE: &str = "usage: secure_ipc_echo --channel NAME [--identity KEYFILE | --identity-create KEYFILE] [--psk KEYFILE] \
[--backend auto|kernel|userspace] [--socket-dir DIR] [--count N] [--wait-ms MS]
       secure_ipc_echo --identity-create KEYFILE";

/// Reads a 32-byte raw key file.
fn key_file(path: &str) -> Result<[u8; 32], String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    bytes.try_into().map_err(|b: Vec<u8>| {
        format!(
            "{path}: a key file holds 32 raw bytes, this one has {}",
            b.len()
        )
    })
}

/// Writes `bytes` to a new file next to `dest`, with a name no other
/// process uses, synced to disk; returns its path.
fn write_private_tmp(dest: &str, mode: u32, bytes: &[u8]) -> std::io::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let tmp = format!(
        "{dest}.tmp.{}.{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let r = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    match r {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// The key in `path`, made first if there is none, and `path.pub` holding
/// its public half.
///
/// Starts that race (init restarting the service, a second instance) agree
/// on one key: each makes its candidate in a file of its own and hard-links
/// it to `path`, which fails for all but the first; the others use the
/// winner's key. `path.pub` is derived from the key on disk and replaced
/// whole (rename), so whatever order the writers come in it ends as the
/// public half of `path`, also after a crash between the two files.
fn key_file_or_create(path: &str) -> Result<[u8; 32], String> {
    let err = |e: std::io::Error| format!("{path}: {e}");
    if !std::path::Path::new(path).exists() {
        let mut key = [0u8; 32];
        // SAFETY: getrandom writes at most key.len() bytes into key.
        let n = unsafe { libc::getrandom(key.as_mut_ptr().cast(), key.len(), 0) };
        if n != key.len() as isize {
            return Err(format!("getrandom: {}", std::io::Error::last_os_error()));
        }
        let tmp = write_private_tmp(path, 0o600, &key).map_err(err)?;
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            // Another start made it first: use its key.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(err(e)),
        }
    }
    let key = key_file(path)?;
    let public = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(key));
    let pub_path = format!("{path}.pub");
    if std::fs::read(&pub_path).ok().as_deref() != Some(public.as_bytes()) {
        let tmp = write_private_tmp(&pub_path, 0o644, public.as_bytes())
            .map_err(|e| format!("{pub_path}: {e}"))?;
        if let Err(e) = std::fs::rename(&tmp, &pub_path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!("{pub_path}: {e}"));
        }
    }
    Ok(key)
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut channel = None;
    let mut created = false;
    let mut opts = Options::new();
    let mut count = None;
    let mut wait = None;
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--channel" => channel = Some(value()?),
            "--identity" => opts = opts.identity(IdentityKey::from(key_file(&value()?)?)),
            "--identity-create" => {
                let path = value()?;
                let key = key_file_or_create(&path)?;
                let public = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(key));
                let hex: String = public
                    .as_bytes()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                eprintln!("secure_ipc_echo: {path}: identity public key {hex}");
                created = true;
                opts = opts.identity(IdentityKey::from(key))
            }
            "--psk" => opts = opts.psk(key_file(&value()?)?),
            "--socket-dir" => opts = opts.socket_dir(value()?),
            "--backend" => {
                opts = opts.backend(match value()?.as_str() {
                    "auto" => Backend::Auto,
                    "kernel" => Backend::Kernel,
                    "userspace" => Backend::Userspace,
                    other => return Err(format!("unknown backend `{other}`\n{USAGE}")),
                })
            }
            "--count" => count = Some(value()?.parse().map_err(|e| format!("--count: {e}"))?),
            "--wait-ms" => {
                wait = Some(Duration::from_millis(
                    value()?.parse().map_err(|e| format!("--wait-ms: {e}"))?,
                ))
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    if channel.is_none() && !created {
        return Err(format!("--channel is required\n{USAGE}"));
    }
    Ok(Args {
        channel,
        opts,
        count,
        wait,
    })
}

fn run(args: Args) -> Result<u64, String> {
    let Some(channel) = args.channel else {
        // `--identity-create KEYFILE` alone: the key is in place.
        return Ok(0);
    };
    // The owner (host daemon) may not have created the channel yet.
    let start = Instant::now();
    let mut backoff = Duration::from_millis(10);
    let (mut tx, mut rx) = loop {
        match Channel::attach(&channel, &args.opts) {
            Ok(pair) => break pair,
            Err(Error::NoSuchChannel) if args.wait.is_none_or(|w| start.elapsed() < w) => {
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            Err(e) => return Err(format!("attach to `{channel}`: {e}")),
        }
    };
    let mut echoed = 0u64;
    while args.count.is_none_or(|n| echoed < n) {
        let msg = match rx.recv() {
            Ok(m) => m,
            Err(Error::PeerClosed) => break,
            Err(e) => return Err(format!("receive: {e}")),
        };
        match tx.send_with_type(msg.msg_type(), msg.payload()) {
            Ok(()) => echoed += 1,
            Err(Error::PeerClosed) => break,
            Err(e) => return Err(format!("send: {e}")),
        }
    }
    Ok(echoed)
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("secure_ipc_echo: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(n) => {
            eprintln!("secure_ipc_echo: echoed {n} messages");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("secure_ipc_echo: {e}");
            ExitCode::FAILURE
        }
    }
}
