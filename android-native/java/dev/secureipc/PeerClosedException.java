package dev.secureipc;

/** The other endpoint closed the channel and everything it sent has been received (EPIPE). */
public class PeerClosedException extends SecureIpcException {
    private static final long serialVersionUID = 1L;

    /** Called from native code: message and errno. */
    public PeerClosedException(String message, int errno) {
        super(message, errno);
    }
}
