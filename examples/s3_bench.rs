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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferry::store::s3::{S3Settings, S3Store};
use ferry::store::{compose, DynStore, StoreOptions};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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
    options.s3.multipart_threshold = S3Settings::default().multipart_threshold;
    options.s3.part_size = 16 << 20;
    options.s3.idle_timeout_ms = 60_000;
    options.s3.list_page_size = 1000;
    // FERRY_S3_* variables override the settings above, as in the CLI.
    options
        .apply_env(|k| std::env::var(k).ok())
        .expect("FERRY_S3_* settings");
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
        "limit" => limit(&options, bucket, b.parse().unwrap()).await,
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

/// A TCP relay to `upstream` that counts the bytes sent towards it.
async fn counting_relay(upstream: String, sent: Arc<AtomicU64>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut client, _) = listener.accept().await.unwrap();
            let mut server = TcpStream::connect(&upstream).await.unwrap();
            let sent = sent.clone();
            tokio::spawn(async move {
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let up = async {
                    let mut buf = vec![0u8; 64 << 10];
                    loop {
                        let n = cr.read(&mut buf).await.unwrap_or(0);
                        if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        sent.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    let _ = sw.shutdown().await;
                };
                let down = tokio::io::copy(&mut sr, &mut cw);
                let _ = tokio::join!(up, down);
            });
        }
    });
    format!("http://{addr}")
}

/// Uploads 1 MiB objects from 8 workers for `seconds` under the store's
/// upload limit, counting the bytes on the wire every 100 ms.
async fn limit(options: &StoreOptions, bucket: &str, seconds: u64) {
    let sent = Arc::new(AtomicU64::new(0));
    let upstream = options
        .s3
        .endpoint
        .clone()
        .unwrap()
        .trim_start_matches("http://")
        .to_string();
    let mut options = options.clone();
    options.s3.endpoint = Some(counting_relay(upstream, sent.clone()).await);
    let store = compose(
        Arc::new(S3Store::new(bucket, "bench", &options.s3).unwrap()),
        &options,
    );
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let workers = (0..8).map(|w| {
        let store = store.clone();
        async move {
            let data = object(w, MIB);
            let mut i = 0;
            while Instant::now() < end {
                store
                    .put(&format!("limit/{w}/{i}"), data.clone())
                    .await
                    .unwrap();
                i += 1;
            }
        }
    });
    let sampler = async {
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        while Instant::now() < end {
            tick.tick().await;
            samples.push(sent.load(Ordering::Relaxed));
        }
        samples
    };
    let (_, samples) = tokio::join!(futures::future::join_all(workers), sampler);
    let mib = |b: u64| b as f64 / MIB as f64;
    let total = samples.last().unwrap() - samples[0];
    let span = (samples.len() - 1) as f64 / 10.0;
    let windows: Vec<u64> = samples.windows(11).map(|w| w[10] - w[0]).collect();
    println!(
        "ferry upload limited to {}: {:.2} MiB in {span:.1} s = {:.2} MiB/s on the wire; \
         1-s windows (100 ms steps) min {:.2} max {:.2} MiB",
        options.limit_upload.as_ref().unwrap(),
        mib(total),
        mib(total) / span,
        mib(*windows[1..].iter().min().unwrap()),
        mib(*windows.iter().max().unwrap()),
    );
}
