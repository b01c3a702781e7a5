//! The `config` object: format version and the repository-wide parameters
//! fixed at init, authenticated with the master key's MAC key.

use serde::{Deserialize, Serialize};

use super::crypto::MasterKey;
use super::error::{FormatError, FormatResult};

/// The format version this code writes, and the newest it reads.
/// Version 2 adds deletion plans (`plans/`), drill records and the
/// optional `object_lock` field; version 1 repositories are read as they
/// are and raised to 2 before their first deletion plan.
pub const FORMAT_VERSION: u64 = 2;
/// The oldest format version this code reads.
pub const OLDEST_VERSION: u64 = 1;

pub const CONFIG_KEY: &str = "config";
/// The only cipher of version 1.
pub const CIPHER: &str = "xchacha20-poly1305";
/// The only blob id function of version 1.
pub const BLOB_ID: &str = "blake3-keyed";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkerParams {
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams {
            min_size: 512 << 10,
            avg_size: 1 << 20,
            max_size: 8 << 20,
        }
    }
}

impl ChunkerParams {
    pub fn validate(&self) -> FormatResult<()> {
        let ok = self.min_size >= 64
            && self.min_size <= self.avg_size
            && self.avg_size <= self.max_size
            && self.avg_size >= 256
            && self.max_size <= 64 << 20;
        if ok {
            Ok(())
        } else {
            Err(FormatError::Invalid(format!(
                "chunk sizes must satisfy 64 B <= min <= avg <= max <= 64 MiB and avg >= 256 B \
                 (got min {} avg {} max {})",
                self.min_size, self.avg_size, self.max_size
            )))
        }
    }
}

/// S3 Object Lock retention mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    /// Deletions before the retain-until date need a special permission.
    Governance,
    /// No one can delete before the retain-until date.
    Compliance,
}

impl LockMode {
    pub fn name(self) -> &'static str {
        match self {
            LockMode::Governance => "governance",
            LockMode::Compliance => "compliance",
        }
    }
}

/// Every object is written with a retention of `retention_seconds`, which
/// prune extends on what is still in use (docs/format.md, "Object lock").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectLock {
    pub mode: LockMode,
    pub retention_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigBody {
    pub version: u64,
    /// Random repository id, hex; identical in every region holding a copy.
    pub id: String,
    pub chunker: ChunkerParams,
    /// zstd level for blobs (1-22); 0 turns compression off.
    pub compression_level: i32,
    /// Target size of a pack in bytes.
    pub pack_size: u32,
    pub cipher: String,
    pub blob_id: String,
    /// Version 2: present when every object is written under object lock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLock>,
}

/// The stored form: the body and a keyed BLAKE3 MAC of its JSON encoding.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub config: ConfigBody,
    pub mac: String,
}

impl ConfigBody {
    pub fn new(
        chunker: ChunkerParams,
        compression_level: i32,
        pack_size: u32,
    ) -> FormatResult<Self> {
        let body = ConfigBody {
            version: FORMAT_VERSION,
            id: hex::encode(rand::random::<[u8; 16]>()),
            chunker,
            compression_level,
            pack_size,
            cipher: CIPHER.into(),
            blob_id: BLOB_ID.into(),
            object_lock: None,
        };
        body.validate().map_err(FormatError::Invalid)?;
        Ok(body)
    }

    /// Every value a reader relies on, within what the format allows.
    pub fn validate(&self) -> Result<(), String> {
        if let Err(FormatError::Invalid(e)) = self.chunker.validate() {
            return Err(e);
        }
        if !(0..=22).contains(&self.compression_level) {
            return Err(format!(
                "compression level {} is outside 0 (off) to 22",
                self.compression_level
            ));
        }
        if !(1 << 20..=1 << 30).contains(&self.pack_size) {
            return Err(format!(
                "pack size {} is outside 1 MiB to 1 GiB",
                self.pack_size
            ));
        }
        if self.cipher != CIPHER {
            return Err(format!("cipher {:?} is not {CIPHER:?}", self.cipher));
        }
        if self.blob_id != BLOB_ID {
            return Err(format!(
                "blob id function {:?} is not {BLOB_ID:?}",
                self.blob_id
            ));
        }
        if let Some(lock) = &self.object_lock {
            if self.version < 2 {
                return Err("object_lock needs format version 2".into());
            }
            if lock.retention_seconds == 0 || lock.retention_seconds > 100 * 365 * 86_400 {
                return Err(format!(
                    "object lock retention {} s is outside 1 s to 100 years",
                    lock.retention_seconds
                ));
            }
        }
        let hex_id = self.id.len() == 32 && self.id.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex_id {
            return Err(format!("repository id {:?} is not 32 hex digits", self.id));
        }
        Ok(())
    }

    pub fn encode(&self, key: &MasterKey) -> Vec<u8> {
        let body = serde_json::to_vec(self).expect("config serializes");
        let file = ConfigFile {
            config: self.clone(),
            mac: hex::encode(key.mac(&body)),
        };
        serde_json::to_vec_pretty(&file).expect("config serializes")
    }
}

/// The object lock of a config, read without a key (replication locks what
/// it copies before it can unlock anything). Authenticated later by
/// [`decode`] when the repository is opened.
pub fn peek_lock(data: &[u8]) -> FormatResult<Option<ObjectLock>> {
    serde_json::from_value(peek(data, "object_lock")?)
        .map_err(|e| FormatError::corrupt(CONFIG_KEY, format!("object_lock: {e}")))
}

/// A field of the config's clear part, read without a key.
fn peek(data: &[u8], field: &str) -> FormatResult<serde_json::Value> {
    let mut v: serde_json::Value =
        serde_json::from_slice(data).map_err(|e| FormatError::corrupt(CONFIG_KEY, e))?;
    Ok(v.get_mut("config")
        .and_then(|c| c.get_mut(field))
        .map(serde_json::Value::take)
        .unwrap_or_default())
}

/// Reads the format version before anything else, so a newer repository gets
/// a clear message instead of a parse error.
pub fn peek_version(data: &[u8]) -> FormatResult<u64> {
    peek(data, "version")?
        .as_u64()
        .ok_or_else(|| FormatError::corrupt(CONFIG_KEY, "no format version"))
}

/// Reads the repository id without a key (it is stored in clear, under the
/// MAC), so that copies can be matched before anything is unlocked.
pub fn peek_id(data: &[u8]) -> FormatResult<String> {
    match peek(data, "id")? {
        serde_json::Value::String(id) => Ok(id),
        _ => Err(FormatError::corrupt(CONFIG_KEY, "no repository id")),
    }
}

/// Parses and authenticates the config with the unlocked master key.
pub fn decode(data: &[u8], key: &MasterKey) -> FormatResult<ConfigBody> {
    let file: ConfigFile =
        serde_json::from_slice(data).map_err(|e| FormatError::corrupt(CONFIG_KEY, e))?;
    let body = serde_json::to_vec(&file.config).expect("config serializes");
    if hex::encode(key.mac(&body)) != file.mac {
        return Err(FormatError::corrupt(
            CONFIG_KEY,
            "MAC mismatch: the config was altered",
        ));
    }
    if !(OLDEST_VERSION..=FORMAT_VERSION).contains(&file.config.version) {
        return Err(FormatError::corrupt(
            CONFIG_KEY,
            format!(
                "format version {} is not {OLDEST_VERSION} to {FORMAT_VERSION}",
                file.config.version
            ),
        ));
    }
    file.config
        .validate()
        .map_err(|e| FormatError::corrupt(CONFIG_KEY, e))?;
    Ok(file.config)
}
