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

mod counters;
mod creds;
mod halves;
mod owner;
mod peer;
mod session;
mod wire;

pub(crate) use owner::create;
pub(crate) use peer::attach;
pub use peer::query_stats;

use counters::Counters;
use creds::{
    link_error, policy_allows, random32, recv_plain, refusal_of, refuse, socket_peer, SocketPeer,
};
use halves::{Deposit, Pending, Readiness, RxState, TxState, UsRx, UsTx};
use owner::connect_to;
use session::{
    build_session, Bells, Geometry, Keys, Link, RxSession, Session, SessionParts, TxSession,
};
use wire::{Accept, Attach, Hello, Le32, Le64, Packet, Ready, Refuse, StatsQuery, StatsReply};

use crate::backend::{Endpoint, MessageMeta, PeerState, RxBackend, TxBackend};
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
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// How long one side waits for the other during the rendezvous.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Empty polls between two zero-timeout checks of the socket for a hang-up.
const HANGUP_CHECK_EVERY: u32 = 256;

/// HELLO flags: the owner requires the peer's identity proof.
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
