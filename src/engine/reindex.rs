//! `repair index`: packs that no index object names are indexed again from
//! their own headers (each pack read whole and verified against its name
//! first), so that losing an index object never loses the data it
//! described. Like every writer, it writes index objects only for packs
//! that are durable (they are read back here).

use std::collections::HashSet;
use std::sync::Arc;

use serde::Serialize;

use super::EngineResult;
use crate::format::index::{IndexFile, IndexPack};
use crate::repo::{IndexId, PackId, Repository};

/// An index object names at most this many re-indexed packs.
const PACKS_PER_INDEX: usize = 1024;

#[derive(Debug, Clone, Serialize)]
pub struct Reindexed {
    pub pack: PackId,
    pub blobs: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Unreadable {
    pub pack: PackId,
    pub error: String,
}

#[derive(Debug, Default, Serialize)]
pub struct ReindexReport {
    pub dry_run: bool,
    /// Packs no index object named, indexed again (or, in a dry run, that
    /// would be).
    pub packs: Vec<Reindexed>,
    /// Unnamed packs that cannot be indexed: unreadable, or not matching
    /// their name or header.
    pub unreadable: Vec<Unreadable>,
    /// The index objects written.
    pub indexes: Vec<IndexId>,
}

/// Indexes again every pack that the store holds and no index names.
pub async fn repair_index(repo: &Arc<Repository>, dry_run: bool) -> EngineResult<ReindexReport> {
    let mut report = ReindexReport {
        dry_run,
        ..Default::default()
    };
    let indexed: HashSet<PackId> = repo
        .indexed_packs()
        .await?
        .into_iter()
        .map(|p| p.0)
        .collect();
    let mut unnamed: Vec<PackId> = repo
        .list_ids::<PackId>(crate::format::ObjectKind::Pack)
        .await?
        .into_iter()
        .filter(|p| !indexed.contains(p))
        .collect();
    unnamed.sort();
    let mut batch = IndexFile::default();
    for pack in unnamed {
        match read_pack(repo, pack).await {
            Ok(p) => {
                report.packs.push(Reindexed {
                    pack,
                    blobs: p.blobs.len() as u64,
                    bytes: p.size,
                });
                batch.packs.push(p);
            }
            Err(error) => {
                tracing::warn!(pack = %pack, %error, "pack not indexed");
                report.unreadable.push(Unreadable { pack, error });
            }
        }
        if batch.packs.len() >= PACKS_PER_INDEX {
            flush(repo, &mut batch, &mut report).await?;
        }
    }
    flush(repo, &mut batch, &mut report).await?;
    Ok(report)
}

/// Reads a pack and lists its blobs from its verified header.
async fn read_pack(repo: &Arc<Repository>, pack: PackId) -> Result<IndexPack, String> {
    let data = repo
        .store()
        .get(&pack.key())
        .await
        .map_err(|e| e.to_string())?;
    let r = repo.clone();
    let read = move || {
        let blobs = r.sealer().read_pack_header(&pack, &data);
        blobs.map(|blobs| IndexPack {
            id: pack,
            size: data.len() as u64,
            blobs,
        })
    };
    match tokio::task::spawn_blocking(read).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Writes the packs gathered so far as one index object (not in a dry run).
async fn flush(
    repo: &Repository,
    batch: &mut IndexFile,
    report: &mut ReindexReport,
) -> EngineResult<()> {
    let index = std::mem::take(batch);
    if index.packs.is_empty() || report.dry_run {
        return Ok(());
    }
    let id = repo.save_index(&index).await?;
    tracing::info!(index = %id, packs = index.packs.len(), "index object written");
    report.indexes.push(id);
    Ok(())
}
