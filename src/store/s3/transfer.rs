//! The two requests that move object bytes: a checksummed PutObject (with
//! the provider's create-if-absent condition) and a verified GetObject.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumMode;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use md5::{Digest, Md5};

use super::body::{Activity, PacedBody};
use super::error::{answer, describe};
use super::S3Store;
use crate::store::{throttle, StoreError, StoreErrorKind, StoreResult};

/// What a single PUT asks the server to check before writing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Condition {
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
    pub(super) async fn put_single(
        &self,
        key: &str,
        data: Bytes,
        condition: Condition,
    ) -> StoreResult<bool> {
        let activity = Activity::new();
        // One integrity check per request: CRC32C where the provider takes
        // it (hardware-assisted), else Content-MD5 (several times slower).
        let crc = self
            .quirks
            .flexible_checksums
            .then(|| BASE64.encode(crc32c::crc32c(&data).to_be_bytes()));
        let md5 = crc.is_none().then(|| Self::content_md5(&data));
        let full = self.object_key(key);
        let (lock_mode, retain_until) = self.lock_headers();
        self.request("put", key, &activity, async {
            let req = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(&full)
                .content_length(data.len() as i64)
                .set_content_md5(md5)
                .set_checksum_crc32_c(crc)
                .set_object_lock_mode(lock_mode)
                .set_object_lock_retain_until_date(retain_until)
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
    pub(super) async fn read(&self, key: &str, range: Option<(u64, u64)>) -> StoreResult<Bytes> {
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
                    let message = super::error::causes(&e);
                    // The bytes do not match the checksum the server stored
                    // with the object: the stored copy is damaged, and asking
                    // again returns the same bytes. `check` reports it and
                    // `repair` replaces it.
                    if message.to_ascii_lowercase().contains("checksum mismatch") {
                        let m = format!("the stored object does not match its checksum (damaged): {message}");
                        return self.err(StoreErrorKind::Permanent, "get", key, m);
                    }
                    self.err(StoreErrorKind::Transient, "get", key, format!("reading the response: {message}"))
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
