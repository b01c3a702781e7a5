//! Restoring regular files pack by pack: the blobs the files need are
//! grouped by the pack holding them, each stretch of a pack is read with one
//! request, and each blob is opened once and written to every file (and
//! offset) that uses it. Stretches are restored by a pool of blocking
//! workers; a file is created by the first piece that reaches it and
//! finished (metadata applied) by the last. Holes of sparse files stay
//! holes.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::{meta, target_path, Failure, RestoreReport};
use crate::engine::progress::Progress;
use crate::engine::walk::{Entry, SnapPath};
use crate::format::blob::{BlobBuffers, BlobEntry};
use crate::format::tree::Node;
use crate::repo::{BlobId, PackId, Repository};

/// Blobs of one pack at most this far apart are read with one request.
const MERGE_GAP: u64 = 1 << 20;
/// Reads stop growing past this size, so that work spreads over the
/// workers and memory stays bounded (workers x this).
const READ_SIZE: u64 = 4 << 20;

type Location = (PackId, BlobEntry);

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
fn plan(repo: &Repository, node: &Node) -> Result<Vec<(Location, u64)>, String> {
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

/// Where a blob's content goes: a file (its index in the list) and the
/// position in that file's data stream.
#[derive(Debug, Clone, Copy)]
struct Target {
    file: usize,
    at: u64,
}

/// One read: a stretch of a pack and the blobs in it, in offset order.
struct Job {
    pack: PackId,
    offset: u64,
    length: u64,
    blobs: Vec<(BlobEntry, Vec<Target>)>,
}

/// A file being restored.
struct FileState {
    path: PathBuf,
    /// Blob writes still to do.
    remaining: AtomicUsize,
    inner: Mutex<FileInner>,
}

#[derive(Default)]
struct FileInner {
    created: bool,
    error: Option<String>,
}

/// The outcome of one file: its index in the list, and an error or the
/// metadata warnings.
type Done = (usize, Result<Vec<Failure>, String>);

struct Restorer<'a> {
    repo: &'a Repository,
    rt: tokio::runtime::Handle,
    entries: &'a [&'a Entry],
    files: Vec<FileState>,
    overwrite: bool,
    progress: &'a Progress,
}

impl Restorer<'_> {
    /// Opens file `i` for writing, creating it on first use; `None` once it
    /// has failed.
    fn open(&self, i: usize) -> Option<File> {
        let st = &self.files[i];
        let mut inner = st.inner.lock().unwrap();
        if inner.error.is_some() {
            return None;
        }
        let opened = match inner.created {
            true => OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&st.path)
                .map_err(|e| e.to_string()),
            false => create(&st.path, &self.entries[i].node, self.overwrite),
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

    fn fail(&self, i: usize, error: String) {
        self.files[i]
            .inner
            .lock()
            .unwrap()
            .error
            .get_or_insert(error);
    }

    /// Records `n` writes to file `i` as done; after its last one, applies
    /// its metadata (or removes it when a piece failed: a file with a hole
    /// where data should be must not pass for good).
    fn written(&self, i: usize, n: usize, file: Option<File>) -> Option<Done> {
        let st = &self.files[i];
        if st.remaining.fetch_sub(n, Ordering::AcqRel) != n {
            return None;
        }
        // An empty file is created here; a file that failed opens as None.
        let file = file.or_else(|| self.open(i));
        let (created, error) = {
            let mut inner = st.inner.lock().unwrap();
            (inner.created, inner.error.take())
        };
        let e = self.entries[i];
        let result = match (error, file) {
            (None, Some(file)) => {
                let mut warnings = Vec::new();
                meta::apply_file(&file, &e.node, &e.path, &mut warnings);
                self.progress.add_done(1, e.node.size);
                Ok(warnings)
            }
            (error, _) => {
                if created {
                    let _ = std::fs::remove_file(&st.path);
                }
                Err(error.unwrap_or_else(|| "could not be opened".into()))
            }
        };
        Some((i, result))
    }

    fn read(&self, pack: &PackId, offset: u64, length: u64) -> Result<Bytes, String> {
        self.rt
            .block_on(self.repo.store().get_range(&pack.key(), offset, length))
            .map_err(|e| e.to_string())
    }

    /// Restores one stretch of a pack: every blob in it to every place it
    /// goes. Returns the files finished.
    fn run(&self, job: Job, bufs: &mut BlobBuffers) -> Vec<Done> {
        let mut finished = Vec::new();
        // A stretch that cannot be read whole (a truncated pack) is read
        // blob by blob, so that what is intact is still restored.
        let stretch = self.read(&job.pack, job.offset, job.length).ok();
        // Writes of this job per file: (left, total), so that a file is
        // closed as soon as its part of the stretch is written.
        let mut left: HashMap<usize, (usize, usize)> = HashMap::new();
        for (_, targets) in &job.blobs {
            for t in targets {
                let c = left.entry(t.file).or_default();
                c.0 += 1;
                c.1 += 1;
            }
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
                let file = open.entry(t.file).or_insert_with(|| self.open(t.file));
                match (&plain, file) {
                    (Ok(data), Some(f)) => {
                        let extents = self.entries[t.file].node.extents.as_deref();
                        if let Err(e) = write_mapped(f, extents, t.at, data) {
                            self.fail(t.file, e.to_string());
                        }
                    }
                    (Err(e), _) => self.fail(t.file, e.clone()),
                    (Ok(_), None) => {}
                }
                let c = left.get_mut(&t.file).expect("counted above");
                c.0 -= 1;
                if c.0 == 0 {
                    let file = open.remove(&t.file).flatten();
                    finished.extend(self.written(t.file, c.1, file));
                }
            }
        }
        finished
    }
}

/// The reads that restore `files`: each file's blobs grouped by pack, in
/// the order the files first need the packs, cut into stretches. Files that
/// cannot be planned, and empty ones, are returned apart.
fn jobs(
    repo: &Repository,
    files: &[&Entry],
    states: &[FileState],
) -> (Vec<Job>, Vec<(usize, String)>, Vec<usize>) {
    let mut packs: Vec<PackId> = Vec::new();
    let mut by_pack: HashMap<PackId, HashMap<BlobId, (BlobEntry, Vec<Target>)>> = HashMap::new();
    let (mut failed, mut empty) = (Vec::new(), Vec::new());
    for (i, e) in files.iter().enumerate() {
        let blobs = match plan(repo, &e.node) {
            Ok(b) => b,
            Err(err) => {
                failed.push((i, err));
                continue;
            }
        };
        if blobs.is_empty() {
            empty.push(i);
            continue;
        }
        states[i].remaining.store(blobs.len(), Ordering::Relaxed);
        for ((pack, entry), at) in blobs {
            let blobs = by_pack.entry(pack).or_insert_with(|| {
                packs.push(pack);
                HashMap::new()
            });
            blobs
                .entry(entry.id)
                .or_insert_with(|| (entry, Vec::new()))
                .1
                .push(Target { file: i, at });
        }
    }
    let mut out = Vec::new();
    for pack in packs {
        let mut blobs: Vec<_> = by_pack
            .remove(&pack)
            .unwrap_or_default()
            .into_values()
            .collect();
        blobs.sort_by_key(|(e, _)| e.offset);
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
    (out, failed, empty)
}

/// Restores regular files; returns the snapshot paths restored.
pub async fn restore_files(
    repo: &Arc<Repository>,
    target: &Path,
    files: &[&Entry],
    overwrite: bool,
    progress: &Progress,
    report: &mut RestoreReport,
) -> HashSet<SnapPath> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .max(2)
        * 2;
    let restorer = Restorer {
        repo,
        rt: tokio::runtime::Handle::current(),
        entries: files,
        files: files
            .iter()
            .map(|e| FileState {
                path: target_path(target, &e.path),
                remaining: AtomicUsize::new(0),
                inner: Mutex::default(),
            })
            .collect(),
        overwrite,
        progress,
    };
    let (jobs, failed_early, empty) = jobs(repo, files, &restorer.files);
    let mut results: Vec<Done> = failed_early.into_iter().map(|(i, e)| (i, Err(e))).collect();
    let (job_tx, job_rx) = async_channel::bounded::<Job>(workers);
    let (done_tx, done_rx) = async_channel::unbounded::<Done>();
    // The workers block on I/O; this task waits for them without holding
    // up the runtime's other tasks.
    tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            for _ in 0..workers {
                let (rx, tx, r) = (job_rx.clone(), done_tx.clone(), &restorer);
                scope.spawn(move || {
                    let mut bufs = BlobBuffers::default();
                    while let Ok(job) = rx.recv_blocking() {
                        for d in r.run(job, &mut bufs) {
                            let _ = tx.send_blocking(d);
                        }
                    }
                });
            }
            drop(done_tx);
            // Empty files (and sparse ones that are all hole) are made
            // here while the workers start on the data.
            for i in empty {
                results.extend(restorer.written(i, 0, None));
            }
            for job in jobs {
                if job_tx.send_blocking(job).is_err() {
                    break;
                }
            }
            job_tx.close();
        })
    });
    while let Ok(d) = done_rx.try_recv() {
        results.push(d);
    }
    record(files, results, report)
}

/// Adds each file's outcome to the report; returns the paths restored.
fn record(
    files: &[&Entry],
    mut results: Vec<Done>,
    report: &mut RestoreReport,
) -> HashSet<SnapPath> {
    results.sort_by_key(|(i, _)| *i);
    let mut done = HashSet::new();
    for (index, r) in results {
        let e = files[index];
        match r {
            Ok(warnings) => {
                report.warnings.extend(warnings);
                report.files += 1;
                report.bytes += e.node.size;
                done.insert(e.path.clone());
            }
            Err(error) => {
                tracing::warn!(path = %e.path, error = %error, "file not restored");
                report.failed.push(Failure {
                    path: e.path.clone(),
                    error,
                });
            }
        }
    }
    done
}
