//! The only module of the crate with `unsafe`: raw pointers into the shared
//! ring region.
//!
//! Shared memory is reached only through atomics (index, flag and status
//! words) and raw-pointer copies (descriptors, payloads); no `&`/`&mut`
//! reference to shared bytes is created except by the explicitly `unsafe`
//! slice accessors. Every accessor masks the index, so every address it
//! computes is inside the descriptor or slot array that
//! [`crate::layout::validate`] checked against the mapping length.
//!
//! Under `cfg(loom)` the header words live in a loom "shadow" (loom cannot
//! track atomics placed in raw memory), each descriptor+slot pair is guarded
//! by a loom `UnsafeCell` so loom reports any access that is not ordered by
//! the protocol, and [`Weaken`] can weaken single orderings to show that the
//! models catch it. None of that exists in a normal build.

use crate::abi::RingHeader;
use crate::desc::Descriptor;
use crate::error::LayoutError;
use crate::layout::{self, Geometry, Line0, RingKind, RingLayout};
use crate::sync::{AtomicU32, Ordering};
use core::marker::PhantomData;
use core::mem::{align_of, offset_of, size_of, MaybeUninit};
use core::ptr::{self, NonNull};

#[cfg(feature = "std")]
extern crate std;
#[cfg(feature = "std")]
use std::sync::Arc;

/// A shared 32-bit word of the ring header (header lines 1 to 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedWord {
    /// `prod`: written by the producer.
    Prod,
    /// `cons`: written by the consumer.
    Cons,
    /// `prod_flags`: written by the producer.
    ProdFlags,
    /// `cons_flags`: written by the consumer.
    ConsFlags,
    /// `store_prod`: written by the kernel.
    StoreProd,
    /// `store_cons`: written by the kernel.
    StoreCons,
    /// `store_entries`: written by the kernel.
    StoreEntries,
    /// `status`: written by the kernel.
    Status,
}

impl SharedWord {
    const fn offset(self) -> usize {
        match self {
            Self::Prod => offset_of!(RingHeader, prod),
            Self::Cons => offset_of!(RingHeader, cons),
            Self::ProdFlags => offset_of!(RingHeader, prod_flags),
            Self::ConsFlags => offset_of!(RingHeader, cons_flags),
            Self::StoreProd => offset_of!(RingHeader, store_prod),
            Self::StoreCons => offset_of!(RingHeader, store_cons),
            Self::StoreEntries => offset_of!(RingHeader, store_entries),
            Self::Status => offset_of!(RingHeader, status),
        }
    }

    #[cfg(loom)]
    const fn shadow_index(self) -> usize {
        self as usize
    }
}

/// Orderings and fences the loom models weaken one at a time to show that
/// each one is needed (only under `cfg(loom)`; see docs/ring-protocol.md).
#[cfg(loom)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Weaken {
    /// \[O1\] store `prod` Relaxed instead of Release.
    pub publish_relaxed: bool,
    /// \[O2\] load `prod` Relaxed instead of Acquire.
    pub observe_relaxed: bool,
    /// \[O3\] store `cons` Relaxed instead of Release.
    pub release_relaxed: bool,
    /// \[O4\] load `cons` Relaxed instead of Acquire.
    pub room_relaxed: bool,
    /// \[O5\]/\[O7\] drop the sleeper's SeqCst fence.
    pub no_sleep_fence: bool,
    /// \[O6\]/\[O7\] drop the waker's SeqCst fence.
    pub no_wake_fence: bool,
    /// \[O8\] store and load the CLOSED flag Relaxed.
    pub close_relaxed: bool,
    /// Skip the `prod - cons <= entries` check.
    pub no_index_check: bool,
}

#[cfg(loom)]
struct Shadow {
    words: [AtomicU32; 8],
    cells: std::vec::Vec<crate::sync::LoomUnsafeCell<()>>,
    weaken: Weaken,
}

// SAFETY: loom's cells only record accesses for the model checker; the data
// they guard is the ring memory, synchronised by the protocol under test.
#[cfg(loom)]
unsafe impl Sync for Shadow {}
// SAFETY: as above; the shadow is shared by the two halves like the region.
#[cfg(loom)]
unsafe impl Send for Shadow {}

#[cfg(loom)]
impl Shadow {
    fn new(entries: u32, weaken: Weaken) -> Arc<Self> {
        Arc::new(Self {
            words: core::array::from_fn(|_| AtomicU32::new(0)),
            cells: (0..entries)
                .map(|_| crate::sync::LoomUnsafeCell::new(()))
                .collect(),
            weaken,
        })
    }
}

/// A validated view of one ring inside a mapping.
///
/// Invariant: `base` points to a mapping of at least the validated
/// `ring_bytes` that stays valid while this value (or a clone) lives, aligned
/// to [`layout::base_align`]; `geo` was produced by [`layout::validate`].
pub(crate) struct Region<D> {
    base: NonNull<u8>,
    pub(crate) geo: Geometry,
    #[cfg(loom)]
    shadow: Arc<Shadow>,
    #[cfg(feature = "std")]
    owner: Option<Arc<dyn Send + Sync>>,
    _desc: PhantomData<fn() -> D>,
}

// SAFETY: the region is raw shared memory reached only through atomics and
// raw copies under the ring protocol; moving the handle to another thread
// changes nothing about who may write which word.
unsafe impl<D> Send for Region<D> {}

impl<D: Descriptor> Region<D> {
    /// `ring_compatible`: also accept the ABI versions of
    /// [`crate::abi::SIPC_RING_COMPATIBLE_ABI_VERSIONS`].
    ///
    /// # Safety
    /// `base..base+len` must be readable and writable for as long as the
    /// returned region (and every clone) lives.
    unsafe fn from_raw(
        base: NonNull<u8>,
        len: usize,
        kind: RingKind,
        ring_compatible: bool,
    ) -> Result<Self, LayoutError> {
        let align = layout::base_align::<D>();
        if base.as_ptr() as usize % align != 0 {
            return Err(LayoutError::Misaligned { align });
        }
        if len < size_of::<RingHeader>() {
            return Err(LayoutError::MappingTooSmall {
                needed: size_of::<RingHeader>() as u64,
                mapped: len,
            });
        }
        // SAFETY: the header page is inside the mapping (checked above) and
        // aligned; the caller guarantees it is readable.
        let line0 = unsafe { read_line0(base) };
        let geo = layout::validate_versions::<D>(&line0, len, kind, ring_compatible)?;
        Ok(Self {
            base,
            geo,
            #[cfg(loom)]
            shadow: Shadow::new(geo.entries, Weaken::default()),
            #[cfg(feature = "std")]
            owner: None,
            _desc: PhantomData,
        })
    }

    /// A second handle to the same ring (the other half, or a test's tamper
    /// handle).
    #[cfg(feature = "std")]
    pub(crate) fn clone_handle(&self) -> Self {
        Self {
            base: self.base,
            geo: self.geo,
            #[cfg(loom)]
            shadow: self.shadow.clone(),
            #[cfg(feature = "std")]
            owner: self.owner.clone(),
            _desc: PhantomData,
        }
    }

    /// The atomic header word `w`.
    pub(crate) fn word(&self, w: SharedWord) -> &AtomicU32 {
        #[cfg(loom)]
        {
            let _ = w.offset();
            &self.shadow.words[w.shadow_index()]
        }
        #[cfg(not(loom))]
        // SAFETY: the header page is inside the mapping, the offset is a
        // multiple of 4 of a base aligned to 8, the mapping outlives `&self`
        // (Region invariant), and every access to this word is atomic.
        unsafe {
            AtomicU32::from_ptr(self.base.as_ptr().add(w.offset()).cast::<u32>())
        }
    }

    /// The descriptor and slot arrays, for the per-message paths.
    #[inline]
    pub(crate) fn arrays(&self) -> Arrays<'_, D> {
        // SAFETY: desc_offset and slots_offset were validated to lie inside
        // the mapping (with their arrays), so both sums stay in it and are
        // not null.
        let (descs, slots) = unsafe {
            (
                NonNull::new_unchecked(self.base.as_ptr().add(self.geo.desc_offset).cast::<D>()),
                NonNull::new_unchecked(self.base.as_ptr().add(self.geo.slots_offset)),
            )
        };
        Arrays {
            descs,
            slots,
            mask: self.geo.mask,
            slot_shift: self.geo.slot_shift,
            slot_size: self.geo.slot_size,
            #[cfg(loom)]
            shadow: &self.shadow,
            _region: PhantomData,
        }
    }

    /// First byte of the slot of message `idx`.
    pub(crate) fn slot_ptr(&self, idx: u32) -> *mut u8 {
        self.arrays().slot_ptr(idx)
    }

    /// See [`Arrays::write_desc`].
    pub(crate) fn write_desc(&self, idx: u32, d: D) {
        self.arrays().write_desc(idx, d)
    }

    /// See [`Arrays::write_payload`].
    pub(crate) fn write_payload(&self, idx: u32, offset: usize, src: &[u8]) -> bool {
        self.arrays().write_payload(idx, offset, src)
    }

    /// # Safety
    /// No one else may read or write the slot while the slice lives.
    pub(crate) unsafe fn payload_slice_mut(&mut self, idx: u32) -> &mut [u8] {
        // SAFETY: the slot is slot_size bytes inside the mapping (Arrays
        // invariant); exclusivity is the caller's promise.
        unsafe { core::slice::from_raw_parts_mut(self.slot_ptr(idx), self.geo.slot_size as usize) }
    }

    // ---- Orderings (all constant outside loom) ----

    pub(crate) fn ord_publish(&self) -> Ordering {
        #[cfg(loom)]
        if self.shadow.weaken.publish_relaxed {
            return Ordering::Relaxed;
        }
        Ordering::Release
    }
    pub(crate) fn ord_observe(&self) -> Ordering {
        #[cfg(loom)]
        if self.shadow.weaken.observe_relaxed {
            return Ordering::Relaxed;
        }
        Ordering::Acquire
    }
    pub(crate) fn ord_release(&self) -> Ordering {
        #[cfg(loom)]
        if self.shadow.weaken.release_relaxed {
            return Ordering::Relaxed;
        }
        Ordering::Release
    }
    pub(crate) fn ord_room(&self) -> Ordering {
        #[cfg(loom)]
        if self.shadow.weaken.room_relaxed {
            return Ordering::Relaxed;
        }
        Ordering::Acquire
    }
    pub(crate) fn ord_close_store(&self) -> Ordering {
        #[cfg(loom)]
        if self.shadow.weaken.close_relaxed {
            return Ordering::Relaxed;
        }
        Ordering::Release
    }
    pub(crate) fn ord_close_load(&self) -> Ordering {
        #[cfg(loom)]
        if self.shadow.weaken.close_relaxed {
            return Ordering::Relaxed;
        }
        Ordering::Acquire
    }
    /// The sleeper's full barrier of \[O5\]/\[O7\].
    pub(crate) fn sleep_fence(&self) {
        #[cfg(loom)]
        if self.shadow.weaken.no_sleep_fence {
            return;
        }
        crate::sync::fence(Ordering::SeqCst);
    }
    /// The waker's full barrier of \[O6\]/\[O7\].
    pub(crate) fn wake_fence(&self) {
        #[cfg(loom)]
        if self.shadow.weaken.no_wake_fence {
            return;
        }
        crate::sync::fence(Ordering::SeqCst);
    }
    pub(crate) fn index_check_enabled(&self) -> bool {
        #[cfg(loom)]
        if self.shadow.weaken.no_index_check {
            return false;
        }
        true
    }

    #[cfg(feature = "std")]
    pub(crate) fn set_owner(&mut self, owner: Arc<dyn Send + Sync>) {
        self.owner = Some(owner);
    }
}

/// The validated descriptor and slot arrays of a [`Region`], copied out of it
/// for the per-message paths.
///
/// Batch handles keep one in their own (stack) fields: the compiler can then
/// keep the pointers and the geometry in registers across the raw stores of
/// a batch, where reading them back through the half would cost reloads
/// after every store (a store through a raw pointer might alias the half).
///
/// Invariant: built only by [`Region::arrays`], so `descs` and `slots` point
/// to the validated arrays of `mask + 1` entries (descriptors of
/// `size_of::<D>()` bytes, slots of `slot_size = 1 << slot_shift` bytes) in
/// a mapping that lives at least as long as `'a`.
pub(crate) struct Arrays<'a, D> {
    descs: NonNull<D>,
    slots: NonNull<u8>,
    mask: u32,
    slot_shift: u32,
    slot_size: u32,
    #[cfg(loom)]
    shadow: &'a Shadow,
    _region: PhantomData<&'a Region<D>>,
}

impl<D> Clone for Arrays<'_, D> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<D> Copy for Arrays<'_, D> {}

impl<'a, D: Descriptor> Arrays<'a, D> {
    /// Bytes per slot.
    #[inline(always)]
    pub(crate) fn slot_size(&self) -> u32 {
        self.slot_size
    }

    #[inline(always)]
    fn desc_ptr(&self, idx: u32) -> *mut D {
        let i = (idx & self.mask) as usize;
        // SAFETY: i < entries and the descriptor array holds `entries`
        // descriptors inside the mapping (invariant).
        unsafe { self.descs.as_ptr().add(i) }
    }

    /// First byte of the slot of message `idx`.
    #[inline(always)]
    pub(crate) fn slot_ptr(&self, idx: u32) -> *mut u8 {
        let i = (idx & self.mask) as usize;
        // SAFETY: i < entries and the slot array holds `entries` slots of
        // 1 << slot_shift bytes inside the mapping (invariant).
        unsafe { self.slots.as_ptr().add(i << self.slot_shift) }
    }

    #[cfg(loom)]
    fn write_guard<R>(&self, idx: u32, f: impl FnOnce() -> R) -> R {
        self.shadow.cells[(idx & self.mask) as usize].with_mut(|_| f())
    }
    #[cfg(not(loom))]
    #[inline(always)]
    fn write_guard<R>(&self, _idx: u32, f: impl FnOnce() -> R) -> R {
        f()
    }
    #[cfg(loom)]
    fn read_guard<R>(&self, idx: u32, f: impl FnOnce() -> R) -> R {
        self.shadow.cells[(idx & self.mask) as usize].with(|_| f())
    }
    #[cfg(not(loom))]
    #[inline(always)]
    fn read_guard<R>(&self, _idx: u32, f: impl FnOnce() -> R) -> R {
        f()
    }

    /// Writes the descriptor of message `idx`. The caller owns the entry
    /// (producer, between \[O4\] and \[O1\]).
    #[inline(always)]
    pub(crate) fn write_desc(&self, idx: u32, d: D) {
        let p = self.desc_ptr(idx);
        // SAFETY: in bounds and aligned (validated desc_offset alignment and
        // base alignment); the producer owns this entry until it publishes.
        // A plain write: the consumer reads it only after [O1]/[O2].
        self.write_guard(idx, || unsafe { ptr::write(p, d) })
    }

    /// Copies the descriptor of message `idx` out of shared memory once. The
    /// caller owns the entry (consumer, between \[O2\] and \[O3\]).
    #[inline(always)]
    pub(crate) fn read_desc(&self, idx: u32) -> D {
        let p = self.desc_ptr(idx);
        self.read_guard(idx, || {
            if align_of::<D>() >= 8 && size_of::<D>() % 8 == 0 {
                // Word-wise: one load per 8 bytes (a volatile read of a
                // struct loads field by field).
                let mut d = MaybeUninit::<D>::uninit();
                let (src, dst) = (p.cast::<u64>(), d.as_mut_ptr().cast::<u64>());
                for k in 0..size_of::<D>() / 8 {
                    // SAFETY: word k is inside the descriptor, which is in
                    // bounds and 8-aligned (align_of::<D>() >= 8); volatile so
                    // each word is fetched exactly once and the validated
                    // copy is the one used.
                    unsafe { dst.add(k).write(ptr::read_volatile(src.add(k))) };
                }
                // SAFETY: every byte of `d` was written; D is Pod, so any
                // bytes a hostile peer left there are a valid D.
                unsafe { d.assume_init() }
            } else {
                // SAFETY: in bounds and aligned; volatile so the descriptor
                // is fetched exactly once and the validated copy is the one
                // used. D is Pod, so any bytes are a valid D.
                unsafe { ptr::read_volatile(p) }
            }
        })
    }

    /// Copies `src` into the slot of message `idx` at `offset`. Returns false
    /// (and copies nothing) if it would not fit in the slot.
    #[inline(always)]
    pub(crate) fn write_payload(&self, idx: u32, offset: usize, src: &[u8]) -> bool {
        match offset.checked_add(src.len()) {
            Some(end) if end <= self.slot_size as usize => {}
            _ => return false,
        }
        let dst = self.slot_ptr(idx);
        // SAFETY: offset + len <= slot_size, so the destination is inside this
        // slot; `src` is a Rust slice and cannot overlap the shared mapping
        // (no reference into it is ever handed out for writing except by the
        // unsafe accessors, whose contract forbids this overlap).
        self.write_guard(idx, || unsafe {
            copy_bytes(src.as_ptr(), dst.add(offset), src.len())
        });
        true
    }

    /// Copies `dst.len()` bytes from the start of the slot of message `idx`.
    /// Returns false (and copies nothing) if that exceeds the slot.
    #[inline(always)]
    pub(crate) fn read_payload(&self, idx: u32, dst: &mut [u8]) -> bool {
        if dst.len() > self.slot_size as usize {
            return false;
        }
        let src = self.slot_ptr(idx);
        // SAFETY: dst.len() <= slot_size keeps the source inside this slot;
        // `dst` is an exclusive Rust slice, so it does not overlap the slot.
        self.read_guard(idx, || unsafe {
            copy_bytes(src, dst.as_mut_ptr(), dst.len())
        });
        true
    }

    /// # Safety
    /// No one may write the slot while the slice lives (the other side is
    /// trusted, e.g. the kernel), and `len <= slot_size`.
    pub(crate) unsafe fn payload_slice(self, idx: u32, len: usize) -> &'a [u8] {
        debug_assert!(len <= self.slot_size as usize);
        // SAFETY: in bounds by the caller's len check; the caller guarantees
        // no concurrent writer for the slice's lifetime.
        unsafe { core::slice::from_raw_parts(self.slot_ptr(idx), len) }
    }
}

/// `copy_nonoverlapping` for a run-time length, with the common small sizes
/// (up to 64 bytes) done inline by two possibly overlapping fixed-size
/// copies instead of a call to `memcpy`.
///
/// # Safety
/// As for `ptr::copy_nonoverlapping(src, dst, len)`.
#[inline(always)]
unsafe fn copy_bytes(src: *const u8, dst: *mut u8, len: usize) {
    macro_rules! two {
        ($n:literal) => {{
            // SAFETY: $n <= len <= 2 * $n, so both $n-byte windows, at 0 and
            // at len - $n, are inside the caller's ranges. The ranges do not
            // overlap, so each window can be stored before the next is
            // loaded (no registers held across, no spills).
            unsafe {
                let a = ptr::read_unaligned(src.cast::<[u8; $n]>());
                ptr::write_unaligned(dst.cast::<[u8; $n]>(), a);
                let b = ptr::read_unaligned(src.add(len - $n).cast::<[u8; $n]>());
                ptr::write_unaligned(dst.add(len - $n).cast::<[u8; $n]>(), b);
            }
        }};
    }
    // Binary decision on the size class: at most three compares.
    if len >= 16 {
        if len > 64 {
            // SAFETY: the caller's contract.
            unsafe { ptr::copy_nonoverlapping(src, dst, len) }
        } else if len >= 32 {
            two!(32)
        } else {
            two!(16)
        }
    } else if len >= 8 {
        two!(8)
    } else if len >= 4 {
        two!(4)
    } else {
        for i in 0..len {
            // SAFETY: i < len.
            unsafe { *dst.add(i) = *src.add(i) };
        }
    }
}

/// Loads the header field of type `T` at `off` (relaxed atomic outside loom,
/// so that a peer writing line 0 concurrently is not a data race).
macro_rules! load_field {
    ($b:expr, $atomic:ident, $t:ty, $field:ident) => {{
        let p = $b.add(offset_of!(RingHeader, $field)).cast::<$t>();
        #[cfg(not(loom))]
        let v = core::sync::atomic::$atomic::from_ptr(p).load(Ordering::Relaxed);
        #[cfg(loom)]
        let v = ptr::read(p);
        v
    }};
}

/// Copies header line 0 out of the mapping.
///
/// # Safety
/// `base` must point to at least 4096 readable bytes aligned to 8.
unsafe fn read_line0(base: NonNull<u8>) -> Line0 {
    let b = base.as_ptr();
    // SAFETY: every field is inside the header page and naturally aligned
    // (base aligned to 8, offsets asserted in abi.rs); the caller guarantees
    // the page is readable. Under loom line 0 is written before the model's
    // threads start and never again.
    unsafe {
        Line0 {
            magic: load_field!(b, AtomicU32, u32, magic),
            abi_version: load_field!(b, AtomicU16, u16, abi_version),
            kind: load_field!(b, AtomicU16, u16, kind),
            entries: load_field!(b, AtomicU32, u32, entries),
            slot_size: load_field!(b, AtomicU32, u32, slot_size),
            desc_size: load_field!(b, AtomicU32, u32, desc_size),
            desc_offset: load_field!(b, AtomicU32, u32, desc_offset),
            slots_offset: load_field!(b, AtomicU64, u64, slots_offset),
            ring_bytes: load_field!(b, AtomicU64, u64, ring_bytes),
        }
    }
}

impl RingLayout {
    /// Initialises the ring header at `base`: zeroes the header page and
    /// writes line 0 (magic, version, kind, geometry). Indices and flags
    /// start at zero. Descriptors and slots are not touched.
    ///
    /// # Safety
    /// `base..base+len` must be writable, and no other thread or process
    /// may access the header page during the call (initialise before
    /// sharing the mapping or handing out any half).
    pub unsafe fn init(
        &self,
        base: NonNull<u8>,
        len: usize,
        kind: RingKind,
    ) -> Result<(), LayoutError> {
        if (len as u64) < self.ring_bytes {
            return Err(LayoutError::MappingTooSmall {
                needed: self.ring_bytes,
                mapped: len,
            });
        }
        if base.as_ptr() as usize % 8 != 0 {
            return Err(LayoutError::Misaligned { align: 8 });
        }
        let hdr = self.header(kind);
        // SAFETY: the header page is inside the mapping (len >= ring_bytes >=
        // 4096), aligned, and exclusively ours per the caller's contract.
        unsafe { ptr::write(base.as_ptr().cast::<RingHeader>(), hdr) };
        Ok(())
    }
}

impl<D: Descriptor> crate::Producer<D> {
    /// The producer half of a ring that someone else initialised (the
    /// kernel's TX ring, or a shared-memory ring set up with
    /// [`RingLayout::init`]). Header line 0 is copied once and validated:
    /// magic, ABI version, `kind`, power-of-two geometry, arrays inside
    /// `len`, `desc_size == size_of::<D>()`.
    ///
    /// # Safety
    /// - `base..base+len` is a mapping readable and writable for the whole
    ///   life of the returned producer (keep the mapping alive longer, or
    ///   hand it over with [`crate::Producer::keep_alive`]);
    /// - nothing else in the system acts as this ring's producer;
    /// - anyone else touching the mapping follows the ring protocol or is a
    ///   peer that only writes memory (a hostile peer yields errors, not UB,
    ///   as far as the hardware memory model goes).
    pub unsafe fn from_raw(
        base: NonNull<u8>,
        len: usize,
        kind: RingKind,
    ) -> Result<Self, LayoutError> {
        // SAFETY: forwarded from the caller's contract.
        let region = unsafe { Region::from_raw(base, len, kind, false)? };
        Ok(Self::new(region))
    }

    /// [`crate::Producer::from_raw`] that also accepts a ring of an older
    /// ABI version with this version's ring layout
    /// ([`crate::abi::SIPC_RING_COMPATIBLE_ABI_VERSIONS`]). Only for
    /// measuring an older module beside this one (the guest bench's
    /// `--against`): such a module lacks this version's fixes, and its
    /// ioctls are not checked by this crate.
    ///
    /// # Safety
    /// As for [`crate::Producer::from_raw`].
    pub unsafe fn from_raw_ring_compatible(
        base: NonNull<u8>,
        len: usize,
        kind: RingKind,
    ) -> Result<Self, LayoutError> {
        // SAFETY: forwarded from the caller's contract.
        let region = unsafe { Region::from_raw(base, len, kind, true)? };
        Ok(Self::new(region))
    }
}

impl<D: Descriptor> crate::Consumer<D> {
    /// The consumer half of a ring that someone else initialised (the
    /// kernel's RX ring, or a shared-memory ring set up with
    /// [`RingLayout::init`]); validation as in
    /// [`crate::Producer::from_raw`].
    ///
    /// # Safety
    /// As for [`crate::Producer::from_raw`], with "consumer" for
    /// "producer".
    pub unsafe fn from_raw(
        base: NonNull<u8>,
        len: usize,
        kind: RingKind,
    ) -> Result<Self, LayoutError> {
        // SAFETY: forwarded from the caller's contract.
        let region = unsafe { Region::from_raw(base, len, kind, false)? };
        Ok(Self::new(region))
    }

    /// [`crate::Consumer::from_raw`] that also accepts an older ABI
    /// version with this version's ring layout, as
    /// [`crate::Producer::from_raw_ring_compatible`] does.
    ///
    /// # Safety
    /// As for [`crate::Producer::from_raw`], with "consumer" for
    /// "producer".
    pub unsafe fn from_raw_ring_compatible(
        base: NonNull<u8>,
        len: usize,
        kind: RingKind,
    ) -> Result<Self, LayoutError> {
        // SAFETY: forwarded from the caller's contract.
        let region = unsafe { Region::from_raw(base, len, kind, true)? };
        Ok(Self::new(region))
    }
}

/// A zeroed, page-aligned heap allocation holding one ring.
#[cfg(feature = "std")]
pub(crate) struct HeapRegion {
    ptr: NonNull<u8>,
    layout: std::alloc::Layout,
}

// SAFETY: plain memory; the ring halves synchronise every access to it.
#[cfg(feature = "std")]
unsafe impl Send for HeapRegion {}
// SAFETY: as above; the region itself is never read through `&HeapRegion`.
#[cfg(feature = "std")]
unsafe impl Sync for HeapRegion {}

#[cfg(feature = "std")]
impl HeapRegion {
    /// Allocates the ring described by `l`, initialised as `kind`.
    pub(crate) fn new(l: &RingLayout, kind: RingKind) -> Result<Self, LayoutError> {
        let layout =
            std::alloc::Layout::from_size_align(l.ring_bytes(), layout::PAGE_SIZE as usize)
                .map_err(|_| LayoutError::Entries(l.entries))?;
        // SAFETY: ring_bytes >= 4096, so the layout has a non-zero size.
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            std::alloc::handle_alloc_error(layout)
        };
        let region = Self { ptr, layout };
        // SAFETY: freshly allocated, writable, not shared yet.
        unsafe { l.init(ptr, layout.size(), kind)? };
        Ok(region)
    }

    /// A view of the region that keeps it alive; clone it for the other
    /// half.
    pub(crate) fn into_region<D: Descriptor>(
        self,
        kind: RingKind,
    ) -> Result<Region<D>, LayoutError> {
        let (ptr, len) = (self.ptr, self.layout.size());
        let owner: Arc<dyn Send + Sync> = Arc::new(self);
        // SAFETY: the allocation lives as long as `owner`, which the view and
        // all its clones hold.
        let mut region = unsafe { Region::<D>::from_raw(ptr, len, kind, false)? };
        region.set_owner(owner);
        Ok(region)
    }
}

#[cfg(loom)]
impl<D> Region<D> {
    /// Replaces the loom shadow with one that weakens the given orderings
    /// (before the region is split).
    pub(crate) fn set_weaken(&mut self, weaken: Weaken) {
        self.shadow = Shadow::new(self.geo.entries, weaken);
    }
}

#[cfg(feature = "std")]
impl Drop for HeapRegion {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this exact layout, freed once.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

impl<D: Descriptor> crate::WriteSlot<'_, D> {
    /// The slot as a mutable slice, for writing in place.
    ///
    /// # Safety
    /// No one else may read or write the slot while the slice lives: the
    /// consumer must be trusted not to touch unpublished slots (true for
    /// the kernel; a hostile process sharing the mapping could race).
    pub unsafe fn payload_mut(&mut self) -> &mut [u8] {
        // SAFETY: forwarded from the caller's contract.
        unsafe { self.producer.region.payload_slice_mut(self.idx) }
    }
}

impl<D: Descriptor> crate::ReadSlot<'_, D> {
    /// The payload as a slice, without copying.
    ///
    /// # Safety
    /// Nothing may write the slot while the slice lives: the producer must
    /// be trusted not to touch published slots (true for the kernel's RX
    /// ring; not for an untrusted process sharing the mapping).
    pub unsafe fn payload(&self) -> &[u8] {
        // SAFETY: forwarded from the caller's contract; len <= slot_size
        // was validated when the descriptor was read.
        unsafe {
            self.consumer
                .region
                .arrays()
                .payload_slice(self.idx, self.len as usize)
        }
    }
}

impl<D: Descriptor> crate::ReadEntry<'_, D> {
    /// The payload as a slice, without copying.
    ///
    /// # Safety
    /// As for [`crate::ReadSlot::payload`].
    pub unsafe fn payload(&self) -> &[u8] {
        // SAFETY: forwarded from the caller's contract; len <= slot_size
        // was validated when the descriptor was read.
        unsafe { self.arrays.payload_slice(self.idx, self.len as usize) }
    }
}
