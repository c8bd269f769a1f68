package dev.secureipc;

/** The other side broke the rendezvous or ring protocol (EPROTO). */
public class ProtocolException extends SecureIpcException {
    private static final long serialVersionUID = 1L;

    /** Called from native code: message and errno. */
    public ProtocolException(String message, int errno) {
        super(message, errno);
    }
}
