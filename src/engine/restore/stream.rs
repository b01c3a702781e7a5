//! The writing pass of a restore: the snapshot's trees are walked once,
//! and each entry is acted on as the walk meets it. Directories are made at
//! once; regular files are planned (their blobs located) and added to a
//! batch whose reads, grouped by pack, go to the file workers as soon as it
//! is full; hard links wait for their first file; special files and
//! symlinks, and then directory metadata, come when their directory is
//! done (see [`super::dirs`]). Memory is bounded by the path depth, the
//! batch being planned and the reads in flight, not by the snapshot.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::dirs::{DirState, Shared};
use super::files::{plan, Batch, FileState, Job, Link};
use super::select::{Event, Patterns, Selection};
use super::{meta, Failure, RestoreReport};
use crate::engine::progress::Progress;
use crate::engine::walk::{Entry, SnapPath, Walker};
use crate::engine::EngineResult;
use crate::format::blob::BlobBuffers;
use crate::format::tree::NodeKind;
use crate::repo::{BlobId, Repository};

/// The snapshot tree `root`, selected by `patterns`, into `target` (an
/// existing directory).
pub async fn restore_tree(
    repo: &Arc<Repository>,
    (root, limit): (BlobId, u64),
    patterns: &Patterns,
    target: &Path,
    overwrite: bool,
    progress: &Progress,
) -> EngineResult<RestoreReport> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .max(2)
        * 2;
    let sh = Shared {
        repo,
        rt: tokio::runtime::Handle::current(),
        overwrite,
        progress,
        report: Mutex::default(),
    };
    // The workers block on I/O, and so does the walk between its trees;
    // this task waits for them without holding up the runtime's others.
    let walked = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let (job_tx, job_rx) = async_channel::bounded::<Job>(workers);
            for _ in 0..workers {
                let (rx, sh) = (job_rx.clone(), &sh);
                scope.spawn(move || {
                    let mut bufs = BlobBuffers::default();
                    while let Ok(job) = rx.recv_blocking() {
                        sh.run(job, &mut bufs);
                    }
                });
            }
            let mut w = Writer {
                sh: &sh,
                target,
                dirs: vec![Some(DirState::target(target.to_path_buf()))],
                links: HashMap::new(),
                batch: Batch::default(),
                jobs: job_tx,
            };
            let walked = w.walk(root, limit, patterns);
            w.end();
            walked
        })
    });
    walked?;
    Ok(sh.report.into_inner().unwrap())
}

/// The walk's side of the restore.
struct Writer<'s, 'a> {
    sh: &'s Shared<'a>,
    target: &'s Path,
    /// The directories the walk is in, from the target down; `None` for
    /// one that could not be made (nothing below it is restored).
    dirs: Vec<Option<Arc<DirState>>>,
    /// Hard-linked inodes met, by (device, inode): the first file, and how
    /// many of its links were seen (forgotten once all were).
    links: HashMap<(u64, u64), (Arc<FileState>, u64)>,
    batch: Batch,
    jobs: async_channel::Sender<Job>,
}

impl Writer<'_, '_> {
    fn walk(&mut self, root: BlobId, limit: u64, patterns: &Patterns) -> EngineResult<()> {
        let repo = self.sh.repo;
        let load = |id: BlobId| async move { repo.load_tree(&id).await.map_err(|e| e.to_string()) };
        let mut walker = Walker::new(load, root, limit, |p: &SnapPath| !patterns.excluded(p));
        let mut selection = Selection::new(patterns);
        let mut events = Vec::new();
        let rt = self.sh.rt.clone();
        while let Some(step) = rt.block_on(walker.next())? {
            selection.feed(step, &mut events);
            for event in events.drain(..) {
                self.event(event);
            }
        }
        Ok(())
    }

    /// Sends the last batch, leaves the directories still open (all of
    /// them after a complete walk) and lets the workers stop.
    fn end(&mut self) {
        self.flush();
        while let Some(dir) = self.dirs.pop() {
            if let Some(dir) = dir {
                dir.release(self.sh);
            }
        }
        self.jobs.close();
    }

    fn flush(&mut self) {
        for job in std::mem::take(&mut self.batch).into_jobs() {
            if self.jobs.send_blocking(job).is_err() {
                break;
            }
        }
    }

    fn fail(&self, path: SnapPath, error: String) {
        self.sh
            .report
            .lock()
            .unwrap()
            .failed
            .push(Failure { path, error });
    }

    fn event(&mut self, event: Event) {
        let parent = self.dirs.last().cloned().flatten();
        match event {
            Event::Dir(e) => self.dir(parent, e),
            Event::Leave => {
                if let Some(Some(dir)) = self.dirs.pop() {
                    dir.release(self.sh);
                }
            }
            Event::Item(e) => match (parent, e.node.kind) {
                (None, _) => {}
                (Some(parent), NodeKind::File) => self.file(&parent, e),
                (Some(parent), _) => parent.add_special(e),
            },
            Event::Unreadable(path, error) => self.fail(path, super::unreadable(error)),
        }
    }

    fn dir(&mut self, parent: Option<Arc<DirState>>, e: Entry) {
        let Some(parent) = parent else {
            self.dirs.push(None);
            return;
        };
        let path = child_path(&parent, &e);
        match meta::make_dir(self.target, &path, self.sh.overwrite) {
            Ok(()) => {
                self.sh.report.lock().unwrap().dirs += 1;
                self.dirs.push(Some(DirState::child(&parent, path, e)));
            }
            Err(error) => {
                self.fail(e.path, error);
                self.dirs.push(None);
            }
        }
    }

    fn file(&mut self, parent: &Arc<DirState>, e: Entry) {
        let path = child_path(parent, &e);
        let inode =
            (e.node.links > 1 && e.node.inode != 0).then_some((e.node.device, e.node.inode));
        if let Some(key) = inode {
            if let Some((first, seen)) = self.links.get_mut(&key) {
                if first.node().same_content(&e.node) {
                    *seen += 1;
                    let first = first.clone();
                    if *seen >= e.node.links {
                        self.links.remove(&key);
                    }
                    first.add_link(self.sh, Link::new(path, e.path, parent));
                    return;
                }
                let error = format!(
                    "claims to be a hard link of {} but its content differs; restored as a file of its own",
                    first.snap_path()
                );
                self.sh.report.lock().unwrap().warnings.push(Failure {
                    path: e.path.clone(),
                    error,
                });
            }
        }
        let file = FileState::new(path, e, parent);
        if let Some(key) = inode {
            self.links.entry(key).or_insert_with(|| (file.clone(), 1));
        }
        match plan(self.sh.repo, file.node()) {
            Err(error) => {
                file.fail(error);
                file.written(self.sh, 0, None);
            }
            // Empty files (and sparse ones that are all hole) are made here.
            Ok(blobs) if blobs.is_empty() => file.written(self.sh, 0, None),
            Ok(blobs) => {
                self.batch.add(&file, blobs);
                if self.batch.is_full() {
                    self.flush();
                }
            }
        }
    }
}

/// The target path of entry `e` of directory `parent`.
fn child_path(parent: &DirState, e: &Entry) -> PathBuf {
    parent.path().join(OsStr::from_bytes(e.path.file_name()))
}
