//! The blobs the snapshots use, gathered into the catalog's `used` table
//! (on disk) by walking every snapshot's trees once each.

use std::sync::Arc;

use super::{EngineError, EngineResult};
use crate::repo::{BlobId, BlobType, Repository};

/// Fills the used set; returns the number of snapshots and used blobs. A
/// tree that cannot be read stops the prune: it cannot tell what that
/// tree needs.
pub async fn mark(repo: &Arc<Repository>) -> EngineResult<(u64, u64)> {
    repo.reset_usage().await?;
    let snaps = repo.snapshots()?;
    let mut used = 0u64;
    for (sid, s) in &snaps {
        let mut stack: Vec<BlobId> = repo.mark_used(BlobType::Tree, vec![s.tree]).await?;
        used += stack.len() as u64;
        while let Some(id) = stack.pop() {
            let tree = repo.load_tree(&id).await.map_err(|e| {
                EngineError::Usage(format!(
                    "snapshot {}: tree {} cannot be read ({e}); prune deletes nothing while it cannot see what a snapshot needs: run `ferry check`",
                    sid.short(),
                    id.short()
                ))
            })?;
            let mut ids: Vec<BlobId> = Vec::new();
            let mut subtrees: Vec<BlobId> = Vec::new();
            for node in &tree.nodes {
                ids.extend(node.content.iter().copied());
                subtrees.extend(node.subtree);
            }
            used += repo.mark_used(BlobType::Data, ids).await?.len() as u64;
            let fresh = repo.mark_used(BlobType::Tree, subtrees).await?;
            used += fresh.len() as u64;
            stack.extend(fresh);
        }
    }
    Ok((snaps.len() as u64, used))
}
