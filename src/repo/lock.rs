//! Object lock and the format version as the repository handles them: the
//! store is locked as the config says, retention is extended on what is
//! still in use, hidden versions are purged once their retention ends, and
//! a version-1 repository is raised to 2 before it first holds an object
//! that version 1 does not know (docs/format.md, "Format versions").

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};

use super::{RepoError, RepoResult, Repository, PARALLEL_LOADS};
use crate::format::config::{LockMode, ObjectLock, CONFIG_KEY, FORMAT_VERSION};
use crate::store::{DynStore, Purged, Retention};

/// The store-side form of a config's object lock.
pub fn policy(lock: &ObjectLock) -> crate::store::LockPolicy {
    crate::store::LockPolicy {
        mode: match lock.mode {
            LockMode::Governance => crate::store::LockMode::Governance,
            LockMode::Compliance => crate::store::LockMode::Compliance,
        },
        retention: Duration::from_secs(lock.retention_seconds),
    }
}

/// Locks the writes of `store` when the config (its raw bytes, read
/// without a key) asks for object lock; replication does this before it
/// copies into a region.
pub fn lock_like(store: &DynStore, raw_config: &[u8]) -> RepoResult<Option<ObjectLock>> {
    let lock = crate::format::config::peek_lock(raw_config)?;
    if let Some(l) = &lock {
        store.lock_writes(&policy(l))?;
    }
    Ok(lock)
}

impl Repository {
    /// The object lock every write of this repository carries.
    pub fn protection(&self) -> Option<ObjectLock> {
        self.config.object_lock
    }

    /// The format version of the stored config.
    pub fn format_version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Refuses to write into an object-locked repository through a store
    /// that cannot lock (a copy of one in a local directory).
    pub(super) fn check_writable(&self) -> RepoResult<()> {
        match &self.lock_refused {
            None => Ok(()),
            Some(why) => Err(RepoError::Invalid(format!(
                "{}: the repository is object-locked and this store cannot lock what it writes \
                 ({why}); it is read-only here",
                self.location()
            ))),
        }
    }

    /// Raises a version-1 repository to the current version, so that a
    /// binary of version 1 (which does not avoid planned packs) no longer
    /// opens it. Called before the first plan or drill record.
    pub(super) async fn raise_format(&self) -> RepoResult<()> {
        self.check_writable()?;
        if self.format_version() >= FORMAT_VERSION {
            return Ok(());
        }
        let mut config = self.config.clone();
        config.version = FORMAT_VERSION;
        self.store
            .put(CONFIG_KEY, config.encode(&self.key).into())
            .await?;
        tracing::info!(location = %self.location(), version = FORMAT_VERSION, "format version raised");
        self.version.store(FORMAT_VERSION, Ordering::Release);
        Ok(())
    }

    /// The retention of an object's current version (none when the
    /// repository is not locked).
    pub async fn retention(&self, key: &str) -> RepoResult<Option<Retention>> {
        if self.config.object_lock.is_none() {
            return Ok(None);
        }
        Ok(self.store.retention(key).await?)
    }

    /// Moves the retention of every object in `keys` to a full retention
    /// period from `now`. Returns how many were extended.
    pub async fn extend_retention(&self, keys: Vec<String>, now: DateTime<Utc>) -> RepoResult<u64> {
        let Some(lock) = &self.config.object_lock else {
            return Ok(0);
        };
        let r = policy(lock).retention_from(now);
        let n = keys.len() as u64;
        futures::stream::iter(keys)
            .map(|k| async move { self.store.extend_retention(&k, &r).await })
            .buffer_unordered(PARALLEL_LOADS)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(n)
    }

    /// Deletes the hidden versions whose retention ended by `now`.
    pub async fn purge_versions(&self, now: DateTime<Utc>) -> RepoResult<Purged> {
        if self.config.object_lock.is_none() {
            return Ok(Purged::default());
        }
        Ok(self.store.purge_versions("", now).await?)
    }
}
