// SPDX-License-Identifier: GPL-2.0-only
/*
 * The channel registry, channel/session/endpoint lifetimes, CREATE,
 * ATTACH, mmap, PEER_CRED and STATS.
 */

#include <linux/slab.h>
#include <linux/ctype.h>
#include <linux/string.h>
#include <linux/log2.h>
#include <linux/random.h>
#include <linux/ratelimit.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/user_namespace.h>
#include <linux/fs.h>
#include <linux/file.h>
#include <linux/magic.h>
#include <linux/proc_ns.h>
#include <crypto/algapi.h>

#include "compat.h"

#include "sipc_main.h"
#include "sipc_channel.h"
#include "sipc_data.h"

/*
 * The name table: sipc_channels, chan->owner and chan->peer. It guards
 * nothing else. Rule (issue: the global lock must never wait on a user):
 * while it is held, nothing sleeps on user memory, on an endpoint's data
 * path locks (tx_lock/rx_lock), on X25519 or on a large allocation, so
 * every CREATE, ATTACH, CHALLENGE and close() of every user holds it for
 * a bounded time.
 */
static DEFINE_MUTEX(sipc_registry_lock);
static LIST_HEAD(sipc_channels);

/*
 * Accounting (sipc_charge_lock): a channel is charged from CREATE until
 * sipc_channel_free(), which runs when the last endpoint or session that
 * references it is gone. The peer's rings and both sealed stores live as
 * long as the peer does, even after the owner closed: so does the charge.
 */
static DEFINE_MUTEX(sipc_charge_lock);
static unsigned int sipc_nr_channels;

unsigned int sipc_channel_count(void)
{
	return READ_ONCE(sipc_nr_channels);
}

/*
 * Per-user accounting of live channels and the bytes they pin, charged to
 * the creator's fsuid (sipc_charge_lock). Few users create channels, so a
 * list is enough.
 */
struct sipc_user {
	struct list_head node;
	kuid_t uid;
	unsigned int channels;
	size_t bytes;
};

static LIST_HEAD(sipc_users);

/*
 * Charge one channel of @bytes to @uid against the per-user and global
 * limits. Returns 0 or -ENOSPC / -ENOMEM.
 */
static int sipc_charge(kuid_t uid, size_t bytes)
{
	struct sipc_user *u, *fresh;
	int ret = 0;

	/* Allocated before the lock: nothing sleeps in it but the mutex. */
	fresh = kzalloc(sizeof(*fresh), GFP_KERNEL_ACCOUNT);
	if (!fresh)
		return -ENOMEM;
	mutex_lock(&sipc_charge_lock);
	if (sipc_nr_channels >= sipc_max_channels) {
		pr_notice_ratelimited("CREATE refused: max_channels=%u reached\n",
				      sipc_max_channels);
		ret = -ENOSPC;
		goto out;
	}
	list_for_each_entry(u, &sipc_users, node)
		if (uid_eq(u->uid, uid))
			goto found;
	u = fresh;
	fresh = NULL;
	u->uid = uid;
	list_add(&u->node, &sipc_users);
found:
	if (u->channels >= sipc_max_user_channels ||
	    bytes > sipc_max_user_bytes - u->bytes) {
		if (!u->channels) {
			list_del(&u->node);
			kfree(u);
		}
		pr_notice_ratelimited("CREATE refused: uid %u reached its limit (max_user_channels=%u, max_user_bytes=%lu)\n",
				      from_kuid(&init_user_ns, uid),
				      sipc_max_user_channels,
				      sipc_max_user_bytes);
		ret = -ENOSPC;
		goto out;
	}
	u->channels++;
	u->bytes += bytes;
	WRITE_ONCE(sipc_nr_channels, sipc_nr_channels + 1);
out:
	mutex_unlock(&sipc_charge_lock);
	kfree(fresh);
	return ret;
}

static void sipc_uncharge(kuid_t uid, size_t bytes)
{
	struct sipc_user *u;

	mutex_lock(&sipc_charge_lock);
	WRITE_ONCE(sipc_nr_channels, sipc_nr_channels - 1);
	list_for_each_entry(u, &sipc_users, node) {
		if (!uid_eq(u->uid, uid))
			continue;
		u->channels--;
		u->bytes -= bytes;
		if (!u->channels) {
			list_del(&u->node);
			kfree(u);
		}
		mutex_unlock(&sipc_charge_lock);
		return;
	}
	mutex_unlock(&sipc_charge_lock);
	WARN_ONCE(1, "secure_ipc: uncharging an unknown user\n");
}

/* ---------------------------------------------------------------- */
/* Channels                                                          */
/* ---------------------------------------------------------------- */

/*
 * The last reference: every endpoint and session of the channel is gone,
 * so is every page it pinned; only now is its charge returned.
 * kfree_sensitive(): the channel holds the owner's PSK.
 */
static void sipc_channel_free(struct kref *ref)
{
	struct sipc_channel *chan = container_of(ref, struct sipc_channel, ref);

	if (chan->charged)
		sipc_uncharge(chan->owner_uid, chan->bytes);
	mem_cgroup_put(chan->memcg);
	if (chan->peer_pidns)
		put_pid_ns(chan->peer_pidns);
	kfree_sensitive(chan);
}

static void sipc_channel_put(struct sipc_channel *chan)
{
	kref_put(&chan->ref, sipc_channel_free);
}

/* Must hold sipc_registry_lock. */
static struct sipc_channel *sipc_channel_find(const char *name)
{
	struct sipc_channel *chan;

	lockdep_assert_held(&sipc_registry_lock);
	list_for_each_entry(chan, &sipc_channels, node)
		if (!strncmp(chan->name, name, SIPC_NAME_MAX))
			return chan;
	return NULL;
}

/* 1..31 bytes of [A-Za-z0-9._-], NUL-terminated inside the buffer. */
static bool sipc_name_valid(const char *name)
{
	size_t len = strnlen(name, SIPC_NAME_MAX);
	size_t i;

	if (!len || len == SIPC_NAME_MAX)
		return false;
	for (i = 0; i < len; i++) {
		char c = name[i];

		if (!isalnum(c) && c != '.' && c != '_' && c != '-')
			return false;
	}
	return true;
}

static bool sipc_reserved_zero(const u64 *reserved, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (reserved[i])
			return false;
	return true;
}

/* ---------------------------------------------------------------- */
/* Endpoints                                                         */
/* ---------------------------------------------------------------- */

struct sipc_endpoint *sipc_endpoint_open(struct file *file)
{
	struct sipc_endpoint *ep;

	ep = kzalloc(sizeof(*ep), GFP_KERNEL_ACCOUNT);
	if (!ep)
		return NULL;
	kref_init(&ep->ref);
	mutex_init(&ep->lock);
	mutex_init(&ep->tx_lock);
	mutex_init(&ep->rx_lock);
	spin_lock_init(&ep->sess_lock);
	spin_lock_init(&ep->db_lock);
	init_waitqueue_head(&ep->wq);
	atomic64_set(&ep->stats.db_signalled, 0);
	atomic64_set(&ep->stats.db_suppressed, 0);
	ep->role = SIPC_ROLE_NONE;
	/* Decisions use the opener's credentials, never current_cred(). */
	ep->cred = get_cred(file->f_cred);
	ep->tgid = get_task_pid(current, PIDTYPE_TGID);
	ep->pidns = get_pid_ns(task_active_pid_ns(current));
	return ep;
}

static void sipc_endpoint_free(struct kref *ref)
{
	struct sipc_endpoint *ep = container_of(ref, struct sipc_endpoint, ref);

	sipc_ring_destroy(&ep->tx);
	sipc_ring_destroy(&ep->rx);
	if (ep->chan)
		sipc_channel_put(ep->chan);
	put_pid_ns(ep->pidns);
	put_pid(ep->tgid);
	put_cred(ep->cred);
	/* kfree_sensitive(): a pending challenge holds a private key. */
	kfree_sensitive(ep);
}

static void sipc_endpoint_put(struct sipc_endpoint *ep)
{
	kref_put(&ep->ref, sipc_endpoint_free);
}

/* ---------------------------------------------------------------- */
/* Sessions                                                          */
/* ---------------------------------------------------------------- */

static void sipc_session_destroy(struct sipc_session *s)
{
	int d;

	for (d = 0; d < 2; d++) {
		struct sipc_dir *dir = &s->dir[d];

		sipc_aead_free(&dir->seal);
		sipc_aead_free(&dir->open);
		crypto_free_shash(dir->seal_hmac);
		crypto_free_shash(dir->open_hmac);
		sipc_key_wipe(&dir->seal_key);
		sipc_key_wipe(&dir->open_key);
		kvfree_sensitive(dir->scratch, sipc_scratch_bytes(dir));
		sipc_pages_free(&dir->store);
	}
	for (d = 0; d < 2; d++)
		if (s->ep[d])
			sipc_endpoint_put(s->ep[d]);
	if (s->chan)
		sipc_channel_put(s->chan);
	kfree_sensitive(s);
}

static void sipc_session_free(struct kref *ref)
{
	sipc_session_destroy(container_of(ref, struct sipc_session, ref));
}

void sipc_session_put(struct sipc_session *s)
{
	kref_put(&s->ref, sipc_session_free);
}

/* A reference on the endpoint's current session, or NULL. */
struct sipc_session *sipc_endpoint_session_get(struct sipc_endpoint *ep)
{
	struct sipc_session *s;

	spin_lock(&ep->sess_lock);
	s = ep->session;
	if (s)
		kref_get(&s->ref);
	spin_unlock(&ep->sess_lock);
	return s;
}

/* How @to's opener sees @from's opener. */
static void sipc_stamp_fill(struct sipc_stamp *st,
			    const struct sipc_endpoint *from,
			    const struct sipc_endpoint *to)
{
	st->pid = pid_nr_ns(from->tgid, to->pidns);
	st->uid = from_kuid_munged(to->cred->user_ns, from->cred->fsuid);
	st->gid = from_kgid_munged(to->cred->user_ns, from->cred->fsgid);
}

static int sipc_dir_init(struct sipc_dir *dir, const struct sipc_channel *chan,
			 const struct sipc_key *key)
{
	int ret;

	dir->entries = chan->entries;
	dir->mask = chan->entries - 1;
	dir->rec_size = sipc_record_size(chan->slot_size);
	ret = sipc_pages_alloc(&dir->store, dir->rec_size * dir->entries);
	if (ret)
		return ret;
	ret = sipc_aead_alloc(&dir->seal);
	if (ret)
		return ret;
	ret = sipc_aead_alloc(&dir->open);
	if (ret)
		return ret;
	dir->seal_hmac = sipc_hmac_alloc();
	if (IS_ERR(dir->seal_hmac)) {
		ret = PTR_ERR(dir->seal_hmac);
		dir->seal_hmac = NULL;
		return ret;
	}
	dir->open_hmac = sipc_hmac_alloc();
	if (IS_ERR(dir->open_hmac)) {
		ret = PTR_ERR(dir->open_hmac);
		dir->open_hmac = NULL;
		return ret;
	}
	ret = sipc_aead_setkey(&dir->seal, key->key);
	if (ret)
		return ret;
	ret = sipc_aead_setkey(&dir->open, key->key);
	if (ret)
		return ret;
	dir->seal_key = *key;
	dir->open_key = *key;
	return 0;
}

/* @keys (indexed by direction) are the caller's to wipe. */
static struct sipc_session *sipc_session_create(struct sipc_channel *chan,
						struct sipc_endpoint *owner,
						struct sipc_endpoint *peer,
						const struct sipc_key *keys)
{
	struct sipc_session *s;
	int ret;
	int d;

	s = kzalloc(sizeof(*s), GFP_KERNEL_ACCOUNT);
	if (!s)
		return ERR_PTR(-ENOMEM);
	kref_init(&s->ref);

	for (d = 0; d < 2; d++) {
		ret = sipc_dir_init(&s->dir[d], chan, &keys[d]);
		if (ret)
			goto err_session;
	}

	sipc_stamp_fill(&s->dir[SIPC_DIR_OWNER_TO_PEER].stamp, owner, peer);
	sipc_stamp_fill(&s->dir[SIPC_DIR_PEER_TO_OWNER].stamp, peer, owner);

	kref_get(&chan->ref);
	s->chan = chan;
	kref_get(&owner->ref);
	s->ep[SIPC_ROLE_OWNER] = owner;
	kref_get(&peer->ref);
	s->ep[SIPC_ROLE_PEER] = peer;
	return s;

err_session:
	sipc_session_destroy(s);
	return ERR_PTR(ret);
}

/*
 * Install @s as @ep's session and return the previous one (the caller
 * drops it outside every lock).
 */
static struct sipc_session *sipc_endpoint_set_session(struct sipc_endpoint *ep,
						      struct sipc_session *s)
{
	struct sipc_session *old;

	mutex_lock(&ep->tx_lock);
	mutex_lock(&ep->rx_lock);
	spin_lock(&ep->sess_lock);
	old = ep->session;
	ep->session = s;
	spin_unlock(&ep->sess_lock);
	mutex_unlock(&ep->rx_lock);
	mutex_unlock(&ep->tx_lock);
	return old;
}

/* ---------------------------------------------------------------- */
/* CREATE                                                            */
/* ---------------------------------------------------------------- */

static bool sipc_geometry_valid(u32 entries, u32 slot_size)
{
	return is_power_of_2(entries) && entries >= SIPC_MIN_ENTRIES &&
	       entries <= sipc_max_entries && is_power_of_2(slot_size) &&
	       slot_size >= SIPC_MIN_SLOT_SIZE &&
	       slot_size <= sipc_max_slot_size;
}

/* Everything one channel pins: both endpoints' rings and both stores. */
static size_t sipc_channel_bytes(u32 entries, u32 slot_size)
{
	return 2 * (sipc_ring_bytes(entries, slot_size, SIPC_RING_TX) +
		    sipc_ring_bytes(entries, slot_size, SIPC_RING_RX)) +
	       2 * PAGE_ALIGN(sipc_record_size(slot_size) * entries);
}

/*
 * The pid namespace an nsfs fd (/proc/PID/ns/pid, PIDFD_GET_PID_NAMESPACE)
 * names, with a reference. Namespaces are compared by pointer from then on:
 * the reference keeps the object, so a namespace made after this one died
 * can neither match nor reuse its address.
 */
static struct pid_namespace *sipc_pidns_from_fd(int fd)
{
	struct pid_namespace *pidns;
	struct ns_common *ns;
	struct file *f;

	f = fget(fd);
	if (!f)
		return ERR_PTR(-EBADF);
	if (file_inode(f)->i_sb->s_magic != NSFS_MAGIC) {
		fput(f);
		return ERR_PTR(-EINVAL);
	}
	/* The open nsfs file holds the namespace while we look at it. */
	ns = get_proc_ns(file_inode(f));
	if (sipc_ns_type(ns) != CLONE_NEWPID) {
		fput(f);
		return ERR_PTR(-EINVAL);
	}
	pidns = get_pid_ns(container_of(ns, struct pid_namespace, ns));
	fput(f);
	return pidns;
}

static bool sipc_may_create(const struct sipc_endpoint *ep)
{
	if (sipc_allow_ns_create)
		return true;
	return ep->cred->user_ns == &init_user_ns && ep->pidns == &init_pid_ns;
}

/* Must hold ep->lock; the rings are unused until the role is set. */
static int sipc_endpoint_rings_init(struct sipc_endpoint *ep, u32 entries,
				    u32 slot_size)
{
	int ret;

	lockdep_assert_held(&ep->lock);
	ret = sipc_ring_init(&ep->tx, SIPC_RING_TX, entries, slot_size,
			     entries);
	if (ret)
		return ret;
	ret = sipc_ring_init(&ep->rx, SIPC_RING_RX, entries, slot_size,
			     entries);
	if (ret) {
		sipc_ring_destroy(&ep->tx);
		return ret;
	}
	return 0;
}

int sipc_channel_create(struct sipc_endpoint *ep, struct sipc_create *arg)
{
	struct user_namespace *ns = ep->cred->user_ns;
	struct sipc_channel *chan;
	int ret;

	if (arg->flags & ~SIPC_CREATE_FLAGS_ALL)
		return -EINVAL;
	if (!sipc_reserved_zero(arg->reserved, ARRAY_SIZE(arg->reserved)) ||
	    arg->reserved1)
		return -EINVAL;
	if (!(arg->flags & SIPC_POLICY_PIDNS) && arg->peer_pidns_fd)
		return -EINVAL;
	/* An all-zero PSK would be the same as none (docs/key-schedule.md). */
	if (arg->flags & SIPC_CREATE_PSK && !memchr_inv(arg->psk, 0, SIPC_KEY_LEN))
		return -EINVAL;
	if (!sipc_name_valid(arg->name))
		return -EINVAL;
	if (!sipc_geometry_valid(arg->entries, arg->slot_size))
		return -EINVAL;
	if (arg->rekey_records > SIPC_MAX_REKEY_RECORDS ||
	    arg->rekey_bytes > SIPC_MAX_REKEY_BYTES)
		return -EINVAL;
	if (sipc_channel_bytes(arg->entries, arg->slot_size) >
	    sipc_max_channel_bytes)
		return -ENOSPC;
	if (!sipc_may_create(ep)) {
		pr_notice_ratelimited("CREATE refused: opener (pid %d) is not in the initial user and pid namespaces (allow_ns_create=0)\n",
				      pid_nr(ep->tgid));
		return -EACCES;
	}

	chan = kzalloc(sizeof(*chan), GFP_KERNEL_ACCOUNT);
	if (!chan)
		return -ENOMEM;
	kref_init(&chan->ref);
	INIT_LIST_HEAD(&chan->node);
	memcpy(chan->name, arg->name, SIPC_NAME_MAX);
	chan->id = get_random_u64();
	chan->entries = arg->entries;
	chan->slot_size = arg->slot_size;
	chan->policy = arg->flags & (SIPC_POLICY_UID | SIPC_POLICY_GID |
				     SIPC_POLICY_PIDNS | SIPC_POLICY_IDENTITY);
	if (chan->policy & SIPC_POLICY_IDENTITY)
		memcpy(chan->identity_pub, arg->identity_pub, SIPC_KEY_LEN);
	chan->has_psk = arg->flags & SIPC_CREATE_PSK;
	if (chan->has_psk)
		memcpy(chan->psk, arg->psk, SIPC_KEY_LEN);
	chan->rekey_records = arg->rekey_records ?: sipc_rekey_records;
	chan->rekey_bytes = arg->rekey_bytes ?: sipc_rekey_bytes;
	chan->owner_uid = ep->cred->fsuid;
	/* The creator pays for the whole channel, the peer's half included. */
	chan->memcg = get_mem_cgroup_from_mm(current->mm);
	chan->bytes = sipc_channel_bytes(chan->entries, chan->slot_size);
	chan->peer_uid = make_kuid(ns, arg->peer_uid);
	chan->peer_gid = make_kgid(ns, arg->peer_gid);
	atomic64_set(&chan->attach_refused, 0);
	if ((chan->policy & SIPC_POLICY_UID && !uid_valid(chan->peer_uid)) ||
	    (chan->policy & SIPC_POLICY_GID && !gid_valid(chan->peer_gid))) {
		ret = -EINVAL;
		goto err_chan;
	}
	if (chan->policy & SIPC_POLICY_PIDNS) {
		chan->peer_pidns = sipc_pidns_from_fd(arg->peer_pidns_fd);
		if (IS_ERR(chan->peer_pidns)) {
			ret = PTR_ERR(chan->peer_pidns);
			chan->peer_pidns = NULL;
			goto err_chan;
		}
	}

	mutex_lock(&ep->lock);
	if (ep->role != SIPC_ROLE_NONE) {
		ret = -EBUSY;
		goto err_unlock_ep;
	}
	/* Charged from here; sipc_channel_free() uncharges. */
	ret = sipc_charge(chan->owner_uid, chan->bytes);
	if (ret)
		goto err_unlock_ep;
	chan->charged = true;
	/* The large allocations happen outside the registry lock. */
	ret = sipc_endpoint_rings_init(ep, chan->entries, chan->slot_size);
	if (ret)
		goto err_unlock_ep;

	mutex_lock(&sipc_registry_lock);
	if (sipc_channel_find(chan->name)) {
		ret = -EEXIST;
		goto err_unlock_registry;
	}
	/* The registry's reference is the one from kref_init(). */
	list_add(&chan->node, &sipc_channels);
	chan->owner = ep;
	kref_get(&chan->ref);
	ep->chan = chan;
	/* Rings first. Pairs with smp_load_acquire() in sipc_endpoint_mmap(). */
	smp_store_release(&ep->role, SIPC_ROLE_OWNER);
	mutex_unlock(&sipc_registry_lock);
	mutex_unlock(&ep->lock);

	arg->channel_id = chan->id;
	arg->tx_ring_bytes = ep->tx.bytes;
	arg->rx_ring_bytes = ep->rx.bytes;
	return 0;

err_unlock_registry:
	mutex_unlock(&sipc_registry_lock);
	sipc_ring_destroy(&ep->tx);
	sipc_ring_destroy(&ep->rx);
err_unlock_ep:
	mutex_unlock(&ep->lock);
err_chan:
	sipc_channel_put(chan);
	return ret;
}

/* ---------------------------------------------------------------- */
/* ATTACH                                                            */
/* ---------------------------------------------------------------- */

static bool sipc_cred_in_group(const struct cred *cred, kgid_t gid)
{
	const struct group_info *gi = cred->group_info;
	int i;

	if (gid_eq(cred->fsgid, gid))
		return true;
	for (i = 0; i < gi->ngroups; i++)
		if (gid_eq(gi->gid[i], gid))
			return true;
	return false;
}

/* Count and report a refused attach. */
static void sipc_attach_refused(struct sipc_channel *chan,
				const struct sipc_endpoint *ep, const char *why)
{
	atomic64_inc(&chan->attach_refused);
	pr_notice_ratelimited("ATTACH to \"%s\" refused: %s (pid %d)\n",
			      chan->name, why, pid_nr(ep->tgid));
}

/* The channel's policy is constant after CREATE: no lock needed. */
static int sipc_policy_check(struct sipc_channel *chan,
			     const struct sipc_endpoint *ep)
{
	const char *why = NULL;

	if (chan->policy & SIPC_POLICY_UID &&
	    !uid_eq(ep->cred->fsuid, chan->peer_uid))
		why = "uid does not match the channel policy";
	else if (chan->policy & SIPC_POLICY_GID &&
		 !sipc_cred_in_group(ep->cred, chan->peer_gid))
		why = "gid does not match the channel policy";
	else if (chan->policy & SIPC_POLICY_PIDNS &&
		 ep->pidns != chan->peer_pidns)
		why = "pid namespace does not match the channel policy";
	if (!why)
		return 0;
	sipc_attach_refused(chan, ep, why);
	return -EACCES;
}

static void sipc_name32(u8 *out, const char *name)
{
	memset(out, 0, SIPC_NAME_MAX);
	memcpy(out, name, strnlen(name, SIPC_NAME_MAX - 1));
}

/**
 * sipc_channel_challenge() - SIPC_IOC_CHALLENGE: start an identity attach
 * @ep: the would-be peer (not yet an endpoint)
 * @arg: the channel name in; the owner's fresh ephemeral public key and a
 *	random nonce out
 *
 * The private half stays in @ep until the next ATTACH on this file, which
 * consumes it whatever the outcome.
 *
 * Return: 0, -EINVAL, -EBUSY (already an endpoint), -ENOENT.
 */
int sipc_channel_challenge(struct sipc_endpoint *ep,
			   struct sipc_challenge *arg)
{
	struct sipc_pending_challenge *c = &ep->challenge;
	int ret;

	if (arg->flags)
		return -EINVAL;
	if (!sipc_reserved_zero(arg->reserved, ARRAY_SIZE(arg->reserved)))
		return -EINVAL;
	if (!sipc_name_valid(arg->name))
		return -EINVAL;

	mutex_lock(&ep->lock);
	if (ep->role != SIPC_ROLE_NONE) {
		ret = -EBUSY;
		goto out;
	}
	mutex_lock(&sipc_registry_lock);
	ret = sipc_channel_find(arg->name) ? 0 : -ENOENT;
	mutex_unlock(&sipc_registry_lock);
	if (ret)
		goto out;

	memzero_explicit(c, sizeof(*c));
	sipc_name32(c->name32, arg->name);
	ret = sipc_kx_keypair(c->owner_priv, c->owner_pub);
	if (ret) {
		memzero_explicit(c, sizeof(*c));
		goto out;
	}
	get_random_bytes(c->nonce, sizeof(c->nonce));
	c->valid = true;
	memcpy(arg->kernel_pub, c->owner_pub, SIPC_KEY_LEN);
	memcpy(arg->nonce, c->nonce, SIPC_KEY_LEN);
out:
	mutex_unlock(&ep->lock);
	return ret;
}

/*
 * Check the identity proof and the PSK, and fill in the rest of @kx (both
 * ephemeral key pairs). Runs without the registry lock: X25519 is slow.
 */
static int sipc_attach_keys(struct sipc_channel *chan, struct sipc_endpoint *ep,
			    const struct sipc_attach *arg, bool had_challenge,
			    struct crypto_shash *hmac, struct sipc_kx *kx)
{
	u8 proof[SIPC_KEY_LEN];
	int ret;

	if (chan->policy & SIPC_POLICY_IDENTITY) {
		if (!(arg->flags & SIPC_ATTACH_PROOF) || !had_challenge) {
			sipc_attach_refused(chan, ep,
					    "identity proof missing (CHALLENGE, then ATTACH with SIPC_ATTACH_PROOF)");
			return -EKEYREJECTED;
		}
		kx->has_identity = true;
		memcpy(kx->identity_pub, chan->identity_pub, SIPC_KEY_LEN);
		ret = sipc_kx_proof(hmac, kx, proof);
		if (!ret && crypto_memneq(proof, arg->proof, SIPC_KEY_LEN))
			ret = -EKEYREJECTED;
		memzero_explicit(proof, sizeof(proof));
		if (ret) {
			sipc_attach_refused(chan, ep, "identity proof wrong");
			return ret;
		}
	}

	/* Both PSKs are here: compare them instead of deriving garbage. */
	if (chan->has_psk != !!(arg->flags & SIPC_ATTACH_PSK) ||
	    (chan->has_psk && crypto_memneq(chan->psk, arg->psk, SIPC_KEY_LEN))) {
		sipc_attach_refused(chan, ep, "pre-shared keys differ");
		return -EKEYREJECTED;
	}
	kx->has_psk = chan->has_psk;
	if (kx->has_psk)
		memcpy(kx->psk, chan->psk, SIPC_KEY_LEN);

	if (!had_challenge) {
		ret = sipc_kx_keypair(kx->owner_priv, kx->owner_pub);
		if (ret)
			return ret;
	}
	return sipc_kx_keypair(kx->peer_priv, kx->peer_pub);
}

/*
 * Make @s the owner's session: the owner's locks, never the registry lock,
 * so a stalled owner (a write(2) faulting on userfaultfd holds its
 * tx_lock) delays only this attacher, which can be killed meanwhile.
 *
 * Under the owner's tx_lock and rx_lock no SEND/RECV/read/write of the old
 * session is in flight, so this is where the owner's store hints restart
 * at 0 [O9] and where what the owner published in TX for the previous
 * session is discarded unsealed and counted (tx_discarded): a new peer
 * never receives what was queued before it attached.
 *
 * Returns the owner's previous session (the caller puts it), or an
 * ERR_PTR: -EINTR (fatal signal), -ENOENT (the owner closed meanwhile).
 */
static struct sipc_session *sipc_owner_install(struct sipc_endpoint *owner,
					       struct sipc_session *s)
{
	struct sipc_ring *tx = &owner->tx;
	struct sipc_session *old;
	u32 prod;

	if (mutex_lock_killable(&owner->tx_lock))
		return ERR_PTR(-EINTR);
	if (mutex_lock_killable(&owner->rx_lock)) {
		mutex_unlock(&owner->tx_lock);
		return ERR_PTR(-EINTR);
	}
	if (owner->closed) {
		old = ERR_PTR(-ENOENT);
		goto out;
	}
	/*
	 * [O2]: pairs with user space's store-release of TX prod [O1]. Only
	 * a re-attach discards: what an owner queued before its first peer
	 * was meant for whoever attaches first.
	 */
	prod = smp_load_acquire(&tx->hdr->prod);
	if (owner->session && prod - tx->kidx <= tx->entries) {
		owner->stats.tx_discarded += prod - tx->kidx;
		/* Read locklessly by a SEND_WAIT sleeper (sipc_send_wait()). */
		WRITE_ONCE(tx->kidx, prod);
		/* [O3]: the slots are free again. Pairs with user's [O4]. */
		smp_store_release(&tx->hdr->cons, prod);
	}
	/*
	 * [O9] hints of the new, empty stores; each pairs with user space's
	 * load-acquire of that hint.
	 */
	smp_store_release(&tx->hdr->store_prod, 0);
	/* [O9], as above. */
	smp_store_release(&tx->hdr->store_cons, 0);
	/* [O9], as above. */
	smp_store_release(&owner->rx.hdr->store_prod, 0);
	/* [O9], as above. */
	smp_store_release(&owner->rx.hdr->store_cons, 0);
	spin_lock(&owner->sess_lock);
	old = owner->session;
	owner->session = s;
	spin_unlock(&owner->sess_lock);
	sipc_ring_set_status(tx, SIPC_STATUS_PEER_ATTACHED,
			     SIPC_STATUS_PEER_CLOSED);
	sipc_ring_set_status(&owner->rx, SIPC_STATUS_PEER_ATTACHED,
			     SIPC_STATUS_PEER_CLOSED);
out:
	mutex_unlock(&owner->rx_lock);
	mutex_unlock(&owner->tx_lock);
	return old;
}

/*
 * ATTACH, in three steps so that the registry lock is held only for the
 * name table (see sipc_registry_lock):
 * 1. registry lock: find the channel, reserve its peer slot (chan->peer =
 *    @ep: a second attacher gets EBUSY), take references on the channel
 *    and its owner;
 * 2. no global lock: policy, identity proof, X25519, key derivation, the
 *    peer's rings, the session and its sealed stores;
 * 3. the owner's data-path locks: install the session (sipc_owner_install),
 *    then this endpoint's, then publish the role.
 * @ep->lock is held throughout: it serializes this file's CREATE, ATTACH
 * and CHALLENGE, nothing else waits for it.
 */
int sipc_channel_attach(struct sipc_endpoint *ep, struct sipc_attach *arg)
{
	struct mem_cgroup *old_memcg;
	struct sipc_session *s, *old;
	struct crypto_shash *hmac;
	struct sipc_channel *chan;
	struct sipc_endpoint *owner;
	struct sipc_key keys[2] = {};
	struct sipc_kx kx = {};
	bool had_challenge;
	bool verified;
	int ret;

	if (arg->flags & ~SIPC_ATTACH_FLAGS_ALL)
		return -EINVAL;
	if (!sipc_reserved_zero(arg->reserved, ARRAY_SIZE(arg->reserved)))
		return -EINVAL;
	if (!sipc_name_valid(arg->name))
		return -EINVAL;
	if (arg->flags & SIPC_ATTACH_PSK && !memchr_inv(arg->psk, 0, SIPC_KEY_LEN))
		return -EINVAL;

	hmac = sipc_hmac_alloc();
	if (IS_ERR(hmac))
		return PTR_ERR(hmac);

	mutex_lock(&ep->lock);
	/* A challenge serves one attach attempt, whatever its outcome. */
	sipc_name32(kx.name32, arg->name);
	had_challenge = ep->challenge.valid &&
			!memcmp(ep->challenge.name32, kx.name32, SIPC_NAME_MAX);
	if (had_challenge) {
		memcpy(kx.owner_priv, ep->challenge.owner_priv, SIPC_KEY_LEN);
		memcpy(kx.owner_pub, ep->challenge.owner_pub, SIPC_KEY_LEN);
		memcpy(kx.nonce, ep->challenge.nonce, SIPC_KEY_LEN);
	}
	memzero_explicit(&ep->challenge, sizeof(ep->challenge));

	if (ep->role != SIPC_ROLE_NONE) {
		ret = -EBUSY;
		goto err_unlock_ep;
	}

	/* Step 1. */
	mutex_lock(&sipc_registry_lock);
	chan = sipc_channel_find(arg->name);
	if (!chan) {
		mutex_unlock(&sipc_registry_lock);
		ret = -ENOENT;
		goto err_unlock_ep;
	}
	if (chan->peer) {
		mutex_unlock(&sipc_registry_lock);
		ret = -EBUSY;
		goto err_unlock_ep;
	}
	chan->peer = ep;
	kref_get(&chan->ref);
	owner = chan->owner;
	kref_get(&owner->ref);
	mutex_unlock(&sipc_registry_lock);

	/* Step 2: the channel's policy and keys are constant after CREATE. */
	ret = sipc_policy_check(chan, ep);
	if (ret)
		goto err_unreserve;
	ret = sipc_attach_keys(chan, ep, arg, had_challenge, hmac, &kx);
	if (ret)
		goto err_unreserve;
	verified = kx.has_identity;
	ret = sipc_kx_derive(hmac, &kx, &keys[SIPC_DIR_OWNER_TO_PEER],
			     &keys[SIPC_DIR_PEER_TO_OWNER]);
	sipc_kx_wipe(&kx);
	if (ret)
		goto err_unreserve;

	/*
	 * Charge the peer's rings, the session and the sealed stores to the
	 * creator's memory cgroup, like the module's per-user limit: the
	 * creator chose the geometry, and an attacher cannot make another
	 * cgroup pay for it.
	 */
	old_memcg = set_active_memcg(chan->memcg);
	ret = sipc_endpoint_rings_init(ep, chan->entries, chan->slot_size);
	if (ret) {
		set_active_memcg(old_memcg);
		goto err_unreserve;
	}
	s = sipc_session_create(chan, owner, ep, keys);
	set_active_memcg(old_memcg);
	sipc_key_wipe(&keys[0]);
	sipc_key_wipe(&keys[1]);
	if (IS_ERR(s)) {
		ret = PTR_ERR(s);
		goto err_rings;
	}
	s->identity_verified = verified;

	/*
	 * Step 3. The owner's reference is the one from kref_init(); ours is
	 * taken before the owner can see @s: once installed, the owner may
	 * close and put its reference at any moment.
	 */
	kref_get(&s->ref);
	/*
	 * Our status first: once the owner has @s it may close, and its
	 * hang-up then marks our rings PEER_CLOSED; that must be the last word.
	 */
	sipc_ring_set_status(&ep->tx, SIPC_STATUS_PEER_ATTACHED, 0);
	sipc_ring_set_status(&ep->rx, SIPC_STATUS_PEER_ATTACHED, 0);
	old = sipc_owner_install(owner, s);
	if (IS_ERR(old)) {
		ret = PTR_ERR(old);
		sipc_session_put(s);
		sipc_session_put(s);
		goto err_rings;
	}
	sipc_endpoint_set_session(ep, s);
	kref_get(&chan->ref);
	ep->chan = chan;
	/*
	 * Rings first. Pairs with smp_load_acquire() in sipc_endpoint_mmap().
	 * The data path never reads the role: it derives it from the session
	 * (sipc_session_role()), so the order of role and session is free.
	 */
	smp_store_release(&ep->role, SIPC_ROLE_PEER);

	arg->entries = chan->entries;
	arg->slot_size = chan->slot_size;
	arg->channel_id = chan->id;
	arg->tx_ring_bytes = ep->tx.bytes;
	arg->rx_ring_bytes = ep->rx.bytes;

	/* The owner may be waiting in poll for a peer (POLLOUT). */
	wake_up_interruptible_poll(&owner->wq, EPOLLOUT | EPOLLWRNORM);
	sipc_doorbell_signal(owner);
	mutex_unlock(&ep->lock);
	crypto_free_shash(hmac);

	if (old)
		sipc_session_put(old);
	sipc_endpoint_put(owner);
	sipc_channel_put(chan);
	return 0;

err_rings:
	sipc_ring_destroy(&ep->tx);
	sipc_ring_destroy(&ep->rx);
err_unreserve:
	mutex_lock(&sipc_registry_lock);
	if (chan->peer == ep)
		chan->peer = NULL;
	mutex_unlock(&sipc_registry_lock);
	sipc_endpoint_put(owner);
	sipc_channel_put(chan);
err_unlock_ep:
	mutex_unlock(&ep->lock);
	sipc_key_wipe(&keys[0]);
	sipc_key_wipe(&keys[1]);
	sipc_kx_wipe(&kx);
	crypto_free_shash(hmac);
	return ret;
}

/* ---------------------------------------------------------------- */
/* Release                                                           */
/* ---------------------------------------------------------------- */

/*
 * Hang up @ep: mark it closed and its side of its session hung up, drop the
 * session from @ep, and tell the other endpoint. Under @ep's tx_lock and
 * rx_lock, so no seal of ours is in flight: everything we sealed is
 * published before the flag, and no ATTACH installs a session in a closed
 * endpoint (sipc_owner_install() checks @closed under the same locks).
 * The other endpoint keeps its own reference, so it can drain what we
 * sealed. Returns our reference to the session (the caller puts it).
 */
static struct sipc_session *sipc_endpoint_hangup(struct sipc_endpoint *ep)
{
	struct sipc_endpoint *other;
	struct sipc_session *s;
	int role;

	mutex_lock(&ep->tx_lock);
	mutex_lock(&ep->rx_lock);
	ep->closed = true;
	s = ep->session;
	if (s) {
		role = sipc_session_role(s, ep);
		/*
		 * Pairs with smp_load_acquire() of hup in sipc_send(),
		 * sipc_recv(), sipc_read(), sipc_write(), sipc_poll() [O8].
		 */
		smp_store_release(&s->hup[role], true);
	}
	spin_lock(&ep->sess_lock);
	ep->session = NULL;
	spin_unlock(&ep->sess_lock);
	mutex_unlock(&ep->rx_lock);
	mutex_unlock(&ep->tx_lock);
	if (!s)
		return NULL;

	/*
	 * The other endpoint's current session is @s: a new peer attaches
	 * only after this peer's hang-up (chan->peer is cleared after it),
	 * and the status a concurrent ATTACH gives a peer is set before the
	 * owner's install that precedes this.
	 */
	other = s->ep[!role];
	sipc_ring_set_status(&other->tx, SIPC_STATUS_PEER_CLOSED,
			     SIPC_STATUS_PEER_ATTACHED);
	sipc_ring_set_status(&other->rx, SIPC_STATUS_PEER_CLOSED,
			     SIPC_STATUS_PEER_ATTACHED);
	sipc_hangup_notify(other);
	return s;
}

void sipc_endpoint_release(struct sipc_endpoint *ep)
{
	struct sipc_channel *chan;
	struct sipc_session *old;
	bool listed = false;

	mutex_lock(&ep->lock);
	chan = ep->chan;
	old = sipc_endpoint_hangup(ep);
	/* After the hang-up: the next peer may attach from here on. */
	mutex_lock(&sipc_registry_lock);
	if (ep->role == SIPC_ROLE_PEER) {
		chan->peer = NULL;
	} else if (ep->role == SIPC_ROLE_OWNER) {
		chan->owner = NULL;
		list_del_init(&chan->node);
		listed = true;
	}
	mutex_unlock(&sipc_registry_lock);
	mutex_unlock(&ep->lock);

	sipc_doorbell_clear(ep);
	if (old)
		sipc_session_put(old);
	/* The registry's reference. */
	if (listed)
		sipc_channel_put(chan);
	sipc_endpoint_put(ep);
}

/* ---------------------------------------------------------------- */
/* mmap, PEER_CRED, STATS                                            */
/* ---------------------------------------------------------------- */

/*
 * Takes no lock: mmap runs under mmap_lock, which write()/read() take
 * inside tx_lock/rx_lock when a user copy faults. The rings are set up
 * before the role is published and live until the endpoint is freed.
 */
int sipc_endpoint_mmap(struct sipc_endpoint *ep, struct vm_area_struct *vma)
{
	unsigned long off = vma->vm_pgoff;

	/* Pairs with smp_store_release() of role in CREATE/ATTACH. */
	if (smp_load_acquire(&ep->role) == SIPC_ROLE_NONE)
		return -ENOTCONN;
	if (off == SIPC_OFF_TX_RING >> PAGE_SHIFT)
		return sipc_ring_mmap(&ep->tx, vma);
	if (off == SIPC_OFF_RX_RING >> PAGE_SHIFT)
		return sipc_ring_mmap(&ep->rx, vma);
	return -EINVAL;
}

int sipc_endpoint_peer_cred(struct sipc_endpoint *ep,
			    struct sipc_peer_cred *out)
{
	struct sipc_endpoint *other;
	struct sipc_session *s;
	int ret = 0;
	int role;

	s = sipc_endpoint_session_get(ep);
	if (!s)
		return -ENOTCONN;
	role = sipc_session_role(s, ep);
	other = s->ep[!role];
	/* Pairs with smp_store_release() in sipc_endpoint_hangup(). */
	if (smp_load_acquire(&s->hup[!role])) {
		ret = -ENOTCONN;
		goto out;
	}
	out->pid = pid_nr_ns(other->tgid, ep->pidns);
	out->uid = from_kuid_munged(ep->cred->user_ns, other->cred->fsuid);
	out->gid = from_kgid_munged(ep->cred->user_ns, other->cred->fsgid);
	out->identity_verified = s->identity_verified;
	out->pidns_ino = other->pidns->ns.inum;
	out->userns_ino = other->cred->user_ns->ns.inum;
out:
	sipc_session_put(s);
	return ret;
}

static u32 sipc_fill(u32 prod, u32 cons, u32 entries)
{
	u32 fill = prod - cons;

	return fill > entries ? entries : fill;
}

int sipc_endpoint_stats(struct sipc_endpoint *ep, struct sipc_stats *out)
{
	struct sipc_ep_stats *st = &ep->stats;
	struct sipc_session *s;

	mutex_lock(&ep->lock);
	if (ep->role == SIPC_ROLE_NONE) {
		mutex_unlock(&ep->lock);
		return -ENOTCONN;
	}
	mutex_lock(&ep->tx_lock);
	mutex_lock(&ep->rx_lock);
	out->sealed_msgs = st->sealed_msgs;
	out->sealed_bytes = st->sealed_bytes;
	out->opened_msgs = st->opened_msgs;
	out->opened_bytes = st->opened_bytes;
	out->badmsg = st->badmsg;
	out->store_full = st->store_full;
	out->doorbells_signalled = atomic64_read(&st->db_signalled);
	out->doorbells_suppressed = atomic64_read(&st->db_suppressed);
	out->eproto = st->eproto_tx + st->eproto_rx;
	out->rekeys = st->rekeys_tx + st->rekeys_rx;
	out->tx_discarded = st->tx_discarded;
	out->attach_refused = ep->role == SIPC_ROLE_OWNER ?
			      atomic64_read(&ep->chan->attach_refused) : 0;
	out->tx_fill = sipc_fill(READ_ONCE(ep->tx.hdr->prod), ep->tx.kidx,
				 ep->tx.entries);
	out->rx_fill = sipc_fill(ep->rx.kidx, READ_ONCE(ep->rx.hdr->cons),
				 ep->rx.entries);
	s = ep->session;
	if (s) {
		struct sipc_dir *out_dir = &s->dir[sipc_session_role(s, ep)];
		struct sipc_dir *in_dir = &s->dir[!sipc_session_role(s, ep)];

		out->store_out_fill = READ_ONCE(out_dir->prod) -
				      READ_ONCE(out_dir->cons);
		out->store_in_fill = READ_ONCE(in_dir->prod) -
				     READ_ONCE(in_dir->cons);
		out->tx_epoch = out_dir->seal_key.epoch;
		out->rx_epoch = in_dir->open_key.epoch;
	}
	mutex_unlock(&ep->rx_lock);
	mutex_unlock(&ep->tx_lock);
	mutex_unlock(&ep->lock);
	return 0;
}
