//! `sipc --help`: the commands, options, examples and exit codes that
//! [`super::args::parse`] accepts and the binary returns.

/// The `--help` text.
pub const HELP: &str = "\
sipc - sealed shared-memory channels (secure_ipc) from the shell

USAGE:
    sipc <command> [options]

COMMANDS:
    listen NAME       create channel NAME (owner); stdin -> messages, messages -> stdout
    connect NAME      attach to channel NAME (peer); stdin -> messages, messages -> stdout
    stats NAME        counters of a running userspace-backend owner of NAME
    bench             throughput and latency of one channel (two threads, one process)
    info              is the kernel module loaded? ABI version, features, limits
    --version         print the version
    demo              stream 8 kHz IMU samples from this \"host\" into a \"container\"
                      process (new user+pid+mount namespaces) and show rate,
                      latency and loss
    waydroid install|status|uninstall
                      the boot hook that makes /dev/secure_ipc in a Waydroid
                      container at every boot (docs/waydroid.md)

OPTIONS (listen, connect):
    --frame lines|len32|raw:N   message framing on stdin/stdout (default lines):
                                  lines: one message per line, newline not sent
                                  len32: 4-byte little-endian length, then the message
                                  raw:N: stdin cut into N-byte messages; output unframed
    --type T                    message type of sent messages (0..65535, default 0)
    --backend auto|kernel|userspace   (default auto: kernel if /dev/secure_ipc opens)
    --socket-dir DIR            userspace rendezvous socket DIR/NAME.sock (default:
                                $XDG_RUNTIME_DIR/secure_ipc/NAME.sock where that is
                                this user's alone, else abstract @secure_ipc/NAME)
    --psk-file FILE             32-byte pre-shared key (both sides)
    --wait busy|block|spin      receive wait policy (default spin, then block)
    --send-only | --recv-only   one direction only (--recv-only never reads stdin)
  listen only:
    --slots N --slot-size N     geometry (powers of two; default 256 x 4096)
    --uid U|any --gid G --pidns PID|PATH peer policy (PATH: an nsfs file; userspace
                                default: the peer has this uid); --identity-pub HEX pins a peer identity
    --identity-file FILE        the owner's 32-byte X25519 identity key, proved to peers that pin it
  connect only:
    --identity-file FILE        32-byte X25519 private key proving the pinned identity
    --owner-uid U|any           the owner's uid (userspace; default: this uid)
    --owner-identity-pub HEX    the owner must prove this X25519 identity

OPTIONS (bench):
    --size N (64)  --batch N (32)  --count N (1000000)  --backend B  --wait W

OPTIONS (waydroid):
    --root DIR (/)  the tree holding var/lib/waydroid, etc/group, sys/, dev/
    --gid G         install: the node's group (default: the host's secure-ipc group)

OPTIONS (demo):
    --seconds N (10, at most 3600)  --rate HZ (8000)  --backend userspace|kernel (userspace)

EXAMPLES:
    sipc demo
    sipc listen cam0 > received.bin &  sipc connect cam0 --frame raw:4000 < frames.bin
    printf 'hello\\nworld\\n' | sipc connect cam0
    sipc listen sensors --uid 1000 --pidns $(pidof init)
    sipc bench --size 64 --batch 32 --backend userspace
    sipc stats cam0
    sudo sipc waydroid install && sipc waydroid status

EXIT CODES:
    0 ok   1 other error   2 bad usage   3 no such channel / exists / busy
    4 refused (policy, identity, PSK or wrong owner)   5 kernel module not loaded
    6 a record failed authentication   7 peer protocol error
    8 input not fully delivered (the peer hung up or stalled; the message says how many were)
    141 (SIGPIPE) stdout was closed
";
