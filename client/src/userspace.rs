//! The userspace backend: the same channel without the kernel module.
//!
//! The owner listens on a `SOCK_SEQPACKET` Unix socket
//! (`$XDG_RUNTIME_DIR/secure_ipc/NAME.sock` where that directory is the
//! owner's alone, an explicit `DIR/NAME.sock`, or the abstract
//! `@secure_ipc/NAME`). A background thread accepts connections, checks the
//! connecting process's kernel-captured credentials (`SO_PEERCRED`,
//! `SO_PEERGROUPS`, `SO_PEERPIDFD`) against the [`PeerPolicy`] right after
//! accept, and runs each admitted handshake (docs/key-schedule.md §5) on its
//! own thread with its own deadline. The attacher checks the owner in turn
//! (uid, optional identity proof: [`OwnerPolicy`]). The owner hands the peer
//! a sealed memfd holding both directions' rings plus four socket-pair
//! doorbells with `SCM_RIGHTS`; the listener itself accepts no descriptors.
//! Records in the rings are the sealed format of docs/record-format.md; the
//! receiver copies each record out of shared memory before it checks or
//! decrypts it. The rendezvous socket stays open for the whole session: its
//! hang-up is how each side learns that the other process is gone, even
//! after SIGKILL.

use crate::backend::{Endpoint, MessageMeta, RxBackend, TxBackend};
use crate::keys::{self, SessionInputs};
use crate::options::encode_name;
use crate::record::{Opener, Sealer, HEADER_LEN, OVERHEAD};
use crate::sys::{self, Mapping, SockAddr};
use crate::{
    monotonic_ns, Credentials, Error, Options, OwnerPolicy, PeerCredentials, PeerPolicy, Stats,
};
use rand_core::{OsRng, RngCore};
use secure_ipc_ring::abi::{self, TxDesc};
use secure_ipc_ring::{Consumer, PeekError, Producer, ProtocolError, ReserveError, RingLayout};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// How long one side waits for the other during the rendezvous.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Empty polls between two zero-timeout checks of the socket for a hang-up.
const HANGUP_CHECK_EVERY: u32 = 256;

const MAGIC_ATTACH: &[u8; 8] = b"SIPCAT01";
const MAGIC_STATS: &[u8; 8] = b"SIPCST01";
const MAGIC_HELLO: &[u8; 8] = b"SIPCUS01";
const MAGIC_KEYS: &[u8; 8] = b"SIPCKY01";
const MAGIC_ACCEPT: &[u8; 8] = b"SIPCOK01";
const MAGIC_REFUSE: &[u8; 8] = b"SIPCNO01";
const MAGIC_STATS_REPLY: &[u8; 8] = b"SIPCSS01";

const HELLO_IDENTITY: u32 = 1;
const HELLO_OWNER_PSK: u32 = 2;
/// The owner proves an identity key in its ACCEPT.
const HELLO_OWNER_IDENTITY: u32 = 4;
const KEYS_PEER_PSK: u32 = 2;

/// Why the owner refused, on the wire.
#[derive(Clone, Copy)]
#[repr(u32)]
enum Refusal {
    NotPermitted = 1,
    Busy = 2,
    IdentityRejected = 3,
    PskMismatch = 4,
    Protocol = 5,
}

fn refusal_error(code: u32) -> Error {
    match code {
        1 => Error::NotPermitted,
        2 => Error::Busy,
        3 => Error::IdentityRejected,
        4 => Error::PskMismatch,
        _ => Error::Protocol("the owner refused the attach".into()),
    }
}

fn proto(what: &str) -> Error {
    Error::Protocol(what.to_string())
}

/// Abstract socket name of a channel.
pub fn abstract_name(name: &str) -> Vec<u8> {
    format!("secure_ipc/{name}").into_bytes()
}

/// Socket file of a channel under `dir`.
pub fn socket_path(dir: &std::path::Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.sock"))
}

// ---------------------------------------------------------------------------
// Counters and the session's shared pieces
// ---------------------------------------------------------------------------

/// Counters of one endpoint, shared by its halves and the owner's listener.
#[derive(Default)]
struct Counters {
    sealed_msgs: AtomicU64,
    sealed_bytes: AtomicU64,
    opened_msgs: AtomicU64,
    opened_bytes: AtomicU64,
    auth_failures: AtomicU64,
    full_events: AtomicU64,
    doorbells_signalled: AtomicU64,
    doorbells_suppressed: AtomicU64,
    rekeys: AtomicU64,
    tx_epoch: AtomicU32,
    rx_epoch: AtomicU32,
    /// The session's mapping and (outgoing, incoming) ring offsets, for the
    /// fill levels (read only when someone asks for stats).
    rings: std::sync::OnceLock<(Arc<Mapping>, usize, usize)>,
}

impl Counters {
    fn snapshot(&self) -> Stats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let l32 = |a: &AtomicU32| a.load(Ordering::Relaxed);
        Stats {
            sealed_msgs: l(&self.sealed_msgs),
            sealed_bytes: l(&self.sealed_bytes),
            opened_msgs: l(&self.opened_msgs),
            opened_bytes: l(&self.opened_bytes),
            auth_failures: l(&self.auth_failures),
            full_events: l(&self.full_events),
            doorbells_signalled: l(&self.doorbells_signalled),
            doorbells_suppressed: l(&self.doorbells_suppressed),
            rekeys: l(&self.rekeys),
            tx_fill: self.rings.get().map_or(0, |(m, tx, _)| m.ring_fill(*tx)),
            rx_fill: self.rings.get().map_or(0, |(m, _, rx)| m.ring_fill(*rx)),
            tx_epoch: l32(&self.tx_epoch),
            rx_epoch: l32(&self.rx_epoch),
        }
    }

    fn to_wire(s: &Stats) -> Vec<u8> {
        let mut v = MAGIC_STATS_REPLY.to_vec();
        for x in [
            s.sealed_msgs,
            s.sealed_bytes,
            s.opened_msgs,
            s.opened_bytes,
            s.auth_failures,
            s.full_events,
            s.doorbells_signalled,
            s.doorbells_suppressed,
            s.rekeys,
            s.tx_fill as u64,
            s.rx_fill as u64,
            s.tx_epoch as u64,
            s.rx_epoch as u64,
        ] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v
    }

    fn from_wire(b: &[u8]) -> Option<Stats> {
        if b.len() != 8 + 13 * 8 || &b[..8] != MAGIC_STATS_REPLY {
            return None;
        }
        let f =
            |i: usize| u64::from_le_bytes(b[8 + i * 8..16 + i * 8].try_into().unwrap_or([0; 8]));
        Some(Stats {
            sealed_msgs: f(0),
            sealed_bytes: f(1),
            opened_msgs: f(2),
            opened_bytes: f(3),
            auth_failures: f(4),
            full_events: f(5),
            doorbells_signalled: f(6),
            doorbells_suppressed: f(7),
            rekeys: f(8),
            tx_fill: f(9) as u32,
            rx_fill: f(10) as u32,
            tx_epoch: f(11) as u32,
            rx_epoch: f(12) as u32,
        })
    }
}

/// The rendezvous socket of a session: open as long as either half lives.
struct Link {
    sock: OwnedFd,
    gone: AtomicBool,
}

impl Link {
    /// Whether the other process has hung up (zero-timeout poll).
    fn check_hangup(&self) -> bool {
        if self.gone.load(Ordering::Relaxed) {
            return true;
        }
        if let Ok(r) = sys::poll(&[self.sock.as_raw_fd()], Some(Duration::ZERO)) {
            if r[0].hangup || r[0].readable {
                self.gone.store(true, Ordering::Relaxed);
            }
        }
        self.gone.load(Ordering::Relaxed)
    }

    /// Sleeps until `bell` rings, the socket hangs up, or `deadline`.
    fn sleep(&self, bell: &OwnedFd, deadline: Option<Instant>) -> Result<(), Error> {
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let r = sys::poll(&[bell.as_raw_fd(), self.sock.as_raw_fd()], timeout)?;
        if r[0].readable {
            sys::bell_drain(bell);
        }
        // Any event on the socket after the handshake is the end: the peer
        // never writes to it again, so readable means EOF.
        if r[1].hangup || r[1].readable {
            self.gone.store(true, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Doorbells of one endpoint: the sleeping ends of the two it waits on and
/// the ringing ends of the two it rings (socket pairs, see
/// [`sys::bell_pair`]: the other process holds the opposite ends, which are
/// separate file descriptions, so nothing it does to them can block us).
struct Bells {
    my_data: OwnedFd,
    my_room: OwnedFd,
    their_data: OwnedFd,
    their_room: OwnedFd,
}

/// The sending half once a session exists.
struct TxSession {
    producer: Producer<TxDesc>,
    sealer: Sealer,
    staging: Vec<u8>,
    max_payload: usize,
    link: Arc<Link>,
    my_room: OwnedFd,
    their_data: OwnedFd,
    counters: Arc<Counters>,
    unpublished: usize,
    /// The last reserve found the ring full (for `full_events`).
    was_full: bool,
    /// We asked for a room doorbell since the last drain: the bell may be
    /// readable and is drained when a reserve finds the ring full.
    bell_armed: bool,
}

/// The receiving half once a session exists.
struct RxSession {
    consumer: Consumer<TxDesc>,
    opener: Opener,
    /// Private copies of up to `batch_max` records, one slot size apart.
    buf: Vec<u8>,
    slot_size: usize,
    batch_max: u32,
    /// Copied records not yet opened: (offset in `buf`, length, copy ok).
    queue: Vec<(usize, usize, bool)>,
    queue_pos: usize,
    /// Offset in `buf` of the current message's record.
    current_off: usize,
    link: Arc<Link>,
    my_data: OwnedFd,
    their_room: OwnedFd,
    counters: Arc<Counters>,
    sender: Credentials,
    peer: PeerCredentials,
    current: Option<MessageMeta>,
    empty_polls: u32,
    /// We asked for a data doorbell since the last drain (see
    /// [`TxSession::bell_armed`]).
    bell_armed: bool,
}

/// Everything a finished handshake produces for one endpoint.
struct Session {
    tx: TxSession,
    rx: RxSession,
}

fn ring_error(e: ProtocolError) -> Error {
    Error::Protocol(e.to_string())
}

impl TxSession {
    fn reserve(&mut self) -> Result<bool, Error> {
        if self.link.gone.load(Ordering::Relaxed) {
            return Err(Error::PeerClosed);
        }
        match self.producer.reserve() {
            Ok(_slot) => {
                // Dropped uncommitted: the slot stays ours to take again.
                self.was_full = false;
                // Room again after an epoll user's arm(): stop asking for
                // doorbells (a no-op unless NEED_WAKEUP is set).
                self.producer.finish_wait_for_room();
                Ok(true)
            }
            Err(ReserveError::Full { .. }) => {
                // Would block: clear the readiness fd (level-triggered epoll
                // users must not see a stale ring as room).
                if self.bell_armed {
                    self.bell_armed = false;
                    sys::bell_drain(&self.my_room);
                }
                // Count each time the ring fills up, not each retry.
                if !self.was_full {
                    self.was_full = true;
                    self.counters.full_events.fetch_add(1, Ordering::Relaxed);
                }
                Ok(false)
            }
            Err(ReserveError::Closed) => Err(Error::PeerClosed),
            Err(ReserveError::TooLarge { .. }) => Ok(false),
            Err(ReserveError::Protocol(e)) => Err(ring_error(e)),
        }
    }

    fn commit(&mut self, len: usize, msg_type: u16) -> Result<(), Error> {
        let ts = monotonic_ns();
        let (hdr, tag, rekeyed) = self
            .sealer
            .seal_next(msg_type, ts, &mut self.staging[..len])?;
        if rekeyed {
            self.counters.rekeys.fetch_add(1, Ordering::Relaxed);
            self.counters
                .tx_epoch
                .store(self.sealer.epoch(), Ordering::Relaxed);
        }
        let mut slot = match self.producer.reserve() {
            Ok(s) => s,
            Err(ReserveError::Closed) => return Err(Error::PeerClosed),
            Err(ReserveError::Protocol(e)) => return Err(ring_error(e)),
            Err(_) => return Err(proto("commit without a reserved slot")),
        };
        let bad = |_| proto("record larger than the slot");
        slot.write_payload(0, &hdr.to_le_bytes()).map_err(bad)?;
        slot.write_payload(HEADER_LEN, &self.staging[..len])
            .map_err(bad)?;
        slot.write_payload(HEADER_LEN + len, &tag).map_err(bad)?;
        let desc = TxDesc {
            len: (OVERHEAD + len) as u32,
            type_: msg_type,
            flags: 0,
            reserved: 0,
        };
        slot.commit(desc)
            .map_err(|_| proto("record larger than the slot"))?;
        self.unpublished += 1;
        self.counters.sealed_msgs.fetch_add(1, Ordering::Relaxed);
        self.counters
            .sealed_bytes
            .fetch_add(len as u64, Ordering::Relaxed);
        Ok(())
    }

    fn flush(&mut self) -> Result<usize, Error> {
        let n = std::mem::take(&mut self.unpublished);
        if self.producer.publish() {
            sys::bell_ring(&self.their_data);
            self.counters
                .doorbells_signalled
                .fetch_add(1, Ordering::Relaxed);
        } else if n > 0 {
            self.counters
                .doorbells_suppressed
                .fetch_add(1, Ordering::Relaxed);
        }
        if self.link.gone.load(Ordering::Relaxed) {
            return Err(Error::PeerClosed);
        }
        Ok(n)
    }

    fn wait_room(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        if self.link.check_hangup() {
            return Err(Error::PeerClosed);
        }
        match self.producer.prepare_wait_for_room(1) {
            Ok(true) => {
                self.bell_armed = false;
                let r = self.link.sleep(&self.my_room, deadline);
                self.producer.finish_wait_for_room();
                r?;
            }
            Ok(false) => {}
            Err(e) => return Err(ring_error(e)),
        }
        if self.link.gone.load(Ordering::Relaxed) {
            return Err(Error::PeerClosed);
        }
        Ok(())
    }
}

impl TxSession {
    /// Published records the consumer has not released, from the shared
    /// indices (the consumer's is clamped: it is the other side's word).
    fn unconsumed(&self) -> usize {
        let fill = self
            .counters
            .rings
            .get()
            .map_or(0, |(m, tx, _)| m.ring_fill(*tx));
        fill.min(self.producer.capacity()) as usize
    }

    /// Sleeps until the consumer released everything, hangs up, or `deadline`.
    fn wait_drained(&mut self, deadline: Instant) -> Result<(), Error> {
        let cap = self.producer.capacity();
        match self.producer.prepare_wait_for_room(cap) {
            Ok(true) => {
                self.bell_armed = false;
                let r = self.link.sleep(&self.my_room, Some(deadline));
                self.producer.finish_wait_for_room();
                r?;
            }
            Ok(false) => {}
            Err(e) => return Err(ring_error(e)),
        }
        if self.link.gone.load(Ordering::Relaxed) {
            return Err(Error::PeerClosed);
        }
        Ok(())
    }

    /// Readiness contract (docs/client-api.md): drain the bell, then ask
    /// for a ring [O5] and re-check; `Ok(true)` = full, the fd will turn
    /// readable when room appears or the peer hangs up.
    fn arm(&mut self) -> Result<bool, Error> {
        if self.link.check_hangup() {
            return Err(Error::PeerClosed);
        }
        sys::bell_drain(&self.my_room);
        let full = self.producer.prepare_wait_for_room(1).map_err(ring_error)?;
        self.bell_armed = full;
        Ok(full)
    }
}

impl Drop for TxSession {
    fn drop(&mut self) {
        // Hang up this direction [O8]; wake the consumer if it sleeps.
        if self.producer.close() {
            sys::bell_ring(&self.their_data);
        }
    }
}

impl RxSession {
    /// Copies up to a batch of records out of the ring into private memory
    /// and releases their slots at once (one release store and one [O7]
    /// check per batch). Returns how many were taken.
    fn refill(&mut self) -> Result<usize, Error> {
        self.queue.clear();
        self.queue_pos = 0;
        let batch = match self.consumer.peek_batch(self.batch_max) {
            Ok(b) => b,
            Err(PeekError::Empty) => return Ok(0),
            Err(PeekError::Closed) => return Err(Error::PeerClosed),
            Err(PeekError::Protocol(e)) => return Err(ring_error(e)),
        };
        let slot = self.slot_size;
        let mut taken = 0u32;
        for i in 0..batch.len() {
            match batch.get(i) {
                Some(Ok(entry)) => {
                    // Copy the whole record out of shared memory first:
                    // everything later checks and decrypts the copy only.
                    let off = i as usize * slot;
                    let len = entry.len();
                    let ok = entry.read_payload(&mut self.buf[off..off + slot]) == Ok(len);
                    self.queue.push((off, len, ok));
                    taken += 1;
                }
                Some(Err(e)) if taken == 0 => return Err(ring_error(e)),
                Some(Err(_)) | None => break,
            }
        }
        batch.release_first(taken);
        // Data again after an epoll user's arm(): stop asking for doorbells
        // (a no-op unless NEED_WAKEUP is set).
        self.consumer.finish_sleep();
        if self.consumer.producer_wants_wakeup() {
            sys::bell_ring(&self.their_room);
            self.counters
                .doorbells_signalled
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(taken as usize)
    }

    fn next(&mut self) -> Result<Option<MessageMeta>, Error> {
        debug_assert!(self.current.is_none());
        if self.queue_pos == self.queue.len() && self.refill()? == 0 {
            self.empty_polls = self.empty_polls.wrapping_add(1);
            let gone = self.link.gone.load(Ordering::Relaxed)
                || (self.empty_polls % HANGUP_CHECK_EVERY == 0 && self.link.check_hangup());
            if !gone {
                // Would block: clear the readiness fd (see TxSession::reserve).
                if self.bell_armed {
                    self.bell_armed = false;
                    sys::bell_drain(&self.my_data);
                }
                return Ok(None);
            }
            // The peer is gone: take what it published before it died (its
            // stores are visible once we saw the hang-up), then report it.
            if self.refill()? == 0 {
                return Err(Error::PeerClosed);
            }
        }
        let (off, rec_len, copied) = self.queue[self.queue_pos];
        self.queue_pos += 1;
        let opened = if copied && rec_len >= OVERHEAD {
            self.opener.open_next(&mut self.buf[off..off + rec_len])
        } else {
            // Keep the sequence accounting: this record is spent.
            let mut spent = [0u8; 0];
            let _ = self.opener.open_next(&mut spent);
            Err(Error::AuthenticationFailed)
        };
        match opened {
            Ok((hdr, jumped)) => {
                if jumped > 0 {
                    self.counters
                        .rekeys
                        .fetch_add(jumped as u64, Ordering::Relaxed);
                    self.counters.rx_epoch.store(hdr.epoch, Ordering::Relaxed);
                }
                self.counters.opened_msgs.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .opened_bytes
                    .fetch_add(hdr.len as u64, Ordering::Relaxed);
                let meta = MessageMeta {
                    seq: hdr.seq,
                    timestamp_ns: hdr.timestamp_ns,
                    len: hdr.len as usize,
                    msg_type: hdr.type_,
                    epoch: hdr.epoch,
                    sender: self.sender,
                };
                self.current = Some(meta);
                self.current_off = off;
                Ok(Some(meta))
            }
            Err(e) => {
                self.counters.auth_failures.fetch_add(1, Ordering::Relaxed);
                // Never deliver any of it; wipe the private copy.
                let wipe = rec_len.min(self.slot_size);
                self.buf[off..off + wipe].fill(0);
                Err(e)
            }
        }
    }

    /// Plaintext of the current message.
    fn current_payload(&self) -> &[u8] {
        match self.current {
            Some(m) => {
                &self.buf[self.current_off + HEADER_LEN..self.current_off + HEADER_LEN + m.len]
            }
            None => &[],
        }
    }

    /// Done with the current message: its plaintext does not outlive it.
    fn release_current(&mut self) {
        if let Some(m) = self.current.take() {
            let at = self.current_off + HEADER_LEN;
            self.buf[at..at + m.len].fill(0);
        }
    }

    fn wait_data(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        match self.consumer.prepare_sleep() {
            Ok(true) => {
                self.bell_armed = false;
                let r = self.link.sleep(&self.my_data, deadline);
                self.consumer.finish_sleep();
                r
            }
            Ok(false) => Ok(()),
            Err(e) => Err(ring_error(e)),
        }
    }
}

impl RxSession {
    /// Readiness contract (docs/client-api.md): drain the bell, then ask
    /// for a ring [O7] and re-check; `Ok(true)` = empty, the fd will turn
    /// readable when a message arrives or the peer hangs up.
    fn arm(&mut self) -> Result<bool, Error> {
        if self.queue_pos < self.queue.len() {
            return Ok(false);
        }
        sys::bell_drain(&self.my_data);
        let empty = self.consumer.prepare_sleep().map_err(ring_error)?;
        self.bell_armed = empty;
        Ok(empty)
    }
}

impl Drop for RxSession {
    fn drop(&mut self) {
        // Hang up this direction [O8]; wake the producer if it waits for room.
        if self.consumer.close() {
            sys::bell_ring(&self.their_room);
        }
    }
}

// ---------------------------------------------------------------------------
// The two halves handed to the public API
// ---------------------------------------------------------------------------

/// The listener's hand-over: each half takes its session; a half dropped
/// before that marks itself gone so its session is closed at once.
///
/// States, all under `Pending::slot`'s lock (handshake threads, the owner's
/// halves): `attached == false` (no peer yet; any number of handshakes may
/// be running), then `attached == true` with the sessions deposited, then
/// taken by the halves. The first handshake to finish and find
/// `attached == false` sets it and is the peer; later ones are refused Busy.
#[derive(Default)]
struct Deposit {
    tx: Option<TxSession>,
    rx: Option<RxSession>,
    tx_gone: bool,
    rx_gone: bool,
    attached: bool,
}

/// Where the owner's listener deposits the session for the owner's halves.
struct Pending {
    slot: Mutex<Deposit>,
    ready: Condvar,
    stop: OwnedFd,
    /// Signalled once when a session is deposited (never drained): the
    /// owner's readiness fds are readable from then until each half picks
    /// its session up.
    attached_evt: OwnedFd,
    /// The listener thread, joined on drop.
    listener: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Both owner halves are gone: stop the listener thread and wait for
        // it, so the name is free once the owner's drop returns. It never
        // blocks (it only polls and accepts), so neither does this join.
        sys::eventfd_signal(&self.stop);
        let handle = self.listener.get_mut().ok().and_then(|h| h.take());
        if let Some(h) = handle {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }
}

enum TxState {
    Waiting(Arc<Pending>),
    Ready(Box<TxSession>),
}

enum RxState {
    Waiting(Arc<Pending>),
    Ready(Box<RxSession>),
}

struct UsTx {
    state: TxState,
    /// Owner only: keeps the listener running (refusing later attachers
    /// with `Busy`) for as long as this half lives.
    _listener: Option<Arc<Pending>>,
    max_payload: usize,
    staging_fallback: Vec<u8>,
    counters: Arc<Counters>,
    /// The readiness fd handed out by `as_raw_fd()`: an epoll set that is
    /// the same for the half's whole life (before attach it holds the
    /// owner's attach notification, after it the bell and the link).
    ready: OwnedFd,
}

struct UsRx {
    state: RxState,
    /// Owner only: as in [`UsTx`].
    _listener: Option<Arc<Pending>>,
    max_payload: usize,
    counters: Arc<Counters>,
    /// As in [`UsTx`].
    ready: OwnedFd,
}

impl UsTx {
    /// Picks up the session if the listener has finished one.
    fn session(&mut self) -> Option<&mut TxSession> {
        if let TxState::Waiting(p) = &self.state {
            let taken = p.slot.lock().ok().and_then(|mut g| g.tx.take());
            match taken {
                Some(s) => {
                    sys::epoll_del(&self.ready, p.attached_evt.as_raw_fd());
                    // Cannot fail for fresh, distinct fds short of ENOMEM;
                    // then the fd only misses wake-ups the caller's
                    // timeouts cover.
                    let _ = sys::epoll_add(&self.ready, s.my_room.as_raw_fd());
                    let _ = sys::epoll_add(&self.ready, s.link.sock.as_raw_fd());
                    self.state = TxState::Ready(Box::new(s));
                }
                None => return None,
            }
        }
        match &mut self.state {
            TxState::Ready(s) => Some(s),
            TxState::Waiting(_) => None,
        }
    }
}

impl UsRx {
    fn session(&mut self) -> Option<&mut RxSession> {
        if let RxState::Waiting(p) = &self.state {
            let taken = p.slot.lock().ok().and_then(|mut g| g.rx.take());
            match taken {
                Some(s) => {
                    sys::epoll_del(&self.ready, p.attached_evt.as_raw_fd());
                    // As in UsTx::session.
                    let _ = sys::epoll_add(&self.ready, s.my_data.as_raw_fd());
                    let _ = sys::epoll_add(&self.ready, s.link.sock.as_raw_fd());
                    self.state = RxState::Ready(Box::new(s));
                }
                None => return None,
            }
        }
        match &mut self.state {
            RxState::Ready(s) => Some(s),
            RxState::Waiting(_) => None,
        }
    }
}

/// Waits on the pending slot's condvar for the listener to attach a peer.
fn wait_attach(p: &Pending, deadline: Option<Instant>, tx: bool) {
    let Ok(guard) = p.slot.lock() else { return };
    let ready = |g: &Deposit| if tx { g.tx.is_some() } else { g.rx.is_some() };
    if ready(&guard) {
        return;
    }
    let t = deadline
        .map(|d| d.saturating_duration_since(Instant::now()))
        .unwrap_or(Duration::from_secs(3600));
    let _ = p.ready.wait_timeout_while(guard, t, |g| !ready(g));
}

impl Drop for UsTx {
    fn drop(&mut self) {
        if let TxState::Waiting(p) = &self.state {
            let late = p.slot.lock().ok().and_then(|mut g| {
                g.tx_gone = true;
                g.tx.take()
            });
            drop(late);
        }
    }
}

impl Drop for UsRx {
    fn drop(&mut self) {
        if let RxState::Waiting(p) = &self.state {
            let late = p.slot.lock().ok().and_then(|mut g| {
                g.rx_gone = true;
                g.rx.take()
            });
            drop(late);
        }
    }
}

impl TxBackend for UsTx {
    fn max_message_size(&self) -> usize {
        self.max_payload
    }
    fn reserve(&mut self) -> Result<bool, Error> {
        match self.session() {
            Some(s) => s.reserve(),
            None => Ok(false),
        }
    }
    fn buf(&self) -> &[u8] {
        match &self.state {
            TxState::Ready(s) => &s.staging[..s.max_payload],
            TxState::Waiting(_) => &self.staging_fallback,
        }
    }
    fn buf_mut(&mut self) -> &mut [u8] {
        match &mut self.state {
            TxState::Ready(s) => &mut s.staging[..s.max_payload],
            TxState::Waiting(_) => &mut self.staging_fallback,
        }
    }
    fn commit(&mut self, len: usize, msg_type: u16) -> Result<(), Error> {
        match self.session() {
            Some(s) => s.commit(len, msg_type),
            None => Err(Error::NotConnected),
        }
    }
    fn flush(&mut self) -> Result<usize, Error> {
        match self.session() {
            Some(s) => s.flush(),
            None => Ok(0),
        }
    }
    fn wait_room(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        if let Some(s) = self.session() {
            return s.wait_room(deadline);
        }
        if let TxState::Waiting(p) = &self.state {
            wait_attach(p, deadline, true);
        }
        Ok(())
    }
    fn arm(&mut self) -> Result<bool, Error> {
        match self.session() {
            Some(s) => s.arm(),
            None => Err(Error::NotConnected),
        }
    }
    fn undelivered(&mut self) -> Result<usize, Error> {
        match self.session() {
            Some(s) => {
                let n = s.unconsumed();
                if n > 0 && s.link.check_hangup() {
                    return Err(Error::PeerClosed);
                }
                Ok(n)
            }
            None => Ok(0),
        }
    }
    fn undelivered_after_hangup(&mut self) -> usize {
        self.session().map_or(0, |s| s.unconsumed())
    }
    fn wait_delivered(&mut self, deadline: Instant) -> Result<(), Error> {
        match self.session() {
            Some(s) => s.wait_drained(deadline),
            None => Ok(()),
        }
    }
    fn rekey(&mut self) -> Result<u32, Error> {
        match self.session() {
            Some(s) => {
                let e = s.sealer.rekey();
                s.counters.rekeys.fetch_add(1, Ordering::Relaxed);
                s.counters.tx_epoch.store(e, Ordering::Relaxed);
                Ok(e)
            }
            None => Err(Error::NotConnected),
        }
    }
    fn stats(&self) -> Result<Stats, Error> {
        Ok(self.counters.snapshot())
    }
    fn raw_fd(&self) -> RawFd {
        self.ready.as_raw_fd()
    }
}

impl RxBackend for UsRx {
    fn max_message_size(&self) -> usize {
        self.max_payload
    }
    fn next(&mut self) -> Result<Option<MessageMeta>, Error> {
        match self.session() {
            Some(s) => s.next(),
            None => Ok(None),
        }
    }
    fn payload(&self) -> &[u8] {
        match &self.state {
            RxState::Ready(s) => s.current_payload(),
            RxState::Waiting(_) => &[],
        }
    }
    fn release(&mut self) {
        if let RxState::Ready(s) = &mut self.state {
            s.release_current();
        }
    }
    fn wait_data(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        if let Some(s) = self.session() {
            return s.wait_data(deadline);
        }
        if let RxState::Waiting(p) = &self.state {
            wait_attach(p, deadline, false);
        }
        Ok(())
    }
    fn arm(&mut self) -> Result<bool, Error> {
        match self.session() {
            Some(s) => s.arm(),
            None => Err(Error::NotConnected),
        }
    }
    fn peer_credentials(&self) -> Result<PeerCredentials, Error> {
        match &self.state {
            RxState::Ready(s) => Ok(s.peer),
            RxState::Waiting(p) => match p.slot.lock() {
                Ok(g) => g.rx.as_ref().map(|s| s.peer).ok_or(Error::NotConnected),
                Err(_) => Err(Error::NotConnected),
            },
        }
    }
    fn stats(&self) -> Result<Stats, Error> {
        Ok(self.counters.snapshot())
    }
    fn raw_fd(&self) -> RawFd {
        self.ready.as_raw_fd()
    }
}

// ---------------------------------------------------------------------------
// Session construction (both sides)
// ---------------------------------------------------------------------------

struct Geometry {
    slots: u32,
    slot_size: u32,
    layout: RingLayout,
}

impl Geometry {
    fn new(slots: u32, slot_size: u32) -> Result<Self, Error> {
        if (slot_size as usize) <= OVERHEAD {
            return Err(Error::InvalidGeometry);
        }
        let layout =
            RingLayout::new::<TxDesc>(slots, slot_size).map_err(|_| Error::InvalidGeometry)?;
        Ok(Self {
            slots,
            slot_size,
            layout,
        })
    }
    fn ring_bytes(&self) -> usize {
        self.layout.ring_bytes()
    }
    fn max_payload(&self) -> usize {
        self.slot_size as usize - OVERHEAD
    }
}

struct Keys {
    channel_id: u64,
    o2p_key: Zeroizing<[u8; 32]>,
    o2p_salt: [u8; 4],
    p2o_key: Zeroizing<[u8; 32]>,
    p2o_salt: [u8; 4],
}

struct SessionParts<'a> {
    owner: bool,
    geo: &'a Geometry,
    mapping: Arc<Mapping>,
    bells: Bells,
    keys: Keys,
    link: Arc<Link>,
    counters: Arc<Counters>,
    peer: PeerCredentials,
    opts: &'a Options,
}

fn build_session(p: SessionParts<'_>) -> Result<Session, Error> {
    let rb = p.geo.ring_bytes();
    let (tx_off, rx_off) = if p.owner { (0, rb) } else { (rb, 0) };
    let layout_err = |e: secure_ipc_ring::LayoutError| Error::Protocol(format!("shared ring: {e}"));
    let producer = p.mapping.producer(tx_off, rb).map_err(layout_err)?;
    let consumer = p.mapping.consumer(rx_off, rb).map_err(layout_err)?;
    let k = p.keys;
    let (tx_dir, rx_dir) = if p.owner {
        (abi::SIPC_DIR_OWNER_TO_PEER, abi::SIPC_DIR_PEER_TO_OWNER)
    } else {
        (abi::SIPC_DIR_PEER_TO_OWNER, abi::SIPC_DIR_OWNER_TO_PEER)
    };
    let (tx_key, tx_salt, rx_key, rx_salt) = if p.owner {
        (k.o2p_key, k.o2p_salt, k.p2o_key, k.p2o_salt)
    } else {
        (k.p2o_key, k.p2o_salt, k.o2p_key, k.o2p_salt)
    };
    let max = p.geo.max_payload();
    let _ = p.counters.rings.set((p.mapping.clone(), tx_off, rx_off));
    // Records copied out per batch: up to 32, at most 256 KiB of copies.
    let rx_batch = ((256 * 1024) / p.geo.slot_size)
        .clamp(1, 32)
        .min(p.geo.slots);
    let tx = TxSession {
        producer,
        sealer: Sealer::new(
            k.channel_id,
            tx_dir,
            tx_key,
            tx_salt,
            p.opts.rekey_records,
            p.opts.rekey_bytes,
        ),
        staging: vec![0u8; max],
        max_payload: max,
        link: p.link.clone(),
        my_room: p.bells.my_room,
        their_data: p.bells.their_data,
        counters: p.counters.clone(),
        unpublished: 0,
        was_full: false,
        bell_armed: false,
    };
    let rx = RxSession {
        consumer,
        opener: Opener::new(k.channel_id, rx_dir, rx_key, rx_salt),
        buf: vec![0u8; rx_batch as usize * p.geo.slot_size as usize],
        slot_size: p.geo.slot_size as usize,
        batch_max: rx_batch,
        queue: Vec::with_capacity(rx_batch as usize),
        queue_pos: 0,
        current_off: 0,
        link: p.link,
        my_data: p.bells.my_data,
        their_room: p.bells.their_room,
        counters: p.counters,
        sender: p.peer.cred,
        peer: p.peer,
        current: None,
        empty_polls: 0,
        bell_armed: false,
    };
    Ok(Session { tx, rx })
}

/// Who is on the other end of a rendezvous socket, from what the kernel
/// captured when that process connected (or bound the listener): never
/// from `/proc/PID` alone, which a process can leave for a reused PID.
struct SocketPeer {
    creds: PeerCredentials,
    /// Supplementary groups (`SO_PEERGROUPS`); `None` where the kernel
    /// lacks it, and then a gid policy admits the primary gid only.
    groups: Option<Vec<u32>>,
    /// Whether the namespace inodes in `creds` are known race-free (from
    /// `SO_PEERPIDFD`); without them a pid-namespace policy refuses.
    namespaces_known: bool,
}

fn socket_peer(sock: &OwnedFd) -> Result<SocketPeer, Error> {
    let (pid, uid, gid) = sys::peer_cred(sock)?;
    let groups = sys::peer_groups(sock);
    let ns = sys::peer_pidfd(sock).and_then(|pidfd| sys::pidfd_namespaces(&pidfd));
    let (pidns_ino, userns_ino) = ns.unwrap_or((0, 0));
    Ok(SocketPeer {
        creds: PeerCredentials {
            cred: Credentials { pid, uid, gid },
            pidns_ino,
            userns_ino,
            identity_verified: false,
        },
        groups,
        namespaces_known: ns.is_some(),
    })
}

/// The policy check of an attach, from the connecting socket's credentials.
/// Fails closed: a field the kernel cannot attest does not match.
fn policy_allows(policy: &PeerPolicy, peer: &SocketPeer) -> bool {
    let c = &peer.creds;
    if let Some(uid) = policy.uid {
        if c.cred.uid != uid {
            return false;
        }
    }
    if let Some(gid) = policy.gid {
        let in_groups = peer.groups.as_ref().is_some_and(|g| g.contains(&gid));
        if c.cred.gid != gid && !in_groups {
            return false;
        }
    }
    if let Some(ns) = &policy.pidns {
        if !peer.namespaces_known || c.pidns_ino != ns.ino() {
            return false;
        }
    }
    true
}

/// Receives one handshake packet by `deadline`; control messages refused.
fn recv_plain(sock: &OwnedFd, buf: &mut [u8], deadline: Instant) -> Result<usize, Error> {
    match sys::recv_plain_packet(sock, buf, deadline) {
        Ok(0) => Err(proto("the other side closed the rendezvous socket")),
        Ok(n) => Ok(n),
        Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(Error::TimedOut),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => Err(Error::Protocol(e.to_string())),
        Err(e) => Err(Error::Io(e)),
    }
}

fn refusal_of(n: usize, buf: &[u8]) -> Option<Error> {
    (n == 12 && &buf[..8] == MAGIC_REFUSE)
        .then(|| refusal_error(u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]])))
}

fn refuse(sock: &OwnedFd, why: Refusal) {
    let mut v = MAGIC_REFUSE.to_vec();
    v.extend_from_slice(&(why as u32).to_le_bytes());
    let _ = sys::send_packet(sock, &v, &[]);
}

fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    b
}

// ---------------------------------------------------------------------------
// Owner
// ---------------------------------------------------------------------------

/// Handshakes the listener serves at once; a connection beyond them is
/// refused with `Busy` at once rather than queued behind them.
const MAX_HANDSHAKES: usize = 32;

/// A finished owner-side handshake: the session and the ACCEPT still to send.
struct Accepted {
    session: Session,
    packet: Vec<u8>,
    fds: Vec<OwnedFd>,
}

/// What every handshake thread of one channel shares.
struct ChannelSetup {
    name: String,
    name32: [u8; 32],
    geo: Geometry,
    opts: Options,
    /// The policy in force ([`Options::effective_policy`]).
    policy: PeerPolicy,
    pending: Weak<Pending>,
    counters: Arc<Counters>,
    /// Handshakes in flight (at most [`MAX_HANDSHAKES`]).
    active: AtomicUsize,
}

/// State the listener thread needs.
struct Listener {
    setup: Arc<ChannelSetup>,
    listen: OwnedFd,
    stop: OwnedFd,
    path: Option<PathBuf>,
}

/// The rendezvous directory: the explicit one, else this uid's runtime
/// directory where it exists, else none (the abstract name).
fn rendezvous_dir(opts: &Options) -> Option<PathBuf> {
    if let Some(d) = &opts.socket_dir {
        return Some(d.clone());
    }
    if opts.abstract_socket {
        return None;
    }
    default_runtime_dir()
}

/// `$XDG_RUNTIME_DIR/secure_ipc`, created mode 0700, if `$XDG_RUNTIME_DIR`
/// is an absolute directory of this uid that nobody else can write, and the
/// subdirectory is a real directory (not a symlink) of this uid that only it
/// can enter. Anything else: `None`.
fn default_runtime_dir() -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let base = PathBuf::from(std::env::var_os("XDG_RUNTIME_DIR")?);
    if !base.is_absolute() {
        return None;
    }
    let me = sys::geteuid();
    let owned_by_me = |p: &std::path::Path, forbidden: u32| {
        std::fs::symlink_metadata(p)
            .is_ok_and(|m| m.is_dir() && m.uid() == me && m.mode() & forbidden == 0)
    };
    if !owned_by_me(&base, 0o022) {
        return None;
    }
    let dir = base.join("secure_ipc");
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    owned_by_me(&dir, 0o077).then_some(dir)
}

fn rendezvous_addr<'a>(abs: &'a [u8], path: &'a Option<PathBuf>) -> SockAddr<'a> {
    match path {
        Some(p) => SockAddr::Path(p),
        None => SockAddr::Abstract(abs),
    }
}

fn connect_to(name: &str, opts: &Options) -> Result<OwnedFd, Error> {
    let abs = abstract_name(name);
    let path = rendezvous_dir(opts).map(|d| socket_path(&d, name));
    sys::connect(&rendezvous_addr(&abs, &path)).map_err(|e| match e.raw_os_error() {
        Some(libc::ECONNREFUSED) | Some(libc::ENOENT) => Error::NoSuchChannel,
        Some(libc::EACCES) => Error::NotPermitted,
        _ => Error::Io(e),
    })
}

/// Creates the channel: binds the rendezvous socket and starts the listener.
pub(crate) fn create(name: &str, opts: &Options) -> Result<Endpoint, Error> {
    let name32 = encode_name(name)?;
    let geo = Geometry::new(opts.slots, opts.slot_size)?;
    let abs = abstract_name(name);
    let path = rendezvous_dir(opts).map(|d| socket_path(&d, name));
    let addr = rendezvous_addr(&abs, &path);
    let listen = match sys::listen(&addr) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => {
            // A socket file left by an owner that died: reuse it if nobody listens.
            match (&path, sys::connect(&addr)) {
                (Some(p), Err(ce)) if ce.raw_os_error() == Some(libc::ECONNREFUSED) => {
                    std::fs::remove_file(p)?;
                    sys::listen(&addr)?
                }
                _ => return Err(Error::ChannelExists),
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => return Err(Error::NotPermitted),
        Err(e) => return Err(Error::Io(e)),
    };
    let stop = sys::eventfd()?;
    let counters = Arc::new(Counters::default());
    let pending = Arc::new(Pending {
        slot: Mutex::new(Deposit::default()),
        ready: Condvar::new(),
        stop: stop.try_clone()?,
        attached_evt: sys::eventfd()?,
        listener: Mutex::new(None),
    });
    let ready_of_half = || -> Result<OwnedFd, Error> {
        let ep = sys::epoll()?;
        sys::epoll_add(&ep, pending.attached_evt.as_raw_fd())?;
        Ok(ep)
    };
    let (tx_ready, rx_ready) = (ready_of_half()?, ready_of_half()?);
    let max = geo.max_payload();
    let listener = Listener {
        setup: Arc::new(ChannelSetup {
            name: name.to_string(),
            name32,
            geo,
            policy: opts.effective_policy(),
            opts: opts.clone(),
            pending: Arc::downgrade(&pending),
            counters: counters.clone(),
            active: AtomicUsize::new(0),
        }),
        listen,
        stop,
        path,
    };
    let handle = std::thread::Builder::new()
        .name(format!("sipc-listen-{name}"))
        .spawn(move || listener.run())?;
    if let Ok(mut g) = pending.listener.lock() {
        *g = Some(handle);
    }
    Ok(Endpoint {
        tx: Box::new(UsTx {
            state: TxState::Waiting(pending.clone()),
            _listener: Some(pending.clone()),
            max_payload: max,
            staging_fallback: vec![0u8; max],
            counters: counters.clone(),
            ready: tx_ready,
        }),
        rx: Box::new(UsRx {
            state: RxState::Waiting(pending.clone()),
            _listener: Some(pending),
            max_payload: max,
            counters,
            ready: rx_ready,
        }),
    })
}

/// Gives a handshake slot back when its thread ends, however it ends.
struct HandshakeSlot(Arc<ChannelSetup>);

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Listener {
    /// Accepts connections until both owner halves are gone. Never waits on
    /// a connection: credentials are checked right after accept, and each
    /// admitted handshake runs on its own thread with its own deadline.
    fn run(self) {
        while let Ok(ready) = sys::poll(&[self.listen.as_raw_fd(), self.stop.as_raw_fd()], None) {
            if ready[1].readable || self.setup.pending.strong_count() == 0 {
                break;
            }
            if !ready[0].readable {
                continue;
            }
            // Non-blocking listener: a connection aborted since the poll is
            // EAGAIN here, not a stall.
            let Ok(sock) = sys::accept(&self.listen) else {
                continue;
            };
            self.admit(sock);
        }
        // Release the name before the owner's drop returns (it joins us).
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }

    fn admit(&self, sock: OwnedFd) {
        let Ok(peer) = socket_peer(&sock) else {
            return;
        };
        let uid = peer.creds.cred.uid;
        let may_stats = uid == sys::geteuid() || uid == 0;
        let may_attach = policy_allows(&self.setup.policy, &peer);
        if !may_stats && !may_attach {
            refuse(&sock, Refusal::NotPermitted);
            return;
        }
        if self.setup.active.fetch_add(1, Ordering::AcqRel) >= MAX_HANDSHAKES {
            self.setup.active.fetch_sub(1, Ordering::AcqRel);
            refuse(&sock, Refusal::Busy);
            return;
        }
        let slot = HandshakeSlot(self.setup.clone());
        let setup = self.setup.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("sipc-hs-{}", setup.name))
            .spawn(move || {
                let _slot = slot;
                let _ = serve(&setup, &sock, peer, may_stats, may_attach);
            });
        // A failed spawn drops the closure, its slot and the socket.
        let _ = spawned;
    }
}

/// Handles one admitted connection by its own deadline.
fn serve(
    setup: &ChannelSetup,
    sock: &OwnedFd,
    peer: SocketPeer,
    may_stats: bool,
    may_attach: bool,
) -> Result<(), Error> {
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let mut buf = [0u8; 256];
    let n = match recv_plain(sock, &mut buf, deadline) {
        Ok(n) => n,
        Err(e) => {
            refuse(sock, Refusal::Protocol);
            return Err(e);
        }
    };
    if n == 8 && &buf[..8] == MAGIC_STATS {
        // Counters are for the owner's own user (or root) only.
        if may_stats {
            let _ = sys::send_packet(sock, &Counters::to_wire(&setup.counters.snapshot()), &[]);
        } else {
            refuse(sock, Refusal::NotPermitted);
        }
        return Ok(());
    }
    if n != 8 || &buf[..8] != MAGIC_ATTACH {
        refuse(sock, Refusal::Protocol);
        return Ok(());
    }
    if !may_attach {
        refuse(sock, Refusal::NotPermitted);
        return Ok(());
    }
    let Some(pending) = setup.pending.upgrade() else {
        return Ok(());
    };
    let busy = pending.slot.lock().map_or(true, |g| g.attached);
    // Not held across the handshake: the owner's drop must not wait for it.
    drop(pending);
    if busy {
        refuse(sock, Refusal::Busy);
        return Ok(());
    }
    let acc = match handshake(setup, sock, peer.creds, deadline) {
        Ok(acc) => acc,
        Err(e) => {
            let why = match e {
                Error::IdentityRejected => Refusal::IdentityRejected,
                Error::PskMismatch => Refusal::PskMismatch,
                _ => Refusal::Protocol,
            };
            refuse(sock, why);
            return Err(e);
        }
    };
    let Some(pending) = setup.pending.upgrade() else {
        return Ok(());
    };
    // Claim the channel: of handshakes that finish together, the first to
    // take the lock is the peer, the others are Busy. The session is
    // handed to the owner's halves before the peer learns it is attached,
    // so anything the peer does next finds the owner ready. If the ACCEPT
    // does not arrive, the peer closes and the owner sees the hang-up.
    let Session { tx, rx } = acc.session;
    let mut closed = (None, None);
    let claimed = match pending.slot.lock() {
        Ok(mut g) if !g.attached => {
            g.attached = true;
            if g.tx_gone {
                closed.0 = Some(tx);
            } else {
                g.tx = Some(tx);
            }
            if g.rx_gone {
                closed.1 = Some(rx);
            } else {
                g.rx = Some(rx);
            }
            true
        }
        _ => false,
    };
    if !claimed {
        refuse(sock, Refusal::Busy);
        return Ok(());
    }
    // Halves the owner dropped already hang up right away.
    drop(closed);
    pending.ready.notify_all();
    sys::eventfd_signal(&pending.attached_evt);
    drop(pending);
    let fds: Vec<&OwnedFd> = acc.fds.iter().collect();
    let _ = sys::send_packet(sock, &acc.packet, &fds);
    Ok(())
}

fn handshake(
    setup: &ChannelSetup,
    sock: &OwnedFd,
    mut peer: PeerCredentials,
    deadline: Instant,
) -> Result<Accepted, Error> {
    let opts = &setup.opts;
    let owner_secret = StaticSecret::random_from_rng(OsRng);
    let owner_pub = PublicKey::from(&owner_secret).to_bytes();
    let nonce = random32();
    let mut channel_id_b = [0u8; 8];
    OsRng.fill_bytes(&mut channel_id_b);
    let channel_id = u64::from_le_bytes(channel_id_b);
    let mut flags = 0;
    if setup.policy.identity_pub.is_some() {
        flags |= HELLO_IDENTITY;
    }
    if opts.psk.is_some() {
        flags |= HELLO_OWNER_PSK;
    }
    if opts.identity.is_some() {
        flags |= HELLO_OWNER_IDENTITY;
    }
    let mut hello = MAGIC_HELLO.to_vec();
    hello.extend_from_slice(&flags.to_le_bytes());
    hello.extend_from_slice(&setup.geo.slots.to_le_bytes());
    hello.extend_from_slice(&setup.geo.slot_size.to_le_bytes());
    hello.extend_from_slice(&channel_id.to_le_bytes());
    hello.extend_from_slice(&owner_pub);
    hello.extend_from_slice(&nonce);
    sys::send_packet(sock, &hello, &[])?;

    let mut buf = [0u8; 256];
    let n = recv_plain(sock, &mut buf, deadline)?;
    if n != 8 + 4 + 96 || &buf[..8] != MAGIC_KEYS {
        return Err(proto("malformed KEYS packet"));
    }
    let peer_pub: [u8; 32] = buf[12..44].try_into().map_err(|_| proto("KEYS"))?;
    let proof: [u8; 32] = buf[44..76].try_into().map_err(|_| proto("KEYS"))?;
    let peer_confirm: [u8; 32] = buf[76..108].try_into().map_err(|_| proto("KEYS"))?;

    let eph = Zeroizing::new(
        owner_secret
            .diffie_hellman(&PublicKey::from(peer_pub))
            .to_bytes(),
    );
    let id_dh = match &setup.policy.identity_pub {
        Some(id_pub) => {
            let dh = Zeroizing::new(
                owner_secret
                    .diffie_hellman(&PublicKey::from(*id_pub))
                    .to_bytes(),
            );
            let t = keys::proof_transcript(&setup.name32, &owner_pub, &nonce, id_pub);
            if !keys::ct_eq(&keys::identity_proof(&dh, &t), &proof) {
                return Err(Error::IdentityRejected);
            }
            peer.identity_verified = true;
            Some(dh)
        }
        None => None,
    };
    drop(owner_secret);
    let k = keys::derive_session(&SessionInputs {
        name32: &setup.name32,
        owner_pub: &owner_pub,
        peer_pub: &peer_pub,
        eph_dh: &eph,
        identity_dh: id_dh.as_deref(),
        psk: opts.psk.as_deref(),
    });
    if !keys::ct_eq(&k.peer_confirm, &peer_confirm) {
        return Err(Error::PskMismatch);
    }
    // The owner's identity proof answers the attacher's ephemeral key.
    let owner_proof = match &opts.identity {
        Some(id) => {
            let id_pub = PublicKey::from(id).to_bytes();
            let dh = Zeroizing::new(id.diffie_hellman(&PublicKey::from(peer_pub)).to_bytes());
            let t =
                keys::owner_proof_transcript(&setup.name32, &owner_pub, &peer_pub, &nonce, &id_pub);
            keys::identity_proof(&dh, &t)
        }
        None => [0u8; 32],
    };

    // Shared memory and doorbells for this session only.
    let geo = &setup.geo;
    let rb = geo.ring_bytes();
    let memfd = sys::sealed_memfd(&setup.name, 2 * rb)?;
    let mapping = Mapping::new(&memfd, 2 * rb)?;
    mapping
        .init_ring(0, &geo.layout)
        .map_err(|e| Error::Protocol(e.to_string()))?;
    mapping
        .init_ring(rb, &geo.layout)
        .map_err(|e| Error::Protocol(e.to_string()))?;
    // (sleeping end, ringing end) of each doorbell; each side keeps the
    // sleeping ends of its own bells and the ringing ends of the other's.
    let (o_data, o_data_ring) = sys::bell_pair()?;
    let (o_room, o_room_ring) = sys::bell_pair()?;
    let (p_data, p_data_ring) = sys::bell_pair()?;
    let (p_room, p_room_ring) = sys::bell_pair()?;
    let mut accept = MAGIC_ACCEPT.to_vec();
    accept.extend_from_slice(&k.owner_confirm);
    accept.extend_from_slice(&owner_proof);
    let fds = vec![memfd, o_data_ring, o_room_ring, p_data, p_room];

    let keys = Keys {
        channel_id,
        o2p_key: Zeroizing::new(k.o2p_key),
        o2p_salt: k.o2p_salt,
        p2o_key: Zeroizing::new(k.p2o_key),
        p2o_salt: k.p2o_salt,
    };
    let link = Arc::new(Link {
        sock: sock.try_clone()?,
        gone: AtomicBool::new(false),
    });
    let session = build_session(SessionParts {
        owner: true,
        geo,
        mapping,
        bells: Bells {
            my_data: o_data,
            my_room: o_room,
            their_data: p_data_ring,
            their_room: p_room_ring,
        },
        keys,
        link,
        counters: setup.counters.clone(),
        peer,
        opts,
    })?;
    Ok(Accepted {
        session,
        packet: accept,
        fds,
    })
}

// ---------------------------------------------------------------------------
// Peer
// ---------------------------------------------------------------------------

/// Checks the process serving the name against the attacher's owner
/// policy, from the credentials the kernel captured when it bound the
/// socket, before anything is sent to it.
fn check_owner_uid(sock: &OwnedFd, policy: &OwnerPolicy) -> Result<(), Error> {
    if let Some(uid) = policy.uid {
        let (_, owner_uid, _) = sys::peer_cred(sock)?;
        if owner_uid != uid {
            return Err(Error::OwnerRejected);
        }
    }
    Ok(())
}

/// Attaches to the channel `name` over its rendezvous socket.
pub(crate) fn attach(name: &str, opts: &Options) -> Result<Endpoint, Error> {
    let name32 = encode_name(name)?;
    let sock = connect_to(name, opts)?;
    check_owner_uid(&sock, &opts.owner_policy)?;
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    // An owner that refuses us on our credentials alone answers right after
    // accept and closes: the ATTACH may then fail with EPIPE, but the REFUSE
    // is already queued for us, so read it either way.
    let sent = sys::send_packet(&sock, MAGIC_ATTACH, &[]);

    let mut buf = [0u8; 256];
    let n = match (recv_plain(&sock, &mut buf, deadline), sent) {
        (Ok(n), _) => n,
        (Err(_), Err(e)) => return Err(Error::Io(e)),
        (Err(e), Ok(())) => return Err(e),
    };
    if let Some(e) = refusal_of(n, &buf) {
        return Err(e);
    }
    if n != 8 + 4 + 4 + 4 + 8 + 32 + 32 || &buf[..8] != MAGIC_HELLO {
        return Err(proto("malformed HELLO packet"));
    }
    let u32_at = |i: usize| u32::from_le_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    let flags = u32_at(8);
    if opts.owner_policy.identity_pub.is_some() && flags & HELLO_OWNER_IDENTITY == 0 {
        return Err(Error::OwnerRejected);
    }
    let geo =
        Geometry::new(u32_at(12), u32_at(16)).map_err(|_| proto("HELLO geometry out of range"))?;
    let channel_id = u64::from_le_bytes(buf[20..28].try_into().map_err(|_| proto("HELLO"))?);
    let owner_pub: [u8; 32] = buf[28..60].try_into().map_err(|_| proto("HELLO"))?;
    let nonce: [u8; 32] = buf[60..92].try_into().map_err(|_| proto("HELLO"))?;

    let peer_secret = StaticSecret::random_from_rng(OsRng);
    let peer_pub = PublicKey::from(&peer_secret).to_bytes();
    let eph = Zeroizing::new(
        peer_secret
            .diffie_hellman(&PublicKey::from(owner_pub))
            .to_bytes(),
    );
    // The owner's proof, if we pin its identity, is keyed from
    // X25519(our ephemeral, owner identity): computed now, the secret dropped.
    let owner_proof_want = opts.owner_policy.identity_pub.map(|id_pub| {
        let dh = Zeroizing::new(
            peer_secret
                .diffie_hellman(&PublicKey::from(id_pub))
                .to_bytes(),
        );
        let t = keys::owner_proof_transcript(&name32, &owner_pub, &peer_pub, &nonce, &id_pub);
        keys::identity_proof(&dh, &t)
    });
    drop(peer_secret);
    let (proof, id_dh) = match (&opts.identity, flags & HELLO_IDENTITY != 0) {
        (Some(id), true) => {
            let (p, dh) = keys::prove_identity(id, &name32, &owner_pub, &nonce);
            (p, Some(dh))
        }
        _ => ([0u8; 32], None),
    };
    let k = keys::derive_session(&SessionInputs {
        name32: &name32,
        owner_pub: &owner_pub,
        peer_pub: &peer_pub,
        eph_dh: &eph,
        identity_dh: id_dh.as_deref(),
        psk: opts.psk.as_deref(),
    });
    let mut pkt = MAGIC_KEYS.to_vec();
    let kflags: u32 = if opts.psk.is_some() { KEYS_PEER_PSK } else { 0 };
    pkt.extend_from_slice(&kflags.to_le_bytes());
    pkt.extend_from_slice(&peer_pub);
    pkt.extend_from_slice(&proof);
    pkt.extend_from_slice(&k.peer_confirm);
    sys::send_packet(&sock, &pkt, &[])?;

    let (n, mut fds) = match sys::recv_packet_by(&sock, &mut buf, deadline) {
        Ok((0, _)) => return Err(proto("the owner closed the rendezvous socket")),
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(Error::TimedOut),
        Err(e) => return Err(Error::Io(e)),
    };
    if let Some(e) = refusal_of(n, &buf) {
        return Err(e);
    }
    if n != 8 + 32 + 32 || &buf[..8] != MAGIC_ACCEPT || fds.len() != 5 {
        return Err(proto("malformed ACCEPT packet"));
    }
    let owner_confirm: [u8; 32] = buf[8..40].try_into().map_err(|_| proto("ACCEPT"))?;
    if !keys::ct_eq(&owner_confirm, &k.owner_confirm) {
        return Err(Error::PskMismatch);
    }
    if let Some(want) = owner_proof_want {
        let got: [u8; 32] = buf[40..72].try_into().map_err(|_| proto("ACCEPT"))?;
        if !keys::ct_eq(&got, &want) {
            return Err(Error::OwnerRejected);
        }
    }
    let p_room = fds.pop().ok_or_else(|| proto("ACCEPT fds"))?;
    let p_data = fds.pop().ok_or_else(|| proto("ACCEPT fds"))?;
    let o_room = fds.pop().ok_or_else(|| proto("ACCEPT fds"))?;
    let o_data = fds.pop().ok_or_else(|| proto("ACCEPT fds"))?;
    let memfd = fds.pop().ok_or_else(|| proto("ACCEPT fds"))?;
    for bell in [&p_room, &p_data, &o_room, &o_data] {
        sys::check_bell(bell).map_err(|e| Error::Protocol(e.to_string()))?;
    }
    let rb = geo.ring_bytes();
    let (size, seals) = sys::memfd_size_and_seals(&memfd)?;
    if size != 2 * rb as u64 || seals & sys::REQUIRED_SEALS != sys::REQUIRED_SEALS {
        return Err(proto(
            "the shared memory is not a sealed memfd of the announced size",
        ));
    }
    let mapping = Mapping::new(&memfd, 2 * rb)?;
    let peer = socket_peer(&sock)?.creds;
    let keys = Keys {
        channel_id,
        o2p_key: Zeroizing::new(k.o2p_key),
        o2p_salt: k.o2p_salt,
        p2o_key: Zeroizing::new(k.p2o_key),
        p2o_salt: k.p2o_salt,
    };
    let counters = Arc::new(Counters::default());
    let link = Arc::new(Link {
        sock,
        gone: AtomicBool::new(false),
    });
    let session = build_session(SessionParts {
        owner: false,
        geo: &geo,
        mapping,
        bells: Bells {
            my_data: p_data,
            my_room: p_room,
            their_data: o_data,
            their_room: o_room,
        },
        keys,
        link,
        counters: counters.clone(),
        peer,
        opts,
    })?;
    let max = geo.max_payload();
    let ready_of_half = |bell: &OwnedFd| -> Result<OwnedFd, Error> {
        let ep = sys::epoll()?;
        sys::epoll_add(&ep, bell.as_raw_fd())?;
        sys::epoll_add(&ep, session.tx.link.sock.as_raw_fd())?;
        Ok(ep)
    };
    let tx_ready = ready_of_half(&session.tx.my_room)?;
    let rx_ready = ready_of_half(&session.rx.my_data)?;
    Ok(Endpoint {
        tx: Box::new(UsTx {
            state: TxState::Ready(Box::new(session.tx)),
            _listener: None,
            max_payload: max,
            staging_fallback: Vec::new(),
            counters: counters.clone(),
            ready: tx_ready,
        }),
        rx: Box::new(UsRx {
            state: RxState::Ready(Box::new(session.rx)),
            _listener: None,
            max_payload: max,
            counters,
            ready: rx_ready,
        }),
    })
}

/// Asks a running owner for its counters (`sipc stats`): same user or root only.
pub fn query_stats(name: &str, opts: &Options) -> Result<Stats, Error> {
    encode_name(name)?;
    let sock = connect_to(name, opts)?;
    check_owner_uid(&sock, &opts.owner_policy)?;
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let sent = sys::send_packet(&sock, MAGIC_STATS, &[]);
    let mut buf = [0u8; 256];
    let n = match (recv_plain(&sock, &mut buf, deadline), sent) {
        (Ok(n), _) => n,
        (Err(_), Err(e)) => return Err(Error::Io(e)),
        (Err(e), Ok(())) => return Err(e),
    };
    if let Some(e) = refusal_of(n, &buf) {
        return Err(e);
    }
    Counters::from_wire(&buf[..n]).ok_or_else(|| proto("malformed stats reply"))
}
