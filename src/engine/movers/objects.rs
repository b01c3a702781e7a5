//! The temporary objects of a volume backup or restore, every one labelled
//! with the run's name.

use serde_json::{json, Value};

use super::RUN_LABEL;

/// Mount points inside a mover container.
pub const VOLUME_MOUNT: &str = "/ferry/volume";
pub const DEVICE_PATH: &str = "/ferry/device/block";
pub const CACHE_MOUNT: &str = "/ferry/cache";
pub const TERMINATION_PATH: &str = "/ferry/termination-log";

fn meta(name: &str, ns: Option<&str>, run: &str, source: &str) -> Value {
    let mut m = json!({"name": name, "labels": {RUN_LABEL: run},
        "annotations": {"ferry.io/volume": source}});
    if let Some(ns) = ns {
        m["namespace"] = json!(ns);
    }
    m
}

/// A VolumeSnapshot of a PVC in its namespace.
pub fn snapshot_of_pvc(name: &str, ns: &str, run: &str, pvc: &str, class: &str) -> Value {
    json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": meta(name, Some(ns), run, &format!("{ns}/{pvc}")),
        "spec": {"volumeSnapshotClassName": class, "source": {"persistentVolumeClaimName": pvc}}})
}

/// A static VolumeSnapshotContent naming an existing storage snapshot, bound
/// in advance to a VolumeSnapshot in the mover namespace. Retain: the
/// storage snapshot belongs to the source VolumeSnapshot's content.
pub fn static_content(name: &str, run: &str, source: &str, c: &ContentRef) -> Value {
    json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent",
        "metadata": meta(name, None, run, source),
        "spec": {"deletionPolicy": "Retain", "driver": c.driver,
            "source": {"snapshotHandle": c.handle},
            "volumeSnapshotClassName": c.class,
            "volumeSnapshotRef": {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
                "namespace": c.namespace, "name": c.snapshot}}})
}

/// The storage snapshot behind a VolumeSnapshot, and where to re-home it.
pub struct ContentRef {
    pub driver: String,
    pub handle: String,
    pub class: String,
    pub namespace: String,
    pub snapshot: String,
}

/// A VolumeSnapshot bound to a pre-made content.
pub fn snapshot_of_content(name: &str, ns: &str, run: &str, source: &str, content: &str) -> Value {
    json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": meta(name, Some(ns), run, source),
        "spec": {"source": {"volumeSnapshotContentName": content}}})
}

/// A PVC made from a VolumeSnapshot: read-only-many, so that drivers that
/// can expose a snapshot directly need no full clone.
pub fn pvc_from_snapshot(
    name: &str,
    ns: &str,
    run: &str,
    source: &str,
    spec: &Value,
    snap: &str,
) -> Value {
    let mut s = json!({"accessModes": ["ReadOnlyMany"],
        "dataSource": {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": snap},
        "resources": spec["resources"].clone(),
        "volumeMode": spec["volumeMode"].as_str().unwrap_or("Filesystem")});
    if let Some(c) = spec["storageClassName"].as_str() {
        s["storageClassName"] = json!(c);
    }
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": meta(name, Some(ns), run, source), "spec": s})
}

/// A restored PVC: the stored spec with the target class, without the
/// binding of the old volume.
pub fn restored_pvc(stored: &Value, ns: &str, class: Option<&str>) -> Value {
    let mut pvc = stored.clone();
    let m = &mut pvc["metadata"];
    m["namespace"] = json!(ns);
    if let Some(a) = m["annotations"].as_object_mut() {
        a.retain(|k, _| {
            !k.starts_with("pv.kubernetes.io/")
                && !k.starts_with("volume.beta.kubernetes.io/")
                && !k.starts_with("volume.kubernetes.io/")
        });
    }
    if let Some(spec) = pvc["spec"].as_object_mut() {
        spec.remove("volumeName");
        spec.remove("dataSource");
        spec.remove("dataSourceRef");
        if let Some(c) = class {
            spec.insert("storageClassName".into(), json!(c));
        }
    }
    if let Some(o) = pvc.as_object_mut() {
        o.remove("status");
    }
    pvc
}

/// What a mover Job does.
pub struct JobSpec<'a> {
    pub name: &'a str,
    pub ns: &'a str,
    pub run: &'a str,
    pub source: &'a str,
    pub image: &'a str,
    pub secret: &'a str,
    /// Runs as this service account (else the namespace's default).
    pub service_account: Option<&'a str>,
    pub claim: &'a str,
    pub block: bool,
    pub read_only: bool,
    pub node: Option<&'a str>,
    pub deadline_seconds: u64,
    /// Global flags before `mover`.
    pub repo_args: &'a [String],
    /// `mover` arguments after `ferry mover`.
    pub args: Vec<String>,
}

/// A Job of one pod, never retried, that runs `ferry mover ...`.
pub fn mover_job(j: &JobSpec) -> Value {
    let mut args = j.repo_args.to_vec();
    args.push("mover".into());
    args.extend(j.args.iter().cloned());
    args.extend(["--report".into(), TERMINATION_PATH.into()]);
    let mut container = json!({"name": "mover", "image": j.image, "command": ["ferry"], "args": args,
        "envFrom": [{"secretRef": {"name": j.secret}}],
        "env": [{"name": "XDG_CACHE_HOME", "value": CACHE_MOUNT}],
        "terminationMessagePath": TERMINATION_PATH, "terminationMessagePolicy": "File",
        "volumeMounts": [{"name": "cache", "mountPath": CACHE_MOUNT}]});
    container["securityContext"] = security(j.read_only);
    if j.block {
        container["volumeDevices"] = json!([{"name": "volume", "devicePath": DEVICE_PATH}]);
    } else {
        container["volumeMounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "volume", "mountPath": VOLUME_MOUNT, "readOnly": j.read_only}));
    }
    let mut pod = json!({"restartPolicy": "Never", "containers": [container],
        "automountServiceAccountToken": false,
        "volumes": [{"name": "volume", "persistentVolumeClaim": {"claimName": j.claim, "readOnly": j.read_only}},
                    {"name": "cache", "emptyDir": {}}]});
    if let Some(a) = j.service_account {
        pod["serviceAccountName"] = json!(a);
    }
    if let Some(n) = j.node {
        pod["nodeSelector"] = json!({"kubernetes.io/hostname": n});
    }
    json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": meta(j.name, Some(j.ns), j.run, j.source),
        "spec": {"backoffLimit": 0, "activeDeadlineSeconds": j.deadline_seconds,
            "template": {"metadata": {"labels": {RUN_LABEL: j.run}}, "spec": pod}}})
}

/// The mover reads (or writes) files of any owner, so it runs as root
/// with only the capabilities that needs: reading past permissions for a
/// backup; for a restore also setting owners, modes and times.
fn security(read_only: bool) -> Value {
    let caps = match read_only {
        true => json!(["DAC_READ_SEARCH"]),
        false => json!(["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID"]),
    };
    json!({"runAsUser": 0, "runAsNonRoot": false, "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"], "add": caps}})
}

/// A copy of the repository Secret in another namespace (a Job can only
/// take a Secret of its own namespace).
pub fn secret_copy(secret: &Value, name: &str, ns: &str, run: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": ns, "labels": {RUN_LABEL: run}},
        "type": secret["type"].clone(), "data": secret["data"].clone()})
}
