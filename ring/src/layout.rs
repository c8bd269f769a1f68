//! Ring geometry: computing a layout for a new ring, and validating the
//! geometry (header line 0) of a ring someone else initialised.
//!
//! A ring mapping is the 4096-byte header page, the descriptor array at
//! `desc_offset` (`entries` descriptors, padded to a page), then the slot
//! array at `slots_offset` (page aligned, `entries` slots of `slot_size`
//! bytes). `ring_bytes` is the whole mapping, a multiple of the page size.

use crate::abi;
use crate::desc::Descriptor;
use crate::error::LayoutError;
use core::mem::{align_of, size_of};

/// Page size the layout is padded to (also the header size).
pub const PAGE_SIZE: u64 = abi::SIPC_RING_HDR_SIZE as u64;

/// Which kind of ring a mapping is (`sipc_ring_hdr.kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingKind {
    /// [`abi::SIPC_RING_TX`]: user space produces.
    Tx,
    /// [`abi::SIPC_RING_RX`]: user space consumes.
    Rx,
}

impl RingKind {
    /// The header's `kind` value.
    pub const fn to_raw(self) -> u16 {
        match self {
            Self::Tx => abi::SIPC_RING_TX,
            Self::Rx => abi::SIPC_RING_RX,
        }
    }
}

/// The geometry of one ring, as stored in header line 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingLayout {
    /// Number of descriptors and slots (power of two).
    pub entries: u32,
    /// Bytes per slot (power of two).
    pub slot_size: u32,
    /// Bytes per descriptor.
    pub desc_size: u32,
    /// Offset of the descriptor array (the header size).
    pub desc_offset: u32,
    /// Offset of the slot array, page aligned.
    pub slots_offset: u64,
    /// Total mapping length, page aligned.
    pub ring_bytes: u64,
}

const fn page_align(x: u64) -> u64 {
    (x + PAGE_SIZE - 1) & !(PAGE_SIZE - 1)
}

fn valid_entries(e: u32) -> bool {
    e.is_power_of_two() && (abi::SIPC_MIN_ENTRIES..=abi::SIPC_MAX_ENTRIES).contains(&e)
}

fn valid_slot_size(s: u32) -> bool {
    s.is_power_of_two() && (abi::SIPC_MIN_SLOT_SIZE..=abi::SIPC_MAX_SLOT_SIZE).contains(&s)
}

impl RingLayout {
    /// The layout of a ring of `entries` slots of `slot_size` bytes carrying
    /// descriptors of type `D`: what [`RingLayout::init`] writes and what
    /// the kernel computes for its rings.
    pub fn new<D: Descriptor>(entries: u32, slot_size: u32) -> Result<Self, LayoutError> {
        Self::with_desc_size(entries, slot_size, size_of::<D>() as u32)
    }

    /// [`RingLayout::new`] for a descriptor size given as a number.
    pub fn with_desc_size(
        entries: u32,
        slot_size: u32,
        desc_size: u32,
    ) -> Result<Self, LayoutError> {
        if !valid_entries(entries) {
            return Err(LayoutError::Entries(entries));
        }
        if !valid_slot_size(slot_size) {
            return Err(LayoutError::SlotSize(slot_size));
        }
        if desc_size == 0 || desc_size as u64 > PAGE_SIZE {
            return Err(LayoutError::DescSize {
                expected: desc_size,
                found: desc_size,
            });
        }
        // Bounded by the checks above: at most 32768 * 4096 and 32768 * 65536
        // bytes, so u64 arithmetic cannot overflow.
        let desc_offset = abi::SIPC_RING_HDR_SIZE;
        let slots_offset = page_align(desc_offset as u64 + entries as u64 * desc_size as u64);
        let ring_bytes = page_align(slots_offset + entries as u64 * slot_size as u64);
        Ok(Self {
            entries,
            slot_size,
            desc_size,
            desc_offset,
            slots_offset,
            ring_bytes,
        })
    }

    /// Total mapping length of the ring in bytes (a multiple of 4096).
    pub fn ring_bytes(&self) -> usize {
        self.ring_bytes as usize
    }

    /// Header line 0 for this layout.
    pub(crate) fn header(&self, kind: RingKind) -> abi::RingHeader {
        let mut h: abi::RingHeader = bytemuck::Zeroable::zeroed();
        h.magic = abi::SIPC_RING_MAGIC;
        h.abi_version = abi::SIPC_ABI_VERSION as u16;
        h.kind = kind.to_raw();
        h.entries = self.entries;
        h.slot_size = self.slot_size;
        h.desc_size = self.desc_size;
        h.desc_offset = self.desc_offset;
        h.slots_offset = self.slots_offset;
        h.ring_bytes = self.ring_bytes;
        h
    }
}

/// The fields of header line 0, copied out of shared memory once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Line0 {
    pub magic: u32,
    pub abi_version: u16,
    pub kind: u16,
    pub entries: u32,
    pub slot_size: u32,
    pub desc_size: u32,
    pub desc_offset: u32,
    pub slots_offset: u64,
    pub ring_bytes: u64,
}

/// Validated geometry the ring code indexes with. Every offset computed from
/// it for an index masked with `mask` is inside the mapping.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    pub entries: u32,
    pub mask: u32,
    pub slot_size: u32,
    /// log2(slot_size): slot i starts at slots_offset + (i << slot_shift).
    pub slot_shift: u32,
    pub desc_offset: usize,
    pub slots_offset: usize,
}

/// The alignment the base pointer of a mapping must have for descriptors of
/// type `D` (the header words need 8).
pub(crate) fn base_align<D>() -> usize {
    align_of::<D>().max(8)
}

/// Checks line 0 against the mapping length, the expected kind and the
/// descriptor type. Any value a hostile writer could have put there gives an
/// error, never an out-of-bounds geometry. Only [`SIPC_ABI_VERSION`] is
/// accepted (the production path is [`validate_versions`] with `false`).
///
/// [`SIPC_ABI_VERSION`]: abi::SIPC_ABI_VERSION
#[cfg(test)]
pub(crate) fn validate<D: Descriptor>(
    l: &Line0,
    mapped: usize,
    kind: RingKind,
) -> Result<Geometry, LayoutError> {
    validate_versions::<D>(l, mapped, kind, false)
}

/// [`validate`], also accepting the versions of
/// [`abi::SIPC_RING_COMPATIBLE_ABI_VERSIONS`] when `ring_compatible`.
pub(crate) fn validate_versions<D: Descriptor>(
    l: &Line0,
    mapped: usize,
    kind: RingKind,
    ring_compatible: bool,
) -> Result<Geometry, LayoutError> {
    if l.magic != abi::SIPC_RING_MAGIC {
        return Err(LayoutError::BadMagic(l.magic));
    }
    let v = l.abi_version as u32;
    let compatible = ring_compatible && abi::SIPC_RING_COMPATIBLE_ABI_VERSIONS.contains(&v);
    if v != abi::SIPC_ABI_VERSION && !compatible {
        return Err(LayoutError::AbiVersion(l.abi_version));
    }
    if l.kind != kind.to_raw() {
        return Err(LayoutError::WrongKind {
            expected: kind.to_raw(),
            found: l.kind,
        });
    }
    if !valid_entries(l.entries) {
        return Err(LayoutError::Entries(l.entries));
    }
    if !valid_slot_size(l.slot_size) {
        return Err(LayoutError::SlotSize(l.slot_size));
    }
    if l.desc_size as usize != size_of::<D>() {
        return Err(LayoutError::DescSize {
            expected: size_of::<D>() as u32,
            found: l.desc_size,
        });
    }
    let bad = LayoutError::Offsets {
        desc_offset: l.desc_offset,
        slots_offset: l.slots_offset,
        ring_bytes: l.ring_bytes,
    };
    if l.ring_bytes > mapped as u64 {
        return Err(LayoutError::MappingTooSmall {
            needed: l.ring_bytes,
            mapped,
        });
    }
    // All u64: entries <= 2^15, desc_size == size_of::<D>() (small), slot_size
    // <= 2^16, offsets < 2^64 checked with checked_add.
    let desc_end = (l.desc_offset as u64)
        .checked_add(l.entries as u64 * l.desc_size as u64)
        .ok_or(bad)?;
    let slots_end = l
        .slots_offset
        .checked_add(l.entries as u64 * l.slot_size as u64)
        .ok_or(bad)?;
    let ordered = l.desc_offset as u64 >= PAGE_SIZE
        && desc_end <= l.slots_offset
        && slots_end <= l.ring_bytes;
    let aligned = l.desc_offset as usize % align_of::<D>() == 0 && l.slots_offset % PAGE_SIZE == 0;
    if !ordered || !aligned {
        return Err(bad);
    }
    Ok(Geometry {
        entries: l.entries,
        mask: l.entries - 1,
        slot_size: l.slot_size,
        slot_shift: l.slot_size.trailing_zeros(),
        desc_offset: l.desc_offset as usize,
        slots_offset: l.slots_offset as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{RxDesc, TxDesc};

    fn line0(l: &RingLayout, kind: RingKind) -> Line0 {
        let h = l.header(kind);
        Line0 {
            magic: h.magic,
            abi_version: h.abi_version,
            kind: h.kind,
            entries: h.entries,
            slot_size: h.slot_size,
            desc_size: h.desc_size,
            desc_offset: h.desc_offset,
            slots_offset: h.slots_offset,
            ring_bytes: h.ring_bytes,
        }
    }

    #[test]
    fn layout_pads_descriptor_array_to_a_page() {
        let l = RingLayout::new::<TxDesc>(4, 64).unwrap();
        assert_eq!(l.desc_offset, 4096);
        assert_eq!(l.slots_offset, 8192);
        assert_eq!(l.ring_bytes, 12288);
        let l = RingLayout::new::<RxDesc>(256, 4096).unwrap();
        assert_eq!(l.slots_offset, 4096 + 16384);
        assert_eq!(l.ring_bytes, 4096 + 16384 + 256 * 4096);
    }

    #[test]
    fn layout_rejects_entries_not_power_of_two() {
        assert_eq!(
            RingLayout::new::<TxDesc>(3, 64),
            Err(LayoutError::Entries(3))
        );
        assert_eq!(
            RingLayout::new::<TxDesc>(1, 64),
            Err(LayoutError::Entries(1))
        );
    }

    #[test]
    fn layout_rejects_slot_size_out_of_range() {
        assert_eq!(
            RingLayout::new::<TxDesc>(4, 32),
            Err(LayoutError::SlotSize(32))
        );
        assert_eq!(
            RingLayout::new::<TxDesc>(4, 1 << 17),
            Err(LayoutError::SlotSize(1 << 17))
        );
    }

    #[test]
    fn validate_accepts_own_layout() {
        let l = RingLayout::new::<RxDesc>(8, 128).unwrap();
        let g = validate::<RxDesc>(&line0(&l, RingKind::Rx), l.ring_bytes(), RingKind::Rx).unwrap();
        assert_eq!(g.mask, 7);
    }

    #[test]
    fn validate_rejects_wrong_kind() {
        let l = RingLayout::new::<TxDesc>(8, 128).unwrap();
        let e = validate::<TxDesc>(&line0(&l, RingKind::Rx), l.ring_bytes(), RingKind::Tx);
        assert_eq!(
            e.unwrap_err(),
            LayoutError::WrongKind {
                expected: abi::SIPC_RING_TX,
                found: abi::SIPC_RING_RX
            }
        );
    }

    #[test]
    fn validate_rejects_wrong_descriptor_type() {
        let l = RingLayout::new::<TxDesc>(8, 128).unwrap();
        let e = validate::<RxDesc>(&line0(&l, RingKind::Tx), l.ring_bytes(), RingKind::Tx);
        assert_eq!(
            e.unwrap_err(),
            LayoutError::DescSize {
                expected: 64,
                found: 16
            }
        );
    }

    #[test]
    fn validate_rejects_short_mapping() {
        let l = RingLayout::new::<TxDesc>(8, 128).unwrap();
        let e = validate::<TxDesc>(&line0(&l, RingKind::Tx), l.ring_bytes() - 1, RingKind::Tx);
        assert!(matches!(e, Err(LayoutError::MappingTooSmall { .. })));
    }

    #[test]
    fn validate_rejects_slots_past_ring_bytes() {
        let l = RingLayout::new::<TxDesc>(8, 128).unwrap();
        let mut l0 = line0(&l, RingKind::Tx);
        l0.slots_offset = u64::MAX - 4095;
        let e = validate::<TxDesc>(&l0, l.ring_bytes(), RingKind::Tx);
        assert!(matches!(e, Err(LayoutError::Offsets { .. })));
    }

    #[test]
    fn validate_rejects_descriptors_overlapping_header() {
        let l = RingLayout::new::<TxDesc>(8, 128).unwrap();
        let mut l0 = line0(&l, RingKind::Tx);
        l0.desc_offset = 64;
        let e = validate::<TxDesc>(&l0, l.ring_bytes(), RingKind::Tx);
        assert!(matches!(e, Err(LayoutError::Offsets { .. })));
    }

    #[test]
    fn validate_rejects_bad_magic_and_version() {
        let l = RingLayout::new::<TxDesc>(8, 128).unwrap();
        let mut l0 = line0(&l, RingKind::Tx);
        l0.magic = 0;
        assert_eq!(
            validate::<TxDesc>(&l0, l.ring_bytes(), RingKind::Tx).unwrap_err(),
            LayoutError::BadMagic(0)
        );
        let mut l0 = line0(&l, RingKind::Tx);
        l0.abi_version = 9;
        assert_eq!(
            validate::<TxDesc>(&l0, l.ring_bytes(), RingKind::Tx).unwrap_err(),
            LayoutError::AbiVersion(9)
        );
    }

    #[test]
    fn ring_compatible_versions_only_on_request() {
        let l = RingLayout::new::<TxDesc>(8, 128).unwrap();
        let mut l0 = line0(&l, RingKind::Tx);
        l0.abi_version = 1;
        assert_eq!(
            validate::<TxDesc>(&l0, l.ring_bytes(), RingKind::Tx).unwrap_err(),
            LayoutError::AbiVersion(1)
        );
        assert!(validate_versions::<TxDesc>(&l0, l.ring_bytes(), RingKind::Tx, true).is_ok());
        l0.abi_version = 9;
        assert_eq!(
            validate_versions::<TxDesc>(&l0, l.ring_bytes(), RingKind::Tx, true).unwrap_err(),
            LayoutError::AbiVersion(9)
        );
    }
}
