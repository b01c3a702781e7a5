//! A store that also writes the repository's data objects (packs and index
//! objects) to other stores as they are written, from the same bytes: one
//! read of the source feeds every region.
//!
//! Reads, listings and every other object go to the primary only. Each copy
//! has a queue of its own, written by a task of its own, so a write to the
//! primary never waits on another region: a copy that falls behind by more
//! than [`FanoutLimits`] (bytes waiting, or time an object has waited) is
//! dropped as slow, and one whose write fails is dropped as failed. A
//! dropped copy receives nothing more in this run (it is never sent an
//! object that could depend on one it missed); `replicate` catches it up
//! later. An index object is written to a copy only once every pack queued
//! before it is there. Snapshots are not teed: they are copied after the
//! backup by a replication round, which writes a snapshot to a region only
//! once every object it needs is there.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{DynStore, ObjectMeta, ObjectStore, StoreResult};

/// The kinds of object written to every copy.
const TEED: [&str; 2] = ["data/", "index/"];

/// Objects written to one copy at once.
const CONCURRENCY: usize = 4;

/// How far a copy may fall behind the backup before it is dropped as slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FanoutLimits {
    /// Bytes queued for a copy and not yet written there (a single object
    /// larger than this is still accepted into an empty queue).
    pub queue_bytes: u64,
    /// How long an object may wait, queued or being written, before the
    /// copy is dropped; also how long the end of the backup waits for a
    /// copy's queue to drain.
    pub lag: Duration,
}

impl Default for FanoutLimits {
    fn default() -> Self {
        FanoutLimits {
            queue_bytes: 128 << 20,
            lag: Duration::from_secs(10),
        }
    }
}

impl FanoutLimits {
    /// The defaults with `FERRY_FANOUT_QUEUE` (a size) and
    /// `FERRY_FANOUT_LAG` (seconds) applied.
    pub fn from_env() -> Result<Self, String> {
        let mut l = FanoutLimits::default();
        if let Ok(v) = std::env::var("FERRY_FANOUT_QUEUE") {
            l.queue_bytes =
                crate::util::parse_size(&v).map_err(|e| format!("FERRY_FANOUT_QUEUE: {e}"))?;
        }
        if let Ok(v) = std::env::var("FERRY_FANOUT_LAG") {
            let secs: f64 = v.trim().trim_end_matches('s').parse().map_err(|_| {
                format!("FERRY_FANOUT_LAG: {v:?} is not a number of seconds (e.g. 30)")
            })?;
            if !(secs.is_finite() && secs > 0.0) {
                return Err(format!(
                    "FERRY_FANOUT_LAG: {v:?} must be more than 0 seconds"
                ));
            }
            l.lag = Duration::from_secs_f64(secs);
        }
        Ok(l)
    }
}

/// Why a copy stopped receiving objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// It fell behind the backup by more than [`FanoutLimits`].
    Slow,
    /// A write to it failed.
    Failed,
}

/// What one copy received.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TeeReport {
    pub region: String,
    pub objects: u64,
    pub bytes: u64,
    /// Why the copy stopped receiving objects, if it did.
    pub dropped: Option<String>,
    /// `slow` or `failed`, when it was dropped.
    pub reason: Option<DropReason>,
}

impl TeeReport {
    pub fn dropped_as_slow(&self) -> bool {
        self.reason == Some(DropReason::Slow)
    }
}

/// One object queued for a copy.
struct Item {
    seq: u64,
    key: String,
    data: Bytes,
}

/// A copy's progress, shared by the backup and the copy's task.
#[derive(Debug, Default)]
struct Progress {
    report: TeeReport,
    /// Bytes queued or being written.
    queued: u64,
    /// Objects queued or being written: sequence number → when queued.
    pending: BTreeMap<u64, Instant>,
    next: u64,
}

impl Progress {
    fn drop_copy(&mut self, reason: DropReason, why: String) {
        if self.report.dropped.is_some() {
            return;
        }
        tracing::warn!(region = %self.report.region, error = %why,
            "region dropped from this backup; `ferry replicate` will catch it up");
        self.report.dropped = Some(why);
        self.report.reason = Some(reason);
        self.pending.clear();
        self.queued = 0;
    }

    /// Why the copy is too far behind to take `len` more bytes, if it is.
    fn behind(&self, len: u64, limits: &FanoutLimits, now: Instant) -> Option<String> {
        if let Some(first) = self.pending.values().next() {
            let waited = now.duration_since(*first);
            if waited > limits.lag {
                return Some(format!(
                    "too slow: an object has waited {:.1} s to be written there, more than \
                     the fan-out lag of {:.1} s (FERRY_FANOUT_LAG)",
                    waited.as_secs_f64(),
                    limits.lag.as_secs_f64()
                ));
            }
        }
        if self.queued > 0 && self.queued + len > limits.queue_bytes {
            return Some(format!(
                "too slow: {} bytes waiting to be written there, more than the fan-out queue \
                 of {} bytes (FERRY_FANOUT_QUEUE)",
                self.queued + len,
                limits.queue_bytes
            ));
        }
        None
    }
}

#[derive(Debug)]
struct Copy {
    store: DynStore,
    state: Arc<Mutex<Progress>>,
    queue: mpsc::UnboundedSender<Item>,
    task: JoinHandle<()>,
}

impl Copy {
    fn start(region: String, store: DynStore) -> Copy {
        let state = Arc::new(Mutex::new(Progress {
            report: TeeReport {
                region,
                ..Default::default()
            },
            ..Default::default()
        }));
        let (queue, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(drain(state.clone(), store.clone(), rx));
        Copy {
            store,
            state,
            queue,
            task,
        }
    }

    /// Queues `data` unless the copy was dropped or is too far behind (then
    /// it is dropped as slow).
    fn offer(&self, key: &str, data: &Bytes, limits: &FanoutLimits) {
        let mut s = self.state.lock().unwrap();
        if s.report.dropped.is_some() {
            return;
        }
        let len = data.len() as u64;
        if let Some(why) = s.behind(len, limits, Instant::now()) {
            s.drop_copy(DropReason::Slow, why);
            self.task.abort();
            return;
        }
        let seq = s.next;
        s.next += 1;
        s.pending.insert(seq, Instant::now());
        s.queued += len;
        let item = Item {
            seq,
            key: key.to_string(),
            data: data.clone(),
        };
        // The task ends only when the copy is dropped.
        let _ = self.queue.send(item);
    }

    /// Waits until every queued object is written, or drops the copy as
    /// slow once one has waited longer than the lag.
    async fn settle(&self, limits: &FanoutLimits) {
        loop {
            {
                let mut s = self.state.lock().unwrap();
                if s.report.dropped.is_some() || s.pending.is_empty() {
                    return;
                }
                if let Some(why) = s.behind(0, limits, Instant::now()) {
                    s.drop_copy(DropReason::Slow, why);
                    self.task.abort();
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A copy's task: writes the queued objects, [`CONCURRENCY`] at a time, an
/// index object only once everything queued before it is written; ends at
/// the first failure, dropping the copy.
async fn drain(
    state: Arc<Mutex<Progress>>,
    store: DynStore,
    mut rx: mpsc::UnboundedReceiver<Item>,
) {
    let mut inflight = FuturesUnordered::new();
    let mut held: Option<Item> = None;
    loop {
        if let Some(item) = held.take() {
            let barrier = item.key.starts_with("index/") && !inflight.is_empty();
            if barrier || inflight.len() >= CONCURRENCY {
                held = Some(item);
            } else {
                let store = store.clone();
                inflight.push(async move {
                    let len = item.data.len() as u64;
                    (item.seq, len, store.put(&item.key, item.data).await)
                });
                continue;
            }
        }
        tokio::select! {
            got = rx.recv(), if held.is_none() => match got {
                Some(item) => held = Some(item),
                None => break,
            },
            Some(done) = inflight.next(), if !inflight.is_empty() => {
                if !written(&state, done) {
                    return;
                }
            }
        }
    }
    while let Some(done) = inflight.next().await {
        if !written(&state, done) {
            return;
        }
    }
}

/// Records one finished write; false when the copy is (now) dropped.
fn written(state: &Mutex<Progress>, (seq, len, result): (u64, u64, StoreResult<()>)) -> bool {
    let mut s = state.lock().unwrap();
    if s.report.dropped.is_some() {
        return false;
    }
    match result {
        Ok(()) => {
            s.report.objects += 1;
            s.report.bytes += len;
            s.queued -= len;
            s.pending.remove(&seq);
            true
        }
        Err(e) => {
            s.drop_copy(DropReason::Failed, e.to_string());
            false
        }
    }
}

#[derive(Debug)]
pub struct Tee {
    primary: DynStore,
    copies: Vec<Copy>,
    limits: FanoutLimits,
}

impl Drop for Tee {
    fn drop(&mut self) {
        for c in &self.copies {
            c.task.abort();
        }
    }
}

impl Tee {
    /// `copies` are (region name, store) pairs; starts a task per copy, so
    /// it must be called within a Tokio runtime.
    pub fn new(
        primary: DynStore,
        copies: Vec<(String, DynStore)>,
        limits: FanoutLimits,
    ) -> Arc<Self> {
        let copies = copies
            .into_iter()
            .map(|(region, store)| Copy::start(region, store))
            .collect();
        Arc::new(Tee {
            primary,
            copies,
            limits,
        })
    }

    /// What each copy received so far.
    pub fn reports(&self) -> Vec<TeeReport> {
        self.copies
            .iter()
            .map(|c| c.state.lock().unwrap().report.clone())
            .collect()
    }

    /// Waits for every copy's queue to drain; a copy still behind after the
    /// lag is dropped as slow. Then [`Tee::reports`] is final.
    pub async fn finish(&self) {
        futures::future::join_all(self.copies.iter().map(|c| c.settle(&self.limits))).await;
    }

    /// Queues `data` for every copy still receiving.
    fn copy(&self, key: &str, data: &Bytes) {
        if !TEED.iter().any(|p| key.starts_with(p)) {
            return;
        }
        for c in &self.copies {
            c.offer(key, data, &self.limits);
        }
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
        self.copy(key, &data);
        self.primary.put(key, data).await
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> StoreResult<bool> {
        self.copy(key, &data);
        self.primary.put_if_absent(key, data).await
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
            FanoutLimits::default(),
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
        tee.finish().await;
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
        assert_eq!(reports[1].reason, Some(DropReason::Failed));
    }

    /// A copy crawling at 64 KiB/s is dropped as slow once an object has
    /// waited past the lag; the primary and the healthy copy get everything,
    /// and the writes to the primary never wait on the slow copy.
    #[tokio::test]
    async fn a_copy_that_falls_behind_is_dropped_as_slow() {
        let primary: DynStore = Arc::new(MemoryStore::default());
        let fast: DynStore = Arc::new(MemoryStore::default());
        let slow: DynStore = Arc::new(crate::store::throttle::Throttled::new(
            Arc::new(MemoryStore::default()),
            Some("64KiB".parse().unwrap()),
            None,
        ));
        let limits = FanoutLimits {
            queue_bytes: 8 << 20,
            lag: Duration::from_millis(300),
        };
        let tee = Tee::new(
            primary.clone(),
            vec![("fast".into(), fast.clone()), ("slow".into(), slow)],
            limits,
        );
        let started = Instant::now();
        for i in 0..6u8 {
            let pack = Bytes::from(vec![i; 256 << 10]);
            tee.put(&format!("data/0{i}/pack{i}"), pack).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tee.put("index/ab", Bytes::from_static(b"index"))
            .await
            .unwrap();
        tee.finish().await;
        // At its pace the slow copy would need over 20 s.
        assert!(started.elapsed() < Duration::from_secs(10));
        let reports = tee.reports();
        assert_eq!(reports[0].objects, 7, "{reports:?}");
        assert_eq!(reports[0].reason, None);
        assert!(fast.head("index/ab").await.unwrap().is_some());
        assert!(primary.head("index/ab").await.unwrap().is_some());
        assert_eq!(reports[1].reason, Some(DropReason::Slow), "{reports:?}");
        assert!(reports[1].dropped.as_deref().unwrap().contains("lag"));
        assert!(reports[1].objects < 6, "{reports:?}");
    }

    #[test]
    fn a_queue_over_its_bytes_is_behind_but_an_empty_one_takes_any_object() {
        let limits = FanoutLimits {
            queue_bytes: 100,
            lag: Duration::from_secs(60),
        };
        let now = Instant::now();
        let mut p = Progress::default();
        assert!(p.behind(1000, &limits, now).is_none());
        p.queued = 60;
        p.pending.insert(0, now);
        assert!(p.behind(40, &limits, now).is_none());
        assert!(p.behind(41, &limits, now).unwrap().contains("queue"));
    }
}
