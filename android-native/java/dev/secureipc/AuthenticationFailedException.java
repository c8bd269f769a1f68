package dev.secureipc;

/** A record failed AES-GCM authentication (tampered, replayed or sealed under another key) and was dropped (EBADMSG). */
public class AuthenticationFailedException extends SecureIpcException {
    private static final long serialVersionUID = 1L;

    /** Called from native code: message and errno. */
    public AuthenticationFailedException(String message, int errno) {
        super(message, errno);
    }
}
