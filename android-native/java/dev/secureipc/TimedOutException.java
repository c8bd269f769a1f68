package dev.secureipc;

/** A bounded wait inside the library (such as the attach handshake) ran out (ETIMEDOUT). */
public class TimedOutException extends SecureIpcException {
    private static final long serialVersionUID = 1L;

    /** Called from native code: message and errno. */
    public TimedOutException(String message, int errno) {
        super(message, errno);
    }
}
