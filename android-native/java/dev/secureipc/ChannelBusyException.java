package dev.secureipc;

/** The channel already has a peer attached; only one at a time (EBUSY). */
public class ChannelBusyException extends SecureIpcException {
    private static final long serialVersionUID = 1L;

    /** Called from native code: message and errno. */
    public ChannelBusyException(String message, int errno) {
        super(message, errno);
    }
}
