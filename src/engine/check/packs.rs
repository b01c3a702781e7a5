//! The packs of a check: those the index names against those the store
//! holds (sizes from the listing), every index entry within its pack, and
//! with `--read-data` every pack's bytes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;

use super::{Bad, CheckReport};
use crate::engine::EngineResult;
use crate::format::blob::ENTRY_LEN;
use crate::repo::{BlobEntry, BlobId, PackId, Repository};

/// The smallest sealed pack header for `n` entries, with the trailing
/// length: nonce, magic, version, count, entries, tag, u32.
fn min_trailer(n: usize) -> u64 {
    (24 + 9 + n * ENTRY_LEN + 16 + 4) as u64
}

/// The index entries of a pack of `size` bytes that cannot be right: past
/// the blob area that its smallest possible header leaves, wrapping, or
/// overlapping another entry.
pub(super) fn out_of_bounds(entries: &[BlobEntry], size: u64) -> Vec<(BlobId, String)> {
    let Some(area) = size.checked_sub(min_trailer(entries.len())) else {
        let why = format!("its pack of {size} bytes is too short to hold a header for its blobs");
        return entries.iter().map(|e| (e.id, why.clone())).collect();
    };
    let mut sorted: Vec<&BlobEntry> = entries.iter().collect();
    sorted.sort_by_key(|e| e.offset);
    let mut end = 0u64;
    let mut out = Vec::new();
    for e in sorted {
        let why = match e.end() {
            None => format!("offset {} and length {} wrap around", e.offset, e.length),
            Some(x) if x > area => format!(
                "index entry (offset {}, length {}) lies past the end of the pack's {area} bytes of blobs (the pack is {size} bytes)",
                e.offset, e.length
            ),
            Some(_) if e.offset < end => format!("index entry at offset {} overlaps another blob", e.offset),
            Some(x) => {
                end = x;
                continue;
            }
        };
        out.push((e.id, why));
    }
    out
}

/// Compares the packs the index names with those the store holds, and
/// checks every index entry against its pack's listed size; returns the
/// packs that can be read.
pub(super) async fn check_packs(
    repo: &Arc<Repository>,
    report: &mut CheckReport,
    bad: &mut Bad,
) -> EngineResult<Vec<PackId>> {
    let stored: HashMap<PackId, u64> = repo
        .store()
        .list(crate::format::ObjectKind::Pack.prefix())
        .await?
        .into_iter()
        .filter_map(|m| Some((crate::format::id::id_from_key::<PackId>(&m.key)?, m.size)))
        .collect();
    let indexed = repo.indexed_packs().await?;
    let indexed_ids: HashSet<PackId> = indexed.iter().map(|(p, _)| *p).collect();
    let mut readable = Vec::new();
    for (pack, size) in &indexed {
        let entries = repo.pack_entries(*pack).await?;
        let reason = match stored.get(pack) {
            None => Some("missing".to_string()),
            Some(s) if s != size => Some(format!(
                "size {s} differs from the {size} bytes the index records (truncated or replaced)"
            )),
            Some(_) => None,
        };
        let Some(r) = reason else {
            for (id, why) in out_of_bounds(&entries, *size) {
                report.error(format!("{} blob {id}", pack.key()), why.clone());
                bad.insert(id, why);
            }
            readable.push(*pack);
            continue;
        };
        report.error(pack.key(), r.clone());
        for b in &entries {
            bad.insert(b.id, format!("pack {} is {r}", pack.short()));
        }
    }
    for pack in stored.keys().filter(|p| !indexed_ids.contains(p)) {
        report.warnings.push(super::Problem {
            object: pack.key(),
            error: "not named by any index (left by an interrupted backup, or its index object \
                    was lost: `ferry repair index` indexes it again, prune reclaims it otherwise)"
                .into(),
        });
    }
    report.packs = indexed.len() as u64;
    Ok(readable)
}

/// Reads every readable pack once, several at a time, and checks each blob
/// the index places in it.
pub(super) async fn read_packs(
    repo: &Arc<Repository>,
    readable: Vec<PackId>,
    report: &mut CheckReport,
    bad: &mut Bad,
) -> EngineResult<()> {
    let jobs = readable.into_iter().map(|pack| {
        let repo = repo.clone();
        async move {
            let expected = repo.pack_entries(pack).await?;
            let ids: Vec<BlobId> = expected.iter().map(|e| e.id).collect();
            let data = repo.store().get(&pack.key()).await;
            let result =
                tokio::task::spawn_blocking(move || read_pack(&repo, pack, data, &expected)).await;
            let result = result.map_err(|e| e.to_string()).and_then(|r| r);
            Ok::<_, crate::engine::EngineError>((pack, result, ids))
        }
    });
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let mut results = futures::stream::iter(jobs).buffer_unordered(cores + 1);
    while let Some(done) = results.next().await {
        let (pack, result, ids) = done?;
        record_pack(pack, result, ids, report, bad);
    }
    Ok(())
}

struct PackCheck {
    bytes: u64,
    blobs: u64,
    pack_error: Option<String>,
    bad: Vec<(BlobId, String)>,
}

/// Checks one pack's bytes: its header, and every blob the index places in
/// it, each on its own (a damaged pack may still hold good blobs).
fn read_pack(
    repo: &Repository,
    pack: PackId,
    data: crate::store::StoreResult<bytes::Bytes>,
    expected: &[BlobEntry],
) -> Result<PackCheck, String> {
    let data = data.map_err(|e| e.to_string())?;
    let mut bad: HashMap<BlobId, String> = HashMap::new();
    let pack_error = match repo.sealer().read_pack_header(&pack, &data) {
        Ok(header) => {
            let listed: HashSet<&BlobEntry> = header.iter().collect();
            for e in expected.iter().filter(|e| !listed.contains(e)) {
                bad.insert(
                    e.id,
                    "the pack header does not list it where the index says".into(),
                );
            }
            None
        }
        Err(e) => Some(e),
    };
    let mut bufs = crate::format::blob::BlobBuffers::default();
    for e in expected {
        let sealed = e
            .end()
            .and_then(|end| data.get(e.offset as usize..end as usize));
        let Some(sealed) = sealed else {
            bad.insert(e.id, "lies past the end of the pack".into());
            continue;
        };
        if let Err(err) = repo.sealer().open_blob_with(e, sealed, &mut bufs) {
            bad.insert(e.id, err.to_string());
        }
    }
    Ok(PackCheck {
        bytes: data.len() as u64,
        blobs: expected.len() as u64,
        pack_error: pack_error.map(|e| e.to_string()),
        bad: bad.into_iter().collect(),
    })
}

/// Adds one pack's result to the report, and its unreadable blobs to `bad`.
fn record_pack(
    pack: PackId,
    result: Result<PackCheck, String>,
    ids: Vec<BlobId>,
    report: &mut CheckReport,
    bad: &mut Bad,
) {
    match result {
        Ok(c) => {
            report.bytes_read += c.bytes;
            report.blobs_read += c.blobs;
            if let Some(e) = c.pack_error {
                report.error(pack.key(), e);
            }
            for (id, e) in c.bad {
                report.error(format!("{} blob {}", pack.key(), id), e.clone());
                bad.insert(id, format!("damaged in pack {}: {e}", pack.short()));
            }
        }
        Err(e) => {
            report.error(pack.key(), e.clone());
            for id in ids {
                bad.insert(id, format!("pack {} is damaged: {e}", pack.short()));
            }
        }
    }
}
