//! The userspace backend against a hostile local process (issue 14): a
//! process of another uid, or a peer that breaks the protocol on purpose,
//! with any timing. Each test plays one attack with a real second process
//! (this binary re-executed with `SIPC_TEST_ROLE`) or raw sockets, and
//! checks that the victim side neither hangs, nor trusts the wrong party,
//! nor loses its ability to serve legitimate peers.
//!
//! Own harness (`harness = false`, as `tests/userspace.rs`): prints
//! `N passed, N failed`.

use secure_ipc::{Backend, Channel, Error, IdentityKey, Options, OwnerPolicy, PeerPolicy};
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn opts() -> Options {
    Options::new().backend(Backend::Userspace)
}

fn uniq(tag: &str) -> String {
    format!("hl{}-{tag}", std::process::id())
}

/// A fresh directory for socket files, owned by this uid, mode 0700.
fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sipc-hl-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

fn role_cmd(role: &str, name: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("current exe"));
    c.env("SIPC_TEST_ROLE", role)
        .env("SIPC_TEST_NAME", name)
        .stdout(Stdio::piped());
    c
}

/// First line the child prints, or an error after `t`.
fn read_line_within(child: &mut Child, t: Duration) -> Result<String, String> {
    let out = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(out);
        let mut line = String::new();
        let _ = r.read_line(&mut line);
        let _ = tx.send(line.trim().to_string());
    });
    rx.recv_timeout(t)
        .map_err(|_| format!("child printed nothing within {t:?}"))
}

/// Kills and reaps a child this test started.
fn kill(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `f` on a thread and waits at most `t` for it: a hang is an error
/// (the stuck thread is left behind; the harness exits at the end).
fn within<T: Send + 'static>(
    t: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(t)
        .map_err(|_| format!("{what} did not return within {t:?}"))
}

// ---------------------------------------------------------------------------
// Raw rendezvous sockets (what a hostile process uses instead of the crate)
// ---------------------------------------------------------------------------

fn raw_seqpacket() -> OwnedFd {
    // SAFETY: plain syscall; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: fd is a fresh descriptor we own.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn raw_connect(path: &Path) -> Result<OwnedFd, String> {
    let fd = raw_seqpacket();
    // SAFETY: sockaddr_un is plain data; zero is valid.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let b = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    if b.len() >= sa.sun_path.len() {
        return Err("socket path too long".into());
    }
    for (i, c) in b.iter().enumerate() {
        sa.sun_path[i] = *c as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + b.len() + 1;
    // SAFETY: sa is a valid sockaddr_un of length len.
    let r = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_un).cast(),
            len as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(format!("connect: {}", std::io::Error::last_os_error()));
    }
    Ok(fd)
}

/// Sends one packet with `fds` attached as SCM_RIGHTS.
fn raw_send(sock: &OwnedFd, data: &[u8], fds: &[RawFd]) -> Result<(), String> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut cbuf = [0u64; 16];
    // SAFETY: msghdr is plain data; zero is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let payload = std::mem::size_of_val(fds) as u32;
        // SAFETY: CMSG_SPACE is a size computation; the buffer (128 bytes)
        // holds the header and up to 8 fds, which CMSG_* stay inside.
        unsafe {
            msg.msg_control = cbuf.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(payload) as _;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(payload) as _;
            let d = libc::CMSG_DATA(c).cast::<libc::c_int>();
            for (i, f) in fds.iter().enumerate() {
                d.add(i).write_unaligned(*f);
            }
        }
    }
    // SAFETY: msg describes valid buffers for the call.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if n != data.len() as isize {
        return Err(format!("sendmsg: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Receives one packet (waits at most `t`); an empty vector is EOF.
fn raw_recv(sock: &OwnedFd, t: Duration) -> Result<Vec<u8>, String> {
    let mut p = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut p, 1, t.as_millis() as libc::c_int) };
    if r <= 0 {
        return Err(format!("no packet within {t:?}"));
    }
    let mut buf = vec![0u8; 512];
    // SAFETY: buf is valid for buf.len() bytes.
    let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(format!("recv: {}", std::io::Error::last_os_error()));
    }
    buf.truncate(n as usize);
    Ok(buf)
}

const MAGIC_ATTACH: &[u8; 8] = b"SIPCAT01";
const MAGIC_REFUSE: &[u8; 8] = b"SIPCNO01";
const MAGIC_HELLO: &[u8; 8] = b"SIPCUS01";
const MAGIC_READY: &[u8; 8] = b"SIPCRD01";
/// The REFUSE code of a protocol violation.
const REFUSED_PROTOCOL: u32 = 5;

fn describe(pkt: &[u8]) -> String {
    if pkt.is_empty() {
        "EOF".into()
    } else if pkt.len() == 12 && &pkt[..8] == MAGIC_REFUSE {
        format!(
            "REFUSE {}",
            u32::from_le_bytes([pkt[8], pkt[9], pkt[10], pkt[11]])
        )
    } else if pkt.len() >= 8 && &pkt[..8] == MAGIC_HELLO {
        "HELLO".into()
    } else if pkt == MAGIC_READY {
        "READY".into()
    } else {
        format!("{} unknown bytes", pkt.len())
    }
}

// ---------------------------------------------------------------------------
// Item 3: doorbells
// ---------------------------------------------------------------------------

fn fd_link(fd: RawFd) -> String {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn set_nonblock(fd: RawFd, on: bool) {
    // SAFETY: fcntl on a descriptor we hold; errors are ignored (the attack
    // is best effort on every fd).
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        let fl = if on {
            fl | libc::O_NONBLOCK
        } else {
            fl & !libc::O_NONBLOCK
        };
        libc::fcntl(fd, libc::F_SETFL, fl);
    }
}

/// Whether `fd` is a socket whose other end has no address (a socketpair
/// end), as opposed to the rendezvous connection.
fn is_unnamed_socket(fd: RawFd) -> bool {
    // SAFETY: sockaddr_un is plain data; getpeername writes at most len bytes.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: as above.
    let r = unsafe { libc::getpeername(fd, (&mut sa as *mut libc::sockaddr_un).cast(), &mut len) };
    r == 0 && len as usize <= std::mem::size_of::<libc::sa_family_t>()
}

/// Peer role: attach, then do to every doorbell it received what a hostile
/// peer can: clear O_NONBLOCK on the shared file description and fill it
/// (eventfd counter at its maximum, socket buffers full), then ask for
/// wake-ups and never read.
fn role_doorbell_jammer(name: &str) -> Result<(), String> {
    let (_tx, mut rx) = Channel::attach(name, &opts()).map_err(|e| format!("attach: {e}"))?;
    let mut jammed = 0;
    for e in std::fs::read_dir("/proc/self/fd").map_err(|e| e.to_string())? {
        let Ok(fd) = e
            .map_err(|e| e.to_string())?
            .file_name()
            .to_string_lossy()
            .parse::<RawFd>()
        else {
            continue;
        };
        if fd <= 2 {
            continue;
        }
        let link = fd_link(fd);
        if link.contains("eventfd") {
            set_nonblock(fd, true);
            let mut v = 0u64;
            // SAFETY: 8-byte reads/writes from/to a valid u64.
            unsafe {
                libc::read(fd, (&mut v as *mut u64).cast(), 8);
                let max = u64::MAX - 1;
                libc::write(fd, (&max as *const u64).cast(), 8);
            }
            set_nonblock(fd, false);
            jammed += 1;
        } else if link.starts_with("socket:") && is_unnamed_socket(fd) {
            set_nonblock(fd, true);
            let b = [0u8; 1];
            for _ in 0..1_000_000 {
                // SAFETY: sends one byte from a valid buffer.
                if unsafe { libc::send(fd, b.as_ptr().cast(), 1, libc::MSG_NOSIGNAL) } < 0 {
                    break;
                }
            }
            set_nonblock(fd, false);
            jammed += 1;
        }
    }
    // Ask the owner for a doorbell on the next message (NEED_WAKEUP).
    rx.arm().map_err(|e| format!("arm: {e}"))?;
    println!("jammed {jammed}");
    std::thread::sleep(Duration::from_secs(60));
    Ok(())
}

fn peer_cannot_block_owner_through_its_doorbells() -> Result<(), String> {
    let name = uniq("jam");
    let (mut otx, orx) =
        Channel::create(&name, &opts().slots(8).slot_size(128)).map_err(|e| e.to_string())?;
    let mut child = role_cmd("doorbell-jammer", &name)
        .spawn()
        .map_err(|e| e.to_string())?;
    let line = read_line_within(&mut child, Duration::from_secs(10));
    let line = match line {
        Ok(l) if l.starts_with("jammed") => l,
        other => {
            kill(child);
            return Err(format!("jammer: {other:?}"));
        }
    };
    // Wait for the owner's halves to have the session.
    let r = within(
        Duration::from_secs(5),
        "owner send + flush + drop",
        move || {
            let r = otx.send(b"x").map_err(|e| e.to_string());
            let f = otx.flush().map(|_| ()).map_err(|e| e.to_string());
            drop(otx);
            drop(orx);
            (r, f)
        },
    );
    kill(child);
    match r {
        Ok((Ok(()), Ok(()))) => Ok(()),
        Ok(other) => Err(format!(
            "after `{line}`: the owner's send failed: {other:?}"
        )),
        Err(e) => Err(format!("after `{line}`: {e}")),
    }
}

// ---------------------------------------------------------------------------
// Item 4: the attacher authenticates the owner
// ---------------------------------------------------------------------------

/// Squatter role (run as another uid): binds the channel's name first,
/// admitting anyone, and reports what an attacher hands it.
fn role_squatter(name: &str) -> Result<(), String> {
    let o = opts().policy(PeerPolicy::default());
    let (_tx, mut rx) = Channel::create(name, &o).map_err(|e| format!("create: {e}"))?;
    println!("bound");
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(Some(m)) => eprintln!("squatter got {} bytes", m.payload().len()),
        other => eprintln!(
            "squatter: {:?}",
            other.map(|m| m.map(|m| m.payload().len()))
        ),
    }
    Ok(())
}

fn attacher_refuses_an_owner_of_another_uid() -> Result<(), String> {
    let name = uniq("squat");
    let mut child = role_cmd("squatter", &name)
        .uid(65534)
        .gid(65534)
        .spawn()
        .map_err(|e| e.to_string())?;
    match read_line_within(&mut child, Duration::from_secs(10)) {
        Ok(l) if l == "bound" => {}
        other => {
            kill(child);
            return Err(format!("squatter: {other:?}"));
        }
    }
    let r = Channel::attach(&name, &opts());
    kill(child);
    match r {
        Err(Error::OwnerRejected) => Ok(()),
        Err(e) => Err(format!("expected OwnerRejected, got {e}")),
        Ok(_) => Err("attached to a channel owned by uid 65534 with default options".into()),
    }
}

// ---------------------------------------------------------------------------
// Item 5: the listener serves legitimate attachers while others stall
// ---------------------------------------------------------------------------

fn idle_connections_do_not_starve_the_listener() -> Result<(), String> {
    let name = uniq("starve");
    let dir = tmpdir("starve");
    let (_otx, _orx) =
        Channel::create(&name, &opts().socket_dir(&dir)).map_err(|e| e.to_string())?;
    let path = dir.join(format!("{name}.sock"));
    // Two connections that never send, two that stop after ATTACH.
    let mut idle = Vec::new();
    for i in 0..4 {
        let s = raw_connect(&path)?;
        if i >= 2 {
            raw_send(&s, MAGIC_ATTACH, &[])?;
        }
        idle.push(s);
    }
    let t = Instant::now();
    let r = Channel::attach(&name, &opts().socket_dir(&dir));
    let took = t.elapsed();
    drop(idle);
    let _ = std::fs::remove_dir_all(&dir);
    match r {
        Ok(_) if took < Duration::from_secs(3) => Ok(()),
        Ok(_) => Err(format!(
            "attach took {took:?} behind four stalled connections"
        )),
        Err(e) => Err(format!(
            "attach behind four stalled connections: {e} after {took:?}"
        )),
    }
}

// ---------------------------------------------------------------------------
// Item 8: the listener takes no descriptors from anyone
// ---------------------------------------------------------------------------

fn listener_refuses_an_attach_that_carries_descriptors() -> Result<(), String> {
    let name = uniq("fds");
    let dir = tmpdir("fds");
    let (_otx, _orx) =
        Channel::create(&name, &opts().socket_dir(&dir)).map_err(|e| e.to_string())?;
    let path = dir.join(format!("{name}.sock"));
    let s = raw_connect(&path)?;
    let mut pipe = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two fds into the array.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err("pipe2".into());
    }
    let greeting = raw_recv(&s, Duration::from_secs(5))?;
    if greeting != MAGIC_READY {
        return Err(format!("greeting: {}", describe(&greeting)));
    }
    raw_send(&s, MAGIC_ATTACH, &[pipe[0], pipe[1]])?;
    let reply = raw_recv(&s, Duration::from_secs(5));
    // SAFETY: closing the two pipe ends we created.
    unsafe {
        libc::close(pipe[0]);
        libc::close(pipe[1]);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let reply = reply?;
    let want = {
        let mut v = MAGIC_REFUSE.to_vec();
        v.extend_from_slice(&REFUSED_PROTOCOL.to_le_bytes());
        v
    };
    if reply == want {
        Ok(())
    } else {
        Err(format!(
            "ATTACH with two descriptors got {}",
            describe(&reply)
        ))
    }
}

fn my_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(u32::MAX)
}

fn pinned_owner(id_pub: [u8; 32]) -> Options {
    opts().owner_policy(OwnerPolicy {
        uid: Some(my_uid()),
        identity_pub: Some(id_pub),
    })
}

fn owner_identity_is_proved_to_an_attacher_that_pins_it() -> Result<(), String> {
    let owner_key = IdentityKey::from([0x42; 32]);
    let owner_pub = secure_ipc::keys::public_key(&[0x42; 32]);
    let other_pub = secure_ipc::keys::public_key(&[0x43; 32]);
    // The right owner: attached, and the session carries data.
    let name = uniq("oid-ok");
    let (mut otx, _orx) =
        Channel::create(&name, &opts().identity(owner_key.clone())).map_err(|e| e.to_string())?;
    let (_ptx, mut prx) =
        Channel::attach(&name, &pinned_owner(owner_pub)).map_err(|e| format!("right key: {e}"))?;
    otx.send(b"from the owner").map_err(|e| e.to_string())?;
    let m = prx.recv().map_err(|e| e.to_string())?;
    if m.payload() != b"from the owner" {
        return Err("wrong payload".into());
    }
    // An owner holding another key, and one holding none.
    for (tag, o) in [
        ("oid-bad", opts().identity(IdentityKey::from([0x44; 32]))),
        ("oid-none", opts()),
    ] {
        let name = uniq(tag);
        let (_otx, _orx) = Channel::create(&name, &o).map_err(|e| e.to_string())?;
        match Channel::attach(&name, &pinned_owner(owner_pub)) {
            Err(Error::OwnerRejected) => {}
            Err(e) => return Err(format!("{tag}: expected OwnerRejected, got {e}")),
            Ok(_) => {
                return Err(format!(
                    "{tag}: attached to an owner without the pinned key"
                ))
            }
        }
    }
    // Pinning a key the owner does not hold is refused too.
    let name = uniq("oid-other");
    let (_otx, _orx) =
        Channel::create(&name, &opts().identity(owner_key)).map_err(|e| e.to_string())?;
    match Channel::attach(&name, &pinned_owner(other_pub)) {
        Err(Error::OwnerRejected) => Ok(()),
        Err(e) => Err(format!("other key: expected OwnerRejected, got {e}")),
        Ok(_) => Err("attached while pinning a key the owner does not hold".into()),
    }
}

/// Racer of the listener's `attached` state: many attachers cross the
/// claim at once; exactly one becomes the peer, every other is Busy.
fn concurrent_attachers_get_one_session_and_busy_for_the_rest() -> Result<(), String> {
    for round in 0..20 {
        let name = uniq(&format!("race{round}"));
        let (mut otx, _orx) = Channel::create(&name, &opts()).map_err(|e| e.to_string())?;
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
        let mut hs = Vec::new();
        for _ in 0..6 {
            let (b, n) = (barrier.clone(), name.clone());
            hs.push(std::thread::spawn(move || {
                b.wait();
                Channel::attach(&n, &opts())
            }));
        }
        let mut winners = Vec::new();
        let mut busy = 0;
        for h in hs {
            match h.join().map_err(|_| "attacher panicked")? {
                Ok(ep) => winners.push(ep),
                Err(Error::Busy) => busy += 1,
                Err(e) => return Err(format!("round {round}: attacher got {e}")),
            }
        }
        if winners.len() != 1 || busy != 5 {
            return Err(format!(
                "round {round}: {} attached, {busy} busy",
                winners.len()
            ));
        }
        otx.send(&[round as u8]).map_err(|e| e.to_string())?;
        let (_ptx, mut prx) = winners.pop().ok_or("no winner")?;
        let m = prx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|e| e.to_string())?
            .ok_or("the winner got nothing")?;
        if m.payload() != [round as u8] {
            return Err(format!("round {round}: wrong payload"));
        }
    }
    Ok(())
}

/// Item 11: the owner's drop frees the name before it returns, also while
/// handshakes are in flight.
fn recreating_a_channel_right_after_drop_succeeds() -> Result<(), String> {
    let name = uniq("recreate");
    for i in 0..200 {
        let (tx, rx) = Channel::create(&name, &opts())
            .map_err(|e| format!("create {i} right after the drop of {}: {e}", i as i64 - 1))?;
        if i % 20 == 0 {
            // An attacher in the middle of its handshake while we drop.
            let n = name.clone();
            std::thread::spawn(move || {
                let _ = Channel::attach(&n, &opts());
            });
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(tx);
        drop(rx);
    }
    Ok(())
}

/// Role: connect with no supplementary groups, then gain group 4242 and
/// send ATTACH: a decision read from /proc after the connect sees 4242.
fn role_group_changer(name: &str) -> Result<(), String> {
    let dir = PathBuf::from(std::env::var("SIPC_TEST_DIR").map_err(|e| e.to_string())?);
    // SAFETY: setgroups with an empty list; we are single-threaded here.
    if unsafe { libc::setgroups(0, std::ptr::null()) } != 0 {
        return Err(format!("setgroups: {}", std::io::Error::last_os_error()));
    }
    let s = raw_connect(&dir.join(format!("{name}.sock")))?;
    let g: libc::gid_t = 4242;
    // SAFETY: one valid gid.
    if unsafe { libc::setgroups(1, &g) } != 0 {
        return Err(format!("setgroups: {}", std::io::Error::last_os_error()));
    }
    std::thread::sleep(Duration::from_millis(100));
    let _ = raw_send(&s, MAGIC_ATTACH, &[]);
    let mut reply = raw_recv(&s, Duration::from_secs(5))?;
    if reply == MAGIC_READY {
        // Admitted to talk (same uid: stats); the ATTACH is judged next.
        reply = raw_recv(&s, Duration::from_secs(5))?;
    }
    println!("{}", describe(&reply));
    Ok(())
}

fn gid_policy_uses_the_groups_captured_at_connect() -> Result<(), String> {
    let name = uniq("groups");
    let dir = tmpdir("groups");
    let policy = PeerPolicy {
        gid: Some(4242),
        ..PeerPolicy::default()
    };
    let (_otx, _orx) = Channel::create(&name, &opts().socket_dir(&dir).policy(policy))
        .map_err(|e| e.to_string())?;
    let mut child = role_cmd("group-changer", &name)
        .env("SIPC_TEST_DIR", &dir)
        .spawn()
        .map_err(|e| e.to_string())?;
    let line = read_line_within(&mut child, Duration::from_secs(10));
    kill(child);
    let _ = std::fs::remove_dir_all(&dir);
    match line?.as_str() {
        "REFUSE 1" => Ok(()),
        other => Err(format!(
            "a process outside group 4242 at connect time got {other}"
        )),
    }
}

// ---------------------------------------------------------------------------
// Second pass (a): what the peer does to its doorbell ends
// ---------------------------------------------------------------------------

/// CPU time this thread has used.
fn thread_cpu() -> Duration {
    // SAFETY: timespec is plain data; clock_gettime writes it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: a valid timespec for the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The doorbell ends a peer holds: its unnamed Unix sockets.
fn bell_ends() -> Vec<RawFd> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
    {
        let Ok(fd) = e.file_name().to_string_lossy().parse::<RawFd>() else {
            continue;
        };
        if fd > 2 && fd_link(fd).starts_with("socket:") && is_unnamed_socket(fd) {
            v.push(fd);
        }
    }
    v
}

fn junk_memfd() -> OwnedFd {
    // SAFETY: the name is a NUL-terminated literal.
    let fd = unsafe { libc::memfd_create(c"sipc-junk".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor we own.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Peer role: attach, then abuse every doorbell end it holds as
/// `SIPC_TEST_MODE` says: `shutdown` (shutdown(2) both ways), `close`, or
/// `junk` (packets of every size, most carrying descriptors, until the
/// buffer is full; then one real message).
fn role_bell_abuser(name: &str) -> Result<(), String> {
    let mode = std::env::var("SIPC_TEST_MODE").map_err(|e| e.to_string())?;
    let (mut tx, _rx) = Channel::attach(name, &opts()).map_err(|e| format!("attach: {e}"))?;
    let bells = bell_ends();
    if bells.len() != 4 {
        return Err(format!("{} doorbell ends, expected 4", bells.len()));
    }
    let mut sent = 0;
    for &fd in &bells {
        match mode.as_str() {
            // SAFETY: shutdown/close of descriptors this process holds; the
            // session's OwnedFds are never dropped (the role sleeps, then is killed).
            "shutdown" => unsafe {
                libc::shutdown(fd, libc::SHUT_RDWR);
            },
            // SAFETY: as above.
            "close" => unsafe {
                libc::close(fd);
            },
            "junk" => {
                let m = junk_memfd();
                let data = vec![0xa5u8; 4096];
                for i in 0..10_000usize {
                    let len = [0, 1, 7, 64, 4096][i % 5];
                    let fds = if i % 2 == 0 {
                        vec![m.as_raw_fd(); 3]
                    } else {
                        vec![]
                    };
                    set_nonblock(fd, true);
                    if raw_send(&borrowed(fd), &data[..len], &fds).is_err() {
                        break;
                    }
                    sent += 1;
                }
            }
            other => return Err(format!("unknown mode {other}")),
        }
    }
    if mode == "junk" {
        tx.send(b"real").map_err(|e| format!("send: {e}"))?;
    }
    println!("done {sent}");
    std::thread::sleep(Duration::from_secs(60));
    Ok(())
}

/// A non-owning view of a raw descriptor as an `OwnedFd` the caller must
/// forget (the role never closes it through this).
fn borrowed(fd: RawFd) -> std::mem::ManuallyDrop<OwnedFd> {
    // SAFETY: fd stays open for the view's life; ManuallyDrop never closes it.
    std::mem::ManuallyDrop::new(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Creates a channel, starts the bell abuser in `mode`, waits for it.
fn abused_channel(
    tag: &str,
    mode: &str,
) -> Result<(secure_ipc::Sender, secure_ipc::Receiver, Child), String> {
    let name = uniq(tag);
    let (otx, orx) =
        Channel::create(&name, &opts().slots(8).slot_size(128)).map_err(|e| e.to_string())?;
    let mut child = role_cmd("bell-abuser", &name)
        .env("SIPC_TEST_MODE", mode)
        .spawn()
        .map_err(|e| e.to_string())?;
    match read_line_within(&mut child, Duration::from_secs(10)) {
        Ok(l) if l.starts_with("done") => Ok((otx, orx, child)),
        other => {
            kill(child);
            Err(format!("bell abuser ({mode}): {other:?}"))
        }
    }
}

/// The owner's blocking receive over a doorbell the peer shut down (or
/// closed): a hang-up, reported at once, not a busy loop until the timeout.
fn owner_recv_over_an_abused_bell(tag: &str, mode: &str) -> Result<(), String> {
    let (_otx, mut orx, child) = abused_channel(tag, mode)?;
    let r = within(
        Duration::from_secs(10),
        "owner recv_timeout(3s)",
        move || {
            let (t, cpu) = (Instant::now(), thread_cpu());
            let r = orx
                .recv_timeout(Duration::from_secs(3))
                .map(|m| m.map(|m| m.payload().len()));
            (format!("{r:?}"), t.elapsed(), thread_cpu() - cpu)
        },
    );
    kill(child);
    let (r, took, cpu) = r?;
    if r == "Err(PeerClosed)" && cpu < Duration::from_millis(500) {
        Ok(())
    } else {
        Err(format!(
            "recv_timeout(3s) over a {mode} doorbell: {r} after {took:?}, {cpu:?} of CPU"
        ))
    }
}

fn owner_recv_treats_a_shut_down_doorbell_as_a_hang_up() -> Result<(), String> {
    owner_recv_over_an_abused_bell("bell-shut", "shutdown")
}

fn owner_recv_treats_a_closed_doorbell_as_a_hang_up() -> Result<(), String> {
    owner_recv_over_an_abused_bell("bell-closed", "close")
}

/// The owner's blocking send on a full ring, waiting for room on a
/// doorbell the peer shut down: a hang-up, not a busy loop.
fn owner_send_treats_a_shut_down_doorbell_as_a_hang_up() -> Result<(), String> {
    let (mut otx, _orx, child) = abused_channel("bell-shut-tx", "shutdown")?;
    let r = within(
        Duration::from_secs(10),
        "owner send_timeout(3s)",
        move || {
            let (t, cpu) = (Instant::now(), thread_cpu());
            let mut last = Ok(());
            for _ in 0..9 {
                last = otx
                    .send_timeout(b"x", Duration::from_secs(3))
                    .map_err(|e| e.error().to_string());
                if last.is_err() {
                    break;
                }
            }
            (last, t.elapsed(), thread_cpu() - cpu)
        },
    );
    kill(child);
    let (r, took, cpu) = r?;
    match r {
        Err(e) if e == Error::PeerClosed.to_string() && cpu < Duration::from_millis(500) => Ok(()),
        other => Err(format!(
            "9 sends into 8 slots over a shut-down room doorbell: {other:?} after {took:?}, \
             {cpu:?} of CPU"
        )),
    }
}

/// An epoll user of the owner's receiver: once the peer shut its doorbell
/// down, arm + try_recv report the hang-up instead of a fd that is readable
/// forever with nothing behind it.
fn owner_epoll_user_sees_a_shut_down_doorbell_as_a_hang_up() -> Result<(), String> {
    let (_otx, mut orx, child) = abused_channel("bell-shut-ep", "shutdown")?;
    let r = within(Duration::from_secs(10), "owner epoll loop", move || {
        let fd = orx.as_raw_fd();
        let mut empty_wakeups = 0u32;
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(2) {
            match orx.arm() {
                Ok(true) => {}
                Ok(false) => {}
                Err(e) => return Ok(format!("arm: {e}")),
            }
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut p, 1, 100) };
            match orx.try_recv() {
                Ok(Some(_)) => return Err("a message from nowhere".to_string()),
                Ok(None) => empty_wakeups += u32::from(p.revents != 0),
                Err(Error::PeerClosed) => return Ok("PeerClosed".into()),
                Err(e) => return Ok(format!("try_recv: {e}")),
            }
        }
        Err(format!(
            "no hang-up in 2s: {empty_wakeups} wake-ups found nothing"
        ))
    });
    kill(child);
    match r? {
        Ok(s) if s == "PeerClosed" => Ok(()),
        Ok(s) => Err(format!("expected PeerClosed, got {s}")),
        Err(e) => Err(e),
    }
}

fn fds_linking_to(what: &str) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .parse::<RawFd>()
                .is_ok_and(|fd| fd_link(fd).contains(what))
        })
        .count()
}

/// Junk packets of every size, many carrying descriptors, flooded into
/// the owner's doorbells: the owner still gets the real message, installs
/// none of the descriptors, and neither blocks nor fails.
fn doorbell_junk_and_descriptors_never_reach_the_owner() -> Result<(), String> {
    let (mut otx, mut orx, child) = abused_channel("bell-junk", "junk")?;
    let r = within(Duration::from_secs(10), "owner recv + send", move || {
        let m = orx
            .recv_timeout(Duration::from_secs(5))
            .map(|m| m.map(|m| m.payload().to_vec()));
        // Fill the ring and more: the room doorbell is full of junk too.
        let s = otx
            .send_timeout(b"y", Duration::from_millis(200))
            .map_err(|e| e.error().to_string());
        (m, s, fds_linking_to("sipc-junk"))
    });
    kill(child);
    match r? {
        (Ok(Some(m)), Ok(()), 0) if m == b"real" => Ok(()),
        (m, s, n) => Err(format!(
            "after the junk: recv {:?}, send {s:?}, {n} junk descriptors in the owner",
            m.map(|m| m.map(|m| String::from_utf8_lossy(&m).into_owned()))
        )),
    }
}

// ---------------------------------------------------------------------------
// Second pass (b): slowloris at the handshake bound
// ---------------------------------------------------------------------------

fn raw_connect_abstract(name: &str) -> Result<OwnedFd, String> {
    let fd = raw_seqpacket();
    // SAFETY: sockaddr_un is plain data; zero is valid.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let b = format!("secure_ipc/{name}").into_bytes();
    for (i, c) in b.iter().enumerate() {
        sa.sun_path[1 + i] = *c as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + 1 + b.len();
    // SAFETY: sa is a valid sockaddr_un of length len.
    let r = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_un).cast(),
            len as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(format!("connect: {}", std::io::Error::last_os_error()));
    }
    Ok(fd)
}

/// Role (another uid): open 40 connections, keep every one the owner
/// greets with READY, and never say anything.
fn role_slot_hog(name: &str) -> Result<(), String> {
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..40 {
        let s = raw_connect_abstract(name)?;
        match raw_recv(&s, Duration::from_secs(5)) {
            Ok(p) if p == MAGIC_READY => held.push(s),
            _ => refused += 1,
        }
    }
    println!("held {} refused {refused}", held.len());
    std::thread::sleep(Duration::from_secs(60));
    Ok(())
}

fn one_uid_holding_every_handshake_slot_does_not_lock_out_another() -> Result<(), String> {
    let name = uniq("hog");
    // A policy that admits every uid: the hog's connections are admitted
    // into handshakes (a uid the policy refuses never holds a slot).
    let o = opts().abstract_socket().policy(PeerPolicy::default());
    let (_otx, _orx) = Channel::create(&name, &o).map_err(|e| e.to_string())?;
    let mut child = role_cmd("slot-hog", &name)
        .uid(65534)
        .gid(65534)
        .spawn()
        .map_err(|e| e.to_string())?;
    let line = match read_line_within(&mut child, Duration::from_secs(30)) {
        Ok(l) if l.starts_with("held") => l,
        other => {
            kill(child);
            return Err(format!("hog: {other:?}"));
        }
    };
    let t = Instant::now();
    let r = within(Duration::from_secs(10), "attach", move || {
        Channel::attach(&name, &opts().abstract_socket()).map(|_| ())
    });
    let took = t.elapsed();
    kill(child);
    match r {
        Ok(Ok(())) if took < Duration::from_secs(3) => Ok(()),
        Ok(r) => Err(format!(
            "hog `{line}`: attach of another uid: {r:?} after {took:?}"
        )),
        Err(e) => Err(format!("hog `{line}`: {e}")),
    }
}

// ---------------------------------------------------------------------------
// Second pass (c): squatting the socket path or its directory
// ---------------------------------------------------------------------------

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn owner_refuses_a_socket_dir_that_another_uid_can_write() -> Result<(), String> {
    let dir = tmpdir("dir-777");
    chmod(&dir, 0o777);
    let r = Channel::create(&uniq("d777"), &opts().socket_dir(&dir));
    let _ = std::fs::remove_dir_all(&dir);
    match r {
        Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::PermissionDenied => Ok(()),
        Err(e) => Err(format!("expected an insecure-directory error, got {e}")),
        Ok(_) => Err("created a channel in a directory of mode 0777".into()),
    }
}

fn owner_refuses_a_symlinked_socket_dir() -> Result<(), String> {
    let real = tmpdir("dir-real");
    chmod(&real, 0o700);
    let link = real.with_extension("link");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&real, &link).map_err(|e| e.to_string())?;
    let r = Channel::create(&uniq("dlink"), &opts().socket_dir(&link));
    let _ = std::fs::remove_file(&link);
    let _ = std::fs::remove_dir_all(&real);
    match r {
        Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::PermissionDenied => Ok(()),
        Err(e) => Err(format!("expected an insecure-directory error, got {e}")),
        Ok(_) => Err("created a channel through a symlinked directory".into()),
    }
}

/// Something that is not a socket at the socket path: refused, and left
/// exactly as it was (never removed, never followed).
fn squatted_path(tag: &str, plant: impl FnOnce(&Path, &Path)) -> Result<(), String> {
    let dir = tmpdir(tag);
    chmod(&dir, 0o700);
    let name = uniq(tag);
    let path = dir.join(format!("{name}.sock"));
    let target = dir.join("target");
    std::fs::write(&target, b"keep me").map_err(|e| e.to_string())?;
    plant(&path, &target);
    let before = std::fs::symlink_metadata(&path).map_err(|e| e.to_string())?;
    let r = Channel::create(&name, &opts().socket_dir(&dir)).map(|_| ());
    let after = std::fs::symlink_metadata(&path).ok();
    let content = std::fs::read(&target).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let intact = after.is_some_and(|a| {
        use std::os::unix::fs::MetadataExt;
        a.ino() == before.ino() && a.file_type() == before.file_type()
    }) && content == b"keep me";
    match r {
        Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::AlreadyExists && intact => Ok(()),
        r => Err(format!(
            "create over a squatted path: {r:?}, squatter intact: {intact}"
        )),
    }
}

fn owner_refuses_a_file_squatting_the_socket_path() -> Result<(), String> {
    squatted_path("sq-file", |p, _| {
        std::fs::write(p, b"squat").expect("write")
    })
}

fn owner_refuses_a_symlink_squatting_the_socket_path() -> Result<(), String> {
    squatted_path("sq-link", |p, t| {
        std::os::unix::fs::symlink(t, p).expect("symlink")
    })
}

/// Role (another uid): bind and listen on `SIPC_TEST_DIR/NAME.sock` with
/// raw sockets, as a squatter that got there first.
fn role_path_squatter(name: &str) -> Result<(), String> {
    let dir = PathBuf::from(std::env::var("SIPC_TEST_DIR").map_err(|e| e.to_string())?);
    let path = dir.join(format!("{name}.sock"));
    let fd = raw_seqpacket();
    // SAFETY: sockaddr_un is plain data; zero is valid.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let b = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    for (i, c) in b.iter().enumerate() {
        sa.sun_path[i] = *c as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + b.len() + 1;
    // SAFETY: sa is a valid sockaddr_un of length len; listen on our socket.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_un).cast(),
            len as _,
        ) == 0
            && libc::listen(fd.as_raw_fd(), 8) == 0
    };
    if !r {
        return Err(format!("bind: {}", std::io::Error::last_os_error()));
    }
    chmod(&path, 0o777);
    println!("bound");
    std::thread::sleep(Duration::from_secs(60));
    Ok(())
}

fn attacher_refuses_a_squatter_on_the_socket_path() -> Result<(), String> {
    let dir = tmpdir("sq-path");
    chmod(&dir, 0o777);
    let name = uniq("sq-path");
    let mut child = role_cmd("path-squatter", &name)
        .env("SIPC_TEST_DIR", &dir)
        .uid(65534)
        .gid(65534)
        .spawn()
        .map_err(|e| e.to_string())?;
    let line = read_line_within(&mut child, Duration::from_secs(10));
    let r = match line {
        Ok(l) if l == "bound" => within(Duration::from_secs(10), "attach", {
            let (name, dir) = (name.clone(), dir.clone());
            move || Channel::attach(&name, &opts().socket_dir(&dir)).map(|_| ())
        }),
        other => Err(format!("squatter: {other:?}")),
    };
    kill(child);
    let _ = std::fs::remove_dir_all(&dir);
    match r? {
        Err(Error::OwnerRejected) => Ok(()),
        other => Err(format!("attach to a squatter of uid 65534: {other:?}")),
    }
}

// ---------------------------------------------------------------------------
// Second pass (d): the connecting process is gone before the owner looks
// ---------------------------------------------------------------------------

/// Role: run a channel owner (default policy: this uid) on `SIPC_TEST_DIR`,
/// or without it on the abstract name, admitting every uid.
fn role_plain_owner(name: &str) -> Result<(), String> {
    let o = match std::env::var("SIPC_TEST_DIR") {
        Ok(dir) => opts().socket_dir(dir),
        Err(_) => opts().abstract_socket().policy(PeerPolicy::default()),
    };
    let _ch = Channel::create(name, &o).map_err(|e| e.to_string())?;
    println!("ready");
    std::thread::sleep(Duration::from_secs(60));
    Ok(())
}

/// Role: connect to the channel, hand the connection to the process on
/// stdin (a Unix socket) and exit.
fn role_connect_and_exit(name: &str) -> Result<(), String> {
    let dir = PathBuf::from(std::env::var("SIPC_TEST_DIR").map_err(|e| e.to_string())?);
    let s = raw_connect(&dir.join(format!("{name}.sock")))?;
    raw_send(&borrowed(0), b"c", &[s.as_raw_fd()])
}

fn recv_fd(sock: &OwnedFd) -> Result<OwnedFd, String> {
    let mut b = [0u8; 8];
    let mut iov = libc::iovec {
        iov_base: b.as_mut_ptr().cast(),
        iov_len: b.len(),
    };
    let mut cbuf = [0u64; 8];
    // SAFETY: msghdr is plain data; zero is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    // SAFETY: msg describes valid buffers for the call.
    if unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) } <= 0 {
        return Err(format!("recvmsg: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: reads the first control header the kernel wrote, if any.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        if c.is_null() || (*c).cmsg_type != libc::SCM_RIGHTS {
            return Err("no descriptor".into());
        }
        let fd = libc::CMSG_DATA(c).cast::<libc::c_int>().read_unaligned();
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// The process that connected has exited (and its pid is free for reuse)
/// before the owner's listener looks at the connection (the owner was
/// stopped); the connection lives on in another process. The owner must
/// not admit it on credentials that name a process that is gone.
fn owner_refuses_a_connection_whose_process_exited_before_the_check() -> Result<(), String> {
    let name = uniq("exited");
    let dir = tmpdir("exited");
    chmod(&dir, 0o700);
    let mut owner = role_cmd("plain-owner", &name)
        .env("SIPC_TEST_DIR", &dir)
        .spawn()
        .map_err(|e| e.to_string())?;
    match read_line_within(&mut owner, Duration::from_secs(10)) {
        Ok(l) if l == "ready" => {}
        other => {
            kill(owner);
            return Err(format!("owner: {other:?}"));
        }
    }
    let opid = owner.id() as libc::pid_t;
    // SAFETY: signals a child this test started.
    unsafe { libc::kill(opid, libc::SIGSTOP) };
    // The stop is asynchronous: wait until every thread of the owner is
    // stopped, so its listener cannot look at the connection before the
    // connecting process is gone.
    let stopped = |pid: libc::pid_t| {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .all(|t| {
                std::fs::read_to_string(t.path().join("stat")).is_ok_and(|st| {
                    st.rsplit(')')
                        .next()
                        .is_some_and(|r| r.trim_start().starts_with('T'))
                })
            })
    };
    let t = Instant::now();
    while !stopped(opid) && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let result = (|| {
        let mut sv = [0 as libc::c_int; 2];
        // SAFETY: socketpair writes two fds into the array.
        if unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                sv.as_mut_ptr(),
            )
        } != 0
        {
            return Err("socketpair".to_string());
        }
        // SAFETY: two fresh descriptors we own.
        let (mine, theirs) = unsafe { (OwnedFd::from_raw_fd(sv[0]), OwnedFd::from_raw_fd(sv[1])) };
        let mut c = role_cmd("connect-and-exit", &name);
        c.env("SIPC_TEST_DIR", &dir).stdin(Stdio::from(theirs));
        let st = c.status().map_err(|e| e.to_string())?;
        if !st.success() {
            return Err(format!("connector: {st}"));
        }
        let conn = recv_fd(&mine)?;
        // SAFETY: resumes the child we stopped.
        unsafe { libc::kill(opid, libc::SIGCONT) };
        let p = raw_recv(&conn, Duration::from_secs(5))?;
        Ok(describe(&p))
    })();
    // SAFETY: as above (a no-op if it already runs).
    unsafe { libc::kill(opid, libc::SIGCONT) };
    kill(owner);
    let _ = std::fs::remove_dir_all(&dir);
    match result?.as_str() {
        "REFUSE 1" => Ok(()),
        other => Err(format!(
            "a connection whose process exited before the check got {other}"
        )),
    }
}

/// Guard of the check above: a live connector the owner may not signal
/// (another uid: signal 0 gives EPERM, not ESRCH) is alive, and admitted.
fn owner_of_another_uid_admits_a_live_connector_it_may_not_signal() -> Result<(), String> {
    let name = uniq("eperm");
    let mut owner = role_cmd("plain-owner", &name)
        .uid(65534)
        .gid(65534)
        .spawn()
        .map_err(|e| e.to_string())?;
    let r = match read_line_within(&mut owner, Duration::from_secs(10)) {
        Ok(l) if l == "ready" => within(Duration::from_secs(10), "attach", {
            let name = name.clone();
            move || {
                let o = opts().abstract_socket().owner_policy(OwnerPolicy {
                    uid: Some(65534),
                    identity_pub: None,
                });
                Channel::attach(&name, &o).map(|_| ())
            }
        }),
        other => Err(format!("owner: {other:?}")),
    };
    kill(owner);
    match r? {
        Ok(()) => Ok(()),
        Err(e) => Err(format!("attach to an owner of uid 65534: {e}")),
    }
}

// ---------------------------------------------------------------------------
// Second pass (e): the owner drops while a peer is mid-handshake
// ---------------------------------------------------------------------------

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Racer: an attacher thread and the owner's drop cross the handshake at
/// every point, 200 times on one name. No panic, no hang, every attach
/// ends with a session or a clean error, the name is free again at once,
/// and no descriptor outlives the round.
fn owner_drop_racing_an_attach_leaks_nothing_and_ends_cleanly() -> Result<(), String> {
    let name = uniq("droprace");
    let base = open_fds();
    let mut outcomes = std::collections::BTreeMap::<String, u32>::new();
    for i in 0..200u32 {
        let (tx, rx) = Channel::create(&name, &opts())
            .map_err(|e| format!("round {i}: create right after the drop: {e}"))?;
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let (b, n) = (barrier.clone(), name.clone());
        let attacher = std::thread::spawn(move || {
            b.wait();
            match Channel::attach(&n, &opts()) {
                Ok((_ptx, mut prx)) => match prx.recv_timeout(Duration::from_secs(5)) {
                    Err(Error::PeerClosed) => "attached, then PeerClosed".to_string(),
                    other => format!(
                        "attached, then {:?}",
                        other.map(|m| m.map(|m| m.payload().len()))
                    ),
                },
                Err(e) => format!("{e:?}"),
            }
        });
        barrier.wait();
        // Drop at a different point of the handshake each round.
        let spin = Instant::now() + Duration::from_micros(u64::from(i % 40) * 50);
        while Instant::now() < spin {
            std::hint::spin_loop();
        }
        drop(tx);
        drop(rx);
        let (rtx, rrx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = rtx.send(attacher.join());
        });
        let out = rrx
            .recv_timeout(Duration::from_secs(15))
            .map_err(|_| format!("round {i}: the attacher hung"))?
            .map_err(|_| format!("round {i}: the attacher panicked"))?;
        *outcomes.entry(out).or_default() += 1;
    }
    let clean =
        |o: &str| o == "attached, then PeerClosed" || o == "NoSuchChannel" || o == "PeerClosed";
    // Handshake threads of the last rounds end on their own; give them time.
    let t = Instant::now();
    while open_fds() > base && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let now = open_fds();
    let unclean: Vec<_> = outcomes.iter().filter(|(o, _)| !clean(o)).collect();
    if now > base || !unclean.is_empty() {
        return Err(format!(
            "{base} fds before, {now} after; outcomes {outcomes:?}"
        ));
    }
    Ok(())
}

type Test = (&'static str, fn() -> Result<(), String>);

const TESTS: &[Test] = &[
    (
        "peer_cannot_block_owner_through_its_doorbells",
        peer_cannot_block_owner_through_its_doorbells,
    ),
    (
        "attacher_refuses_an_owner_of_another_uid",
        attacher_refuses_an_owner_of_another_uid,
    ),
    (
        "idle_connections_do_not_starve_the_listener",
        idle_connections_do_not_starve_the_listener,
    ),
    (
        "listener_refuses_an_attach_that_carries_descriptors",
        listener_refuses_an_attach_that_carries_descriptors,
    ),
    (
        "owner_identity_is_proved_to_an_attacher_that_pins_it",
        owner_identity_is_proved_to_an_attacher_that_pins_it,
    ),
    (
        "concurrent_attachers_get_one_session_and_busy_for_the_rest",
        concurrent_attachers_get_one_session_and_busy_for_the_rest,
    ),
    (
        "recreating_a_channel_right_after_drop_succeeds",
        recreating_a_channel_right_after_drop_succeeds,
    ),
    (
        "gid_policy_uses_the_groups_captured_at_connect",
        gid_policy_uses_the_groups_captured_at_connect,
    ),
    (
        "owner_recv_treats_a_shut_down_doorbell_as_a_hang_up",
        owner_recv_treats_a_shut_down_doorbell_as_a_hang_up,
    ),
    (
        "owner_recv_treats_a_closed_doorbell_as_a_hang_up",
        owner_recv_treats_a_closed_doorbell_as_a_hang_up,
    ),
    (
        "owner_send_treats_a_shut_down_doorbell_as_a_hang_up",
        owner_send_treats_a_shut_down_doorbell_as_a_hang_up,
    ),
    (
        "owner_epoll_user_sees_a_shut_down_doorbell_as_a_hang_up",
        owner_epoll_user_sees_a_shut_down_doorbell_as_a_hang_up,
    ),
    (
        "doorbell_junk_and_descriptors_never_reach_the_owner",
        doorbell_junk_and_descriptors_never_reach_the_owner,
    ),
    (
        "one_uid_holding_every_handshake_slot_does_not_lock_out_another",
        one_uid_holding_every_handshake_slot_does_not_lock_out_another,
    ),
    (
        "owner_refuses_a_socket_dir_that_another_uid_can_write",
        owner_refuses_a_socket_dir_that_another_uid_can_write,
    ),
    (
        "owner_refuses_a_symlinked_socket_dir",
        owner_refuses_a_symlinked_socket_dir,
    ),
    (
        "owner_refuses_a_file_squatting_the_socket_path",
        owner_refuses_a_file_squatting_the_socket_path,
    ),
    (
        "owner_refuses_a_symlink_squatting_the_socket_path",
        owner_refuses_a_symlink_squatting_the_socket_path,
    ),
    (
        "attacher_refuses_a_squatter_on_the_socket_path",
        attacher_refuses_a_squatter_on_the_socket_path,
    ),
    (
        "owner_refuses_a_connection_whose_process_exited_before_the_check",
        owner_refuses_a_connection_whose_process_exited_before_the_check,
    ),
    (
        "owner_of_another_uid_admits_a_live_connector_it_may_not_signal",
        owner_of_another_uid_admits_a_live_connector_it_may_not_signal,
    ),
    (
        "owner_drop_racing_an_attach_leaks_nothing_and_ends_cleanly",
        owner_drop_racing_an_attach_leaks_nothing_and_ends_cleanly,
    ),
];

fn main() {
    if let Ok(role) = std::env::var("SIPC_TEST_ROLE") {
        let name = std::env::var("SIPC_TEST_NAME").unwrap_or_default();
        let r = match role.as_str() {
            "doorbell-jammer" => role_doorbell_jammer(&name),
            "squatter" => role_squatter(&name),
            "group-changer" => role_group_changer(&name),
            "bell-abuser" => role_bell_abuser(&name),
            "slot-hog" => role_slot_hog(&name),
            "path-squatter" => role_path_squatter(&name),
            "plain-owner" => role_plain_owner(&name),
            "connect-and-exit" => role_connect_and_exit(&name),
            other => Err(format!("unknown role {other}")),
        };
        if let Err(e) = r {
            println!("error {e}");
            eprintln!("role {role}: {e}");
            std::process::exit(1);
        }
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for (n, _) in TESTS {
            println!("{n}: test");
        }
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let (mut passed, mut failed) = (0, 0);
    for (n, f) in TESTS {
        if !filters.is_empty() && !filters.iter().any(|flt| n.contains(flt.as_str())) {
            continue;
        }
        let r = std::panic::catch_unwind(f).unwrap_or_else(|_| Err("panicked".into()));
        match r {
            Ok(()) => {
                println!("test {n} ... ok");
                passed += 1;
            }
            Err(e) => {
                println!("test {n} ... FAILED: {e}");
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    // Threads a failed test left stuck must not keep the process alive.
    std::process::exit(if failed > 0 { 1 } else { 0 });
}
