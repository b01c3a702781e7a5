//! `backup`: the sources into a new snapshot. Order of writes: packs, then
//! the index objects naming them, then the snapshot.

mod archiver;
mod files;
pub mod plan;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::progress::Progress;
use super::{EngineError, EngineResult};
use crate::format::snapshot::{Skipped, Snapshot, Summary};
use crate::pipeline::{Pipeline, PipelineOptions};
use crate::repo::{Repository, SnapshotId};
use archiver::Archiver;
use files::Reader;
use plan::VDir;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ParentChoice {
    /// The newest snapshot of the same host and paths.
    #[default]
    Auto,
    /// Read every file.
    None,
    Id(SnapshotId),
}

#[derive(Debug, Clone)]
pub struct BackupOptions {
    pub paths: Vec<PathBuf>,
    /// In-memory files placed at relative paths of the snapshot root.
    pub files: Vec<(String, Vec<u8>)>,
    /// Directories already stored (by data-mover Jobs), placed at relative
    /// paths of the snapshot root. Their blobs must be in the index.
    pub trees: Vec<(String, crate::repo::BlobId)>,
    /// Block devices placed as files at relative paths of the snapshot
    /// root, read whole with their all-zero regions stored as holes.
    pub devices: Vec<(String, PathBuf)>,
    /// Store the files and trees but write no snapshot (a data-mover Job:
    /// its coordinator writes the one snapshot).
    pub tree_only: bool,
    pub extra: Option<serde_json::Value>,
    /// Names of the in-memory sources (`/k8s`), recorded beside the paths.
    pub sources: Vec<String>,
    /// Problems the caller met gathering in-memory sources, recorded as
    /// skipped entries.
    pub warnings: Vec<Skipped>,
    pub tags: Vec<String>,
    pub host: Option<String>,
    pub parent: ParentChoice,
    /// Per source directory, the tree of an earlier backup of the same
    /// data to compare against instead of the parent snapshot's (a
    /// volume's previous backup, stored at another path of another
    /// snapshot). Its unchanged files are not read again.
    pub source_parents: Vec<(PathBuf, crate::repo::BlobId)>,
    /// A file is unchanged when its size and mtime are, without comparing
    /// ctime and inode number: for a file system cloned from a storage
    /// snapshot, where a file-level clone gives every file a new inode and
    /// ctime (see docs/k8s.md, "Incremental volume backups").
    pub ignore_inode: bool,
    /// Glob patterns; a pattern matches an entry's absolute path or its name.
    pub excludes: Vec<String>,
    /// Ceiling for data buffered in the pipeline.
    pub memory_limit: u64,
    /// The snapshot's time; now when unset.
    pub time: Option<DateTime<Utc>>,
    /// Count files and bytes first, so that progress can show totals.
    pub scan: bool,
    /// The region written to, recorded in the snapshot.
    pub region: Option<String>,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            paths: Vec::new(),
            files: Vec::new(),
            trees: Vec::new(),
            devices: Vec::new(),
            tree_only: false,
            extra: None,
            sources: Vec::new(),
            warnings: Vec::new(),
            tags: Vec::new(),
            host: None,
            parent: ParentChoice::Auto,
            source_parents: Vec::new(),
            ignore_inode: false,
            excludes: Vec::new(),
            memory_limit: 512 << 20,
            time: None,
            scan: false,
            region: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct BackupOutcome {
    pub id: SnapshotId,
    pub snapshot: Snapshot,
}

pub async fn backup(
    repo: Arc<Repository>,
    opts: &BackupOptions,
    progress: Arc<Progress>,
) -> EngineResult<BackupOutcome> {
    let started = Instant::now();
    let time = opts.time.unwrap_or_else(Utc::now);
    let (paths, path_strings) = sources(opts)?;
    let host = opts.host.clone().unwrap_or_else(crate::util::hostname);
    let parent = find_parent(&repo, &opts.parent, &host, &path_strings)?;
    let mut root = VDir::default();
    for p in &paths {
        root.add_source(p)?;
    }
    for (rel, data) in &opts.files {
        root.add_bytes(rel, data.clone())?;
    }
    for (rel, tree) in &opts.trees {
        root.add_tree(rel, *tree)?;
    }
    for (rel, dev) in &opts.devices {
        root.add_device(rel, dev.clone())?;
    }
    if opts.scan {
        spawn_scan(paths.clone(), progress.clone());
    }
    let parent_tree = parent.as_ref().map(|(_, s)| s.tree);
    let archived = archive(&repo, opts, root, parent_tree, progress).await?;
    let mut skipped = std::mem::take(&mut *archived.archiver.skipped.lock().unwrap());
    skipped.extend(opts.warnings.iter().cloned());
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    let snapshot = Snapshot {
        time,
        host,
        username: crate::util::username(),
        paths: path_strings,
        tags: opts.tags.clone(),
        parent: parent.map(|(id, _)| id),
        tree: archived.tree,
        summary: archived.summary(started, opts.trees.is_empty()),
        skipped,
        extra: opts.extra.clone(),
        program_version: env!("CARGO_PKG_VERSION").to_string(),
        region: opts.region.clone(),
    };
    if opts.tree_only {
        // No snapshot: the zero id; the caller takes `snapshot.tree`.
        return Ok(BackupOutcome {
            id: SnapshotId::default(),
            snapshot,
        });
    }
    let id = repo.save_snapshot(&snapshot).await?;
    tracing::debug!(snapshot = %id, "snapshot saved");
    let trees = std::mem::take(&mut *archived.archiver.new_trees.lock().unwrap());
    let count = trees.len();
    if let Err(e) = repo.cache_trees(trees).await {
        tracing::warn!(error = %e, "could not cache trees in the catalog");
    }
    tracing::debug!(trees = count, "trees cached");
    Ok(BackupOutcome { id, snapshot })
}

/// The sources as absolute paths (each must exist), and the names the
/// snapshot records for them and for the in-memory sources, sorted.
fn sources(opts: &BackupOptions) -> EngineResult<(Vec<PathBuf>, Vec<String>)> {
    if opts.paths.is_empty()
        && opts.files.is_empty()
        && opts.trees.is_empty()
        && opts.devices.is_empty()
    {
        return Err(EngineError::Usage(
            "nothing to back up: name at least one path".into(),
        ));
    }
    let mut paths = Vec::new();
    for p in &opts.paths {
        let abs = plan::absolute(p)?;
        if let Err(e) = std::fs::symlink_metadata(&abs) {
            return Err(EngineError::Io {
                path: abs.display().to_string(),
                source: e,
            });
        }
        paths.push(abs);
    }
    paths.sort();
    paths.dedup();
    let mut names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    names.extend(opts.sources.iter().cloned());
    names.sort();
    Ok((paths, names))
}

/// The snapshot an incremental backup compares against.
fn find_parent(
    repo: &Repository,
    choice: &ParentChoice,
    host: &str,
    paths: &[String],
) -> EngineResult<Option<(SnapshotId, Snapshot)>> {
    let parent = match choice {
        ParentChoice::None => None,
        ParentChoice::Id(id) => {
            let s = repo.snapshots()?.into_iter().find(|(i, _)| i == id);
            Some(s.ok_or_else(|| {
                EngineError::Usage(format!("parent snapshot {id} is not in the repository"))
            })?)
        }
        ParentChoice::Auto => repo
            .snapshots()?
            .into_iter()
            .rev()
            .find(|(_, s)| s.same_source(host, paths)),
    };
    if let Some((id, _)) = &parent {
        tracing::info!(parent = %id, "using parent snapshot");
    }
    Ok(parent)
}

/// What archiving the sources left: the root tree, and the walker and
/// pipeline whose counters make the summary.
struct Archived {
    tree: crate::repo::BlobId,
    archiver: Arc<Archiver>,
    pipe: Arc<Pipeline>,
}

impl Archived {
    /// The summary; `counted` when every tree was made here (a grafted
    /// tree's entries are not counted).
    fn summary(&self, started: Instant, counted: bool) -> Summary {
        let c = &self.archiver.counters;
        let st = self.pipe.stats();
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        Summary {
            files_new: load(&c.files_new),
            files_changed: load(&c.files_changed),
            files_unchanged: load(&c.files_unchanged),
            dirs: load(&c.dirs),
            total_files: load(&c.files_new) + load(&c.files_changed) + load(&c.files_unchanged),
            total_bytes: load(&c.total_bytes),
            read_bytes: load(&c.read_bytes),
            blobs_added: load(&st.blobs_added),
            added_bytes: load(&st.added_bytes),
            stored_bytes: load(&st.stored_bytes),
            elapsed_seconds: started.elapsed().as_secs_f64(),
            entries: counted.then(|| load(&c.entries)),
        }
    }
}

/// Walks the sources, reads what changed and stores files and trees; on
/// return every pack and index object the tree needs is durable.
async fn archive(
    repo: &Arc<Repository>,
    opts: &BackupOptions,
    root: VDir,
    parent_tree: Option<crate::repo::BlobId>,
    progress: Arc<Progress>,
) -> EngineResult<Archived> {
    let cfg = repo.config().clone();
    let pipe = Pipeline::start(
        repo.clone(),
        &PipelineOptions::for_memory(opts.memory_limit, cfg.pack_size, cfg.chunker.max_size),
    );
    let readers_n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .max(2)
        * 2;
    let (jobs_tx, jobs_rx) = async_channel::bounded(readers_n * 4);
    let reader = Arc::new(Reader {
        repo: repo.clone(),
        pipe: pipe.clone(),
        chunker: cfg.chunker.clone(),
        progress: progress.clone(),
    });
    let readers: Vec<_> = (0..readers_n)
        .map(|_| {
            let (r, rx) = (reader.clone(), jobs_rx.clone());
            tokio::task::spawn_blocking(move || r.run(rx))
        })
        .collect();
    drop(jobs_rx);
    let mut archiver = Archiver::new(
        repo.clone(),
        pipe.clone(),
        jobs_tx,
        progress,
        super::glob_set(&opts.excludes)?,
    );
    archiver.ignore_inode = opts.ignore_inode;
    for (p, tree) in &opts.source_parents {
        archiver.source_parents.insert(plan::absolute(p)?, *tree);
    }
    let archiver = Arc::new(archiver);
    let tree = archiver.archive_root(root, parent_tree).await;
    tracing::debug!("sources walked");
    archiver.jobs.close();
    for r in readers {
        r.await?;
    }
    tracing::debug!("files read");
    // A failure inside the pipeline is the cause of any error above.
    pipe.finish().await?;
    let tree = tree?;
    tracing::debug!("files and trees stored");
    Ok(Archived {
        tree,
        archiver,
        pipe,
    })
}

/// Counts files and bytes under the sources, for progress totals.
fn spawn_scan(paths: Vec<PathBuf>, progress: Arc<Progress>) {
    tokio::task::spawn_blocking(move || {
        let mut stack = paths;
        while let Some(p) = stack.pop() {
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if m.is_dir() {
                if let Ok(rd) = std::fs::read_dir(&p) {
                    stack.extend(rd.flatten().map(|e| e.path()));
                }
            } else if m.is_file() {
                progress.add_total(1, m.len());
            }
        }
        progress.totals_final.store(true, Ordering::Relaxed);
    });
}
