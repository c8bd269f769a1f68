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
#include <linux/string.h>
#include <linux/slab.h>
#include <linux/secure_ipc.h>

#include "sipc_main.h"
#include "sipc_ioctl.h"
#include "sipc_channel.h"
#include "sipc_data.h"
#include "sipc_keys.h"

/*
 * Arguments larger than a page are refused outright: the kernel would
 * otherwise scan an arbitrarily long user tail for non-zero bytes.
 */
#define SIPC_MAX_ARG_SIZE SIPC_ARG_SIZE_MAX

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
	u64 features = SIPC_FEAT_MMAP_RINGS | SIPC_FEAT_READ_WRITE |
		       SIPC_FEAT_DOORBELL | SIPC_FEAT_X25519 |
		       SIPC_FEAT_IDENTITY | SIPC_FEAT_PSK | SIPC_FEAT_REKEY |
		       SIPC_FEAT_RECV_WAIT | SIPC_FEAT_SEND_WAIT;

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
	info.nr_channels = sipc_channel_count();
	info.max_channel_bytes = sipc_max_channel_bytes;
	info.rekey_records = sipc_rekey_records;
	info.max_user_channels = sipc_max_user_channels;
	info.max_user_bytes = sipc_max_user_bytes;

	return sipc_copy_struct_out(uarg, &info, sizeof(info), usize);
}

static long sipc_ioctl_create(struct sipc_endpoint *ep, void __user *uarg)
{
	struct sipc_create arg;
	u32 usize;
	int ret;

	ret = sipc_copy_struct_in(&arg, sizeof(arg), SIPC_CREATE_SIZE_VER0,
				  uarg, &usize);
	if (ret)
		return ret;
	ret = sipc_channel_create(ep, &arg);
	/* The PSK never leaves the kernel again, not even back to its owner. */
	memzero_explicit(arg.psk, sizeof(arg.psk));
	if (ret)
		return ret;
	return sipc_copy_struct_out(uarg, &arg, sizeof(arg), usize);
}

static long sipc_ioctl_attach(struct sipc_endpoint *ep, void __user *uarg)
{
	struct sipc_attach arg;
	u32 usize;
	int ret;

	ret = sipc_copy_struct_in(&arg, sizeof(arg), SIPC_ATTACH_SIZE_VER0,
				  uarg, &usize);
	if (ret)
		return ret;
	ret = sipc_channel_attach(ep, &arg);
	memzero_explicit(arg.psk, sizeof(arg.psk));
	if (ret)
		return ret;
	return sipc_copy_struct_out(uarg, &arg, sizeof(arg), usize);
}

static long sipc_ioctl_challenge(struct sipc_endpoint *ep, void __user *uarg)
{
	struct sipc_challenge arg;
	u32 usize;
	int ret;

	ret = sipc_copy_struct_in(&arg, sizeof(arg), SIPC_CHALLENGE_SIZE_VER0,
				  uarg, &usize);
	if (ret)
		return ret;
	ret = sipc_channel_challenge(ep, &arg);
	if (ret)
		return ret;
	return sipc_copy_struct_out(uarg, &arg, sizeof(arg), usize);
}

static long sipc_ioctl_rekey(struct sipc_endpoint *ep, void __user *uarg)
{
	struct sipc_rekey arg;
	u32 usize;
	int ret;

	ret = sipc_copy_struct_in(&arg, sizeof(arg), SIPC_REKEY_SIZE_VER0,
				  uarg, &usize);
	if (ret)
		return ret;
	ret = sipc_rekey(ep, &arg);
	if (ret)
		return ret;
	return sipc_copy_struct_out(uarg, &arg, sizeof(arg), usize);
}

static long sipc_ioctl_doorbell(struct sipc_endpoint *ep, void __user *uarg)
{
	struct sipc_doorbell arg;
	u32 usize;
	int ret;

	ret = sipc_copy_struct_in(&arg, sizeof(arg), SIPC_DOORBELL_SIZE_VER0,
				  uarg, &usize);
	if (ret)
		return ret;
	if (arg.flags || arg.reserved)
		return -EINVAL;
	return sipc_doorbell_set(ep, arg.eventfd);
}

static long sipc_ioctl_peer_cred(struct sipc_endpoint *ep, void __user *uarg)
{
	struct sipc_peer_cred arg;
	u32 usize;
	int ret;

	ret = sipc_copy_struct_in(&arg, sizeof(arg), SIPC_PEER_CRED_SIZE_VER0,
				  uarg, &usize);
	if (ret)
		return ret;
	if (arg.flags || arg.reserved[0] || arg.reserved[1])
		return -EINVAL;
	ret = sipc_endpoint_peer_cred(ep, &arg);
	if (ret)
		return ret;
	return sipc_copy_struct_out(uarg, &arg, sizeof(arg), usize);
}

static long sipc_ioctl_stats(struct sipc_endpoint *ep, void __user *uarg)
{
	struct sipc_stats arg;
	u32 usize;
	int ret;

	ret = sipc_copy_struct_in(&arg, sizeof(arg), SIPC_STATS_SIZE_VER0,
				  uarg, &usize);
	if (ret)
		return ret;
	if (arg.flags)
		return -EINVAL;
	memset(&arg, 0, sizeof(arg));
	arg.size = usize;
	ret = sipc_endpoint_stats(ep, &arg);
	if (ret)
		return ret;
	return sipc_copy_struct_out(uarg, &arg, sizeof(arg), usize);
}

#ifdef SIPC_TEST_HOOKS
static long sipc_ioctl_test_keys(struct sipc_endpoint *ep, void __user *uarg)
{
	struct sipc_test_keys arg;
	u32 usize;
	int ret;

	ret = sipc_copy_struct_in(&arg, sizeof(arg), SIPC_TEST_KEYS_SIZE_VER0,
				  uarg, &usize);
	if (ret)
		return ret;
	ret = sipc_test_keys(ep, &arg);
	if (!ret)
		ret = sipc_copy_struct_out(uarg, &arg, sizeof(arg), usize);
	memzero_explicit(&arg, sizeof(arg));
	return ret;
}

static long sipc_ioctl_test_kx(void __user *uarg)
{
	struct sipc_test_kx *arg;
	u32 usize;
	int ret;

	arg = kzalloc(sizeof(*arg), GFP_KERNEL);
	if (!arg)
		return -ENOMEM;
	ret = sipc_copy_struct_in(arg, sizeof(*arg), SIPC_TEST_KX_SIZE_VER0,
				  uarg, &usize);
	if (!ret)
		ret = sipc_keys_test_schedule(arg);
	if (!ret)
		ret = sipc_copy_struct_out(uarg, arg, sizeof(*arg), usize);
	kfree_sensitive(arg);
	return ret;
}

static long sipc_ioctl_test_peek(struct sipc_endpoint *ep, void __user *uarg)
{
	struct sipc_test_sealed arg;
	u32 usize;
	int ret;

	ret = sipc_copy_struct_in(&arg, sizeof(arg), SIPC_TEST_SEALED_SIZE_VER0,
				  uarg, &usize);
	if (ret)
		return ret;
	ret = sipc_test_peek_sealed(ep, &arg);
	if (ret)
		return ret;
	return sipc_copy_struct_out(uarg, &arg, sizeof(arg), usize);
}

static long sipc_ioctl_test_set_seal(struct sipc_endpoint *ep,
				     void __user *uarg)
{
	struct sipc_test_seal arg;
	u32 usize;
	int ret;

	ret = sipc_copy_struct_in(&arg, sizeof(arg), SIPC_TEST_SEAL_SIZE_VER0,
				  uarg, &usize);
	if (!ret)
		ret = sipc_test_set_seal(ep, &arg);
	memzero_explicit(&arg, sizeof(arg));
	return ret;
}

static long sipc_ioctl_test_dump_store(struct sipc_endpoint *ep,
				       void __user *uarg)
{
	struct sipc_test_store arg;
	u32 usize;
	int ret;

	ret = sipc_copy_struct_in(&arg, sizeof(arg), SIPC_TEST_STORE_SIZE_VER0,
				  uarg, &usize);
	if (ret)
		return ret;
	ret = sipc_test_dump_store(ep, &arg);
	if (ret)
		return ret;
	return sipc_copy_struct_out(uarg, &arg, sizeof(arg), usize);
}
#endif

long sipc_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct sipc_endpoint *ep = file->private_data;
	void __user *uarg = (void __user *)arg;
	fmode_t need = 0;

	/*
	 * An endpoint both sends and receives, so only a file opened for
	 * reading and writing becomes one; sending needs FMODE_WRITE and
	 * receiving FMODE_READ, as write(2) and read(2) do.
	 */
	switch (cmd) {
	case SIPC_IOC_CREATE:
	case SIPC_IOC_ATTACH:
	case SIPC_IOC_CHALLENGE:
		need = FMODE_READ | FMODE_WRITE;
		break;
	case SIPC_IOC_SEND:
	case SIPC_IOC_SEND_WAIT:
	case SIPC_IOC_REKEY:
		need = FMODE_WRITE;
		break;
	case SIPC_IOC_RECV:
	case SIPC_IOC_RECV_WAIT:
		need = FMODE_READ;
		break;
	}
	if ((file->f_mode & need) != need)
		return -EBADF;

	switch (cmd) {
	case SIPC_IOC_INFO:
		return sipc_ioctl_info(uarg);
	case SIPC_IOC_CREATE:
		return sipc_ioctl_create(ep, uarg);
	case SIPC_IOC_ATTACH:
		return sipc_ioctl_attach(ep, uarg);
	case SIPC_IOC_SEND:
		return sipc_send(ep);
	case SIPC_IOC_RECV:
		return sipc_recv(ep);
	case SIPC_IOC_RECV_WAIT:
		return sipc_recv_wait(ep, arg);
	case SIPC_IOC_SEND_WAIT:
		return sipc_send_wait(ep, arg);
	case SIPC_IOC_SET_DOORBELL:
		return sipc_ioctl_doorbell(ep, uarg);
	case SIPC_IOC_PEER_CRED:
		return sipc_ioctl_peer_cred(ep, uarg);
	case SIPC_IOC_STATS:
		return sipc_ioctl_stats(ep, uarg);
	case SIPC_IOC_CHALLENGE:
		return sipc_ioctl_challenge(ep, uarg);
	case SIPC_IOC_REKEY:
		return sipc_ioctl_rekey(ep, uarg);
#ifdef SIPC_TEST_HOOKS
	case SIPC_IOC_TEST_KEYS:
		return sipc_ioctl_test_keys(ep, uarg);
	case SIPC_IOC_TEST_PEEK_SEALED:
		return sipc_ioctl_test_peek(ep, uarg);
	case SIPC_IOC_TEST_KEY_SCHEDULE:
		return sipc_ioctl_test_kx(uarg);
	case SIPC_IOC_TEST_DUMP_STORE:
		return sipc_ioctl_test_dump_store(ep, uarg);
	case SIPC_IOC_TEST_SET_SEAL:
		return sipc_ioctl_test_set_seal(ep, uarg);
#endif
	default:
		return -ENOTTY;
	}
}
