package dev.secureipc;

/** Who the other endpoint is, attested by the kernel (or SO_PEERCRED). */
public final class PeerCredentials {
    /** Its pid as this process sees it (0 if not visible). */
    public final int pid;
    /** Its uid. */
    public final int uid;
    /** Its gid. */
    public final int gid;
    /** Inode number of its pid namespace (0 if unknown). */
    public final long pidNamespaceInode;
    /** Inode number of its user namespace (0 if unknown). */
    public final long userNamespaceInode;
    /** It proved the channel's pinned identity key. */
    public final boolean identityVerified;

    PeerCredentials(long[] v) {
        pid = (int) v[0];
        uid = (int) v[1];
        gid = (int) v[2];
        pidNamespaceInode = v[3];
        userNamespaceInode = v[4];
        identityVerified = v[5] != 0;
    }

    @Override
    public String toString() {
        return "PeerCredentials{pid=" + pid + ", uid=" + uid + ", gid=" + gid + ", pidns="
                + pidNamespaceInode + ", identityVerified=" + identityVerified + "}";
    }
}
