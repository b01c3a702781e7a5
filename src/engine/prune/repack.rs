//! Copying the used blobs of mostly unused packs into new packs, verified
//! on the way, then recording them in a new index object.
//!
//! Three stages overlap: old packs are read and their used blobs verified
//! on blocking threads ([`READ_AHEAD`] packs ahead), their sealed bytes are
//! copied into the pack being filled, and a full pack is sealed and stored
//! by a task of its own while the next one fills.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::FuturesOrdered;
use futures::StreamExt;
use tokio::task::JoinHandle;

use super::{EngineError, EngineResult, Tally};
use crate::catalog::PackUsage;
use crate::format::blob::{BlobBuffers, BlobEntry};
use crate::format::index::{IndexFile, IndexPack};
use crate::format::pack::PackWriter;
use crate::repo::{RepoError, Repository};

/// Old packs read and verified ahead of the writer: one being read while
/// another is verified, on another thread.
const READ_AHEAD: usize = 2;

/// An old pack's bytes and the entries of its used blobs, each verified.
struct Verified {
    data: Bytes,
    used: Vec<BlobEntry>,
}

/// Repacks `packs`; returns the new packs written. The old packs stay
/// until a later prune deletes them (the caller plans them).
pub async fn repack(repo: &Arc<Repository>, packs: &[PackUsage]) -> EngineResult<Tally> {
    let target = repo.config().pack_size as usize;
    let mut writer = PackWriter::with_capacity(target);
    let mut done: Vec<IndexPack> = Vec::new();
    let mut written = Tally::default();
    let mut storing: Option<JoinHandle<EngineResult<IndexPack>>> = None;
    let mut queue = packs.iter();
    let mut reads = FuturesOrdered::new();
    for u in queue.by_ref().take(READ_AHEAD) {
        reads.push_back(tokio::spawn(used_blobs(repo.clone(), *u)));
    }
    while let Some(read) = reads.next().await {
        if let Some(u) = queue.next() {
            reads.push_back(tokio::spawn(used_blobs(repo.clone(), *u)));
        }
        let pack = read.map_err(stopped)??;
        for e in &pack.used {
            writer.add_copy(e, &pack.data[e.offset as usize..][..e.length as usize]);
            if writer.len() >= target {
                let full = std::mem::replace(&mut writer, PackWriter::with_capacity(target));
                if let Some(prev) = storing.replace(tokio::spawn(store(repo.clone(), full))) {
                    done.push(stored(prev, &mut written).await?);
                }
            }
        }
    }
    if let Some(prev) = storing.take() {
        done.push(stored(prev, &mut written).await?);
    }
    if !writer.is_empty() {
        let last = store(repo.clone(), writer).await?;
        written.count(last.size);
        done.push(last);
    }
    if !done.is_empty() {
        repo.save_index(&IndexFile { packs: done }).await?;
    }
    Ok(written)
}

fn stopped(e: tokio::task::JoinError) -> EngineError {
    EngineError::Usage(format!("repacking stopped: {e}"))
}

/// The used blobs of one pack, each checked to open and match its id
/// (only those are copied), in pack order.
async fn used_blobs(repo: Arc<Repository>, u: PackUsage) -> EngineResult<Verified> {
    let used = repo.used_entries(u.pack).await?;
    let data = repo.store().get(&u.pack.key()).await?;
    let (sealer, key) = (repo.sealer().clone(), u.pack.key());
    let verify = move || -> Result<Verified, RepoError> {
        let mut bufs = BlobBuffers::default();
        for e in &used {
            let sealed = (e.offset as usize)
                .checked_add(e.length as usize)
                .and_then(|end| data.get(e.offset as usize..end))
                .ok_or_else(|| RepoError::corrupt(&key, "shorter than its index says"))?;
            sealer.open_blob_with(e, sealed, &mut bufs)?;
        }
        Ok(Verified { data, used })
    };
    tokio::task::spawn_blocking(verify)
        .await
        .map_err(stopped)?
        .map_err(Into::into)
}

/// Seals and stores a full pack.
async fn store(repo: Arc<Repository>, w: PackWriter) -> EngineResult<IndexPack> {
    let sealer = repo.sealer().clone();
    let p = tokio::task::spawn_blocking(move || sealer.finish_pack(w))
        .await
        .map_err(stopped)?;
    let size = p.data.len() as u64;
    repo.put_pack(&p.id, p.data).await?;
    Ok(IndexPack {
        id: p.id,
        size,
        blobs: p.entries,
    })
}

/// Waits for a pack being stored and counts it.
async fn stored(
    task: JoinHandle<EngineResult<IndexPack>>,
    written: &mut Tally,
) -> EngineResult<IndexPack> {
    let p = task.await.map_err(stopped)??;
    written.count(p.size);
    Ok(p)
}
