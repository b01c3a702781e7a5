//! Several servers as regions, credentials, missing buckets, URLs and the
//! checksum on every PUT.

use std::sync::Arc;

use bytes::Bytes;
use ferry::store::s3::{Provider, S3Store, Secret};
use ferry::store::{DynStore, ObjectStore, StoreErrorKind, StoreOptions};

use crate::s3_store;
use crate::support::proxy::FaultProxy;
use crate::support::server::{settings_for, S3Server};

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
    // A region that goes away fails with an error naming it: no answer.
    let [eu, _us, ap] = regions;
    drop(ap);
    let e = stores[2].get("data/00/pack0").await.unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::Unreachable, "{e}");
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
        // Exactly one checksum the server verifies: CRC32C on single PUTs
        // to providers that take it, Content-MD5 otherwise.
        let md5 = put.headers.iter().any(|h| h == "content-md5");
        let crc = put.headers.iter().any(|h| h == "x-amz-checksum-crc32c");
        assert!(md5 != crc, "one of Content-MD5 and CRC32C: {put:?}");
        let single = !put.line.contains("partNumber=");
        assert_eq!(
            crc,
            single && put.line.contains("/minio/"),
            "CRC32C only where the provider knows it: {put:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_names_the_missing_permission() {
    let server = S3Server::start_denying("test-policy", &["CreateBucket"]).await;
    let store = S3Store::new("new-bucket", "", &server.settings()).unwrap();
    let e = store.init().await.unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::PermissionDenied, "{e}");
    assert!(
        e.message.contains("does not exist") && e.message.contains("s3:CreateBucket"),
        "{e}"
    );

    let server = S3Server::start_denying("test-policy", &["PutObject"]).await;
    let store = S3Store::new("bucket", "repo", &server.settings()).unwrap();
    let e = store.init().await.unwrap_err();
    assert_eq!(e.kind, StoreErrorKind::PermissionDenied, "{e}");
    assert!(e.message.contains("s3:PutObject"), "{e}");
    assert!(
        e.to_string().contains("s3://bucket/repo/ (test-policy"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oss_creates_with_its_own_header() {
    let server = S3Server::start("oss-cn-test").await;
    s3_store(&server, "oss-bucket", "").await;
    let proxy = FaultProxy::start(server.addr, 1, 0.0, &[]).await;
    let mut settings = settings_for(&proxy.endpoint(), "oss-cn-test");
    settings.provider = Provider::Oss;
    let store = S3Store::new("oss-bucket", "", &settings).unwrap();
    assert!(store
        .put_if_absent("locks/1", Bytes::from_static(b"me"))
        .await
        .unwrap());
    let put = proxy
        .log()
        .into_iter()
        .find(|s| s.line.starts_with("PUT "))
        .unwrap();
    assert!(
        put.headers.iter().any(|h| h == "x-oss-forbid-overwrite"),
        "{put:?}"
    );
    assert!(
        !put.headers
            .iter()
            .any(|h| h == "if-none-match" || h.starts_with("x-amz-checksum")),
        "{put:?}"
    );
    assert!(put.headers.iter().any(|h| h == "content-md5"), "{put:?}");
}
