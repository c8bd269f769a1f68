//! The crate's error type: one variant per failure a caller can act on.

use std::fmt;
use std::io;

/// Everything that can go wrong on a channel.
///
/// Each variant names one failure; the `Display` text says what happened and,
/// where there is one, what to do about it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The other endpoint hung up and every record it sent has been received.
    PeerClosed,
    /// The payload does not fit in one slot.
    MessageTooLarge {
        /// Requested payload length.
        len: usize,
        /// Largest payload this channel carries.
        max: usize,
    },
    /// No free slot right now (only from the non-blocking calls).
    Full,
    /// A record failed AES-GCM authentication (altered, replayed, reordered
    /// or sealed under another key). It was dropped and never delivered.
    AuthenticationFailed,
    /// The channel's peer policy refused this process (uid, gid or pid
    /// namespace), or the caller may not create channels.
    NotPermitted,
    /// No channel of that name exists (nobody listens on its rendezvous).
    NoSuchChannel,
    /// A channel of that name already exists.
    ChannelExists,
    /// The channel already has a peer; only one may be attached at a time.
    Busy,
    /// `Backend::Kernel` was requested but `/dev/secure_ipc` cannot be opened.
    ModuleNotLoaded,
    /// The channel name is empty, longer than 31 bytes, or has a byte outside
    /// `[A-Za-z0-9._-]`.
    InvalidName,
    /// Slot count or slot size is not a power of two or out of range.
    InvalidGeometry,
    /// The channel pins a peer identity and the proof was missing or wrong.
    IdentityRejected,
    /// Both sides supplied different pre-shared keys (or only one side did).
    PskMismatch,
    /// The process listening on the channel's name is not the owner this
    /// attacher expects (its uid differs from the owner policy's, or it did
    /// not prove the pinned owner identity). Nothing was sent to it.
    OwnerRejected,
    /// The owner has no peer yet (only from the non-blocking calls).
    NotConnected,
    /// [`crate::Sender::close`]: this many flushed messages had not been
    /// received by the peer when the timeout passed or the peer hung up.
    NotDelivered {
        /// Messages the peer never took.
        undelivered: usize,
    },
    /// An argument is unusable (the text says which).
    InvalidArgument(&'static str),
    /// The other side broke the rendezvous or ring protocol.
    Protocol(String),
    /// A bounded wait ran out of time: the rendezvous handshake, or one of
    /// the `_timeout`/`_deadline` calls (then nothing was sent or received).
    TimedOut,
    /// The half's [`crate::Shutdown`] handle was used: the call would have
    /// waited. Nothing was sent or received by it.
    Shutdown,
    /// An operating-system call failed.
    Io(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::PeerClosed => write!(f, "the peer closed the channel"),
            Error::MessageTooLarge { len, max } => write!(
                f,
                "message of {len} bytes is larger than the channel's maximum of {max} bytes \
                 (create the channel with a larger slot size)"
            ),
            Error::Full => write!(f, "the channel is full; retry later or use a blocking send"),
            Error::AuthenticationFailed => write!(
                f,
                "a record failed authentication and was dropped (tampered, replayed or wrong key)"
            ),
            Error::NotPermitted => {
                write!(f, "not permitted: the channel's peer policy refused this process")
            }
            Error::NoSuchChannel => write!(f, "no such channel (is the owner running?)"),
            Error::ChannelExists => write!(f, "a channel with this name already exists"),
            Error::Busy => write!(f, "the channel already has a peer attached"),
            Error::ModuleNotLoaded => write!(
                f,
                "/dev/secure_ipc is not available (load secure_ipc.ko, or use the userspace backend)"
            ),
            Error::InvalidName => write!(
                f,
                "invalid channel name: use 1 to 31 bytes of [A-Za-z0-9._-]"
            ),
            Error::InvalidGeometry => write!(
                f,
                "invalid geometry: slots must be a power of two in 2..=32768 and the slot size a \
                 power of two in 64..=65536"
            ),
            Error::IdentityRejected => {
                write!(f, "identity proof missing or wrong for this channel's pinned identity")
            }
            Error::PskMismatch => write!(
                f,
                "pre-shared key mismatch: both sides must supply the same PSK (or none)"
            ),
            Error::OwnerRejected => write!(
                f,
                "the process serving this channel name is not the expected owner (uid or owner \
                 identity mismatch); set the owner policy to the owner you expect"
            ),
            Error::NotDelivered { undelivered } => write!(
                f,
                "{undelivered} message(s) were not received by the peer before the channel \
                 closed (the peer stalled or hung up)"
            ),
            Error::NotConnected => write!(f, "no peer has attached to the channel yet"),
            Error::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            Error::Protocol(what) => write!(f, "protocol error: {what}"),
            Error::TimedOut => write!(f, "timed out"),
            Error::Shutdown => write!(f, "shut down: this half's Shutdown handle was used"),
            Error::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl Error {
    /// The closest errno, for C and JNI callers and CLI exit codes.
    pub fn errno(&self) -> i32 {
        match self {
            Error::PeerClosed => libc::EPIPE,
            Error::MessageTooLarge { .. } => libc::EMSGSIZE,
            Error::Full => libc::EAGAIN,
            Error::AuthenticationFailed => libc::EBADMSG,
            Error::NotPermitted => libc::EACCES,
            Error::NoSuchChannel => libc::ENOENT,
            Error::ChannelExists => libc::EEXIST,
            Error::Busy => libc::EBUSY,
            Error::ModuleNotLoaded => libc::ENODEV,
            Error::InvalidName | Error::InvalidGeometry | Error::InvalidArgument(_) => libc::EINVAL,
            Error::IdentityRejected | Error::PskMismatch => libc::EKEYREJECTED,
            Error::OwnerRejected => libc::EPERM,
            Error::NotConnected => libc::ENOTCONN,
            Error::NotDelivered { .. } => libc::EPIPE,
            Error::Protocol(_) => libc::EPROTO,
            Error::TimedOut => libc::ETIMEDOUT,
            Error::Shutdown => libc::ESHUTDOWN,
            Error::Io(e) => e.raw_os_error().unwrap_or(libc::EIO),
        }
    }
}

/// A send that did not happen, with the payload handed back (the pattern of
/// crossbeam-channel's `SendTimeoutError<T>` and rtrb's `PushError<T>`).
///
/// Returned by [`crate::Sender::try_send`] and the `send_timeout` /
/// `send_deadline` family: `error()` says why ([`Error::Full`],
/// [`Error::TimedOut`], [`Error::Shutdown`], [`Error::NotConnected`],
/// [`Error::PeerClosed`], [`Error::MessageTooLarge`], ...), and the message
/// was not queued, so the caller may retry with [`SendError::into_payload`].
/// Converts into [`Error`], so `?` works in functions returning `Error`.
pub struct SendError<P> {
    pub(crate) error: Error,
    pub(crate) payload: P,
}

impl<P> SendError<P> {
    /// Why the message was not sent.
    pub fn error(&self) -> &Error {
        &self.error
    }
    /// The payload that was not sent.
    pub fn into_payload(self) -> P {
        self.payload
    }
    /// Why, dropping the payload.
    pub fn into_error(self) -> Error {
        self.error
    }
    /// Both.
    pub fn into_parts(self) -> (Error, P) {
        (self.error, self.payload)
    }
    /// `error()` is [`Error::Full`] (only from `try_send`).
    pub fn is_full(&self) -> bool {
        matches!(self.error, Error::Full)
    }
    /// `error()` is [`Error::TimedOut`].
    pub fn is_timeout(&self) -> bool {
        matches!(self.error, Error::TimedOut)
    }
}

impl<P> fmt::Debug for SendError<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The payload may be large or secret: only its cause is printed.
        f.debug_struct("SendError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<P> fmt::Display for SendError<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "message not sent: {}", self.error)
    }
}

impl<P> std::error::Error for SendError<P> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<P> From<SendError<P>> for Error {
    fn from(e: SendError<P>) -> Self {
        e.error
    }
}
