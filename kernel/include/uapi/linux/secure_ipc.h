/* SPDX-License-Identifier: ((GPL-2.0-only WITH Linux-syscall-note) OR MIT) */
/*
 * secure_ipc: sealed shared-memory channels between host and container
 * processes on one kernel.
 *
 * This header is the single source of truth for the user/kernel ABI. The
 * Rust mirror (ring/src/abi.rs) asserts every size and offset below at
 * compile time, and a test compiles a C program against this file and
 * compares both views.
 */
#ifndef _UAPI_LINUX_SECURE_IPC_H
#define _UAPI_LINUX_SECURE_IPC_H

#ifdef __KERNEL__
#include <linux/types.h>
#include <linux/ioctl.h>
#else
#include <linux/types.h>
#include <sys/ioctl.h>
#endif

/**
 * DOC: overview
 *
 * A channel has a name and two endpoints: the *owner* (the file that
 * issued %SIPC_IOC_CREATE) and the *peer* (the file that issued
 * %SIPC_IOC_ATTACH). Each endpoint is one open file of /dev/secure_ipc.
 * Each direction is a single-producer single-consumer stream.
 *
 * Every endpoint maps two rings from its own file (mmap offsets below):
 *
 * - TX: user space produces plaintext messages, the kernel consumes them
 *   on %SIPC_IOC_SEND, seals them (AES-256-GCM) into the direction's
 *   sealed store (kernel memory that is never mapped) and frees the slots.
 * - RX: the kernel produces on %SIPC_IOC_RECV by opening sealed records
 *   into free RX slots with a stamped &struct sipc_rx_desc; user space
 *   consumes them.
 *
 * A ring mapping is: one header page (&struct sipc_ring_hdr), the
 * descriptor array (``entries`` descriptors, padded to a page), then the
 * slot array (``entries`` slots of ``slot_size`` bytes). Message i of the
 * ring lives in descriptor and slot ``i & (entries - 1)``: descriptors
 * carry no addresses, so nothing in them can point out of the ring.
 */

/**
 * DOC: memory ordering protocol
 *
 * Indices are free-running __u32 counters; the number of filled entries is
 * ``prod - cons`` (mod 2^32) and must never exceed ``entries``. Each index
 * and each flags word has exactly one writer (see &struct sipc_ring_hdr).
 * The reader of the other side's index reads it once per operation and
 * validates it before use.
 *
 * [O1] Producer publish: write the slot and its descriptor, then
 *      store-release ``prod``. Pairs with [O2].
 * [O2] Consumer observe: load-acquire ``prod``, check
 *      ``prod - cons <= entries``, then read descriptors and slots of
 *      ``[cons, prod)``. Pairs with [O1].
 * [O3] Consumer release: finish reading the slots, then store-release
 *      ``cons``. Pairs with [O4].
 * [O4] Producer room: load-acquire ``cons``, check
 *      ``prod - cons <= entries``, then reuse slots up to ``cons + entries``.
 *      Pairs with [O3].
 * [O5] Consumer sleep (no lost wake-up): set %SIPC_FLAG_NEED_WAKEUP in
 *      ``cons_flags``; full barrier (smp_mb / SeqCst fence); re-check
 *      ``prod`` (and, on an RX ring, ``store_prod``); sleep on the doorbell
 *      only if still empty; clear the flag once awake. Pairs with [O6].
 * [O6] Producer wake: after [O1], full barrier, then read ``cons_flags``;
 *      if %SIPC_FLAG_NEED_WAKEUP is set, signal the consumer's doorbell.
 *      Either the consumer's re-check in [O5] sees the new ``prod`` or the
 *      producer sees the flag: the two full barriers forbid both misses
 *      (the store-buffering litmus test).
 * [O7] Producer waiting for room: the same as [O5]/[O6] with the roles
 *      swapped: ``prod_flags`` NEED_WAKEUP, full barrier, re-check ``cons``
 *      (TX ring: ``store_cons``); the consumer after [O3] issues a full
 *      barrier and reads ``prod_flags``.
 * [O8] Hang-up: an endpoint sets %SIPC_FLAG_CLOSED in the flags word it
 *      owns with a store-release after its last publish/release; the other
 *      side load-acquires the flags word and, for a consumer, drains what
 *      was published before the flag, then reports the hang-up.
 * [O9] Kernel status line: the kernel store-releases ``store_prod``,
 *      ``store_cons`` and ``status``; user space load-acquires them. They
 *      are hints for polling and sleeping: the ioctls and poll() are
 *      authoritative.
 */

/**
 * DOC: errno table
 *
 * ===========  ===========================================================
 * EINVAL       bad argument: unknown flag bit, non-zero reserved field,
 *              bad name, geometry not a power of two or out of range,
 *              rekey_records/rekey_bytes above %SIPC_MAX_REKEY_RECORDS /
 *              %SIPC_MAX_REKEY_BYTES, peer_pidns_fd not a pid namespace,
 *              struct size smaller than the first published version;
 *              mmap at an unknown offset, of the wrong length, private
 *              (MAP_PRIVATE) or executable
 * E2BIG        struct larger than %SIPC_ARG_SIZE_MAX (4096), or larger
 *              than the kernel knows with a non-zero tail
 * EFAULT       argument pointer not readable/writable
 * EBADF        CREATE/ATTACH/CHALLENGE on a file not opened O_RDWR, SEND
 *              SEND_WAIT or REKEY without FMODE_WRITE, RECV/RECV_WAIT without
 *              FMODE_READ; peer_pidns_fd not an open descriptor
 * ENOTTY       unknown ioctl number
 * EEXIST       CREATE of a name that exists
 * ENOENT       ATTACH/CHALLENGE to a name that does not exist, or whose
 *              owner closed while the ATTACH ran. Names are not secret:
 *              any user of the device can tell ENOENT from EACCES, as it
 *              can see abstract socket names; choose names that say
 *              nothing private (DOC: names)
 * EBUSY        ATTACH to a channel that has a peer (or another ATTACH in
 *              progress); CREATE/ATTACH/CHALLENGE on a file that is
 *              already an endpoint; REKEY after %SIPC_MAX_REKEY_UNSEALED
 *              REKEYs with no record sealed in between
 * ENOTCONN     SEND/RECV/read/write/mmap on a file that is not an
 *              endpoint, or SEND/RECV/read/write of an owner before the
 *              first peer attached (an owner may mmap right after CREATE)
 * EPIPE        the other endpoint closed and everything it sealed was
 *              received (RECV/read), or it closed (SEND/write)
 * EAGAIN       nothing to do and O_NONBLOCK (read/write)
 * EMSGSIZE     write larger than slot_size; read buffer smaller than the
 *              next message (the message stays queued)
 * EBADMSG      a sealed record failed authentication; it is dropped,
 *              counted and never delivered
 * EACCES       the channel's policy refused this opener; CREATE from a
 *              namespace that the module does not allow
 * EKEYREJECTED identity proof missing or wrong, or the two endpoints'
 *              pre-shared keys differ (ATTACH)
 * EPROTO       a ring index or descriptor written by user space is out of
 *              range. A bad TX index: nothing is sealed. A bad descriptor:
 *              the descriptors before it are sealed and SEND returns their
 *              count (no error); the next SEND, which starts at the bad
 *              one, returns EPROTO and seals nothing. Either way
 *              %SIPC_STATUS_ERROR is set in that ring's status and stays
 *              set for the endpoint's life (a sticky diagnostic: the
 *              ioctls keep working once the ring is valid again)
 * ENOSPC       CREATE: the module's channel or memory limit is reached
 *              (max_channels, max_user_channels, max_user_bytes, or the
 *              channel would pin more than max_channel_bytes; see
 *              &struct sipc_info)
 * ENOMEM       allocation failure
 * EOVERFLOW    the sequence space of a direction is exhausted
 * EINTR        a signal arrived while SEND/RECV/RECV_WAIT waited for the
 *              endpoint's lock or for data, or while SEND_WAIT waited for
 *              room (nothing sealed); ATTACH got a fatal signal
 *              while it waited for the owner's locks
 * ENOTCONN     (mmap) the file is not an endpoint yet
 * ===========  ===========================================================
 *
 * Outside the module, from the generic code in front of it (the ABI fuzzer
 * in the guest tests accepts exactly these):
 *
 * - SET_DOORBELL: EBADF for an @eventfd that is not open (or negative but
 *   not -1), EINVAL for one that is not an eventfd.
 * - mmap of a file not opened O_RDWR: EACCES (a shared writable mapping
 *   needs a writable file).
 * - mprotect() adding PROT_EXEC to a ring mapping: EACCES (VM_MAYEXEC is
 *   cleared); mremap() growing one: EFAULT (VM_DONTEXPAND).
 * - MADV_DONTNEED (or any other zap) of a ring mapping removes its pages
 *   from that mapping for good: the mapping has no fault handler, so the
 *   next access is SIGBUS. munmap() it and mmap() the ring again.
 */

/**
 * DOC: sessions
 *
 * A session is one attach: its keys, its two sealed stores and its two
 * sequence spaces (both start at 0). The owner keeps its rings for the
 * channel's life; a peer's rings belong to its one session.
 *
 * - When the peer closes, the owner's rings get %SIPC_STATUS_PEER_CLOSED,
 *   its doorbell rings and poll reports EPOLLHUP. The owner still RECVs
 *   what the peer sealed before closing, then gets EPIPE; SEND and write(2)
 *   get EPIPE at once and leave the TX slots as they are.
 * - The first peer receives what the owner published before it attached.
 * - When the next peer attaches (the name stays listed while the owner
 *   lives), the owner's session is replaced: whatever the old peer sealed
 *   and the owner did not receive is dropped with the old session, and
 *   every TX message the owner had published and not sent (TX ``prod`` as
 *   the kernel reads it during that ATTACH) is discarded unsealed: its TX
 *   slots are freed (``cons`` = ``prod``) and counted in
 *   &sipc_stats.tx_discarded. No byte queued for one peer is ever sealed
 *   to another. %SIPC_STATUS_PEER_CLOSED clears, %SIPC_STATUS_PEER_ATTACHED
 *   is set, the owner's doorbell rings and poll reports EPOLLOUT; the
 *   ``store_prod``/``store_cons`` hints restart at 0. An owner that wants
 *   its messages to reach the new peer publishes them after it has seen
 *   %SIPC_STATUS_PEER_ATTACHED (or its doorbell) for that peer; a message
 *   published while the ATTACH runs may be discarded, and tx_discarded
 *   says so.
 * - When the owner closes, the name is unlisted at once (a new CREATE of
 *   it succeeds), the peer gets %SIPC_STATUS_PEER_CLOSED, drains, then
 *   EPIPE. The channel's memory and its charge against the limits stay
 *   until the peer closes too (&struct sipc_info).
 */

/**
 * DOC: names
 *
 * Channel names are public identifiers, like abstract Unix socket names:
 * any opener of the device can learn that a name exists (ATTACH and
 * CHALLENGE answer ENOENT for a missing name, EACCES/EKEYREJECTED/EBUSY for
 * one it may not have). The policy and the keys protect a channel, never
 * the secrecy of its name. Hiding existence would cost clear errors for
 * every legitimate user and protect nothing a predictable name does not
 * already give away.
 */

/**
 * DOC: read, write and poll
 *
 * write(2) seals one message of type 0 per call: ``len`` bytes, at most
 * ``slot_size`` (EMSGSIZE above); a 0-byte write seals an empty record.
 * It blocks while the outgoing sealed store is full (EAGAIN with
 * O_NONBLOCK) and returns ``len``. read(2) opens the next message and
 * copies its payload only: no type, sequence number, timestamp or sender
 * credentials (use the RX ring for those). A buffer shorter than the
 * message fails with EMSGSIZE and the message stays queued; a faulting
 * buffer fails with EFAULT and the message stays queued too. It blocks
 * while nothing is waiting (EAGAIN with O_NONBLOCK) and returns EPIPE once
 * the other side hung up and everything it sealed was read.
 *
 * write(2) and SEND feed the same stream in the order the calls take the
 * endpoint's send lock; read(2) and RECV drain the same stream in the order
 * they take its receive lock. RECV moves every message it opens into RX,
 * so a read(2) after a RECV gets the message after those: mixing the two
 * on one endpoint reorders nothing in the stream, but splits it between
 * RX and the read buffers. Pick one per direction.
 *
 * poll(2)/epoll: EPOLLIN | EPOLLRDNORM while sealed records wait for this
 * endpoint (RECV/read would deliver or drop something); EPOLLOUT |
 * EPOLLWRNORM while the outgoing sealed store has room and the other side
 * has not hung up; EPOLLHUP | EPOLLRDHUP once it has hung up (with
 * EPOLLIN until drained). No events before the first peer attaches.
 */

/**
 * DOC: concurrency
 *
 * Any number of threads and processes may use one endpoint at once; the
 * kernel serializes what must be serialized. SEND, SEND_WAIT (after its
 * wait, which holds no lock), write(2) and REKEY of one endpoint take its
 * send lock; RECV, RECV_WAIT and read(2) its receive
 * lock; so SEND and RECV on one endpoint run in parallel from two threads,
 * two SENDs run one after the other. User space must still keep each ring
 * single-producer single-consumer on its side: two threads that both
 * write TX ``prod`` race with each other, not with the kernel, and the
 * kernel validates whatever they leave (EPROTO). CREATE, ATTACH and
 * CHALLENGE of one file are serialized; an endpoint's state (its role and
 * session) is published whole, so a SEND racing the ATTACH of the same
 * file sees either no session (ENOTCONN) or the complete new one. No
 * operation of one user, however it stalls (a page fault held by
 * userfaultfd or FUSE in write(2)/read(2)), makes CREATE, ATTACH,
 * CHALLENGE or close() of another channel wait: the module's global lock
 * guards the name table only.
 */

/* ------------------------------------------------------------------ */
/* Constants                                                           */
/* ------------------------------------------------------------------ */

/** SIPC_ABI_VERSION - bumped on any incompatible change */
#define SIPC_ABI_VERSION	2

/** SIPC_RING_MAGIC - ``magic`` of every ring header ("SIPC" little-endian) */
#define SIPC_RING_MAGIC		0x43504953U

/** SIPC_NAME_MAX - channel name buffer, including the terminating NUL */
#define SIPC_NAME_MAX		32

#define SIPC_MIN_SLOT_SIZE	64U
#define SIPC_MAX_SLOT_SIZE	65536U
#define SIPC_MIN_ENTRIES	2U
#define SIPC_MAX_ENTRIES	32768U

/** SIPC_KEY_LEN - X25519 public key, PSK and proof length */
#define SIPC_KEY_LEN		32
/**
 * SIPC_MAX_REKEY_RECORDS - largest records-per-epoch CREATE accepts (2^32)
 * SIPC_MAX_REKEY_BYTES - largest bytes-per-epoch CREATE accepts (2^38)
 *
 * Above either, CREATE fails with EINVAL. A key seals at most 2^32 records
 * and 2^38 bytes (2^34 AES blocks), inside the usage limits usually given
 * for AES-GCM with deterministic nonces (TLS 1.3 stops at 2^24.5 records
 * of 2^14 bytes, about 2^38.5 bytes); docs/key-schedule.md.
 */
#define SIPC_MAX_REKEY_RECORDS	(1ULL << 32)
#define SIPC_MAX_REKEY_BYTES	(1ULL << 38)

/**
 * SIPC_MAX_REKEY_UNSEALED - REKEYs allowed between two sealed records
 *
 * The receiver follows a record at most 1024 epochs past the previous one;
 * a record's epoch is the previous record's plus the REKEYs in between plus
 * at most one automatic step. So after this many REKEYs without a record
 * sealed in between, REKEY fails with EBUSY until the next record is
 * sealed, and a sender can never make its own direction unreadable.
 */
#define SIPC_MAX_REKEY_UNSEALED	1023U

/** SIPC_ARG_SIZE_MAX - largest ioctl argument size accepted (E2BIG above) */
#define SIPC_ARG_SIZE_MAX	4096U

/** SIPC_TAG_LEN - AES-GCM tag length */
#define SIPC_TAG_LEN		16
/** SIPC_SALT_LEN - per-direction nonce salt; nonce = salt || le64(seq) */
#define SIPC_SALT_LEN		4
#define SIPC_NONCE_LEN		12

/** SIPC_RING_HDR_SIZE - the header occupies exactly one 4 KiB page */
#define SIPC_RING_HDR_SIZE	4096U

/* mmap offsets (io_uring style): pass as the offset argument of mmap(2) */
#define SIPC_OFF_TX_RING	0x00000000ULL
#define SIPC_OFF_RX_RING	0x10000000ULL

/* Ring kinds, in sipc_ring_hdr.kind */
#define SIPC_RING_TX		1
#define SIPC_RING_RX		2

/* Directions (in the sealed record header) */
#define SIPC_DIR_OWNER_TO_PEER	0
#define SIPC_DIR_PEER_TO_OWNER	1

/* Flags words: prod_flags / cons_flags (writer: the side that owns them) */
#define SIPC_FLAG_NEED_WAKEUP	(1U << 0)	/* owner sleeps on its doorbell */
#define SIPC_FLAG_CLOSED	(1U << 1)	/* owner hung up; final */

/* Kernel status word (sipc_ring_hdr.status; writer: kernel) */
#define SIPC_STATUS_PEER_ATTACHED	(1U << 0)
#define SIPC_STATUS_PEER_CLOSED		(1U << 1)	/* peer gone; drain, then EPIPE */
#define SIPC_STATUS_ERROR		(1U << 2)	/* EPROTO seen on this ring */

/* Feature bits reported by SIPC_IOC_INFO */
#define SIPC_FEAT_MMAP_RINGS	(1ULL << 0)
#define SIPC_FEAT_READ_WRITE	(1ULL << 1)
#define SIPC_FEAT_DOORBELL	(1ULL << 2)
#define SIPC_FEAT_X25519	(1ULL << 3)
#define SIPC_FEAT_IDENTITY	(1ULL << 4)
#define SIPC_FEAT_PSK		(1ULL << 5)
#define SIPC_FEAT_REKEY		(1ULL << 6)
#define SIPC_FEAT_RECV_WAIT	(1ULL << 7)
#define SIPC_FEAT_SEND_WAIT	(1ULL << 8)
#define SIPC_FEAT_TEST_HOOKS	(1ULL << 63)	/* built with SIPC_TEST_HOOKS */

/* ------------------------------------------------------------------ */
/* Shared ring layout                                                  */
/* ------------------------------------------------------------------ */

/**
 * struct sipc_ring_hdr - first page of every ring mapping
 *
 * Line 0 is written once by the kernel before the ring is mapped and never
 * again; each later field sits on its own 128-byte line (no false sharing
 * between the two sides) and has exactly one writer, named per field. All
 * multi-byte fields are in the CPU's native byte order.
 *
 * @magic: %SIPC_RING_MAGIC. Writer: kernel, once.
 * @abi_version: %SIPC_ABI_VERSION. Writer: kernel, once.
 * @kind: %SIPC_RING_TX or %SIPC_RING_RX. Writer: kernel, once.
 * @entries: number of descriptors and slots, a power of two. Writer:
 *	kernel, once.
 * @slot_size: bytes per slot, a power of two. Writer: kernel, once.
 * @desc_size: bytes per descriptor (16 for TX, 64 for RX). Writer:
 *	kernel, once.
 * @desc_offset: offset of the descriptor array from the start of the
 *	mapping (%SIPC_RING_HDR_SIZE). Writer: kernel, once.
 * @slots_offset: offset of the slot array from the start of the mapping,
 *	page aligned. Writer: kernel, once.
 * @ring_bytes: total length of the mapping. Writer: kernel, once.
 * @reserved0: zero.
 * @prod: producer index. Writer: the producer (TX: user; RX: kernel).
 * @pad1: zero.
 * @cons: consumer index. Writer: the consumer (TX: kernel; RX: user).
 * @pad2: zero.
 * @prod_flags: %SIPC_FLAG_* of the producer. Writer: the producer.
 * @pad3: zero.
 * @cons_flags: %SIPC_FLAG_* of the consumer. Writer: the consumer.
 * @pad4: zero.
 * @store_prod: records sealed into the direction's sealed store so far
 *	(free-running). Writer: kernel (the sending endpoint's SEND path).
 * @store_cons: records opened out of the sealed store so far. Writer:
 *	kernel (the receiving endpoint's RECV path).
 * @store_entries: capacity of the sealed store. Writer: kernel, once.
 * @status: %SIPC_STATUS_* bits. Writer: kernel.
 * @pad5: zero.
 * @reserved: zero; pads the header to one page.
 *
 * On a TX ring the store_* fields describe the outgoing sealed store (the
 * producer waits for ``store_prod - store_cons < store_entries``); on an RX
 * ring they describe the incoming one (records are waiting while
 * ``store_prod != store_cons``).
 */
struct sipc_ring_hdr {
	/* line 0: geometry, kernel-written once */
	__u32 magic;
	__u16 abi_version;
	__u16 kind;
	__u32 entries;
	__u32 slot_size;
	__u32 desc_size;
	__u32 desc_offset;
	__u64 slots_offset;
	__u64 ring_bytes;
	__u8  reserved0[88];
	/* line 1 */
	__u32 prod;
	__u8  pad1[124];
	/* line 2 */
	__u32 cons;
	__u8  pad2[124];
	/* line 3 */
	__u32 prod_flags;
	__u8  pad3[124];
	/* line 4 */
	__u32 cons_flags;
	__u8  pad4[124];
	/* line 5: kernel status */
	__u32 store_prod;
	__u32 store_cons;
	__u32 store_entries;
	__u32 status;
	__u8  pad5[112];
	__u8  reserved[3328];
};

/**
 * struct sipc_tx_desc - a message user space asks the kernel to send
 * @len: payload bytes in the slot, 0..slot_size. Writer: user.
 * @type: application message type, opaque to the kernel. Writer: user.
 * @flags: must be zero (EPROTO otherwise). Writer: user.
 * @reserved: must be zero (EPROTO otherwise). Writer: user.
 *
 * The kernel reads each field once (READ_ONCE) before checking it.
 */
struct sipc_tx_desc {
	__u32 len;
	__u16 type;
	__u16 flags;
	__u64 reserved;
};

/**
 * struct sipc_rx_desc - a received message, stamped by the kernel
 * @seq: sequence number in this direction, from 0, strictly increasing by
 *	one per record. Writer: kernel.
 * @timestamp_ns: CLOCK_MONOTONIC at the sender's SEND/write. Writer: kernel.
 * @len: payload bytes in the slot. Writer: kernel.
 * @type: the sender's message type. Writer: kernel.
 * @flags: zero for now. Writer: kernel.
 * @sender_pid: sending endpoint's opener tgid, in the receiver's pid
 *	namespace (0 if not visible there). Writer: kernel.
 * @sender_uid: opener's uid in the receiver's user namespace (overflowuid
 *	if unmapped). Writer: kernel.
 * @sender_gid: opener's gid, likewise. Writer: kernel.
 * @epoch: key epoch the record was sealed under. Writer: kernel.
 * @reserved: zero. Writer: kernel.
 */
struct sipc_rx_desc {
	__u64 seq;
	__u64 timestamp_ns;
	__u32 len;
	__u16 type;
	__u16 flags;
	__u32 sender_pid;
	__u32 sender_uid;
	__u32 sender_gid;
	__u32 epoch;
	__u8  reserved[24];
};

/**
 * struct sipc_record_hdr - sealed record header, the AES-GCM AAD
 * @channel_id: 64-bit channel identifier chosen at create.
 * @seq: sequence number in this direction.
 * @timestamp_ns: commit timestamp (CLOCK_MONOTONIC).
 * @epoch: key epoch.
 * @len: plaintext length; the ciphertext has the same length and is
 *	followed by a %SIPC_TAG_LEN tag.
 * @type: message type.
 * @direction: %SIPC_DIR_OWNER_TO_PEER or %SIPC_DIR_PEER_TO_OWNER.
 * @version: record format version, 1.
 * @group_left: records after this one in its group (0 for a record sealed
 *	alone, and for the last record of a group).
 *
 * Both backends use this format: a group of k consecutive records is sealed
 * with one AES-GCM operation whose AAD is the k headers (40 bytes each,
 * every field little-endian) and whose nonce is the direction's 4-byte salt
 * followed by le64(seq of the first record); its tag follows the last
 * record's ciphertext. A record sealed alone (k = 1) is header, ciphertext,
 * tag. The kernel keeps records in its sealed store; the userspace backend
 * places them, one per group, in the shared ring. See
 * docs/record-format.md.
 */
struct sipc_record_hdr {
	__u64 channel_id;
	__u64 seq;
	__u64 timestamp_ns;
	__u32 epoch;
	__u32 len;
	__u16 type;
	__u8  direction;
	__u8  version;
	__u32 group_left;
};

/* ------------------------------------------------------------------ */
/* ioctls                                                              */
/* ------------------------------------------------------------------ */

/*
 * Every ioctl argument struct starts with __u32 size = sizeof(the struct as
 * the caller knows it). The kernel accepts any size >= the first published
 * size (the *_SIZE_VER0 constants); a larger struct whose unknown tail is
 * not all zero fails with E2BIG (copy_struct_from_user). Output structs are
 * written up to min(size, kernel's size).
 */

/**
 * struct sipc_info - SIPC_IOC_INFO: what this module supports
 * @size: sizeof(struct sipc_info). In.
 * @abi_version: %SIPC_ABI_VERSION. Out.
 * @features: %SIPC_FEAT_* bits. Out.
 * @min_slot_size: smallest slot size accepted by CREATE. Out.
 * @max_slot_size: largest slot size accepted by CREATE (module param). Out.
 * @min_entries: smallest slot count. Out.
 * @max_entries: largest slot count (module param). Out.
 * @max_channels: channel limit (module param). Out.
 * @nr_channels: channels that exist now. Out.
 * @max_channel_bytes: pinned-bytes limit per channel (module param):
 *	CREATE fails with ENOSPC when 2 * (tx_ring_bytes + rx_ring_bytes) +
 *	2 * PAGE_ALIGN(entries * ALIGN(40 + slot_size + 16, 64)) exceeds it
 *	(both endpoints' rings and both sealed stores). Out.
 * @rekey_records: default records per key epoch. Out.
 * @max_user_channels: channels one uid may have charged at once (module
 *	param): a channel is charged to its creator's fsuid from CREATE until
 *	the last reference to its memory is gone (the owner *and* the peer
 *	closed), not only while its name is listed. Out.
 * @reserved0: zero. Out.
 * @max_user_bytes: pinned bytes one uid may have charged at once (module
 *	param), counted like @max_user_channels. Out.
 * @reserved: zero. Out.
 *
 * @nr_channels and @max_channels count channels the same way: from CREATE
 * until the last endpoint or session holding the channel is gone.
 */
struct sipc_info {
	__u32 size;
	__u32 abi_version;
	__u64 features;
	__u32 min_slot_size;
	__u32 max_slot_size;
	__u32 min_entries;
	__u32 max_entries;
	__u32 max_channels;
	__u32 nr_channels;
	__u64 max_channel_bytes;
	__u64 rekey_records;
	__u32 max_user_channels;
	__u32 reserved0;
	__u64 max_user_bytes;
	__u64 reserved[2];
};

/* Policy flags (sipc_create.flags) */
#define SIPC_POLICY_UID		(1U << 0)	/* peer's fsuid must equal peer_uid */
#define SIPC_POLICY_GID		(1U << 1)	/* peer's fsgid or a supplementary gid */
#define SIPC_POLICY_PIDNS	(1U << 2)	/* peer's pid ns is the one peer_pidns_fd names */
#define SIPC_POLICY_IDENTITY	(1U << 3)	/* peer proves identity_pub */
#define SIPC_CREATE_PSK		(1U << 4)	/* psk is valid */
#define SIPC_CREATE_FLAGS_ALL	0x1fU

/**
 * struct sipc_create - SIPC_IOC_CREATE: make this file a channel owner
 * @size: sizeof(struct sipc_create). In.
 * @flags: %SIPC_POLICY_* and %SIPC_CREATE_PSK. In.
 * @name: NUL-terminated, 1..31 bytes of ``[A-Za-z0-9._-]``. In.
 * @entries: slots per ring, a power of two. In.
 * @slot_size: bytes per slot, a power of two. In.
 * @peer_uid: uid (in the creator's user namespace) with %SIPC_POLICY_UID. In.
 * @peer_gid: gid with %SIPC_POLICY_GID. In.
 * @peer_pidns_fd: with %SIPC_POLICY_PIDNS, a file descriptor of the pid
 *	namespace the peer must be in: an nsfs file (open("/proc/PID/ns/pid")
 *	or ioctl(pidfd, PIDFD_GET_PID_NAMESPACE)). The kernel takes a
 *	reference on that namespace for the channel's life and compares
 *	namespaces, not inode numbers: inode numbers are recycled, and a
 *	namespace created after the pinned one died never matches. The fd
 *	may be closed after CREATE. EBADF if it is not open, EINVAL if it is
 *	not a pid namespace. Ignored (must be zero) without the flag. In.
 * @reserved1: zero. In.
 * @identity_pub: X25519 public key the peer must prove with
 *	%SIPC_POLICY_IDENTITY. In.
 * @psk: optional pre-shared key with %SIPC_CREATE_PSK; copied, mixed into
 *	the key schedule, zeroized; never returned. In.
 * @rekey_records: records per key epoch, 0 = module default. In.
 * @rekey_bytes: bytes per key epoch, 0 = module default. In.
 * @channel_id: the channel's id (the AAD's channel_id). Out.
 * @tx_ring_bytes: length to mmap at %SIPC_OFF_TX_RING. Out.
 * @rx_ring_bytes: length to mmap at %SIPC_OFF_RX_RING. Out.
 * @reserved: zero. In.
 */
struct sipc_create {
	__u32 size;
	__u32 flags;
	char  name[SIPC_NAME_MAX];
	__u32 entries;
	__u32 slot_size;
	__u32 peer_uid;
	__u32 peer_gid;
	__s32 peer_pidns_fd;
	__u32 reserved1;
	__u8  identity_pub[SIPC_KEY_LEN];
	__u8  psk[SIPC_KEY_LEN];
	__u64 rekey_records;
	__u64 rekey_bytes;
	__u64 channel_id;
	__u64 tx_ring_bytes;
	__u64 rx_ring_bytes;
	__u64 reserved[4];
};

/**
 * struct sipc_challenge - SIPC_IOC_CHALLENGE: first half of an identity
 * attach
 * @size: sizeof(struct sipc_challenge). In.
 * @flags: zero. In.
 * @name: channel to attach to. In.
 * @kernel_pub: the kernel's fresh ephemeral X25519 public key for this
 *	attach attempt; valid for one %SIPC_IOC_ATTACH on this file. Out.
 * @nonce: 32 random bytes bound into the proof transcript. Out.
 * @reserved: zero.
 *
 * The proof is HMAC-SHA256(key = HKDF(X25519(identity_priv, kernel_pub)),
 * transcript) as specified in docs/key-schedule.md; a challenge is consumed
 * by the next ATTACH, successful or not, so a proof cannot be replayed.
 */
struct sipc_challenge {
	__u32 size;
	__u32 flags;
	char  name[SIPC_NAME_MAX];
	__u8  kernel_pub[SIPC_KEY_LEN];
	__u8  nonce[SIPC_KEY_LEN];
	__u64 reserved[2];
};

#define SIPC_ATTACH_PROOF	(1U << 0)	/* proof is valid (needs CHALLENGE) */
#define SIPC_ATTACH_PSK		(1U << 1)	/* psk is valid */
#define SIPC_ATTACH_FLAGS_ALL	0x3U

/**
 * struct sipc_attach - SIPC_IOC_ATTACH: make this file the channel's peer
 * @size: sizeof(struct sipc_attach). In.
 * @flags: %SIPC_ATTACH_*. In.
 * @name: channel name. In.
 * @proof: identity proof with %SIPC_ATTACH_PROOF. In.
 * @psk: pre-shared key with %SIPC_ATTACH_PSK. In.
 * @entries: the channel's slot count. Out.
 * @slot_size: the channel's slot size. Out.
 * @channel_id: the channel's id. Out.
 * @tx_ring_bytes: length to mmap at %SIPC_OFF_TX_RING. Out.
 * @rx_ring_bytes: length to mmap at %SIPC_OFF_RX_RING. Out.
 * @reserved: zero. In.
 */
struct sipc_attach {
	__u32 size;
	__u32 flags;
	char  name[SIPC_NAME_MAX];
	__u8  proof[SIPC_KEY_LEN];
	__u8  psk[SIPC_KEY_LEN];
	__u32 entries;
	__u32 slot_size;
	__u64 channel_id;
	__u64 tx_ring_bytes;
	__u64 rx_ring_bytes;
	__u64 reserved[4];
};

/**
 * struct sipc_doorbell - SIPC_IOC_SET_DOORBELL: register an eventfd
 * @size: sizeof(struct sipc_doorbell). In.
 * @flags: zero. In.
 * @eventfd: eventfd to signal, or -1 to remove the doorbell. In.
 * @reserved: zero. In.
 *
 * The kernel signals it when data arrives while RX ``cons_flags`` has
 * NEED_WAKEUP, when sealed-store room appears while TX ``prod_flags`` has
 * NEED_WAKEUP, and when the other endpoint hangs up.
 */
struct sipc_doorbell {
	__u32 size;
	__u32 flags;
	__s32 eventfd;
	__u32 reserved;
};

/**
 * struct sipc_peer_cred - SIPC_IOC_PEER_CRED: who the other endpoint is
 * @size: sizeof(struct sipc_peer_cred). In.
 * @flags: zero. In.
 * @pid: the other opener's tgid in the caller's pid namespace (0 if not
 *	visible). Out.
 * @uid: its fsuid at open, in the caller's user namespace. Out.
 * @gid: its fsgid at open, in the caller's user namespace. Out.
 * @identity_verified: 1 if it proved the channel's pinned identity. Out.
 * @pidns_ino: its pid namespace inode number. Out.
 * @userns_ino: its user namespace inode number. Out.
 * @reserved: zero.
 *
 * Attested by the kernel from the opener's credentials (file->f_cred).
 * ENOTCONN when there is no other endpoint.
 */
struct sipc_peer_cred {
	__u32 size;
	__u32 flags;
	__u32 pid;
	__u32 uid;
	__u32 gid;
	__u32 identity_verified;
	__u64 pidns_ino;
	__u64 userns_ino;
	__u64 reserved[2];
};

/**
 * struct sipc_stats - SIPC_IOC_STATS: this endpoint's counters
 * @size: sizeof(struct sipc_stats). In.
 * @flags: zero. In.
 * @sealed_msgs: records this endpoint sealed (SEND/write). Out.
 * @sealed_bytes: plaintext bytes sealed. Out.
 * @opened_msgs: records opened for this endpoint (RECV/read). Out.
 * @opened_bytes: plaintext bytes opened. Out.
 * @badmsg: records that failed authentication. Out.
 * @store_full: SEND calls that stopped because the sealed store was full. Out.
 * @doorbells_signalled: doorbell signals sent to this endpoint. Out.
 * @doorbells_suppressed: signals skipped because NEED_WAKEUP was clear. Out.
 * @eproto: EPROTO events on this endpoint's rings. Out.
 * @rekeys: key epochs advanced (both directions). Out.
 * @attach_refused: refused attaches to this channel (owner only). Out.
 * @tx_fill: filled TX entries now. Out.
 * @rx_fill: filled RX entries now. Out.
 * @store_out_fill: records waiting in the outgoing sealed store. Out.
 * @store_in_fill: records waiting in the incoming sealed store. Out.
 * @tx_epoch: current sealing epoch. Out.
 * @rx_epoch: current opening epoch. Out.
 * @tx_discarded: TX messages this endpoint (an owner) had published but
 *	not sent when a new peer attached: they were meant for the previous
 *	session, so the kernel discarded them unsealed instead of sealing
 *	them to the new peer (DOC: sessions). Out.
 * @reserved: zero.
 */
struct sipc_stats {
	__u32 size;
	__u32 flags;
	__u64 sealed_msgs;
	__u64 sealed_bytes;
	__u64 opened_msgs;
	__u64 opened_bytes;
	__u64 badmsg;
	__u64 store_full;
	__u64 doorbells_signalled;
	__u64 doorbells_suppressed;
	__u64 eproto;
	__u64 rekeys;
	__u64 attach_refused;
	__u32 tx_fill;
	__u32 rx_fill;
	__u32 store_out_fill;
	__u32 store_in_fill;
	__u32 tx_epoch;
	__u32 rx_epoch;
	__u64 tx_discarded;
	__u64 reserved[3];
};

#define SIPC_REKEY_TX		(1U << 0)	/* ratchet the sealing key now */
#define SIPC_REKEY_FLAGS_ALL	0x1U

/**
 * struct sipc_rekey - SIPC_IOC_REKEY: ratchet this endpoint's sending key
 * @size: sizeof(struct sipc_rekey). In.
 * @flags: %SIPC_REKEY_TX. In.
 * @new_epoch: the sealing epoch after the call. Out.
 * @reserved: zero.
 *
 * Only the sending direction can be ratcheted by its sender; the receiver
 * follows the epoch carried in each record and erases old keys.
 */
struct sipc_rekey {
	__u32 size;
	__u32 flags;
	__u32 new_epoch;
	__u32 reserved;
};

/**
 * struct sipc_test_keys - SIPC_IOC_TEST_KEYS: test builds only
 * @size: sizeof(struct sipc_test_keys). In.
 * @flags: zero. In.
 * @tx_key: current sealing key. Out.
 * @tx_salt: sealing nonce salt. Out.
 * @tx_epoch: its epoch. Out.
 *
 * Exists only when the module is built with SIPC_TEST_HOOKS=1 (then
 * %SIPC_FEAT_TEST_HOOKS is set); a normal build returns ENOTTY. It lets the
 * guest tests open a kernel-sealed record with an independent AES-GCM.
 */
struct sipc_test_keys {
	__u32 size;
	__u32 flags;
	__u8  tx_key[SIPC_KEY_LEN];
	__u8  tx_salt[SIPC_SALT_LEN];
	__u32 tx_epoch;
};

/**
 * struct sipc_test_sealed - SIPC_IOC_TEST_PEEK_SEALED: test builds only
 * @size: sizeof(struct sipc_test_sealed). In.
 * @flags: zero, or %SIPC_TEST_SEALED_FLIP. In.
 * @buf: user pointer receiving the oldest unopened group of the outgoing
 *	sealed store, serialized: for each record &struct sipc_record_hdr and
 *	its ciphertext, then the group's tag (for a record sealed alone:
 *	header, ciphertext, tag). In.
 * @buf_len: its length. In.
 * @record_len: bytes written. Out. With %SIPC_TEST_SEALED_FLIP: In, the
 *	offset, in that serialized form, of the byte to corrupt.
 * @reserved: zero.
 *
 * With %SIPC_TEST_SEALED_FLIP nothing is copied: the kernel flips the
 * lowest bit of byte @record_len of that group in the store (a header, a
 * ciphertext or the tag), so the tests can check that a tampered group is
 * refused with EBADMSG and the stream goes on.
 */
#define SIPC_TEST_SEALED_FLIP	(1U << 0)

struct sipc_test_sealed {
	__u32 size;
	__u32 flags;
	__u64 buf;
	__u32 buf_len;
	__u32 record_len;
	__u64 reserved;
};

#define SIPC_TEST_KX_IDENTITY	(1U << 0)	/* identity_pub/nonce valid: compute proof */
#define SIPC_TEST_KX_PSK	(1U << 1)	/* psk valid */

/**
 * struct sipc_test_kx - SIPC_IOC_TEST_KEY_SCHEDULE: test builds only
 * @size: sizeof(struct sipc_test_kx). In.
 * @flags: %SIPC_TEST_KX_*. In.
 * @name: channel name. In.
 * @owner_priv: owner's ephemeral X25519 private key. In.
 * @peer_priv: peer's ephemeral X25519 private key. In.
 * @identity_pub: pinned identity with %SIPC_TEST_KX_IDENTITY. In.
 * @nonce: challenge nonce with %SIPC_TEST_KX_IDENTITY. In.
 * @psk: pre-shared key with %SIPC_TEST_KX_PSK. In.
 * @owner_pub: X25519(owner_priv, 9). Out.
 * @peer_pub: X25519(peer_priv, 9). Out.
 * @proof: the identity proof the kernel expects. Out.
 * @o2p_key: owner-to-peer key, epoch 0. Out.
 * @p2o_key: peer-to-owner key, epoch 0. Out.
 * @o2p_key_epoch1: @o2p_key after one rekey ratchet step. Out.
 * @o2p_salt: owner-to-peer nonce salt. Out.
 * @p2o_salt: peer-to-owner nonce salt. Out.
 *
 * Runs the kernel's key schedule (docs/key-schedule.md) on chosen inputs so
 * that the guest tests can compare it with the pinned vectors. Exists only
 * in SIPC_TEST_HOOKS=1 builds; a normal build returns ENOTTY.
 */
struct sipc_test_kx {
	__u32 size;
	__u32 flags;
	char  name[SIPC_NAME_MAX];
	__u8  owner_priv[SIPC_KEY_LEN];
	__u8  peer_priv[SIPC_KEY_LEN];
	__u8  identity_pub[SIPC_KEY_LEN];
	__u8  nonce[SIPC_KEY_LEN];
	__u8  psk[SIPC_KEY_LEN];
	__u8  owner_pub[SIPC_KEY_LEN];
	__u8  peer_pub[SIPC_KEY_LEN];
	__u8  proof[SIPC_KEY_LEN];
	__u8  o2p_key[SIPC_KEY_LEN];
	__u8  p2o_key[SIPC_KEY_LEN];
	__u8  o2p_key_epoch1[SIPC_KEY_LEN];
	__u8  o2p_salt[SIPC_SALT_LEN];
	__u8  p2o_salt[SIPC_SALT_LEN];
};

/**
 * struct sipc_test_seal - SIPC_IOC_TEST_SET_SEAL: test builds only
 * @size: sizeof(struct sipc_test_seal). In.
 * @flags: zero. In.
 * @key: the sealing key of @epoch. In.
 * @salt: the sealing nonce salt. In.
 * @epoch: the epoch of @key. In.
 * @channel_id: channel id stamped into the records this endpoint seals
 *	from now on (the AAD's channel_id). In.
 * @seq: sequence number of the next record this endpoint seals. In.
 * @clock_ns: timestamp stamped into every record this endpoint seals from
 *	now on; 0 keeps CLOCK_MONOTONIC. In.
 *
 * Replaces the sealing state of this endpoint's sending direction, so that
 * SEND, write(2) and REKEY then seal and ratchet with chosen inputs: the
 * guest tests reproduce the pinned record vectors with the kernel's own
 * sealing path, and roll a sealer back to an erased epoch's key to check
 * that its records are refused. The receiving direction is not touched.
 * Exists only in SIPC_TEST_HOOKS=1 builds; a normal build returns ENOTTY.
 */
struct sipc_test_seal {
	__u32 size;
	__u32 flags;
	__u8  key[SIPC_KEY_LEN];
	__u8  salt[SIPC_SALT_LEN];
	__u32 epoch;
	__u64 channel_id;
	__u64 seq;
	__u64 clock_ns;
};

/**
 * struct sipc_test_store - SIPC_IOC_TEST_DUMP_STORE: test builds only
 * @size: sizeof(struct sipc_test_store). In.
 * @flags: zero. In.
 * @buf: user pointer receiving the raw bytes of this endpoint's outgoing
 *	sealed store (every record slot, whatever it holds). In.
 * @buf_len: its length; EMSGSIZE when smaller than the store. In.
 * @store_len: the store's length in bytes. Out.
 *
 * Lets the guest tests check that the store holds no plaintext: not after
 * RECV or read(2) consumed a record, not after a group failed to open.
 * Exists only in SIPC_TEST_HOOKS=1 builds; a normal build returns ENOTTY.
 */
struct sipc_test_store {
	__u32 size;
	__u32 flags;
	__u64 buf;
	__u64 buf_len;
	__u64 store_len;
};

/**
 * DOC: blocking receive
 *
 * %SIPC_IOC_RECV_WAIT is %SIPC_IOC_RECV that sleeps in the kernel when
 * nothing is waiting. Its argument is a value, not a pointer: a timeout in
 * milliseconds (0: do not sleep; %SIPC_WAIT_FOREVER: no timeout; above
 * 0xffffffff: EINVAL). It returns the number of messages delivered into
 * RX, 0 when the timeout passed or RX has no free slot, or the errors of
 * %SIPC_IOC_RECV (EPIPE once the other endpoint hung up and everything it
 * sealed was received); a signal interrupts it with EINTR.
 * The sender wakes the sleeper directly, without the doorbell: a receiver
 * that blocks here does one system call per wake-up, where doorbell + poll
 * + %SIPC_IOC_RECV costs three. Modules that have it report
 * %SIPC_FEAT_RECV_WAIT.
 *
 * %SIPC_IOC_SEND_WAIT is its counterpart for the producer: it sleeps until
 * the outgoing sealed store has room for every record published in TX (at
 * most the store's capacity), the other endpoint hung up or a new session
 * began, then does what %SIPC_IOC_SEND does and returns what it returns.
 * Its argument is the same timeout value; when the timeout passes it still
 * SENDs and seals what fits. A producer that outruns its consumer thus
 * seals each batch with one system call (poll + %SIPC_IOC_SEND costs two)
 * and never in pieces. ENOTCONN before a peer attached; EINTR when a
 * signal arrived during the wait (nothing sealed). Modules that have it
 * report %SIPC_FEAT_SEND_WAIT.
 */
#define SIPC_WAIT_FOREVER	0xffffffffU

/* "0xBC" is not listed in Documentation/userspace-api/ioctl/ioctl-number.rst */
#define SIPC_IOC_MAGIC		0xBC

#define SIPC_IOC_INFO		_IO(SIPC_IOC_MAGIC, 0x00)	/* struct sipc_info */
#define SIPC_IOC_CREATE		_IO(SIPC_IOC_MAGIC, 0x01)	/* struct sipc_create */
#define SIPC_IOC_CHALLENGE	_IO(SIPC_IOC_MAGIC, 0x02)	/* struct sipc_challenge */
#define SIPC_IOC_ATTACH		_IO(SIPC_IOC_MAGIC, 0x03)	/* struct sipc_attach */
#define SIPC_IOC_SEND		_IO(SIPC_IOC_MAGIC, 0x04)	/* no argument; returns count */
#define SIPC_IOC_RECV		_IO(SIPC_IOC_MAGIC, 0x05)	/* no argument; returns count */
#define SIPC_IOC_SET_DOORBELL	_IO(SIPC_IOC_MAGIC, 0x06)	/* struct sipc_doorbell */
#define SIPC_IOC_PEER_CRED	_IO(SIPC_IOC_MAGIC, 0x07)	/* struct sipc_peer_cred */
#define SIPC_IOC_STATS		_IO(SIPC_IOC_MAGIC, 0x08)	/* struct sipc_stats */
#define SIPC_IOC_REKEY		_IO(SIPC_IOC_MAGIC, 0x09)	/* struct sipc_rekey */
#define SIPC_IOC_RECV_WAIT	_IO(SIPC_IOC_MAGIC, 0x0a)	/* timeout in ms; returns count */
#define SIPC_IOC_SEND_WAIT	_IO(SIPC_IOC_MAGIC, 0x0b)	/* timeout in ms; returns count */
#define SIPC_IOC_TEST_KEYS	_IO(SIPC_IOC_MAGIC, 0x40)	/* test builds only */
#define SIPC_IOC_TEST_PEEK_SEALED _IO(SIPC_IOC_MAGIC, 0x41)	/* test builds only */
#define SIPC_IOC_TEST_KEY_SCHEDULE _IO(SIPC_IOC_MAGIC, 0x42)	/* test builds only */
#define SIPC_IOC_TEST_SET_SEAL	_IO(SIPC_IOC_MAGIC, 0x43)	/* test builds only */
#define SIPC_IOC_TEST_DUMP_STORE _IO(SIPC_IOC_MAGIC, 0x44)	/* test builds only */

/* First published sizes: smaller structs get EINVAL */
#define SIPC_INFO_SIZE_VER0		88
#define SIPC_CREATE_SIZE_VER0		200
#define SIPC_CHALLENGE_SIZE_VER0	120
#define SIPC_ATTACH_SIZE_VER0		168
#define SIPC_DOORBELL_SIZE_VER0		16
#define SIPC_PEER_CRED_SIZE_VER0	56
#define SIPC_STATS_SIZE_VER0		152
#define SIPC_REKEY_SIZE_VER0		16
#define SIPC_TEST_KEYS_SIZE_VER0	48
#define SIPC_TEST_SEALED_SIZE_VER0	32
#define SIPC_TEST_KX_SIZE_VER0		400
#define SIPC_TEST_SEAL_SIZE_VER0	72
#define SIPC_TEST_STORE_SIZE_VER0	32

/* Self-checks: no architecture-dependent padding in any shared struct. */
#ifdef __KERNEL__
#define __SIPC_ASSERT(c, m) _Static_assert(c, m)
#else
#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define __SIPC_ASSERT(c, m) _Static_assert(c, m)
#elif defined(__cplusplus) && __cplusplus >= 201103L
#define __SIPC_ASSERT(c, m) static_assert(c, m)
#else
#define __SIPC_CAT2(a, b) a##b
#define __SIPC_CAT(a, b) __SIPC_CAT2(a, b)
#define __SIPC_ASSERT(c, m) \
	typedef char __SIPC_CAT(__sipc_assert_, __LINE__)[(c) ? 1 : -1] \
		__attribute__((unused))
#endif
#endif

__SIPC_ASSERT(sizeof(struct sipc_ring_hdr) == SIPC_RING_HDR_SIZE, "ring hdr");
__SIPC_ASSERT(sizeof(struct sipc_tx_desc) == 16, "tx desc");
__SIPC_ASSERT(sizeof(struct sipc_rx_desc) == 64, "rx desc");
__SIPC_ASSERT(sizeof(struct sipc_record_hdr) == 40, "record hdr");
__SIPC_ASSERT(sizeof(struct sipc_info) == SIPC_INFO_SIZE_VER0, "info");
__SIPC_ASSERT(sizeof(struct sipc_create) == SIPC_CREATE_SIZE_VER0, "create");
__SIPC_ASSERT(sizeof(struct sipc_challenge) == SIPC_CHALLENGE_SIZE_VER0, "challenge");
__SIPC_ASSERT(sizeof(struct sipc_attach) == SIPC_ATTACH_SIZE_VER0, "attach");
__SIPC_ASSERT(sizeof(struct sipc_doorbell) == SIPC_DOORBELL_SIZE_VER0, "doorbell");
__SIPC_ASSERT(sizeof(struct sipc_peer_cred) == SIPC_PEER_CRED_SIZE_VER0, "peer cred");
__SIPC_ASSERT(sizeof(struct sipc_stats) == SIPC_STATS_SIZE_VER0, "stats");
__SIPC_ASSERT(sizeof(struct sipc_rekey) == SIPC_REKEY_SIZE_VER0, "rekey");
__SIPC_ASSERT(sizeof(struct sipc_test_keys) == SIPC_TEST_KEYS_SIZE_VER0, "test keys");
__SIPC_ASSERT(sizeof(struct sipc_test_sealed) == SIPC_TEST_SEALED_SIZE_VER0, "test sealed");
__SIPC_ASSERT(sizeof(struct sipc_test_kx) == SIPC_TEST_KX_SIZE_VER0, "test kx");
__SIPC_ASSERT(sizeof(struct sipc_test_seal) == SIPC_TEST_SEAL_SIZE_VER0, "test seal");
__SIPC_ASSERT(sizeof(struct sipc_test_store) == SIPC_TEST_STORE_SIZE_VER0, "test store");
__SIPC_ASSERT(__builtin_offsetof(struct sipc_ring_hdr, prod) == 128, "prod line");
__SIPC_ASSERT(__builtin_offsetof(struct sipc_ring_hdr, cons) == 256, "cons line");
__SIPC_ASSERT(__builtin_offsetof(struct sipc_ring_hdr, prod_flags) == 384, "prod_flags line");
__SIPC_ASSERT(__builtin_offsetof(struct sipc_ring_hdr, cons_flags) == 512, "cons_flags line");
__SIPC_ASSERT(__builtin_offsetof(struct sipc_ring_hdr, store_prod) == 640, "status line");

#undef __SIPC_ASSERT

#endif /* _UAPI_LINUX_SECURE_IPC_H */
