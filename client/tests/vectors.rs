//! Pinned test vectors (client/tests/vectors/key-schedule.txt): RFC 7748
//! X25519, RFC 5869 HKDF-SHA256, full key-schedule sessions and sealed
//! records. Each is checked twice: against the crate's `keys`/`record`
//! modules, and against an independent rewrite below that uses only the
//! RustCrypto crates and the spec in docs/key-schedule.md. The kernel's
//! guest test reproduces the same file byte for byte.

mod common;
use common::vectors::{hex, load, Block};

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use secure_ipc::{keys, record};
use secure_ipc_ring::abi::RecordHeader;
use sha2::{Digest, Sha256};

const FILE: &str = "key-schedule.txt";

fn blocks(kind: &str) -> Vec<Block> {
    let v: Vec<Block> = load(FILE).into_iter().filter(|b| b.kind == kind).collect();
    assert!(!v.is_empty(), "no [{kind}] blocks in {FILE}");
    v
}

// ---------------------------------------------------------------------------
// Independent implementation of docs/key-schedule.md (does not call the crate)
// ---------------------------------------------------------------------------

struct Indep {
    owner_pub: [u8; 32],
    peer_pub: [u8; 32],
    salt: [u8; 32],
    prk: [u8; 32],
    okm: Vec<(&'static str, Vec<u8>)>,
    proof: Option<[u8; 32]>,
}

fn indep_x25519(k: &[u8; 32], u: &[u8; 32]) -> [u8; 32] {
    x25519_dalek::x25519(*k, *u)
}

fn indep_session(b: &Block) -> Indep {
    let name = b.text("name").as_bytes();
    let mut name32 = [0u8; 32];
    name32[..name.len()].copy_from_slice(name);
    let basepoint = x25519_dalek::X25519_BASEPOINT_BYTES;
    let owner_priv = b.hex32("owner_priv");
    let peer_priv = b.hex32("peer_priv");
    let owner_pub = indep_x25519(&owner_priv, &basepoint);
    let peer_pub = indep_x25519(&peer_priv, &basepoint);
    let eph = indep_x25519(&owner_priv, &peer_pub);
    let mut ikm = eph.to_vec();
    let mut proof = None;
    let mut okm = vec![("eph_dh", eph.to_vec())];
    match b.opt_hex32("identity_priv") {
        Some(idp) => {
            let id_pub = indep_x25519(&idp, &basepoint);
            let dh_peer_side = indep_x25519(&idp, &owner_pub);
            let dh_owner_side = indep_x25519(&owner_priv, &id_pub);
            assert_eq!(dh_peer_side, dh_owner_side, "identity DH symmetric");
            ikm.extend_from_slice(&dh_peer_side);
            okm.push(("identity_pub", id_pub.to_vec()));
            okm.push(("identity_dh", dh_peer_side.to_vec()));
            let mut pk = [0u8; 32];
            Hkdf::<Sha256>::new(Some(b"secure_ipc v1 proof salt"), &dh_peer_side)
                .expand(b"secure_ipc v1 proof key", &mut pk)
                .unwrap();
            let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&pk).unwrap();
            m.update(b"secure_ipc v1 proof");
            m.update(&name32);
            m.update(&owner_pub);
            m.update(&b.hex32("nonce"));
            m.update(&id_pub);
            proof = Some(m.finalize().into_bytes().into());
        }
        None => ikm.extend_from_slice(&[0u8; 32]),
    }
    match b.opt_hex32("psk") {
        Some(psk) => ikm.extend_from_slice(&psk),
        None => ikm.extend_from_slice(&[0u8; 32]),
    }
    let mut h = Sha256::new();
    h.update(b"secure_ipc v1 salt");
    h.update(owner_pub);
    h.update(peer_pub);
    h.update(name32);
    let salt: [u8; 32] = h.finalize().into();
    let (prk, hk) = Hkdf::<Sha256>::extract(Some(&salt), &ikm);
    okm.push(("ikm", ikm.clone()));
    for (field, label, len) in [
        ("o2p_key", &b"secure_ipc v1 o2p key"[..], 32),
        ("o2p_salt", b"secure_ipc v1 o2p salt", 4),
        ("p2o_key", b"secure_ipc v1 p2o key", 32),
        ("p2o_salt", b"secure_ipc v1 p2o salt", 4),
        ("owner_confirm", b"secure_ipc v1 owner confirm", 32),
        ("peer_confirm", b"secure_ipc v1 peer confirm", 32),
    ] {
        let mut out = vec![0u8; len];
        hk.expand(label, &mut out).unwrap();
        okm.push((field, out));
    }
    Indep {
        owner_pub,
        peer_pub,
        salt,
        prk: prk.into(),
        okm,
        proof,
    }
}

fn indep_ratchet(key: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 32];
    Hkdf::<Sha256>::from_prk(key)
        .unwrap()
        .expand(b"secure_ipc v1 rekey", &mut out)
        .unwrap();
    out
}

fn indep_aad(b: &Block, len: usize) -> Vec<u8> {
    let mut a = Vec::new();
    a.extend_from_slice(&b.num("channel_id").to_le_bytes());
    a.extend_from_slice(&b.num("seq").to_le_bytes());
    a.extend_from_slice(&b.num("timestamp_ns").to_le_bytes());
    a.extend_from_slice(&(b.num("epoch") as u32).to_le_bytes());
    a.extend_from_slice(&(len as u32).to_le_bytes());
    a.extend_from_slice(&(b.num("type") as u16).to_le_bytes());
    a.push(b.num("direction") as u8);
    a.push(1);
    a.extend_from_slice(&[0u8; 4]);
    a
}

fn record_header(b: &Block, len: usize) -> RecordHeader {
    RecordHeader {
        channel_id: b.num("channel_id"),
        seq: b.num("seq"),
        timestamp_ns: b.num("timestamp_ns"),
        epoch: b.num("epoch") as u32,
        len: len as u32,
        type_: b.num("type") as u16,
        direction: b.num("direction") as u8,
        version: 1,
        group_left: 0,
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn rfc7748_x25519_vectors_match() {
    for b in blocks("x25519") {
        let out = keys::x25519(&b.hex32("scalar"), &b.hex32("u"));
        assert_eq!(
            hex(&out[..]),
            hex(&b.hex("out")),
            "block at line {}",
            b.line
        );
    }
}

#[test]
fn rfc5869_hkdf_sha256_vectors_match() {
    for b in blocks("hkdf-sha256") {
        let salt = b.hex("salt");
        let (prk, hk) = Hkdf::<Sha256>::extract(
            if salt.is_empty() { None } else { Some(&salt) },
            &b.hex("ikm"),
        );
        assert_eq!(
            hex(&prk),
            hex(&b.hex("prk")),
            "PRK, block at line {}",
            b.line
        );
        let mut okm = vec![0u8; b.num("l") as usize];
        hk.expand(&b.hex("info"), &mut okm).unwrap();
        assert_eq!(
            hex(&okm),
            hex(&b.hex("okm")),
            "OKM, block at line {}",
            b.line
        );
    }
}

fn check_session_against(b: &Block, got: &[(&str, Vec<u8>)]) {
    for (field, v) in got {
        assert_eq!(
            hex(v),
            hex(&b.hex(field)),
            "{field}, session at line {}",
            b.line
        );
    }
}

#[test]
fn session_vectors_match_the_crate_key_schedule() {
    for b in blocks("session") {
        let name32 = secure_ipc::encode_name(b.text("name")).unwrap();
        let owner_priv = b.hex32("owner_priv");
        let peer_priv = b.hex32("peer_priv");
        let owner_pub = keys::public_key(&owner_priv);
        let peer_pub = keys::public_key(&peer_priv);
        let eph = keys::x25519(&owner_priv, &peer_pub);
        let mut got = vec![
            ("owner_pub", owner_pub.to_vec()),
            ("peer_pub", peer_pub.to_vec()),
        ];
        let id = b.opt_hex32("identity_priv").map(|idp| {
            let secret = secure_ipc::IdentityKey::from(idp);
            let (proof, dh) = keys::prove_identity(&secret, &name32, &owner_pub, &b.hex32("nonce"));
            got.push(("proof", proof.to_vec()));
            *dh
        });
        let psk = b.opt_hex32("psk");
        let k = keys::derive_session(&keys::SessionInputs {
            name32: &name32,
            owner_pub: &owner_pub,
            peer_pub: &peer_pub,
            eph_dh: &eph,
            identity_dh: id.as_ref(),
            psk: psk.as_ref(),
        });
        got.push((
            "hkdf_salt",
            keys::handshake_salt(&owner_pub, &peer_pub, &name32).to_vec(),
        ));
        got.extend([
            ("prk", k.prk.to_vec()),
            ("o2p_key", k.o2p_key.to_vec()),
            ("o2p_salt", k.o2p_salt.to_vec()),
            ("p2o_key", k.p2o_key.to_vec()),
            ("p2o_salt", k.p2o_salt.to_vec()),
            ("owner_confirm", k.owner_confirm.to_vec()),
            ("peer_confirm", k.peer_confirm.to_vec()),
        ]);
        check_session_against(&b, &got);
    }
}

#[test]
fn session_vectors_match_an_independent_implementation() {
    for b in blocks("session") {
        let i = indep_session(&b);
        let mut got = vec![
            ("owner_pub", i.owner_pub.to_vec()),
            ("peer_pub", i.peer_pub.to_vec()),
            ("hkdf_salt", i.salt.to_vec()),
            ("prk", i.prk.to_vec()),
        ];
        if let Some(p) = i.proof {
            got.push(("proof", p.to_vec()));
        }
        got.extend(i.okm);
        check_session_against(&b, &got);
    }
}

#[test]
fn ratchet_vectors_match_both_implementations() {
    for b in blocks("ratchet") {
        let k0 = b.hex32("key0");
        let k1 = keys::ratchet(&k0);
        let k2 = keys::ratchet(&k1);
        assert_eq!(hex(&k1[..]), hex(&b.hex("key1")), "crate, line {}", b.line);
        assert_eq!(hex(&k2[..]), hex(&b.hex("key2")), "crate, line {}", b.line);
        assert_eq!(
            hex(&indep_ratchet(&k0)),
            hex(&b.hex("key1")),
            "indep, line {}",
            b.line
        );
        assert_eq!(
            hex(&indep_ratchet(&indep_ratchet(&k0))),
            hex(&b.hex("key2")),
            "indep, line {}",
            b.line
        );
    }
}

#[test]
fn record_vectors_seal_byte_for_byte() {
    for b in blocks("record") {
        let pt = b.hex("plaintext");
        let key = b.hex32("epoch_key");
        let salt: [u8; 4] = b.hex("salt").try_into().unwrap();
        let sealed = record::seal(&key, &salt, &record_header(&b, pt.len()), &pt);
        assert_eq!(
            hex(&sealed),
            hex(&b.hex("record")),
            "record at line {}",
            b.line
        );
    }
}

#[test]
fn record_vectors_open_with_independent_aes_gcm() {
    for b in blocks("record") {
        let rec = b.hex("record");
        let pt = b.hex("plaintext");
        // Epoch key from the epoch-0 key by the independent ratchet.
        let mut key = b.hex("key");
        for _ in 0..b.num("epoch") {
            key = indep_ratchet(&key);
        }
        assert_eq!(
            hex(&key),
            hex(&b.hex("epoch_key")),
            "epoch key, line {}",
            b.line
        );
        let aad = indep_aad(&b, pt.len());
        assert_eq!(
            hex(&rec[..40]),
            hex(&aad),
            "header is the AAD, line {}",
            b.line
        );
        let mut nonce = b.hex("salt");
        nonce.extend_from_slice(&b.num("seq").to_le_bytes());
        let cipher = Aes256Gcm::new_from_slice(&key).unwrap();
        let opened = cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &rec[40..],
                    aad: &aad,
                },
            )
            .expect("independent AES-GCM opens the pinned record");
        assert_eq!(opened, pt, "line {}", b.line);
    }
}

#[test]
fn record_vectors_open_with_the_crate_opener_and_reject_a_flipped_bit() {
    for b in blocks("record") {
        let rec = b.hex("record");
        let key = b.hex32("epoch_key");
        let salt: [u8; 4] = b.hex("salt").try_into().unwrap();
        let (hdr, pt) = record::open(&key, &salt, &rec).expect("opens");
        assert_eq!(pt, b.hex("plaintext"));
        assert_eq!(hdr.seq, b.num("seq"));
        for i in [0, 39, 40, rec.len() - 1] {
            let mut bad = rec.clone();
            bad[i] ^= 0x01;
            assert!(
                record::open(&key, &salt, &bad).is_err(),
                "bit flip at byte {i} must not open (line {})",
                b.line
            );
        }
    }
}

/// Prints a fresh vector file from the crate's implementation:
/// `cargo test -p secure-ipc --test vectors -- --ignored --nocapture print_vectors`.
/// Only for extending the file; the pinned values must never change.
#[test]
#[ignore]
fn print_vectors() {
    for b in load(FILE) {
        if b.kind != "session" {
            continue;
        }
        let i = indep_session(&b);
        println!("[session] line {}", b.line);
        println!(
            "owner_pub = {}\npeer_pub = {}\nhkdf_salt = {}\nprk = {}",
            hex(&i.owner_pub),
            hex(&i.peer_pub),
            hex(&i.salt),
            hex(&i.prk)
        );
        if let Some(p) = i.proof {
            println!("proof = {}", hex(&p));
        }
        for (f, v) in &i.okm {
            println!("{f} = {}", hex(v));
        }
    }
    for b in load(FILE) {
        if b.kind == "ratchet" {
            let k1 = indep_ratchet(&b.hex("key0"));
            println!(
                "[ratchet] line {}\nkey1 = {}\nkey2 = {}",
                b.line,
                hex(&k1),
                hex(&indep_ratchet(&k1))
            );
        }
        if b.kind == "record" {
            let pt = b.hex("plaintext");
            let mut key = b.hex("key");
            for _ in 0..b.num("epoch") {
                key = indep_ratchet(&key);
            }
            let salt: [u8; 4] = b.hex("salt").try_into().unwrap();
            let sealed = record::seal(
                &key.clone().try_into().unwrap(),
                &salt,
                &record_header(&b, pt.len()),
                &pt,
            );
            println!(
                "[record] line {}\nepoch_key = {}\nrecord = {}",
                b.line,
                hex(&key),
                hex(&sealed)
            );
        }
    }
}
