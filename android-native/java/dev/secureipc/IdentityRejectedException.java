package dev.secureipc;

/** The channel pins a peer identity and the proof was missing or wrong (EKEYREJECTED). */
public class IdentityRejectedException extends SecureIpcException {
    private static final long serialVersionUID = 1L;

    /** Called from native code: message and errno. */
    public IdentityRejectedException(String message, int errno) {
        super(message, errno);
    }
}
