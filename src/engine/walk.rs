//! Walking a snapshot's trees depth-first, parents before children.

use std::sync::Arc;

use super::{EngineError, EngineResult};
use crate::format::tree::{Node, NodeKind, Tree};
use crate::repo::{BlobId, Repository};

pub mod snap_path;

pub use snap_path::{within, SnapPath};

/// An entry of a snapshot with its path from the snapshot root
/// (`/data/pvc-a/file`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    pub path: SnapPath,
    pub node: Node,
}

/// The result of a walk: every entry reached, and the trees that could not
/// be read (with the path they stand for).
#[derive(Debug, Default)]
pub struct Walk {
    pub entries: Vec<Entry>,
    pub errors: Vec<(SnapPath, String)>,
}

/// Normalises a user-given snapshot path (`k8s/`, `/data/x/`) to `/k8s`,
/// `/data/x`.
pub fn normalize(p: &str) -> SnapPath {
    SnapPath::normalize(p.as_bytes())
}

/// The longest path inside a snapshot, in bytes: a Linux path
/// (`PATH_MAX`), so no backup of a file system holds a longer one. Walks
/// do not descend past it, which bounds their memory by the entries met.
pub const MAX_PATH: usize = 4096;

/// Why a walk stopped: the snapshot's trees reach more entries than its
/// summary records (a damaged or hostile tree graph, such as a tree naming
/// the same subtree many times at every level).
pub fn too_many_entries(limit: u64) -> String {
    format!(
        "the snapshot's trees reach more than the {limit} entries its summary records \
         (damaged or hostile trees); stopped"
    )
}

/// Why an entry is left out: its path is longer than [`MAX_PATH`].
pub fn path_too_long() -> String {
    format!("its path is longer than the {MAX_PATH} bytes a path can have; left out with everything below it")
}

/// Walks the tree `root`, descending only into directories for which
/// `descend(path)` holds; stops with a damage error past `limit` entries
/// (see [`crate::format::snapshot::Summary::entry_limit`]).
pub async fn walk(
    repo: &Arc<Repository>,
    root: BlobId,
    limit: u64,
    descend: impl Fn(&SnapPath) -> bool,
) -> EngineResult<Walk> {
    let load = |id: BlobId| async move { repo.load_tree(&id).await.map_err(|e| e.to_string()) };
    walk_with(load, root, limit, descend).await
}

/// [`walk`] with trees from `load` (the repository, or a fuzz target's
/// trees in memory).
pub async fn walk_with<F, Fut>(
    load: F,
    root: BlobId,
    limit: u64,
    descend: impl Fn(&SnapPath) -> bool,
) -> EngineResult<Walk>
where
    F: Fn(BlobId) -> Fut,
    Fut: std::future::Future<Output = Result<Tree, String>>,
{
    let mut out = Walk::default();
    // A stack of (tree id, path); children pushed in reverse keep the order.
    let mut stack = vec![(root, SnapPath::root())];
    while let Some((id, path)) = stack.pop() {
        let tree = match load(id).await {
            Ok(t) => t,
            Err(e) => {
                out.errors.push((path, e));
                continue;
            }
        };
        if (out.entries.len() + tree.nodes.len()) as u64 > limit {
            return Err(EngineError::Damage(too_many_entries(limit)));
        }
        let mut subdirs = Vec::new();
        for node in tree.nodes {
            let p = path.join(&node.name);
            if p.as_bytes().len() > MAX_PATH {
                out.errors.push((p, path_too_long()));
                continue;
            }
            if node.kind == NodeKind::Dir {
                if let Some(sub) = node.subtree.filter(|_| descend(&p)) {
                    subdirs.push((sub, p.clone()));
                }
            }
            out.entries.push(Entry { path: p, node });
        }
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(out)
}

/// The bytes of a regular file of a snapshot (sparse holes not filled:
/// this is for small files such as Kubernetes objects).
pub async fn read_content(repo: &Repository, node: &Node) -> crate::repo::RepoResult<Vec<u8>> {
    let mut out = Vec::with_capacity(node.size as usize);
    for id in &node.content {
        out.extend_from_slice(&repo.read_blob(crate::repo::BlobType::Data, id).await?);
    }
    Ok(out)
}
