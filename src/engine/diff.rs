//! `diff`: what changed between two snapshots, skipping identical subtrees.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::walk::{normalize, within, SnapPath};
use super::{EngineError, EngineResult};
use crate::format::tree::{Node, NodeKind};
use crate::repo::{BlobId, Repository};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Removed,
    /// Content differs.
    Modified,
    /// Only metadata (mode, owner, times, xattrs, link target) differs.
    Metadata,
    /// The entry's type changed (file became a directory, ...).
    Type,
}

impl Change {
    pub fn symbol(&self) -> &'static str {
        match self {
            Change::Added => "+",
            Change::Removed => "-",
            Change::Modified => "M",
            Change::Metadata => "U",
            Change::Type => "T",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DiffEntry {
    pub path: SnapPath,
    pub change: Change,
}

fn compare(a: &Node, b: &Node) -> Option<Change> {
    if a.kind != b.kind {
        return Some(Change::Type);
    }
    if a.kind == NodeKind::File
        && (a.content != b.content || a.size != b.size || a.extents != b.extents)
    {
        return Some(Change::Modified);
    }
    let meta = a.mode != b.mode
        || a.uid != b.uid
        || a.gid != b.gid
        || a.mtime != b.mtime
        || a.xattrs != b.xattrs
        || a.target != b.target
        || a.rdev != b.rdev;
    (meta && a.kind != NodeKind::Dir).then_some(Change::Metadata)
}

/// The changes from tree `a` to tree `b` below `path`, in path order.
/// Trees are walked with an explicit stack (any depth); past `limit`
/// entries (the snapshots' entry limits together) the diff stops with a
/// damage error.
pub async fn diff(
    repo: &Arc<Repository>,
    (a, b): (BlobId, BlobId),
    path: Option<&str>,
    limit: u64,
) -> EngineResult<Vec<DiffEntry>> {
    let prefix = normalize(path.unwrap_or("/"));
    let mut out = Vec::new();
    let mut stack = vec![(Some(a), Some(b), SnapPath::root())];
    let mut met = 0u64;
    while let Some((a, b, path)) = stack.pop() {
        if a == b || !(within(&path, &prefix) || within(&prefix, &path)) {
            continue;
        }
        let both = pair(repo, a, b).await?;
        met = met.saturating_add(both.len() as u64);
        if met > limit {
            return Err(EngineError::Damage(super::walk::too_many_entries(limit)));
        }
        for (name, (x, y)) in both {
            let p = path.join(&name);
            if p.as_bytes().len() > super::walk::MAX_PATH {
                return Err(EngineError::Damage(format!(
                    "{p}: {}",
                    super::walk::path_too_long()
                )));
            }
            let change = match (&x, &y) {
                (None, Some(_)) => Some(Change::Added),
                (Some(_), None) => Some(Change::Removed),
                (Some(x), Some(y)) => compare(x, y),
                (None, None) => None,
            };
            if let Some(change) = change.filter(|_| within(&p, &prefix)) {
                out.push(DiffEntry {
                    path: p.clone(),
                    change,
                });
            }
            let sub = |n: &Option<Node>| n.as_ref().and_then(|n| n.subtree);
            if sub(&x).is_some() || sub(&y).is_some() {
                stack.push((sub(&x), sub(&y), p));
            }
        }
    }
    out.sort_by_cached_key(|e| e.path.sort_key());
    Ok(out)
}

/// The entries of two trees (either may be absent) by name.
async fn pair(repo: &Arc<Repository>, a: Option<BlobId>, b: Option<BlobId>) -> EngineResult<Both> {
    let load = |id: Option<BlobId>| async move {
        match id {
            Some(id) => repo.load_tree(&id).await.map(|t| t.nodes),
            None => Ok(Vec::new()),
        }
    };
    let mut both = Both::new();
    for n in load(a).await? {
        let k = n.name.clone();
        both.entry(k).or_default().0 = Some(n);
    }
    for n in load(b).await? {
        let k = n.name.clone();
        both.entry(k).or_default().1 = Some(n);
    }
    Ok(both)
}

type Both = BTreeMap<Vec<u8>, (Option<Node>, Option<Node>)>;
