//! Error types, one per operation (the rtrb convention): each names exactly
//! what went wrong and, where the caller handed the ring a value, gives it
//! back.

use core::fmt;

/// The header or the mapping does not describe a ring this code can use.
///
/// Returned by [`crate::RingLayout::new`], [`crate::RingLayout::init`] and
/// the `from_raw` constructors before any index is touched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// The mapping is shorter than what the header needs.
    MappingTooSmall {
        /// Bytes the header page or the header's `ring_bytes` requires.
        needed: u64,
        /// Bytes actually mapped.
        mapped: usize,
    },
    /// The base pointer is not aligned for the header words and descriptors.
    Misaligned {
        /// Required alignment in bytes.
        align: usize,
    },
    /// `magic` is not [`crate::abi::SIPC_RING_MAGIC`]: not a secure_ipc ring.
    BadMagic(u32),
    /// `abi_version` differs from [`crate::abi::SIPC_ABI_VERSION`].
    AbiVersion(u16),
    /// `kind` is not the kind of ring the caller expected.
    WrongKind {
        /// The kind the caller asked for.
        expected: u16,
        /// The kind in the header.
        found: u16,
    },
    /// `entries` is not a power of two within
    /// [`crate::abi::SIPC_MIN_ENTRIES`]..=[`crate::abi::SIPC_MAX_ENTRIES`].
    Entries(u32),
    /// `slot_size` is not a power of two within
    /// [`crate::abi::SIPC_MIN_SLOT_SIZE`]..=[`crate::abi::SIPC_MAX_SLOT_SIZE`].
    SlotSize(u32),
    /// `desc_size` differs from the size of the Rust descriptor type.
    DescSize {
        /// `size_of::<D>()`.
        expected: u32,
        /// The header's `desc_size`.
        found: u32,
    },
    /// The descriptor or slot array overlaps the header or the other array,
    /// is misaligned, or ends past `ring_bytes`.
    Offsets {
        /// The header's `desc_offset`.
        desc_offset: u32,
        /// The header's `slots_offset`.
        slots_offset: u64,
        /// The header's `ring_bytes`.
        ring_bytes: u64,
    },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::MappingTooSmall { needed, mapped } => write!(
                f,
                "ring mapping too small: {mapped} bytes mapped, {needed} needed (map the length the kernel reported)"
            ),
            Self::Misaligned { align } => {
                write!(f, "ring base pointer not aligned to {align} bytes")
            }
            Self::BadMagic(m) => write!(f, "ring header magic {m:#010x} is not SIPC: wrong mapping offset or not a secure_ipc ring"),
            Self::AbiVersion(v) => write!(
                f,
                "ring ABI version {v}, this library speaks {}: update the library or the module",
                crate::abi::SIPC_ABI_VERSION
            ),
            Self::WrongKind { expected, found } => {
                write!(f, "ring kind {found}, expected {expected}: TX and RX mappings swapped?")
            }
            Self::Entries(e) => write!(f, "ring entries {e} is not a power of two in the allowed range"),
            Self::SlotSize(s) => write!(f, "ring slot size {s} is not a power of two in the allowed range"),
            Self::DescSize { expected, found } => write!(
                f,
                "ring descriptor size {found}, the descriptor type has {expected}: wrong descriptor type for this ring"
            ),
            Self::Offsets { desc_offset, slots_offset, ring_bytes } => write!(
                f,
                "ring arrays out of bounds: desc_offset {desc_offset}, slots_offset {slots_offset}, ring_bytes {ring_bytes}"
            ),
        }
    }
}

/// The other side broke the ring protocol: a value it wrote is out of range.
///
/// The ring state is left as it was; nothing out of range is dereferenced.
/// A peer that does this is buggy or hostile: report it and close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// The other side's index is more than `entries` away from ours (or
    /// behind what we published).
    IndexOutOfRange {
        /// Producer index involved in the check.
        prod: u32,
        /// Consumer index involved in the check.
        cons: u32,
        /// Ring capacity.
        entries: u32,
    },
    /// A descriptor's payload length exceeds the slot size.
    LengthOutOfRange {
        /// Free-running index of the message.
        index: u32,
        /// The length the descriptor claims.
        len: u32,
        /// The ring's slot size.
        slot_size: u32,
    },
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::IndexOutOfRange { prod, cons, entries } => write!(
                f,
                "peer broke the ring protocol: prod {prod} cons {cons} is more than {entries} entries apart"
            ),
            Self::LengthOutOfRange { index, len, slot_size } => write!(
                f,
                "peer broke the ring protocol: message {index} claims {len} bytes, slots hold {slot_size}"
            ),
        }
    }
}

/// Error of [`crate::Producer::reserve`] and [`crate::Producer::reserve_batch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReserveError {
    /// Not enough free slots; `available` are free now.
    Full {
        /// Free slots right now.
        available: u32,
    },
    /// The consumer hung up ([`crate::abi::SIPC_FLAG_CLOSED`]); nothing more
    /// will be read.
    Closed,
    /// A batch larger than the ring was requested.
    TooLarge {
        /// Requested slots.
        requested: u32,
        /// Ring capacity.
        entries: u32,
    },
    /// The consumer's index is corrupt.
    Protocol(ProtocolError),
}

/// Error of committing a descriptor; hands the descriptor back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitError<D> {
    /// The descriptor's payload length exceeds the slot size.
    TooLong {
        /// The rejected descriptor.
        desc: D,
        /// The ring's slot size.
        slot_size: u32,
    },
    /// The batch index is outside the reserved batch.
    OutOfBatch {
        /// The rejected descriptor.
        desc: D,
        /// Entries in the batch.
        batch_len: u32,
    },
}

/// Error of [`crate::Producer::push`]; hands the descriptor back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushError<D> {
    /// No free slot.
    Full(D),
    /// The consumer hung up.
    Closed(D),
    /// The payload is longer than a slot.
    TooLong {
        /// The rejected descriptor.
        desc: D,
        /// Payload length.
        len: usize,
        /// The ring's slot size.
        slot_size: u32,
    },
    /// The consumer's index is corrupt.
    Protocol(ProtocolError),
}

/// Error of [`crate::Consumer::peek`] and [`crate::Consumer::peek_batch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeekError {
    /// Nothing published yet.
    Empty,
    /// The producer hung up and everything it published was consumed.
    Closed,
    /// The producer's index or a descriptor is corrupt.
    Protocol(ProtocolError),
}

/// Error of copying a payload into or out of a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadError {
    /// `offset + len` exceeds the slot size.
    OutOfSlot {
        /// Requested end of the write (offset + length).
        end: usize,
        /// The ring's slot size.
        slot_size: usize,
    },
    /// The destination buffer is shorter than the message.
    BufferTooSmall {
        /// Message length.
        needed: usize,
        /// Buffer length.
        have: usize,
    },
    /// The batch index is outside the batch.
    OutOfBatch {
        /// The index asked for.
        index: u32,
        /// Entries in the batch.
        batch_len: u32,
    },
}

macro_rules! display_debug {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }
    )*};
}
display_debug!(ReserveError, PeekError, PayloadError);

impl<D> fmt::Display for CommitError<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong { slot_size, .. } => {
                write!(
                    f,
                    "descriptor payload length exceeds the slot size {slot_size}"
                )
            }
            Self::OutOfBatch { batch_len, .. } => {
                write!(f, "index outside the reserved batch of {batch_len}")
            }
        }
    }
}

impl<D> fmt::Display for PushError<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("ring full"),
            Self::Closed(_) => f.write_str("consumer hung up"),
            Self::TooLong { len, slot_size, .. } => {
                write!(
                    f,
                    "payload of {len} bytes exceeds the slot size {slot_size}"
                )
            }
            Self::Protocol(e) => fmt::Display::fmt(e, f),
        }
    }
}

#[cfg(feature = "std")]
mod std_impls {
    use super::*;
    impl std::error::Error for LayoutError {}
    impl std::error::Error for ProtocolError {}
    impl std::error::Error for ReserveError {}
    impl std::error::Error for PeekError {}
    impl std::error::Error for PayloadError {}
    impl<D: fmt::Debug> std::error::Error for CommitError<D> {}
    impl<D: fmt::Debug> std::error::Error for PushError<D> {}
}

impl From<ProtocolError> for ReserveError {
    fn from(e: ProtocolError) -> Self {
        Self::Protocol(e)
    }
}

impl From<ProtocolError> for PeekError {
    fn from(e: ProtocolError) -> Self {
        Self::Protocol(e)
    }
}
