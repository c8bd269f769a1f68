package dev.secureipc;

/** No channel of that name exists (ENOENT): is the owner running? */
public class NoSuchChannelException extends SecureIpcException {
    private static final long serialVersionUID = 1L;

    /** Called from native code: message and errno. */
    public NoSuchChannelException(String message, int errno) {
        super(message, errno);
    }
}
