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
