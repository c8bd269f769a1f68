//! Fuzz target bodies, shared by the libFuzzer entry points
//! (`fuzz_targets/*.rs`, `cargo +nightly fuzz run NAME`) and by the corpus
//! regression test (`cargo test` in this directory, stable), which replays
//! every file under `corpus/NAME/` and `regressions/NAME/`.
//!
//! Every body must return for any input: no panic (a panic on any thread
//! aborts the fuzzer), no hang, no out-of-bounds access (libFuzzer builds
//! run under AddressSanitizer).

use secure_ipc::cli::args;
use secure_ipc::cli::frame::{write_frame, Frame, FrameReader};
use secure_ipc::record::{Opener, Sealer, HEADER_LEN, OVERHEAD};
use secure_ipc::{Backend, Channel, Options, Receiver, Sender};
use secure_ipc_ring::abi::{self, TxDesc};
use secure_ipc_ring::{HeapRing, SharedWord};
use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use zeroize::Zeroizing;

/// Takes `n` bytes off the front of `data` (fewer at the end).
fn take<'a>(data: &mut &'a [u8], n: usize) -> &'a [u8] {
    let n = n.min(data.len());
    let (a, b) = data.split_at(n);
    *data = b;
    a
}

fn byte(data: &mut &[u8]) -> u8 {
    take(data, 1).first().copied().unwrap_or(0)
}

fn word(data: &mut &[u8]) -> u32 {
    let b = take(data, 4);
    let mut w = [0u8; 4];
    w[..b.len()].copy_from_slice(b);
    u32::from_le_bytes(w)
}

/// The record opener of the userspace backend (and the kernel's format):
/// records sealed by a `Sealer` with the same key, then some bytes flipped
/// by the input, or raw input bytes. Oracle: an untouched record in an
/// untouched stream opens to its plaintext; a touched one never opens.
pub fn record_open(mut data: &[u8]) {
    let key = [0x5a; 32];
    let salt = [1, 2, 3, 4];
    let dir = abi::SIPC_DIR_OWNER_TO_PEER;
    // Rekey every 3 records: the opener's epoch jumps are exercised too.
    let mut sealer = Sealer::new(9, dir, Zeroizing::new(key), salt, 3, 1 << 20);
    let mut opener = Opener::new(9, dir, Zeroizing::new(key), salt);
    let mut stream_intact = true;
    let mut buf = vec![0u8; 4096];
    while !data.is_empty() {
        let op = byte(&mut data);
        let len = (byte(&mut data) as usize) % 200;
        if op.is_multiple_of(4) {
            // A raw record: whatever the input says.
            let raw = take(&mut data, len + OVERHEAD);
            let mut rec = raw.to_vec();
            if opener.open_next(&mut rec).is_ok() {
                assert!(
                    !stream_intact || raw.len() < OVERHEAD,
                    "a forged record opened"
                );
            }
            stream_intact = false;
            continue;
        }
        let payload = take(&mut data, len).to_vec();
        let plain = &mut buf[..payload.len()];
        plain.copy_from_slice(&payload);
        let Ok((hdr, tag, _)) = sealer.seal_next(u16::from(op), 0, plain) else {
            return;
        };
        let mut rec = hdr.to_le_bytes().to_vec();
        rec.extend_from_slice(plain);
        rec.extend_from_slice(&tag);
        let flips = byte(&mut data) % 4;
        let sealed = rec.clone();
        for _ in 0..flips {
            let pos = word(&mut data) as usize % rec.len();
            rec[pos] ^= byte(&mut data);
        }
        // Compared, not counted: two flips of one byte by the same value
        // give back the sealed record, which must open.
        let touched = rec != sealed;
        if op % 4 == 1 {
            // Dropped in transit: the stream has a gap from here on.
            stream_intact = false;
            continue;
        }
        match opener.open_next(&mut rec) {
            Ok(_) => {
                assert!(!touched, "an altered record opened");
                if stream_intact {
                    assert_eq!(&rec[HEADER_LEN..HEADER_LEN + payload.len()], &payload[..]);
                }
            }
            Err(_) => {
                assert!(touched || !stream_intact, "an intact record failed to open");
                stream_intact = false;
            }
        }
    }
}

/// The ring consumer over memory a hostile producer writes: the input
/// interleaves forged shared words and descriptors with honest pushes and
/// every consumer operation. Nothing may panic or read outside the ring.
pub fn ring_consumer(mut data: &[u8]) {
    let Ok(ring) = HeapRing::<TxDesc>::new(8, 64) else {
        return;
    };
    let t = ring.tamper();
    let (mut tx, mut rx) = ring.split();
    let mut out = [0u8; 128];
    while !data.is_empty() {
        match byte(&mut data) % 8 {
            0 => {
                let w = [SharedWord::Prod, SharedWord::ProdFlags, SharedWord::Status];
                let which = w[byte(&mut data) as usize % w.len()];
                let v = word(&mut data);
                // SAFETY: one thread, between operations of the halves:
                // nothing touches a slot while the word changes.
                unsafe { t.store(which, v) };
            }
            1 => {
                let idx = word(&mut data);
                let d = TxDesc {
                    len: word(&mut data),
                    type_: word(&mut data) as u16,
                    flags: byte(&mut data).into(),
                    reserved: word(&mut data).into(),
                };
                // SAFETY: as above: no half is inside an operation.
                unsafe { t.write_desc(idx, d) };
            }
            2 => {
                let n = byte(&mut data) as usize % 80;
                let payload = take(&mut data, n);
                let _ = tx.push(TxDesc::default(), payload);
                tx.publish();
            }
            3 => {
                if let Ok(slot) = rx.peek() {
                    let _ = slot.read_payload(&mut out);
                    slot.release();
                }
            }
            4 => {
                let max = byte(&mut data).into();
                let keep = byte(&mut data).into();
                if let Ok(batch) = rx.peek_batch(max) {
                    for e in batch.iter().flatten() {
                        let _ = e.read_payload(&mut out);
                    }
                    batch.release_first(keep);
                }
            }
            5 => {
                let _ = rx.available();
            }
            6 => {
                let _ = rx.prepare_sleep();
                rx.finish_sleep();
            }
            _ => {
                let _ = rx.kernel_status();
                let _ = rx.is_producer_closed();
            }
        }
    }
}

fn socket_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("sipc-fuzz-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&d);
        d
    })
}

fn unique_name(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{tag}{}", N.fetch_add(1, Ordering::Relaxed))
}

fn seqpacket() -> Option<OwnedFd> {
    // SAFETY: plain syscall; checked below.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    // SAFETY: a fresh descriptor we own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

fn sockaddr(path: &Path) -> (libc::sockaddr_un, libc::socklen_t) {
    // SAFETY: plain data; zero is valid.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let b = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    for (i, c) in b.iter().take(sa.sun_path.len() - 1).enumerate() {
        sa.sun_path[i] = *c as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + b.len() + 1;
    (sa, len as libc::socklen_t)
}

/// Splits the input into packets: one length byte, then that many bytes.
fn packets(mut data: &[u8]) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    while !data.is_empty() && v.len() < 8 {
        let n = byte(&mut data) as usize;
        v.push(take(&mut data, n).to_vec());
    }
    v
}

fn send(fd: &OwnedFd, p: &[u8]) {
    // SAFETY: sends from a valid buffer; errors are fine (the other side
    // may have closed).
    unsafe {
        libc::send(
            fd.as_raw_fd(),
            p.as_ptr().cast(),
            p.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
}

/// The attacher's handshake parser against a hostile owner: a fake
/// listener answers `Channel::attach` with the input's packets (the first
/// one is a valid READY greeting when the first byte is even, so the
/// fuzzer reaches HELLO and ACCEPT), then hangs up. Attach must fail
/// cleanly: no descriptors ever come, so it can never succeed.
pub fn attach_handshake(data: &[u8]) {
    let name = unique_name("a");
    let path = socket_dir().join(format!("{name}.sock"));
    let Some(l) = seqpacket() else { return };
    let (sa, len) = sockaddr(&path);
    // SAFETY: valid sockaddr of that length; plain syscalls.
    unsafe {
        if libc::bind(l.as_raw_fd(), (&sa as *const libc::sockaddr_un).cast(), len) != 0
            || libc::listen(l.as_raw_fd(), 1) != 0
        {
            return;
        }
    }
    let mut pkts = packets(data.get(1..).unwrap_or_default());
    if data.first().is_some_and(|b| b % 2 == 0) {
        pkts.insert(0, b"SIPCRD01".to_vec());
    }
    let owner = std::thread::spawn(move || {
        // SAFETY: accept on our listener; the result is owned at once.
        let c = unsafe {
            libc::accept4(
                l.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        };
        if c < 0 {
            return;
        }
        // SAFETY: a fresh descriptor we own.
        let c = unsafe { OwnedFd::from_raw_fd(c) };
        for p in &pkts {
            send(&c, p);
        }
        // Give the attacher time to read before the hang-up.
        std::thread::sleep(Duration::from_millis(1));
    });
    let opts = Options::new()
        .backend(Backend::Userspace)
        .socket_dir(socket_dir());
    let r = Channel::attach(&name, &opts);
    assert!(r.is_err(), "attached to an owner that sent no descriptors");
    let _ = owner.join();
    let _ = std::fs::remove_file(&path);
}

/// The owner's listener and handshake against a hostile attacher: the
/// input's packets go to one long-lived real owner over fresh connections.
/// The owner's threads must survive everything (a panic anywhere aborts).
pub fn owner_handshake(data: &[u8]) {
    static OWNER: OnceLock<(String, Mutex<(Sender, Receiver)>)> = OnceLock::new();
    let (name, _halves) = OWNER.get_or_init(|| {
        let name = unique_name("o");
        let opts = Options::new()
            .backend(Backend::Userspace)
            .socket_dir(socket_dir());
        let halves = Channel::create(&name, &opts).expect("create the owner under test");
        (name, Mutex::new(halves))
    });
    let Some(c) = seqpacket() else { return };
    let (sa, len) = sockaddr(&socket_dir().join(format!("{name}.sock")));
    // SAFETY: valid sockaddr of that length.
    if unsafe { libc::connect(c.as_raw_fd(), (&sa as *const libc::sockaddr_un).cast(), len) } != 0 {
        return;
    }
    let mut buf = [0u8; 512];
    for p in packets(data) {
        send(&c, &p);
        // Read whatever the owner answers (READY, HELLO, REFUSE) without
        // waiting long.
        let mut pfd = libc::pollfd {
            fd: c.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; a valid receive buffer.
        unsafe {
            if libc::poll(&mut pfd, 1, 5) > 0 {
                libc::recv(
                    c.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                );
            }
        }
    }
}

/// The `sipc` argument parser: the input, cut at NUL bytes, is an argv
/// (any bytes, as exec passes them). Oracle: parsing never panics, and a
/// command it accepts renders (`Command::to_args`) to an argv that parses
/// back to the same command.
pub fn cli_args(data: &[u8]) {
    let argv: Vec<OsString> = if data.is_empty() {
        Vec::new()
    } else {
        data.split(|&b| b == 0)
            .map(|a| OsString::from_vec(a.to_vec()))
            .collect()
    };
    if let Ok(cmd) = args::parse(&argv) {
        let rendered = cmd.to_args();
        assert_eq!(
            args::parse(&rendered),
            Ok(cmd.clone()),
            "{argv:?} parsed to {cmd:?}, rendered as {rendered:?}"
        );
    }
}

/// Every message `FrameReader` cuts out of `input`, and the error that
/// stopped it, if any.
fn read_frames(
    input: &[u8],
    frame: Frame,
    max: usize,
    capacity: usize,
) -> Option<(Vec<Vec<u8>>, bool)> {
    let mut r = FrameReader::with_capacity(capacity, input, frame, max).ok()?;
    let mut msgs = Vec::new();
    let mut buf = Vec::new();
    loop {
        match r.next_into(&mut buf) {
            Ok(true) => msgs.push(buf.clone()),
            Ok(false) => return Some((msgs, false)),
            Err(_) => return Some((msgs, true)),
        }
    }
}

/// The `sipc` stdin framing (lines, len32, raw:N) over any input, with a
/// small message limit and a small buffer (lines cross refills). Oracle:
/// no message is over the limit or holds a line's newline; writing the
/// messages back (`write_frame`) gives the input (lines: plus a final
/// newline it lacked), or a prefix of it when the input was bad; reading
/// that again gives the same messages without error.
pub fn cli_frames(mut data: &[u8]) {
    let sel = byte(&mut data);
    let max = byte(&mut data) as usize;
    let capacity = byte(&mut data) as usize % 16 + 1;
    let frame = match sel % 3 {
        0 => Frame::Lines,
        1 => Frame::Len32,
        _ => Frame::Raw(byte(&mut data) as usize % 64 + 1),
    };
    // raw:N over the limit is refused up front.
    let Some((msgs, failed)) = read_frames(data, frame, max, capacity) else {
        return;
    };
    let mut enc = Vec::new();
    for m in &msgs {
        assert!(m.len() <= max, "a {}-byte message over {max}", m.len());
        assert!(
            frame != Frame::Lines || !m.contains(&b'\n'),
            "a line holds a newline"
        );
        write_frame(&mut enc, m, frame).expect("write to a Vec");
    }
    if failed {
        assert!(data.starts_with(&enc), "messages before bad input differ");
    } else if frame == Frame::Lines && data.last() != Some(&b'\n') && !data.is_empty() {
        assert_eq!(&enc[..enc.len() - 1], data);
    } else {
        assert_eq!(enc, data);
    }
    let again = read_frames(&enc, frame, max, capacity);
    assert_eq!(again, Some((msgs, false)), "re-reading the written frames");
}
