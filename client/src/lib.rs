//! secure-ipc: sealed (AES-256-GCM) single-producer single-consumer channels
//! between processes, over `/dev/secure_ipc` or a userspace backend.
//!
//! ```no_run
//! use secure_ipc::{Channel, Options};
//! # fn main() -> Result<(), secure_ipc::Error> {
//! // Owner (e.g. the host daemon):
//! let (mut tx, mut rx) = Channel::create("imu0", &Options::new())?;
//! tx.send(b"hello")?;
//! let msg = rx.recv()?;
//! println!("{} bytes from pid {}", msg.payload().len(), msg.sender().pid);
//! # Ok(()) }
//! ```
//!
//! The API contract is docs/client-api.md; the record format and the key
//! schedule are docs/record-format.md and docs/key-schedule.md.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks, missing_docs)]

mod backend;
#[doc(hidden)]
pub mod cli;
mod error;
mod kernel;
pub mod keys;
mod options;
pub mod record;
mod shutdown;
mod sys;
#[cfg(feature = "tokio")]
mod tokio_io;
pub mod userspace;

pub use error::{Error, SendError};
pub use keys::IdentityKey;
pub use options::{
    encode_name, Backend, Credentials, Options, OwnerPolicy, PeerCredentials, PeerPolicy,
    PidNamespace, Stats, WaitPolicy, DEFAULT_REKEY_BYTES, DEFAULT_REKEY_RECORDS,
};
pub use shutdown::Shutdown;
#[cfg(feature = "tokio")]
pub use tokio_io::{AsyncReceiver, AsyncSender};

use backend::{Endpoint, MessageMeta, PeerState, RxBackend, TxBackend};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Path of the kernel module's device node.
pub const DEVICE_PATH: &str = "/dev/secure_ipc";

/// Whether the kernel backend can be used: the device opens.
pub fn kernel_available() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(DEVICE_PATH)
        .is_ok()
}

/// What the loaded module supports (`SIPC_IOC_INFO`); `ModuleNotLoaded` when
/// the device cannot be opened.
pub fn kernel_info() -> Result<secure_ipc_ring::abi::Info, Error> {
    sys::kernel_info(DEVICE_PATH).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENXIO) | Some(libc::ENODEV) => Error::ModuleNotLoaded,
        Some(libc::EACCES) | Some(libc::EPERM) => Error::NotPermitted,
        _ => Error::Io(e),
    })
}

/// The backend `Auto` resolves to on this machine (without creating anything).
pub fn resolve_backend(b: Backend) -> Backend {
    match b {
        Backend::Auto if kernel_available() => Backend::Kernel,
        Backend::Auto => Backend::Userspace,
        other => other,
    }
}

/// Entry points: create or attach to a named channel.
#[derive(Debug)]
pub struct Channel;

impl Channel {
    /// Creates the channel `name` as its owner and returns at once; a peer
    /// attaches later with [`Channel::attach`]. Sending waits (per the wait
    /// policy) until the peer has attached.
    pub fn create(name: &str, opts: &Options) -> Result<(Sender, Receiver), Error> {
        options::encode_name(name)?;
        opts.check_geometry()?;
        opts.check_psk()?;
        let ep = match resolve_backend(opts.backend) {
            Backend::Kernel => kernel_create(name, opts)?,
            _ => userspace_create(name, opts)?,
        };
        Ok(split(ep, opts.wait))
    }

    /// Attaches to the channel `name` as its peer.
    pub fn attach(name: &str, opts: &Options) -> Result<(Sender, Receiver), Error> {
        options::encode_name(name)?;
        opts.check_psk()?;
        let ep = match resolve_backend(opts.backend) {
            Backend::Kernel => kernel_attach(name, opts)?,
            _ => userspace_attach(name, opts)?,
        };
        Ok(split(ep, opts.wait))
    }
}

fn split(ep: Endpoint, wait: WaitPolicy) -> (Sender, Receiver) {
    (
        Sender {
            tx: ep.tx,
            wait,
            queued: 0,
            shutdown: None,
        },
        Receiver {
            rx: ep.rx,
            wait,
            shutdown: None,
        },
    )
}

fn kernel_create(name: &str, opts: &Options) -> Result<Endpoint, Error> {
    kernel::create(name, opts)
}
fn kernel_attach(name: &str, opts: &Options) -> Result<Endpoint, Error> {
    kernel::attach(name, opts)
}
fn userspace_create(name: &str, opts: &Options) -> Result<Endpoint, Error> {
    userspace::create(name, opts)
}
fn userspace_attach(name: &str, opts: &Options) -> Result<Endpoint, Error> {
    userspace::attach(name, opts)
}

/// Empty polls before sleeping, per policy.
fn spin_budget(policy: WaitPolicy) -> u32 {
    match policy {
        WaitPolicy::BusyPoll => u32::MAX,
        WaitPolicy::Block => 0,
        WaitPolicy::SpinThenBlock { spins } => spins,
    }
}

/// Empty polls a spinning wait makes before it starts yielding the CPU.
const SPIN_PURE: u32 = 2048;
/// After that, one `sched_yield` per this many empty polls.
const SPIN_YIELD_EVERY: u32 = 64;

/// One empty poll of a spin. The first [`SPIN_PURE`] polls only pause (the
/// other side, running on another CPU, usually answers within them); later
/// ones yield now and then, so that a spinner sharing its CPU with the other
/// side (more busy threads than cores) lets it run instead of burning its
/// time slice.
fn spin_pause(n: u32) {
    if n >= SPIN_PURE && n % SPIN_YIELD_EVERY == 0 {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

/// Under `BusyPoll`, every this many empty polls the backend gets a
/// zero-timeout wait so a hang-up is noticed without a syscall per spin.
const BUSY_POLL_HANGUP_CHECK: u32 = 4096;

/// How long a call may wait.
#[derive(Clone, Copy, Debug)]
enum Patience {
    /// Not at all (`try_*`).
    Now,
    /// Until this instant (`*_timeout`, `*_deadline`).
    Until(Instant),
    /// As long as it takes (the plain blocking calls).
    Forever,
}

impl Patience {
    /// `timeout` from now; one the clock cannot hold waits forever.
    fn after(timeout: Duration) -> Self {
        match Instant::now().checked_add(timeout) {
            Some(d) => Patience::Until(d),
            None => Patience::Forever,
        }
    }

    fn deadline(self) -> Option<Instant> {
        match self {
            Patience::Now => Some(Instant::now()),
            Patience::Until(d) => Some(d),
            Patience::Forever => None,
        }
    }

    /// The wait is over: `Err(TimedOut)`.
    fn expired(self) -> bool {
        match self {
            Patience::Now => true,
            Patience::Until(d) => Instant::now() >= d,
            Patience::Forever => false,
        }
    }
}

/// Sleeps on a half's readiness fd and its shutdown eventfd, per the
/// readiness contract (docs/client-api.md): `arm` first, sleep only if it
/// says the operation would still block. The path of every wait once a
/// [`Shutdown`] handle exists, since the backends' own sleeps (the kernel's
/// RECV_WAIT among them) cannot watch a second fd.
fn sleep_ready(
    arm: Result<bool, Error>,
    fd: RawFd,
    signal: &shutdown::Signal,
    deadline: Option<Instant>,
) -> Result<(), Error> {
    match arm {
        Ok(false) => return Ok(()),
        // NotConnected: an owner's kernel sender before its first peer; the
        // device turns writable when one attaches.
        Ok(true) | Err(Error::NotConnected) => {}
        Err(e) => return Err(e),
    }
    let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    sys::poll(&[fd, signal.fd()], timeout)?;
    if signal.is_set() {
        return Err(Error::Shutdown);
    }
    Ok(())
}

/// The sending half of a channel. `Send`, not `Sync`.
pub struct Sender {
    tx: Box<dyn TxBackend>,
    wait: WaitPolicy,
    queued: usize,
    shutdown: Option<Arc<shutdown::Signal>>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("max_message_size", &self.max_message_size())
            .finish()
    }
}

impl Sender {
    /// Sends one message of type 0, waiting while the channel is full (and,
    /// for an owner, until its first peer attaches). It takes what
    /// [`Sender::try_send`] takes; an `Err` means the message was not
    /// queued ([`Error::Shutdown`] when a [`Shutdown`] ended the wait).
    pub fn send<P: AsRef<[u8]>>(&mut self, payload: P) -> Result<(), Error> {
        self.send_with_type(0, payload)
    }

    /// Sends one message of type `ty`, waiting while the channel is full.
    pub fn send_with_type<P: AsRef<[u8]>>(&mut self, ty: u16, payload: P) -> Result<(), Error> {
        self.send_within(ty, payload.as_ref(), Patience::Forever)
    }

    /// Sends one message of type 0 without waiting. `Err` hands the payload
    /// back: [`Error::Full`] when there is no room, [`Error::NotConnected`]
    /// on an owner whose first peer has not attached (both backends).
    ///
    /// A message that `try_send` refused was not queued; one it accepted is
    /// on its way (on the kernel backend: already sealed).
    pub fn try_send<P: AsRef<[u8]>>(&mut self, payload: P) -> Result<(), SendError<P>> {
        self.try_send_with_type(0, payload)
    }

    /// [`Sender::try_send`] with a message type.
    pub fn try_send_with_type<P: AsRef<[u8]>>(
        &mut self,
        ty: u16,
        payload: P,
    ) -> Result<(), SendError<P>> {
        match self.try_send_inner(ty, payload.as_ref()) {
            Ok(()) => Ok(()),
            Err(error) => Err(SendError { error, payload }),
        }
    }

    fn try_send_inner(&mut self, ty: u16, payload: &[u8]) -> Result<(), Error> {
        // Before ready_for_one: an oversized message must not push anything.
        self.check_len(payload.len())?;
        if !self.tx.ready_for_one()? {
            return Err(Error::Full);
        }
        self.send_within(ty, payload, Patience::Now)
    }

    /// Sends one message of type 0, waiting at most `timeout` for room.
    /// `Err` hands the payload back, unsent: [`Error::TimedOut`],
    /// [`Error::Shutdown`], or the failure. A timeout beyond what the clock
    /// can represent waits without a deadline.
    pub fn send_timeout<P: AsRef<[u8]>>(
        &mut self,
        payload: P,
        timeout: Duration,
    ) -> Result<(), SendError<P>> {
        self.send_patient(0, payload, Patience::after(timeout))
    }

    /// [`Sender::send_timeout`] with an instant instead of a duration.
    pub fn send_deadline<P: AsRef<[u8]>>(
        &mut self,
        payload: P,
        deadline: Instant,
    ) -> Result<(), SendError<P>> {
        self.send_patient(0, payload, Patience::Until(deadline))
    }

    /// [`Sender::send_deadline`] with a message type.
    pub fn send_with_type_deadline<P: AsRef<[u8]>>(
        &mut self,
        ty: u16,
        payload: P,
        deadline: Instant,
    ) -> Result<(), SendError<P>> {
        self.send_patient(ty, payload, Patience::Until(deadline))
    }

    fn send_patient<P: AsRef<[u8]>>(
        &mut self,
        ty: u16,
        payload: P,
        patience: Patience,
    ) -> Result<(), SendError<P>> {
        match self.send_within(ty, payload.as_ref(), patience) {
            Ok(()) => Ok(()),
            Err(error) => Err(SendError { error, payload }),
        }
    }

    /// Waits per `patience` until the channel takes one message without
    /// waiting (kernel: TX drained into the sealed store, a free record
    /// there), then queues it and publishes. So an `Err` means the message
    /// was not queued (handed back by the bounded calls), and an `Ok` one
    /// needs no further call to move on: on the kernel backend it is
    /// sealed before this returns, never left in TX for a SEND that a
    /// sender which stops sending would never make.
    fn send_within(&mut self, ty: u16, payload: &[u8], patience: Patience) -> Result<(), Error> {
        self.check_len(payload.len())?;
        if !matches!(patience, Patience::Now) {
            let cancel = self.shutdown.clone();
            self.tx
                .wait_ready_for_one(patience.deadline(), cancel.as_deref())?;
        }
        self.queue(ty, payload, patience)?;
        self.queued = 0;
        let cancel = self.shutdown.clone();
        self.tx
            .flush_by(patience.deadline(), cancel.as_deref())
            .map(|_| ())
    }

    /// Queues one message (published by the next [`Sender::flush`] or send):
    /// the batching path.
    pub fn send_batched(&mut self, ty: u16, payload: &[u8]) -> Result<(), Error> {
        self.queue(ty, payload, Patience::Forever)
    }

    /// `MessageTooLarge` for a payload of `len` bytes that no slot holds.
    fn check_len(&self, len: usize) -> Result<(), Error> {
        let max = self.tx.max_message_size();
        if len > max {
            return Err(Error::MessageTooLarge { len, max });
        }
        Ok(())
    }

    fn queue(&mut self, ty: u16, payload: &[u8], patience: Patience) -> Result<(), Error> {
        self.check_len(payload.len())?;
        self.hold_slot(patience)?;
        self.tx.buf_mut()[..payload.len()].copy_from_slice(payload);
        self.tx.commit(payload.len(), ty)?;
        self.queued += 1;
        Ok(())
    }

    fn hold_slot(&mut self, patience: Patience) -> Result<(), Error> {
        if self.tx.reserve()? {
            return Ok(());
        }
        // No room: publish what is queued so the consumer can drain it
        // (waiting for sealed-store room no longer than we may).
        if self.queued > 0 {
            self.queued = 0;
            let cancel = self.shutdown.clone();
            self.tx.flush_by(patience.deadline(), cancel.as_deref())?;
        }
        if let Patience::Now = patience {
            return if self.tx.reserve()? {
                Ok(())
            } else {
                Err(Error::Full)
            };
        }
        let spins = spin_budget(self.wait);
        let mut n: u32 = 0;
        loop {
            if self.tx.reserve()? {
                return Ok(());
            }
            if patience.expired() {
                return Err(Error::TimedOut);
            }
            if let Some(sig) = &self.shutdown {
                if sig.is_set() {
                    return Err(Error::Shutdown);
                }
            }
            if n < spins {
                n = n.saturating_add(1);
                spin_pause(n);
                if n % BUSY_POLL_HANGUP_CHECK == 0 {
                    self.tx.wait_room(Some(Instant::now()))?;
                }
            } else if let Some(sig) = self.shutdown.clone() {
                // A full TX ring on the kernel backend is published, so
                // arm()'s SEND moves it and says whether room is there.
                let arm = self.tx.arm();
                sleep_ready(arm, self.tx.raw_fd(), &sig, patience.deadline())?;
            } else {
                self.tx.wait_room(patience.deadline())?;
            }
        }
    }

    /// Reserves a slot of `len` bytes to fill in place (zero-copy); waits
    /// while the channel is full.
    pub fn reserve(&mut self, len: usize) -> Result<Reservation<'_>, Error> {
        self.reserve_within(len, Patience::Forever)
    }

    /// Reserves a slot without waiting: [`Error::Full`] when there is none,
    /// [`Error::NotConnected`] on an owner whose first peer has not attached.
    pub fn try_reserve(&mut self, len: usize) -> Result<Reservation<'_>, Error> {
        if self.tx.peer_state() == PeerState::Waiting {
            return Err(Error::NotConnected);
        }
        self.reserve_within(len, Patience::Now)
    }

    /// Reserves a slot, waiting at most `timeout`: [`Error::TimedOut`].
    pub fn reserve_timeout(
        &mut self,
        len: usize,
        timeout: Duration,
    ) -> Result<Reservation<'_>, Error> {
        self.reserve_within(len, Patience::after(timeout))
    }

    /// Reserves a slot, waiting until `deadline`: [`Error::TimedOut`].
    pub fn reserve_deadline(
        &mut self,
        len: usize,
        deadline: Instant,
    ) -> Result<Reservation<'_>, Error> {
        self.reserve_within(len, Patience::Until(deadline))
    }

    fn reserve_within(&mut self, len: usize, patience: Patience) -> Result<Reservation<'_>, Error> {
        self.check_len(len)?;
        self.hold_slot(patience)?;
        Ok(Reservation {
            sender: self,
            len,
            ty: 0,
        })
    }

    /// Publishes every queued message; returns how many.
    pub fn flush(&mut self) -> Result<usize, Error> {
        if self.queued == 0 {
            return Ok(0);
        }
        self.queued = 0;
        let cancel = self.shutdown.clone();
        self.tx.flush_by(None, cancel.as_deref())
    }

    /// Largest payload of one message.
    pub fn max_message_size(&self) -> usize {
        self.tx.max_message_size()
    }

    /// Ratchets the sending key now; returns the new epoch.
    pub fn rekey(&mut self) -> Result<u32, Error> {
        self.tx.rekey()
    }

    /// Asks for a doorbell on [`AsRawFd::as_raw_fd`] when room appears;
    /// `Ok(false)` if there is room already (epoll users call this before
    /// sleeping).
    pub fn arm(&mut self) -> Result<bool, Error> {
        self.tx.arm()
    }

    /// The endpoint's counters.
    pub fn stats(&self) -> Result<Stats, Error> {
        self.tx.stats()
    }

    /// A handle that wakes this half's waiting calls from another thread
    /// ([`Shutdown`]). Every call returns a handle to the same switch.
    pub fn shutdown_handle(&mut self) -> Result<Shutdown, Error> {
        shutdown_handle_of(&mut self.shutdown)
    }

    /// The peer has hung up: sends fail with [`Error::PeerClosed`].
    pub fn is_closed(&mut self) -> bool {
        self.tx.peer_state() == PeerState::Closed
    }

    /// A peer is attached (an owner's first peer may not be yet).
    pub fn peer_attached(&mut self) -> bool {
        self.tx.peer_state() == PeerState::Attached
    }

    /// Flushes, then waits at most `timeout` for the peer to take every
    /// message, and closes this direction. `Err(NotDelivered)` says how many
    /// it never took (stalled, or hung up first). On the userspace backend
    /// the peer then sees this direction close (`PeerClosed` after the last
    /// message); on the kernel backend it does not until this endpoint's
    /// `Receiver` is gone too (the module has no per-direction close).
    /// Dropping a `Sender` never waits: it publishes what it can and
    /// closes, so only `close` reports loss.
    pub fn close(mut self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now().checked_add(timeout);
        self.queued = 0;
        // Publishing waits for sealed-store room too: no longer than the
        // timeout (a stalled peer must not hold close past it).
        let cancel = self.shutdown.clone();
        match self.tx.flush_by(deadline, cancel.as_deref()) {
            Ok(_) | Err(Error::PeerClosed) | Err(Error::NotConnected) => {}
            Err(e) => return Err(e),
        }
        loop {
            let left = match self.tx.undelivered() {
                Ok(n) => n,
                Err(Error::PeerClosed) => {
                    // Gone: what it had not taken is lost.
                    return match self.tx.undelivered_after_hangup() {
                        0 => Ok(()),
                        n => Err(Error::NotDelivered { undelivered: n }),
                    };
                }
                Err(e) => return Err(e),
            };
            if left == 0 {
                return Ok(());
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Err(Error::NotDelivered { undelivered: left });
            }
            // A deadline the clock cannot hold: wait in long slices.
            let until = deadline.unwrap_or(now + Duration::from_secs(3600));
            match self.tx.wait_delivered(until) {
                Ok(()) | Err(Error::PeerClosed) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl AsRawFd for Sender {
    fn as_raw_fd(&self) -> RawFd {
        self.tx.raw_fd()
    }
}

impl AsFd for Sender {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the readiness fd lives as long as the backend half, which
        // `self` owns; the borrow cannot outlive `self`.
        unsafe { BorrowedFd::borrow_raw(self.tx.raw_fd()) }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        // Publish what was committed but not flushed; a dead peer is no
        // error here, and with no peer at all there is nobody to wait for.
        if self.queued > 0 {
            self.queued = 0;
            let _ = self.tx.flush_closing();
        }
    }
}

/// A slot reserved with [`Sender::reserve`]: fill it, then [`Reservation::commit`].
/// Dropping it without committing sends nothing.
pub struct Reservation<'a> {
    sender: &'a mut Sender,
    len: usize,
    ty: u16,
}

impl Reservation<'_> {
    /// Sets the message type (default 0).
    pub fn set_type(&mut self, ty: u16) {
        self.ty = ty;
    }

    /// Queues the first `len` bytes as a message; [`Sender::flush`] (or the
    /// next send) publishes it.
    ///
    /// # Panics
    /// If `len` is larger than the reserved length.
    pub fn commit(self, len: usize) -> Result<(), Error> {
        assert!(
            len <= self.len,
            "commit({len}) beyond the reserved {} bytes",
            self.len
        );
        self.sender.tx.commit(len, self.ty)?;
        self.sender.queued += 1;
        Ok(())
    }
}

impl std::ops::Deref for Reservation<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.sender.tx.buf()[..self.len]
    }
}

impl std::ops::DerefMut for Reservation<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        &mut self.sender.tx.buf_mut()[..len]
    }
}

/// The receiving half of a channel. `Send`, not `Sync`.
pub struct Receiver {
    rx: Box<dyn RxBackend>,
    wait: WaitPolicy,
    shutdown: Option<Arc<shutdown::Signal>>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("max_message_size", &self.rx.max_message_size())
            .finish()
    }
}

impl Receiver {
    /// Receives the next message, waiting per the wait policy.
    pub fn recv(&mut self) -> Result<Message<'_>, Error> {
        match self.wait_next(Patience::Forever)? {
            Some(meta) => Ok(self.message(meta)),
            None => unreachable!("wait without deadline ended"),
        }
    }

    /// Receives the next message if one is waiting.
    pub fn try_recv(&mut self) -> Result<Option<Message<'_>>, Error> {
        match self.rx.next()? {
            Some(meta) => Ok(Some(self.message(meta))),
            None => Ok(None),
        }
    }

    /// Receives the next message, waiting at most `t`; `Ok(None)` on timeout.
    /// A `t` beyond what the clock can represent waits without a deadline.
    pub fn recv_timeout(&mut self, t: Duration) -> Result<Option<Message<'_>>, Error> {
        match self.wait_next(Patience::after(t))? {
            Some(meta) => Ok(Some(self.message(meta))),
            None => Ok(None),
        }
    }

    /// Receives the next message, waiting until `deadline`; `Ok(None)` when
    /// it passes.
    pub fn recv_deadline(&mut self, deadline: Instant) -> Result<Option<Message<'_>>, Error> {
        match self.wait_next(Patience::Until(deadline))? {
            Some(meta) => Ok(Some(self.message(meta))),
            None => Ok(None),
        }
    }

    fn message(&mut self, meta: MessageMeta) -> Message<'_> {
        Message {
            rx: self.rx.as_mut(),
            meta,
        }
    }

    fn wait_next(&mut self, patience: Patience) -> Result<Option<MessageMeta>, Error> {
        let rx = &mut self.rx;
        let spins = spin_budget(self.wait);
        let mut n: u32 = 0;
        loop {
            if let Some(m) = rx.next()? {
                return Ok(Some(m));
            }
            if patience.expired() {
                return Ok(None);
            }
            if let Some(sig) = &self.shutdown {
                if sig.is_set() {
                    return Err(Error::Shutdown);
                }
            }
            if n < spins {
                n = n.saturating_add(1);
                spin_pause(n);
                if n % BUSY_POLL_HANGUP_CHECK == 0 {
                    rx.wait_data(Some(Instant::now()))?;
                }
            } else if let Some(sig) = &self.shutdown {
                let arm = rx.arm();
                sleep_ready(arm, rx.raw_fd(), sig, patience.deadline())?;
            } else {
                rx.wait_data(patience.deadline())?;
            }
        }
    }

    /// Hands each message already waiting, at most `max`, to `f`, releasing
    /// its slot when `f` returns; never waits. Returns how many `f` saw
    /// (0: nothing was waiting). An error (a record that failed to open,
    /// the peer's hang-up after the last message) ends the batch and is
    /// returned; the messages `f` saw before it were delivered.
    pub fn try_recv_batch<F>(&mut self, max: usize, mut f: F) -> Result<usize, Error>
    where
        F: FnMut(&Message<'_>),
    {
        let mut n = 0;
        while n < max {
            match self.try_recv()? {
                Some(m) => f(&m),
                None => break,
            }
            n += 1;
        }
        Ok(n)
    }

    /// [`Receiver::try_recv_batch`] that first waits (per the wait policy)
    /// for one message, like tokio's `recv_many`: returns at least 1 unless
    /// `max` is 0.
    pub fn recv_batch<F>(&mut self, max: usize, mut f: F) -> Result<usize, Error>
    where
        F: FnMut(&Message<'_>),
    {
        if max == 0 {
            return Ok(0);
        }
        f(&self.recv()?);
        Ok(1 + self.try_recv_batch(max - 1, f)?)
    }

    /// Asks for a doorbell on [`AsRawFd::as_raw_fd`] when data arrives;
    /// `Ok(false)` if a message is waiting already.
    pub fn arm(&mut self) -> Result<bool, Error> {
        self.rx.arm()
    }

    /// Largest payload of one message.
    pub fn max_message_size(&self) -> usize {
        self.rx.max_message_size()
    }

    /// Who the other endpoint is.
    pub fn peer_credentials(&self) -> Result<PeerCredentials, Error> {
        self.rx.peer_credentials()
    }

    /// The endpoint's counters.
    pub fn stats(&self) -> Result<Stats, Error> {
        self.rx.stats()
    }

    /// A handle that wakes this half's waiting calls from another thread
    /// ([`Shutdown`]). Every call returns a handle to the same switch.
    pub fn shutdown_handle(&mut self) -> Result<Shutdown, Error> {
        shutdown_handle_of(&mut self.shutdown)
    }

    /// The peer has hung up. Messages it sent before may still be waiting:
    /// `recv` returns them, then [`Error::PeerClosed`].
    pub fn is_closed(&mut self) -> bool {
        self.rx.peer_state() == PeerState::Closed
    }

    /// A peer is attached (an owner's first peer may not be yet).
    pub fn peer_attached(&mut self) -> bool {
        self.rx.peer_state() == PeerState::Attached
    }
}

impl AsRawFd for Receiver {
    fn as_raw_fd(&self) -> RawFd {
        self.rx.raw_fd()
    }
}

impl AsFd for Receiver {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the readiness fd lives as long as the backend half, which
        // `self` owns; the borrow cannot outlive `self`.
        unsafe { BorrowedFd::borrow_raw(self.rx.raw_fd()) }
    }
}

/// A received message. Borrows the receiver; releases its slot on drop.
pub struct Message<'a> {
    rx: &'a mut dyn RxBackend,
    meta: MessageMeta,
}

impl std::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("seq", &self.meta.seq)
            .field("type", &self.meta.msg_type)
            .field("len", &self.meta.len)
            .field("sender", &self.meta.sender)
            .finish()
    }
}

impl Message<'_> {
    /// The plaintext.
    pub fn payload(&self) -> &[u8] {
        &self.rx.payload()[..self.meta.len]
    }
    /// The sender's message type.
    pub fn msg_type(&self) -> u16 {
        self.meta.msg_type
    }
    /// Sequence number in this direction, from 0.
    pub fn seq(&self) -> u64 {
        self.meta.seq
    }
    /// CLOCK_MONOTONIC at the sender's commit, in nanoseconds.
    pub fn timestamp_ns(&self) -> u64 {
        self.meta.timestamp_ns
    }
    /// Key epoch the record was sealed under.
    pub fn epoch(&self) -> u32 {
        self.meta.epoch
    }
    /// Who sent it (pid, uid, gid as this process sees them).
    pub fn sender(&self) -> Credentials {
        self.meta.sender
    }
}

impl Drop for Message<'_> {
    fn drop(&mut self) {
        self.rx.release();
    }
}

/// CLOCK_MONOTONIC now, in nanoseconds (the clock of `Message::timestamp_ns`).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to the valid pointer we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The [`Shutdown`] of a half's switch, made on first use.
fn shutdown_handle_of(
    slot: &mut Option<std::sync::Arc<shutdown::Signal>>,
) -> Result<Shutdown, Error> {
    if let Some(s) = slot {
        return Ok(Shutdown::new(s.clone()));
    }
    Ok(Shutdown::new(slot.insert(shutdown::Signal::new()?).clone()))
}
