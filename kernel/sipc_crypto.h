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

/* A record spans at most (40 + 65536 + 16) bytes at any page offset. */
#define SIPC_RECORD_MAX_PAGES \
	(DIV_ROUND_UP(sizeof(struct sipc_record_hdr) + SIPC_MAX_SLOT_SIZE + \
		      SIPC_TAG_LEN, PAGE_SIZE) + 1)

/**
 * struct sipc_aead - one gcm(aes) transform with its preallocated request
 * @tfm: the transform, keyed with one direction's current key
 * @req: request reused for every record (callers serialize)
 * @wait: completion for asynchronous implementations
 * @sg: scatterlist covering one record
 */
struct sipc_aead {
	struct crypto_aead *tfm;
	struct aead_request *req;
	struct crypto_wait wait;
	struct scatterlist sg[SIPC_RECORD_MAX_PAGES];
};

int sipc_crypto_init(void);
int sipc_aead_alloc(struct sipc_aead *a);
void sipc_aead_free(struct sipc_aead *a);
int sipc_aead_setkey(struct sipc_aead *a, const u8 *key);

size_t sipc_record_size(u32 slot_size);
int sipc_record_seal(struct sipc_aead *a, struct sipc_pages *store,
		     size_t off, const u8 *salt, u64 seq, u32 len);
int sipc_record_open(struct sipc_aead *a, struct sipc_pages *store,
		     size_t off, const u8 *salt, u64 seq, u32 len);

#endif /* _SIPC_CRYPTO_H */
