//! Copying the used blobs of mostly unused packs into new packs, verified
//! on the way, then recording them in a new index object.

use std::sync::Arc;

use super::{EngineResult, Tally};
use crate::catalog::PackUsage;
use crate::format::blob::SealedBlob;
use crate::format::index::{IndexFile, IndexPack};
use crate::format::pack::PackWriter;
use crate::repo::{RepoError, Repository};

/// Repacks `packs`; returns the new packs written. The old packs stay
/// until a later prune deletes them (the caller plans them).
pub async fn repack(repo: &Arc<Repository>, packs: &[PackUsage]) -> EngineResult<Tally> {
    let target = repo.config().pack_size as usize;
    let mut writer = PackWriter::with_capacity(target);
    let mut done: Vec<IndexPack> = Vec::new();
    let mut written = Tally::default();
    for u in packs {
        let entries = repo.used_entries(u.pack).await?;
        let data = repo.store().get(&u.pack.key()).await?;
        for e in entries {
            let range = e.offset as usize..e.offset as usize + e.length as usize;
            let sealed = data
                .get(range)
                .ok_or_else(|| RepoError::corrupt(u.pack.key(), "shorter than its index says"))?;
            // Copy only what opens and matches its id.
            repo.sealer().open_blob(&e, sealed)?;
            writer.add(SealedBlob {
                kind: e.kind,
                id: e.id,
                codec: e.codec,
                raw_length: e.raw_length,
                data: sealed.to_vec(),
            });
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

async fn store(repo: &Repository, w: PackWriter, t: &mut Tally) -> EngineResult<IndexPack> {
    let p = repo.sealer().finish_pack(w);
    let size = p.data.len() as u64;
    repo.put_pack(&p.id, p.data).await?;
    t.add(size);
    Ok(IndexPack {
        id: p.id,
        size,
        blobs: p.entries,
    })
}
