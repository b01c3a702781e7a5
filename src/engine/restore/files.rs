//! Restoring regular files pack by pack: the blobs of a batch of files are
//! grouped by the pack holding them, each stretch of a pack is read with one
//! request, and each blob is opened once and written to every file (and
//! offset) of the batch that uses it. Stretches are restored by a pool of
//! blocking workers; a file is created by the first piece that reaches it
//! and finished (metadata applied, waiting hard links made, its directory
//! told) by the last. Holes of sparse files stay holes.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::dirs::{DirState, Shared};
use super::{meta, Failure};
use crate::engine::walk::{Entry, SnapPath};
use crate::format::blob::{BlobBuffers, BlobEntry};
use crate::format::tree::Node;
use crate::repo::{BlobId, PackId, Repository};

/// Blobs of one pack at most this far apart are read with one request.
const MERGE_GAP: u64 = 1 << 20;
/// Reads stop growing past this size, so that work spreads over the
/// workers and memory stays bounded (workers x this).
const READ_SIZE: u64 = 4 << 20;
/// A batch of files whose reads are grouped by pack holds at most this
/// many files and blob references: a pack stretch that files of two
/// batches need is read once per batch, and memory is bounded by about two
/// batches (one being planned, one being written), not by the snapshot.
const BATCH_FILES: usize = 16 << 10;
const BATCH_BLOBS: usize = 64 << 10;

pub(super) type Location = (PackId, BlobEntry);

/// Writes `data`, which starts at `pos` of the file's data stream, to the
/// file offsets that `extents` map that stream to.
fn write_mapped(
    file: &File,
    extents: Option<&[(u64, u64)]>,
    mut pos: u64,
    mut data: &[u8],
) -> std::io::Result<()> {
    let Some(extents) = extents else {
        return file.write_all_at(data, pos);
    };
    let mut start = 0u64;
    for &(off, len) in extents {
        if data.is_empty() {
            break;
        }
        if pos < start + len {
            let within = pos - start;
            let n = ((len - within) as usize).min(data.len());
            file.write_all_at(&data[..n], off + within)?;
            data = &data[n..];
            pos += n as u64;
        }
        start += len;
    }
    if data.is_empty() {
        Ok(())
    } else {
        Err(std::io::Error::other(
            "content extends past the recorded data regions",
        ))
    }
}

/// Where each blob of a file lives and where its data starts in the file's
/// data stream; checks that they are data blobs, that the sparse extents
/// are sound and that the blobs add up to the recorded size (so that a file
/// is refused rather than written wrong).
pub(super) fn plan(repo: &Repository, node: &Node) -> Result<Vec<(Location, u64)>, String> {
    let expected = node.data_length()?;
    let mut pos = 0u64;
    let mut out = Vec::with_capacity(node.content.len());
    for (id, loc) in node.content.iter().zip(repo.locate_blobs(&node.content)) {
        let loc = loc.ok_or_else(|| format!("data blob {id} is missing from the repository"))?;
        if loc.1.kind != crate::format::BlobType::Data {
            return Err(format!("its content names tree blob {id}, not data"));
        }
        out.push((loc, pos));
        pos = pos.saturating_add(loc.1.raw_length as u64);
    }
    if pos != expected {
        return Err(format!(
            "the snapshot records {expected} bytes but its blobs hold {pos}"
        ));
    }
    Ok(out)
}

/// Creates the file (replacing an existing one only with `overwrite`, and
/// never following a symlink in its place).
fn create(path: &Path, node: &Node, overwrite: bool) -> Result<File, String> {
    let open = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(path)
    };
    let file = meta::replace_with(path, overwrite, open)?;
    if node.extents.is_some() {
        file.set_len(node.size).map_err(|e| e.to_string())?;
    }
    Ok(file)
}

/// Where a blob's content goes: a file and the position in its data
/// stream.
#[derive(Clone)]
struct Target {
    file: Arc<FileState>,
    at: u64,
}

/// One read: a stretch of a pack and the blobs in it, in offset order.
pub(super) struct Job {
    pack: PackId,
    offset: u64,
    length: u64,
    blobs: Vec<(BlobEntry, Vec<Target>)>,
}

/// Another name of a hard-linked file, made once the file is finished.
pub(super) struct Link {
    path: PathBuf,
    snap: SnapPath,
    parent: Arc<DirState>,
}

impl Link {
    /// A link at `snap` (target path `path`) in directory `parent`, which
    /// waits for it.
    pub fn new(path: PathBuf, snap: SnapPath, parent: &Arc<DirState>) -> Self {
        parent.hold();
        Link {
            path,
            snap,
            parent: parent.clone(),
        }
    }

    /// Makes the link to `first` (`None`: it was not restored).
    fn make(self, sh: &Shared, first: Option<&Path>, first_snap: &SnapPath) {
        let result = match first {
            None => Err(format!("hard link target {first_snap} was not restored")),
            Some(src) => meta::replace_with(&self.path, sh.overwrite, || {
                std::fs::hard_link(src, &self.path)
            }),
        };
        {
            let mut r = sh.report.lock().unwrap();
            match result {
                Ok(()) => r.files += 1,
                Err(error) => r.failed.push(Failure {
                    path: self.snap,
                    error,
                }),
            }
        }
        self.parent.release(sh);
    }
}

/// A regular file being restored.
pub(super) struct FileState {
    path: PathBuf,
    entry: Entry,
    /// Its directory, which waits for it.
    parent: Arc<DirState>,
    /// Blob writes still to do.
    remaining: AtomicUsize,
    inner: Mutex<FileInner>,
}

#[derive(Default)]
struct FileInner {
    created: bool,
    error: Option<String>,
    /// Set once finished: whether it was restored.
    outcome: Option<bool>,
    /// Hard links waiting for it to be finished.
    links: Vec<Link>,
}

impl FileState {
    pub fn new(path: PathBuf, entry: Entry, parent: &Arc<DirState>) -> Arc<Self> {
        parent.hold();
        Arc::new(FileState {
            path,
            entry,
            parent: parent.clone(),
            remaining: AtomicUsize::new(0),
            inner: Mutex::default(),
        })
    }

    pub fn node(&self) -> &Node {
        &self.entry.node
    }

    pub fn snap_path(&self) -> &SnapPath {
        &self.entry.path
    }

    /// Opens the file for writing, creating it on first use; `None` once it
    /// has failed.
    fn open(&self, overwrite: bool) -> Option<File> {
        let mut inner = self.inner.lock().unwrap();
        if inner.error.is_some() {
            return None;
        }
        let opened = match inner.created {
            true => OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&self.path)
                .map_err(|e| e.to_string()),
            false => create(&self.path, &self.entry.node, overwrite),
        };
        match opened {
            Ok(f) => {
                inner.created = true;
                Some(f)
            }
            Err(e) => {
                inner.error = Some(e);
                None
            }
        }
    }

    pub fn fail(&self, error: String) {
        self.inner.lock().unwrap().error.get_or_insert(error);
    }

    /// Records `n` writes as done; after the last one, finishes the file.
    pub fn written(&self, sh: &Shared, n: usize, file: Option<File>) {
        if self.remaining.fetch_sub(n, Ordering::AcqRel) == n {
            self.finish(sh, file);
        }
    }

    /// Applies the metadata (or removes the file when a piece failed: a
    /// file with a hole where data should be must not pass for good), makes
    /// the links waiting for it and tells its directory.
    fn finish(&self, sh: &Shared, file: Option<File>) {
        // An empty file is created here; a file that failed opens as None.
        let file = file.or_else(|| self.open(sh.overwrite));
        let (created, error) = {
            let mut inner = self.inner.lock().unwrap();
            (inner.created, inner.error.take())
        };
        let e = &self.entry;
        let ok = match (error, file) {
            (None, Some(file)) => {
                let mut warnings = Vec::new();
                meta::apply_file(&file, &e.node, &e.path, &mut warnings);
                sh.progress.add_done(1, e.node.size);
                let mut r = sh.report.lock().unwrap();
                r.warnings.extend(warnings);
                r.files += 1;
                r.bytes += e.node.size;
                true
            }
            (error, _) => {
                if created {
                    let _ = std::fs::remove_file(&self.path);
                }
                let error = error.unwrap_or_else(|| "could not be opened".into());
                tracing::warn!(path = %e.path, error = %error, "file not restored");
                sh.report.lock().unwrap().failed.push(Failure {
                    path: e.path.clone(),
                    error,
                });
                false
            }
        };
        let links = {
            let mut inner = self.inner.lock().unwrap();
            inner.outcome = Some(ok);
            std::mem::take(&mut inner.links)
        };
        for link in links {
            link.make(sh, ok.then_some(self.path.as_path()), &e.path);
        }
        self.parent.release(sh);
    }

    /// Makes `link` to this file once it is finished (now, if it is).
    pub fn add_link(&self, sh: &Shared, link: Link) {
        let mut inner = self.inner.lock().unwrap();
        match inner.outcome {
            None => inner.links.push(link),
            Some(ok) => {
                drop(inner);
                link.make(sh, ok.then_some(self.path.as_path()), &self.entry.path);
            }
        }
    }
}

/// Files whose reads are grouped by pack, in the order the files first
/// need the packs.
#[derive(Default)]
pub(super) struct Batch {
    packs: Vec<PackId>,
    by_pack: HashMap<PackId, HashMap<BlobId, (BlobEntry, Vec<Target>)>>,
    files: usize,
    blobs: usize,
}

impl Batch {
    /// Adds a file with the blobs [`plan`] found for it (at least one).
    pub fn add(&mut self, file: &Arc<FileState>, blobs: Vec<(Location, u64)>) {
        file.remaining.store(blobs.len(), Ordering::Relaxed);
        self.files += 1;
        self.blobs += blobs.len();
        for ((pack, entry), at) in blobs {
            let in_pack = self.by_pack.entry(pack).or_insert_with(|| {
                self.packs.push(pack);
                HashMap::new()
            });
            in_pack
                .entry(entry.id)
                .or_insert_with(|| (entry, Vec::new()))
                .1
                .push(Target {
                    file: file.clone(),
                    at,
                });
        }
    }

    pub fn is_full(&self) -> bool {
        self.files >= BATCH_FILES || self.blobs >= BATCH_BLOBS
    }

    /// The reads, each pack's blobs cut into stretches.
    pub fn into_jobs(mut self) -> Vec<Job> {
        let mut out = Vec::new();
        for pack in std::mem::take(&mut self.packs) {
            let mut blobs: Vec<_> = self
                .by_pack
                .remove(&pack)
                .unwrap_or_default()
                .into_values()
                .collect();
            blobs.sort_by_key(|(e, _)| e.offset);
            stretches(pack, blobs, &mut out);
        }
        out
    }
}

/// Cuts one pack's blobs (in offset order) into reads.
fn stretches(pack: PackId, blobs: Vec<(BlobEntry, Vec<Target>)>, out: &mut Vec<Job>) {
    let mut job: Option<Job> = None;
    for (entry, targets) in blobs {
        let end = entry.offset + entry.length as u64;
        if let Some(j) = job.as_mut() {
            let (j_end, gap) = (
                j.offset + j.length,
                entry.offset.saturating_sub(j.offset + j.length),
            );
            if gap <= MERGE_GAP && j.length < READ_SIZE {
                j.length = end.max(j_end) - j.offset;
                j.blobs.push((entry, targets));
                continue;
            }
            out.extend(job.take());
        }
        job = Some(Job {
            pack,
            offset: entry.offset,
            length: entry.length as u64,
            blobs: vec![(entry, targets)],
        });
    }
    out.extend(job);
}

/// A key for a file of a job.
fn key(file: &Arc<FileState>) -> usize {
    Arc::as_ptr(file) as usize
}

impl Shared<'_> {
    fn read(&self, pack: &PackId, offset: u64, length: u64) -> Result<Bytes, String> {
        self.rt
            .block_on(self.repo.store().get_range(&pack.key(), offset, length))
            .map_err(|e| e.to_string())
    }

    /// Restores one stretch of a pack: every blob in it to every place it
    /// goes, finishing the files whose last piece it holds.
    pub fn run(&self, job: Job, bufs: &mut BlobBuffers) {
        // A stretch that cannot be read whole (a truncated pack) is read
        // blob by blob, so that what is intact is still restored.
        let stretch = self.read(&job.pack, job.offset, job.length).ok();
        // Writes of this job per file: (left, total), so that a file is
        // closed as soon as its part of the stretch is written.
        let mut left: HashMap<usize, (usize, usize)> = HashMap::new();
        for t in job.blobs.iter().flat_map(|(_, ts)| ts) {
            let c = left.entry(key(&t.file)).or_default();
            c.0 += 1;
            c.1 += 1;
        }
        let mut open: HashMap<usize, Option<File>> = HashMap::new();
        for (entry, targets) in &job.blobs {
            let sealed = match &stretch {
                Some(data) => {
                    let at = (entry.offset - job.offset) as usize;
                    Ok(data.slice(at..at + entry.length as usize))
                }
                None => self.read(&job.pack, entry.offset, entry.length as u64),
            };
            let plain = sealed.and_then(|s| {
                self.repo
                    .sealer()
                    .open_blob_with(entry, &s, bufs)
                    .map_err(|e| e.to_string())
            });
            for t in targets {
                let k = key(&t.file);
                let file = open.entry(k).or_insert_with(|| t.file.open(self.overwrite));
                match (&plain, file) {
                    (Ok(data), Some(f)) => {
                        let extents = t.file.node().extents.as_deref();
                        if let Err(e) = write_mapped(f, extents, t.at, data) {
                            t.file.fail(e.to_string());
                        }
                    }
                    (Err(e), _) => t.file.fail(e.clone()),
                    (Ok(_), None) => {}
                }
                let c = left.get_mut(&k).expect("counted above");
                c.0 -= 1;
                if c.0 == 0 {
                    let file = open.remove(&k).flatten();
                    t.file.written(self, c.1, file);
                }
            }
        }
    }
}
