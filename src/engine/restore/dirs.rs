//! Directories of a streaming restore. A directory is made when the walk
//! reaches it; its special files and symlinks are made, and then its own
//! metadata applied, once everything in it is done: the walk has left it,
//! and every file, hard link and subdirectory in it is finished. So its
//! times are set after the last write into it, and its mode (which may
//! forbid writing) after the last entry below it, as a restore that
//! finishes directories deepest first does, and only the directories on
//! the way to the walk's position or with files in flight are held.

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::{meta, Failure, RestoreReport};
use crate::engine::progress::Progress;
use crate::engine::walk::Entry;
use crate::format::tree::NodeKind;
use crate::repo::Repository;

/// What the walk and the file workers of one restore share.
pub struct Shared<'a> {
    pub repo: &'a Repository,
    pub rt: tokio::runtime::Handle,
    pub overwrite: bool,
    pub progress: &'a Progress,
    /// The counts and outcomes so far.
    pub report: Mutex<RestoreReport>,
}

/// A directory made by the restore (or the target itself).
pub struct DirState {
    path: PathBuf,
    /// Its entry; `None` for the target.
    entry: Option<Entry>,
    /// What it still waits for: the walk (until it leaves it), and each
    /// file, hard link and subdirectory in it not finished yet.
    pending: AtomicUsize,
    parent: Option<Arc<DirState>>,
    /// Its special files and symlinks, made last.
    specials: Mutex<Vec<Entry>>,
}

impl DirState {
    /// The target directory, held by the walk.
    pub fn target(path: PathBuf) -> Arc<Self> {
        Arc::new(DirState {
            path,
            entry: None,
            pending: AtomicUsize::new(1),
            parent: None,
            specials: Mutex::default(),
        })
    }

    /// A directory made at `path` inside `parent`, held by the walk.
    pub fn child(parent: &Arc<DirState>, path: PathBuf, entry: Entry) -> Arc<Self> {
        parent.hold();
        Arc::new(DirState {
            path,
            entry: Some(entry),
            pending: AtomicUsize::new(1),
            parent: Some(parent.clone()),
            specials: Mutex::default(),
        })
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// One more thing for this directory to wait for.
    pub fn hold(&self) {
        self.pending.fetch_add(1, Ordering::AcqRel);
    }

    /// A special file or symlink to make in this directory at its end.
    pub fn add_special(&self, e: Entry) {
        self.specials.lock().unwrap().push(e);
    }

    /// One thing this directory waited for is done; after the last, the
    /// directory is finished, and so on up.
    pub fn release(self: &Arc<Self>, sh: &Shared) {
        let mut dir = self.clone();
        loop {
            if dir.pending.fetch_sub(1, Ordering::AcqRel) != 1 {
                return;
            }
            dir.finish(sh);
            match dir.parent.clone() {
                Some(parent) => dir = parent,
                None => return,
            }
        }
    }

    /// Special files, then symlinks (so that no path this restore creates
    /// leads through one), then the directory's own metadata.
    fn finish(&self, sh: &Shared) {
        let mut specials = std::mem::take(&mut *self.specials.lock().unwrap());
        specials.sort_by_key(|e| e.node.kind == NodeKind::Symlink);
        let (mut others, mut failed, mut warnings) = (0, Vec::new(), Vec::new());
        for e in specials {
            let dst = self
                .path
                .join(std::ffi::OsStr::from_bytes(e.path.file_name()));
            match meta::make_special(&dst, &e.node, sh.overwrite) {
                Ok(()) => {
                    others += 1;
                    meta::apply(&dst, &e.node, &e.path, &mut warnings);
                }
                Err(error) => failed.push(Failure {
                    path: e.path.clone(),
                    error,
                }),
            }
        }
        if let Some(e) = &self.entry {
            meta::apply(&self.path, &e.node, &e.path, &mut warnings);
        }
        let mut report = sh.report.lock().unwrap();
        report.others += others;
        report.failed.extend(failed);
        report.warnings.extend(warnings);
    }
}
