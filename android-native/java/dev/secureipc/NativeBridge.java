package dev.secureipc;

import java.nio.ByteBuffer;

/**
 * The natives of libsecure_ipc_jni.so (android-native/src/jni_bridge.rs).
 * Package-private: {@link SecureIpc} checks arguments before calling them and
 * the native side checks them again. Handles are registry keys, not
 * pointers: a closed or unknown handle makes a call throw
 * IllegalStateException, never touch freed memory.
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

    static native boolean send(long handle, int type, byte[] data, int off, int len, long timeoutNanos);

    static native boolean sendDirect(long handle, int type, ByteBuffer buf, int off, int len, long timeoutNanos);

    static native byte[] receive(long handle, long timeoutNanos, long[] meta);

    static native int receiveDirect(long handle, ByteBuffer buf, int off, int room, long timeoutNanos, long[] meta);

    static native int receiveArray(long handle, byte[] dst, int off, int room, long timeoutNanos, long[] meta);

    static native int maxMessageSize(long handle);

    static native long[] stats(long handle);

    static native long[] peerCredentials(long handle);

    static native void close(long handle);

    static native long liveHandles();
}
