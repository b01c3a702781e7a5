//! A store that also writes the repository's data objects (packs and index
//! objects) to other stores as they are written, from the same bytes: one
//! read of the source feeds every region.
//!
//! Reads, listings and every other object go to the primary only. A copy
//! that fails once is dropped for the rest of the run (it is never sent an
//! object that could depend on one it missed) and reported; `replicate`
//! catches it up later. Snapshots are not teed: they are copied after the
//! backup by a replication round, which writes a snapshot to a region only
//! once every object it needs is there.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use serde::Serialize;

use super::{DynStore, ObjectMeta, ObjectStore, StoreResult};

/// The kinds of object written to every copy.
const TEED: [&str; 2] = ["data/", "index/"];

/// What one copy received.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TeeReport {
    pub region: String,
    pub objects: u64,
    pub bytes: u64,
    /// Why the copy stopped receiving objects, if it did.
    pub dropped: Option<String>,
}

#[derive(Debug)]
struct Copy {
    store: DynStore,
    state: Mutex<TeeReport>,
}

#[derive(Debug)]
pub struct Tee {
    primary: DynStore,
    copies: Vec<Copy>,
}

impl Tee {
    /// `copies` are (region name, store) pairs.
    pub fn new(primary: DynStore, copies: Vec<(String, DynStore)>) -> Arc<Self> {
        let copies = copies
            .into_iter()
            .map(|(region, store)| Copy {
                store,
                state: Mutex::new(TeeReport {
                    region,
                    ..Default::default()
                }),
            })
            .collect();
        Arc::new(Tee { primary, copies })
    }

    pub fn reports(&self) -> Vec<TeeReport> {
        self.copies
            .iter()
            .map(|c| c.state.lock().unwrap().clone())
            .collect()
    }

    /// Writes `data` to every copy still receiving; a failure drops the copy.
    async fn copy(&self, key: &str, data: &Bytes) {
        if !TEED.iter().any(|p| key.starts_with(p)) {
            return;
        }
        let writes = self.copies.iter().map(|c| async move {
            if c.state.lock().unwrap().dropped.is_some() {
                return;
            }
            let result = c.store.put(key, data.clone()).await;
            let mut s = c.state.lock().unwrap();
            match result {
                // Another write may have failed meanwhile: count only while
                // the copy is still whole.
                Ok(()) if s.dropped.is_none() => {
                    s.objects += 1;
                    s.bytes += data.len() as u64;
                }
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(region = %s.region, error = %e,
                        "region dropped from this backup; `ferry replicate` will catch it up");
                    s.dropped.get_or_insert(e.to_string());
                }
            }
        });
        futures::future::join_all(writes).await;
    }
}

#[async_trait]
impl ObjectStore for Tee {
    fn location(&self) -> String {
        self.primary.location()
    }

    async fn get(&self, key: &str) -> StoreResult<Bytes> {
        self.primary.get(key).await
    }

    async fn get_range(&self, key: &str, offset: u64, length: u64) -> StoreResult<Bytes> {
        self.primary.get_range(key, offset, length).await
    }

    async fn put(&self, key: &str, data: Bytes) -> StoreResult<()> {
        let (primary, ()) =
            futures::join!(self.primary.put(key, data.clone()), self.copy(key, &data));
        primary
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> StoreResult<bool> {
        let (primary, ()) = futures::join!(
            self.primary.put_if_absent(key, data.clone()),
            self.copy(key, &data)
        );
        primary
    }

    async fn head(&self, key: &str) -> StoreResult<Option<ObjectMeta>> {
        self.primary.head(key).await
    }

    async fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectMeta>> {
        self.primary.list(prefix).await
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.primary.delete(key).await
    }
    /// Every region a backup writes to is locked alike.
    fn lock_writes(&self, policy: &crate::store::LockPolicy) -> StoreResult<()> {
        self.primary.lock_writes(policy)?;
        self.copies
            .iter()
            .try_for_each(|c| c.store.lock_writes(policy))
    }

    async fn retention(&self, key: &str) -> StoreResult<Option<crate::store::Retention>> {
        self.primary.retention(key).await
    }

    async fn extend_retention(
        &self,
        key: &str,
        retention: &crate::store::Retention,
    ) -> StoreResult<()> {
        self.primary.extend_retention(key, retention).await
    }

    async fn purge_versions(
        &self,
        prefix: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<crate::store::Purged> {
        self.primary.purge_versions(prefix, now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn data_objects_reach_every_copy_and_a_failing_copy_is_dropped() {
        let primary: DynStore = Arc::new(MemoryStore::default());
        let good: DynStore = Arc::new(MemoryStore::default());
        let bad_dir = tempfile::tempdir().unwrap();
        // A local store rooted at a regular file: every write fails.
        let file = bad_dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let bad: DynStore = Arc::new(crate::store::local::LocalStore::new(&file));
        let tee = Tee::new(
            primary.clone(),
            vec![("good".into(), good.clone()), ("bad".into(), bad)],
        );
        tee.put("data/ab/abcd", Bytes::from_static(b"pack"))
            .await
            .unwrap();
        assert!(tee
            .put_if_absent("index/ef01", Bytes::from_static(b"index"))
            .await
            .unwrap());
        tee.put("snapshots/0123", Bytes::from_static(b"snap"))
            .await
            .unwrap();
        for key in ["data/ab/abcd", "index/ef01", "snapshots/0123"] {
            assert!(primary.head(key).await.unwrap().is_some(), "{key}");
        }
        assert_eq!(good.get("data/ab/abcd").await.unwrap(), &b"pack"[..]);
        assert_eq!(good.get("index/ef01").await.unwrap(), &b"index"[..]);
        assert!(good.head("snapshots/0123").await.unwrap().is_none());
        let reports = tee.reports();
        assert_eq!((reports[0].objects, reports[0].bytes), (2, 9));
        assert!(reports[0].dropped.is_none());
        assert_eq!(reports[1].objects, 0);
        assert!(reports[1].dropped.is_some());
    }
}
