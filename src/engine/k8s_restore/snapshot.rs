//! What a `backup --k8s` snapshot holds for a restore: its `k8s/` object
//! files, its volume manifest, and the split of the objects into those
//! restored before the volumes, the PVCs the volume restore creates, and
//! the workloads created once their volumes hold their data.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::engine::movers::VolumeRecord;
use crate::engine::walk::{read_content, walk, within};
use crate::engine::{EngineError, EngineResult};
use crate::format::snapshot::Snapshot;
use crate::format::tree::NodeKind;
use crate::format::SnapshotId;
use crate::repo::Repository;
use crate::source::k8s::K8sFile;

/// Where Kubernetes objects live in a snapshot.
pub const K8S_ROOT: &str = "/k8s";

/// The `k8s/` files of a snapshot; an error when it holds none.
pub async fn read_objects(
    repo: &Arc<Repository>,
    id: SnapshotId,
    snap: &Snapshot,
) -> EngineResult<Vec<K8sFile>> {
    let w = walk(repo, snap.tree, snap.summary.entry_limit(), |p| {
        within(p, K8S_ROOT) || within(K8S_ROOT, p)
    })
    .await?;
    if let Some((p, e)) = w.errors.first() {
        return Err(EngineError::Usage(format!(
            "cannot read {p} of snapshot {}: {e}",
            id.short()
        )));
    }
    let mut objects = Vec::new();
    for e in w
        .entries
        .iter()
        .filter(|e| e.node.kind == NodeKind::File && within(&e.path, K8S_ROOT))
    {
        let data = read_content(repo, &e.node).await.map_err(|err| {
            EngineError::Usage(format!(
                "reading {} of snapshot {}: {err}",
                e.path,
                id.short()
            ))
        })?;
        objects.push(K8sFile {
            path: e.path.to_string().trim_start_matches('/').to_string(),
            data,
        });
    }
    if objects.is_empty() {
        return Err(EngineError::Usage(format!(
            "snapshot {} holds no Kubernetes objects (it was not made with `backup --k8s`)",
            id.short()
        )));
    }
    Ok(objects)
}

/// The volume manifest of a snapshot (empty for snapshots without volumes).
pub fn volume_records(snap: &Snapshot) -> EngineResult<Vec<VolumeRecord>> {
    match snap.extra.as_ref().and_then(|e| e.get("volumes")) {
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
            EngineError::Usage(format!("reading the snapshot's volume manifest: {e}"))
        }),
        None => Ok(Vec::new()),
    }
}

/// Resources created only once their volumes hold their data.
const WORKLOADS: [(&str, &str); 8] = [
    ("core", "pods"),
    ("core", "replicationcontrollers"),
    ("apps", "deployments"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("apps", "replicasets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
];

/// The stored PVC objects by (namespace, name).
pub type StoredPvcs = BTreeMap<(String, String), Value>;

/// Splits the objects into those restored before the volumes, the PVCs of
/// volumes with data (created by the volume restore) and the workloads.
pub fn split(
    objects: Vec<K8sFile>,
    records: &[VolumeRecord],
) -> (Vec<K8sFile>, StoredPvcs, Vec<K8sFile>) {
    let (mut first, mut pvcs, mut workloads) = (Vec::new(), StoredPvcs::new(), Vec::new());
    for f in objects {
        let Some(p) = crate::source::k8s::clean::parse_path(&f.path) else {
            first.push(f);
            continue;
        };
        let ns = p.namespace.clone().unwrap_or_default();
        let name = p.name.clone();
        let has_data = |v: &VolumeRecord| v.namespace == ns && v.pvc == name && v.tree.is_some();
        if p.group == "core"
            && p.resource == "persistentvolumeclaims"
            && records.iter().any(has_data)
        {
            if !p.is_status {
                if let Ok(v) = serde_json::from_slice(&f.data) {
                    pvcs.insert((ns, name), v);
                }
            }
            continue;
        }
        if WORKLOADS.contains(&(p.group.as_str(), p.resource.as_str())) {
            workloads.push(f);
        } else {
            first.push(f);
        }
    }
    (first, pvcs, workloads)
}
