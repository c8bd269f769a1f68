// SPDX-License-Identifier: GPL-2.0-only
/*
 * AES-256-GCM through the crypto API ("gcm(aes)"; on x86 with AES-NI the
 * crypto_simd wrapper around the AES-NI implementation).
 *
 * A record in a sealed store is laid out as
 *	struct sipc_record_hdr (40 bytes, little-endian)
 *	ciphertext (hdr.len bytes)
 *	tag (16 bytes; only the last record of a group has one)
 * Records are sealed and opened in place, in groups of 1 to SIPC_GROUP_MAX
 * consecutive records with one AES-GCM operation: AAD = the group's
 * headers in order, plaintext = its payloads in order, the tag after the
 * last payload. Plaintext from a TX slot is copied into kernel-only memory
 * before it is encrypted, and opened plaintext is copied to user space only
 * after the tag has been verified.
 */

#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/slab.h>
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

	a->sg = kmalloc_array(SIPC_SG_MAX, sizeof(*a->sg), GFP_KERNEL_ACCOUNT);
	if (!a->sg) {
		ret = -ENOMEM;
		goto err_tfm;
	}
	a->req = aead_request_alloc(a->tfm, GFP_KERNEL_ACCOUNT);
	if (!a->req) {
		ret = -ENOMEM;
		goto err_sg;
	}
	crypto_init_wait(&a->wait);
	aead_request_set_callback(a->req, CRYPTO_TFM_REQ_MAY_SLEEP |
				  CRYPTO_TFM_REQ_MAY_BACKLOG,
				  crypto_req_done, &a->wait);
	return 0;

err_sg:
	kfree(a->sg);
	a->sg = NULL;
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
	kfree(a->sg);
	a->sg = NULL;
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

/* Page pieces of @len bytes at @off. */
static unsigned int sipc_pieces(size_t off, size_t len)
{
	return len ? DIV_ROUND_UP(offset_in_page(off) + len, PAGE_SIZE) : 0;
}

/* Offset in the store of record @i of @g. */
size_t sipc_group_rec_off(const struct sipc_group *g, u32 i)
{
	return (size_t)((g->first + i) & g->mask) * g->rec_size;
}

/*
 * Scatterlist entries the record at @off with a @len-byte payload adds to
 * a group: its header (which never crosses a page: records start on 64-byte
 * boundaries) and the page pieces of its payload.
 */
unsigned int sipc_record_sg_entries(size_t off, u32 len)
{
	return 1 + sipc_pieces(off + sizeof(struct sipc_record_hdr), len);
}

/*
 * Append @len bytes at @off of @mem to @sg after its first @n entries;
 * returns the entries used. A piece that continues the previous entry in
 * the same page extends it, so a record sealed alone (header, payload and
 * tag back to back) is one entry per page, as few as the cipher can walk.
 */
static unsigned int sipc_sg_add(struct scatterlist *sg, unsigned int n,
				struct sipc_pages *mem, size_t off, size_t len)
{
	while (len) {
		struct page *page = mem->pages[off >> PAGE_SHIFT];
		size_t in_page = offset_in_page(off);
		size_t chunk = min_t(size_t, len, PAGE_SIZE - in_page);
		struct scatterlist *prev = n ? &sg[n - 1] : NULL;

		if (prev && sg_page(prev) == page &&
		    prev->offset + prev->length == in_page)
			prev->length += chunk;
		else
			sg_set_page(&sg[n++], page, chunk, in_page);
		off += chunk;
		len -= chunk;
	}
	return n;
}

/*
 * Describe @g as AAD (the headers), text (the payloads) and tag. Returns
 * the text length, or -EMSGSIZE when @g needs more than SIPC_SG_MAX
 * entries (never for a group the sealer built).
 */
static long sipc_group_sg(struct sipc_aead *a, const struct sipc_group *g)
{
	const size_t hdr = sizeof(struct sipc_record_hdr);
	size_t tag_off = sipc_group_rec_off(g, g->count - 1) + hdr +
			 g->len[g->count - 1];
	unsigned int n = g->sg_used + sipc_pieces(tag_off, SIPC_TAG_LEN);
	unsigned int i, k = 0;
	long text = 0;

	if (n > SIPC_SG_MAX)
		return -EMSGSIZE;
	sg_init_table(a->sg, n);
	for (i = 0; i < g->count; i++)
		k = sipc_sg_add(a->sg, k, g->store, sipc_group_rec_off(g, i),
				hdr);
	for (i = 0; i < g->count; i++) {
		k = sipc_sg_add(a->sg, k, g->store,
				sipc_group_rec_off(g, i) + hdr, g->len[i]);
		text += g->len[i];
	}
	k = sipc_sg_add(a->sg, k, g->store, tag_off, SIPC_TAG_LEN);
	/* Merged pieces leave entries unused: end the list at the last one. */
	sg_mark_end(&a->sg[k - 1]);
	return text;
}

static void sipc_nonce(u8 *iv, const u8 *salt, u64 seq)
{
	__le64 le_seq = cpu_to_le64(seq);

	memcpy(iv, salt, SIPC_SALT_LEN);
	memcpy(iv + SIPC_SALT_LEN, &le_seq, sizeof(le_seq));
}

/**
 * sipc_group_seal() - encrypt a group of records in place and append its tag
 * @a: the sealing transform (caller holds the sender's tx_lock)
 * @g: the group; headers filled in, plaintexts copied after them
 * @salt: the direction's nonce salt
 * @seq: sequence number of the group's first record (the nonce)
 *
 * Return: 0 or a crypto API error.
 */
int sipc_group_seal(struct sipc_aead *a, const struct sipc_group *g,
		    const u8 *salt, u64 seq)
{
	u8 iv[SIPC_NONCE_LEN];
	long text = sipc_group_sg(a, g);

	if (text < 0)
		return text;
	sipc_nonce(iv, salt, seq);
	aead_request_set_ad(a->req, g->count * sizeof(struct sipc_record_hdr));
	aead_request_set_crypt(a->req, a->sg, a->sg, text, iv);
	return crypto_wait_req(crypto_aead_encrypt(a->req), &a->wait);
}

/**
 * sipc_group_open() - verify and decrypt a group of records in place
 * @a: the opening transform (caller holds the receiver's rx_lock)
 * @g: the group, lengths taken from its (checked) headers
 * @salt: the direction's nonce salt
 * @seq: the sequence number the receiver expects next; a dropped,
 *	replayed or reordered record therefore fails
 *
 * Return: 0, -EBADMSG when authentication fails, or another error.
 */
int sipc_group_open(struct sipc_aead *a, const struct sipc_group *g,
		    const u8 *salt, u64 seq)
{
	u8 iv[SIPC_NONCE_LEN];
	long text = sipc_group_sg(a, g);

	if (text < 0)
		return -EBADMSG;
	sipc_nonce(iv, salt, seq);
	aead_request_set_ad(a->req, g->count * sizeof(struct sipc_record_hdr));
	aead_request_set_crypt(a->req, a->sg, a->sg, text + SIPC_TAG_LEN, iv);
	return crypto_wait_req(crypto_aead_decrypt(a->req), &a->wait);
}
