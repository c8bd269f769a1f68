package dev.secureipc;

/** A channel of that name exists already (EEXIST). */
public class ChannelExistsException extends SecureIpcException {
    private static final long serialVersionUID = 1L;

    /** Called from native code: message and errno. */
    public ChannelExistsException(String message, int errno) {
        super(message, errno);
    }
}
