//! `sipc listen` and `sipc connect`: stdin to messages, messages to stdout.

use crate::{usage, Fail};
use secure_ipc::cli::args::{Connect, Direction, Listen, PidnsArg, Stream, UidRule};
use secure_ipc::cli::frame::{write_frame, Frame, FrameError, FrameReader};
use secure_ipc::{
    resolve_backend, Channel, Error, IdentityKey, Options, OwnerPolicy, PeerPolicy, PidNamespace,
    Receiver, Sender,
};
use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;
use zeroize::Zeroizing;

/// Exit status when input was read but not all of it reached the peer.
const EXIT_UNDELIVERED: u8 = 8;

/// Reads a 32-byte key file; neither the file's bytes nor the key outlive
/// their use in memory (both wiped on drop).
fn read_key_file(path: &Path) -> Result<Zeroizing<[u8; 32]>, Fail> {
    let shown = path.display();
    let b = Zeroizing::new(std::fs::read(path).map_err(|e| Fail(format!("{shown}: {e}"), 1))?);
    let mut key = Zeroizing::new([0u8; 32]);
    if b.len() != key.len() {
        return Err(usage(format!(
            "{shown}: expected exactly 32 bytes, found {}",
            b.len()
        )));
    }
    key.copy_from_slice(&b);
    Ok(key)
}

/// The options both commands take, key files read.
fn common_options(s: &Stream) -> Result<Options, Fail> {
    let mut o = Options::new().backend(s.backend).wait(s.wait.policy());
    if let Some(d) = &s.socket_dir {
        o = o.socket_dir(d.clone());
    }
    if let Some(f) = &s.psk_file {
        o = o.psk(*read_key_file(f)?);
    }
    if let Some(f) = &s.identity_file {
        o = o.identity(IdentityKey::from(*read_key_file(f)?));
    }
    Ok(o)
}

/// `--pidns PID` (that process's pid namespace) or `--pidns PATH` (an nsfs file).
fn open_pidns(p: &PidnsArg) -> Result<PidNamespace, Error> {
    match p {
        PidnsArg::Pid(pid) => PidNamespace::of_pid(*pid),
        PidnsArg::Path(path) => PidNamespace::open(path),
    }
}

/// `sipc listen`: create the channel, then stream.
pub fn listen(l: &Listen) -> Result<(), Fail> {
    let policy = PeerPolicy {
        uid: match l.uid {
            UidRule::Uid(u) => Some(u),
            UidRule::Default | UidRule::Any => None,
        },
        gid: l.gid,
        pidns: l.pidns.as_ref().map(open_pidns).transpose()?,
        identity_pub: l.identity_pub,
    };
    let mut o = common_options(&l.stream)?
        .slots(l.slots)
        .slot_size(l.slot_size);
    // No policy option: the backend's default (userspace: same uid only);
    // `--uid any` admits every uid.
    if l.uid == UidRule::Any || policy != PeerPolicy::default() {
        o = o.policy(policy);
    }
    let (tx, rx) = Channel::create(&l.name, &o)?;
    eprintln!(
        "sipc: channel {} created ({:?} backend); waiting for a peer",
        l.name,
        resolve_backend(o.selected_backend())
    );
    run(tx, rx, &l.stream)
}

/// `sipc connect`: attach to the channel, then stream.
pub fn connect(c: &Connect) -> Result<(), Fail> {
    let owner = OwnerPolicy {
        uid: match c.owner_uid {
            UidRule::Any => None,
            UidRule::Uid(u) => Some(u),
            UidRule::Default => OwnerPolicy::same_user().uid,
        },
        identity_pub: c.owner_identity_pub,
    };
    let o = common_options(&c.stream)?.owner_policy(owner);
    let (tx, rx) = Channel::attach(&c.name, &o)?;
    run(tx, rx, &c.stream)
}

fn run(tx: Sender, mut rx: Receiver, s: &Stream) -> Result<(), Fail> {
    let (frame, ty) = (s.frame, s.msg_type);
    if s.direction == Direction::RecvOnly {
        // Never touch stdin (a backgrounded job must not stop on SIGTTIN):
        // this direction closes at once.
        drop(tx);
        return pump_stdout(&mut rx, frame).map(|_| ());
    }
    let pump = std::thread::spawn(move || pump_stdin(tx, frame, ty));
    // Done when both directions are: the peer hung up its side, and stdin
    // reached EOF and the peer took all of it (or losing input failed).
    let got = if s.direction == Direction::Both {
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

/// stdin -> messages until EOF, then waits until the peer has taken them
/// all. Every way of losing input is an error that says how many messages
/// the peer did take.
fn pump_stdin(mut tx: Sender, frame: Frame, ty: u16) -> Result<u64, Fail> {
    let mut read = 0u64;
    let r = read_stdin_into(&mut tx, frame, ty, &mut read);
    // Delivered = read - what close says the peer never took. What was
    // read before bad input is still delivered; after a channel error
    // there is nothing to wait for.
    let closed = match &r {
        Ok(_) | Err(Stop::Other(_)) => tx.close(Duration::MAX),
        Err(Stop::Channel(_)) => tx.close(Duration::ZERO),
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

impl From<FrameError> for Stop {
    fn from(e: FrameError) -> Self {
        Stop::Other(e.into())
    }
}

fn read_stdin_into(tx: &mut Sender, frame: Frame, ty: u16, read: &mut u64) -> Result<u64, Stop> {
    let stdin = io::stdin();
    let mut input =
        FrameReader::with_capacity(1 << 16, stdin.lock(), frame, tx.max_message_size())?;
    let mut n = 0u64;
    let mut buf = Vec::new();
    while input.next_into(&mut buf)? {
        *read += 1;
        tx.send_batched(ty, &buf)?;
        n += 1;
        // Publish when stdin has nothing buffered: batches under load, low
        // latency for interactive input.
        if input.is_drained() {
            tx.flush()?;
        }
    }
    tx.flush()?;
    Ok(n)
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
                write_frame(&mut out, m.payload(), frame)?;
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
                write_frame(&mut out, m.payload(), frame)?;
                n += 1;
            }
            Err(Error::PeerClosed) => break,
            Err(e) => return Err(e.into()),
        }
    }
    out.flush()?;
    Ok(n)
}
