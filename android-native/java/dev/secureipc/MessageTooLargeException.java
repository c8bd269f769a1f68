package dev.secureipc;

/**
 * A message does not fit (EMSGSIZE): on send, it is larger than the
 * channel's {@link SecureIpc#maxMessageSize()}; on receive into a buffer, the
 * buffer has less room than the next message, which then stays queued for
 * the next receive.
 */
public class MessageTooLargeException extends SecureIpcException {
    private static final long serialVersionUID = 1L;
    private final int length;
    private final int maximum;

    /** Called from native code. */
    public MessageTooLargeException(String message, int errno, int length, int maximum) {
        super(message, errno);
        this.length = length;
        this.maximum = maximum;
    }

    /** The message's length in bytes. */
    public int length() {
        return length;
    }

    /** The most that fitted: the channel's maximum, or the buffer's room. */
    public int maximum() {
        return maximum;
    }
}
