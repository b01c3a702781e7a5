//! Multipart uploads of large objects: parts in parallel, each checksummed
//! and retried on its own; an upload that fails is aborted so that no parts
//! are left behind, and the object appears only when the upload completes.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::body::{Activity, PacedBody};
use super::S3Store;
use crate::store::{StoreErrorKind, StoreResult};

impl S3Store {
    pub(super) async fn put_multipart(&self, key: &str, data: Bytes) -> StoreResult<()> {
        let full = self.object_key(key);
        let (lock_mode, retain_until) = self.lock_headers();
        let created = self
            .request("put", key, &Activity::new(), async {
                let out = self
                    .client
                    .create_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&full)
                    .set_object_lock_mode(lock_mode)
                    .set_object_lock_retain_until_date(retain_until)
                    .send()
                    .await;
                out.map_err(|e| self.sdk_err("put", key, e))
            })
            .await?;
        let Some(upload_id) = created.upload_id() else {
            return Err(self.err(
                StoreErrorKind::Transient,
                "put",
                key,
                "the server gave no multipart upload id",
            ));
        };
        let result = match self.upload_parts(key, &full, upload_id, &data).await {
            Ok(parts) => self.complete(key, &full, upload_id, parts).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            // The upload may have completed even if its answer was lost;
            // aborting a completed upload fails harmlessly.
            self.abort(key, &full, upload_id).await;
        }
        result
    }

    async fn upload_parts(
        &self,
        key: &str,
        full: &str,
        upload_id: &str,
        data: &Bytes,
    ) -> StoreResult<Vec<CompletedPart>> {
        let part_size = self.settings.part_size as usize;
        let parts = data.len().div_ceil(part_size);
        let chunks = (0..parts).map(|i| {
            (
                i as i32 + 1,
                data.slice(i * part_size..data.len().min((i + 1) * part_size)),
            )
        });
        let mut done: Vec<CompletedPart> = futures::stream::iter(chunks)
            .map(|(number, chunk)| self.upload_part(key, full, upload_id, number, chunk))
            .buffer_unordered(self.settings.connections)
            .try_collect()
            .await?;
        done.sort_by_key(|p| p.part_number());
        Ok(done)
    }

    async fn upload_part(
        &self,
        key: &str,
        full: &str,
        upload_id: &str,
        number: i32,
        chunk: Bytes,
    ) -> StoreResult<CompletedPart> {
        let md5 = Self::content_md5(&chunk);
        self.part_retry
            .run(|_| async {
                let activity = Activity::new();
                self.request("put", key, &activity, async {
                    let out = self
                        .client
                        .upload_part()
                        .bucket(&self.bucket)
                        .key(full)
                        .upload_id(upload_id)
                        .part_number(number)
                        .content_length(chunk.len() as i64)
                        .content_md5(&md5)
                        .body(ByteStream::new(
                            PacedBody::new(chunk.clone(), activity.clone()).into_sdk_body(),
                        ))
                        .send()
                        .await
                        .map_err(|e| self.sdk_err("put", key, e))?;
                    let Some(etag) = out.e_tag() else {
                        return Err(self.err(
                            StoreErrorKind::Transient,
                            "put",
                            key,
                            format!("no ETag for part {number}"),
                        ));
                    };
                    Ok(CompletedPart::builder()
                        .part_number(number)
                        .e_tag(etag)
                        .build())
                })
                .await
            })
            .await
    }

    async fn complete(
        &self,
        key: &str,
        full: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> StoreResult<()> {
        let upload = CompletedMultipartUpload::builder()
            .set_parts(Some(parts))
            .build();
        self.request("put", key, &Activity::new(), async {
            self.client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(full)
                .upload_id(upload_id)
                .multipart_upload(upload)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| self.sdk_err("put", key, e))
        })
        .await
    }

    async fn abort(&self, key: &str, full: &str, upload_id: &str) {
        let aborted = self
            .request("put", key, &Activity::new(), async {
                let out = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(full)
                    .upload_id(upload_id)
                    .send()
                    .await;
                out.map(|_| ()).map_err(|e| self.sdk_err("put", key, e))
            })
            .await;
        if let Err(e) = aborted {
            tracing::warn!(location = %e.location, key, upload_id, error = %e.message, "multipart abort failed");
        }
    }

    /// Aborts the multipart uploads under this store's prefix that started
    /// more than `older_than` ago: the leftovers of crashed or killed
    /// uploads, which the bucket bills for until they are aborted. Returns
    /// how many were aborted. (Buckets may also expire them by a lifecycle
    /// rule; this works without one.)
    pub async fn abort_stale_uploads(&self, older_than: Duration) -> StoreResult<usize> {
        let cutoff = SystemTime::now() - older_than;
        let mut aborted = 0;
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let page = self
                .request("list", &self.prefix, &Activity::new(), async {
                    let out = self
                        .client
                        .list_multipart_uploads()
                        .bucket(&self.bucket)
                        .prefix(&self.prefix)
                        .set_key_marker(key_marker.clone())
                        .set_upload_id_marker(id_marker.clone())
                        .send()
                        .await;
                    out.map_err(|e| self.sdk_err("list", &self.prefix, e))
                })
                .await?;
            for upload in page.uploads() {
                let (Some(full), Some(id)) = (upload.key(), upload.upload_id()) else {
                    continue;
                };
                let started = upload
                    .initiated()
                    .and_then(|t| SystemTime::try_from(*t).ok());
                if started.is_some_and(|t| t < cutoff) {
                    self.abort(full, full, id).await;
                    aborted += 1;
                }
            }
            if page.is_truncated() != Some(true) {
                return Ok(aborted);
            }
            key_marker = page.next_key_marker().map(str::to_string);
            id_marker = page.next_upload_id_marker().map(str::to_string);
        }
    }
}
