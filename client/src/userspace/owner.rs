//! Owner side: the rendezvous address, the listener and the owner's half of
//! the handshake.

use super::*;

/// Handshakes the listener serves at once. At the bound, a connection of a
/// uid other than the one holding the most handshakes evicts that uid's
/// oldest; a connection of that uid is refused with `Busy`. So one uid
/// (or a few) that stall handshakes never lock out another.
pub(super) const MAX_HANDSHAKES: usize = 32;

/// The handshakes in flight, under `ChannelSetup::handshakes`' lock.
///
/// An entry is added by the listener when it admits a connection and
/// removed either by its own thread (when it ends, or right before it
/// claims the channel, after which it can no longer be evicted) or by the
/// listener evicting it (then it shuts the socket down, which ends that
/// thread's wait at once). Whoever removes the entry owns that decision:
/// a thread that finds its entry gone was evicted and claims nothing.
#[derive(Default)]
pub(super) struct Handshakes {
    next_id: u64,
    /// (id, uid of the connecting process, the connection) oldest first.
    live: Vec<(u64, u32, OwnedFd)>,
}

impl Handshakes {
    /// Registers a handshake of `uid` on `sock`, evicting per
    /// [`MAX_HANDSHAKES`]; `None`: refuse it with `Busy`.
    fn admit(&mut self, uid: u32, sock: &OwnedFd) -> Option<u64> {
        if self.live.len() >= MAX_HANDSHAKES {
            let mut counts = std::collections::HashMap::<u32, usize>::new();
            for (_, u, _) in &self.live {
                *counts.entry(*u).or_default() += 1;
            }
            // The uid holding the most; of equals, the one whose
            // handshake is oldest.
            let top = self
                .live
                .iter()
                .map(|(_, u, _)| *u)
                .min_by_key(|u| std::cmp::Reverse(counts[u]))?;
            // Evicting must even the count out, not shift it to `uid`.
            if counts[&top] <= counts.get(&uid).copied().unwrap_or(0) + 1 {
                return None;
            }
            let at = self.live.iter().position(|(_, u, _)| *u == top)?;
            let (_, _, evicted) = self.live.remove(at);
            sys::shutdown(&evicted);
        }
        let dup = sock.try_clone().ok()?;
        let id = self.next_id;
        self.next_id += 1;
        self.live.push((id, uid, dup));
        Some(id)
    }

    /// Removes handshake `id`; false if the listener evicted it.
    fn remove(&mut self, id: u64) -> bool {
        let before = self.live.len();
        self.live.retain(|(i, _, _)| *i != id);
        self.live.len() != before
    }
}

/// A finished owner-side handshake: the session and the ACCEPT still to send.
pub(super) struct Accepted {
    pub(super) session: Session,
    pub(super) packet: Accept,
    pub(super) fds: Vec<OwnedFd>,
}

/// What every handshake thread of one channel shares.
pub(super) struct ChannelSetup {
    pub(super) name: String,
    pub(super) name32: [u8; 32],
    pub(super) geo: Geometry,
    pub(super) opts: Options,
    /// The policy in force ([`Options::effective_policy`]).
    pub(super) policy: PeerPolicy,
    pub(super) pending: Weak<Pending>,
    pub(super) counters: Arc<Counters>,
    /// Handshakes in flight (at most [`MAX_HANDSHAKES`] not evicted).
    pub(super) handshakes: Mutex<Handshakes>,
}

/// State the listener thread needs.
pub(super) struct Listener {
    pub(super) setup: Arc<ChannelSetup>,
    pub(super) listen: OwnedFd,
    pub(super) stop: OwnedFd,
    pub(super) path: Option<PathBuf>,
}

/// The rendezvous directory: the explicit one, else this uid's runtime
/// directory where it exists, else none (the abstract name).
pub(super) fn rendezvous_dir(opts: &Options) -> Option<PathBuf> {
    if let Some(d) = &opts.socket_dir {
        return Some(d.clone());
    }
    if opts.abstract_socket {
        return None;
    }
    default_runtime_dir()
}

/// `$XDG_RUNTIME_DIR/secure_ipc`, created mode 0700, if `$XDG_RUNTIME_DIR`
/// is an absolute directory of this uid that nobody else can write, and the
/// subdirectory is a real directory (not a symlink) of this uid that only it
/// can enter. Anything else: `None`.
pub(super) fn default_runtime_dir() -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let base = PathBuf::from(std::env::var_os("XDG_RUNTIME_DIR")?);
    if !base.is_absolute() {
        return None;
    }
    let me = sys::geteuid();
    let owned_by_me = |p: &std::path::Path, forbidden: u32| {
        std::fs::symlink_metadata(p)
            .is_ok_and(|m| m.is_dir() && m.uid() == me && m.mode() & forbidden == 0)
    };
    if !owned_by_me(&base, 0o022) {
        return None;
    }
    let dir = base.join("secure_ipc");
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    owned_by_me(&dir, 0o077).then_some(dir)
}

/// Checks an explicit socket directory before the owner binds in it: the
/// directory itself is a real directory (not a symlink) of this uid that
/// nobody else can write, and every directory above it, as written and as
/// resolved, belongs to root or this uid and is not writable by others
/// unless sticky (so nobody else can rename it away or swap a component),
/// and every symlink on the way belongs to root or this uid. Otherwise
/// another uid could replace the socket file or point the path elsewhere.
pub(super) fn check_socket_dir(dir: &std::path::Path) -> Result<(), Error> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let me = sys::geteuid();
    let refuse = |what: String| {
        Err(Error::Io(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "socket directory {}: {what}; use a directory of this user that no other \
                 user can write (mode 0700), or the default",
                dir.display()
            ),
        )))
    };
    let m = std::fs::symlink_metadata(dir).map_err(Error::Io)?;
    if m.file_type().is_symlink() {
        return refuse("is a symlink".into());
    }
    if !m.is_dir() {
        return refuse("is not a directory".into());
    }
    if m.uid() != me {
        return refuse(format!(
            "belongs to uid {}, not to this uid ({me})",
            m.uid()
        ));
    }
    if m.mode() & 0o022 != 0 {
        return refuse(format!(
            "is writable by others (mode {:o})",
            m.permissions().mode() & 0o7777
        ));
    }
    let abs = std::path::absolute(dir).map_err(Error::Io)?;
    let canon = std::fs::canonicalize(dir).map_err(Error::Io)?;
    for a in abs.ancestors().skip(1).chain(canon.ancestors().skip(1)) {
        let m = std::fs::symlink_metadata(a).map_err(Error::Io)?;
        if m.uid() != me && m.uid() != 0 {
            return refuse(format!("{} belongs to uid {}", a.display(), m.uid()));
        }
        let sticky = m.mode() & 0o1000 != 0;
        if m.is_dir() && m.mode() & 0o022 != 0 && !sticky {
            return refuse(format!(
                "{} is writable by others and not sticky",
                a.display()
            ));
        }
    }
    Ok(())
}

pub(super) fn rendezvous_addr<'a>(abs: &'a [u8], path: &'a Option<PathBuf>) -> SockAddr<'a> {
    match path {
        Some(p) => SockAddr::Path(p),
        None => SockAddr::Abstract(abs),
    }
}

pub(super) fn connect_to(name: &str, opts: &Options) -> Result<OwnedFd, Error> {
    let abs = abstract_name(name);
    let path = rendezvous_dir(opts).map(|d| socket_path(&d, name));
    sys::connect(&rendezvous_addr(&abs, &path)).map_err(|e| match e.raw_os_error() {
        Some(libc::ECONNREFUSED) | Some(libc::ENOENT) => Error::NoSuchChannel,
        Some(libc::EACCES) => Error::NotPermitted,
        _ => Error::Io(e),
    })
}

/// Creates the channel: binds the rendezvous socket and starts the listener.
pub(crate) fn create(name: &str, opts: &Options) -> Result<Endpoint, Error> {
    let name32 = encode_name(name)?;
    let geo = Geometry::new(opts.slots, opts.slot_size)?;
    let abs = abstract_name(name);
    if let Some(d) = &opts.socket_dir {
        check_socket_dir(d)?;
    }
    let path = rendezvous_dir(opts).map(|d| socket_path(&d, name));
    let addr = rendezvous_addr(&abs, &path);
    let listen = match sys::listen(&addr) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => {
            // Something not a socket at the path (a file, a symlink): not
            // ours to remove or to follow.
            if let Some(p) = &path {
                use std::os::unix::fs::FileTypeExt;
                let t = std::fs::symlink_metadata(p).map_err(Error::Io)?.file_type();
                if !t.is_socket() {
                    return Err(Error::Io(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!(
                            "{} exists and is not a socket; remove it or use another name",
                            p.display()
                        ),
                    )));
                }
            }
            // A socket file left by an owner that died: reuse it if nobody listens.
            match (&path, sys::connect(&addr)) {
                (Some(p), Err(ce)) if ce.raw_os_error() == Some(libc::ECONNREFUSED) => {
                    std::fs::remove_file(p)?;
                    sys::listen(&addr)?
                }
                _ => return Err(Error::ChannelExists),
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => return Err(Error::NotPermitted),
        Err(e) => return Err(Error::Io(e)),
    };
    let stop = sys::eventfd()?;
    let counters = Arc::new(Counters::default());
    let pending = Arc::new(Pending {
        slot: Mutex::new(Deposit::default()),
        ready: Condvar::new(),
        stop: stop.try_clone()?,
        attached_evt: sys::eventfd()?,
        listener: Mutex::new(None),
    });
    let evt = pending.attached_evt.as_raw_fd();
    let (tx_ready, rx_ready) = (Readiness::new(Some(evt))?, Readiness::new(Some(evt))?);
    let max = geo.max_payload();
    let listener = Listener {
        setup: Arc::new(ChannelSetup {
            name: name.to_string(),
            name32,
            geo,
            policy: opts.effective_policy(),
            opts: opts.clone(),
            pending: Arc::downgrade(&pending),
            counters: counters.clone(),
            handshakes: Mutex::new(Handshakes::default()),
        }),
        listen,
        stop,
        path,
    };
    let handle = std::thread::Builder::new()
        .name(format!("sipc-listen-{name}"))
        .spawn(move || listener.run())?;
    if let Ok(mut g) = pending.listener.lock() {
        *g = Some(handle);
    }
    Ok(Endpoint {
        tx: Box::new(UsTx {
            state: TxState::Waiting(pending.clone()),
            _listener: Some(pending.clone()),
            max_payload: max,
            staging_fallback: vec![0u8; max],
            counters: counters.clone(),
            ready: tx_ready,
        }),
        rx: Box::new(UsRx {
            state: RxState::Waiting(pending.clone()),
            _listener: Some(pending),
            max_payload: max,
            counters,
            ready: rx_ready,
        }),
    })
}

/// Gives a handshake slot back when its thread ends, however it ends.
pub(super) struct HandshakeSlot(pub(super) Arc<ChannelSetup>, pub(super) u64);

impl HandshakeSlot {
    /// Gives the slot back now; false if the listener evicted it.
    pub(super) fn release(&self) -> bool {
        self.0.handshakes.lock().is_ok_and(|mut h| h.remove(self.1))
    }
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        self.release();
    }
}

impl Listener {
    /// Accepts connections until both owner halves are gone. Never waits on
    /// a connection: credentials are checked right after accept, and each
    /// admitted handshake runs on its own thread with its own deadline.
    pub(super) fn run(self) {
        while let Ok(ready) = sys::poll(&[self.listen.as_raw_fd(), self.stop.as_raw_fd()], None) {
            if ready[1].readable || self.setup.pending.strong_count() == 0 {
                break;
            }
            if !ready[0].readable {
                continue;
            }
            // Non-blocking listener: a connection aborted since the poll is
            // EAGAIN here, not a stall.
            let Ok(sock) = sys::accept(&self.listen) else {
                continue;
            };
            self.admit(sock);
        }
        // Release the name before the owner's drop returns (it joins us).
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }

    pub(super) fn admit(&self, sock: OwnedFd) {
        let Ok(peer) = socket_peer(&sock) else {
            return;
        };
        if peer.connector_gone {
            // Credentials of a process that no longer exists: its pid may
            // be another process's now. Nothing is decided on them.
            refuse(&sock, Refusal::NotPermitted);
            return;
        }
        let uid = peer.creds.cred.uid;
        let may_stats = uid == sys::geteuid() || uid == 0;
        let may_attach = policy_allows(&self.setup.policy, &peer);
        if !may_stats && !may_attach {
            refuse(&sock, Refusal::NotPermitted);
            return;
        }
        let id = self
            .setup
            .handshakes
            .lock()
            .ok()
            .and_then(|mut h| h.admit(uid, &sock));
        let Some(id) = id else {
            refuse(&sock, Refusal::Busy);
            return;
        };
        let slot = HandshakeSlot(self.setup.clone(), id);
        let setup = self.setup.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("sipc-hs-{}", setup.name))
            .spawn(move || {
                let _ = serve(&setup, &sock, peer, may_stats, may_attach, &slot);
            });
        // A failed spawn drops the closure, its slot and the socket.
        let _ = spawned;
    }
}

/// Handles one admitted connection by its own deadline.
pub(super) fn serve(
    setup: &ChannelSetup,
    sock: &OwnedFd,
    peer: SocketPeer,
    may_stats: bool,
    may_attach: bool,
    slot: &HandshakeSlot,
) -> Result<(), Error> {
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    sys::send_packet(sock, Ready::new().bytes(), &[])?;
    let mut buf = [0u8; 256];
    let n = match recv_plain(sock, &mut buf, deadline) {
        Ok(n) => n,
        Err(e) => {
            refuse(sock, Refusal::Protocol);
            return Err(e);
        }
    };
    if StatsQuery::parse(&buf[..n]).is_some() {
        // Counters are for the owner's own user (or root) only.
        if may_stats {
            let reply = StatsReply::of(&setup.counters.snapshot());
            let _ = sys::send_packet(sock, reply.bytes(), &[]);
        } else {
            refuse(sock, Refusal::NotPermitted);
        }
        return Ok(());
    }
    if Attach::parse(&buf[..n]).is_none() {
        refuse(sock, Refusal::Protocol);
        return Ok(());
    }
    if !may_attach {
        refuse(sock, Refusal::NotPermitted);
        return Ok(());
    }
    let Some(pending) = setup.pending.upgrade() else {
        return Ok(());
    };
    let busy = pending.slot.lock().map_or(true, |g| g.attached);
    // Not held across the handshake: the owner's drop must not wait for it.
    drop(pending);
    if busy {
        refuse(sock, Refusal::Busy);
        return Ok(());
    }
    let acc = match handshake(setup, sock, peer.creds, deadline) {
        Ok(acc) => acc,
        Err(e) => {
            let why = match e {
                Error::IdentityRejected => Refusal::IdentityRejected,
                Error::PskMismatch => Refusal::PskMismatch,
                _ => Refusal::Protocol,
            };
            refuse(sock, why);
            return Err(e);
        }
    };
    // From here on the handshake cannot be evicted (an evicted one claims
    // nothing: its socket is shut down, so it could never send ACCEPT).
    if !slot.release() {
        return Ok(());
    }
    let Some(pending) = setup.pending.upgrade() else {
        return Ok(());
    };
    // Claim the channel: of handshakes that finish together, the first to
    // take the lock is the peer, the others are Busy. The session is
    // handed to the owner's halves before the peer learns it is attached,
    // so anything the peer does next finds the owner ready. If the ACCEPT
    // does not arrive, the peer closes and the owner sees the hang-up.
    let Session { tx, rx } = acc.session;
    let mut closed = (None, None);
    let claimed = match pending.slot.lock() {
        Ok(mut g) if !g.attached => {
            g.attached = true;
            if g.tx_gone {
                closed.0 = Some(tx);
            } else {
                g.tx = Some(tx);
            }
            if g.rx_gone {
                closed.1 = Some(rx);
            } else {
                g.rx = Some(rx);
            }
            true
        }
        _ => false,
    };
    if !claimed {
        refuse(sock, Refusal::Busy);
        return Ok(());
    }
    // Halves the owner dropped already hang up right away.
    drop(closed);
    pending.ready.notify_all();
    sys::eventfd_signal(&pending.attached_evt);
    drop(pending);
    let fds: Vec<&OwnedFd> = acc.fds.iter().collect();
    let _ = sys::send_packet(sock, acc.packet.bytes(), &fds);
    Ok(())
}

pub(super) fn handshake(
    setup: &ChannelSetup,
    sock: &OwnedFd,
    mut peer: PeerCredentials,
    deadline: Instant,
) -> Result<Accepted, Error> {
    let opts = &setup.opts;
    let owner_secret = StaticSecret::random_from_rng(OsRng);
    let owner_pub = PublicKey::from(&owner_secret).to_bytes();
    let nonce = random32();
    let mut channel_id_b = [0u8; 8];
    OsRng.fill_bytes(&mut channel_id_b);
    let channel_id = u64::from_le_bytes(channel_id_b);
    let mut flags = 0;
    if setup.policy.identity_pub.is_some() {
        flags |= HELLO_IDENTITY;
    }
    if opts.psk.is_some() {
        flags |= HELLO_OWNER_PSK;
    }
    if opts.identity.is_some() {
        flags |= HELLO_OWNER_IDENTITY;
    }
    let hello = Hello::new(
        Le32::new(flags),
        Le32::new(setup.geo.slots),
        Le32::new(setup.geo.slot_size),
        Le64::new(channel_id),
        owner_pub,
        nonce,
    );
    sys::send_packet(sock, hello.bytes(), &[])?;

    let mut buf = [0u8; 256];
    let n = recv_plain(sock, &mut buf, deadline)?;
    let wire::Keys {
        peer_pub,
        proof,
        peer_confirm,
        ..
    } = wire::Keys::parse(&buf[..n]).ok_or_else(|| proto("malformed KEYS packet"))?;

    let eph = Zeroizing::new(
        owner_secret
            .diffie_hellman(&PublicKey::from(peer_pub))
            .to_bytes(),
    );
    let id_dh = match &setup.policy.identity_pub {
        Some(id_pub) => {
            let dh = Zeroizing::new(
                owner_secret
                    .diffie_hellman(&PublicKey::from(*id_pub))
                    .to_bytes(),
            );
            let t = keys::proof_transcript(&setup.name32, &owner_pub, &nonce, id_pub);
            if !keys::ct_eq(&keys::identity_proof(&dh, &t), &proof) {
                return Err(Error::IdentityRejected);
            }
            peer.identity_verified = true;
            Some(dh)
        }
        None => None,
    };
    drop(owner_secret);
    let k = keys::derive_session(&SessionInputs {
        name32: &setup.name32,
        owner_pub: &owner_pub,
        peer_pub: &peer_pub,
        eph_dh: &eph,
        identity_dh: id_dh.as_deref(),
        psk: opts.psk.as_deref(),
    });
    if !keys::ct_eq(&k.peer_confirm, &peer_confirm) {
        return Err(Error::PskMismatch);
    }
    // The owner's identity proof answers the attacher's ephemeral key.
    let owner_proof = match &opts.identity {
        Some(id) => {
            let id_pub = id.public_key();
            let dh = Zeroizing::new(
                id.secret()
                    .diffie_hellman(&PublicKey::from(peer_pub))
                    .to_bytes(),
            );
            let t =
                keys::owner_proof_transcript(&setup.name32, &owner_pub, &peer_pub, &nonce, &id_pub);
            keys::identity_proof(&dh, &t)
        }
        None => [0u8; 32],
    };

    // Shared memory and doorbells for this session only.
    let geo = &setup.geo;
    let rb = geo.ring_bytes();
    let memfd = sys::sealed_memfd(&setup.name, 2 * rb)?;
    let mapping = Mapping::new(&memfd, 2 * rb)?;
    mapping
        .init_ring(0, &geo.layout)
        .map_err(|e| Error::Protocol(e.to_string()))?;
    mapping
        .init_ring(rb, &geo.layout)
        .map_err(|e| Error::Protocol(e.to_string()))?;
    // (sleeping end, ringing end) of each doorbell; each side keeps the
    // sleeping ends of its own bells and the ringing ends of the other's.
    let (o_data, o_data_ring) = sys::bell_pair()?;
    let (o_room, o_room_ring) = sys::bell_pair()?;
    let (p_data, p_data_ring) = sys::bell_pair()?;
    let (p_room, p_room_ring) = sys::bell_pair()?;
    let accept = Accept::new(k.owner_confirm, owner_proof);
    let fds = vec![memfd, o_data_ring, o_room_ring, p_data, p_room];

    let keys = Keys {
        channel_id,
        o2p_key: Zeroizing::new(k.o2p_key),
        o2p_salt: k.o2p_salt,
        p2o_key: Zeroizing::new(k.p2o_key),
        p2o_salt: k.p2o_salt,
    };
    let link = Arc::new(Link {
        sock: sock.try_clone()?,
        gone: AtomicBool::new(false),
    });
    let session = build_session(SessionParts {
        owner: true,
        geo,
        mapping,
        bells: Bells {
            my_data: o_data,
            my_room: o_room,
            their_data: p_data_ring,
            their_room: p_room_ring,
        },
        keys,
        link,
        counters: setup.counters.clone(),
        peer,
        opts,
    })?;
    Ok(Accepted {
        session,
        packet: accept,
        fds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> (OwnedFd, OwnedFd) {
        sys::bell_pair().expect("socketpair")
    }

    /// Whether the other end of `fd` was shut down (reads end of file).
    fn shut(fd: &OwnedFd) -> bool {
        sys::poll(&[fd.as_raw_fd()], Some(Duration::ZERO)).is_ok_and(|r| r[0].hangup)
    }

    #[test]
    fn at_the_bound_the_uid_holding_most_handshakes_loses_its_oldest() {
        let mut h = Handshakes::default();
        let hog: Vec<_> = (0..MAX_HANDSHAKES).map(|_| conn()).collect();
        let ids: Vec<_> = hog
            .iter()
            .map(|(s, _)| h.admit(7, s).expect("room"))
            .collect();
        // The hog's own next connection: refused.
        let (extra, _e) = conn();
        assert_eq!(h.admit(7, &extra), None);
        assert!(hog.iter().all(|(_, far)| !shut(far)));
        // Another uid: admitted, the hog's oldest shut down and gone.
        let (legit, _l) = conn();
        assert!(h.admit(8, &legit).is_some());
        assert!(
            shut(&hog[0].1),
            "the oldest hog connection was not shut down"
        );
        assert!(hog[1..].iter().all(|(_, far)| !shut(far)));
        assert!(
            !h.remove(ids[0]),
            "an evicted handshake still owned its slot"
        );
        assert!(h.remove(ids[1]));
    }

    #[test]
    fn eviction_evens_counts_out_and_never_shifts_the_excess() {
        let mut h = Handshakes::default();
        let mut keep = Vec::new();
        for i in 0..MAX_HANDSHAKES {
            let c = conn();
            h.admit(if i % 2 == 0 { 1 } else { 2 }, &c.0).expect("room");
            keep.push(c);
        }
        // 16 and 16: uid 1 may not take one of uid 2's slots.
        let (s, _f) = conn();
        assert_eq!(h.admit(1, &s), None);
        // A third uid evicts the oldest of the tied pair (uid 1's first).
        assert!(h.admit(3, &s).is_some());
        assert!(shut(&keep[0].1));
        assert!(!shut(&keep[1].1));
    }
}
