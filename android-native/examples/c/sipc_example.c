// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * sipc_example - a C native service using secure_ipc_client.h.
 *
 *   sipc_example create NAME COUNT [BACKEND]   owner: send COUNT messages,
 *                                              check each echo, print stats
 *   sipc_example attach NAME [BACKEND [KEYHEX]] peer: echo until the owner closes,
 *                                              proving identity KEYHEX (64 hex digits)
 *                                              if given; an attach error is the exit
 *                                              status (its errno)
 *   sipc_example demo [BACKEND]                both, in two processes, with
 *                                              checks of the error paths; ends
 *                                              with "N passed, N failed"
 *
 * BACKEND is auto (default), kernel or userspace.
 *
 * Build (from the repository root, after `cargo build -p secure-ipc-jni`):
 *   cc -std=c11 -Wall -Wextra -Werror -Iandroid-native/include \
 *      android-native/examples/c/sipc_example.c -Ltarget/debug -lsecure_ipc_jni \
 *      -Wl,-rpath,$PWD/target/debug -o sipc_example
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "secure_ipc_client.h"

/* The library's Rust side asserts the same layout. */
_Static_assert(sizeof(struct sipc_options) == SIPC_OPTIONS_SIZE_VER1, "struct sipc_options layout");
_Static_assert(offsetof(struct sipc_options, rekey_records) == SIPC_OPTIONS_SIZE_VER0, "VER0 prefix");
_Static_assert(sizeof(struct sipc_message) == 40, "struct sipc_message layout");
_Static_assert(sizeof(struct sipc_stats) == 64, "struct sipc_stats layout");
_Static_assert(sizeof(struct sipc_peer) == 32, "struct sipc_peer layout");

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

/* Deterministic payload of message i. */
static size_t fill(unsigned char *buf, size_t max, unsigned int i)
{
	size_t len = 1 + (i * 37u) % max;

	for (size_t k = 0; k < len; k++)
		buf[k] = (unsigned char)(i * 31u + k);
	return len;
}

/* Peer: echo every message (same type, same bytes) until the owner closes. */
static int parse_key(const char *hex, uint8_t key[32])
{
	if (strlen(hex) != 64)
		return -1;
	for (int i = 0; i < 32; i++) {
		unsigned int byte;

		if (sscanf(hex + 2 * i, "%2x", &byte) != 1)
			return -1;
		key[i] = (uint8_t)byte;
	}
	return 0;
}

static int run_attach(const char *name, uint32_t backend, const char *keyhex)
{
	struct sipc_options opts;
	struct sipc_message msg;
	sipc_channel *ch = NULL;
	unsigned char *buf;
	size_t cap;
	int rc;

	sipc_options_init(&opts);
	opts.backend = backend;
	if (keyhex) {
		if (parse_key(keyhex, opts.identity_secret)) {
			fprintf(stderr, "KEYHEX must be 64 hex digits\n");
			return 2;
		}
		opts.secret_flags |= SIPC_OPT_IDENTITY_SECRET;
	}
	/* The owner may still be creating the channel. */
	for (int tries = 0; tries < 500; tries++) {
		rc = sipc_attach(name, &opts, &ch);
		if (rc != -ENOENT)
			break;
		usleep(10000);
	}
	if (rc < 0) {
		fprintf(stderr, "attach %s: %s\n", name, sipc_strerror(rc));
		return -rc;	/* the errno, for the demo's policy checks */
	}
	cap = sipc_max_message_size(ch);
	buf = malloc(cap);
	if (!buf) {
		sipc_close(ch);
		return 1;
	}
	for (;;) {
		rc = sipc_recv(ch, buf, cap, &msg, -1);
		if (rc == -EPIPE) {
			rc = 0;		/* the owner hung up: done */
			break;
		}
		if (rc < 0) {
			fprintf(stderr, "recv: %s\n", sipc_strerror(rc));
			break;
		}
		rc = sipc_send(ch, msg.type, buf, (size_t)rc, -1);
		if (rc == -EPIPE) {
			rc = 0;
			break;
		}
		if (rc < 0) {
			fprintf(stderr, "send: %s\n", sipc_strerror(rc));
			break;
		}
	}
	free(buf);
	sipc_close(ch);
	return rc < 0 ? 1 : 0;
}

/* Owner: send count messages, check every echo. Returns failures. */
static int exchange(sipc_channel *ch, unsigned int count, pid_t peer_pid)
{
	size_t max = sipc_max_message_size(ch);
	unsigned char *out = malloc(max), *in = malloc(max);
	int bad = 0;

	if (!out || !in) {
		free(out);
		free(in);
		return 1;
	}
	for (unsigned int i = 0; i < count && !bad; i++) {
		struct sipc_message msg;
		size_t len = fill(out, max, i);
		int rc = sipc_send(ch, (uint16_t)i, out, len, 10000);

		if (rc < 0) {
			fprintf(stderr, "send %u: %s\n", i, sipc_strerror(rc));
			bad++;
			break;
		}
		rc = sipc_recv(ch, in, max, &msg, 10000);
		if (rc < 0) {
			fprintf(stderr, "recv %u: %s\n", i, sipc_strerror(rc));
			bad++;
		} else if ((size_t)rc != len || msg.length != len || memcmp(in, out, len) ||
			   msg.type != (uint16_t)i || msg.seq != i) {
			fprintf(stderr, "echo %u differs (len %d/%zu, type %u, seq %llu)\n", i, rc, len,
				msg.type, (unsigned long long)msg.seq);
			bad++;
		} else if ((peer_pid && msg.pid != (uint32_t)peer_pid) || msg.uid != getuid()) {
			fprintf(stderr, "echo %u: sender pid %u uid %u, expected %d/%u\n", i, msg.pid,
				msg.uid, (int)peer_pid, getuid());
			bad++;
		}
	}
	free(out);
	free(in);
	return bad;
}

static int run_create(const char *name, unsigned int count, uint32_t backend)
{
	struct sipc_options opts;
	struct sipc_stats st;
	sipc_channel *ch;
	int rc, bad;

	sipc_options_init(&opts);
	opts.backend = backend;
	rc = sipc_create(name, &opts, &ch);
	if (rc < 0) {
		fprintf(stderr, "create %s: %s\n", name, sipc_strerror(rc));
		return 1;
	}
	bad = exchange(ch, count, 0);
	if (sipc_stats(ch, &st) == 0)
		printf("sealed %llu msgs / %llu bytes, opened %llu msgs, auth failures %llu\n",
		       (unsigned long long)st.sealed_msgs, (unsigned long long)st.sealed_bytes,
		       (unsigned long long)st.opened_msgs, (unsigned long long)st.auth_failures);
	sipc_close(ch);
	return bad ? 1 : 0;
}

/* Starts `self attach NAME BACKEND` as the peer process. */
static pid_t spawn_peer(const char *self, const char *name, const char *backend,
			const char *keyhex)
{
	pid_t pid = fork();

	if (pid == 0) {
		execl(self, self, "attach", name, backend, keyhex, (char *)NULL);
		perror("exec");
		_exit(127);
	}
	return pid;
}

/*
 * Creates channel `name` with `opts` and lets a peer process attach (with
 * identity key `keyhex`, or none). Returns the peer's exit status: 0 when
 * it attached (then *who says who it was), else the errno of its attach.
 */
static int attach_outcome(const char *self, const char *name, const char *backend_name,
			  const struct sipc_options *opts, const char *keyhex, struct sipc_peer *who)
{
	sipc_channel *ch;
	pid_t peer;
	int status, rc = sipc_create(name, opts, &ch);

	memset(who, 0, sizeof(*who));
	if (rc < 0) {
		fprintf(stderr, "create %s: %s\n", name, sipc_strerror(rc));
		return -1;
	}
	peer = spawn_peer(self, name, backend_name, keyhex);
	/* Either the peer attaches (credentials appear) or it exits (refused). */
	for (int i = 0; i < 1000; i++) {
		if (waitpid(peer, &status, WNOHANG) == peer) {
			sipc_close(ch);
			return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		}
		if (sipc_peer_credentials(ch, who) == 0)
			break;
		usleep(10000);
	}
	/* Hang up: an attached peer sees -EPIPE and exits 0. */
	sipc_close(ch);
	if (waitpid(peer, &status, 0) != peer || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* The peer policy, in separate processes: uid, pid namespace, identity key. */
static void check_policies(const char *self, const char *backend_name, uint32_t backend)
{
	static const char secret_hex[] =
		"a8abababababababababababababababababababababababababababababab6b";
	static const char other_hex[] =
		"c8cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd4d";
	struct sipc_options opts;
	struct sipc_peer who;
	sipc_channel *probe;
	uint8_t secret[32];
	struct stat ns;
	char name[32];

	sipc_options_init(&opts);
	opts.backend = backend;

	snprintf(name, sizeof(name), "cpol%d-u", (int)getpid());
	opts.policy_flags = SIPC_POLICY_UID;
	opts.peer_uid = getuid() + 1;
	check(attach_outcome(self, name, backend_name, &opts, NULL, &who) == EACCES,
	      "uid policy for another uid refuses the peer (EACCES)");
	opts.peer_uid = getuid();
	snprintf(name, sizeof(name), "cpol%d-U", (int)getpid());
	check(attach_outcome(self, name, backend_name, &opts, NULL, &who) == 0 && who.uid == getuid(),
	      "uid policy for our uid admits the peer, attested uid matches");

	if (stat("/proc/self/ns/pid", &ns) == 0) {
		int netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);

		opts.policy_flags = SIPC_POLICY_PIDNS;
		opts.peer_pidns_fd = netns;
		snprintf(name, sizeof(name), "cpol%d-n", (int)getpid());
		check(netns >= 0 && sipc_create(name, &opts, &probe) == -EINVAL,
		      "pid namespace policy given a non-pid namespace fd is refused (-EINVAL)");
		if (netns >= 0)
			close(netns);
		opts.peer_pidns_fd = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
		snprintf(name, sizeof(name), "cpol%d-N", (int)getpid());
		check(attach_outcome(self, name, backend_name, &opts, NULL, &who) == 0 &&
		      who.pidns_ino == (uint64_t)ns.st_ino,
		      "pid namespace policy for our namespace admits the peer, attested inode matches");
		close(opts.peer_pidns_fd);
		opts.peer_pidns_fd = -1;
	}

	opts.policy_flags = SIPC_POLICY_IDENTITY;
	check(parse_key(secret_hex, secret) == 0 &&
	      sipc_identity_public_key(secret, opts.peer_identity_pub) == 0,
	      "derive the identity's public key");
	snprintf(name, sizeof(name), "cpol%d-p", (int)getpid());
	if (sipc_create(name, &opts, &probe) == -EINVAL) {
		/* A backend without identity keys says so at create. */
		printf("skip pinned identity: not supported by the %s backend (-EINVAL)\n",
		       backend_name);
		return;
	}
	sipc_close(probe);
	snprintf(name, sizeof(name), "cpol%d-i", (int)getpid());
	check(attach_outcome(self, name, backend_name, &opts, secret_hex, &who) == 0 &&
	      who.identity_verified == 1,
	      "pinned identity admits the key holder, reported as verified");
	snprintf(name, sizeof(name), "cpol%d-I", (int)getpid());
	check(attach_outcome(self, name, backend_name, &opts, other_hex, &who) == EKEYREJECTED,
	      "pinned identity refuses another key (EKEYREJECTED)");
}

static long elapsed_ms(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

static int run_demo(const char *self, const char *backend_name, uint32_t backend)
{
	struct sipc_options opts;
	struct sipc_message msg;
	struct sipc_stats st;
	struct timespec t0;
	sipc_channel *ch, *dup;
	unsigned char big[256], small[8];
	char name[32];
	pid_t peer;
	int rc, status;

	snprintf(name, sizeof(name), "cdemo%d", (int)getpid());
	sipc_options_init(&opts);
	opts.backend = backend;
	opts.slot_size = 256;

	check(sipc_create("bad/name", &opts, &ch) == -EINVAL, "invalid name is -EINVAL");
	check(sipc_attach(name, &opts, &ch) == -ENOENT, "attach to a missing channel is -ENOENT");
	opts.size = 8;
	check(sipc_create(name, &opts, &ch) == -EINVAL, "a too small options.size is -EINVAL");
	opts.size = sizeof(opts);

	rc = sipc_create(name, &opts, &ch);
	check(rc == 0, "create");
	if (rc)
		goto out;
	check(sipc_create(name, &opts, &dup) == -EEXIST, "second create of the name is -EEXIST");
	check(sipc_max_message_size(ch) > 0 && sipc_max_message_size(ch) <= 256,
	      "max message size fits the 256-byte slot");

	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = sipc_recv(ch, big, sizeof(big), &msg, 50);
	check(rc == -ETIMEDOUT && elapsed_ms(&t0) >= 50, "recv with nothing to receive times out");
	check(sipc_recv(ch, big, sizeof(big), &msg, 0) == -EAGAIN, "recv with timeout 0 is -EAGAIN");

	peer = spawn_peer(self, name, backend_name, NULL);
	check(exchange(ch, 1000, peer) == 0, "1000 messages echoed intact, in order, stamped with the peer's pid/uid");

	memset(big, 0xab, sizeof(big));
	check(sipc_send(ch, 1, big, sipc_max_message_size(ch) + 1, -1) == -EMSGSIZE,
	      "oversize send is -EMSGSIZE");
	check(sipc_send(ch, 2, big, 100, -1) == 0, "send 100 bytes");
	rc = sipc_recv(ch, small, sizeof(small), &msg, 5000);
	check(rc == -EMSGSIZE && msg.length == 100, "recv into 8 bytes is -EMSGSIZE, length 100 reported");
	rc = sipc_recv(ch, big, sizeof(big), &msg, 5000);
	check(rc == 100 && msg.type == 2 && big[99] == 0xab, "the same message then arrives whole");

	check(sipc_stats(ch, &st) == 0 && st.sealed_msgs == 1001 && st.opened_msgs == 1001,
	      "stats count 1001 sealed and 1001 opened");
	check(sipc_debug_live_handles() == 1, "one live handle");
	sipc_close(ch);
	sipc_close(NULL);
	check(sipc_debug_live_handles() == 0, "no live handle after close");

	check(waitpid(peer, &status, 0) == peer && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "the peer saw the hang-up (-EPIPE) and exited 0");
	check_policies(self, backend_name, backend);
	check(sipc_debug_live_handles() == 0, "no live handle after the policy checks");
out:
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	uint32_t backend;

	if (argc >= 4 && !strcmp(argv[1], "create") && !parse_backend(argc > 4 ? argv[4] : NULL, &backend))
		return run_create(argv[2], (unsigned int)strtoul(argv[3], NULL, 10), backend);
	if (argc >= 3 && !strcmp(argv[1], "attach") && !parse_backend(argc > 3 ? argv[3] : NULL, &backend))
		return run_attach(argv[2], backend, argc > 4 ? argv[4] : NULL);
	if (argc >= 2 && !strcmp(argv[1], "demo") && !parse_backend(argc > 2 ? argv[2] : NULL, &backend))
		return run_demo("/proc/self/exe", argc > 2 ? argv[2] : "auto", backend);
	fprintf(stderr, "usage: %s create NAME COUNT [BACKEND] | attach NAME [BACKEND [KEYHEX]] | demo [BACKEND]\n",
		argv[0]);
	return 2;
}
