//! The blobs the snapshots use, gathered into the catalog's `used` table
//! (on disk) by walking every snapshot's trees once each.

use std::collections::HashSet;
use std::sync::Arc;

use super::{EngineError, EngineResult};
use crate::repo::{BlobId, BlobType, Repository, SnapshotId};

/// Trees taken from the stack at a time (their encodings and decoded trees
/// are held together: a tree of 16 k blob ids is about 1 MiB of each).
const TREES_PER_BATCH: usize = 16;
/// Blob ids gathered before they are marked (8 MiB of ids), whatever the
/// size of the trees.
const IDS_PER_MARK: usize = 1 << 18;

/// What has been marked so far: the snapshots walked and the blobs found.
#[derive(Default)]
pub struct Marked {
    snapshots: HashSet<SnapshotId>,
    pub used: u64,
}

impl Marked {
    pub fn snapshots(&self) -> u64 {
        self.snapshots.len() as u64
    }
}

/// Adds to the used set every blob of the catalog's snapshots that `m`
/// has not walked yet (all of them the first time, when the set is
/// emptied first). A snapshot forgotten since an earlier call stays
/// counted: that only keeps more. A tree that cannot be read stops the
/// prune: it cannot tell what that tree needs.
///
/// Trees are read several at a time, in batches taken from a stack of ids
/// not walked yet (so memory holds ids, and at most a batch of trees'
/// blob ids); each tree is marked before it is read, so a tree reached
/// twice is read once.
pub async fn mark(repo: &Arc<Repository>, m: &mut Marked) -> EngineResult<()> {
    if m.snapshots.is_empty() {
        repo.reset_usage().await?;
    }
    let snaps = repo.snapshots()?;
    for (sid, s) in &snaps {
        if m.snapshots.contains(sid) {
            continue;
        }
        let mut stack: Vec<BlobId> = repo.mark_used(BlobType::Tree, vec![s.tree]).await?;
        m.used += stack.len() as u64;
        while !stack.is_empty() {
            let batch = stack.split_off(stack.len().saturating_sub(TREES_PER_BATCH));
            let (mut ids, mut subtrees, mut fetched) = (Vec::new(), Vec::new(), Vec::new());
            for (id, read) in repo.fetch_trees(batch).await {
                let (tree, data) = read.map_err(|e| {
                    EngineError::Usage(format!(
                        "snapshot {}: tree {} cannot be read ({e}); prune deletes nothing while it cannot see what a snapshot needs: run `ferry check`",
                        sid.short(),
                        id.short()
                    ))
                })?;
                for node in &tree.nodes {
                    ids.extend(node.content.iter().copied());
                    subtrees.extend(node.subtree);
                }
                fetched.extend(data.map(|d| (id, d)));
                if ids.len() + subtrees.len() >= IDS_PER_MARK {
                    repo.cache_trees(std::mem::take(&mut fetched)).await?;
                    m.used += repo
                        .mark_used(BlobType::Data, std::mem::take(&mut ids))
                        .await?
                        .len() as u64;
                    let fresh = repo
                        .mark_used(BlobType::Tree, std::mem::take(&mut subtrees))
                        .await?;
                    m.used += fresh.len() as u64;
                    stack.extend(fresh);
                }
            }
            repo.cache_trees(fetched).await?;
            m.used += repo.mark_used(BlobType::Data, ids).await?.len() as u64;
            let fresh = repo.mark_used(BlobType::Tree, subtrees).await?;
            m.used += fresh.len() as u64;
            stack.extend(fresh);
        }
        m.snapshots.insert(*sid);
    }
    Ok(())
}
