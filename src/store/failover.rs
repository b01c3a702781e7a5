//! Stores over several regions that hold the same repository.
//!
//! [`Breaker`] remembers that a region is down: once one operation has
//! given up on a transient failure (after the retries below it), every later
//! operation fails at once instead of waiting on retries of its own.
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

use async_trait::async_trait;
use bytes::Bytes;
use serde::Serialize;

use super::{DynStore, ObjectMeta, ObjectStore, StoreError, StoreErrorKind, StoreResult};

/// A region's store that stops trying once the region is known to be down.
#[derive(Debug)]
pub struct Breaker {
    name: String,
    inner: DynStore,
    down: AtomicBool,
    why: Mutex<Option<String>>,
}

impl Breaker {
    pub fn new(name: &str, inner: DynStore) -> Arc<Breaker> {
        Arc::new(Breaker {
            name: name.to_string(),
            inner,
            down: AtomicBool::new(false),
            why: Mutex::new(None),
        })
    }

    /// Whether an operation has given up on this region.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    /// Why the region was taken for down, when it was.
    pub fn why(&self) -> Option<String> {
        self.why.lock().expect("breaker lock").clone()
    }

    /// Takes the region for down from now on (a probe found it so).
    pub fn trip(&self, why: &str) {
        *self.why.lock().expect("breaker lock") = Some(why.to_string());
        self.down.store(true, Ordering::Release);
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
            if e.is_retryable() && !self.down.swap(true, Ordering::AcqRel) {
                tracing::warn!(region = %self.name, error = %e, "region down; not tried again in this run");
                *self.why.lock().expect("breaker lock") = Some(e.message.clone());
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
                    StoreErrorKind::Transient,
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
