//! The data-mover side of volume backups: what `ferry mover backup` and
//! `ferry mover restore` and `ferry mover verify` do inside a Job that
//! mounts one volume.
//!
//! A mover stores the volume's files (or a block volume's device) as a tree
//! in the repository, with its packs and index objects, but writes no
//! snapshot: the coordinator that started the Job places the tree under
//! `volumes/<namespace>/<pvc>/` of the one snapshot it writes once every
//! Job has finished.

use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Component, Path};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::backup::{backup, BackupOptions, ParentChoice};
use super::drill::{verify, verify_device, Mismatch, Verification, VerifyMode};
use super::progress::Progress;
use super::restore::{restore, RestoreOptions};
use super::walk::SnapPath;
use super::{EngineError, EngineResult};
use crate::format::tree::NodeKind;
use crate::repo::{BlobId, Repository};
use crate::source::block::{holes, zero_range};

/// What a mover reports through its termination message (JSON, well under
/// the 4096 bytes Kubernetes keeps).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MoverReport {
    /// The tree holding the volume: its files, or for a block volume one
    /// file `block` with the device's data.
    pub tree: BlobId,
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    pub added_bytes: u64,
    /// Of a block volume: the bytes of all-zero regions, stored as holes.
    #[serde(default)]
    pub zero_bytes: u64,
    #[serde(flatten)]
    pub incremental: Incremental,
    pub seconds: f64,
    /// Of `mover verify`: what was read back and how it matched the tree
    /// (at most a few mismatches, to fit the message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
}

/// How a volume backup went against the volume's previous one: in the
/// mover's report and, as they are, in the snapshot's volume manifest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incremental {
    /// Files not in the parent tree, changed since it, and unchanged (whose
    /// content was taken from it without reading them).
    #[serde(default)]
    pub files_new: u64,
    #[serde(default)]
    pub files_changed: u64,
    #[serde(default)]
    pub files_unchanged: u64,
    /// File data actually read from the volume.
    #[serde(default)]
    pub read_bytes: u64,
    /// The tree of the volume's previous backup the files were compared
    /// with (none for a first backup and for block volumes).
    #[serde(default)]
    pub parent: Option<BlobId>,
}

/// A mover's progress line in its log (stderr), for the coordinator to
/// follow through `pods/log`: `{"progress": {"files": 3, "bytes": 1048576}}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoverProgress {
    pub files: u64,
    pub bytes: u64,
}

impl MoverProgress {
    pub fn line(&self) -> String {
        serde_json::json!({ "progress": self }).to_string()
    }

    /// The last progress line of a log.
    pub fn last_in(log: &str) -> Option<MoverProgress> {
        log.lines().rev().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l.trim()).ok()?;
            serde_json::from_value(v.get("progress")?.clone()).ok()
        })
    }
}

/// The name of a block volume's data in its tree.
pub const BLOCK_FILE: &str = "block";

/// What the coordinator tells a backup mover beside its source.
#[derive(Debug, Clone, Default)]
pub struct MoverBackupOptions {
    /// The volume is a block device.
    pub block: bool,
    pub host: Option<String>,
    /// The tree of the volume's previous backup: files of the same size
    /// and mtime (and, unless `ignore_inode`, ctime and inode) keep its
    /// content unread. Not used for block volumes, which are read whole
    /// and deduplicate by chunk.
    pub parent: Option<BlobId>,
    /// The volume is a new clone of a storage snapshot, whose inode
    /// numbers and ctimes say nothing of the files' contents.
    pub ignore_inode: bool,
}

/// Backs up a mounted volume (`source` a directory) or a block volume
/// (`source` its device node, or a regular file standing in for one): the
/// device is read whole, its all-zero regions stored as holes, and equal
/// chunks deduplicate against every earlier backup.
pub async fn mover_backup(
    repo: Arc<Repository>,
    source: &Path,
    mo: &MoverBackupOptions,
    progress: Arc<Progress>,
) -> EngineResult<MoverReport> {
    let block = mo.block;
    let mut opts = BackupOptions {
        tree_only: true,
        parent: ParentChoice::None,
        host: mo.host.clone(),
        ignore_inode: mo.ignore_inode,
        ..Default::default()
    };
    let parent = mo.parent.filter(|_| !block);
    match block {
        true => opts.devices = vec![(BLOCK_FILE.into(), source.to_path_buf())],
        false => opts.paths = vec![source.to_path_buf()],
    }
    if let Some(p) = parent {
        tracing::info!(parent = %p, "comparing with the volume's previous tree");
        opts.source_parents = vec![(source.to_path_buf(), p)];
    }
    let out = backup(repo.clone(), &opts, progress).await?;
    let m = &out.snapshot.summary;
    if let Some(s) = out.snapshot.skipped.first().filter(|_| block) {
        return Err(EngineError::Usage(format!(
            "{} could not be read: {}",
            source.display(),
            s.error
        )));
    }
    // A block volume's tree is the root, holding `block`.
    let tree = match block {
        true => out.snapshot.tree,
        false => subtree(&repo, out.snapshot.tree, source).await?,
    };
    let zero_bytes = match block {
        true => zero_bytes(&repo, tree).await?,
        false => 0,
    };
    Ok(MoverReport {
        tree,
        files: m.total_files,
        dirs: m.dirs,
        bytes: m.total_bytes.max(m.read_bytes),
        added_bytes: m.added_bytes,
        zero_bytes,
        incremental: Incremental {
            files_new: m.files_new,
            files_changed: m.files_changed,
            files_unchanged: m.files_unchanged,
            read_bytes: m.read_bytes,
            parent,
        },
        seconds: m.elapsed_seconds,
        verification: None,
    })
}

/// The bytes of a block volume's tree stored as holes.
async fn zero_bytes(repo: &Repository, tree: BlobId) -> EngineResult<u64> {
    let t = repo.load_tree(&tree).await?;
    Ok(t.find(BLOCK_FILE.as_bytes()).map_or(0, |n| {
        let data: u64 = n.extents.iter().flatten().map(|e| e.1).sum();
        match n.extents {
            Some(_) => n.size - data,
            None => 0,
        }
    }))
}

/// The tree of directory `path` below `root`.
async fn subtree(repo: &Repository, root: BlobId, path: &Path) -> EngineResult<BlobId> {
    let mut id = root;
    for c in path.components() {
        let Component::Normal(name) = c else { continue };
        let tree = repo.load_tree(&id).await?;
        let node = tree
            .find(name.as_bytes())
            .filter(|n| n.kind == NodeKind::Dir);
        id = node.and_then(|n| n.subtree).ok_or_else(|| {
            EngineError::Usage(format!(
                "{} was not backed up as a directory",
                path.display()
            ))
        })?;
    }
    Ok(id)
}

/// Restores a volume's tree into the mounted volume `target`, or a block
/// volume's data onto the device `target` (written in place; holes are
/// left as they are: a new volume reads zeros there).
pub async fn mover_restore(
    repo: Arc<Repository>,
    tree: BlobId,
    target: &Path,
    block: bool,
    progress: Arc<Progress>,
) -> EngineResult<MoverReport> {
    restore_volume(&repo, tree, target, block, progress).await
}

/// Reads a restored volume (mounted read-only) back and verifies it
/// against the tree, as a drill does. It runs in a Job of its own, after
/// the restore Job: the checker shares nothing with the process that
/// wrote the data, and cannot change it.
pub async fn mover_verify(
    repo: Arc<Repository>,
    tree: BlobId,
    target: &Path,
    block: bool,
    mode: VerifyMode,
) -> EngineResult<MoverReport> {
    let started = std::time::Instant::now();
    let v = match block {
        true => verify_device(&repo, tree, target).await,
        false => verify(&repo, tree, target, mode).await,
    };
    Ok(MoverReport {
        tree,
        files: v.content_files,
        bytes: v.verified_bytes,
        verification: Some(brief(v)),
        seconds: started.elapsed().as_secs_f64(),
        ..Default::default()
    })
}

/// A verification cut to fit a termination message: its first three
/// mismatches, and a count of the others.
fn brief(mut v: Verification) -> Verification {
    if v.mismatches.len() > 3 {
        let more = v.mismatches.len() - 3;
        v.mismatches.truncate(3);
        v.mismatches.push(Mismatch::new(
            SnapPath::root(),
            format!("{more} more entries differ"),
        ));
    }
    for m in &mut v.mismatches {
        m.error.truncate(300);
    }
    v
}

async fn restore_volume(
    repo: &Arc<Repository>,
    tree: BlobId,
    target: &Path,
    block: bool,
    progress: Arc<Progress>,
) -> EngineResult<MoverReport> {
    let started = std::time::Instant::now();
    if block {
        let bytes = restore_device(repo, tree, target, &progress).await?;
        return Ok(MoverReport {
            tree,
            files: 1,
            bytes,
            seconds: started.elapsed().as_secs_f64(),
            ..Default::default()
        });
    }
    let opts = RestoreOptions {
        target: target.to_path_buf(),
        overwrite: true,
        ..Default::default()
    };
    let r = restore(repo, tree, &opts, progress).await?;
    if let Some(f) = r.failed.first() {
        return Err(EngineError::Usage(format!(
            "{} entries of the volume could not be restored, first {}: {}",
            r.failed.len(),
            f.path,
            f.error
        )));
    }
    Ok(MoverReport {
        tree,
        files: r.files,
        dirs: r.dirs,
        bytes: r.bytes,
        seconds: started.elapsed().as_secs_f64(),
        ..Default::default()
    })
}

/// Writes the `block` file of `tree` onto `device`, blob by blob at the
/// offsets its extents give, and makes its holes read as zeros (see
/// [`zero_range`]: a new volume is only read there, not written).
async fn restore_device(
    repo: &Repository,
    tree: BlobId,
    device: &Path,
    progress: &Progress,
) -> EngineResult<u64> {
    let t = repo.load_tree(&tree).await?;
    let node = t
        .find(BLOCK_FILE.as_bytes())
        .filter(|n| n.kind == NodeKind::File)
        .ok_or_else(|| {
            EngineError::Usage(format!("tree {} holds no block volume data", tree.short()))
        })?;
    let io = |e: std::io::Error| EngineError::Io {
        path: device.display().to_string(),
        source: e,
    };
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(device)
        .map_err(io)?;
    let is_block = f.metadata().map_err(io)?.file_type().is_block_device();
    let len = f.seek(SeekFrom::End(0)).map_err(io)?;
    if len < node.size {
        return Err(EngineError::Usage(format!(
            "device {} holds {len} bytes, the volume's data {}: restore into a volume at least as large",
            device.display(),
            node.size
        )));
    }
    let extents = node.extents.clone().unwrap_or_else(|| vec![(0, node.size)]);
    for (off, n) in holes(&extents, node.size) {
        zero_range(&f, is_block, off, n).map_err(io)?;
    }
    let mut regions = extents.into_iter();
    let (mut at, mut left) = regions.next().unwrap_or((0, 0));
    for id in &node.content {
        let data = repo.read_blob(crate::repo::BlobType::Data, id).await?;
        let mut rest = &data[..];
        while !rest.is_empty() {
            while left == 0 {
                (at, left) = regions.next().ok_or_else(|| {
                    EngineError::Usage("block data extends past its extents".into())
                })?;
            }
            let n = rest.len().min(left as usize);
            f.seek(SeekFrom::Start(at)).map_err(io)?;
            f.write_all(&rest[..n]).map_err(io)?;
            progress.add_done(0, n as u64);
            (at, left, rest) = (at + n as u64, left - n as u64, &rest[n..]);
        }
    }
    f.sync_all().map_err(io)?;
    progress.add_done(1, 0);
    Ok(node.size)
}

/// Where a volume's data lives in a snapshot.
pub fn volume_path(namespace: &str, pvc: &str) -> String {
    format!("volumes/{namespace}/{pvc}")
}
