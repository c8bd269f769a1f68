package dev.secureipc.test;

import dev.secureipc.ChannelExistsException;
import dev.secureipc.IdentityRejectedException;
import dev.secureipc.InvalidChannelNameException;
import dev.secureipc.InvalidGeometryException;
import dev.secureipc.Message;
import dev.secureipc.MessageTooLargeException;
import dev.secureipc.NoSuchChannelException;
import dev.secureipc.PeerClosedException;
import dev.secureipc.PeerCredentials;
import dev.secureipc.PermissionDeniedException;
import dev.secureipc.PskMismatchException;
import dev.secureipc.SecureIpc;
import dev.secureipc.SecureIpcException;
import dev.secureipc.Stats;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Tests of the Java API on the real JVM, over the userspace backend or (with
 * -Dsipc.backend=KERNEL) the kernel module: one behaviour per test, named
 * after it. Prints one line per test and a final
 * "N passed, N failed"; exits 1 if anything failed.
 *
 * Run (see xtask/src/android.rs, step "android: JVM tests"):
 *   java -Djava.library.path=target/debug -cp CLASSES dev.secureipc.test.SecureIpcJvmTest [filter]
 */
@SuppressWarnings("try") // try-with-resources that only keep an endpoint open
public final class SecureIpcJvmTest {
    private interface Body {
        void run() throws Exception;
    }

    private static final class Failure extends RuntimeException {
        private static final long serialVersionUID = 1L;

        Failure(String m) {
            super(m);
        }
    }

    private static int counter;

    /** A channel name no other test (or concurrent test run) uses. */
    private static String uniqueName() {
        return "j" + ProcessHandle.current().pid() + "-" + (counter++);
    }

    /**
     * The backend under test: {@code -Dsipc.backend=KERNEL} runs every test
     * over /dev/secure_ipc (xtask does so in a guest with the module
     * loaded); the default is the userspace backend.
     */
    private static final SecureIpc.Backend BACKEND =
            SecureIpc.Backend.valueOf(System.getProperty("sipc.backend", "USERSPACE"));

    private static SecureIpc.Options opts() {
        return new SecureIpc.Options().backend(BACKEND);
    }

    private static void check(boolean ok, String what) {
        if (!ok) {
            throw new Failure(what);
        }
    }

    private static void checkEq(long expected, long actual, String what) {
        if (expected != actual) {
            throw new Failure(what + ": expected " + expected + ", got " + actual);
        }
    }

    private static <T extends Throwable> T expectThrows(Class<T> type, Body body) throws Exception {
        try {
            body.run();
        } catch (Throwable t) {
            if (type.isInstance(t)) {
                return type.cast(t);
            }
            throw new Failure("expected " + type.getSimpleName() + ", got " + t);
        }
        throw new Failure("expected " + type.getSimpleName() + ", nothing was thrown");
    }

    /** An owner and its attached peer. */
    private static final class Pair implements AutoCloseable {
        final SecureIpc owner;
        final SecureIpc peer;

        Pair(SecureIpc.Options o) throws Exception {
            String name = uniqueName();
            owner = SecureIpc.create(name, o);
            peer = SecureIpc.attach(name, opts());
        }

        Pair() throws Exception {
            this(opts());
        }

        @Override
        public void close() {
            peer.close();
            owner.close();
        }
    }

    private static byte[] numbered(int i, int len) {
        byte[] b = new byte[len];
        for (int k = 0; k < len; k++) {
            b[k] = (byte) (i * 31 + k);
        }
        return b;
    }

    private static int myUid() throws Exception {
        for (String line : Files.readAllLines(Paths.get("/proc/self/status"))) {
            if (line.startsWith("Uid:")) {
                return Integer.parseInt(line.substring(4).trim().split("\\s+")[0]);
            }
        }
        throw new Failure("no Uid: line in /proc/self/status");
    }

    // ---- tests -----------------------------------------------------------

    /** 100,000 messages owner -> peer -> owner, each checked for content, type and order. */
    static void roundTripOf100000Messages() throws Exception {
        final int n = 100_000;
        try (Pair p = new Pair()) {
            AtomicReference<Throwable> echoError = new AtomicReference<>();
            Thread echo = new Thread(() -> {
                try {
                    for (int i = 0; i < n; i++) {
                        Message m = p.peer.receive();
                        p.peer.send(m.type(), m.payload());
                    }
                } catch (Throwable t) {
                    echoError.set(t);
                }
            }, "echo");
            AtomicReference<Throwable> sendError = new AtomicReference<>();
            Thread sender = new Thread(() -> {
                try {
                    for (int i = 0; i < n; i++) {
                        p.owner.send(i & 0xffff, numbered(i, 1 + (i % 200)));
                    }
                } catch (Throwable t) {
                    sendError.set(t);
                }
            }, "sender");
            echo.start();
            sender.start();
            for (int i = 0; i < n; i++) {
                Message m = p.owner.receive(10, TimeUnit.SECONDS);
                check(m != null, "echo " + i + " did not come back within 10 s (echo error: "
                        + echoError.get() + ", send error: " + sendError.get() + ")");
                checkEq(i, m.sequence(), "sequence of echo " + i);
                checkEq(i & 0xffff, m.type(), "type of echo " + i);
                check(Arrays.equals(numbered(i, 1 + (i % 200)), m.payload()), "payload of echo " + i);
            }
            sender.join();
            echo.join();
            check(echoError.get() == null, "echo thread failed: " + echoError.get());
            check(sendError.get() == null, "sender thread failed: " + sendError.get());
        }
    }

    /** A direct buffer is sent from and received into in place; positions advance. */
    static void directBufferRoundTrip() throws Exception {
        try (Pair p = new Pair()) {
            ByteBuffer out = ByteBuffer.allocateDirect(64);
            out.put("direct-buffer payload".getBytes(StandardCharsets.US_ASCII));
            out.flip();
            int len = out.remaining();
            p.owner.send(7, out);
            checkEq(len, out.position(), "send advanced the position over the payload");
            ByteBuffer in = ByteBuffer.allocateDirect(128);
            in.position(10);
            Message m = p.peer.receive(in, 5, TimeUnit.SECONDS);
            check(m != null, "message arrived");
            checkEq(10 + len, in.position(), "receive advanced the position");
            checkEq(7, m.type(), "type");
            checkEq(len, m.length(), "length");
            byte[] got = new byte[len];
            ByteBuffer view = in.duplicate();
            view.position(10);
            view.get(got);
            check(Arrays.equals("direct-buffer payload".getBytes(StandardCharsets.US_ASCII), got),
                    "bytes written at the buffer's position");
            check(Arrays.equals(got, m.payload()), "message payload is those bytes");
        }
    }

    /** Heap buffers (array-backed, with an offset) work too. */
    static void heapBufferRoundTrip() throws Exception {
        try (Pair p = new Pair()) {
            ByteBuffer out = ByteBuffer.wrap(numbered(3, 100), 20, 50).slice();
            p.owner.send(out);
            ByteBuffer in = ByteBuffer.allocate(80);
            Message m = p.peer.receive(in, 5, TimeUnit.SECONDS);
            check(m != null, "message arrived");
            checkEq(50, m.length(), "length");
            check(Arrays.equals(Arrays.copyOfRange(numbered(3, 100), 20, 70), m.payload()), "payload");
        }
    }

    /** The stamp carries this process's pid and uid and a monotonic commit time. */
    static void messageCarriesSenderCredentialsAndTimestamp() throws Exception {
        try (Pair p = new Pair()) {
            long before = System.nanoTime();
            p.peer.send(42, new byte[] {1, 2, 3});
            long after = System.nanoTime();
            Message m = p.owner.receive(5, TimeUnit.SECONDS);
            check(m != null, "message arrived");
            checkEq(ProcessHandle.current().pid(), m.senderPid(), "sender pid");
            checkEq(myUid(), m.senderUid(), "sender uid");
            check(m.timestampNanos() >= before && m.timestampNanos() <= after,
                    "timestamp " + m.timestampNanos() + " within [" + before + ", " + after + "]");
            checkEq(0, m.sequence(), "first sequence number");
        }
    }

    /** Messages sent before the peer closed are delivered, then PeerClosedException. */
    static void receiveAfterPeerClosedDrainsThenThrows() throws Exception {
        try (Pair p = new Pair()) {
            for (int i = 0; i < 3; i++) {
                p.peer.send(numbered(i, 10));
            }
            p.peer.close();
            for (int i = 0; i < 3; i++) {
                Message m = p.owner.receive(5, TimeUnit.SECONDS);
                check(m != null && Arrays.equals(numbered(i, 10), m.payload()), "drained message " + i);
            }
            PeerClosedException e = expectThrows(PeerClosedException.class, () -> p.owner.receive(5, TimeUnit.SECONDS));
            checkEq(32, e.errno(), "errno is EPIPE");
        }
    }

    /** Sending to a closed peer throws PeerClosedException. */
    static void sendAfterPeerClosedThrows() throws Exception {
        try (Pair p = new Pair()) {
            p.peer.close();
            expectThrows(PeerClosedException.class, () -> {
                // The hang-up may take a moment to be seen; a bounded number of sends.
                for (int i = 0; i < 100_000; i++) {
                    p.owner.send(new byte[] {1});
                }
            });
        }
    }

    /** A payload one byte over the maximum throws MessageTooLargeException with the sizes. */
    static void oversizeSendThrowsMessageTooLarge() throws Exception {
        try (Pair p = new Pair(opts().slotSize(256))) {
            int max = p.owner.maxMessageSize();
            check(max > 0 && max <= 256, "max message size " + max + " fits the slot");
            p.owner.send(new byte[max]);
            MessageTooLargeException e = expectThrows(MessageTooLargeException.class,
                    () -> p.owner.send(new byte[max + 1]));
            checkEq(max + 1, e.length(), "reported length");
            checkEq(max, e.maximum(), "reported maximum");
            expectThrows(MessageTooLargeException.class, () -> p.owner.send(ByteBuffer.allocateDirect(max + 1)));
        }
    }

    /** A receive buffer that is too small throws and keeps the message for the next receive. */
    static void tooSmallReceiveBufferKeepsMessage() throws Exception {
        try (Pair p = new Pair()) {
            p.owner.send(numbered(9, 100));
            MessageTooLargeException e = expectThrows(MessageTooLargeException.class,
                    () -> p.peer.receive(ByteBuffer.allocateDirect(10), 5, TimeUnit.SECONDS));
            checkEq(100, e.length(), "reported message length");
            checkEq(10, e.maximum(), "reported room");
            Message m = p.peer.receive(ByteBuffer.allocateDirect(100), 5, TimeUnit.SECONDS);
            check(m != null && Arrays.equals(numbered(9, 100), m.payload()), "the same message, intact");
            checkEq(0, m.sequence(), "nothing was skipped");
        }
    }

    /** close() twice is harmless and frees the native endpoint once. */
    static void closeTwiceIsHarmless() throws Exception {
        long before = SecureIpc.nativeHandleCount();
        SecureIpc ch = SecureIpc.create(uniqueName(), opts());
        checkEq(before + 1, SecureIpc.nativeHandleCount(), "one endpoint alive");
        ch.close();
        ch.close();
        check(ch.isClosed(), "isClosed");
        checkEq(before, SecureIpc.nativeHandleCount(), "endpoint freed");
    }

    /** Every call after close() throws IllegalStateException. */
    static void useAfterCloseThrowsIllegalState() throws Exception {
        SecureIpc ch = SecureIpc.create(uniqueName(), opts());
        ch.close();
        expectThrows(IllegalStateException.class, () -> ch.send(new byte[1]));
        expectThrows(IllegalStateException.class, () -> ch.send(ByteBuffer.allocateDirect(1)));
        expectThrows(IllegalStateException.class, ch::receive);
        expectThrows(IllegalStateException.class, () -> ch.receive(ByteBuffer.allocateDirect(8)));
        expectThrows(IllegalStateException.class, ch::stats);
    }

    /** close() from another thread ends a blocked receive with IllegalStateException. */
    static void closeWakesBlockedReceiver() throws Exception {
        try (Pair p = new Pair()) {
            AtomicReference<Throwable> outcome = new AtomicReference<>();
            CountDownLatch done = new CountDownLatch(1);
            Thread t = new Thread(() -> {
                try {
                    p.owner.receive();
                } catch (Throwable e) {
                    outcome.set(e);
                }
                done.countDown();
            });
            t.start();
            Thread.sleep(100);
            p.owner.close();
            check(done.await(2, TimeUnit.SECONDS), "receiver returned within 2 s of close()");
            check(outcome.get() instanceof IllegalStateException, "receiver got IllegalStateException: " + outcome.get());
        }
    }

    /** close() from another thread ends a send blocked on a full channel with IllegalStateException. */
    static void closeWakesBlockedSender() throws Exception {
        try (Pair p = new Pair(opts().slots(2))) {
            p.owner.send(new byte[8]);
            check(p.peer.receive(5, TimeUnit.SECONDS) != null, "peer attached");
            while (p.owner.trySend(0, new byte[8])) {
                // fill the channel
            }
            AtomicReference<Throwable> outcome = new AtomicReference<>();
            CountDownLatch done = new CountDownLatch(1);
            Thread t = new Thread(() -> {
                try {
                    p.owner.send(new byte[8]);
                } catch (Throwable e) {
                    outcome.set(e);
                }
                done.countDown();
            });
            t.start();
            Thread.sleep(100);
            check(done.getCount() == 1, "send blocks while the channel is full");
            p.owner.close();
            check(done.await(2, TimeUnit.SECONDS), "sender returned within 2 s of close()");
            check(outcome.get() instanceof IllegalStateException, "sender got IllegalStateException: " + outcome.get());
        }
    }

    /** A receive with a timeout and nothing to receive returns null after the timeout. */
    static void receiveTimeoutReturnsNull() throws Exception {
        try (Pair p = new Pair()) {
            long t0 = System.nanoTime();
            check(p.owner.receive(80, TimeUnit.MILLISECONDS) == null, "null on timeout");
            long ms = (System.nanoTime() - t0) / 1_000_000;
            check(ms >= 80 && ms < 2000, "waited " + ms + " ms for an 80 ms timeout");
            check(p.owner.tryReceive() == null, "tryReceive on an empty channel is null");
        }
    }

    /** A full channel makes a bounded send return false, trySend too. */
    static void sendTimeoutOnFullChannelReturnsFalse() throws Exception {
        try (Pair p = new Pair(opts().slots(2))) {
            // Until the owner has seen the peer attach, trySend is false too:
            // one round first, so what follows measures a full channel.
            p.owner.send(new byte[8]);
            check(p.peer.receive(5, TimeUnit.SECONDS) != null, "first message arrives");
            int sent = 0;
            while (p.owner.trySend(0, new byte[8])) {
                sent++;
                check(sent < 1000, "a 2-slot channel fills up");
            }
            check(!p.owner.send(0, new byte[8], 50, TimeUnit.MILLISECONDS), "bounded send on a full channel");
            check(p.peer.receive(1, TimeUnit.SECONDS) != null, "peer drains one");
            check(p.owner.send(0, new byte[8], 1, TimeUnit.SECONDS), "then there is room again");
        }
    }

    static void attachToMissingChannelThrowsNoSuchChannel() throws Exception {
        expectThrows(NoSuchChannelException.class, () -> SecureIpc.attach(uniqueName(), opts()));
    }

    static void createExistingChannelThrowsChannelExists() throws Exception {
        String name = uniqueName();
        SecureIpc first = SecureIpc.create(name, opts());
        try {
            expectThrows(ChannelExistsException.class, () -> SecureIpc.create(name, opts()));
        } finally {
            first.close();
        }
    }

    static void invalidNameThrowsInvalidChannelName() throws Exception {
        expectThrows(InvalidChannelNameException.class, () -> SecureIpc.create("bad/name", opts()));
        expectThrows(InvalidChannelNameException.class, () -> SecureIpc.create("", opts()));
        expectThrows(InvalidChannelNameException.class,
                () -> SecureIpc.create("a-name-that-is-longer-than-31-bytes", opts()));
    }

    static void invalidGeometryThrowsInvalidGeometry() throws Exception {
        expectThrows(InvalidGeometryException.class, () -> SecureIpc.create(uniqueName(), opts().slots(3)));
        expectThrows(InvalidGeometryException.class, () -> SecureIpc.create(uniqueName(), opts().slotSize(32)));
    }

    /** Bad arguments fail in Java before reaching the channel. */
    static void badArgumentsThrowStandardExceptions() throws Exception {
        try (Pair p = new Pair()) {
            expectThrows(NullPointerException.class, () -> p.owner.send((byte[]) null));
            expectThrows(IndexOutOfBoundsException.class, () -> p.owner.send(0, new byte[4], 2, 3));
            expectThrows(IllegalArgumentException.class, () -> p.owner.send(70000, new byte[1]));
            expectThrows(IllegalArgumentException.class, () -> opts().psk(new byte[5]));
            expectThrows(IllegalArgumentException.class,
                    () -> SecureIpc.create(uniqueName(), opts().psk(new byte[32])));
            expectThrows(java.nio.ReadOnlyBufferException.class,
                    () -> p.owner.receive(ByteBuffer.allocate(4).asReadOnlyBuffer()));
        }
    }

    /** stats() counts what was sealed and opened. */
    static void statsCountMessages() throws Exception {
        try (Pair p = new Pair()) {
            for (int i = 0; i < 10; i++) {
                p.owner.send(new byte[16]);
            }
            for (int i = 0; i < 10; i++) {
                check(p.peer.receive(5, TimeUnit.SECONDS) != null, "message " + i);
            }
            Stats tx = p.owner.stats();
            Stats rx = p.peer.stats();
            checkEq(10, tx.sealedMessages, "owner sealed");
            checkEq(160, tx.sealedBytes, "owner sealed bytes");
            checkEq(10, rx.openedMessages, "peer opened");
        }
    }

    private static long myPidNamespace() throws Exception {
        String link = Files.readSymbolicLink(Paths.get("/proc/self/ns/pid")).toString(); // pid:[N]
        return Long.parseLong(link.substring(link.indexOf('[') + 1, link.indexOf(']')));
    }

    /** Raw 32-byte X25519 keys: the tail of the JDK's X.509 / PKCS#8 encodings. */
    private static byte[][] x25519KeyPair() throws Exception {
        KeyPair kp = KeyPairGenerator.getInstance("X25519").generateKeyPair();
        byte[] pub = kp.getPublic().getEncoded();
        byte[] priv = kp.getPrivate().getEncoded();
        return new byte[][] {Arrays.copyOfRange(pub, pub.length - 32, pub.length),
                Arrays.copyOfRange(priv, priv.length - 32, priv.length)};
    }

    /** A peer holding the pinned identity key attaches and is reported as verified. */
    static void pinnedIdentityAdmitsTheKeyHolder() throws Exception {
        byte[][] key = x25519KeyPair();
        String name = uniqueName();
        try (SecureIpc owner = SecureIpc.create(name, opts().peerIdentity(key[0]));
                SecureIpc peer = SecureIpc.attach(name, opts().identitySecret(key[1]))) {
            peer.send(new byte[] {1});
            check(owner.receive(5, TimeUnit.SECONDS) != null, "message from the verified peer");
            PeerCredentials who = owner.peerCredentials();
            check(who.identityVerified, "owner sees identityVerified: " + who);
        }
    }

    /** A peer with another key is refused with IdentityRejectedException. */
    static void pinnedIdentityRejectsAnotherKey() throws Exception {
        byte[][] pinned = x25519KeyPair();
        byte[][] other = x25519KeyPair();
        String name = uniqueName();
        try (SecureIpc owner = SecureIpc.create(name, opts().peerIdentity(pinned[0]))) {
            expectThrows(IdentityRejectedException.class,
                    () -> SecureIpc.attach(name, opts().identitySecret(other[1])).close());
            expectThrows(IdentityRejectedException.class, () -> SecureIpc.attach(name, opts()).close());
        }
    }

    /**
     * Pinning this process's own pid namespace admits it; a pid that names
     * no process cannot be pinned. (A foreign namespace being refused is
     * shown by the guest tests, which can create one.)
     */
    static void pidNamespacePolicyIsEnforced() throws Exception {
        long ns = myPidNamespace();
        int me = (int) ProcessHandle.current().pid();
        String ok = uniqueName();
        try (SecureIpc owner = SecureIpc.create(ok, opts().peerPidNamespaceOf(me));
                SecureIpc peer = SecureIpc.attach(ok, opts())) {
            checkEq(ns, owner.peerCredentials().pidNamespaceInode, "attested pid namespace");
        }
        expectThrows(SecureIpcException.class,
                () -> SecureIpc.create(uniqueName(), opts().peerPidNamespaceOf(0x3fffffff)).close());
    }

    /** A uid policy for another uid refuses this process with PermissionDeniedException. */
    static void uidPolicyRejectsOtherUid() throws Exception {
        String name = uniqueName();
        try (SecureIpc owner = SecureIpc.create(name, opts().peerUid(myUid() + 1))) {
            expectThrows(PermissionDeniedException.class, () -> SecureIpc.attach(name, opts()).close());
        }
    }

    /** Different pre-shared keys are refused at attach with PskMismatchException. */
    static void pskMismatchIsRejected() throws Exception {
        byte[] a = new byte[32];
        byte[] b = new byte[32];
        Arrays.fill(a, (byte) 1);
        Arrays.fill(b, (byte) 2);
        String name = uniqueName();
        try (SecureIpc owner = SecureIpc.create(name, opts().psk(a))) {
            expectThrows(PskMismatchException.class, () -> SecureIpc.attach(name, opts().psk(b)).close());
        }
    }

    /** Endpoints dropped without close() are freed by the garbage collector. */
    static void gcStressLeaksNoNativeHandles() throws Exception {
        long baseline = SecureIpc.nativeHandleCount();
        // The module admits 16 live channels per uid (max_user_channels):
        // unclosed endpoints hold theirs until collected, so the kernel
        // backend drops 8 pairs, the userspace backend 300.
        int pairs = BACKEND == SecureIpc.Backend.KERNEL ? 8 : 300;
        for (int i = 0; i < pairs; i++) {
            String name = uniqueName();
            SecureIpc owner = SecureIpc.create(name, opts().slots(2).slotSize(64));
            SecureIpc peer = SecureIpc.attach(name, opts());
            owner.send(new byte[] {(byte) i});
            check(peer.receive(5, TimeUnit.SECONDS) != null, "pair " + i + " works");
            // Both dropped here, unclosed.
        }
        check(SecureIpc.nativeHandleCount() > baseline, "unclosed endpoints are alive before GC");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (SecureIpc.nativeHandleCount() != baseline && System.nanoTime() < deadline) {
            System.gc();
            Thread.sleep(20);
        }
        checkEq(baseline, SecureIpc.nativeHandleCount(), "live native endpoints after GC");
    }

    /**
     * Runs {@code ChildJvm MODE BACKEND} (or another main class) in a JVM of
     * its own with {@code jvmArgs}, this JVM's java, classpath and library
     * path; returns its output, failing unless it exits 0.
     */
    static String runChild(String mainClass, List<String> jvmArgs, String... args) throws Exception {
        List<String> cmd = new ArrayList<>();
        cmd.add(Paths.get(System.getProperty("java.home"), "bin", "java").toString());
        cmd.add("-Xcheck:jni");
        cmd.addAll(jvmArgs);
        cmd.add("-Djava.library.path=" + System.getProperty("java.library.path"));
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(mainClass);
        cmd.addAll(Arrays.asList(args));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        byte[] out = p.getInputStream().readAllBytes();
        check(p.waitFor(120, TimeUnit.SECONDS), "child " + mainClass + " ended within 120 s");
        String text = new String(out, StandardCharsets.UTF_8);
        if (p.exitValue() != 0 || text.contains("WARNING in native method")) {
            throw new Failure("child " + String.join(" ", cmd) + " exited with " + p.exitValue()
                    + " and printed:\n" + text);
        }
        return text;
    }

    /**
     * The last reference to an endpoint is dropped while a blocking receive
     * runs on it (its receive() JIT-compiled), with System.gc() in a loop in
     * another thread: the cleaner does not close the handle under the call,
     * which then returns the message sent afterwards.
     */
    static void endpointStaysReachableDuringABlockingReceive() throws Exception {
        runChild("dev.secureipc.test.ChildJvm", Arrays.asList("-XX:+UseSerialGC"),
                "gc-during-receive", BACKEND.name());
    }

    /**
     * A receive whose Java array cannot be allocated (full heap) throws
     * OutOfMemoryError and leaves the message queued: the next receive
     * returns it, then the one after it.
     */
    static void failedArrayAllocationLeavesTheMessageQueued() throws Exception {
        runChild("dev.secureipc.test.ChildJvm", Arrays.asList("-Xmx24m", "-XX:+UseSerialGC"),
                "oom-during-receive", BACKEND.name());
    }

    /**
     * The Java round-trip example (android-native/examples/java) in a JVM
     * of its own: 2000 requests answered in order, the service ended by the
     * owner's close() with PeerClosedException.
     */
    static void exampleRoundTripRuns() throws Exception {
        String out = runChild("dev.secureipc.example.RoundTrip", new ArrayList<>(), "2000", BACKEND.name());
        check(out.contains("round trips 2000, answered in order 2000,"), "all answered in order:\n" + out);
        check(out.contains("in order: yes"), out);
        check(out.contains("service ended with PeerClosedException"), out);
    }

    // ---- driver ----------------------------------------------------------

    public static void main(String[] args) throws Exception {
        String filter = args.length > 0 ? args[0] : "";
        List<String> failed = new ArrayList<>();
        int passed = 0;
        java.lang.reflect.Method[] methods = SecureIpcJvmTest.class.getDeclaredMethods();
        Arrays.sort(methods, (a, b) -> a.getName().compareTo(b.getName()));
        for (java.lang.reflect.Method m : methods) {
            int mod = m.getModifiers();
            // Tests: package-private static void no-argument methods.
            if (m.isSynthetic() || !java.lang.reflect.Modifier.isStatic(mod)
                    || java.lang.reflect.Modifier.isPrivate(mod) || m.getParameterCount() != 0
                    || m.getReturnType() != void.class || m.getName().equals("main")
                    || !m.getName().contains(filter)) {
                continue;
            }
            long t0 = System.nanoTime();
            try {
                m.invoke(null);
                passed++;
                System.out.printf("ok   %s (%d ms)%n", m.getName(), (System.nanoTime() - t0) / 1_000_000);
            } catch (java.lang.reflect.InvocationTargetException e) {
                failed.add(m.getName());
                System.out.printf("FAIL %s: %s%n", m.getName(), e.getCause());
                if (!(e.getCause() instanceof Failure)) {
                    e.getCause().printStackTrace(System.out);
                }
            }
        }
        System.out.println("backend " + BACKEND);
        System.out.println(passed + " passed, " + failed.size() + " failed");
        System.exit(failed.isEmpty() ? 0 : 1);
    }
}
