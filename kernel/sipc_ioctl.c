// SPDX-License-Identifier: GPL-2.0-only
/*
 * ioctl dispatch. Every argument struct starts with its __u32 size; the
 * rules (uapi header, "ioctls"): size below the first published version
 * -> EINVAL, unknown non-zero tail -> E2BIG, output truncated to
 * min(size, sizeof(kernel struct)).
 */

#include <linux/fs.h>
#include <linux/uaccess.h>
#include <linux/minmax.h>
#include <linux/secure_ipc.h>

#include "sipc_main.h"
#include "sipc_ioctl.h"

/*
 * Arguments larger than a page are refused outright: the kernel would
 * otherwise scan an arbitrarily long user tail for non-zero bytes.
 */
#define SIPC_MAX_ARG_SIZE PAGE_SIZE

/**
 * sipc_copy_struct_in() - copy a size-first ioctl argument from user space
 * @dst: kernel struct, @ksize bytes
 * @ksize: sizeof the kernel's struct
 * @min_size: first published size (SIPC_*_SIZE_VER0)
 * @uarg: user pointer
 * @usize: out: the size user space declared
 *
 * Return: 0, -EFAULT, -EINVAL (too small) or -E2BIG (non-zero unknown tail,
 * or larger than a page).
 */
int sipc_copy_struct_in(void *dst, size_t ksize, size_t min_size,
			const void __user *uarg, u32 *usize)
{
	u32 size;
	int ret;

	if (get_user(size, (const u32 __user *)uarg))
		return -EFAULT;
	if (size < min_size)
		return -EINVAL;
	if (size > SIPC_MAX_ARG_SIZE)
		return -E2BIG;
	ret = copy_struct_from_user(dst, ksize, uarg, size);
	if (ret)
		return ret;
	*usize = size;
	return 0;
}

/**
 * sipc_copy_struct_out() - copy an ioctl result back, truncated
 * @uarg: user pointer
 * @src: kernel struct
 * @ksize: its size
 * @usize: the size user space declared
 *
 * Return: 0 or -EFAULT.
 */
int sipc_copy_struct_out(void __user *uarg, const void *src, size_t ksize,
			 u32 usize)
{
	if (copy_to_user(uarg, src, min_t(size_t, ksize, usize)))
		return -EFAULT;
	return 0;
}

static u64 sipc_features(void)
{
	u64 features = 0;

	if (sipc_test_hooks())
		features |= SIPC_FEAT_TEST_HOOKS;
	return features;
}

static long sipc_ioctl_info(void __user *uarg)
{
	struct sipc_info info;
	u32 usize;
	int ret;

	ret = sipc_copy_struct_in(&info, sizeof(info), SIPC_INFO_SIZE_VER0,
				  uarg, &usize);
	if (ret)
		return ret;

	memset(&info, 0, sizeof(info));
	info.size = usize;
	info.abi_version = SIPC_ABI_VERSION;
	info.features = sipc_features();
	info.min_slot_size = SIPC_MIN_SLOT_SIZE;
	info.max_slot_size = sipc_max_slot_size;
	info.min_entries = SIPC_MIN_ENTRIES;
	info.max_entries = sipc_max_entries;
	info.max_channels = sipc_max_channels;
	info.nr_channels = 0;
	info.max_channel_bytes = sipc_max_channel_bytes;
	info.rekey_records = sipc_rekey_records;

	return sipc_copy_struct_out(uarg, &info, sizeof(info), usize);
}

long sipc_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case SIPC_IOC_INFO:
		return sipc_ioctl_info(uarg);
	default:
		return -ENOTTY;
	}
}
