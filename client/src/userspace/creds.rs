//! Kernel-attested credentials of the other end of a rendezvous socket, the
//! peer policy check, and the handshake's packet helpers.

use super::*;

/// Who is on the other end of a rendezvous socket, from what the kernel
/// captured when that process connected (or bound the listener): never
/// from `/proc/PID` alone, which a process can leave for a reused PID.
pub(super) struct SocketPeer {
    pub(super) creds: PeerCredentials,
    /// Supplementary groups (`SO_PEERGROUPS`); `None` where the kernel
    /// lacks it, and then a gid policy admits the primary gid only.
    pub(super) groups: Option<Vec<u32>>,
    /// Whether the namespace inodes in `creds` are known race-free (from
    /// `SO_PEERPIDFD`); without them a pid-namespace policy refuses.
    pub(super) namespaces_known: bool,
    /// The connecting process is gone (reaped), so the pid in `creds` may
    /// name another process by now: the owner refuses such a connection
    /// (fails closed). Only known where the kernel has `SO_PEERPIDFD`;
    /// without it the connect-time uid/gid still hold and are used.
    pub(super) connector_gone: bool,
}

pub(super) fn socket_peer(sock: &OwnedFd) -> Result<SocketPeer, Error> {
    let (pid, uid, gid) = sys::peer_cred(sock)?;
    let groups = sys::peer_groups(sock);
    let pidfd = sys::peer_pidfd(sock);
    let connector_gone = match &pidfd {
        Ok(Some(p)) => !sys::pidfd_alive(p),
        Ok(None) => false,
        Err(_) => true,
    };
    let ns = match pidfd {
        Ok(Some(p)) if !connector_gone => sys::pidfd_namespaces(&p),
        _ => None,
    };
    let (pidns_ino, userns_ino) = ns.unwrap_or((0, 0));
    Ok(SocketPeer {
        creds: PeerCredentials {
            cred: Credentials { pid, uid, gid },
            pidns_ino,
            userns_ino,
            identity_verified: false,
        },
        groups,
        namespaces_known: ns.is_some(),
        connector_gone,
    })
}

/// The policy check of an attach, from the connecting socket's credentials.
/// Fails closed: a field the kernel cannot attest does not match.
pub(super) fn policy_allows(policy: &PeerPolicy, peer: &SocketPeer) -> bool {
    let c = &peer.creds;
    if let Some(uid) = policy.uid {
        if c.cred.uid != uid {
            return false;
        }
    }
    if let Some(gid) = policy.gid {
        let in_groups = peer.groups.as_ref().is_some_and(|g| g.contains(&gid));
        if c.cred.gid != gid && !in_groups {
            return false;
        }
    }
    if let Some(ns) = &policy.pidns {
        if !peer.namespaces_known || c.pidns_ino != ns.ino() {
            return false;
        }
    }
    true
}

/// Receives one handshake packet by `deadline`; control messages refused.
pub(super) fn recv_plain(
    sock: &OwnedFd,
    buf: &mut [u8],
    deadline: Instant,
) -> Result<usize, Error> {
    match sys::recv_plain_packet(sock, buf, deadline) {
        Ok(0) => Err(Error::PeerClosed),
        Ok(n) => Ok(n),
        Err(e) => Err(link_error(e)),
    }
}

/// The error of a failed receive or send on the rendezvous socket during
/// the handshake. The other side closing it (end of file, or a reset: an
/// owner dropped, or its listener closed, with our packet unread) is
/// [`Error::PeerClosed`]: it went away, nothing was violated.
pub(super) fn link_error(e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ECONNRESET) | Some(libc::EPIPE) | Some(libc::ENOTCONN) => Error::PeerClosed,
        _ if e.kind() == io::ErrorKind::TimedOut => Error::TimedOut,
        _ if e.kind() == io::ErrorKind::InvalidData => Error::Protocol(e.to_string()),
        _ => Error::Io(e),
    }
}

/// The error a REFUSE packet carries, if `pkt` is one.
pub(super) fn refusal_of(pkt: &[u8]) -> Option<Error> {
    Refuse::parse(pkt).map(|r| refusal_error(r.code.get()))
}

pub(super) fn refuse(sock: &OwnedFd, why: Refusal) {
    let _ = sys::send_packet(sock, Refuse::new(Le32::new(why as u32)).bytes(), &[]);
}

pub(super) fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    b
}
