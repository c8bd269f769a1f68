//! The producer half: reserve slots, fill them, commit, publish.

use crate::abi::{SIPC_FLAG_CLOSED, SIPC_FLAG_NEED_WAKEUP};
use crate::desc::Descriptor;
use crate::error::{CommitError, PayloadError, ProtocolError, PushError, ReserveError};
use crate::raw::{Arrays, Region, SharedWord};
use crate::sync::Ordering;
use crate::KernelStatus;

/// The producing half of a ring.
///
/// Writes `prod` and `prod_flags`, nothing else. Keeps a cached copy of the
/// consumer's index and reads the shared one only when the cache says the
/// ring is full. Committed messages become visible to the consumer at the
/// next [`Producer::publish`] (one release store for any number of them).
pub struct Producer<D: Descriptor> {
    pub(crate) region: Region<D>,
    /// Next index to reserve; everything below is committed.
    prod: u32,
    /// Last value stored into the shared `prod`.
    published: u32,
    /// `published` at the last NEED_WAKEUP check of [`Producer::publish`].
    wake_checked: u32,
    /// The consumer's index as last loaded.
    cached_cons: u32,
    /// Our copy of `prod_flags` (we are its only writer).
    flags: u32,
}

impl<D: Descriptor> Producer<D> {
    pub(crate) fn new(region: Region<D>) -> Self {
        // Our own word: only we write it, so Relaxed reads our last value.
        let prod = region.word(SharedWord::Prod).load(Ordering::Relaxed);
        // [O4] Pairs with the store-release of `cons` in
        // Consumer::release_to() (consumer side).
        let cons = region.word(SharedWord::Cons).load(region.ord_room());
        let flags = region.word(SharedWord::ProdFlags).load(Ordering::Relaxed);
        // A corrupt initial `cons` must not reach the cache: start from
        // "full" so that the first reserve refreshes and reports it.
        let entries = region.geo.entries;
        let cached_cons = if prod.wrapping_sub(cons) <= entries {
            cons
        } else {
            prod.wrapping_sub(entries)
        };
        Self {
            region,
            prod,
            published: prod,
            wake_checked: prod,
            cached_cons,
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

    /// Committed messages not yet published.
    pub fn pending(&self) -> u32 {
        self.prod.wrapping_sub(self.published)
    }

    fn free_cached(&self) -> u32 {
        self.capacity()
            .wrapping_sub(self.prod.wrapping_sub(self.cached_cons))
    }

    /// Loads the consumer's index \[O4\], validates it and updates the cache.
    fn refresh(&mut self) -> Result<u32, ReserveError> {
        // [O4] Pairs with the store-release of `cons` in
        // Consumer::release_to() (consumer side): the consumer's reads of
        // the slots below `cons` happen before we overwrite them.
        let cons = self
            .region
            .word(SharedWord::Cons)
            .load(self.region.ord_room());
        let used = self.prod.wrapping_sub(cons);
        let unpublished = self.prod.wrapping_sub(self.published);
        if self.region.index_check_enabled() && (used > self.capacity() || used < unpublished) {
            return Err(ReserveError::Protocol(ProtocolError::IndexOutOfRange {
                prod: self.prod,
                cons,
                entries: self.capacity(),
            }));
        }
        self.cached_cons = cons;
        if self.flags & SIPC_FLAG_CLOSED != 0 || self.is_consumer_closed() {
            return Err(ReserveError::Closed);
        }
        Ok(self.free_cached())
    }

    /// Free slots now (always loads the consumer's index).
    pub fn free_slots(&mut self) -> Result<u32, ReserveError> {
        self.refresh()
    }

    fn ensure_room(&mut self, n: u32) -> Result<(), ReserveError> {
        if n > self.capacity() {
            return Err(ReserveError::TooLarge {
                requested: n,
                entries: self.capacity(),
            });
        }
        if self.free_cached() >= n && self.flags & SIPC_FLAG_CLOSED == 0 {
            return Ok(());
        }
        let available = self.refresh()?;
        if available >= n {
            Ok(())
        } else {
            Err(ReserveError::Full { available })
        }
    }

    /// Reserves the next slot. Nothing is visible to the consumer until the
    /// slot is committed and published.
    pub fn reserve(&mut self) -> Result<WriteSlot<'_, D>, ReserveError> {
        self.ensure_room(1)?;
        let idx = self.prod;
        Ok(WriteSlot {
            producer: self,
            idx,
        })
    }

    /// Reserves exactly `n` consecutive slots, or reports how many are free.
    pub fn reserve_batch(&mut self, n: u32) -> Result<WriteBatch<'_, D>, ReserveError> {
        self.ensure_room(n)?;
        let start = self.prod;
        Ok(WriteBatch {
            arrays: self.region.arrays(),
            prod: &mut self.prod,
            start,
            len: n,
        })
    }

    /// Reserves, copies `payload`, sets the descriptor's length and commits
    /// one message (still to be published). Hands `desc` back on error.
    pub fn push(&mut self, mut desc: D, payload: &[u8]) -> Result<(), PushError<D>> {
        let slot_size = self.region.geo.slot_size;
        if payload.len() > slot_size as usize {
            return Err(PushError::TooLong {
                desc,
                len: payload.len(),
                slot_size,
            });
        }
        match self.ensure_room(1) {
            Ok(()) => {}
            Err(ReserveError::Full { .. }) | Err(ReserveError::TooLarge { .. }) => {
                return Err(PushError::Full(desc))
            }
            Err(ReserveError::Closed) => return Err(PushError::Closed(desc)),
            Err(ReserveError::Protocol(e)) => return Err(PushError::Protocol(e)),
        }
        desc.set_payload_len(payload.len() as u32);
        let idx = self.prod;
        let arrays = self.region.arrays();
        // Cannot fail: the length was checked against the slot size above.
        let _ = arrays.write_payload(idx, 0, payload);
        arrays.write_desc(idx, desc);
        self.prod = idx.wrapping_add(1);
        Ok(())
    }

    /// Publishes everything committed with one release store \[O1\], without
    /// the NEED_WAKEUP check. For a consumer that never sleeps on this ring
    /// (the kernel consuming TX on `SIPC_IOC_SEND`, a busy-polling peer).
    pub fn publish_without_wake_check(&mut self) {
        if self.prod == self.published {
            return;
        }
        // [O1] Pairs with the load-acquire of `prod` in Consumer::refresh()
        // (consumer side): descriptors and slots below `prod` are written
        // before the consumer can see the new index.
        self.region
            .word(SharedWord::Prod)
            .store(self.prod, self.region.ord_publish());
        self.published = self.prod;
    }

    /// Publishes everything committed \[O1\], then \[O6\]: full barrier and a
    /// read of the consumer's NEED_WAKEUP flag. Returns true when the
    /// consumer is (about to be) asleep and must be woken (eventfd, futex,
    /// kernel doorbell). Returns false when nothing new was published since
    /// the last check.
    pub fn publish(&mut self) -> bool {
        self.publish_without_wake_check();
        if self.published == self.wake_checked {
            return false;
        }
        self.wake_checked = self.published;
        // [O6] Pairs with the fence in Consumer::prepare_sleep() (consumer
        // side, [O5]): either the consumer's re-check sees our `prod`, or
        // we see its NEED_WAKEUP (store-buffering litmus test).
        self.region.wake_fence();
        self.region
            .word(SharedWord::ConsFlags)
            .load(Ordering::Relaxed)
            & SIPC_FLAG_NEED_WAKEUP
            != 0
    }

    /// \[O7\] Before waiting for room: sets NEED_WAKEUP in `prod_flags`, full
    /// barrier, re-checks the consumer's index. Returns true if `needed`
    /// slots are still not free and the caller may sleep (then call
    /// [`Producer::finish_wait_for_room`] once awake); false, with the flag
    /// cleared again, if there is room now or the consumer hung up.
    ///
    /// On a kernel TX ring the room that matters is also the sealed store's:
    /// check [`Producer::kernel_status`] after this returns true.
    pub fn prepare_wait_for_room(&mut self, needed: u32) -> Result<bool, ProtocolError> {
        // More than the ring holds can never be free: wait for an empty ring.
        let needed = needed.min(self.capacity());
        if self.free_cached() >= needed {
            return Ok(false);
        }
        self.flags |= SIPC_FLAG_NEED_WAKEUP;
        self.region
            .word(SharedWord::ProdFlags)
            .store(self.flags, Ordering::Relaxed);
        // [O7] Pairs with the fence in Consumer::producer_wants_wakeup()
        // (consumer side) after its release of `cons`.
        self.region.sleep_fence();
        match self.refresh() {
            Ok(free) if free < needed => Ok(true),
            Ok(_) | Err(ReserveError::Closed) => {
                self.finish_wait_for_room();
                Ok(false)
            }
            Err(ReserveError::Protocol(e)) => {
                self.finish_wait_for_room();
                Err(e)
            }
            Err(ReserveError::Full { .. }) | Err(ReserveError::TooLarge { .. }) => Ok(true),
        }
    }

    /// Clears NEED_WAKEUP after a wait for room.
    pub fn finish_wait_for_room(&mut self) {
        if self.flags & SIPC_FLAG_NEED_WAKEUP != 0 {
            self.flags &= !SIPC_FLAG_NEED_WAKEUP;
            self.region
                .word(SharedWord::ProdFlags)
                .store(self.flags, Ordering::Relaxed);
        }
    }

    /// Whether the consumer hung up (\[O8\] load-acquire of `cons_flags`).
    pub fn is_consumer_closed(&self) -> bool {
        // [O8] Pairs with the store-release of CLOSED in Consumer::close()
        // (consumer side).
        self.region
            .word(SharedWord::ConsFlags)
            .load(self.region.ord_close_load())
            & SIPC_FLAG_CLOSED
            != 0
    }

    /// Hangs up: publishes what is committed, then store-releases CLOSED in
    /// `prod_flags` \[O8\]. The consumer drains what was published, then sees
    /// [`crate::PeekError::Closed`]. Returns true if the consumer asked for
    /// a wake-up (signal it so it notices). Idempotent.
    pub fn close(&mut self) -> bool {
        if self.flags & SIPC_FLAG_CLOSED != 0 {
            return false;
        }
        self.publish_without_wake_check();
        self.flags = (self.flags & !SIPC_FLAG_NEED_WAKEUP) | SIPC_FLAG_CLOSED;
        // [O8] Pairs with the load-acquire of `prod_flags` in
        // Consumer::is_producer_closed() (consumer side): our last `prod`
        // store happens before the consumer sees CLOSED.
        self.region
            .word(SharedWord::ProdFlags)
            .store(self.flags, self.region.ord_close_store());
        // [O6] as in publish(): the consumer's prepare_sleep() re-check sees
        // CLOSED, or we see its NEED_WAKEUP.
        self.region.wake_fence();
        self.region
            .word(SharedWord::ConsFlags)
            .load(Ordering::Relaxed)
            & SIPC_FLAG_NEED_WAKEUP
            != 0
    }

    /// The kernel status line \[O9\] (all zero on a ring the kernel does not
    /// manage).
    pub fn kernel_status(&self) -> KernelStatus {
        KernelStatus::load(&self.region)
    }

    /// Keeps `owner` (the mapping) alive as long as this half.
    #[cfg(feature = "std")]
    pub fn keep_alive(&mut self, owner: std::sync::Arc<dyn Send + Sync>) {
        self.region.set_owner(owner);
    }
}

impl<D: Descriptor> Drop for Producer<D> {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// One reserved slot. Fill it, then [`WriteSlot::commit`]; dropping it
/// without committing gives the slot back.
pub struct WriteSlot<'a, D: Descriptor> {
    pub(crate) producer: &'a mut Producer<D>,
    pub(crate) idx: u32,
}

impl<D: Descriptor> WriteSlot<'_, D> {
    /// Free-running index of this message.
    pub fn index(&self) -> u32 {
        self.idx
    }

    /// Slot size in bytes.
    pub fn capacity(&self) -> usize {
        self.producer.slot_size()
    }

    /// Copies `src` into the slot at `offset`.
    pub fn write_payload(&mut self, offset: usize, src: &[u8]) -> Result<(), PayloadError> {
        if self.producer.region.write_payload(self.idx, offset, src) {
            Ok(())
        } else {
            Err(PayloadError::OutOfSlot {
                end: offset.saturating_add(src.len()),
                slot_size: self.capacity(),
            })
        }
    }

    /// Raw pointer to the slot's [`WriteSlot::capacity`] bytes, for writing
    /// in place (e.g. `read(2)` into it).
    pub fn payload_ptr(&mut self) -> *mut u8 {
        self.producer.region.slot_ptr(self.idx)
    }

    /// Writes `desc` and commits the message (publish it with
    /// [`Producer::publish`]). Fails, handing `desc` back, if its payload
    /// length exceeds the slot.
    pub fn commit(self, desc: D) -> Result<(), CommitError<D>> {
        let slot_size = self.producer.region.geo.slot_size;
        if desc.payload_len() > slot_size {
            return Err(CommitError::TooLong { desc, slot_size });
        }
        self.producer.region.write_desc(self.idx, desc);
        self.producer.prod = self.idx.wrapping_add(1);
        Ok(())
    }
}

/// `len` reserved consecutive slots, committed together.
///
/// Holds its own copy of the ring's array pointers and geometry, so a batch
/// is filled without reading the producer back after every store.
pub struct WriteBatch<'a, D: Descriptor> {
    arrays: Arrays<'a, D>,
    /// The producer's next index, advanced by the commit.
    prod: &'a mut u32,
    start: u32,
    len: u32,
}

impl<D: Descriptor> WriteBatch<'_, D> {
    /// Entries in the batch.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the batch is empty (a zero-length reservation).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `payload` into entry `i`, sets `desc`'s length and writes it.
    #[inline]
    pub fn write(&mut self, i: u32, mut desc: D, payload: &[u8]) -> Result<(), CommitError<D>> {
        if i >= self.len {
            return Err(CommitError::OutOfBatch {
                desc,
                batch_len: self.len,
            });
        }
        let idx = self.start.wrapping_add(i);
        if !self.arrays.write_payload(idx, 0, payload) {
            return Err(CommitError::TooLong {
                desc,
                slot_size: self.arrays.slot_size(),
            });
        }
        desc.set_payload_len(payload.len() as u32);
        self.arrays.write_desc(idx, desc);
        Ok(())
    }

    /// Copies `src` into entry `i` at `offset`.
    pub fn write_payload(&mut self, i: u32, offset: usize, src: &[u8]) -> Result<(), PayloadError> {
        if i >= self.len {
            return Err(PayloadError::OutOfBatch {
                index: i,
                batch_len: self.len,
            });
        }
        if self
            .arrays
            .write_payload(self.start.wrapping_add(i), offset, src)
        {
            Ok(())
        } else {
            Err(PayloadError::OutOfSlot {
                end: offset.saturating_add(src.len()),
                slot_size: self.arrays.slot_size() as usize,
            })
        }
    }

    /// Writes the descriptor of entry `i`.
    pub fn set_desc(&mut self, i: u32, desc: D) -> Result<(), CommitError<D>> {
        let slot_size = self.arrays.slot_size();
        if i >= self.len {
            return Err(CommitError::OutOfBatch {
                desc,
                batch_len: self.len,
            });
        }
        if desc.payload_len() > slot_size {
            return Err(CommitError::TooLong { desc, slot_size });
        }
        self.arrays.write_desc(self.start.wrapping_add(i), desc);
        Ok(())
    }

    /// Raw pointer to entry `i`'s slot, or None outside the batch.
    pub fn payload_ptr(&mut self, i: u32) -> Option<*mut u8> {
        (i < self.len).then(|| self.arrays.slot_ptr(self.start.wrapping_add(i)))
    }

    /// Commits all entries (publish them with [`Producer::publish`]).
    pub fn commit(self) {
        let n = self.len;
        self.commit_first(n);
    }

    /// Commits the first `n` entries (at most the batch length).
    pub fn commit_first(self, n: u32) {
        *self.prod = self.start.wrapping_add(n.min(self.len));
    }
}
