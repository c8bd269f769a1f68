/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Channels, sessions and endpoints.
 *
 * Lifetimes:
 * - An endpoint (struct sipc_endpoint) is one open file. It is refcounted:
 *   the file holds one reference, and each session it belongs to holds one.
 * - A channel (struct sipc_channel) is created by its owner. The registry
 *   lists it until the owner closes; each endpoint and each session holds a
 *   reference, so it lives while either endpoint does.
 * - A session (struct sipc_session) is one attach: the two sealed stores,
 *   the keys and the crypto transforms. Both endpoints hold a reference
 *   while they belong to it; when the peer goes away the owner keeps the
 *   old session until it has drained it or a new peer attaches.
 *
 * Lock order: ep->lock -> sipc_registry_lock (a leaf: it guards the name
 *	table only and nothing sleeps under it but its own allocations);
 *	ep->lock -> sipc_charge_lock (a leaf);
 *	ep->lock -> ep->tx_lock -> ep->rx_lock -> ep->sess_lock / ep->db_lock /
 *	ring->status_lock (spinlocks). ATTACH takes the *owner's* tx_lock and
 *	rx_lock under the *attaching* file's ep->lock (killable); nothing takes
 *	an ep->lock under a tx_lock or rx_lock.
 * mmap_lock is taken inside ep->tx_lock / ep->rx_lock (user copies in
 * write/read) and outside ep->lock (mmap), never the other way round.
 *
 * What a lockless reader may see of an endpoint (issue: no session without
 * its role):
 * - ep->session: NULL, or a complete session. It is installed and removed
 *   with tx_lock, rx_lock and sess_lock held; the data path reads it under
 *   tx_lock or rx_lock, poll and sleepers take a reference under sess_lock.
 *   The role of @ep in it is sipc_session_role(s, ep), a constant of the
 *   session: the data path never reads ep->role.
 * - ep->role: SIPC_ROLE_NONE, then OWNER or PEER, once, with a
 *   store-release after the rings exist; read by mmap with a load-acquire
 *   and by the control path under ep->lock.
 * - ep->closed: set once under tx_lock and rx_lock by the hang-up; ATTACH
 *   checks it under the same locks before it installs a session.
 * - s->hup[r]: false, then true once, store-release after endpoint r's
 *   last seal [O8].
 * Transitions and their racers (xtask/guest-tests/src/tests/races.rs):
 * NONE -> OWNER (CREATE), NONE -> PEER (ATTACH: session first, then role),
 * owner's session old -> new (a re-attach), session -> NULL (close).
 */
#ifndef _SIPC_CHANNEL_H
#define _SIPC_CHANNEL_H

#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/cred.h>
#include <linux/pid.h>
#include <linux/pid_namespace.h>
#include <linux/eventfd.h>
#include <linux/atomic.h>
#include <linux/memcontrol.h>
#include <linux/secure_ipc.h>

#include "sipc_ring.h"
#include "sipc_crypto.h"
#include "sipc_keys.h"

/* Roles. An endpoint of role r sends in direction r (SIPC_DIR_*). */
#define SIPC_ROLE_NONE	(-1)
#define SIPC_ROLE_OWNER	SIPC_DIR_OWNER_TO_PEER
#define SIPC_ROLE_PEER	SIPC_DIR_PEER_TO_OWNER

/**
 * struct sipc_stamp - sender credentials as the receiver sees them
 * @pid: sender's tgid in the receiver's pid namespace, 0 if invisible
 * @uid: sender's fsuid in the receiver's user namespace
 * @gid: sender's fsgid in the receiver's user namespace
 */
struct sipc_stamp {
	u32 pid;
	u32 uid;
	u32 gid;
};

/**
 * struct sipc_dir - one direction of a session
 * @store: the sealed store: kernel-only pages, never mapped
 * @rec_size: bytes per record slot in @store
 * @entries: records @store holds (power of two)
 * @mask: @entries - 1
 * @prod: records sealed so far. Writer: the sender's sealer (under the
 *	sender's tx_lock), smp_store_release(); read by the opener with
 *	smp_load_acquire().
 * @cons: records consumed (delivered or dropped) so far. Writer: the
 *	receiver's opener (under the receiver's rx_lock), smp_store_release();
 *	read by the sealer with smp_load_acquire().
 * @opened: records opened so far (a group opens as a whole). @cons to
 *	@opened are authentic plaintext waiting for read(2); they are in
 *	@scratch, never in @store: the store holds plaintext only inside one
 *	SEND/RECV/read/write call, under the lock that call holds, and wipes
 *	it before the call returns. Receiver's rx_lock; test hooks read it
 *	with READ_ONCE().
 * @scratch: payloads of the group read(2) is draining, slot_size bytes per
 *	record from @scratch_first (allocated on the first read(2), wiped
 *	record by record as they are consumed and when freed). Receiver's
 *	rx_lock.
 * @scratch_first: store index of the first record in @scratch; records
 *	@scratch_first to @scratch_end are there (empty once consumed).
 * @scratch_end: see @scratch_first.
 * @seal: sealing transform and request. Sender's tx_lock.
 * @seal_key: sealing key. Sender's tx_lock.
 * @seal_seq: next sequence number to seal. Sender's tx_lock.
 * @seal_hmac: hmac(sha256) for the sealer's ratchet. Sender's tx_lock.
 * @epoch_records: records sealed under the current key. Sender's tx_lock.
 * @epoch_bytes: bytes sealed under the current key. Sender's tx_lock.
 * @rekeys_unsealed: REKEYs since the last sealed record. Sender's tx_lock.
 *	Bounded so that no record is ever more than SIPC_MAX_EPOCH_SKIP
 *	epochs ahead of the one before it, the most the opener follows.
 * @seal_stale: a failed setkey may have left @seal half keyed: set
 *	@seal_key again before the next seal. Sender's tx_lock.
 * @open: opening transform and request. Receiver's rx_lock.
 * @open_key: opening key. Receiver's rx_lock.
 * @open_seq: next sequence number expected. Receiver's rx_lock.
 * @open_hmac: hmac(sha256) for the opener's ratchet. Receiver's rx_lock.
 * @open_stale: like @seal_stale, for @open and @open_key. Receiver's
 *	rx_lock.
 * @stamp: the sender as the receiver sees it; constant.
 * @test_channel_id: test builds: channel id to stamp when @test_stamp.
 *	Sender's tx_lock.
 * @test_clock_ns: test builds: timestamp to stamp when non-zero. Sender's
 *	tx_lock.
 * @test_stamp: test builds: SIPC_IOC_TEST_SET_SEAL fixed the stamps.
 *	Sender's tx_lock.
 */
struct sipc_dir {
	struct sipc_pages store;
	size_t rec_size;
	u32 entries;
	u32 mask;
	u32 prod;
	u32 cons;
	u32 opened;
	u8 *scratch;
	u32 scratch_first;
	u32 scratch_end;

	struct sipc_aead seal;
	struct sipc_key seal_key;
	u64 seal_seq;
	struct crypto_shash *seal_hmac;
	u64 epoch_records;
	u64 epoch_bytes;
	u32 rekeys_unsealed;
	bool seal_stale;

	struct sipc_aead open;
	struct sipc_key open_key;
	u64 open_seq;
	struct crypto_shash *open_hmac;
	bool open_stale;

	struct sipc_stamp stamp;
#ifdef SIPC_TEST_HOOKS
	u64 test_channel_id;
	u64 test_clock_ns;
	bool test_stamp;
#endif
};

/* Bytes of @dir->scratch: a whole group, one record stride per record. */
static inline size_t sipc_scratch_bytes(const struct sipc_dir *dir)
{
	return (size_t)min_t(u32, SIPC_GROUP_MAX, dir->entries) * dir->rec_size;
}

/**
 * struct sipc_session - one attach of a peer to a channel
 * @ref: references: one per endpoint that belongs to it, plus transient
 *	ones taken by poll and blocking read/write
 * @chan: the channel (holds a reference)
 * @ep: both endpoints (hold references), indexed by role
 * @dir: both directions, indexed by SIPC_DIR_* (= the sender's role)
 * @hup: endpoint of role r hung up. Written once, with smp_store_release()
 *	after that endpoint's last seal; read with smp_load_acquire().
 * @identity_verified: the peer proved the channel's pinned identity
 */
struct sipc_session {
	struct kref ref;
	struct sipc_channel *chan;
	struct sipc_endpoint *ep[2];
	struct sipc_dir dir[2];
	bool hup[2];
	bool identity_verified;
};

/**
 * struct sipc_channel - a named channel
 * @ref: references: registry, endpoints, sessions
 * @node: entry in the registry (sipc_registry_lock)
 * @name: NUL-terminated name
 * @id: random 64-bit id, the AAD's channel_id
 * @entries: slots per ring
 * @slot_size: bytes per slot
 * @policy: SIPC_POLICY_* flags checked at attach
 * @peer_uid: required peer fsuid with SIPC_POLICY_UID
 * @peer_gid: required peer group with SIPC_POLICY_GID
 * @peer_pidns: required peer pid namespace with SIPC_POLICY_PIDNS (a
 *	reference, taken from the nsfs fd CREATE was given, put when the channel
 *	is freed: a namespace that died cannot be matched by a new one)
 * @identity_pub: pinned peer identity with SIPC_POLICY_IDENTITY
 * @has_psk: the owner configured @psk
 * @psk: the owner's pre-shared key (wiped when the channel is freed)
 * @rekey_records: records per key epoch
 * @rekey_bytes: bytes per key epoch
 * @owner_uid: the creator's uid, charged for the channel
 * @memcg: the creator's memory cgroup (a reference; NULL without memcg):
 *	what ATTACH allocates (the peer's rings, the session, the sealed
 *	stores) is charged to it, not to the attacher's
 * @bytes: memory the channel pins (rings of both endpoints, both stores)
 * @charged: @bytes and one channel are charged to @owner_uid (until
 *	sipc_channel_free())
 * @owner: the owner endpoint while it is open (sipc_registry_lock)
 * @peer: the peer endpoint while it is open (sipc_registry_lock)
 * @owner_cred: the creator's credentials, to charge and to decode policy
 * @attach_refused: refused attaches
 */
struct sipc_channel {
	struct kref ref;
	struct list_head node;
	char name[SIPC_NAME_MAX];
	u64 id;
	u32 entries;
	u32 slot_size;
	u32 policy;
	kuid_t peer_uid;
	kgid_t peer_gid;
	struct pid_namespace *peer_pidns;
	u8 identity_pub[SIPC_KEY_LEN];
	bool has_psk;
	u8 psk[SIPC_KEY_LEN];
	u64 rekey_records;
	u64 rekey_bytes;
	kuid_t owner_uid;
	struct mem_cgroup *memcg;
	size_t bytes;
	bool charged;
	struct sipc_endpoint *owner;
	struct sipc_endpoint *peer;
	atomic64_t attach_refused;
};

/**
 * struct sipc_ep_stats - per-endpoint counters
 * @sealed_msgs: tx_lock
 * @sealed_bytes: tx_lock
 * @store_full: tx_lock
 * @eproto_tx: tx_lock
 * @opened_msgs: rx_lock
 * @opened_bytes: rx_lock
 * @badmsg: rx_lock
 * @rekeys_tx: tx_lock
 * @rekeys_rx: rx_lock
 * @eproto_rx: rx_lock
 * @tx_discarded: tx_lock (of this endpoint, taken by the ATTACH that
 *	discards)
 * @db_signalled: doorbell signals sent to this endpoint (any context)
 * @db_suppressed: signals skipped because NEED_WAKEUP was clear
 */
struct sipc_ep_stats {
	u64 sealed_msgs;
	u64 sealed_bytes;
	u64 store_full;
	u64 eproto_tx;
	u64 opened_msgs;
	u64 opened_bytes;
	u64 badmsg;
	u64 eproto_rx;
	u64 rekeys_tx;
	u64 rekeys_rx;
	u64 tx_discarded;
	atomic64_t db_signalled;
	atomic64_t db_suppressed;
};

/**
 * struct sipc_pending_challenge - an identity challenge awaiting ATTACH
 * @valid: set by CHALLENGE, cleared (and the rest wiped) by the next ATTACH
 * @name32: the channel it was issued for
 * @owner_priv: the owner's ephemeral private key for that attach
 * @owner_pub: its public key, sent as kernel_pub
 * @nonce: the random nonce sent with it
 */
struct sipc_pending_challenge {
	bool valid;
	u8 name32[SIPC_NAME_MAX];
	u8 owner_priv[SIPC_KEY_LEN];
	u8 owner_pub[SIPC_KEY_LEN];
	u8 nonce[SIPC_KEY_LEN];
};

/**
 * struct sipc_endpoint - one open file of /dev/secure_ipc
 * @ref: the file's reference plus one per session
 * @lock: role, channel and ring setup (CREATE/ATTACH/mmap)
 * @tx_lock: serializes the sealer (SEND, write) and changes of @session
 * @rx_lock: serializes the opener (RECV, read) and changes of @session
 * @sess_lock: lets poll and sleepers take a reference on @session
 * @role: SIPC_ROLE_*; set once under @lock and sipc_registry_lock
 * @chan: the channel once an endpoint (holds a reference)
 * @session: current session or NULL; changed with @tx_lock, @rx_lock and
 *	@sess_lock all held
 * @tx: TX ring (valid once @role is set)
 * @rx: RX ring (valid once @role is set)
 * @wq: poll and blocking read/write waiters
 * @db_lock: protects @doorbell
 * @doorbell: registered eventfd or NULL
 * @cred: opener's credentials (file->f_cred)
 * @tgid: opener's thread group
 * @pidns: opener's pid namespace
 * @closed: the file was released
 * @challenge: pending identity challenge (@lock)
 * @stats: counters
 */
struct sipc_endpoint {
	struct kref ref;
	struct mutex lock;		/* role and ring setup */
	struct mutex tx_lock;		/* sealer, session changes */
	struct mutex rx_lock;		/* opener, session changes */
	spinlock_t sess_lock;		/* session for lockless readers */
	int role;
	struct sipc_channel *chan;
	struct sipc_session *session;
	struct sipc_ring tx;
	struct sipc_ring rx;
	wait_queue_head_t wq;
	spinlock_t db_lock;		/* doorbell */
	struct eventfd_ctx *doorbell;
	const struct cred *cred;
	struct pid *tgid;
	struct pid_namespace *pidns;
	bool closed;
	struct sipc_pending_challenge challenge;
	struct sipc_ep_stats stats;
};

/*
 * The role of @ep in @s. The data path takes it from the session it holds,
 * never from ep->role: a session is published whole (under the locks its
 * readers take), so a reader can never see a session without its role.
 */
static inline int sipc_session_role(const struct sipc_session *s,
				    const struct sipc_endpoint *ep)
{
	return s->ep[SIPC_ROLE_PEER] == ep ? SIPC_ROLE_PEER : SIPC_ROLE_OWNER;
}

struct sipc_endpoint *sipc_endpoint_open(struct file *file);
void sipc_endpoint_release(struct sipc_endpoint *ep);
struct sipc_session *sipc_endpoint_session_get(struct sipc_endpoint *ep);
void sipc_session_put(struct sipc_session *s);

int sipc_channel_create(struct sipc_endpoint *ep, struct sipc_create *arg);
int sipc_channel_attach(struct sipc_endpoint *ep, struct sipc_attach *arg);
int sipc_channel_challenge(struct sipc_endpoint *ep,
			   struct sipc_challenge *arg);
unsigned int sipc_channel_count(void);
int sipc_endpoint_mmap(struct sipc_endpoint *ep, struct vm_area_struct *vma);
int sipc_endpoint_peer_cred(struct sipc_endpoint *ep,
			    struct sipc_peer_cred *out);
int sipc_endpoint_stats(struct sipc_endpoint *ep, struct sipc_stats *out);

#endif /* _SIPC_CHANNEL_H */
