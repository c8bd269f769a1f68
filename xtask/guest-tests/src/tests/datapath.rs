//! The sealed data path of secure_ipc.ko: channels, mmap rings, SEND/RECV,
//! doorbells, hang-up, read/write, and hostile ring contents.

use super::kchan::{self, Endpoint, Mapping, Rng};
use crate::check;
use crate::harness::{expect_errno, Needs, Test, TestResult};
use crate::sys::{self, ioctl_none, ioctl_struct, Errno};
use secure_ipc_ring::abi;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The tests of this file.
pub const TESTS: &[Test] = &[
    Test::new(
        "attach_reports_the_creators_geometry_and_id",
        attach_reports_the_creators_geometry_and_id,
    ),
    Test::new(
        "attach_to_missing_name_is_enoent",
        attach_to_missing_name_is_enoent,
    ),
    Test::new(
        "create_of_existing_name_is_eexist",
        create_of_existing_name_is_eexist,
    ),
    Test::new("second_attach_is_ebusy", second_attach_is_ebusy),
    Test::new(
        "create_on_an_endpoint_is_ebusy",
        create_on_an_endpoint_is_ebusy,
    ),
    Test::new(
        "create_bad_geometry_is_einval",
        create_bad_geometry_is_einval,
    ),
    Test::new("create_bad_name_is_einval", create_bad_name_is_einval),
    Test::new(
        "create_nonzero_reserved_is_einval",
        create_nonzero_reserved_is_einval,
    ),
    Test::new(
        "send_recv_on_plain_file_is_enotconn",
        send_recv_on_plain_file_is_enotconn,
    ),
    Test::new(
        "owner_send_before_attach_is_enotconn",
        owner_send_before_attach_is_enotconn,
    ),
    Test::new(
        "message_roundtrip_stamps_rx_descriptor",
        message_roundtrip_stamps_rx_descriptor,
    ),
    Test::new(
        "peer_cred_names_the_other_endpoint",
        peer_cred_names_the_other_endpoint,
    ),
    Test::new(
        "wraparound_at_two_entries_keeps_order",
        wraparound_at_two_entries_keeps_order,
    ),
    Test::new(
        "full_store_seals_what_fits_and_loses_nothing",
        full_store_seals_what_fits_and_loses_nothing,
    ),
    Test::new(
        "slow_consumer_backpressure_loses_nothing",
        slow_consumer_backpressure_loses_nothing,
    )
    .timeout(300),
    Test::new(
        "stream_both_directions_random_sizes_across_ten_epochs",
        stream_both_directions_random_sizes_across_ten_epochs,
    )
    .timeout(1800),
    Test::new("blocking_read_wakes_on_send", blocking_read_wakes_on_send),
    Test::new(
        "busy_consumer_gets_zero_doorbells",
        busy_consumer_gets_zero_doorbells,
    ),
    Test::new(
        "sleeping_consumer_gets_its_doorbell",
        sleeping_consumer_gets_its_doorbell,
    ),
    Test::new(
        "producer_waiting_for_room_gets_its_doorbell",
        producer_waiting_for_room_gets_its_doorbell,
    ),
    Test::new(
        "poll_reports_pollin_pollout_pollhup",
        poll_reports_pollin_pollout_pollhup,
    ),
    Test::new(
        "owner_close_lets_peer_drain_then_epipe",
        owner_close_lets_peer_drain_then_epipe,
    ),
    Test::new(
        "sigkilled_peer_is_drained_then_epipe",
        sigkilled_peer_is_drained_then_epipe,
    )
    .timeout(120),
    Test::new(
        "reattach_after_peer_close_starts_a_new_stream",
        reattach_after_peer_close_starts_a_new_stream,
    ),
    Test::new(
        "write_then_mmap_receive_interoperate",
        write_then_mmap_receive_interoperate,
    ),
    Test::new(
        "mmap_send_then_read_interoperate",
        mmap_send_then_read_interoperate,
    ),
    Test::new(
        "read_short_buffer_is_emsgsize_and_keeps_message",
        read_short_buffer_is_emsgsize_and_keeps_message,
    ),
    Test::new(
        "write_larger_than_slot_is_emsgsize",
        write_larger_than_slot_is_emsgsize,
    ),
    Test::new(
        "nonblocking_read_when_empty_is_eagain",
        nonblocking_read_when_empty_is_eagain,
    ),
    Test::new(
        "blocking_write_waits_for_room",
        blocking_write_waits_for_room,
    ),
    Test::new("mmap_wrong_offset_is_einval", mmap_wrong_offset_is_einval),
    Test::new("mmap_wrong_size_is_einval", mmap_wrong_size_is_einval),
    Test::new("mmap_private_is_einval", mmap_private_is_einval),
    Test::new("mmap_exec_is_einval", mmap_exec_is_einval),
    Test::new(
        "mmap_before_create_is_enotconn",
        mmap_before_create_is_enotconn,
    ),
    Test::new(
        "mapping_stays_usable_after_close",
        mapping_stays_usable_after_close,
    ),
    Test::new(
        "tx_prod_beyond_entries_is_eproto",
        tx_prod_beyond_entries_is_eproto,
    ),
    Test::new(
        "tx_descriptor_len_beyond_slot_is_eproto",
        tx_descriptor_len_beyond_slot_is_eproto,
    ),
    Test::new(
        "tx_descriptor_nonzero_flags_is_eproto",
        tx_descriptor_nonzero_flags_is_eproto,
    ),
    Test::new(
        "rx_cons_beyond_prod_is_eproto",
        rx_cons_beyond_prod_is_eproto,
    ),
    Test::new(
        "random_ring_garbage_never_delivers_corrupt_data",
        random_ring_garbage_never_delivers_corrupt_data,
    )
    .timeout(300),
    Test::new(
        "kernel_sealed_record_opens_with_rustcrypto",
        kernel_sealed_record_opens_with_rustcrypto,
    )
    .needs(Needs::TestHooksModule),
    Test::new("reattach_uses_fresh_keys", reattach_uses_fresh_keys).needs(Needs::TestHooksModule),
    Test::new(
        "tampered_record_is_ebadmsg_and_stream_continues",
        tampered_record_is_ebadmsg_and_stream_continues,
    )
    .needs(Needs::TestHooksModule),
    Test::new(
        "kernel_sealed_group_opens_with_rustcrypto",
        kernel_sealed_group_opens_with_rustcrypto,
    )
    .needs(Needs::TestHooksModule),
    Test::new(
        "tampered_group_is_dropped_whole_and_stream_continues",
        tampered_group_is_dropped_whole_and_stream_continues,
    )
    .needs(Needs::TestHooksModule),
    Test::new(
        "group_waits_for_rx_room_for_all_of_it_and_loses_nothing",
        group_waits_for_rx_room_for_all_of_it_and_loses_nothing,
    ),
    Test::new(
        "recv_wait_sleeps_until_send_then_delivers",
        recv_wait_sleeps_until_send_then_delivers,
    ),
    Test::new(
        "recv_wait_wakes_without_the_doorbell",
        recv_wait_wakes_without_the_doorbell,
    ),
    Test::new(
        "recv_wait_timeout_returns_zero",
        recv_wait_timeout_returns_zero,
    ),
    Test::new(
        "recv_wait_zero_timeout_is_plain_recv",
        recv_wait_zero_timeout_is_plain_recv,
    ),
    Test::new(
        "recv_wait_timeout_above_u32_is_einval",
        recv_wait_timeout_above_u32_is_einval,
    ),
    Test::new(
        "recv_wait_sleeper_gets_epipe_when_owner_closes",
        recv_wait_sleeper_gets_epipe_when_owner_closes,
    ),
    Test::new(
        "send_wait_seals_the_whole_batch_once_room_for_all_of_it_appears",
        send_wait_seals_the_whole_batch_once_room_for_all_of_it_appears,
    ),
    Test::new(
        "send_wait_with_room_seals_without_sleeping",
        send_wait_with_room_seals_without_sleeping,
    ),
    Test::new(
        "send_wait_with_nothing_in_tx_returns_at_once_on_a_full_store",
        send_wait_with_nothing_in_tx_returns_at_once_on_a_full_store,
    ),
    Test::new(
        "send_wait_timeout_seals_nothing_into_a_full_store",
        send_wait_timeout_seals_nothing_into_a_full_store,
    ),
    Test::new(
        "send_wait_bad_arguments_and_states",
        send_wait_bad_arguments_and_states,
    ),
    Test::new(
        "send_wait_with_a_garbage_tx_index_is_eproto_without_sleeping",
        send_wait_with_a_garbage_tx_index_is_eproto_without_sleeping,
    ),
    Test::new(
        "send_wait_sleeper_gets_epipe_when_peer_closes",
        send_wait_sleeper_gets_epipe_when_peer_closes,
    ),
];

fn errno_of(r: Result<i32, Errno>) -> i32 {
    match r {
        Err(Errno(e)) => e,
        Ok(_) => 0,
    }
}

fn attach_reports_the_creators_geometry_and_id() -> TestResult {
    let name = kchan::unique_name("geom");
    let f = sys::open_device()?;
    let mut c = kchan::create_arg(&name, 64, 256);
    ioctl_struct(&f, abi::SIPC_IOC_CREATE, &mut c).map_err(|e| format!("CREATE: {e}"))?;
    let g = sys::open_device()?;
    let mut a = kchan::attach_arg(&name);
    ioctl_struct(&g, abi::SIPC_IOC_ATTACH, &mut a).map_err(|e| format!("ATTACH: {e}"))?;
    check!(
        a.entries == 64 && a.slot_size == 256,
        "attach saw {}x{}",
        a.entries,
        a.slot_size
    );
    check!(
        a.channel_id == c.channel_id,
        "ids differ: {:#x} vs {:#x}",
        a.channel_id,
        c.channel_id
    );
    check!(
        c.tx_ring_bytes == a.tx_ring_bytes && c.rx_ring_bytes == a.rx_ring_bytes,
        "ring sizes differ"
    );
    check!(
        c.tx_ring_bytes == 4096 + 4096 + 64 * 256,
        "tx ring bytes {}",
        c.tx_ring_bytes
    );
    check!(
        c.rx_ring_bytes == 4096 + 4096 + 64 * 256,
        "rx ring bytes {}",
        c.rx_ring_bytes
    );
    let mut c2 = kchan::create_arg(&kchan::unique_name("geom2"), 4, 64);
    ioctl_struct(&sys::open_device()?, abi::SIPC_IOC_CREATE, &mut c2)
        .map_err(|e| format!("CREATE: {e}"))?;
    check!(
        c2.tx_ring_bytes == 3 * 4096,
        "4x64 tx ring bytes {} (must be whole pages)",
        c2.tx_ring_bytes
    );
    Ok(())
}

fn attach_to_missing_name_is_enoent() -> TestResult {
    let f = sys::open_device()?;
    let mut a = kchan::attach_arg(&kchan::unique_name("nobody"));
    expect_errno(
        ioctl_struct(&f, abi::SIPC_IOC_ATTACH, &mut a),
        libc::ENOENT,
        "ATTACH",
    )
}

fn create_of_existing_name_is_eexist() -> TestResult {
    let name = kchan::unique_name("dup");
    let _owner = Endpoint::create(&name, 4, 64)?;
    let f = sys::open_device()?;
    let mut c = kchan::create_arg(&name, 4, 64);
    expect_errno(
        ioctl_struct(&f, abi::SIPC_IOC_CREATE, &mut c),
        libc::EEXIST,
        "second CREATE",
    )
}

fn second_attach_is_ebusy() -> TestResult {
    let name = kchan::unique_name("busy");
    let _owner = Endpoint::create(&name, 4, 64)?;
    let _peer = Endpoint::attach(&name)?;
    let f = sys::open_device()?;
    let mut a = kchan::attach_arg(&name);
    expect_errno(
        ioctl_struct(&f, abi::SIPC_IOC_ATTACH, &mut a),
        libc::EBUSY,
        "second ATTACH",
    )
}

fn create_on_an_endpoint_is_ebusy() -> TestResult {
    let owner = Endpoint::create(&kchan::unique_name("ep1"), 4, 64)?;
    let mut c = kchan::create_arg(&kchan::unique_name("ep2"), 4, 64);
    expect_errno(
        ioctl_struct(&owner.file, abi::SIPC_IOC_CREATE, &mut c),
        libc::EBUSY,
        "CREATE twice",
    )?;
    let mut a = kchan::attach_arg(&kchan::unique_name("ep1"));
    expect_errno(
        ioctl_struct(&owner.file, abi::SIPC_IOC_ATTACH, &mut a),
        libc::EBUSY,
        "ATTACH on owner",
    )
}

fn create_bad_geometry_is_einval() -> TestResult {
    let f = sys::open_device()?;
    for (entries, slot) in [
        (0, 64),
        (3, 64),
        (1, 64),
        (65536, 64),
        (4, 0),
        (4, 32),
        (4, 100),
        (4, 131072),
        (u32::MAX, u32::MAX),
    ] {
        let mut c = kchan::create_arg(&kchan::unique_name("geo"), entries, slot);
        expect_errno(
            ioctl_struct(&f, abi::SIPC_IOC_CREATE, &mut c),
            libc::EINVAL,
            &format!("CREATE {entries}x{slot}"),
        )?;
    }
    Ok(())
}

fn create_bad_name_is_einval() -> TestResult {
    let f = sys::open_device()?;
    let mut c = kchan::create_arg("", 4, 64);
    expect_errno(
        ioctl_struct(&f, abi::SIPC_IOC_CREATE, &mut c),
        libc::EINVAL,
        "empty name",
    )?;
    let mut c = kchan::create_arg("bad/name", 4, 64);
    expect_errno(
        ioctl_struct(&f, abi::SIPC_IOC_CREATE, &mut c),
        libc::EINVAL,
        "slash in name",
    )?;
    let mut c = kchan::create_arg("x", 4, 64);
    c.name = [b'a'; abi::SIPC_NAME_MAX];
    expect_errno(
        ioctl_struct(&f, abi::SIPC_IOC_CREATE, &mut c),
        libc::EINVAL,
        "unterminated name",
    )
}

fn create_nonzero_reserved_is_einval() -> TestResult {
    let f = sys::open_device()?;
    let mut c = kchan::create_arg(&kchan::unique_name("rsv"), 4, 64);
    c.reserved[3] = 1;
    expect_errno(
        ioctl_struct(&f, abi::SIPC_IOC_CREATE, &mut c),
        libc::EINVAL,
        "reserved",
    )?;
    let mut c = kchan::create_arg(&kchan::unique_name("rsv"), 4, 64);
    c.flags = 1 << 9;
    expect_errno(
        ioctl_struct(&f, abi::SIPC_IOC_CREATE, &mut c),
        libc::EINVAL,
        "unknown flag",
    )
}

fn send_recv_on_plain_file_is_enotconn() -> TestResult {
    let f = sys::open_device()?;
    expect_errno(ioctl_none(&f, abi::SIPC_IOC_SEND), libc::ENOTCONN, "SEND")?;
    expect_errno(ioctl_none(&f, abi::SIPC_IOC_RECV), libc::ENOTCONN, "RECV")?;
    expect_errno(kchan::write_msg(&f, b"x"), libc::ENOTCONN, "write")
}

fn owner_send_before_attach_is_enotconn() -> TestResult {
    let mut owner = Endpoint::create(&kchan::unique_name("early"), 4, 64)?;
    check!(owner.tx.push(b"hello", 1), "TX full on a fresh ring");
    expect_errno(owner.send(), libc::ENOTCONN, "SEND")?;
    expect_errno(owner.recv(), libc::ENOTCONN, "RECV")
}

fn message_roundtrip_stamps_rx_descriptor() -> TestResult {
    let (mut owner, mut peer) = Endpoint::pair("stamp", 8, 128)?;
    let before = now_ns();
    owner.tx.push(b"first", 7);
    owner.tx.push(b"second message", 9);
    let n = owner.send().map_err(|e| format!("SEND: {e}"))?;
    check!(n == 2, "SEND sealed {n}, want 2");
    let n = peer.recv().map_err(|e| format!("RECV: {e}"))?;
    check!(n == 2, "RECV delivered {n}, want 2");
    let a = peer.rx.pop().ok_or("no first message")?;
    let b = peer.rx.pop().ok_or("no second message")?;
    check!(
        a.payload == b"first" && b.payload == b"second message",
        "payloads {:?} {:?}",
        a.payload,
        b.payload
    );
    check!(
        a.desc.seq == 0 && b.desc.seq == 1,
        "seqs {} {}",
        a.desc.seq,
        b.desc.seq
    );
    check!(
        a.desc.type_ == 7 && b.desc.type_ == 9,
        "types {} {}",
        a.desc.type_,
        b.desc.type_
    );
    check!(
        a.desc.sender_pid == std::process::id(),
        "pid {}",
        a.desc.sender_pid
    );
    // SAFETY: plain getters.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    check!(
        a.desc.sender_uid == uid && a.desc.sender_gid == gid,
        "uid/gid {}/{}",
        a.desc.sender_uid,
        a.desc.sender_gid
    );
    check!(
        a.desc.timestamp_ns >= before && a.desc.timestamp_ns <= now_ns(),
        "timestamp {}",
        a.desc.timestamp_ns
    );
    check!(a.desc.epoch == 0 && a.desc.flags == 0, "epoch/flags");
    let s = peer.stats()?;
    check!(
        s.opened_msgs == 2 && s.opened_bytes == 19,
        "peer stats {s:?}"
    );
    let s = owner.stats()?;
    check!(
        s.sealed_msgs == 2 && s.sealed_bytes == 19,
        "owner stats {s:?}"
    );
    Ok(())
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn peer_cred_names_the_other_endpoint() -> TestResult {
    let (owner, peer) = Endpoint::pair("cred", 4, 64)?;
    for (f, what) in [(&owner.file, "owner"), (&peer.file, "peer")] {
        let mut c = abi::PeerCred {
            size: std::mem::size_of::<abi::PeerCred>() as u32,
            ..Default::default()
        };
        ioctl_struct(f, abi::SIPC_IOC_PEER_CRED, &mut c)
            .map_err(|e| format!("PEER_CRED {what}: {e}"))?;
        check!(c.pid == std::process::id(), "{what}: pid {}", c.pid);
        check!(
            c.uid == 0 && c.gid == 0,
            "{what}: uid {} gid {}",
            c.uid,
            c.gid
        );
        let ino = std::fs::metadata("/proc/self/ns/pid")
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap_or(0);
        check!(
            c.pidns_ino == ino,
            "{what}: pidns {} vs {}",
            c.pidns_ino,
            ino
        );
    }
    drop(peer);
    let mut c = abi::PeerCred {
        size: std::mem::size_of::<abi::PeerCred>() as u32,
        ..Default::default()
    };
    expect_errno(
        ioctl_struct(&owner.file, abi::SIPC_IOC_PEER_CRED, &mut c),
        libc::ENOTCONN,
        "after peer close",
    )
}

/// Streams `count` messages owner -> peer with the mmap path in one thread,
/// checking every payload and sequence number.
fn stream_check(
    owner: &mut Endpoint,
    peer: &mut Endpoint,
    count: u64,
    max: usize,
    seed: u64,
) -> TestResult {
    let (mut sent, mut got) = (0u64, 0u64);
    while got < count {
        while sent < count
            && owner
                .tx
                .push(&kchan::payload(seed, sent, max), (sent & 0xffff) as u16)
        {
            sent += 1;
        }
        owner.send().map_err(|e| format!("SEND at {sent}: {e}"))?;
        peer.recv().map_err(|e| format!("RECV at {got}: {e}"))?;
        while let Some(r) = peer.rx.pop() {
            check!(
                r.desc.seq == got,
                "seq {} where {} expected",
                r.desc.seq,
                got
            );
            check!(
                r.payload == kchan::payload(seed, got, max),
                "payload of message {got} differs"
            );
            check!(
                r.desc.type_ == (got & 0xffff) as u16,
                "type of message {got}"
            );
            got += 1;
        }
    }
    Ok(())
}

fn wraparound_at_two_entries_keeps_order() -> TestResult {
    let (mut owner, mut peer) = Endpoint::pair("wrap", 2, 64)?;
    stream_check(&mut owner, &mut peer, 10_000, 64, 1)?;
    let s = peer.stats()?;
    check!(s.opened_msgs == 10_000, "opened {}", s.opened_msgs);
    Ok(())
}

fn full_store_seals_what_fits_and_loses_nothing() -> TestResult {
    let (mut owner, mut peer) = Endpoint::pair("full", 4, 64)?;
    for i in 0..4u8 {
        owner.tx.push(&[i; 10], 0);
    }
    check!(owner.send() == Ok(4), "first SEND");
    for i in 4..8u8 {
        owner.tx.push(&[i; 10], 0);
    }
    let n = owner
        .send()
        .map_err(|e| format!("SEND into full store: {e}"))?;
    check!(n == 0, "sealed {n} into a full store");
    let s = owner.stats()?;
    check!(
        s.store_full >= 1 && s.tx_fill == 4 && s.store_out_fill == 4,
        "stats {s:?}"
    );
    let (sp, sc, _) = owner.tx.status();
    check!(sp == 4 && sc == 0, "status line {sp}/{sc}");
    for i in 0..8u8 {
        if i == 4 {
            check!(owner.send() == Ok(4), "SEND after room");
        }
        let r = peer.recv_one()?;
        check!(
            r.payload == [i; 10] && r.desc.seq == u64::from(i),
            "message {i}: {:?}",
            r.desc
        );
    }
    Ok(())
}

fn slow_consumer_backpressure_loses_nothing() -> TestResult {
    let (owner, mut peer) = Endpoint::pair("slow", 16, 256)?;
    let total = 5_000u64;
    let producer = std::thread::spawn(move || -> TestResult {
        let mut owner = owner;
        let mut sent = 0;
        while sent < total {
            while sent < total && owner.tx.push(&kchan::payload(2, sent, 256), 0) {
                sent += 1;
            }
            owner.send().map_err(|e| format!("SEND: {e}"))?;
            std::thread::yield_now();
        }
        // Drain what is still in TX.
        while owner.tx.room() != owner.tx.g.entries {
            owner.send().map_err(|e| format!("SEND: {e}"))?;
            std::thread::yield_now();
        }
        let s = owner.stats()?;
        check!(
            s.store_full > 0,
            "the producer never hit a full store: {s:?}"
        );
        Ok(())
    });
    for got in 0..total {
        if got % 64 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
        let r = peer.recv_one()?;
        check!(
            r.desc.seq == got && r.payload == kchan::payload(2, got, 256),
            "message {got} wrong"
        );
    }
    producer
        .join()
        .map_err(|_| "producer panicked".to_string())?
}

fn stream_both_directions_random_sizes_across_ten_epochs() -> TestResult {
    // 100,000 each way by default: twelve epochs, every ring wrap and
    // store-full path, within the suite's time budget on every kernel of
    // the matrix. The sanitizer kernels (release "-sipc-<checker>") run each
    // access several times slower, so they stream 24,000, still twelve
    // epochs. `SIPC_GUEST_STREAM_COUNT=1000000 cargo xtask vm-test --filter
    // stream` is the long run (about six minutes on 6.12 under TCG).
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let count: u64 = match std::env::var("SIPC_GUEST_STREAM_COUNT") {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("SIPC_GUEST_STREAM_COUNT={v}: not a count"))?,
        Err(_) if release.contains("-sipc-") => 24_000,
        Err(_) => 100_000,
    };
    check!(
        count >= 1200,
        "SIPC_GUEST_STREAM_COUNT={count}: at least 1200"
    );
    // The channel rekeys every `per_epoch` records in each direction, so
    // both streams cross twelve epoch boundaries (epochs 0..=12) while they
    // run; message k of a direction must arrive in epoch k / per_epoch.
    let per_epoch = count / 12;
    let last_epoch = (count - 1) / per_epoch;
    check!(last_epoch >= 10, "only {last_epoch} rekeys planned");
    let name = kchan::unique_name("stream");
    let f = sys::open_device()?;
    let mut c = kchan::create_arg(&name, 256, 1024);
    c.rekey_records = per_epoch;
    ioctl_struct(&f, abi::SIPC_IOC_CREATE, &mut c).map_err(|e| format!("CREATE: {e}"))?;
    let owner = kchan::endpoint_from(f, &c)?;
    let peer = Endpoint::attach(&name)?;
    // Each endpoint is split: its TX ring goes to a sender thread, its RX
    // ring to a receiver thread (SEND and RECV are independent in the
    // kernel: tx_lock vs rx_lock).
    let Endpoint {
        file: of,
        tx: otx,
        rx: orx,
        ..
    } = owner;
    let Endpoint {
        file: pf,
        tx: ptx,
        rx: prx,
        ..
    } = peer;
    let sender = |file: std::sync::Arc<std::fs::File>, mut tx: kchan::Tx, seed: u64| {
        std::thread::spawn(move || -> TestResult {
            let mut sent = 0u64;
            while sent < count {
                while sent < count && tx.push(&kchan::payload(seed, sent, 1024), 0) {
                    sent += 1;
                }
                let n = ioctl_none(&file, abi::SIPC_IOC_SEND)
                    .map_err(|e| format!("SEND at {sent}: {e}"))?;
                if n == 0 && tx.room() == 0 {
                    // Sealed store full: sleep until the receiver frees room.
                    kchan::poll1(&file, libc::POLLOUT, 100);
                }
            }
            while tx.room() != tx.g.entries {
                if ioctl_none(&file, abi::SIPC_IOC_SEND).map_err(|e| format!("SEND: {e}"))? == 0 {
                    kchan::poll1(&file, libc::POLLOUT, 100);
                }
            }
            Ok(())
        })
    };
    let receiver = |file: std::sync::Arc<std::fs::File>, mut rx: kchan::Rx, seed: u64| {
        std::thread::spawn(move || -> TestResult {
            let mut got = 0u64;
            let deadline = Instant::now() + Duration::from_secs(1700);
            while got < count {
                let n = ioctl_none(&file, abi::SIPC_IOC_RECV)
                    .map_err(|e| format!("RECV at {got}: {e}"))?;
                while let Some(r) = rx.pop() {
                    check!(
                        r.desc.seq == got,
                        "seq {} where {} expected",
                        r.desc.seq,
                        got
                    );
                    check!(
                        r.payload == kchan::payload(seed, got, 1024),
                        "payload {got} differs"
                    );
                    check!(
                        u64::from(r.desc.epoch) == got / per_epoch,
                        "message {got} arrived in epoch {} instead of {}",
                        r.desc.epoch,
                        got / per_epoch
                    );
                    got += 1;
                }
                if n == 0 {
                    check!(Instant::now() < deadline, "stalled at {got}");
                    // Nothing sealed yet: sleep until the sender seals.
                    kchan::poll1(&file, libc::POLLIN, 100);
                }
            }
            Ok(())
        })
    };
    let t0 = Instant::now();
    let hs = [
        sender(of.clone(), otx, 11),
        sender(pf.clone(), ptx, 22),
        receiver(pf.clone(), prx, 11),
        receiver(of.clone(), orx, 22),
    ];
    for h in hs {
        h.join()
            .map_err(|_| "a stream thread panicked".to_string())??;
    }
    for (who, file) in [("owner", &of), ("peer", &pf)] {
        let s = kchan::stats(file)?;
        check!(
            s.sealed_msgs == count && s.opened_msgs == count && s.badmsg == 0,
            "{who} stats {s:?}"
        );
        check!(
            u64::from(s.tx_epoch) == last_epoch
                && u64::from(s.rx_epoch) == last_epoch
                && s.rekeys == 2 * last_epoch,
            "{who}: tx epoch {}, rx epoch {}, rekeys {} (want epoch {last_epoch} both ways)",
            s.tx_epoch,
            s.rx_epoch,
            s.rekeys
        );
    }
    println!(
        "{count} messages each way across epochs 0..={last_epoch} in {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

fn blocking_read_wakes_on_send() -> TestResult {
    let (mut owner, peer) = Endpoint::pair("block", 8, 64)?;
    let pfile = peer.file.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let t = Instant::now();
        let r = kchan::read_msg(&pfile, &mut buf);
        (r, buf, t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    check!(
        !reader.is_finished(),
        "read returned before anything was sent"
    );
    owner.send_one(b"wake up", 3)?;
    let (r, buf, waited) = reader.join().map_err(|_| "reader panicked")?;
    let n = r.map_err(|e| format!("read: {e}"))?;
    check!(&buf[..n] == b"wake up", "read {:?}", &buf[..n]);
    check!(
        waited >= Duration::from_millis(250),
        "read did not block ({waited:?})"
    );
    drop(peer);
    Ok(())
}

fn busy_consumer_gets_zero_doorbells() -> TestResult {
    let (mut owner, mut peer) = Endpoint::pair("busy", 32, 64)?;
    let efd = kchan::doorbell(&peer.file)?;
    // The consumer never sets NEED_WAKEUP: it is always busy polling.
    stream_check(&mut owner, &mut peer, 2_000, 64, 3)?;
    let s = peer.stats()?;
    check!(
        s.doorbells_signalled == 0,
        "busy consumer got {} doorbells",
        s.doorbells_signalled
    );
    check!(
        s.doorbells_suppressed > 0,
        "no suppressed doorbell counted: {s:?}"
    );
    check!(kchan::eventfd_take(&efd) == 0, "the eventfd was signalled");
    Ok(())
}

fn sleeping_consumer_gets_its_doorbell() -> TestResult {
    let (mut owner, peer) = Endpoint::pair("sleepy", 8, 64)?;
    let efd = kchan::doorbell(&peer.file)?;
    // [O5]: flag, full barrier, re-check, then sleep.
    peer.rx
        .cons_flags()
        .fetch_or(abi::SIPC_FLAG_NEED_WAKEUP, Ordering::Relaxed);
    kchan::full_barrier();
    check!(
        !peer.rx.records_waiting(),
        "records before anything was sent"
    );
    owner.send_one(b"ding", 0)?;
    check!(
        kchan::poll1(&efd, libc::POLLIN, 2000) & libc::POLLIN != 0,
        "doorbell not signalled"
    );
    check!(kchan::eventfd_take(&efd) >= 1, "eventfd counter 0");
    let s = peer.stats()?;
    check!(s.doorbells_signalled == 1, "stats {s:?}");
    Ok(())
}

fn producer_waiting_for_room_gets_its_doorbell() -> TestResult {
    let (mut owner, mut peer) = Endpoint::pair("room", 2, 64)?;
    let efd = kchan::doorbell(&owner.file)?;
    owner.send_one(b"a", 0)?;
    owner.send_one(b"b", 0)?;
    let (sp, sc, _) = owner.tx.status();
    check!(sp.wrapping_sub(sc) == 2, "store not full: {sp}/{sc}");
    // [O7]: the producer waits for store room.
    owner
        .tx
        .prod_flags()
        .fetch_or(abi::SIPC_FLAG_NEED_WAKEUP, Ordering::Relaxed);
    kchan::full_barrier();
    let _ = kchan::eventfd_take(&efd);
    peer.recv_one()?;
    check!(
        kchan::poll1(&efd, libc::POLLIN, 2000) & libc::POLLIN != 0,
        "room doorbell not signalled"
    );
    Ok(())
}

fn poll_reports_pollin_pollout_pollhup() -> TestResult {
    let (mut owner, peer) = Endpoint::pair("poll", 2, 64)?;
    let ev = libc::POLLIN | libc::POLLOUT;
    let r = kchan::poll1(&peer.file, ev, 0);
    check!(
        r & libc::POLLOUT != 0 && r & libc::POLLIN == 0,
        "idle peer: {r:#x}"
    );
    owner.send_one(b"x", 0)?;
    let r = kchan::poll1(&peer.file, ev, 0);
    check!(r & libc::POLLIN != 0, "peer with a record waiting: {r:#x}");
    owner.send_one(b"y", 0)?;
    let r = kchan::poll1(&owner.file, libc::POLLOUT, 0);
    check!(r & libc::POLLOUT == 0, "owner with a full store: {r:#x}");
    let pfile = peer.file.clone();
    drop(peer);
    drop(pfile);
    let r = kchan::poll1(&owner.file, ev, 1000);
    check!(r & libc::POLLHUP != 0, "owner after peer close: {r:#x}");
    Ok(())
}

fn owner_close_lets_peer_drain_then_epipe() -> TestResult {
    let (mut owner, mut peer) = Endpoint::pair("drain", 8, 64)?;
    for i in 0..5u8 {
        owner.send_one(&[i; 3], 0)?;
    }
    drop(owner);
    let n = peer.recv().map_err(|e| format!("RECV: {e}"))?;
    check!(n == 5, "drained {n}");
    for i in 0..5u8 {
        let r = peer.rx.pop().ok_or("missing")?;
        check!(r.payload == [i; 3], "message {i}");
    }
    expect_errno(peer.recv(), libc::EPIPE, "RECV after drain")?;
    check!(peer.tx.push(b"z", 0), "TX full");
    expect_errno(peer.send(), libc::EPIPE, "SEND to a closed owner")?;
    check!(
        peer.rx.status() & abi::SIPC_STATUS_PEER_CLOSED != 0,
        "status {:#x}",
        peer.rx.status()
    );
    let mut buf = [0u8; 64];
    expect_errno(kchan::read_msg(&peer.file, &mut buf), libc::EPIPE, "read")
}

fn sigkilled_peer_is_drained_then_epipe() -> TestResult {
    let name = kchan::unique_name("kill");
    let mut owner = Endpoint::create(&name, 64, 128)?;
    // SAFETY: this test process is single-threaded here; the child only
    // runs the streaming loop below and never returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err("fork failed".into());
    }
    if pid == 0 {
        let code = match Endpoint::attach(&name) {
            Ok(mut peer) => {
                let mut seq = 0u64;
                loop {
                    if peer.tx.push(&kchan::payload(9, seq, 128), 0) {
                        seq += 1;
                    }
                    if peer.send().is_err() {
                        break 3;
                    }
                }
            }
            Err(_) => 2,
        };
        // SAFETY: leave the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut got = 0u64;
    let t = Instant::now();
    while got < 500 && t.elapsed() < Duration::from_secs(60) {
        match owner.recv() {
            Ok(_) | Err(Errno(libc::ENOTCONN)) => {}
            Err(e) => return Err(format!("RECV before kill: {e}")),
        }
        while let Some(r) = owner.rx.pop() {
            check!(
                r.desc.seq == got && r.payload == kchan::payload(9, got, 128),
                "message {got}"
            );
            got += 1;
        }
    }
    // SAFETY: plain syscalls on our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        let mut st = 0;
        libc::waitpid(pid, &mut st, 0);
    }
    loop {
        match owner.recv() {
            Ok(_) => {}
            Err(Errno(libc::EPIPE)) => break,
            Err(e) => return Err(format!("RECV after kill at {got}: {e}")),
        }
        while let Some(r) = owner.rx.pop() {
            check!(
                r.desc.seq == got && r.payload == kchan::payload(9, got, 128),
                "drained message {got}"
            );
            got += 1;
        }
    }
    while let Some(r) = owner.rx.pop() {
        check!(r.desc.seq == got, "late message {got}");
        got += 1;
    }
    check!(got >= 500, "only {got} messages before the kill");
    println!("{got} messages, then EPIPE");
    Ok(())
}

fn reattach_after_peer_close_starts_a_new_stream() -> TestResult {
    let name = kchan::unique_name("again");
    let mut owner = Endpoint::create(&name, 4, 64)?;
    let mut peer = Endpoint::attach(&name)?;
    owner.send_one(b"one", 0)?;
    check!(peer.recv_one()?.payload == b"one", "first session");
    drop(peer);
    expect_errno(owner.recv(), libc::EPIPE, "owner RECV after peer close")?;
    let mut peer2 = Endpoint::attach(&name)?;
    check!(
        owner.tx.status().2 & abi::SIPC_STATUS_PEER_ATTACHED != 0,
        "status after re-attach"
    );
    owner.send_one(b"two", 0)?;
    let r = peer2.recv_one()?;
    check!(
        r.payload == b"two" && r.desc.seq == 0,
        "second session: {:?}",
        r.desc
    );
    peer2.send_one(b"back", 0)?;
    check!(
        owner.recv_one()?.payload == b"back",
        "owner receive in second session"
    );
    Ok(())
}

fn write_then_mmap_receive_interoperate() -> TestResult {
    let (owner, mut peer) = Endpoint::pair("wr", 8, 128)?;
    for i in 0..20u64 {
        let p = kchan::payload(4, i, 128);
        let n = kchan::write_msg(&owner.file, &p).map_err(|e| format!("write {i}: {e}"))?;
        check!(n == p.len(), "short write");
        let r = peer.recv_one()?;
        check!(r.payload == p && r.desc.seq == i, "message {i}");
    }
    Ok(())
}

fn mmap_send_then_read_interoperate() -> TestResult {
    let (mut owner, peer) = Endpoint::pair("rd", 8, 128)?;
    let mut buf = [0u8; 128];
    for i in 0..20u64 {
        let p = kchan::payload(5, i, 128);
        owner.send_one(&p, 0)?;
        let n = kchan::read_msg(&peer.file, &mut buf).map_err(|e| format!("read {i}: {e}"))?;
        check!(buf[..n] == p[..], "message {i}");
    }
    // Mixed: mmap, write, mmap in one sequence space.
    owner.send_one(b"a", 0)?;
    kchan::write_msg(&owner.file, b"b").map_err(|e| format!("write: {e}"))?;
    owner.send_one(b"c", 0)?;
    for want in [b"a", b"b", b"c"] {
        let n = kchan::read_msg(&peer.file, &mut buf).map_err(|e| format!("read: {e}"))?;
        check!(&buf[..n] == want, "got {:?}", &buf[..n]);
    }
    Ok(())
}

fn read_short_buffer_is_emsgsize_and_keeps_message() -> TestResult {
    let (owner, peer) = Endpoint::pair("short", 4, 128)?;
    kchan::write_msg(&owner.file, &[7u8; 100]).map_err(|e| format!("write: {e}"))?;
    let mut small = [0u8; 99];
    expect_errno(
        kchan::read_msg(&peer.file, &mut small),
        libc::EMSGSIZE,
        "read 99 of 100",
    )?;
    let mut big = [0u8; 128];
    let n = kchan::read_msg(&peer.file, &mut big).map_err(|e| format!("read: {e}"))?;
    check!(
        n == 100 && big[..100] == [7u8; 100],
        "message lost or changed ({n})"
    );
    Ok(())
}

fn write_larger_than_slot_is_emsgsize() -> TestResult {
    let (owner, _peer) = Endpoint::pair("big", 4, 64)?;
    expect_errno(
        kchan::write_msg(&owner.file, &[0u8; 65]),
        libc::EMSGSIZE,
        "write 65 into 64",
    )
}

fn nonblocking_read_when_empty_is_eagain() -> TestResult {
    let (_owner, peer) = Endpoint::pair("nb", 4, 64)?;
    kchan::set_nonblock(&peer.file);
    let mut buf = [0u8; 64];
    expect_errno(kchan::read_msg(&peer.file, &mut buf), libc::EAGAIN, "read")
}

fn blocking_write_waits_for_room() -> TestResult {
    let (owner, mut peer) = Endpoint::pair("bw", 2, 64)?;
    kchan::write_msg(&owner.file, b"1").map_err(|e| format!("write: {e}"))?;
    kchan::write_msg(&owner.file, b"2").map_err(|e| format!("write: {e}"))?;
    let ofile = owner.file.clone();
    let writer = std::thread::spawn(move || kchan::write_msg(&ofile, b"3"));
    std::thread::sleep(Duration::from_millis(300));
    check!(
        !writer.is_finished(),
        "write into a full store did not block"
    );
    check!(peer.recv_one()?.payload == b"1", "first");
    let r = writer.join().map_err(|_| "writer panicked")?;
    check!(r == Ok(1), "blocked write: {r:?}");
    check!(peer.recv_one()?.payload == b"2", "second");
    check!(peer.recv_one()?.payload == b"3", "third");
    kchan::set_nonblock(&owner.file);
    kchan::write_msg(&owner.file, b"4").map_err(|e| format!("write: {e}"))?;
    kchan::write_msg(&owner.file, b"5").map_err(|e| format!("write: {e}"))?;
    expect_errno(
        kchan::write_msg(&owner.file, b"6"),
        libc::EAGAIN,
        "non-blocking write into a full store",
    )
}

/// The TX ring length of a 4 x 64 channel: header, one descriptor page,
/// slots, rounded up to whole pages.
fn ring_len(_f: &std::fs::File) -> usize {
    4096 + 4096 + 4096
}

fn mmap_wrong_offset_is_einval() -> TestResult {
    let owner = Endpoint::create(&kchan::unique_name("off"), 4, 64)?;
    let len = ring_len(&owner.file);
    for off in [4096u64, 0x2000_0000, 0x1000_1000] {
        expect_errno(
            Mapping::map(&owner.file, off, len).map(|_| 0),
            libc::EINVAL,
            &format!("offset {off:#x}"),
        )?;
    }
    Ok(())
}

fn mmap_wrong_size_is_einval() -> TestResult {
    let owner = Endpoint::create(&kchan::unique_name("size"), 4, 64)?;
    let len = ring_len(&owner.file);
    for l in [4096, len + 4096, 1 << 20] {
        expect_errno(
            Mapping::map(&owner.file, 0, l).map(|_| 0),
            libc::EINVAL,
            &format!("length {l}"),
        )?;
    }
    Ok(())
}

fn mmap_private_is_einval() -> TestResult {
    let owner = Endpoint::create(&kchan::unique_name("priv"), 4, 64)?;
    let len = ring_len(&owner.file);
    let r = Mapping::map_with(
        &owner.file,
        0,
        len,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE,
    );
    expect_errno(r.map(|_| 0), libc::EINVAL, "MAP_PRIVATE")
}

fn mmap_exec_is_einval() -> TestResult {
    let owner = Endpoint::create(&kchan::unique_name("exec"), 4, 64)?;
    let len = ring_len(&owner.file);
    let r = Mapping::map_with(
        &owner.file,
        0,
        len,
        libc::PROT_READ | libc::PROT_EXEC,
        libc::MAP_SHARED,
    );
    expect_errno(r.map(|_| 0), libc::EINVAL, "PROT_EXEC")
}

fn mmap_before_create_is_enotconn() -> TestResult {
    let f = sys::open_device()?;
    expect_errno(
        Mapping::map(&f, 0, 8192).map(|_| 0),
        libc::ENOTCONN,
        "mmap of a plain file",
    )
}

fn mapping_stays_usable_after_close() -> TestResult {
    let (owner, peer) = Endpoint::pair("keep", 4, 64)?;
    let Endpoint { file, tx, rx, .. } = owner;
    drop(file);
    drop(peer);
    // The pages are still mapped; reading and writing them must work.
    tx.m.write(tx.g.slots_offset, b"still here");
    let mut b = [0u8; 10];
    tx.m.read(tx.g.slots_offset, &mut b);
    check!(&b == b"still here", "mapping content after close");
    let mut h = [0u8; 4];
    rx.m.read(0, &mut h);
    check!(
        u32::from_ne_bytes(h) == abi::SIPC_RING_MAGIC,
        "RX magic after close"
    );
    Ok(())
}

fn tx_prod_beyond_entries_is_eproto() -> TestResult {
    let (mut owner, mut peer) = Endpoint::pair("badprod", 4, 64)?;
    owner.tx.set_prod_raw(1000);
    expect_errno(owner.send(), libc::EPROTO, "SEND")?;
    check!(
        owner.tx.status().2 & abi::SIPC_STATUS_ERROR != 0,
        "status lacks ERROR"
    );
    check!(owner.stats()?.eproto == 1, "eproto counter");
    check!(peer.recv() == Ok(0), "something was delivered");
    // Repairing the index makes the ring usable again.
    owner.tx.set_prod_raw(0);
    owner.send_one(b"ok", 0)?;
    check!(peer.recv_one()?.payload == b"ok", "after repair");
    Ok(())
}

fn tx_descriptor_len_beyond_slot_is_eproto() -> TestResult {
    let (mut owner, mut peer) = Endpoint::pair("badlen", 4, 64)?;
    owner.tx.push(b"good", 0);
    owner.tx.push_raw_desc(&abi::TxDesc {
        len: 65,
        ..Default::default()
    });
    check!(
        owner.send() == Ok(1),
        "the good message before the bad one is sealed"
    );
    expect_errno(owner.send(), libc::EPROTO, "SEND of len 65")?;
    expect_errno(owner.send(), libc::EPROTO, "SEND stays EPROTO")?;
    check!(peer.recv_one()?.payload == b"good", "good message");
    check!(peer.recv() == Ok(0), "the bad descriptor was delivered");
    Ok(())
}

fn tx_descriptor_nonzero_flags_is_eproto() -> TestResult {
    let (mut owner, _peer) = Endpoint::pair("badflags", 4, 64)?;
    owner.tx.push_raw_desc(&abi::TxDesc {
        len: 1,
        flags: 1,
        ..Default::default()
    });
    expect_errno(owner.send(), libc::EPROTO, "flags")?;
    let (mut owner, _peer) = Endpoint::pair("badrsv", 4, 64)?;
    owner.tx.push_raw_desc(&abi::TxDesc {
        len: 1,
        reserved: 1 << 40,
        ..Default::default()
    });
    expect_errno(owner.send(), libc::EPROTO, "reserved")
}

fn rx_cons_beyond_prod_is_eproto() -> TestResult {
    let (mut owner, mut peer) = Endpoint::pair("badcons", 4, 64)?;
    owner.send_one(b"x", 0)?;
    peer.rx.set_cons_raw(77);
    expect_errno(peer.recv(), libc::EPROTO, "RECV")?;
    peer.rx.set_cons_raw(0);
    check!(peer.recv_one()?.payload == b"x", "after repair");
    Ok(())
}

fn random_ring_garbage_never_delivers_corrupt_data() -> TestResult {
    let seed = 0x5eed_u64;
    println!("seed {seed:#x}");
    let mut rng = Rng::new(seed);
    let (mut owner, mut peer) = Endpoint::pair("garbage", 8, 64)?;
    let (mut sent, mut got) = (0u64, 0u64);
    for round in 0..20_000u32 {
        // A correct stream owner -> peer...
        if owner.tx.push(&kchan::payload(6, sent, 64), 0) {
            sent += 1;
        }
        let _ = owner.send();
        let _ = peer.recv();
        while let Some(r) = peer.rx.pop() {
            check!(
                r.desc.seq == got && r.payload == kchan::payload(6, got, 64),
                "round {round}: corrupt message {got}"
            );
            got += 1;
        }
        // ...while the peer scribbles over its own TX ring and RX header.
        let off = rng.below(peer.tx.m.len() as u64 / 4) as usize * 4;
        peer.tx
            .m
            .word(off)
            .store(rng.next() as u32, Ordering::Relaxed);
        let off = rng.below(1024) as usize * 4;
        if off != 256 {
            peer.rx
                .m
                .word(off)
                .store(rng.next() as u32, Ordering::Relaxed);
        }
        let e = errno_of(peer.send());
        check!(
            e == 0 || e == libc::EPROTO,
            "round {round}: peer SEND gave {}",
            sys::errno_name(e)
        );
    }
    check!(got > 1000, "only {got} messages got through");
    Ok(())
}

fn test_keys(f: &std::fs::File) -> Result<abi::TestKeys, String> {
    let mut k = abi::TestKeys {
        size: std::mem::size_of::<abi::TestKeys>() as u32,
        ..Default::default()
    };
    ioctl_struct(f, abi::SIPC_IOC_TEST_KEYS, &mut k).map_err(|e| format!("TEST_KEYS: {e}"))?;
    Ok(k)
}

fn kernel_sealed_record_opens_with_rustcrypto() -> TestResult {
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    let (mut owner, mut peer) = Endpoint::pair("rc", 4, 256)?;
    let msg = b"sealed in the kernel, opened by RustCrypto";
    owner.send_one(msg, 42)?;
    let keys = test_keys(&owner.file)?;
    let rec = &kchan::peek_sealed(&owner.file)?[..];
    check!(
        rec.len() == 40 + msg.len() + 16,
        "record length {}",
        rec.len()
    );
    let hdr = abi::RecordHeader::from_le_bytes(rec[..40].try_into().unwrap());
    check!(
        hdr.channel_id == owner.channel_id,
        "channel id {:#x}",
        hdr.channel_id
    );
    check!(
        hdr.seq == 0 && hdr.len as usize == msg.len() && hdr.type_ == 42,
        "header {hdr:?}"
    );
    check!(
        hdr.direction == abi::SIPC_DIR_OWNER_TO_PEER && hdr.version == 1 && hdr.group_left == 0,
        "header {hdr:?}"
    );
    check!(&rec[40..40 + msg.len()] != msg, "the store holds plaintext");
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(&keys.tx_salt);
    nonce[4..].copy_from_slice(&hdr.seq.to_le_bytes());
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(&keys.tx_key).map_err(|_| "bad key length")?;
    let mut body = rec[40..40 + msg.len()].to_vec();
    let tag = aes_gcm::Tag::from_slice(&rec[40 + msg.len()..]);
    cipher
        .decrypt_in_place_detached(
            aes_gcm::Nonce::from_slice(&nonce),
            &rec[..40],
            &mut body,
            tag,
        )
        .map_err(|_| "RustCrypto could not open the kernel's record")?;
    check!(body == msg, "plaintext differs");
    // A flipped AAD bit must fail, as in the kernel.
    let mut aad = rec[..40].to_vec();
    aad[8] ^= 1;
    let mut body2 = rec[40..40 + msg.len()].to_vec();
    check!(
        cipher
            .decrypt_in_place_detached(aes_gcm::Nonce::from_slice(&nonce), &aad, &mut body2, tag)
            .is_err(),
        "a modified header still opened"
    );
    // The peek did not consume it.
    check!(peer.recv_one()?.payload == msg, "the peer's copy");
    Ok(())
}

fn reattach_uses_fresh_keys() -> TestResult {
    let name = kchan::unique_name("fresh");
    let owner = Endpoint::create(&name, 4, 64)?;
    expect_errno(
        test_keys(&owner.file)
            .map(|_| 0)
            .map_err(|_| Errno(libc::ENOTCONN)),
        libc::ENOTCONN,
        "TEST_KEYS before attach",
    )?;
    let peer = Endpoint::attach(&name)?;
    let k1 = test_keys(&owner.file)?;
    let p1 = test_keys(&peer.file)?;
    check!(k1.tx_key != p1.tx_key, "both directions share a key");
    drop(peer);
    let _peer2 = Endpoint::attach(&name)?;
    let k2 = test_keys(&owner.file)?;
    check!(
        k1.tx_key != k2.tx_key && k1.tx_salt != k2.tx_salt,
        "re-attach kept the old key"
    );
    check!(k1.tx_key != [0u8; 32], "zero key");
    Ok(())
}

/// Flips one bit of byte `at` of the oldest record the owner sealed.
fn flip_sealed(f: &std::fs::File, at: u32) -> Result<(), String> {
    let mut t = abi::TestSealed {
        size: std::mem::size_of::<abi::TestSealed>() as u32,
        flags: abi::SIPC_TEST_SEALED_FLIP,
        record_len: at,
        ..Default::default()
    };
    ioctl_struct(f, abi::SIPC_IOC_TEST_PEEK_SEALED, &mut t)
        .map(|_| ())
        .map_err(|e| format!("TEST_PEEK_SEALED(FLIP {at}): {e}"))
}

fn tampered_record_is_ebadmsg_and_stream_continues() -> TestResult {
    let (mut owner, mut peer) = Endpoint::pair("tamper", 8, 64)?;
    // Header (AAD: the seq), ciphertext, tag: each tampered record is
    // dropped, counted, and the next authentic one still opens.
    let mut seq = 0u64;
    for (round, at) in [8u32, 40 + 3, 40 + 10 + 5].into_iter().enumerate() {
        owner.send_one(&[round as u8; 10], 0)?;
        flip_sealed(&owner.file, at)?;
        owner.send_one(&[0xA0 | round as u8; 10], 0)?;
        let n = peer.recv().map_err(|e| format!("RECV: {e}"))?;
        check!(
            n == 1,
            "round {round}: RECV delivered {n}, want only the good record"
        );
        let r = peer.rx.pop().ok_or("no message")?;
        check!(
            r.payload == [0xA0 | round as u8; 10] && r.desc.seq == seq + 1,
            "round {round}: got seq {} {:?}",
            r.desc.seq,
            r.payload
        );
        seq += 2;
    }
    check!(peer.recv() == Ok(0), "something else was delivered");
    let s = peer.stats()?;
    check!(s.badmsg == 3 && s.opened_msgs == 3, "stats {s:?}");
    // A tampered record as the only one: RECV says EBADMSG, read() too.
    owner.send_one(b"bad", 0)?;
    flip_sealed(&owner.file, 50)?;
    expect_errno(peer.recv(), libc::EBADMSG, "RECV of a lone tampered record")?;
    kchan::write_msg(&owner.file, b"bad2").map_err(|e| format!("write: {e}"))?;
    flip_sealed(&owner.file, 41)?;
    kchan::write_msg(&owner.file, b"good").map_err(|e| format!("write: {e}"))?;
    let mut buf = [0u8; 64];
    expect_errno(
        kchan::read_msg(&peer.file, &mut buf),
        libc::EBADMSG,
        "read of a tampered record",
    )?;
    let n = kchan::read_msg(&peer.file, &mut buf).map_err(|e| format!("read: {e}"))?;
    check!(
        &buf[..n] == b"good",
        "read after the tampered record: {:?}",
        &buf[..n]
    );
    Ok(())
}

/// One SEND of five messages (one of them empty) is sealed as one group: the
/// serialized group (header and ciphertext of each record, then one tag)
/// opens with RustCrypto under AAD = the five headers and the first
/// record's nonce, and the kernel delivers all five.
fn kernel_sealed_group_opens_with_rustcrypto() -> TestResult {
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    let (mut owner, mut peer) = Endpoint::pair("grp", 8, 256)?;
    let msgs: Vec<Vec<u8>> = vec![
        b"first".to_vec(),
        vec![],
        vec![0x5a; 256],
        b"fourth message".to_vec(),
        vec![7; 100],
    ];
    for (i, m) in msgs.iter().enumerate() {
        check!(owner.tx.push(m, i as u16), "TX full at {i}");
    }
    check!(owner.send() == Ok(5), "SEND did not seal all five");
    let keys = test_keys(&owner.file)?;
    let rec = &kchan::peek_sealed(&owner.file)?[..];
    let (mut aad, mut text, mut at) = (Vec::new(), Vec::new(), 0usize);
    for (i, m) in msgs.iter().enumerate() {
        check!(rec.len() >= at + 40, "group cut short at record {i}");
        let hdr = abi::RecordHeader::from_le_bytes(rec[at..at + 40].try_into().unwrap());
        check!(
            hdr.seq == i as u64
                && hdr.group_left == 4 - i as u32
                && hdr.len as usize == m.len()
                && hdr.type_ == i as u16
                && hdr.epoch == 0
                && hdr.channel_id == owner.channel_id,
            "record {i}: header {hdr:?}"
        );
        aad.extend_from_slice(&rec[at..at + 40]);
        at += 40;
        check!(rec.len() >= at + m.len(), "record {i} cut short");
        text.extend_from_slice(&rec[at..at + m.len()]);
        at += m.len();
    }
    check!(
        rec.len() == at + 16,
        "group length {} for {at} + tag",
        rec.len()
    );
    let plain: Vec<u8> = msgs.concat();
    check!(text != plain, "the store holds plaintext");
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(&keys.tx_salt);
    nonce[4..].copy_from_slice(&0u64.to_le_bytes());
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(&keys.tx_key).map_err(|_| "bad key length")?;
    let tag = aes_gcm::Tag::from_slice(&rec[at..]);
    // One record of the group does not open on its own.
    let mut first = text[..msgs[0].len()].to_vec();
    check!(
        cipher
            .decrypt_in_place_detached(
                aes_gcm::Nonce::from_slice(&nonce),
                &aad[..40],
                &mut first,
                tag
            )
            .is_err(),
        "the first record opened without the rest of its group"
    );
    cipher
        .decrypt_in_place_detached(aes_gcm::Nonce::from_slice(&nonce), &aad, &mut text, tag)
        .map_err(|_| "RustCrypto could not open the kernel's group")?;
    check!(text == plain, "plaintext differs");
    check!(peer.recv() == Ok(5), "RECV did not deliver the five");
    for (i, m) in msgs.iter().enumerate() {
        let r = peer.rx.pop().ok_or("message missing")?;
        check!(
            r.payload == *m && r.desc.seq == i as u64 && r.desc.type_ == i as u16,
            "message {i}: seq {} type {} len {}",
            r.desc.seq,
            r.desc.type_,
            r.payload.len()
        );
    }
    Ok(())
}

/// A bit flipped anywhere in a group (the first record's group_left, a
/// later record's header, a later record's ciphertext, the tag) drops the
/// four records of the group, counts four, and the next group opens.
fn tampered_group_is_dropped_whole_and_stream_continues() -> TestResult {
    let (mut owner, mut peer) = Endpoint::pair("tgrp", 8, 64)?;
    // Each record serializes as 40 + 20 bytes; the tag follows the last.
    let mut seq = 0u64;
    for (round, at) in [36u32, 60 + 8, 3 * 60 + 40 + 7, 4 * 60 + 5]
        .into_iter()
        .enumerate()
    {
        for i in 0..4u8 {
            check!(owner.tx.push(&[i; 20], 0), "TX full");
        }
        check!(owner.send() == Ok(4), "round {round}: SEND");
        flip_sealed(&owner.file, at)?;
        for i in 0..3u8 {
            check!(owner.tx.push(&[0xB0 | i; 20], 1), "TX full");
        }
        check!(owner.send() == Ok(3), "round {round}: second SEND");
        let n = peer.recv().map_err(|e| format!("RECV: {e}"))?;
        check!(
            n == 3,
            "round {round}: RECV delivered {n}, want the 3 good ones"
        );
        for i in 0..3u8 {
            let r = peer.rx.pop().ok_or("no message")?;
            check!(
                r.payload == [0xB0 | i; 20] && r.desc.seq == seq + 4 + u64::from(i),
                "round {round}: got seq {} {:?}",
                r.desc.seq,
                r.payload
            );
        }
        seq += 7;
    }
    let s = peer.stats()?;
    check!(s.badmsg == 16 && s.opened_msgs == 12, "stats {s:?}");
    Ok(())
}

/// Pops messages `ids` from RX: message i is `[i; 8]` with sequence number i.
fn pop_in_order(ep: &mut Endpoint, ids: std::ops::Range<u8>) -> TestResult {
    for i in ids {
        let r = ep.rx.pop().ok_or("message missing")?;
        check!(
            r.payload == [i; 8] && r.desc.seq == u64::from(i),
            "message {i}: seq {}",
            r.desc.seq
        );
    }
    Ok(())
}

/// A group is opened into RX only when all of it fits, so that no opened
/// plaintext waits in the sealed store; nothing is lost meanwhile, and a
/// group read(2) started comes out of RECV, in order.
fn group_waits_for_rx_room_for_all_of_it_and_loses_nothing() -> TestResult {
    let (mut owner, mut peer) = Endpoint::pair("short", 8, 64)?;
    for i in 0..6u8 {
        owner.send_one(&[i; 8], 0)?;
    }
    check!(peer.recv() == Ok(6), "RECV of the six singles");
    for i in 6..14u8 {
        check!(owner.tx.push(&[i; 8], 0), "TX full at {i}");
    }
    check!(owner.send() == Ok(8), "SEND of the group of 8");
    // A group is opened only when all of it fits in RX (its plaintext
    // never waits in the sealed store): 2 free slots are not enough.
    check!(peer.recv() == Ok(0), "RECV with room for 2 of a group of 8");
    let s = peer.stats()?;
    check!(s.opened_msgs == 6 && s.badmsg == 0, "stats {s:?}");
    pop_in_order(&mut peer, 0..6)?;
    check!(peer.recv() == Ok(8), "RECV with room for the whole group");
    pop_in_order(&mut peer, 6..14)?;
    // read(2) opens a group too and takes its first message; RECV then
    // delivers the rest of that group, in order.
    for i in 14..18u8 {
        check!(owner.tx.push(&[i; 8], 0), "TX full at {i}");
    }
    check!(owner.send() == Ok(4), "SEND of the group of 4");
    let mut buf = [0u8; 64];
    let n = kchan::read_msg(&peer.file, &mut buf).map_err(|e| format!("read: {e}"))?;
    check!(buf[..n] == [14u8; 8], "read got {:?}", &buf[..n]);
    check!(peer.recv() == Ok(3), "RECV of the rest of the group");
    pop_in_order(&mut peer, 15..18)?;
    let s = peer.stats()?;
    check!(s.opened_msgs == 18 && s.badmsg == 0, "stats {s:?}");
    Ok(())
}

/// SIPC_IOC_RECV_WAIT with a timeout in ms (a value, not a pointer).
fn recv_wait(f: &std::fs::File, timeout_ms: u64) -> Result<i32, Errno> {
    sys::ioctl_ptr(f, abi::SIPC_IOC_RECV_WAIT, timeout_ms as usize as *mut u8)
}

/// Starts a thread that blocks in `wait` (RECV_WAIT or SEND_WAIT) on `f`
/// with no timeout; it returns the result and how long it slept.
fn spawn_wait(
    f: std::sync::Arc<std::fs::File>,
    wait: fn(&std::fs::File, u64) -> Result<i32, Errno>,
) -> std::thread::JoinHandle<(Result<i32, Errno>, Duration)> {
    std::thread::spawn(move || {
        let t = Instant::now();
        let r = wait(&f, u64::from(abi::SIPC_WAIT_FOREVER));
        (r, t.elapsed())
    })
}

fn recv_wait_sleeps_until_send_then_delivers() -> TestResult {
    let (mut owner, mut peer) = Endpoint::pair("rwait", 8, 64)?;
    let waiter = spawn_wait(peer.file.clone(), recv_wait);
    std::thread::sleep(Duration::from_millis(300));
    check!(
        !waiter.is_finished(),
        "RECV_WAIT returned before anything was sent"
    );
    owner.send_one(b"wake up", 5)?;
    let (r, waited) = waiter.join().map_err(|_| "waiter panicked")?;
    check!(r == Ok(1), "RECV_WAIT returned {r:?}");
    check!(
        waited >= Duration::from_millis(250),
        "RECV_WAIT did not sleep ({waited:?})"
    );
    // Delivered into RX by the call itself: no RECV needed.
    let m = peer.rx.pop().ok_or("RX empty after RECV_WAIT returned 1")?;
    check!(
        m.payload == b"wake up" && m.desc.type_ == 5 && m.desc.seq == 0,
        "got {:?} type {} seq {}",
        m.payload,
        m.desc.type_,
        m.desc.seq
    );
    Ok(())
}

fn recv_wait_wakes_without_the_doorbell() -> TestResult {
    let (mut owner, mut peer) = Endpoint::pair("rwaitdb", 8, 64)?;
    let efd = kchan::doorbell(&peer.file)?;
    for i in 0..20u8 {
        let waiter = spawn_wait(peer.file.clone(), recv_wait);
        std::thread::sleep(Duration::from_millis(20));
        owner.send_one(&[i; 8], 0)?;
        let (r, _) = waiter.join().map_err(|_| "waiter panicked")?;
        check!(r == Ok(1), "round {i}: RECV_WAIT returned {r:?}");
        let m = peer.rx.pop().ok_or("RX empty after RECV_WAIT returned 1")?;
        check!(m.payload == [i; 8], "round {i}: got {:?}", m.payload);
    }
    let s = peer.stats()?;
    check!(s.opened_msgs == 20, "opened {}", s.opened_msgs);
    check!(
        s.doorbells_signalled == 0,
        "{} doorbells for a receiver sleeping in the kernel",
        s.doorbells_signalled
    );
    check!(kchan::eventfd_take(&efd) == 0, "the eventfd was signalled");
    Ok(())
}

fn recv_wait_timeout_returns_zero() -> TestResult {
    let (_owner, peer) = Endpoint::pair("rwaitto", 8, 64)?;
    let t = Instant::now();
    let r = recv_wait(&peer.file, 100);
    let waited = t.elapsed();
    check!(r == Ok(0), "RECV_WAIT on an empty channel returned {r:?}");
    check!(
        waited >= Duration::from_millis(90),
        "returned after {waited:?}, before its 100 ms timeout"
    );
    Ok(())
}

fn recv_wait_zero_timeout_is_plain_recv() -> TestResult {
    let (mut owner, peer) = Endpoint::pair("rwait0", 8, 64)?;
    check!(recv_wait(&peer.file, 0) == Ok(0), "empty channel");
    for i in 0..3u8 {
        check!(owner.tx.push(&[i; 4], 0), "TX full");
    }
    check!(owner.send() == Ok(3), "SEND");
    let t = Instant::now();
    let r = recv_wait(&peer.file, 0);
    check!(r == Ok(3), "RECV_WAIT(0) with 3 waiting returned {r:?}");
    check!(
        t.elapsed() < Duration::from_secs(1),
        "RECV_WAIT(0) slept {:?}",
        t.elapsed()
    );
    Ok(())
}

fn recv_wait_timeout_above_u32_is_einval() -> TestResult {
    let (_owner, peer) = Endpoint::pair("rwaitinval", 8, 64)?;
    expect_errno(
        recv_wait(&peer.file, 1 << 32),
        libc::EINVAL,
        "RECV_WAIT(2^32 ms)",
    )
}

fn recv_wait_sleeper_gets_epipe_when_owner_closes() -> TestResult {
    let (mut owner, mut peer) = Endpoint::pair("rwaithup", 8, 64)?;
    owner.send_one(b"last", 0)?;
    check!(recv_wait(&peer.file, 1000) == Ok(1), "first message");
    check!(peer.rx.pop().is_some(), "RX empty");
    let waiter = spawn_wait(peer.file.clone(), recv_wait);
    std::thread::sleep(Duration::from_millis(200));
    check!(!waiter.is_finished(), "RECV_WAIT returned early");
    drop(owner);
    let (r, _) = waiter.join().map_err(|_| "waiter panicked")?;
    expect_errno(r, libc::EPIPE, "RECV_WAIT when the owner closes")
}

/// SIPC_IOC_SEND_WAIT with a timeout in ms (a value, not a pointer).
fn send_wait(f: &std::fs::File, timeout_ms: u64) -> Result<i32, Errno> {
    sys::ioctl_ptr(f, abi::SIPC_IOC_SEND_WAIT, timeout_ms as usize as *mut u8)
}

/// Pushes messages `ids` (payload `[i; 8]`, type `i`) and SENDs them as one
/// group; checks that all of them were sealed.
fn send_group(ep: &mut Endpoint, ids: std::ops::Range<u8>) -> TestResult {
    let n = ids.len() as i32;
    for i in ids {
        check!(ep.tx.push(&[i; 8], u16::from(i)), "TX full at message {i}");
    }
    let r = ep.send();
    check!(r == Ok(n), "SEND of a group of {n} returned {r:?}");
    Ok(())
}

/// An owner whose store (8 records) is full with a group of 2 and a group
/// of 6, the peer's RX full with the 8 messages before them: 16 sent.
fn full_store_pair(tag: &str) -> Result<(Endpoint, Endpoint), String> {
    let (mut owner, peer) = Endpoint::pair(tag, 8, 64)?;
    send_group(&mut owner, 0..8)?;
    check!(peer.recv() == Ok(8), "RECV of the first 8");
    send_group(&mut owner, 8..10)?;
    send_group(&mut owner, 10..16)?;
    check!(
        owner.send() == Ok(0),
        "a SEND into the full store sealed something"
    );
    Ok((owner, peer))
}

fn send_wait_seals_the_whole_batch_once_room_for_all_of_it_appears() -> TestResult {
    let (mut owner, mut peer) = full_store_pair("swait")?;
    for i in 16..20u8 {
        check!(owner.tx.push(&[i; 8], u16::from(i)), "TX full at {i}");
    }
    let waiter = spawn_wait(owner.file.clone(), send_wait);
    std::thread::sleep(Duration::from_millis(300));
    check!(
        !waiter.is_finished(),
        "SEND_WAIT returned into a full store"
    );
    // Room for 2 of the 4: the group of 2 is opened, the group of 6 does
    // not fit into RX yet.
    pop_in_order(&mut peer, 0..2)?;
    check!(peer.recv() == Ok(2), "RECV of the group of 2");
    std::thread::sleep(Duration::from_millis(300));
    check!(
        !waiter.is_finished(),
        "SEND_WAIT returned with room for 2 of its 4 records (a batch sealed in pieces)"
    );
    check!(
        owner.tx.room() == 4,
        "TX room {} while it waits",
        owner.tx.room()
    );
    // Room for all 4.
    pop_in_order(&mut peer, 2..8)?;
    check!(peer.recv() == Ok(6), "RECV of the group of 6");
    let (r, waited) = waiter.join().map_err(|_| "waiter panicked")?;
    check!(r == Ok(4), "SEND_WAIT returned {r:?}, not the 4 it had");
    check!(
        waited >= Duration::from_millis(550),
        "SEND_WAIT did not sleep ({waited:?})"
    );
    check!(
        owner.tx.room() == 8,
        "TX not drained: room {}",
        owner.tx.room()
    );
    pop_in_order(&mut peer, 8..16)?;
    check!(peer.recv() == Ok(4), "RECV of the 4 SEND_WAIT sealed");
    pop_in_order(&mut peer, 16..20)?;
    let s = owner.stats()?;
    check!(s.sealed_msgs == 20, "sealed {}", s.sealed_msgs);
    Ok(())
}

fn send_wait_with_room_seals_without_sleeping() -> TestResult {
    let (mut owner, mut peer) = Endpoint::pair("swaitroom", 8, 64)?;
    for i in 0..3u8 {
        check!(owner.tx.push(&[i; 8], u16::from(i)), "TX full");
    }
    let t = Instant::now();
    let r = send_wait(&owner.file, u64::from(abi::SIPC_WAIT_FOREVER));
    check!(r == Ok(3), "SEND_WAIT with room returned {r:?}");
    check!(
        t.elapsed() < Duration::from_secs(1),
        "SEND_WAIT with room slept {:?}",
        t.elapsed()
    );
    check!(peer.recv() == Ok(3), "RECV");
    pop_in_order(&mut peer, 0..3)
}

fn send_wait_with_nothing_in_tx_returns_at_once_on_a_full_store() -> TestResult {
    let (owner, _peer) = full_store_pair("swaitempty")?;
    let t = Instant::now();
    let r = send_wait(&owner.file, u64::from(abi::SIPC_WAIT_FOREVER));
    check!(r == Ok(0), "SEND_WAIT with an empty TX returned {r:?}");
    check!(
        t.elapsed() < Duration::from_secs(1),
        "SEND_WAIT with nothing to seal slept {:?}",
        t.elapsed()
    );
    Ok(())
}

fn send_wait_timeout_seals_nothing_into_a_full_store() -> TestResult {
    let (mut owner, mut peer) = full_store_pair("swaitto")?;
    check!(owner.tx.push(&[16; 8], 16), "TX full");
    let t = Instant::now();
    let r = send_wait(&owner.file, 100);
    let waited = t.elapsed();
    check!(r == Ok(0), "SEND_WAIT into a full store returned {r:?}");
    check!(
        waited >= Duration::from_millis(90),
        "returned after {waited:?}, before its 100 ms timeout"
    );
    // Zero: a plain SEND, which seals once there is room.
    check!(
        send_wait(&owner.file, 0) == Ok(0),
        "SEND_WAIT(0), store full"
    );
    pop_in_order(&mut peer, 0..8)?;
    check!(peer.recv() == Ok(8), "RECV of the two groups");
    check!(send_wait(&owner.file, 0) == Ok(1), "SEND_WAIT(0) with room");
    pop_in_order(&mut peer, 8..16)?;
    check!(peer.recv() == Ok(1), "RECV of the last");
    pop_in_order(&mut peer, 16..17)
}

fn send_wait_bad_arguments_and_states() -> TestResult {
    let (owner, _peer) = Endpoint::pair("swaitinval", 8, 64)?;
    expect_errno(
        send_wait(&owner.file, 1 << 32),
        libc::EINVAL,
        "SEND_WAIT(2^32 ms)",
    )?;
    // An owner before its first peer: no session.
    let lonely = Endpoint::create(&kchan::unique_name("swaitnc"), 8, 64)?;
    expect_errno(
        send_wait(&lonely.file, 10),
        libc::ENOTCONN,
        "SEND_WAIT before a peer attached",
    )?;
    // A file that is no endpoint.
    expect_errno(
        send_wait(&sys::open_device()?, 10),
        libc::ENOTCONN,
        "SEND_WAIT on a plain file of the device",
    )
}

fn send_wait_with_a_garbage_tx_index_is_eproto_without_sleeping() -> TestResult {
    let (mut owner, _peer) = full_store_pair("swaitgarbage")?;
    // TX prod 1000 ahead of what the kernel consumed: more than TX holds.
    owner.tx.set_prod_raw(16 + 1000);
    let t = Instant::now();
    let r = send_wait(&owner.file, u64::from(abi::SIPC_WAIT_FOREVER));
    expect_errno(r, libc::EPROTO, "SEND_WAIT with a TX index out of range")?;
    check!(
        t.elapsed() < Duration::from_secs(1),
        "SEND_WAIT slept {:?} on a garbage index",
        t.elapsed()
    );
    Ok(())
}

fn send_wait_sleeper_gets_epipe_when_peer_closes() -> TestResult {
    let (mut owner, peer) = full_store_pair("swaithup")?;
    check!(owner.tx.push(&[16; 8], 16), "TX full");
    let waiter = spawn_wait(owner.file.clone(), send_wait);
    std::thread::sleep(Duration::from_millis(200));
    check!(!waiter.is_finished(), "SEND_WAIT returned early");
    drop(peer);
    let (r, _) = waiter.join().map_err(|_| "waiter panicked")?;
    expect_errno(r, libc::EPIPE, "SEND_WAIT when the peer closes")
}
