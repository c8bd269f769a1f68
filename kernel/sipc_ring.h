/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Page-backed memory regions: the mmap-able TX/RX rings and the kernel-only
 * sealed stores.
 */
#ifndef _SIPC_RING_H
#define _SIPC_RING_H

#include <linux/mm_types.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/secure_ipc.h>

/**
 * struct sipc_pages - order-0 pages, charged to the allocating task's memcg,
 * with one contiguous kernel mapping
 * @pages: the pages; each holds one reference owned by this struct
 * @nr: number of pages
 * @vaddr: vmap() of @pages
 *
 * User mappings take their own page references (vm_insert_pages()), so a
 * mapping outlives sipc_pages_free() safely.
 */
struct sipc_pages {
	struct page **pages;
	unsigned int nr;
	void *vaddr;
};

int sipc_pages_alloc(struct sipc_pages *p, size_t bytes);
void sipc_pages_free(struct sipc_pages *p);

/**
 * struct sipc_ring - one TX or RX ring of an endpoint
 * @mem: backing pages, mapped to user space on mmap
 * @hdr: the shared header (first page)
 * @descs: descriptor array (struct sipc_tx_desc or struct sipc_rx_desc)
 * @slots: slot array
 * @entries: number of descriptors and slots (power of two)
 * @mask: @entries - 1
 * @slot_size: bytes per slot
 * @bytes: length of the mapping
 * @kidx: the index the kernel owns (TX: cons, RX: prod). The kernel keeps
 *	its own copy and only ever publishes it: it never reads its own index
 *	back from the shared page, which user space could have overwritten.
 *	Written under the owning endpoint's tx_lock (TX) or rx_lock (RX).
 * @status_lock: serializes read-modify-write updates of hdr->status
 */
struct sipc_ring {
	struct sipc_pages mem;
	struct sipc_ring_hdr *hdr;
	void *descs;
	u8 *slots;
	u32 entries;
	u32 mask;
	u32 slot_size;
	size_t bytes;
	u32 kidx;
	spinlock_t status_lock;		/* hdr->status updates */
};

size_t sipc_ring_bytes(u32 entries, u32 slot_size, u16 kind);
int sipc_ring_init(struct sipc_ring *ring, u16 kind, u32 entries,
		   u32 slot_size, u32 store_entries);
void sipc_ring_destroy(struct sipc_ring *ring);
int sipc_ring_mmap(struct sipc_ring *ring, struct vm_area_struct *vma);
void sipc_ring_set_status(struct sipc_ring *ring, u32 set, u32 clear);

#endif /* _SIPC_RING_H */
