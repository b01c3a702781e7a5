//! `ls`: the entries of a snapshot, or of one path inside it, given one at
//! a time in the order of a sorted listing (a tree's nodes are sorted by
//! name, and the walk gives a directory before what is in it), so memory
//! is bounded by the path depth, not by the size of the snapshot.

use std::sync::Arc;

use super::walk::{normalize, within, Entry, Step, Walker};
use super::{EngineError, EngineResult};
use crate::repo::{BlobId, Repository};

/// Gives `each` every entry at or below `path` (the whole snapshot when
/// `None`); returns how many it gave. A tree that cannot be read stops the
/// listing with an error naming its path, as does a path the snapshot does
/// not hold; what `each` was given before then is for the caller to drop.
pub async fn ls(
    repo: &Arc<Repository>,
    root: BlobId,
    path: Option<&str>,
    limit: u64,
    mut each: impl FnMut(&Entry) -> EngineResult<()>,
) -> EngineResult<u64> {
    let prefix = normalize(path.unwrap_or("/"));
    let load = |id: BlobId| async move { repo.load_tree(&id).await.map_err(|e| e.to_string()) };
    // Descend into directories on the way to the prefix and below it.
    let mut walker = Walker::new(load, root, limit, |p| {
        within(p, &prefix) || within(&prefix, p)
    });
    let mut given = 0;
    while let Some(step) = walker.next().await? {
        match step {
            Step::Entry(e) if within(&e.path, &prefix) => {
                each(&e)?;
                given += 1;
            }
            Step::Entry(_) | Step::Leave => {}
            Step::Error(p, e) => {
                return Err(EngineError::Usage(format!(
                    "cannot read the tree of {p}: {e}"
                )))
            }
        }
    }
    if given == 0 && !prefix.is_root() {
        return Err(EngineError::Usage(format!(
            "{prefix} is not in this snapshot"
        )));
    }
    Ok(given)
}
