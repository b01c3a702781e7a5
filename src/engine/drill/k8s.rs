//! `drill --k8s`: a snapshot's Kubernetes objects of the mapped namespaces
//! restored into sandbox namespaces (with their volumes, through the
//! restore Jobs of `restore --k8s`), every restored object read back from
//! the API server and compared with what ferry sent, every volume read back
//! by a verify Job of its own and checked against the snapshot's tree, and
//! the sandbox namespaces deleted unless kept.
//!
//! Only namespaced objects of the mapped namespaces are restored: a drill
//! must not touch what lives outside its sandbox (cluster-scoped objects
//! such as CRDs, ClusterRoles or PersistentVolumes are shared by the whole
//! cluster).

mod compare;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};

use super::{DrillReport, Mismatch, Verification, VerifyMode};
use crate::engine::k8s_restore::mapping::map_namespaces;
use crate::engine::k8s_restore::snapshot::{read_objects, split, volume_records};
use crate::engine::k8s_restore::{self, Action, K8sRestoreOptions, K8sRestoreReport};
use crate::engine::movers::{restore_volumes, VolumeRecord, VolumeRestore, VolumeRestoreOptions};
use crate::engine::walk::SnapPath;
use crate::engine::{EngineError, EngineResult};
use crate::format::snapshot::Snapshot;
use crate::format::SnapshotId;
use crate::repo::Repository;
use crate::source::k8s::clean::parse_path;
use crate::source::k8s::client::{connect, Connection};
use crate::source::k8s::error::kube_code;
use crate::source::k8s::rest::Rest;
use crate::source::k8s::K8sFile;

/// The label of a drill's sandbox namespace; its value names the drill.
pub const SANDBOX_LABEL: &str = "ferry.io/drill";

/// Where and how a Kubernetes drill restores.
#[derive(Debug, Clone, Default)]
pub struct K8sDrillOptions {
    /// The cluster (kubeconfig, context) and the namespace mapping: each
    /// snapshot namespace drilled, to its sandbox namespace.
    pub restore: K8sRestoreOptions,
    /// The restore Jobs of the volumes (mover settings, storage classes).
    pub volumes: VolumeRestoreOptions,
}

/// One sandbox namespace of a drill.
#[derive(Debug, Clone, Serialize)]
pub struct Sandbox {
    /// The snapshot's namespace.
    pub source: String,
    /// The sandbox namespace it was restored into.
    pub namespace: String,
    /// Whether it was deleted after the drill.
    pub removed: bool,
}

/// What a Kubernetes drill restored and checked.
#[derive(Debug, Clone, Default, Serialize)]
pub struct K8sDrill {
    pub namespaces: Vec<Sandbox>,
    /// Objects created in the sandbox.
    pub objects_restored: u64,
    /// Objects read back from the API server that match what was sent.
    pub objects_verified: u64,
    /// Objects not restored by design (e.g. service-account tokens).
    pub objects_skipped: u64,
    /// The volumes, as their restore Jobs reported them (with what each
    /// Job read back).
    pub volumes: Vec<VolumeRestore>,
}

/// Refuses a mapping whose sandbox namespace already exists and is not a
/// drill's, or is a drill's but still holds objects: a drill restores only
/// into namespaces of its own.
pub async fn check_sandboxes(k: &K8sDrillOptions) -> EngineResult<()> {
    let mapping = &k.restore.namespace_mapping;
    if mapping.is_empty() {
        return Err(EngineError::Usage(
            "drill --k8s needs --namespace-mapping shop:drill-shop (each namespace drilled, to a sandbox namespace)".into(),
        ));
    }
    let conn = cluster(&k.restore).await?;
    let discovery = crate::source::k8s::discovery::discover(&conn)
        .await
        .map_err(|e| EngineError::Usage(e.to_string()))?;
    for (source, ns) in mapping {
        if mapping.contains_key(ns) || ns == source {
            return Err(EngineError::Usage(format!(
                "--namespace-mapping {source}:{ns}: the sandbox namespace must be a new name, not a namespace of the snapshot"
            )));
        }
        let live = match namespaces(&conn).get(ns).await {
            Ok(live) => live,
            Err(e) if kube_code(&e) == Some(404) => continue,
            Err(e) => return Err(EngineError::Usage(format!("reading namespace {ns}: {e}"))),
        };
        if live["metadata"]["labels"][SANDBOX_LABEL].as_str().is_none() {
            return Err(EngineError::Usage(format!(
                "namespace {ns} exists and is not a drill sandbox; a drill restores only into new namespaces: map {source} to a name that does not exist, e.g. {source}:drill-{source}"
            )));
        }
        if let Some(what) = first_object(&conn, &discovery, ns).await? {
            return Err(EngineError::Usage(format!(
                "sandbox namespace {ns} still holds {what} (left by a drill with --keep?); delete it first (kubectl delete namespace {ns}) or map {source} elsewhere"
            )));
        }
    }
    Ok(())
}

async fn cluster(o: &K8sRestoreOptions) -> EngineResult<Connection> {
    connect(o.kubeconfig.as_deref(), o.context.as_deref())
        .await
        .map_err(|e| EngineError::Usage(e.to_string()))
}

fn namespaces(conn: &Connection) -> Rest<'_> {
    Rest::new(conn, "/api/v1/namespaces".into())
}

/// The first object found in namespace `ns` (`resource/name`), if any.
async fn first_object(
    conn: &Connection,
    d: &crate::source::k8s::discovery::DiscoveryResult,
    ns: &str,
) -> EngineResult<Option<String>> {
    let lp = kube::api::ListParams::default().limit(1);
    for r in d
        .resources
        .iter()
        .filter(|r| r.namespaced && r.supports("list"))
    {
        let url =
            crate::source::k8s::rest::collection_url(&r.group, &r.version, &r.resource, Some(ns));
        let Ok(list) = Rest::new(conn, url).list(&lp).await else {
            continue;
        };
        if let Some(o) = list["items"].as_array().and_then(|i| i.first()) {
            let name = o["metadata"]["name"].as_str().unwrap_or_default();
            return Ok(Some(format!("{}/{name}", r.qualified())));
        }
    }
    Ok(None)
}

/// Drills snapshot `id` into the sandbox namespaces, filling `r`; its RTO
/// runs from the start of the restore to the end of the verification.
pub async fn drill(
    repo: &Arc<Repository>,
    id: SnapshotId,
    snap: &Snapshot,
    opts: &super::DrillOptions,
    k: &K8sDrillOptions,
    r: &mut DrillReport,
) {
    let clock = std::time::Instant::now();
    let mut out = K8sDrill::default();
    let mut v = Verification::default();
    let conn = match cluster(&k.restore).await {
        Ok(c) => Some(c),
        Err(e) => {
            r.failures.push(format!("connecting to the cluster: {e}"));
            None
        }
    };
    if let Some(conn) = &conn {
        match restore_and_verify(repo, id, snap, opts.verify, k, conn, &mut out, &mut v).await {
            Ok(()) => {}
            Err(e) => r.failures.push(e),
        }
    }
    r.verified = r.failures.is_empty() && v.mismatches.is_empty();
    super::add_mismatches(r, &v.mismatches);
    r.bytes = out.volumes.iter().map(|x| x.bytes).sum();
    r.files = out.volumes.iter().map(|x| x.files).sum();
    r.verification = Some(v);
    super::set_rto(r, clock);
    if let (Some(conn), false) = (&conn, opts.keep) {
        remove_sandboxes(conn, &mut out, r).await;
    }
    r.k8s = Some(out);
}

/// The objects of the mapped namespaces (the Namespace objects apart: the
/// sandboxes are made by the drill), and the stored Namespace objects.
fn drilled(
    objects: Vec<K8sFile>,
    mapping: &BTreeMap<String, String>,
) -> (Vec<K8sFile>, BTreeMap<String, Value>) {
    let (mut kept, mut stored) = (Vec::new(), BTreeMap::new());
    for f in objects {
        let Some(p) = parse_path(&f.path) else {
            continue;
        };
        match &p.namespace {
            Some(ns) if mapping.contains_key(ns) => kept.push(f),
            None if p.resource == "namespaces" && mapping.contains_key(&p.name) && !p.is_status => {
                if let Ok(v) = serde_json::from_slice(&f.data) {
                    stored.insert(p.name.clone(), v);
                }
            }
            _ => {}
        }
    }
    (kept, stored)
}

#[allow(clippy::too_many_arguments)]
async fn restore_and_verify(
    repo: &Arc<Repository>,
    id: SnapshotId,
    snap: &Snapshot,
    mode: VerifyMode,
    k: &K8sDrillOptions,
    conn: &Connection,
    out: &mut K8sDrill,
    v: &mut Verification,
) -> Result<(), String> {
    let mapping = &k.restore.namespace_mapping;
    let all = read_objects(repo, id, snap)
        .await
        .map_err(|e| e.to_string())?;
    let records = volume_records(snap).map_err(|e| e.to_string())?;
    let (objects, stored_ns) = drilled(all, mapping);
    let present: std::collections::BTreeSet<String> = objects
        .iter()
        .filter_map(|f| parse_path(&f.path).and_then(|p| p.namespace))
        .collect();
    if let Some(missing) = mapping.keys().find(|ns| !present.contains(*ns)) {
        return Err(format!(
            "snapshot {} holds no objects of namespace {missing}; map a namespace it holds",
            id.short()
        ));
    }
    let run = crate::engine::movers::run_name("ferry-drill");
    make_sandboxes(conn, mapping, &stored_ns, &run, out).await?;
    let records: Vec<VolumeRecord> = records
        .into_iter()
        .filter(|x| mapping.contains_key(&x.namespace))
        .collect();
    let ropts = K8sRestoreOptions {
        include_namespaces: mapping.keys().cloned().collect(),
        exclude_resources: vec!["namespaces".into()],
        restore_status: false,
        dry_run: false,
        existing_resource_policy: Default::default(),
        ..k.restore.clone()
    };
    let sent = objects.clone();
    let (first, pvcs, workloads) = split(objects, &records);
    let err = |e: crate::source::k8s::K8sError| format!("restoring the objects: {e}");
    let mut report = k8s_restore::restore(first, &ropts).await.map_err(err)?;
    if records.iter().any(|x| x.tree.is_some()) {
        let vo = VolumeRestoreOptions {
            namespace_mapping: mapping.clone(),
            dry_run: false,
            verify: Some(mode),
            ..k.volumes.clone()
        };
        out.volumes = restore_volumes(conn, &records, &pvcs, &vo)
            .await
            .map_err(|e| format!("restoring the volumes: {e}"))?;
    }
    report.merge(k8s_restore::restore(workloads, &ropts).await.map_err(err)?);
    check_objects(conn, sent, &pvcs, &ropts, &report, out, v).await;
    check_volumes(&records, out, v);
    Ok(())
}

/// Creates each sandbox namespace with the stored namespace's labels (as
/// mapped) and the drill's label.
async fn make_sandboxes(
    conn: &Connection,
    mapping: &BTreeMap<String, String>,
    stored: &BTreeMap<String, Value>,
    run: &str,
    out: &mut K8sDrill,
) -> Result<(), String> {
    for (source, ns) in mapping {
        let mut labels = json!({});
        if let Some(s) = stored.get(source) {
            let mut s = s.clone();
            map_namespaces(&mut s, "namespaces", mapping);
            labels = s["metadata"]["labels"].clone();
        }
        if !labels.is_object() {
            labels = json!({});
        }
        labels[SANDBOX_LABEL] = json!(run);
        let obj = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": labels}});
        out.namespaces.push(Sandbox {
            source: source.clone(),
            namespace: ns.clone(),
            removed: false,
        });
        match namespaces(conn).create(&obj, false).await {
            Ok(_) => {}
            // An empty sandbox of an earlier drill (checked before): take it.
            Err(e) if kube_code(&e) == Some(409) => {}
            Err(e) => return Err(format!("creating the sandbox namespace {ns}: {e}")),
        }
    }
    Ok(())
}

/// Reads every restored object back and compares it with what was sent.
async fn check_objects(
    conn: &Connection,
    sent: Vec<K8sFile>,
    pvcs: &crate::engine::k8s_restore::snapshot::StoredPvcs,
    ropts: &K8sRestoreOptions,
    report: &K8sRestoreReport,
    out: &mut K8sDrill,
    v: &mut Verification,
) {
    let (items, _) = k8s_restore::plan::prepare(sent, ropts);
    let by_path: BTreeMap<&str, &k8s_restore::PlannedObject> = report
        .objects
        .iter()
        .map(|o| (o.path.as_str(), o))
        .collect();
    for item in &items {
        let in_volumes = item.qualified == "persistentvolumeclaims"
            && pvcs.contains_key(&(
                item.source_namespace.clone().unwrap_or_default(),
                item.name.clone(),
            ));
        let Some(planned) = by_path.get(item.path.as_str()) else {
            if !in_volumes {
                v.mismatches.push(Mismatch::new(
                    SnapPath::from(item.path.as_str()),
                    "not restored",
                ));
            }
            continue;
        };
        v.entries += 1;
        let why = match planned.action {
            Action::Skip => {
                out.objects_skipped += 1;
                continue;
            }
            Action::Create => {
                out.objects_restored += 1;
                compare::read_back(conn, item).await
            }
            _ => Some(format!(
                "not restored: {}",
                planned.message.as_deref().unwrap_or("failed")
            )),
        };
        match why {
            None => out.objects_verified += 1,
            Some(why) => v
                .mismatches
                .push(Mismatch::new(SnapPath::from(item.path.as_str()), why)),
        }
    }
}

/// Each volume's Job result: restored, the snapshot's tree, read back
/// without a mismatch.
fn check_volumes(records: &[VolumeRecord], out: &K8sDrill, v: &mut Verification) {
    for x in &out.volumes {
        let base =
            SnapPath::from(crate::engine::volumes::volume_path(&x.namespace, &x.pvc).as_str());
        if x.action != "restored" {
            let why = x.error.clone().unwrap_or_else(|| x.action.clone());
            v.mismatches
                .push(Mismatch::new(base, format!("volume not restored: {why}")));
            continue;
        }
        let Some(got) = &x.verification else {
            v.mismatches
                .push(Mismatch::new(base, "no verify Job report for the volume"));
            continue;
        };
        v.entries += got.entries;
        v.content_files += got.content_files;
        v.verified_bytes += got.verified_bytes;
        for m in &got.mismatches {
            let mut p = base.as_bytes().to_vec();
            if !m.path.is_root() {
                p.extend_from_slice(m.path.as_bytes());
            }
            v.mismatches
                .push(Mismatch::new(SnapPath::normalize(&p), m.error.clone()));
        }
    }
    let restored = out.volumes.len();
    let wanted = records.iter().filter(|x| x.tree.is_some()).count();
    if restored != wanted {
        v.mismatches.push(Mismatch::new(
            SnapPath::from("volumes"),
            format!("{wanted} volumes hold data, {restored} were restored"),
        ));
    }
}

/// Deletes the sandbox namespaces (and so everything in them).
async fn remove_sandboxes(conn: &Connection, out: &mut K8sDrill, r: &mut DrillReport) {
    for s in &mut out.namespaces {
        match namespaces(conn).delete(&s.namespace).await {
            Ok(_) => s.removed = true,
            Err(e) if kube_code(&e) == Some(404) => s.removed = true,
            Err(e) => r.failures.push(format!(
                "removing the sandbox namespace {}: {e}",
                s.namespace
            )),
        }
    }
}
