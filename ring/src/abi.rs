//! Hand-written mirror of `kernel/include/uapi/linux/secure_ipc.h`.
//!
//! The header is the single source of truth. Every size and offset here is
//! asserted at compile time below, and `tests/abi_c.rs` compiles a C program
//! against the real header and compares its view with this one.

use bytemuck::{Pod, Zeroable};

/// Bumped on any incompatible ABI change.
pub const SIPC_ABI_VERSION: u32 = 2;
/// Older ABI versions whose rings (header, descriptors, slots, ordering
/// protocol) are laid out exactly like this version's: ABI 2 changed ioctl
/// structs only, inside their former reserved space, and what CREATE's
/// pid-namespace field means. A ring of one of these versions is accepted
/// only on explicit request ([`crate::Producer::from_raw_ring_compatible`]),
/// for measuring the module of an older revision beside this one
/// (`cargo xtask bench --against REV`); everything else requires
/// [`SIPC_ABI_VERSION`].
pub const SIPC_RING_COMPATIBLE_ABI_VERSIONS: &[u32] = &[1];
/// `magic` of every ring header ("SIPC" little-endian).
pub const SIPC_RING_MAGIC: u32 = 0x4350_4953;
/// Channel name buffer, including the terminating NUL.
pub const SIPC_NAME_MAX: usize = 32;
/// Smallest slot size accepted by CREATE.
pub const SIPC_MIN_SLOT_SIZE: u32 = 64;
/// Largest slot size the ABI allows.
pub const SIPC_MAX_SLOT_SIZE: u32 = 65536;
/// Smallest slot count.
pub const SIPC_MIN_ENTRIES: u32 = 2;
/// Largest slot count the ABI allows.
pub const SIPC_MAX_ENTRIES: u32 = 32768;
/// X25519 public key, PSK and proof length.
pub const SIPC_KEY_LEN: usize = 32;
/// AES-GCM tag length.
pub const SIPC_TAG_LEN: usize = 16;
/// Largest `rekey_records` CREATE accepts (2^32).
pub const SIPC_MAX_REKEY_RECORDS: u64 = 1 << 32;
/// Largest `rekey_bytes` CREATE accepts (2^38).
pub const SIPC_MAX_REKEY_BYTES: u64 = 1 << 38;
/// REKEYs allowed with no record sealed in between (EBUSY after).
pub const SIPC_MAX_REKEY_UNSEALED: u32 = 1023;
/// Largest ioctl argument size accepted (E2BIG above).
pub const SIPC_ARG_SIZE_MAX: u32 = 4096;
/// Per-direction nonce salt length.
pub const SIPC_SALT_LEN: usize = 4;
/// AES-GCM nonce length (salt || le64(seq)).
pub const SIPC_NONCE_LEN: usize = 12;
/// The ring header occupies exactly one 4 KiB page.
pub const SIPC_RING_HDR_SIZE: u32 = 4096;

/// mmap offset of the TX ring.
pub const SIPC_OFF_TX_RING: u64 = 0x0000_0000;
/// mmap offset of the RX ring.
pub const SIPC_OFF_RX_RING: u64 = 0x1000_0000;

/// `kind` of a TX ring.
pub const SIPC_RING_TX: u16 = 1;
/// `kind` of an RX ring.
pub const SIPC_RING_RX: u16 = 2;

/// Record direction: owner to peer.
pub const SIPC_DIR_OWNER_TO_PEER: u8 = 0;
/// Record direction: peer to owner.
pub const SIPC_DIR_PEER_TO_OWNER: u8 = 1;

/// Flags word bit: the owner of the word sleeps on its doorbell.
pub const SIPC_FLAG_NEED_WAKEUP: u32 = 1 << 0;
/// Flags word bit: the owner of the word hung up (final).
pub const SIPC_FLAG_CLOSED: u32 = 1 << 1;

/// Kernel status bit: a peer is attached.
pub const SIPC_STATUS_PEER_ATTACHED: u32 = 1 << 0;
/// Kernel status bit: the peer is gone; drain, then EPIPE.
pub const SIPC_STATUS_PEER_CLOSED: u32 = 1 << 1;
/// Kernel status bit: EPROTO seen on this ring.
pub const SIPC_STATUS_ERROR: u32 = 1 << 2;

/// Feature: mmap rings.
pub const SIPC_FEAT_MMAP_RINGS: u64 = 1 << 0;
/// Feature: read(2)/write(2).
pub const SIPC_FEAT_READ_WRITE: u64 = 1 << 1;
/// Feature: eventfd doorbells.
pub const SIPC_FEAT_DOORBELL: u64 = 1 << 2;
/// Feature: X25519 key agreement.
pub const SIPC_FEAT_X25519: u64 = 1 << 3;
/// Feature: pinned peer identity.
pub const SIPC_FEAT_IDENTITY: u64 = 1 << 4;
/// Feature: pre-shared key.
pub const SIPC_FEAT_PSK: u64 = 1 << 5;
/// Feature: rekeying.
pub const SIPC_FEAT_REKEY: u64 = 1 << 6;
/// Feature: `SIPC_IOC_RECV_WAIT`.
pub const SIPC_FEAT_RECV_WAIT: u64 = 1 << 7;
/// Feature: `SIPC_IOC_SEND_WAIT`.
pub const SIPC_FEAT_SEND_WAIT: u64 = 1 << 8;
/// Feature: module built with test hooks.
pub const SIPC_FEAT_TEST_HOOKS: u64 = 1 << 63;

/// Policy: peer fsuid must equal `peer_uid`.
pub const SIPC_POLICY_UID: u32 = 1 << 0;
/// Policy: peer fsgid or a supplementary gid must equal `peer_gid`.
pub const SIPC_POLICY_GID: u32 = 1 << 1;
/// Policy: peer must be in the pid namespace `peer_pidns_fd` names (pinned by reference).
pub const SIPC_POLICY_PIDNS: u32 = 1 << 2;
/// Policy: peer must prove `identity_pub`.
pub const SIPC_POLICY_IDENTITY: u32 = 1 << 3;
/// Create: `psk` is valid.
pub const SIPC_CREATE_PSK: u32 = 1 << 4;
/// All create flags.
pub const SIPC_CREATE_FLAGS_ALL: u32 = 0x1f;
/// Attach: `proof` is valid.
pub const SIPC_ATTACH_PROOF: u32 = 1 << 0;
/// Attach: `psk` is valid.
pub const SIPC_ATTACH_PSK: u32 = 1 << 1;
/// All attach flags.
pub const SIPC_ATTACH_FLAGS_ALL: u32 = 0x3;
/// Rekey: ratchet the sealing key now.
pub const SIPC_REKEY_TX: u32 = 1 << 0;
/// All rekey flags.
pub const SIPC_REKEY_FLAGS_ALL: u32 = 0x1;

/// First page of every ring mapping (`struct sipc_ring_hdr`).
///
/// Shared memory: never read through a reference while the other side may
/// write; the ring module reaches the index and flag words through atomics.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct RingHeader {
    /// [`SIPC_RING_MAGIC`]. Writer: kernel/creator, once.
    pub magic: u32,
    /// [`SIPC_ABI_VERSION`]. Writer: kernel/creator, once.
    pub abi_version: u16,
    /// [`SIPC_RING_TX`] or [`SIPC_RING_RX`]. Writer: kernel/creator, once.
    pub kind: u16,
    /// Number of descriptors and slots, a power of two.
    pub entries: u32,
    /// Bytes per slot, a power of two.
    pub slot_size: u32,
    /// Bytes per descriptor.
    pub desc_size: u32,
    /// Offset of the descriptor array.
    pub desc_offset: u32,
    /// Offset of the slot array, page aligned.
    pub slots_offset: u64,
    /// Total length of the mapping.
    pub ring_bytes: u64,
    /// Zero.
    pub reserved0: [u8; 88],
    /// Producer index. Writer: the producer.
    pub prod: u32,
    /// Zero.
    pub pad1: [u8; 124],
    /// Consumer index. Writer: the consumer.
    pub cons: u32,
    /// Zero.
    pub pad2: [u8; 124],
    /// Producer flags. Writer: the producer.
    pub prod_flags: u32,
    /// Zero.
    pub pad3: [u8; 124],
    /// Consumer flags. Writer: the consumer.
    pub cons_flags: u32,
    /// Zero.
    pub pad4: [u8; 124],
    /// Records sealed into the direction's store. Writer: kernel.
    pub store_prod: u32,
    /// Records opened out of the store. Writer: kernel.
    pub store_cons: u32,
    /// Capacity of the sealed store. Writer: kernel, once.
    pub store_entries: u32,
    /// `SIPC_STATUS_*` bits. Writer: kernel.
    pub status: u32,
    /// Zero.
    pub pad5: [u8; 112],
    /// Zero; pads the header to one page.
    pub reserved: [u8; 3328],
}

/// A message user space asks the kernel to send (`struct sipc_tx_desc`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct TxDesc {
    /// Payload bytes in the slot.
    pub len: u32,
    /// Application message type.
    pub type_: u16,
    /// Must be zero.
    pub flags: u16,
    /// Must be zero.
    pub reserved: u64,
}

/// A received message, stamped by the kernel (`struct sipc_rx_desc`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct RxDesc {
    /// Sequence number in this direction.
    pub seq: u64,
    /// CLOCK_MONOTONIC at the sender's commit.
    pub timestamp_ns: u64,
    /// Payload bytes in the slot.
    pub len: u32,
    /// The sender's message type.
    pub type_: u16,
    /// Zero for now.
    pub flags: u16,
    /// Sender tgid in the receiver's pid namespace.
    pub sender_pid: u32,
    /// Sender uid in the receiver's user namespace.
    pub sender_uid: u32,
    /// Sender gid in the receiver's user namespace.
    pub sender_gid: u32,
    /// Key epoch.
    pub epoch: u32,
    /// Zero.
    pub reserved: [u8; 24],
}

/// Sealed record header, the AES-GCM AAD (`struct sipc_record_hdr`).
///
/// On the wire every field is little-endian; use [`RecordHeader::to_le_bytes`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct RecordHeader {
    /// Channel id chosen at create.
    pub channel_id: u64,
    /// Sequence number in this direction.
    pub seq: u64,
    /// Commit timestamp (CLOCK_MONOTONIC).
    pub timestamp_ns: u64,
    /// Key epoch.
    pub epoch: u32,
    /// Plaintext length.
    pub len: u32,
    /// Message type.
    pub type_: u16,
    /// Direction.
    pub direction: u8,
    /// Record format version, 1.
    pub version: u8,
    /// Records after this one in its group: 0 for a record sealed alone
    /// and for the last record of a group (docs/record-format.md).
    pub group_left: u32,
}

impl RecordHeader {
    /// Size of the encoded header (the AAD).
    pub const LEN: usize = 40;

    /// The AAD bytes: every field little-endian, in declaration order.
    pub fn to_le_bytes(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[0..8].copy_from_slice(&self.channel_id.to_le_bytes());
        b[8..16].copy_from_slice(&self.seq.to_le_bytes());
        b[16..24].copy_from_slice(&self.timestamp_ns.to_le_bytes());
        b[24..28].copy_from_slice(&self.epoch.to_le_bytes());
        b[28..32].copy_from_slice(&self.len.to_le_bytes());
        b[32..34].copy_from_slice(&self.type_.to_le_bytes());
        b[34] = self.direction;
        b[35] = self.version;
        b[36..40].copy_from_slice(&self.group_left.to_le_bytes());
        b
    }

    /// Decodes the little-endian encoding produced by [`Self::to_le_bytes`].
    pub fn from_le_bytes(b: &[u8; Self::LEN]) -> Self {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap_or([0; 4]));
        Self {
            channel_id: u64_at(0),
            seq: u64_at(8),
            timestamp_ns: u64_at(16),
            epoch: u32_at(24),
            len: u32_at(28),
            type_: u16::from_le_bytes([b[32], b[33]]),
            direction: b[34],
            version: b[35],
            group_left: u32_at(36),
        }
    }
}

/// `SIPC_IOC_INFO` argument.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
#[allow(missing_docs)]
pub struct Info {
    pub size: u32,
    pub abi_version: u32,
    pub features: u64,
    pub min_slot_size: u32,
    pub max_slot_size: u32,
    pub min_entries: u32,
    pub max_entries: u32,
    pub max_channels: u32,
    pub nr_channels: u32,
    pub max_channel_bytes: u64,
    pub rekey_records: u64,
    pub max_user_channels: u32,
    pub reserved0: u32,
    pub max_user_bytes: u64,
    pub reserved: [u64; 2],
}

/// `SIPC_IOC_CREATE` argument.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
#[allow(missing_docs)]
pub struct Create {
    pub size: u32,
    pub flags: u32,
    pub name: [u8; SIPC_NAME_MAX],
    pub entries: u32,
    pub slot_size: u32,
    pub peer_uid: u32,
    pub peer_gid: u32,
    pub peer_pidns_fd: i32,
    pub reserved1: u32,
    pub identity_pub: [u8; SIPC_KEY_LEN],
    pub psk: [u8; SIPC_KEY_LEN],
    pub rekey_records: u64,
    pub rekey_bytes: u64,
    pub channel_id: u64,
    pub tx_ring_bytes: u64,
    pub rx_ring_bytes: u64,
    pub reserved: [u64; 4],
}

/// `SIPC_IOC_CHALLENGE` argument.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
#[allow(missing_docs)]
pub struct Challenge {
    pub size: u32,
    pub flags: u32,
    pub name: [u8; SIPC_NAME_MAX],
    pub kernel_pub: [u8; SIPC_KEY_LEN],
    pub nonce: [u8; SIPC_KEY_LEN],
    pub reserved: [u64; 2],
}

/// `SIPC_IOC_ATTACH` argument.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
#[allow(missing_docs)]
pub struct Attach {
    pub size: u32,
    pub flags: u32,
    pub name: [u8; SIPC_NAME_MAX],
    pub proof: [u8; SIPC_KEY_LEN],
    pub psk: [u8; SIPC_KEY_LEN],
    pub entries: u32,
    pub slot_size: u32,
    pub channel_id: u64,
    pub tx_ring_bytes: u64,
    pub rx_ring_bytes: u64,
    pub reserved: [u64; 4],
}

/// `SIPC_IOC_SET_DOORBELL` argument.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
#[allow(missing_docs)]
pub struct Doorbell {
    pub size: u32,
    pub flags: u32,
    pub eventfd: i32,
    pub reserved: u32,
}

/// `SIPC_IOC_PEER_CRED` argument.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
#[allow(missing_docs)]
pub struct PeerCred {
    pub size: u32,
    pub flags: u32,
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
    pub identity_verified: u32,
    pub pidns_ino: u64,
    pub userns_ino: u64,
    pub reserved: [u64; 2],
}

/// `SIPC_IOC_STATS` argument.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
#[allow(missing_docs)]
pub struct Stats {
    pub size: u32,
    pub flags: u32,
    pub sealed_msgs: u64,
    pub sealed_bytes: u64,
    pub opened_msgs: u64,
    pub opened_bytes: u64,
    pub badmsg: u64,
    pub store_full: u64,
    pub doorbells_signalled: u64,
    pub doorbells_suppressed: u64,
    pub eproto: u64,
    pub rekeys: u64,
    pub attach_refused: u64,
    pub tx_fill: u32,
    pub rx_fill: u32,
    pub store_out_fill: u32,
    pub store_in_fill: u32,
    pub tx_epoch: u32,
    pub rx_epoch: u32,
    pub tx_discarded: u64,
    pub reserved: [u64; 3],
}

/// `SIPC_IOC_REKEY` argument.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
#[allow(missing_docs)]
pub struct Rekey {
    pub size: u32,
    pub flags: u32,
    pub new_epoch: u32,
    pub reserved: u32,
}

/// `SIPC_IOC_TEST_KEYS` argument (test builds of the module only).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
#[allow(missing_docs)]
pub struct TestKeys {
    pub size: u32,
    pub flags: u32,
    pub tx_key: [u8; SIPC_KEY_LEN],
    pub tx_salt: [u8; SIPC_SALT_LEN],
    pub tx_epoch: u32,
}

/// `SIPC_IOC_TEST_PEEK_SEALED` argument (test builds of the module only).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
#[allow(missing_docs)]
pub struct TestSealed {
    pub size: u32,
    pub flags: u32,
    pub buf: u64,
    pub buf_len: u32,
    pub record_len: u32,
    pub reserved: u64,
}

/// [`TestSealed`] flag: flip the lowest bit of byte `record_len` of the
/// oldest sealed record instead of copying it out.
pub const SIPC_TEST_SEALED_FLIP: u32 = 1 << 0;

/// [`TestKx`] flag: `identity_pub` and `nonce` are valid; compute the proof.
pub const SIPC_TEST_KX_IDENTITY: u32 = 1 << 0;
/// [`TestKx`] flag: `psk` is valid.
pub const SIPC_TEST_KX_PSK: u32 = 1 << 1;

/// `SIPC_IOC_TEST_KEY_SCHEDULE` argument (test builds of the module only):
/// the kernel's key schedule run on chosen inputs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[allow(missing_docs)]
pub struct TestKx {
    pub size: u32,
    pub flags: u32,
    pub name: [u8; SIPC_NAME_MAX],
    pub owner_priv: [u8; SIPC_KEY_LEN],
    pub peer_priv: [u8; SIPC_KEY_LEN],
    pub identity_pub: [u8; SIPC_KEY_LEN],
    pub nonce: [u8; SIPC_KEY_LEN],
    pub psk: [u8; SIPC_KEY_LEN],
    pub owner_pub: [u8; SIPC_KEY_LEN],
    pub peer_pub: [u8; SIPC_KEY_LEN],
    pub proof: [u8; SIPC_KEY_LEN],
    pub o2p_key: [u8; SIPC_KEY_LEN],
    pub p2o_key: [u8; SIPC_KEY_LEN],
    pub o2p_key_epoch1: [u8; SIPC_KEY_LEN],
    pub o2p_salt: [u8; SIPC_SALT_LEN],
    pub p2o_salt: [u8; SIPC_SALT_LEN],
}

impl Default for TestKx {
    fn default() -> Self {
        Self::zeroed()
    }
}

/// `SIPC_IOC_TEST_SET_SEAL` argument (test builds of the module only):
/// replaces an endpoint's sealing state (key of `epoch`, salt, next
/// sequence number, stamped channel id, frozen clock; `clock_ns == 0`
/// keeps the real clock).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
#[allow(missing_docs)]
pub struct TestSeal {
    pub size: u32,
    pub flags: u32,
    pub key: [u8; SIPC_KEY_LEN],
    pub salt: [u8; SIPC_SALT_LEN],
    pub epoch: u32,
    pub channel_id: u64,
    pub seq: u64,
    pub clock_ns: u64,
}

/// `SIPC_IOC_TEST_DUMP_STORE` argument (test builds of the module only):
/// copies the raw bytes of the endpoint's outgoing sealed store.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
#[allow(missing_docs)]
pub struct TestStore {
    pub size: u32,
    pub flags: u32,
    pub buf: u64,
    pub buf_len: u64,
    pub store_len: u64,
}

/// ioctl magic (free in ioctl-number.rst).
pub const SIPC_IOC_MAGIC: u32 = 0xBC;

/// `_IO(type, nr)` of `<asm-generic/ioctl.h>`: no direction, no size.
pub const fn io(nr: u32) -> u32 {
    (SIPC_IOC_MAGIC << 8) | nr
}

/// Query module capabilities.
pub const SIPC_IOC_INFO: u32 = io(0x00);
/// Create a channel (owner).
pub const SIPC_IOC_CREATE: u32 = io(0x01);
/// Get an identity challenge.
pub const SIPC_IOC_CHALLENGE: u32 = io(0x02);
/// Attach to a channel (peer).
pub const SIPC_IOC_ATTACH: u32 = io(0x03);
/// Seal everything pending in TX; returns the count.
pub const SIPC_IOC_SEND: u32 = io(0x04);
/// Open sealed records into RX; returns the count.
pub const SIPC_IOC_RECV: u32 = io(0x05);
/// Register an eventfd doorbell.
pub const SIPC_IOC_SET_DOORBELL: u32 = io(0x06);
/// Query the other endpoint's credentials.
pub const SIPC_IOC_PEER_CRED: u32 = io(0x07);
/// Query this endpoint's counters.
pub const SIPC_IOC_STATS: u32 = io(0x08);
/// Ratchet the sending key.
pub const SIPC_IOC_REKEY: u32 = io(0x09);
/// RECV that sleeps in the kernel; the argument is a timeout in ms (a
/// value, not a pointer; [`SIPC_WAIT_FOREVER`] has no limit).
pub const SIPC_IOC_RECV_WAIT: u32 = io(0x0a);
/// SEND once the sealed store has room for all of TX, sleeping in the
/// kernel until then; the argument is a timeout in ms like
/// [`SIPC_IOC_RECV_WAIT`]'s.
pub const SIPC_IOC_SEND_WAIT: u32 = io(0x0b);
/// `SIPC_IOC_RECV_WAIT` timeout meaning no limit.
pub const SIPC_WAIT_FOREVER: u32 = 0xffff_ffff;
/// Test builds only: export the sealing key.
pub const SIPC_IOC_TEST_KEYS: u32 = io(0x40);
/// Test builds only: copy out the oldest sealed record.
pub const SIPC_IOC_TEST_PEEK_SEALED: u32 = io(0x41);
/// Test builds only: run the key schedule on chosen inputs.
pub const SIPC_IOC_TEST_KEY_SCHEDULE: u32 = io(0x42);
/// Test builds only: replace the sealing state with chosen inputs.
pub const SIPC_IOC_TEST_SET_SEAL: u32 = io(0x43);
/// Test builds only: copy out the raw outgoing sealed store.
pub const SIPC_IOC_TEST_DUMP_STORE: u32 = io(0x44);

/// First published size of [`Info`]; smaller structs get EINVAL.
pub const SIPC_INFO_SIZE_VER0: u32 = 88;
/// First published size of [`Create`].
pub const SIPC_CREATE_SIZE_VER0: u32 = 200;
/// First published size of [`Challenge`].
pub const SIPC_CHALLENGE_SIZE_VER0: u32 = 120;
/// First published size of [`Attach`].
pub const SIPC_ATTACH_SIZE_VER0: u32 = 168;
/// First published size of [`Doorbell`].
pub const SIPC_DOORBELL_SIZE_VER0: u32 = 16;
/// First published size of [`PeerCred`].
pub const SIPC_PEER_CRED_SIZE_VER0: u32 = 56;
/// First published size of [`Stats`].
pub const SIPC_STATS_SIZE_VER0: u32 = 152;
/// First published size of [`Rekey`].
pub const SIPC_REKEY_SIZE_VER0: u32 = 16;
/// First published size of [`TestKeys`].
pub const SIPC_TEST_KEYS_SIZE_VER0: u32 = 48;
/// First published size of [`TestSealed`].
pub const SIPC_TEST_SEALED_SIZE_VER0: u32 = 32;
/// First published size of [`TestKx`].
pub const SIPC_TEST_KX_SIZE_VER0: u32 = 400;
/// First published size of [`TestSeal`].
pub const SIPC_TEST_SEAL_SIZE_VER0: u32 = 72;
/// First published size of [`TestStore`].
pub const SIPC_TEST_STORE_SIZE_VER0: u32 = 32;

macro_rules! assert_layout {
    ($t:ty, $size:expr, $($field:ident == $off:expr),* $(,)?) => {
        const _: () = assert!(core::mem::size_of::<$t>() == $size);
        $(const _: () = assert!(core::mem::offset_of!($t, $field) == $off);)*
    };
}

assert_layout!(
    RingHeader,
    4096,
    magic == 0,
    abi_version == 4,
    kind == 6,
    entries == 8,
    slot_size == 12,
    desc_size == 16,
    desc_offset == 20,
    slots_offset == 24,
    ring_bytes == 32,
    prod == 128,
    cons == 256,
    prod_flags == 384,
    cons_flags == 512,
    store_prod == 640,
    store_cons == 644,
    store_entries == 648,
    status == 652,
    reserved == 768
);
assert_layout!(TxDesc, 16, len == 0, type_ == 4, flags == 6, reserved == 8);
assert_layout!(
    RxDesc,
    64,
    seq == 0,
    timestamp_ns == 8,
    len == 16,
    type_ == 20,
    flags == 22,
    sender_pid == 24,
    sender_uid == 28,
    sender_gid == 32,
    epoch == 36,
    reserved == 40
);
assert_layout!(
    RecordHeader,
    40,
    channel_id == 0,
    seq == 8,
    timestamp_ns == 16,
    epoch == 24,
    len == 28,
    type_ == 32,
    direction == 34,
    version == 35,
    group_left == 36
);
assert_layout!(
    Info,
    88,
    size == 0,
    abi_version == 4,
    features == 8,
    min_slot_size == 16,
    max_slot_size == 20,
    min_entries == 24,
    max_entries == 28,
    max_channels == 32,
    nr_channels == 36,
    max_channel_bytes == 40,
    rekey_records == 48,
    max_user_channels == 56,
    reserved0 == 60,
    max_user_bytes == 64,
    reserved == 72
);
assert_layout!(
    Create,
    200,
    size == 0,
    flags == 4,
    name == 8,
    entries == 40,
    slot_size == 44,
    peer_uid == 48,
    peer_gid == 52,
    peer_pidns_fd == 56,
    reserved1 == 60,
    identity_pub == 64,
    psk == 96,
    rekey_records == 128,
    rekey_bytes == 136,
    channel_id == 144,
    tx_ring_bytes == 152,
    rx_ring_bytes == 160,
    reserved == 168
);
assert_layout!(
    Challenge,
    120,
    size == 0,
    flags == 4,
    name == 8,
    kernel_pub == 40,
    nonce == 72,
    reserved == 104
);
assert_layout!(
    Attach,
    168,
    size == 0,
    flags == 4,
    name == 8,
    proof == 40,
    psk == 72,
    entries == 104,
    slot_size == 108,
    channel_id == 112,
    tx_ring_bytes == 120,
    rx_ring_bytes == 128,
    reserved == 136
);
assert_layout!(
    Doorbell,
    16,
    size == 0,
    flags == 4,
    eventfd == 8,
    reserved == 12
);
assert_layout!(
    PeerCred,
    56,
    size == 0,
    flags == 4,
    pid == 8,
    uid == 12,
    gid == 16,
    identity_verified == 20,
    pidns_ino == 24,
    userns_ino == 32,
    reserved == 40
);
assert_layout!(
    Stats,
    152,
    size == 0,
    flags == 4,
    sealed_msgs == 8,
    sealed_bytes == 16,
    opened_msgs == 24,
    opened_bytes == 32,
    badmsg == 40,
    store_full == 48,
    doorbells_signalled == 56,
    doorbells_suppressed == 64,
    eproto == 72,
    rekeys == 80,
    attach_refused == 88,
    tx_fill == 96,
    rx_fill == 100,
    store_out_fill == 104,
    store_in_fill == 108,
    tx_epoch == 112,
    rx_epoch == 116,
    tx_discarded == 120,
    reserved == 128
);
assert_layout!(
    Rekey,
    16,
    size == 0,
    flags == 4,
    new_epoch == 8,
    reserved == 12
);
assert_layout!(
    TestKeys,
    48,
    size == 0,
    flags == 4,
    tx_key == 8,
    tx_salt == 40,
    tx_epoch == 44
);
assert_layout!(
    TestSealed,
    32,
    size == 0,
    flags == 4,
    buf == 8,
    buf_len == 16,
    record_len == 20,
    reserved == 24
);
assert_layout!(
    TestKx,
    400,
    size == 0,
    flags == 4,
    name == 8,
    owner_priv == 40,
    peer_priv == 72,
    identity_pub == 104,
    nonce == 136,
    psk == 168,
    owner_pub == 200,
    peer_pub == 232,
    proof == 264,
    o2p_key == 296,
    p2o_key == 328,
    o2p_key_epoch1 == 360,
    o2p_salt == 392,
    p2o_salt == 396
);
assert_layout!(
    TestSeal,
    72,
    size == 0,
    flags == 4,
    key == 8,
    salt == 40,
    epoch == 44,
    channel_id == 48,
    seq == 56,
    clock_ns == 64
);

// The first published sizes are the sizes of the first version's structs.
const _: () = assert!(core::mem::size_of::<Info>() == SIPC_INFO_SIZE_VER0 as usize);
const _: () = assert!(core::mem::size_of::<Create>() == SIPC_CREATE_SIZE_VER0 as usize);
const _: () = assert!(core::mem::size_of::<Challenge>() == SIPC_CHALLENGE_SIZE_VER0 as usize);
const _: () = assert!(core::mem::size_of::<Attach>() == SIPC_ATTACH_SIZE_VER0 as usize);
const _: () = assert!(core::mem::size_of::<Doorbell>() == SIPC_DOORBELL_SIZE_VER0 as usize);
const _: () = assert!(core::mem::size_of::<PeerCred>() == SIPC_PEER_CRED_SIZE_VER0 as usize);
const _: () = assert!(core::mem::size_of::<Stats>() == SIPC_STATS_SIZE_VER0 as usize);
const _: () = assert!(core::mem::size_of::<Rekey>() == SIPC_REKEY_SIZE_VER0 as usize);
const _: () = assert!(core::mem::size_of::<TestKeys>() == SIPC_TEST_KEYS_SIZE_VER0 as usize);
const _: () = assert!(core::mem::size_of::<TestSealed>() == SIPC_TEST_SEALED_SIZE_VER0 as usize);
const _: () = assert!(core::mem::size_of::<TestKx>() == SIPC_TEST_KX_SIZE_VER0 as usize);
const _: () = assert!(core::mem::size_of::<TestSeal>() == SIPC_TEST_SEAL_SIZE_VER0 as usize);
const _: () = assert!(core::mem::size_of::<TestStore>() == SIPC_TEST_STORE_SIZE_VER0 as usize);
assert_layout!(
    TestStore,
    32,
    size == 0,
    flags == 4,
    buf == 8,
    buf_len == 16,
    store_len == 24
);
