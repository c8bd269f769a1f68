package dev.secureipc;

import java.nio.ByteBuffer;

/** One received message: its payload and the stamp the channel put on it. */
public final class Message {
    private final byte[] array;
    private final ByteBuffer view;
    private final int type;
    private final long sequence;
    private final long timestampNanos;
    private final int senderPid;
    private final int senderUid;
    private final int senderGid;

    Message(byte[] array, ByteBuffer view, long[] meta) {
        this.array = array;
        this.view = view;
        this.type = (int) meta[NativeBridge.META_TYPE];
        this.sequence = meta[NativeBridge.META_SEQ];
        this.timestampNanos = meta[NativeBridge.META_TIMESTAMP];
        this.senderPid = (int) meta[NativeBridge.META_PID];
        this.senderUid = (int) meta[NativeBridge.META_UID];
        this.senderGid = (int) meta[NativeBridge.META_GID];
    }

    /**
     * The payload. From {@link SecureIpc#receive()} this is the message's own
     * array (no copy); from {@code receive(ByteBuffer)} a copy of the bytes
     * written into the caller's buffer.
     */
    public byte[] payload() {
        if (array != null) {
            return array;
        }
        byte[] copy = new byte[view.remaining()];
        view.duplicate().get(copy);
        return copy;
    }

    /** A read-only view of the payload (for receive(ByteBuffer): of the caller's buffer). */
    public ByteBuffer payloadBuffer() {
        return view.asReadOnlyBuffer();
    }

    /** Payload length in bytes. */
    public int length() {
        return view.remaining();
    }

    /** The sender's message type, 0..65535. */
    public int type() {
        return type;
    }

    /** Sequence number in this direction, from 0, strictly increasing. */
    public long sequence() {
        return sequence;
    }

    /** CLOCK_MONOTONIC at the sender's commit, in ns (comparable with System.nanoTime() on Linux). */
    public long timestampNanos() {
        return timestampNanos;
    }

    /** The sender's pid as this process sees it (0 if not visible from here). */
    public int senderPid() {
        return senderPid;
    }

    /** The sender's uid (attested by the kernel or SO_PEERCRED, not claimed by the sender). */
    public int senderUid() {
        return senderUid;
    }

    /** The sender's gid. */
    public int senderGid() {
        return senderGid;
    }

    @Override
    public String toString() {
        return "Message{seq=" + sequence + ", type=" + type + ", length=" + length()
                + ", pid=" + senderPid + ", uid=" + senderUid + "}";
    }
}
