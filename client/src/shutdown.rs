//! Waking a blocked call from another thread: [`Shutdown`].

use crate::sys;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What a [`Shutdown`] handle and the half it belongs to share: the flag,
/// and an eventfd that turns readable (and stays so) when it is set, which
/// every wait of that half polls beside its own fd.
#[derive(Debug)]
pub(crate) struct Signal {
    set: AtomicBool,
    efd: OwnedFd,
}

impl Signal {
    pub(crate) fn new() -> Result<Arc<Self>, crate::Error> {
        Ok(Arc::new(Self {
            set: AtomicBool::new(false),
            efd: sys::eventfd()?,
        }))
    }

    pub(crate) fn is_set(&self) -> bool {
        // Pairs with the Release store in Shutdown::shutdown(): a waiter
        // that sees the flag also sees everything the caller did before.
        self.set.load(Ordering::Acquire)
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.efd.as_raw_fd()
    }
}

/// A handle that wakes the blocking calls of one [`crate::Sender`] or
/// [`crate::Receiver`] from any thread (from
/// [`crate::Sender::shutdown_handle`] / [`crate::Receiver::shutdown_handle`]).
///
/// After [`Shutdown::shutdown`], every call of that half that would wait
/// (a waiting `send`, `reserve`, `recv`, their timeout and deadline forms,
/// and the async ones) returns [`crate::Error::Shutdown`] instead, at once
/// for those already asleep. Calls that need no wait still work: a `recv`
/// still returns a message that is already there, so a consumer can drain
/// with `try_recv` after shutting down. It does not close the channel: the
/// peer notices nothing until the half is dropped. Cloneable, `Send` and
/// `Sync`; shutting down twice is harmless.
#[derive(Clone, Debug)]
pub struct Shutdown {
    signal: Arc<Signal>,
}

impl Shutdown {
    pub(crate) fn new(signal: Arc<Signal>) -> Self {
        Self { signal }
    }

    /// Wakes the half's waiting calls and makes every later wait return
    /// [`crate::Error::Shutdown`]. Never blocks.
    pub fn shutdown(&self) {
        // Pairs with the Acquire load in Signal::is_set().
        self.signal.set.store(true, Ordering::Release);
        // The eventfd is never drained: it stays readable for every later
        // poll, so a wait that starts after this returns at once too.
        sys::eventfd_signal(&self.signal.efd);
    }

    /// Whether [`Shutdown::shutdown`] was called.
    pub fn is_shutdown(&self) -> bool {
        self.signal.is_set()
    }
}

/// The switch's eventfd: readable (for good) once [`Shutdown::shutdown`]
/// was called, so an event loop can watch it beside the half's own fd.
/// Reading it is not needed and does not reset the switch.
impl AsFd for Shutdown {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.signal.efd.as_fd()
    }
}

impl AsRawFd for Shutdown {
    fn as_raw_fd(&self) -> RawFd {
        self.signal.fd()
    }
}
