//! Bandwidth limits on real transfers and on stores that do not pace.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferry::store::throttle::Throttled;
use ferry::store::{
    compose, compose_shared, local::LocalStore, DynStore, ObjectStore, StoreOptions,
};

use crate::s3_store;
use crate::support::server::S3Server;

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
async fn regions_share_one_limit() {
    let (a, b) = (
        S3Server::start("lim-a").await,
        S3Server::start("lim-b").await,
    );
    let options = StoreOptions {
        limit_upload: Some("8MiB/s".parse().unwrap()),
        ..StoreOptions::default()
    };
    let bandwidth = options.bandwidth();
    let stores: Vec<DynStore> = vec![
        compose_shared(
            Arc::new(s3_store(&a, "shared", "").await),
            &options,
            &bandwidth,
        ),
        compose_shared(
            Arc::new(s3_store(&b, "shared", "").await),
            &options,
            &bandwidth,
        ),
    ];
    let data = Bytes::from(vec![1u8; 4 << 20]);
    let start = Instant::now();
    futures::future::try_join_all(stores.iter().map(|s| s.put("pack", data.clone())))
        .await
        .unwrap();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(950),
        "8 MiB through one 8 MiB/s limit took {took:?}"
    );
}
