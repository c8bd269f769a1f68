//! A running session: the rendezvous link, the doorbells, the sending and
//! receiving halves over the shared rings, and their construction.

use super::*;

/// The rendezvous socket of a session: open as long as either half lives.
pub(super) struct Link {
    pub(super) sock: OwnedFd,
    pub(super) gone: AtomicBool,
}

impl Link {
    /// Whether the other process has hung up (zero-timeout poll).
    pub(super) fn check_hangup(&self) -> bool {
        if self.gone.load(Ordering::Relaxed) {
            return true;
        }
        if let Ok(r) = sys::poll(&[self.sock.as_raw_fd()], Some(Duration::ZERO)) {
            if r[0].hangup || r[0].readable {
                self.gone.store(true, Ordering::Relaxed);
            }
        }
        self.gone.load(Ordering::Relaxed)
    }

    /// Sleeps until `bell` rings, the socket hangs up, or `deadline`.
    /// `Ok(true)`: the other side shut down or closed its end of `bell`,
    /// which then stays readable forever and never rings again: the
    /// caller's direction is hung up (waiting on it again would spin).
    /// Only that direction: its other half may still be in use.
    pub(super) fn sleep(&self, bell: &OwnedFd, deadline: Option<Instant>) -> Result<bool, Error> {
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let r = sys::poll(&[bell.as_raw_fd(), self.sock.as_raw_fd()], timeout)?;
        let bell_gone = r[0].hangup;
        if r[0].readable && !bell_gone {
            sys::bell_take_one(bell);
        }
        // Any event on the socket after the handshake is the end: the peer
        // never writes to it again, so readable means EOF.
        if r[1].hangup || r[1].readable {
            self.gone.store(true, Ordering::Relaxed);
        }
        Ok(bell_gone)
    }
}

/// Doorbells of one endpoint: the sleeping ends of the two it waits on and
/// the ringing ends of the two it rings (socket pairs, see
/// [`sys::bell_pair`]: the other process holds the opposite ends, which are
/// separate file descriptions, so nothing it does to them can block us).
pub(super) struct Bells {
    pub(super) my_data: OwnedFd,
    pub(super) my_room: OwnedFd,
    pub(super) their_data: OwnedFd,
    pub(super) their_room: OwnedFd,
}

/// The sending half once a session exists.
pub(super) struct TxSession {
    pub(super) producer: Producer<TxDesc>,
    pub(super) sealer: Sealer,
    pub(super) staging: Vec<u8>,
    pub(super) max_payload: usize,
    pub(super) link: Arc<Link>,
    pub(super) my_room: OwnedFd,
    pub(super) their_data: OwnedFd,
    pub(super) counters: Arc<Counters>,
    pub(super) unpublished: usize,
    /// The last reserve found the ring full (for `full_events`).
    pub(super) was_full: bool,
    /// We asked for a room doorbell since the last drain: the bell may be
    /// readable and is drained when a reserve finds the ring full.
    pub(super) bell_armed: bool,
    /// The consumer shut down or closed its end of our room doorbell
    /// (see [`Link::sleep`]): this direction is hung up.
    pub(super) bell_gone: bool,
}

/// The receiving half once a session exists.
pub(super) struct RxSession {
    pub(super) consumer: Consumer<TxDesc>,
    pub(super) opener: Opener,
    /// Private copies of up to `batch_max` records, one slot size apart.
    pub(super) buf: Vec<u8>,
    pub(super) slot_size: usize,
    pub(super) batch_max: u32,
    /// Copied records not yet opened: (offset in `buf`, length, copy ok).
    pub(super) queue: Vec<(usize, usize, bool)>,
    pub(super) queue_pos: usize,
    /// Offset in `buf` of the current message's record.
    pub(super) current_off: usize,
    pub(super) link: Arc<Link>,
    pub(super) my_data: OwnedFd,
    pub(super) their_room: OwnedFd,
    pub(super) counters: Arc<Counters>,
    pub(super) sender: Credentials,
    pub(super) peer: PeerCredentials,
    pub(super) current: Option<MessageMeta>,
    pub(super) empty_polls: u32,
    /// We asked for a data doorbell since the last drain (see
    /// [`TxSession::bell_armed`]).
    pub(super) bell_armed: bool,
    /// The producer shut down or closed its end of our data doorbell: no
    /// more rings will come; what it published is drained, then PeerClosed.
    pub(super) bell_gone: bool,
}

/// Everything a finished handshake produces for one endpoint.
pub(super) struct Session {
    pub(super) tx: TxSession,
    pub(super) rx: RxSession,
}

pub(super) fn ring_error(e: ProtocolError) -> Error {
    Error::Protocol(e.to_string())
}

impl TxSession {
    /// The other side is gone, or at least this direction's consumer.
    fn hung_up(&self) -> bool {
        self.bell_gone || self.link.gone.load(Ordering::Relaxed)
    }

    pub(super) fn reserve(&mut self) -> Result<bool, Error> {
        if self.hung_up() {
            return Err(Error::PeerClosed);
        }
        match self.producer.reserve() {
            Ok(_slot) => {
                // Dropped uncommitted: the slot stays ours to take again.
                self.was_full = false;
                // Room again after an epoll user's arm(): stop asking for
                // doorbells (a no-op unless NEED_WAKEUP is set).
                self.producer.finish_wait_for_room();
                Ok(true)
            }
            Err(ReserveError::Full { .. }) => {
                // Would block: clear the readiness fd (level-triggered epoll
                // users must not see a stale ring as room).
                if self.bell_armed {
                    self.bell_armed = false;
                    self.bell_gone |= sys::bell_drain(&self.my_room);
                }
                // Count each time the ring fills up, not each retry.
                if !self.was_full {
                    self.was_full = true;
                    self.counters.full_events.fetch_add(1, Ordering::Relaxed);
                }
                Ok(false)
            }
            Err(ReserveError::Closed) => Err(Error::PeerClosed),
            Err(ReserveError::TooLarge { .. }) => Ok(false),
            Err(ReserveError::Protocol(e)) => Err(ring_error(e)),
        }
    }

    pub(super) fn commit(&mut self, len: usize, msg_type: u16) -> Result<(), Error> {
        let ts = monotonic_ns();
        let (hdr, tag, rekeyed) = self
            .sealer
            .seal_next(msg_type, ts, &mut self.staging[..len])?;
        if rekeyed {
            self.counters.rekeys.fetch_add(1, Ordering::Relaxed);
            self.counters
                .tx_epoch
                .store(self.sealer.epoch(), Ordering::Relaxed);
        }
        let mut slot = match self.producer.reserve() {
            Ok(s) => s,
            Err(ReserveError::Closed) => return Err(Error::PeerClosed),
            Err(ReserveError::Protocol(e)) => return Err(ring_error(e)),
            Err(_) => return Err(proto("commit without a reserved slot")),
        };
        let bad = |_| proto("record larger than the slot");
        slot.write_payload(0, &hdr.to_le_bytes()).map_err(bad)?;
        slot.write_payload(HEADER_LEN, &self.staging[..len])
            .map_err(bad)?;
        slot.write_payload(HEADER_LEN + len, &tag).map_err(bad)?;
        let desc = TxDesc {
            len: (OVERHEAD + len) as u32,
            type_: msg_type,
            flags: 0,
            reserved: 0,
        };
        slot.commit(desc)
            .map_err(|_| proto("record larger than the slot"))?;
        self.unpublished += 1;
        self.counters.sealed_msgs.fetch_add(1, Ordering::Relaxed);
        self.counters
            .sealed_bytes
            .fetch_add(len as u64, Ordering::Relaxed);
        Ok(())
    }

    pub(super) fn flush(&mut self) -> Result<usize, Error> {
        let n = std::mem::take(&mut self.unpublished);
        if self.producer.publish() {
            sys::bell_ring(&self.their_data);
            self.counters
                .doorbells_signalled
                .fetch_add(1, Ordering::Relaxed);
        } else if n > 0 {
            self.counters
                .doorbells_suppressed
                .fetch_add(1, Ordering::Relaxed);
        }
        if self.hung_up() {
            return Err(Error::PeerClosed);
        }
        Ok(n)
    }

    pub(super) fn wait_room(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        if self.link.check_hangup() || self.bell_gone {
            return Err(Error::PeerClosed);
        }
        match self.producer.prepare_wait_for_room(1) {
            Ok(true) => {
                self.bell_armed = false;
                let r = self.link.sleep(&self.my_room, deadline);
                self.producer.finish_wait_for_room();
                self.bell_gone |= r?;
            }
            Ok(false) => {}
            Err(e) => return Err(ring_error(e)),
        }
        if self.hung_up() {
            return Err(Error::PeerClosed);
        }
        Ok(())
    }
}

impl TxSession {
    /// Published records the consumer has not released, from the shared
    /// indices (the consumer's is clamped: it is the other side's word).
    pub(super) fn unconsumed(&self) -> usize {
        let fill = self
            .counters
            .rings
            .get()
            .map_or(0, |(m, tx, _)| m.ring_fill(*tx));
        fill.min(self.producer.capacity()) as usize
    }

    /// Sleeps until the consumer released everything, hangs up, or `deadline`.
    pub(super) fn wait_drained(&mut self, deadline: Instant) -> Result<(), Error> {
        if self.bell_gone {
            return Err(Error::PeerClosed);
        }
        let cap = self.producer.capacity();
        match self.producer.prepare_wait_for_room(cap) {
            Ok(true) => {
                self.bell_armed = false;
                let r = self.link.sleep(&self.my_room, Some(deadline));
                self.producer.finish_wait_for_room();
                self.bell_gone |= r?;
            }
            Ok(false) => {}
            Err(e) => return Err(ring_error(e)),
        }
        if self.hung_up() {
            return Err(Error::PeerClosed);
        }
        Ok(())
    }

    /// Readiness contract (docs/client-api.md): drain the bell, then ask
    /// for a ring [O5] and re-check; `Ok(true)` = full, the fd will turn
    /// readable when room appears or the peer hangs up.
    pub(super) fn arm(&mut self) -> Result<bool, Error> {
        if self.link.check_hangup() {
            return Err(Error::PeerClosed);
        }
        self.bell_gone |= sys::bell_drain(&self.my_room);
        if self.bell_gone {
            return Err(Error::PeerClosed);
        }
        let full = self.producer.prepare_wait_for_room(1).map_err(ring_error)?;
        self.bell_armed = full;
        Ok(full)
    }
}

impl Drop for TxSession {
    fn drop(&mut self) {
        // Hang up this direction [O8]; wake the consumer if it sleeps.
        if self.producer.close() {
            sys::bell_ring(&self.their_data);
        }
    }
}

impl RxSession {
    /// Copies up to a batch of records out of the ring into private memory
    /// and releases their slots at once (one release store and one [O7]
    /// check per batch). Returns how many were taken.
    pub(super) fn refill(&mut self) -> Result<usize, Error> {
        self.queue.clear();
        self.queue_pos = 0;
        let batch = match self.consumer.peek_batch(self.batch_max) {
            Ok(b) => b,
            Err(PeekError::Empty) => return Ok(0),
            Err(PeekError::Closed) => return Err(Error::PeerClosed),
            Err(PeekError::Protocol(e)) => return Err(ring_error(e)),
        };
        let slot = self.slot_size;
        let mut taken = 0u32;
        for i in 0..batch.len() {
            match batch.get(i) {
                Some(Ok(entry)) => {
                    // Copy the whole record out of shared memory first:
                    // everything later checks and decrypts the copy only.
                    let off = i as usize * slot;
                    let len = entry.len();
                    let ok = entry.read_payload(&mut self.buf[off..off + slot]) == Ok(len);
                    self.queue.push((off, len, ok));
                    taken += 1;
                }
                Some(Err(e)) if taken == 0 => return Err(ring_error(e)),
                Some(Err(_)) | None => break,
            }
        }
        batch.release_first(taken);
        // Data again after an epoll user's arm(): stop asking for doorbells
        // (a no-op unless NEED_WAKEUP is set).
        self.consumer.finish_sleep();
        if self.consumer.producer_wants_wakeup() {
            sys::bell_ring(&self.their_room);
            self.counters
                .doorbells_signalled
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(taken as usize)
    }

    pub(super) fn next(&mut self) -> Result<Option<MessageMeta>, Error> {
        debug_assert!(self.current.is_none());
        if self.queue_pos == self.queue.len() && self.refill()? == 0 {
            self.empty_polls = self.empty_polls.wrapping_add(1);
            let gone = self.bell_gone
                || self.link.gone.load(Ordering::Relaxed)
                || (self.empty_polls % HANGUP_CHECK_EVERY == 0 && self.link.check_hangup());
            if !gone {
                // Would block: clear the readiness fd (see TxSession::reserve).
                if self.bell_armed {
                    self.bell_armed = false;
                    self.bell_gone |= sys::bell_drain(&self.my_data);
                }
                return Ok(None);
            }
            // The peer is gone: take what it published before it died (its
            // stores are visible once we saw the hang-up), then report it.
            if self.refill()? == 0 {
                return Err(Error::PeerClosed);
            }
        }
        let (off, rec_len, copied) = self.queue[self.queue_pos];
        self.queue_pos += 1;
        let opened = if copied && rec_len >= OVERHEAD {
            self.opener.open_next(&mut self.buf[off..off + rec_len])
        } else {
            // Keep the sequence accounting: this record is spent.
            let mut spent = [0u8; 0];
            let _ = self.opener.open_next(&mut spent);
            Err(Error::AuthenticationFailed)
        };
        match opened {
            Ok((hdr, jumped)) => {
                if jumped > 0 {
                    self.counters
                        .rekeys
                        .fetch_add(jumped as u64, Ordering::Relaxed);
                    self.counters.rx_epoch.store(hdr.epoch, Ordering::Relaxed);
                }
                self.counters.opened_msgs.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .opened_bytes
                    .fetch_add(hdr.len as u64, Ordering::Relaxed);
                let meta = MessageMeta {
                    seq: hdr.seq,
                    timestamp_ns: hdr.timestamp_ns,
                    len: hdr.len as usize,
                    msg_type: hdr.type_,
                    epoch: hdr.epoch,
                    sender: self.sender,
                };
                self.current = Some(meta);
                self.current_off = off;
                Ok(Some(meta))
            }
            Err(e) => {
                self.counters.auth_failures.fetch_add(1, Ordering::Relaxed);
                // Never deliver any of it; wipe the private copy.
                let wipe = rec_len.min(self.slot_size);
                self.buf[off..off + wipe].fill(0);
                Err(e)
            }
        }
    }

    /// Plaintext of the current message.
    pub(super) fn current_payload(&self) -> &[u8] {
        match self.current {
            Some(m) => {
                &self.buf[self.current_off + HEADER_LEN..self.current_off + HEADER_LEN + m.len]
            }
            None => &[],
        }
    }

    /// Done with the current message: its plaintext does not outlive it.
    pub(super) fn release_current(&mut self) {
        if let Some(m) = self.current.take() {
            let at = self.current_off + HEADER_LEN;
            self.buf[at..at + m.len].fill(0);
        }
    }

    pub(super) fn wait_data(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        if self.bell_gone {
            // No ring will come: the next receive drains and reports it.
            return Ok(());
        }
        match self.consumer.prepare_sleep() {
            Ok(true) => {
                self.bell_armed = false;
                let r = self.link.sleep(&self.my_data, deadline);
                self.consumer.finish_sleep();
                self.bell_gone |= r?;
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => Err(ring_error(e)),
        }
    }
}

impl RxSession {
    /// Readiness contract (docs/client-api.md): drain the bell, then ask
    /// for a ring [O7] and re-check; `Ok(true)` = empty, the fd will turn
    /// readable when a message arrives or the peer hangs up.
    pub(super) fn arm(&mut self) -> Result<bool, Error> {
        if self.queue_pos < self.queue.len() {
            return Ok(false);
        }
        self.bell_gone |= sys::bell_drain(&self.my_data);
        if self.bell_gone {
            // Not empty: the next try_recv reports the hang-up (after
            // anything published before it).
            return Ok(false);
        }
        let empty = self.consumer.prepare_sleep().map_err(ring_error)?;
        self.bell_armed = empty;
        Ok(empty)
    }
}

impl Drop for RxSession {
    fn drop(&mut self) {
        // Hang up this direction [O8]; wake the producer if it waits for room.
        if self.consumer.close() {
            sys::bell_ring(&self.their_room);
        }
    }
}

pub(super) struct Geometry {
    pub(super) slots: u32,
    pub(super) slot_size: u32,
    pub(super) layout: RingLayout,
}

impl Geometry {
    pub(super) fn new(slots: u32, slot_size: u32) -> Result<Self, Error> {
        if (slot_size as usize) <= OVERHEAD {
            return Err(Error::InvalidGeometry);
        }
        let layout =
            RingLayout::new::<TxDesc>(slots, slot_size).map_err(|_| Error::InvalidGeometry)?;
        Ok(Self {
            slots,
            slot_size,
            layout,
        })
    }
    pub(super) fn ring_bytes(&self) -> usize {
        self.layout.ring_bytes()
    }
    pub(super) fn max_payload(&self) -> usize {
        self.slot_size as usize - OVERHEAD
    }
}

pub(super) struct Keys {
    pub(super) channel_id: u64,
    pub(super) o2p_key: Zeroizing<[u8; 32]>,
    pub(super) o2p_salt: [u8; 4],
    pub(super) p2o_key: Zeroizing<[u8; 32]>,
    pub(super) p2o_salt: [u8; 4],
}

pub(super) struct SessionParts<'a> {
    pub(super) owner: bool,
    pub(super) geo: &'a Geometry,
    pub(super) mapping: Arc<Mapping>,
    pub(super) bells: Bells,
    pub(super) keys: Keys,
    pub(super) link: Arc<Link>,
    pub(super) counters: Arc<Counters>,
    pub(super) peer: PeerCredentials,
    pub(super) opts: &'a Options,
}

pub(super) fn build_session(p: SessionParts<'_>) -> Result<Session, Error> {
    let rb = p.geo.ring_bytes();
    let (tx_off, rx_off) = if p.owner { (0, rb) } else { (rb, 0) };
    let layout_err = |e: secure_ipc_ring::LayoutError| Error::Protocol(format!("shared ring: {e}"));
    let producer = p.mapping.producer(tx_off, rb).map_err(layout_err)?;
    let consumer = p.mapping.consumer(rx_off, rb).map_err(layout_err)?;
    let k = p.keys;
    let (tx_dir, rx_dir) = if p.owner {
        (abi::SIPC_DIR_OWNER_TO_PEER, abi::SIPC_DIR_PEER_TO_OWNER)
    } else {
        (abi::SIPC_DIR_PEER_TO_OWNER, abi::SIPC_DIR_OWNER_TO_PEER)
    };
    let (tx_key, tx_salt, rx_key, rx_salt) = if p.owner {
        (k.o2p_key, k.o2p_salt, k.p2o_key, k.p2o_salt)
    } else {
        (k.p2o_key, k.p2o_salt, k.o2p_key, k.o2p_salt)
    };
    let max = p.geo.max_payload();
    let _ = p.counters.rings.set((p.mapping.clone(), tx_off, rx_off));
    // Records copied out per batch: up to 32, at most 256 KiB of copies.
    let rx_batch = ((256 * 1024) / p.geo.slot_size)
        .clamp(1, 32)
        .min(p.geo.slots);
    let tx = TxSession {
        producer,
        sealer: Sealer::new(
            k.channel_id,
            tx_dir,
            tx_key,
            tx_salt,
            p.opts.rekey_records,
            p.opts.rekey_bytes,
        ),
        staging: vec![0u8; max],
        max_payload: max,
        link: p.link.clone(),
        my_room: p.bells.my_room,
        their_data: p.bells.their_data,
        counters: p.counters.clone(),
        unpublished: 0,
        was_full: false,
        bell_armed: false,
        bell_gone: false,
    };
    let rx = RxSession {
        consumer,
        opener: Opener::new(k.channel_id, rx_dir, rx_key, rx_salt),
        buf: vec![0u8; rx_batch as usize * p.geo.slot_size as usize],
        slot_size: p.geo.slot_size as usize,
        batch_max: rx_batch,
        queue: Vec::with_capacity(rx_batch as usize),
        queue_pos: 0,
        current_off: 0,
        link: p.link,
        my_data: p.bells.my_data,
        their_room: p.bells.their_room,
        counters: p.counters,
        sender: p.peer.cred,
        peer: p.peer,
        current: None,
        empty_polls: 0,
        bell_armed: false,
        bell_gone: false,
    };
    Ok(Session { tx, rx })
}
