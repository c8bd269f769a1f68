package dev.secureipc;

/** The owner has no peer yet (ENOTCONN). */
public class NotConnectedException extends SecureIpcException {
    private static final long serialVersionUID = 1L;

    /** Called from native code: message and errno. */
    public NotConnectedException(String message, int errno) {
        super(message, errno);
    }
}
