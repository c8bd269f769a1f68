//! The systematic race suite: every pair of operations on one endpoint or
//! channel (CREATE, CHALLENGE, ATTACH, close, SEND, RECV, RECV_WAIT,
//! REKEY, read, write, poll, mmap, munmap, SET_DOORBELL, STATS,
//! PEER_CRED), each run by its own thread against the same fd or channel
//! for a short budget, seeded (the seed is printed; replay with
//! `SIPC_GUEST_RACE_SEED`). One test per pair of operation classes, so a
//! failure names the class pair, and its message names the operation pair.
//!
//! What must hold afterwards, once quiet:
//! - without a hang-up in the pair: every message a producer got accepted
//!   (pushed to TX, or a write(2) that returned its length) arrives
//!   exactly once, each producer's messages in its order, RX sequence
//!   numbers strictly increase (and are contiguous when no read(2) took
//!   some), the sender's `sealed_msgs` equals the receiver's
//!   `opened_msgs + store_in_fill + badmsg`, and badmsg, eproto and
//!   tx_discarded are 0;
//! - with a hang-up (close) in the pair: no record fails to open, and a
//!   new peer and the owner then exchange a message in each direction as
//!   sequence 0 (nothing of an old session reaches the new one);
//! - in both: the kernel log stays clean and no channel outlives its files.

use super::kchan::{self, Endpoint, Mapping, Rx, Tx};
use super::races::{kernel_log_is_clean, open_nonblocking, rekey, seed, wait_idle, Rng};
use crate::check;
use crate::harness::{self, Test, TestResult};
use crate::sys::{self, ioctl_struct, Errno};
use secure_ipc_ring::abi;
use std::collections::VecDeque;
use std::fs::File;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One operation a racing thread repeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Create,
    Challenge,
    Attach,
    Close,
    Send,
    SendWait,
    Write,
    Rekey,
    Recv,
    RecvWait,
    Read,
    Poll,
    Doorbell,
    Stats,
    PeerCred,
    Mmap,
    Munmap,
}

use Op::*;

const LIFECYCLE: &[Op] = &[Create, Challenge, Attach, Close];
const SENDING: &[Op] = &[Send, SendWait, Write, Rekey];
const RECEIVING: &[Op] = &[Recv, RecvWait, Read];
const OBSERVING: &[Op] = &[Poll, Doorbell, Stats, PeerCred];
const MAPPING: &[Op] = &[Mmap, Munmap];

/// How long each operation pair races.
const PAIR_BUDGET: Duration = Duration::from_millis(400);
/// How long a pair with close races: each ATTACH and close of the peer
/// takes a while, and the other operation needs many of them.
const CLOSE_PAIR_BUDGET: Duration = Duration::from_millis(1500);
/// Iterations per thread and pair at most (TCG is slow; a fast machine
/// must not run away either).
const PAIR_ITERATIONS: u32 = 1_000_000;
const ENTRIES: u32 = 16;
const SLOT: u32 = 64;
const MSG_LEN: usize = 16;

macro_rules! pair_tests {
    ($( $name:ident: $a:ident x $b:ident ),* $(,)?) => {
        pub const TESTS: &[Test] = &[
            $( Test::new(stringify!($name), $name).timeout(120), )*
        ];
        $( fn $name() -> TestResult { run_group($a, $b) } )*
    };
}

pair_tests! {
    races_lifecycle_x_lifecycle_keep_the_channel_consistent: LIFECYCLE x LIFECYCLE,
    races_lifecycle_x_sending_keep_the_channel_consistent: LIFECYCLE x SENDING,
    races_lifecycle_x_receiving_keep_the_channel_consistent: LIFECYCLE x RECEIVING,
    races_lifecycle_x_observing_keep_the_channel_consistent: LIFECYCLE x OBSERVING,
    races_lifecycle_x_mapping_keep_the_channel_consistent: LIFECYCLE x MAPPING,
    races_sending_x_sending_keep_the_stream_exact: SENDING x SENDING,
    races_sending_x_receiving_keep_the_stream_exact: SENDING x RECEIVING,
    races_sending_x_observing_keep_the_stream_exact: SENDING x OBSERVING,
    races_sending_x_mapping_keep_the_stream_exact: SENDING x MAPPING,
    races_receiving_x_receiving_keep_the_stream_exact: RECEIVING x RECEIVING,
    races_receiving_x_observing_keep_the_stream_exact: RECEIVING x OBSERVING,
    races_receiving_x_mapping_keep_the_stream_exact: RECEIVING x MAPPING,
    races_observing_x_observing_keep_the_stream_exact: OBSERVING x OBSERVING,
    races_observing_x_mapping_keep_the_stream_exact: OBSERVING x MAPPING,
    races_mapping_x_mapping_keep_the_stream_exact: MAPPING x MAPPING,
}

fn run_group(a: &[Op], b: &[Op]) -> TestResult {
    let seed = seed();
    let same = std::ptr::eq(a, b);
    let mut n = 0u64;
    let mut failures = Vec::new();
    for (i, &x) in a.iter().enumerate() {
        for (j, &y) in b.iter().enumerate() {
            if same && j < i {
                continue;
            }
            n += 1;
            let s = seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            // Named before it runs: a pair that hangs is named in the output.
            println!("{x:?} vs {y:?} (pair seed {s:#x}) ...");
            let r = run_pair(x, y, s);
            if let Err(e) = kernel_log_is_clean() {
                // Everything after an oops would be blamed on it: stop.
                failures.push(format!(
                    "{x:?} racing {y:?} (seed {seed:#x}, pair seed {s:#x}): {e}"
                ));
                return Err(failures.join(" | "));
            }
            match r {
                Ok(summary) => println!("  {summary}"),
                Err(e) => failures.push(format!(
                    "{x:?} racing {y:?} (seed {seed:#x}, pair seed {s:#x}): {e}"
                )),
            }
        }
    }
    if !failures.is_empty() {
        return Err(failures.join(" | "));
    }
    check!(
        harness::info(&sys::open_device()?)?.nr_channels == 0,
        "seed {seed:#x}: a channel outlived all its files"
    );
    Ok(())
}

/// A channel name unique in this process (kchan::unique_name is per
/// process only, and racing threads CREATE many).
fn fresh_name(tag: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!("{tag}{}-{}", N.fetch_add(1, SeqCst), std::process::id())
}

fn is_sending(op: Op) -> bool {
    SENDING.contains(&op)
}

fn is_receiving(op: Op) -> bool {
    RECEIVING.contains(&op)
}

/// What the threads share for one pair.
struct Shared {
    name: String,
    /// The fd the sending operations use (the owner's with a hang-up).
    sender: Arc<File>,
    /// The fd the receiving operations use.
    receiver: Arc<File>,
    /// Whether a close thread cycles the peer (then everything else is on
    /// the owner and may see EPIPE/ENOTCONN).
    hangups: bool,
    /// Whether the owner sends (the direction of the stream).
    owner_sends: bool,
    stop: AtomicBool,
    deadline: Instant,
    /// With hang-ups: the cycling peer's fd, published before its ATTACH
    /// (-1 between peers), so that the other operation also races the
    /// ATTACH and the close of the very file it runs on.
    peer_fd: AtomicI32,
    /// Operations running on `peer_fd` now: the close waits for 0.
    busy: AtomicI32,
    /// Ring sizes (the same for both endpoints).
    tx_bytes: usize,
    rx_bytes: usize,
}

/// A worker's result.
#[derive(Default)]
struct Out {
    tx: Option<Tx>,
    rx: Option<Rx>,
    /// Messages this producer got accepted.
    produced: u64,
    /// (producer, counter, RX seq if it came through the RX ring).
    received: Vec<(u64, u64, Option<u64>)>,
    iterations: u32,
}

fn msg(producer: u64, counter: u64) -> [u8; MSG_LEN] {
    let mut m = [0u8; MSG_LEN];
    m[..8].copy_from_slice(&producer.to_le_bytes());
    m[8..].copy_from_slice(&counter.to_le_bytes());
    m
}

fn parse(p: &[u8]) -> Result<(u64, u64), String> {
    check!(p.len() == MSG_LEN, "a message of {} bytes arrived", p.len());
    Ok((
        u64::from_le_bytes(p[..8].try_into().unwrap_or_default()),
        u64::from_le_bytes(p[8..].try_into().unwrap_or_default()),
    ))
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn pop_all(rx: &mut Rx, out: &mut Vec<(u64, u64, Option<u64>)>) -> TestResult {
    while let Some(r) = rx.pop() {
        let (p, c) = parse(&r.payload)?;
        out.push((p, c, Some(r.desc.seq)));
    }
    Ok(())
}

/// Errnos an operation may get on a correct module in this setting.
fn allowed(op: Op, e: i32, hangups: bool) -> bool {
    let hang = hangups && matches!(e, libc::EPIPE | libc::ENOTCONN);
    hang || match op {
        Send | Write => e == libc::EAGAIN,
        Rekey => e == libc::EBUSY,
        Recv | Read => e == libc::EAGAIN,
        RecvWait => matches!(e, libc::EAGAIN | libc::ETIMEDOUT | libc::EINTR),
        SendWait => e == libc::EINTR,
        _ => false,
    }
}

/// Counts one operation on the published peer fd while it lives.
struct Busy<'a>(&'a AtomicI32);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

/// Runs `op` on `sh` until the deadline: one iteration per loop.
fn worker(
    op: Op,
    producer: u64,
    sh: &Shared,
    mut tx: Option<Tx>,
    mut rx: Option<Rx>,
    mut rng: Rng,
) -> Result<Out, String> {
    let mut out = Out::default();
    let mut maps: VecDeque<Mapping> = VecDeque::new();
    let mut last_stats = (0u64, 0u64);
    let mut buf = [0u8; 256];
    let mut hung_peer: Option<File> = None;
    while !sh.stop.load(SeqCst) && Instant::now() < sh.deadline && out.iterations < PAIR_ITERATIONS
    {
        out.iterations += 1;
        // With hang-ups, every other iteration of a data, observing or
        // mapping operation runs on the cycling peer's file instead.
        let on_peer = sh.hangups && !LIFECYCLE.contains(&op) && rng.below(2) == 0;
        let _busy = on_peer.then(|| {
            sh.busy.fetch_add(1, SeqCst);
            Busy(&sh.busy)
        });
        let fd = if on_peer { sh.peer_fd.load(SeqCst) } else { -1 };
        // SAFETY: the close thread closes the published fd only after it
        // unpublished it and saw `busy` at 0; `_busy` counts us until the
        // end of this iteration.
        let peer_file = (fd >= 0).then(|| ManuallyDrop::new(unsafe { File::from_raw_fd(fd) }));
        let sender: &File = peer_file.as_deref().unwrap_or(&sh.sender);
        let receiver: &File = peer_file.as_deref().unwrap_or(&sh.receiver);
        // Observing and mapping operations pick a side per iteration.
        let pick = |rng: &mut Rng| -> &File {
            if rng.below(2) == 0 {
                sender
            } else {
                receiver
            }
        };
        match op {
            Send | SendWait => {
                if let Some(tx) = tx.as_mut() {
                    for _ in 0..=rng.below(3) {
                        if !tx.push(&msg(producer, out.produced), 0) {
                            break;
                        }
                        out.produced += 1;
                    }
                }
                let r = if op == Send {
                    sys::ioctl_none(sender, abi::SIPC_IOC_SEND)
                } else {
                    // Its timeout (1 ms) is a value, not a pointer.
                    sys::ioctl_ptr(sender, abi::SIPC_IOC_SEND_WAIT, 1usize as *mut u8)
                };
                if let Err(Errno(e)) = r {
                    check!(allowed(op, e, sh.hangups), "{op:?}: {}", sys::errno_name(e));
                }
            }
            Write => match kchan::write_msg(sender, &msg(producer, out.produced)) {
                Ok(MSG_LEN) => out.produced += 1,
                Ok(n) => return Err(format!("write(2) of {MSG_LEN} bytes returned {n}")),
                Err(Errno(e)) => {
                    check!(allowed(op, e, sh.hangups), "write: {}", sys::errno_name(e))
                }
            },
            Rekey => {
                if let Err(Errno(e)) = rekey(sender.as_raw_fd()) {
                    check!(allowed(op, e, sh.hangups), "REKEY: {}", sys::errno_name(e));
                }
            }
            Recv | RecvWait => {
                let r = if op == Recv {
                    sys::ioctl_none(receiver, abi::SIPC_IOC_RECV)
                } else {
                    // Its timeout (1 ms) is a value, not a pointer.
                    sys::ioctl_ptr(receiver, abi::SIPC_IOC_RECV_WAIT, 1usize as *mut u8)
                };
                if let Err(Errno(e)) = r {
                    check!(allowed(op, e, sh.hangups), "{op:?}: {}", sys::errno_name(e));
                }
                if let Some(rx) = rx.as_mut() {
                    pop_all(rx, &mut out.received)?;
                }
            }
            Read => match kchan::read_msg(receiver, &mut buf) {
                Ok(n) => {
                    let (p, c) = parse(&buf[..n])?;
                    out.received.push((p, c, None));
                }
                Err(Errno(e)) => {
                    check!(allowed(op, e, sh.hangups), "read: {}", sys::errno_name(e))
                }
            },
            Poll => {
                let f = pick(&mut rng);
                let mut p = libc::pollfd {
                    fd: f.as_raw_fd(),
                    events: libc::POLLIN | libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                let r = unsafe { libc::poll(&mut p, 1, 0) };
                check!(r >= 0, "poll: {}", sys::errno_name(errno()));
                check!(
                    p.revents & (libc::POLLERR | libc::POLLNVAL) == 0,
                    "poll reported {:#x} on an endpoint",
                    p.revents
                );
            }
            Doorbell => {
                let f = pick(&mut rng);
                let e = kchan::eventfd()?;
                let fd = if rng.below(2) == 0 { e.as_raw_fd() } else { -1 };
                match kchan::set_doorbell(f, fd) {
                    Ok(()) => {}
                    Err(Errno(libc::ENOTCONN)) if sh.hangups => {}
                    Err(e) => return Err(format!("SET_DOORBELL: {e}")),
                }
            }
            Stats => {
                // Each side's counters only grow (the stream's direction is
                // fixed, so look at the sender's sealed and the receiver's
                // opened messages).
                if sh.hangups {
                    // A peer file may not be attached yet.
                    let _ = kchan::stats(sender);
                    let _ = kchan::stats(receiver);
                    continue;
                }
                let s = kchan::stats(sender)?;
                let r = kchan::stats(receiver)?;
                {
                    check!(
                        s.sealed_msgs >= last_stats.0 && r.opened_msgs >= last_stats.1,
                        "STATS went backwards: sealed {} after {}, opened {} after {}",
                        s.sealed_msgs,
                        last_stats.0,
                        r.opened_msgs,
                        last_stats.1
                    );
                    check!(
                        r.badmsg == 0 && s.eproto == 0,
                        "STATS mid-race: badmsg {} eproto {}",
                        r.badmsg,
                        s.eproto
                    );
                }
                last_stats = (s.sealed_msgs, r.opened_msgs);
            }
            PeerCred => {
                let f = pick(&mut rng);
                let mut c = abi::PeerCred {
                    size: std::mem::size_of::<abi::PeerCred>() as u32,
                    ..Default::default()
                };
                match ioctl_struct(f, abi::SIPC_IOC_PEER_CRED, &mut c) {
                    Ok(_) => {
                        // SAFETY: getuid cannot fail.
                        let uid = unsafe { libc::getuid() };
                        check!(c.uid == uid, "PEER_CRED uid {} (all are {uid})", c.uid);
                    }
                    Err(Errno(e)) => check!(
                        sh.hangups && e == libc::ENOTCONN,
                        "PEER_CRED: {}",
                        sys::errno_name(e)
                    ),
                }
            }
            Mmap | Munmap => {
                let f = pick(&mut rng);
                let (off, len) = if rng.below(2) == 0 {
                    (abi::SIPC_OFF_TX_RING, sh.tx_bytes)
                } else {
                    (abi::SIPC_OFF_RX_RING, sh.rx_bytes)
                };
                match Mapping::map_with(f, off, len, libc::PROT_READ, libc::MAP_SHARED) {
                    Ok(m) => {
                        let magic = m.word(0).load(SeqCst);
                        check!(
                            magic == abi::SIPC_RING_MAGIC,
                            "a ring mapped mid-race has magic {magic:#x}"
                        );
                        if op == Mmap {
                            maps.push_back(m);
                            if maps.len() > 4 {
                                maps.pop_front();
                            }
                        }
                    }
                    Err(Errno(libc::ENOTCONN)) if sh.hangups => {}
                    Err(Errno(e)) => return Err(format!("mmap: {}", sys::errno_name(e))),
                }
            }
            Create => {
                // On an endpoint: refused, whatever else runs.
                let mut c = kchan::create_arg(&fresh_name("pc"), 4, 64);
                let f = pick(&mut rng);
                check!(
                    ioctl_struct(f, abi::SIPC_IOC_CREATE, &mut c).is_err(),
                    "CREATE on an endpoint's fd succeeded"
                );
                // The channel's own name: EEXIST.
                let g = sys::open_device()?;
                let mut c = kchan::create_arg(&sh.name, 4, 64);
                harness::expect_errno(
                    ioctl_struct(&g, abi::SIPC_IOC_CREATE, &mut c),
                    libc::EEXIST,
                    "CREATE of the racing channel's name",
                )?;
                // Another channel, created and closed at once.
                let mut c = kchan::create_arg(&fresh_name("pc"), 4, 64);
                ioctl_struct(&g, abi::SIPC_IOC_CREATE, &mut c)
                    .map_err(|e| format!("CREATE of a fresh name: {e}"))?;
            }
            Challenge => {
                let g = sys::open_device()?;
                let mut c = abi::Challenge {
                    size: std::mem::size_of::<abi::Challenge>() as u32,
                    name: kchan::name_buf(&sh.name),
                    ..Default::default()
                };
                let _ = ioctl_struct(&g, abi::SIPC_IOC_CHALLENGE, &mut c);
                let f = pick(&mut rng);
                let _ = ioctl_struct(f, abi::SIPC_IOC_CHALLENGE, &mut c);
            }
            Attach => {
                let f = pick(&mut rng);
                let mut a = kchan::attach_arg(&sh.name);
                check!(
                    ioctl_struct(f, abi::SIPC_IOC_ATTACH, &mut a).is_err(),
                    "ATTACH on an endpoint's fd succeeded"
                );
                let g = open_nonblocking()?;
                match ioctl_struct(&g, abi::SIPC_IOC_ATTACH, &mut a) {
                    // With a hang-up thread the seat may be free: take it
                    // and hang up at once.
                    Ok(_) if sh.hangups => {}
                    Ok(_) => return Err("a second peer attached while one was attached".into()),
                    Err(Errno(libc::EBUSY)) => {}
                    Err(e) => return Err(format!("ATTACH to a busy channel: {e}")),
                }
            }
            Close => {
                // Cycle the peer: attach, play the other side briefly,
                // hang up.
                match hung_peer.take() {
                    Some(p) => unpublish_and_close(sh, p)?,
                    None => {
                        let g = open_nonblocking()?;
                        // Published before the ATTACH: the other thread
                        // races the ATTACH on this very file.
                        let _ = sh
                            .peer_fd
                            .compare_exchange(-1, g.as_raw_fd(), SeqCst, SeqCst);
                        let mut a = kchan::attach_arg(&sh.name);
                        match ioctl_struct(&g, abi::SIPC_IOC_ATTACH, &mut a) {
                            Ok(_) => {
                                if sh.owner_sends {
                                    let _ = kchan::read_msg(&g, &mut buf);
                                } else {
                                    let _ = kchan::write_msg(&g, &msg(99, 0));
                                }
                                if rng.below(2) == 0 {
                                    hung_peer = Some(g);
                                } else {
                                    unpublish_and_close(sh, g)?;
                                }
                            }
                            Err(Errno(libc::EBUSY)) => unpublish_and_close(sh, g)?,
                            Err(e) => return Err(format!("ATTACH of the next peer: {e}")),
                        }
                    }
                }
            }
        }
    }
    if let Some(p) = hung_peer {
        unpublish_and_close(sh, p)?;
    }
    out.tx = tx.take();
    out.rx = rx.take();
    Ok(out)
}

/// Unpublishes `f` if it is the published peer file, waits until no
/// operation runs on it, and closes it.
fn unpublish_and_close(sh: &Shared, f: File) -> TestResult {
    let fd = f.as_raw_fd();
    if sh.peer_fd.compare_exchange(fd, -1, SeqCst, SeqCst).is_ok() {
        wait_idle(&sh.busy)?;
    }
    drop(f);
    Ok(())
}

fn run_pair(x: Op, y: Op, seed: u64) -> Result<String, String> {
    let mut rng = Rng(seed | 1);
    let hangups = x == Close || y == Close;
    let name = fresh_name("pair");
    let owner = Endpoint::create(&name, ENTRIES, SLOT)?;
    let (tx_bytes, rx_bytes) = (owner.tx.m.len(), owner.rx.m.len());
    // SAFETY: F_SETFL on our own open file: no racer may sleep in read/write.
    unsafe { libc::fcntl(owner.file.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let peer = if hangups {
        None
    } else {
        let f = open_nonblocking()?;
        let mut a = kchan::attach_arg(&name);
        ioctl_struct(&f, abi::SIPC_IOC_ATTACH, &mut a).map_err(|e| format!("ATTACH: {e}"))?;
        Some(kchan::endpoint_from_attach(f, &a)?)
    };
    let owner_sends = if hangups {
        // The operation that is not the close runs on the owner, as what
        // it is; otherwise pick.
        let other = if x == Close { y } else { x };
        is_sending(other) || (!is_receiving(other) && rng.below(2) == 0)
    } else {
        rng.below(2) == 0
    };
    let owner = Parts::of(owner);
    let peer = peer.map(Parts::of);
    let (mut s_ep, mut r_ep) = match (peer, owner_sends) {
        (Some(p), true) => (Some(owner), Some(p)),
        (Some(p), false) => (Some(p), Some(owner)),
        (None, true) => (Some(owner), None),
        (None, false) => (None, Some(owner)),
    };
    let owner_file = s_ep
        .as_ref()
        .or(r_ep.as_ref())
        .map(|e| e.file.clone())
        .ok_or("no endpoint")?;
    let sh = Arc::new(Shared {
        name: name.clone(),
        sender: s_ep.as_ref().map_or(owner_file.clone(), |e| e.file.clone()),
        receiver: r_ep.as_ref().map_or(owner_file.clone(), |e| e.file.clone()),
        hangups,
        owner_sends,
        stop: AtomicBool::new(false),
        deadline: Instant::now()
            + crate::harness::race_time(if hangups {
                CLOSE_PAIR_BUDGET
            } else {
                PAIR_BUDGET
            }),
        tx_bytes,
        rx_bytes,
        peer_fd: AtomicI32::new(-1),
        busy: AtomicI32::new(0),
    });
    // The ring halves: the first thread of a kind takes them.
    let mut tx = s_ep.as_mut().and_then(|e| e.tx.take());
    let mut rx = r_ep.as_mut().and_then(|e| e.rx.take());
    let mut ops = vec![x, y];
    // Without a hang-up, keep the stream moving: a writer and a reader if
    // the pair has none of either.
    if !hangups && !ops.iter().any(|&o| matches!(o, Send | SendWait | Write)) {
        ops.push(Write);
    }
    if !hangups && !ops.iter().any(|&o| is_receiving(o)) {
        ops.push(Read);
    }
    let mut threads = Vec::new();
    for (i, &op) in ops.iter().enumerate() {
        let t = if op == Send || op == SendWait {
            tx.take()
        } else {
            None
        };
        let r = if op == Recv || op == RecvWait {
            rx.take()
        } else {
            None
        };
        let sh = sh.clone();
        let wr = Rng(rng.next() | 1);
        threads.push(std::thread::spawn(move || {
            worker(op, i as u64, &sh, t, r, wr)
        }));
    }
    // A racer that never comes back (an oops killed a thread holding an
    // endpoint lock, and the others sleep on it) must not hang the test
    // until its timeout without a word: give up, with the kernel log.
    let give_up = sh.deadline + Duration::from_secs(20);
    while threads.iter().any(|t| !t.is_finished()) {
        if Instant::now() > give_up {
            sh.stop.store(true, SeqCst);
            kernel_log_is_clean()?;
            return Err("a racing thread is stuck in the module 20 s after the race ended".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut outs = Vec::new();
    let mut first_err = None;
    for t in threads {
        match t.join() {
            Ok(Ok(o)) => outs.push(o),
            Ok(Err(e)) => {
                sh.stop.store(true, SeqCst);
                first_err = first_err.or(Some(e));
            }
            Err(_) => first_err = first_err.or(Some("a racing thread panicked".to_string())),
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    for o in outs.iter_mut() {
        tx = tx.or(o.tx.take());
        rx = rx.or(o.rx.take());
    }
    let iterations: Vec<String> = ops
        .iter()
        .zip(outs.iter())
        .map(|(o, w)| format!("{o:?} {}", w.iterations))
        .collect();
    let summary = iterations.join(", ");
    if let Some(e) = s_ep.as_mut() {
        e.tx = tx.take();
    }
    if let Some(e) = r_ep.as_mut() {
        e.rx = rx.take();
    }
    if hangups {
        let owner = if owner_sends { s_ep } else { r_ep };
        check_after_hangups(&name, owner.ok_or("no owner")?.endpoint()?)?;
        return Ok(summary);
    }
    let s_ep = s_ep.ok_or("no sender")?.endpoint()?;
    let mut r_ep = r_ep.ok_or("no receiver")?.endpoint()?;
    // One list per consumer, in the order it consumed: the RX popper's
    // list goes on with the drain below (the same ring).
    let mut consumers: Vec<Vec<(u64, u64, Option<u64>)>> = Vec::new();
    let mut received: Vec<(u64, u64, Option<u64>)> = Vec::new();
    for (o, &op) in outs.iter_mut().zip(ops.iter()) {
        if op == Recv || op == RecvWait {
            received.append(&mut o.received);
        } else if !o.received.is_empty() {
            consumers.push(std::mem::take(&mut o.received));
        }
    }
    // Quiet: flush what is left in TX, drain everything through RX.
    let mut rounds = 0;
    loop {
        rounds += 1;
        check!(rounds < 100_000, "the stream did not drain");
        match s_ep.send() {
            Ok(_) | Err(Errno(libc::EAGAIN)) => {}
            Err(e) => return Err(format!("SEND while draining: {e}")),
        }
        let got = r_ep
            .recv()
            .map_err(|e| format!("RECV while draining: {e}"))?;
        pop_all(&mut r_ep.rx, &mut received)?;
        if got == 0 && s_ep.tx.room() == ENTRIES {
            let st = kchan::stats(&r_ep.file)?;
            if st.store_in_fill == 0 {
                break;
            }
        }
    }
    // Every accepted message exactly once, each producer in order.
    let produced: Vec<(u64, u64)> = outs
        .iter()
        .enumerate()
        .map(|(i, o)| (i as u64, o.produced))
        .collect();
    let total: u64 = produced.iter().map(|p| p.1).sum();
    consumers.push(received);
    let mut seen = std::collections::HashSet::new();
    let mut last_seq: Option<u64> = None;
    for (k, list) in consumers.iter().enumerate() {
        let mut next = std::collections::HashMap::new();
        for &(p, c, seq) in list {
            check!(
                produced.iter().any(|&(q, n)| q == p && c < n),
                "received message {p}/{c} that no producer had accepted"
            );
            check!(seen.insert((p, c)), "message {p}/{c} arrived twice");
            let want = next.entry(p).or_insert(0u64);
            check!(
                c >= *want,
                "consumer {k}: producer {p}'s message {c} arrived after its message {}",
                *want - 1
            );
            *want = c + 1;
            if let Some(s) = seq {
                if let Some(l) = last_seq {
                    check!(s > l, "RX seq {s} after seq {l}: reordered or repeated");
                }
                last_seq = Some(s);
            }
        }
    }
    let ss = kchan::stats(&s_ep.file)?;
    let rs = kchan::stats(&r_ep.file)?;
    check!(
        seen.len() as u64 == total,
        "{} of {total} accepted messages arrived ((producer, count) {:?}; sealed {}, opened {}, badmsg {}, rekeys {})",
        seen.len(),
        produced,
        ss.sealed_msgs,
        rs.opened_msgs,
        rs.badmsg,
        ss.rekeys
    );
    let reads = ops.contains(&Read);
    if !reads {
        if let Some(l) = last_seq {
            check!(
                l + 1 == total,
                "the last RX seq is {l} after {total} messages: sequence numbers were skipped"
            );
        }
    }
    check!(
        ss.sealed_msgs == rs.opened_msgs + u64::from(rs.store_in_fill) + rs.badmsg,
        "sealed {} != opened {} + in store {} + dropped {}",
        ss.sealed_msgs,
        rs.opened_msgs,
        rs.store_in_fill,
        rs.badmsg
    );
    check!(
        ss.sealed_msgs == total && rs.badmsg == 0 && ss.eproto == 0 && ss.tx_discarded == 0,
        "sealed {} of {total} accepted, badmsg {}, eproto {}, tx_discarded {}",
        ss.sealed_msgs,
        rs.badmsg,
        ss.eproto,
        ss.tx_discarded
    );
    drop((s_ep, r_ep));
    Ok(format!("{summary}; {total} messages exact"))
}

/// An endpoint taken apart so that its ring halves can go to threads.
struct Parts {
    file: Arc<File>,
    tx: Option<Tx>,
    rx: Option<Rx>,
    channel_id: u64,
}

impl Parts {
    fn of(e: Endpoint) -> Self {
        let Endpoint {
            file,
            tx,
            rx,
            channel_id,
        } = e;
        Parts {
            file,
            tx: Some(tx),
            rx: Some(rx),
            channel_id,
        }
    }

    fn endpoint(self) -> Result<Endpoint, String> {
        Ok(Endpoint {
            file: self.file,
            tx: self.tx.ok_or("a thread kept the TX ring")?,
            rx: self.rx.ok_or("a thread kept the RX ring")?,
            channel_id: self.channel_id,
        })
    }
}

/// After a pair with hang-ups: a fresh peer and the owner exchange one
/// message each way, both as seq 0, and nothing failed to open.
fn check_after_hangups(name: &str, mut owner: Endpoint) -> TestResult {
    // Old sessions' records the racer moved into RX but did not pop.
    while owner.rx.pop().is_some() {}
    let os = owner.stats()?;
    check!(
        os.badmsg == 0,
        "{} records failed to open across hang-ups",
        os.badmsg
    );
    let mut peer = Endpoint::attach(name)?;
    owner.send_one(b"owner-to-new-peer", 0)?;
    let r = peer.recv_one()?;
    check!(
        r.payload == b"owner-to-new-peer" && r.desc.seq == 0,
        "the new peer's first message is seq {} {:?}, not the owner's seq 0 (an old session's record?)",
        r.desc.seq,
        String::from_utf8_lossy(&r.payload)
    );
    peer.send_one(b"new-peer-to-owner", 0)?;
    let r = owner.recv_one()?;
    check!(
        r.payload == b"new-peer-to-owner" && r.desc.seq == 0,
        "the owner's first message from the new peer is seq {} {:?}",
        r.desc.seq,
        String::from_utf8_lossy(&r.payload)
    );
    let (os, ps) = (owner.stats()?, peer.stats()?);
    check!(
        os.badmsg == 0 && ps.badmsg == 0,
        "badmsg owner {} peer {}",
        os.badmsg,
        ps.badmsg
    );
    Ok(())
}
