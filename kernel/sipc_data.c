// SPDX-License-Identifier: GPL-2.0-only
/*
 * The sealed data path.
 *
 * Per direction the sender's SEND/write seals into the direction's sealed
 * store and the receiver's RECV/read opens out of it. The store is SPSC:
 * dir->prod has one writer (the sender, under its tx_lock), dir->cons has
 * one writer (the receiver, under its rx_lock), and the two sides only
 * meet through acquire/release on those two indices. They never share a
 * lock on this path.
 *
 * User-written ring fields (TX prod and descriptors, RX cons, the flags
 * words) are read once, validated, and never trusted afterwards; the
 * kernel keeps its own copies of the indices it owns (ring->kidx).
 */

#include <linux/fs.h>
#include <linux/uaccess.h>
#include <linux/ratelimit.h>
#include <linux/sched/signal.h>
#include <linux/timekeeping.h>
#include <linux/eventfd.h>
#include <linux/minmax.h>
#include <linux/build_bug.h>

#include "compat.h"
#include "sipc_main.h"
#include "sipc_data.h"

/* struct sipc_record_hdr as stored: every field little-endian (the AAD). */
struct sipc_record_le {
	__le64 channel_id;
	__le64 seq;
	__le64 timestamp_ns;
	__le32 epoch;
	__le32 len;
	__le16 type;
	u8 direction;
	u8 version;
	__le32 group_left;
};

static_assert(sizeof(struct sipc_record_le) == sizeof(struct sipc_record_hdr));

#define SIPC_RECORD_VERSION 1

static size_t sipc_rec_off(const struct sipc_dir *dir, u32 idx)
{
	return (size_t)(idx & dir->mask) * dir->rec_size;
}

static struct sipc_record_le *sipc_rec_hdr(const struct sipc_dir *dir,
					   u32 idx)
{
	return dir->store.vaddr + sipc_rec_off(dir, idx);
}

static void *sipc_rec_data(const struct sipc_dir *dir, u32 idx)
{
	return dir->store.vaddr + sipc_rec_off(dir, idx) +
	       sizeof(struct sipc_record_le);
}

/* Wipe the payload area (payload and tag) of record @idx of @dir's store. */
static void sipc_rec_wipe(const struct sipc_dir *dir, u32 idx)
{
	memzero_explicit(sipc_rec_data(dir, idx),
			 dir->rec_size - sizeof(struct sipc_record_le));
}

/*
 * Where the plaintext of opened record @idx is: in @dir->scratch when
 * read(2) moved its group there, else (inside the RECV that opened it) in
 * the store.
 */
static u8 *sipc_opened_data(const struct sipc_dir *dir, u32 idx)
{
	u32 n = dir->scratch_end - dir->scratch_first;

	if (idx - dir->scratch_first < n)
		return dir->scratch +
		       (size_t)(idx - dir->scratch_first) * dir->rec_size;
	return sipc_rec_data(dir, idx);
}

/*
 * Opened record @idx was consumed and its plaintext at @src wiped. Once the
 * scratch's last record is gone its range is emptied, so that free-running
 * indices that come round again 2^32 records later never point into it.
 */
static void sipc_opened_consumed(struct sipc_dir *dir, u32 idx, u8 *src,
				 u32 len)
{
	memzero_explicit(src, len);
	if (idx + 1 == dir->scratch_end)
		dir->scratch_first = dir->scratch_end;
}

/*
 * Must hold the receiver's rx_lock. read(2) just opened the group that
 * starts at @first (up to @dir->opened) in place: move its plaintext into
 * the scratch and wipe it from the store.
 */
static void sipc_open_to_scratch(struct sipc_dir *dir, u32 first)
{
	u32 i, n = dir->opened - first;

	for (i = 0; i < n; i++) {
		u32 len = le32_to_cpu(sipc_rec_hdr(dir, first + i)->len);

		memcpy(dir->scratch + (size_t)i * dir->rec_size,
		       sipc_rec_data(dir, first + i), len);
		memzero_explicit(sipc_rec_data(dir, first + i), len);
	}
	dir->scratch_first = first;
	dir->scratch_end = dir->opened;
}

/* An empty group of @dir's store. */
static void sipc_group_init(struct sipc_group *g, struct sipc_dir *dir)
{
	g->store = &dir->store;
	g->rec_size = dir->rec_size;
	g->mask = dir->mask;
	g->first = 0;
	g->count = 0;
	g->bytes = 0;
	g->sg_used = 0;
}

/* ---------------------------------------------------------------- */
/* Doorbells                                                         */
/* ---------------------------------------------------------------- */

int sipc_doorbell_set(struct sipc_endpoint *ep, int fd)
{
	struct eventfd_ctx *ctx = NULL;
	struct eventfd_ctx *old;

	if (fd >= 0) {
		ctx = eventfd_ctx_fdget(fd);
		if (IS_ERR(ctx))
			return PTR_ERR(ctx);
	} else if (fd != -1) {
		return -EBADF;
	}

	spin_lock(&ep->db_lock);
	old = ep->doorbell;
	ep->doorbell = ctx;
	spin_unlock(&ep->db_lock);
	if (old)
		eventfd_ctx_put(old);
	return 0;
}

void sipc_doorbell_clear(struct sipc_endpoint *ep)
{
	sipc_doorbell_set(ep, -1);
}

void sipc_doorbell_signal(struct sipc_endpoint *ep)
{
	spin_lock(&ep->db_lock);
	if (ep->doorbell) {
		sipc_eventfd_signal(ep->doorbell);
		atomic64_inc(&ep->stats.db_signalled);
	}
	spin_unlock(&ep->db_lock);
}

/* The other endpoint hung up: wake every waiter of @ep and ring it. */
void sipc_hangup_notify(struct sipc_endpoint *ep)
{
	wake_up_interruptible_poll(&ep->wq, EPOLLHUP | EPOLLRDHUP | EPOLLIN |
				   EPOLLOUT);
	sipc_doorbell_signal(ep);
}

/*
 * Ring @ep's doorbell if its flags word asks for it. The caller has just
 * published something @ep waits for and issued the full barrier of [O6]
 * or [O7].
 */
static void sipc_doorbell_maybe(struct sipc_endpoint *ep, const u32 *flags)
{
	if (READ_ONCE(*flags) & SIPC_FLAG_NEED_WAKEUP)
		sipc_doorbell_signal(ep);
	else
		atomic64_inc(&ep->stats.db_suppressed);
}

/* ---------------------------------------------------------------- */
/* Sealing (sender side; tx_lock)                                    */
/* ---------------------------------------------------------------- */

/*
 * Must hold the sender's tx_lock. Ratchet the sealing key one epoch
 * forward; the old key is erased (key schedule §4).
 */
static int sipc_seal_rekey(struct sipc_endpoint *ep, struct sipc_dir *dir)
{
	struct sipc_key next = dir->seal_key;
	int ret;

	lockdep_assert_held(&ep->tx_lock);
	if (next.epoch == U32_MAX)
		return -EOVERFLOW;
	ret = sipc_key_ratchet(dir->seal_hmac, &next);
	if (ret)
		goto out;
	ret = sipc_aead_setkey(&dir->seal, next.key);
	if (ret) {
		/* @seal may be half keyed: sipc_seal_group() re-keys it. */
		dir->seal_stale = true;
		goto out;
	}
	dir->seal_key = next;
	dir->seal_stale = false;
	dir->epoch_records = 0;
	dir->epoch_bytes = 0;
	ep->stats.rekeys_tx++;
out:
	sipc_key_wipe(&next);
	return ret;
}

#ifdef SIPC_TEST_HOOKS
/* Must hold the sender's tx_lock. Apply SIPC_IOC_TEST_SET_SEAL's stamps. */
static void sipc_test_stamp(const struct sipc_dir *dir,
			    struct sipc_record_le *h)
{
	if (!dir->test_stamp)
		return;
	h->channel_id = cpu_to_le64(dir->test_channel_id);
	if (dir->test_clock_ns)
		h->timestamp_ns = cpu_to_le64(dir->test_clock_ns);
}
#else
static void sipc_test_stamp(const struct sipc_dir *dir,
			    struct sipc_record_le *h)
{
}
#endif

/*
 * Must hold the sender's tx_lock. Seal the pending group @g with one AES-GCM
 * operation, count it, and leave @g empty. On failure @g is emptied too and
 * nothing of it is published: a failed in-place encryption may have left
 * part of the plaintext encrypted, so the records are not sealed again from
 * the store; their TX slots stay pending and the next SEND copies them anew.
 */
static int sipc_seal_group(struct sipc_endpoint *ep, struct sipc_session *s,
			   struct sipc_group *g)
{
	struct sipc_dir *dir = &s->dir[sipc_session_role(s, ep)];
	u32 i;
	int ret;

	lockdep_assert_held(&ep->tx_lock);
	for (i = 0; i < g->count; i++)
		sipc_rec_hdr(dir, g->first + i)->group_left =
			cpu_to_le32(g->count - 1 - i);
	ret = 0;
	if (dir->seal_stale) {
		ret = sipc_aead_setkey(&dir->seal, dir->seal_key.key);
		dir->seal_stale = ret != 0;
	}
	if (!ret)
		ret = sipc_group_seal(&dir->seal, g, dir->seal_key.salt,
				      dir->seal_seq);
	if (!ret) {
		dir->rekeys_unsealed = 0;
		dir->seal_seq += g->count;
		dir->epoch_records += g->count;
		dir->epoch_bytes += g->bytes;
		ep->stats.sealed_msgs += g->count;
		ep->stats.sealed_bytes += g->bytes;
		g->first += g->count;
	} else {
		/* Not published: no plaintext may stay behind in the store. */
		for (i = 0; i < g->count; i++)
			sipc_rec_wipe(dir, g->first + i);
	}
	g->count = 0;
	g->bytes = 0;
	g->sg_used = 0;
	return ret;
}

/*
 * Must hold the sender's tx_lock. The plaintext is already in the record
 * at @idx of the outgoing store, the next one after @g's records; fill in
 * its header and add it to @g. The group is sealed first when the record
 * cannot join it: it is full, out of scatterlist entries, or the key epoch
 * changes before this record.
 */
static int sipc_seal_add(struct sipc_endpoint *ep, struct sipc_session *s,
			 struct sipc_group *g, u32 idx, u32 len, u16 type)
{
	struct sipc_dir *dir = &s->dir[sipc_session_role(s, ep)];
	struct sipc_record_le *h = sipc_rec_hdr(dir, idx);
	unsigned int need = sipc_record_sg_entries(sipc_rec_off(dir, idx), len);
	int ret;

	lockdep_assert_held(&ep->tx_lock);
	if (g->count && (g->count == SIPC_GROUP_MAX ||
			 g->sg_used + need + SIPC_TAG_SG > SIPC_SG_MAX)) {
		ret = sipc_seal_group(ep, s, g);
		if (ret)
			return ret;
	}
	if (dir->seal_seq + g->count == U64_MAX)
		return -EOVERFLOW;
	if (dir->epoch_records + g->count >= s->chan->rekey_records ||
	    dir->epoch_bytes + g->bytes + len > s->chan->rekey_bytes) {
		if (g->count) {
			ret = sipc_seal_group(ep, s, g);
			if (ret)
				return ret;
		}
		ret = sipc_seal_rekey(ep, dir);
		if (ret)
			return ret;
	}
	if (!g->count)
		g->first = idx;

	h->channel_id = cpu_to_le64(s->chan->id);
	h->seq = cpu_to_le64(dir->seal_seq + g->count);
	h->timestamp_ns = cpu_to_le64(ktime_get_ns());
	h->epoch = cpu_to_le32(dir->seal_key.epoch);
	h->len = cpu_to_le32(len);
	h->type = cpu_to_le16(type);
	h->direction = sipc_session_role(s, ep);
	h->version = SIPC_RECORD_VERSION;
	h->group_left = 0;
	sipc_test_stamp(dir, h);

	g->len[g->count++] = len;
	g->bytes += len;
	g->sg_used += need;
	return 0;
}

/*
 * Must hold the sender's tx_lock. Make records up to @prod visible to the
 * receiver and wake it if it asked for it.
 */
static void sipc_seal_publish(struct sipc_endpoint *ep, struct sipc_session *s,
			      u32 prod)
{
	struct sipc_dir *dir = &s->dir[sipc_session_role(s, ep)];
	struct sipc_endpoint *rx_ep = s->ep[!sipc_session_role(s, ep)];

	lockdep_assert_held(&ep->tx_lock);
	/*
	 * Pairs with smp_load_acquire(&dir->prod) in sipc_recv(),
	 * sipc_read() and sipc_in_ready().
	 */
	smp_store_release(&dir->prod, prod);
	/* [O9] hints; pair with user space's load-acquire of store_prod. */
	smp_store_release(&ep->tx.hdr->store_prod, prod);
	/* [O9] likewise, on the receiver's RX ring. */
	smp_store_release(&rx_ep->rx.hdr->store_prod, prod);
	/*
	 * [O6]: publish, full barrier, then read NEED_WAKEUP. Pairs with the
	 * receiver's full barrier between setting NEED_WAKEUP in its RX
	 * cons_flags and re-checking store_prod [O5] (user space).
	 */
	smp_mb();
	sipc_doorbell_maybe(rx_ep, &rx_ep->rx.hdr->cons_flags);
	/* wq_has_sleeper() pairs with the waiter's set_current_state(). */
	if (wq_has_sleeper(&rx_ep->wq))
		wake_up_interruptible_poll(&rx_ep->wq, EPOLLIN | EPOLLRDNORM);
}

static long sipc_eproto(struct sipc_endpoint *ep, struct sipc_ring *ring,
			u64 *counter)
{
	(*counter)++;
	sipc_ring_set_status(ring, SIPC_STATUS_ERROR, 0);
	pr_notice_ratelimited("pid %d: invalid index or descriptor in its %s ring\n",
			      task_tgid_nr(current),
			      ring == &ep->tx ? "TX" : "RX");
	return -EPROTO;
}

/**
 * sipc_send() - SIPC_IOC_SEND: seal every pending TX slot that fits
 * @ep: the endpoint
 *
 * Return: the number of records sealed (0 when nothing was pending or the
 * sealed store is full), or -ENOTCONN, -EPIPE, -EPROTO, -EOVERFLOW,
 * -EINTR. A bad descriptor stops the batch before it: what came before is
 * sealed and counted, the next call reports -EPROTO.
 */
long sipc_send(struct sipc_endpoint *ep)
{
	struct sipc_ring *ring = &ep->tx;
	struct sipc_session *s;
	struct sipc_group g;
	struct sipc_dir *dir;
	u32 prod, cons, pending, sprod, scons, room, n, i;
	u64 seq0;
	long ret = 0;

	if (mutex_lock_interruptible(&ep->tx_lock))
		return -EINTR;
	s = ep->session;
	if (!s) {
		ret = -ENOTCONN;
		goto out;
	}
	/* Pairs with smp_store_release() in sipc_endpoint_hangup(). */
	if (smp_load_acquire(&s->hup[!sipc_session_role(s, ep)])) {
		ret = -EPIPE;
		goto out;
	}
	dir = &s->dir[sipc_session_role(s, ep)];

	/* [O2]: pairs with user space's store-release of TX prod [O1]. */
	prod = smp_load_acquire(&ring->hdr->prod);
	cons = ring->kidx;
	pending = prod - cons;
	if (pending > ring->entries) {
		ret = sipc_eproto(ep, ring, &ep->stats.eproto_tx);
		goto out;
	}

	sprod = dir->prod;
	/* Pairs with smp_store_release(&dir->cons) in sipc_open_publish(). */
	scons = smp_load_acquire(&dir->cons);
	room = dir->entries - (sprod - scons);
	n = min(pending, room);
	if (pending > room)
		ep->stats.store_full++;

	seq0 = dir->seal_seq;
	sipc_group_init(&g, dir);
	for (i = 0; i < n; i++) {
		u32 slot = (cons + i) & ring->mask;
		struct sipc_tx_desc *desc = (struct sipc_tx_desc *)ring->descs +
					    slot;
		u32 len = READ_ONCE(desc->len);
		u16 type = READ_ONCE(desc->type);
		u16 flags = READ_ONCE(desc->flags);
		u64 reserved = READ_ONCE(desc->reserved);

		if (len > ring->slot_size || flags || reserved) {
			ret = sipc_eproto(ep, ring, &ep->stats.eproto_tx);
			break;
		}
		/* The one fetch of the payload: into kernel-only memory. */
		memcpy(sipc_rec_data(dir, sprod + i),
		       ring->slots + (size_t)slot * ring->slot_size, len);
		ret = sipc_seal_add(ep, s, &g, sprod + i, len, type);
		if (ret) {
			/* Copied but in no group: wipe it. */
			sipc_rec_wipe(dir, sprod + i);
			break;
		}
	}
	if (g.count) {
		long err = sipc_seal_group(ep, s, &g);

		if (err && !ret)
			ret = err;
	}

	/* What was sealed: a failed group is not published. */
	i = dir->seal_seq - seq0;
	if (i) {
		/* Read locklessly by a SEND_WAIT sleeper (sipc_send_wait()). */
		WRITE_ONCE(ring->kidx, cons + i);
		/*
		 * [O3], kernel as TX consumer: the slots are copied. Pairs with
		 * user space's load-acquire of TX cons [O4].
		 */
		smp_store_release(&ring->hdr->cons, ring->kidx);
		sipc_seal_publish(ep, s, sprod + i);
		ret = i;
	}
out:
	mutex_unlock(&ep->tx_lock);
	return ret;
}

/* ---------------------------------------------------------------- */
/* Opening (receiver side; rx_lock)                                  */
/* ---------------------------------------------------------------- */

/* Records may run at most this many epochs ahead of the opener. */
#define SIPC_MAX_EPOCH_SKIP 1024
static_assert(SIPC_MAX_REKEY_UNSEALED + 1 <= SIPC_MAX_EPOCH_SKIP);

/*
 * Must hold the receiver's rx_lock. Open a group sealed under a later
 * epoch: ratchet a candidate key forward and adopt it (erasing the older
 * key) only if the group authenticates under it.
 */
static int sipc_open_later_epoch(struct sipc_endpoint *ep,
				 struct sipc_dir *dir, u32 epoch,
				 const struct sipc_group *g)
{
	struct sipc_key next = dir->open_key;
	int ret = 0;

	lockdep_assert_held(&ep->rx_lock);
	while (!ret && next.epoch != epoch)
		ret = sipc_key_ratchet(dir->open_hmac, &next);
	if (!ret)
		ret = sipc_aead_setkey(&dir->open, next.key);
	if (!ret)
		ret = sipc_group_open(&dir->open, g, next.salt, dir->open_seq);
	if (!ret) {
		ep->stats.rekeys_rx += next.epoch - dir->open_key.epoch;
		dir->open_key = next;
	} else if (sipc_aead_setkey(&dir->open, dir->open_key.key)) {
		/*
		 * Keep the current key: the group was not authentic. If the
		 * transform cannot take it back now, sipc_open_group() sets it
		 * again before the next group.
		 */
		dir->open_stale = true;
	}
	sipc_key_wipe(&next);
	return ret;
}

/*
 * Must hold the receiver's rx_lock. Open, in place, the group that starts
 * at @idx, the first unopened record of the incoming store (@avail records
 * are published from there), following docs/record-format.md's opening
 * rules. Returns the number of records it holds, all authentic now; or
 * -EBADMSG with *@dropped set to the records that are consumed, counted
 * and never delivered: the whole group when its headers hang together,
 * else only the first record.
 */
static int sipc_open_group(struct sipc_endpoint *ep, struct sipc_session *s,
			   u32 idx, u32 avail, u32 *dropped)
{
	struct sipc_dir *dir = &s->dir[!sipc_session_role(s, ep)];
	const struct sipc_record_le *h = sipc_rec_hdr(dir, idx);
	u32 left = le32_to_cpu(h->group_left);
	u32 epoch = le32_to_cpu(h->epoch);
	u32 cur = dir->open_key.epoch;
	struct sipc_group g;
	u32 i;
	int ret = -EBADMSG;

	lockdep_assert_held(&ep->rx_lock);
	if (dir->open_stale) {
		ret = sipc_aead_setkey(&dir->open, dir->open_key.key);
		if (ret) {
			/* Nothing consumed: the caller reports and retries later. */
			*dropped = 0;
			return ret;
		}
		dir->open_stale = false;
		ret = -EBADMSG;
	}
	*dropped = 1;
	if (left >= SIPC_GROUP_MAX || left >= avail)
		goto bad;
	sipc_group_init(&g, dir);
	g.first = idx;
	g.count = left + 1;
	for (i = 0; i < g.count; i++) {
		u32 len;

		h = sipc_rec_hdr(dir, idx + i);
		len = le32_to_cpu(h->len);
		if (len > s->chan->slot_size ||
		    h->version != SIPC_RECORD_VERSION ||
		    h->direction != !sipc_session_role(s, ep) ||
		    le64_to_cpu(h->channel_id) != s->chan->id ||
		    le64_to_cpu(h->seq) != dir->open_seq + i ||
		    le32_to_cpu(h->group_left) != left - i ||
		    le32_to_cpu(h->epoch) != epoch)
			goto bad;
		g.len[i] = len;
		g.bytes += len;
		g.sg_used += sipc_record_sg_entries(sipc_rec_off(dir, idx + i),
						    len);
	}
	/* The headers hang together: the group stands or falls as one. */
	*dropped = g.count;
	if (epoch == cur)
		ret = sipc_group_open(&dir->open, &g, dir->open_key.salt,
				      dir->open_seq);
	else if (epoch > cur && epoch - cur <= SIPC_MAX_EPOCH_SKIP)
		ret = sipc_open_later_epoch(ep, dir, epoch, &g);
	if (ret)
		goto bad;
	dir->open_seq += g.count;
	ep->stats.opened_msgs += g.count;
	ep->stats.opened_bytes += g.bytes;
	return g.count;

bad:
	/* A failed in-place open may have left unauthentic plaintext. */
	for (i = 0; i < *dropped; i++)
		sipc_rec_wipe(dir, idx + i);
	pr_warn_ratelimited("channel \"%s\": %u record(s) from %llu failed to open (%d), dropped\n",
			    s->chan->name, *dropped, dir->open_seq, ret);
	dir->open_seq += *dropped;
	ep->stats.badmsg += *dropped;
	return -EBADMSG;
}

/*
 * Must hold the receiver's rx_lock. Make sure the record at @scons (the
 * oldest one not consumed, with @avail published from there) is opened:
 * open its group if it is not. Returns 0, or -EBADMSG with *@dropped
 * records consumed and counted.
 */
static int sipc_open_next(struct sipc_endpoint *ep, struct sipc_session *s,
			  u32 scons, u32 avail, u32 *dropped)
{
	struct sipc_dir *dir = &s->dir[!sipc_session_role(s, ep)];
	int k;

	lockdep_assert_held(&ep->rx_lock);
	if (scons != dir->opened)
		return 0;
	k = sipc_open_group(ep, s, scons, avail, dropped);
	if (k < 0) {
		dir->opened = scons + *dropped;
		return k;
	}
	dir->opened = scons + k;
	return 0;
}

/*
 * Must hold the receiver's rx_lock. Free store entries up to @cons and
 * wake the sender if it waits for room.
 */
static void sipc_open_publish(struct sipc_endpoint *ep, struct sipc_session *s,
			      u32 cons)
{
	struct sipc_dir *dir = &s->dir[!sipc_session_role(s, ep)];
	struct sipc_endpoint *tx_ep = s->ep[!sipc_session_role(s, ep)];

	lockdep_assert_held(&ep->rx_lock);
	/* Pairs with smp_load_acquire(&dir->cons) in sipc_send()/sipc_write(). */
	smp_store_release(&dir->cons, cons);
	/* [O9] hints; pair with user space's load-acquire of store_cons. */
	smp_store_release(&ep->rx.hdr->store_cons, cons);
	/* [O9] likewise, on the sender's TX ring. */
	smp_store_release(&tx_ep->tx.hdr->store_cons, cons);
	/*
	 * [O7]: free room, full barrier, then read the producer's
	 * NEED_WAKEUP. Pairs with the producer's full barrier between setting
	 * NEED_WAKEUP in its TX prod_flags and re-checking store_cons (user
	 * space).
	 */
	smp_mb();
	sipc_doorbell_maybe(tx_ep, &tx_ep->tx.hdr->prod_flags);
	/* wq_has_sleeper() pairs with the waiter's set_current_state(). */
	if (wq_has_sleeper(&tx_ep->wq))
		wake_up_interruptible_poll(&tx_ep->wq, EPOLLOUT | EPOLLWRNORM);
}

/**
 * sipc_recv() - SIPC_IOC_RECV: open sealed records into free RX slots
 * @ep: the endpoint
 *
 * Return: the number of messages delivered; 0 when nothing is waiting or
 * RX is full; -EPIPE once the other endpoint hung up and everything it
 * sealed was received; -EBADMSG when every record tried failed to open;
 * -ENOTCONN, -EPROTO, -EINTR.
 */
long sipc_recv(struct sipc_endpoint *ep)
{
	struct sipc_ring *ring = &ep->rx;
	struct sipc_session *s;
	struct sipc_dir *dir;
	u32 prod, cons, room, sprod, scons, start;
	u32 delivered = 0, bad = 0;
	long ret = 0;
	bool hup;

	if (mutex_lock_interruptible(&ep->rx_lock))
		return -EINTR;
	s = ep->session;
	if (!s) {
		ret = -ENOTCONN;
		goto out;
	}
	dir = &s->dir[!sipc_session_role(s, ep)];

	/* [O4], kernel as RX producer: pairs with user's release of cons [O3]. */
	cons = smp_load_acquire(&ring->hdr->cons);
	prod = ring->kidx;
	if (prod - cons > ring->entries) {
		ret = sipc_eproto(ep, ring, &ep->stats.eproto_rx);
		goto out;
	}
	room = ring->entries - (prod - cons);

	/* hup before prod: pairs with smp_store_release() in sipc_endpoint_hangup(). */
	hup = smp_load_acquire(&s->hup[!sipc_session_role(s, ep)]);
	/* Pairs with smp_store_release(&dir->prod) in sipc_seal_publish(). */
	sprod = smp_load_acquire(&dir->prod);
	scons = dir->cons;
	if (sprod == scons) {
		ret = hup ? -EPIPE : 0;
		goto out;
	}
	start = scons;
	while (delivered < room && scons != sprod) {
		u32 slot = prod & ring->mask;
		struct sipc_rx_desc *desc = (struct sipc_rx_desc *)ring->descs +
					    slot;
		const struct sipc_record_le *h;
		u32 dropped, len;
		u8 *src;
		int err;

		/*
		 * Open a group only when all of it fits in RX: then its
		 * plaintext never waits in the store after this call. (A group
		 * larger than an empty RX is malformed; sipc_open_group()
		 * drops it.)
		 */
		if (scons == dir->opened) {
			h = sipc_rec_hdr(dir, scons);
			if (le32_to_cpu(h->group_left) >= room - delivered &&
			    room - delivered < ring->entries)
				break;
		}
		err = sipc_open_next(ep, s, scons, sprod - scons, &dropped);

		if (err && !dropped) {
			/* The opener could not be keyed: nothing consumed. */
			if (!delivered)
				ret = err;
			break;
		}
		if (err) {
			scons += dropped;
			bad += dropped;
			continue;
		}
		h = sipc_rec_hdr(dir, scons);
		/* Kernel-only and authentic; never read back from the RX ring. */
		len = le32_to_cpu(h->len);
		src = sipc_opened_data(dir, scons);
		memcpy(ring->slots + (size_t)slot * ring->slot_size, src, len);
		sipc_opened_consumed(dir, scons, src, len);
		desc->len = len;
		desc->seq = le64_to_cpu(h->seq);
		desc->timestamp_ns = le64_to_cpu(h->timestamp_ns);
		desc->type = le16_to_cpu(h->type);
		desc->flags = 0;
		desc->sender_pid = dir->stamp.pid;
		desc->sender_uid = dir->stamp.uid;
		desc->sender_gid = dir->stamp.gid;
		desc->epoch = le32_to_cpu(h->epoch);
		memset(desc->reserved, 0, sizeof(desc->reserved));
		scons++;
		prod++;
		delivered++;
	}

	if (delivered) {
		ring->kidx = prod;
		/*
		 * [O1], kernel as RX producer: slots and descriptors written.
		 * Pairs with user space's load-acquire of RX prod [O2].
		 */
		smp_store_release(&ring->hdr->prod, prod);
	}
	if (scons != start)
		sipc_open_publish(ep, s, scons);
	if (delivered)
		ret = delivered;
	else if (bad)
		ret = -EBADMSG;
out:
	mutex_unlock(&ep->rx_lock);
	return ret;
}

/* ---------------------------------------------------------------- */
/* read(2) / write(2) / poll(2)                                      */
/* ---------------------------------------------------------------- */

/* Room in the outgoing store, or the other side hung up. Lockless. */
static bool sipc_out_ready(struct sipc_session *s, int role)
{
	struct sipc_dir *dir = &s->dir[role];

	/* Pairs with smp_store_release() in sipc_endpoint_hangup(). */
	if (smp_load_acquire(&s->hup[!role]))
		return true;
	/* Pairs with smp_store_release(&dir->cons) in sipc_open_publish(). */
	return READ_ONCE(dir->prod) - smp_load_acquire(&dir->cons) <
	       dir->entries;
}

/* Records in the incoming store, or the other side hung up. Lockless. */
static bool sipc_in_ready(struct sipc_session *s, int role)
{
	struct sipc_dir *dir = &s->dir[!role];

	/* Pairs with smp_store_release() in sipc_endpoint_hangup(). */
	if (smp_load_acquire(&s->hup[!role]))
		return true;
	/* Pairs with smp_store_release(&dir->prod) in sipc_seal_publish(). */
	return smp_load_acquire(&dir->prod) != READ_ONCE(dir->cons);
}

/* The jiffies of a RECV_WAIT/SEND_WAIT timeout (%SIPC_WAIT_FOREVER: none). */
static long sipc_wait_jiffies(unsigned long timeout_ms)
{
	return timeout_ms == SIPC_WAIT_FOREVER ? MAX_SCHEDULE_TIMEOUT :
						 msecs_to_jiffies(timeout_ms);
}

/**
 * sipc_recv_wait() - SIPC_IOC_RECV_WAIT: RECV, sleeping until records arrive
 * @ep: the endpoint
 * @timeout_ms: how long to sleep at most; 0 never sleeps,
 *	%SIPC_WAIT_FOREVER has no limit
 *
 * The sender's sipc_seal_publish() wakes ep->wq when it has a sleeper, so a
 * receiver sleeping here needs neither NEED_WAKEUP nor its doorbell.
 *
 * Return: what sipc_recv() returns; 0 also when the timeout passed;
 * -EINVAL for a timeout above U32_MAX; -EINTR when a signal arrived.
 */
long sipc_recv_wait(struct sipc_endpoint *ep, unsigned long timeout_ms)
{
	struct sipc_session *s;
	long ret, left;

	if (timeout_ms > U32_MAX)
		return -EINVAL;
	ret = sipc_recv(ep);
	if (ret || !timeout_ms)
		return ret;

	s = sipc_endpoint_session_get(ep);
	if (!s)
		return -ENOTCONN;
	/*
	 * sipc_in_ready() is also true when the other side hung up, and a new
	 * session (re-attach) ends the wait too: sipc_recv() then reports.
	 */
	left = wait_event_interruptible_timeout(ep->wq,
						sipc_in_ready(s, sipc_session_role(s, ep)) ||
						READ_ONCE(ep->session) != s,
						sipc_wait_jiffies(timeout_ms));
	sipc_session_put(s);
	if (left < 0)
		return -EINTR;
	if (!left)
		return 0;
	return sipc_recv(ep);
}

/*
 * Room in the outgoing store for every record published in TX (or for a
 * whole store, when TX holds more), or the other side hung up, or TX holds
 * nothing or an index that SEND refuses. Lockless, a hint for the sleeper
 * of sipc_send_wait(): its SEND decides under tx_lock. User space writes
 * TX prod whenever it likes, so nothing here trusts it beyond the bound.
 */
static bool sipc_out_room_for_tx(struct sipc_endpoint *ep,
				 struct sipc_session *s, int role)
{
	struct sipc_dir *dir = &s->dir[role];
	struct sipc_ring *ring = &ep->tx;
	u32 pending, fill;

	/* Pairs with smp_store_release() in sipc_endpoint_hangup(). */
	if (smp_load_acquire(&s->hup[!role]))
		return true;
	pending = READ_ONCE(ring->hdr->prod) - READ_ONCE(ring->kidx);
	if (!pending || pending > ring->entries)
		return true;
	/* Pairs with smp_store_release(&dir->cons) in sipc_open_publish(). */
	fill = READ_ONCE(dir->prod) - smp_load_acquire(&dir->cons);
	return fill <= dir->entries &&
	       dir->entries - fill >= min(pending, dir->entries);
}

/**
 * sipc_send_wait() - SIPC_IOC_SEND_WAIT: SEND once the store has room
 * @ep: the endpoint
 * @timeout_ms: how long to sleep at most; 0 never sleeps,
 *	%SIPC_WAIT_FOREVER has no limit
 *
 * Sleeps until the outgoing sealed store has room for everything published
 * in TX (at most a store's worth), the other side hangs up or a new session
 * begins, then SENDs: a producer that outruns its consumer seals each batch
 * with this one call where poll + SEND cost two, and never seals a batch
 * in pieces. The receiver's sipc_open_publish() wakes ep->wq when it has a
 * sleeper. The wait holds no lock: other threads of the endpoint may SEND
 * meanwhile.
 *
 * Return: what sipc_send() returns after the wait (also when the timeout
 * passed: then it seals what fits); -ENOTCONN before a peer attached;
 * -EINVAL for a timeout above U32_MAX; -EINTR when a signal arrived (TX
 * keeps everything: nothing was sealed).
 */
long sipc_send_wait(struct sipc_endpoint *ep, unsigned long timeout_ms)
{
	struct sipc_session *s;
	long left = 1;
	int role;

	if (timeout_ms > U32_MAX)
		return -EINVAL;
	s = sipc_endpoint_session_get(ep);
	if (!s)
		return -ENOTCONN;
	role = sipc_session_role(s, ep);
	if (timeout_ms)
		left = wait_event_interruptible_timeout(ep->wq,
							sipc_out_room_for_tx(ep, s, role) ||
							READ_ONCE(ep->session) != s,
							sipc_wait_jiffies(timeout_ms));
	sipc_session_put(s);
	if (left < 0)
		return -EINTR;
	return sipc_send(ep);
}

ssize_t sipc_write(struct file *file, const char __user *buf, size_t len,
		   loff_t *ppos)
{
	struct sipc_endpoint *ep = file->private_data;
	struct sipc_session *s;
	struct sipc_group g;
	struct sipc_dir *dir;
	u32 sprod;
	ssize_t ret;

retry:
	s = sipc_endpoint_session_get(ep);
	if (!s)
		return -ENOTCONN;
	if (len > s->chan->slot_size) {
		ret = -EMSGSIZE;
		goto out_put;
	}
	if (mutex_lock_interruptible(&ep->tx_lock)) {
		ret = -ERESTARTSYS;
		goto out_put;
	}
	if (ep->session != s) {
		mutex_unlock(&ep->tx_lock);
		sipc_session_put(s);
		goto retry;
	}
	/* Pairs with smp_store_release() in sipc_endpoint_hangup(). */
	if (smp_load_acquire(&s->hup[!sipc_session_role(s, ep)])) {
		ret = -EPIPE;
		goto out_unlock;
	}
	dir = &s->dir[sipc_session_role(s, ep)];
	sprod = dir->prod;
	/* Pairs with smp_store_release(&dir->cons) in sipc_open_publish(). */
	if (sprod - smp_load_acquire(&dir->cons) >= dir->entries) {
		ep->stats.store_full++;
		mutex_unlock(&ep->tx_lock);
		if (file->f_flags & O_NONBLOCK) {
			ret = -EAGAIN;
			goto out_put;
		}
		ret = wait_event_interruptible(ep->wq,
					       sipc_out_ready(s, sipc_session_role(s, ep)) ||
					       READ_ONCE(ep->session) != s);
		sipc_session_put(s);
		if (ret)
			return ret;
		goto retry;
	}

	if (copy_from_user(sipc_rec_data(dir, sprod), buf, len)) {
		sipc_rec_wipe(dir, sprod);
		ret = -EFAULT;
		goto out_unlock;
	}
	sipc_group_init(&g, dir);
	ret = sipc_seal_add(ep, s, &g, sprod, len, 0);
	if (ret) {
		sipc_rec_wipe(dir, sprod);
		goto out_unlock;
	}
	/* A failed group is wiped by sipc_seal_group(). */
	ret = sipc_seal_group(ep, s, &g);
	if (ret)
		goto out_unlock;
	sipc_seal_publish(ep, s, sprod + 1);
	ret = len;

out_unlock:
	mutex_unlock(&ep->tx_lock);
out_put:
	sipc_session_put(s);
	return ret;
}

ssize_t sipc_read(struct file *file, char __user *buf, size_t len,
		  loff_t *ppos)
{
	struct sipc_endpoint *ep = file->private_data;
	struct sipc_session *s;
	struct sipc_dir *dir;
	u32 sprod, scons, dropped, msg_len;
	ssize_t ret;
	bool fresh;
	bool hup;
	u8 *src;

retry:
	s = sipc_endpoint_session_get(ep);
	if (!s)
		return -ENOTCONN;
	if (mutex_lock_interruptible(&ep->rx_lock)) {
		ret = -ERESTARTSYS;
		goto out_put;
	}
	if (ep->session != s) {
		mutex_unlock(&ep->rx_lock);
		sipc_session_put(s);
		goto retry;
	}
	dir = &s->dir[!sipc_session_role(s, ep)];
	/* hup before prod: pairs with smp_store_release() in sipc_endpoint_hangup(). */
	hup = smp_load_acquire(&s->hup[!sipc_session_role(s, ep)]);
	/* Pairs with smp_store_release(&dir->prod) in sipc_seal_publish(). */
	sprod = smp_load_acquire(&dir->prod);
	scons = dir->cons;
	if (sprod == scons) {
		mutex_unlock(&ep->rx_lock);
		if (hup) {
			ret = -EPIPE;
			goto out_put;
		}
		if (file->f_flags & O_NONBLOCK) {
			ret = -EAGAIN;
			goto out_put;
		}
		ret = wait_event_interruptible(ep->wq,
					       sipc_in_ready(s, sipc_session_role(s, ep)) ||
					       READ_ONCE(ep->session) != s);
		sipc_session_put(s);
		if (ret)
			return ret;
		goto retry;
	}

	fresh = scons == dir->opened;
	if (fresh && !dir->scratch) {
		/* Before opening: a failure here leaves the group sealed. */
		dir->scratch = kvmalloc(sipc_scratch_bytes(dir),
					GFP_KERNEL_ACCOUNT);
		if (!dir->scratch) {
			ret = -ENOMEM;
			goto out_unlock;
		}
	}
	ret = sipc_open_next(ep, s, scons, sprod - scons, &dropped);
	if (ret) {
		if (dropped)
			sipc_open_publish(ep, s, scons + dropped);
		goto out_unlock;
	}
	if (fresh)
		sipc_open_to_scratch(dir, scons);
	/* SOCK_SEQPACKET: a short buffer fails and the message stays. */
	msg_len = le32_to_cpu(sipc_rec_hdr(dir, scons)->len);
	if (msg_len > len) {
		ret = -EMSGSIZE;
		goto out_unlock;
	}
	/* An opened message stays queued (in the scratch) when the copy faults. */
	src = sipc_opened_data(dir, scons);
	if (copy_to_user(buf, src, msg_len)) {
		ret = -EFAULT;
		goto out_unlock;
	}
	sipc_opened_consumed(dir, scons, src, msg_len);
	ret = msg_len;
	sipc_open_publish(ep, s, scons + 1);

out_unlock:
	mutex_unlock(&ep->rx_lock);
out_put:
	sipc_session_put(s);
	return ret;
}

__poll_t sipc_poll(struct file *file, poll_table *wait)
{
	struct sipc_endpoint *ep = file->private_data;
	struct sipc_session *s;
	__poll_t mask = 0;
	int role;

	poll_wait(file, &ep->wq, wait);
	/*
	 * Queued on ep->wq before the state is read: pairs with the full
	 * barrier in wq_has_sleeper() of sipc_seal_publish(),
	 * sipc_open_publish() and sipc_hangup_notify()'s waker (the pattern of
	 * sock_poll_wait()).
	 */
	smp_mb();
	s = sipc_endpoint_session_get(ep);
	if (!s)
		return 0;
	role = sipc_session_role(s, ep);
	/* Pairs with smp_store_release(&dir->prod) in sipc_seal_publish(). */
	if (smp_load_acquire(&s->dir[!role].prod) != READ_ONCE(s->dir[!role].cons))
		mask |= EPOLLIN | EPOLLRDNORM;
	/* Pairs with smp_store_release() in sipc_endpoint_hangup(). */
	if (smp_load_acquire(&s->hup[!role]))
		mask |= EPOLLHUP | EPOLLRDHUP;
	else if (sipc_out_ready(s, role))
		mask |= EPOLLOUT | EPOLLWRNORM;
	sipc_session_put(s);
	return mask;
}

/**
 * sipc_rekey() - SIPC_IOC_REKEY: ratchet this endpoint's sending key now
 * @ep: the endpoint
 * @arg: flags in (SIPC_REKEY_TX), new_epoch out
 *
 * Return: 0, -EINVAL, -ENOTCONN, -EOVERFLOW, or a crypto error.
 */
int sipc_rekey(struct sipc_endpoint *ep, struct sipc_rekey *arg)
{
	struct sipc_dir *dir;
	int ret;

	if (arg->flags != SIPC_REKEY_TX || arg->reserved)
		return -EINVAL;
	if (mutex_lock_interruptible(&ep->tx_lock))
		return -EINTR;
	if (!ep->session) {
		ret = -ENOTCONN;
		goto out;
	}
	dir = &ep->session->dir[sipc_session_role(ep->session, ep)];
	/*
	 * The opener follows at most SIPC_MAX_EPOCH_SKIP epochs from one
	 * record to the next; a record's epoch is the previous record's plus
	 * these REKEYs plus at most one automatic step.
	 */
	if (dir->rekeys_unsealed >= SIPC_MAX_REKEY_UNSEALED) {
		ret = -EBUSY;
		goto report;
	}
	ret = sipc_seal_rekey(ep, dir);
	if (!ret)
		dir->rekeys_unsealed++;
report:
	arg->new_epoch = dir->seal_key.epoch;
out:
	mutex_unlock(&ep->tx_lock);
	return ret;
}

/* ---------------------------------------------------------------- */
/* Test hooks (SIPC_TEST_HOOKS=1 builds only)                        */
/* ---------------------------------------------------------------- */

#ifdef SIPC_TEST_HOOKS
int sipc_test_keys(struct sipc_endpoint *ep, struct sipc_test_keys *arg)
{
	struct sipc_dir *dir;
	int ret = 0;

	if (arg->flags)
		return -EINVAL;
	mutex_lock(&ep->tx_lock);
	if (!ep->session) {
		ret = -ENOTCONN;
		goto out;
	}
	dir = &ep->session->dir[sipc_session_role(ep->session, ep)];
	memcpy(arg->tx_key, dir->seal_key.key, sizeof(arg->tx_key));
	memcpy(arg->tx_salt, dir->seal_key.salt, sizeof(arg->tx_salt));
	arg->tx_epoch = dir->seal_key.epoch;
out:
	mutex_unlock(&ep->tx_lock);
	return ret;
}

/*
 * Copy out (or, with SIPC_TEST_SEALED_FLIP, corrupt one bit of) the oldest
 * unopened group of the outgoing store, in the serialized form of
 * docs/record-format.md: each record's header and ciphertext, then the
 * tag. Racy against the receiver opening it in place: tests call it while
 * the receiver is idle.
 */
int sipc_test_peek_sealed(struct sipc_endpoint *ep,
			  struct sipc_test_sealed *arg)
{
	const size_t hsz = sizeof(struct sipc_record_le);
	u8 __user *out = u64_to_user_ptr(arg->buf);
	struct sipc_record_le *h;
	struct sipc_dir *dir;
	u32 first, k, i, len = 0;
	size_t total = 0, pos = 0;
	int ret = 0;

	if (arg->flags & ~SIPC_TEST_SEALED_FLIP || arg->reserved)
		return -EINVAL;
	mutex_lock(&ep->tx_lock);
	if (!ep->session) {
		ret = -ENOTCONN;
		goto out;
	}
	dir = &ep->session->dir[sipc_session_role(ep->session, ep)];
	first = READ_ONCE(dir->opened);
	if (first == dir->prod) {
		ret = -ENOENT;
		goto out;
	}
	h = sipc_rec_hdr(dir, first);
	k = min3(le32_to_cpu(h->group_left) + 1, dir->prod - first,
		 (u32)SIPC_GROUP_MAX);
	for (i = 0; i < k; i++)
		total += hsz + min(le32_to_cpu(sipc_rec_hdr(dir, first + i)->len),
				   ep->session->chan->slot_size);
	total += SIPC_TAG_LEN;
	if (arg->flags & SIPC_TEST_SEALED_FLIP ? arg->record_len >= total :
	    arg->buf_len < total) {
		ret = arg->flags ? -EINVAL : -EMSGSIZE;
		goto out;
	}
	/* Walk the pieces: header and ciphertext of each record, the tag. */
	for (i = 0; i <= 2 * k; i++) {
		u8 *p;
		size_t n;

		if (i == 2 * k) {
			p = sipc_rec_data(dir, first + k - 1) + len;
			n = SIPC_TAG_LEN;
		} else if (i % 2 == 0) {
			p = (u8 *)sipc_rec_hdr(dir, first + i / 2);
			n = hsz;
		} else {
			p = sipc_rec_data(dir, first + i / 2);
			len = min(le32_to_cpu(sipc_rec_hdr(dir, first + i / 2)->len),
				  ep->session->chan->slot_size);
			n = len;
		}
		if (arg->flags & SIPC_TEST_SEALED_FLIP) {
			if (arg->record_len < pos + n) {
				p[arg->record_len - pos] ^= 1;
				goto out;
			}
		} else if (copy_to_user(out + pos, p, n)) {
			ret = -EFAULT;
			goto out;
		}
		pos += n;
	}
	arg->record_len = total;
out:
	mutex_unlock(&ep->tx_lock);
	return ret;
}

/*
 * Replace the sealing state of @ep's sending direction: SEND, write(2) and
 * REKEY then run unchanged on chosen inputs (the pinned record vectors, or
 * an erased epoch's key).
 */
int sipc_test_set_seal(struct sipc_endpoint *ep, struct sipc_test_seal *arg)
{
	struct sipc_dir *dir;
	int ret;

	if (arg->flags)
		return -EINVAL;
	mutex_lock(&ep->tx_lock);
	if (!ep->session) {
		ret = -ENOTCONN;
		goto out;
	}
	dir = &ep->session->dir[sipc_session_role(ep->session, ep)];
	ret = sipc_aead_setkey(&dir->seal, arg->key);
	if (ret) {
		/* Keep the transform and the key in step (sipc_seal_group()). */
		dir->seal_stale = true;
		goto out;
	}
	dir->seal_stale = false;
	memcpy(dir->seal_key.key, arg->key, sizeof(dir->seal_key.key));
	memcpy(dir->seal_key.salt, arg->salt, sizeof(dir->seal_key.salt));
	dir->seal_key.epoch = arg->epoch;
	dir->seal_seq = arg->seq;
	dir->epoch_records = 0;
	dir->epoch_bytes = 0;
	dir->test_channel_id = arg->channel_id;
	dir->test_clock_ns = arg->clock_ns;
	dir->test_stamp = true;
out:
	mutex_unlock(&ep->tx_lock);
	return ret;
}

/*
 * Copy the raw outgoing store. Racy against the receiver like
 * sipc_test_peek_sealed(): tests call it while the receiver is idle.
 */
int sipc_test_dump_store(struct sipc_endpoint *ep, struct sipc_test_store *arg)
{
	struct sipc_session *s;
	struct sipc_dir *dir;
	size_t len;
	int ret = 0;

	if (arg->flags)
		return -EINVAL;
	mutex_lock(&ep->tx_lock);
	s = ep->session;
	if (!s) {
		ret = -ENOTCONN;
		goto out;
	}
	dir = &s->dir[sipc_session_role(s, ep)];
	len = dir->rec_size * dir->entries;
	arg->store_len = len;
	if (arg->buf_len < len) {
		ret = -EMSGSIZE;
		goto out;
	}
	if (copy_to_user(u64_to_user_ptr(arg->buf), dir->store.vaddr, len))
		ret = -EFAULT;
out:
	mutex_unlock(&ep->tx_lock);
	return ret;
}
#endif
