//! The S3 store: one bucket (and key prefix) of AWS S3, Alibaba OSS, MinIO,
//! Ceph RGW, Garage or another S3-compatible service, over aws-sdk-s3.

mod body;
mod client;
mod error;
mod init;
mod lock;
mod multipart;
mod ops;
mod provider;
mod settings;
mod transfer;

use std::hash::{Hash, Hasher};
use std::time::Duration;

use tokio::sync::{Mutex, Semaphore, SemaphorePermit};

pub use error::classify;
pub use init::BucketInit;
pub use provider::{ConditionalCreate, Provider, Quirks, UnknownProvider};
pub use settings::{EnvError, S3Settings, Secret};

use super::retry::RetryPolicy;
use super::{StoreError, StoreErrorKind};
use body::{Activity, Stalled};

/// A bucket, or a prefix in a bucket, holding one repository.
#[derive(Debug)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// Empty, or ends with `/`.
    prefix: String,
    region: String,
    settings: S3Settings,
    quirks: Quirks,
    /// One permit per HTTP request in flight.
    connections: Semaphore,
    /// Serialises `put_if_absent` of one key within this process.
    create_locks: Vec<Mutex<()>>,
    /// Set once the repository is object-locked: every write carries it.
    lock: std::sync::RwLock<Option<crate::store::LockPolicy>>,
    /// Retries of single multipart parts, so that a large upload does not
    /// start over for one failed part.
    part_retry: RetryPolicy,
}

/// An `s3://` URL or settings that cannot make a store.
#[derive(Debug, thiserror::Error)]
pub enum S3ConfigError {
    #[error("{0:?} is not an S3 URL; expected s3://bucket or s3://bucket/prefix")]
    BadUrl(String),
    #[error("S3 settings: {0}")]
    Settings(String),
    #[error("bucket name {name:?} is invalid ({why}): S3 and OSS bucket names are 3-63 characters of lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit")]
    BadBucketName { name: String, why: &'static str },
}

/// Checks a bucket name against the naming rules AWS S3, OSS, MinIO and
/// Ceph share, so that a bad name is refused before any request.
fn check_bucket_name(name: &str) -> Result<(), S3ConfigError> {
    let bad = |why| {
        Err(S3ConfigError::BadBucketName {
            name: name.to_string(),
            why,
        })
    };
    if !(3..=63).contains(&name.len()) {
        return bad("length");
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-';
    if !name.chars().all(allowed) {
        return bad("characters");
    }
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !edge(name.chars().next()) || !edge(name.chars().last()) {
        return bad("first or last character");
    }
    if name.contains("..") {
        return bad("two dots in a row");
    }
    Ok(())
}

impl S3Store {
    /// Opens `bucket` under `prefix` (`""` for the whole bucket). Sends no
    /// request: credentials are looked up on first use.
    pub fn new(
        bucket: &str,
        prefix: &str,
        settings: &S3Settings,
    ) -> Result<S3Store, S3ConfigError> {
        settings.validate().map_err(S3ConfigError::Settings)?;
        if bucket.is_empty() || bucket.contains('/') {
            return Err(S3ConfigError::BadUrl(format!("s3://{bucket}/{prefix}")));
        }
        check_bucket_name(bucket)?;
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        let region = client::region(settings);
        Ok(S3Store {
            client: client::build(settings, &region),
            bucket: bucket.to_string(),
            prefix,
            region,
            settings: settings.clone(),
            quirks: settings.provider.quirks(),
            connections: Semaphore::new(settings.connections),
            create_locks: (0..64).map(|_| Mutex::new(())).collect(),
            lock: std::sync::RwLock::new(None),
            part_retry: RetryPolicy {
                max_attempts: 4,
                initial_backoff_ms: 100,
                max_backoff_ms: 2_000,
                budget_seconds: 120,
            },
        })
    }

    /// Opens the store an `s3://bucket/prefix` URL names.
    pub fn from_url(url: &str, settings: &S3Settings) -> Result<S3Store, S3ConfigError> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| S3ConfigError::BadUrl(url.to_string()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        S3Store::new(bucket, prefix, settings).map_err(|e| match e {
            S3ConfigError::BadUrl(_) => S3ConfigError::BadUrl(url.to_string()),
            e => e,
        })
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// The underlying SDK client, for operations the trait does not cover.
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    fn object_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn idle(&self) -> Duration {
        Duration::from_millis(self.settings.idle_timeout_ms)
    }

    fn err(
        &self,
        kind: StoreErrorKind,
        op: &'static str,
        key: &str,
        message: impl Into<String>,
    ) -> StoreError {
        StoreError::new(kind, self.location_string(), op, key, message)
    }

    fn location_string(&self) -> String {
        let endpoint = self
            .settings
            .endpoint
            .as_deref()
            .map(|e| format!(", {e}"))
            .unwrap_or_default();
        format!(
            "s3://{}/{} ({}{endpoint})",
            self.bucket, self.prefix, self.region
        )
    }

    fn check_key(&self, op: &'static str, key: &str) -> Result<(), StoreError> {
        let valid = !key.is_empty()
            && key.split('/').all(|seg| {
                !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && seg
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            });
        if valid {
            Ok(())
        } else {
            Err(self.err(StoreErrorKind::Permanent, op, key, "invalid object key"))
        }
    }

    async fn connection(&self) -> SemaphorePermit<'_> {
        self.connections
            .acquire()
            .await
            .expect("the connection semaphore is never closed")
    }

    fn create_lock(&self, key: &str) -> &Mutex<()> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        &self.create_locks[h.finish() as usize % self.create_locks.len()]
    }

    /// Runs one HTTP request under a connection permit and the idle
    /// watchdog; `activity` is touched by the request's body as it moves.
    async fn request<T>(
        &self,
        op: &'static str,
        key: &str,
        activity: &Activity,
        fut: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let _permit = self.connection().await;
        activity.touch();
        match activity.watch(self.idle(), fut).await {
            Ok(r) => r,
            Err(stalled @ Stalled(_)) => {
                Err(self.err(StoreErrorKind::Unreachable, op, key, stalled.to_string()))
            }
        }
    }
}
