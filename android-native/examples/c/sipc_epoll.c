// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * sipc_epoll - a C service whose one epoll loop serves a secure_ipc channel
 * and a timer, with secure_ipc_client.h's readiness calls.
 *
 *   sipc_epoll demo [BACKEND]            the loop against a peer process it
 *                                        starts, then checks of the send
 *                                        side's readiness and of
 *                                        sipc_shutdown(); ends with
 *                                        "N passed, N failed"
 *   sipc_epoll peer NAME COUNT [BACKEND] the peer: COUNT readings, in bursts
 *
 * BACKEND is auto (default), kernel or userspace.
 *
 * Build (from the repository root, after `cargo build -p secure-ipc-jni`):
 *   cc -std=c11 -Wall -Wextra -Werror -pthread -Iandroid-native/include \
 *      android-native/examples/c/sipc_epoll.c -Ltarget/debug -lsecure_ipc_jni \
 *      -Wl,-rpath,$PWD/target/debug -o sipc_epoll
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "secure_ipc_client.h"

#define READINGS 20000u

static int passed, failed;

static void check(int ok, const char *what)
{
	printf("%s %s\n", ok ? "ok  " : "FAIL", what);
	if (ok)
		passed++;
	else
		failed++;
}

static int parse_backend(const char *s, uint32_t *out)
{
	if (!s || !strcmp(s, "auto"))
		*out = SIPC_BACKEND_AUTO;
	else if (!strcmp(s, "kernel"))
		*out = SIPC_BACKEND_KERNEL;
	else if (!strcmp(s, "userspace"))
		*out = SIPC_BACKEND_USERSPACE;
	else
		return -1;
	return 0;
}

/* Peer: COUNT readings (each its own index), 500 at a time with a pause, so
 * that the owner's loop goes back to sleep in between. */
static int run_peer(const char *name, unsigned int count, uint32_t backend)
{
	struct sipc_options opts;
	sipc_channel *ch = NULL;
	int rc;

	sipc_options_init(&opts);
	opts.backend = backend;
	for (int tries = 0; tries < 500; tries++) {
		rc = sipc_attach(name, &opts, &ch);
		if (rc != -ENOENT)
			break;
		usleep(10000);
	}
	if (rc < 0) {
		fprintf(stderr, "attach %s: %s\n", name, sipc_strerror(rc));
		return 1;
	}
	for (unsigned int i = 0; i < count; i++) {
		uint32_t reading = i;

		rc = sipc_send(ch, 1, &reading, sizeof(reading), 10000);
		if (rc < 0) {
			fprintf(stderr, "send %u: %s\n", i, sipc_strerror(rc));
			break;
		}
		if (i % 500 == 499)
			usleep(2000);
	}
	sipc_close(ch);		/* the owner sees -EPIPE after the last reading */
	return rc < 0 ? 1 : 0;
}

struct loop_result {
	unsigned int received;
	unsigned int out_of_order;
	unsigned int channel_wakeups;
	unsigned int timer_ticks;
	int end;		/* the code that ended the loop (-EPIPE: the peer is done) */
};

/* Drains what is there, then arms; returns 1 to sleep, <= 0 to stop. */
static int drain(sipc_channel *ch, struct loop_result *r)
{
	struct sipc_message msg;
	uint32_t reading;
	int n;

	for (;;) {
		while ((n = sipc_recv(ch, &reading, sizeof(reading), &msg, 0)) >= 0) {
			if (n != sizeof(reading) || reading != r->received || msg.seq != r->received)
				r->out_of_order++;
			r->received++;
		}
		if (n != -EAGAIN) {
			r->end = n;
			return 0;
		}
		/* 1: nothing came since the -EAGAIN; the fd wakes us. 0: look again. */
		n = sipc_arm_recv(ch);
		if (n != 0) {
			if (n < 0)
				r->end = n;
			return n;
		}
	}
}

/* The service: one epoll set with the channel and a 1 ms timer. */
static void serve(sipc_channel *ch, struct loop_result *r)
{
	struct itimerspec every_ms = { { 0, 1000000 }, { 0, 1000000 } };
	struct epoll_event ev = { .events = EPOLLIN }, got[4];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	int chfd = sipc_recv_fd(ch);

	memset(r, 0, sizeof(*r));
	if (ep < 0 || tfd < 0 || chfd < 0 || timerfd_settime(tfd, 0, &every_ms, NULL)) {
		r->end = -EIO;
		goto out;
	}
	ev.data.fd = chfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, chfd, &ev);
	ev.data.fd = tfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
	if (drain(ch, r) <= 0)
		goto out;
	for (;;) {
		int n = epoll_wait(ep, got, 4, 10000);

		if (n <= 0) {
			r->end = n == 0 ? -ETIMEDOUT : -errno;
			break;
		}
		for (int i = 0; i < n; i++) {
			if (got[i].data.fd == tfd) {
				uint64_t ticks;

				if (read(tfd, &ticks, sizeof(ticks)) == sizeof(ticks))
					r->timer_ticks += (unsigned int)ticks;
				continue;
			}
			r->channel_wakeups++;
			if (drain(ch, r) <= 0)
				goto out;
		}
	}
out:
	if (tfd >= 0)
		close(tfd);
	if (ep >= 0)
		close(ep);
}

/* The send side: a full channel arms, the fd wakes when the peer takes one. */
static void check_send_readiness(const char *name, uint32_t backend)
{
	struct sipc_options opts;
	struct epoll_event ev = { .events = EPOLLIN };
	sipc_channel *owner, *peer;
	unsigned char buf[64] = { 0 };
	int ep, sent = 0;

	sipc_options_init(&opts);
	opts.backend = backend;
	opts.slots = 4;
	opts.slot_size = 128;
	if (sipc_create(name, &opts, &owner) || sipc_attach(name, &opts, &peer)) {
		check(0, "in-process pair for the send side");
		return;
	}
	/* The first send waits for the attach to be seen. */
	check(sipc_send(owner, 0, buf, 8, 5000) == 0 && sipc_recv(peer, buf, sizeof(buf), NULL, 5000) == 8,
	      "first message across");
	while (sent < 1000 && sipc_try_send(owner, 0, buf, 8) == 0)
		sent++;
	check(sent < 1000 && sipc_try_send(owner, 0, buf, 8) == -EAGAIN, "the channel fills: -EAGAIN");
	check(sipc_arm_send(owner) == 1, "arm on a full channel says sleep (1)");
	ep = epoll_create1(EPOLL_CLOEXEC);
	ev.data.fd = sipc_send_fd(owner);
	check(ev.data.fd >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, ev.data.fd, &ev) == 0, "send fd in epoll");
	check(sipc_recv(peer, buf, sizeof(buf), NULL, 5000) == 8, "the peer takes one");
	check(epoll_wait(ep, &ev, 1, 5000) == 1, "the send fd wakes the loop");
	check(sipc_try_send(owner, 0, buf, 8) == 0, "and there is room again");
	close(ep);
	sipc_close(peer);
	sipc_close(owner);
}

static void *blocked_recv(void *arg)
{
	unsigned char buf[64];

	return (void *)(intptr_t)sipc_recv(arg, buf, sizeof(buf), NULL, -1);
}

/* sipc_shutdown() from another thread ends a recv that would wait forever. */
static void check_shutdown(const char *name, uint32_t backend)
{
	struct sipc_options opts;
	sipc_channel *owner;
	pthread_t t;
	void *rc;

	sipc_options_init(&opts);
	opts.backend = backend;
	if (sipc_create(name, &opts, &owner)) {
		check(0, "create for the shutdown check");
		return;
	}
	pthread_create(&t, NULL, blocked_recv, owner);
	usleep(100000);
	check(sipc_shutdown(owner) == 0, "sipc_shutdown");
	pthread_join(t, &rc);
	check((intptr_t)rc == -ESHUTDOWN, "the blocked sipc_recv returns -ESHUTDOWN");
	check(sipc_send(owner, 0, "x", 1, -1) == -ESHUTDOWN, "so does every later call");
	sipc_close(owner);
	check(sipc_debug_live_handles() == 0, "no live handle after close");
}

static int run_demo(const char *backend_name, uint32_t backend)
{
	struct sipc_options opts;
	struct loop_result r;
	sipc_channel *ch;
	char name[32], count[16];
	pid_t peer;
	int status;

	snprintf(name, sizeof(name), "cepoll%d", (int)getpid());
	snprintf(count, sizeof(count), "%u", READINGS);
	sipc_options_init(&opts);
	opts.backend = backend;
	opts.slots = 64;
	if (sipc_create(name, &opts, &ch)) {
		check(0, "create");
		goto out;
	}
	peer = fork();
	if (peer == 0) {
		execl("/proc/self/exe", "sipc_epoll", "peer", name, count, backend_name, (char *)NULL);
		_exit(127);
	}
	serve(ch, &r);
	printf("received %u, channel wake-ups %u, timer ticks %u, ended with %s\n", r.received,
	       r.channel_wakeups, r.timer_ticks, sipc_strerror(r.end));
	check(r.end == -EPIPE, "the loop ends on -EPIPE after the peer closed");
	check(r.received == READINGS, "every reading received once");
	check(r.out_of_order == 0, "in order: reading i has sequence number i");
	check(r.channel_wakeups > 0, "the loop slept in epoll_wait and the channel woke it");
	sipc_close(ch);
	check(waitpid(peer, &status, 0) == peer && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "the peer exited 0");

	snprintf(name, sizeof(name), "cepoll%d-s", (int)getpid());
	check_send_readiness(name, backend);
	snprintf(name, sizeof(name), "cepoll%d-d", (int)getpid());
	check_shutdown(name, backend);
out:
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	uint32_t backend;

	if (argc >= 4 && !strcmp(argv[1], "peer") && !parse_backend(argc > 4 ? argv[4] : NULL, &backend))
		return run_peer(argv[2], (unsigned int)strtoul(argv[3], NULL, 10), backend);
	if (argc >= 2 && !strcmp(argv[1], "demo") && !parse_backend(argc > 2 ? argv[2] : NULL, &backend))
		return run_demo(argc > 2 ? argv[2] : "auto", backend);
	fprintf(stderr, "usage: %s demo [BACKEND] | peer NAME COUNT [BACKEND]\n", argv[0]);
	return 2;
}
