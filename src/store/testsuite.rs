//! The test suite every `ObjectStore` implementation must pass. It checks the
//! contract written on the trait; integration tests run it against each store
//! (local directory, S3 on a real server, S3 behind a fault-injecting proxy).

use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;

use super::{LockMode, LockPolicy, ObjectStore, StoreErrorKind};

/// Runs every check against `store`, under a fresh key prefix so that several
/// runs may share one store. Panics with a message naming the broken rule.
pub async fn run(store: &dyn ObjectStore) {
    let base = format!("suite{:08x}", rand::random::<u32>());
    put_get_roundtrip(store, &base).await;
    overwrite(store, &base).await;
    missing_objects(store, &base).await;
    ranges(store, &base).await;
    put_if_absent(store, &base).await;
    listing(store, &base).await;
    delete(store, &base).await;
    large_object(store, &base).await;
    concurrent_put_if_absent(store, &base).await;
}

/// The object lock contract, on a store that locks objects (an S3 bucket
/// created with Object Lock) and is not locked yet: every write from
/// [`ObjectStore::lock_writes`] on carries the retention, extending moves
/// it, a delete hides the object, and a purge deletes hidden versions only
/// once their retention has passed. Takes `retention` plus a few seconds:
/// keep it short.
pub async fn run_locked(store: &dyn ObjectStore, retention: Duration) {
    let base = format!("locked{:08x}", rand::random::<u32>());
    let policy = LockPolicy {
        mode: LockMode::Governance,
        retention,
    };
    store
        .lock_writes(&policy)
        .expect("a store that locks objects");
    let (a, b) = (format!("{base}/a"), format!("{base}/b"));
    let before = Utc::now() - chrono::Duration::seconds(2);
    store.put(&a, payload(100, 1)).await.unwrap();
    assert!(store.put_if_absent(&b, payload(200, 2)).await.unwrap());
    let slack = chrono::Duration::seconds(30);
    let wanted = chrono::Duration::from_std(retention).unwrap();
    for key in [&a, &b] {
        let r = store
            .retention(key)
            .await
            .unwrap()
            .expect("a locked write has a retention");
        assert_eq!(r.mode, LockMode::Governance, "{key}: the policy's mode");
        assert!(
            r.until >= before + wanted && r.until <= Utc::now() + wanted + slack,
            "{key}: retained until {} for a retention of {retention:?}",
            r.until
        );
    }
    // Extending moves the date later.
    let later = policy.retention_from(Utc::now() + chrono::Duration::seconds(2));
    store.extend_retention(&a, &later).await.unwrap();
    let got = store.retention(&a).await.unwrap().unwrap();
    assert!(
        got.until >= later.until - chrono::Duration::seconds(1),
        "extended: {got:?}"
    );
    // A delete hides the objects; their locked versions stay until a purge
    // after the retention.
    store.delete(&a).await.unwrap();
    store.delete(&b).await.unwrap();
    assert!(
        store.head(&a).await.unwrap().is_none(),
        "a deleted object is hidden"
    );
    assert!(
        store.list(&base).await.unwrap().is_empty(),
        "hidden objects are not listed"
    );
    let early = store.purge_versions(&base, Utc::now()).await.unwrap();
    assert_eq!(early.versions, 0, "nothing retained is purged: {early:?}");
    assert_eq!(early.deferred_versions, 2, "{early:?}");
    assert_eq!(early.deferred_bytes, 300, "{early:?}");
    let until = early
        .deferred_until
        .expect("when the deferred versions may go");
    assert!(
        until >= got.until - chrono::Duration::seconds(1),
        "{early:?} against {got:?}"
    );
    let wait = (until - Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(2);
    tokio::time::sleep(wait).await;
    let late = store.purge_versions(&base, Utc::now()).await.unwrap();
    assert_eq!((late.versions, late.bytes), (2, 300), "{late:?}");
    assert_eq!(late.deferred_versions, 0, "{late:?}");
    let again = store.purge_versions(&base, Utc::now()).await.unwrap();
    assert_eq!(again, Default::default(), "a second purge finds nothing");
}

/// A store that cannot lock objects says so and has nothing to purge.
pub async fn run_unlockable(store: &dyn ObjectStore) {
    let key = format!("unlocked{:08x}", rand::random::<u32>());
    let policy = LockPolicy {
        mode: LockMode::Compliance,
        retention: Duration::from_secs(60),
    };
    let refused = store
        .lock_writes(&policy)
        .expect_err("this store cannot lock");
    assert_eq!(refused.kind, StoreErrorKind::Permanent, "{refused}");
    assert!(
        refused.to_string().contains("cannot lock objects"),
        "{refused}"
    );
    store.put(&key, payload(10, 9)).await.unwrap();
    assert_eq!(store.retention(&key).await.unwrap(), None);
    let r = policy.retention_from(Utc::now());
    let refused = store
        .extend_retention(&key, &r)
        .await
        .expect_err("no retention");
    assert_eq!(refused.kind, StoreErrorKind::Permanent, "{refused}");
    store.delete(&key).await.unwrap();
    let purged = store.purge_versions("", Utc::now()).await.unwrap();
    assert_eq!(purged, Default::default());
}

fn payload(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<_>>()
        .into()
}

async fn put_get_roundtrip(store: &dyn ObjectStore, base: &str) {
    for (i, len) in [0usize, 1, 4095, 65536].into_iter().enumerate() {
        let key = format!("{base}/rt/{i}");
        let data = payload(len, i as u8);
        store.put(&key, data.clone()).await.expect("put");
        assert_eq!(
            store.get(&key).await.expect("get after put"),
            data,
            "read-after-write: {key}"
        );
        let meta = store
            .head(&key)
            .await
            .expect("head")
            .expect("head after put finds the object");
        assert_eq!(meta.size, len as u64, "head size of {key}");
        assert_eq!(meta.key, key);
    }
}

async fn overwrite(store: &dyn ObjectStore, base: &str) {
    let key = format!("{base}/ow");
    store.put(&key, payload(100, 1)).await.unwrap();
    store.put(&key, payload(50, 2)).await.unwrap();
    assert_eq!(
        store.get(&key).await.unwrap(),
        payload(50, 2),
        "put replaces"
    );
}

async fn missing_objects(store: &dyn ObjectStore, base: &str) {
    let key = format!("{base}/missing");
    let e = store
        .get(&key)
        .await
        .expect_err("get of a missing key fails");
    assert_eq!(e.kind, StoreErrorKind::NotFound, "get missing: {e}");
    let e = store
        .get_range(&key, 0, 1)
        .await
        .expect_err("range of missing key fails");
    assert_eq!(e.kind, StoreErrorKind::NotFound, "get_range missing: {e}");
    assert!(
        store.head(&key).await.unwrap().is_none(),
        "head of missing key is None"
    );
    let e = store
        .delete(&key)
        .await
        .expect_err("delete of a missing key fails");
    assert_eq!(e.kind, StoreErrorKind::NotFound, "delete missing: {e}");
}

async fn ranges(store: &dyn ObjectStore, base: &str) {
    let key = format!("{base}/range");
    let data = payload(10_000, 7);
    store.put(&key, data.clone()).await.unwrap();
    for (off, len) in [
        (0u64, 1u64),
        (0, 10_000),
        (9_999, 1),
        (1234, 4321),
        (5000, 0),
    ] {
        let got = store.get_range(&key, off, len).await.expect("get_range");
        assert_eq!(
            &got[..],
            &data[off as usize..(off + len) as usize],
            "range {off}+{len}"
        );
    }
    let e = store
        .get_range(&key, 9_000, 2_000)
        .await
        .expect_err("range past the end fails");
    assert!(!e.is_retryable(), "range past end is not transient: {e}");
}

async fn put_if_absent(store: &dyn ObjectStore, base: &str) {
    let key = format!("{base}/pia");
    assert!(
        store.put_if_absent(&key, payload(10, 1)).await.unwrap(),
        "first create succeeds"
    );
    assert!(
        !store.put_if_absent(&key, payload(20, 2)).await.unwrap(),
        "second create refused"
    );
    assert_eq!(
        store.get(&key).await.unwrap(),
        payload(10, 1),
        "refused create writes nothing"
    );
}

async fn listing(store: &dyn ObjectStore, base: &str) {
    let mut keys = Vec::new();
    for i in 0..25 {
        let key = format!("{base}/ls/{:02x}/obj{i:03}", i % 3);
        store.put(&key, payload(i, 0)).await.unwrap();
        keys.push((key, i as u64));
    }
    store
        .put(&format!("{base}/lsx"), payload(1, 0))
        .await
        .unwrap();
    keys.sort();
    let listed = store.list(&format!("{base}/ls/")).await.unwrap();
    let got: Vec<_> = listed.iter().map(|m| (m.key.clone(), m.size)).collect();
    assert_eq!(
        got, keys,
        "list returns every key under the prefix, sorted, with sizes"
    );
    let sub = store.list(&format!("{base}/ls/01/")).await.unwrap();
    assert_eq!(sub.len(), 8, "list of a nested prefix");
    let partial = store.list(&format!("{base}/ls/01/obj00")).await.unwrap();
    assert_eq!(
        partial.len(),
        3,
        "a prefix may end inside a name: {partial:?}"
    );
    assert!(store
        .list(&format!("{base}/nothing/"))
        .await
        .unwrap()
        .is_empty());
}

async fn delete(store: &dyn ObjectStore, base: &str) {
    let key = format!("{base}/del");
    store.put(&key, payload(5, 5)).await.unwrap();
    store.delete(&key).await.unwrap();
    assert!(
        store.head(&key).await.unwrap().is_none(),
        "deleted object is gone"
    );
    assert!(
        store.list(&key).await.unwrap().is_empty(),
        "deleted object is not listed"
    );
}

async fn large_object(store: &dyn ObjectStore, base: &str) {
    let key = format!("{base}/large");
    let data = payload(24 << 20, 3);
    store.put(&key, data.clone()).await.unwrap();
    let got = store.get(&key).await.unwrap();
    assert!(got == data, "a 24 MiB object reads back identical");
    let tail = store.get_range(&key, (24 << 20) - 100, 100).await.unwrap();
    assert_eq!(&tail[..], &data[data.len() - 100..]);
    // Sizes that are not a multiple of any block size, by put and by
    // put_if_absent.
    for (i, size) in [(1 << 20) + 1, (3 << 20) + 4095, (5 << 20) - 7]
        .into_iter()
        .enumerate()
    {
        let data = payload(size, 10 + i as u8);
        let key = format!("{base}/odd-{i}");
        match i % 2 {
            0 => store.put(&key, data.clone()).await.unwrap(),
            _ => assert!(store.put_if_absent(&key, data.clone()).await.unwrap()),
        }
        assert!(
            store.get(&key).await.unwrap() == data,
            "{size} bytes read back identical"
        );
        let off = 4097u64;
        let len = (size as u64 - off - 1).min((1 << 20) + 3);
        let part = store.get_range(&key, off, len).await.unwrap();
        assert!(
            part == data.slice(off as usize..(off + len) as usize),
            "a large range at an odd offset"
        );
        let past = store
            .get_range(&key, size as u64 - 10, 1 << 20)
            .await
            .unwrap_err();
        assert_eq!(past.kind, StoreErrorKind::Permanent, "past the end: {past}");
    }
}

async fn concurrent_put_if_absent(store: &dyn ObjectStore, base: &str) {
    let key = format!("{base}/race");
    let attempts = (0..8u8).map(|i| store.put_if_absent(&key, payload(64, i)));
    let results = futures::future::join_all(attempts).await;
    let won = results.iter().filter(|r| matches!(r, Ok(true))).count();
    assert_eq!(won, 1, "exactly one concurrent create wins: {results:?}");
}
