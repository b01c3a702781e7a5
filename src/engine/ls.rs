//! `ls`: the entries of a snapshot, or of one path inside it.

use std::sync::Arc;

use super::walk::{normalize, walk, within, Entry};
use super::{EngineError, EngineResult};
use crate::repo::{BlobId, Repository};

/// Sorts paths component by component, as a directory listing reads.
pub fn sort_entries(entries: &mut [Entry]) {
    entries.sort_by_cached_key(|e| e.path.sort_key());
}

pub async fn ls(
    repo: &Arc<Repository>,
    root: BlobId,
    path: Option<&str>,
    limit: u64,
) -> EngineResult<Vec<Entry>> {
    let prefix = normalize(path.unwrap_or("/"));
    // Descend into directories on the way to the prefix and below it.
    let w = walk(repo, root, limit, |p| {
        within(p, &prefix) || within(&prefix, p)
    })
    .await?;
    if let Some((p, e)) = w.errors.first() {
        return Err(EngineError::Usage(format!(
            "cannot read the tree of {p}: {e}"
        )));
    }
    let mut entries: Vec<Entry> = w
        .entries
        .into_iter()
        .filter(|e| within(&e.path, &prefix))
        .collect();
    if entries.is_empty() && !prefix.is_root() {
        return Err(EngineError::Usage(format!(
            "{prefix} is not in this snapshot"
        )));
    }
    sort_entries(&mut entries);
    Ok(entries)
}
