// SPDX-License-Identifier: GPL-2.0-only
/*
 * Ring and sealed-store memory.
 *
 * Every region is an array of order-0 pages allocated with
 * GFP_KERNEL_ACCOUNT (charged to the memory cgroup of the task that
 * created the channel: ATTACH allocates inside set_active_memcg() of the
 * creator's cgroup) plus one vmap() for the kernel's own
 * accesses. Rings are mapped into user space with vm_insert_pages(): the
 * user mapping holds its own page references, so unmapping and closing can
 * happen in any order. Sealed stores use the same allocator but are never
 * mapped.
 */

#include <linux/mm.h>
#include <linux/vmalloc.h>
#include <linux/slab.h>
#include <linux/gfp.h>

#include "compat.h"
#include "sipc_ring.h"

int sipc_pages_alloc(struct sipc_pages *p, size_t bytes)
{
	unsigned int i;

	p->nr = PAGE_ALIGN(bytes) >> PAGE_SHIFT;
	p->vaddr = NULL;
	p->pages = kvcalloc(p->nr, sizeof(*p->pages), GFP_KERNEL_ACCOUNT);
	if (!p->pages)
		return -ENOMEM;

	for (i = 0; i < p->nr; i++) {
		p->pages[i] = alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO);
		if (!p->pages[i])
			goto err_pages;
	}

	p->vaddr = vmap(p->pages, p->nr, VM_MAP, PAGE_KERNEL);
	if (!p->vaddr)
		goto err_pages;
	return 0;

err_pages:
	while (i--)
		__free_page(p->pages[i]);
	kvfree(p->pages);
	p->pages = NULL;
	return -ENOMEM;
}

void sipc_pages_free(struct sipc_pages *p)
{
	unsigned int i;

	if (!p->pages)
		return;
	/*
	 * Rings held plaintext, stores ciphertext and, while a group waits
	 * for room in RX, plaintext too: nothing goes back to the allocator
	 * unwiped (a user mapping that outlives the file sees zeros).
	 */
	memzero_explicit(p->vaddr, (size_t)p->nr << PAGE_SHIFT);
	vunmap(p->vaddr);
	/* put_page(): a user mapping may still hold its own reference. */
	for (i = 0; i < p->nr; i++)
		put_page(p->pages[i]);
	kvfree(p->pages);
	p->pages = NULL;
	p->vaddr = NULL;
}

static u32 sipc_desc_size(u16 kind)
{
	return kind == SIPC_RING_TX ? sizeof(struct sipc_tx_desc) :
				      sizeof(struct sipc_rx_desc);
}

static size_t sipc_slots_offset(u32 entries, u16 kind)
{
	return SIPC_RING_HDR_SIZE +
	       PAGE_ALIGN((size_t)entries * sipc_desc_size(kind));
}

/*
 * The length of the mapping, whole pages. Geometry is bounded by the
 * caller (at most 32768 x 64 KiB).
 */
size_t sipc_ring_bytes(u32 entries, u32 slot_size, u16 kind)
{
	return PAGE_ALIGN(sipc_slots_offset(entries, kind) +
			  (size_t)entries * slot_size);
}

int sipc_ring_init(struct sipc_ring *ring, u16 kind, u32 entries,
		   u32 slot_size, u32 store_entries)
{
	struct sipc_ring_hdr *hdr;
	int ret;

	ring->bytes = sipc_ring_bytes(entries, slot_size, kind);
	ret = sipc_pages_alloc(&ring->mem, ring->bytes);
	if (ret)
		return ret;

	ring->hdr = ring->mem.vaddr;
	ring->descs = ring->mem.vaddr + SIPC_RING_HDR_SIZE;
	ring->slots = ring->mem.vaddr + sipc_slots_offset(entries, kind);
	ring->entries = entries;
	ring->mask = entries - 1;
	ring->slot_size = slot_size;
	ring->kidx = 0;
	spin_lock_init(&ring->status_lock);

	/* Written before the ring can be mapped; never again (line 0). */
	hdr = ring->hdr;
	hdr->magic = SIPC_RING_MAGIC;
	hdr->abi_version = SIPC_ABI_VERSION;
	hdr->kind = kind;
	hdr->entries = entries;
	hdr->slot_size = slot_size;
	hdr->desc_size = sipc_desc_size(kind);
	hdr->desc_offset = SIPC_RING_HDR_SIZE;
	hdr->slots_offset = sipc_slots_offset(entries, kind);
	hdr->ring_bytes = ring->bytes;
	hdr->store_entries = store_entries;
	return 0;
}

void sipc_ring_destroy(struct sipc_ring *ring)
{
	sipc_pages_free(&ring->mem);
	ring->hdr = NULL;
}

/*
 * Update the kernel status word [O9]. The kernel never trusts the value in
 * the page for anything but this hint; user space load-acquires it.
 */
void sipc_ring_set_status(struct sipc_ring *ring, u32 set, u32 clear)
{
	u32 status;

	spin_lock(&ring->status_lock);
	status = (READ_ONCE(ring->hdr->status) & ~clear) | set;
	/* Pairs with user space's load-acquire of status [O9]. */
	smp_store_release(&ring->hdr->status, status);
	spin_unlock(&ring->status_lock);
}

/**
 * sipc_ring_mmap() - map a whole ring into a shared, non-executable VMA
 * @ring: the ring
 * @vma: the caller's VMA; must cover exactly @ring->bytes
 *
 * Return: 0, or -EINVAL for a wrong length, a private or executable
 * mapping, or whatever vm_insert_pages() reports.
 */
int sipc_ring_mmap(struct sipc_ring *ring, struct vm_area_struct *vma)
{
	unsigned long num = ring->mem.nr;
	int ret;

	if (vma->vm_end - vma->vm_start != ring->bytes)
		return -EINVAL;
	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	if (vma->vm_flags & VM_EXEC)
		return -EINVAL;

	/* Not inherited, not growable, not in core dumps, never executable. */
	sipc_vm_flags_set(vma, VM_DONTCOPY | VM_DONTEXPAND | VM_DONTDUMP);
	sipc_vm_flags_clear(vma, VM_MAYEXEC);

	ret = vm_insert_pages(vma, vma->vm_start, ring->mem.pages, &num);
	if (ret)
		return ret;
	return num ? -EFAULT : 0;
}
