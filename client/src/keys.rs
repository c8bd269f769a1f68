//! The key schedule shared by both backends (docs/key-schedule.md).
//!
//! All labels are ASCII without a terminating NUL. `name32` is the channel
//! name NUL-padded to 32 bytes.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

/// Prefix of the HKDF salt hash.
pub const LABEL_SALT: &[u8] = b"secure_ipc v1 salt";
/// HKDF-Expand label: owner→peer AES-256 key.
pub const LABEL_O2P_KEY: &[u8] = b"secure_ipc v1 o2p key";
/// HKDF-Expand label: owner→peer nonce salt.
pub const LABEL_O2P_SALT: &[u8] = b"secure_ipc v1 o2p salt";
/// HKDF-Expand label: peer→owner AES-256 key.
pub const LABEL_P2O_KEY: &[u8] = b"secure_ipc v1 p2o key";
/// HKDF-Expand label: peer→owner nonce salt.
pub const LABEL_P2O_SALT: &[u8] = b"secure_ipc v1 p2o salt";
/// HKDF-Expand label: key confirmation sent by the owner.
pub const LABEL_OWNER_CONFIRM: &[u8] = b"secure_ipc v1 owner confirm";
/// HKDF-Expand label: key confirmation sent by the peer.
pub const LABEL_PEER_CONFIRM: &[u8] = b"secure_ipc v1 peer confirm";
/// HKDF salt of the identity proof key.
pub const LABEL_PROOF_SALT: &[u8] = b"secure_ipc v1 proof salt";
/// HKDF-Expand label of the identity proof key.
pub const LABEL_PROOF_KEY: &[u8] = b"secure_ipc v1 proof key";
/// First bytes of the identity proof transcript.
pub const LABEL_PROOF: &[u8] = b"secure_ipc v1 proof";
/// Transcript label of the owner's identity proof (userspace backend).
pub const LABEL_OWNER_PROOF: &[u8] = b"secure_ipc v1 owner proof";
/// HKDF-Expand label of the rekey ratchet.
pub const LABEL_REKEY: &[u8] = b"secure_ipc v1 rekey";

type HmacSha256 = Hmac<Sha256>;

/// A long-term X25519 identity: the private key an attacher proves to an
/// owner that pins its public half ([`crate::PeerPolicy::identity_pub`]),
/// or (userspace backend) an owner to attachers that pin it
/// ([`crate::OwnerPolicy::identity_pub`]).
///
/// The crate's own type, so that the public API does not depend on the
/// X25519 implementation it uses. The key is wiped when the value drops;
/// `Debug` prints only the public half.
#[derive(Clone)]
pub struct IdentityKey(StaticSecret);

impl IdentityKey {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Self {
        Self(StaticSecret::random_from_rng(rand_core::OsRng))
    }

    /// The key whose private scalar is `bytes` (clamped when used, as
    /// RFC 7748 says).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(StaticSecret::from(bytes))
    }

    /// The public half, what the other side pins.
    pub fn public_key(&self) -> [u8; 32] {
        PublicKey::from(&self.0).to_bytes()
    }

    pub(crate) fn secret(&self) -> &StaticSecret {
        &self.0
    }
}

impl From<[u8; 32]> for IdentityKey {
    fn from(bytes: [u8; 32]) -> Self {
        Self::from_bytes(bytes)
    }
}

impl std::fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityKey")
            .field("public", &self.public_key())
            .finish_non_exhaustive()
    }
}

/// X25519(scalar, u) as RFC 7748 defines it (the scalar is clamped).
pub fn x25519(scalar: &[u8; 32], u: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let s = StaticSecret::from(*scalar);
    Zeroizing::new(s.diffie_hellman(&PublicKey::from(*u)).to_bytes())
}

/// The public key of a private scalar.
pub fn public_key(scalar: &[u8; 32]) -> [u8; 32] {
    PublicKey::from(&StaticSecret::from(*scalar)).to_bytes()
}

/// HKDF salt: SHA-256(LABEL_SALT ‖ owner_pub ‖ peer_pub ‖ name32).
pub fn handshake_salt(owner_pub: &[u8; 32], peer_pub: &[u8; 32], name32: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(LABEL_SALT);
    h.update(owner_pub);
    h.update(peer_pub);
    h.update(name32);
    h.finalize().into()
}

/// Everything the session keys depend on.
pub struct SessionInputs<'a> {
    /// Channel name, NUL-padded to 32 bytes.
    pub name32: &'a [u8; 32],
    /// Owner's ephemeral public key.
    pub owner_pub: &'a [u8; 32],
    /// Peer's ephemeral public key.
    pub peer_pub: &'a [u8; 32],
    /// X25519(owner_eph, peer_eph).
    pub eph_dh: &'a [u8; 32],
    /// X25519(owner_eph, identity) when the channel pins an identity.
    pub identity_dh: Option<&'a [u8; 32]>,
    /// Pre-shared key, when one is configured.
    pub psk: Option<&'a [u8; 32]>,
}

/// The output of the schedule. Erased on drop.
#[derive(Zeroize)]
#[zeroize(drop)]
pub struct SessionKeys {
    /// HKDF-Extract output.
    pub prk: [u8; 32],
    /// Owner→peer key (epoch 0).
    pub o2p_key: [u8; 32],
    /// Owner→peer nonce salt.
    pub o2p_salt: [u8; 4],
    /// Peer→owner key (epoch 0).
    pub p2o_key: [u8; 32],
    /// Peer→owner nonce salt.
    pub p2o_salt: [u8; 4],
    /// Key confirmation the owner sends.
    pub owner_confirm: [u8; 32],
    /// Key confirmation the peer sends.
    pub peer_confirm: [u8; 32],
}

/// IKM = eph_dh ‖ (identity_dh or 32 zero bytes) ‖ (psk or 32 zero bytes).
pub fn ikm(inp: &SessionInputs<'_>) -> Zeroizing<[u8; 96]> {
    let mut ikm = Zeroizing::new([0u8; 96]);
    ikm[..32].copy_from_slice(inp.eph_dh);
    if let Some(id) = inp.identity_dh {
        ikm[32..64].copy_from_slice(id);
    }
    if let Some(psk) = inp.psk {
        ikm[64..].copy_from_slice(psk);
    }
    ikm
}

/// Runs the schedule: HKDF-SHA256(salt, IKM), then the labelled expansions.
pub fn derive_session(inp: &SessionInputs<'_>) -> SessionKeys {
    let salt = handshake_salt(inp.owner_pub, inp.peer_pub, inp.name32);
    let ikm = ikm(inp);
    let (prk, hk) = Hkdf::<Sha256>::extract(Some(&salt), &ikm[..]);
    let mut k = SessionKeys {
        prk: prk.into(),
        o2p_key: [0; 32],
        o2p_salt: [0; 4],
        p2o_key: [0; 32],
        p2o_salt: [0; 4],
        owner_confirm: [0; 32],
        peer_confirm: [0; 32],
    };
    // expand() fails only for outputs longer than 255 * 32 bytes.
    let ex = |label: &[u8], out: &mut [u8]| {
        hk.expand(label, out)
            .unwrap_or_else(|_| unreachable!("short HKDF output"))
    };
    ex(LABEL_O2P_KEY, &mut k.o2p_key);
    ex(LABEL_O2P_SALT, &mut k.o2p_salt);
    ex(LABEL_P2O_KEY, &mut k.p2o_key);
    ex(LABEL_P2O_SALT, &mut k.p2o_salt);
    ex(LABEL_OWNER_CONFIRM, &mut k.owner_confirm);
    ex(LABEL_PEER_CONFIRM, &mut k.peer_confirm);
    k
}

/// key_{e+1} = HKDF-Expand(PRK = key_e, info = LABEL_REKEY, L = 32).
pub fn ratchet(key: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let hk = Hkdf::<Sha256>::from_prk(key).unwrap_or_else(|_| unreachable!("32-byte PRK"));
    let mut out = Zeroizing::new([0u8; 32]);
    hk.expand(LABEL_REKEY, &mut out[..])
        .unwrap_or_else(|_| unreachable!("short HKDF output"));
    out
}

/// Proof key: HKDF-SHA256(salt = LABEL_PROOF_SALT, IKM = identity_dh,
/// info = LABEL_PROOF_KEY, L = 32).
pub fn proof_key(identity_dh: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let hk = Hkdf::<Sha256>::new(Some(LABEL_PROOF_SALT), identity_dh);
    let mut out = Zeroizing::new([0u8; 32]);
    hk.expand(LABEL_PROOF_KEY, &mut out[..])
        .unwrap_or_else(|_| unreachable!("short HKDF output"));
    out
}

/// Transcript: LABEL_PROOF ‖ name32 ‖ challenge_pub ‖ nonce ‖ identity_pub (147 bytes).
pub fn proof_transcript(
    name32: &[u8; 32],
    challenge_pub: &[u8; 32],
    nonce: &[u8; 32],
    identity_pub: &[u8; 32],
) -> Vec<u8> {
    let mut t = Vec::with_capacity(LABEL_PROOF.len() + 128);
    t.extend_from_slice(LABEL_PROOF);
    t.extend_from_slice(name32);
    t.extend_from_slice(challenge_pub);
    t.extend_from_slice(nonce);
    t.extend_from_slice(identity_pub);
    t
}

/// proof = HMAC-SHA256(proof_key(identity_dh), transcript).
pub fn identity_proof(identity_dh: &[u8; 32], transcript: &[u8]) -> [u8; 32] {
    let key = proof_key(identity_dh);
    let mut mac = <HmacSha256 as Mac>::new_from_slice(&key[..])
        .unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    mac.update(transcript);
    mac.finalize().into_bytes().into()
}

/// Attacher side: the proof for a challenge, from the identity private key.
pub fn prove_identity(
    identity: &IdentityKey,
    name32: &[u8; 32],
    challenge_pub: &[u8; 32],
    nonce: &[u8; 32],
) -> ([u8; 32], Zeroizing<[u8; 32]>) {
    let id_pub = identity.public_key();
    let dh = Zeroizing::new(
        identity
            .secret()
            .diffie_hellman(&PublicKey::from(*challenge_pub))
            .to_bytes(),
    );
    let t = proof_transcript(name32, challenge_pub, nonce, &id_pub);
    (identity_proof(&dh, &t), dh)
}

/// Transcript of the owner's identity proof (userspace backend), which
/// the attacher's ephemeral key challenges: LABEL_OWNER_PROOF ‖ name32 ‖
/// owner_pub ‖ peer_pub ‖ nonce ‖ owner identity_pub (187 bytes). Both
/// ephemeral keys are in it, so a proof answers one handshake only, and a
/// squatter relaying the real owner's messages cannot reuse it with its own
/// ephemeral key.
pub fn owner_proof_transcript(
    name32: &[u8; 32],
    owner_pub: &[u8; 32],
    peer_pub: &[u8; 32],
    nonce: &[u8; 32],
    identity_pub: &[u8; 32],
) -> Vec<u8> {
    let mut t = Vec::with_capacity(LABEL_OWNER_PROOF.len() + 160);
    t.extend_from_slice(LABEL_OWNER_PROOF);
    t.extend_from_slice(name32);
    t.extend_from_slice(owner_pub);
    t.extend_from_slice(peer_pub);
    t.extend_from_slice(nonce);
    t.extend_from_slice(identity_pub);
    t
}

/// Constant-time equality of two 32-byte values.
pub fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut d = 0u8;
    for (x, y) in a.iter().zip(b) {
        d |= x ^ y;
    }
    // black_box keeps the compiler from short-circuiting the loop.
    std::hint::black_box(d) == 0
}
