//! The data-mover side of volume backups: what `ferry mover backup` and
//! `ferry mover restore` do inside a Job that mounts one volume.
//!
//! A mover stores the volume's files (or a block volume's device) as a tree
//! in the repository, with its packs and index objects, but writes no
//! snapshot: the coordinator that started the Job places the tree under
//! `volumes/<namespace>/<pvc>/` of the one snapshot it writes once every
//! Job has finished.

use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
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
    pub seconds: f64,
    /// A restore asked to verify: what was read back and how it matched
    /// the tree (at most a few mismatches, to fit the message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
}

/// The name of a block volume's data in its tree.
pub const BLOCK_FILE: &str = "block";

/// Backs up a mounted volume (`source` a directory) or a block device
/// (`source` a device path whose last component is [`BLOCK_FILE`]): zero
/// regions the file system reports as holes are stored as holes, and equal
/// chunks deduplicate against every earlier backup.
pub async fn mover_backup(
    repo: Arc<Repository>,
    source: &Path,
    block: bool,
    host: Option<String>,
) -> EngineResult<MoverReport> {
    if block && source.file_name().map(|n| n.as_bytes()) != Some(BLOCK_FILE.as_bytes()) {
        return Err(EngineError::Usage(format!(
            "the device path of a block volume must end in /{BLOCK_FILE}, not {}",
            source.display()
        )));
    }
    let opts = BackupOptions {
        paths: vec![source.to_path_buf()],
        tree_only: true,
        parent: ParentChoice::None,
        host,
        ..Default::default()
    };
    let out = backup(repo.clone(), &opts, Arc::new(Progress::default())).await?;
    // A block volume's tree is the directory holding the device file.
    let wanted = match block {
        true => source.parent().unwrap_or(Path::new("/")),
        false => source,
    };
    let tree = subtree(&repo, out.snapshot.tree, wanted).await?;
    let m = &out.snapshot.summary;
    Ok(MoverReport {
        tree,
        files: m.total_files,
        dirs: m.dirs,
        bytes: m.total_bytes,
        added_bytes: m.added_bytes,
        seconds: m.elapsed_seconds,
        verification: None,
    })
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
/// left as they are: a new volume reads zeros there). With `check`, what
/// was written is read back and verified against the tree, as a drill
/// does.
pub async fn mover_restore(
    repo: Arc<Repository>,
    tree: BlobId,
    target: &Path,
    block: bool,
    check: Option<VerifyMode>,
) -> EngineResult<MoverReport> {
    let started = std::time::Instant::now();
    let mut report = restore_volume(&repo, tree, target, block).await?;
    if let Some(mode) = check {
        let v = match block {
            true => verify_device(&repo, tree, target).await,
            false => verify(&repo, tree, target, mode).await,
        };
        report.verification = Some(brief(v));
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
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
) -> EngineResult<MoverReport> {
    if block {
        let bytes = restore_device(repo, tree, target).await?;
        return Ok(MoverReport {
            tree,
            files: 1,
            bytes,
            ..Default::default()
        });
    }
    let opts = RestoreOptions {
        target: target.to_path_buf(),
        overwrite: true,
        ..Default::default()
    };
    let r = restore(repo, tree, &opts, Arc::new(Progress::default())).await?;
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
        ..Default::default()
    })
}

/// Writes the `block` file of `tree` onto `device`, blob by blob at the
/// offsets its extents give.
async fn restore_device(repo: &Repository, tree: BlobId, device: &Path) -> EngineResult<u64> {
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
        .write(true)
        .open(device)
        .map_err(io)?;
    let len = f.seek(SeekFrom::End(0)).map_err(io)?;
    if len < node.size {
        return Err(EngineError::Usage(format!(
            "device {} holds {len} bytes, the volume's data {}: restore into a volume at least as large",
            device.display(),
            node.size
        )));
    }
    let extents = node.extents.clone().unwrap_or_else(|| vec![(0, node.size)]);
    let mut regions = extents.into_iter();
    let (mut at, mut left) = regions.next().unwrap_or((0, 0));
    for id in &node.content {
        let data = repo.read_blob(id).await?;
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
            (at, left, rest) = (at + n as u64, left - n as u64, &rest[n..]);
        }
    }
    f.sync_all().map_err(io)?;
    Ok(node.size)
}

/// Where a volume's data lives in a snapshot.
pub fn volume_path(namespace: &str, pvc: &str) -> String {
    format!("volumes/{namespace}/{pvc}")
}
