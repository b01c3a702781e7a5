//! Stores over several regions that hold the same repository.
//!
//! [`Breaker`] remembers that a region is down: once one operation has
//! given up on a transient failure (after the retries below it), every later
//! operation fails at once instead of waiting on retries of its own.
//! [`Pulse`] is what the breaker knows, shared with the retries beneath
//! it: before an operation retries a failure that got no answer, the pulse
//! probes the region once, with a short budget, for every operation in
//! flight; a region that does not answer is down at once, so that a
//! region black-holed mid-run costs one timeout and one probe, not every
//! operation's whole retry sequence.
//!
//! [`Failover`] reads from an ordered list of region stores: reads go to
//! the current region, and when it fails transiently they move to the next
//! one for the rest of the run, so that a restore whose region dies part-way
//! continues from the next region without starting over. Objects are
//! immutable and named by their content, so any region's copy serves. A
//! read of an object one region lacks is tried on the others. Writes go to
//! the first region only, and never move: a writer must not spread one
//! snapshot's data over several regions.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use serde::Serialize;

use super::retry::Liveness;
use super::{DynStore, ObjectMeta, ObjectStore, StoreError, StoreErrorKind, StoreResult};

/// How long a probe may take to find a region answering.
pub const PULSE_TIMEOUT: Duration = Duration::from_secs(4);
/// A probe that found the region answering speaks for this long.
const PULSE_FRESH: Duration = Duration::from_secs(2);

/// Whether a region is down for this run, shared by its [`Breaker`] and
/// the retries beneath it (as their [`Liveness`]).
#[derive(Debug)]
pub struct Pulse {
    /// The region's store without retries, probed with a `head`.
    probe: Option<DynStore>,
    down: AtomicBool,
    why: Mutex<Option<String>>,
    /// When a probe last found the region answering.
    answered: tokio::sync::Mutex<Option<Instant>>,
}

impl Pulse {
    /// A pulse that probes `probe` (the region's store without retries);
    /// without one, it only remembers what operations found.
    pub fn new(probe: Option<DynStore>) -> Arc<Pulse> {
        Arc::new(Pulse {
            probe,
            down: AtomicBool::new(false),
            why: Mutex::new(None),
            answered: tokio::sync::Mutex::new(None),
        })
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    pub fn why(&self) -> Option<String> {
        self.why.lock().expect("pulse lock").clone()
    }

    /// Takes the region for down from now on; the first reason stays.
    /// Returns whether it was up until now.
    pub fn trip(&self, why: &str) -> bool {
        let mut w = self.why.lock().expect("pulse lock");
        if w.is_none() {
            *w = Some(why.to_string());
        }
        !self.down.swap(true, Ordering::AcqRel)
    }
}

#[async_trait]
impl Liveness for Pulse {
    async fn answers(&self) -> Result<(), String> {
        let down = |p: &Pulse| p.why().unwrap_or_else(|| "the region is down".into());
        if self.is_down() {
            return Err(down(self));
        }
        let Some(store) = &self.probe else {
            return Ok(());
        };
        // One probe at a time; those who waited take its verdict.
        let mut answered = self.answered.lock().await;
        if self.is_down() {
            return Err(down(self));
        }
        if answered.is_some_and(|t| t.elapsed() < PULSE_FRESH) {
            return Ok(());
        }
        let why = match tokio::time::timeout(PULSE_TIMEOUT, store.head(PULSE_KEY)).await {
            Ok(Ok(_)) => None,
            Ok(Err(e)) if e.kind != StoreErrorKind::Unreachable => None,
            Ok(Err(e)) => Some(format!(
                "{} does not answer: {}",
                store.location(),
                e.message
            )),
            Err(_) => Some(format!(
                "{} does not answer: no answer to a probe within {} s",
                store.location(),
                PULSE_TIMEOUT.as_secs()
            )),
        };
        match why {
            None => {
                *answered = Some(Instant::now());
                Ok(())
            }
            Some(why) => {
                if self.trip(&why) {
                    tracing::warn!(store = %store.location(), error = %why, "region down; not tried again in this run");
                }
                Err(why)
            }
        }
    }
}

/// The key a pulse asks for: the repository's config, which any live
/// region answers for at once (with the object or a 404).
const PULSE_KEY: &str = "config";

/// A region's store that stops trying once the region is known to be down.
#[derive(Debug)]
pub struct Breaker {
    name: String,
    inner: DynStore,
    pulse: Arc<Pulse>,
}

impl Breaker {
    pub fn new(name: &str, inner: DynStore) -> Arc<Breaker> {
        Self::with_pulse(name, inner, Pulse::new(None))
    }

    /// A breaker over `inner` whose retries ask `pulse` (see
    /// [`Retrying::watched`](super::retry::Retrying::watched)).
    pub fn with_pulse(name: &str, inner: DynStore, pulse: Arc<Pulse>) -> Arc<Breaker> {
        Arc::new(Breaker {
            name: name.to_string(),
            inner,
            pulse,
        })
    }

    /// Whether an operation has given up on this region.
    pub fn is_down(&self) -> bool {
        self.pulse.is_down()
    }

    /// Why the region was taken for down, when it was.
    pub fn why(&self) -> Option<String> {
        self.pulse.why()
    }

    /// Takes the region for down from now on (a probe found it so).
    pub fn trip(&self, why: &str) {
        self.pulse.trip(why);
    }

    fn refuse(&self, op: &'static str, key: &str) -> StoreError {
        let why = self.why().unwrap_or_default();
        StoreError::new(
            StoreErrorKind::Transient,
            self.inner.location(),
            op,
            key,
            format!("region {} is down for this run ({why})", self.name),
        )
    }

    async fn guard<T>(
        &self,
        op: &'static str,
        key: &str,
        fut: impl std::future::Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        if self.is_down() {
            return Err(self.refuse(op, key));
        }
        let r = fut.await;
        if let Err(e) = &r {
            if e.is_retryable() && self.pulse.trip(&e.message) {
                tracing::warn!(region = %self.name, error = %e, "region down; not tried again in this run");
            }
        }
        r
    }
}

#[async_trait]
impl ObjectStore for Breaker {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn get(&self, key: &str) -> StoreResult<Bytes> {
        self.guard("get", key, self.inner.get(key)).await
    }

    async fn get_range(&self, key: &str, offset: u64, length: u64) -> StoreResult<Bytes> {
        let f = self.inner.get_range(key, offset, length);
        self.guard("get_range", key, f).await
    }

    async fn put(&self, key: &str, data: Bytes) -> StoreResult<()> {
        self.guard("put", key, self.inner.put(key, data)).await
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> StoreResult<bool> {
        let f = self.inner.put_if_absent(key, data);
        self.guard("put_if_absent", key, f).await
    }

    async fn head(&self, key: &str) -> StoreResult<Option<ObjectMeta>> {
        self.guard("head", key, self.inner.head(key)).await
    }

    async fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectMeta>> {
        self.guard("list", prefix, self.inner.list(prefix)).await
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.guard("delete", key, self.inner.delete(key)).await
    }

    fn lock_target(&self) -> Option<&dyn ObjectStore> {
        Some(&*self.inner)
    }
}

/// A move of the reads from one region to the next.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Switch {
    pub from: String,
    pub to: String,
    /// The failure that ended reads from `from`.
    pub error: String,
}

/// Reads from the first live region of an ordered list; see the module
/// documentation.
#[derive(Debug)]
pub struct Failover {
    members: Vec<(String, DynStore)>,
    current: AtomicUsize,
    switches: Mutex<Vec<Switch>>,
}

impl Failover {
    /// `members` in the order reads try them; the first takes the writes.
    /// Panics when `members` is empty.
    pub fn new(members: Vec<(String, DynStore)>) -> Arc<Failover> {
        assert!(!members.is_empty(), "a failover store needs a region");
        Arc::new(Failover {
            members,
            current: AtomicUsize::new(0),
            switches: Mutex::new(Vec::new()),
        })
    }

    /// The region reads go to now.
    pub fn current(&self) -> &str {
        &self.members[self
            .current
            .load(Ordering::Acquire)
            .min(self.members.len() - 1)]
        .0
    }

    /// Every move so far, in order.
    pub fn switches(&self) -> Vec<Switch> {
        self.switches.lock().expect("failover lock").clone()
    }

    /// Gives up on region `i` (when it is still the current one).
    fn switch(&self, i: usize, e: &StoreError) {
        if i + 1 >= self.members.len() {
            return;
        }
        if self
            .current
            .compare_exchange(i, i + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            let (from, to) = (&self.members[i].0, &self.members[i + 1].0);
            tracing::warn!(from = %from, to = %to, error = %e, "region failed; reading from the next one");
            self.switches.lock().expect("failover lock").push(Switch {
                from: from.clone(),
                to: to.clone(),
                error: e.to_string(),
            });
        }
    }

    /// Runs a read on the current region, moving on as the module says.
    async fn read<T, F, Fut>(&self, missing_elsewhere: bool, op: F) -> StoreResult<T>
    where
        F: Fn(DynStore) -> Fut,
        Fut: std::future::Future<Output = StoreResult<T>>,
    {
        let mut i = self.current.load(Ordering::Acquire);
        let mut not_found: Option<StoreError> = None;
        loop {
            let store = self.members[i].1.clone();
            match op(store).await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() && i + 1 < self.members.len() => {
                    self.switch(i, &e);
                }
                Err(e) if e.is_not_found() && missing_elsewhere && i + 1 < self.members.len() => {
                    not_found.get_or_insert(e);
                }
                Err(e) => return Err(not_found.unwrap_or(e)),
            }
            i += 1;
        }
    }

    fn home(&self) -> &DynStore {
        &self.members[0].1
    }
}

#[async_trait]
impl ObjectStore for Failover {
    fn location(&self) -> String {
        self.home().location()
    }

    async fn get(&self, key: &str) -> StoreResult<Bytes> {
        self.read(true, |s| async move { s.get(key).await }).await
    }

    async fn get_range(&self, key: &str, offset: u64, length: u64) -> StoreResult<Bytes> {
        self.read(
            true,
            |s| async move { s.get_range(key, offset, length).await },
        )
        .await
    }

    async fn put(&self, key: &str, data: Bytes) -> StoreResult<()> {
        self.home().put(key, data).await
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> StoreResult<bool> {
        self.home().put_if_absent(key, data).await
    }

    async fn head(&self, key: &str) -> StoreResult<Option<ObjectMeta>> {
        self.read(false, |s| async move { s.head(key).await }).await
    }

    async fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectMeta>> {
        self.read(false, |s| async move { s.list(prefix).await })
            .await
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.home().delete(key).await
    }

    fn lock_target(&self) -> Option<&dyn ObjectStore> {
        Some(&**self.home())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    /// A store that fails every operation transiently once `dead` is set.
    #[derive(Debug)]
    struct Dying {
        inner: DynStore,
        dead: AtomicBool,
        calls: AtomicUsize,
    }

    impl Dying {
        fn check(&self) -> StoreResult<()> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            match self.dead.load(Ordering::Relaxed) {
                true => Err(StoreError::new(
                    StoreErrorKind::Unreachable,
                    "dying",
                    "get",
                    "",
                    "connection refused",
                )),
                false => Ok(()),
            }
        }
    }

    #[async_trait]
    impl ObjectStore for Dying {
        fn location(&self) -> String {
            "dying".into()
        }
        async fn get(&self, key: &str) -> StoreResult<Bytes> {
            self.check()?;
            self.inner.get(key).await
        }
        async fn get_range(&self, key: &str, o: u64, l: u64) -> StoreResult<Bytes> {
            self.check()?;
            self.inner.get_range(key, o, l).await
        }
        async fn put(&self, key: &str, data: Bytes) -> StoreResult<()> {
            self.check()?;
            self.inner.put(key, data).await
        }
        async fn put_if_absent(&self, key: &str, data: Bytes) -> StoreResult<bool> {
            self.check()?;
            self.inner.put_if_absent(key, data).await
        }
        async fn head(&self, key: &str) -> StoreResult<Option<ObjectMeta>> {
            self.check()?;
            self.inner.head(key).await
        }
        async fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectMeta>> {
            self.check()?;
            self.inner.list(prefix).await
        }
        async fn delete(&self, key: &str) -> StoreResult<()> {
            self.check()?;
            self.inner.delete(key).await
        }
    }

    fn dying() -> Arc<Dying> {
        Arc::new(Dying {
            inner: Arc::new(MemoryStore::new()),
            dead: AtomicBool::new(false),
            calls: AtomicUsize::new(0),
        })
    }

    #[tokio::test]
    async fn retries_stop_once_the_pulse_finds_the_region_gone() {
        use crate::store::retry::{RetryPolicy, Retrying};
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_backoff_ms: 1,
            max_backoff_ms: 2,
            budget_seconds: 60,
        };
        let a = dying();
        a.put("data/x", Bytes::from_static(b"x")).await.unwrap();
        a.dead.store(true, Ordering::Relaxed);
        let calls = || a.calls.load(Ordering::Relaxed);
        // A probe that gets an answer: the operation retries as usual.
        let answering = Pulse::new(Some(Arc::new(MemoryStore::new())));
        let live = answering.clone() as Arc<dyn Liveness>;
        let r = Retrying::watched(a.clone(), policy.clone(), live);
        let before = calls();
        assert!(r.get("data/x").await.is_err());
        assert_eq!(calls() - before, 10, "every attempt was made");
        assert!(!answering.is_down());
        // A probe without an answer: one attempt, one probe, and the
        // region is down for every operation after it.
        let pulse = Pulse::new(Some(a.clone() as DynStore));
        let live = pulse.clone() as Arc<dyn Liveness>;
        let retrying: DynStore = Arc::new(Retrying::watched(a.clone(), policy, live));
        let br = Breaker::with_pulse("a", retrying.clone(), pulse.clone());
        let before = calls();
        let e = br.get("data/x").await.unwrap_err();
        assert_eq!(calls() - before, 2, "{e}");
        assert!(
            e.message.contains("not retried") && e.message.contains("does not answer"),
            "{e}"
        );
        assert!(br.is_down() && pulse.is_down());
        let before = calls();
        assert!(br.head("data/x").await.is_err());
        assert_eq!(calls(), before, "the breaker refuses at once");
        // The same store beneath the breaker: one attempt, no retry.
        assert!(retrying.get("data/x").await.is_err());
        assert_eq!(calls() - before, 1);
    }

    #[tokio::test]
    async fn reads_move_to_the_next_region_and_stay_there() {
        let a = dying();
        let b: DynStore = Arc::new(MemoryStore::new());
        for s in [a.clone() as DynStore, b.clone()] {
            s.put("data/x", Bytes::from_static(b"x")).await.unwrap();
        }
        b.put("data/only-b", Bytes::from_static(b"b"))
            .await
            .unwrap();
        let f = Failover::new(vec![("a".into(), a.clone()), ("b".into(), b.clone())]);
        assert_eq!(&f.get("data/x").await.unwrap()[..], b"x");
        assert_eq!(f.current(), "a");
        // An object one region lacks comes from another, without a switch.
        assert_eq!(&f.get("data/only-b").await.unwrap()[..], b"b");
        assert!(f.switches().is_empty());
        a.dead.store(true, Ordering::Relaxed);
        assert_eq!(&f.get("data/x").await.unwrap()[..], b"x");
        assert_eq!(f.current(), "b");
        let calls = a.calls.load(Ordering::Relaxed);
        assert_eq!(f.list("data/").await.unwrap().len(), 2);
        assert_eq!(
            a.calls.load(Ordering::Relaxed),
            calls,
            "a is not asked again"
        );
        assert_eq!(f.switches().len(), 1);
        assert_eq!(f.switches()[0].from, "a");
        // Writes stay with the first region.
        assert!(f.put("data/y", Bytes::from_static(b"y")).await.is_err());
        assert!(b.head("data/y").await.unwrap().is_none());
        assert!(f.get("data/missing").await.unwrap_err().is_not_found());
    }

    #[tokio::test]
    async fn a_breaker_fails_fast_once_the_region_gave_up() {
        let a = dying();
        let br = Breaker::new("a", a.clone());
        br.put("k", Bytes::from_static(b"1")).await.unwrap();
        a.dead.store(true, Ordering::Relaxed);
        assert!(br.get("k").await.is_err());
        assert!(br.is_down());
        let calls = a.calls.load(Ordering::Relaxed);
        let e = br.get("k").await.unwrap_err();
        assert!(e.is_retryable() && e.message.contains("down"), "{e}");
        assert_eq!(a.calls.load(Ordering::Relaxed), calls);
    }
}
