// SPDX-License-Identifier: GPL-2.0-only
/*
 * AES-256-GCM through the crypto API ("gcm(aes)"; on x86 with AES-NI the
 * crypto_simd wrapper around the AES-NI implementation).
 *
 * A record in a sealed store is laid out as
 *	struct sipc_record_hdr (40 bytes, little-endian: the AAD)
 *	ciphertext (hdr.len bytes)
 *	tag (16 bytes)
 * and is sealed and opened in place: plaintext from a TX slot is copied
 * into kernel-only memory before it is encrypted, and opened plaintext is
 * copied to user space only after the tag has been verified.
 */

#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/string.h>
#include <crypto/aead.h>

#include "sipc_crypto.h"

#define SIPC_AEAD_NAME "gcm(aes)"

/*
 * Check once at load that gcm(aes) exists and report which implementation
 * the crypto API picked (generic-gcm-aesni is the fast one; the generic
 * gcm_base(ctr(aes-generic),ghash-generic) means the AES-NI modules were
 * not loaded first).
 */
int sipc_crypto_init(void)
{
	struct crypto_aead *tfm;

	tfm = crypto_alloc_aead(SIPC_AEAD_NAME, 0, 0);
	if (IS_ERR(tfm)) {
		pr_err("%s is not available (%ld): load aesni-intel or gcm first\n",
		       SIPC_AEAD_NAME, PTR_ERR(tfm));
		return PTR_ERR(tfm);
	}
	pr_info("%s implementation: %s\n", SIPC_AEAD_NAME,
		crypto_tfm_alg_driver_name(crypto_aead_tfm(tfm)));
	crypto_free_aead(tfm);
	return 0;
}

int sipc_aead_alloc(struct sipc_aead *a)
{
	int ret;

	a->tfm = crypto_alloc_aead(SIPC_AEAD_NAME, 0, 0);
	if (IS_ERR(a->tfm)) {
		ret = PTR_ERR(a->tfm);
		a->tfm = NULL;
		return ret;
	}
	ret = crypto_aead_setauthsize(a->tfm, SIPC_TAG_LEN);
	if (ret)
		goto err_tfm;

	a->req = aead_request_alloc(a->tfm, GFP_KERNEL_ACCOUNT);
	if (!a->req) {
		ret = -ENOMEM;
		goto err_tfm;
	}
	crypto_init_wait(&a->wait);
	aead_request_set_callback(a->req, CRYPTO_TFM_REQ_MAY_SLEEP |
				  CRYPTO_TFM_REQ_MAY_BACKLOG,
				  crypto_req_done, &a->wait);
	return 0;

err_tfm:
	crypto_free_aead(a->tfm);
	a->tfm = NULL;
	return ret;
}

/* The crypto API wipes the key schedule when the transform is freed. */
void sipc_aead_free(struct sipc_aead *a)
{
	if (!a->tfm)
		return;
	aead_request_free(a->req);
	crypto_free_aead(a->tfm);
	a->req = NULL;
	a->tfm = NULL;
}

int sipc_aead_setkey(struct sipc_aead *a, const u8 *key)
{
	return crypto_aead_setkey(a->tfm, key, SIPC_KEY_BYTES);
}

size_t sipc_record_size(u32 slot_size)
{
	return ALIGN(sizeof(struct sipc_record_hdr) + slot_size + SIPC_TAG_LEN,
		     64);
}

/* Describe @len bytes at @off of @mem as a scatterlist. */
static void sipc_record_sg(struct sipc_aead *a, struct sipc_pages *mem,
			   size_t off, size_t len)
{
	unsigned int n = 0;

	/* Initialise only the entries this record spans (one for most). */
	sg_init_table(a->sg,
		      DIV_ROUND_UP(offset_in_page(off) + len, PAGE_SIZE));
	while (len) {
		size_t in_page = offset_in_page(off);
		size_t chunk = min_t(size_t, len, PAGE_SIZE - in_page);

		sg_set_page(&a->sg[n++], mem->pages[off >> PAGE_SHIFT], chunk,
			    in_page);
		off += chunk;
		len -= chunk;
	}
}

static void sipc_nonce(u8 *iv, const u8 *salt, u64 seq)
{
	__le64 le_seq = cpu_to_le64(seq);

	memcpy(iv, salt, SIPC_SALT_LEN);
	memcpy(iv + SIPC_SALT_LEN, &le_seq, sizeof(le_seq));
}

/**
 * sipc_record_seal() - encrypt a record in place and append its tag
 * @a: the sealing transform (caller holds the sender's tx_lock)
 * @store: the sealed store's pages
 * @off: offset of the record (its header, already filled in)
 * @salt: the direction's nonce salt
 * @seq: the record's sequence number
 * @len: plaintext length, already copied after the header
 *
 * Return: 0 or a crypto API error.
 */
int sipc_record_seal(struct sipc_aead *a, struct sipc_pages *store,
		     size_t off, const u8 *salt, u64 seq, u32 len)
{
	u8 iv[SIPC_NONCE_LEN];
	size_t ad = sizeof(struct sipc_record_hdr);

	sipc_nonce(iv, salt, seq);
	sipc_record_sg(a, store, off, ad + len + SIPC_TAG_LEN);
	aead_request_set_ad(a->req, ad);
	aead_request_set_crypt(a->req, a->sg, a->sg, len, iv);
	return crypto_wait_req(crypto_aead_encrypt(a->req), &a->wait);
}

/**
 * sipc_record_open() - verify and decrypt a record in place
 * @a: the opening transform (caller holds the receiver's rx_lock)
 * @store: the sealed store's pages
 * @off: offset of the record
 * @salt: the direction's nonce salt
 * @seq: the sequence number the receiver expects next; a dropped,
 *	replayed or reordered record therefore fails
 * @len: ciphertext length from the record header
 *
 * Return: 0, -EBADMSG when authentication fails, or a crypto API error.
 */
int sipc_record_open(struct sipc_aead *a, struct sipc_pages *store,
		     size_t off, const u8 *salt, u64 seq, u32 len)
{
	u8 iv[SIPC_NONCE_LEN];
	size_t ad = sizeof(struct sipc_record_hdr);

	sipc_nonce(iv, salt, seq);
	sipc_record_sg(a, store, off, ad + len + SIPC_TAG_LEN);
	aead_request_set_ad(a->req, ad);
	aead_request_set_crypt(a->req, a->sg, a->sg, len + SIPC_TAG_LEN, iv);
	return crypto_wait_req(crypto_aead_decrypt(a->req), &a->wait);
}
