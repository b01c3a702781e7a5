//! Copying the used blobs of mostly unused packs into new packs, verified
//! on the way, then recording them in a new index object.

use std::sync::Arc;

use futures::StreamExt;

use super::{EngineError, EngineResult, Tally};
use crate::catalog::PackUsage;
use crate::format::blob::{BlobBuffers, SealedBlob};
use crate::format::index::{IndexFile, IndexPack};
use crate::format::pack::PackWriter;
use crate::repo::{RepoError, Repository};

/// Old packs read and verified ahead of the writer: one being read while
/// another is verified, on another thread.
const READ_AHEAD: usize = 2;

/// Repacks `packs`; returns the new packs written. The old packs stay
/// until a later prune deletes them (the caller plans them).
pub async fn repack(repo: &Arc<Repository>, packs: &[PackUsage]) -> EngineResult<Tally> {
    let target = repo.config().pack_size as usize;
    let mut writer = PackWriter::with_capacity(target);
    let mut done: Vec<IndexPack> = Vec::new();
    let mut written = Tally::default();
    let mut reads = futures::stream::iter(packs)
        .map(|u| used_blobs(repo, u))
        .buffered(READ_AHEAD);
    while let Some(blobs) = reads.next().await {
        for blob in blobs? {
            writer.add(blob);
            if writer.len() >= target {
                let full = std::mem::replace(&mut writer, PackWriter::with_capacity(target));
                done.push(store(repo, full, &mut written).await?);
            }
        }
    }
    if !writer.is_empty() {
        done.push(store(repo, writer, &mut written).await?);
    }
    if !done.is_empty() {
        repo.save_index(&IndexFile { packs: done }).await?;
    }
    Ok(written)
}

/// The used blobs of one pack, each checked to open and match its id
/// (only those are copied), in pack order.
async fn used_blobs(repo: &Arc<Repository>, u: &PackUsage) -> EngineResult<Vec<SealedBlob>> {
    let entries = repo.used_entries(u.pack).await?;
    let data = repo.store().get(&u.pack.key()).await?;
    let (sealer, key) = (repo.sealer().clone(), u.pack.key());
    let verify = move || -> Result<Vec<SealedBlob>, RepoError> {
        let mut bufs = BlobBuffers::default();
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let sealed = (e.offset as usize)
                .checked_add(e.length as usize)
                .and_then(|end| data.get(e.offset as usize..end))
                .ok_or_else(|| RepoError::corrupt(&key, "shorter than its index says"))?;
            sealer.open_blob_with(&e, sealed, &mut bufs)?;
            out.push(SealedBlob {
                kind: e.kind,
                id: e.id,
                codec: e.codec,
                raw_length: e.raw_length,
                data: sealed.to_vec(),
            });
        }
        Ok(out)
    };
    tokio::task::spawn_blocking(verify)
        .await
        .map_err(|e| EngineError::Usage(format!("repacking stopped: {e}")))?
        .map_err(Into::into)
}

async fn store(repo: &Repository, w: PackWriter, t: &mut Tally) -> EngineResult<IndexPack> {
    let p = repo.sealer().finish_pack(w);
    let size = p.data.len() as u64;
    repo.put_pack(&p.id, p.data).await?;
    t.count(size);
    Ok(IndexPack {
        id: p.id,
        size,
        blobs: p.entries,
    })
}
