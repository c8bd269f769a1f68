//! The kernel backend: `/dev/secure_ipc`.
//!
//! One open file per endpoint. CREATE/ATTACH make it an endpoint and size
//! its two rings, which are then mapped (memmap2 `MmapRaw`) at the uapi's
//! fixed offsets and driven with the ring crate's halves:
//! `Producer<TxDesc>` over TX (the kernel consumes it on `SIPC_IOC_SEND`,
//! sealing into kernel-only memory) and `Consumer<RxDesc>` over RX (the
//! kernel fills it on `SIPC_IOC_RECV` with opened, stamped messages).
//!
//! Waiting:
//! - for data, in the kernel: `SIPC_IOC_RECV_WAIT` sleeps on the endpoint's
//!   wait queue, which the sender's SEND wakes, and opens what arrived into
//!   RX before it returns: one system call per wake-up;
//! - for data with a module that lacks RECV_WAIT, and for an owner whose
//!   first peer has not attached, on the endpoint's eventfd doorbell, with
//!   the no-lost-wake-up
//!   protocol [O5]/[O6] of the uapi header: drain the eventfd, set
//!   NEED_WAKEUP in RX `cons_flags`, full fence, re-check RX `prod` and the
//!   kernel's `store_prod`/`store_cons` line [O9], sleep only if both say
//!   empty. The sender's SEND signals the doorbell only while NEED_WAKEUP is
//!   set, so a busy receiver costs no doorbell;
//! - for room, in the kernel: a flush that finds the sealed store short of
//!   room for its batch spins on the [O9] line first, then sleeps in
//!   `SIPC_IOC_SEND_WAIT`, which the receiver's RECV wakes and which seals
//!   the whole batch once room for all of it appears: one system call per
//!   batch however often the producer has to wait;
//! - for room with a cancel signal to watch (a `Shutdown` handle) or with
//!   a module that lacks SEND_WAIT, and for the first peer, with
//!   `poll(POLLOUT)` on the device: the kernel wakes its wait queue when a
//!   receiver frees sealed-store room, when a peer attaches and when the
//!   other side hangs up. The eventfd stays the receiver's alone, so the
//!   two halves (possibly on two threads) never consume each other's
//!   wake-ups.
//!
//! [`Sender`](crate::Sender)'s fd is therefore the device (POLLOUT = room),
//! [`Receiver`](crate::Receiver)'s the eventfd (POLLIN = data may be there).
//!
//! This file holds all of the crate's unsafe code for the kernel path:
//! ioctl(2), eventfd(2), poll(2) and the ring mappings.

use crate::backend::{Endpoint, MessageMeta, PeerState, RxBackend, TxBackend};
use crate::shutdown::Signal;
use crate::{Credentials, Error, Options, PeerCredentials, Stats, WaitPolicy};
use bytemuck::Pod;
use memmap2::{MmapOptions, MmapRaw};
use secure_ipc_ring::abi::{self, RxDesc, TxDesc};
use secure_ipc_ring::{Consumer, PeekError, Producer, ReserveError, RingKind};
use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The device file and the receiver's doorbell, shared by both halves.
struct Shared {
    dev: File,
    doorbell: OwnedFd,
}

/// An errno from an ioctl.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Errno(i32);

fn last_errno() -> Errno {
    Errno(
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    )
}

/// ioctl with a size-first uapi struct.
fn ioctl_struct<T: Pod>(fd: RawFd, nr: u32, arg: &mut T) -> Result<i32, Errno> {
    let p: *mut T = arg;
    // SAFETY: `arg` is a live, exclusively borrowed uapi struct whose first
    // field is its size; the kernel copies at most that many bytes in and
    // out.
    let r = unsafe { libc::ioctl(fd, nr as _, p.cast::<u8>()) };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(r)
    }
}

/// ioctl without an argument (SEND, RECV); returns the count.
fn ioctl_count(fd: RawFd, nr: u32) -> Result<u32, Errno> {
    loop {
        match ioctl_value(fd, nr, 0) {
            Err(Errno(libc::EINTR)) => continue,
            r => return r,
        }
    }
}

/// An ioctl whose argument is a plain value (RECV_WAIT's timeout); EINTR is
/// returned, not retried, so that a caller with a deadline re-checks it.
fn ioctl_value(fd: RawFd, nr: u32, value: usize) -> Result<u32, Errno> {
    // SAFETY: SEND and RECV take no argument and RECV_WAIT a value; the
    // kernel dereferences no pointer for any of them.
    let r = unsafe { libc::ioctl(fd, nr as _, value) };
    if r >= 0 {
        Ok(r as u32)
    } else {
        Err(last_errno())
    }
}

/// The crate error for an errno of the device (`what` says which call).
fn errno_error(e: Errno, what: &'static str) -> Error {
    match e.0 {
        libc::EPIPE => Error::PeerClosed,
        libc::EBADMSG => Error::AuthenticationFailed,
        libc::EACCES | libc::EPERM => Error::NotPermitted,
        libc::ENOENT => Error::NoSuchChannel,
        libc::EEXIST => Error::ChannelExists,
        libc::EBUSY => Error::Busy,
        libc::EKEYREJECTED => Error::IdentityRejected,
        libc::ENOTCONN => Error::NotConnected,
        libc::EPROTO => Error::Protocol(format!(
            "{what}: the kernel found an invalid index or descriptor in this process's rings (EPROTO)"
        )),
        libc::EINVAL => Error::InvalidArgument(what),
        errno => Error::Io(std::io::Error::from_raw_os_error(errno)),
    }
}

fn open_device() -> Result<File, Error> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(crate::DEVICE_PATH)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT | libc::ENODEV | libc::ENXIO) => Error::ModuleNotLoaded,
            Some(libc::EACCES | libc::EPERM) => Error::NotPermitted,
            _ => Error::Io(e),
        })
}

/// EKEYREJECTED: the identity proof, or else the pre-shared key, did not match.
fn key_rejected(opts: &Options) -> Error {
    if opts.identity.is_none() && opts.psk.is_some() {
        Error::PskMismatch
    } else {
        Error::IdentityRejected
    }
}

/// Kernel default epochs unless the caller asked for others.
fn rekey_args(opts: &Options) -> (u64, u64) {
    let r = if opts.rekey_records == crate::DEFAULT_REKEY_RECORDS {
        0
    } else {
        opts.rekey_records
    };
    let b = if opts.rekey_bytes == crate::DEFAULT_REKEY_BYTES {
        0
    } else {
        opts.rekey_bytes
    };
    (r, b)
}

/// Creates channel `name` on a new endpoint (owner).
pub(crate) fn create(name: &str, opts: &Options) -> Result<Endpoint, Error> {
    let dev = open_device()?;
    let (rekey_records, rekey_bytes) = rekey_args(opts);
    let p = &opts.policy;
    let mut flags = 0;
    if p.uid.is_some() {
        flags |= abi::SIPC_POLICY_UID;
    }
    if p.gid.is_some() {
        flags |= abi::SIPC_POLICY_GID;
    }
    if p.pidns.is_some() {
        flags |= abi::SIPC_POLICY_PIDNS;
    }
    if p.identity_pub.is_some() {
        flags |= abi::SIPC_POLICY_IDENTITY;
    }
    if opts.psk.is_some() {
        flags |= abi::SIPC_CREATE_PSK;
    }
    let mut c = abi::Create {
        size: std::mem::size_of::<abi::Create>() as u32,
        flags,
        name: crate::encode_name(name)?,
        entries: opts.slots,
        slot_size: opts.slot_size,
        peer_uid: p.uid.unwrap_or(0),
        peer_gid: p.gid.unwrap_or(0),
        peer_pidns_fd: p.pidns.as_ref().map_or(0, |n| n.as_raw_fd()),
        identity_pub: p.identity_pub.unwrap_or([0; 32]),
        psk: opts.psk.as_deref().copied().unwrap_or([0; 32]),
        rekey_records,
        rekey_bytes,
        ..Default::default()
    };
    let r = ioctl_struct(dev.as_raw_fd(), abi::SIPC_IOC_CREATE, &mut c);
    zeroize::Zeroize::zeroize(&mut c.psk);
    r.map_err(|e| match e.0 {
        libc::ENOSPC => Error::Io(std::io::Error::new(
            std::io::ErrorKind::OutOfMemory,
            "the module's channel or memory limit is reached (ENOSPC)",
        )),
        _ => errno_error(
            e,
            "CREATE refused its arguments (geometry beyond the module's limits?)",
        ),
    })?;
    endpoint(dev, c.tx_ring_bytes, c.rx_ring_bytes, opts)
}

/// Attaches to channel `name` on a new endpoint (peer).
pub(crate) fn attach(name: &str, opts: &Options) -> Result<Endpoint, Error> {
    let dev = open_device()?;
    let name32 = crate::encode_name(name)?;
    let mut a = abi::Attach {
        size: std::mem::size_of::<abi::Attach>() as u32,
        name: name32,
        ..Default::default()
    };
    if let Some(identity) = &opts.identity {
        // The kernel's fresh ephemeral key and nonce for this one attempt.
        let mut c = abi::Challenge {
            size: std::mem::size_of::<abi::Challenge>() as u32,
            name: name32,
            ..Default::default()
        };
        ioctl_struct(dev.as_raw_fd(), abi::SIPC_IOC_CHALLENGE, &mut c)
            .map_err(|e| errno_error(e, "CHALLENGE refused its arguments"))?;
        let (proof, _dh) = crate::keys::prove_identity(identity, &name32, &c.kernel_pub, &c.nonce);
        a.flags |= abi::SIPC_ATTACH_PROOF;
        a.proof = proof;
    }
    if let Some(psk) = &opts.psk {
        a.flags |= abi::SIPC_ATTACH_PSK;
        a.psk = **psk;
    }
    let r = ioctl_struct(dev.as_raw_fd(), abi::SIPC_IOC_ATTACH, &mut a);
    // The PSK copy in the argument is no longer needed.
    zeroize::Zeroize::zeroize(&mut a.psk);
    r.map_err(|e| match e.0 {
        libc::EKEYREJECTED => key_rejected(opts),
        _ => errno_error(e, "ATTACH refused its arguments"),
    })?;
    endpoint(dev, a.tx_ring_bytes, a.rx_ring_bytes, opts)
}

fn map_ring(dev: &File, offset: u64, len: u64) -> Result<Arc<MmapRaw>, Error> {
    let len = usize::try_from(len)
        .map_err(|_| Error::Protocol("ring larger than the address space".into()))?;
    MmapOptions::new()
        .offset(offset)
        .len(len)
        .map_raw(dev)
        .map(Arc::new)
        .map_err(Error::Io)
}

fn layout_error(e: impl std::fmt::Display) -> Error {
    Error::Protocol(format!(
        "the kernel's ring header is not what this library expects: {e}"
    ))
}

fn endpoint(dev: File, tx_bytes: u64, rx_bytes: u64, opts: &Options) -> Result<Endpoint, Error> {
    let wait = opts.wait;
    let tx_map = map_ring(&dev, abi::SIPC_OFF_TX_RING, tx_bytes)?;
    let rx_map = map_ring(&dev, abi::SIPC_OFF_RX_RING, rx_bytes)?;
    let tx_base =
        NonNull::new(tx_map.as_mut_ptr()).ok_or_else(|| layout_error("null TX mapping"))?;
    let rx_base =
        NonNull::new(rx_map.as_mut_ptr()).ok_or_else(|| layout_error("null RX mapping"))?;
    // SAFETY: the mapping is tx_map.len() bytes, readable and writable,
    // and lives as long as the producer (keep_alive below); this endpoint's
    // TX ring has exactly one user-space producer, this one; the kernel
    // follows the ring protocol as TX consumer.
    let mut prod = unsafe {
        if opts.ring_compatible_abi {
            Producer::<TxDesc>::from_raw_ring_compatible(tx_base, tx_map.len(), RingKind::Tx)
        } else {
            Producer::<TxDesc>::from_raw(tx_base, tx_map.len(), RingKind::Tx)
        }
    }
    .map_err(layout_error)?;
    prod.keep_alive(tx_map);
    // SAFETY: as above for the RX ring, whose only user-space consumer is
    // this one; the kernel is its producer.
    let mut cons = unsafe {
        if opts.ring_compatible_abi {
            Consumer::<RxDesc>::from_raw_ring_compatible(rx_base, rx_map.len(), RingKind::Rx)
        } else {
            Consumer::<RxDesc>::from_raw(rx_base, rx_map.len(), RingKind::Rx)
        }
    }
    .map_err(layout_error)?;
    cons.keep_alive(rx_map);

    // SAFETY: plain syscall; the new descriptor is owned below.
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if efd < 0 {
        return Err(Error::Io(std::io::Error::last_os_error()));
    }
    // SAFETY: `efd` was just created and belongs to nobody else.
    let doorbell = unsafe { OwnedFd::from_raw_fd(efd) };
    let mut d = abi::Doorbell {
        size: std::mem::size_of::<abi::Doorbell>() as u32,
        flags: 0,
        eventfd: doorbell.as_raw_fd(),
        reserved: 0,
    };
    ioctl_struct(dev.as_raw_fd(), abi::SIPC_IOC_SET_DOORBELL, &mut d)
        .map_err(|e| errno_error(e, "SET_DOORBELL"))?;
    // The Sender's readiness fd: an epoll set watching the device for
    // POLLOUT (sealed-store room), so that, as on the userspace backend,
    // both halves' fds mean "readable: try again" (docs/client-api.md).
    let ready = crate::sys::epoll().map_err(Error::Io)?;
    crate::sys::epoll_add_events(&ready, dev.as_raw_fd(), libc::EPOLLOUT as u32)
        .map_err(Error::Io)?;
    let shared = Arc::new(Shared { dev, doorbell });
    Ok(Endpoint {
        tx: Box::new(KernelTx {
            shared: shared.clone(),
            prod,
            slot: None,
            wait,
            ready,
            send_wait: true,
        }),
        rx: Box::new(KernelRx {
            shared,
            cons,
            current: None,
            wait,
            recv_wait: true,
        }),
    })
}

fn timeout_ms(deadline: Option<Instant>) -> Option<i32> {
    match deadline {
        None => Some(-1),
        Some(d) => {
            let now = Instant::now();
            if d <= now {
                None
            } else {
                Some((d - now).as_millis().clamp(1, i32::MAX as u128) as i32)
            }
        }
    }
}

/// A poll(2)-style timeout (-1: forever) as the argument of RECV_WAIT and
/// SEND_WAIT.
fn kernel_wait_ms(timeout: i32) -> u32 {
    if timeout < 0 {
        abi::SIPC_WAIT_FOREVER
    } else {
        timeout as u32
    }
}

/// poll(2) one fd for `events` with a timeout in ms (-1: forever).
fn poll_fd(fd: RawFd, events: libc::c_short, timeout: i32) -> Result<(), Error> {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut p, 1, timeout) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(Error::Io(e));
        }
    }
    Ok(())
}

/// poll(2) `fd` for `events` and `cancel` for POLLIN, at most `timeout` ms.
fn poll_two(fd: RawFd, events: libc::c_short, cancel: RawFd, timeout: i32) -> Result<(), Error> {
    let mut p = [
        libc::pollfd {
            fd,
            events,
            revents: 0,
        },
        libc::pollfd {
            fd: cancel,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // SAFETY: two valid pollfds.
    let r = unsafe { libc::poll(p.as_mut_ptr(), 2, timeout) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(Error::Io(e));
        }
    }
    Ok(())
}

/// The status bits of the [O9] line as a [`PeerState`].
fn peer_state(st: &secure_ipc_ring::KernelStatus) -> PeerState {
    if st.peer_closed() {
        PeerState::Closed
    } else if st.peer_attached() {
        PeerState::Attached
    } else {
        PeerState::Waiting
    }
}

fn stats(dev: RawFd) -> Result<Stats, Error> {
    let mut s = abi::Stats {
        size: std::mem::size_of::<abi::Stats>() as u32,
        ..Default::default()
    };
    ioctl_struct(dev, abi::SIPC_IOC_STATS, &mut s).map_err(|e| errno_error(e, "STATS"))?;
    Ok(Stats {
        sealed_msgs: s.sealed_msgs,
        sealed_bytes: s.sealed_bytes,
        opened_msgs: s.opened_msgs,
        opened_bytes: s.opened_bytes,
        auth_failures: s.badmsg,
        full_events: s.store_full,
        doorbells_signalled: s.doorbells_signalled,
        doorbells_suppressed: s.doorbells_suppressed,
        rekeys: s.rekeys,
        tx_fill: s.tx_fill,
        rx_fill: s.rx_fill,
        tx_epoch: s.tx_epoch,
        rx_epoch: s.rx_epoch,
    })
}

fn protocol(e: impl std::fmt::Display) -> Error {
    Error::Protocol(e.to_string())
}

/// The sending half: TX ring producer.
struct KernelTx {
    shared: Arc<Shared>,
    prod: Producer<TxDesc>,
    /// Payload area of the held slot (between reserve and commit).
    slot: Option<NonNull<u8>>,
    wait: WaitPolicy,
    /// `raw_fd()`: epoll set of the device for POLLOUT.
    ready: OwnedFd,
    /// The module has SIPC_IOC_SEND_WAIT (cleared on ENOTTY).
    send_wait: bool,
}

// SAFETY: `slot` points into the TX mapping that `prod` keeps alive and
// only this half touches; everything else is Send.
unsafe impl Send for KernelTx {}

impl KernelTx {
    fn dev(&self) -> RawFd {
        self.shared.dev.as_raw_fd()
    }

    /// Everything published in TX has been sealed by the kernel.
    fn drained(&mut self) -> Result<bool, Error> {
        Ok(self.unsealed()? == 0)
    }

    /// One SEND: seals what fits into the sealed store.
    fn send_once(&mut self) -> Result<u32, Error> {
        ioctl_count(self.dev(), abi::SIPC_IOC_SEND).map_err(|e| errno_error(e, "SEND"))
    }

    /// Waits for sealed-store room or for a peer (POLLOUT on the device),
    /// or for `cancel`.
    fn wait_out(&self, deadline: Option<Instant>, cancel: Option<&Signal>) -> Result<(), Error> {
        if matches!(self.wait, WaitPolicy::BusyPoll) {
            std::hint::spin_loop();
            return Ok(());
        }
        match (timeout_ms(deadline), cancel) {
            (Some(t), None) => poll_fd(self.dev(), libc::POLLOUT, t),
            (Some(t), Some(c)) => poll_two(self.dev(), libc::POLLOUT, c.fd(), t),
            (None, _) => Ok(()),
        }
    }

    /// Publishes what is committed and SENDs it all (`push_all`); returns
    /// how many messages were published.
    fn publish_and_push(
        &mut self,
        deadline: Option<Instant>,
        cancel: Option<&Signal>,
    ) -> Result<usize, Error> {
        let n = self.prod.pending() as usize;
        // The kernel consumes TX only inside SEND, never asleep on it: no
        // NEED_WAKEUP check.
        self.prod.publish_without_wake_check();
        self.push_all(deadline, cancel)?;
        Ok(n)
    }

    /// The [O9] line shows a free record in the sealed store (false before
    /// a peer attached: no store yet). Only this half's SEND takes room, so
    /// the hint (whose `store_cons` may lag) can only under-state it: a yes
    /// stays true until our next SEND.
    fn store_room_hint(&self) -> bool {
        let st = self.prod.kernel_status();
        st.store_prod.wrapping_sub(st.store_cons) < st.store_entries
    }

    /// The [O9] line shows the sealed store full: a SEND now would seal
    /// nothing. Only this half's SEND takes room and the kernel publishes
    /// `store_cons` as it frees room, so the hint can only over-state
    /// fullness for a moment; poll(POLLOUT) stays the authority.
    fn store_full_hint(&self) -> bool {
        let st = self.prod.kernel_status();
        st.store_entries != 0
            && st.store_prod.wrapping_sub(st.store_cons) >= st.store_entries
            && !st.peer_closed()
    }

    /// The [O9] line shows room in the sealed store for `n` records (or
    /// for as many as it holds, when `n` is more): one SEND would seal
    /// them all. Under-states room like [`Self::store_room_hint`].
    fn store_room_for_hint(&self, n: u32) -> bool {
        let st = self.prod.kernel_status();
        let free = st
            .store_entries
            .saturating_sub(st.store_prod.wrapping_sub(st.store_cons));
        free >= n.min(st.store_entries) || st.peer_closed()
    }

    /// Records published in TX that no SEND has sealed yet.
    fn unsealed(&mut self) -> Result<u32, Error> {
        match self.prod.free_slots() {
            Ok(n) => Ok(self.prod.capacity() - n),
            Err(ReserveError::Closed) => Err(Error::PeerClosed),
            Err(e) => Err(protocol(e)),
        }
    }

    /// Spins on the [O9] line under `SpinThenBlock` until the sealed store
    /// has room for the `want` unsealed records (no system call while the
    /// consumer catches up, and the SEND after it seals the whole batch
    /// instead of part of it); true when there is.
    fn spin_for_room(&self, want: u32) -> bool {
        if let WaitPolicy::SpinThenBlock { spins } = self.wait {
            for _ in 0..spins {
                if self.store_room_for_hint(want) {
                    return true;
                }
                std::hint::spin_loop();
            }
        }
        self.store_room_for_hint(want)
    }

    /// One SEND_WAIT: sleeps in the kernel until the store has room for all
    /// of TX (or until `deadline`), then SENDs, in one system call. False
    /// when it could not be used (a module without it, or no peer yet).
    fn send_wait_once(&mut self, deadline: Option<Instant>) -> Result<bool, Error> {
        let arg = timeout_ms(deadline).map_or(0, kernel_wait_ms);
        match ioctl_value(self.dev(), abi::SIPC_IOC_SEND_WAIT, arg as usize) {
            Ok(_) | Err(Errno(libc::EINTR)) => Ok(true),
            Err(Errno(libc::ENOTTY)) => {
                self.send_wait = false;
                Ok(false)
            }
            Err(Errno(libc::ENOTCONN)) => Ok(false),
            Err(e) => Err(errno_error(e, "SEND_WAIT")),
        }
    }

    /// SEND until the kernel has taken everything published: waits while
    /// the sealed store lacks room and while no peer has attached yet,
    /// until `deadline` or `cancel`; what is left stays published in TX for
    /// the next SEND.
    ///
    /// A producer that outruns its consumer waits for room once per batch
    /// or so. It spins first (SpinThenBlock), then sleeps in SEND_WAIT,
    /// which seals the batch when room for all of it appears: one system
    /// call per batch either way, where poll + SEND made two, and a SEND
    /// into a store with room for part of a batch a third
    /// (docs/performance.md). With a `cancel` signal to watch, or a module
    /// without SEND_WAIT, it polls the device for POLLOUT instead.
    fn push_all(
        &mut self,
        deadline: Option<Instant>,
        cancel: Option<&Signal>,
    ) -> Result<(), Error> {
        loop {
            let want = self.unsealed()?;
            let mut sent = false;
            if want != 0 && !self.spin_for_room(want) {
                if self.send_wait && cancel.is_none() && !matches!(self.wait, WaitPolicy::BusyPoll)
                {
                    sent = self.send_wait_once(deadline)?;
                } else if self.store_full_hint() {
                    self.wait_out(deadline, cancel)?;
                }
            }
            if !sent {
                match self.send_once() {
                    Ok(_) | Err(Error::NotConnected) => {}
                    Err(e) => return Err(e),
                }
            }
            if self.drained()? {
                return Ok(());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) || cancel.is_some_and(|c| c.is_set()) {
                return Ok(());
            }
            // A store short of room: the wait at the top of the loop. No
            // store yet (no peer): POLLOUT comes when one attaches.
            if self.prod.kernel_status().store_entries == 0 {
                self.wait_out(deadline, cancel)?;
            }
        }
    }
}

impl TxBackend for KernelTx {
    fn max_message_size(&self) -> usize {
        self.prod.slot_size()
    }

    fn reserve(&mut self) -> Result<bool, Error> {
        match self.prod.reserve() {
            Ok(mut s) => {
                self.slot = NonNull::new(s.payload_ptr());
                Ok(self.slot.is_some())
            }
            Err(ReserveError::Full { .. }) | Err(ReserveError::TooLarge { .. }) => {
                self.slot = None;
                Ok(false)
            }
            Err(ReserveError::Closed) => Err(Error::PeerClosed),
            Err(ReserveError::Protocol(e)) => Err(protocol(e)),
        }
    }

    fn buf(&self) -> &[u8] {
        match self.slot {
            // SAFETY: the held slot is slot_size bytes inside the live TX
            // mapping; the kernel never writes TX slots, and reads this one
            // only after it is committed and published (then `slot` is None).
            Some(p) => unsafe { std::slice::from_raw_parts(p.as_ptr(), self.prod.slot_size()) },
            None => &[],
        }
    }

    fn buf_mut(&mut self) -> &mut [u8] {
        match self.slot {
            // SAFETY: as in buf(); `&mut self` makes this the only view.
            Some(p) => unsafe { std::slice::from_raw_parts_mut(p.as_ptr(), self.prod.slot_size()) },
            None => &mut [],
        }
    }

    fn commit(&mut self, len: usize, msg_type: u16) -> Result<(), Error> {
        self.slot = None;
        let desc = TxDesc {
            len: len as u32,
            type_: msg_type,
            flags: 0,
            reserved: 0,
        };
        let s = self.prod.reserve().map_err(|e| match e {
            ReserveError::Closed => Error::PeerClosed,
            e => protocol(e),
        })?;
        s.commit(desc).map_err(|e| protocol(format!("{e:?}")))
    }

    fn flush(&mut self) -> Result<usize, Error> {
        self.publish_and_push(None, None)
    }

    fn flush_by(
        &mut self,
        deadline: Option<Instant>,
        cancel: Option<&Signal>,
    ) -> Result<usize, Error> {
        self.publish_and_push(deadline, cancel)
    }

    fn peer_state(&mut self) -> PeerState {
        peer_state(&self.prod.kernel_status())
    }

    fn ready_for_one(&mut self) -> Result<bool, Error> {
        // What send_batched queued goes first.
        self.prod.publish_without_wake_check();
        self.send_once()?;
        if !self.drained()? {
            return Ok(false);
        }
        // TX is empty; is there a free record in the sealed store?
        Ok(self.store_room_hint())
    }

    fn wait_ready_for_one(
        &mut self,
        deadline: Option<Instant>,
        cancel: Option<&Signal>,
    ) -> Result<(), Error> {
        loop {
            // No system call while TX is drained and the [O9] line shows a
            // free sealed record: the streaming fast path.
            if self.prod.pending() == 0 && self.drained()? && self.store_room_hint() {
                return Ok(());
            }
            match self.ready_for_one() {
                Ok(true) => return Ok(()),
                Ok(false) | Err(Error::NotConnected) => {}
                Err(e) => return Err(e),
            }
            if cancel.is_some_and(|c| c.is_set()) {
                return Err(Error::Shutdown);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::TimedOut);
            }
            self.wait_out(deadline, cancel)?;
        }
    }

    fn flush_closing(&mut self) -> Result<usize, Error> {
        // Never waits (drop must not hang on a stalled peer): publish, one
        // SEND of what fits; anything else is lost with the fd, and only
        // Sender::close reports it.
        let n = self.prod.pending() as usize;
        self.prod.publish_without_wake_check();
        match self.send_once() {
            Ok(_) | Err(Error::NotConnected) => Ok(n),
            Err(e) => Err(e),
        }
    }

    fn undelivered(&mut self) -> Result<usize, Error> {
        match self.send_once() {
            Ok(_) | Err(Error::NotConnected) => {}
            Err(e) => return Err(e),
        }
        let in_tx = self.unsealed()?;
        let st = self.prod.kernel_status();
        let in_store = st
            .store_prod
            .wrapping_sub(st.store_cons)
            .min(st.store_entries);
        if st.peer_closed() && in_tx + in_store > 0 {
            return Err(Error::PeerClosed);
        }
        Ok((in_tx + in_store) as usize)
    }

    fn undelivered_after_hangup(&mut self) -> usize {
        let in_tx = self
            .prod
            .free_slots()
            .map_or(0, |n| self.prod.capacity() - n);
        let st = self.prod.kernel_status();
        (in_tx
            + st.store_prod
                .wrapping_sub(st.store_cons)
                .min(st.store_entries)) as usize
    }

    fn wait_delivered(&mut self, deadline: Instant) -> Result<(), Error> {
        // The peer's RECV frees sealed records without a doorbell to us:
        // poll in short slices.
        let slice = Instant::now() + Duration::from_millis(10);
        self.wait_out(Some(slice.min(deadline)), None)
    }

    fn wait_room(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        match self.send_once() {
            Ok(_) | Err(Error::NotConnected) => {}
            Err(e) => return Err(e),
        }
        if self.prod.free_slots().map_err(protocol)? > 0 {
            return Ok(());
        }
        self.wait_out(deadline, None)
    }

    fn arm(&mut self) -> Result<bool, Error> {
        // The same test as try_send's: TX drained into the store and a free
        // sealed record. "Armed" needs nothing more: the device reports
        // POLLOUT (our ready fd) when the peer's RECV frees a record.
        Ok(!self.ready_for_one()?)
    }

    fn rekey(&mut self) -> Result<u32, Error> {
        let mut r = abi::Rekey {
            size: std::mem::size_of::<abi::Rekey>() as u32,
            flags: abi::SIPC_REKEY_TX,
            ..Default::default()
        };
        ioctl_struct(self.dev(), abi::SIPC_IOC_REKEY, &mut r)
            .map_err(|e| errno_error(e, "REKEY"))?;
        Ok(r.new_epoch)
    }

    fn stats(&self) -> Result<Stats, Error> {
        stats(self.dev())
    }

    fn raw_fd(&self) -> RawFd {
        self.ready.as_raw_fd()
    }
}

/// The message made current by `next`.
struct Current {
    payload: NonNull<u8>,
    len: usize,
}

/// The receiving half: RX ring consumer.
struct KernelRx {
    shared: Arc<Shared>,
    cons: Consumer<RxDesc>,
    current: Option<Current>,
    wait: WaitPolicy,
    /// The module has SIPC_IOC_RECV_WAIT (cleared on ENOTTY).
    recv_wait: bool,
}

// SAFETY: `current` points into the RX mapping that `cons` keeps alive and
// only this half touches; everything else is Send.
unsafe impl Send for KernelRx {}

impl KernelRx {
    fn dev(&self) -> RawFd {
        self.shared.dev.as_raw_fd()
    }

    /// Resets the doorbell's counter (nonblocking eventfd).
    fn drain_doorbell(&self) {
        let mut v = 0u64;
        // SAFETY: reads 8 bytes into a live u64; EAGAIN when already zero.
        let _ = unsafe {
            libc::read(
                self.shared.doorbell.as_raw_fd(),
                (&mut v as *mut u64).cast(),
                8,
            )
        };
    }

    /// Records are waiting in the sealed store, or the peer hung up (either
    /// way RECV has something to say). [O9] hint.
    fn kernel_has_news(&self) -> bool {
        let st = self.cons.kernel_status();
        st.store_prod != st.store_cons || st.status & abi::SIPC_STATUS_PEER_CLOSED != 0
    }

    /// [O5]: NEED_WAKEUP, fence, re-check RX and the sealed store. True if
    /// the caller may sleep on the doorbell (then `finish_sleep`).
    fn prepare_sleep(&mut self) -> Result<bool, Error> {
        self.drain_doorbell();
        if !self.cons.prepare_sleep().map_err(protocol)? {
            return Ok(false);
        }
        // After prepare_sleep()'s full fence: pairs with the smp_mb() after
        // the store_prod release in sipc_seal_publish() (kernel, sender side).
        if self.kernel_has_news() {
            self.cons.finish_sleep();
            return Ok(false);
        }
        Ok(true)
    }
}

impl RxBackend for KernelRx {
    fn max_message_size(&self) -> usize {
        self.cons.slot_size()
    }

    fn next(&mut self) -> Result<Option<MessageMeta>, Error> {
        // Awake now: an armed NEED_WAKEUP would only cost doorbells.
        self.cons.finish_sleep();
        let mut fetched = false;
        loop {
            match self.cons.peek() {
                Ok(s) => {
                    let d = *s.desc();
                    let len = s.len();
                    let payload = NonNull::new(s.payload_ptr().cast_mut())
                        .ok_or_else(|| protocol("null RX slot"))?;
                    // Dropping `s` keeps the message queued until release().
                    self.current = Some(Current { payload, len });
                    return Ok(Some(MessageMeta {
                        seq: d.seq,
                        timestamp_ns: d.timestamp_ns,
                        len,
                        msg_type: d.type_,
                        epoch: d.epoch,
                        sender: Credentials {
                            pid: d.sender_pid,
                            uid: d.sender_uid,
                            gid: d.sender_gid,
                        },
                    }));
                }
                Err(PeekError::Empty) => {}
                Err(PeekError::Closed) => return Err(Error::PeerClosed),
                Err(PeekError::Protocol(e)) => return Err(protocol(e)),
            }
            // RX is empty: ask the kernel to open what is waiting, unless
            // its status line says nothing is (no syscall per empty poll).
            if fetched || !self.kernel_has_news() {
                return Ok(None);
            }
            match ioctl_count(self.dev(), abi::SIPC_IOC_RECV) {
                Ok(0) => return Ok(None),
                Ok(_) => fetched = true,
                // An owner whose first peer has not attached yet.
                Err(Errno(libc::ENOTCONN)) => return Ok(None),
                Err(e) => return Err(errno_error(e, "RECV")),
            }
        }
    }

    fn payload(&self) -> &[u8] {
        match &self.current {
            // SAFETY: the current message's slot holds `len` (<= slot_size,
            // checked by the ring) bytes inside the live RX mapping; the
            // kernel writes an RX slot only after user space released it,
            // which happens in release() (&mut self).
            Some(c) => unsafe { std::slice::from_raw_parts(c.payload.as_ptr(), c.len) },
            None => &[],
        }
    }

    fn release(&mut self) {
        if self.current.take().is_some() {
            if let Ok(s) = self.cons.peek() {
                s.release();
            }
        }
    }

    fn wait_data(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        // A zero wait (the busy-poll loop's hang-up check) must not arm the
        // doorbell: next() already notices a hang-up through the status line.
        let Some(timeout) = timeout_ms(deadline) else {
            return Ok(());
        };
        if matches!(self.wait, WaitPolicy::BusyPoll) {
            std::hint::spin_loop();
            return Ok(());
        }
        if self.recv_wait {
            // Sleep in the kernel: the sender wakes us directly and the
            // records are opened into RX before the call returns (one
            // system call instead of doorbell read + poll + RECV).
            let arg = kernel_wait_ms(timeout);
            match ioctl_value(self.dev(), abi::SIPC_IOC_RECV_WAIT, arg as usize) {
                Ok(_) => return Ok(()),
                // A module without it: use the doorbell from now on.
                Err(Errno(libc::ENOTTY)) => self.recv_wait = false,
                // An owner whose first peer has not attached yet: the
                // doorbell below rings when it does.
                Err(Errno(libc::ENOTCONN)) => {}
                // A signal: let the caller re-check its deadline.
                Err(Errno(libc::EINTR)) => return Ok(()),
                Err(e) => return Err(errno_error(e, "RECV_WAIT")),
            }
        }
        if self.prepare_sleep()? {
            poll_fd(self.shared.doorbell.as_raw_fd(), libc::POLLIN, timeout)?;
            self.cons.finish_sleep();
        }
        Ok(())
    }

    fn arm(&mut self) -> Result<bool, Error> {
        self.prepare_sleep()
    }

    fn peer_state(&mut self) -> PeerState {
        peer_state(&self.cons.kernel_status())
    }

    fn peer_credentials(&self) -> Result<PeerCredentials, Error> {
        let mut p = abi::PeerCred {
            size: std::mem::size_of::<abi::PeerCred>() as u32,
            ..Default::default()
        };
        ioctl_struct(self.dev(), abi::SIPC_IOC_PEER_CRED, &mut p)
            .map_err(|e| errno_error(e, "PEER_CRED"))?;
        Ok(PeerCredentials {
            cred: Credentials {
                pid: p.pid,
                uid: p.uid,
                gid: p.gid,
            },
            pidns_ino: p.pidns_ino,
            userns_ino: p.userns_ino,
            identity_verified: p.identity_verified != 0,
        })
    }

    fn stats(&self) -> Result<Stats, Error> {
        stats(self.dev())
    }

    fn raw_fd(&self) -> RawFd {
        self.shared.doorbell.as_raw_fd()
    }
}
