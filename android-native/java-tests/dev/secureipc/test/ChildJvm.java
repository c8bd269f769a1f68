package dev.secureipc.test;

import dev.secureipc.Message;
import dev.secureipc.SecureIpc;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Tests that need a JVM of their own (JVM flags, a small heap, a JIT state
 * of their own). {@link SecureIpcJvmTest} starts one per test with the
 * same java, classpath and library path; the child prints what it saw and
 * exits 0 when it saw what it should.
 *
 *   java ... dev.secureipc.test.ChildJvm gc-during-receive|oom-during-receive BACKEND
 */
public final class ChildJvm {
    private ChildJvm() {}

    public static void main(String[] args) throws Exception {
        SecureIpc.Backend backend = SecureIpc.Backend.valueOf(args[1]);
        boolean ok;
        switch (args[0]) {
            case "gc-during-receive":
                ok = gcDuringReceive(backend);
                break;
            case "oom-during-receive":
                ok = oomDuringReceive(backend);
                break;
            default:
                throw new IllegalArgumentException(args[0]);
        }
        System.out.println(ok ? "child ok" : "child FAILED");
        System.exit(ok ? 0 : 1);
    }

    private static String name(String tag) {
        return "c" + tag + ProcessHandle.current().pid();
    }

    /** Sends and receives {@code n} messages, so that the JIT compiles receive(). */
    private static void warmUp(SecureIpc owner, SecureIpc peer, int n) throws Exception {
        byte[] one = {1};
        for (int i = 0; i < n; i++) {
            owner.send(one);
            peer.receive();
        }
    }

    /**
     * The last reference to an endpoint is dropped while a receive on it
     * blocks, and another thread collects garbage as fast as it can: the
     * endpoint's cleaner must not close the handle under the running call.
     * The receive then gets the message sent after the collections.
     */
    static boolean gcDuringReceive(SecureIpc.Backend backend) throws Exception {
        String name = name("gc");
        SecureIpc.Options o = new SecureIpc.Options().backend(backend);
        try (SecureIpc owner = SecureIpc.create(name, o)) {
            AtomicReference<SecureIpc> holder = new AtomicReference<>(SecureIpc.attach(name, o));
            // Compiled code may treat `this` as dead once it read the handle;
            // interpreted code keeps it in the frame. Compile receive() first.
            warmUp(owner, holder.get(), 40_000);
            AtomicReference<Object> outcome = new AtomicReference<>();
            Thread receiver = new Thread(() -> {
                try {
                    // The only reference is the one this call holds.
                    Message m = holder.getAndSet(null).receive();
                    outcome.set(m);
                } catch (Throwable t) {
                    outcome.set(t);
                }
            }, "receiver");
            receiver.start();
            Thread.sleep(200);
            AtomicBoolean stop = new AtomicBoolean();
            Thread gc = new Thread(() -> {
                while (!stop.get()) {
                    System.gc();
                    System.runFinalization();
                }
            }, "gc");
            gc.start();
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(1500);
            while (System.nanoTime() < deadline && outcome.get() == null) {
                Thread.sleep(10);
            }
            stop.set(true);
            gc.join();
            System.out.println("after the collections: receive "
                    + (outcome.get() == null ? "still blocked" : "ended with " + outcome.get()));
            owner.send(9, new byte[] {4, 2});
            receiver.join(10_000);
            Object got = outcome.get();
            System.out.println("receive returned " + got);
            return got instanceof Message && ((Message) got).type() == 9
                    && Arrays.equals(new byte[] {4, 2}, ((Message) got).payload());
        }
    }

    /**
     * receive() whose Java array cannot be allocated (the heap is full)
     * throws OutOfMemoryError from the native and leaves the message
     * queued: once memory is back, the next receive returns it.
     */
    static boolean oomDuringReceive(SecureIpc.Backend backend) throws Exception {
        String name = name("oom");
        SecureIpc.Options o = new SecureIpc.Options().backend(backend).slots(4).slotSize(65536);
        try (SecureIpc owner = SecureIpc.create(name, o); SecureIpc peer = SecureIpc.attach(name, o)) {
            int len = owner.maxMessageSize();
            byte[] big = new byte[len];
            Arrays.fill(big, (byte) 0x5a);
            owner.send(1, big);
            owner.send(2, new byte[] {7});
            big = null;
            Throwable thrown = null;
            List<byte[]> hog = new ArrayList<>();
            try {
                // Fill the heap to within a few KiB: far less than
                // the message needs, enough for receive()'s small objects.
                for (int chunk = 1 << 20; chunk >= 4096; chunk >>= 1) {
                    try {
                        while (true) {
                            hog.add(new byte[chunk]);
                        }
                    } catch (OutOfMemoryError e) {
                        // next, smaller chunk
                    }
                }
                try {
                    peer.receive(1, TimeUnit.SECONDS);
                } catch (OutOfMemoryError e) {
                    thrown = e;
                }
            } finally {
                hog = null;
            }
            System.gc();
            if (thrown == null) {
                System.out.println("receive did not run out of memory: the test proves nothing");
                return false;
            }
            System.out.println("receive threw " + thrown);
            // The error must have come from inside the native call, after it
            // took the record off the channel (an OutOfMemoryError before the
            // call would leave the message queued with or without the fix).
            long opened = peer.stats().openedMessages;
            System.out.println("records opened by then: " + opened);
            if (opened < 1) {
                System.out.println("the native receive never took the message: the test proves nothing");
                return false;
            }
            Message first = peer.receive(5, TimeUnit.SECONDS);
            Message second = peer.receive(5, TimeUnit.SECONDS);
            System.out.println("then received " + first + " and " + second);
            return first != null && first.type() == 1 && first.sequence() == 0 && first.length() == len
                    && first.payload()[len - 1] == 0x5a
                    && second != null && second.type() == 2 && second.sequence() == 1;
        }
    }
}
