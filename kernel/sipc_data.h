/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The sealed data path: SEND, RECV, write, read, poll and doorbells.
 */
#ifndef _SIPC_DATA_H
#define _SIPC_DATA_H

#include <linux/fs.h>
#include <linux/poll.h>

#include "sipc_channel.h"

long sipc_send(struct sipc_endpoint *ep);
long sipc_recv(struct sipc_endpoint *ep);
long sipc_recv_wait(struct sipc_endpoint *ep, unsigned long timeout_ms);
long sipc_send_wait(struct sipc_endpoint *ep, unsigned long timeout_ms);
ssize_t sipc_write(struct file *file, const char __user *buf, size_t len,
		   loff_t *ppos);
ssize_t sipc_read(struct file *file, char __user *buf, size_t len,
		  loff_t *ppos);
__poll_t sipc_poll(struct file *file, poll_table *wait);

int sipc_doorbell_set(struct sipc_endpoint *ep, int fd);
void sipc_doorbell_clear(struct sipc_endpoint *ep);
void sipc_doorbell_signal(struct sipc_endpoint *ep);
void sipc_hangup_notify(struct sipc_endpoint *ep);
int sipc_rekey(struct sipc_endpoint *ep, struct sipc_rekey *arg);

#ifdef SIPC_TEST_HOOKS
int sipc_test_keys(struct sipc_endpoint *ep, struct sipc_test_keys *out);
int sipc_test_peek_sealed(struct sipc_endpoint *ep,
			  struct sipc_test_sealed *arg);
int sipc_test_set_seal(struct sipc_endpoint *ep, struct sipc_test_seal *arg);
int sipc_test_dump_store(struct sipc_endpoint *ep, struct sipc_test_store *arg);
#endif

#endif /* _SIPC_DATA_H */
