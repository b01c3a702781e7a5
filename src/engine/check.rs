//! `check`: the repository's structure (every index, snapshot, tree and
//! referenced blob present and readable) and, with `read_data`, every
//! pack's bytes. Names each damaged object and the snapshots and files that
//! depend on it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt};
use futures::StreamExt;
use serde::Serialize;

use super::walk::SnapPath;
use super::EngineResult;
use crate::format::tree::NodeKind;
use crate::repo::{BlobId, PackId, Repository, SnapshotId};

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub object: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Affected {
    pub snapshot: SnapshotId,
    pub path: SnapPath,
    pub problem: String,
}

#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    pub errors: Vec<Problem>,
    pub warnings: Vec<Problem>,
    pub affected: Vec<Affected>,
    pub snapshots: u64,
    pub packs: u64,
    pub blobs_read: u64,
    pub bytes_read: u64,
    /// Whether every pack was read (`--read-data`).
    pub read_data: bool,
}

impl CheckReport {
    /// No finding at all: a snapshot entry that cannot be restored is a
    /// finding even when every object is intact (a lost index object).
    pub fn ok(&self) -> bool {
        self.errors.is_empty() && self.affected.is_empty()
    }
}

pub async fn check(repo: &Arc<Repository>, read_data: bool) -> EngineResult<CheckReport> {
    let mut report = CheckReport {
        read_data,
        ..Default::default()
    };
    for (id, e) in repo.damaged_indexes() {
        report.errors.push(Problem {
            object: id.key(),
            error: e,
        });
    }
    // Blobs that cannot be read, with the reason.
    let mut bad: HashMap<BlobId, String> = HashMap::new();
    let (readable, blobs_of) = check_packs(repo, &mut report, &mut bad).await?;
    if read_data {
        read_packs(repo, readable, blobs_of, &mut report, &mut bad).await;
    }
    check_snapshots(repo, &bad, &mut report).await?;
    Ok(report)
}

type BlobsOf = HashMap<PackId, Vec<crate::repo::BlobEntry>>;

/// Compares the packs the index names with those the store holds: the
/// packs that can be read, and every indexed pack's blobs.
async fn check_packs(
    repo: &Arc<Repository>,
    report: &mut CheckReport,
    bad: &mut HashMap<BlobId, String>,
) -> EngineResult<(Vec<PackId>, BlobsOf)> {
    let stored: HashMap<PackId, u64> = repo
        .store()
        .list(crate::format::ObjectKind::Pack.prefix())
        .await?
        .into_iter()
        .filter_map(|m| Some((crate::format::id::id_from_key::<PackId>(&m.key)?, m.size)))
        .collect();
    let indexed = repo.indexed_packs().await?;
    let mut blobs_of: BlobsOf = HashMap::new();
    for (pack, entry) in repo.blob_locations().await? {
        blobs_of.entry(pack).or_default().push(entry);
    }
    let indexed_ids: HashSet<PackId> = indexed.iter().map(|(p, _)| *p).collect();
    let mut readable = Vec::new();
    for (pack, size) in &indexed {
        let reason = match stored.get(pack) {
            None => Some("missing".to_string()),
            Some(s) if s != size => Some(format!(
                "size {s} differs from the {size} bytes the index records (truncated or replaced)"
            )),
            Some(_) => None,
        };
        match reason {
            Some(r) => {
                report.errors.push(Problem {
                    object: pack.key(),
                    error: r.clone(),
                });
                for b in blobs_of.get(pack).into_iter().flatten() {
                    bad.insert(b.id, format!("pack {} is {r}", pack.short()));
                }
            }
            None => readable.push(*pack),
        }
    }
    for pack in stored.keys().filter(|p| !indexed_ids.contains(p)) {
        report.warnings.push(Problem {
            object: pack.key(),
            error: "not named by any index (left by an interrupted backup; harmless, its space is reclaimed by prune)".into(),
        });
    }
    report.packs = indexed.len() as u64;
    Ok((readable, blobs_of))
}

/// Reads every readable pack once, several at a time, and checks each blob
/// the index places in it.
async fn read_packs(
    repo: &Arc<Repository>,
    readable: Vec<PackId>,
    mut blobs_of: BlobsOf,
    report: &mut CheckReport,
    bad: &mut HashMap<BlobId, String>,
) {
    let jobs = readable.into_iter().map(|pack| {
        let expected = blobs_of.remove(&pack).unwrap_or_default();
        let repo = repo.clone();
        async move {
            let ids: Vec<BlobId> = expected.iter().map(|e| e.id).collect();
            let data = repo.store().get(&pack.key()).await;
            let result =
                tokio::task::spawn_blocking(move || read_pack(&repo, pack, data, &expected)).await;
            (pack, result.map_err(|e| e.to_string()).and_then(|r| r), ids)
        }
    });
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let mut results = futures::stream::iter(jobs).buffer_unordered(cores + 1);
    while let Some((pack, result, ids)) = results.next().await {
        record_pack(pack, result, ids, report, bad);
    }
}

/// Checks one pack's bytes: its header, and every blob the index places in
/// it, each on its own (a damaged pack may still hold good blobs).
fn read_pack(
    repo: &Repository,
    pack: PackId,
    data: crate::store::StoreResult<bytes::Bytes>,
    expected: &[crate::repo::BlobEntry],
) -> Result<PackCheck, String> {
    let data = data.map_err(|e| e.to_string())?;
    let mut bad: HashMap<BlobId, String> = HashMap::new();
    let pack_error = match repo.sealer().read_pack_header(&pack, &data) {
        Ok(header) => {
            for e in expected.iter().filter(|e| !header.contains(e)) {
                bad.insert(
                    e.id,
                    "the pack header does not list it where the index says".into(),
                );
            }
            None
        }
        Err(e) => Some(e),
    };
    for e in expected {
        let sealed = e
            .end()
            .and_then(|end| data.get(e.offset as usize..end as usize));
        let Some(sealed) = sealed else {
            bad.insert(e.id, "lies past the end of the pack".into());
            continue;
        };
        if let Err(err) = repo.sealer().open_blob(e, sealed) {
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
    bad: &mut HashMap<BlobId, String>,
) {
    match result {
        Ok(PackCheck {
            bytes,
            blobs,
            pack_error,
            bad: damaged,
        }) => {
            report.bytes_read += bytes;
            report.blobs_read += blobs;
            if let Some(e) = pack_error {
                report.errors.push(Problem {
                    object: pack.key(),
                    error: e,
                });
            }
            for (id, e) in damaged {
                report.errors.push(Problem {
                    object: format!("{} blob {}", pack.key(), id),
                    error: e.clone(),
                });
                bad.insert(id, format!("damaged in pack {}: {e}", pack.short()));
            }
        }
        Err(e) => {
            report.errors.push(Problem {
                object: pack.key(),
                error: e.clone(),
            });
            for id in ids {
                bad.insert(id, format!("pack {} is damaged: {e}", pack.short()));
            }
        }
    }
}

/// Snapshots, then the trees and files they reach.
async fn check_snapshots(
    repo: &Arc<Repository>,
    bad: &HashMap<BlobId, String>,
    report: &mut CheckReport,
) -> EngineResult<()> {
    let listed: HashSet<SnapshotId> = repo.list_ids(crate::format::ObjectKind::Snapshot).await?;
    let mut snaps = Vec::new();
    for id in listed {
        match repo.load_snapshot(&id).await {
            Ok(s) => snaps.push((id, s)),
            Err(e) => report.errors.push(Problem {
                object: id.key(),
                error: e.to_string(),
            }),
        }
    }
    snaps.sort_by_key(|(id, s)| (s.time, *id));
    report.snapshots = snaps.len() as u64;
    let mut memo = HashMap::new();
    let mut tree_errors = HashMap::new();
    for (sid, s) in &snaps {
        let problems = tree_problems(repo, s.tree, bad, &mut memo, &mut tree_errors).await;
        for (path, problem) in problems.iter() {
            report.affected.push(Affected {
                snapshot: *sid,
                path: SnapPath::normalize(path),
                problem: problem.clone(),
            });
        }
    }
    for (tree, e) in tree_errors {
        report.errors.push(Problem {
            object: format!("tree {tree}"),
            error: e,
        });
    }
    Ok(())
}

struct PackCheck {
    bytes: u64,
    blobs: u64,
    pack_error: Option<String>,
    bad: Vec<(BlobId, String)>,
}

/// Paths relative to a tree (`/a/b`, empty for the tree itself), as bytes.
type Problems = Arc<Vec<(Vec<u8>, String)>>;

/// The entries below `tree` that cannot be restored, as paths relative to
/// it, computed once per tree.
fn tree_problems<'a>(
    repo: &'a Arc<Repository>,
    tree: BlobId,
    bad: &'a HashMap<BlobId, String>,
    memo: &'a mut HashMap<BlobId, Problems>,
    tree_errors: &'a mut HashMap<BlobId, String>,
) -> BoxFuture<'a, Problems> {
    async move {
        if let Some(p) = memo.get(&tree) {
            return p.clone();
        }
        let mut out = Vec::new();
        let loaded = match bad.get(&tree) {
            Some(reason) => Err(reason.clone()),
            None => repo.load_tree(&tree).await.map_err(|e| e.to_string()),
        };
        match loaded {
            Err(e) => {
                tree_errors.insert(tree, e.clone());
                out.push((
                    Vec::new(),
                    format!("directory listing (tree {}) unreadable: {e}", tree.short()),
                ));
            }
            Ok(t) => {
                let idx_has = |id: &BlobId| repo.locates_blob(id);
                for node in &t.nodes {
                    let name = [&b"/"[..], &node.name].concat();
                    if node.kind == NodeKind::File {
                        for id in &node.content {
                            let problem = match bad.get(id) {
                                Some(r) => Some(format!("blob {}: {r}", id.short())),
                                None if !idx_has(id) => {
                                    Some(format!("blob {} is not in the index", id.short()))
                                }
                                None => None,
                            };
                            if let Some(p) = problem {
                                out.push((name.clone(), p));
                                break;
                            }
                        }
                    }
                    if let Some(sub) = node.subtree {
                        let below = tree_problems(repo, sub, bad, memo, tree_errors).await;
                        for (p, e) in below.iter() {
                            out.push(([&name[..], p].concat(), e.clone()));
                        }
                    }
                }
            }
        }
        let out = Arc::new(out);
        memo.insert(tree, out.clone());
        out
    }
    .boxed()
}
