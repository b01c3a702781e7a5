//! Replication between in-memory stores: order, resumption, verification
//! and refusal of a foreign repository.

use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::store::memory::MemoryStore;

fn config(id: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"config":{{"version":1,"id":"{id}"}},"mac":"00"}}"#
    ))
}

async fn put_named(s: &DynStore, dir: &str, data: &[u8]) -> String {
    let h = blake3::hash(data).to_hex().to_string();
    let key = match dir {
        "data" => format!("data/{}/{h}", &h[..2]),
        _ => format!("{dir}/{h}"),
    };
    s.put(&key, Bytes::copy_from_slice(data)).await.unwrap();
    key
}

async fn source() -> DynStore {
    let s: DynStore = Arc::new(MemoryStore::new());
    s.put(CONFIG_KEY, config("aa")).await.unwrap();
    put_named(&s, "keys", b"key").await;
    for i in 0..5u8 {
        put_named(&s, "data", &[i; 1000]).await;
    }
    put_named(&s, "index", b"index").await;
    put_named(&s, "snapshots", b"snap").await;
    s
}

fn opts() -> ReplicateOptions {
    ReplicateOptions {
        concurrency: 3,
        ..Default::default()
    }
}

#[tokio::test]
async fn copies_what_is_missing_then_nothing() {
    let (src, dst): (DynStore, DynStore) = (source().await, Arc::new(MemoryStore::new()));
    let r = replicate(&src, &dst, &opts()).await.unwrap();
    assert!(r.complete());
    assert_eq!(r.copied["data"].objects, 5);
    assert_eq!(r.copied["data"].bytes, 5000);
    assert_eq!(r.objects(), 9, "keys, config, 5 packs, index, snapshot");
    assert_eq!(src.list("").await.unwrap(), dst.list("").await.unwrap());
    assert_eq!(r.dest_objects, dst.list("").await.unwrap());
    let again = replicate(&src, &dst, &opts()).await.unwrap();
    assert_eq!(again.objects(), 0);
    assert_eq!(again.present, 8);
}

/// A round that finds everything in place writes nothing, the config
/// included (it is read, and left as it is).
#[tokio::test]
async fn a_round_with_nothing_missing_writes_nothing() {
    use crate::store::counting::{Counting, Op};
    let src = source().await;
    let counted = Arc::new(Counting::new(Arc::new(MemoryStore::new())));
    let dst: DynStore = counted.clone();
    replicate(&src, &dst, &opts()).await.unwrap();
    let first = counted.take();
    assert!(first
        .iter()
        .any(|r| r.op == Op::PutIfAbsent && r.key == CONFIG_KEY));
    let again = replicate(&src, &dst, &opts()).await.unwrap();
    assert_eq!(again.objects(), 0);
    let writes: Vec<_> = counted
        .take()
        .into_iter()
        .filter(|r| matches!(r.op, Op::Put | Op::PutIfAbsent | Op::Delete))
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
}

#[tokio::test]
async fn a_damaged_source_pack_holds_back_index_and_snapshots() {
    let src = source().await;
    let bad = src.list("data/").await.unwrap()[0].key.clone();
    src.put(&bad, Bytes::from_static(b"rotten")).await.unwrap();
    let dst: DynStore = Arc::new(MemoryStore::new());
    let r = replicate(&src, &dst, &opts()).await.unwrap();
    assert_eq!(r.failed.len(), 1);
    assert_eq!(r.failed[0].0, bad);
    assert!(dst.list("index/").await.unwrap().is_empty());
    assert!(dst.list("snapshots/").await.unwrap().is_empty());
}

#[tokio::test]
async fn verify_replaces_damaged_copies_and_foreign_repositories_are_refused() {
    let src = source().await;
    let dst: DynStore = Arc::new(MemoryStore::new());
    replicate(&src, &dst, &opts()).await.unwrap();
    let key = dst.list("data/").await.unwrap()[1].key.clone();
    let good = dst.get(&key).await.unwrap();
    let mut rotten = good.to_vec();
    rotten[10] ^= 1;
    dst.put(&key, rotten.into()).await.unwrap();
    let v = ReplicateOptions {
        verify: true,
        ..opts()
    };
    let r = replicate(&src, &dst, &v).await.unwrap();
    assert_eq!(r.damaged, vec![key.clone()]);
    assert_eq!(r.verified, 8);
    assert_eq!(dst.get(&key).await.unwrap(), good);

    let other: DynStore = Arc::new(MemoryStore::new());
    other.put(CONFIG_KEY, config("bb")).await.unwrap();
    let e = replicate(&src, &other, &opts()).await.unwrap_err();
    assert!(e.to_string().contains("another repository"), "{e}");
}

/// A store that, once a `snapshots/` listing has returned, runs `hook` (a
/// whole backup) before answering the next `list` call.
struct Interleave {
    inner: DynStore,
    listed_snapshots: std::sync::atomic::AtomicBool,
    hook: tokio::sync::Mutex<Option<futures::future::BoxFuture<'static, ()>>>,
}

impl std::fmt::Debug for Interleave {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Interleave({:?})", self.inner)
    }
}

impl Interleave {
    fn wrap(inner: DynStore, hook: futures::future::BoxFuture<'static, ()>) -> DynStore {
        Arc::new(Interleave {
            inner,
            listed_snapshots: Default::default(),
            hook: tokio::sync::Mutex::new(Some(hook)),
        })
    }
}

#[async_trait::async_trait]
impl crate::store::ObjectStore for Interleave {
    fn location(&self) -> String {
        self.inner.location()
    }
    async fn get(&self, key: &str) -> crate::store::StoreResult<Bytes> {
        self.inner.get(key).await
    }
    async fn get_range(&self, key: &str, o: u64, l: u64) -> crate::store::StoreResult<Bytes> {
        self.inner.get_range(key, o, l).await
    }
    async fn put(&self, key: &str, data: Bytes) -> crate::store::StoreResult<()> {
        self.inner.put(key, data).await
    }
    async fn put_if_absent(&self, key: &str, data: Bytes) -> crate::store::StoreResult<bool> {
        self.inner.put_if_absent(key, data).await
    }
    async fn head(&self, key: &str) -> crate::store::StoreResult<Option<ObjectMeta>> {
        self.inner.head(key).await
    }
    async fn list(&self, prefix: &str) -> crate::store::StoreResult<Vec<ObjectMeta>> {
        use std::sync::atomic::Ordering;
        if self.listed_snapshots.load(Ordering::Acquire) {
            if let Some(hook) = self.hook.lock().await.take() {
                hook.await;
            }
        }
        let out = self.inner.list(prefix).await;
        if prefix == ObjectKind::Snapshot.prefix() {
            self.listed_snapshots.store(true, Ordering::Release);
        }
        out
    }
    async fn delete(&self, key: &str) -> crate::store::StoreResult<()> {
        self.inner.delete(key).await
    }
}

const PW: &[u8] = b"interleave";

fn small() -> crate::repo::InitOptions {
    crate::repo::InitOptions {
        kdf: crate::format::keys::KdfParams {
            memory_kib: 8 << 10,
            iterations: 1,
            parallelism: 1,
        },
        ..Default::default()
    }
}

/// A backup of in-memory files of `seed`.
async fn backup_files(repo: &Arc<crate::repo::Repository>, seed: u8) {
    let files = (0..4u8)
        .map(|i| {
            let data: Vec<u8> = (0..200_000u32)
                .map(|j| (j as u8) ^ i ^ seed.wrapping_mul(31))
                .collect();
            (format!("f{seed}-{i}"), data)
        })
        .collect();
    let opts = crate::engine::backup::BackupOptions {
        files,
        sources: vec![format!("/mem{seed}")],
        ..Default::default()
    };
    let progress = Arc::new(crate::engine::progress::Progress::default());
    crate::engine::backup::backup(repo.clone(), &opts, progress)
        .await
        .unwrap();
}

async fn repo_on(
    store: DynStore,
    dir: &std::path::Path,
    name: &str,
) -> Arc<crate::repo::Repository> {
    let cat = Some(dir.join(name));
    Arc::new(crate::repo::Repository::open(store, PW, cat).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_between_two_listings_of_a_replicate_is_never_half_copied() {
    let dir = tempfile::tempdir().unwrap();
    let base: DynStore = Arc::new(MemoryStore::new());
    let cat = Some(dir.path().join("writer.db"));
    let writer = Arc::new(
        crate::repo::Repository::init(base.clone(), PW, &small(), cat)
            .await
            .unwrap(),
    );
    backup_files(&writer, 1).await;
    let w = writer.clone();
    let src = Interleave::wrap(
        base.clone(),
        Box::pin(async move { backup_files(&w, 2).await }),
    );
    let dst: DynStore = Arc::new(MemoryStore::new());
    let r = replicate(&src, &dst, &opts()).await.unwrap();
    assert!(r.complete());
    assert_eq!(
        base.list("snapshots/").await.unwrap().len(),
        2,
        "the second backup ran"
    );
    assert_eq!(
        dst.list("snapshots/").await.unwrap().len(),
        1,
        "its snapshot waits"
    );
    let copy = repo_on(dst.clone(), dir.path(), "dst.db").await;
    let c = crate::engine::check::check(&copy, true).await.unwrap();
    assert!(c.ok(), "the copy is a whole repository: {:?}", c.errors);
    replicate(&base, &dst, &opts()).await.unwrap();
    assert_eq!(dst.list("snapshots/").await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_between_two_listings_of_a_catalog_sync_is_never_half_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let base: DynStore = Arc::new(MemoryStore::new());
    let cat = Some(dir.path().join("writer.db"));
    let writer = Arc::new(
        crate::repo::Repository::init(base.clone(), PW, &small(), cat)
            .await
            .unwrap(),
    );
    backup_files(&writer, 1).await;
    let w = writer.clone();
    let src = Interleave::wrap(
        base.clone(),
        Box::pin(async move { backup_files(&w, 2).await }),
    );
    let reader = repo_on(src, dir.path(), "reader.db").await;
    assert_eq!(
        base.list("snapshots/").await.unwrap().len(),
        2,
        "the second backup ran"
    );
    let snaps = reader.snapshots().unwrap();
    assert!(!snaps.is_empty());
    for (id, s) in snaps {
        reader
            .read_blob(crate::repo::BlobType::Tree, &s.tree)
            .await
            .unwrap_or_else(|e| panic!("snapshot {id} recorded without its index: {e}"));
    }
}
