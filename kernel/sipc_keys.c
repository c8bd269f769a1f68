// SPDX-License-Identifier: GPL-2.0-only
/*
 * Session keys.
 *
 * Current schedule: at every attach the kernel draws a fresh random 256-bit
 * key and 4-byte nonce salt per direction from the CRNG. Both endpoints are
 * in this kernel, so no exchange is needed; the X25519 + HKDF schedule of
 * docs/key-schedule.md replaces sipc_keys_derive() without touching its
 * callers. Keys are wiped with memzero_explicit() when a session ends.
 */

#include <linux/random.h>
#include <linux/string.h>

#include "sipc_keys.h"

/**
 * sipc_keys_derive() - produce the traffic keys of a new session
 * @o2p: out: owner-to-peer key
 * @p2o: out: peer-to-owner key
 *
 * Return: 0.
 */
int sipc_keys_derive(struct sipc_key *o2p, struct sipc_key *p2o)
{
	get_random_bytes(o2p->key, sizeof(o2p->key));
	get_random_bytes(o2p->salt, sizeof(o2p->salt));
	o2p->epoch = 0;
	get_random_bytes(p2o->key, sizeof(p2o->key));
	get_random_bytes(p2o->salt, sizeof(p2o->salt));
	p2o->epoch = 0;
	return 0;
}

void sipc_key_wipe(struct sipc_key *key)
{
	memzero_explicit(key, sizeof(*key));
}
