//! Async halves for tokio (feature `tokio`): [`AsyncSender`] and
//! [`AsyncReceiver`], built on [`tokio::io::unix::AsyncFd`] over the
//! readiness contract of docs/client-api.md, on both backends.
//!
//! Each wrapper registers two fds with the runtime's reactor: the half's
//! readiness fd ([`AsRawFd::as_raw_fd`] of the [`Sender`]/[`Receiver`]) and
//! the eventfd of the half's [`Shutdown`] switch, so that
//! [`Shutdown::shutdown`] ends a pending `send`/`recv` with
//! [`Error::Shutdown`].
//!
//! # Cancellation
//!
//! Both futures are cancel-safe (they may be dropped in a `tokio::select!`
//! branch that loses):
//!
//! * [`AsyncReceiver::recv`] takes a message off the ring only in the poll
//!   that returns it. A future dropped before it completed took nothing:
//!   the next `recv` (or `try_recv`) returns that message, in order.
//! * [`AsyncSender::send`] queues the message only in the poll that
//!   returns `Ok`, with one non-waiting [`Sender::try_send`]. A future
//!   dropped before it completed sent nothing and holds no slot; the
//!   payload was only borrowed, so the caller still has it to send again.
//!   `Ok` means what `try_send`'s `Ok` means: queued for the peer (kernel
//!   backend: already sealed).
//!
//! The halves keep their busy-poll-free shape: a waiting future costs no
//! CPU, it sleeps in the reactor until the fd turns readable.

use crate::backend::PeerState;
use crate::shutdown::Signal;
use crate::{shutdown_handle_of, Error, Message, Receiver, Sender, Shutdown};
use std::future::poll_fn;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::task::Poll;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// A registered fd that somebody else owns (the half, or its switch): the
/// wrappers declare it before its owner, so it is deregistered first.
struct Watched(RawFd);

impl AsRawFd for Watched {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// The two registrations of one half and its switch.
struct Reactor {
    ready: AsyncFd<Watched>,
    stop: AsyncFd<Watched>,
    signal: Arc<Signal>,
}

impl Reactor {
    fn new(ready: RawFd, signal: Arc<Signal>) -> Result<Self, Error> {
        let reg = |fd| AsyncFd::with_interest(Watched(fd), Interest::READABLE).map_err(Error::Io);
        Ok(Self {
            ready: reg(ready)?,
            stop: reg(signal.fd())?,
            signal,
        })
    }

    /// After the operation would have blocked and `arm()` said so (the fd
    /// is drained and the condition re-checked): waits until the readiness
    /// fd or the switch fires, then clears what it saw. The caller retries
    /// the operation next, so an event that arrived before the clear is
    /// seen by that retry, and one after it sets the readiness anew.
    async fn wait(&self) -> Result<(), Error> {
        poll_fn(|cx| {
            if self.signal.is_set() {
                return Poll::Ready(Ok(()));
            }
            // The switch's eventfd is never drained, so it stays ready
            // once set; only its wake-up matters here.
            if let Poll::Ready(Err(e)) = self.stop.poll_read_ready(cx) {
                return Poll::Ready(Err(Error::Io(e)));
            }
            if self.signal.is_set() {
                return Poll::Ready(Ok(()));
            }
            match self.ready.poll_read_ready(cx) {
                Poll::Ready(Ok(mut guard)) => {
                    guard.clear_ready();
                    Poll::Ready(Ok(()))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(Error::Io(e))),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }
}

/// The receiving half for tokio: [`Receiver`] with an async
/// [`AsyncReceiver::recv`]. `Send`; use it from one task at a time.
pub struct AsyncReceiver {
    // Field order is drop order: the registrations go before the fds.
    reactor: Reactor,
    inner: Receiver,
}

impl std::fmt::Debug for AsyncReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncReceiver")
            .field("inner", &self.inner)
            .finish()
    }
}

impl AsyncReceiver {
    /// Registers `rx` with the current tokio runtime's reactor (which needs
    /// its IO driver: `enable_io` or `enable_all`). Fails with
    /// [`Error::Io`] outside a runtime.
    pub fn new(mut rx: Receiver) -> Result<Self, Error> {
        shutdown_handle_of(&mut rx.shutdown)?;
        let signal = rx.shutdown.clone().expect("made above");
        let reactor = Reactor::new(rx.rx.raw_fd(), signal)?;
        Ok(Self { reactor, inner: rx })
    }

    /// Receives the next message, waiting without blocking the thread.
    ///
    /// Cancel-safe: a future dropped before it completed took no message.
    /// Ends with [`Error::PeerClosed`] once the peer hung up and everything
    /// it sent was received, and with [`Error::Shutdown`] when the switch
    /// ([`AsyncReceiver::shutdown_handle`]) is set and no message waits.
    pub async fn recv(&mut self) -> Result<Message<'_>, Error> {
        loop {
            if let Some(meta) = self.inner.rx.next()? {
                return Ok(self.inner.message(meta));
            }
            if self.reactor.signal.is_set() {
                return Err(Error::Shutdown);
            }
            if !self.inner.rx.arm()? {
                continue;
            }
            self.reactor.wait().await?;
        }
    }

    /// The next message if one is waiting ([`Receiver::try_recv`]).
    pub fn try_recv(&mut self) -> Result<Option<Message<'_>>, Error> {
        self.inner.try_recv()
    }

    /// The handle of this half's switch (the one of
    /// [`Receiver::shutdown_handle`]): wakes a pending `recv` from any
    /// thread or task.
    pub fn shutdown_handle(&self) -> Shutdown {
        Shutdown::new(self.reactor.signal.clone())
    }

    /// The peer has hung up ([`Receiver::is_closed`]).
    pub fn is_closed(&mut self) -> bool {
        self.inner.rx.peer_state() == PeerState::Closed
    }

    /// The blocking half, for the calls this wrapper does not repeat.
    pub fn get_ref(&self) -> &Receiver {
        &self.inner
    }

    /// The blocking half, mutably. Its blocking calls block the thread.
    pub fn get_mut(&mut self) -> &mut Receiver {
        &mut self.inner
    }

    /// Deregisters from the reactor and returns the blocking half.
    pub fn into_inner(self) -> Receiver {
        let Self { reactor, inner } = self;
        drop(reactor);
        inner
    }
}

impl AsRawFd for AsyncReceiver {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl AsFd for AsyncReceiver {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

/// The sending half for tokio: [`Sender`] with an async
/// [`AsyncSender::send`]. `Send`; use it from one task at a time.
pub struct AsyncSender {
    // Field order is drop order: the registrations go before the fds.
    reactor: Reactor,
    inner: Sender,
}

impl std::fmt::Debug for AsyncSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncSender")
            .field("inner", &self.inner)
            .finish()
    }
}

impl AsyncSender {
    /// Registers `tx` with the current tokio runtime's reactor (which needs
    /// its IO driver). Fails with [`Error::Io`] outside a runtime.
    pub fn new(mut tx: Sender) -> Result<Self, Error> {
        shutdown_handle_of(&mut tx.shutdown)?;
        let signal = tx.shutdown.clone().expect("made above");
        let reactor = Reactor::new(tx.tx.raw_fd(), signal)?;
        Ok(Self { reactor, inner: tx })
    }

    /// Sends one message of type 0, waiting (without blocking the thread)
    /// while the channel is full or an owner's first peer has not attached.
    ///
    /// Cancel-safe: a future dropped before it completed sent nothing and
    /// holds no slot. `Ok` means queued for the peer (kernel backend:
    /// sealed). Ends with [`Error::PeerClosed`] when the peer hung up,
    /// [`Error::Shutdown`] when the switch is set, and
    /// [`Error::MessageTooLarge`] at once for a payload no slot holds.
    pub async fn send(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.send_with_type(0, payload).await
    }

    /// [`AsyncSender::send`] with a message type.
    pub async fn send_with_type(&mut self, ty: u16, payload: &[u8]) -> Result<(), Error> {
        loop {
            match self.inner.try_send_inner(ty, payload) {
                Ok(()) => return Ok(()),
                Err(Error::Full) | Err(Error::NotConnected) => {}
                Err(e) => return Err(e),
            }
            if self.reactor.signal.is_set() {
                return Err(Error::Shutdown);
            }
            match self.inner.tx.arm() {
                Ok(false) => continue,
                // NotConnected: an owner's kernel sender before its first
                // peer; the fd turns readable when one attaches.
                Ok(true) | Err(Error::NotConnected) => {}
                Err(e) => return Err(e),
            }
            self.reactor.wait().await?;
        }
    }

    /// Sends without waiting ([`Sender::try_send`]); `Err` hands the
    /// payload back.
    pub fn try_send<P: AsRef<[u8]>>(&mut self, payload: P) -> Result<(), crate::SendError<P>> {
        self.inner.try_send(payload)
    }

    /// Largest payload of one message.
    pub fn max_message_size(&self) -> usize {
        self.inner.max_message_size()
    }

    /// The handle of this half's switch (the one of
    /// [`Sender::shutdown_handle`]): wakes a pending `send` from any
    /// thread or task.
    pub fn shutdown_handle(&self) -> Shutdown {
        Shutdown::new(self.reactor.signal.clone())
    }

    /// The peer has hung up ([`Sender::is_closed`]).
    pub fn is_closed(&mut self) -> bool {
        self.inner.tx.peer_state() == PeerState::Closed
    }

    /// The blocking half, for the calls this wrapper does not repeat.
    pub fn get_ref(&self) -> &Sender {
        &self.inner
    }

    /// The blocking half, mutably. Its blocking calls block the thread.
    pub fn get_mut(&mut self) -> &mut Sender {
        &mut self.inner
    }

    /// Deregisters from the reactor and returns the blocking half.
    pub fn into_inner(self) -> Sender {
        let Self { reactor, inner } = self;
        drop(reactor);
        inner
    }
}

impl AsRawFd for AsyncSender {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl AsFd for AsyncSender {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}
