//! `restore`: a snapshot (or part of it) into a target directory. Nothing is
//! written outside the target: names come from validated trees only, every
//! directory on the way is checked to be a real directory (never a
//! symlink), and the symlinks of a directory are created last, once
//! everything below it is done.

mod dirs;
mod files;
mod meta;
mod select;
mod stream;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use select::{Event, Patterns, Selection};

use super::walk::{Entry, SnapPath, Walker};
use super::{EngineError, EngineResult};
use crate::engine::progress::Progress;
use crate::format::tree::NodeKind;
use crate::repo::{BlobId, Repository};

#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    pub target: PathBuf,
    /// Glob patterns; when given, only matching entries (and everything
    /// below matching directories) are restored.
    pub includes: Vec<String>,
    pub excludes: Vec<String>,
    pub dry_run: bool,
    pub overwrite: bool,
    /// The most entries the snapshot may hold (its summary's
    /// [`entry_limit`](crate::format::snapshot::Summary::entry_limit));
    /// a walk meeting more stops with a damage error. `None`: no limit.
    pub max_entries: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Failure {
    pub path: SnapPath,
    pub error: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreReport {
    pub dry_run: bool,
    pub files: u64,
    pub dirs: u64,
    pub others: u64,
    pub bytes: u64,
    /// Entries that could not be restored, with the reason.
    pub failed: Vec<Failure>,
    /// Warnings that did not stop an entry (ownership, xattrs, device nodes).
    pub warnings: Vec<Failure>,
    /// In a dry run, the paths that would be written.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub planned: Vec<SnapPath>,
}

/// The target path of a snapshot path (made of validated names).
pub(crate) fn target_path(target: &Path, path: &SnapPath) -> PathBuf {
    path.under(target)
}

/// Restores the snapshot tree `root` into `opts.target`, in two walks of
/// its trees. The first writes nothing: it counts what will be restored,
/// stops at the entry limit and finds entries in the way, so that a
/// damaged snapshot or a refused target leaves nothing written (a dry run
/// ends there). The second writes as it walks (see [`stream`]). Neither
/// holds the list of entries: memory is bounded by the path depth and the
/// work in flight, whatever the number of entries.
pub async fn restore(
    repo: &Arc<Repository>,
    root: BlobId,
    opts: &RestoreOptions,
    progress: Arc<Progress>,
) -> EngineResult<RestoreReport> {
    let started = std::time::Instant::now();
    let patterns = Patterns::new(&opts.includes, &opts.excludes)?;
    let limit = opts.max_entries.unwrap_or(u64::MAX);
    let mut report = RestoreReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    survey(repo, (root, limit), &patterns, opts, &progress, &mut report).await?;
    tracing::debug!(elapsed = ?started.elapsed(), "trees read, target checked");
    if opts.dry_run {
        return Ok(report);
    }
    let target = prepare_target(opts)?;
    let mut report = stream::restore_tree(
        repo,
        (root, limit),
        &patterns,
        &target,
        opts.overwrite,
        &progress,
    )
    .await?;
    tracing::debug!(elapsed = ?started.elapsed(), "restored");
    // Outcomes come in as the workers finish; list them in path order.
    report.failed.sort_by_cached_key(|f| f.path.sort_key());
    report.warnings.sort_by_cached_key(|f| f.path.sort_key());
    Ok(report)
}

/// The failure of a path the walk could not go into.
fn unreadable(error: String) -> String {
    match error == super::walk::path_too_long() {
        true => error,
        false => format!("directory contents unreadable: {error}"),
    }
}

/// The first walk: sets the progress totals, refuses to replace existing
/// entries unless `overwrite` (an existing directory is merged into), and
/// in a dry run fills the report.
async fn survey(
    repo: &Arc<Repository>,
    (root, limit): (BlobId, u64),
    patterns: &Patterns,
    opts: &RestoreOptions,
    progress: &Progress,
    report: &mut RestoreReport,
) -> EngineResult<()> {
    // Nothing can be in the way in an empty or missing target (the common
    // case).
    let target = opts.target.canonicalize().unwrap_or(opts.target.clone());
    let in_the_way =
        !opts.overwrite && std::fs::read_dir(&target).is_ok_and(|mut d| d.next().is_some());
    let mut conflicts = Conflicts::default();
    let load = |id: BlobId| async move { repo.load_tree(&id).await.map_err(|e| e.to_string()) };
    let mut walker = Walker::new(load, root, limit, |p: &SnapPath| !patterns.excluded(p));
    let mut selection = Selection::new(patterns);
    let mut events = Vec::new();
    while let Some(step) = walker.next().await? {
        selection.feed(step, &mut events);
        for event in events.drain(..) {
            let e = match event {
                Event::Dir(e) | Event::Item(e) => e,
                Event::Leave => continue,
                Event::Unreadable(path, error) => {
                    if opts.dry_run {
                        let error = unreadable(error);
                        report.failed.push(Failure { path, error });
                    }
                    continue;
                }
            };
            if e.node.kind == NodeKind::File {
                progress.add_total(1, e.node.size);
            }
            if in_the_way {
                conflicts.check(&target, &e);
            }
            if opts.dry_run {
                planned(e, report);
            }
        }
    }
    progress
        .totals_final
        .store(true, std::sync::atomic::Ordering::Relaxed);
    conflicts.result()
}

/// The target directory, created and made absolute.
fn prepare_target(opts: &RestoreOptions) -> EngineResult<PathBuf> {
    let io = |e| EngineError::Io {
        path: opts.target.display().to_string(),
        source: e,
    };
    std::fs::create_dir_all(&opts.target).map_err(io)?;
    opts.target.canonicalize().map_err(io)
}

/// An entry a dry run would restore.
fn planned(e: Entry, report: &mut RestoreReport) {
    match e.node.kind {
        NodeKind::File => {
            report.files += 1;
            report.bytes += e.node.size;
        }
        NodeKind::Dir => report.dirs += 1,
        _ => report.others += 1,
    }
    report.planned.push(e.path);
}

/// Entries already in the target that a restore would replace: how many,
/// and the first few.
#[derive(Default)]
struct Conflicts {
    count: usize,
    shown: Vec<String>,
}

impl Conflicts {
    fn check(&mut self, target: &Path, e: &Entry) {
        let Ok(m) = std::fs::symlink_metadata(target_path(target, &e.path)) else {
            return;
        };
        if e.node.kind == NodeKind::Dir && m.is_dir() {
            return;
        }
        self.count += 1;
        if self.shown.len() < 5 {
            self.shown.push(format!("{}{}", target.display(), e.path));
        }
    }

    fn result(self) -> EngineResult<()> {
        let n = self.count;
        if n == 0 {
            return Ok(());
        }
        Err(EngineError::Usage(format!(
            "{n} entr{} already exist in the target and would be replaced ({}{}); nothing was written. \
             Pass --overwrite to replace them, or restore into an empty --target",
            if n == 1 { "y" } else { "ies" },
            self.shown.join(", "),
            if n > 5 { ", ..." } else { "" }
        )))
    }
}
