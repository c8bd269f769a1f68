package dev.secureipc;

/** The channel's peer policy refused this process, or it may not create channels (EACCES). */
public class PermissionDeniedException extends SecureIpcException {
    private static final long serialVersionUID = 1L;

    /** Called from native code: message and errno. */
    public PermissionDeniedException(String message, int errno) {
        super(message, errno);
    }
}
