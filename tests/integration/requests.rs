//! How operations use the store, counted request by request on a memory
//! store: an unchanged backup writes only its snapshot, a restore reads no
//! byte of a pack twice, `check --read-data` reads each pack exactly once.

use std::collections::BTreeMap;
use std::sync::Arc;

use ferry::engine::backup::{backup, BackupOptions};
use ferry::engine::check::check;
use ferry::engine::progress::Progress;
use ferry::engine::restore::{restore, RestoreOptions};
use ferry::format::keys::KdfParams;
use ferry::format::ObjectKind;
use ferry::repo::{InitOptions, Repository};
use ferry::store::counting::{Counting, Op, Request};
use ferry::store::memory::MemoryStore;
use ferry::store::{DynStore, ObjectStore};

struct Fixture {
    _dir: tempfile::TempDir,
    src: std::path::PathBuf,
    out: std::path::PathBuf,
    store: Arc<Counting>,
    repo: Arc<Repository>,
}

/// A source tree whose ancestors no other test touches while this one
/// runs: a snapshot records the metadata of the directories on the way to
/// a source, and every new temporary directory changes the mtime of /tmp.
///
/// The sources share a parent: creating one changes the parent's mtime, so
/// the test that backs up twice holds [`SOURCES`] from its fixture to its
/// second backup, and the others hold it while they create theirs.
fn stable_source(name: &str) -> std::path::PathBuf {
    let src = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("requests-{name}"))
        .join("src");
    let _ = std::fs::remove_dir_all(&src);
    crate::roundtrip::generate(&src);
    src
}

static SOURCES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn fixture(name: &str) -> Fixture {
    let src = {
        let _only = SOURCES.lock().await;
        stable_source(name)
    };
    fixture_of(src).await
}

async fn fixture_of(src: std::path::PathBuf) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Counting::new(Arc::new(MemoryStore::default())));
    let opts = InitOptions {
        pack_size: 1 << 20,
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        ..Default::default()
    };
    let dyn_store: DynStore = store.clone();
    let repo = Repository::init(dyn_store, b"pw", &opts, Some(dir.path().join("catalog.db")))
        .await
        .unwrap();
    Fixture {
        out: dir.path().join("out"),
        src,
        _dir: dir,
        store,
        repo: Arc::new(repo),
    }
}

impl Fixture {
    async fn backup(&self) -> ferry::engine::backup::BackupOutcome {
        let opts = BackupOptions {
            paths: vec![self.src.clone()],
            host: Some("h".into()),
            ..Default::default()
        };
        backup(self.repo.clone(), &opts, Arc::new(Progress::default()))
            .await
            .unwrap()
    }
}

fn of_kind(reqs: &[Request], kind: ObjectKind) -> Vec<&Request> {
    reqs.iter()
        .filter(|r| ObjectKind::of_key(&r.key) == Some(kind))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_backup_writes_only_its_snapshot() {
    let only = SOURCES.lock().await;
    let f = fixture_of(stable_source("unchanged")).await;
    f.backup().await;
    f.store.take();
    f.backup().await;
    drop(only);
    let writes: Vec<Request> = f
        .store
        .take()
        .into_iter()
        .filter(|r| matches!(r.op, Op::Put | Op::PutIfAbsent | Op::Delete))
        .collect();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(
        ObjectKind::of_key(&writes[0].key),
        Some(ObjectKind::Snapshot)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_reads_no_pack_byte_twice() {
    let f = fixture("restore").await;
    let out = f.backup().await;
    f.store.take();
    let opts = RestoreOptions {
        target: f.out.clone(),
        includes: vec![],
        excludes: vec![],
        dry_run: false,
        overwrite: false,
        max_entries: Some(out.snapshot.summary.entry_limit()),
    };
    let report = restore(
        &f.repo,
        out.snapshot.tree,
        &opts,
        Arc::new(Progress::default()),
    )
    .await
    .unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let reqs = f.store.take();
    let mut ranges: BTreeMap<&str, Vec<(u64, u64)>> = BTreeMap::new();
    for r in of_kind(&reqs, ObjectKind::Pack) {
        let range = match (r.op, r.range) {
            (Op::GetRange, Some(range)) => range,
            (Op::Get, None) => (0, u64::MAX),
            (op, _) => panic!("restore sent {op:?} {}", r.key),
        };
        ranges.entry(&r.key).or_default().push(range);
    }
    assert!(!ranges.is_empty());
    for (pack, mut rs) in ranges {
        rs.sort();
        for w in rs.windows(2) {
            assert!(w[0].0 + w[0].1 <= w[1].0, "{pack}: ranges {w:?} overlap");
        }
    }
    assert!(
        reqs.iter()
            .all(|r| !matches!(r.op, Op::Put | Op::PutIfAbsent | Op::Delete)),
        "a restore writes nothing to the repository"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_read_data_reads_each_pack_exactly_once() {
    let f = fixture("check").await;
    f.backup().await;
    let packs = f.store.list(ObjectKind::Pack.prefix()).await.unwrap();
    assert!(packs.len() > 1, "the fixture spans several packs");
    f.store.take();
    let report = check(&f.repo, true).await.unwrap();
    assert!(report.ok(), "{:?}", report.errors);
    let reqs = f.store.take();
    let mut reads: BTreeMap<&str, usize> = BTreeMap::new();
    for r in of_kind(&reqs, ObjectKind::Pack) {
        assert!(matches!(r.op, Op::Get | Op::List), "check sent {r:?}");
        if r.op == Op::Get {
            *reads.entry(&r.key).or_default() += 1;
        }
    }
    for p in &packs {
        assert_eq!(reads.get(p.key.as_str()), Some(&1), "{} read once", p.key);
    }
    assert_eq!(reads.len(), packs.len());
}
