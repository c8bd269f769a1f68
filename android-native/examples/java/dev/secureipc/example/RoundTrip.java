package dev.secureipc.example;

import dev.secureipc.Message;
import dev.secureipc.PeerClosedException;
import dev.secureipc.SecureIpc;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;

/**
 * The Java round trip: an owner sends requests, a peer (here a thread of
 * the same process, normally the service in the container) answers each,
 * the owner checks every answer. Java 8, as an Android app compiles it.
 *
 * <ul>
 * <li>The peer receives into one direct ByteBuffer and answers from it: no
 * array per message on its side.</li>
 * <li>The owner waits at most 5 s per answer ({@code receive(timeout)}
 * returns null when none came).</li>
 * <li>The owner's close() ends the peer: its receive throws
 * PeerClosedException once it has received everything sent before.</li>
 * </ul>
 *
 *   java -Djava.library.path=target/debug -cp CLASSES dev.secureipc.example.RoundTrip [COUNT [BACKEND]]
 *
 * The JVM tests (SecureIpcJvmTest.exampleRoundTripRuns) run it and check
 * what it prints.
 */
public final class RoundTrip {
    private RoundTrip() {}

    public static void main(String[] args) throws Exception {
        int count = args.length > 0 ? Integer.parseInt(args[0]) : 1000;
        SecureIpc.Backend backend = args.length > 1 ? SecureIpc.Backend.valueOf(args[1]) : SecureIpc.Backend.AUTO;
        String name = "roundtrip-" + System.nanoTime() % 1_000_000_000L;
        SecureIpc.Options options = new SecureIpc.Options().backend(backend);

        final SecureIpc owner = SecureIpc.create(name, options);
        final SecureIpc peer = SecureIpc.attach(name, options);
        final String[] peerEnd = new String[1];
        Thread service = new Thread(new Runnable() {
            @Override
            public void run() {
                ByteBuffer buf = ByteBuffer.allocateDirect(peer.maxMessageSize());
                try {
                    while (true) {
                        buf.clear();
                        Message request = peer.receive(buf);
                        buf.flip();
                        // Answer with the same bytes, one type up.
                        peer.send(request.type() + 1, buf);
                    }
                } catch (PeerClosedException e) {
                    peerEnd[0] = "PeerClosedException";
                } catch (Exception e) {
                    peerEnd[0] = e.toString();
                } finally {
                    peer.close();
                }
            }
        }, "service");
        service.start();

        int inOrder = 0;
        long worstNanos = 0;
        for (int i = 0; i < count; i++) {
            byte[] request = ("request " + i).getBytes(StandardCharsets.US_ASCII);
            long t0 = System.nanoTime();
            owner.send(2 * (i % 1000), request);
            Message answer = owner.receive(5, TimeUnit.SECONDS);
            worstNanos = Math.max(worstNanos, System.nanoTime() - t0);
            if (answer == null) {
                System.out.println("no answer to request " + i + " within 5 s");
                break;
            }
            if (answer.sequence() == i && answer.type() == 2 * (i % 1000) + 1
                    && new String(answer.payload(), StandardCharsets.US_ASCII).equals("request " + i)) {
                inOrder++;
            }
        }
        owner.close();
        service.join(10_000);
        System.out.println("round trips " + count + ", answered in order " + inOrder
                + ", slowest " + worstNanos / 1000 + " us");
        System.out.println("in order: " + (inOrder == count ? "yes" : "NO"));
        System.out.println("service ended with " + peerEnd[0]);
        System.exit(inOrder == count && "PeerClosedException".equals(peerEnd[0]) ? 0 : 1);
    }
}
