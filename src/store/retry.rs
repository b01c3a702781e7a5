//! Retries of transient store failures, as a wrapper of the store:
//! exponential backoff with jitter, a budget of attempts and time per
//! operation, never a retry of a failure that cannot succeed, and no retry
//! against a store that no longer answers at all ([`Liveness`]).

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{DynStore, ObjectMeta, ObjectStore, StoreError, StoreErrorKind, StoreResult};

/// Whether a store still answers, asked before retrying a failure that got
/// no answer (a region's endpoint may have gone away for good). One
/// instance serves every operation on the store, so that one probe speaks
/// for all of them.
#[async_trait]
pub trait Liveness: Send + Sync + std::fmt::Debug {
    /// `Ok` when the store answers (retrying is worth it), else why not.
    async fn answers(&self) -> Result<(), String>;
}

/// How hard one operation is retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts per operation, the first included; 1 disables retries.
    pub max_attempts: u32,
    /// The first backoff; each later one doubles, up to `max_backoff_ms`.
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// No new attempt starts after this much time since the first.
    pub budget_seconds: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            initial_backoff_ms: 200,
            max_backoff_ms: 20_000,
            budget_seconds: 600,
        }
    }
}

impl RetryPolicy {
    /// The pause before attempt `next` (2, 3, ...): half the exponential
    /// step plus a random part of the other half, so that clients which
    /// failed together do not retry together.
    pub fn backoff(&self, next: u32) -> Duration {
        let step = self
            .initial_backoff_ms
            .saturating_mul(1 << (next.saturating_sub(2)).min(30));
        let step = step.min(self.max_backoff_ms).max(1);
        Duration::from_millis(step / 2 + rand::random::<u64>() % (step - step / 2 + 1))
    }

    /// Runs `op(previous)` until it succeeds, fails with a non-transient
    /// error, or the budget is spent; `previous` is the `op` field of the
    /// failure before this attempt (`None` on the first). The final error keeps the last
    /// failure's kind, location and key and says how many attempts were made.
    pub async fn run<T, F, Fut>(&self, op: F) -> StoreResult<T>
    where
        F: FnMut(Option<&'static str>) -> Fut,
        Fut: Future<Output = StoreResult<T>>,
    {
        self.run_watched(None, op).await
    }

    /// [`RetryPolicy::run`], asking `live` before retrying a failure that
    /// got no answer: when the store no longer answers, the operation
    /// gives up at once instead of spending its retries on it.
    pub async fn run_watched<T, F, Fut>(
        &self,
        live: Option<&dyn Liveness>,
        mut op: F,
    ) -> StoreResult<T>
    where
        F: FnMut(Option<&'static str>) -> Fut,
        Fut: Future<Output = StoreResult<T>>,
    {
        let start = Instant::now();
        let budget = Duration::from_secs(self.budget_seconds);
        let mut attempt = 1;
        let mut previous = None;
        loop {
            let err = match op(previous).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if !err.is_retryable() {
                return Err(err);
            }
            let delay = self.backoff(attempt + 1);
            if attempt >= self.max_attempts || start.elapsed() + delay > budget {
                return Err(gave_up(err, attempt, start.elapsed()));
            }
            if let Some(live) = live.filter(|_| err.kind == StoreErrorKind::Unreachable) {
                if let Err(why) = live.answers().await {
                    let mut e = gave_up(err, attempt, start.elapsed());
                    e.message = format!("{}; not retried: {why}", e.message);
                    return Err(e);
                }
            }
            tracing::warn!(
                location = %err.location, op = err.op, key = %err.key, attempt,
                delay_ms = delay.as_millis() as u64, error = %err.message, "store retry"
            );
            tokio::time::sleep(delay).await;
            previous = Some(err.op);
            attempt += 1;
        }
    }
}

fn gave_up(mut e: StoreError, attempts: u32, elapsed: Duration) -> StoreError {
    if attempts > 1 {
        e.message = format!(
            "{} (gave up after {attempts} attempts in {:.1} s)",
            e.message,
            elapsed.as_secs_f64()
        );
    }
    e
}

/// A store whose operations are retried by a [`RetryPolicy`].
///
/// An attempt that failed transiently may still have taken effect on the
/// server (the response was lost), so later attempts of non-idempotent
/// operations are read in that light: a `delete` that finds the key gone
/// after a failed delete request (not a failed look-up before it)
/// succeeded, and a `put_if_absent` that finds the key taken after a failed
/// attempt reads the object back and reports success if it holds exactly
/// the bytes being written (objects that must not be overwritten, such as
/// locks, carry a unique id, so equal bytes mean the earlier attempt won).
#[derive(Debug)]
pub struct Retrying {
    inner: DynStore,
    policy: RetryPolicy,
    live: Option<std::sync::Arc<dyn Liveness>>,
}

impl Retrying {
    pub fn new(inner: DynStore, policy: RetryPolicy) -> Retrying {
        Retrying {
            inner,
            policy,
            live: None,
        }
    }

    /// Retries that ask `live` first after a failure without an answer.
    pub fn watched(
        inner: DynStore,
        policy: RetryPolicy,
        live: std::sync::Arc<dyn Liveness>,
    ) -> Retrying {
        Retrying {
            inner,
            policy,
            live: Some(live),
        }
    }

    async fn run<T, F, Fut>(&self, op: F) -> StoreResult<T>
    where
        F: FnMut(Option<&'static str>) -> Fut,
        Fut: Future<Output = StoreResult<T>>,
    {
        self.policy.run_watched(self.live.as_deref(), op).await
    }
}

#[async_trait]
impl ObjectStore for Retrying {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn get(&self, key: &str) -> StoreResult<Bytes> {
        self.run(|_| self.inner.get(key)).await
    }

    async fn get_range(&self, key: &str, offset: u64, length: u64) -> StoreResult<Bytes> {
        self.run(|_| self.inner.get_range(key, offset, length))
            .await
    }

    async fn put(&self, key: &str, data: Bytes) -> StoreResult<()> {
        self.run(|_| self.inner.put(key, data.clone())).await
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> StoreResult<bool> {
        self.run(|previous| {
            let data = data.clone();
            async move {
                let created = self.inner.put_if_absent(key, data.clone()).await?;
                if created || previous.is_none() {
                    return Ok(created);
                }
                // An earlier attempt may have created it before failing.
                match self.inner.get(key).await {
                    Ok(stored) => Ok(stored == data),
                    Err(e) if e.is_not_found() => Ok(false),
                    Err(e) => Err(e),
                }
            }
        })
        .await
    }

    async fn head(&self, key: &str) -> StoreResult<Option<ObjectMeta>> {
        self.run(|_| self.inner.head(key)).await
    }

    async fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectMeta>> {
        self.run(|_| self.inner.list(prefix)).await
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.run(|previous| async move {
            match self.inner.delete(key).await {
                Err(e) if e.is_not_found() && previous == Some("delete") => Ok(()),
                r => r,
            }
        })
        .await
    }
    fn lock_writes(&self, policy: &crate::store::LockPolicy) -> StoreResult<()> {
        self.inner.lock_writes(policy)
    }

    async fn retention(&self, key: &str) -> StoreResult<Option<crate::store::Retention>> {
        self.run(|_| self.inner.retention(key)).await
    }

    async fn extend_retention(
        &self,
        key: &str,
        retention: &crate::store::Retention,
    ) -> StoreResult<()> {
        self.run(|_| self.inner.extend_retention(key, retention))
            .await
    }

    async fn purge_versions(
        &self,
        prefix: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<crate::store::Purged> {
        self.run(|_| self.inner.purge_versions(prefix, now)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let p = RetryPolicy {
            initial_backoff_ms: 100,
            max_backoff_ms: 1000,
            ..RetryPolicy::default()
        };
        for (attempt, step) in [
            (2, 100),
            (3, 200),
            (4, 400),
            (5, 800),
            (6, 1000),
            (40, 1000),
        ] {
            for _ in 0..50 {
                let ms = p.backoff(attempt).as_millis() as u64;
                assert!(
                    ms >= step / 2 && ms <= step,
                    "attempt {attempt}: {ms} ms for a step of {step}"
                );
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn budget_of_attempts_and_time() {
        use crate::store::StoreErrorKind::{Permanent, Transient};
        let fail =
            |kind| async move { Err::<(), _>(StoreError::new(kind, "here", "get", "k", "boom")) };
        let p = RetryPolicy {
            max_attempts: 4,
            initial_backoff_ms: 10,
            max_backoff_ms: 10,
            budget_seconds: 60,
        };
        let mut calls = 0;
        let e = p
            .run(|_| {
                calls += 1;
                fail(Transient)
            })
            .await
            .unwrap_err();
        assert_eq!(calls, 4);
        assert!(
            e.to_string()
                .starts_with("here: get k: boom (gave up after 4 attempts"),
            "{e}"
        );
        let mut calls = 0;
        p.run(|_| {
            calls += 1;
            fail(Permanent)
        })
        .await
        .unwrap_err();
        assert_eq!(calls, 1, "permanent failures are not retried");
        let slow = RetryPolicy {
            max_attempts: 100,
            initial_backoff_ms: 1000,
            max_backoff_ms: 1000,
            budget_seconds: 3,
        };
        let mut calls = 0;
        slow.run(|_| {
            calls += 1;
            fail(Transient)
        })
        .await
        .unwrap_err();
        assert!(
            (4..=6).contains(&calls),
            "the time budget ends the retries: {calls} calls"
        );
    }
}
