//! The blobs the snapshots use, gathered into the catalog's `used` table
//! (on disk) by walking every snapshot's trees once each.

use std::collections::HashSet;
use std::sync::Arc;

use super::{EngineError, EngineResult};
use crate::repo::{BlobId, BlobType, FetchedTree, Repository, SnapshotId};

/// Trees taken from the stack at a time (their encodings and decoded trees
/// are held together: a tree of 16 k blob ids is about 1 MiB of each), and
/// batches read ahead of the one being marked.
const TREES_PER_BATCH: usize = 16;
const BATCHES_AHEAD: usize = 2;
/// Batches are read [`BATCHES_AHEAD`] ahead after one that held at most
/// this (a source tree's directories hold a few dozen entries); after a
/// larger one, one batch (16 trees of 16 k blob ids each hold about 10 MiB
/// decoded).
const AHEAD_BYTES: usize = 4 << 20;
/// Blob ids gathered before they are marked (8 MiB of ids of each type),
/// whatever the size of the trees.
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
/// not walked yet (so memory holds ids, and at most 1 + [`BATCHES_AHEAD`]
/// batches of small trees, or two of large ones); each tree is marked
/// before it is read, so a tree reached twice is read once. The next batches are read and
/// decoded while one is marked: every id on the stack is marked already,
/// so taking it early changes nothing but the order. Data blob ids steer
/// nothing: they are gathered over many batches and marked in id order.
pub async fn mark(repo: &Arc<Repository>, m: &mut Marked) -> EngineResult<()> {
    if m.snapshots.is_empty() {
        repo.reset_usage().await?;
    }
    let snaps = repo.snapshots()?;
    let mut data: Vec<BlobId> = Vec::new();
    for (sid, s) in &snaps {
        if m.snapshots.contains(sid) {
            continue;
        }
        let mut stack: Vec<BlobId> = repo.mark_used(BlobType::Tree, vec![s.tree]).await?;
        m.used += stack.len() as u64;
        let mut ahead = std::collections::VecDeque::new();
        fetch_ahead(repo, &mut stack, &mut ahead, 1);
        while let Some(reading) = ahead.pop_front() {
            let read = reading
                .await
                .map_err(|e| EngineError::Usage(format!("reading trees stopped: {e}")))?;
            let depth = match batch_bytes(&read) <= AHEAD_BYTES {
                true => BATCHES_AHEAD,
                false => 1,
            };
            fetch_ahead(repo, &mut stack, &mut ahead, depth);
            let (mut subtrees, mut fetched) = (Vec::new(), Vec::new());
            for (id, read) in read {
                let (tree, encoded) = read.map_err(|e| {
                    EngineError::Usage(format!(
                        "snapshot {}: tree {} cannot be read ({e}); prune deletes nothing while it cannot see what a snapshot needs: run `ferry check`",
                        sid.short(),
                        id.short()
                    ))
                })?;
                for node in &tree.nodes {
                    data.extend(node.content.iter().copied());
                    subtrees.extend(node.subtree);
                }
                fetched.extend(encoded.map(|d| (id, d)));
                if data.len() >= IDS_PER_MARK {
                    m.used += mark_data(repo, &mut data).await?;
                }
                if subtrees.len() >= IDS_PER_MARK {
                    repo.cache_trees(std::mem::take(&mut fetched)).await?;
                    let fresh = repo
                        .mark_used(BlobType::Tree, std::mem::take(&mut subtrees))
                        .await?;
                    m.used += fresh.len() as u64;
                    stack.extend(fresh);
                }
            }
            repo.cache_trees(fetched).await?;
            let fresh = repo.mark_used(BlobType::Tree, subtrees).await?;
            m.used += fresh.len() as u64;
            stack.extend(fresh);
            fetch_ahead(repo, &mut stack, &mut ahead, depth);
        }
        m.snapshots.insert(*sid);
    }
    m.used += mark_data(repo, &mut data).await?;
    Ok(())
}

/// Marks the data blob ids gathered, in id order (neighbouring rows of the
/// used table), and empties `data`; returns how many were new.
async fn mark_data(repo: &Repository, data: &mut Vec<BlobId>) -> EngineResult<u64> {
    if data.is_empty() {
        return Ok(0);
    }
    let mut ids = std::mem::take(data);
    ids.sort_unstable();
    ids.dedup();
    Ok(repo.mark_used(BlobType::Data, ids).await?.len() as u64)
}

/// About how many bytes a batch of trees holds: their nodes, content ids
/// and encodings.
fn batch_bytes(read: &[FetchedTree]) -> usize {
    let node = std::mem::size_of::<crate::format::tree::Node>();
    let id = std::mem::size_of::<BlobId>();
    read.iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .map(|(tree, encoded)| {
            let ids: usize = tree.nodes.iter().map(|n| n.content.len()).sum();
            tree.nodes.len() * node + ids * id + encoded.as_ref().map_or(0, Vec::len)
        })
        .sum()
}

/// Starts reading batches of trees from the top of `stack` until `depth`
/// are being read or the stack is empty.
fn fetch_ahead(repo: &Arc<Repository>, stack: &mut Vec<BlobId>, ahead: &mut Reading, depth: usize) {
    while ahead.len() < depth && !stack.is_empty() {
        let batch = stack.split_off(stack.len().saturating_sub(TREES_PER_BATCH));
        let repo = repo.clone();
        ahead.push_back(tokio::spawn(async move { repo.fetch_trees(batch).await }));
    }
}

type Reading = std::collections::VecDeque<tokio::task::JoinHandle<Vec<FetchedTree>>>;
