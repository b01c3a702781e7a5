//! The `ObjectStore` operations of the S3 store: checksummed single-request
//! PUTs, conditional creates per provider, verified GETs, paginated lists.

use async_trait::async_trait;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumMode;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use md5::{Digest, Md5};

use super::body::{Activity, PacedBody};
use super::error::{answer, describe};
use super::{ConditionalCreate, S3Store};
use crate::store::{throttle, ObjectMeta, ObjectStore, StoreError, StoreErrorKind, StoreResult};

/// What a single PUT asks the server to check before writing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Condition {
    None,
    IfNoneMatch,
    OssForbidOverwrite,
}

impl S3Store {
    pub(super) fn sdk_err<E>(&self, op: &'static str, key: &str, e: SdkError<E>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let (kind, message) = describe(&e);
        tracing::debug!(location = %self.location_string(), op, key, error = %message, "s3 request failed");
        self.err(kind, op, key, message)
    }

    pub(super) fn content_md5(data: &[u8]) -> String {
        BASE64.encode(Md5::digest(data))
    }

    /// One PutObject. Returns `Ok(false)` when `condition` kept an existing
    /// object from being replaced.
    async fn put_single(&self, key: &str, data: Bytes, condition: Condition) -> StoreResult<bool> {
        let activity = Activity::new();
        let md5 = Self::content_md5(&data);
        let crc = self
            .quirks
            .flexible_checksums
            .then(|| BASE64.encode(crc32c::crc32c(&data).to_be_bytes()));
        let full = self.object_key(key);
        self.request("put", key, &activity, async {
            let req = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(&full)
                .content_length(data.len() as i64)
                .content_md5(md5)
                .set_checksum_crc32_c(crc)
                .set_if_none_match((condition == Condition::IfNoneMatch).then(|| "*".to_string()))
                .body(ByteStream::new(
                    PacedBody::new(data.clone(), activity.clone()).into_sdk_body(),
                ));
            let sent = if condition == Condition::OssForbidOverwrite {
                req.customize()
                    .mutate_request(|r| {
                        r.headers_mut().insert("x-oss-forbid-overwrite", "true");
                    })
                    .send()
                    .await
            } else {
                req.send().await
            };
            match sent {
                Ok(_) => Ok(true),
                Err(e) => match answer(&e) {
                    Some(a) if condition == Condition::IfNoneMatch && a.status == 412 => Ok(false),
                    Some(a)
                        if condition == Condition::OssForbidOverwrite
                            && a.status == 409
                            && a.code.as_deref() == Some("FileAlreadyExists") =>
                    {
                        Ok(false)
                    }
                    _ => Err(self.sdk_err("put", key, e)),
                },
            }
        })
        .await
    }

    /// One GetObject, whole or a byte range, read to the end and checked
    /// against the length the server announced (and, where the provider
    /// stores one, the object's CRC32C, which the SDK verifies).
    async fn read(&self, key: &str, range: Option<(u64, u64)>) -> StoreResult<Bytes> {
        let activity = Activity::new();
        let limiter = throttle::download_limiter();
        self.request("get", key, &activity, async {
            let mut req = self.client.get_object().bucket(&self.bucket).key(self.object_key(key));
            if let Some((offset, length)) = range {
                req = req.range(format!("bytes={}-{}", offset, offset + length - 1));
            } else if self.quirks.flexible_checksums {
                req = req.checksum_mode(ChecksumMode::Enabled);
            }
            let out = req.send().await.map_err(|e| self.sdk_err("get", key, e))?;
            if let (Some((offset, length)), Some(total)) = (range, out.content_range().and_then(range_total)) {
                if offset + length > total {
                    let msg = format!("range {offset}+{length} extends past the end of the object ({total} bytes)");
                    return Err(self.err(StoreErrorKind::Permanent, "get", key, msg));
                }
            }
            let expected = out.content_length().and_then(|n| u64::try_from(n).ok());
            let mut body = out.body;
            let mut buf = BytesMut::with_capacity(expected.unwrap_or(0).min(1 << 30) as usize);
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| {
                    self.err(StoreErrorKind::Transient, "get", key, format!("reading the response: {}", DisplayErrorContext(&e)))
                })?;
                activity.touch();
                if let Some(limiter) = &limiter {
                    limiter.acquire(chunk.len()).await;
                    activity.touch();
                }
                buf.extend_from_slice(&chunk);
            }
            let want = range.map(|(_, length)| length).or(expected);
            match want {
                Some(n) if n != buf.len() as u64 => Err(self.err(
                    StoreErrorKind::Transient,
                    "get",
                    key,
                    format!("response cut short: {} of {n} bytes", buf.len()),
                )),
                _ => Ok(buf.freeze()),
            }
        })
        .await
    }
}

/// The object size in a `Content-Range: bytes a-b/size` header.
fn range_total(content_range: &str) -> Option<u64> {
    content_range.rsplit_once('/')?.1.parse().ok()
}

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
        if data.len() as u64 >= self.settings.multipart_threshold {
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
}
