/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The key schedule: where each direction's AES-256-GCM key and nonce salt
 * come from. Everything that creates or destroys key material is in
 * sipc_keys.c.
 */
#ifndef _SIPC_KEYS_H
#define _SIPC_KEYS_H

#include <linux/types.h>
#include <linux/secure_ipc.h>

#include "sipc_crypto.h"

/**
 * struct sipc_key - one direction's traffic key
 * @key: AES-256 key
 * @salt: nonce salt; nonce = salt || le64(seq)
 * @epoch: key epoch, carried in every record
 */
struct sipc_key {
	u8 key[SIPC_KEY_BYTES];
	u8 salt[SIPC_SALT_LEN];
	u32 epoch;
};

int sipc_keys_derive(struct sipc_key *o2p, struct sipc_key *p2o);
void sipc_key_wipe(struct sipc_key *key);

#endif /* _SIPC_KEYS_H */
