/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ioctl dispatch and the size-first struct copy rules of the uapi.
 */
#ifndef _SIPC_IOCTL_H
#define _SIPC_IOCTL_H

#include <linux/fs.h>

long sipc_ioctl(struct file *file, unsigned int cmd, unsigned long arg);

int sipc_copy_struct_in(void *dst, size_t ksize, size_t min_size,
			const void __user *uarg, u32 *usize);
int sipc_copy_struct_out(void __user *uarg, const void *src, size_t ksize,
			 u32 usize);

#endif /* _SIPC_IOCTL_H */
