//! `check`: the repository's structure (every key, index, snapshot, tree
//! and referenced blob present, readable and consistent with the rules of
//! docs/format.md) and, with `read_data`, every pack's bytes. Names each
//! damaged object and the snapshots and files that depend on it.
//!
//! Memory does not grow with the repository: each pack's entries are read
//! from the catalog as that pack is checked, and trees are walked with an
//! explicit stack (memory bounded by the path depth), each tree found whole
//! checked once.

mod packs;
mod trees;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;

use super::walk::SnapPath;
use super::EngineResult;
use crate::repo::{BlobId, IndexId, ObjectKind, RepoError, Repository, SnapshotId};

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

    fn error(&mut self, object: impl Into<String>, error: impl Into<String>) {
        self.errors.push(Problem {
            object: object.into(),
            error: error.into(),
        });
    }
}

/// Blobs that cannot be read, with the reason.
type Bad = HashMap<BlobId, String>;

pub async fn check(repo: &Arc<Repository>, read_data: bool) -> EngineResult<CheckReport> {
    let mut report = CheckReport {
        read_data,
        ..Default::default()
    };
    for (object, reason) in repo.refused_keys().await? {
        report.error(object, format!("{reason}; readers skip this key object"));
    }
    for (id, e) in repo.damaged_indexes() {
        report.error(id.key(), e);
    }
    if read_data {
        reread_indexes(repo, &mut report).await?;
    }
    let mut bad = Bad::new();
    let readable = packs::check_packs(repo, &mut report, &mut bad).await?;
    if !read_data {
        check_snapshots(repo, &bad, &mut report).await?;
        return Ok(report);
    }
    // The packs are read on other threads while the snapshots are walked
    // with what is known to be bad so far. Only when the reading finds
    // damage does the walk run again, to name the entries it affects.
    let reading = tokio::spawn(read_packs_apart(repo.clone(), readable));
    let mut walked = CheckReport::default();
    let walk = check_snapshots(repo, &bad, &mut walked).await;
    let (data, found) = reading.await??;
    report.errors.extend(data.errors);
    report.bytes_read = data.bytes_read;
    report.blobs_read = data.blobs_read;
    if found.is_empty() {
        walk?;
    } else {
        bad.extend(found);
        walked = CheckReport::default();
        check_snapshots(repo, &bad, &mut walked).await?;
    }
    report.errors.extend(walked.errors);
    report.affected = walked.affected;
    report.snapshots = walked.snapshots;
    Ok(report)
}

/// [`packs::read_packs`] into a report and a set of bad blobs of its own.
async fn read_packs_apart(
    repo: Arc<Repository>,
    readable: Vec<crate::repo::PackId>,
) -> EngineResult<(CheckReport, Bad)> {
    let mut data = CheckReport::default();
    let mut found = Bad::new();
    packs::read_packs(&repo, readable, &mut data, &mut found).await?;
    Ok((data, found))
}

/// Reads every index object from the store again (the catalog holds what
/// they said when they were first read, so damage done to them since is
/// seen only here), reporting those that no longer open or decode.
async fn reread_indexes(repo: &Repository, report: &mut CheckReport) -> EngineResult<()> {
    use futures::StreamExt;
    let known: HashSet<IndexId> = repo
        .damaged_indexes()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let ids: HashSet<IndexId> = repo.list_ids(ObjectKind::Index).await?;
    let mut loads = std::pin::pin!(
        repo.load_indexes(ids.into_iter().filter(|id| !known.contains(id)).collect())
    );
    while let Some((id, res)) = loads.next().await {
        match res {
            Ok(_) => {}
            Err(RepoError::Corrupt { reason, .. }) => report.error(id.key(), reason),
            // Deleted since the listing (a prune replacing it): not damage.
            Err(RepoError::Store(e)) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Snapshots, then the trees and files they reach.
async fn check_snapshots(
    repo: &Arc<Repository>,
    bad: &Bad,
    report: &mut CheckReport,
) -> EngineResult<()> {
    let listed: HashSet<SnapshotId> = repo.list_ids(crate::format::ObjectKind::Snapshot).await?;
    let mut snaps = Vec::new();
    for id in listed {
        match repo.load_snapshot(&id).await {
            Ok(s) => snaps.push((id, s)),
            Err(e) => report.error(id.key(), e.to_string()),
        }
    }
    snaps.sort_by_key(|(id, s)| (s.time, *id));
    report.snapshots = snaps.len() as u64;
    let mut walker = trees::TreeCheck::new(repo, bad);
    for (sid, s) in &snaps {
        let limit = s.summary.entry_limit();
        for (path, problem) in walker.snapshot(s.tree, limit).await {
            report.affected.push(Affected {
                snapshot: *sid,
                path: SnapPath::normalize(&path),
                problem,
            });
        }
    }
    let mut tree_errors: Vec<_> = walker.tree_errors.into_iter().collect();
    tree_errors.sort();
    for (tree, e) in tree_errors {
        report.error(format!("tree {tree}"), e);
    }
    Ok(())
}
