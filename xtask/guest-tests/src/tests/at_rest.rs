//! "Sealed at rest": the sealed store holds no plaintext once a call that
//! touched it has returned, and pages that held plaintext are wiped.
//!
//! Each test sends messages made of a marker no ciphertext contains by
//! chance, lets the receiver consume (or fail to open) them, then dumps the
//! sender's outgoing store with `SIPC_IOC_TEST_DUMP_STORE` (test-hooks
//! module) and looks for the marker.

use super::kchan::Endpoint;
use crate::check;
use crate::harness::{Needs, Test, TestResult};
use crate::sys::ioctl_struct;
use secure_ipc_ring::abi;
use std::os::fd::AsRawFd;

pub const TESTS: &[Test] = &[
    Test::new(
        "store_holds_no_plaintext_after_recv",
        store_holds_no_plaintext_after_recv,
    )
    .needs(Needs::TestHooksModule),
    Test::new(
        "store_holds_no_plaintext_while_a_group_waits_for_rx_room",
        store_holds_no_plaintext_while_a_group_waits_for_rx_room,
    )
    .needs(Needs::TestHooksModule),
    Test::new(
        "store_holds_no_plaintext_after_a_group_fails_to_open",
        store_holds_no_plaintext_after_a_group_fails_to_open,
    )
    .needs(Needs::TestHooksModule),
    Test::new(
        "store_holds_no_plaintext_after_read_of_a_group",
        store_holds_no_plaintext_after_read_of_a_group,
    )
    .needs(Needs::TestHooksModule),
];

/// 60 bytes: "PLAINTEXT-AT-REST-" + the message number, padded with '#'.
fn marker(i: usize) -> Vec<u8> {
    let mut m = format!("PLAINTEXT-AT-REST-{i:04}-").into_bytes();
    m.resize(60, b'#');
    m
}

/// The raw bytes of `f`'s outgoing sealed store.
fn dump_store(f: &std::fs::File) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; 4 << 20];
    let mut t = abi::TestStore {
        size: std::mem::size_of::<abi::TestStore>() as u32,
        buf: buf.as_mut_ptr() as u64,
        buf_len: buf.len() as u64,
        ..Default::default()
    };
    ioctl_struct(f, abi::SIPC_IOC_TEST_DUMP_STORE, &mut t)
        .map_err(|e| format!("TEST_DUMP_STORE: {e}"))?;
    buf.truncate(t.store_len as usize);
    Ok(buf)
}

/// Fails naming the first plaintext marker found in the store.
fn no_marker_in(store: &[u8], what: &str) -> TestResult {
    let needle = b"PLAINTEXT-AT-REST-";
    if let Some(at) = store.windows(needle.len()).position(|w| w == needle) {
        let end = (at + 24).min(store.len());
        return Err(format!(
            "{what}: plaintext at store offset {at}: {:?}",
            String::from_utf8_lossy(&store[at..end])
        ));
    }
    Ok(())
}

/// Publishes `n` markers from `first` in TX and seals them with one SEND
/// (one group).
fn send_group(owner: &mut Endpoint, first: usize, n: usize) -> TestResult {
    for i in first..first + n {
        check!(owner.tx.push(&marker(i), 0), "TX full at {i}");
    }
    let sent = owner.send().map_err(|e| format!("SEND: {e}"))?;
    check!(sent == n as i32, "SEND sealed {sent} of {n}");
    Ok(())
}

fn store_holds_no_plaintext_after_recv() -> TestResult {
    let (mut owner, mut peer) = Endpoint::pair("rest-recv", 8, 64)?;
    send_group(&mut owner, 0, 6)?;
    let n = peer.recv().map_err(|e| format!("RECV: {e}"))?;
    check!(n == 6, "RECV delivered {n} of 6");
    for i in 0..6 {
        let r = peer.rx.pop().ok_or("RX empty")?;
        check!(r.payload == marker(i), "message {i} is {:?}", r.payload);
    }
    no_marker_in(&dump_store(&owner.file)?, "after RECV delivered everything")
}

fn store_holds_no_plaintext_while_a_group_waits_for_rx_room() -> TestResult {
    let (mut owner, mut peer) = Endpoint::pair("rest-room", 8, 64)?;
    // RX keeps 6 of its 8 slots busy: a group of 4 does not fit.
    send_group(&mut owner, 0, 6)?;
    check!(peer.recv() == Ok(6), "first RECV");
    send_group(&mut owner, 6, 4)?;
    let n = peer.recv().map_err(|e| format!("RECV: {e}"))?;
    check!(n == 0, "RECV delivered {n} of a group that does not fit");
    no_marker_in(
        &dump_store(&owner.file)?,
        "while the group waits for RX room",
    )?;
    // Room again: the whole group arrives, in order, nothing lost.
    for i in 0..6 {
        let r = peer.rx.pop().ok_or("RX empty")?;
        check!(r.payload == marker(i), "message {i} is {:?}", r.payload);
    }
    check!(peer.recv() == Ok(4), "RECV after freeing RX");
    for i in 6..10 {
        let r = peer.rx.pop().ok_or("RX empty")?;
        check!(
            r.payload == marker(i) && r.desc.seq == i as u64,
            "message {i}: seq {} {:?}",
            r.desc.seq,
            r.payload
        );
    }
    no_marker_in(&dump_store(&owner.file)?, "after the group was delivered")
}

fn store_holds_no_plaintext_after_a_group_fails_to_open() -> TestResult {
    let (mut owner, peer) = Endpoint::pair("rest-bad", 8, 64)?;
    send_group(&mut owner, 0, 3)?;
    // Corrupt the tag (after 3 headers and 3 payloads of 60 bytes).
    let mut t = abi::TestSealed {
        size: std::mem::size_of::<abi::TestSealed>() as u32,
        flags: abi::SIPC_TEST_SEALED_FLIP,
        record_len: 3 * 40 + 3 * 60 + 2,
        ..Default::default()
    };
    ioctl_struct(&owner.file, abi::SIPC_IOC_TEST_PEEK_SEALED, &mut t)
        .map_err(|e| format!("TEST_PEEK_SEALED(FLIP): {e}"))?;
    check!(
        peer.recv() == Err(crate::sys::Errno(libc::EBADMSG)),
        "a group with a corrupted tag was not refused"
    );
    check!(peer.stats()?.badmsg == 3, "badmsg not 3");
    no_marker_in(&dump_store(&owner.file)?, "after the group failed to open")
}

fn store_holds_no_plaintext_after_read_of_a_group() -> TestResult {
    let (mut owner, peer) = Endpoint::pair("rest-read", 8, 64)?;
    send_group(&mut owner, 0, 4)?;
    let mut buf = [0u8; 64];
    // SAFETY: reads into a local buffer of the stated length.
    let n = unsafe { libc::read(peer.file.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    check!(n == 60, "read returned {n}");
    check!(buf[..60] == marker(0)[..], "read {:?}", &buf[..60]);
    // The other three are opened (the group opens as a whole) but unread.
    no_marker_in(
        &dump_store(&owner.file)?,
        "after read(2) took one message of a group",
    )?;
    for i in 1..4 {
        // SAFETY: as above.
        let n = unsafe { libc::read(peer.file.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        check!(n == 60 && buf[..60] == marker(i)[..], "read {i}: {n} bytes");
    }
    Ok(())
}
