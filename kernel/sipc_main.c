// SPDX-License-Identifier: GPL-2.0-only
/*
 * secure_ipc: module entry points, parameters and the /dev/secure_ipc node.
 */

#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/fs.h>
#include <linux/cdev.h>
#include <linux/device.h>
#include <linux/slab.h>
#include <linux/log2.h>
#include <linux/uidgid.h>
#include <linux/secure_ipc.h>

#include "compat.h"
#include "sipc_main.h"
#include "sipc_ioctl.h"
#include "sipc_channel.h"
#include "sipc_crypto.h"
#include "sipc_data.h"

#define SIPC_DEVICE_NAME "secure_ipc"

/*
 * The node's permissions are applied by devtmpfs when the device is added
 * (through sipc_devnode()). A udev rule may still override them afterwards;
 * kernel/udev/ ships one that sets 0660 and group secure-ipc.
 */
static ushort mode = 0600;
module_param(mode, ushort, 0444);
MODULE_PARM_DESC(mode, "permission bits of /dev/secure_ipc (default 0600)");

static uint group;
module_param(group, uint, 0444);
MODULE_PARM_DESC(group,
		 "group id (initial user namespace) owning /dev/secure_ipc (default 0)");

unsigned int sipc_max_slot_size = SIPC_MAX_SLOT_SIZE;
module_param_named(max_slot_size, sipc_max_slot_size, uint, 0444);
MODULE_PARM_DESC(max_slot_size,
		 "largest slot size CREATE accepts, power of two 64..65536 (default 65536)");

unsigned int sipc_max_entries = 4096;
module_param_named(max_entries, sipc_max_entries, uint, 0444);
MODULE_PARM_DESC(max_entries,
		 "largest slot count CREATE accepts, power of two 2..32768 (default 4096)");

unsigned int sipc_max_channels = 64;
module_param_named(max_channels, sipc_max_channels, uint, 0444);
MODULE_PARM_DESC(max_channels, "channels that may exist at once (default 64)");

unsigned long sipc_max_channel_bytes = 64UL << 20;
module_param_named(max_channel_bytes, sipc_max_channel_bytes, ulong, 0444);
MODULE_PARM_DESC(max_channel_bytes,
		 "memory (rings + sealed stores, both endpoints) one channel may pin (default 64 MiB)");

unsigned int sipc_max_user_channels = 16;
module_param_named(max_user_channels, sipc_max_user_channels, uint, 0444);
MODULE_PARM_DESC(max_user_channels, "channels one uid may own at once (default 16)");

unsigned long sipc_max_user_bytes = 256UL << 20;
module_param_named(max_user_bytes, sipc_max_user_bytes, ulong, 0444);
MODULE_PARM_DESC(max_user_bytes,
		 "memory the channels one uid owns may pin in total (default 256 MiB)");

bool sipc_allow_ns_create;
module_param_named(allow_ns_create, sipc_allow_ns_create, bool, 0444);
MODULE_PARM_DESC(allow_ns_create,
		 "allow CREATE from openers outside the initial user and pid namespaces (default N)");

unsigned long sipc_rekey_records = 1UL << 24;
module_param_named(rekey_records, sipc_rekey_records, ulong, 0444);
MODULE_PARM_DESC(rekey_records, "default records per key epoch (default 2^24)");

unsigned long sipc_rekey_bytes = 1UL << 36;
module_param_named(rekey_bytes, sipc_rekey_bytes, ulong, 0444);
MODULE_PARM_DESC(rekey_bytes, "default plaintext bytes per key epoch (default 2^36)");

static dev_t sipc_devt;
static struct cdev sipc_cdev;
static struct class *sipc_class;
static struct device *sipc_device;

static int sipc_open(struct inode *inode, struct file *file)
{
	file->private_data = sipc_endpoint_open(file);
	if (!file->private_data)
		return -ENOMEM;
	return stream_open(inode, file);
}

static int sipc_release(struct inode *inode, struct file *file)
{
	sipc_endpoint_release(file->private_data);
	return 0;
}

static int sipc_mmap(struct file *file, struct vm_area_struct *vma)
{
	return sipc_endpoint_mmap(file->private_data, vma);
}

static const struct file_operations sipc_fops = {
	.owner = THIS_MODULE,
	.open = sipc_open,
	.release = sipc_release,
	.read = sipc_read,
	.write = sipc_write,
	.poll = sipc_poll,
	.mmap = sipc_mmap,
	.unlocked_ioctl = sipc_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};

static char *sipc_devnode(sipc_devnode_device *dev, umode_t *devmode,
			  kuid_t *uid, kgid_t *gid)
{
	if (devmode)
		*devmode = mode;
	if (gid)
		*gid = make_kgid(&init_user_ns, group);
	return NULL;
}

static const struct device_type sipc_device_type = {
	.name = SIPC_DEVICE_NAME,
	.devnode = sipc_devnode,
};

static void sipc_device_release(struct device *dev)
{
	kfree(dev);
}

static bool sipc_params_valid(void)
{
	if (mode & ~0777) {
		pr_err("mode=%#o: only permission bits (0..0777) are allowed\n",
		       mode);
		return false;
	}
	if (!gid_valid(make_kgid(&init_user_ns, group))) {
		pr_err("group=%u is not a valid gid\n", group);
		return false;
	}
	if (!is_power_of_2(sipc_max_slot_size) ||
	    sipc_max_slot_size < SIPC_MIN_SLOT_SIZE ||
	    sipc_max_slot_size > SIPC_MAX_SLOT_SIZE) {
		pr_err("max_slot_size=%u: must be a power of two in %u..%u\n",
		       sipc_max_slot_size, SIPC_MIN_SLOT_SIZE,
		       SIPC_MAX_SLOT_SIZE);
		return false;
	}
	if (!is_power_of_2(sipc_max_entries) ||
	    sipc_max_entries < SIPC_MIN_ENTRIES ||
	    sipc_max_entries > SIPC_MAX_ENTRIES) {
		pr_err("max_entries=%u: must be a power of two in %u..%u\n",
		       sipc_max_entries, SIPC_MIN_ENTRIES, SIPC_MAX_ENTRIES);
		return false;
	}
	if (!sipc_max_channels || !sipc_max_channel_bytes ||
	    !sipc_rekey_records || !sipc_rekey_bytes) {
		pr_err("max_channels, max_channel_bytes, rekey_records and rekey_bytes must be non-zero\n");
		return false;
	}
	if (sipc_rekey_records > SIPC_MAX_REKEY_RECORDS ||
	    sipc_rekey_bytes > SIPC_MAX_REKEY_BYTES) {
		pr_err("rekey_records must be at most 2^32 and rekey_bytes at most 2^38 (AES-GCM usage limits)\n");
		return false;
	}
	return true;
}

static int sipc_device_create(void)
{
	struct device *dev;
	int ret;

	ret = alloc_chrdev_region(&sipc_devt, 0, 1, SIPC_DEVICE_NAME);
	if (ret)
		return ret;

	cdev_init(&sipc_cdev, &sipc_fops);
	sipc_cdev.owner = THIS_MODULE;
	ret = cdev_add(&sipc_cdev, sipc_devt, 1);
	if (ret)
		goto err_region;

	sipc_class = sipc_class_create(SIPC_DEVICE_NAME);
	if (IS_ERR(sipc_class)) {
		ret = PTR_ERR(sipc_class);
		goto err_cdev;
	}

	dev = kzalloc(sizeof(*dev), GFP_KERNEL);
	if (!dev) {
		ret = -ENOMEM;
		goto err_class;
	}
	device_initialize(dev);
	dev->devt = sipc_devt;
	dev->class = sipc_class;
	dev->type = &sipc_device_type;
	dev->release = sipc_device_release;
	ret = dev_set_name(dev, SIPC_DEVICE_NAME);
	if (ret)
		goto err_put_dev;
	ret = device_add(dev);
	if (ret)
		goto err_put_dev;
	sipc_device = dev;
	return 0;

err_put_dev:
	put_device(dev);
err_class:
	class_destroy(sipc_class);
err_cdev:
	cdev_del(&sipc_cdev);
err_region:
	unregister_chrdev_region(sipc_devt, 1);
	return ret;
}

static void sipc_device_destroy(void)
{
	device_unregister(sipc_device);
	class_destroy(sipc_class);
	cdev_del(&sipc_cdev);
	unregister_chrdev_region(sipc_devt, 1);
}

static int __init sipc_init(void)
{
	int ret;

	if (!sipc_params_valid())
		return -EINVAL;

	ret = sipc_crypto_init();
	if (ret)
		return ret;

	ret = sipc_device_create();
	if (ret) {
		pr_err("cannot create /dev/%s: %d\n", SIPC_DEVICE_NAME, ret);
		return ret;
	}

	pr_info("loaded: abi %u, /dev/%s mode %#o group %u%s\n",
		SIPC_ABI_VERSION, SIPC_DEVICE_NAME, mode, group,
		sipc_test_hooks() ? ", TEST HOOKS" : "");
	return 0;
}

static void __exit sipc_exit(void)
{
	sipc_device_destroy();
	pr_info("unloaded\n");
}

module_init(sipc_init);
module_exit(sipc_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("secure_ipc: sealed shared-memory channels");
MODULE_AUTHOR("secure_ipc developers");
