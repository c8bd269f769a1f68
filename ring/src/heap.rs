//! Heap-backed rings (feature `std`): for tests, benches and in-process
//! use.

use crate::desc::Descriptor;
use crate::error::LayoutError;
use crate::layout::{RingKind, RingLayout};
use crate::raw::{HeapRegion, Region, SharedWord};
use crate::{Consumer, Producer};

/// A ring in a zeroed, page-aligned heap allocation, not yet split into its
/// two halves. The allocation is freed when both halves are gone.
pub struct HeapRing<D: Descriptor> {
    region: Region<D>,
}

impl<D: Descriptor> HeapRing<D> {
    /// Allocates and initialises a ring of `entries` slots of `slot_size`
    /// bytes (both powers of two within the ABI limits).
    pub fn new(entries: u32, slot_size: u32) -> Result<Self, LayoutError> {
        let layout = RingLayout::new::<D>(entries, slot_size)?;
        let region = HeapRegion::new(&layout, RingKind::Tx)?.into_region(RingKind::Tx)?;
        Ok(Self { region })
    }

    /// Weakens orderings for the loom models (only under `cfg(loom)`).
    #[cfg(loom)]
    pub fn weaken(mut self, w: crate::Weaken) -> Self {
        self.region.set_weaken(w);
        self
    }

    /// A handle that writes the header's shared words directly, bypassing
    /// the protocol: it plays a buggy or hostile peer in tests.
    pub fn tamper(&self) -> Tamper<D> {
        Tamper {
            region: self.region.clone_handle(),
        }
    }

    /// The producer and consumer halves.
    pub fn split(self) -> (Producer<D>, Consumer<D>) {
        let other = self.region.clone_handle();
        (Producer::new(self.region), Consumer::new(other))
    }
}

/// A heap-backed ring of `entries` slots of `slot_size` bytes, split.
pub fn channel<D: Descriptor>(
    entries: u32,
    slot_size: u32,
) -> Result<(Producer<D>, Consumer<D>), LayoutError> {
    Ok(HeapRing::new(entries, slot_size)?.split())
}

/// Writes shared header words of a [`HeapRing`] directly (atomically),
/// breaking the one-writer rule on purpose: a test's hostile peer, or a
/// stand-in for the kernel's status line.
pub struct Tamper<D: Descriptor> {
    region: Region<D>,
}

impl<D: Descriptor> Tamper<D> {
    /// Store-release `value` into `word`.
    ///
    /// # Safety
    /// The store itself is atomic, but it breaks the ring's one-writer
    /// rule: a forged index or flag makes a half read or write slots the
    /// other half is using at that moment, a data race on the plaintext
    /// memory. The caller must keep both halves from touching the slots
    /// the forged value exposes while they could be accessed (typically:
    /// only forge values that the halves reject, or call it between
    /// operations on one thread).
    ///
    /// ```compile_fail,E0133
    /// use secure_ipc_ring::{abi::TxDesc, HeapRing, SharedWord};
    /// let ring = HeapRing::<TxDesc>::new(4, 64).unwrap();
    /// ring.tamper().store(SharedWord::Prod, 4); // needs `unsafe`
    /// ```
    pub unsafe fn store(&self, word: SharedWord, value: u32) {
        self.region
            .word(word)
            .store(value, crate::sync::Ordering::Release);
    }

    /// Load-acquire `word`.
    pub fn load(&self, word: SharedWord) -> u32 {
        self.region.word(word).load(crate::sync::Ordering::Acquire)
    }

    /// Overwrites the descriptor of message `idx`.
    ///
    /// # Safety
    /// Nothing may access that descriptor concurrently (call it between
    /// operations of the halves, on one thread).
    pub unsafe fn write_desc(&self, idx: u32, desc: D) {
        self.region.write_desc(idx, desc);
    }
}
