// SPDX-License-Identifier: GPL-2.0-only
/*
 * The key schedule, exactly as docs/key-schedule.md specifies it (the
 * guest test of SIPC_IOC_TEST_KEY_SCHEDULE reproduces the pinned vectors
 * of client/tests/vectors/key-schedule.txt):
 *
 *	eph_dh      = X25519(owner_priv, peer_pub)
 *	identity_dh = X25519(owner_priv, identity_pub)
 *	proof_key   = HKDF(salt "secure_ipc v1 proof salt", identity_dh,
 *			   info "secure_ipc v1 proof key", 32)
 *	proof       = HMAC(proof_key, "secure_ipc v1 proof" || name32 ||
 *			   owner_pub || nonce || identity_pub)
 *	salt        = SHA-256("secure_ipc v1 salt" || owner_pub || peer_pub ||
 *			      name32)
 *	PRK         = HKDF-Extract(salt, eph_dh || ID || PSK)
 *	o2p/p2o key = HKDF-Expand(PRK, "secure_ipc v1 {o2p,p2o} key", 32)
 *	o2p/p2o salt= HKDF-Expand(PRK, "secure_ipc v1 {o2p,p2o} salt", 4)
 *	key_{e+1}   = HKDF-Expand(key_e, "secure_ipc v1 rekey", 32)
 *
 * Both endpoints live in this kernel, so both ephemeral key pairs are made
 * here; private keys and intermediate secrets are wiped with
 * memzero_explicit() right after use.
 */

#include <linux/random.h>
#include <linux/string.h>
#include <linux/err.h>
#include <linux/slab.h>
#include <crypto/curve25519.h>
#include <crypto/hash.h>
#include <crypto/sha2.h>

#include "compat.h"
#include "sipc_keys.h"

/* Longest HMAC input built on the stack: the proof transcript. */
#define SIPC_PROOF_TRANSCRIPT_LEN (19 + 4 * SIPC_KEY_LEN)

struct crypto_shash *sipc_hmac_alloc(void)
{
	return crypto_alloc_shash("hmac(sha256)", 0, 0);
}

/* HMAC-SHA256(key, a || b), b optional. Callers serialize use of @hmac. */
static int sipc_hmac2(struct crypto_shash *hmac, const u8 *key, size_t klen,
		      const u8 *a, size_t alen, const u8 *b, size_t blen,
		      u8 *out)
{
	SHASH_DESC_ON_STACK(desc, hmac);
	int ret;

	ret = crypto_shash_setkey(hmac, key, klen);
	if (ret)
		return ret;
	desc->tfm = hmac;
	ret = crypto_shash_init(desc);
	if (!ret)
		ret = crypto_shash_update(desc, a, alen);
	if (!ret && blen)
		ret = crypto_shash_update(desc, b, blen);
	if (!ret)
		ret = crypto_shash_final(desc, out);
	shash_desc_zero(desc);
	return ret;
}

/* HKDF-Expand(prk, info, len) for len <= 32: one block, T(1). */
static int sipc_hkdf_expand(struct crypto_shash *hmac, const u8 *prk,
			    const char *info, u8 *out, size_t len)
{
	static const u8 one = 1;
	u8 t[SHA256_DIGEST_SIZE];
	int ret;

	ret = sipc_hmac2(hmac, prk, SHA256_DIGEST_SIZE, (const u8 *)info,
			 strlen(info), &one, 1, t);
	if (!ret)
		memcpy(out, t, len);
	memzero_explicit(t, sizeof(t));
	return ret;
}

/* A fresh X25519 key pair from the CRNG. */
int sipc_kx_keypair(u8 *priv, u8 *pub)
{
	curve25519_generate_secret(priv);
	return sipc_kx_public(pub, priv);
}

int sipc_kx_public(u8 *pub, const u8 *priv)
{
	return curve25519_generate_public(pub, priv) ? 0 : -EINVAL;
}

/* X25519 that refuses an all-zero result (a low-order public key). */
static int sipc_x25519(u8 *out, const u8 *priv, const u8 *pub)
{
	return curve25519(out, priv, pub) ? 0 : -EKEYREJECTED;
}

/**
 * sipc_kx_proof() - the identity proof the attacher must present
 * @hmac: an hmac(sha256) transform
 * @kx: owner_priv, owner_pub, name32, nonce and identity_pub are used
 * @proof: out: 32 bytes
 *
 * Return: 0, -EKEYREJECTED for a low-order identity key, or a crypto error.
 */
int sipc_kx_proof(struct crypto_shash *hmac, const struct sipc_kx *kx,
		  u8 *proof)
{
	static const u8 proof_salt[] = "secure_ipc v1 proof salt";
	u8 transcript[SIPC_PROOF_TRANSCRIPT_LEN];
	u8 identity_dh[SIPC_KEY_LEN];
	u8 prk[SHA256_DIGEST_SIZE];
	u8 proof_key[SIPC_KEY_LEN];
	u8 *p = transcript;
	int ret;

	ret = sipc_x25519(identity_dh, kx->owner_priv, kx->identity_pub);
	if (ret)
		goto out;
	ret = sipc_hmac2(hmac, proof_salt, sizeof(proof_salt) - 1,
			 identity_dh, sizeof(identity_dh), NULL, 0, prk);
	if (ret)
		goto out;
	ret = sipc_hkdf_expand(hmac, prk, "secure_ipc v1 proof key",
			       proof_key, sizeof(proof_key));
	if (ret)
		goto out;

	memcpy(p, "secure_ipc v1 proof", 19);
	p += 19;
	memcpy(p, kx->name32, SIPC_NAME_MAX);
	p += SIPC_NAME_MAX;
	memcpy(p, kx->owner_pub, SIPC_KEY_LEN);
	p += SIPC_KEY_LEN;
	memcpy(p, kx->nonce, SIPC_KEY_LEN);
	p += SIPC_KEY_LEN;
	memcpy(p, kx->identity_pub, SIPC_KEY_LEN);
	ret = sipc_hmac2(hmac, proof_key, sizeof(proof_key), transcript,
			 sizeof(transcript), NULL, 0, proof);
out:
	memzero_explicit(identity_dh, sizeof(identity_dh));
	memzero_explicit(prk, sizeof(prk));
	memzero_explicit(proof_key, sizeof(proof_key));
	return ret;
}

/**
 * sipc_kx_derive() - the session's traffic keys (epoch 0)
 * @hmac: an hmac(sha256) transform
 * @kx: all inputs
 * @o2p: out: owner-to-peer key and salt
 * @p2o: out: peer-to-owner key and salt
 *
 * Return: 0, -EKEYREJECTED for a low-order public key, or a crypto error.
 */
int sipc_kx_derive(struct crypto_shash *hmac, const struct sipc_kx *kx,
		   struct sipc_key *o2p, struct sipc_key *p2o)
{
	static const char salt_label[] = "secure_ipc v1 salt";
	u8 ikm[3 * SIPC_KEY_LEN] = {};
	u8 salt[SHA256_DIGEST_SIZE];
	u8 prk[SHA256_DIGEST_SIZE];
	sipc_sha256_ctx sha;
	int ret;

	/* IKM = eph_dh || ID || PSK, absent parts as zero blocks. */
	ret = sipc_x25519(ikm, kx->owner_priv, kx->peer_pub);
	if (ret)
		goto out;
	if (kx->has_identity) {
		ret = sipc_x25519(ikm + SIPC_KEY_LEN, kx->owner_priv,
				  kx->identity_pub);
		if (ret)
			goto out;
	}
	if (kx->has_psk)
		memcpy(ikm + 2 * SIPC_KEY_LEN, kx->psk, SIPC_KEY_LEN);

	sha256_init(&sha);
	sha256_update(&sha, salt_label, sizeof(salt_label) - 1);
	sha256_update(&sha, kx->owner_pub, SIPC_KEY_LEN);
	sha256_update(&sha, kx->peer_pub, SIPC_KEY_LEN);
	sha256_update(&sha, kx->name32, SIPC_NAME_MAX);
	sha256_final(&sha, salt);

	ret = sipc_hmac2(hmac, salt, sizeof(salt), ikm, sizeof(ikm), NULL, 0,
			 prk);
	if (ret)
		goto out;
	ret = sipc_hkdf_expand(hmac, prk, "secure_ipc v1 o2p key",
			       o2p->key, SIPC_KEY_BYTES);
	if (!ret)
		ret = sipc_hkdf_expand(hmac, prk,
				       "secure_ipc v1 o2p salt",
				       o2p->salt, SIPC_SALT_LEN);
	if (!ret)
		ret = sipc_hkdf_expand(hmac, prk,
				       "secure_ipc v1 p2o key",
				       p2o->key, SIPC_KEY_BYTES);
	if (!ret)
		ret = sipc_hkdf_expand(hmac, prk,
				       "secure_ipc v1 p2o salt",
				       p2o->salt, SIPC_SALT_LEN);
	o2p->epoch = 0;
	p2o->epoch = 0;
out:
	memzero_explicit(ikm, sizeof(ikm));
	memzero_explicit(prk, sizeof(prk));
	memzero_explicit(&sha, sizeof(sha));
	if (ret) {
		sipc_key_wipe(o2p);
		sipc_key_wipe(p2o);
	}
	return ret;
}

void sipc_kx_wipe(struct sipc_kx *kx)
{
	memzero_explicit(kx, sizeof(*kx));
}

/**
 * sipc_key_ratchet() - move a direction's key one epoch forward
 * @hmac: an hmac(sha256) transform
 * @key: the key; replaced in place, the old one is gone
 *
 * Return: 0 or a crypto error (the key is then unchanged).
 */
int sipc_key_ratchet(struct crypto_shash *hmac, struct sipc_key *key)
{
	u8 next[SIPC_KEY_BYTES];
	int ret;

	ret = sipc_hkdf_expand(hmac, key->key, "secure_ipc v1 rekey",
			       next, sizeof(next));
	if (!ret) {
		memcpy(key->key, next, sizeof(next));
		key->epoch++;
	}
	memzero_explicit(next, sizeof(next));
	return ret;
}

void sipc_key_wipe(struct sipc_key *key)
{
	memzero_explicit(key, sizeof(*key));
}

#ifdef SIPC_TEST_HOOKS
/**
 * sipc_keys_test_schedule() - SIPC_IOC_TEST_KEY_SCHEDULE (test builds)
 * @arg: chosen private keys and inputs in; every derived value out
 *
 * Runs the same functions ATTACH runs, on caller-chosen inputs, so the
 * guest tests can compare the kernel with the pinned vectors.
 *
 * Return: 0, -EINVAL or a crypto error.
 */
int sipc_keys_test_schedule(struct sipc_test_kx *arg)
{
	struct crypto_shash *hmac;
	struct sipc_key o2p, p2o;
	struct sipc_kx *kx;
	int ret;

	if (arg->flags & ~(SIPC_TEST_KX_IDENTITY | SIPC_TEST_KX_PSK))
		return -EINVAL;
	kx = kzalloc(sizeof(*kx), GFP_KERNEL);
	if (!kx)
		return -ENOMEM;
	hmac = sipc_hmac_alloc();
	if (IS_ERR(hmac)) {
		ret = PTR_ERR(hmac);
		goto out_kx;
	}

	memset(kx->name32, 0, SIPC_NAME_MAX);
	memcpy(kx->name32, arg->name, strnlen(arg->name, SIPC_NAME_MAX - 1));
	memcpy(kx->owner_priv, arg->owner_priv, SIPC_KEY_LEN);
	memcpy(kx->peer_priv, arg->peer_priv, SIPC_KEY_LEN);
	kx->has_identity = arg->flags & SIPC_TEST_KX_IDENTITY;
	memcpy(kx->identity_pub, arg->identity_pub, SIPC_KEY_LEN);
	memcpy(kx->nonce, arg->nonce, SIPC_KEY_LEN);
	kx->has_psk = arg->flags & SIPC_TEST_KX_PSK;
	memcpy(kx->psk, arg->psk, SIPC_KEY_LEN);

	ret = sipc_kx_public(kx->owner_pub, kx->owner_priv);
	if (!ret)
		ret = sipc_kx_public(kx->peer_pub, kx->peer_priv);
	if (!ret && kx->has_identity)
		ret = sipc_kx_proof(hmac, kx, arg->proof);
	if (!ret)
		ret = sipc_kx_derive(hmac, kx, &o2p, &p2o);
	if (ret)
		goto out_hmac;

	memcpy(arg->owner_pub, kx->owner_pub, SIPC_KEY_LEN);
	memcpy(arg->peer_pub, kx->peer_pub, SIPC_KEY_LEN);
	memcpy(arg->o2p_key, o2p.key, SIPC_KEY_LEN);
	memcpy(arg->o2p_salt, o2p.salt, SIPC_SALT_LEN);
	memcpy(arg->p2o_key, p2o.key, SIPC_KEY_LEN);
	memcpy(arg->p2o_salt, p2o.salt, SIPC_SALT_LEN);
	ret = sipc_key_ratchet(hmac, &o2p);
	if (!ret)
		memcpy(arg->o2p_key_epoch1, o2p.key, SIPC_KEY_LEN);
	sipc_key_wipe(&o2p);
	sipc_key_wipe(&p2o);
out_hmac:
	crypto_free_shash(hmac);
out_kx:
	sipc_kx_wipe(kx);
	kfree(kx);
	return ret;
}
#endif
