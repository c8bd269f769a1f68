package dev.secureipc;

/** The two sides supplied different pre-shared keys, or only one side did (EKEYREJECTED). */
public class PskMismatchException extends SecureIpcException {
    private static final long serialVersionUID = 1L;

    /** Called from native code: message and errno. */
    public PskMismatchException(String message, int errno) {
        super(message, errno);
    }
}
