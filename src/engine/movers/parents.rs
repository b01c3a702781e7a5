//! The previous backup of each volume: the tree a backup mover compares
//! the volume's files with, so that unchanged ones are not read again.

use std::collections::BTreeMap;

use serde_json::Value;

use super::VolumeRecord;
use crate::format::snapshot::Snapshot;
use crate::repo::{BlobId, RepoResult, Repository};

/// A volume's tree in an earlier snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentTree {
    pub tree: BlobId,
    /// The PV the PVC was bound to then (`spec.volumeName`).
    pub volume_name: Option<String>,
}

/// Per `<namespace>/<pvc>`, its tree in the newest snapshot that holds one
/// for it, among the snapshots of cluster `cluster` (the kube-system
/// namespace's uid; every cluster when unknown).
pub fn previous_trees(
    repo: &Repository,
    cluster: Option<&str>,
) -> RepoResult<BTreeMap<String, ParentTree>> {
    let mut snaps = repo.snapshots()?;
    snaps.sort_by_key(|s| std::cmp::Reverse(s.1.time));
    let mut out = BTreeMap::new();
    for (_, s) in &snaps {
        if !same_cluster(s, cluster) {
            continue;
        }
        for v in records(s) {
            let Some(tree) = v.tree else { continue };
            let volume_name = v.spec["volumeName"].as_str().map(str::to_string);
            out.entry(format!("{}/{}", v.namespace, v.pvc))
                .or_insert(ParentTree { tree, volume_name });
        }
    }
    Ok(out)
}

impl ParentTree {
    /// Whether this tree is of the PVC with `spec` now: a PVC deleted and
    /// made again under the same name is bound to another PV, and its
    /// first backup reads every file.
    pub fn fits(&self, spec: &Value) -> bool {
        match (&self.volume_name, spec["volumeName"].as_str()) {
            (Some(then), Some(now)) => then == now,
            _ => true,
        }
    }
}

fn same_cluster(s: &Snapshot, cluster: Option<&str>) -> bool {
    let then = s
        .extra
        .as_ref()
        .and_then(|e| e["k8s"]["cluster"]["id"].as_str());
    match (then, cluster) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

fn records(s: &Snapshot) -> Vec<VolumeRecord> {
    let v = s.extra.as_ref().and_then(|e| e.get("volumes")).cloned();
    v.and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}
