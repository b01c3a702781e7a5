//! Bandwidth limiting as a wrapper of the store: one upload and one download
//! limit shared by every transfer that passes through the wrapper.
//!
//! A limit is only smooth if the bytes are paced while they cross the
//! network, which only the store doing the transfer can do. The wrapper
//! therefore makes its limiters visible to the inner store for the length of
//! each call (a task-local [`Pacing`]); a store that streams (S3) takes them
//! with [`upload_limiter`] / [`download_limiter`] and paces its request and
//! response bodies in chunks of [`CHUNK_BYTES`]. For a store that does not,
//! the wrapper charges each object's bytes when its call ends, which keeps
//! the average rate but not the smoothness.

mod limiter;
mod schedule;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

pub use limiter::{Limiter, CHUNK_BYTES};
pub use schedule::{parse_rate, ParseError, Rate, Schedule};

use super::{DynStore, ObjectMeta, ObjectStore, StoreResult};

tokio::task_local! {
    static PACING: Pacing;
}

/// The limiters in force for the current store call: those of every
/// enclosing [`Throttled`] wrapper (a global limit around a region's own,
/// say).
#[derive(Clone, Default)]
struct Pacing {
    upload: Vec<Arc<Limiter>>,
    download: Vec<Arc<Limiter>>,
    taken: Vec<Arc<AtomicBool>>,
}

/// The limiters one transfer must keep to: each chunk waits for the
/// slowest.
#[derive(Debug, Clone)]
pub struct Pace(Vec<Arc<Limiter>>);

impl Pace {
    /// Reserves `n` bytes on every limiter; when the last slot ends.
    pub fn reserve_now(&self, n: usize) -> Option<tokio::time::Instant> {
        self.0.iter().filter_map(|l| l.reserve_now(n)).max()
    }

    /// Waits until `n` more bytes may pass every limiter.
    pub async fn acquire(&self, n: usize) {
        if let Some(deadline) = self.reserve_now(n) {
            tokio::time::sleep_until(deadline).await;
        }
    }
}

fn take(upload: bool) -> Option<Pace> {
    PACING
        .try_with(|p| {
            for t in &p.taken {
                t.store(true, Ordering::Relaxed);
            }
            let limiters = if upload { &p.upload } else { &p.download };
            (!limiters.is_empty()).then(|| Pace(limiters.clone()))
        })
        .ok()
        .flatten()
}

/// The upload limiters of the enclosing [`Throttled`] calls, for a store
/// that paces its request bodies itself. Taking them tells the wrappers not
/// to charge the bytes again.
pub fn upload_limiter() -> Option<Pace> {
    take(true)
}

/// The download limiters of the enclosing [`Throttled`] calls; see
/// [`upload_limiter`].
pub fn download_limiter() -> Option<Pace> {
    take(false)
}

/// An upload and a download limiter. Clones share the same limiters, so
/// stores wrapped with one `Bandwidth` (several regions, say) share its
/// limits between them.
#[derive(Debug, Clone, Default)]
pub struct Bandwidth {
    pub upload: Option<Arc<Limiter>>,
    pub download: Option<Arc<Limiter>>,
}

impl Bandwidth {
    /// Limiters for the two schedules; `None` or `off` leaves that
    /// direction free.
    pub fn new(upload: Option<Schedule>, download: Option<Schedule>) -> Bandwidth {
        let limiter =
            |s: Option<Schedule>| s.filter(|s| !s.is_off()).map(|s| Arc::new(Limiter::new(s)));
        Bandwidth {
            upload: limiter(upload),
            download: limiter(download),
        }
    }

    pub fn is_unlimited(&self) -> bool {
        self.upload.is_none() && self.download.is_none()
    }
}

/// A store whose transfers share an upload and a download limit.
#[derive(Debug)]
pub struct Throttled {
    inner: DynStore,
    upload: Option<Arc<Limiter>>,
    download: Option<Arc<Limiter>>,
}

impl Throttled {
    /// Wraps `inner` with limiters of its own.
    pub fn new(inner: DynStore, upload: Option<Schedule>, download: Option<Schedule>) -> Throttled {
        Throttled::shared(inner, &Bandwidth::new(upload, download))
    }

    /// Wraps `inner` with limiters shared with other stores.
    pub fn shared(inner: DynStore, bandwidth: &Bandwidth) -> Throttled {
        Throttled {
            inner,
            upload: bandwidth.upload.clone(),
            download: bandwidth.download.clone(),
        }
    }

    /// Runs `call` with the limiters visible to the inner store; charges
    /// `bytes` to `limiter` afterwards if the inner store did not pace the
    /// transfer itself.
    async fn paced<T>(
        &self,
        limiter: &Option<Arc<Limiter>>,
        call: impl std::future::Future<Output = StoreResult<T>>,
        bytes: impl FnOnce(&T) -> usize,
    ) -> StoreResult<T> {
        let Some(limiter) = limiter else {
            return call.await;
        };
        let taken = Arc::new(AtomicBool::new(false));
        let mut pacing = PACING.try_with(Pacing::clone).unwrap_or_default();
        pacing.upload.extend(self.upload.clone());
        pacing.download.extend(self.download.clone());
        pacing.taken.push(taken.clone());
        let out = PACING.scope(pacing, call).await?;
        if !taken.load(Ordering::Relaxed) {
            let mut left = bytes(&out);
            while left > 0 {
                let n = left.min(CHUNK_BYTES);
                limiter.acquire(n).await;
                left -= n;
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl ObjectStore for Throttled {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn get(&self, key: &str) -> StoreResult<Bytes> {
        self.paced(&self.download, self.inner.get(key), Bytes::len)
            .await
    }

    async fn get_range(&self, key: &str, offset: u64, length: u64) -> StoreResult<Bytes> {
        self.paced(
            &self.download,
            self.inner.get_range(key, offset, length),
            Bytes::len,
        )
        .await
    }

    async fn put(&self, key: &str, data: Bytes) -> StoreResult<()> {
        let len = data.len();
        self.paced(&self.upload, self.inner.put(key, data), |_| len)
            .await
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> StoreResult<bool> {
        let len = data.len();
        self.paced(&self.upload, self.inner.put_if_absent(key, data), |_| len)
            .await
    }

    async fn head(&self, key: &str) -> StoreResult<Option<ObjectMeta>> {
        self.inner.head(key).await
    }

    async fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectMeta>> {
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.inner.delete(key).await
    }

    fn lock_target(&self) -> Option<&dyn ObjectStore> {
        Some(&*self.inner)
    }
}
