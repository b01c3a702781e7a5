//! Restoring regular files on a pool of blocking workers: a small file is
//! created, written and finished by one worker in one go; the blobs of a
//! large file are spread over all workers and written at their offsets.
//! Holes of sparse files stay holes.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::{meta, target_path, Failure, RestoreReport};
use crate::engine::progress::Progress;
use crate::engine::walk::Entry;
use crate::repo::blob::{open_blob, BlobEntry};
use crate::repo::tree::Node;
use crate::repo::{PackId, Repository};

/// Files with more blobs than this are split across workers.
const SPLIT_BLOBS: usize = 4;

type Location = (PackId, BlobEntry);

/// A large file being written by several workers.
struct Shared {
    index: usize,
    file: File,
    path: PathBuf,
    remaining: AtomicUsize,
    error: Mutex<Option<String>>,
}

enum Job {
    Whole {
        index: usize,
        dst: PathBuf,
        blobs: Vec<(Location, u64)>,
    },
    Piece {
        shared: Arc<Shared>,
        blob: Location,
        at: u64,
    },
}

/// The outcome of one file: its index in the list, and an error or the
/// metadata warnings.
type Done = (usize, Result<Vec<Failure>, String>);

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
/// data stream; checks that the blobs add up to the recorded size.
fn plan(repo: &Repository, node: &Node) -> Result<Vec<(Location, u64)>, String> {
    let idx = repo.index();
    let mut pos = 0u64;
    let mut out = Vec::with_capacity(node.content.len());
    for id in &node.content {
        let loc = idx
            .get(id)
            .ok_or_else(|| format!("data blob {id} is missing from the repository"))?;
        out.push((loc, pos));
        pos += loc.1.raw_length as u64;
    }
    let expected = node
        .extents
        .as_ref()
        .map_or(node.size, |x| x.iter().map(|e| e.1).sum());
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

struct Worker<'a> {
    repo: &'a Repository,
    rt: tokio::runtime::Handle,
    entries: &'a [&'a Entry],
    overwrite: bool,
    progress: &'a Progress,
}

impl Worker<'_> {
    fn write_blob(
        &self,
        file: &File,
        node: &Node,
        (pack, entry): &Location,
        at: u64,
    ) -> Result<(), String> {
        let sealed = self
            .rt
            .block_on(
                self.repo
                    .store()
                    .get_range(&pack.key(), entry.offset, entry.length as u64),
            )
            .map_err(|e| e.to_string())?;
        let plain = open_blob(self.repo.key(), self.repo.cipher(), entry, &sealed)
            .map_err(|e| e.to_string())?;
        write_mapped(file, node.extents.as_deref(), at, &plain).map_err(|e| e.to_string())
    }

    fn run(&self, job: Job) -> Option<Done> {
        match job {
            Job::Whole { index, dst, blobs } => {
                let e = self.entries[index];
                let result = (|| {
                    let file = create(&dst, &e.node, self.overwrite)?;
                    for (loc, at) in &blobs {
                        if let Err(err) = self.write_blob(&file, &e.node, loc, *at) {
                            drop(file);
                            // A file with a hole where data should be must not pass for good.
                            let _ = std::fs::remove_file(&dst);
                            return Err(err);
                        }
                    }
                    let mut warnings = Vec::new();
                    meta::apply_file(&file, &e.node, &e.path, &mut warnings);
                    self.progress.add_done(1, e.node.size);
                    Ok(warnings)
                })();
                Some((index, result))
            }
            Job::Piece { shared, blob, at } => {
                let node = &self.entries[shared.index].node;
                if shared.error.lock().unwrap().is_none() {
                    if let Err(err) = self.write_blob(&shared.file, node, &blob, at) {
                        shared.error.lock().unwrap().get_or_insert(err);
                    }
                }
                if shared.remaining.fetch_sub(1, Ordering::AcqRel) != 1 {
                    return None;
                }
                let e = self.entries[shared.index];
                let result = match shared.error.lock().unwrap().take() {
                    Some(err) => {
                        let _ = std::fs::remove_file(&shared.path);
                        Err(err)
                    }
                    None => {
                        let mut warnings = Vec::new();
                        meta::apply_file(&shared.file, &e.node, &e.path, &mut warnings);
                        self.progress.add_done(1, e.node.size);
                        Ok(warnings)
                    }
                };
                Some((shared.index, result))
            }
        }
    }
}

/// Restores regular files; returns the snapshot paths restored.
pub async fn restore_files(
    repo: &Arc<Repository>,
    target: &Path,
    files: &[&Entry],
    overwrite: bool,
    progress: &Progress,
    report: &mut RestoreReport,
) -> HashSet<String> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .max(2)
        * 2;
    let (job_tx, job_rx) = async_channel::bounded::<Job>(workers * 2);
    let (done_tx, done_rx) = async_channel::unbounded::<Done>();
    let rt = tokio::runtime::Handle::current();
    let mut failed_early = Vec::new();
    let mut done = HashSet::new();
    // The workers block on I/O; this task waits for them without holding
    // up the runtime's other tasks.
    tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            for _ in 0..workers {
                let (rx, tx, rt) = (job_rx.clone(), done_tx.clone(), rt.clone());
                scope.spawn(move || {
                    let w = Worker {
                        repo,
                        rt,
                        entries: files,
                        overwrite,
                        progress,
                    };
                    while let Ok(job) = rx.recv_blocking() {
                        if let Some(d) = w.run(job) {
                            let _ = tx.send_blocking(d);
                        }
                    }
                });
            }
            drop(done_tx);
            // Feed jobs from this thread; results are drained after the scope.
            let mut feed = || {
                for (index, e) in files.iter().enumerate() {
                    let dst = target_path(target, &e.path);
                    let blobs = match plan(repo, &e.node) {
                        Ok(b) => b,
                        Err(err) => {
                            failed_early.push((index, err));
                            continue;
                        }
                    };
                    let job = if blobs.len() <= SPLIT_BLOBS {
                        Job::Whole { index, dst, blobs }
                    } else {
                        let file = match create(&dst, &e.node, overwrite) {
                            Ok(f) => f,
                            Err(err) => {
                                failed_early.push((index, err));
                                continue;
                            }
                        };
                        let shared = Arc::new(Shared {
                            index,
                            file,
                            path: dst,
                            remaining: AtomicUsize::new(blobs.len()),
                            error: Mutex::new(None),
                        });
                        for (blob, at) in blobs {
                            if job_tx
                                .send_blocking(Job::Piece {
                                    shared: shared.clone(),
                                    blob,
                                    at,
                                })
                                .is_err()
                            {
                                return;
                            }
                        }
                        continue;
                    };
                    if job_tx.send_blocking(job).is_err() {
                        return;
                    }
                }
            };
            feed();
            job_tx.close();
        })
    });
    let mut results: Vec<Done> = failed_early.into_iter().map(|(i, e)| (i, Err(e))).collect();
    while let Ok(d) = done_rx.try_recv() {
        results.push(d);
    }
    results.sort_by_key(|(i, _)| *i);
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
