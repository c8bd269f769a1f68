//! The internal interface every backend implements.
//!
//! [`crate::Channel`], [`crate::Sender`] and [`crate::Receiver`] are thin
//! shells: they validate arguments, run the [`crate::WaitPolicy`] loop and
//! turn backend calls into the public API. A backend provides one
//! [`TxBackend`] (the sending half) and one [`RxBackend`] (the receiving half)
//! per endpoint. The two halves are used from at most one thread each, but
//! possibly from two different threads at once, so anything they share must
//! be `Sync` (an `Arc` of atomics, a file descriptor).
//!
//! # Contract for implementers (the kernel backend in `kernel.rs`)
//!
//! * **Sending.** The shell calls [`TxBackend::reserve`]; if it returns
//!   `Ok(true)` a slot is held and [`TxBackend::buf_mut`] is the writable
//!   payload area of at least [`TxBackend::max_message_size`] bytes. Then
//!   [`TxBackend::commit`] queues it (kernel: write the TX descriptor, keep a
//!   local producer index; do *not* publish), or the shell drops the
//!   reservation by calling `reserve` again (the same slot is handed out
//!   again). [`TxBackend::flush`] publishes every committed slot at once and
//!   makes the data move (kernel: one store-release of `prod` [O1] plus one
//!   `SIPC_IOC_SEND`) and returns how many records it published. `reserve`
//!   returning `Ok(false)` means no room: the shell flushes and then calls
//!   [`TxBackend::wait_room`] per the wait policy.
//! * **Receiving.** [`RxBackend::next`] makes the next message current and
//!   returns its [`MessageMeta`]; the payload is [`RxBackend::payload`] until
//!   [`RxBackend::release`] (called when the `Message` is dropped). `next` is
//!   never called while a message is current. `Ok(None)` = nothing now
//!   (kernel: RX ring empty after a `SIPC_IOC_RECV`); `Err(PeerClosed)` =
//!   the peer hung up *and* everything it sealed was delivered (EPIPE);
//!   `Err(AuthenticationFailed)` = a record was dropped (EBADMSG), the next
//!   call continues with the following record.
//! * **Waiting.** [`TxBackend::wait_room`] / [`RxBackend::wait_data`] sleep
//!   until something may have changed or the deadline passes, with the
//!   no-lost-wake-up protocol [O5]/[O7] of the uapi header (set NEED_WAKEUP,
//!   full fence, re-check, sleep on the doorbell or `poll()` the device, clear
//!   the flag). They may return early (spurious wake-ups are fine: the shell
//!   loops); they must return `Err(PeerClosed)` rather than sleep forever
//!   once the peer is gone (and, for `wait_data`, drained).
//! * **Errors.** Map errno to the precise [`Error`] variant (see
//!   [`Error::errno`] for the inverse mapping).
//! * [`TxBackend::raw_fd`] / [`RxBackend::raw_fd`]: an fd that becomes
//!   readable (POLLIN) when data / room may be there, for epoll users, after
//!   [`RxBackend::arm`] / [`TxBackend::arm`] returned `Ok(true)`.

use crate::shutdown::Signal;
use crate::{Credentials, Error, PeerCredentials, Stats};
use std::os::fd::RawFd;
use std::time::Instant;

/// Per-message metadata, as stamped by the sender's backend and authenticated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct MessageMeta {
    /// Sequence number in this direction, from 0.
    pub seq: u64,
    /// CLOCK_MONOTONIC of the sender's commit, nanoseconds.
    pub timestamp_ns: u64,
    /// Payload length.
    pub len: usize,
    /// Application message type.
    pub msg_type: u16,
    /// Key epoch the record was sealed under.
    pub epoch: u32,
    /// Who sent it, as the receiver sees them.
    pub sender: Credentials,
}

/// Where an endpoint's peer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PeerState {
    /// An owner whose first peer has not attached.
    Waiting,
    /// A peer is there (for a peer: the owner is).
    Attached,
    /// The other side hung up (what it sent may still be queued).
    Closed,
}

/// The sending half of one endpoint.
pub(crate) trait TxBackend: Send {
    /// Largest payload of one message.
    fn max_message_size(&self) -> usize;
    /// Holds the next free slot; `Ok(false)` when the ring has no room.
    fn reserve(&mut self) -> Result<bool, Error>;
    /// Payload area of the held slot (after `reserve` returned `Ok(true)`).
    fn buf(&self) -> &[u8];
    /// Writable payload area of the held slot.
    fn buf_mut(&mut self) -> &mut [u8];
    /// Queues the held slot as a message of `len` bytes (`len <=
    /// max_message_size`, checked by the caller) and type `msg_type`.
    fn commit(&mut self, len: usize, msg_type: u16) -> Result<(), Error>;
    /// Publishes every committed message; returns how many.
    fn flush(&mut self) -> Result<usize, Error>;
    /// `flush` whose waits (kernel: for sealed-store room) end at
    /// `deadline` or when `cancel` is set; what is published and not yet
    /// taken then stays queued (the next flush moves it).
    fn flush_by(
        &mut self,
        _deadline: Option<Instant>,
        _cancel: Option<&Signal>,
    ) -> Result<usize, Error> {
        self.flush()
    }
    /// Whether a peer is attached, not yet, or gone.
    fn peer_state(&mut self) -> PeerState;
    /// True when one more message can be committed and flushed without
    /// waiting (what `try_send` checks first). `Err(NotConnected)` for an
    /// owner whose first peer has not attached.
    fn ready_for_one(&mut self) -> Result<bool, Error> {
        Ok(true)
    }
    /// Waits until [`TxBackend::ready_for_one`] would be true, until
    /// `deadline` (`Err(TimedOut)`) or `cancel` (`Err(Shutdown)`); an owner
    /// with no peer yet waits for one. What a blocking or bounded send
    /// checks before it queues its message, so that a message it accepts
    /// moves on without another call (kernel: is sealed) and one it gives
    /// back was never queued. The userspace backend's ring is the channel
    /// itself: nothing to wait for beyond a slot.
    fn wait_ready_for_one(
        &mut self,
        _deadline: Option<Instant>,
        _cancel: Option<&Signal>,
    ) -> Result<(), Error> {
        Ok(())
    }
    /// `flush` for a sender being dropped: publishes what it can without
    /// ever waiting (a stalled or absent peer must not hang a drop).
    fn flush_closing(&mut self) -> Result<usize, Error> {
        self.flush()
    }
    /// Messages flushed but not yet taken by the other endpoint.
    fn undelivered(&mut self) -> Result<usize, Error>;
    /// After `undelivered` reported `PeerClosed`: how many the gone peer
    /// never took (best effort from what this side can still see).
    fn undelivered_after_hangup(&mut self) -> usize {
        0
    }
    /// Sleeps until the other endpoint may have taken more, it hangs up,
    /// or `deadline` (spurious returns are fine: the caller loops).
    fn wait_delivered(&mut self, deadline: Instant) -> Result<(), Error>;
    /// Sleeps until there may be room, the peer hangs up, or `deadline`.
    fn wait_room(&mut self, deadline: Option<Instant>) -> Result<(), Error>;
    /// Asks for a doorbell on [`TxBackend::raw_fd`] when room appears;
    /// `Ok(false)` if there is room already.
    fn arm(&mut self) -> Result<bool, Error>;
    /// Ratchets the sending key now; returns the new epoch.
    fn rekey(&mut self) -> Result<u32, Error>;
    /// The endpoint's counters.
    fn stats(&self) -> Result<Stats, Error>;
    /// Readiness fd for poll/epoll.
    fn raw_fd(&self) -> RawFd;
}

/// The receiving half of one endpoint.
pub(crate) trait RxBackend: Send {
    /// Largest payload of one message.
    fn max_message_size(&self) -> usize;
    /// Makes the next message current, if there is one.
    fn next(&mut self) -> Result<Option<MessageMeta>, Error>;
    /// Payload of the current message.
    fn payload(&self) -> &[u8];
    /// Done with the current message.
    fn release(&mut self);
    /// Sleeps until data may be there, the peer hangs up, or `deadline`.
    fn wait_data(&mut self, deadline: Option<Instant>) -> Result<(), Error>;
    /// Asks for a doorbell on [`RxBackend::raw_fd`] when data arrives;
    /// `Ok(false)` if data is waiting already.
    fn arm(&mut self) -> Result<bool, Error>;
    /// Whether a peer is attached, not yet, or gone.
    fn peer_state(&mut self) -> PeerState;
    /// Who the other endpoint is.
    fn peer_credentials(&self) -> Result<PeerCredentials, Error>;
    /// The endpoint's counters.
    fn stats(&self) -> Result<Stats, Error>;
    /// Readiness fd for poll/epoll.
    fn raw_fd(&self) -> RawFd;
}

/// The two halves of a new endpoint, as a backend's create/attach returns them.
pub(crate) struct Endpoint {
    /// Sending half.
    pub tx: Box<dyn TxBackend>,
    /// Receiving half.
    pub rx: Box<dyn RxBackend>,
}
