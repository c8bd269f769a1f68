//! loom models of the ring protocol, running the production ring code.
//!
//! Each model has a twin that weakens the ordering it proves (through the
//! loom-only `Weaken` knob of the heap ring) and asserts that loom then
//! finds a failing execution. See docs/ring-protocol.md.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use secure_ipc_loom_tests::{model, model_fails, Bell};
use secure_ipc_ring::abi::TxDesc;
use secure_ipc_ring::{
    Consumer, HeapRing, PeekError, Producer, ProtocolError, PushError, SharedWord, Weaken,
};

fn ring(entries: u32, w: Weaken) -> (Producer<TxDesc>, Consumer<TxDesc>) {
    HeapRing::<TxDesc>::new(entries, 64)
        .unwrap()
        .weaken(w)
        .split()
}

fn desc(ty: u16) -> TxDesc {
    TxDesc {
        type_: ty,
        ..TxDesc::default()
    }
}

/// Pushes message `i` (payload = i as 4 bytes), waiting for room by yielding.
fn send(tx: &mut Producer<TxDesc>, i: u32) {
    loop {
        match tx.push(desc(i as u16), &i.to_le_bytes()) {
            Ok(()) => return,
            Err(PushError::Full(_)) => {
                tx.publish();
                thread::yield_now();
            }
            Err(e) => panic!("push: {e}"),
        }
    }
}

/// Receives the next message, yielding while empty; checks desc and payload
/// agree (a torn or stale slot would not).
fn recv(rx: &mut Consumer<TxDesc>) -> u32 {
    loop {
        match rx.peek() {
            Ok(slot) => {
                let mut b = [0u8; 4];
                assert_eq!(slot.read_payload(&mut b), Ok(4), "length");
                let v = u32::from_le_bytes(b);
                assert_eq!(slot.desc().type_, v as u16, "descriptor/payload mismatch");
                slot.release();
                return v;
            }
            Err(PeekError::Empty) => thread::yield_now(),
            Err(e) => panic!("peek: {e:?}"),
        }
    }
}

/// n messages through a ring of `entries`, in order.
fn transfer(entries: u32, n: u32, w: Weaken) {
    let (mut tx, mut rx) = ring(entries, w);
    let p = thread::spawn(move || {
        for i in 0..n {
            send(&mut tx, i);
            tx.publish();
        }
    });
    for i in 0..n {
        assert_eq!(recv(&mut rx), i);
    }
    p.join().unwrap();
}

#[test]
fn single_message_is_delivered() {
    model(|| transfer(2, 1, Weaken::default()));
}

#[test]
fn single_message_fails_with_relaxed_publish() {
    let msg = model_fails(|| {
        transfer(
            2,
            1,
            Weaken {
                publish_relaxed: true,
                ..Weaken::default()
            },
        )
    });
    println!("weakened [O1] publish: loom failed as expected: {msg}");
}

#[test]
fn single_message_fails_with_relaxed_observe() {
    let msg = model_fails(|| {
        transfer(
            2,
            1,
            Weaken {
                observe_relaxed: true,
                ..Weaken::default()
            },
        )
    });
    println!("weakened [O2] observe: loom failed as expected: {msg}");
}

#[test]
fn wrap_around_at_capacity_2() {
    model(|| transfer(2, 3, Weaken::default()));
}

#[test]
fn wrap_around_at_capacity_4() {
    model(|| transfer(4, 5, Weaken::default()));
}

#[test]
fn wrap_around_fails_with_relaxed_release() {
    let msg = model_fails(|| {
        transfer(
            2,
            3,
            Weaken {
                release_relaxed: true,
                ..Weaken::default()
            },
        )
    });
    println!("weakened [O3] release: loom failed as expected: {msg}");
}

#[test]
fn wrap_around_fails_with_relaxed_room_check() {
    let msg = model_fails(|| {
        transfer(
            2,
            3,
            Weaken {
                room_relaxed: true,
                ..Weaken::default()
            },
        )
    });
    println!("weakened [O4] room: loom failed as expected: {msg}");
}

/// Two batches of 2 through a ring of 2, consumed as batches.
fn batches(w: Weaken) {
    let (mut tx, mut rx) = ring(2, w);
    let p = thread::spawn(move || {
        for b in 0..2u32 {
            let mut batch = loop {
                match tx.reserve_batch(2) {
                    Ok(batch) => break batch,
                    Err(_) => thread::yield_now(),
                }
            };
            for i in 0..2 {
                let v = b * 2 + i;
                batch.write(i, desc(v as u16), &v.to_le_bytes()).unwrap();
            }
            batch.commit();
            tx.publish();
        }
    });
    let mut next = 0u32;
    while next < 4 {
        let batch = match rx.peek_batch(2) {
            Ok(b) => b,
            Err(PeekError::Empty) => {
                thread::yield_now();
                continue;
            }
            Err(e) => panic!("{e:?}"),
        };
        for i in 0..batch.len() {
            let e = batch.get(i).unwrap().unwrap();
            let mut b = [0u8; 4];
            e.read_payload(&mut b).unwrap();
            assert_eq!((u32::from_le_bytes(b), e.desc().type_ as u32), (next, next));
            next += 1;
        }
        batch.release();
    }
    p.join().unwrap();
}

#[test]
fn batches_are_delivered_whole_and_in_order() {
    model(|| batches(Weaken::default()));
}

#[test]
fn batches_fail_with_relaxed_publish() {
    let msg = model_fails(|| {
        batches(Weaken {
            publish_relaxed: true,
            ..Weaken::default()
        })
    });
    println!("weakened [O1] batch publish: loom failed as expected: {msg}");
}

/// The consumer sleeps on an eventfd-like bell whenever prepare_sleep()
/// allows it; the producer rings it whenever publish() says so. A lost
/// wake-up leaves the consumer blocked forever: loom reports a deadlock.
fn wakeup(w: Weaken) {
    let (mut tx, mut rx) = ring(2, w);
    let bell = Arc::new(Bell::default());
    let bell2 = bell.clone();
    let p = thread::spawn(move || {
        tx.push(desc(1), &1u32.to_le_bytes()).unwrap();
        if tx.publish() {
            bell2.ring();
        }
        // Keep the producer alive (no hang-up) so only the publish path can
        // wake the consumer.
        tx
    });
    loop {
        match rx.peek() {
            Ok(slot) => {
                assert_eq!(slot.desc().type_, 1);
                slot.release();
                break;
            }
            Err(PeekError::Empty) => {}
            Err(e) => panic!("{e:?}"),
        }
        if rx.prepare_sleep().unwrap() {
            bell.wait();
            rx.finish_sleep();
        }
    }
    let tx = p.join().unwrap();
    drop(tx);
}

#[test]
fn no_lost_wakeup() {
    model(|| wakeup(Weaken::default()));
}

#[test]
fn lost_wakeup_without_the_sleepers_fence() {
    let msg = model_fails(|| {
        wakeup(Weaken {
            no_sleep_fence: true,
            ..Weaken::default()
        })
    });
    println!("weakened [O5] (consumer fence removed): loom failed as expected: {msg}");
}

#[test]
fn lost_wakeup_without_the_wakers_fence() {
    let msg = model_fails(|| {
        wakeup(Weaken {
            no_wake_fence: true,
            ..Weaken::default()
        })
    });
    println!("weakened [O6] (producer fence removed): loom failed as expected: {msg}");
}

/// A producer waiting for room sleeps on a bell; the consumer's release
/// must wake it ([O7]).
fn room_wakeup(w: Weaken) {
    let (mut tx, mut rx) = ring(2, w);
    let bell = Arc::new(Bell::default());
    let bell2 = bell.clone();
    tx.push(desc(0), &0u32.to_le_bytes()).unwrap();
    tx.push(desc(1), &1u32.to_le_bytes()).unwrap();
    tx.publish();
    let c = thread::spawn(move || {
        assert_eq!(recv(&mut rx), 0);
        if rx.producer_wants_wakeup() {
            bell2.ring();
        }
        rx
    });
    loop {
        if tx.push(desc(2), &2u32.to_le_bytes()).is_ok() {
            break;
        }
        if tx.prepare_wait_for_room(1).unwrap() {
            bell.wait();
            tx.finish_wait_for_room();
        }
    }
    drop(c.join().unwrap());
}

#[test]
fn no_lost_wakeup_waiting_for_room() {
    model(|| room_wakeup(Weaken::default()));
}

#[test]
fn lost_room_wakeup_without_the_fences() {
    let msg = model_fails(|| {
        room_wakeup(Weaken {
            no_sleep_fence: true,
            no_wake_fence: true,
            ..Weaken::default()
        })
    });
    println!("weakened [O7] (fences removed): loom failed as expected: {msg}");
}

/// The producer sends one message and hangs up; the consumer, sleeping when
/// allowed, must receive the message and then see Closed.
fn hang_up(w: Weaken) {
    let (mut tx, mut rx) = ring(2, w);
    let bell = Arc::new(Bell::default());
    let bell2 = bell.clone();
    let p = thread::spawn(move || {
        tx.push(desc(7), &7u32.to_le_bytes()).unwrap();
        if tx.close() {
            bell2.ring();
        }
    });
    let mut got = Vec::new();
    loop {
        match rx.peek() {
            Ok(slot) => {
                got.push(slot.desc().type_);
                slot.release();
                continue;
            }
            Err(PeekError::Closed) => break,
            Err(PeekError::Empty) => {}
            Err(e) => panic!("{e:?}"),
        }
        if rx.prepare_sleep().unwrap() {
            bell.wait();
            rx.finish_sleep();
        }
    }
    assert_eq!(got, [7], "hang-up reported before the last message");
    p.join().unwrap();
}

#[test]
fn hang_up_is_seen_after_draining() {
    model(|| hang_up(Weaken::default()));
}

#[test]
fn hang_up_fails_with_relaxed_close_flag() {
    let msg = model_fails(|| {
        hang_up(Weaken {
            close_relaxed: true,
            ..Weaken::default()
        })
    });
    println!("weakened [O8] close: loom failed as expected: {msg}");
}

/// The consumer hangs up; a producer that fills the ring and waits for
/// room must be told Closed rather than sleep forever.
fn consumer_hang_up(w: Weaken) {
    let (mut tx, mut rx) = ring(2, w);
    let bell = Arc::new(Bell::default());
    let bell2 = bell.clone();
    let c = thread::spawn(move || {
        if rx.close() {
            bell2.ring();
        }
    });
    let mut i = 0u32;
    loop {
        match tx.push(desc(0), &i.to_le_bytes()) {
            Ok(()) => i += 1,
            Err(PushError::Closed(_)) => break,
            Err(PushError::Full(_)) => {
                if tx.prepare_wait_for_room(1).unwrap() {
                    bell.wait();
                    tx.finish_wait_for_room();
                }
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(i <= 2);
    c.join().unwrap();
}

#[test]
fn consumer_hang_up_is_seen_by_a_waiting_producer() {
    model(|| consumer_hang_up(Weaken::default()));
}

/// The producer publishes one message, then (hostile) stores an index more
/// than `entries` ahead. The consumer must report IndexOutOfRange, never
/// read beyond what was published.
fn hostile_index(w: Weaken) {
    let ring = HeapRing::<TxDesc>::new(2, 64).unwrap().weaken(w);
    let tamper = ring.tamper();
    let (mut tx, mut rx) = ring.split();
    let p = thread::spawn(move || {
        tx.push(desc(0), &0u32.to_le_bytes()).unwrap();
        tx.publish();
        // SAFETY: 4 is more than `entries` ahead of any `cons`: the
        // consumer rejects it and never reads a slot because of it.
        unsafe { tamper.store(SharedWord::Prod, 4) };
        // Hang up: a consumer that missed the bad index would drain and
        // report Closed instead of the protocol error.
        drop(tx);
    });
    loop {
        match rx.peek() {
            Ok(slot) => slot.release(),
            Err(PeekError::Empty) => thread::yield_now(),
            Err(PeekError::Protocol(ProtocolError::IndexOutOfRange { prod: 4, .. })) => break,
            Err(e) => panic!("expected IndexOutOfRange, got {e:?}"),
        }
    }
    p.join().unwrap();
}

#[test]
fn hostile_index_is_rejected() {
    model(|| hostile_index(Weaken::default()));
}

#[test]
fn hostile_index_is_missed_without_the_check() {
    let msg = model_fails(|| {
        hostile_index(Weaken {
            no_index_check: true,
            ..Weaken::default()
        })
    });
    println!("weakened index check: loom failed as expected: {msg}");
}
