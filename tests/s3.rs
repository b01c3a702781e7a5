//! Integration tests of the stores on real servers: the store test suite on
//! the local directory, on S3 (s3s-fs over HTTP), and on S3 through a
//! fault-injecting proxy; several regions; errors; bandwidth limits.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferry::store::retry::{RetryPolicy, Retrying};
use ferry::store::s3::{BucketInit, Provider, S3Store, Secret};
use ferry::store::throttle::Throttled;
use ferry::store::{
    compose, local::LocalStore, testsuite, DynStore, ObjectStore, StoreErrorKind, StoreOptions,
};
use support::proxy::{Fault, FaultProxy, ALL_FAULTS};
use support::server::{settings_for, S3Server};

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 12,
        initial_backoff_ms: 10,
        max_backoff_ms: 200,
        budget_seconds: 60,
    }
}

async fn s3_store(server: &S3Server, bucket: &str, prefix: &str) -> S3Store {
    let store = S3Store::new(bucket, prefix, &server.settings()).unwrap();
    store.init().await.expect("init the bucket");
    store
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_end_in_correct_data_or_a_clear_error() {
    let server = S3Server::start("test-chaos").await;
    let direct = s3_store(&server, "chaos", "").await;
    let proxy = FaultProxy::start(server.addr, 11, 0.5, &ALL_FAULTS).await;
    let mut settings = settings_for(&proxy.endpoint(), &server.region);
    settings.idle_timeout_ms = 500;
    // Few attempts, so that some operations fail for good.
    let policy = RetryPolicy {
        max_attempts: 2,
        initial_backoff_ms: 5,
        max_backoff_ms: 20,
        budget_seconds: 10,
    };
    let store = Retrying::new(
        Arc::new(S3Store::new("chaos", "", &settings).unwrap()),
        policy,
    );
    let (mut ok, mut failed) = (0, 0);
    for i in 0..40u32 {
        let key = format!("obj/{i}");
        let data = Bytes::from(vec![i as u8; 1000 + i as usize * 997]);
        let stored = match store.put(&key, data.clone()).await {
            Ok(()) => true,
            Err(e) => {
                assert_eq!(e.kind, StoreErrorKind::Transient, "{e}");
                assert!(
                    e.to_string().contains(&key) && e.to_string().contains("chaos"),
                    "{e}"
                );
                false
            }
        };
        match store.get(&key).await {
            Ok(got) => {
                assert_eq!(
                    got, data,
                    "a successful get returns exactly the bytes written"
                );
                ok += 1;
            }
            Err(e) => {
                assert!(
                    e.kind == StoreErrorKind::Transient || (!stored && e.is_not_found()),
                    "{e}"
                );
                failed += 1;
            }
        }
        if stored {
            assert_eq!(
                direct.get(&key).await.unwrap(),
                data,
                "a successful put stored exactly the bytes"
            );
        }
    }
    assert!(
        ok > 0 && failed > 0,
        "both outcomes were seen: {ok} ok, {failed} failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_regions() {
    let regions = [
        S3Server::start("eu-1").await,
        S3Server::start("us-1").await,
        S3Server::start("ap-1").await,
    ];
    let mut stores: Vec<DynStore> = Vec::new();
    for server in &regions {
        stores.push(Arc::new(s3_store(server, "repo", "r").await));
    }
    for i in 0..10u8 {
        let data = Bytes::from(vec![i; 3000]);
        stores[0]
            .put(&format!("data/{i:02x}/pack{i}"), data)
            .await
            .unwrap();
    }
    // Copy what each region lacks from the first.
    for target in &stores[1..] {
        let have: Vec<_> = target.list("data/").await.unwrap();
        for meta in stores[0].list("data/").await.unwrap() {
            if !have.contains(&meta) {
                let data = stores[0].get(&meta.key).await.unwrap();
                target.put(&meta.key, data).await.unwrap();
            }
        }
    }
    let first = stores[0].list("").await.unwrap();
    for (store, server) in stores.iter().zip(&regions) {
        assert_eq!(store.list("").await.unwrap(), first);
        assert!(
            store.location().contains(&server.region),
            "{}",
            store.location()
        );
    }
    // A region that goes away fails with a transient error naming it.
    let [eu, _us, ap] = regions;
    drop(ap);
    let e = stores[2].get("data/00/pack0").await.unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::Transient, "{e}");
    assert!(
        e.to_string().contains("ap-1") && e.to_string().contains("data/00/pack0"),
        "{e}"
    );
    assert_eq!(stores[0].get("data/00/pack0").await.unwrap().len(), 3000);
    drop(eu);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_permission_denied() {
    let server = S3Server::start("test-auth").await;
    s3_store(&server, "locked", "").await;
    let mut settings = server.settings();
    settings.secret_access_key = Some(Secret("wrong-secret".into()));
    let store = S3Store::new("locked", "", &settings).unwrap();
    let e = store.get("config").await.unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::PermissionDenied, "{e}");
    let e = store.init().await.unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::PermissionDenied, "{e}");
    assert!(
        e.message.contains("s3:ListBucket"),
        "init names the missing permission: {e}"
    );
    assert!(
        e.to_string().contains("locked") && e.to_string().contains("test-auth"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_bucket_is_not_found() {
    let server = S3Server::start("test-nobucket").await;
    let store = S3Store::new("absent", "", &server.settings()).unwrap();
    let e = store.get("config").await.unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::NotFound, "{e}");
    assert!(store.head("config").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_url_with_opens_s3() {
    let server = S3Server::start("test-url").await;
    s3_store(&server, "urlbucket", "").await;
    let options = StoreOptions {
        s3: server.settings(),
        ..StoreOptions::default()
    };
    let store = ferry::store::open_url_with("s3://urlbucket/some/prefix", &options).unwrap();
    store
        .put("config", Bytes::from_static(b"hello"))
        .await
        .unwrap();
    assert!(
        store.location().starts_with("s3://urlbucket/some/prefix/"),
        "{}",
        store.location()
    );
    let direct = S3Store::new("urlbucket", "", &server.settings()).unwrap();
    assert_eq!(
        direct.get("some/prefix/config").await.unwrap(),
        Bytes::from_static(b"hello")
    );
    assert!(ferry::store::open_url_with("s3://", &options).is_err());
    assert!(ferry::store::open_url_with("gs://bucket", &options).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_and_download_limits_hold_on_s3() {
    let server = S3Server::start("test-limit").await;
    let base: DynStore = Arc::new(s3_store(&server, "limited", "").await);
    let options = StoreOptions {
        limit_upload: Some("8MiB/s".parse().unwrap()),
        limit_download: Some("16MiB/s".parse().unwrap()),
        ..StoreOptions::default()
    };
    let store = compose(base, &options);
    let data = Bytes::from(vec![7u8; 4 << 20]);
    let start = Instant::now();
    let keys = ["o0", "o1"];
    let puts = keys.iter().map(|k| store.put(k, data.clone()));
    futures::future::try_join_all(puts).await.unwrap();
    let up = start.elapsed();
    // 8 MiB at 8 MiB/s, shared by both uploads.
    assert!(
        up >= Duration::from_millis(950) && up < Duration::from_millis(2500),
        "upload took {up:?}"
    );
    let start = Instant::now();
    let gets = keys.iter().map(|k| store.get(k));
    let got = futures::future::try_join_all(gets).await.unwrap();
    let down = start.elapsed();
    assert!(got.iter().all(|g| *g == data));
    assert!(
        down >= Duration::from_millis(450) && down < Duration::from_millis(1500),
        "download took {down:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn throttle_charges_stores_that_do_not_pace() {
    let dir = tempfile::tempdir().unwrap();
    let store = Throttled::new(
        Arc::new(LocalStore::new(dir.path())),
        Some("1MiB/s".parse().unwrap()),
        None,
    );
    let start = tokio::time::Instant::now();
    store
        .put("a", Bytes::from(vec![0u8; 3 << 20]))
        .await
        .unwrap();
    assert_eq!(start.elapsed().as_secs(), 3);
    let start = tokio::time::Instant::now();
    store.get("a").await.unwrap();
    assert!(
        start.elapsed() < Duration::from_millis(10),
        "downloads are not limited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_gives_up_with_the_cause() {
    let server = S3Server::start("test-gone").await;
    let settings = server.settings();
    drop(server);
    let store = Retrying::new(
        Arc::new(S3Store::new("gone", "p", &settings).unwrap()),
        RetryPolicy {
            max_attempts: 3,
            initial_backoff_ms: 1,
            max_backoff_ms: 5,
            budget_seconds: 5,
        },
    );
    let e = store
        .put("data/ab/pack1", Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert_eq!(e.kind, StoreErrorKind::Transient);
    for part in [
        "s3://gone/p/",
        "test-gone",
        "data/ab/pack1",
        "gave up after 3 attempts",
        "connect",
    ] {
        assert!(msg.contains(part), "{part:?} missing from {msg}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_never_repeats_permanent_failures() {
    let server = S3Server::start("test-perm").await;
    s3_store(&server, "perm", "").await;
    let proxy = FaultProxy::start(server.addr, 1, 0.0, &[Fault::SlowDown]).await;
    let store = Retrying::new(
        Arc::new(S3Store::new("perm", "", &settings_for(&proxy.endpoint(), "test-perm")).unwrap()),
        fast_retries(),
    );
    store
        .put("k", Bytes::from_static(b"0123456789"))
        .await
        .unwrap();
    let before = proxy.requests();
    let e = store.get_range("k", 20, 5).await.unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::Permanent, "{e}");
    assert_eq!(
        proxy.requests() - before,
        1,
        "a permanent failure is not retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_put_carries_a_checksum() {
    let server = S3Server::start("test-sums").await;
    s3_store(&server, "sums", "").await;
    let proxy = FaultProxy::start(server.addr, 1, 0.0, &[]).await;
    for provider in [Provider::Minio, Provider::Generic] {
        let mut settings = settings_for(&proxy.endpoint(), "test-sums");
        settings.provider = provider;
        let store = S3Store::new("sums", provider.name(), &settings).unwrap();
        store
            .put("small", Bytes::from(vec![1u8; 1000]))
            .await
            .unwrap();
        store
            .put("large", Bytes::from(vec![2u8; 12 << 20]))
            .await
            .unwrap();
        assert!(store
            .put_if_absent("lock", Bytes::from_static(b"me"))
            .await
            .unwrap());
    }
    let puts: Vec<_> = proxy
        .log()
        .into_iter()
        .filter(|s| s.line.starts_with("PUT ") && !s.line.ends_with("/sums"))
        .collect();
    assert!(
        puts.len() >= 2 * (1 + 3 + 1),
        "single PUTs and parts: {puts:#?}"
    );
    for put in &puts {
        assert!(
            put.headers.iter().any(|h| h == "content-md5"),
            "no Content-MD5: {put:?}"
        );
        let crc = put.headers.iter().any(|h| h == "x-amz-checksum-crc32c");
        let single = !put.line.contains("partNumber=");
        assert_eq!(
            crc,
            single && put.line.contains("/minio/"),
            "CRC32C only where the provider knows it: {put:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_multipart_upload_is_aborted_and_invisible() {
    let server = S3Server::start("test-abort").await;
    s3_store(&server, "abort", "").await;
    let proxy = FaultProxy::start(server.addr, 3, 1.0, &[Fault::ResetUpload]).await;
    proxy.only_matching("partNumber=2");
    let store = S3Store::new("abort", "", &settings_for(&proxy.endpoint(), "test-abort")).unwrap();
    let e = store
        .put("data/big", Bytes::from(vec![3u8; 12 << 20]))
        .await
        .unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::Transient, "{e}");
    assert!(
        store.head("data/big").await.unwrap().is_none(),
        "no half-visible object"
    );
    let log = proxy.log();
    assert!(
        log.iter()
            .any(|s| s.line.starts_with("DELETE ") && s.line.contains("uploadId=")),
        "the upload was aborted: {log:#?}"
    );
    assert_eq!(
        log.iter()
            .filter(|s| s.line.contains("partNumber=2"))
            .count(),
        4,
        "a part is retried on its own"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_objects_are_not_returned() {
    let server = S3Server::start("test-rot").await;
    let store = s3_store(&server, "rot", "").await;
    let data = Bytes::from(vec![5u8; 100_000]);
    store.put("data/00/pack", data.clone()).await.unwrap();
    let path = server.root.path().join("rot/data/00/pack");
    let mut on_disk = std::fs::read(&path).unwrap();
    on_disk[50_000] ^= 1;
    std::fs::write(&path, on_disk).unwrap();
    let e = store
        .get("data/00/pack")
        .await
        .expect_err("a damaged object fails its CRC32C");
    assert_eq!(e.kind, StoreErrorKind::Transient, "{e}");
    assert!(
        e.to_string().contains("data/00/pack") && e.message.contains("checksum"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_to_creates_and_deletes_are_read_right() {
    let server = S3Server::start("test-lost").await;
    s3_store(&server, "lost", "").await;
    let proxy = FaultProxy::start(server.addr, 5, 1.0, &[Fault::InternalErrorAfter]).await;
    let store = Retrying::new(
        Arc::new(S3Store::new("lost", "", &settings_for(&proxy.endpoint(), "test-lost")).unwrap()),
        fast_retries(),
    );
    // The server creates the lock, the answer is lost; the retry finds the
    // key taken, by our own bytes.
    proxy.only_matching("PUT /lost/locks/");
    proxy.limit_faults(1);
    assert!(store
        .put_if_absent("locks/a", Bytes::from_static(b"lock a"))
        .await
        .unwrap());
    assert!(!store
        .put_if_absent("locks/a", Bytes::from_static(b"lock b"))
        .await
        .unwrap());
    // The server deletes, the answer is lost; the retry finds nothing left.
    proxy.only_matching("DELETE /lost/locks/");
    proxy.limit_faults(1);
    store.delete("locks/a").await.unwrap();
    assert_eq!(proxy.injected().len(), 2);
    let e = store.delete("locks/a").await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
}
