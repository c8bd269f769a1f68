//! One channel endpoint shared by the C ABI and the JNI bridge: a
//! [`Sender`] and a [`Receiver`] behind one lock each (so one thread may
//! send while another receives), bounded waits that notice a concurrent
//! close, and a count of live endpoints for leak tests.

use secure_ipc::{Channel, Error, Options, PeerCredentials, Receiver, Sender, Stats, WaitPolicy};
use std::fmt;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Longest single wait inside a blocking call: a concurrent
/// [`Endpoint::close`] is noticed within this time.
const WAIT_SLICE: Duration = Duration::from_millis(50);

/// Endpoints alive in this process (created and not yet dropped).
static LIVE_ENDPOINTS: AtomicUsize = AtomicUsize::new(0);

/// Number of endpoints alive in this process: the leak check of the tests.
pub fn live_endpoints() -> usize {
    // Relaxed: a statistic; no other memory is published through it.
    LIVE_ENDPOINTS.load(Ordering::Relaxed)
}

/// Why a bridge call failed.
#[derive(Debug)]
pub enum BridgeError {
    /// The channel reported an error.
    Channel(Error),
    /// This endpoint was closed (by this process) before or during the call.
    Closed,
    /// [`Endpoint::shutdown`] was called before or during the call.
    Shutdown,
    /// The caller passed something unusable (bad offsets, wrong key length...).
    InvalidArgument(String),
    /// The receive buffer cannot hold the next message, which stays queued.
    BufferTooSmall {
        /// Length of the waiting message.
        len: usize,
        /// Room the caller offered.
        room: usize,
    },
    /// A lock was poisoned by a panic in an earlier call on this endpoint.
    Poisoned,
}

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BridgeError::Channel(e) => write!(f, "{e}"),
            BridgeError::Closed => write!(f, "the channel endpoint is closed"),
            BridgeError::Shutdown => write!(
                f,
                "the endpoint was shut down (sipc_shutdown); close it to free it"
            ),
            BridgeError::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            BridgeError::BufferTooSmall { len, room } => write!(
                f,
                "the next message has {len} bytes but the buffer has room for {room}; \
                 it stays queued: receive again with a larger buffer"
            ),
            BridgeError::Poisoned => write!(
                f,
                "an earlier call on this endpoint failed internally; close it and reattach"
            ),
        }
    }
}

impl std::error::Error for BridgeError {}

impl From<Error> for BridgeError {
    fn from(e: Error) -> Self {
        BridgeError::Channel(e)
    }
}

impl BridgeError {
    /// The errno a C caller sees (positive).
    pub fn errno(&self) -> i32 {
        match self {
            BridgeError::Channel(e) => e.errno(),
            BridgeError::Closed => libc::EBADF,
            BridgeError::Shutdown => libc::ESHUTDOWN,
            BridgeError::InvalidArgument(_) => libc::EINVAL,
            BridgeError::BufferTooSmall { .. } => libc::EMSGSIZE,
            BridgeError::Poisoned => libc::EIO,
        }
    }
}

/// How long a call may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Until it succeeds, fails, or the endpoint is closed.
    Forever,
    /// Not at all.
    Never,
    /// Until this instant.
    Until(Instant),
}

impl Wait {
    /// From a nanosecond timeout: negative waits forever, 0 not at all.
    pub fn from_nanos(ns: i64) -> Wait {
        match u64::try_from(ns) {
            Err(_) => Wait::Forever,
            Ok(0) => Wait::Never,
            Ok(n) => Wait::until_after(Duration::from_nanos(n)),
        }
    }

    /// From a millisecond timeout: negative waits forever, 0 not at all.
    pub fn from_millis(ms: i64) -> Wait {
        match u64::try_from(ms) {
            Err(_) => Wait::Forever,
            Ok(0) => Wait::Never,
            Ok(n) => Wait::until_after(Duration::from_millis(n)),
        }
    }

    fn until_after(d: Duration) -> Wait {
        // A timeout too far out to represent is "forever".
        Instant::now()
            .checked_add(d)
            .map_or(Wait::Forever, Wait::Until)
    }

    /// How long the next wait may last; `None` once the deadline has passed.
    fn next_slice(self) -> Option<Duration> {
        match self {
            Wait::Forever => Some(WAIT_SLICE),
            Wait::Never => None,
            Wait::Until(d) => {
                let left = d.saturating_duration_since(Instant::now());
                (!left.is_zero()).then(|| left.min(WAIT_SLICE))
            }
        }
    }
}

/// What the stamp of a received message says (everything but the payload).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageInfo {
    /// Payload length in bytes.
    pub len: usize,
    /// Sender's message type.
    pub msg_type: u16,
    /// Sequence number in this direction.
    pub seq: u64,
    /// CLOCK_MONOTONIC at the sender's commit (ns).
    pub timestamp_ns: u64,
    /// Sender's pid as this process sees it (0 if not visible).
    pub pid: u32,
    /// Sender's uid.
    pub uid: u32,
    /// Sender's gid.
    pub gid: u32,
}

/// What a receive callback decides about the message it was shown.
pub enum Delivery<R> {
    /// The message was consumed; the call returns `R`.
    Taken(R),
    /// The message did not fit: keep it for the next receive, fail this one
    /// with [`BridgeError::BufferTooSmall`].
    TooSmall {
        /// Room the caller offered.
        room: usize,
    },
    /// The callback could not take the message (the JNI bridge: the Java
    /// array could not be allocated): keep it for the next receive; the
    /// call returns `R` (which carries the callback's error).
    Declined(R),
}

struct RxState {
    rx: Receiver,
    /// A message a previous receive could not deliver (buffer too small,
    /// or declined): the next receive delivers it first. Its slot was
    /// released (a slot cannot stay taken across calls), so it is a copy,
    /// wiped when it goes.
    held: Option<(MessageInfo, Zeroizing<Vec<u8>>)>,
}

/// One endpoint of a channel (owner or peer).
pub struct Endpoint {
    /// Failed sends retried without sleeping (from the wait policy).
    spin_budget: u32,
    tx: Mutex<Sender>,
    rx: Mutex<RxState>,
    closing: AtomicBool,
    shut_down: AtomicBool,
    max_message_size: usize,
    /// The halves' readiness fds (the same for their whole life).
    rx_fd: RawFd,
    tx_fd: RawFd,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("max_message_size", &self.max_message_size)
            .field("closing", &self.is_closing())
            .finish()
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        // Relaxed: see live_endpoints().
        LIVE_ENDPOINTS.fetch_sub(1, Ordering::Relaxed);
    }
}

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, BridgeError> {
    m.lock().map_err(|_| BridgeError::Poisoned)
}

impl Endpoint {
    fn new((tx, rx): (Sender, Receiver), wait: WaitPolicy) -> Endpoint {
        // Relaxed: see live_endpoints().
        LIVE_ENDPOINTS.fetch_add(1, Ordering::Relaxed);
        Endpoint {
            spin_budget: match wait {
                WaitPolicy::BusyPoll => u32::MAX,
                WaitPolicy::Block => 0,
                WaitPolicy::SpinThenBlock { spins } => spins,
            },
            max_message_size: tx.max_message_size(),
            rx_fd: rx.as_raw_fd(),
            tx_fd: tx.as_raw_fd(),
            tx: Mutex::new(tx),
            rx: Mutex::new(RxState { rx, held: None }),
            closing: AtomicBool::new(false),
            shut_down: AtomicBool::new(false),
        }
    }

    /// Creates channel `name` as its owner; `wait` must be the wait policy
    /// in `opts` (the bridge's own waits follow it too).
    pub fn create(name: &str, opts: &Options, wait: WaitPolicy) -> Result<Endpoint, BridgeError> {
        Ok(Endpoint::new(Channel::create(name, opts)?, wait))
    }

    /// Attaches to channel `name` as its peer; `wait` as for [`Endpoint::create`].
    pub fn attach(name: &str, opts: &Options, wait: WaitPolicy) -> Result<Endpoint, BridgeError> {
        Ok(Endpoint::new(Channel::attach(name, opts)?, wait))
    }

    /// Largest payload of one message.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Makes every running and later call fail with [`BridgeError::Closed`];
    /// the channel itself closes when the endpoint is dropped.
    pub fn close(&self) {
        // Release pairs with the Acquire in is_closing(): a call that sees the
        // flag sees everything the closing thread did before.
        self.closing.store(true, Ordering::Release);
    }

    fn is_closing(&self) -> bool {
        // Acquire pairs with the Release in close().
        self.closing.load(Ordering::Acquire)
    }

    /// Makes every running and later call fail with
    /// [`BridgeError::Shutdown`] (within one wait slice for those waiting);
    /// unlike [`Endpoint::close`] the endpoint stays valid for other threads
    /// until it is freed. Never blocks.
    pub fn shutdown(&self) {
        // Release pairs with the Acquire in check_open().
        self.shut_down.store(true, Ordering::Release);
    }

    fn check_open(&self) -> Result<(), BridgeError> {
        if self.is_closing() {
            Err(BridgeError::Closed)
        // Acquire pairs with the Release in shutdown().
        } else if self.shut_down.load(Ordering::Acquire) {
            Err(BridgeError::Shutdown)
        } else {
            Ok(())
        }
    }

    /// The receiving half's readiness fd (docs/client-api.md, Readiness).
    pub fn rx_fd(&self) -> RawFd {
        self.rx_fd
    }

    /// The sending half's readiness fd.
    pub fn tx_fd(&self) -> RawFd {
        self.tx_fd
    }

    /// `Ok(true)`: nothing to receive, sleep on [`Endpoint::rx_fd`] (armed);
    /// `Ok(false)`: a message (or the hang-up) is there, receive now.
    pub fn arm_recv(&self) -> Result<bool, BridgeError> {
        self.check_open()?;
        let mut guard = lock(&self.rx)?;
        if guard.held.is_some() {
            return Ok(false);
        }
        match guard.rx.arm() {
            Ok(sleep) => Ok(sleep),
            Err(Error::NotConnected) => Ok(true),
            Err(e) => Err(e.into()),
        }
    }

    /// `Ok(true)`: no room, sleep on [`Endpoint::tx_fd`] (armed); `Ok(false)`:
    /// a send would not wait (or would fail at once), send now.
    pub fn arm_send(&self) -> Result<bool, BridgeError> {
        self.check_open()?;
        match lock(&self.tx)?.arm() {
            Ok(sleep) => Ok(sleep),
            // An owner before its first peer: the fd turns readable on attach.
            Err(Error::NotConnected) => Ok(true),
            Err(e) => Err(e.into()),
        }
    }

    /// Sends one message; `Ok(false)` if `wait` ran out while the channel
    /// was full (or, on the owner, while no peer had attached yet).
    pub fn send(&self, msg_type: u16, payload: &[u8], wait: Wait) -> Result<bool, BridgeError> {
        self.check_open()?;
        if payload.len() > self.max_message_size {
            return Err(Error::MessageTooLarge {
                len: payload.len(),
                max: self.max_message_size,
            }
            .into());
        }
        let mut tx = lock(&self.tx)?;
        let mut spins: u32 = 0;
        let mut rounds: u32 = 0;
        loop {
            self.check_open()?;
            match tx
                .try_send_with_type(msg_type, payload)
                .map_err(|e| e.into_error())
            {
                Ok(()) => return Ok(true),
                Err(Error::Full) | Err(Error::NotConnected) => {}
                Err(e) => return Err(e.into()),
            }
            let Some(slice) = wait.next_slice() else {
                return Ok(false);
            };
            // Like the client's own blocking send: retry a while before
            // backing off.
            if spins < self.spin_budget {
                spins += 1;
                std::hint::spin_loop();
                if spins % 4096 == 0 {
                    std::thread::yield_now();
                }
                continue;
            }
            back_off(&mut rounds, slice);
        }
    }

    /// Receives one message and shows it to `deliver`; `Ok(None)` if `wait`
    /// ran out first.
    pub fn receive<R>(
        &self,
        wait: Wait,
        deliver: impl FnOnce(&MessageInfo, &[u8]) -> Delivery<R>,
    ) -> Result<Option<R>, BridgeError> {
        self.check_open()?;
        let mut guard = lock(&self.rx)?;
        let RxState { rx, held } = &mut *guard;
        if let Some((info, data)) = held.take() {
            return match deliver(&info, &data) {
                Delivery::Taken(r) => Ok(Some(r)),
                Delivery::TooSmall { room } => {
                    let len = info.len;
                    *held = Some((info, data));
                    Err(BridgeError::BufferTooSmall { len, room })
                }
                Delivery::Declined(r) => {
                    *held = Some((info, data));
                    Ok(Some(r))
                }
            };
        }
        loop {
            self.check_open()?;
            let got = match wait.next_slice() {
                None => rx.try_recv(),
                Some(slice) => rx.recv_timeout(slice),
            };
            match got {
                Ok(Some(msg)) => {
                    let sender = msg.sender();
                    let info = MessageInfo {
                        len: msg.payload().len(),
                        msg_type: msg.msg_type(),
                        seq: msg.seq(),
                        timestamp_ns: msg.timestamp_ns(),
                        pid: sender.pid,
                        uid: sender.uid,
                        gid: sender.gid,
                    };
                    // `deliver` copies the payload out of the slot, which
                    // is released only when `msg` drops, after it returned:
                    // a message it could not take is kept (as a copy).
                    return match deliver(&info, msg.payload()) {
                        Delivery::Taken(r) => Ok(Some(r)),
                        Delivery::TooSmall { room } => {
                            *held = Some((info, Zeroizing::new(msg.payload().to_vec())));
                            Err(BridgeError::BufferTooSmall {
                                len: info.len,
                                room,
                            })
                        }
                        Delivery::Declined(r) => {
                            *held = Some((info, Zeroizing::new(msg.payload().to_vec())));
                            Ok(Some(r))
                        }
                    };
                }
                Ok(None) => {}
                // The owner before any peer attached: nothing to receive yet.
                Err(Error::NotConnected) => std::thread::sleep(Duration::from_millis(1)),
                Err(e) => return Err(e.into()),
            }
            if wait.next_slice().is_none() {
                return Ok(None);
            }
        }
    }

    /// The endpoint's counters.
    pub fn stats(&self) -> Result<Stats, BridgeError> {
        self.check_open()?;
        // Either half answers; do not queue behind a blocked send or receive.
        if let Ok(tx) = self.tx.try_lock() {
            return Ok(tx.stats()?);
        }
        if let Ok(rx) = self.rx.try_lock() {
            return Ok(rx.rx.stats()?);
        }
        Ok(lock(&self.tx)?.stats()?)
    }

    /// Who the other endpoint is.
    pub fn peer_credentials(&self) -> Result<PeerCredentials, BridgeError> {
        self.check_open()?;
        Ok(lock(&self.rx)?.rx.peer_credentials()?)
    }
}

/// Backs off while the channel is full (or has no peer): yield first, then
/// sleep 20 µs, doubling up to 1 ms, never past `slice`. A full channel is
/// backpressure, so a sleeping producer costs little; the client's
/// doorbell-based wait cannot be used here because it cannot be bounded
/// and interrupted by close(), and arming the doorbell by hand would leave
/// its NEED_WAKEUP flag set (a doorbell syscall on every later release).
fn back_off(round: &mut u32, slice: Duration) {
    const YIELDS: u32 = 16;
    if *round < YIELDS {
        std::thread::yield_now();
    } else {
        let exp = (*round - YIELDS).min(6);
        let pause = Duration::from_micros(20u64 << exp).min(Duration::from_millis(1));
        std::thread::sleep(pause.min(slice));
    }
    *round = round.saturating_add(1);
}
