//! The sealed record format shared by both backends (docs/record-format.md).
//!
//! A record is `RecordHeader` (40 bytes, little-endian, the AAD) ‖ ciphertext
//! (`len` bytes) ‖ 16-byte AES-256-GCM tag. The nonce is the direction's
//! 4-byte salt ‖ le64(seq). Sequence numbers count every record of a
//! direction from 0, so a replayed, dropped, reordered or altered record does
//! not open.

use crate::keys;
use crate::Error;
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use secure_ipc_ring::abi::{self, RecordHeader};
use zeroize::Zeroizing;

/// Record format version carried in every header.
pub const RECORD_VERSION: u8 = 1;
/// Header length (the AAD).
pub const HEADER_LEN: usize = RecordHeader::LEN;
/// Tag length.
pub const TAG_LEN: usize = abi::SIPC_TAG_LEN;
/// Bytes a record adds to its payload.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// Largest forward epoch jump an opener follows (bounds the ratchet work a
/// bogus header can cause).
pub const MAX_EPOCH_JUMP: u32 = 1024;

/// The nonce of record `seq` in a direction with nonce salt `salt`.
pub fn nonce(salt: &[u8; 4], seq: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(salt);
    n[4..].copy_from_slice(&seq.to_le_bytes());
    n
}

/// Encrypts `buf` in place under (key, salt) with `hdr` as AAD; returns the tag.
pub fn seal_in_place(
    cipher: &Aes256Gcm,
    salt: &[u8; 4],
    hdr: &RecordHeader,
    buf: &mut [u8],
) -> [u8; TAG_LEN] {
    let aad = hdr.to_le_bytes();
    let n = nonce(salt, hdr.seq);
    // Encryption with a 12-byte nonce only fails for > 64 GiB buffers.
    match cipher.encrypt_in_place_detached(Nonce::from_slice(&n), &aad, buf) {
        Ok(tag) => tag.into(),
        Err(_) => unreachable!("AES-GCM payload larger than 64 GiB"),
    }
}

/// Decrypts `buf` in place if `tag` authenticates it with `hdr` as AAD.
pub fn open_in_place(
    cipher: &Aes256Gcm,
    salt: &[u8; 4],
    hdr: &RecordHeader,
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), Error> {
    let aad = hdr.to_le_bytes();
    let n = nonce(salt, hdr.seq);
    cipher
        .decrypt_in_place_detached(Nonce::from_slice(&n), &aad, buf, Tag::from_slice(tag))
        .map_err(|_| Error::AuthenticationFailed)
}

/// Seals one whole record: header ‖ ciphertext ‖ tag (`hdr.len` must equal
/// `plaintext.len()`).
pub fn seal(key: &[u8; 32], salt: &[u8; 4], hdr: &RecordHeader, plaintext: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(key.into());
    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.extend_from_slice(&hdr.to_le_bytes());
    out.extend_from_slice(plaintext);
    let tag = seal_in_place(&cipher, salt, hdr, &mut out[HEADER_LEN..]);
    out.extend_from_slice(&tag);
    out
}

/// Opens one whole record produced by [`seal`]; returns its header and plaintext.
pub fn open(
    key: &[u8; 32],
    salt: &[u8; 4],
    record: &[u8],
) -> Result<(RecordHeader, Vec<u8>), Error> {
    let (hdr, body, tag) = split(record)?;
    let cipher = Aes256Gcm::new(key.into());
    let mut pt = body.to_vec();
    open_in_place(&cipher, salt, &hdr, &mut pt, &tag)?;
    Ok((hdr, pt))
}

/// Splits a record into header, ciphertext and tag, checking the lengths.
pub fn split(record: &[u8]) -> Result<(RecordHeader, &[u8], [u8; TAG_LEN]), Error> {
    if record.len() < OVERHEAD {
        return Err(Error::AuthenticationFailed);
    }
    let mut hb = [0u8; HEADER_LEN];
    hb.copy_from_slice(&record[..HEADER_LEN]);
    let hdr = RecordHeader::from_le_bytes(&hb);
    if hdr.len as usize != record.len() - OVERHEAD {
        return Err(Error::AuthenticationFailed);
    }
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&record[record.len() - TAG_LEN..]);
    Ok((hdr, &record[HEADER_LEN..record.len() - TAG_LEN], tag))
}

/// One direction's current key: epoch, key bytes (for the ratchet), cipher.
struct EpochKey {
    epoch: u32,
    key: Zeroizing<[u8; 32]>,
    cipher: Aes256Gcm,
}

impl EpochKey {
    fn new(epoch: u32, key: Zeroizing<[u8; 32]>) -> Self {
        let cipher = Aes256Gcm::new((&*key).into());
        Self { epoch, key, cipher }
    }
    /// The next epoch's key; the caller drops `self` to erase the old one.
    fn ratcheted(&self) -> Self {
        Self::new(self.epoch.wrapping_add(1), keys::ratchet(&self.key))
    }
}

/// The sealing side of one direction.
pub struct Sealer {
    channel_id: u64,
    direction: u8,
    salt: [u8; 4],
    cur: EpochKey,
    next_seq: u64,
    rekey_records: u64,
    rekey_bytes: u64,
    epoch_records: u64,
    epoch_bytes: u64,
}

impl Sealer {
    /// A sealer at epoch 0, sequence 0.
    pub fn new(
        channel_id: u64,
        direction: u8,
        key: Zeroizing<[u8; 32]>,
        salt: [u8; 4],
        rekey_records: u64,
        rekey_bytes: u64,
    ) -> Self {
        Self {
            channel_id,
            direction,
            salt,
            cur: EpochKey::new(0, key),
            next_seq: 0,
            rekey_records: rekey_records.max(1),
            rekey_bytes: rekey_bytes.max(1),
            epoch_records: 0,
            epoch_bytes: 0,
        }
    }

    /// Current epoch.
    pub fn epoch(&self) -> u32 {
        self.cur.epoch
    }

    /// Ratchets to the next epoch and erases the old key.
    pub fn rekey(&mut self) -> u32 {
        self.cur = self.cur.ratcheted();
        self.epoch_records = 0;
        self.epoch_bytes = 0;
        self.cur.epoch
    }

    /// Seals `buf` in place as the next record; returns its header and tag.
    /// Returns whether the key was ratcheted first (the usage limit was hit).
    pub fn seal_next(
        &mut self,
        msg_type: u16,
        timestamp_ns: u64,
        buf: &mut [u8],
    ) -> Result<(RecordHeader, [u8; TAG_LEN], bool), Error> {
        let mut rekeyed = false;
        if self.epoch_records >= self.rekey_records || self.epoch_bytes >= self.rekey_bytes {
            self.rekey();
            rekeyed = true;
        }
        if self.next_seq == u64::MAX {
            return Err(Error::Protocol(
                "sequence space of this direction exhausted".into(),
            ));
        }
        let hdr = RecordHeader {
            channel_id: self.channel_id,
            seq: self.next_seq,
            timestamp_ns,
            epoch: self.cur.epoch,
            len: buf.len() as u32,
            type_: msg_type,
            direction: self.direction,
            version: RECORD_VERSION,
            group_left: 0,
        };
        let tag = seal_in_place(&self.cur.cipher, &self.salt, &hdr, buf);
        self.next_seq += 1;
        self.epoch_records += 1;
        self.epoch_bytes += buf.len() as u64;
        Ok((hdr, tag, rekeyed))
    }
}

/// The opening side of one direction.
pub struct Opener {
    channel_id: u64,
    direction: u8,
    salt: [u8; 4],
    cur: EpochKey,
    /// Sequence number of the next record (every record counts, opened or not).
    next_seq: u64,
}

impl Opener {
    /// An opener at epoch 0, sequence 0.
    pub fn new(channel_id: u64, direction: u8, key: Zeroizing<[u8; 32]>, salt: [u8; 4]) -> Self {
        Self {
            channel_id,
            direction,
            salt,
            cur: EpochKey::new(0, key),
            next_seq: 0,
        }
    }

    /// Current epoch.
    pub fn epoch(&self) -> u32 {
        self.cur.epoch
    }

    /// Opens the next record of the direction in place. `record` is a private
    /// copy: header ‖ ciphertext ‖ tag. On success returns the header, the
    /// plaintext is `record[HEADER_LEN..HEADER_LEN + len]`, and the number of
    /// epochs ratcheted. On failure the record counts as consumed (its
    /// sequence number is spent) and nothing of it may be delivered.
    pub fn open_next(&mut self, record: &mut [u8]) -> Result<(RecordHeader, u32), Error> {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        if record.len() < OVERHEAD {
            return Err(Error::AuthenticationFailed);
        }
        let mut hb = [0u8; HEADER_LEN];
        hb.copy_from_slice(&record[..HEADER_LEN]);
        let hdr = RecordHeader::from_le_bytes(&hb);
        if hdr.channel_id != self.channel_id
            || hdr.direction != self.direction
            || hdr.version != RECORD_VERSION
            || hdr.group_left != 0
            || hdr.seq != seq
            || hdr.len as usize != record.len() - OVERHEAD
            || hdr.epoch < self.cur.epoch
            || hdr.epoch - self.cur.epoch > MAX_EPOCH_JUMP
        {
            return Err(Error::AuthenticationFailed);
        }
        let tag_at = record.len() - TAG_LEN;
        let (body, tag) = record[HEADER_LEN..].split_at_mut(tag_at - HEADER_LEN);
        let tag: [u8; TAG_LEN] = (&*tag)
            .try_into()
            .map_err(|_| Error::AuthenticationFailed)?;
        let jump = hdr.epoch - self.cur.epoch;
        if jump == 0 {
            open_in_place(&self.cur.cipher, &self.salt, &hdr, body, &tag)?;
            return Ok((hdr, 0));
        }
        // Try the later epoch's key; adopt it (erasing the old ones) only once a
        // record authenticates under it, so a forged epoch cannot strand us.
        let mut cand = self.cur.ratcheted();
        for _ in 1..jump {
            cand = cand.ratcheted();
        }
        open_in_place(&cand.cipher, &self.salt, &hdr, body, &tag)?;
        self.cur = cand;
        Ok((hdr, jump))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `needle` occurs anywhere in `hay`.
    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn a_dropped_epoch_key_leaves_neither_key_nor_key_schedule_behind() {
        // AES-256's first two round keys are the two key halves: a key
        // schedule that is not wiped gives the key away.
        let key: [u8; 32] = core::array::from_fn(|i| 0xA0 ^ i as u8);
        let mut slot = std::mem::MaybeUninit::<EpochKey>::uninit();
        slot.write(EpochKey::new(0, Zeroizing::new(key)));
        let bytes = |s: &std::mem::MaybeUninit<EpochKey>| {
            let mut v = vec![0u8; size_of::<EpochKey>()];
            for (i, b) in v.iter_mut().enumerate() {
                // SAFETY: copies the slot's bytes, all written by the
                // constructor (the key schedule is plain data), with
                // volatile reads so the compiler assumes nothing about them.
                *b = unsafe { std::ptr::read_volatile(s.as_ptr().cast::<u8>().add(i)) };
            }
            v
        };
        let live = bytes(&slot);
        assert!(
            contains(&live, &key[..16]) && contains(&live, &key[16..]),
            "the test must see the round keys while the cipher lives"
        );
        // SAFETY: the slot holds a live EpochKey, dropped exactly once.
        unsafe { slot.assume_init_drop() };
        let dead = bytes(&slot);
        assert!(
            !contains(&dead, &key[..16]) && !contains(&dead, &key[16..]),
            "key material survives the drop of the cipher"
        );
    }
}
