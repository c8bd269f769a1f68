package dev.secureipc;

import java.nio.ByteBuffer;

/**
 * The natives of libsecure_ipc_jni.so (android-native/src/jni_bridge.rs).
 * Package-private: {@link SecureIpc} checks arguments before calling them and
 * the native side checks them again. Handles are registry keys, not
 * pointers: a closed or unknown handle makes a call throw
 * IllegalStateException, never touch freed memory.
 *
 * <p>Keeping the owner alive: every native that takes a handle also takes
 * {@code owner}, the {@link SecureIpc} the handle belongs to, and ignores
 * it. A native method's arguments are JNI local references, which the JVM
 * keeps reachable until the native returns; so the owner cannot be
 * collected, and its {@link NativeCleaner} cannot close the handle, while a
 * call on it runs (even when the caller drops its last reference and the
 * JIT treats {@code this} as dead after reading {@code handle}). This is
 * what {@code Reference.reachabilityFence(this)} in a {@code finally} would
 * do, which this code cannot use: the API compiles for Java 8
 * ({@code --release 8}) and Android has the method only from API 28. The
 * argument costs nothing (no extra JNI transition, unlike a native no-op
 * called after each call) and, unlike reading a field of {@code this}
 * afterwards, does not rely on what the JIT may move or drop.
 */
final class NativeBridge {
    static {
        System.loadLibrary("secure_ipc_jni");
    }

    /** Indices into the {@code long[] meta} that receive calls fill. */
    static final int META_LENGTH = 0;
    static final int META_TYPE = 1;
    static final int META_SEQ = 2;
    static final int META_TIMESTAMP = 3;
    static final int META_PID = 4;
    static final int META_UID = 5;
    static final int META_GID = 6;
    static final int META_SIZE = 7;

    private NativeBridge() {}

    static native long open(boolean create, String name, int backend, int slots, int slotSize,
            int waitMode, int spins, long peerUid, long peerGid, long peerPidns,
            byte[] peerIdentity, byte[] identitySecret, byte[] psk, String socketDir);

    static native boolean send(Object owner, long handle, int type, byte[] data, int off, int len, long timeoutNanos);

    static native boolean sendDirect(Object owner, long handle, int type, ByteBuffer buf, int off, int len, long timeoutNanos);

    static native byte[] receive(Object owner, long handle, long timeoutNanos, long[] meta);

    static native int receiveDirect(Object owner, long handle, ByteBuffer buf, int off, int room, long timeoutNanos, long[] meta);

    static native int receiveArray(Object owner, long handle, byte[] dst, int off, int room, long timeoutNanos, long[] meta);

    static native int maxMessageSize(Object owner, long handle);

    static native long[] stats(Object owner, long handle);

    static native long[] peerCredentials(Object owner, long handle);

    static native void close(long handle);

    static native long liveHandles();
}
