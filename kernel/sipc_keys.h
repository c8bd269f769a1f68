/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The key schedule of docs/key-schedule.md: X25519 ephemerals, the
 * optional identity proof, HKDF-SHA256 session keys with an optional PSK,
 * and the per-direction rekey ratchet. Everything that creates or destroys
 * key material is in sipc_keys.c.
 */
#ifndef _SIPC_KEYS_H
#define _SIPC_KEYS_H

#include <linux/types.h>
#include <crypto/hash.h>
#include <linux/secure_ipc.h>

#define SIPC_KEY_BYTES 32

/**
 * struct sipc_key - one direction's traffic key
 * @key: AES-256 key of @epoch
 * @salt: nonce salt; nonce = salt || le64(seq); constant across epochs
 * @epoch: key epoch, carried in every record
 */
struct sipc_key {
	u8 key[SIPC_KEY_BYTES];
	u8 salt[SIPC_SALT_LEN];
	u32 epoch;
};

/**
 * struct sipc_kx - inputs of one attach's key schedule
 * @name32: the channel name, NUL-padded to 32 bytes
 * @owner_priv: owner's ephemeral X25519 private key
 * @owner_pub: its public key
 * @peer_priv: peer's ephemeral X25519 private key
 * @peer_pub: its public key
 * @has_identity: the channel pins @identity_pub
 * @identity_pub: pinned identity public key
 * @nonce: challenge nonce bound into the proof transcript
 * @has_psk: @psk is valid
 * @psk: pre-shared key
 *
 * Wiped with sipc_kx_wipe() as soon as the session keys exist.
 */
struct sipc_kx {
	u8 name32[SIPC_NAME_MAX];
	u8 owner_priv[SIPC_KEY_LEN];
	u8 owner_pub[SIPC_KEY_LEN];
	u8 peer_priv[SIPC_KEY_LEN];
	u8 peer_pub[SIPC_KEY_LEN];
	bool has_identity;
	u8 identity_pub[SIPC_KEY_LEN];
	u8 nonce[SIPC_KEY_LEN];
	bool has_psk;
	u8 psk[SIPC_KEY_LEN];
};

struct crypto_shash *sipc_hmac_alloc(void);
int sipc_kx_keypair(u8 *priv, u8 *pub);
int sipc_kx_public(u8 *pub, const u8 *priv);
int sipc_kx_proof(struct crypto_shash *hmac, const struct sipc_kx *kx,
		  u8 *proof);
int sipc_kx_derive(struct crypto_shash *hmac, const struct sipc_kx *kx,
		   struct sipc_key *o2p, struct sipc_key *p2o);
void sipc_kx_wipe(struct sipc_kx *kx);
int sipc_key_ratchet(struct crypto_shash *hmac, struct sipc_key *key);
void sipc_key_wipe(struct sipc_key *key);

#ifdef SIPC_TEST_HOOKS
int sipc_keys_test_schedule(struct sipc_test_kx *arg);
#endif

#endif /* _SIPC_KEYS_H */
