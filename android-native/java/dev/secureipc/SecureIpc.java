package dev.secureipc;

import java.nio.ByteBuffer;
import java.nio.ReadOnlyBufferException;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * One endpoint of a sealed secure_ipc channel: the owner ({@link #create})
 * or the peer ({@link #attach}). Messages are whole (one send, one receive),
 * ordered, sealed with AES-256-GCM while they sit in the channel, and stamped
 * with the sender's kernel-attested pid/uid/gid.
 *
 * <pre>{@code
 * try (SecureIpc ch = SecureIpc.attach("imu0", new SecureIpc.Options())) {
 *     ch.send(1, sample);
 *     Message reply = ch.receive(100, TimeUnit.MILLISECONDS);
 * }
 * }</pre>
 *
 * Threads: one thread may send while another receives; calls of the same
 * kind are serialised. {@link #close()} may be called from any thread, any
 * number of times: calls blocked in send or receive then end with
 * IllegalStateException (within about 50 ms), and every later call throws
 * IllegalStateException. An endpoint that is never closed is closed when it
 * is garbage collected.
 */
public final class SecureIpc implements AutoCloseable {
    /** Which implementation carries the channel. */
    public enum Backend {
        /** The kernel module when /dev/secure_ipc can be opened, else userspace. */
        AUTO,
        /** /dev/secure_ipc. */
        KERNEL,
        /** memfd rings over a Unix-socket rendezvous, sealing in user space. */
        USERSPACE
    }

    /** How blocking calls wait. */
    public enum WaitMode {
        /** Spin a little (see {@link Options#spins}), then sleep. The default. */
        SPIN_THEN_BLOCK,
        /** Never sleep: lowest latency, one CPU busy. */
        BUSY_POLL,
        /** Sleep at once. */
        BLOCK
    }

    /** Channel options (a builder). */
    public static final class Options {
        private Backend backend = Backend.AUTO;
        private int slots = 256;
        private int slotSize = 4096;
        private WaitMode waitMode = WaitMode.SPIN_THEN_BLOCK;
        private int spins = 2000;
        private long peerUid = -1;
        private long peerGid = -1;
        private long peerPidNamespace = -1;
        private byte[] peerIdentity;
        private byte[] identitySecret;
        private byte[] psk;
        private String socketDir;

        /** Defaults: AUTO backend, 256 slots of 4096 bytes, SPIN_THEN_BLOCK, no policy. */
        public Options() {}

        public Options backend(Backend b) {
            backend = Objects.requireNonNull(b);
            return this;
        }

        /** Slots per direction, a power of two (create only). */
        public Options slots(int n) {
            slots = n;
            return this;
        }

        /** Bytes per slot, a power of two in 64..65536 (create only). */
        public Options slotSize(int n) {
            slotSize = n;
            return this;
        }

        public Options waitMode(WaitMode w) {
            waitMode = Objects.requireNonNull(w);
            return this;
        }

        /** Empty polls before sleeping in SPIN_THEN_BLOCK. */
        public Options spins(int n) {
            if (n < 0) {
                throw new IllegalArgumentException("spins must be >= 0");
            }
            spins = n;
            return this;
        }

        /** Only this uid may attach (create only). */
        public Options peerUid(int uid) {
            peerUid = uid & 0xffffffffL;
            return this;
        }

        /** Only a process with this gid may attach (create only). */
        public Options peerGid(int gid) {
            peerGid = gid & 0xffffffffL;
            return this;
        }

        /**
         * Only a process in the pid namespace that process {@code pid} is in
         * may attach (create only). The namespace is opened
         * ({@code /proc/PID/ns/pid}) and pinned by reference when the channel
         * is created, so a namespace created later with the same inode number
         * never matches; pass the pid of a process you know is the one you
         * mean (for example the container's init right after it started).
         */
        public Options peerPidNamespaceOf(int pid) {
            if (pid <= 0) {
                throw new IllegalArgumentException("pid must be > 0");
            }
            peerPidNamespace = pid;
            return this;
        }

        /** Only the holder of this X25519 key's private half may attach (create only). */
        public Options peerIdentity(byte[] x25519PublicKey) {
            peerIdentity = key32(x25519PublicKey, "peer identity public key");
            return this;
        }

        /** The X25519 private key this peer proves (attach only). */
        public Options identitySecret(byte[] x25519PrivateKey) {
            identitySecret = key32(x25519PrivateKey, "identity secret key");
            return this;
        }

        /** A 32-byte pre-shared key both sides supply. */
        public Options psk(byte[] key) {
            psk = key32(key, "pre-shared key");
            return this;
        }

        /** Userspace backend: rendezvous socket directory (default: an abstract socket). */
        public Options socketDir(String dir) {
            socketDir = Objects.requireNonNull(dir);
            return this;
        }

        private static byte[] key32(byte[] k, String what) {
            if (k == null || k.length != 32) {
                throw new IllegalArgumentException(what + " must be 32 bytes");
            }
            return k.clone();
        }
    }

    private static final long FOREVER = -1;

    private final long handle;
    private final String name;
    private final int maxMessageSize;
    private final AtomicBoolean closed = new AtomicBoolean();
    private final NativeCleaner.Registration registration;

    private SecureIpc(long handle, String name) {
        this.handle = handle;
        this.name = name;
        this.registration = NativeCleaner.register(this, handle);
        this.maxMessageSize = NativeBridge.maxMessageSize(this, handle);
    }

    private static SecureIpc open(boolean create, String name, Options o) throws SecureIpcException {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(o, "options");
        long h = NativeBridge.open(create, name, o.backend.ordinal(), o.slots, o.slotSize,
                o.waitMode.ordinal(), o.spins, o.peerUid, o.peerGid, o.peerPidNamespace,
                o.peerIdentity, o.identitySecret, o.psk, o.socketDir);
        return new SecureIpc(h, name);
    }

    /** Creates channel {@code name} as its owner; returns at once (a peer attaches later). */
    public static SecureIpc create(String name, Options options) throws SecureIpcException {
        return open(true, name, options);
    }

    /** {@link #create(String, Options)} with the default options. */
    public static SecureIpc create(String name) throws SecureIpcException {
        return create(name, new Options());
    }

    /** Attaches to channel {@code name} as its peer. */
    public static SecureIpc attach(String name, Options options) throws SecureIpcException {
        return open(false, name, options);
    }

    /** {@link #attach(String, Options)} with the default options. */
    public static SecureIpc attach(String name) throws SecureIpcException {
        return attach(name, new Options());
    }

    /** The channel's name. */
    public String name() {
        return name;
    }

    /** Largest payload of one message, in bytes. */
    public int maxMessageSize() {
        return maxMessageSize;
    }

    private void checkOpen() {
        if (closed.get()) {
            throw new IllegalStateException("SecureIpc channel '" + name + "' is closed");
        }
    }

    private static long nanos(long timeout, TimeUnit unit) {
        if (timeout < 0) {
            throw new IllegalArgumentException("timeout must be >= 0");
        }
        return Objects.requireNonNull(unit, "unit").toNanos(timeout);
    }

    // ---- send ------------------------------------------------------------

    /** Sends {@code payload} as a message of type 0, waiting while the channel is full. */
    public void send(byte[] payload) throws SecureIpcException {
        send(0, payload);
    }

    /** Sends {@code payload} as a message of {@code type} (0..65535), waiting while full. */
    public void send(int type, byte[] payload) throws SecureIpcException {
        Objects.requireNonNull(payload, "payload");
        send(type, payload, 0, payload.length);
    }

    /** Sends {@code length} bytes of {@code payload} from {@code offset}, waiting while full. */
    public void send(int type, byte[] payload, int offset, int length) throws SecureIpcException {
        Objects.requireNonNull(payload, "payload");
        checkRange(payload.length, offset, length);
        checkOpen();
        NativeBridge.send(this, handle, type, payload, offset, length, FOREVER);
    }

    /** Sends, waiting at most {@code timeout}; false if the channel stayed full. */
    public boolean send(int type, byte[] payload, long timeout, TimeUnit unit) throws SecureIpcException {
        Objects.requireNonNull(payload, "payload");
        long ns = nanos(timeout, unit);
        checkOpen();
        return NativeBridge.send(this, handle, type, payload, 0, payload.length, ns);
    }

    /** Sends without waiting; false if the channel is full (or has no peer yet). */
    public boolean trySend(int type, byte[] payload) throws SecureIpcException {
        Objects.requireNonNull(payload, "payload");
        checkOpen();
        return NativeBridge.send(this, handle, type, payload, 0, payload.length, 0);
    }

    /**
     * Sends the buffer's remaining bytes as one message of type 0 and
     * advances its position. A direct buffer is read in place (no copy in
     * the bridge).
     */
    public void send(ByteBuffer payload) throws SecureIpcException {
        send(0, payload);
    }

    /** As {@link #send(ByteBuffer)} with a message type. */
    public void send(int type, ByteBuffer payload) throws SecureIpcException {
        sendBuffer(type, payload, FOREVER);
    }

    /** As {@link #send(int, ByteBuffer)}, waiting at most {@code timeout}; false if still full. */
    public boolean send(int type, ByteBuffer payload, long timeout, TimeUnit unit) throws SecureIpcException {
        return sendBuffer(type, payload, nanos(timeout, unit));
    }

    private boolean sendBuffer(int type, ByteBuffer payload, long timeoutNanos) throws SecureIpcException {
        Objects.requireNonNull(payload, "payload");
        checkOpen();
        int pos = payload.position();
        int len = payload.remaining();
        boolean sent;
        if (payload.isDirect()) {
            sent = NativeBridge.sendDirect(this, handle, type, payload, pos, len, timeoutNanos);
        } else if (payload.hasArray()) {
            sent = NativeBridge.send(this, handle, type, payload.array(), payload.arrayOffset() + pos, len, timeoutNanos);
        } else {
            byte[] copy = new byte[len];
            payload.duplicate().get(copy);
            sent = NativeBridge.send(this, handle, type, copy, 0, len, timeoutNanos);
        }
        if (sent) {
            payload.position(pos + len);
        }
        return sent;
    }

    // ---- receive ---------------------------------------------------------

    /**
     * Receives the next message, waiting as long as it takes. The payload
     * array is allocated while the message is still queued: if that throws
     * OutOfMemoryError, the message stays queued and the next receive (of
     * any form) returns it.
     */
    public Message receive() throws SecureIpcException {
        return receiveArray(FOREVER);
    }

    /** Receives the next message, waiting at most {@code timeout}; null if none came. */
    public Message receive(long timeout, TimeUnit unit) throws SecureIpcException {
        return receiveArray(nanos(timeout, unit));
    }

    /** Receives the next message if one is waiting; null otherwise. */
    public Message tryReceive() throws SecureIpcException {
        return receiveArray(0);
    }

    private Message receiveArray(long timeoutNanos) throws SecureIpcException {
        checkOpen();
        long[] meta = new long[NativeBridge.META_SIZE];
        byte[] payload = NativeBridge.receive(this, handle, timeoutNanos, meta);
        return payload == null ? null : new Message(payload, ByteBuffer.wrap(payload), meta);
    }

    /**
     * Receives the next message into {@code dst} at its position and
     * advances the position; the returned message's payload is a view of
     * those bytes. A direct buffer is written in place (one copy, from the
     * channel into the buffer). If the message is longer than
     * {@code dst.remaining()}, MessageTooLargeException is thrown and the
     * message stays queued for the next receive.
     */
    public Message receive(ByteBuffer dst) throws SecureIpcException {
        return receiveBuffer(dst, FOREVER);
    }

    /** As {@link #receive(ByteBuffer)}, waiting at most {@code timeout}; null if none came. */
    public Message receive(ByteBuffer dst, long timeout, TimeUnit unit) throws SecureIpcException {
        return receiveBuffer(dst, nanos(timeout, unit));
    }

    private Message receiveBuffer(ByteBuffer dst, long timeoutNanos) throws SecureIpcException {
        Objects.requireNonNull(dst, "dst");
        if (dst.isReadOnly()) {
            throw new ReadOnlyBufferException();
        }
        checkOpen();
        long[] meta = new long[NativeBridge.META_SIZE];
        int pos = dst.position();
        int n;
        if (dst.isDirect()) {
            n = NativeBridge.receiveDirect(this, handle, dst, pos, dst.remaining(), timeoutNanos, meta);
        } else {
            n = NativeBridge.receiveArray(this, handle, dst.array(), dst.arrayOffset() + pos, dst.remaining(),
                    timeoutNanos, meta);
        }
        if (n < 0) {
            return null;
        }
        ByteBuffer view = dst.duplicate();
        view.position(pos);
        view.limit(pos + n);
        dst.position(pos + n);
        return new Message(null, view.slice(), meta);
    }

    // ---- the rest --------------------------------------------------------

    /** This endpoint's counters. */
    public Stats stats() throws SecureIpcException {
        checkOpen();
        return new Stats(NativeBridge.stats(this, handle));
    }

    /** Who the other endpoint is (kernel- or SO_PEERCRED-attested). */
    public PeerCredentials peerCredentials() throws SecureIpcException {
        checkOpen();
        return new PeerCredentials(NativeBridge.peerCredentials(this, handle));
    }

    /** Whether {@link #close()} was called. */
    public boolean isClosed() {
        return closed.get();
    }

    /**
     * Closes the endpoint: the peer sees PeerClosedException once it has
     * received everything already sent. Harmless when called again.
     */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            registration.clean();
        }
    }

    /**
     * Native endpoints alive in this process (created, not yet freed), for
     * leak checks in tests.
     */
    public static long nativeHandleCount() {
        return NativeBridge.liveHandles();
    }

    private static void checkRange(int size, int offset, int length) {
        if (offset < 0 || length < 0 || offset > size - length) {
            throw new IndexOutOfBoundsException(
                    "offset " + offset + ", length " + length + " outside an array of " + size);
        }
    }

    @Override
    public String toString() {
        return "SecureIpc{" + name + (closed.get() ? ", closed" : "") + "}";
    }
}
