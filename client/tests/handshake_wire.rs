//! The userspace backend's rendezvous packets, byte for byte
//! (docs/key-schedule.md §5): a raw-socket attacher against a real owner
//! and a raw-socket owner against a real attacher check every field's
//! offset, width and byte order. Both sides of a handshake may run
//! different builds, so these bytes never change without a new magic.

use secure_ipc::keys::{self, SessionInputs};
use secure_ipc::{
    encode_name, Backend, Channel, Error, IdentityKey, Options, OwnerPolicy, PeerPolicy, Stats,
};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

const READY: &[u8; 8] = b"SIPCRD01";
const ATTACH: &[u8; 8] = b"SIPCAT01";
const STATS: &[u8; 8] = b"SIPCST01";
const HELLO: &[u8; 8] = b"SIPCUS01";
const KEYS: &[u8; 8] = b"SIPCKY01";
const ACCEPT: &[u8; 8] = b"SIPCOK01";
const REFUSE: &[u8; 8] = b"SIPCNO01";
const STATS_REPLY: &[u8; 8] = b"SIPCSS01";

const PSK: [u8; 32] = [0x11; 32];
const PEER_ID: [u8; 32] = [0x22; 32];
const OWNER_ID: [u8; 32] = [0x33; 32];
const EPHEMERAL: [u8; 32] = [0x44; 32];
const WAIT: Duration = Duration::from_secs(5);

fn uniq(tag: &str) -> String {
    format!("hw{}-{tag}", std::process::id())
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sipc-hw-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

fn my_uid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

fn opts(dir: &Path) -> Options {
    Options::new().backend(Backend::Userspace).socket_dir(dir)
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn arr32(b: &[u8], at: usize) -> [u8; 32] {
    b[at..at + 32].try_into().unwrap()
}

fn sockaddr(path: &Path) -> (libc::sockaddr_un, libc::socklen_t) {
    // SAFETY: sockaddr_un is plain data; zero is valid.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let b = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    assert!(b.len() < sa.sun_path.len(), "socket path too long");
    for (i, c) in b.iter().enumerate() {
        sa.sun_path[i] = *c as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + b.len() + 1;
    (sa, len as libc::socklen_t)
}

fn seqpacket() -> OwnedFd {
    // SAFETY: plain syscall; checked below.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor we own.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn connect(path: &Path) -> OwnedFd {
    let fd = seqpacket();
    let (sa, len) = sockaddr(path);
    // SAFETY: a valid sockaddr_un of that length.
    let r = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_un).cast(),
            len,
        )
    };
    assert_eq!(r, 0, "connect: {}", std::io::Error::last_os_error());
    fd
}

fn listen(path: &Path) -> OwnedFd {
    let fd = seqpacket();
    let (sa, len) = sockaddr(path);
    // SAFETY: a valid sockaddr_un of that length; plain syscalls.
    unsafe {
        assert_eq!(
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_un).cast(),
                len
            ),
            0
        );
        assert_eq!(libc::listen(fd.as_raw_fd(), 4), 0);
    }
    fd
}

fn accept(l: &OwnedFd) -> OwnedFd {
    // SAFETY: accept on our listener; the result is checked and owned.
    let fd = unsafe {
        libc::accept4(
            l.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    };
    assert!(fd >= 0, "accept: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor we own.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn send(sock: &OwnedFd, data: &[u8]) {
    // SAFETY: sends from a valid buffer.
    let n = unsafe {
        libc::send(
            sock.as_raw_fd(),
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    assert_eq!(
        n,
        data.len() as isize,
        "send: {}",
        std::io::Error::last_os_error()
    );
}

/// One packet and the number of descriptors that came with it (closed).
fn recv(sock: &OwnedFd) -> (Vec<u8>, usize) {
    let mut p = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut p, 1, WAIT.as_millis() as libc::c_int) };
    assert!(r > 0, "no packet within {WAIT:?}");
    let mut buf = vec![0u8; 512];
    let mut cbuf = [0u64; 32];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; zero is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    // SAFETY: msg describes valid buffers for the call.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    assert!(n >= 0, "recvmsg: {}", std::io::Error::last_os_error());
    buf.truncate(n as usize);
    let mut fds = 0;
    // SAFETY: the CMSG_* walk stays inside the control buffer the kernel
    // filled; each SCM_RIGHTS descriptor is ours to close.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let k = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / 4;
                let d = libc::CMSG_DATA(c).cast::<libc::c_int>();
                for i in 0..k {
                    libc::close(d.add(i).read_unaligned());
                }
                fds += k;
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    (buf, fds)
}

fn packet(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Owner → attacher: READY (8), HELLO (92), ACCEPT (72) with five
/// descriptors; attacher → owner: ATTACH (8), KEYS (108).
#[test]
fn owner_sends_ready_hello_accept_in_the_pinned_layout() {
    let dir = tmpdir("owner");
    let name = uniq("owner");
    let name32 = encode_name(&name).unwrap();
    let peer_id = IdentityKey::from(PEER_ID);
    let policy = PeerPolicy {
        uid: Some(my_uid()),
        identity_pub: Some(keys::public_key(&PEER_ID)),
        ..Default::default()
    };
    let o = opts(&dir)
        .slots(64)
        .slot_size(256)
        .psk(PSK)
        .identity(IdentityKey::from(OWNER_ID))
        .policy(policy);
    let (_tx, _rx) = Channel::create(&name, &o).expect("create");
    let s = connect(&dir.join(format!("{name}.sock")));

    assert_eq!(recv(&s), (READY.to_vec(), 0));
    send(&s, ATTACH);
    let (hello, fds) = recv(&s);
    assert_eq!((hello.len(), fds), (92, 0));
    assert_eq!(&hello[..8], HELLO);
    // Flags: peer identity required (1), owner has a PSK (2), owner proves
    // an identity (4).
    assert_eq!(le32(&hello, 8), 1 | 2 | 4);
    assert_eq!(le32(&hello, 12), 64, "slots");
    assert_eq!(le32(&hello, 16), 256, "slot size");
    let _channel_id = le64(&hello, 20);
    let owner_pub = arr32(&hello, 28);
    let nonce = arr32(&hello, 60);

    let peer_pub = keys::public_key(&EPHEMERAL);
    let eph = keys::x25519(&EPHEMERAL, &owner_pub);
    let (proof, id_dh) = keys::prove_identity(&peer_id, &name32, &owner_pub, &nonce);
    let k = keys::derive_session(&SessionInputs {
        name32: &name32,
        owner_pub: &owner_pub,
        peer_pub: &peer_pub,
        eph_dh: &eph,
        identity_dh: Some(&id_dh),
        psk: Some(&PSK),
    });
    let keys_pkt = packet(&[
        KEYS,
        &2u32.to_le_bytes(),
        &peer_pub,
        &proof,
        &k.peer_confirm,
    ]);
    assert_eq!(keys_pkt.len(), 108);
    send(&s, &keys_pkt);

    let (accept, fds) = recv(&s);
    assert_eq!(
        (accept.len(), fds),
        (72, 5),
        "ACCEPT: memfd and four doorbells"
    );
    assert_eq!(&accept[..8], ACCEPT);
    assert_eq!(arr32(&accept, 8), k.owner_confirm);
    let owner_id_pub = keys::public_key(&OWNER_ID);
    let dh = keys::x25519(&EPHEMERAL, &owner_id_pub);
    let t = keys::owner_proof_transcript(&name32, &owner_pub, &peer_pub, &nonce, &owner_id_pub);
    assert_eq!(arr32(&accept, 40), keys::identity_proof(&dh, &t));
}

/// REFUSE is the magic and a little-endian u32 code (12 bytes).
#[test]
fn owner_refuses_in_the_pinned_layout() {
    let dir = tmpdir("refuse");
    let name = uniq("refuse");
    // Same uid (so not refused at accept: it may read the counters), but
    // the policy admits another uid only.
    let policy = PeerPolicy {
        uid: Some(my_uid().wrapping_add(1)),
        ..Default::default()
    };
    let (_tx, _rx) = Channel::create(&name, &opts(&dir).policy(policy)).expect("create");
    let path = dir.join(format!("{name}.sock"));
    let s = connect(&path);
    assert_eq!(recv(&s).0, READY);
    send(&s, ATTACH);
    assert_eq!(
        recv(&s).0,
        packet(&[REFUSE, &1u32.to_le_bytes()]),
        "NotPermitted"
    );
    let s = connect(&path);
    assert_eq!(recv(&s).0, READY);
    send(&s, b"garbage!");
    assert_eq!(
        recv(&s).0,
        packet(&[REFUSE, &5u32.to_le_bytes()]),
        "Protocol"
    );
}

/// The stats reply: magic, then the 13 counters as little-endian u64 in
/// the order of `Stats`' fields.
#[test]
fn stats_reply_has_the_pinned_layout_both_ways() {
    let dir = tmpdir("stats");
    let name = uniq("stats");
    let (mut otx, mut orx) = Channel::create(&name, &opts(&dir)).expect("create");
    let (mut ptx, mut prx) = Channel::attach(&name, &opts(&dir)).expect("attach");
    for _ in 0..3 {
        otx.send(b"fiver").unwrap();
        assert_eq!(prx.recv().unwrap().payload(), b"fiver");
    }
    for _ in 0..2 {
        ptx.send(b"seven!!").unwrap();
        assert_eq!(orx.recv().unwrap().payload(), b"seven!!");
    }
    let s = connect(&dir.join(format!("{name}.sock")));
    assert_eq!(recv(&s).0, READY);
    send(&s, STATS);
    let (reply, _) = recv(&s);
    assert_eq!(reply.len(), 8 + 13 * 8);
    assert_eq!(&reply[..8], STATS_REPLY);
    let v: Vec<u64> = (0..13).map(|i| le64(&reply, 8 + 8 * i)).collect();
    // sealed msgs/bytes, opened msgs/bytes, auth failures, full events;
    // [6], [7] are doorbells (timing); rekeys, fills, epochs.
    assert_eq!(&v[..6], &[3, 15, 2, 14, 0, 0]);
    assert_eq!(&v[8..], &[0, 0, 0, 0, 0]);

    // The reader: a fake owner's reply of 1..=13 comes back field by field.
    let dir = tmpdir("stats-fake");
    let name = uniq("stats-fake");
    let l = listen(&dir.join(format!("{name}.sock")));
    let owner = std::thread::spawn(move || {
        let c = accept(&l);
        send(&c, READY);
        assert_eq!(recv(&c).0, STATS);
        let mut reply = STATS_REPLY.to_vec();
        for i in 1..=13u64 {
            reply.extend_from_slice(&i.to_le_bytes());
        }
        send(&c, &reply);
    });
    let got = secure_ipc::userspace::query_stats(&name, &opts(&dir)).expect("query_stats");
    owner.join().unwrap();
    let want = Stats {
        sealed_msgs: 1,
        sealed_bytes: 2,
        opened_msgs: 3,
        opened_bytes: 4,
        auth_failures: 5,
        full_events: 6,
        doorbells_signalled: 7,
        doorbells_suppressed: 8,
        rekeys: 9,
        tx_fill: 10,
        rx_fill: 11,
        tx_epoch: 12,
        rx_epoch: 13,
    };
    assert_eq!(got, want);
}

/// Attacher → owner: ATTACH, then KEYS (108 bytes: magic, flags, peer
/// public key, identity proof, confirmation), against a raw owner that
/// speaks the pinned HELLO; its REFUSE code maps to the error.
#[test]
fn attacher_sends_attach_and_keys_in_the_pinned_layout() {
    let dir = tmpdir("attacher");
    let name = uniq("attacher");
    let name32 = encode_name(&name).unwrap();
    let l = listen(&dir.join(format!("{name}.sock")));
    let owner = std::thread::spawn(move || {
        let c = accept(&l);
        send(&c, READY);
        assert_eq!(recv(&c).0, ATTACH);
        let owner_pub = keys::public_key(&EPHEMERAL);
        let nonce = [0x55u8; 32];
        let channel_id = 0x0102_0304_0506_0708u64;
        let hello = packet(&[
            HELLO,
            &(1u32 | 2).to_le_bytes(),
            &64u32.to_le_bytes(),
            &256u32.to_le_bytes(),
            &channel_id.to_le_bytes(),
            &owner_pub,
            &nonce,
        ]);
        assert_eq!(hello.len(), 92);
        send(&c, &hello);
        let (k, fds) = recv(&c);
        assert_eq!((k.len(), fds), (108, 0));
        assert_eq!(&k[..8], KEYS);
        assert_eq!(le32(&k, 8), 2, "the peer has a PSK");
        let peer_pub = arr32(&k, 12);
        let peer_id_pub = keys::public_key(&PEER_ID);
        let id_dh = keys::x25519(&EPHEMERAL, &peer_id_pub);
        let t = keys::proof_transcript(&name32, &owner_pub, &nonce, &peer_id_pub);
        assert_eq!(arr32(&k, 44), keys::identity_proof(&id_dh, &t), "proof");
        let eph = keys::x25519(&EPHEMERAL, &peer_pub);
        let sk = keys::derive_session(&SessionInputs {
            name32: &name32,
            owner_pub: &owner_pub,
            peer_pub: &peer_pub,
            eph_dh: &eph,
            identity_dh: Some(&id_dh),
            psk: Some(&PSK),
        });
        assert_eq!(arr32(&k, 76), sk.peer_confirm, "confirmation");
        send(&c, &packet(&[REFUSE, &4u32.to_le_bytes()]));
    });
    let o = opts(&dir)
        .psk(PSK)
        .identity(IdentityKey::from(PEER_ID))
        .owner_policy(OwnerPolicy::same_user());
    let r = Channel::attach(&name, &o);
    owner.join().expect("the raw owner's checks");
    assert!(matches!(r, Err(Error::PskMismatch)), "{:?}", r.err());
}
