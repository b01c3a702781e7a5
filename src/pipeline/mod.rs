//! The write pipeline: bounded stages that take new blobs, compress and seal
//! them on a pool of CPU workers, gather them into packs, upload the packs,
//! and write index objects only for packs already durable.

pub mod chunker;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;

use crate::repo::blob::{seal_blob, BlobType, SealedBlob};
use crate::repo::index::{IndexFile, IndexPack};
use crate::repo::pack::PackWriter;
use crate::repo::{BlobId, RepoError, RepoResult, Repository};

/// A new blob on its way into a pack.
pub struct RawBlob {
    pub kind: BlobType,
    pub id: BlobId,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Threads compressing and sealing blobs.
    pub seal_workers: usize,
    /// Packs uploaded at once.
    pub uploads: usize,
    /// Write an index object after this many packs, so that an interrupted
    /// backup leaves its finished packs usable by the next one.
    pub index_every_packs: usize,
}

impl PipelineOptions {
    /// Sizes the stages so that blobs and packs in flight stay within
    /// `memory_limit` bytes.
    pub fn for_memory(memory_limit: u64, pack_size: u32, max_chunk: u32) -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        // Two packs being built, one queued, plus the uploads in flight.
        let budget_packs = (memory_limit / 4 / pack_size as u64).max(1) as usize;
        let uploads = budget_packs.saturating_sub(3).clamp(1, 4);
        let chunk_budget = (memory_limit / 4 / max_chunk as u64).max(2) as usize;
        PipelineOptions {
            seal_workers: cores.min(chunk_budget / 2).max(1),
            uploads,
            index_every_packs: 32,
        }
    }
}

#[derive(Debug, Default)]
pub struct PipelineStats {
    pub blobs_added: AtomicU64,
    pub added_bytes: AtomicU64,
    pub stored_bytes: AtomicU64,
    pub packs: AtomicU64,
}

pub struct Pipeline {
    repo: Arc<Repository>,
    claimed: Mutex<HashSet<BlobId>>,
    raw_tx: async_channel::Sender<RawBlob>,
    stats: Arc<PipelineStats>,
    failure: Arc<Mutex<Option<RepoError>>>,
    done: Mutex<Option<JoinHandle<RepoResult<()>>>>,
}

/// The pipeline stopped taking blobs (a later stage failed; `finish` says why).
#[derive(Debug, thiserror::Error)]
#[error("the write pipeline stopped")]
pub struct Closed;

impl Pipeline {
    pub fn start(repo: Arc<Repository>, opts: &PipelineOptions) -> Arc<Self> {
        let (raw_tx, raw_rx) = async_channel::bounded::<RawBlob>(opts.seal_workers.max(1));
        let (sealed_tx, sealed_rx) =
            async_channel::bounded::<SealedBlob>(opts.seal_workers.max(1) * 2);
        let (pack_tx, pack_rx) = async_channel::bounded(1);
        let stats = Arc::new(PipelineStats::default());
        let failure = Arc::new(Mutex::new(None));
        let level = repo.config().compression_level;
        for _ in 0..opts.seal_workers.max(1) {
            let (rx, tx, cipher) = (raw_rx.clone(), sealed_tx.clone(), repo.cipher().clone());
            tokio::task::spawn_blocking(move || {
                let mut zstd = (level > 0)
                    .then(|| zstd::bulk::Compressor::new(level).expect("valid zstd level"));
                while let Ok(b) = rx.recv_blocking() {
                    let sealed = seal_blob(&cipher, zstd.as_mut(), b.kind, b.id, &b.data);
                    if tx.send_blocking(sealed).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sealed_tx);
        let pack_size = repo.config().pack_size as usize;
        let packer = {
            let (cipher, stats) = (repo.cipher().clone(), stats.clone());
            tokio::spawn(async move {
                let mut writers = [
                    PackWriter::with_capacity(pack_size + (1 << 20)),
                    PackWriter::default(),
                ];
                while let Ok(b) = sealed_rx.recv().await {
                    stats.blobs_added.fetch_add(1, Ordering::Relaxed);
                    stats
                        .added_bytes
                        .fetch_add(b.raw_length as u64, Ordering::Relaxed);
                    let w = &mut writers[b.kind as usize];
                    w.add(b);
                    if w.len() >= pack_size {
                        let full =
                            std::mem::replace(w, PackWriter::with_capacity(pack_size + (1 << 20)));
                        if pack_tx.send(full.finish(&cipher)).await.is_err() {
                            return;
                        }
                    }
                }
                for w in writers {
                    if !w.is_empty() && pack_tx.send(w.finish(&cipher)).await.is_err() {
                        return;
                    }
                }
            })
        };
        let pending = Arc::new(Mutex::new(Vec::<IndexPack>::new()));
        let uploaders: Vec<_> = (0..opts.uploads.max(1))
            .map(|_| {
                let (repo, rx, pending, stats) = (
                    repo.clone(),
                    pack_rx.clone(),
                    pending.clone(),
                    stats.clone(),
                );
                let (failure, raw_rx, every) =
                    (failure.clone(), raw_rx.clone(), opts.index_every_packs);
                tokio::spawn(async move {
                    while let Ok(p) = rx.recv().await {
                        let size = p.data.len() as u64;
                        if let Err(e) = repo.put_pack(&p.id, p.data).await {
                            tracing::error!(pack = %p.id, error = %e, "pack upload failed");
                            failure.lock().unwrap().get_or_insert(e);
                            // Stop every stage: producers see a closed channel.
                            rx.close();
                            raw_rx.close();
                            return;
                        }
                        stats.stored_bytes.fetch_add(size, Ordering::Relaxed);
                        stats.packs.fetch_add(1, Ordering::Relaxed);
                        {
                            let mut idx = repo.index_mut();
                            for e in &p.entries {
                                idx.insert(p.id, *e);
                            }
                        }
                        let flush = {
                            let mut pend = pending.lock().unwrap();
                            pend.push(IndexPack {
                                id: p.id,
                                size,
                                blobs: p.entries,
                            });
                            (pend.len() >= every).then(|| std::mem::take(&mut *pend))
                        };
                        if let Some(packs) = flush {
                            if let Err(e) = repo.save_index(&IndexFile { packs }).await {
                                failure.lock().unwrap().get_or_insert(e);
                                rx.close();
                                raw_rx.close();
                                return;
                            }
                        }
                    }
                })
            })
            .collect();
        let done = {
            let (repo, failure) = (repo.clone(), failure.clone());
            tokio::spawn(async move {
                let _ = packer.await;
                for u in uploaders {
                    let _ = u.await;
                }
                if let Some(e) = failure.lock().unwrap().take() {
                    return Err(e);
                }
                let packs = std::mem::take(&mut *pending.lock().unwrap());
                if !packs.is_empty() {
                    repo.save_index(&IndexFile { packs }).await?;
                }
                Ok(())
            })
        };
        Arc::new(Pipeline {
            repo,
            claimed: Mutex::new(HashSet::new()),
            raw_tx,
            stats,
            failure,
            done: Mutex::new(Some(done)),
        })
    }

    /// True when `id` is new to the repository and to this run: the caller
    /// must then submit the blob. Every id is claimed at most once.
    pub fn claim(&self, id: &BlobId) -> bool {
        if self.repo.index().contains(id) {
            return false;
        }
        self.claimed.lock().unwrap().insert(*id)
    }

    pub fn submit_blocking(&self, blob: RawBlob) -> Result<(), Closed> {
        self.raw_tx.send_blocking(blob).map_err(|_| Closed)
    }

    pub async fn submit(&self, blob: RawBlob) -> Result<(), Closed> {
        self.raw_tx.send(blob).await.map_err(|_| Closed)
    }

    pub fn stats(&self) -> &PipelineStats {
        &self.stats
    }

    /// Whether a later stage has failed (producers should stop early).
    pub fn failed(&self) -> bool {
        self.failure.lock().unwrap().is_some() || self.raw_tx.is_closed()
    }

    /// Stops taking blobs, waits until every pack is stored and indexed.
    pub async fn finish(&self) -> RepoResult<()> {
        self.raw_tx.close();
        let handle = self.done.lock().unwrap().take();
        match handle {
            Some(h) => h
                .await
                .map_err(|e| RepoError::Invalid(format!("pipeline task failed: {e}")))?,
            None => Ok(()),
        }
    }
}
