//! Object lock as stores see it: the retention every write carries, and
//! what a purge of hidden versions did.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{StoreError, StoreErrorKind};

/// S3 Object Lock retention mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    Governance,
    Compliance,
}

/// What every write carries once a store is locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockPolicy {
    pub mode: LockMode,
    pub retention: std::time::Duration,
}

impl LockPolicy {
    /// The retention of an object written (or extended) at `now`.
    pub fn retention_from(&self, now: DateTime<Utc>) -> Retention {
        let d = chrono::Duration::from_std(self.retention).unwrap_or(chrono::Duration::MAX);
        Retention {
            mode: self.mode,
            until: now
                .checked_add_signed(d)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }
}

/// The lock of one stored object version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Retention {
    pub mode: LockMode,
    pub until: DateTime<Utc>,
}

/// What [`super::ObjectStore::purge_versions`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Purged {
    /// Hidden versions deleted, and their bytes.
    pub versions: u64,
    pub bytes: u64,
    /// Hidden versions still retained: deleted by a later purge.
    pub deferred_versions: u64,
    pub deferred_bytes: u64,
    /// When the last of the deferred versions may be deleted.
    pub deferred_until: Option<DateTime<Utc>>,
}

impl Purged {
    pub fn add(&mut self, other: &Purged) {
        self.versions += other.versions;
        self.bytes += other.bytes;
        self.deferred_versions += other.deferred_versions;
        self.deferred_bytes += other.deferred_bytes;
        self.deferred_until = self.deferred_until.max(other.deferred_until);
    }
}

/// The refusal of a store that cannot lock objects.
pub fn unsupported(location: &str) -> StoreError {
    StoreError::new(
        StoreErrorKind::Permanent,
        location,
        "lock",
        "",
        "this store cannot lock objects (object lock needs an S3 bucket created with \
         Object Lock enabled); use an s3:// repository, or create it without --object-lock",
    )
}
