//! The consumer half: peek at published messages, copy them out, release.

use crate::abi::{SIPC_FLAG_CLOSED, SIPC_FLAG_NEED_WAKEUP};
use crate::desc::Descriptor;
use crate::error::{PayloadError, PeekError, ProtocolError};
use crate::raw::{Arrays, Region, SharedWord};
use crate::sync::Ordering;
use crate::KernelStatus;

/// The consuming half of a ring.
///
/// Writes `cons` and `cons_flags`, nothing else. Keeps a cached copy of the
/// producer's index and reads the shared one only when the cache says the
/// ring is empty. Every value the producer wrote (its index, each
/// descriptor) is copied out once and validated before use.
pub struct Consumer<D: Descriptor> {
    pub(crate) region: Region<D>,
    /// Next index to read; everything below is released.
    cons: u32,
    /// The producer's index as last loaded and validated.
    cached_prod: u32,
    /// Our copy of `cons_flags` (we are its only writer).
    flags: u32,
}

impl<D: Descriptor> Consumer<D> {
    pub(crate) fn new(region: Region<D>) -> Self {
        // Our own words: only we write them, so Relaxed reads our last values.
        let cons = region.word(SharedWord::Cons).load(Ordering::Relaxed);
        let flags = region.word(SharedWord::ConsFlags).load(Ordering::Relaxed);
        Self {
            region,
            cons,
            cached_prod: cons,
            flags,
        }
    }

    /// Number of slots (a power of two).
    pub fn capacity(&self) -> u32 {
        self.region.geo.entries
    }

    /// Bytes per slot: the largest payload.
    pub fn slot_size(&self) -> usize {
        self.region.geo.slot_size as usize
    }

    /// Loads the producer's index \[O2\], validates it and updates the cache.
    fn refresh(&mut self) -> Result<u32, ProtocolError> {
        // [O2] Pairs with the store-release of `prod` in
        // Producer::publish_without_wake_check() (producer side): the
        // descriptors and slots below `prod` are visible once we see it.
        let prod = self
            .region
            .word(SharedWord::Prod)
            .load(self.region.ord_observe());
        let avail = prod.wrapping_sub(self.cons);
        if self.region.index_check_enabled() && avail > self.capacity() {
            return Err(ProtocolError::IndexOutOfRange {
                prod,
                cons: self.cons,
                entries: self.capacity(),
            });
        }
        self.cached_prod = prod;
        Ok(avail)
    }

    /// Published messages not yet released (loads the producer's index if
    /// the cache says none).
    pub fn available(&mut self) -> Result<u32, ProtocolError> {
        let cached = self.cached_prod.wrapping_sub(self.cons);
        if cached > 0 {
            return Ok(cached);
        }
        self.refresh()
    }

    /// At least one message available, or why not.
    fn next_available(&mut self) -> Result<u32, PeekError> {
        match self.available()? {
            0 => self.empty_or_closed(),
            n => Ok(n),
        }
    }

    /// The ring looked empty on a fresh load of `prod`: `Empty`, or, once
    /// the producer hung up, what it published before (then `Closed`).
    fn empty_or_closed(&mut self) -> Result<u32, PeekError> {
        if !self.is_producer_closed() {
            return Err(PeekError::Empty);
        }
        // [O8] CLOSED was stored after the producer's last publish: reload
        // `prod` to drain everything published before the hang-up.
        match self.refresh()? {
            0 => Err(PeekError::Closed),
            n => Ok(n),
        }
    }

    /// The oldest published message. Its descriptor is copied and its
    /// length checked; release it with [`ReadSlot::release`] (dropping the
    /// slot keeps the message queued).
    pub fn peek(&mut self) -> Result<ReadSlot<'_, D>, PeekError> {
        self.next_available()?;
        let idx = self.cons;
        let (desc, len) = entry(self.region.arrays(), idx)?;
        Ok(ReadSlot {
            consumer: self,
            idx,
            desc,
            len,
        })
    }

    /// Up to `max` published messages (at least one).
    pub fn peek_batch(&mut self, max: u32) -> Result<ReadBatch<'_, D>, PeekError> {
        // Refresh when the cache holds fewer than asked for: batches stay
        // large instead of fragmenting along stale cache boundaries.
        let mut n = self.cached_prod.wrapping_sub(self.cons);
        if n < max {
            n = self.refresh()?;
        }
        if n == 0 {
            // Just refreshed (or max == 0): no second load of `prod`
            // unless the producer hung up.
            n = self.empty_or_closed()?;
        }
        let n = n.min(max);
        if n == 0 {
            return Err(PeekError::Empty);
        }
        let start = self.cons;
        Ok(ReadBatch {
            arrays: self.region.arrays(),
            region: &self.region,
            cons: &mut self.cons,
            start,
            len: n,
        })
    }

    /// Gives slots below `new_cons` back to the producer \[O3\] (`cons` is
    /// the consumer's own copy of its index).
    fn release_to(region: &Region<D>, cons: &mut u32, new_cons: u32) {
        *cons = new_cons;
        // [O3] Pairs with the load-acquire of `cons` in Producer::refresh()
        // (producer side): our reads of the released slots happen before
        // the producer may overwrite them.
        region
            .word(SharedWord::Cons)
            .store(new_cons, region.ord_release());
    }

    /// \[O7\] After releasing: full barrier, then read the producer's
    /// NEED_WAKEUP. True means the producer waits for room: wake it.
    pub fn producer_wants_wakeup(&self) -> bool {
        // [O7] Pairs with the fence in Producer::prepare_wait_for_room()
        // (producer side): either its re-check sees our `cons`, or we see
        // its NEED_WAKEUP.
        self.region.wake_fence();
        self.region
            .word(SharedWord::ProdFlags)
            .load(Ordering::Relaxed)
            & SIPC_FLAG_NEED_WAKEUP
            != 0
    }

    /// \[O5\] Before sleeping on the doorbell: sets NEED_WAKEUP in
    /// `cons_flags`, full barrier, re-checks `prod` and the producer's
    /// CLOSED. Returns true if the ring is still empty and the caller may
    /// sleep (call [`Consumer::finish_sleep`] once awake); false, with the
    /// flag cleared again, if a message arrived or the producer hung up.
    ///
    /// On a kernel RX ring records may also be waiting in the sealed store:
    /// check [`Consumer::kernel_status`] after this returns true (the fence
    /// here orders that load too).
    pub fn prepare_sleep(&mut self) -> Result<bool, ProtocolError> {
        if self.cached_prod != self.cons {
            return Ok(false);
        }
        self.flags |= SIPC_FLAG_NEED_WAKEUP;
        self.region
            .word(SharedWord::ConsFlags)
            .store(self.flags, Ordering::Relaxed);
        // [O5] Pairs with the fence in Producer::publish() / close()
        // (producer side, [O6]).
        self.region.sleep_fence();
        let avail = match self.refresh() {
            Ok(n) => n,
            Err(e) => {
                self.finish_sleep();
                return Err(e);
            }
        };
        if avail > 0 || self.is_producer_closed() {
            self.finish_sleep();
            return Ok(false);
        }
        Ok(true)
    }

    /// Clears NEED_WAKEUP after sleeping.
    pub fn finish_sleep(&mut self) {
        if self.flags & SIPC_FLAG_NEED_WAKEUP != 0 {
            self.flags &= !SIPC_FLAG_NEED_WAKEUP;
            self.region
                .word(SharedWord::ConsFlags)
                .store(self.flags, Ordering::Relaxed);
        }
    }

    /// Whether the producer hung up (\[O8\] load-acquire of `prod_flags`).
    /// Messages published before the hang-up may still be waiting.
    pub fn is_producer_closed(&self) -> bool {
        // [O8] Pairs with the store-release of CLOSED in Producer::close()
        // (producer side).
        self.region
            .word(SharedWord::ProdFlags)
            .load(self.region.ord_close_load())
            & SIPC_FLAG_CLOSED
            != 0
    }

    /// Hangs up: store-releases CLOSED in `cons_flags` \[O8\]; the producer's
    /// next reserve on a full cache reports [`crate::ReserveError::Closed`].
    /// Returns true if the producer waits for room (wake it). Idempotent.
    pub fn close(&mut self) -> bool {
        if self.flags & SIPC_FLAG_CLOSED != 0 {
            return false;
        }
        self.flags = (self.flags & !SIPC_FLAG_NEED_WAKEUP) | SIPC_FLAG_CLOSED;
        // [O8] Pairs with the load-acquire of `cons_flags` in
        // Producer::is_consumer_closed() (producer side).
        self.region
            .word(SharedWord::ConsFlags)
            .store(self.flags, self.region.ord_close_store());
        self.producer_wants_wakeup()
    }

    /// The kernel status line \[O9\]: on an RX ring, data is waiting when the
    /// ring is non-empty or `records_waiting()`.
    pub fn kernel_status(&self) -> KernelStatus {
        KernelStatus::load(&self.region)
    }

    /// Keeps `owner` (the mapping) alive as long as this half.
    #[cfg(feature = "std")]
    pub fn keep_alive(&mut self, owner: std::sync::Arc<dyn Send + Sync>) {
        self.region.set_owner(owner);
    }
}

impl<D: Descriptor> Drop for Consumer<D> {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// Copies descriptor `idx` out once and checks its length against the slot.
#[inline(always)]
fn entry<D: Descriptor>(arrays: Arrays<'_, D>, idx: u32) -> Result<(D, u32), ProtocolError> {
    let desc = arrays.read_desc(idx);
    let len = desc.payload_len();
    if len > arrays.slot_size() {
        return Err(ProtocolError::LengthOutOfRange {
            index: idx,
            len,
            slot_size: arrays.slot_size(),
        });
    }
    Ok((desc, len))
}

#[inline(always)]
fn copy_out<D: Descriptor>(
    arrays: Arrays<'_, D>,
    idx: u32,
    len: u32,
    dst: &mut [u8],
) -> Result<usize, PayloadError> {
    let len = len as usize;
    let Some(dst) = dst.get_mut(..len) else {
        return Err(PayloadError::BufferTooSmall {
            needed: len,
            have: dst.len(),
        });
    };
    // Cannot fail: len <= slot_size was checked when the entry was read.
    let _ = arrays.read_payload(idx, dst);
    Ok(len)
}

/// The oldest published message, its descriptor copied and validated.
pub struct ReadSlot<'a, D: Descriptor> {
    pub(crate) consumer: &'a mut Consumer<D>,
    pub(crate) idx: u32,
    desc: D,
    pub(crate) len: u32,
}

impl<D: Descriptor> ReadSlot<'_, D> {
    /// The descriptor as copied out of the ring (read once).
    pub fn desc(&self) -> &D {
        &self.desc
    }

    /// Payload length (validated: at most the slot size).
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Free-running index of this message.
    pub fn index(&self) -> u32 {
        self.idx
    }

    /// Copies the payload into the start of `dst`; returns its length.
    pub fn read_payload(&self, dst: &mut [u8]) -> Result<usize, PayloadError> {
        copy_out(self.consumer.region.arrays(), self.idx, self.len, dst)
    }

    /// Raw pointer to the payload's [`ReadSlot::len`] bytes.
    pub fn payload_ptr(&self) -> *const u8 {
        self.consumer.region.slot_ptr(self.idx)
    }

    /// Gives the slot back to the producer (one release store, \[O3\]).
    pub fn release(self) {
        let c = self.consumer;
        Consumer::release_to(&c.region, &mut c.cons, self.idx.wrapping_add(1));
    }
}

/// Several consecutive published messages, released together.
///
/// Holds its own copy of the ring's array pointers and geometry (see
/// [`crate::WriteBatch`]). Entries borrow the batch: once it is released,
/// the producer may overwrite their slots, so none may be used after.
///
/// ```compile_fail,E0505
/// use secure_ipc_ring::{abi::TxDesc, channel};
/// let (mut tx, mut rx) = channel::<TxDesc>(4, 64).unwrap();
/// tx.push(TxDesc::default(), b"x").unwrap();
/// tx.publish();
/// let batch = rx.peek_batch(4).unwrap();
/// let entry = batch.get(0).unwrap().unwrap();
/// batch.release();
/// let mut buf = [0u8; 64];
/// let _ = entry.read_payload(&mut buf); // the slot belongs to the producer now
/// ```
///
/// ```compile_fail,E0505
/// use secure_ipc_ring::{abi::TxDesc, channel};
/// let (mut tx, mut rx) = channel::<TxDesc>(4, 64).unwrap();
/// tx.push(TxDesc::default(), b"x").unwrap();
/// tx.publish();
/// let batch = rx.peek_batch(4).unwrap();
/// let mut it = batch.iter();
/// batch.release();
/// let _ = it.next(); // the iterator outlives the batch
/// ```
pub struct ReadBatch<'a, D: Descriptor> {
    arrays: Arrays<'a, D>,
    region: &'a Region<D>,
    /// The consumer's own index, advanced by the release.
    cons: &'a mut u32,
    start: u32,
    len: u32,
}

impl<'a, D: Descriptor> ReadBatch<'a, D> {
    /// Messages in the batch (at least one).
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Always false: a batch holds at least one message.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Entry `i`, its descriptor copied once and validated; None outside
    /// the batch. The entry borrows the batch, so it cannot outlive the
    /// release that hands its slot back to the producer.
    #[inline]
    pub fn get(&self, i: u32) -> Option<Result<ReadEntry<'_, D>, ProtocolError>> {
        if i >= self.len {
            return None;
        }
        Some(read_entry(self.arrays, self.start.wrapping_add(i)))
    }

    /// The entries in order, each descriptor copied once and validated
    /// when the iterator reaches it.
    pub fn iter(&self) -> ReadBatchIter<'_, D> {
        ReadBatchIter {
            arrays: self.arrays,
            next: self.start,
            end: self.start.wrapping_add(self.len),
        }
    }

    /// Releases every message of the batch (one release store).
    pub fn release(self) {
        let n = self.len;
        self.release_first(n);
    }

    /// Releases the first `n` messages (at most the batch length).
    pub fn release_first(self, n: u32) {
        let end = self.start.wrapping_add(n.min(self.len));
        Consumer::release_to(self.region, self.cons, end);
    }
}

impl<'b, D: Descriptor> IntoIterator for &'b ReadBatch<'_, D> {
    type Item = Result<ReadEntry<'b, D>, ProtocolError>;
    type IntoIter = ReadBatchIter<'b, D>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[inline(always)]
fn read_entry<D: Descriptor>(
    arrays: Arrays<'_, D>,
    idx: u32,
) -> Result<ReadEntry<'_, D>, ProtocolError> {
    let (desc, len) = entry(arrays, idx)?;
    Ok(ReadEntry {
        arrays,
        idx,
        desc,
        len,
    })
}

/// Iterator over the entries of a [`ReadBatch`] ([`ReadBatch::iter`]).
pub struct ReadBatchIter<'a, D: Descriptor> {
    arrays: Arrays<'a, D>,
    next: u32,
    end: u32,
}

impl<'a, D: Descriptor> Iterator for ReadBatchIter<'a, D> {
    type Item = Result<ReadEntry<'a, D>, ProtocolError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.next == self.end {
            return None;
        }
        let idx = self.next;
        self.next = idx.wrapping_add(1);
        Some(read_entry(self.arrays, idx))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end.wrapping_sub(self.next) as usize;
        (n, Some(n))
    }
}

impl<D: Descriptor> ExactSizeIterator for ReadBatchIter<'_, D> {}

/// One message of a [`ReadBatch`].
pub struct ReadEntry<'a, D: Descriptor> {
    pub(crate) arrays: Arrays<'a, D>,
    pub(crate) idx: u32,
    desc: D,
    pub(crate) len: u32,
}

impl<D: Descriptor> ReadEntry<'_, D> {
    /// The descriptor as copied out of the ring (read once).
    pub fn desc(&self) -> &D {
        &self.desc
    }

    /// Payload length (validated: at most the slot size).
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies the payload into the start of `dst`; returns its length.
    #[inline]
    pub fn read_payload(&self, dst: &mut [u8]) -> Result<usize, PayloadError> {
        copy_out(self.arrays, self.idx, self.len, dst)
    }

    /// Raw pointer to the payload.
    pub fn payload_ptr(&self) -> *const u8 {
        self.arrays.slot_ptr(self.idx)
    }
}
