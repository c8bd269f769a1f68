//! Behaviour of the ring halves, one behaviour per test.

use secure_ipc_ring::abi::{self, RxDesc, TxDesc};
use secure_ipc_ring::{
    channel, CommitError, Consumer, HeapRing, LayoutError, PayloadError, PeekError, Producer,
    ProtocolError, PushError, ReserveError, RingKind, RingLayout, SharedWord,
};
use std::ptr::NonNull;

/// Iteration counts shrink under Miri, which is ~1000x slower.
const fn scaled(n: u32) -> u32 {
    if cfg!(miri) {
        n / 100 + 3
    } else {
        n
    }
}

fn pop(rx: &mut Consumer<TxDesc>) -> Result<(TxDesc, Vec<u8>), PeekError> {
    let slot = rx.peek()?;
    let mut buf = vec![0u8; slot.len()];
    slot.read_payload(&mut buf).unwrap();
    let d = *slot.desc();
    slot.release();
    Ok((d, buf))
}

fn desc(ty: u16) -> TxDesc {
    TxDesc {
        type_: ty,
        ..TxDesc::default()
    }
}

#[test]
fn pushed_message_is_read_back_after_publish() {
    let (mut tx, mut rx) = channel::<TxDesc>(4, 64).unwrap();
    tx.push(desc(7), b"hello").unwrap();
    tx.publish();
    let (d, p) = pop(&mut rx).unwrap();
    assert_eq!((d.type_, d.len, p.as_slice()), (7, 5, &b"hello"[..]));
}

#[test]
fn committed_message_is_invisible_until_published() {
    let (mut tx, mut rx) = channel::<TxDesc>(4, 64).unwrap();
    tx.push(desc(1), b"x").unwrap();
    assert_eq!(tx.pending(), 1);
    assert!(matches!(rx.peek(), Err(PeekError::Empty)));
    tx.publish_without_wake_check();
    assert!(rx.peek().is_ok());
}

#[test]
fn empty_ring_peek_reports_empty() {
    let (_tx, mut rx) = channel::<TxDesc>(4, 64).unwrap();
    assert!(matches!(rx.peek(), Err(PeekError::Empty)));
}

#[test]
fn full_ring_reserve_reports_full() {
    let (mut tx, _rx) = channel::<TxDesc>(2, 64).unwrap();
    tx.push(desc(0), b"a").unwrap();
    tx.push(desc(0), b"b").unwrap();
    assert_eq!(
        tx.reserve().err(),
        Some(ReserveError::Full { available: 0 })
    );
    assert!(matches!(tx.push(desc(9), b"c"), Err(PushError::Full(d)) if d.type_ == 9));
}

#[test]
fn released_slot_becomes_free_for_the_producer() {
    let (mut tx, mut rx) = channel::<TxDesc>(2, 64).unwrap();
    tx.push(desc(0), b"a").unwrap();
    tx.push(desc(0), b"b").unwrap();
    tx.publish();
    pop(&mut rx).unwrap();
    assert_eq!(tx.free_slots(), Ok(1));
}

#[test]
fn messages_keep_order_across_many_wrap_arounds() {
    let (mut tx, mut rx) = channel::<TxDesc>(4, 64).unwrap();
    for i in 0..scaled(1000) {
        tx.push(desc(i as u16), &i.to_le_bytes()).unwrap();
        if i % 3 == 2 {
            tx.publish();
            while let Ok((d, p)) = pop(&mut rx) {
                assert_eq!(u32::from_le_bytes(p.try_into().unwrap()) as u16, d.type_);
            }
        }
    }
}

#[test]
fn batch_commit_publishes_all_entries_at_once() {
    let (mut tx, mut rx) = channel::<TxDesc>(8, 64).unwrap();
    let mut b = tx.reserve_batch(5).unwrap();
    for i in 0..5u32 {
        b.write(i, desc(i as u16), &[i as u8; 3]).unwrap();
    }
    b.commit();
    tx.publish();
    let batch = rx.peek_batch(32).unwrap();
    assert_eq!(batch.len(), 5);
    for i in 0..5u32 {
        let e = batch.get(i).unwrap().unwrap();
        let mut buf = [0u8; 3];
        e.read_payload(&mut buf).unwrap();
        assert_eq!((e.desc().type_, buf), (i as u16, [i as u8; 3]));
    }
    assert!(batch.get(5).is_none());
    batch.release();
    assert_eq!(tx.free_slots(), Ok(8));
}

#[test]
fn batch_iter_yields_every_entry_in_order_across_the_wrap() {
    let (mut tx, mut rx) = channel::<TxDesc>(4, 64).unwrap();
    for i in 0..3u8 {
        tx.push(desc(0), &[i]).unwrap();
        tx.publish();
        pop(&mut rx).unwrap();
    }
    // Indices 3..7 occupy slots 3, 0, 1, 2.
    let mut b = tx.reserve_batch(4).unwrap();
    for i in 0..4u32 {
        b.write(i, desc(10 + i as u16), &[i as u8; 5]).unwrap();
    }
    b.commit();
    tx.publish();
    let batch = rx.peek_batch(4).unwrap();
    let it = batch.iter();
    assert_eq!(it.len(), 4);
    let got: Vec<(u16, Vec<u8>)> = it
        .map(|e| {
            let e = e.unwrap();
            let mut buf = vec![0u8; e.len()];
            e.read_payload(&mut buf).unwrap();
            (e.desc().type_, buf)
        })
        .collect();
    let want: Vec<(u16, Vec<u8>)> = (0..4u8).map(|i| (10 + i as u16, vec![i; 5])).collect();
    assert_eq!(got, want);
}

#[test]
fn batch_commit_first_commits_only_a_prefix() {
    let (mut tx, mut rx) = channel::<TxDesc>(8, 64).unwrap();
    let mut b = tx.reserve_batch(4).unwrap();
    b.write(0, desc(0), b"a").unwrap();
    b.write(1, desc(1), b"b").unwrap();
    b.commit_first(2);
    tx.publish();
    assert_eq!(rx.available(), Ok(2));
}

#[test]
fn batch_reserve_larger_than_free_reports_available() {
    let (mut tx, _rx) = channel::<TxDesc>(4, 64).unwrap();
    tx.push(desc(0), b"a").unwrap();
    assert_eq!(
        tx.reserve_batch(4).err(),
        Some(ReserveError::Full { available: 3 })
    );
    assert_eq!(
        tx.reserve_batch(5).err(),
        Some(ReserveError::TooLarge {
            requested: 5,
            entries: 4
        })
    );
}

#[test]
fn batch_write_outside_batch_hands_descriptor_back() {
    let (mut tx, _rx) = channel::<TxDesc>(4, 64).unwrap();
    let mut b = tx.reserve_batch(2).unwrap();
    assert!(matches!(
        b.write(2, desc(5), b"a"),
        Err(CommitError::OutOfBatch { desc, batch_len: 2 }) if desc.type_ == 5
    ));
}

#[test]
fn batch_release_first_releases_only_a_prefix() {
    let (mut tx, mut rx) = channel::<TxDesc>(4, 64).unwrap();
    for i in 0..4 {
        tx.push(desc(i), b"z").unwrap();
    }
    tx.publish();
    rx.peek_batch(4).unwrap().release_first(3);
    assert_eq!(pop(&mut rx).unwrap().0.type_, 3);
}

#[test]
fn peek_batch_is_capped_at_max() {
    let (mut tx, mut rx) = channel::<TxDesc>(8, 64).unwrap();
    for i in 0..6 {
        tx.push(desc(i), b"z").unwrap();
    }
    tx.publish();
    assert_eq!(rx.peek_batch(4).unwrap().len(), 4);
}

#[test]
fn peek_batch_picks_up_messages_published_after_the_cache_was_filled() {
    let (mut tx, mut rx) = channel::<TxDesc>(8, 64).unwrap();
    tx.push(desc(0), b"a").unwrap();
    tx.publish();
    assert_eq!(rx.available(), Ok(1));
    for i in 1..4 {
        tx.push(desc(i), b"b").unwrap();
    }
    tx.publish();
    assert_eq!(rx.peek_batch(4).unwrap().len(), 4);
}

#[test]
fn dropped_read_slot_keeps_message_queued() {
    let (mut tx, mut rx) = channel::<TxDesc>(4, 64).unwrap();
    tx.push(desc(3), b"keep").unwrap();
    tx.publish();
    let _ = rx.peek().unwrap();
    assert_eq!(pop(&mut rx).unwrap().0.type_, 3);
}

#[test]
fn dropped_write_slot_gives_the_slot_back() {
    let (mut tx, mut rx) = channel::<TxDesc>(4, 64).unwrap();
    let _ = tx.reserve().unwrap();
    tx.publish();
    assert!(matches!(rx.peek(), Err(PeekError::Empty)));
    assert_eq!(tx.free_slots(), Ok(4));
}

#[test]
fn write_slot_payload_and_commit_round_trip() {
    let (mut tx, mut rx) = channel::<TxDesc>(4, 64).unwrap();
    let mut s = tx.reserve().unwrap();
    s.write_payload(0, b"abc").unwrap();
    s.write_payload(3, b"def").unwrap();
    s.commit(TxDesc {
        len: 6,
        ..TxDesc::default()
    })
    .unwrap();
    tx.publish();
    assert_eq!(pop(&mut rx).unwrap().1, b"abcdef");
}

#[test]
fn payloads_of_every_small_length_round_trip() {
    let (mut tx, mut rx) = channel::<TxDesc>(2, 128).unwrap();
    for len in 0..=128usize {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        tx.push(desc(0), &payload).unwrap();
        tx.publish();
        assert_eq!(pop(&mut rx).unwrap().1, payload, "length {len}");
    }
}

#[test]
fn commit_rejects_length_beyond_slot() {
    let (mut tx, _rx) = channel::<TxDesc>(4, 64).unwrap();
    let s = tx.reserve().unwrap();
    let d = TxDesc {
        len: 65,
        ..TxDesc::default()
    };
    assert_eq!(
        s.commit(d),
        Err(CommitError::TooLong {
            desc: d,
            slot_size: 64
        })
    );
}

#[test]
fn push_rejects_payload_longer_than_slot() {
    let (mut tx, _rx) = channel::<TxDesc>(4, 64).unwrap();
    assert!(matches!(
        tx.push(desc(1), &[0u8; 65]),
        Err(PushError::TooLong {
            len: 65,
            slot_size: 64,
            ..
        })
    ));
}

#[test]
fn write_payload_past_slot_end_is_rejected() {
    let (mut tx, _rx) = channel::<TxDesc>(4, 64).unwrap();
    let mut s = tx.reserve().unwrap();
    assert_eq!(
        s.write_payload(60, &[0u8; 5]),
        Err(PayloadError::OutOfSlot {
            end: 65,
            slot_size: 64
        })
    );
    assert!(s.write_payload(usize::MAX, &[0u8; 1]).is_err());
}

#[test]
fn read_payload_into_short_buffer_is_rejected() {
    let (mut tx, mut rx) = channel::<TxDesc>(4, 64).unwrap();
    tx.push(desc(0), b"four").unwrap();
    tx.publish();
    let s = rx.peek().unwrap();
    let mut small = [0u8; 3];
    assert_eq!(
        s.read_payload(&mut small),
        Err(PayloadError::BufferTooSmall { needed: 4, have: 3 })
    );
}

#[test]
fn publish_requests_wakeup_when_consumer_prepared_to_sleep() {
    let (mut tx, mut rx) = channel::<TxDesc>(4, 64).unwrap();
    assert_eq!(rx.prepare_sleep(), Ok(true));
    tx.push(desc(0), b"a").unwrap();
    assert!(tx.publish());
}

#[test]
fn publish_requests_no_wakeup_from_an_awake_consumer() {
    let (mut tx, _rx) = channel::<TxDesc>(4, 64).unwrap();
    tx.push(desc(0), b"a").unwrap();
    assert!(!tx.publish());
}

#[test]
fn prepare_sleep_refuses_when_a_message_is_waiting() {
    let (mut tx, mut rx) = channel::<TxDesc>(4, 64).unwrap();
    tx.push(desc(0), b"a").unwrap();
    tx.publish();
    assert_eq!(rx.prepare_sleep(), Ok(false));
}

#[test]
fn finish_sleep_clears_need_wakeup() {
    let ring = HeapRing::<TxDesc>::new(4, 64).unwrap();
    let t = ring.tamper();
    let (_tx, mut rx) = ring.split();
    assert_eq!(rx.prepare_sleep(), Ok(true));
    assert_eq!(t.load(SharedWord::ConsFlags), abi::SIPC_FLAG_NEED_WAKEUP);
    rx.finish_sleep();
    assert_eq!(t.load(SharedWord::ConsFlags), 0);
}

#[test]
fn release_wakes_producer_waiting_for_room() {
    let (mut tx, mut rx) = channel::<TxDesc>(2, 64).unwrap();
    tx.push(desc(0), b"a").unwrap();
    tx.push(desc(0), b"b").unwrap();
    tx.publish();
    assert_eq!(tx.prepare_wait_for_room(1), Ok(true));
    pop(&mut rx).unwrap();
    assert!(rx.producer_wants_wakeup());
    tx.finish_wait_for_room();
    assert!(!rx.producer_wants_wakeup());
}

#[test]
fn wait_for_more_room_than_capacity_ends_when_ring_is_empty() {
    let (mut tx, _rx) = channel::<TxDesc>(2, 64).unwrap();
    assert_eq!(tx.prepare_wait_for_room(100), Ok(false));
}

#[test]
fn wait_for_room_is_refused_when_room_exists() {
    let (mut tx, _rx) = channel::<TxDesc>(2, 64).unwrap();
    assert_eq!(tx.prepare_wait_for_room(1), Ok(false));
}

#[test]
fn producer_hang_up_is_seen_after_draining() {
    let (mut tx, mut rx) = channel::<TxDesc>(4, 64).unwrap();
    tx.push(desc(1), b"last").unwrap();
    tx.close();
    assert!(rx.is_producer_closed());
    assert_eq!(pop(&mut rx).unwrap().0.type_, 1);
    assert!(matches!(rx.peek(), Err(PeekError::Closed)));
}

#[test]
fn dropping_the_producer_hangs_up() {
    let (tx, mut rx) = channel::<TxDesc>(4, 64).unwrap();
    drop(tx);
    assert!(matches!(rx.peek(), Err(PeekError::Closed)));
}

#[test]
fn producer_hang_up_prevents_consumer_sleep() {
    let (mut tx, mut rx) = channel::<TxDesc>(4, 64).unwrap();
    tx.close();
    assert_eq!(rx.prepare_sleep(), Ok(false));
}

#[test]
fn close_wakes_a_sleeping_consumer() {
    let (mut tx, mut rx) = channel::<TxDesc>(4, 64).unwrap();
    assert_eq!(rx.prepare_sleep(), Ok(true));
    assert!(tx.close());
}

#[test]
fn consumer_hang_up_is_seen_by_the_producer() {
    let (mut tx, mut rx) = channel::<TxDesc>(4, 64).unwrap();
    rx.close();
    assert!(tx.is_consumer_closed());
    assert_eq!(tx.free_slots(), Err(ReserveError::Closed));
}

#[test]
fn producer_sees_consumer_hang_up_when_ring_fills() {
    let (mut tx, rx) = channel::<TxDesc>(2, 64).unwrap();
    drop(rx);
    tx.push(desc(0), b"a").unwrap();
    tx.push(desc(0), b"b").unwrap();
    assert!(matches!(tx.push(desc(0), b"c"), Err(PushError::Closed(_))));
}

#[test]
fn reserve_after_own_close_reports_closed() {
    let (mut tx, _rx) = channel::<TxDesc>(4, 64).unwrap();
    tx.close();
    assert_eq!(tx.reserve().err(), Some(ReserveError::Closed));
}

#[test]
fn hostile_producer_index_is_rejected() {
    let ring = HeapRing::<TxDesc>::new(4, 64).unwrap();
    let t = ring.tamper();
    let (_tx, mut rx) = ring.split();
    // SAFETY: one thread, between operations; 5 > entries is rejected.
    unsafe { t.store(SharedWord::Prod, 5) };
    assert!(matches!(
        rx.peek(),
        Err(PeekError::Protocol(ProtocolError::IndexOutOfRange {
            prod: 5,
            cons: 0,
            entries: 4
        }))
    ));
}

#[test]
fn hostile_producer_index_far_behind_is_rejected() {
    let ring = HeapRing::<TxDesc>::new(4, 64).unwrap();
    let t = ring.tamper();
    let (_tx, mut rx) = ring.split();
    // SAFETY: one thread, between operations; the index is rejected.
    unsafe { t.store(SharedWord::Prod, u32::MAX) };
    assert!(matches!(
        rx.available(),
        Err(ProtocolError::IndexOutOfRange { .. })
    ));
}

#[test]
fn hostile_consumer_index_ahead_of_published_is_rejected() {
    let ring = HeapRing::<TxDesc>::new(2, 64).unwrap();
    let t = ring.tamper();
    let (mut tx, _rx) = ring.split();
    tx.push(desc(0), b"a").unwrap();
    tx.push(desc(0), b"b").unwrap();
    tx.publish();
    // SAFETY: one thread, between operations; the index is rejected.
    unsafe { t.store(SharedWord::Cons, 3) };
    assert!(matches!(
        tx.reserve().err(),
        Some(ReserveError::Protocol(
            ProtocolError::IndexOutOfRange { .. }
        ))
    ));
}

#[test]
fn hostile_consumer_index_too_far_behind_is_rejected() {
    let ring = HeapRing::<TxDesc>::new(2, 64).unwrap();
    let t = ring.tamper();
    let (mut tx, _rx) = ring.split();
    tx.push(desc(0), b"a").unwrap();
    tx.push(desc(0), b"b").unwrap();
    tx.publish();
    // SAFETY: one thread, between operations; the index is rejected.
    unsafe { t.store(SharedWord::Cons, u32::MAX - 5) };
    assert!(matches!(
        tx.free_slots(),
        Err(ReserveError::Protocol(
            ProtocolError::IndexOutOfRange { .. }
        ))
    ));
}

#[test]
fn hostile_descriptor_length_is_rejected() {
    let ring = HeapRing::<TxDesc>::new(4, 64).unwrap();
    let t = ring.tamper();
    let (mut tx, mut rx) = ring.split();
    tx.push(desc(0), b"ok").unwrap();
    tx.publish();
    // SAFETY: single-threaded; neither half is inside an operation.
    unsafe {
        t.write_desc(
            0,
            TxDesc {
                len: 1 << 20,
                ..TxDesc::default()
            },
        )
    };
    assert!(matches!(
        rx.peek(),
        Err(PeekError::Protocol(ProtocolError::LengthOutOfRange {
            index: 0,
            len: 0x10_0000,
            slot_size: 64
        }))
    ));
    let batch = rx.peek_batch(4).unwrap();
    assert!(matches!(
        batch.get(0),
        Some(Err(ProtocolError::LengthOutOfRange { .. }))
    ));
}

#[test]
fn batch_iter_rejects_a_hostile_descriptor_length_and_goes_on() {
    let ring = HeapRing::<TxDesc>::new(4, 64).unwrap();
    let t = ring.tamper();
    let (mut tx, mut rx) = ring.split();
    tx.push(desc(0), b"bad").unwrap();
    tx.push(desc(1), b"ok").unwrap();
    tx.publish();
    // SAFETY: single-threaded; neither half is inside an operation.
    unsafe {
        t.write_desc(
            0,
            TxDesc {
                len: 65,
                ..TxDesc::default()
            },
        )
    };
    let batch = rx.peek_batch(4).unwrap();
    let mut it = batch.iter();
    assert!(matches!(
        it.next(),
        Some(Err(ProtocolError::LengthOutOfRange {
            index: 0,
            len: 65,
            slot_size: 64
        }))
    ));
    let e = it.next().unwrap().unwrap();
    assert_eq!((e.desc().type_, e.len()), (1, 2));
    assert!(it.next().is_none());
}

#[test]
fn kernel_status_line_is_read() {
    let ring = HeapRing::<RxDesc>::new(4, 64).unwrap();
    let t = ring.tamper();
    let (_tx, rx) = ring.split();
    // SAFETY: the status words guard no slot; one thread.
    unsafe {
        t.store(SharedWord::StoreProd, 7);
        t.store(SharedWord::StoreCons, 5);
        t.store(SharedWord::StoreEntries, 8);
        t.store(SharedWord::Status, abi::SIPC_STATUS_PEER_CLOSED);
    }
    let s = rx.kernel_status();
    assert!(s.records_waiting() && s.store_has_room() && s.peer_closed());
    assert_eq!(s.store_fill(), 2);
}

#[test]
fn rx_descriptors_round_trip() {
    let (mut tx, mut rx) = channel::<RxDesc>(2, 128).unwrap();
    let d = RxDesc {
        seq: 42,
        sender_uid: 1000,
        ..RxDesc::default()
    };
    tx.push(d, &[9u8; 100]).unwrap();
    tx.publish();
    let s = rx.peek().unwrap();
    assert_eq!(
        (s.desc().seq, s.desc().sender_uid, s.len()),
        (42, 1000, 100)
    );
}

#[test]
fn every_word_of_a_64_byte_descriptor_is_copied_out() {
    let (mut tx, mut rx) = channel::<RxDesc>(2, 128).unwrap();
    let d = RxDesc {
        seq: 0x0102_0304_0506_0708,
        timestamp_ns: 0x1112_1314_1516_1718,
        len: 0,
        type_: 0x2122,
        flags: 0x2324,
        sender_pid: 0x3132_3334,
        sender_uid: 0x4142_4344,
        sender_gid: 0x5152_5354,
        epoch: 0x6162_6364,
        reserved: core::array::from_fn(|i| 0x70 + i as u8),
    };
    tx.push(d, &[9u8; 100]).unwrap();
    tx.publish();
    let s = rx.peek().unwrap();
    assert_eq!(*s.desc(), RxDesc { len: 100, ..d });
}

/// A descriptor aligned to 4 bytes (copied out with one volatile read, not
/// word by word).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
struct NarrowDesc {
    len: u32,
    tag: u32,
    extra: u32,
}

impl secure_ipc_ring::Descriptor for NarrowDesc {
    fn payload_len(&self) -> u32 {
        self.len
    }
    fn set_payload_len(&mut self, len: u32) {
        self.len = len;
    }
}

#[test]
fn a_descriptor_aligned_to_4_bytes_round_trips() {
    let (mut tx, mut rx) = channel::<NarrowDesc>(4, 64).unwrap();
    let d = NarrowDesc {
        len: 0,
        tag: 0xAABB_CCDD,
        extra: 7,
    };
    tx.push(d, b"abc").unwrap();
    tx.publish();
    let s = rx.peek().unwrap();
    assert_eq!(*s.desc(), NarrowDesc { len: 3, ..d });
}

#[test]
fn two_threads_transfer_every_message_in_order() {
    let n = scaled(20_000);
    let (mut tx, mut rx) = channel::<TxDesc>(8, 64).unwrap();
    let producer = std::thread::spawn(move || {
        for i in 0..n {
            loop {
                match tx.push(desc(0), &i.to_le_bytes()) {
                    Ok(()) => break,
                    Err(PushError::Full(_)) => {
                        tx.publish();
                        std::thread::yield_now()
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            if i % 5 == 0 {
                tx.publish();
            }
        }
    });
    let mut next = 0u32;
    loop {
        match pop(&mut rx) {
            Ok((_, p)) => {
                assert_eq!(u32::from_le_bytes(p.try_into().unwrap()), next);
                next += 1;
            }
            Err(PeekError::Empty) => std::thread::yield_now(),
            Err(PeekError::Closed) => break,
            Err(e) => panic!("{e}"),
        }
    }
    producer.join().unwrap();
    assert_eq!(next, n);
}

/// An 8-aligned buffer standing in for a mapping.
fn mapping(bytes: usize) -> Vec<u64> {
    vec![0u64; bytes / 8]
}

fn base(m: &mut [u64]) -> NonNull<u8> {
    NonNull::new(m.as_mut_ptr().cast()).unwrap()
}

#[test]
fn halves_from_raw_share_an_initialised_mapping() {
    let layout = RingLayout::new::<TxDesc>(4, 64).unwrap();
    let mut m = mapping(layout.ring_bytes());
    let (b, len) = (base(&mut m), layout.ring_bytes());
    // SAFETY: `m` outlives both halves (dropped at the end of the test) and
    // is not shared before init.
    let (mut tx, mut rx) = unsafe {
        layout.init(b, len, RingKind::Rx).unwrap();
        (
            Producer::<TxDesc>::from_raw(b, len, RingKind::Rx).unwrap(),
            Consumer::<TxDesc>::from_raw(b, len, RingKind::Rx).unwrap(),
        )
    };
    tx.push(desc(4), b"shared").unwrap();
    tx.publish();
    assert_eq!(pop(&mut rx).unwrap().1, b"shared");
    drop((tx, rx));
    drop(m);
}

fn from_raw_err(edit: impl FnOnce(&mut abi::RingHeader), len_delta: isize) -> LayoutError {
    let layout = RingLayout::new::<TxDesc>(4, 64).unwrap();
    let mut m = mapping(layout.ring_bytes());
    let b = base(&mut m);
    // SAFETY: `m` is ours and outlives every use below; single-threaded.
    unsafe {
        layout.init(b, layout.ring_bytes(), RingKind::Tx).unwrap();
        edit(&mut *b.as_ptr().cast::<abi::RingHeader>());
        let len = (layout.ring_bytes() as isize + len_delta) as usize;
        Producer::<TxDesc>::from_raw(b, len, RingKind::Tx)
            .err()
            .unwrap()
    }
}

#[test]
fn from_raw_rejects_bad_magic() {
    assert_eq!(from_raw_err(|h| h.magic = 1, 0), LayoutError::BadMagic(1));
}

#[test]
fn from_raw_rejects_other_abi_version() {
    let other = abi::SIPC_ABI_VERSION as u16 + 1;
    assert_eq!(
        from_raw_err(|h| h.abi_version = other, 0),
        LayoutError::AbiVersion(other)
    );
}

#[test]
fn from_raw_rejects_wrong_kind() {
    assert!(matches!(
        from_raw_err(|h| h.kind = abi::SIPC_RING_RX, 0),
        LayoutError::WrongKind { .. }
    ));
}

#[test]
fn from_raw_rejects_entries_not_power_of_two() {
    assert_eq!(from_raw_err(|h| h.entries = 3, 0), LayoutError::Entries(3));
}

#[test]
fn from_raw_rejects_oversized_entries() {
    assert!(matches!(
        from_raw_err(|h| h.entries = 1 << 20, 0),
        LayoutError::Entries(_)
    ));
}

#[test]
fn from_raw_rejects_slot_size_not_power_of_two() {
    assert_eq!(
        from_raw_err(|h| h.slot_size = 100, 0),
        LayoutError::SlotSize(100)
    );
}

#[test]
fn from_raw_rejects_descriptor_size_mismatch() {
    assert_eq!(
        from_raw_err(|h| h.desc_size = 64, 0),
        LayoutError::DescSize {
            expected: 16,
            found: 64
        }
    );
}

#[test]
fn from_raw_rejects_slots_beyond_ring_bytes() {
    assert!(matches!(
        from_raw_err(|h| h.slot_size = 4096, 0),
        LayoutError::Offsets { .. }
    ));
}

#[test]
fn from_raw_rejects_ring_bytes_beyond_mapping() {
    assert!(matches!(
        from_raw_err(|_| (), -4096),
        LayoutError::MappingTooSmall { .. }
    ));
}

#[test]
fn from_raw_rejects_mapping_smaller_than_header() {
    let mut m = mapping(4096);
    let b = base(&mut m);
    // SAFETY: `m` is 4096 readable bytes; only 100 are claimed.
    let e = unsafe { Producer::<TxDesc>::from_raw(b, 100, RingKind::Tx) }.err();
    assert!(matches!(e, Some(LayoutError::MappingTooSmall { .. })));
}

#[test]
fn from_raw_rejects_misaligned_base() {
    let mut m = mapping(8192);
    let b = NonNull::new(base(&mut m).as_ptr().wrapping_add(4)).unwrap();
    // SAFETY: rejected before any access.
    let e = unsafe { Producer::<TxDesc>::from_raw(b, 4096, RingKind::Tx) }.err();
    assert_eq!(e, Some(LayoutError::Misaligned { align: 8 }));
}

#[test]
fn init_rejects_short_mapping() {
    let layout = RingLayout::new::<TxDesc>(4, 64).unwrap();
    let mut m = mapping(layout.ring_bytes());
    let b = base(&mut m);
    // SAFETY: `m` is ours; rejected before any write.
    let e = unsafe { layout.init(b, 4096, RingKind::Tx) };
    assert!(matches!(e, Err(LayoutError::MappingTooSmall { .. })));
}
