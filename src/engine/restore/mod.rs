//! `restore`: a snapshot (or part of it) into a target directory. Nothing is
//! written outside the target: names come from validated trees only, every
//! directory on the way is checked to be a real directory (never a
//! symlink), and symlinks from the snapshot are created last.

mod files;
mod meta;

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::walk::{walk, Entry, SnapPath};
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

/// Whether a pattern set matches `path` or its last component, byte for
/// byte (patterns match names that are not UTF-8 too).
fn matches(set: &globset::GlobSet, path: &[u8]) -> bool {
    let name = match path.iter().rposition(|&b| b == b'/') {
        Some(i) => &path[i + 1..],
        None => path,
    };
    let as_path = |b: &[u8]| Path::new(OsStr::from_bytes(b)).to_path_buf();
    set.is_match(as_path(path)) || set.is_match(as_path(name))
}

/// Picks the entries to restore: not excluded (nor below an excluded
/// directory), and, with includes, matched or below a match, plus the
/// directories leading to them.
fn select(
    entries: Vec<Entry>,
    includes: &globset::GlobSet,
    excludes: &globset::GlobSet,
) -> Vec<Entry> {
    if includes.is_empty() && excludes.is_empty() {
        return entries;
    }
    let excluded = |p: &SnapPath| {
        matches(excludes, p.as_bytes()) || p.ancestors().any(|a| matches(excludes, a))
    };
    let kept: Vec<Entry> = entries.into_iter().filter(|e| !excluded(&e.path)).collect();
    if includes.is_empty() {
        return kept;
    }
    let included = |p: &SnapPath| {
        matches(includes, p.as_bytes()) || p.ancestors().any(|a| matches(includes, a))
    };
    let mut needed: HashSet<Vec<u8>> = HashSet::new();
    for e in kept.iter().filter(|e| included(&e.path)) {
        needed.insert(e.path.as_bytes().to_vec());
        needed.extend(e.path.ancestors().map(<[u8]>::to_vec));
    }
    kept.into_iter()
        .filter(|e| needed.contains(e.path.as_bytes()))
        .collect()
}

/// The target path of a snapshot path (made of validated names).
pub(crate) fn target_path(target: &Path, path: &SnapPath) -> PathBuf {
    path.under(target)
}

pub async fn restore(
    repo: &Arc<Repository>,
    root: BlobId,
    opts: &RestoreOptions,
    progress: Arc<Progress>,
) -> EngineResult<RestoreReport> {
    let started = std::time::Instant::now();
    let mut report = RestoreReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let entries = plan(repo, root, opts, &progress, &mut report).await?;
    let target = prepare_target(opts)?;
    check_conflicts(&target, &entries, opts.overwrite)?;
    tracing::debug!(elapsed = ?started.elapsed(), "target checked");
    if opts.dry_run {
        dry_run(&entries, &mut report);
        return Ok(report);
    }
    let failed_dirs = make_dirs(&entries, &target, opts.overwrite, &mut report);
    let below_failed = |p: &SnapPath| failed_dirs.iter().any(|d| super::walk::within(p, d));
    tracing::debug!(elapsed = ?started.elapsed(), "directories made");
    let (regular, links) = split_links(&entries, &below_failed, &mut report.warnings);
    let restored = files::restore_files(
        repo,
        &target,
        &regular,
        opts.overwrite,
        &progress,
        &mut report,
    )
    .await;
    tracing::debug!(elapsed = ?started.elapsed(), "files written");
    // Then hard links, special files and symlinks (last, so that no path
    // created by this restore can lead through one).
    make_links(links, &restored, &target, opts.overwrite, &mut report);
    make_specials(
        &entries,
        &below_failed,
        &target,
        opts.overwrite,
        &mut report,
    );
    tracing::debug!(elapsed = ?started.elapsed(), "links and special files made");
    // Directory metadata last, deepest first, so that writing into them is
    // over before their modes and times are set.
    for e in entries
        .iter()
        .rev()
        .filter(|e| e.node.kind == NodeKind::Dir && !below_failed(&e.path))
    {
        let dst = target_path(&target, &e.path);
        meta::apply(&dst, &e.node, &e.path, &mut report.warnings);
    }
    tracing::debug!(elapsed = ?started.elapsed(), "directory metadata set");
    Ok(report)
}

/// The entries to restore, in order, with the unreadable directories
/// recorded as failures and the progress totals set.
async fn plan(
    repo: &Arc<Repository>,
    root: BlobId,
    opts: &RestoreOptions,
    progress: &Progress,
    report: &mut RestoreReport,
) -> EngineResult<Vec<Entry>> {
    let (inc, exc) = (
        super::glob_set(&opts.includes)?,
        super::glob_set(&opts.excludes)?,
    );
    let w = walk(repo, root, opts.max_entries.unwrap_or(u64::MAX), |_| true).await?;
    tracing::debug!(entries = w.entries.len(), "trees read");
    for (path, error) in &w.errors {
        let error = match *error == super::walk::path_too_long() {
            true => error.clone(),
            false => format!("directory contents unreadable: {error}"),
        };
        report.failed.push(Failure {
            path: path.clone(),
            error,
        });
    }
    let mut entries = select(w.entries, &inc, &exc);
    super::ls::sort_entries(&mut entries);
    for e in entries.iter().filter(|e| e.node.kind == NodeKind::File) {
        progress.add_total(1, e.node.size);
    }
    progress
        .totals_final
        .store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(entries)
}

/// The target directory, created and made absolute (as given in a dry run).
fn prepare_target(opts: &RestoreOptions) -> EngineResult<PathBuf> {
    let io = |e| EngineError::Io {
        path: opts.target.display().to_string(),
        source: e,
    };
    if opts.dry_run {
        return Ok(opts.target.clone());
    }
    std::fs::create_dir_all(&opts.target).map_err(io)?;
    opts.target.canonicalize().map_err(io)
}

fn dry_run(entries: &[Entry], report: &mut RestoreReport) {
    for e in entries {
        match e.node.kind {
            NodeKind::File => {
                report.files += 1;
                report.bytes += e.node.size;
            }
            NodeKind::Dir => report.dirs += 1,
            _ => report.others += 1,
        }
        report.planned.push(e.path.clone());
    }
}

/// Makes the directories, parents before children; returns those that
/// could not be made (nothing below them is restored).
fn make_dirs(
    entries: &[Entry],
    target: &Path,
    overwrite: bool,
    report: &mut RestoreReport,
) -> Vec<SnapPath> {
    let mut failed_dirs: Vec<SnapPath> = Vec::new();
    for e in entries.iter().filter(|e| e.node.kind == NodeKind::Dir) {
        if failed_dirs.iter().any(|d| super::walk::within(&e.path, d)) {
            continue;
        }
        match meta::make_dir(target, &target_path(target, &e.path), overwrite) {
            Ok(()) => report.dirs += 1,
            Err(err) => {
                report.failed.push(Failure {
                    path: e.path.clone(),
                    error: err,
                });
                failed_dirs.push(e.path.clone());
            }
        }
    }
    failed_dirs
}

/// Regular files to write (the first link of each hard-linked inode), and
/// the other links with the path of their first. An entry claiming the
/// inode of another but with other content is written as a file of its
/// own, with a warning (linking it would give it the wrong data).
fn split_links<'a>(
    entries: &'a [Entry],
    below_failed: &dyn Fn(&SnapPath) -> bool,
    warnings: &mut Vec<Failure>,
) -> (Vec<&'a Entry>, Vec<(&'a Entry, SnapPath)>) {
    let mut first_link: HashMap<(u64, u64), &Entry> = HashMap::new();
    let mut links = Vec::new();
    let mut regular = Vec::new();
    for e in entries
        .iter()
        .filter(|e| e.node.kind == NodeKind::File && !below_failed(&e.path))
    {
        if e.node.links > 1 && e.node.inode != 0 {
            match first_link.get(&(e.node.device, e.node.inode)) {
                Some(first) if first.node.same_content(&e.node) => {
                    links.push((e, first.path.clone()));
                    continue;
                }
                Some(first) => warnings.push(Failure {
                    path: e.path.clone(),
                    error: format!(
                        "claims to be a hard link of {} but its content differs; restored as a file of its own",
                        first.path
                    ),
                }),
                None => {
                    first_link.insert((e.node.device, e.node.inode), e);
                }
            }
        }
        regular.push(e);
    }
    (regular, links)
}

fn make_links(
    links: Vec<(&Entry, SnapPath)>,
    restored: &std::collections::HashSet<SnapPath>,
    target: &Path,
    overwrite: bool,
    report: &mut RestoreReport,
) {
    for (e, first) in links {
        let (dst, src) = (target_path(target, &e.path), target_path(target, &first));
        if !restored.contains(&first) {
            report.failed.push(Failure {
                path: e.path.clone(),
                error: format!("hard link target {first} was not restored"),
            });
            continue;
        }
        match meta::replace_with(&dst, overwrite, || std::fs::hard_link(&src, &dst)) {
            Ok(()) => report.files += 1,
            Err(err) => report.failed.push(Failure {
                path: e.path.clone(),
                error: err,
            }),
        }
    }
}

/// Special files, then symlinks.
fn make_specials(
    entries: &[Entry],
    below_failed: &dyn Fn(&SnapPath) -> bool,
    target: &Path,
    overwrite: bool,
    report: &mut RestoreReport,
) {
    let mut specials: Vec<&Entry> = entries
        .iter()
        .filter(|e| {
            !matches!(e.node.kind, NodeKind::File | NodeKind::Dir) && !below_failed(&e.path)
        })
        .collect();
    specials.sort_by_key(|e| e.node.kind == NodeKind::Symlink);
    for e in specials {
        let dst = target_path(target, &e.path);
        match meta::make_special(&dst, &e.node, overwrite) {
            Ok(()) => {
                report.others += 1;
                meta::apply(&dst, &e.node, &e.path, &mut report.warnings);
            }
            Err(err) => report.failed.push(Failure {
                path: e.path.clone(),
                error: err,
            }),
        }
    }
}

/// Refuses, before anything is written, to replace existing entries unless
/// `overwrite`; an existing directory is merged into.
fn check_conflicts(target: &Path, entries: &[Entry], overwrite: bool) -> EngineResult<()> {
    // Nothing can be in the way in an empty target (the common case).
    let empty = std::fs::read_dir(target).is_ok_and(|mut d| d.next().is_none());
    if overwrite || empty {
        return Ok(());
    }
    let mut conflicts = Vec::new();
    for e in entries {
        let p = target_path(target, &e.path);
        if let Ok(m) = std::fs::symlink_metadata(&p) {
            let merge = e.node.kind == NodeKind::Dir && m.is_dir();
            if !merge {
                conflicts.push(format!("{}{}", target.display(), e.path));
            }
        }
    }
    if conflicts.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = conflicts.iter().take(5).map(String::as_str).collect();
    Err(EngineError::Usage(format!(
        "{} entr{} already exist in the target and would be replaced ({}{}); nothing was written. \
         Pass --overwrite to replace them, or restore into an empty --target",
        conflicts.len(),
        if conflicts.len() == 1 { "y" } else { "ies" },
        shown.join(", "),
        if conflicts.len() > 5 { ", ..." } else { "" }
    )))
}
