package dev.secureipc;

/** No free slot in the channel right now (EAGAIN); the non-blocking calls return false instead. */
public class ChannelFullException extends SecureIpcException {
    private static final long serialVersionUID = 1L;

    /** Called from native code: message and errno. */
    public ChannelFullException(String message, int errno) {
        super(message, errno);
    }
}
