//! S3 Object Lock: retention headers on every write once a store is
//! locked, retention read from HeadObject (some servers fail
//! GetObjectRetention) and extended with PutObjectRetention, and the purge
//! of hidden versions whose retention has ended.

use aws_sdk_s3::types::{ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode};
use chrono::{DateTime, Utc};

use super::body::Activity;
use super::error::answer;
use super::{Provider, S3Store};
use crate::store::{LockMode, LockPolicy, Purged, Retention, StoreErrorKind, StoreResult};

/// The headers of a locked write: mode and retain-until.
pub(super) type LockHeaders = (Option<ObjectLockMode>, Option<aws_smithy_types::DateTime>);

fn sdk_time(t: DateTime<Utc>) -> aws_smithy_types::DateTime {
    // Whole seconds, rounded up: the date on the wire has no fraction.
    aws_smithy_types::DateTime::from_secs(t.timestamp() + i64::from(t.timestamp_subsec_nanos() > 0))
}

fn chrono_time(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

fn mode_of(m: &ObjectLockMode) -> LockMode {
    match m {
        ObjectLockMode::Compliance => LockMode::Compliance,
        _ => LockMode::Governance,
    }
}

impl S3Store {
    pub(super) fn set_lock(&self, policy: &LockPolicy) -> StoreResult<()> {
        self.lock_supported()?;
        *self.lock.write().unwrap_or_else(|e| e.into_inner()) = Some(*policy);
        Ok(())
    }

    /// OSS has no per-object retention through its S3 interface; ferry
    /// refuses rather than write objects a user believes locked.
    pub(super) fn lock_supported(&self) -> StoreResult<()> {
        if self.settings.provider == Provider::Oss {
            return Err(self.err(
                StoreErrorKind::Permanent,
                "lock",
                "",
                "OSS has no per-object retention: protect the bucket with an OSS retention \
                 (WORM) policy instead and create the repository without --object-lock",
            ));
        }
        Ok(())
    }

    pub(super) fn locked(&self) -> bool {
        self.lock
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// The lock headers of a write starting now (none when not locked).
    pub(super) fn lock_headers(&self) -> LockHeaders {
        let policy = *self.lock.read().unwrap_or_else(|e| e.into_inner());
        match policy {
            None => (None, None),
            Some(p) => {
                let r = p.retention_from(Utc::now());
                let mode = match r.mode {
                    LockMode::Governance => ObjectLockMode::Governance,
                    LockMode::Compliance => ObjectLockMode::Compliance,
                };
                (Some(mode), Some(sdk_time(r.until)))
            }
        }
    }

    /// The retention of one version (the current one without `version`).
    pub(super) async fn head_retention(
        &self,
        key: &str,
        version: Option<&str>,
    ) -> StoreResult<Option<Retention>> {
        self.request("head", key, &Activity::new(), async {
            let sent = self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(self.object_key(key))
                .set_version_id(version.map(str::to_string))
                .send()
                .await;
            match sent {
                Ok(out) => Ok(
                    match (out.object_lock_mode(), out.object_lock_retain_until_date()) {
                        (Some(m), Some(t)) => chrono_time(t).map(|until| Retention {
                            mode: mode_of(m),
                            until,
                        }),
                        _ => None,
                    },
                ),
                Err(e) if answer(&e).is_some_and(|a| a.status == 404) => Ok(None),
                Err(e) => Err(self.sdk_err("head", key, e)),
            }
        })
        .await
    }

    pub(super) async fn put_retention(&self, key: &str, r: &Retention) -> StoreResult<()> {
        let mode = match r.mode {
            LockMode::Governance => ObjectLockRetentionMode::Governance,
            LockMode::Compliance => ObjectLockRetentionMode::Compliance,
        };
        let retention = ObjectLockRetention::builder()
            .mode(mode)
            .retain_until_date(sdk_time(r.until))
            .build();
        self.request("retention", key, &Activity::new(), async {
            self.client
                .put_object_retention()
                .bucket(&self.bucket)
                .key(self.object_key(key))
                .retention(retention)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| self.sdk_err("retention", key, e))
        })
        .await
    }

    /// Every hidden version under `prefix`: (key, version id, size).
    async fn hidden_versions(&self, prefix: &str) -> StoreResult<Vec<(String, String, u64)>> {
        let full = self.object_key(prefix);
        let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
        let mut out = Vec::new();
        loop {
            let page = self
                .request("list", prefix, &Activity::new(), async {
                    self.client
                        .list_object_versions()
                        .bucket(&self.bucket)
                        .prefix(&full)
                        .set_key_marker(key_marker.clone())
                        .set_version_id_marker(version_marker.clone())
                        .send()
                        .await
                        .map_err(|e| self.sdk_err("list", prefix, e))
                })
                .await?;
            for v in page.versions() {
                let (Some(k), Some(id)) = (v.key(), v.version_id()) else {
                    continue;
                };
                if v.is_latest() == Some(true) {
                    continue;
                }
                let Some(k) = k.strip_prefix(&self.prefix) else {
                    continue;
                };
                let size = v.size().and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
                out.push((k.to_string(), id.to_string(), size));
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_string);
            version_marker = page.next_version_id_marker().map(str::to_string);
            if key_marker.is_none() {
                break;
            }
        }
        Ok(out)
    }

    async fn delete_version(&self, key: &str, version: &str) -> StoreResult<()> {
        self.request("delete", key, &Activity::new(), async {
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(self.object_key(key))
                .version_id(version)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| self.sdk_err("delete", key, e))
        })
        .await
    }

    pub(super) async fn purge(&self, prefix: &str, now: DateTime<Utc>) -> StoreResult<Purged> {
        let mut out = Purged::default();
        for (key, version, size) in self.hidden_versions(prefix).await? {
            match self.head_retention(&key, Some(&version)).await? {
                Some(r) if r.until > now => {
                    out.deferred_versions += 1;
                    out.deferred_bytes += size;
                    out.deferred_until = out.deferred_until.max(Some(r.until));
                }
                _ => {
                    self.delete_version(&key, &version).await?;
                    out.versions += 1;
                    out.bytes += size;
                }
            }
        }
        Ok(out)
    }
}
