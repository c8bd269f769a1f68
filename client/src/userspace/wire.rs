//! The rendezvous packets (docs/key-schedule.md §5), one `#[repr(C)]`
//! bytemuck struct each. Every field is a byte array or a little-endian
//! integer of alignment 1 ([`Le32`], [`Le64`]), so a struct has no padding
//! and its bytes are its wire form on any host; the sizes are asserted
//! below and the bytes pinned by tests/handshake_wire.rs.

use crate::Stats;
use bytemuck::{Pod, Zeroable};

/// A little-endian `u32` on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(transparent)]
pub(super) struct Le32([u8; 4]);

impl Le32 {
    pub(super) fn new(v: u32) -> Self {
        Self(v.to_le_bytes())
    }
    pub(super) fn get(self) -> u32 {
        u32::from_le_bytes(self.0)
    }
}

/// A little-endian `u64` on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(transparent)]
pub(super) struct Le64([u8; 8]);

impl Le64 {
    pub(super) fn new(v: u64) -> Self {
        Self(v.to_le_bytes())
    }
    pub(super) fn get(self) -> u64 {
        u64::from_le_bytes(self.0)
    }
}

/// A packet: a Pod struct whose first eight bytes are its magic.
pub(super) trait Packet: Pod {
    const MAGIC: [u8; 8];
    fn magic(&self) -> [u8; 8];

    /// The packet's bytes, as sent.
    fn bytes(&self) -> &[u8] {
        bytemuck::bytes_of(self)
    }

    /// `b` if it is exactly one such packet (length and magic), else `None`.
    fn parse(b: &[u8]) -> Option<Self> {
        let p: Self = bytemuck::try_pod_read_unaligned(b).ok()?;
        (p.magic() == Self::MAGIC).then_some(p)
    }
}

macro_rules! packets {
    ($( $(#[doc = $doc:literal])* $name:ident = $magic:literal, $size:literal {
        $( $(#[doc = $fdoc:literal])* $field:ident: $ty:ty, )*
    } )*) => {
        $(
            $(#[doc = $doc])*
            #[derive(Clone, Copy, Pod, Zeroable)]
            #[repr(C)]
            pub(super) struct $name {
                magic: [u8; 8],
                $( $(#[doc = $fdoc])* pub(super) $field: $ty, )*
            }

            impl Packet for $name {
                const MAGIC: [u8; 8] = *$magic;
                fn magic(&self) -> [u8; 8] {
                    self.magic
                }
            }

            impl $name {
                #[allow(clippy::new_without_default, clippy::too_many_arguments)]
                pub(super) fn new($($field: $ty),*) -> Self {
                    Self { magic: *$magic, $($field),* }
                }
            }

            const _: () = assert!(std::mem::size_of::<$name>() == $size);
            const _: () = assert!(std::mem::align_of::<$name>() == 1);
        )*
    };
}

packets! {
    /// Owner → attacher, first: the attacher's credentials were admitted.
    Ready = b"SIPCRD01", 8 {}
    /// Attacher → owner: start a handshake.
    Attach = b"SIPCAT01", 8 {}
    /// Attacher → owner: send the counters instead (`sipc stats`).
    StatsQuery = b"SIPCST01", 8 {}
    /// Owner → attacher: the channel's geometry and the owner's ephemeral key.
    Hello = b"SIPCUS01", 92 {
        /// `HELLO_*` bits.
        flags: Le32,
        slots: Le32,
        slot_size: Le32,
        channel_id: Le64,
        /// The owner's ephemeral X25519 public key.
        owner_pub: [u8; 32],
        /// Challenge of the identity proofs.
        nonce: [u8; 32],
    }
    /// Attacher → owner: its ephemeral key, identity proof, confirmation.
    Keys = b"SIPCKY01", 108 {
        /// `KEYS_*` bits.
        flags: Le32,
        peer_pub: [u8; 32],
        /// Zero unless HELLO asked for the peer's identity.
        proof: [u8; 32],
        peer_confirm: [u8; 32],
    }
    /// Owner → attacher, with the memfd and four doorbells: the session.
    Accept = b"SIPCOK01", 72 {
        owner_confirm: [u8; 32],
        /// Zero unless the owner proves an identity (`HELLO_OWNER_IDENTITY`).
        owner_proof: [u8; 32],
    }
    /// Owner → attacher: refused, and why (a `Refusal`).
    Refuse = b"SIPCNO01", 12 {
        code: Le32,
    }
    /// Owner → attacher: the counters, in [`Stats`]' table order.
    StatsReply = b"SIPCSS01", 112 {
        counters: [Le64; Stats::COUNT],
    }
}

impl StatsReply {
    pub(super) fn of(s: &Stats) -> Self {
        Self::new(s.to_array().map(Le64::new))
    }
    pub(super) fn stats(&self) -> Stats {
        Stats::from_array(self.counters.map(Le64::get))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_parses_only_at_its_exact_length_and_magic() {
        let r = Refuse::new(Le32::new(4));
        assert_eq!(r.bytes(), b"SIPCNO01\x04\0\0\0");
        assert_eq!(Refuse::parse(r.bytes()).map(|p| p.code.get()), Some(4));
        assert!(Refuse::parse(&r.bytes()[..11]).is_none());
        assert!(Refuse::parse(&[r.bytes(), &[0]].concat()).is_none());
        assert!(Refuse::parse(b"SIPCNX01\x04\0\0\0").is_none());
        assert!(Ready::parse(Attach::new().bytes()).is_none());
    }

    #[test]
    fn hello_fields_sit_at_their_wire_offsets() {
        let h = Hello::new(
            Le32::new(7),
            Le32::new(64),
            Le32::new(256),
            Le64::new(0x0102_0304_0506_0708),
            [0xaa; 32],
            [0xbb; 32],
        );
        let b = h.bytes();
        assert_eq!(&b[..8], b"SIPCUS01");
        assert_eq!(&b[8..12], &[7, 0, 0, 0]);
        assert_eq!(&b[20..28], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&b[28..60], &[0xaa; 32]);
        assert_eq!(&b[60..92], &[0xbb; 32]);
    }
}
