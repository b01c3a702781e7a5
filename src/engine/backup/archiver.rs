//! The archiver: walks the sources depth-first, reuses the parent
//! snapshot's content for unchanged files, sends changed files to the
//! readers, and seals each directory's tree once all its entries are known.
//! Directories finish in their own tasks, so the walk never waits for them.

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::{BoxFuture, FutureExt, Shared};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::files::{FileData, Job, Outcome, Source};
use super::plan::{VDir, VEntry};
use crate::engine::progress::Progress;
use crate::engine::EngineResult;
use crate::format::blob::BlobType;
use crate::format::snapshot::Skipped;
use crate::format::tree::{Node, NodeKind, Tree};
use crate::pipeline::{Pipeline, RawBlob};
use crate::repo::{BlobId, Repository};
use crate::source::fs::{node_from_meta, NameCache};

type FileFuture = Shared<BoxFuture<'static, Option<FileData>>>;

/// The outcomes of a job's files, each taken once by its file's future.
type Outcomes = Shared<BoxFuture<'static, Option<Arc<Mutex<Vec<Option<Outcome>>>>>>>;

/// Files on their way to the readers as one job: sent once it holds
/// [`BATCH_FILES`] files or [`BATCH_BYTES`] bytes, and at the end of the
/// directory that filled it. A file's future must not be awaited before its
/// batch is sent.
struct Batch {
    sources: Vec<Source>,
    bytes: u64,
    reply: oneshot::Sender<Vec<Outcome>>,
    outcomes: Outcomes,
}

const BATCH_FILES: usize = 64;
const BATCH_BYTES: u64 = 8 << 20;

impl Batch {
    fn new() -> Self {
        let (reply, rx) = oneshot::channel::<Vec<Outcome>>();
        let outcomes = async move {
            let all = rx.await.ok()?;
            Some(Arc::new(Mutex::new(all.into_iter().map(Some).collect())))
        }
        .boxed()
        .shared();
        Batch {
            sources: Vec::new(),
            bytes: 0,
            reply,
            outcomes,
        }
    }

    fn full(&self) -> bool {
        self.sources.len() >= BATCH_FILES || self.bytes >= BATCH_BYTES
    }
}

/// A directory listing: each entry's name, path and `lstat` result.
type Listing = Vec<(Vec<u8>, PathBuf, std::io::Result<Metadata>)>;

enum Pending {
    Ready(Node),
    File(Node, FileFuture),
    Dir(JoinHandle<EngineResult<Node>>),
}

#[derive(Default)]
pub struct Counters {
    pub files_new: AtomicU64,
    pub files_changed: AtomicU64,
    pub files_unchanged: AtomicU64,
    pub dirs: AtomicU64,
    /// Entries of every tree made (each directory's children).
    pub entries: AtomicU64,
    pub total_bytes: AtomicU64,
    pub read_bytes: AtomicU64,
}

pub struct Archiver {
    pub repo: Arc<Repository>,
    pub pipe: Arc<Pipeline>,
    pub jobs: async_channel::Sender<Job>,
    pub names: NameCache,
    pub skipped: Mutex<Vec<Skipped>>,
    pub counters: Counters,
    pub progress: Arc<Progress>,
    pub excludes: globset::GlobSet,
    pub new_trees: Mutex<Vec<(BlobId, Vec<u8>)>>,
    /// See `BackupOptions::ignore_inode`.
    pub ignore_inode: bool,
    /// See `BackupOptions::source_parents` (absolute paths).
    pub source_parents: HashMap<PathBuf, BlobId>,
    hardlinks: Mutex<HashMap<(u64, u64), FileFuture>>,
    /// Subdirectories walked on tasks of their own, beside the walk that
    /// found them (at most this many at once; others are walked in line).
    walkers: Arc<tokio::sync::Semaphore>,
}

/// Whether a file can keep the parent snapshot's content unread; with
/// `ignore_inode`, by its size and mtime alone.
fn unchanged(parent: &Node, now: &Node, ignore_inode: bool) -> bool {
    parent.kind == NodeKind::File
        && parent.size == now.size
        && parent.mtime == now.mtime
        && (ignore_inode || (parent.ctime == now.ctime && parent.inode == now.inode))
}

fn lstat(path: &Path) -> std::io::Result<Metadata> {
    std::fs::symlink_metadata(path)
}

/// New trees cached in the catalog at once.
const TREE_BATCH: usize = 512;

/// Subdirectories listed ahead of the walk, per directory being walked.
const LIST_AHEAD: usize = 4;

type ListingTask = JoinHandle<std::io::Result<Listing>>;

/// Lists a directory with `lstat` of every entry, sorted by name, on a
/// blocking thread.
fn list_dir(path: PathBuf) -> ListingTask {
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for ent in std::fs::read_dir(&path)? {
            let ent = ent?;
            // Through the directory's descriptor (fstatat), without walking
            // the whole path again; never follows a symlink.
            let meta = ent.metadata();
            out.push((ent.file_name().as_bytes().to_vec(), ent.path(), meta));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    })
}

impl Archiver {
    pub fn new(
        repo: Arc<Repository>,
        pipe: Arc<Pipeline>,
        jobs: async_channel::Sender<Job>,
        progress: Arc<Progress>,
        excludes: globset::GlobSet,
    ) -> Self {
        Archiver {
            repo,
            pipe,
            jobs,
            names: NameCache::default(),
            skipped: Mutex::new(Vec::new()),
            counters: Counters::default(),
            progress,
            excludes,
            new_trees: Mutex::new(Vec::new()),
            ignore_inode: false,
            source_parents: HashMap::new(),
            hardlinks: Mutex::new(HashMap::new()),
            walkers: Arc::new(tokio::sync::Semaphore::new(
                2 * std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
        }
    }

    fn skip(&self, path: &Path, error: impl std::fmt::Display) {
        tracing::warn!(path = %path.display(), error = %error, "source entry skipped");
        self.skipped.lock().unwrap().push(Skipped {
            path: path.display().to_string(),
            error: error.to_string(),
        });
    }

    fn excluded(&self, path: &Path) -> bool {
        !self.excludes.is_empty()
            && (self.excludes.is_match(path)
                || path.file_name().is_some_and(|n| self.excludes.is_match(n)))
    }

    /// The previous snapshot's tree `id` of a directory, with its id.
    async fn parent_tree(&self, id: Option<BlobId>) -> Option<(BlobId, Tree)> {
        let id = id?;
        match self.repo.load_tree(&id).await {
            Ok(t) => Some((id, t)),
            Err(e) => {
                tracing::warn!(tree = %id, error = %e, "parent tree unreadable; reading its files again");
                None
            }
        }
    }

    /// Archives the snapshot skeleton; returns the root tree id.
    pub async fn archive_root(
        self: &Arc<Self>,
        root: VDir,
        parent_root: Option<BlobId>,
    ) -> EngineResult<BlobId> {
        let node = Node::synthetic(b"root", NodeKind::Dir, 0);
        let pending = self.clone().archive_vdir(root, node, parent_root).await?;
        let Pending::Dir(h) = pending else {
            unreachable!("a directory yields a directory")
        };
        let node = h.await??;
        Ok(node.subtree.expect("directories have subtrees"))
    }

    fn archive_vdir(
        self: Arc<Self>,
        dir: VDir,
        node: Node,
        parent: Option<BlobId>,
    ) -> BoxFuture<'static, EngineResult<Pending>> {
        async move {
            let parent = self.parent_tree(parent).await;
            let mut pending = Vec::with_capacity(dir.children.len());
            for (name, child) in dir.children {
                let pnode = parent.as_ref().and_then(|(_, t)| t.find(&name)).cloned();
                let psub = pnode.as_ref().and_then(|n| n.subtree);
                match child {
                    VEntry::Dir(sub) => {
                        let node = match sub.meta_from.as_deref().map(|p| (p, lstat(p))) {
                            Some((p, Ok(m))) if m.is_dir() => {
                                self.node(p, &name, &m, pnode.as_ref())
                            }
                            _ => Node::synthetic(&name, NodeKind::Dir, 0),
                        };
                        pending.push(self.clone().archive_vdir(sub, node, psub).await?);
                    }
                    VEntry::Source(path) => match lstat(&path) {
                        Ok(m) => {
                            // A tree given for this source stands in for
                            // the parent snapshot's entry.
                            let pnode = match self.source_parents.get(&path) {
                                Some(id) => {
                                    let mut n = Node::synthetic(&name, NodeKind::Dir, 0);
                                    n.subtree = Some(*id);
                                    Some(n)
                                }
                                None => pnode,
                            };
                            let entry = self.clone().archive_entry(path, name, m, pnode, None);
                            pending.push(entry.await?);
                        }
                        Err(e) => self.skip(&path, e),
                    },
                    VEntry::Tree(id) => {
                        let mut node = Node::synthetic(&name, NodeKind::Dir, 0);
                        node.subtree = Some(id);
                        pending.push(Pending::Ready(node));
                    }
                    VEntry::Device(path) => {
                        let fut = self.submit(Source::Device(path.clone()), path).await?;
                        let node = Node::synthetic(&name, NodeKind::File, 0);
                        self.counters.files_new.fetch_add(1, Ordering::Relaxed);
                        pending.push(Pending::File(node, fut));
                    }
                    VEntry::Bytes(data) => {
                        let mut node = Node::synthetic(&name, NodeKind::File, 0);
                        node.size = data.len() as u64;
                        let fut = self
                            .submit(Source::Bytes(data), PathBuf::from(node.name_lossy()))
                            .await?;
                        pending.push(Pending::File(node, fut));
                    }
                }
            }
            Ok(Pending::Dir(tokio::spawn(
                self.finish_dir(node, pending, parent),
            )))
        }
        .boxed()
    }

    fn node(&self, path: &Path, name: &[u8], meta: &Metadata, previous: Option<&Node>) -> Node {
        let (node, warning) = node_from_meta(path, name, meta, &self.names, previous);
        if let Some(w) = warning {
            self.skip(path, w);
        }
        node
    }

    fn archive_entry(
        self: Arc<Self>,
        path: PathBuf,
        name: Vec<u8>,
        meta: Metadata,
        parent: Option<Node>,
        listing: Option<ListingTask>,
    ) -> BoxFuture<'static, EngineResult<Pending>> {
        async move {
            let node = self.node(&path, &name, &meta, parent.as_ref());
            match node.kind {
                NodeKind::Dir => {
                    let psub = parent
                        .filter(|p| p.kind == NodeKind::Dir)
                        .and_then(|p| p.subtree);
                    self.archive_dir(path, node, psub, listing).await
                }
                NodeKind::File => self.archive_file(path, node, parent, None).await,
                _ => Ok(Pending::Ready(node)),
            }
        }
        .boxed()
    }

    async fn archive_dir(
        self: Arc<Self>,
        path: PathBuf,
        node: Node,
        parent: Option<BlobId>,
        listing: Option<ListingTask>,
    ) -> EngineResult<Pending> {
        let parent = self.parent_tree(parent).await;
        let listing = listing.unwrap_or_else(|| list_dir(path.clone())).await?;
        let entries = listing.unwrap_or_else(|e| {
            self.skip(&path, format!("listing directory: {e}"));
            Vec::new()
        });
        let entries: Vec<_> = entries
            .into_iter()
            .filter(|e| !self.excluded(&e.1))
            .collect();
        // List the next few subdirectories ahead, on other threads, while
        // this one works through the entries in order.
        let subdirs: Vec<(usize, PathBuf)> = (entries.iter().enumerate())
            .filter(|(_, e)| matches!(&e.2, Ok(m) if m.is_dir()))
            .map(|(i, e)| (i, e.1.clone()))
            .collect();
        let mut ahead: std::collections::VecDeque<(usize, ListingTask)> = Default::default();
        let mut next = 0;
        let mut batch = None;
        let mut pending = Vec::with_capacity(entries.len());
        for (i, (name, child, meta)) in entries.into_iter().enumerate() {
            while ahead.len() < LIST_AHEAD && next < subdirs.len() {
                let (j, p) = &subdirs[next];
                ahead.push_back((*j, list_dir(p.clone())));
                next += 1;
            }
            let listing = match ahead.front() {
                Some((j, _)) if *j == i => ahead.pop_front().map(|(_, t)| t),
                _ => None,
            };
            match meta {
                Ok(m) => {
                    let pnode = parent.as_ref().and_then(|(_, t)| t.find(&name)).cloned();
                    let is_dir = m.is_dir();
                    if m.is_file() {
                        let node = self.node(&child, &name, &m, pnode.as_ref());
                        let file = self
                            .clone()
                            .archive_file(child, node, pnode, Some(&mut batch));
                        pending.push(file.await?);
                        continue;
                    }
                    let walk = self.clone().archive_entry(child, name, m, pnode, listing);
                    // Sibling subtrees are walked in parallel while there are
                    // free walkers; the tree's order does not depend on it.
                    let spare = match is_dir {
                        true => self.walkers.clone().try_acquire_owned().ok(),
                        false => None,
                    };
                    pending.push(match spare {
                        Some(permit) => Pending::Dir(tokio::spawn(async move {
                            let walked = walk.await;
                            drop(permit);
                            match walked? {
                                Pending::Dir(h) => h.await?,
                                _ => unreachable!("a directory yields a directory"),
                            }
                        })),
                        None => walk.await?,
                    });
                }
                Err(e) => self.skip(&child, e),
            }
        }
        // Before any of the batch's files is awaited (in `finish_dir`).
        if let Some(b) = batch.take() {
            self.send(b).await?;
        }
        Ok(Pending::Dir(tokio::spawn(
            self.finish_dir(node, pending, parent),
        )))
    }

    /// A regular file: the parent snapshot's content when unchanged, else
    /// a future of what the readers make of it. With `batch`, the reading
    /// joins it (files of a batch size or more go on their own).
    async fn archive_file(
        self: Arc<Self>,
        path: PathBuf,
        mut node: Node,
        parent: Option<Node>,
        batch: Option<&mut Option<Batch>>,
    ) -> EngineResult<Pending> {
        self.counters
            .total_bytes
            .fetch_add(node.size, Ordering::Relaxed);
        if let Some(p) = parent
            .as_ref()
            .filter(|p| unchanged(p, &node, self.ignore_inode))
        {
            if self.repo.has_blobs(&p.content) {
                node.content = p.content.clone();
                node.extents = p.extents.clone();
                self.counters
                    .files_unchanged
                    .fetch_add(1, Ordering::Relaxed);
                self.progress.add_done(1, node.size);
                return Ok(Pending::Ready(node));
            }
        }
        let counter = if parent.is_some() {
            &self.counters.files_changed
        } else {
            &self.counters.files_new
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let link_key = (node.links > 1).then_some((node.device, node.inode));
        if let Some(k) = link_key {
            if let Some(f) = self.hardlinks.lock().unwrap().get(&k) {
                return Ok(Pending::File(node, f.clone()));
            }
        }
        let fut = match batch {
            Some(batch) if node.size < BATCH_BYTES => {
                let b = batch.get_or_insert_with(Batch::new);
                let fut = self.file_future(b.outcomes.clone(), b.sources.len(), path.clone());
                b.sources.push(Source::Path(path));
                b.bytes += node.size;
                if b.full() {
                    let full = batch.take().expect("just filled");
                    self.send(full).await?;
                }
                fut
            }
            _ => self.submit(Source::Path(path.clone()), path).await?,
        };
        if let Some(k) = link_key {
            self.hardlinks.lock().unwrap().insert(k, fut.clone());
        }
        Ok(Pending::File(node, fut))
    }

    /// Sends one source to the readers on its own.
    async fn submit(self: &Arc<Self>, source: Source, path: PathBuf) -> EngineResult<FileFuture> {
        let mut b = Batch::new();
        let fut = self.file_future(b.outcomes.clone(), 0, path);
        b.sources.push(source);
        self.send(b).await?;
        Ok(fut)
    }

    async fn send(&self, b: Batch) -> EngineResult<()> {
        let job = Job {
            sources: b.sources,
            reply: b.reply,
        };
        self.jobs
            .send(job)
            .await
            .map_err(|_| crate::pipeline::Closed)?;
        Ok(())
    }

    /// The future of the `i`th file of a batch: its content once read, or
    /// `None` when it was skipped (the reason recorded).
    fn file_future(self: &Arc<Self>, outcomes: Outcomes, i: usize, path: PathBuf) -> FileFuture {
        let this = self.clone();
        async move {
            let all = outcomes.await?;
            let outcome = all.lock().unwrap()[i].take()?;
            if let Some(w) = outcome.warning {
                this.skip(&path, w);
            }
            match outcome.data {
                Ok(d) => {
                    this.counters
                        .read_bytes
                        .fetch_add(d.size, Ordering::Relaxed);
                    this.progress.add_done(1, d.size - d.progressed);
                    Some(d)
                }
                Err(e) => {
                    this.skip(&path, e);
                    None
                }
            }
        }
        .boxed()
        .shared()
    }

    /// Gathers a directory's entries into its tree and stores the tree if
    /// it is new. `parent` is the previous snapshot's tree of the directory
    /// (id and contents): when the entries are the same, so is the tree,
    /// and it is neither encoded nor hashed again.
    async fn finish_dir(
        self: Arc<Self>,
        mut node: Node,
        pending: Vec<Pending>,
        parent: Option<(BlobId, Tree)>,
    ) -> EngineResult<Node> {
        let mut nodes = Vec::with_capacity(pending.len());
        for p in pending {
            match p {
                Pending::Ready(n) => nodes.push(n),
                Pending::File(mut n, fut) => {
                    if let Some(d) = fut.await {
                        n.content = d.content;
                        n.extents = d.extents;
                        n.size = d.size;
                        nodes.push(n);
                    }
                }
                Pending::Dir(h) => nodes.push(h.await??),
            }
        }
        if self.pipe.failed() {
            return Err(crate::pipeline::Closed.into());
        }
        (self.counters.entries).fetch_add(nodes.len() as u64, Ordering::Relaxed);
        if let Some((id, before)) = parent {
            if before.nodes == nodes && self.repo.has_blob(BlobType::Tree, &id) {
                self.counters.dirs.fetch_add(1, Ordering::Relaxed);
                node.subtree = Some(id);
                return Ok(node);
            }
        }
        let mut tree = Tree { nodes };
        let data = tree.encode();
        let id = self.repo.sealer().blob_id(&data);
        if self.pipe.claim(BlobType::Tree, &id) {
            let batch = {
                let mut t = self.new_trees.lock().unwrap();
                t.push((id, data.clone()));
                (t.len() >= TREE_BATCH).then(|| std::mem::take(&mut *t))
            };
            // Cache new trees in the catalog as they come, so that memory
            // does not grow with the number of directories.
            if let Some(batch) = batch {
                if let Err(e) = self.repo.cache_trees(batch).await {
                    tracing::warn!(error = %e, "could not cache trees in the catalog");
                }
            }
            self.pipe
                .submit(RawBlob {
                    kind: BlobType::Tree,
                    id,
                    data,
                })
                .await?;
        }
        self.counters.dirs.fetch_add(1, Ordering::Relaxed);
        node.subtree = Some(id);
        Ok(node)
    }
}
