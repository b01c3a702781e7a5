//! The trees of a check: every entry a snapshot reaches, walked with an
//! explicit stack (memory bounded by the path depth, never the call stack),
//! checked against the rules readers enforce. A tree found whole is
//! checked once; later paths to it only add its entry count, so a tree
//! graph naming the same subtree many times costs its size, not its paths.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::Bad;
use crate::engine::walk::{path_too_long, too_many_entries, MAX_PATH};
use crate::format::tree::{Node, NodeKind};
use crate::repo::{BlobId, BlobType, Repository};

/// A snapshot names at most this many damaged entries; the walk stops
/// after them (the check has failed; more names would only take memory).
const MAX_AFFECTED: usize = 10_000;

/// A tree found whole: the entries below it, and whether it holds hard
/// links (whose consistency is checked per snapshot).
#[derive(Clone, Copy)]
struct Clean {
    entries: u64,
    links: bool,
}

/// A directory being walked.
struct Frame {
    tree: BlobId,
    name: Vec<u8>,
    /// Bytes of the path up to and including this directory.
    path_len: usize,
    nodes: std::vec::IntoIter<Node>,
    /// Where the content blobs of the directory's files are, looked up for
    /// the whole directory at once.
    located: Located,
    entries: u64,
    dirty: bool,
    links: bool,
}

/// The type and length before compression of content blobs, `None` for
/// those the index lacks.
type Located = HashMap<BlobId, Option<(BlobType, u32)>>;

/// The index entries of every file's content in `nodes`, asked in one
/// batch.
fn locate_files(repo: &Repository, nodes: &[Node]) -> Located {
    let ids: Vec<BlobId> = nodes
        .iter()
        .filter(|n| n.kind == NodeKind::File)
        .flat_map(|n| n.content.iter().copied())
        .collect();
    ids.iter().copied().zip(repo.blob_sizes(&ids)).collect()
}

/// The first entry met for each hard-linked inode of a snapshot.
type Links = HashMap<(u64, u64), (Node, Vec<u8>)>;

pub(super) struct TreeCheck<'a> {
    repo: &'a Arc<Repository>,
    bad: &'a Bad,
    clean: HashMap<BlobId, Clean>,
    /// Trees that could not be read, with why (reported once each).
    pub tree_errors: HashMap<BlobId, String>,
}

/// One snapshot's walk.
struct Walk {
    stack: Vec<Frame>,
    links: Links,
    /// Trees with hard links already walked in this snapshot.
    seen: HashSet<BlobId>,
    total: u64,
    limit: u64,
    out: Vec<(Vec<u8>, String)>,
    /// Set once past the limit: the walk ends.
    stopped: bool,
}

impl Walk {
    /// The path of `name` in the directory on top of the stack.
    fn path(&self, name: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        for f in self.stack.iter().skip(1) {
            p.push(b'/');
            p.extend_from_slice(&f.name);
        }
        p.push(b'/');
        p.extend_from_slice(name);
        p
    }

    /// Records a problem of entry `name` of the top directory.
    fn problem(&mut self, name: &[u8], why: String) {
        let path = self.path(name);
        if let Some(top) = self.stack.last_mut() {
            top.dirty = true;
        }
        self.out.push((path, why));
    }

    /// Ends the walk: the trees reach more entries than the limit.
    fn stop(&mut self) {
        self.out.push((Vec::new(), too_many_entries(self.limit)));
        self.stopped = true;
    }

    /// Counts `n` entries; false once past the limit.
    fn count(&mut self, n: u64) -> bool {
        self.total = self.total.saturating_add(n);
        if let Some(top) = self.stack.last_mut() {
            top.entries = top.entries.saturating_add(n);
        }
        self.total <= self.limit
    }
}

impl<'a> TreeCheck<'a> {
    pub fn new(repo: &'a Arc<Repository>, bad: &'a Bad) -> Self {
        TreeCheck {
            repo,
            bad,
            clean: HashMap::new(),
            tree_errors: HashMap::new(),
        }
    }

    /// The entries of the snapshot with root `root` that cannot be restored
    /// (paths from the snapshot root, as bytes), stopping past `limit`
    /// entries.
    pub async fn snapshot(&mut self, root: BlobId, limit: u64) -> Vec<(Vec<u8>, String)> {
        let mut w = Walk {
            stack: Vec::new(),
            links: Links::new(),
            seen: HashSet::new(),
            total: 0,
            limit,
            out: Vec::new(),
            stopped: false,
        };
        match self.open(root).await {
            Ok(nodes) => w.stack.push(self.frame(root, Vec::new(), 0, nodes)),
            Err(e) => return vec![(Vec::new(), e)],
        }
        while !w.stack.is_empty() && !w.stopped {
            if w.out.len() >= MAX_AFFECTED {
                let more =
                    format!("more than {MAX_AFFECTED} damaged entries; the rest are not named");
                w.out.push((Vec::new(), more));
                break;
            }
            let next = w.stack.last_mut().and_then(|f| f.nodes.next());
            let Some(node) = next else {
                self.finish(&mut w);
                continue;
            };
            match w.count(1) {
                true => self.entry(&mut w, node).await,
                false => w.stop(),
            }
        }
        w.out
    }

    /// Pops the finished directory on top, adding what it found to its
    /// parent's.
    fn finish(&mut self, w: &mut Walk) {
        let Some(f) = w.stack.pop() else { return };
        if !f.dirty {
            let c = Clean {
                entries: f.entries,
                links: f.links,
            };
            self.clean.insert(f.tree, c);
            if f.links {
                w.seen.insert(f.tree);
            }
        }
        if let Some(p) = w.stack.last_mut() {
            p.entries = p.entries.saturating_add(f.entries);
            p.dirty |= f.dirty;
            p.links |= f.links;
        }
    }

    /// Checks one entry of the directory on top; descends into a directory.
    async fn entry(&mut self, w: &mut Walk, node: Node) {
        let top = w.stack.last().expect("an entry has a directory");
        let path_len = top.path_len + 1 + node.name.len();
        if path_len > MAX_PATH {
            return w.problem(&node.name, path_too_long());
        }
        match node.kind {
            NodeKind::File => self.file(w, &node),
            NodeKind::Dir => self.dir(w, node, path_len).await,
            _ => {}
        }
    }

    fn file(&self, w: &mut Walk, node: &Node) {
        let top = w.stack.last().expect("an entry has a directory");
        let located: Vec<_> = node
            .content
            .iter()
            .map(|id| top.located.get(id).copied().flatten())
            .collect();
        if let Some(why) = file_problem(&located, self.bad, node) {
            return w.problem(&node.name, why);
        }
        if node.links <= 1 || node.inode == 0 {
            return;
        }
        if let Some(top) = w.stack.last_mut() {
            top.links = true;
        }
        let key = (node.device, node.inode);
        match w.links.get(&key) {
            Some((first, _)) if first.same_content(node) => {}
            Some((_, path)) => {
                let why = format!(
                    "claims to be the same hard link (device {}, inode {}) as {} but its content differs",
                    key.0,
                    key.1,
                    crate::engine::walk::SnapPath::normalize(path)
                );
                w.problem(&node.name, why)
            }
            None => {
                let path = w.path(&node.name);
                let mut first = node.clone();
                first.xattrs.clear();
                w.links.insert(key, (first, path));
            }
        }
    }

    async fn dir(&mut self, w: &mut Walk, node: Node, path_len: usize) {
        let Some(sub) = node.subtree else { return };
        if let Some((_, e)) = self.repo.locate_blob(BlobType::Tree, &sub) {
            if e.kind != BlobType::Tree {
                let why = format!("its subtree {} names a data blob, not a tree", sub.short());
                return w.problem(&node.name, why);
            }
        }
        if let Some(c) = self.clean.get(&sub).copied() {
            if !c.links || w.seen.contains(&sub) {
                if !w.count(c.entries) {
                    w.stop();
                }
                return;
            }
        }
        match self.open(sub).await {
            Ok(nodes) => w.stack.push(self.frame(sub, node.name, path_len, nodes)),
            Err(e) => w.problem(&node.name, e),
        }
    }

    fn frame(&self, tree: BlobId, name: Vec<u8>, path_len: usize, nodes: Vec<Node>) -> Frame {
        Frame {
            tree,
            name,
            path_len,
            located: locate_files(self.repo, &nodes),
            nodes: nodes.into_iter(),
            entries: 0,
            dirty: false,
            links: false,
        }
    }

    /// A tree's entries, or why it cannot be read.
    async fn open(&mut self, tree: BlobId) -> Result<Vec<Node>, String> {
        let unreadable =
            |e: &str| format!("directory listing (tree {}) unreadable: {e}", tree.short());
        if let Some(e) = self.bad.get(&tree).or(self.tree_errors.get(&tree)) {
            return Err(unreadable(e));
        }
        match self.repo.load_tree(&tree).await {
            Ok(t) => Ok(t.nodes),
            Err(e) => {
                let e = e.to_string();
                self.tree_errors.insert(tree, e.clone());
                Err(unreadable(&e))
            }
        }
    }
}

/// Why a regular file cannot be restored as recorded: a content blob that
/// is unreadable, missing from the index or a tree; sparse extents that
/// break the rules; or blobs that do not add up to the recorded size.
/// `located` holds the type and length of each content blob, in order.
pub(crate) fn file_problem(
    located: &[Option<(BlobType, u32)>],
    bad: &Bad,
    node: &Node,
) -> Option<String> {
    let expected = match node.data_length() {
        Ok(n) => n,
        Err(e) => return Some(e),
    };
    let mut sum = 0u64;
    for (id, loc) in node.content.iter().zip(located) {
        if let Some(r) = bad.get(id) {
            return Some(format!("blob {}: {r}", id.short()));
        }
        let Some((kind, raw_length)) = loc else {
            return Some(format!("blob {} is not in the index", id.short()));
        };
        if *kind != BlobType::Data {
            return Some(format!(
                "its content names tree blob {}, not data",
                id.short()
            ));
        }
        sum = sum.saturating_add(*raw_length as u64);
    }
    (sum != expected)
        .then(|| format!("the snapshot records {expected} bytes of data but its blobs hold {sum}"))
}
