//! Peer side: the attacher's half of the handshake, and the stats query.

use super::*;

/// Checks the process serving the name against the attacher's owner
/// policy, from the credentials the kernel captured when it bound the
/// socket, before anything is sent to it.
pub(super) fn check_owner_uid(sock: &OwnedFd, policy: &OwnerPolicy) -> Result<(), Error> {
    if let Some(uid) = policy.uid {
        let (_, owner_uid, _) = sys::peer_cred(sock)?;
        if owner_uid != uid {
            return Err(Error::OwnerRejected);
        }
    }
    Ok(())
}

/// The owner speaks first: READY once it admitted our credentials, or a
/// REFUSE it sends before closing. We send nothing until then, so a
/// refusal is never lost to the reset that closing a socket with unread
/// data causes.
fn await_greeting(sock: &OwnedFd, buf: &mut [u8; 256], deadline: Instant) -> Result<(), Error> {
    let n = recv_plain(sock, buf, deadline)?;
    if let Some(e) = refusal_of(&buf[..n]) {
        return Err(e);
    }
    Ready::parse(&buf[..n]).ok_or_else(|| proto("malformed greeting"))?;
    Ok(())
}

/// Attaches to the channel `name` over its rendezvous socket.
pub(crate) fn attach(name: &str, opts: &Options) -> Result<Endpoint, Error> {
    let name32 = encode_name(name)?;
    let sock = connect_to(name, opts)?;
    check_owner_uid(&sock, &opts.owner_policy)?;
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let mut buf = [0u8; 256];
    await_greeting(&sock, &mut buf, deadline)?;
    sys::send_packet(&sock, Attach::new().bytes(), &[]).map_err(link_error)?;
    let n = recv_plain(&sock, &mut buf, deadline)?;
    if let Some(e) = refusal_of(&buf[..n]) {
        return Err(e);
    }
    let hello = Hello::parse(&buf[..n]).ok_or_else(|| proto("malformed HELLO packet"))?;
    let flags = hello.flags.get();
    if opts.owner_policy.identity_pub.is_some() && flags & HELLO_OWNER_IDENTITY == 0 {
        return Err(Error::OwnerRejected);
    }
    let geo = Geometry::new(hello.slots.get(), hello.slot_size.get())
        .map_err(|_| proto("HELLO geometry out of range"))?;
    let channel_id = hello.channel_id.get();
    let (owner_pub, nonce) = (hello.owner_pub, hello.nonce);

    let peer_secret = StaticSecret::random_from_rng(OsRng);
    let peer_pub = PublicKey::from(&peer_secret).to_bytes();
    let eph = Zeroizing::new(
        peer_secret
            .diffie_hellman(&PublicKey::from(owner_pub))
            .to_bytes(),
    );
    // The owner's proof, if we pin its identity, is keyed from
    // X25519(our ephemeral, owner identity): computed now, the secret dropped.
    let owner_proof_want = opts.owner_policy.identity_pub.map(|id_pub| {
        let dh = Zeroizing::new(
            peer_secret
                .diffie_hellman(&PublicKey::from(id_pub))
                .to_bytes(),
        );
        let t = keys::owner_proof_transcript(&name32, &owner_pub, &peer_pub, &nonce, &id_pub);
        keys::identity_proof(&dh, &t)
    });
    drop(peer_secret);
    let (proof, id_dh) = match (&opts.identity, flags & HELLO_IDENTITY != 0) {
        (Some(id), true) => {
            let (p, dh) = keys::prove_identity(id, &name32, &owner_pub, &nonce);
            (p, Some(dh))
        }
        _ => ([0u8; 32], None),
    };
    let k = keys::derive_session(&SessionInputs {
        name32: &name32,
        owner_pub: &owner_pub,
        peer_pub: &peer_pub,
        eph_dh: &eph,
        identity_dh: id_dh.as_deref(),
        psk: opts.psk.as_deref(),
    });
    let kflags: u32 = if opts.psk.is_some() { KEYS_PEER_PSK } else { 0 };
    let pkt = wire::Keys::new(Le32::new(kflags), peer_pub, proof, k.peer_confirm);
    sys::send_packet(&sock, pkt.bytes(), &[]).map_err(link_error)?;

    let (n, mut fds) = match sys::recv_packet_by(&sock, &mut buf, deadline) {
        Ok((0, _)) => return Err(Error::PeerClosed),
        Ok(r) => r,
        Err(e) => return Err(link_error(e)),
    };
    if let Some(e) = refusal_of(&buf[..n]) {
        return Err(e);
    }
    let accept = match Accept::parse(&buf[..n]) {
        Some(a) if fds.len() == 5 => a,
        _ => return Err(proto("malformed ACCEPT packet")),
    };
    if !keys::ct_eq(&accept.owner_confirm, &k.owner_confirm) {
        return Err(Error::PskMismatch);
    }
    if let Some(want) = owner_proof_want {
        if !keys::ct_eq(&accept.owner_proof, &want) {
            return Err(Error::OwnerRejected);
        }
    }
    let p_room = fds.pop().ok_or_else(|| proto("ACCEPT fds"))?;
    let p_data = fds.pop().ok_or_else(|| proto("ACCEPT fds"))?;
    let o_room = fds.pop().ok_or_else(|| proto("ACCEPT fds"))?;
    let o_data = fds.pop().ok_or_else(|| proto("ACCEPT fds"))?;
    let memfd = fds.pop().ok_or_else(|| proto("ACCEPT fds"))?;
    for bell in [&p_room, &p_data, &o_room, &o_data] {
        sys::check_bell(bell).map_err(|e| Error::Protocol(e.to_string()))?;
    }
    let rb = geo.ring_bytes();
    let (size, seals) = sys::memfd_size_and_seals(&memfd)?;
    if size != 2 * rb as u64 || seals & sys::REQUIRED_SEALS != sys::REQUIRED_SEALS {
        return Err(proto(
            "the shared memory is not a sealed memfd of the announced size",
        ));
    }
    let mapping = Mapping::new(&memfd, 2 * rb)?;
    let peer = socket_peer(&sock)?.creds;
    let keys = Keys {
        channel_id,
        o2p_key: Zeroizing::new(k.o2p_key),
        o2p_salt: k.o2p_salt,
        p2o_key: Zeroizing::new(k.p2o_key),
        p2o_salt: k.p2o_salt,
    };
    let counters = Arc::new(Counters::default());
    let link = Arc::new(Link {
        sock,
        gone: AtomicBool::new(false),
    });
    let session = build_session(SessionParts {
        owner: false,
        geo: &geo,
        mapping,
        bells: Bells {
            my_data: p_data,
            my_room: p_room,
            their_data: o_data,
            their_room: o_room,
        },
        keys,
        link,
        counters: counters.clone(),
        peer,
        opts,
    })?;
    let max = geo.max_payload();
    let link = session.tx.link.sock.as_raw_fd();
    let (tx_ready, rx_ready) = (Readiness::new(None)?, Readiness::new(None)?);
    tx_ready.watch(session.tx.my_room.as_raw_fd(), link);
    rx_ready.watch(session.rx.my_data.as_raw_fd(), link);
    Ok(Endpoint {
        tx: Box::new(UsTx {
            state: TxState::Ready(Box::new(session.tx)),
            _listener: None,
            max_payload: max,
            staging_fallback: Vec::new(),
            counters: counters.clone(),
            ready: tx_ready,
        }),
        rx: Box::new(UsRx {
            state: RxState::Ready(Box::new(session.rx)),
            _listener: None,
            max_payload: max,
            counters,
            ready: rx_ready,
        }),
    })
}

/// Asks a running owner for its counters (`sipc stats`): same user or root only.
pub fn query_stats(name: &str, opts: &Options) -> Result<Stats, Error> {
    encode_name(name)?;
    let sock = connect_to(name, opts)?;
    check_owner_uid(&sock, &opts.owner_policy)?;
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let mut buf = [0u8; 256];
    await_greeting(&sock, &mut buf, deadline)?;
    sys::send_packet(&sock, StatsQuery::new().bytes(), &[]).map_err(link_error)?;
    let n = recv_plain(&sock, &mut buf, deadline)?;
    if let Some(e) = refusal_of(&buf[..n]) {
        return Err(e);
    }
    StatsReply::parse(&buf[..n])
        .map(|r| r.stats())
        .ok_or_else(|| proto("malformed stats reply"))
}
