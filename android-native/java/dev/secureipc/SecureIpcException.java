package dev.secureipc;

import java.io.IOException;

/**
 * A channel operation failed. Each failure the native library can report has
 * its own subclass; {@link #errno()} is the matching Linux errno (the same
 * number the C API returns, negated).
 */
public class SecureIpcException extends IOException {
    private static final long serialVersionUID = 1L;
    private final int errno;

    /** Called from native code: message and errno. */
    public SecureIpcException(String message, int errno) {
        super(message);
        this.errno = errno;
    }

    /** The Linux errno of this failure (for example 32, EPIPE, for a closed peer). */
    public int errno() {
        return errno;
    }
}
