/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Every difference between the kernels secure_ipc builds against lives in
 * this file (tested: Debian 6.1, 6.12 and 7.2). No other file may test
 * LINUX_VERSION_CODE.
 *
 * Differences that need no code here, kept as a list so nobody adds them:
 * - no_llseek is gone in 6.12 (NULL in 6.1): sipc leaves .llseek unset and
 *   calls stream_open(), which works on both.
 * - strlcpy is gone in 6.8: sipc uses strscpy() only.
 */
#ifndef _SIPC_COMPAT_H
#define _SIPC_COMPAT_H

#include <linux/version.h>
#include <linux/device.h>
#include <linux/eventfd.h>
#include <linux/mm.h>
#include <linux/ns_common.h>
#include <linux/proc_ns.h>
#include <crypto/sha2.h>

/* 6.8: eventfd_signal() lost its count argument. */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 8, 0)
static inline void sipc_eventfd_signal(struct eventfd_ctx *ctx)
{
	eventfd_signal(ctx, 1);
}
#else
static inline void sipc_eventfd_signal(struct eventfd_ctx *ctx)
{
	eventfd_signal(ctx);
}
#endif

/* 6.3: vma->vm_flags became read-only; writers use vm_flags_{set,clear}(). */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 3, 0)
static inline void sipc_vm_flags_set(struct vm_area_struct *vma,
				     unsigned long flags)
{
	vma->vm_flags |= flags;
}

static inline void sipc_vm_flags_clear(struct vm_area_struct *vma,
				       unsigned long flags)
{
	vma->vm_flags &= ~flags;
}
#else
static inline void sipc_vm_flags_set(struct vm_area_struct *vma,
				     unsigned long flags)
{
	vm_flags_set(vma, flags);
}

static inline void sipc_vm_flags_clear(struct vm_area_struct *vma,
				       unsigned long flags)
{
	vm_flags_clear(vma, flags);
}
#endif

/* 6.4: class_create() lost its owner argument. */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 4, 0)
#define sipc_class_create(name) class_create(THIS_MODULE, name)
#else
#define sipc_class_create(name) class_create(name)
#endif

/* 6.2: device_type.devnode() takes a const struct device. */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 2, 0)
#define sipc_devnode_device struct device
#else
#define sipc_devnode_device const struct device
#endif

/* 6.18: a namespace's CLONE_NEW* type moved from its ops to ns_common. */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 18, 0)
#define sipc_ns_type(ns)	((ns)->ops->type)
#else
#define sipc_ns_type(ns)	((ns)->ns_type)
#endif

/*
 * 6.16: the SHA-256 library hashes through struct sha256_ctx (was
 * struct sha256_state); sha256_init/update/final kept their names.
 */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 16, 0)
#define sipc_sha256_ctx struct sha256_state
#else
#define sipc_sha256_ctx struct sha256_ctx
#endif

#endif /* _SIPC_COMPAT_H */
