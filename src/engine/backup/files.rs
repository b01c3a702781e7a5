//! File readers: a pool of blocking workers that read changed files, chunk
//! and hash them, and hand new chunks to the pipeline.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::engine::progress::Progress;
use crate::format::blob::BlobType;
use crate::format::config::ChunkerParams;
use crate::pipeline::chunker::Chunker;
use crate::pipeline::{Closed, Compressor, Pipeline, RawBlob};
use crate::repo::{BlobId, Repository};
use crate::source::block::{Device, ZeroSkipReader};
use crate::source::fs::{data_extents, ExtentReader};

/// The content of a file as stored.
#[derive(Debug, Clone)]
pub struct FileData {
    pub content: Vec<BlobId>,
    pub extents: Option<Vec<(u64, u64)>>,
    pub size: u64,
    /// Bytes already counted in the progress while reading (a device).
    pub progressed: u64,
}

pub enum Source {
    Path(PathBuf),
    Bytes(Vec<u8>),
    /// A block device, read whole; all-zero regions become holes.
    Device(PathBuf),
}

/// What a reader reports back: the content, or why the file was skipped;
/// plus a warning when it changed while being read.
pub struct Outcome {
    pub data: Result<FileData, String>,
    pub warning: Option<String>,
}

/// Files for one reader, answered together: the small files of a
/// directory travel as one job, so that each costs no thread hand-off of
/// its own.
pub struct Job {
    pub sources: Vec<Source>,
    pub reply: oneshot::Sender<Vec<Outcome>>,
}

pub struct Reader {
    pub repo: Arc<Repository>,
    pub pipe: Arc<Pipeline>,
    pub chunker: ChunkerParams,
    pub progress: Arc<Progress>,
}

/// A device's reader that counts the bytes it has passed (zeros included)
/// in the progress as it goes: one device is one file of many gigabytes.
struct Counted<'a> {
    inner: ZeroSkipReader,
    progress: &'a Progress,
    counted: u64,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let at = self.inner.position();
        self.progress.add_done(0, at - self.counted);
        self.counted = at;
        Ok(n)
    }
}

impl Reader {
    /// Runs jobs until the channel closes.
    pub fn run(&self, jobs: async_channel::Receiver<Job>) {
        let mut ctx = ThreadCtx {
            chunker: Chunker::new(&self.chunker),
            zstd: self.pipe.compressor(),
        };
        while let Ok(job) = jobs.recv_blocking() {
            let outcomes = (job.sources.into_iter())
                .map(|source| match source {
                    Source::Path(p) => self.read_path(&mut ctx, &p),
                    Source::Device(p) => Outcome {
                        data: self.read_device(&mut ctx, &p).map_err(|e| e.to_string()),
                        warning: None,
                    },
                    Source::Bytes(b) => Outcome {
                        data: self
                            .store_stream(&mut ctx, &b[..], b.len() as u64)
                            .map_err(|e| e.to_string()),
                        warning: None,
                    },
                })
                .collect();
            let _ = job.reply.send(outcomes);
        }
    }

    fn open(path: &PathBuf) -> std::io::Result<File> {
        let try_open = |flags| OpenOptions::new().read(true).custom_flags(flags).open(path);
        // O_NOATIME keeps access times as they were; only the owner (or
        // root) may ask for it.
        try_open(libc::O_NOFOLLOW | libc::O_NOATIME).or_else(|_| try_open(libc::O_NOFOLLOW))
    }

    fn read_path(&self, ctx: &mut ThreadCtx, path: &PathBuf) -> Outcome {
        let skip = |e: String| Outcome {
            data: Err(e),
            warning: None,
        };
        let file = match Self::open(path) {
            Ok(f) => f,
            Err(e) => return skip(e.to_string()),
        };
        let before = match file.metadata() {
            Ok(m) if m.is_file() => m,
            Ok(_) => return skip("no longer a regular file".into()),
            Err(e) => return skip(e.to_string()),
        };
        let extents = data_extents(&file, &before);
        let result = match &extents {
            Some(ex) => {
                let data_len = ex.iter().map(|e| e.1).sum();
                self.store_stream(
                    ctx,
                    ExtentReader::new(file.try_clone().expect("dup"), ex.clone()),
                    data_len,
                )
            }
            None => self.store_stream(ctx, &file, before.len()),
        };
        let read = match result {
            Ok(d) => d,
            Err(e) => return skip(e.to_string()),
        };
        let warning = match file.metadata() {
            Ok(after)
                if after.len() != before.len()
                    || after.mtime_nsec() != before.mtime_nsec()
                    || after.mtime() != before.mtime() =>
            {
                Some("changed while being read; the snapshot holds the bytes read".into())
            }
            _ => None,
        };
        let data = FileData {
            size: if extents.is_some() {
                before.len()
            } else {
                read.size
            },
            extents,
            content: read.content,
            progressed: 0,
        };
        Outcome {
            data: Ok(data),
            warning,
        }
    }

    /// A block device: its non-zero blocks chunked as one stream, the zero
    /// ones left as holes.
    fn read_device(&self, ctx: &mut ThreadCtx, path: &Path) -> std::io::Result<FileData> {
        let dev = Device::open(path)?;
        let size = dev.size;
        let mut data = Counted {
            inner: dev.data(),
            progress: &self.progress,
            counted: 0,
        };
        let read = self.store_stream(ctx, &mut data, size)?;
        let extents = data.inner.extents().to_vec();
        let full = extents.len() == 1 && extents[0] == (0, size);
        Ok(FileData {
            content: read.content,
            extents: (!full).then_some(extents),
            size,
            progressed: data.counted,
        })
    }

    /// Chunks a stream, stores new chunks, and returns the chunk ids. Chunks
    /// of large files go to the sealing workers so that one file uses every
    /// core; the others are sealed on this thread, saving a hand-off.
    fn store_stream<R: Read>(
        &self,
        ctx: &mut ThreadCtx,
        reader: R,
        size_hint: u64,
    ) -> std::io::Result<FileData> {
        let mut content = Vec::new();
        let large = size_hint > 4 * self.chunker.max_size as u64;
        let closed = |Closed| std::io::Error::other("the write pipeline stopped");
        let mut store = |data: &[u8], zstd: &mut Compressor| -> std::io::Result<()> {
            let id = self.repo.sealer().blob_id(data);
            if self.pipe.claim(BlobType::Data, &id) {
                if large {
                    self.pipe
                        .submit_blocking(RawBlob {
                            kind: BlobType::Data,
                            id,
                            data: data.to_vec(),
                        })
                        .map_err(closed)?;
                } else {
                    self.pipe
                        .seal_and_add(zstd, BlobType::Data, id, data)
                        .map_err(closed)?;
                }
            }
            content.push(id);
            Ok(())
        };
        let size = if size_hint < self.chunker.min_size as u64 {
            // Small files are one chunk: read them whole, skip the chunker.
            let mut buf = Vec::with_capacity(size_hint as usize);
            reader
                .take(self.chunker.max_size as u64)
                .read_to_end(&mut buf)?;
            if !buf.is_empty() {
                store(&buf, &mut ctx.zstd)?;
            }
            buf.len() as u64
        } else {
            let zstd = &mut ctx.zstd;
            ctx.chunker.for_each(reader, |c| store(c, zstd))?
        };
        Ok(FileData {
            content,
            extents: None,
            size,
            progressed: 0,
        })
    }
}

/// What each reader thread keeps from file to file.
struct ThreadCtx {
    chunker: Chunker,
    zstd: Compressor,
}
