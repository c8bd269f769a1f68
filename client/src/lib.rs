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
mod sys;
pub mod userspace;

pub use error::Error;
pub use options::{
    encode_name, Backend, Credentials, Options, OwnerPolicy, PeerCredentials, PeerPolicy,
    PidNamespace, Stats, WaitPolicy, DEFAULT_REKEY_BYTES, DEFAULT_REKEY_RECORDS,
};
pub use x25519_dalek::StaticSecret;

use backend::{Endpoint, MessageMeta, RxBackend, TxBackend};
use std::os::fd::{AsRawFd, RawFd};
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
            reserved: false,
        },
        Receiver { rx: ep.rx, wait },
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

/// The sending half of a channel. `Send`, not `Sync`.
pub struct Sender {
    tx: Box<dyn TxBackend>,
    wait: WaitPolicy,
    queued: usize,
    reserved: bool,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("max_message_size", &self.max_message_size())
            .finish()
    }
}

impl Sender {
    /// Sends one message of type 0, waiting while the channel is full.
    pub fn send(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.send_with_type(0, payload)
    }

    /// Sends one message of type `ty`, waiting while the channel is full.
    pub fn send_with_type(&mut self, ty: u16, payload: &[u8]) -> Result<(), Error> {
        self.queue(ty, payload, true)?;
        self.flush().map(|_| ())
    }

    /// Sends one message without waiting: `Err(Full)` when there is no room.
    ///
    /// `Err(NotConnected)` on an owner whose first peer has not attached.
    /// A message that `try_send` refused was not queued; one it accepted is
    /// on its way (on the kernel backend: already sealed).
    pub fn try_send(&mut self, ty: u16, payload: &[u8]) -> Result<(), Error> {
        // Before ready_for_one: an oversized message must not push anything.
        self.check_len(payload.len())?;
        if !self.tx.ready_for_one()? {
            return Err(Error::Full);
        }
        self.queue(ty, payload, false)?;
        self.flush().map(|_| ())
    }

    /// Queues one message (published by the next [`Sender::flush`] or send):
    /// the batching path.
    pub fn send_batched(&mut self, ty: u16, payload: &[u8]) -> Result<(), Error> {
        self.queue(ty, payload, true)
    }

    /// `MessageTooLarge` for a payload of `len` bytes that no slot holds.
    fn check_len(&self, len: usize) -> Result<(), Error> {
        let max = self.tx.max_message_size();
        if len > max {
            return Err(Error::MessageTooLarge { len, max });
        }
        Ok(())
    }

    fn queue(&mut self, ty: u16, payload: &[u8], wait: bool) -> Result<(), Error> {
        self.check_len(payload.len())?;
        self.hold_slot(wait)?;
        self.tx.buf_mut()[..payload.len()].copy_from_slice(payload);
        self.tx.commit(payload.len(), ty)?;
        self.reserved = false;
        self.queued += 1;
        Ok(())
    }

    fn hold_slot(&mut self, wait: bool) -> Result<(), Error> {
        if self.tx.reserve()? {
            self.reserved = true;
            return Ok(());
        }
        // No room: publish what is queued so the consumer can drain it.
        self.flush()?;
        if !wait {
            return if self.tx.reserve()? {
                self.reserved = true;
                Ok(())
            } else {
                Err(Error::Full)
            };
        }
        let spins = spin_budget(self.wait);
        let mut n: u32 = 0;
        loop {
            if self.tx.reserve()? {
                self.reserved = true;
                return Ok(());
            }
            if n < spins {
                n = n.saturating_add(1);
                spin_pause(n);
                if n % BUSY_POLL_HANGUP_CHECK == 0 {
                    self.tx.wait_room(Some(Instant::now()))?;
                }
            } else {
                self.tx.wait_room(None)?;
            }
        }
    }

    /// Reserves a slot of `len` bytes to fill in place (zero-copy); waits
    /// while the channel is full.
    pub fn reserve(&mut self, len: usize) -> Result<Reservation<'_>, Error> {
        self.check_len(len)?;
        self.hold_slot(true)?;
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
        self.tx.flush()
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

    /// Flushes, then waits at most `timeout` for the peer to take every
    /// message, and closes this direction. `Err(NotDelivered)` says how many
    /// it never took (stalled, or hung up first); the peer sees this
    /// direction close either way. Dropping a `Sender` never waits: it
    /// publishes what it can and closes, so only `close` reports loss.
    pub fn close(mut self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now().checked_add(timeout);
        self.queued = 0;
        match self.tx.flush() {
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
        self.sender.reserved = false;
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
        match self.wait_next(None)? {
            Some(meta) => Ok(Message {
                rx: self.rx.as_mut(),
                meta,
            }),
            None => unreachable!("wait without deadline ended"),
        }
    }

    /// Receives the next message if one is waiting.
    pub fn try_recv(&mut self) -> Result<Option<Message<'_>>, Error> {
        match self.rx.next()? {
            Some(meta) => Ok(Some(Message {
                rx: self.rx.as_mut(),
                meta,
            })),
            None => Ok(None),
        }
    }

    /// Receives the next message, waiting at most `t`; `Ok(None)` on timeout.
    /// A `t` beyond what the clock can represent waits without a deadline.
    pub fn recv_timeout(&mut self, t: Duration) -> Result<Option<Message<'_>>, Error> {
        let deadline = Instant::now().checked_add(t);
        match self.wait_next(deadline)? {
            Some(meta) => Ok(Some(Message {
                rx: self.rx.as_mut(),
                meta,
            })),
            None => Ok(None),
        }
    }

    fn wait_next(&mut self, deadline: Option<Instant>) -> Result<Option<MessageMeta>, Error> {
        let rx = &mut self.rx;
        let spins = spin_budget(self.wait);
        let mut n: u32 = 0;
        loop {
            if let Some(m) = rx.next()? {
                return Ok(Some(m));
            }
            if let Some(d) = deadline {
                if Instant::now() >= d {
                    return Ok(None);
                }
            }
            if n < spins {
                n = n.saturating_add(1);
                spin_pause(n);
                if n % BUSY_POLL_HANGUP_CHECK == 0 {
                    rx.wait_data(Some(Instant::now()))?;
                }
            } else {
                rx.wait_data(deadline)?;
            }
        }
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
}

impl AsRawFd for Receiver {
    fn as_raw_fd(&self) -> RawFd {
        self.rx.raw_fd()
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
