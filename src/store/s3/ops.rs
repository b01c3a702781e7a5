//! The `ObjectStore` operations of the S3 store: single or multipart PUTs,
//! conditional creates per provider, whole and ranged GETs, paginated lists.

use async_trait::async_trait;
use bytes::Bytes;

use super::body::Activity;
use super::error::answer;
use super::transfer::Condition;
use super::{ConditionalCreate, S3Store};
use crate::store::{ObjectMeta, ObjectStore, StoreErrorKind, StoreResult};

#[async_trait]
impl ObjectStore for S3Store {
    fn location(&self) -> String {
        self.location_string()
    }

    async fn get(&self, key: &str) -> StoreResult<Bytes> {
        self.check_key("get", key)?;
        self.read(key, None).await
    }

    async fn get_range(&self, key: &str, offset: u64, length: u64) -> StoreResult<Bytes> {
        self.check_key("get", key)?;
        if length > 0 {
            return self.read(key, Some((offset, length))).await;
        }
        // An empty range has no HTTP form; the object must still exist.
        match self.head(key).await? {
            None => Err(self.err(StoreErrorKind::NotFound, "get", key, "no such object")),
            Some(m) if offset > m.size => {
                let msg = format!(
                    "range {offset}+0 extends past the end of the object ({} bytes)",
                    m.size
                );
                Err(self.err(StoreErrorKind::Permanent, "get", key, msg))
            }
            Some(_) => Ok(Bytes::new()),
        }
    }

    async fn put(&self, key: &str, data: Bytes) -> StoreResult<()> {
        self.check_key("put", key)?;
        if data.len() as u64 > self.settings.multipart_threshold {
            return self.put_multipart(key, data).await;
        }
        self.put_single(key, data, Condition::None)
            .await
            .map(|_| ())
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> StoreResult<bool> {
        self.check_key("put", key)?;
        let _one_at_a_time = self.create_lock(key).lock().await;
        match self.quirks.conditional_create {
            ConditionalCreate::IfNoneMatch => {
                self.put_single(key, data, Condition::IfNoneMatch).await
            }
            ConditionalCreate::OssForbidOverwrite => {
                self.put_single(key, data, Condition::OssForbidOverwrite)
                    .await
            }
            ConditionalCreate::WriteThenVerify => {
                if self.head(key).await?.is_some() {
                    return Ok(false);
                }
                self.put_single(key, data.clone(), Condition::None).await?;
                Ok(self.read(key, None).await? == data)
            }
        }
    }

    async fn head(&self, key: &str) -> StoreResult<Option<ObjectMeta>> {
        self.check_key("head", key)?;
        self.request("head", key, &Activity::new(), async {
            match self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(self.object_key(key))
                .send()
                .await
            {
                Ok(out) => {
                    let size = out
                        .content_length()
                        .and_then(|n| u64::try_from(n).ok())
                        .unwrap_or(0);
                    Ok(Some(ObjectMeta {
                        key: key.to_string(),
                        size,
                    }))
                }
                Err(e) if answer(&e).is_some_and(|a| a.status == 404) => Ok(None),
                Err(e) => Err(self.sdk_err("head", key, e)),
            }
        })
        .await
    }

    async fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectMeta>> {
        let full = self.object_key(prefix);
        let mut token: Option<String> = None;
        let mut out = Vec::new();
        loop {
            let page = self
                .request("list", prefix, &Activity::new(), async {
                    self.client
                        .list_objects_v2()
                        .bucket(&self.bucket)
                        .prefix(&full)
                        .max_keys(self.settings.list_page_size)
                        .set_continuation_token(token.clone())
                        .send()
                        .await
                        .map_err(|e| self.sdk_err("list", prefix, e))
                })
                .await?;
            for obj in page.contents() {
                let Some(key) = obj.key().and_then(|k| k.strip_prefix(&self.prefix)) else {
                    continue;
                };
                if key.is_empty() || key.ends_with('/') {
                    continue;
                }
                let size = obj.size().and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
                out.push(ObjectMeta {
                    key: key.to_string(),
                    size,
                });
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        out.sort();
        out.dedup_by(|a, b| a.key == b.key);
        Ok(out)
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.check_key("delete", key)?;
        // S3 answers a DELETE of a missing key with success; the contract
        // wants NotFound, so look first.
        if self.head(key).await?.is_none() {
            return Err(self.err(StoreErrorKind::NotFound, "delete", key, "no such object"));
        }
        self.request("delete", key, &Activity::new(), async {
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(self.object_key(key))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| self.sdk_err("delete", key, e))
        })
        .await
    }

    fn lock_writes(&self, policy: &crate::store::LockPolicy) -> StoreResult<()> {
        self.set_lock(policy)
    }

    async fn retention(&self, key: &str) -> StoreResult<Option<crate::store::Retention>> {
        self.check_key("head", key)?;
        self.head_retention(key, None).await
    }

    async fn extend_retention(
        &self,
        key: &str,
        retention: &crate::store::Retention,
    ) -> StoreResult<()> {
        self.check_key("retention", key)?;
        self.put_retention(key, retention).await
    }

    async fn purge_versions(
        &self,
        prefix: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<crate::store::Purged> {
        if !self.locked() {
            return Ok(crate::store::Purged::default());
        }
        self.purge(prefix, now).await
    }
}
