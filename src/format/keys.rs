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
        // SAFETY: a fresh private anonymous mapping, owned by the value
        // returned and unmapped in its Drop.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        // SAFETY: advice on the mapping made above; failure is harmless.
        unsafe { libc::madvise(p, len, libc::MADV_HUGEPAGE) };
        Some(KdfMemory {
            ptr: std::ptr::NonNull::new(p.cast())?,
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
        // SAFETY: unmaps exactly the mapping made in `new`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), Self::bytes(self.blocks)) };
    }
}

fn derive(password: &[u8], salt: &[u8], p: KdfParams) -> FormatResult<Cipher> {
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

    pub fn decode(object: &str, data: &[u8]) -> FormatResult<Self> {
        serde_json::from_slice(data).map_err(|e| FormatError::corrupt(object, e))
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
