package dev.secureipc;

/** Counters of one endpoint (both of its directions). */
public final class Stats {
    /** Records this endpoint sealed. */
    public final long sealedMessages;
    /** Plaintext bytes sealed. */
    public final long sealedBytes;
    /** Records opened for this endpoint. */
    public final long openedMessages;
    /** Plaintext bytes opened. */
    public final long openedBytes;
    /** Records that failed authentication and were dropped. */
    public final long authFailures;
    /** Times a sender found the ring full. */
    public final long fullEvents;
    /** Doorbell signals. */
    public final long doorbellsSignalled;
    /** Doorbell signals skipped because the other side was not sleeping. */
    public final long doorbellsSuppressed;
    /** Key epochs advanced (both directions). */
    public final long rekeys;
    /** Filled entries of the outgoing ring now. */
    public final int txFill;
    /** Filled entries of the incoming ring now. */
    public final int rxFill;
    /** Current sealing key epoch. */
    public final int txEpoch;
    /** Current opening key epoch. */
    public final int rxEpoch;

    Stats(long[] v) {
        sealedMessages = v[0];
        sealedBytes = v[1];
        openedMessages = v[2];
        openedBytes = v[3];
        authFailures = v[4];
        fullEvents = v[5];
        doorbellsSignalled = v[6];
        doorbellsSuppressed = v[7];
        rekeys = v[8];
        txFill = (int) v[9];
        rxFill = (int) v[10];
        txEpoch = (int) v[11];
        rxEpoch = (int) v[12];
    }

    @Override
    public String toString() {
        return "Stats{sealed=" + sealedMessages + "/" + sealedBytes + "B, opened=" + openedMessages
                + "/" + openedBytes + "B, authFailures=" + authFailures + ", full=" + fullEvents
                + ", rekeys=" + rekeys + "}";
    }
}
