//! secure-ipc-ring: the single-producer single-consumer ring protocol of
//! secure_ipc over a raw memory region.
//!
//! The region is laid out as `kernel/include/uapi/linux/secure_ipc.h`
//! describes (mirrored in [`abi`]): a 4096-byte header page, the descriptor
//! array at `desc_offset`, the slot array at `slots_offset`; message `i`
//! lives in descriptor and slot `i & (entries - 1)`. The memory-ordering
//! protocol is the header's \[O1\]..\[O9\]; every atomic access in this crate
//! names its step and partner. See docs/ring-protocol.md.
//!
//! Ways in:
//! - [`Producer::from_raw`] / [`Consumer::from_raw`]: a ring someone else
//!   initialised (the kernel's TX/RX rings from `/dev/secure_ipc`, or a
//!   shared-memory ring), validated before use;
//! - [`RingLayout::new`] + [`RingLayout::init`]: initialise a ring in memory
//!   you provide (e.g. a memfd shared by two processes);
//! - [`channel`] / [`HeapRing`] (feature `std`): a heap-backed ring for
//!   tests, benches and in-process use.
//!
//! A hostile peer cannot make this code misbehave: an index more than
//! `entries` away, a descriptor length beyond the slot, a corrupt geometry
//! all give an error value ([`ProtocolError`], [`LayoutError`]); every
//! address is masked into the validated arrays.
//!
//! ```
//! use secure_ipc_ring::{abi::TxDesc, channel};
//! let (mut tx, mut rx) = channel::<TxDesc>(8, 64).unwrap();
//! tx.push(TxDesc::default(), b"hello").unwrap();
//! let wake = tx.publish();
//! assert!(!wake); // the consumer is not asleep
//! let msg = rx.peek().unwrap();
//! let mut buf = [0u8; 64];
//! let n = msg.read_payload(&mut buf).unwrap();
//! assert_eq!(&buf[..n], b"hello");
//! msg.release();
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

#[cfg(all(loom, not(feature = "std")))]
compile_error!("the loom build needs the `std` feature");

pub mod abi;
mod consumer;
mod desc;
mod error;
#[cfg(feature = "std")]
mod heap;
mod layout;
mod producer;
mod raw;
mod sync;

pub use consumer::{Consumer, ReadBatch, ReadBatchIter, ReadEntry, ReadSlot};
pub use desc::Descriptor;
pub use error::{
    CommitError, LayoutError, PayloadError, PeekError, ProtocolError, PushError, ReserveError,
};
#[cfg(feature = "std")]
pub use heap::{channel, HeapRing, Tamper};
pub use layout::{RingKind, RingLayout, PAGE_SIZE};
pub use producer::{Producer, WriteBatch, WriteSlot};
pub use raw::SharedWord;
#[cfg(loom)]
pub use raw::Weaken;

/// The kernel status line of a ring header (line 5), loaded with acquire
/// (\[O9\]). Hints for polling and sleeping; the ioctls are authoritative.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelStatus {
    /// Records sealed into the direction's sealed store so far.
    pub store_prod: u32,
    /// Records opened out of the sealed store so far.
    pub store_cons: u32,
    /// Capacity of the sealed store.
    pub store_entries: u32,
    /// `SIPC_STATUS_*` bits.
    pub status: u32,
}

impl KernelStatus {
    fn load<D: Descriptor>(region: &raw::Region<D>) -> Self {
        // [O9] Each load pairs with the kernel's smp_store_release() of the
        // same word (kernel side, SEND/RECV paths).
        let ld = |w| region.word(w).load(sync::Ordering::Acquire);
        Self {
            store_prod: ld(SharedWord::StoreProd),
            store_cons: ld(SharedWord::StoreCons),
            store_entries: ld(SharedWord::StoreEntries),
            status: ld(SharedWord::Status),
        }
    }

    /// Records in the sealed store (free-running difference).
    pub fn store_fill(&self) -> u32 {
        self.store_prod.wrapping_sub(self.store_cons)
    }

    /// RX ring: sealed records wait to be opened (`store_prod != store_cons`).
    pub fn records_waiting(&self) -> bool {
        self.store_prod != self.store_cons
    }

    /// TX ring: the sealed store has room for another record.
    pub fn store_has_room(&self) -> bool {
        self.store_fill() < self.store_entries
    }

    /// `SIPC_STATUS_PEER_ATTACHED`.
    pub fn peer_attached(&self) -> bool {
        self.status & abi::SIPC_STATUS_PEER_ATTACHED != 0
    }

    /// `SIPC_STATUS_PEER_CLOSED`: drain, then expect EPIPE.
    pub fn peer_closed(&self) -> bool {
        self.status & abi::SIPC_STATUS_PEER_CLOSED != 0
    }

    /// `SIPC_STATUS_ERROR`: the kernel saw EPROTO on this ring.
    pub fn error(&self) -> bool {
        self.status & abi::SIPC_STATUS_ERROR != 0
    }
}
