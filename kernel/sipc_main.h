/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Module-wide parameters and entry points shared by the subsystems.
 */
#ifndef _SIPC_MAIN_H
#define _SIPC_MAIN_H

#include <linux/types.h>

/* Limits set at load time (module parameters, read-only afterwards). */
extern unsigned int sipc_max_slot_size;
extern unsigned int sipc_max_entries;
extern unsigned int sipc_max_channels;
extern unsigned long sipc_max_channel_bytes;
extern unsigned long sipc_rekey_records;
extern unsigned long sipc_rekey_bytes;
extern bool sipc_allow_ns_create;
extern unsigned int sipc_max_user_channels;
extern unsigned long sipc_max_user_bytes;

/*
 * SIPC_TEST_HOOKS (make ... SIPC_TEST_HOOKS=1) compiles the test-only
 * ioctls that export key material. A normal build has none of that code.
 */
static inline bool sipc_test_hooks(void)
{
#ifdef SIPC_TEST_HOOKS
	return true;
#else
	return false;
#endif
}

#endif /* _SIPC_MAIN_H */
