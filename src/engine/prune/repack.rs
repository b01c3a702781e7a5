//! Copying the used blobs of mostly unused packs into new packs, verified
//! on the way, then recording them in a new index object.
//!
//! Three stages overlap: old packs are read and their used blobs verified
//! on blocking threads ([`READ_AHEAD`] packs ahead), their sealed bytes are
//! copied into the pack being filled, and a full pack is sealed and stored
//! by a task of its own while the next one fills.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::FuturesOrdered;
use futures::StreamExt;
use tokio::task::JoinHandle;

use super::{EngineError, EngineResult, Tally};
use crate::catalog::PackUsage;
use crate::format::blob::{BlobBuffers, BlobEntry};
use crate::format::index::{IndexFile, IndexPack};
use crate::format::pack::PackWriter;
use crate::pipeline;
use crate::repo::{RepoError, Repository};

/// Old packs read and verified ahead of the writer: one being read while
/// another is verified, on another thread.
const READ_AHEAD: usize = 2;

/// An old pack's used blobs, each verified: its entry and sealed bytes.
struct Verified {
    blobs: Vec<(BlobEntry, Bytes)>,
}

/// Repacks `packs`; returns the new packs written. The old packs stay
/// until a later prune deletes them (the caller plans them).
pub async fn repack(repo: &Arc<Repository>, packs: &[PackUsage]) -> EngineResult<Tally> {
    let target = repo.config().pack_size as usize;
    let mut writer = PackWriter::with_capacity(target);
    let mut index = Indexing::default();
    let mut written = Tally::default();
    let mut storing: Option<JoinHandle<EngineResult<IndexPack>>> = None;
    let mut queue = packs.iter();
    let mut reads = FuturesOrdered::new();
    for u in queue.by_ref().take(READ_AHEAD) {
        reads.push_back(tokio::spawn(used_blobs(repo.clone(), *u)));
    }
    while let Some(read) = reads.next().await {
        if let Some(u) = queue.next() {
            reads.push_back(tokio::spawn(used_blobs(repo.clone(), *u)));
        }
        let pack = read.map_err(stopped)??;
        for (e, sealed) in &pack.blobs {
            writer.add_copy(e, sealed);
            if writer.is_full(target) {
                let full = std::mem::replace(&mut writer, PackWriter::with_capacity(target));
                if let Some(prev) = storing.replace(tokio::spawn(store(repo.clone(), full))) {
                    index.add(repo, stored(prev, &mut written).await?).await?;
                }
            }
        }
    }
    if let Some(prev) = storing.take() {
        index.add(repo, stored(prev, &mut written).await?).await?;
    }
    if !writer.is_empty() {
        let last = store(repo.clone(), writer).await?;
        written.count(last.size);
        index.add(repo, last).await?;
    }
    index.finish(repo).await?;
    Ok(written)
}

/// The new packs not yet in an index object, and the index object being
/// stored.
#[derive(Default)]
struct Indexing {
    packs: Vec<IndexPack>,
    saving: Option<JoinHandle<EngineResult<()>>>,
}

impl Indexing {
    /// Adds a stored pack; once the packs waiting are due for an index
    /// object by a backup's rule ([`pipeline::index_due`]), starts storing
    /// it by a task (after the one before is stored), so that the
    /// catalog's rows for them are not all written at the end.
    async fn add(&mut self, repo: &Arc<Repository>, pack: IndexPack) -> EngineResult<()> {
        self.packs.push(pack);
        let every = (pipeline::INDEX_EVERY_PACKS, pipeline::INDEX_EVERY_BLOBS);
        if pipeline::index_due(&self.packs, every) {
            self.wait().await?;
            let index = IndexFile {
                packs: std::mem::take(&mut self.packs),
            };
            let repo = repo.clone();
            self.saving = Some(tokio::spawn(async move {
                repo.save_index(&index).await?;
                Ok(())
            }));
        }
        Ok(())
    }

    async fn wait(&mut self) -> EngineResult<()> {
        match self.saving.take() {
            Some(task) => task.await.map_err(stopped)?,
            None => Ok(()),
        }
    }

    /// Stores the index object of the packs left, and waits for every one.
    async fn finish(mut self, repo: &Repository) -> EngineResult<()> {
        self.wait().await?;
        if !self.packs.is_empty() {
            repo.save_index(&IndexFile { packs: self.packs }).await?;
        }
        Ok(())
    }
}

fn stopped(e: tokio::task::JoinError) -> EngineError {
    EngineError::Usage(format!("repacking stopped: {e}"))
}

/// Gaps between used blobs of at most this many bytes are read through
/// rather than skipped, and a pack takes at most [`MAX_SPANS`] reads: a
/// mostly unused pack costs little more than its used bytes, without a
/// request per blob.
const GAP: u64 = 1 << 20;
const MAX_SPANS: usize = 16;

/// The spans of a pack of `size` bytes that hold `used` (sorted by
/// offset), each as `(start, end)`: the whole pack, `(0, size)`, when they
/// cover half of it or more; `None` if an entry's end overflows.
fn spans(used: &[BlobEntry], size: u64) -> Option<Vec<(u64, u64)>> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for e in used {
        let end = e.offset.checked_add(u64::from(e.length))?;
        match out.last_mut() {
            Some((_, last)) if e.offset <= last.saturating_add(GAP) => *last = (*last).max(end),
            _ => out.push((e.offset, end)),
        }
    }
    if out.len() > MAX_SPANS {
        out = vec![(out[0].0, out[out.len() - 1].1)];
    }
    let spanned: u64 = out.iter().map(|(start, end)| end - start).sum();
    if spanned >= size / 2 {
        out = vec![(0, size)];
    }
    Some(out)
}

/// The used blobs of one pack, read in [`spans`], each checked to open
/// and match its id (only those are copied), in pack order.
async fn used_blobs(repo: Arc<Repository>, u: PackUsage) -> EngineResult<Verified> {
    let used = repo.used_entries(u.pack).await?;
    let key = u.pack.key();
    let spans =
        spans(&used, u.size).ok_or_else(|| RepoError::corrupt(&key, "an entry's end overflows"))?;
    let mut pieces = Vec::with_capacity(spans.len());
    // One span at a time: the packs read ahead give the parallelism.
    for &(start, end) in &spans {
        pieces.push(match (start, end) == (0, u.size) {
            // Mostly needed: the whole pack in one read, into a buffer of
            // the size every other whole pack reuses.
            true => repo.store().get(&key).await?,
            false => repo.store().get_range(&key, start, end - start).await?,
        });
    }
    let short = || RepoError::corrupt(&key, "shorter than its index says");
    let mut blobs = Vec::with_capacity(used.len());
    let mut at = spans.iter().zip(&pieces).peekable();
    for e in used {
        while at.next_if(|((_, end), _)| e.offset >= *end).is_some() {}
        let ((start, _), piece) = at.peek().ok_or_else(short)?;
        let from = (e.offset - start) as usize;
        let sealed = from
            .checked_add(e.length as usize)
            .filter(|&to| to <= piece.len())
            .map(|to| piece.slice(from..to))
            .ok_or_else(short)?;
        blobs.push((e, sealed));
    }
    let sealer = repo.sealer().clone();
    let verify = move || -> Result<Verified, RepoError> {
        let mut bufs = BlobBuffers::default();
        for (e, sealed) in &blobs {
            sealer.open_blob_with(e, sealed, &mut bufs)?;
        }
        Ok(Verified { blobs })
    };
    tokio::task::spawn_blocking(verify)
        .await
        .map_err(stopped)?
        .map_err(Into::into)
}

/// Seals and stores a full pack.
async fn store(repo: Arc<Repository>, w: PackWriter) -> EngineResult<IndexPack> {
    let sealer = repo.sealer().clone();
    let p = tokio::task::spawn_blocking(move || sealer.finish_pack(w))
        .await
        .map_err(stopped)?;
    let size = p.data.len() as u64;
    repo.put_pack(&p.id, p.data).await?;
    Ok(IndexPack {
        id: p.id,
        size,
        blobs: p.entries,
    })
}

/// Waits for a pack being stored and counts it.
async fn stored(
    task: JoinHandle<EngineResult<IndexPack>>,
    written: &mut Tally,
) -> EngineResult<IndexPack> {
    let p = task.await.map_err(stopped)??;
    written.count(p.size);
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::{BlobId, BlobType};

    fn entry(offset: u64, length: u32) -> BlobEntry {
        BlobEntry {
            kind: BlobType::Data,
            codec: 0,
            id: BlobId([0; 32]),
            offset,
            length,
            raw_length: length,
        }
    }

    #[test]
    fn spans_read_through_small_gaps_and_skip_large_ones() {
        let mib = 1u64 << 20;
        let used = [
            entry(0, 100),
            entry(100, 50),         // adjacent
            entry(150 + mib, 10),   // a gap of exactly GAP: read through
            entry(5 * mib, 20),     // a larger gap: a span of its own
            entry(5 * mib + 5, 10), // inside the one before (a hostile index)
        ];
        let pack = 64 * mib;
        assert_eq!(
            spans(&used, pack),
            Some(vec![(0, 160 + mib), (5 * mib, 5 * mib + 20)])
        );
        assert_eq!(spans(&[], pack), Some(vec![]));
        // Spans covering half the pack or more: the whole pack, one read.
        assert_eq!(spans(&used, 2 * mib), Some(vec![(0, 2 * mib)]));
    }

    #[test]
    fn spans_are_one_read_past_the_limit_and_refuse_overflowing_entries() {
        let far: Vec<BlobEntry> = (0..=MAX_SPANS as u64)
            .map(|i| entry(i * 4 * GAP, 10))
            .collect();
        let last = MAX_SPANS as u64 * 4 * GAP + 10;
        let pack = 1 << 40;
        assert_eq!(spans(&far, pack), Some(vec![(0, last)]));
        let within: Vec<BlobEntry> = far[..MAX_SPANS].to_vec();
        assert_eq!(spans(&within, pack).map(|s| s.len()), Some(MAX_SPANS));
        assert_eq!(spans(&[entry(u64::MAX - 5, 10)], pack), None);
    }
}
