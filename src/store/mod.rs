//! The `ObjectStore` trait: the narrow, async interface every storage backend
//! (local directory, S3/OSS) implements, and the wrappers composed over it.

pub mod counting;
pub mod failover;
pub mod local;
pub mod lock;
pub mod memory;
pub mod options;
pub mod retry;
pub mod s3;
pub mod tee;
pub mod testsuite;
pub mod throttle;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

pub use lock::{LockMode, LockPolicy, Purged, Retention};
pub use options::StoreOptions;

/// What an object listing returns for each object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectMeta {
    /// The full key, `/`-separated, relative to the store's root.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// The class of a store failure, which callers match on to decide what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// The object (or the store itself) does not exist.
    NotFound,
    /// Credentials are missing or do not allow the operation.
    PermissionDenied,
    /// The device or bucket is out of space or over quota.
    NoSpace,
    /// A failure that may succeed when retried: the server answered with
    /// a 5xx, a throttling code or a cut response.
    Transient,
    /// No answer: the connection was refused, reset or timed out, or a
    /// transfer stalled. It may succeed when retried, but the retries first
    /// ask whether the store still answers at all (see
    /// [`retry::Liveness`]).
    Unreachable,
    /// A failure that will not succeed when retried (bad request, bad key).
    Permanent,
}

/// A store failure with the location it concerns.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {op} {key}: {message}")]
pub struct StoreError {
    pub kind: StoreErrorKind,
    /// Which store (directory, bucket and region).
    pub location: String,
    /// The operation that failed (`get`, `put`, ...).
    pub op: &'static str,
    pub key: String,
    pub message: String,
}

impl StoreError {
    pub fn new(
        kind: StoreErrorKind,
        location: impl Into<String>,
        op: &'static str,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        StoreError {
            kind,
            location: location.into(),
            op,
            key: key.into(),
            message: message.into(),
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == StoreErrorKind::NotFound
    }

    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            StoreErrorKind::Transient | StoreErrorKind::Unreachable
        )
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// An object store holding one repository.
///
/// The contract every implementation keeps (checked by [`testsuite`]):
///
/// - Keys are `/`-separated relative paths made of `[a-z0-9._-]` segments;
///   implementations may reject other keys with `Permanent`.
/// - **Atomic visibility**: an object is either absent or complete. A `put`
///   that fails or is interrupted (even by a crash) leaves no partial object
///   visible under its key.
/// - **Durability**: when `put` or `put_if_absent` returns `Ok`, the object
///   survives a crash of this process and of the machine (fsync or the
///   server's acknowledgement).
/// - **Read-after-write**: a successful `put` is visible to the next `get`,
///   `head` and `list` from any client of the same store.
/// - `put` replaces an existing object; objects of a repository are
///   content-addressed, so a replacement carries the same bytes.
/// - `put_if_absent` creates the object only when the key is free and
///   returns `Ok(false)` without writing when it is taken; two concurrent
///   calls never both return `Ok(true)`.
/// - `get`, `get_range` and `delete` of a missing key fail with
///   `NotFound`; `head` of a missing key returns `Ok(None)`.
/// - `get_range` returns exactly `length` bytes, or fails with `Permanent`
///   when the range extends past the end of the object.
/// - `list` returns every object whose key starts with `prefix`, in
///   ascending key order, with no duplicates; an empty result is not an
///   error.
/// - Errors carry a [`StoreErrorKind`]: only `Transient` ones are worth a
///   retry.
#[async_trait]
pub trait ObjectStore: Send + Sync + fmt::Debug {
    /// A human-readable location (directory, `s3://bucket/prefix (region)`),
    /// used in messages.
    fn location(&self) -> String;

    async fn get(&self, key: &str) -> StoreResult<Bytes>;

    async fn get_range(&self, key: &str, offset: u64, length: u64) -> StoreResult<Bytes>;

    async fn put(&self, key: &str, data: Bytes) -> StoreResult<()>;

    async fn put_if_absent(&self, key: &str, data: Bytes) -> StoreResult<bool>;

    async fn head(&self, key: &str) -> StoreResult<Option<ObjectMeta>>;

    async fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectMeta>>;

    async fn delete(&self, key: &str) -> StoreResult<()>;

    /// The store that object lock requests go to, for wrappers that add
    /// nothing to them: the default lock methods below then forward there.
    /// `None` (the default) for stores that lock objects themselves or
    /// cannot.
    fn lock_target(&self) -> Option<&dyn ObjectStore> {
        None
    }

    /// Object lock (S3 Object Lock): from now on, every `put` and
    /// `put_if_absent` writes the object with a retention of
    /// `policy.retention` from the time of the write, and `delete` only
    /// hides an object (a delete marker) while its locked versions stay
    /// until [`ObjectStore::purge_versions`] may remove them. Stores that
    /// cannot lock objects (local directories, memory) refuse with
    /// `Permanent`; wrappers pass it to the stores they wrap.
    fn lock_writes(&self, policy: &LockPolicy) -> StoreResult<()> {
        match self.lock_target() {
            Some(s) => s.lock_writes(policy),
            None => Err(lock::unsupported(&self.location())),
        }
    }

    /// The retention of the object's current version; `Ok(None)` when it
    /// has none (or the store cannot lock objects).
    async fn retention(&self, key: &str) -> StoreResult<Option<Retention>> {
        match self.lock_target() {
            Some(s) => s.retention(key).await,
            None => Ok(None),
        }
    }

    /// Moves the retain-until date of the object's current version to
    /// `retention.until`. Callers only ever move it later: a server refuses
    /// to shorten a compliance lock, and a governance lock without a bypass.
    async fn extend_retention(&self, key: &str, retention: &Retention) -> StoreResult<()> {
        match self.lock_target() {
            Some(s) => s.extend_retention(key, retention).await,
            None => Err(lock::unsupported(&self.location())),
        }
    }

    /// Deletes every stored version under `prefix` that is no longer the
    /// current one (hidden by `delete`) and whose retention ended by `now`;
    /// never asks to delete one still retained, and counts those instead.
    /// A store without versions has nothing to purge.
    async fn purge_versions(
        &self,
        prefix: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Purged> {
        match self.lock_target() {
            Some(s) => s.purge_versions(prefix, now).await,
            None => Ok(Purged::default()),
        }
    }
}

/// A shared handle to a store, as the repository layer holds it.
pub type DynStore = Arc<dyn ObjectStore>;

/// Wraps a base store in the layers every repository uses, in this order
/// from the outside: retries (so a retried transfer is throttled again),
/// then bandwidth limits (only when a limit is set), then the base store.
/// The limits are this store's own; see [`compose_shared`].
pub fn compose(base: DynStore, options: &StoreOptions) -> DynStore {
    compose_shared(base, options, &options.bandwidth())
}

/// [`compose`] with limiters shared with other stores: build one
/// [`throttle::Bandwidth`] with [`StoreOptions::bandwidth`] and pass it for
/// every region, so that `--limit-upload` bounds the process as a whole.
pub fn compose_shared(
    base: DynStore,
    options: &StoreOptions,
    bandwidth: &throttle::Bandwidth,
) -> DynStore {
    compose_watched(base, options, bandwidth, None)
}

/// [`compose_shared`] whose retries ask `live` before retrying a failure
/// that got no answer.
pub fn compose_watched(
    base: DynStore,
    options: &StoreOptions,
    bandwidth: &throttle::Bandwidth,
    live: Option<Arc<dyn retry::Liveness>>,
) -> DynStore {
    let mut store = base;
    if !bandwidth.is_unlimited() {
        store = Arc::new(throttle::Throttled::shared(store, bandwidth));
    }
    let policy = options.retry.clone();
    match live {
        Some(live) => Arc::new(retry::Retrying::watched(store, policy, live)),
        None => Arc::new(retry::Retrying::new(store, policy)),
    }
}

/// Opens the base store a repository URL names, without wrappers.
/// `s3://bucket[/prefix]` is an S3 bucket reached with `options.s3`; plain
/// paths and `file://` URLs are local directories.
pub fn open_base(url: &str, options: &StoreOptions) -> Result<DynStore, OpenError> {
    if url.starts_with("s3://") {
        return Ok(Arc::new(s3::S3Store::from_url(url, &options.s3)?));
    }
    if let Some(rest) = url.strip_prefix("file://") {
        return Ok(Arc::new(local::LocalStore::new(rest)));
    }
    if let Some((scheme, _)) = url.split_once("://") {
        return Err(OpenError::UnsupportedScheme {
            url: url.to_string(),
            scheme: scheme.to_string(),
        });
    }
    Ok(Arc::new(local::LocalStore::new(url)))
}

/// Why a repository URL names no store that can be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("repository URL {url:?}: the {scheme}:// scheme is not supported; use s3://bucket/prefix or a local directory path")]
    UnsupportedScheme { url: String, scheme: String },
    #[error(transparent)]
    S3(#[from] s3::S3ConfigError),
    #[error("{0}")]
    Settings(String),
}

/// Opens the store a repository URL names, with retries and bandwidth
/// limits as `options` set them ([`compose`]). Sends no request; S3
/// credentials are looked up on first use.
pub fn open_url_with(url: &str, options: &StoreOptions) -> Result<DynStore, OpenError> {
    Ok(compose(open_base(url, options)?, options))
}
