//! Restoring regular files: blobs fetched and decoded in parallel, written
//! at their offsets, holes of sparse files left as holes.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use tokio::sync::Semaphore;

use super::{meta, target_path, Failure, RestoreReport};
use crate::engine::progress::Progress;
use crate::engine::walk::Entry;
use crate::repo::blob::open_blob;
use crate::repo::tree::Node;
use crate::repo::Repository;

/// Files restored at once, and blobs in flight across all of them (each up
/// to the maximum chunk size, so this bounds memory).
const PARALLEL_FILES: usize = 16;
const BLOBS_IN_FLIGHT: usize = 8;

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

async fn restore_one(
    repo: &Arc<Repository>,
    sem: &Semaphore,
    dst: PathBuf,
    node: &Node,
    overwrite: bool,
) -> Result<(), String> {
    let locations = {
        let idx = repo.index();
        node.content
            .iter()
            .map(|id| {
                idx.get(id)
                    .ok_or_else(|| format!("data blob {id} is missing from the repository"))
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    let data_len: u64 = locations.iter().map(|(_, e)| e.raw_length as u64).sum();
    let expected = node
        .extents
        .as_ref()
        .map_or(node.size, |x| x.iter().map(|e| e.1).sum());
    if data_len != expected {
        return Err(format!(
            "the snapshot records {expected} bytes but its blobs hold {data_len}"
        ));
    }
    let (path, size) = (dst.clone(), node.size);
    let file = tokio::task::spawn_blocking(move || -> Result<File, String> {
        let create = || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW)
                .mode(0o600)
                .open(&path)
                .map(drop)
        };
        meta::replace_with(&path, overwrite, create)?;
        let f = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| e.to_string())?;
        f.set_len(size).map_err(|e| e.to_string())?;
        Ok(f)
    })
    .await
    .map_err(|e| e.to_string())??;
    let file = Arc::new(file);
    let extents = Arc::new(node.extents.clone());
    let mut pos = 0u64;
    let jobs: Vec<_> = locations
        .into_iter()
        .map(|(pack, entry)| {
            let at = pos;
            pos += entry.raw_length as u64;
            (pack, entry, at)
        })
        .collect();
    let result = futures::stream::iter(jobs)
        .map(|(pack, entry, at)| {
            let (file, extents, repo) = (file.clone(), extents.clone(), repo.clone());
            async move {
                let _permit = sem.acquire().await.expect("semaphore open");
                let sealed = repo
                    .store()
                    .get_range(&pack.key(), entry.offset, entry.length as u64)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::task::spawn_blocking(move || {
                    let plain = open_blob(repo.key(), repo.cipher(), &entry, &sealed)
                        .map_err(|e| e.to_string())?;
                    write_mapped(&file, extents.as_deref(), at, &plain).map_err(|e| e.to_string())
                })
                .await
                .map_err(|e| e.to_string())?
            }
        })
        .buffer_unordered(4)
        .try_collect::<Vec<()>>()
        .await;
    if let Err(e) = result {
        drop(file);
        // A file with a hole where data should be must not pass for good.
        let _ = std::fs::remove_file(&dst);
        return Err(e);
    }
    Ok(())
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
    let sem = Semaphore::new(BLOBS_IN_FLIGHT);
    let mut done = HashSet::new();
    let mut results = futures::stream::iter(files.iter())
        .map(|e| {
            let dst = target_path(target, &e.path);
            let sem = &sem;
            async move {
                let r = restore_one(repo, sem, dst.clone(), &e.node, overwrite).await;
                let mut warnings = Vec::new();
                if r.is_ok() {
                    let node = e.node.clone();
                    let path = e.path.clone();
                    warnings = tokio::task::spawn_blocking(move || {
                        let mut w = Vec::new();
                        meta::apply(&dst, &node, &path, &mut w);
                        w
                    })
                    .await
                    .unwrap_or_default();
                }
                (e, r, warnings)
            }
        })
        .buffer_unordered(PARALLEL_FILES);
    while let Some((e, r, warnings)) = results.next().await {
        report.warnings.extend(warnings);
        match r {
            Ok(()) => {
                report.files += 1;
                report.bytes += e.node.size;
                progress.add_done(1, e.node.size);
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
