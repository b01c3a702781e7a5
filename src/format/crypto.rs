//! Authenticated encryption of stored objects (XChaCha20-Poly1305 with random
//! 192-bit nonces) and the keyed hash that names blobs.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::id::BlobId;

pub const NONCE_LEN: usize = 24;
pub const TAG_LEN: usize = 16;
/// Bytes a sealed object has beyond its plaintext.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// Associated data binding each kind of object to its role, so an object of
/// one kind can never be passed off as another.
pub mod aad {
    pub const PACK_HEADER: &[u8] = b"ferry pack header v1";
    pub const INDEX: &[u8] = b"ferry index v1";
    pub const SNAPSHOT: &[u8] = b"ferry snapshot v1";
    pub const PLAN: &[u8] = b"ferry deletion plan v1";
    pub const DRILL: &[u8] = b"ferry drill v1";
    pub const MASTER_KEY: &[u8] = b"ferry master key v1";
}

#[derive(Debug, thiserror::Error)]
#[error("authentication failed: the data was altered, truncated, or sealed with another key")]
pub struct OpenError;

/// The secrets of a repository, generated at `init` and stored only wrapped
/// by a password-derived key in `keys/`.
#[derive(Clone, Serialize, Deserialize)]
pub struct MasterKey {
    /// Encrypts every stored object.
    #[serde(with = "b64")]
    pub encrypt: [u8; 32],
    /// Keys the BLAKE3 hash that names blobs.
    #[serde(with = "b64")]
    pub blob_id: [u8; 32],
    /// Authenticates the repository config.
    #[serde(with = "b64")]
    pub mac: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    pub fn generate() -> Self {
        let mut rng = rand::rngs::OsRng;
        let mut k = MasterKey {
            encrypt: [0; 32],
            blob_id: [0; 32],
            mac: [0; 32],
        };
        rng.fill_bytes(&mut k.encrypt);
        rng.fill_bytes(&mut k.blob_id);
        rng.fill_bytes(&mut k.mac);
        k
    }

    pub fn cipher(&self) -> Cipher {
        Cipher::new(&self.encrypt)
    }

    pub fn blob_id(&self, plaintext: &[u8]) -> BlobId {
        BlobId(*blake3::keyed_hash(&self.blob_id, plaintext).as_bytes())
    }

    pub fn mac(&self, data: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(&self.mac, data).as_bytes()
    }
}

/// Seals and opens objects with one key.
#[derive(Clone)]
pub struct Cipher(XChaCha20Poly1305);

impl Cipher {
    pub fn new(key: &[u8; 32]) -> Self {
        Cipher(XChaCha20Poly1305::new(Key::from_slice(key)))
    }

    /// Appends `nonce || ciphertext || tag` of `plaintext` to `out`.
    pub fn seal_into(&self, plaintext: &[u8], aad: &[u8], out: &mut Vec<u8>) {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        out.reserve(plaintext.len() + OVERHEAD);
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(plaintext);
        let tag = self
            .0
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), aad, &mut out[start..])
            .expect("XChaCha20-Poly1305 encrypts any length below 256 GiB");
        out.extend_from_slice(&tag);
    }

    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
        self.seal_into(plaintext, aad, &mut out);
        out
    }

    /// Opens a sealed object, checking that it was sealed with this key and
    /// `aad` and has not been altered.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, OpenError> {
        let mut buf = Vec::new();
        self.open_into(sealed, aad, &mut buf)?;
        Ok(buf)
    }

    /// [`Cipher::open`] into a buffer the caller reuses (its contents are
    /// replaced).
    pub fn open_into(&self, sealed: &[u8], aad: &[u8], buf: &mut Vec<u8>) -> Result<(), OpenError> {
        if sealed.len() < OVERHEAD {
            return Err(OpenError);
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        buf.clear();
        buf.extend_from_slice(ct);
        self.0
            .decrypt_in_place_detached(XNonce::from_slice(nonce), aad, buf, Tag::from_slice(tag))
            .map_err(|_| OpenError)
    }
}

pub(crate) mod b64 {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer, const N: usize>(v: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let s = String::deserialize(d)?;
        let v = STANDARD.decode(s).map_err(serde::de::Error::custom)?;
        v.try_into()
            .map_err(|_| serde::de::Error::custom("wrong key length"))
    }
}

/// Base64 for variable-length byte strings in JSON documents.
pub(crate) mod b64vec {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_tamper() {
        let k = MasterKey::generate();
        let c = k.cipher();
        let sealed = c.seal(b"hello world", aad::INDEX);
        assert_eq!(sealed.len(), 11 + OVERHEAD);
        assert_eq!(c.open(&sealed, aad::INDEX).unwrap(), b"hello world");
        assert!(c.open(&sealed, aad::SNAPSHOT).is_err(), "wrong aad");
        let mut bad = sealed.clone();
        bad[30] ^= 1;
        assert!(c.open(&bad, aad::INDEX).is_err(), "flipped bit");
        assert!(
            c.open(&sealed[..sealed.len() - 1], aad::INDEX).is_err(),
            "truncated"
        );
        assert!(
            MasterKey::generate()
                .cipher()
                .open(&sealed, aad::INDEX)
                .is_err(),
            "other key"
        );
        assert_ne!(
            k.blob_id(b"x"),
            BlobId::of_bytes(b"x"),
            "blob ids are keyed"
        );
    }
}
