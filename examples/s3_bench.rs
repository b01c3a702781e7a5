//! Throughput of the S3 store against a running server (see
//! `benches/s3_throughput.sh`):
//!
//! `s3_bench ENDPOINT BUCKET up|down TOTAL_MIB OBJECT_MIB` uploads (or reads
//! back) TOTAL_MIB in objects of OBJECT_MIB, as pack uploads and restores do;
//! `s3_bench ENDPOINT BUCKET limit RATE SECONDS` uploads 1 MiB objects for
//! SECONDS under an upload limit of RATE and reports the rate per second.

#[path = "../tests/support/server.rs"]
#[allow(dead_code)]
mod server;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferry::store::s3::S3Store;
use ferry::store::{compose, DynStore, StoreOptions};
use futures::StreamExt;

const MIB: usize = 1 << 20;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [endpoint, bucket, mode, a, b] = &args[..] else {
        panic!("usage: s3_bench ENDPOINT BUCKET up|down|limit ARG ARG");
    };
    let mut options = StoreOptions {
        s3: server::settings_for(endpoint, "local"),
        ..StoreOptions::default()
    };
    options.s3.multipart_threshold = 64 << 20;
    options.s3.part_size = 16 << 20;
    options.s3.idle_timeout_ms = 60_000;
    options.s3.list_page_size = 1000;
    if mode == "limit" {
        options.limit_upload = Some(a.parse().expect("a rate"));
    }
    let s3 = S3Store::new(bucket, "bench", &options.s3).unwrap();
    s3.init().await.unwrap();
    let store = compose(Arc::new(s3), &options);
    match mode.as_str() {
        "up" | "down" => {
            transfer(&store, mode == "up", a.parse().unwrap(), b.parse().unwrap()).await
        }
        "limit" => limit(&store, b.parse().unwrap()).await,
        _ => panic!("mode is up, down or limit"),
    }
}

fn object(i: usize, size: usize) -> Bytes {
    let mut v = vec![0u8; size];
    for (j, chunk) in v.chunks_mut(8).enumerate() {
        let x = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ (j as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    Bytes::from(v)
}

async fn transfer(store: &DynStore, up: bool, total_mib: usize, object_mib: usize) {
    let count = total_mib / object_mib;
    let objects: Vec<Bytes> = if up {
        (0..count).map(|i| object(i, object_mib * MIB)).collect()
    } else {
        Vec::new()
    };
    let start = Instant::now();
    let jobs = (0..count).map(|i| {
        let data = objects.get(i).cloned();
        async move {
            let key = format!("data/{:02x}/pack{i:05}", i % 256);
            match data {
                Some(d) => store.put(&key, d).await.map(|_| object_mib * MIB),
                None => store.get(&key).await.map(|d| d.len()),
            }
        }
    });
    let bytes: usize = futures::stream::iter(jobs)
        .buffer_unordered(4)
        .map(|r| r.unwrap())
        .collect::<Vec<_>>()
        .await
        .iter()
        .sum();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "ferry {}: {} MiB in {secs:.2} s = {:.1} MiB/s",
        if up { "upload" } else { "download" },
        bytes / MIB,
        bytes as f64 / MIB as f64 / secs
    );
}

async fn limit(store: &DynStore, seconds: u64) {
    let done = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let workers = (0..8).map(|w| {
        let done = done.clone();
        async move {
            let data = object(w, MIB);
            let mut i = 0;
            while Instant::now() < end {
                store
                    .put(&format!("limit/{w}/{i}"), data.clone())
                    .await
                    .unwrap();
                done.lock().unwrap().push(start.elapsed());
                i += 1;
            }
        }
    });
    futures::future::join_all(workers).await;
    let done = done.lock().unwrap();
    let measured: Vec<Duration> = done
        .iter()
        .copied()
        .filter(|t| t.as_secs() < seconds)
        .collect();
    let avg = measured.len() as f64 / seconds as f64;
    let per_second: Vec<usize> = (0..seconds)
        .map(|s| measured.iter().filter(|t| t.as_secs() == s).count())
        .collect();
    let windows: Vec<usize> = (0..(seconds * 10).saturating_sub(10))
        .map(|d| {
            let from = Duration::from_millis(d * 100);
            measured
                .iter()
                .filter(|t| **t >= from && **t < from + Duration::from_secs(1))
                .count()
        })
        .collect();
    println!(
        "ferry limited upload over {seconds} s: average {avg:.2} MiB/s; per second min {} max {} MiB; \
         any 1-s window (100 ms steps) min {} max {} MiB",
        per_second[1..].iter().min().unwrap(),
        per_second.iter().max().unwrap(),
        windows[10..].iter().min().unwrap(),
        windows.iter().max().unwrap()
    );
}
