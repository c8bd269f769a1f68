//! The owner's hand-over from the listener and the two halves the public
//! API wraps ([`TxBackend`], [`RxBackend`]).

use super::*;

/// The listener's hand-over: each half takes its session; a half dropped
/// before that marks itself gone so its session is closed at once.
///
/// States, all under `Pending::slot`'s lock (handshake threads, the owner's
/// halves): `attached == false` (no peer yet; any number of handshakes may
/// be running), then `attached == true` with the sessions deposited, then
/// taken by the halves. The first handshake to finish and find
/// `attached == false` sets it and is the peer; later ones are refused Busy.
#[derive(Default)]
pub(super) struct Deposit {
    pub(super) tx: Option<TxSession>,
    pub(super) rx: Option<RxSession>,
    pub(super) tx_gone: bool,
    pub(super) rx_gone: bool,
    pub(super) attached: bool,
}

/// Where the owner's listener deposits the session for the owner's halves.
pub(super) struct Pending {
    pub(super) slot: Mutex<Deposit>,
    pub(super) ready: Condvar,
    pub(super) stop: OwnedFd,
    /// Signalled once when a session is deposited (never drained): the
    /// owner's readiness fds are readable from then until each half picks
    /// its session up.
    pub(super) attached_evt: OwnedFd,
    /// The listener thread, joined on drop.
    pub(super) listener: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Both owner halves are gone: stop the listener thread and wait for
        // it, so the name is free once the owner's drop returns. It never
        // blocks (it only polls and accepts), so neither does this join.
        sys::eventfd_signal(&self.stop);
        let handle = self.listener.get_mut().ok().and_then(|h| h.take());
        if let Some(h) = handle {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }
}

pub(super) enum TxState {
    Waiting(Arc<Pending>),
    Ready(Box<TxSession>),
}

pub(super) enum RxState {
    Waiting(Arc<Pending>),
    Ready(Box<RxSession>),
}

pub(super) struct UsTx {
    pub(super) state: TxState,
    /// Owner only: keeps the listener running (refusing later attachers
    /// with `Busy`) for as long as this half lives.
    pub(super) _listener: Option<Arc<Pending>>,
    pub(super) max_payload: usize,
    pub(super) staging_fallback: Vec<u8>,
    pub(super) counters: Arc<Counters>,
    /// The readiness fd handed out by `as_raw_fd()`: an epoll set that is
    /// the same for the half's whole life (before attach it holds the
    /// owner's attach notification, after it the bell and the link).
    pub(super) ready: Readiness,
}

pub(super) struct UsRx {
    pub(super) state: RxState,
    /// Owner only: as in [`UsTx`].
    pub(super) _listener: Option<Arc<Pending>>,
    pub(super) max_payload: usize,
    pub(super) counters: Arc<Counters>,
    /// As in [`UsTx`].
    pub(super) ready: Readiness,
}

/// A half's readiness fd: an epoll set, the same for the half's whole
/// life. The session's bell and link join it only once somebody asked for
/// the fd: every descriptor an epoll set watches costs each of its wake-ups
/// a callback, which blocking users (who never ask) should not pay.
pub(super) struct Readiness {
    ep: OwnedFd,
    /// `fd()` was called: register what is watched.
    used: std::cell::Cell<bool>,
    /// (bell, link) of the session, once there is one.
    watched: std::cell::Cell<Option<(RawFd, RawFd)>>,
    registered: std::cell::Cell<bool>,
}

impl Readiness {
    /// An epoll set watching `initial` (the owner's attach notification)
    /// from the start, or nothing.
    pub(super) fn new(initial: Option<RawFd>) -> Result<Self, Error> {
        let ep = sys::epoll()?;
        if let Some(fd) = initial {
            sys::epoll_add(&ep, fd)?;
        }
        Ok(Self {
            ep,
            used: std::cell::Cell::new(false),
            watched: std::cell::Cell::new(None),
            registered: std::cell::Cell::new(false),
        })
    }

    pub(super) fn fd(&self) -> RawFd {
        self.used.set(true);
        self.register();
        self.ep.as_raw_fd()
    }

    pub(super) fn watch(&self, bell: RawFd, link: RawFd) {
        self.watched.set(Some((bell, link)));
        self.register();
    }

    pub(super) fn unwatch(&self, fd: RawFd) {
        sys::epoll_del(&self.ep, fd);
    }

    fn register(&self) {
        if !self.used.get() || self.registered.get() {
            return;
        }
        if let Some((bell, link)) = self.watched.get() {
            // Cannot fail for live, distinct fds short of ENOMEM; then the
            // fd only misses wake-ups the caller's timeouts cover.
            let _ = sys::epoll_add(&self.ep, bell);
            let _ = sys::epoll_add(&self.ep, link);
            self.registered.set(true);
        }
    }
}

impl UsTx {
    /// Picks up the session if the listener has finished one.
    pub(super) fn session(&mut self) -> Option<&mut TxSession> {
        if let TxState::Waiting(p) = &self.state {
            let taken = p.slot.lock().ok().and_then(|mut g| g.tx.take());
            match taken {
                Some(s) => {
                    self.ready.unwatch(p.attached_evt.as_raw_fd());
                    self.ready
                        .watch(s.my_room.as_raw_fd(), s.link.sock.as_raw_fd());
                    self.state = TxState::Ready(Box::new(s));
                }
                None => return None,
            }
        }
        match &mut self.state {
            TxState::Ready(s) => Some(s),
            TxState::Waiting(_) => None,
        }
    }
}

impl UsRx {
    pub(super) fn session(&mut self) -> Option<&mut RxSession> {
        if let RxState::Waiting(p) = &self.state {
            let taken = p.slot.lock().ok().and_then(|mut g| g.rx.take());
            match taken {
                Some(s) => {
                    self.ready.unwatch(p.attached_evt.as_raw_fd());
                    self.ready
                        .watch(s.my_data.as_raw_fd(), s.link.sock.as_raw_fd());
                    self.state = RxState::Ready(Box::new(s));
                }
                None => return None,
            }
        }
        match &mut self.state {
            RxState::Ready(s) => Some(s),
            RxState::Waiting(_) => None,
        }
    }
}

/// Waits on the pending slot's condvar for the listener to attach a peer.
pub(super) fn wait_attach(p: &Pending, deadline: Option<Instant>, tx: bool) {
    let Ok(guard) = p.slot.lock() else { return };
    let ready = |g: &Deposit| if tx { g.tx.is_some() } else { g.rx.is_some() };
    if ready(&guard) {
        return;
    }
    let t = deadline
        .map(|d| d.saturating_duration_since(Instant::now()))
        .unwrap_or(Duration::from_secs(3600));
    let _ = p.ready.wait_timeout_while(guard, t, |g| !ready(g));
}

impl Drop for UsTx {
    fn drop(&mut self) {
        if let TxState::Waiting(p) = &self.state {
            let late = p.slot.lock().ok().and_then(|mut g| {
                g.tx_gone = true;
                g.tx.take()
            });
            drop(late);
        }
    }
}

impl Drop for UsRx {
    fn drop(&mut self) {
        if let RxState::Waiting(p) = &self.state {
            let late = p.slot.lock().ok().and_then(|mut g| {
                g.rx_gone = true;
                g.rx.take()
            });
            drop(late);
        }
    }
}

impl TxBackend for UsTx {
    fn max_message_size(&self) -> usize {
        self.max_payload
    }
    fn reserve(&mut self) -> Result<bool, Error> {
        match self.session() {
            Some(s) => s.reserve(),
            None => Ok(false),
        }
    }
    fn buf(&self) -> &[u8] {
        match &self.state {
            TxState::Ready(s) => &s.staging[..s.max_payload],
            TxState::Waiting(_) => &self.staging_fallback,
        }
    }
    fn buf_mut(&mut self) -> &mut [u8] {
        match &mut self.state {
            TxState::Ready(s) => &mut s.staging[..s.max_payload],
            TxState::Waiting(_) => &mut self.staging_fallback,
        }
    }
    fn commit(&mut self, len: usize, msg_type: u16) -> Result<(), Error> {
        match self.session() {
            Some(s) => s.commit(len, msg_type),
            None => Err(Error::NotConnected),
        }
    }
    fn flush(&mut self) -> Result<usize, Error> {
        match self.session() {
            Some(s) => s.flush(),
            None => Ok(0),
        }
    }
    fn ready_for_one(&mut self) -> Result<bool, Error> {
        // The kernel backend's answer before attach, so that both say the
        // same (the ring's room is checked by the reserve that follows).
        match self.session() {
            Some(_) => Ok(true),
            None => Err(Error::NotConnected),
        }
    }
    fn peer_state(&mut self) -> PeerState {
        match self.session() {
            Some(s) if s.link.check_hangup() => PeerState::Closed,
            Some(_) => PeerState::Attached,
            None => PeerState::Waiting,
        }
    }
    fn wait_room(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        if let Some(s) = self.session() {
            return s.wait_room(deadline);
        }
        if let TxState::Waiting(p) = &self.state {
            wait_attach(p, deadline, true);
        }
        Ok(())
    }
    fn arm(&mut self) -> Result<bool, Error> {
        match self.session() {
            Some(s) => s.arm(),
            // Owner before its peer: the readiness fd turns readable when a
            // peer attaches (the attach notification is in its set).
            None => Ok(true),
        }
    }
    fn undelivered(&mut self) -> Result<usize, Error> {
        match self.session() {
            Some(s) => {
                let n = s.unconsumed();
                if n > 0 && s.link.check_hangup() {
                    return Err(Error::PeerClosed);
                }
                Ok(n)
            }
            None => Ok(0),
        }
    }
    fn undelivered_after_hangup(&mut self) -> usize {
        self.session().map_or(0, |s| s.unconsumed())
    }
    fn wait_delivered(&mut self, deadline: Instant) -> Result<(), Error> {
        match self.session() {
            Some(s) => s.wait_drained(deadline),
            None => Ok(()),
        }
    }
    fn rekey(&mut self) -> Result<u32, Error> {
        match self.session() {
            Some(s) => {
                let e = s.sealer.rekey();
                s.counters.rekeys.fetch_add(1, Ordering::Relaxed);
                s.counters.tx_epoch.store(e, Ordering::Relaxed);
                Ok(e)
            }
            None => Err(Error::NotConnected),
        }
    }
    fn stats(&self) -> Result<Stats, Error> {
        Ok(self.counters.snapshot())
    }
    fn raw_fd(&self) -> RawFd {
        self.ready.fd()
    }
}

impl RxBackend for UsRx {
    fn max_message_size(&self) -> usize {
        self.max_payload
    }
    fn next(&mut self) -> Result<Option<MessageMeta>, Error> {
        match self.session() {
            Some(s) => s.next(),
            None => Ok(None),
        }
    }
    fn payload(&self) -> &[u8] {
        match &self.state {
            RxState::Ready(s) => s.current_payload(),
            RxState::Waiting(_) => &[],
        }
    }
    fn release(&mut self) {
        if let RxState::Ready(s) = &mut self.state {
            s.release_current();
        }
    }
    fn wait_data(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        if let Some(s) = self.session() {
            return s.wait_data(deadline);
        }
        if let RxState::Waiting(p) = &self.state {
            wait_attach(p, deadline, false);
        }
        Ok(())
    }
    fn arm(&mut self) -> Result<bool, Error> {
        match self.session() {
            Some(s) => s.arm(),
            // Owner before its peer: the readiness fd turns readable when a
            // peer attaches (the attach notification is in its set).
            None => Ok(true),
        }
    }
    fn peer_state(&mut self) -> PeerState {
        match self.session() {
            Some(s) if s.link.check_hangup() => PeerState::Closed,
            Some(_) => PeerState::Attached,
            None => PeerState::Waiting,
        }
    }
    fn peer_credentials(&self) -> Result<PeerCredentials, Error> {
        match &self.state {
            RxState::Ready(s) => Ok(s.peer),
            RxState::Waiting(p) => match p.slot.lock() {
                Ok(g) => g.rx.as_ref().map(|s| s.peer).ok_or(Error::NotConnected),
                Err(_) => Err(Error::NotConnected),
            },
        }
    }
    fn stats(&self) -> Result<Stats, Error> {
        Ok(self.counters.snapshot())
    }
    fn raw_fd(&self) -> RawFd {
        self.ready.fd()
    }
}
