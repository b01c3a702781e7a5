//! Preparing a bucket for a new repository: create it when it is missing,
//! then prove that the credentials may list, write, read and delete under
//! the prefix, naming the permission that is missing when one is.

use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use bytes::Bytes;

use super::body::Activity;
use super::error::answer;
use super::{Provider, S3Store};
use crate::store::{ObjectStore, StoreError, StoreErrorKind, StoreResult};

/// What [`S3Store::init`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketInit {
    Existed,
    Created,
}

impl S3Store {
    /// Creates the bucket when it does not exist, then checks that the
    /// credentials allow every operation a repository needs. A
    /// `PermissionDenied` error names the missing permission
    /// (`s3:CreateBucket`, `s3:ListBucket`, `s3:PutObject`, ...).
    pub async fn init(&self) -> StoreResult<BucketInit> {
        self.init_with(false).await
    }

    /// [`S3Store::init`] for an object-locked repository: a bucket created
    /// here has Object Lock enabled, and an existing one must have it.
    pub async fn init_with(&self, object_lock: bool) -> StoreResult<BucketInit> {
        if object_lock {
            self.lock_supported()?;
        }
        let found = self
            .request("init", "", &Activity::new(), async {
                match self.client.head_bucket().bucket(&self.bucket).send().await {
                    Ok(_) => Ok(true),
                    Err(e) if answer(&e).is_some_and(|a| a.status == 404) => Ok(false),
                    Err(e) => Err(lacking(self.sdk_err("init", "", e), "s3:ListBucket")),
                }
            })
            .await?;
        let outcome = if found {
            if object_lock {
                self.check_bucket_lock().await?;
            }
            BucketInit::Existed
        } else {
            self.create_bucket(object_lock).await?;
            tracing::info!(location = %self.location_string(), "bucket created");
            BucketInit::Created
        };
        self.probe().await?;
        Ok(outcome)
    }

    /// Refuses a bucket without Object Lock (objects written there could
    /// not carry a retention).
    async fn check_bucket_lock(&self) -> StoreResult<()> {
        let enabled = self
            .request("init", "", &Activity::new(), async {
                match self
                    .client
                    .get_object_lock_configuration()
                    .bucket(&self.bucket)
                    .send()
                    .await
                {
                    Ok(out) => Ok(out
                        .object_lock_configuration()
                        .and_then(|c| c.object_lock_enabled())
                        .is_some_and(|e| e.as_str() == "Enabled")),
                    Err(e) if answer(&e).is_some_and(|a| a.status == 404) => Ok(false),
                    Err(e) => Err(self.sdk_err("init", "", e)),
                }
            })
            .await?;
        match enabled {
            true => Ok(()),
            false => Err(self.err(
                StoreErrorKind::Permanent,
                "init",
                "",
                "the bucket exists without Object Lock: --object-lock needs a bucket created \
                 with Object Lock enabled; name a new bucket (init creates it) or enable it on this one",
            )),
        }
    }

    async fn create_bucket(&self, object_lock: bool) -> StoreResult<()> {
        // AWS wants the region named, except for its first one; the other
        // providers take the region from the endpoint.
        let config =
            (self.settings.provider == Provider::Aws && self.region != "us-east-1").then(|| {
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(self.region.as_str()))
                    .build()
            });
        self.request("init", "", &Activity::new(), async {
            let sent = self
                .client
                .create_bucket()
                .bucket(&self.bucket)
                .set_create_bucket_configuration(config)
                .set_object_lock_enabled_for_bucket(object_lock.then_some(true))
                .send()
                .await;
            match sent {
                Ok(_) => Ok(()),
                Err(e)
                    if answer(&e)
                        .is_some_and(|a| a.code.as_deref() == Some("BucketAlreadyOwnedByYou")) =>
                {
                    Ok(())
                }
                Err(e) => {
                    let mut err = lacking(self.sdk_err("init", "", e), "s3:CreateBucket");
                    if err.kind == StoreErrorKind::PermissionDenied {
                        err.message = format!("the bucket does not exist and {}", err.message);
                    }
                    Err(err)
                }
            }
        })
        .await
    }

    /// Lists, writes, reads and deletes one small object under the prefix.
    async fn probe(&self) -> StoreResult<()> {
        let key = format!("ferry-init-probe-{:016x}", rand::random::<u64>());
        let data = Bytes::from_static(b"ferry init probe");
        self.list(&key)
            .await
            .map_err(|e| lacking(e, "s3:ListBucket"))?;
        self.put(&key, data.clone())
            .await
            .map_err(|e| lacking(e, "s3:PutObject"))?;
        let read = self
            .get(&key)
            .await
            .map_err(|e| lacking(e, "s3:GetObject"))?;
        if read != data {
            return Err(self.err(
                StoreErrorKind::Permanent,
                "init",
                &key,
                "the probe object read back differs",
            ));
        }
        self.delete(&key)
            .await
            .map_err(|e| lacking(e, "s3:DeleteObject"))
    }
}

/// Names the permission a `PermissionDenied` failure points to.
fn lacking(mut e: StoreError, permission: &str) -> StoreError {
    if e.kind == StoreErrorKind::PermissionDenied {
        e.message = format!("the credentials lack {permission} ({})", e.message);
    }
    e
}
