//! The object store test suite, on the local directory store.

use ferry::store::local::LocalStore;
use ferry::store::ObjectStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_store_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path().join("store"));
    ferry::store::testsuite::run(&store).await;
    ferry::store::testsuite::run_unlockable(&store).await;
    // Interrupted writes leave temporary files that are never listed.
    std::fs::write(dir.path().join("store/.tmp-0123456789abcdef"), b"partial").unwrap();
    let all = store.list("").await.unwrap();
    assert!(all.iter().all(|m| !m.key.contains(".tmp-")), "{all:?}");
    assert!(
        store.get("../escape").await.is_err(),
        "keys cannot leave the store"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_passes_the_suite() {
    let store = ferry::store::memory::MemoryStore::new();
    ferry::store::testsuite::run(&store).await;
    ferry::store::testsuite::run_unlockable(&store).await;
}
