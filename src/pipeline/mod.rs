//! The write pipeline: new blobs are compressed and sealed (by the thread
//! that found them, or by a pool of CPU workers for the chunks of large
//! files), appended to the open pack of their type, and full packs are
//! uploaded by their own tasks. Index objects are written only for packs
//! already durable.

pub mod chunker;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;

use crate::format::blob::{BlobEntry, BlobType, SealedBlob};
use crate::format::index::{IndexFile, IndexPack};
use crate::format::pack::{FinishedPack, PackWriter};
use crate::repo::{BlobId, RepoError, RepoResult, Repository, Sealer};

/// A new blob on its way into a pack.
pub struct RawBlob {
    pub kind: BlobType,
    pub id: BlobId,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Threads compressing and sealing the chunks of large files.
    pub seal_workers: usize,
    /// Packs uploaded at once.
    pub uploads: usize,
    /// Write an index object after this many packs, so that an interrupted
    /// backup leaves its finished packs usable by the next one.
    pub index_every_packs: usize,
    /// ... or once the packs waiting for one hold this many blobs, so that
    /// recording an index in the catalog (a row per blob) is spread over the
    /// backup instead of left to its end.
    pub index_every_blobs: usize,
}

/// A backup writes an index object once this many packs, or packs holding
/// this many blobs, wait for one (a repack too: see `engine::prune`).
pub const INDEX_EVERY_PACKS: usize = 32;
pub const INDEX_EVERY_BLOBS: usize = 16384;

/// Whether the packs of `pending` are due for an index object: `every`
/// packs, or blobs, are waiting.
pub fn index_due(pending: &[IndexPack], (every_packs, every_blobs): (usize, usize)) -> bool {
    let blobs: usize = pending.iter().map(|p| p.blobs.len()).sum();
    pending.len() >= every_packs || blobs >= every_blobs
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
        let uploads = budget_packs.saturating_sub(3).clamp(1, 2);
        let chunk_budget = (memory_limit / 4 / max_chunk as u64).max(2) as usize;
        PipelineOptions {
            seal_workers: cores.min(chunk_budget / 2).max(1),
            uploads,
            index_every_packs: INDEX_EVERY_PACKS,
            index_every_blobs: INDEX_EVERY_BLOBS,
        }
    }
}

#[derive(Debug, Default)]
pub struct PipelineStats {
    pub blobs_added: AtomicU64,
    pub added_bytes: AtomicU64,
    pub stored_bytes: AtomicU64,
}

/// A zstd context for one thread, or none when compression is off.
pub type Compressor = Option<zstd::bulk::Compressor<'static>>;

/// Blob ids claimed by one run and not yet in a stored pack.
#[derive(Clone, Default)]
struct Claimed(Arc<Mutex<HashSet<(BlobType, BlobId)>>>);

impl Claimed {
    /// True when `id` was not claimed yet and `stored` does not say it is
    /// in the repository, asked under the lock that [`Claimed::release`]
    /// takes after a pack is recorded: an id is never claimed twice.
    fn claim(&self, kind: BlobType, id: &BlobId, stored: impl Fn(&BlobId) -> bool) -> bool {
        let mut set = self.0.lock().unwrap();
        let key = (kind, *id);
        !set.contains(&key) && !stored(id) && set.insert(key)
    }

    /// The blobs of a stored pack, now in the repository's index.
    fn release(&self, entries: &[BlobEntry]) {
        let mut set = self.0.lock().unwrap();
        for e in entries {
            set.remove(&(e.kind, e.id));
        }
    }
}

pub struct Pipeline {
    repo: Arc<Repository>,
    sealer: Sealer,
    pack_size: usize,
    /// Ids claimed by this run whose pack is not stored yet (once it is,
    /// the repository's index answers for them: the set stays small).
    claimed: Claimed,
    raw_tx: async_channel::Sender<RawBlob>,
    /// The open pack of each blob type.
    writers: [Mutex<PackWriter>; 2],
    pack_tx: async_channel::Sender<FinishedPack>,
    stats: Arc<PipelineStats>,
    failure: Arc<Mutex<Option<RepoError>>>,
    sealers: Mutex<Vec<JoinHandle<()>>>,
    done: Mutex<Option<JoinHandle<RepoResult<()>>>>,
}

/// The pipeline stopped taking blobs (a later stage failed; `finish` says why).
#[derive(Debug, thiserror::Error)]
#[error("the write pipeline stopped")]
pub struct Closed;

impl Pipeline {
    pub fn start(repo: Arc<Repository>, opts: &PipelineOptions) -> Arc<Self> {
        let (raw_tx, raw_rx) = async_channel::bounded::<RawBlob>(opts.seal_workers.max(1));
        let (pack_tx, pack_rx) = async_channel::bounded::<FinishedPack>(1);
        let stats = Arc::new(PipelineStats::default());
        let failure = Arc::new(Mutex::new(None));
        let claimed = Claimed::default();
        let done = spawn_uploads(&repo, opts, (pack_rx, &raw_rx), &claimed, &stats, &failure);
        let pack_size = repo.config().pack_size as usize;
        let pipe = Arc::new(Pipeline {
            sealer: repo.sealer().clone(),
            repo,
            pack_size,
            claimed,
            raw_tx,
            writers: [
                // Data packs are built in aligned buffers from the start;
                // tree packs are rarely full.
                Mutex::new(PackWriter::with_capacity(pack_size + pack_size / 8)),
                Mutex::new(PackWriter::default()),
            ],
            pack_tx,
            stats,
            failure,
            sealers: Mutex::new(Vec::new()),
            done: Mutex::new(Some(done)),
        });
        let sealers = (0..opts.seal_workers.max(1))
            .map(|_| {
                let (rx, pipe) = (raw_rx.clone(), pipe.clone());
                tokio::task::spawn_blocking(move || {
                    let mut zstd = pipe.compressor();
                    while let Ok(b) = rx.recv_blocking() {
                        if pipe.seal_and_add(&mut zstd, b.kind, b.id, &b.data).is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        *pipe.sealers.lock().unwrap() = sealers;
        pipe
    }

    /// A compression context for a thread that seals blobs itself.
    pub fn compressor(&self) -> Compressor {
        let level = self.repo.config().compression_level;
        (level > 0).then(|| zstd::bulk::Compressor::new(level).expect("valid zstd level"))
    }

    /// True when blob `kind`/`id` is new to the repository and to this
    /// run: the caller must then store the blob. Every blob is claimed at
    /// most once.
    pub fn claim(&self, kind: BlobType, id: &BlobId) -> bool {
        if self.repo.has_blob(kind, id) {
            return false;
        }
        self.claimed
            .claim(kind, id, |id| self.repo.has_blob(kind, id))
    }

    /// Compresses and seals a claimed blob on the calling thread and adds
    /// it to the open pack (blocking when uploads are behind).
    pub fn seal_and_add(
        &self,
        zstd: &mut Compressor,
        kind: BlobType,
        id: BlobId,
        data: &[u8],
    ) -> Result<(), Closed> {
        let sealed = self.sealer.seal_blob(zstd.as_mut(), kind, id, data);
        self.add_sealed(sealed)
    }

    fn add_sealed(&self, b: SealedBlob) -> Result<(), Closed> {
        if self.pack_tx.is_closed() {
            return Err(Closed);
        }
        self.stats.blobs_added.fetch_add(1, Ordering::Relaxed);
        self.stats
            .added_bytes
            .fetch_add(b.raw_length as u64, Ordering::Relaxed);
        let full = {
            let mut w = self.writers[b.kind as usize].lock().unwrap();
            w.add(b);
            w.is_full(self.pack_size).then(|| {
                std::mem::replace(
                    &mut *w,
                    PackWriter::with_capacity(self.pack_size + self.pack_size / 8),
                )
            })
        };
        match full {
            Some(w) => self
                .pack_tx
                .send_blocking(self.sealer.finish_pack(w))
                .map_err(|_| Closed),
            None => Ok(()),
        }
    }

    /// Hands a claimed blob to the sealing workers (for chunks of large
    /// files, so that one file uses every core).
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
        let sealers = std::mem::take(&mut *self.sealers.lock().unwrap());
        for s in sealers {
            let _ = s.await;
        }
        tracing::debug!("last blobs sealed");
        for w in &self.writers {
            let last = std::mem::take(&mut *w.lock().unwrap());
            if !last.is_empty() {
                let _ = self.pack_tx.send(self.sealer.finish_pack(last)).await;
            }
        }
        self.pack_tx.close();
        let handle = self.done.lock().unwrap().take();
        match handle {
            Some(h) => h
                .await
                .map_err(|e| RepoError::Invalid(format!("pipeline task failed: {e}")))?,
            None => Ok(()),
        }
    }
}
/// Starts the tasks that store finished packs and the index objects
/// naming them; the task returned ends once every pack and the last index
/// object are stored, with the first failure.
fn spawn_uploads(
    repo: &Arc<Repository>,
    opts: &PipelineOptions,
    (pack_rx, raw_rx): (
        async_channel::Receiver<FinishedPack>,
        &async_channel::Receiver<RawBlob>,
    ),
    claimed: &Claimed,
    stats: &Arc<PipelineStats>,
    failure: &Arc<Mutex<Option<RepoError>>>,
) -> tokio::task::JoinHandle<RepoResult<()>> {
    let pending = Arc::new(Mutex::new(Vec::<IndexPack>::new()));
    let every = (opts.index_every_packs, opts.index_every_blobs);
    let uploaders: Vec<_> = (0..opts.uploads.max(1))
        .map(|_| {
            let (repo, rx, pending, stats) = (
                repo.clone(),
                pack_rx.clone(),
                pending.clone(),
                stats.clone(),
            );
            let (failure, raw_rx, claimed) = (failure.clone(), raw_rx.clone(), claimed.clone());
            tokio::spawn(async move {
                while let Ok(p) = rx.recv().await {
                    if let Err(e) = upload(&repo, p, (&pending, &claimed), &stats, every).await {
                        tracing::error!(error = %e, "storing a pack failed");
                        failure.lock().unwrap().get_or_insert(e);
                        // Stop every stage: producers see closed channels.
                        rx.close();
                        raw_rx.close();
                        return;
                    }
                }
            })
        })
        .collect();
    let (repo, failure) = (repo.clone(), failure.clone());
    tokio::spawn(async move {
        for u in uploaders {
            let _ = u.await;
        }
        if let Some(e) = failure.lock().unwrap().take() {
            return Err(e);
        }
        let packs = std::mem::take(&mut *pending.lock().unwrap());
        if !packs.is_empty() {
            repo.save_index(&IndexFile { packs }).await?;
            tracing::debug!("last index stored");
        }
        Ok(())
    })
}

/// Stores one pack, records its blobs, and writes an index object once
/// enough packs or blobs are waiting for one.
async fn upload(
    repo: &Repository,
    p: FinishedPack,
    (pending, claimed): (&Mutex<Vec<IndexPack>>, &Claimed),
    stats: &PipelineStats,
    every: (usize, usize),
) -> RepoResult<()> {
    let size = p.data.len() as u64;
    repo.put_pack(&p.id, p.data).await?;
    stats.stored_bytes.fetch_add(size, Ordering::Relaxed);
    repo.record_pack(p.id, &p.entries);
    claimed.release(&p.entries);
    let flush = {
        let mut pend = pending.lock().unwrap();
        pend.push(IndexPack {
            id: p.id,
            size,
            blobs: p.entries,
        });
        index_due(&pend, every).then(|| std::mem::take(&mut *pend))
    };
    tracing::debug!(pack = %p.id, "pack stored");
    if let Some(packs) = flush {
        repo.save_index(&IndexFile { packs }).await?;
    }
    Ok(())
}
