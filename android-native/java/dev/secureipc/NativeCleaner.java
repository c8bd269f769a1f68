package dev.secureipc;

import java.lang.ref.PhantomReference;
import java.lang.ref.ReferenceQueue;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Closes the native endpoint of a {@link SecureIpc} that became unreachable
 * without {@code close()}. A phantom reference and one daemon thread, rather
 * than java.lang.ref.Cleaner, which Android only has from API 33.
 */
final class NativeCleaner {
    private static final ReferenceQueue<Object> QUEUE = new ReferenceQueue<>();
    /** Keeps the references themselves reachable until they are cleaned. */
    private static final Set<Registration> PENDING = ConcurrentHashMap.newKeySet();

    static {
        Thread t = new Thread(NativeCleaner::drain, "secure-ipc-cleaner");
        t.setDaemon(true);
        t.start();
    }

    private NativeCleaner() {}

    /** Closes {@code handle} once: explicitly, or after {@code owner} is collected. */
    static final class Registration extends PhantomReference<Object> {
        private final long handle;
        private final AtomicBoolean done = new AtomicBoolean();

        private Registration(Object owner, long handle) {
            super(owner, QUEUE);
            this.handle = handle;
        }

        /** Closes the native handle; later calls do nothing. */
        void clean() {
            if (done.compareAndSet(false, true)) {
                PENDING.remove(this);
                NativeBridge.close(handle);
            }
        }
    }

    static Registration register(Object owner, long handle) {
        Registration r = new Registration(owner, handle);
        PENDING.add(r);
        return r;
    }

    private static void drain() {
        while (true) {
            try {
                ((Registration) QUEUE.remove()).clean();
            } catch (InterruptedException e) {
                // Daemon thread: keep serving.
            } catch (RuntimeException e) {
                // A failing close must not stop the cleaner for everyone else.
            }
        }
    }
}
