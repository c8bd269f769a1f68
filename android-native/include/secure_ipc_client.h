/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * secure_ipc_client.h - C ABI of the secure_ipc client library
 * (libsecure_ipc_jni.so, built from android-native/ in the secure_ipc tree).
 *
 * For C and C++ native services (Android vendor services, host daemons) that
 * want sealed secure_ipc channels without Rust. One `sipc_channel` is one
 * endpoint: the owner (sipc_create) or the peer (sipc_attach) of a named
 * channel, able to both send and receive.
 *
 * Errors: every function returning int returns 0 (or a length) on success
 * and a negative errno on failure. Each function's comment lists the codes
 * it returns; what they mean:
 *   -EPIPE        the peer closed the channel (after everything it sent was
 *                 received)
 *   -EMSGSIZE     the message is larger than sipc_max_message_size(); or, from
 *                 sipc_recv(), the buffer is too small for the next message
 *                 (msg->length says how large it is; it stays queued)
 *   -EAGAIN       timeout 0 and the call would have waited (full / empty)
 *   -ETIMEDOUT    the timeout ran out (nothing was sent / received)
 *   -EBADMSG      a record failed authentication and was dropped (its
 *                 sequence number is spent; the next sipc_recv() continues)
 *   -EACCES       the channel's peer policy refused this process, or the
 *                 kernel refused it /dev/secure_ipc or the create
 *   -EPERM        (attach) the owner is not the uid / identity required of it
 *   -ENOENT       no channel of that name
 *   -EEXIST       a channel of that name exists already
 *   -EBUSY        the channel already has a peer
 *   -ENODEV       SIPC_BACKEND_KERNEL requested but /dev/secure_ipc unusable
 *   -EINVAL       bad name (1..31 bytes of [A-Za-z0-9._-]), bad geometry, an
 *                 unknown backend / wait / flag bit, an all-zero psk, a
 *                 peer_pidns_fd that is no pid namespace, a NULL pointer,
 *                 options->size below SIPC_OPTIONS_SIZE_VER0
 *   -E2BIG        options->size above 4096, or a larger struct than this
 *                 library's whose bytes past it are not all zero
 *   -EKEYREJECTED identity proof or pre-shared key refused
 *   -ENOTCONN     the owner has no peer yet
 *   -EPROTO       the other side broke the protocol
 *   -ESHUTDOWN    sipc_shutdown() was called on the handle
 *   -EIO          an internal error (a bug: report it)
 *   other         an operating-system call failed with that errno (-EMFILE,
 *                 -ENOMEM, ...); listed per function as "OS errors"
 * sipc_strerror() describes a code.
 *
 * Threads: one thread may send while another receives on the same handle;
 * sipc_shutdown() may be called from any thread at any time. sipc_close()
 * must not race with other calls on the same handle (like close(2) on a
 * file descriptor): sipc_shutdown() first, join the threads, then close.
 */
#ifndef SECURE_IPC_CLIENT_H
#define SECURE_IPC_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque: one endpoint of a channel. */
typedef struct sipc_channel sipc_channel;

/* Which implementation carries the channel. */
enum sipc_backend {
	SIPC_BACKEND_AUTO = 0,		/* kernel if /dev/secure_ipc opens, else userspace */
	SIPC_BACKEND_KERNEL = 1,	/* /dev/secure_ipc */
	SIPC_BACKEND_USERSPACE = 2,	/* memfd rings over a Unix-socket rendezvous */
};

/* How blocking calls wait. */
enum sipc_wait {
	SIPC_WAIT_SPIN_THEN_BLOCK = 0,	/* spin `spins` times, then sleep (default) */
	SIPC_WAIT_BUSY_POLL = 1,	/* never sleep */
	SIPC_WAIT_BLOCK = 2,		/* sleep at once */
};

/* Which peer-policy fields of struct sipc_options are set (create only). */
#define SIPC_POLICY_UID		(1u << 0)
#define SIPC_POLICY_GID		(1u << 1)
#define SIPC_POLICY_PIDNS	(1u << 2)
#define SIPC_POLICY_IDENTITY	(1u << 3)
/* Which secrets are set (create and attach). */
#define SIPC_OPT_IDENTITY_SECRET (1u << 0)	/* attach: prove this identity */
#define SIPC_OPT_PSK		 (1u << 1)	/* both: pre-shared key */

/*
 * Channel options, an extensible struct as the kernel's ioctl structs are:
 * `size` first, fields only ever added at the end, zero in an added field
 * meaning the behaviour before it. Initialise with sipc_options_init(),
 * which sets `size` to this header's sizeof and the defaults, then change
 * fields. The library reads `size` bytes: an older, smaller struct (at
 * least SIPC_OPTIONS_SIZE_VER0) is read as far as it goes and the fields
 * past it count as zero; a newer, larger one is accepted when every byte
 * past the library's own struct is zero, else -E2BIG.
 */
#define SIPC_OPTIONS_SIZE_VER0	152	/* up to socket_dir: the first version */
#define SIPC_OPTIONS_SIZE_VER1	168	/* + rekey_records, rekey_bytes */

struct sipc_options {
	uint32_t size;			/* sizeof(struct sipc_options) */
	uint32_t backend;		/* enum sipc_backend */
	uint32_t slots;			/* per direction, power of two (create) */
	uint32_t slot_size;		/* bytes, power of two, 64..65536 (create) */
	uint32_t wait;			/* enum sipc_wait */
	uint32_t spins;			/* SIPC_WAIT_SPIN_THEN_BLOCK budget */
	uint32_t policy_flags;		/* SIPC_POLICY_* (create) */
	uint32_t peer_uid;		/* with SIPC_POLICY_UID */
	uint32_t peer_gid;		/* with SIPC_POLICY_GID */
	uint32_t secret_flags;		/* SIPC_OPT_* */
	int32_t peer_pidns_fd;		/* with SIPC_POLICY_PIDNS: open("/proc/PID/ns/pid"); dup'ed, the caller keeps its own */
	uint32_t reserved0;		/* zero */
	uint8_t peer_identity_pub[32];	/* with SIPC_POLICY_IDENTITY: X25519 public key */
	uint8_t identity_secret[32];	/* with SIPC_OPT_IDENTITY_SECRET: X25519 private key */
	uint8_t psk[32];		/* with SIPC_OPT_PSK */
	const char *socket_dir;		/* userspace backend rendezvous dir; NULL: abstract socket */
	/* SIPC_OPTIONS_SIZE_VER1 */
	uint64_t rekey_records;		/* records per sending key epoch; 0: 2^24 */
	uint64_t rekey_bytes;		/* plaintext bytes per sending key epoch; 0: 2^36 */
};

/* What a received message's stamp says. */
struct sipc_message {
	uint32_t length;	/* payload bytes */
	uint16_t type;		/* sender's message type */
	uint16_t reserved;	/* 0 */
	uint64_t seq;		/* sequence number in this direction, from 0 */
	uint64_t timestamp_ns;	/* CLOCK_MONOTONIC at the sender's commit */
	uint32_t pid;		/* sender, as this process sees it (0: not visible) */
	uint32_t uid;
	uint32_t gid;
	uint32_t reserved2;	/* 0 */
};

/* Counters of one endpoint. */
struct sipc_stats {
	uint64_t sealed_msgs;
	uint64_t sealed_bytes;
	uint64_t opened_msgs;
	uint64_t opened_bytes;
	uint64_t auth_failures;
	uint64_t full_events;
	uint64_t rekeys;
	uint32_t tx_fill;
	uint32_t rx_fill;
};

/* Who the other endpoint is, attested by the kernel (or SO_PEERCRED). */
struct sipc_peer {
	uint32_t pid;			/* as this process sees it (0: not visible) */
	uint32_t uid;
	uint32_t gid;
	uint32_t identity_verified;	/* 1: it proved the pinned identity key */
	uint64_t pidns_ino;		/* its pid namespace inode (0: unknown) */
	uint64_t userns_ino;		/* its user namespace inode (0: unknown) */
};

/*
 * Fills the `size` bytes at opts with the defaults (auto backend, 256 slots
 * of 4096 bytes, spin-then-block with 2000 spins, no policy, no secrets,
 * default rekeying), opts->size = size; bytes past the library's own struct
 * are zeroed. Returns 0; -EINVAL for a NULL opts or size below
 * SIPC_OPTIONS_SIZE_VER0 (nothing written); -E2BIG for size above 4096.
 */
int sipc_options_init_sized(struct sipc_options *opts, size_t size);

/* The usual form. (Binaries built against the first header call a function
 * of this name, which writes SIPC_OPTIONS_SIZE_VER0 bytes.) */
#define sipc_options_init(opts) sipc_options_init_sized((opts), sizeof(*(opts)))

/*
 * Creates channel `name` as its owner; returns at once (a peer attaches
 * later). opts may be NULL for the defaults.
 * Returns 0 (*out set), -EINVAL, -E2BIG, -EEXIST, -ENODEV, -EACCES, -EIO,
 * OS errors.
 */
int sipc_create(const char *name, const struct sipc_options *opts, sipc_channel **out);

/*
 * Attaches to channel `name` as its peer.
 * Returns 0 (*out set), -EINVAL, -E2BIG, -ENOENT, -EBUSY, -EACCES, -EPERM,
 * -EKEYREJECTED, -EPROTO, -ETIMEDOUT (the owner's handshake stalled),
 * -ENODEV, -EIO, OS errors.
 */
int sipc_attach(const char *name, const struct sipc_options *opts, sipc_channel **out);

/*
 * Sends one message. timeout_ms < 0: wait while the channel is full (or, on
 * the owner, until a peer attaches); 0: do not wait; > 0: wait at most that
 * long. Returns 0 (sent: queued for the peer), -EAGAIN (timeout 0, no room
 * or no peer yet), -ETIMEDOUT, -EPIPE, -EMSGSIZE, -EINVAL (NULL ch, NULL buf
 * with len > 0), -ESHUTDOWN, -EPROTO, -EIO, OS errors. On every error nothing was sent.
 */
int sipc_send(sipc_channel *ch, uint16_t type, const void *buf, size_t len, int timeout_ms);

/* sipc_send(ch, type, buf, len, 0): the same codes. */
int sipc_try_send(sipc_channel *ch, uint16_t type, const void *buf, size_t len);

/*
 * Receives one message into buf (capacity cap) and returns its length;
 * msg (may be NULL) gets its stamp. timeout_ms as for sipc_send(). Returns
 * the length, -EAGAIN (timeout 0, nothing there), -ETIMEDOUT, -EPIPE (the
 * peer closed and everything it sent was received), -EMSGSIZE (cap too
 * small: msg->length is the message's length; it stays queued), -EBADMSG,
 * -EINVAL (NULL ch, NULL buf with cap > 0), -ESHUTDOWN, -EPROTO, -EIO, OS
 * errors.
 */
int sipc_recv(sipc_channel *ch, void *buf, size_t cap, struct sipc_message *msg, int timeout_ms);

/*
 * Event loops (epoll, poll, select). Each half has a readiness fd, the same
 * for the handle's whole life, owned by the library (do not close or read
 * it): sipc_recv_fd() for receiving, sipc_send_fd() for sending (both
 * report EPOLLIN). Readable means "try again" and may be spurious. The loop:
 *
 *   for (;;) {
 *           while ((n = sipc_recv(ch, buf, cap, &msg, 0)) >= 0)
 *                   handle(buf, n);
 *           if (n != -EAGAIN)
 *                   break;                  (-EPIPE: done; else an error)
 *           if (sipc_arm_recv(ch) == 1)
 *                   epoll_wait(...);        (0: something came meanwhile)
 *   }
 *
 * sipc_arm_recv() / sipc_arm_send() return 1 when the call would still wait
 * (the fd turns readable when that may have changed: sleep on it), 0 when
 * it would not (receive / send now), or -EINVAL (NULL), -ESHUTDOWN, -EIO,
 * OS errors. No wake-up is lost between a -EAGAIN and the arm.
 * sipc_recv_fd() / sipc_send_fd() return the fd or -EINVAL (NULL).
 */
int sipc_recv_fd(const sipc_channel *ch);
int sipc_send_fd(const sipc_channel *ch);
int sipc_arm_recv(sipc_channel *ch);
int sipc_arm_send(sipc_channel *ch);

/*
 * Wakes every call blocked on ch in another thread and makes it, and every
 * later call but sipc_close(), return -ESHUTDOWN (a blocked call returns
 * within about 50 ms). The handle stays valid: free it with sipc_close()
 * once no thread uses it. Never blocks. Returns 0, or -EINVAL for NULL.
 */
int sipc_shutdown(sipc_channel *ch);

/* Largest payload of one message (0 for a NULL ch). */
size_t sipc_max_message_size(const sipc_channel *ch);

/* The endpoint's counters. Returns 0, -EINVAL (NULL), -ESHUTDOWN, -EIO, OS
 * errors. */
int sipc_stats(sipc_channel *ch, struct sipc_stats *out);

/* Who the other endpoint is. Returns 0, -ENOTCONN (the owner has no peer
 * yet), -EINVAL (NULL), -ESHUTDOWN, -EIO, OS errors. */
int sipc_peer_credentials(sipc_channel *ch, struct sipc_peer *out);

/* Closes the endpoint (the peer sees -EPIPE once it has drained) and frees
 * the handle; never waits. NULL is ignored. */
void sipc_close(sipc_channel *ch);

/* Derives the X25519 public key of an identity secret key: what the owner
 * pins (SIPC_POLICY_IDENTITY, peer_identity_pub) for the service that
 * attaches with that secret (SIPC_OPT_IDENTITY_SECRET). Returns 0, or
 * -EINVAL for a NULL pointer, -EIO. */
int sipc_identity_public_key(const uint8_t secret[32], uint8_t public_key[32]);

/* A static description of a (negative or positive) error code. */
const char *sipc_strerror(int err);

/* Endpoints alive in this process (for leak checks in tests). */
size_t sipc_debug_live_handles(void);

#ifdef __cplusplus
}
#endif

#endif /* SECURE_IPC_CLIENT_H */
