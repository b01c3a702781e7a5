//! The store test suite on every store: local directory, S3, S3 with
//! write-then-verify creates, S3 behind faults.

use std::sync::Arc;

use ferry::store::retry::Retrying;
use ferry::store::s3::{BucketInit, Provider, S3Store};
use ferry::store::{local::LocalStore, testsuite, ObjectStore};

use crate::support::proxy::{FaultProxy, ALL_FAULTS};
use crate::support::server::{settings_for, S3Server};
use crate::{fast_retries, s3_store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_store_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    testsuite::run(&LocalStore::new(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_passes_the_suite() {
    let server = S3Server::start("test-east").await;
    let store = S3Store::new("repo-bucket", "backups/prod", &server.settings()).unwrap();
    assert_eq!(store.init().await.unwrap(), BucketInit::Created);
    assert_eq!(store.init().await.unwrap(), BucketInit::Existed);
    testsuite::run(&store).await;
    // The prefix keeps the repository apart from the rest of the bucket.
    let whole = s3_store(&server, "repo-bucket", "").await;
    let all = whole.list("").await.unwrap();
    assert!(
        !all.is_empty() && all.iter().all(|m| m.key.starts_with("backups/prod/suite")),
        "{all:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_with_write_then_verify_passes_the_suite() {
    let server = S3Server::start("test-west").await;
    let mut settings = server.settings();
    settings.provider = Provider::Generic;
    let store = S3Store::new("generic", "", &settings).unwrap();
    store.init().await.unwrap();
    testsuite::run(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_through_faults_passes_the_suite() {
    let server = S3Server::start("test-faulty").await;
    s3_store(&server, "faulty", "").await;
    let proxy = FaultProxy::start(server.addr, 7, 0.2, &ALL_FAULTS).await;
    let mut settings = settings_for(&proxy.endpoint(), &server.region);
    settings.idle_timeout_ms = 500;
    let base = S3Store::new("faulty", "repo", &settings).unwrap();
    let store = Retrying::new(Arc::new(base), fast_retries());
    testsuite::run(&store).await;
    let injected = proxy.injected();
    for fault in ALL_FAULTS {
        assert!(
            injected.contains(&fault),
            "{fault:?} was never injected in {} requests",
            proxy.requests()
        );
    }
}
