//! Criterion benchmarks of each CPU stage (chunking, hashing, compression,
//! encryption) and of the whole write pipeline into an in-memory store.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferry::format::blob::{seal_blob, BlobType};
use ferry::format::config::ChunkerParams;
use ferry::format::crypto::MasterKey;
use ferry::format::keys::KdfParams;
use ferry::pipeline::chunker::for_each_chunk;
use ferry::pipeline::{Pipeline, PipelineOptions, RawBlob};
use ferry::repo::{InitOptions, Repository};
use ferry::store::memory::MemoryStore;
use ferry::testdata::{random, text};

const MIB: usize = 1 << 20;

fn stages(c: &mut Criterion) {
    let data = random(32 * MIB, 1);
    let txt = text(8 * MIB, 7);
    let key = MasterKey::generate();
    let cipher = key.cipher();

    let mut g = c.benchmark_group("stages");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("fastcdc_32MiB", |b| {
        b.iter(|| for_each_chunk(&data[..], &ChunkerParams::default(), |_c| Ok(())).unwrap())
    });
    g.bench_function("blake3_keyed_32MiB", |b| b.iter(|| key.blob_id(&data)));
    g.bench_function("seal_32MiB", |b| b.iter(|| cipher.seal(&data, b"bench")));
    g.throughput(Throughput::Bytes(txt.len() as u64));
    for level in [1, 3] {
        let mut z = zstd::bulk::Compressor::new(level).unwrap();
        g.bench_with_input(BenchmarkId::new("zstd_text_8MiB", level), &level, |b, _| {
            b.iter(|| z.compress(&txt).unwrap())
        });
    }
    let mut z = zstd::bulk::Compressor::new(3).unwrap();
    g.throughput(Throughput::Bytes(8 * MIB as u64));
    g.bench_function("seal_blob_incompressible_8MiB", |b| {
        b.iter(|| {
            seal_blob(
                &cipher,
                Some(&mut z),
                BlobType::Data,
                key.blob_id(&data[..8 * MIB]),
                &data[..8 * MIB],
            )
        })
    });
    g.finish();
}

fn pipeline(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // Half compressible text, half random: like source code next to binaries.
    let mut input = text(32 * MIB, 7);
    input.extend(random(32 * MIB, 3));
    let mut g = c.benchmark_group("pipeline");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(input.len() as u64));
    g.bench_function("backup_64MiB_in_memory", |b| {
        b.iter(|| {
            rt.block_on(async {
                let store = Arc::new(MemoryStore::new());
                let opts = InitOptions {
                    kdf: KdfParams {
                        memory_kib: 1024,
                        iterations: 1,
                        parallelism: 1,
                    },
                    ..Default::default()
                };
                let dir = tempfile::tempdir().unwrap();
                let repo = Arc::new(
                    Repository::init(store.clone(), b"pw", &opts, Some(dir.path().join("c.db")))
                        .await
                        .unwrap(),
                );
                let pipe = Pipeline::start(
                    repo.clone(),
                    &PipelineOptions::for_memory(512 << 20, 16 << 20, 8 << 20),
                );
                let p2 = pipe.clone();
                let r2 = repo.clone();
                let data = input.clone();
                tokio::task::spawn_blocking(move || {
                    for_each_chunk(&data[..], &r2.config().chunker, |chunk| {
                        let id = r2.sealer().blob_id(&chunk);
                        if p2.claim(BlobType::Data, &id) {
                            p2.submit_blocking(RawBlob {
                                kind: BlobType::Data,
                                id,
                                data: chunk,
                            })
                            .unwrap();
                        }
                        Ok(())
                    })
                    .unwrap();
                })
                .await
                .unwrap();
                pipe.finish().await.unwrap();
                store.size()
            })
        })
    });
    g.finish();
}

criterion_group!(benches, stages, pipeline);
criterion_main!(benches);
