package dev.secureipc;

/** The kernel backend was requested but /dev/secure_ipc cannot be used (ENODEV). */
public class ModuleNotLoadedException extends SecureIpcException {
    private static final long serialVersionUID = 1L;

    /** Called from native code: message and errno. */
    public ModuleNotLoadedException(String message, int errno) {
        super(message, errno);
    }
}
