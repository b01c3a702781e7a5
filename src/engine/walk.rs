//! Walking a snapshot's trees depth-first, parents before children.

use std::future::Future;
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
/// trees in memory): every entry, parents before children.
pub async fn walk_with<F, Fut>(
    load: F,
    root: BlobId,
    limit: u64,
    descend: impl Fn(&SnapPath) -> bool,
) -> EngineResult<Walk>
where
    F: Fn(BlobId) -> Fut,
    Fut: Future<Output = Result<Tree, String>>,
{
    let mut out = Walk::default();
    let mut walker = Walker::new(load, root, limit, descend);
    while let Some(step) = walker.next().await? {
        match step {
            Step::Entry(e) => out.entries.push(e),
            Step::Error(path, e) => out.errors.push((path, e)),
            Step::Leave => {}
        }
    }
    Ok(out)
}

/// One step of a [`Walker`]. (Steps are moved one at a time, never
/// stored in bulk, so the size of an entry inline costs nothing.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Step {
    /// An entry. A directory's contents follow it (when it is descended
    /// into), then a [`Step::Leave`] for it.
    Entry(Entry),
    /// The walk is done with the last directory entered and not yet left
    /// (also one it did not descend into, or whose tree is unreadable).
    Leave,
    /// A tree that could not be read (with the path of its directory), or
    /// an entry whose path is too long (left out with everything below it).
    Error(SnapPath, String),
}

/// A directory being walked: its path and the entries still to give.
struct Frame {
    path: SnapPath,
    nodes: std::vec::IntoIter<Node>,
}

/// A depth-first walk of a snapshot's trees that gives one entry at a
/// time, in the order of a sorted listing (a directory, then what is in
/// it). It holds only the trees on the path to the current entry, so its
/// memory is bounded by the path depth, not by the number of entries;
/// past `limit` entries it stops with a damage error.
pub struct Walker<F, D> {
    load: F,
    descend: D,
    limit: u64,
    /// Entries of the trees loaded so far.
    met: u64,
    root: Option<BlobId>,
    frames: Vec<Frame>,
    /// The directory entry given last, entered on the next step.
    enter: Option<(SnapPath, Option<BlobId>)>,
}

impl<F, Fut, D> Walker<F, D>
where
    F: Fn(BlobId) -> Fut,
    Fut: Future<Output = Result<Tree, String>>,
    D: Fn(&SnapPath) -> bool,
{
    /// A walk of tree `root` that descends only into directories for which
    /// `descend(path)` holds.
    pub fn new(load: F, root: BlobId, limit: u64, descend: D) -> Self {
        Walker {
            load,
            descend,
            limit,
            met: 0,
            root: Some(root),
            frames: Vec::new(),
            enter: None,
        }
    }

    /// The next step; `None` once the whole tree is walked.
    pub async fn next(&mut self) -> EngineResult<Option<Step>> {
        if let Some(root) = self.root.take() {
            if let Some(err) = self.push(root, SnapPath::root()).await? {
                return Ok(Some(err));
            }
        }
        if let Some((path, subtree)) = self.enter.take() {
            match subtree.filter(|_| (self.descend)(&path)) {
                Some(id) => {
                    if let Some(err) = self.push(id, path).await? {
                        return Ok(Some(err));
                    }
                }
                None => return Ok(Some(Step::Leave)),
            }
        }
        let Some(top) = self.frames.last_mut() else {
            return Ok(None);
        };
        let Some(node) = top.nodes.next() else {
            self.frames.pop();
            return Ok((!self.frames.is_empty()).then_some(Step::Leave));
        };
        let path = top.path.join(&node.name);
        if path.as_bytes().len() > MAX_PATH {
            return Ok(Some(Step::Error(path, path_too_long())));
        }
        if node.kind == NodeKind::Dir {
            self.enter = Some((path.clone(), node.subtree));
        }
        Ok(Some(Step::Entry(Entry { path, node })))
    }

    /// Enters the tree `id` of directory `path`; an unreadable tree is
    /// entered as an empty one and its error returned.
    async fn push(&mut self, id: BlobId, path: SnapPath) -> EngineResult<Option<Step>> {
        let (nodes, err) = match (self.load)(id).await {
            Ok(tree) => (tree.nodes, None),
            Err(e) => (Vec::new(), Some(Step::Error(path.clone(), e))),
        };
        self.met = self.met.saturating_add(nodes.len() as u64);
        if self.met > self.limit {
            return Err(EngineError::Damage(too_many_entries(self.limit)));
        }
        self.frames.push(Frame {
            path,
            nodes: nodes.into_iter(),
        });
        Ok(err)
    }
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
