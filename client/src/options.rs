//! Channel options and the small value types of the public API.

use crate::keys::IdentityKey;
use crate::Error;
use secure_ipc_ring::abi;
use std::fmt;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// Which implementation carries the channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// The kernel backend when `/dev/secure_ipc` can be opened, else userspace.
    #[default]
    Auto,
    /// `/dev/secure_ipc`: keys and sealing in the kernel.
    Kernel,
    /// memfd rings shared over a Unix-socket rendezvous; sealing in user space.
    Userspace,
}

/// How a blocking call waits for data or room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitPolicy {
    /// Spin on the ring indices and never sleep: lowest latency, one CPU busy.
    BusyPoll,
    /// Sleep on the doorbell at once.
    Block,
    /// Spin `spins` times, then sleep on the doorbell.
    SpinThenBlock {
        /// Empty polls before sleeping.
        spins: u32,
    },
}

impl Default for WaitPolicy {
    fn default() -> Self {
        WaitPolicy::SpinThenBlock { spins: 2000 }
    }
}

/// A pid namespace held open by a file descriptor (an nsfs file).
///
/// The kernel backend hands the descriptor to `SIPC_IOC_CREATE`, which pins
/// the namespace itself: a namespace created later that happens to reuse the
/// inode number never matches. Open it while the namespace's process is
/// known to be the one you mean (for example right after starting the
/// container, or from a pidfd).
#[derive(Clone, Debug)]
pub struct PidNamespace {
    fd: std::sync::Arc<std::os::fd::OwnedFd>,
    ino: u64,
}

impl PidNamespace {
    /// The pid namespace of process `pid` (`/proc/PID/ns/pid`).
    pub fn of_pid(pid: u32) -> Result<Self, Error> {
        Self::open(format!("/proc/{pid}/ns/pid"))
    }

    /// The caller's own pid namespace.
    pub fn current() -> Result<Self, Error> {
        Self::open("/proc/self/ns/pid")
    }

    /// Opens an nsfs path such as `/proc/PID/ns/pid` or a bind mount of one.
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<Self, Error> {
        let f = std::fs::File::open(path).map_err(Error::Io)?;
        Self::from_fd(f.into())
    }

    /// Takes an already open namespace descriptor; anything but a pid
    /// namespace is refused with [`Error::InvalidArgument`].
    pub fn from_fd(fd: std::os::fd::OwnedFd) -> Result<Self, Error> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::MetadataExt;
        /// `NS_GET_NSTYPE` of <linux/nsfs.h>: `_IO(0xb7, 0x3)`.
        const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
        // SAFETY: an argument-less ioctl on a descriptor we own.
        let kind = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE as _) };
        if kind != libc::CLONE_NEWPID {
            return Err(Error::InvalidArgument(
                "not a pid namespace: pass /proc/PID/ns/pid or an fd of one",
            ));
        }
        let f = std::fs::File::from(fd);
        let ino = f.metadata().map_err(Error::Io)?.ino();
        Ok(PidNamespace {
            fd: std::sync::Arc::new(f.into()),
            ino,
        })
    }

    /// Its inode number, as `stat -L -c %i /proc/PID/ns/pid` shows it.
    pub fn ino(&self) -> u64 {
        self.ino
    }
}

/// The nsfs descriptor, valid while `self` (or a clone) lives.
impl std::os::fd::AsFd for PidNamespace {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl std::os::fd::AsRawFd for PidNamespace {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

impl PartialEq for PidNamespace {
    fn eq(&self, other: &Self) -> bool {
        self.ino == other.ino
    }
}

impl Eq for PidNamespace {}

/// Who may attach to a channel; every `Some` field must match.
///
/// The same policy type drives both backends: the kernel checks the
/// attaching file's credentials, the userspace backend the connecting
/// socket's `SO_PEERCRED`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerPolicy {
    /// Peer uid, as the owner's user namespace sees it.
    pub uid: Option<u32>,
    /// Peer gid (primary or supplementary), as the owner sees it.
    pub gid: Option<u32>,
    /// The pid namespace the peer must be in. The kernel backend pins it by
    /// reference; the userspace backend compares its inode number with the
    /// connecting process's.
    pub pidns: Option<PidNamespace>,
    /// X25519 public key whose private key the peer must prove it holds.
    pub identity_pub: Option<[u8; 32]>,
}

impl PeerPolicy {
    /// Only processes of this process's effective uid: what the userspace
    /// backend applies when [`Options::policy`] was never called.
    pub fn same_user() -> Self {
        Self {
            uid: Some(crate::sys::geteuid()),
            ..Self::default()
        }
    }
}

/// What an attacher requires of the process serving the channel's name
/// (userspace backend; under the kernel backend the module is the owner's
/// witness). Every `Some` field must match, or attach fails with
/// [`Error::OwnerRejected`] before the attacher sends anything that
/// depends on its secrets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnerPolicy {
    /// The owner's uid as this process sees it (`SO_PEERCRED` of the
    /// rendezvous socket, captured when the owner bound it).
    pub uid: Option<u32>,
    /// X25519 public key whose private key the owner must prove it holds
    /// (the owner passes that key with [`Options::identity`]).
    pub identity_pub: Option<[u8; 32]>,
}

impl OwnerPolicy {
    /// The owner must run as this process's effective uid (the default).
    pub fn same_user() -> Self {
        Self {
            uid: Some(crate::sys::geteuid()),
            identity_pub: None,
        }
    }
    /// Any owner: only for channels whose owner is another user and that a
    /// PSK or identity key authenticates instead.
    pub fn anyone() -> Self {
        Self::default()
    }
}

/// Options of [`crate::Channel::create`] and [`crate::Channel::attach`] (a builder).
#[derive(Clone)]
pub struct Options {
    pub(crate) backend: Backend,
    pub(crate) slots: u32,
    pub(crate) slot_size: u32,
    pub(crate) policy: PeerPolicy,
    /// Whether [`Options::policy`] was called (else the userspace backend
    /// admits only this uid).
    pub(crate) policy_explicit: bool,
    pub(crate) owner_policy: OwnerPolicy,
    pub(crate) identity: Option<IdentityKey>,
    pub(crate) psk: Option<Zeroizing<[u8; 32]>>,
    pub(crate) wait: WaitPolicy,
    pub(crate) socket_dir: Option<PathBuf>,
    /// Use the abstract socket even where `$XDG_RUNTIME_DIR` exists.
    pub(crate) abstract_socket: bool,
    pub(crate) rekey_records: u64,
    pub(crate) rekey_bytes: u64,
    pub(crate) ring_compatible_abi: bool,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("backend", &self.backend)
            .field("slots", &self.slots)
            .field("slot_size", &self.slot_size)
            .field("policy", &self.policy)
            .field("policy_explicit", &self.policy_explicit)
            .field("owner_policy", &self.owner_policy)
            .field("identity", &self.identity.as_ref().map(|_| "<secret>"))
            .field("psk", &self.psk.as_ref().map(|_| "<secret>"))
            .field("wait", &self.wait)
            .field("socket_dir", &self.socket_dir)
            .field("abstract_socket", &self.abstract_socket)
            .field("rekey_records", &self.rekey_records)
            .field("rekey_bytes", &self.rekey_bytes)
            .field("ring_compatible_abi", &self.ring_compatible_abi)
            .finish()
    }
}

impl Default for Options {
    fn default() -> Self {
        Self::new()
    }
}

/// Default records per key epoch: far below the AES-GCM usage limits.
pub const DEFAULT_REKEY_RECORDS: u64 = 1 << 24;
/// Default plaintext bytes per key epoch (64 GiB).
pub const DEFAULT_REKEY_BYTES: u64 = 1 << 36;

impl Options {
    /// `Auto` backend, 256 slots of 4096 bytes, `SpinThenBlock`. Userspace
    /// backend: peers and owner must have this process's uid
    /// ([`PeerPolicy::same_user`], [`OwnerPolicy::same_user`]), and the
    /// rendezvous is `$XDG_RUNTIME_DIR/secure_ipc/NAME.sock` where that
    /// directory is this uid's alone, else the abstract `@secure_ipc/NAME`.
    /// Kernel backend: no peer policy beyond the device's permissions.
    pub fn new() -> Self {
        Self {
            backend: Backend::Auto,
            slots: 256,
            slot_size: 4096,
            policy: PeerPolicy::default(),
            policy_explicit: false,
            owner_policy: OwnerPolicy::same_user(),
            identity: None,
            psk: None,
            wait: WaitPolicy::default(),
            socket_dir: None,
            abstract_socket: false,
            rekey_records: DEFAULT_REKEY_RECORDS,
            rekey_bytes: DEFAULT_REKEY_BYTES,
            ring_compatible_abi: false,
        }
    }
    /// The backend these options ask for (before `Auto` is resolved).
    pub fn selected_backend(&self) -> Backend {
        self.backend
    }
    /// Chooses the backend.
    pub fn backend(mut self, b: Backend) -> Self {
        self.backend = b;
        self
    }
    /// Slots per direction, a power of two (create only).
    pub fn slots(mut self, n: u32) -> Self {
        self.slots = n;
        self
    }
    /// Bytes per slot, a power of two in 64..=65536 (create only). The
    /// largest message is a little smaller: see `Sender::max_message_size`.
    pub fn slot_size(mut self, n: u32) -> Self {
        self.slot_size = n;
        self
    }
    /// Who may attach (create only). Replaces the userspace backend's
    /// default "same uid" entirely: `PeerPolicy::default()` admits any uid.
    pub fn policy(mut self, p: PeerPolicy) -> Self {
        self.policy = p;
        self.policy_explicit = true;
        self
    }
    /// What the attacher requires of the owner (attach only, userspace
    /// backend); the default is [`OwnerPolicy::same_user`].
    pub fn owner_policy(mut self, p: OwnerPolicy) -> Self {
        self.owner_policy = p;
        self
    }
    /// The peer policy the userspace backend enforces.
    pub(crate) fn effective_policy(&self) -> PeerPolicy {
        if self.policy_explicit {
            self.policy.clone()
        } else {
            PeerPolicy::same_user()
        }
    }
    /// The identity key this side proves: the attacher's to an owner that
    /// pins it, and (userspace backend) the owner's to attachers that pin
    /// it with [`OwnerPolicy::identity_pub`].
    pub fn identity(mut self, s: IdentityKey) -> Self {
        self.identity = Some(s);
        self
    }
    /// A 32-byte pre-shared key mixed into the key schedule (both sides).
    pub fn psk(mut self, k: [u8; 32]) -> Self {
        self.psk = Some(Zeroizing::new(k));
        self
    }
    /// How blocking calls wait.
    pub fn wait(mut self, w: WaitPolicy) -> Self {
        self.wait = w;
        self
    }
    /// Userspace backend: put the rendezvous socket in this directory as
    /// `NAME.sock` instead of the abstract socket `@secure_ipc/NAME`.
    pub fn socket_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.socket_dir = Some(dir.into());
        self
    }
    /// Userspace backend: rendezvous on the abstract socket
    /// `@secure_ipc/NAME` even where `$XDG_RUNTIME_DIR` exists (for a peer
    /// that cannot see this user's runtime directory, such as a container;
    /// anyone in the network namespace can bind an abstract name first, so
    /// pair it with an owner policy, an identity key or a PSK).
    pub fn abstract_socket(mut self) -> Self {
        self.abstract_socket = true;
        self.socket_dir = None;
        self
    }
    /// Records per key epoch before the sender ratchets its key (create/attach).
    pub fn rekey_records(mut self, n: u64) -> Self {
        self.rekey_records = n.max(1);
        self
    }
    /// Plaintext bytes per key epoch before the sender ratchets its key.
    pub fn rekey_bytes(mut self, n: u64) -> Self {
        self.rekey_bytes = n.max(1);
        self
    }

    /// Kernel backend: also accept rings of an older module whose ABI
    /// version is in `secure_ipc_ring::abi::SIPC_RING_COMPATIBLE_ABI_VERSIONS`
    /// (same ring layout; the ioctl structs this crate uses kept their sizes
    /// and offsets). Off by default. It exists so that the guest bench can
    /// measure the module of an older revision beside this one
    /// (`cargo xtask bench --against REV`): do not turn it on in a service,
    /// since an older module lacks this version's fixes.
    pub fn accept_ring_compatible_abi(mut self, on: bool) -> Self {
        self.ring_compatible_abi = on;
        self
    }

    /// An all-zero PSK would mean "no PSK" in the key schedule: refuse it.
    pub(crate) fn check_psk(&self) -> Result<(), Error> {
        match &self.psk {
            Some(k) if k.iter().all(|b| *b == 0) => Err(Error::InvalidArgument(
                "an all-zero pre-shared key is not allowed",
            )),
            _ => Ok(()),
        }
    }

    /// Checks the geometry against the ABI limits.
    pub(crate) fn check_geometry(&self) -> Result<(), Error> {
        let ok_slots = self.slots.is_power_of_two()
            && (abi::SIPC_MIN_ENTRIES..=abi::SIPC_MAX_ENTRIES).contains(&self.slots);
        let ok_size = self.slot_size.is_power_of_two()
            && (abi::SIPC_MIN_SLOT_SIZE..=abi::SIPC_MAX_SLOT_SIZE).contains(&self.slot_size);
        if ok_slots && ok_size {
            Ok(())
        } else {
            Err(Error::InvalidGeometry)
        }
    }
}

/// Checks a channel name and returns it NUL-padded to [`abi::SIPC_NAME_MAX`] bytes.
pub fn encode_name(name: &str) -> Result<[u8; abi::SIPC_NAME_MAX], Error> {
    let b = name.as_bytes();
    if b.is_empty()
        || b.len() >= abi::SIPC_NAME_MAX
        || !b
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
    {
        return Err(Error::InvalidName);
    }
    let mut out = [0u8; abi::SIPC_NAME_MAX];
    out[..b.len()].copy_from_slice(b);
    Ok(out)
}

/// Sender credentials stamped on every message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    /// Sender's process id in the receiver's pid namespace (0 if not visible).
    pub pid: u32,
    /// Sender's uid in the receiver's user namespace.
    pub uid: u32,
    /// Sender's gid in the receiver's user namespace.
    pub gid: u32,
}

/// Who the other endpoint is, attested by the kernel or by `SO_PEERCRED`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerCredentials {
    /// pid, uid and gid as this process sees them.
    pub cred: Credentials,
    /// Inode number of its pid namespace (0 if unknown).
    pub pidns_ino: u64,
    /// Inode number of its user namespace (0 if unknown).
    pub userns_ino: u64,
    /// It proved the channel's pinned identity key.
    pub identity_verified: bool,
}

/// Declares [`Stats`] from its one field table: each counter's doc, name,
/// type and the label `sipc stats` prints. The struct, its array form (the
/// `sipc stats` wire reply, the JNI `long[]` whose order
/// `dev.secureipc.Stats` reads) and the labelled rows all come from here.
macro_rules! stats_table {
    ($( $(#[doc = $doc:literal])* $name:ident: $ty:ty => $label:literal, )*) => {
        /// Counters of one endpoint (both of its directions).
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct Stats {
            $( $(#[doc = $doc])* pub $name: $ty, )*
        }

        impl Stats {
            /// Number of counters.
            pub const COUNT: usize = [$(stringify!($name)),*].len();
            /// The field names, in table order.
            pub const NAMES: [&'static str; Self::COUNT] = [$(stringify!($name)),*];
            /// What `sipc stats` calls each counter, in table order.
            pub const LABELS: [&'static str; Self::COUNT] = [$($label),*];

            /// Every counter widened to `u64`, in table order.
            pub fn to_array(&self) -> [u64; Self::COUNT] {
                [$(u64::from(self.$name)),*]
            }

            /// The inverse of [`Stats::to_array`]; a value too large for
            /// a 32-bit counter saturates.
            pub fn from_array(v: [u64; Self::COUNT]) -> Self {
                let mut it = v.into_iter();
                Self {
                    $($name: {
                        let x = it.next().unwrap_or(0);
                        <$ty>::try_from(x).unwrap_or(<$ty>::MAX)
                    },)*
                }
            }

            /// (label, value) of every counter, in table order.
            pub fn rows(&self) -> impl Iterator<Item = (&'static str, u64)> {
                Self::LABELS.into_iter().zip(self.to_array())
            }
        }
    };
}

stats_table! {
    /// Records this endpoint sealed.
    sealed_msgs: u64 => "sealed messages",
    /// Plaintext bytes sealed.
    sealed_bytes: u64 => "sealed bytes",
    /// Records opened for this endpoint.
    opened_msgs: u64 => "opened messages",
    /// Plaintext bytes opened.
    opened_bytes: u64 => "opened bytes",
    /// Records that failed authentication (dropped).
    auth_failures: u64 => "authentication failures",
    /// Times a sender found the ring full.
    full_events: u64 => "ring-full events",
    /// Doorbell signals sent to this endpoint (kernel) / by this endpoint (userspace).
    doorbells_signalled: u64 => "doorbells signalled",
    /// Signals skipped because the other side was not sleeping.
    doorbells_suppressed: u64 => "doorbells suppressed",
    /// Key epochs advanced (both directions).
    rekeys: u64 => "rekeys",
    /// Filled entries of the outgoing ring now.
    tx_fill: u32 => "outgoing ring fill",
    /// Filled entries of the incoming ring now.
    rx_fill: u32 => "incoming ring fill",
    /// Current sealing epoch.
    tx_epoch: u32 => "sending epoch",
    /// Current opening epoch.
    rx_epoch: u32 => "receiving epoch",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_array_form_is_the_field_order_and_round_trips() {
        let s = Stats {
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
        assert_eq!(s.to_array(), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
        assert_eq!(Stats::from_array(s.to_array()), s);
        assert_eq!(Stats::NAMES[9], "tx_fill");
        assert_eq!(s.rows().nth(12), Some(("receiving epoch", 13)));
    }

    #[test]
    fn stats_from_array_saturates_a_32_bit_counter() {
        let mut v = [0u64; Stats::COUNT];
        v[9] = u64::MAX;
        assert_eq!(Stats::from_array(v).tx_fill, u32::MAX);
    }

    #[test]
    fn pid_namespace_of_self_opens_and_has_the_inode_stat_shows() {
        use std::os::unix::fs::MetadataExt;
        let ns = PidNamespace::current().expect("own pid namespace");
        let ino = std::fs::metadata("/proc/self/ns/pid").unwrap().ino();
        assert_eq!(ns.ino(), ino);
    }

    #[test]
    fn pid_namespace_refuses_a_namespace_of_another_kind() {
        match PidNamespace::open("/proc/self/ns/net") {
            Err(Error::InvalidArgument(_)) => {}
            other => panic!("a net namespace was taken as a pid namespace: {other:?}"),
        }
    }

    #[test]
    fn pid_namespace_refuses_a_file_that_is_no_namespace() {
        assert!(matches!(
            PidNamespace::open("/proc/self/status"),
            Err(Error::InvalidArgument(_))
        ));
    }
}
