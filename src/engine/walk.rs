//! Walking a snapshot's trees depth-first, parents before children.

use std::sync::Arc;

use crate::format::tree::{Node, NodeKind};
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

/// Walks the tree `root`, descending only into directories for which
/// `descend(path)` holds.
pub async fn walk(
    repo: &Arc<Repository>,
    root: BlobId,
    descend: impl Fn(&SnapPath) -> bool,
) -> Walk {
    let mut out = Walk::default();
    // A stack of (tree id, path); children pushed in reverse keep the order.
    let mut stack = vec![(root, SnapPath::root())];
    while let Some((id, path)) = stack.pop() {
        let tree = match repo.load_tree(&id).await {
            Ok(t) => t,
            Err(e) => {
                out.errors.push((path, e.to_string()));
                continue;
            }
        };
        let mut subdirs = Vec::new();
        for node in tree.nodes {
            let p = path.join(&node.name);
            if node.kind == NodeKind::Dir {
                if let Some(sub) = node.subtree.filter(|_| descend(&p)) {
                    subdirs.push((sub, p.clone()));
                }
            }
            out.entries.push(Entry { path: p, node });
        }
        stack.extend(subdirs.into_iter().rev());
    }
    out
}

/// The bytes of a regular file of a snapshot (sparse holes not filled:
/// this is for small files such as Kubernetes objects).
pub async fn read_content(repo: &Repository, node: &Node) -> crate::repo::RepoResult<Vec<u8>> {
    let mut out = Vec::with_capacity(node.size as usize);
    for id in &node.content {
        out.extend_from_slice(&repo.read_blob(id).await?);
    }
    Ok(out)
}
