//! Key objects: the master key wrapped by a key derived from a password with
//! Argon2id. A repository may have several; any one unlocks it.

use serde::{Deserialize, Serialize};

use super::crypto::{aad, b64vec, Cipher, MasterKey};
use super::error::{FormatError, FormatResult};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes: about a quarter of a second on one core.
    fn default() -> Self {
        KdfParams {
            memory_kib: 64 << 10,
            iterations: 3,
            parallelism: 1,
        }
    }
}

/// The largest key derivation a reader performs: 1 GiB of memory, 20
/// passes, 16 lanes. A key object asking for more is refused unopened (a
/// writer of `keys/` needs no password, so its parameters are not trusted).
pub const MAX_KDF_MEMORY_KIB: u32 = 1 << 20;
pub const MAX_KDF_ITERATIONS: u32 = 20;
pub const MAX_KDF_PARALLELISM: u32 = 16;
/// Salt lengths readers accept (writers draw 32 bytes).
pub const SALT_LENGTHS: std::ops::RangeInclusive<usize> = 16..=64;
/// The key object version this code writes and reads.
pub const KEY_VERSION: u64 = 1;
/// Key objects larger than this are refused before they are parsed.
pub const MAX_KEY_OBJECT_SIZE: usize = 64 << 10;

impl KdfParams {
    /// Checks the parameters against the limits readers enforce.
    pub fn validate(&self) -> Result<(), String> {
        let p = self;
        if !(1..=MAX_KDF_PARALLELISM).contains(&p.parallelism) {
            return Err(format!(
                "parallelism {} is outside 1 to {MAX_KDF_PARALLELISM}",
                p.parallelism
            ));
        }
        let min_memory = 8 * p.parallelism;
        if !(min_memory..=MAX_KDF_MEMORY_KIB).contains(&p.memory_kib) {
            return Err(format!(
                "memory {} KiB is outside {min_memory} KiB to {} KiB (1 GiB)",
                p.memory_kib, MAX_KDF_MEMORY_KIB
            ));
        }
        if !(1..=MAX_KDF_ITERATIONS).contains(&p.iterations) {
            return Err(format!(
                "{} iterations is outside 1 to {MAX_KDF_ITERATIONS}",
                p.iterations
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub version: u64,
    pub created: chrono::DateTime<chrono::Utc>,
    pub host: String,
    pub username: String,
    pub kdf: String,
    pub params: KdfParams,
    #[serde(with = "b64vec")]
    pub salt: Vec<u8>,
    /// The sealed JSON of the master key.
    #[serde(with = "b64vec")]
    pub data: Vec<u8>,
}

/// Argon2's working memory (64 MiB by default), mapped with a request for
/// huge pages: filling it then costs a few dozen page faults instead of
/// sixteen thousand.
struct KdfMemory {
    ptr: std::ptr::NonNull<argon2::Block>,
    blocks: usize,
}

impl KdfMemory {
    fn bytes(blocks: usize) -> usize {
        blocks * std::mem::size_of::<argon2::Block>()
    }

    fn new(blocks: usize) -> Option<Self> {
        let len = Self::bytes(blocks);
        let p = crate::util::map_anonymous(len)?;
        // SAFETY: advice on the mapping made above; failure is harmless.
        unsafe { libc::madvise(p.as_ptr().cast(), len, libc::MADV_HUGEPAGE) };
        Some(KdfMemory {
            ptr: p.cast(),
            blocks,
        })
    }

    fn blocks(&mut self) -> &mut [argon2::Block] {
        // SAFETY: the mapping is page-aligned (Block needs 64), zero-filled
        // (a valid Block is any bit pattern), `blocks` long and borrowed
        // mutably through `self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.blocks) }
    }
}

impl Drop for KdfMemory {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping made in `new`, not used after.
        unsafe { crate::util::unmap(self.ptr.cast(), Self::bytes(self.blocks)) };
    }
}

fn derive(password: &[u8], salt: &[u8], p: KdfParams) -> FormatResult<Cipher> {
    p.validate()
        .map_err(|e| FormatError::Invalid(format!("key derivation parameters: {e}")))?;
    let params = argon2::Params::new(p.memory_kib, p.iterations, p.parallelism, Some(32))
        .map_err(|e| FormatError::Invalid(format!("key derivation parameters: {e}")))?;
    let a = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        params.clone(),
    );
    let mut out = [0u8; 32];
    let done = match KdfMemory::new(params.block_count()) {
        Some(mut m) => a.hash_password_into_with_memory(password, salt, &mut out, m.blocks()),
        None => a.hash_password_into(password, salt, &mut out),
    };
    done.map_err(|e| FormatError::Invalid(format!("key derivation: {e}")))?;
    Ok(Cipher::new(&out))
}

impl KeyFile {
    pub fn create(master: &MasterKey, password: &[u8], params: KdfParams) -> FormatResult<Self> {
        let salt: [u8; 32] = rand::random();
        let wrap = derive(password, &salt, params)?;
        let plain = serde_json::to_vec(master).expect("master key serializes");
        Ok(KeyFile {
            version: 1,
            created: chrono::Utc::now(),
            host: crate::util::hostname(),
            username: crate::util::username(),
            kdf: "argon2id".into(),
            params,
            salt: salt.to_vec(),
            data: wrap.seal(&plain, aad::MASTER_KEY),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("key serializes")
    }

    /// Parses a key object without checking its fields (for listing: no
    /// key is derived from what this returns).
    pub fn parse(object: &str, data: &[u8]) -> FormatResult<Self> {
        serde_json::from_slice(data).map_err(|e| FormatError::corrupt(object, e))
    }

    /// Parses a key object and checks every field a reader relies on
    /// before any key derivation: the version, the `kdf`, the salt length
    /// and the Argon2 parameters against the limits above.
    pub fn decode(object: &str, data: &[u8]) -> FormatResult<Self> {
        if data.len() > MAX_KEY_OBJECT_SIZE {
            return Err(FormatError::corrupt(
                object,
                format!("{} bytes, more than a key object holds", data.len()),
            ));
        }
        let k = Self::parse(object, data)?;
        let bad = |why: String| Err(FormatError::corrupt(object, why));
        if k.version != KEY_VERSION {
            return bad(format!(
                "key object version {} is not {KEY_VERSION}, the one this ferry reads",
                k.version
            ));
        }
        if k.kdf != "argon2id" {
            return bad(format!("key derivation {:?} is not argon2id", k.kdf));
        }
        if !SALT_LENGTHS.contains(&k.salt.len()) {
            return bad(format!(
                "salt of {} bytes is outside {} to {} bytes",
                k.salt.len(),
                SALT_LENGTHS.start(),
                SALT_LENGTHS.end()
            ));
        }
        if let Err(e) = k.params.validate() {
            return bad(format!("Argon2 parameters refused: {e}"));
        }
        Ok(k)
    }

    /// The master key, or `None` when the password does not open this key.
    pub fn unwrap_key(&self, password: &[u8]) -> FormatResult<Option<MasterKey>> {
        let wrap = derive(password, &self.salt, self.params)?;
        match wrap.open(&self.data, aad::MASTER_KEY) {
            Ok(plain) => Ok(serde_json::from_slice(&plain).ok()),
            Err(_) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> KeyFile {
        let master = MasterKey::generate();
        let params = KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        KeyFile::create(&master, b"pw", params).unwrap()
    }

    #[test]
    fn hostile_fields_refused_before_derivation() {
        let good = sample();
        assert!(KeyFile::decode("keys/x", &good.encode()).is_ok());
        type Change = Box<dyn Fn(&mut KeyFile)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|k| k.params.memory_kib = u32::MAX), "memory"),
            (Box::new(|k| k.params.memory_kib = 16 << 20), "memory"),
            (Box::new(|k| k.params.iterations = u32::MAX), "iterations"),
            (Box::new(|k| k.params.iterations = 0), "iterations"),
            (Box::new(|k| k.params.parallelism = 1 << 20), "parallelism"),
            (Box::new(|k| k.salt = vec![1; 4]), "salt"),
            (Box::new(|k| k.salt = vec![1; 1 << 16]), "bytes"),
            (Box::new(|k| k.kdf = "scrypt".into()), "argon2id"),
            (Box::new(|k| k.version = 2), "version"),
        ];
        for (change, word) in cases {
            let mut k = good.clone();
            change(&mut k);
            let e = KeyFile::decode("keys/x", &k.encode())
                .unwrap_err()
                .to_string();
            assert!(e.contains("keys/x") && e.contains(word), "{e}");
        }
    }
}
