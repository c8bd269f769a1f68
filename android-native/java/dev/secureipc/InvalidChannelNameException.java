package dev.secureipc;

/** The channel name is not 1 to 31 bytes of [A-Za-z0-9._-] (EINVAL). */
public class InvalidChannelNameException extends SecureIpcException {
    private static final long serialVersionUID = 1L;

    /** Called from native code: message and errno. */
    public InvalidChannelNameException(String message, int errno) {
        super(message, errno);
    }
}
