/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * AES-256-GCM sealing and opening of records held in page-backed memory.
 */
#ifndef _SIPC_CRYPTO_H
#define _SIPC_CRYPTO_H

#include <crypto/aead.h>
#include <linux/crypto.h>
#include <linux/scatterlist.h>
#include <linux/secure_ipc.h>

#include "sipc_ring.h"
#include "sipc_keys.h"

/*
 * Records sealed together as one AES-GCM operation (a group, see
 * docs/record-format.md): at most this many, and at most this many
 * scatterlist entries (one per header, one per page piece of each payload,
 * the tag's pieces).
 */
#define SIPC_GROUP_MAX 32
#define SIPC_SG_MAX 128
/* Entries the tag of a group may need (it can straddle a page boundary). */
#define SIPC_TAG_SG 2

/**
 * struct sipc_aead - one gcm(aes) transform with its preallocated request
 * @tfm: the transform, keyed with one direction's current key
 * @req: request reused for every group (callers serialize)
 * @wait: completion for asynchronous implementations
 * @sg: %SIPC_SG_MAX entries covering one group
 */
struct sipc_aead {
	struct crypto_aead *tfm;
	struct aead_request *req;
	struct crypto_wait wait;
	struct scatterlist *sg;
};

/**
 * struct sipc_group - consecutive records of a sealed store that are
 *	sealed or opened with one AES-GCM operation
 * @store: the store's pages
 * @rec_size: bytes per record slot of @store
 * @mask: records in @store - 1
 * @first: store index of the first record
 * @count: records in the group, 1 to %SIPC_GROUP_MAX
 * @bytes: sum of @len
 * @sg_used: scatterlist entries the headers and payloads need (the sum of
 *	sipc_record_sg_entries() over the records)
 * @len: payload length of each record
 */
struct sipc_group {
	struct sipc_pages *store;
	size_t rec_size;
	u32 mask;
	u32 first;
	u32 count;
	u64 bytes;
	unsigned int sg_used;
	u32 len[SIPC_GROUP_MAX];
};

int sipc_crypto_init(void);
int sipc_aead_alloc(struct sipc_aead *a);
void sipc_aead_free(struct sipc_aead *a);
int sipc_aead_setkey(struct sipc_aead *a, const u8 *key);

size_t sipc_record_size(u32 slot_size);
size_t sipc_group_rec_off(const struct sipc_group *g, u32 i);
unsigned int sipc_record_sg_entries(size_t off, u32 len);
int sipc_group_seal(struct sipc_aead *a, const struct sipc_group *g,
		    const u8 *salt, u64 seq);
int sipc_group_open(struct sipc_aead *a, const struct sipc_group *g,
		    const u8 *salt, u64 seq);

#endif /* _SIPC_CRYPTO_H */
