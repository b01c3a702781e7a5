//! Faults between the store and the server: every operation ends with
//! the right data or a clear error, and retries read lost answers right.

use std::sync::Arc;

use bytes::Bytes;
use ferry::store::retry::{RetryPolicy, Retrying};
use ferry::store::s3::S3Store;
use ferry::store::{ObjectStore, StoreErrorKind};

use crate::support::proxy::{Fault, FaultProxy, ALL_FAULTS};
use crate::support::server::{settings_for, S3Server};
use crate::{fast_retries, s3_store};

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
                assert!(e.is_retryable(), "{e}");
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
                assert!(e.is_retryable() || (!stored && e.is_not_found()), "{e}");
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
    // Refused: no answer at all.
    assert_eq!(e.kind, StoreErrorKind::Unreachable);
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
    // The connection reset mid-upload: no answer.
    assert_eq!(e.kind, StoreErrorKind::Unreachable, "{e}");
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
    // Damage at rest: asking again returns the same bytes, so it is not
    // retried (check reports it at once and repair replaces it).
    assert_eq!(e.kind, StoreErrorKind::Permanent, "{e}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_upload_cleanup_says_when_the_server_cannot() {
    // s3s-fs 0.14.1 has no ListMultipartUploads.
    let server = S3Server::start("test-stale").await;
    let store = s3_store(&server, "stale", "p").await;
    match store
        .abort_stale_uploads(std::time::Duration::from_secs(3600))
        .await
    {
        Ok(n) => assert_eq!(n, 0),
        Err(e) => {
            assert_eq!(e.kind, StoreErrorKind::Permanent, "{e}");
            assert!(e.message.contains("501"), "{e}");
        }
    }
}
