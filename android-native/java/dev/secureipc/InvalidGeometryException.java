package dev.secureipc;

/** Slot count or slot size is not a power of two in range (EINVAL). */
public class InvalidGeometryException extends SecureIpcException {
    private static final long serialVersionUID = 1L;

    /** Called from native code: message and errno. */
    public InvalidGeometryException(String message, int errno) {
        super(message, errno);
    }
}
