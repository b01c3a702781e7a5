//! Which PVCs are backed up and how: the CSI driver of each, the
//! VolumeSnapshotClass chosen as Velero chooses it, the node of a pod that
//! mounts it.

use serde_json::Value;

use super::api::{self, text, Api, Res};
use super::{Method, VolumeError, VolumesMode, CLASS_ANNOTATIONS, CLASS_LABELS};

/// One PVC to back up.
#[derive(Debug, Clone)]
pub struct Planned {
    pub ns: String,
    pub pvc: String,
    pub spec: Value,
    pub storage_class: Option<String>,
    pub driver: Option<String>,
    pub size: Option<String>,
    pub block: bool,
    pub method: Method,
    pub snapshot_class: Option<String>,
    /// The node of a running pod that mounts the PVC (for the fs method).
    pub node: Option<String>,
    /// Running pods that mount the PVC (their hooks run around it).
    pub pods: Vec<Value>,
}

/// Lists every item, or nothing when the resource is not served (no CRD).
async fn list_or_none(a: &Api<'_>, r: Res) -> Result<Vec<Value>, VolumeError> {
    match a.list(r, None, None, None).await {
        Err(e) if api::not_found(&e) => Ok(Vec::new()),
        other => other,
    }
}

/// The bound PVCs of the selected namespaces, with their method.
pub async fn plan(
    a: &Api<'_>,
    include: &[String],
    exclude: &[String],
    mode: VolumesMode,
) -> Result<Vec<Planned>, VolumeError> {
    if mode == VolumesMode::None {
        return Ok(Vec::new());
    }
    let all = include.is_empty() || include.iter().any(|n| n == "*");
    let mut pvcs = Vec::new();
    if all {
        pvcs = a.list(api::PVCS, None, None, None).await?;
    } else {
        for ns in include {
            pvcs.extend(a.list(api::PVCS, Some(ns), None, None).await?);
        }
    }
    pvcs.retain(|p| {
        !exclude.iter().any(|n| n == text(p, "/metadata/namespace"))
            && text(p, "/status/phase") == "Bound"
    });
    let classes = list_or_none(a, api::STORAGE_CLASSES).await?;
    let snap_classes = list_or_none(a, api::SNAPSHOT_CLASSES).await?;
    let mut out = Vec::new();
    for p in pvcs {
        let ns = text(&p, "/metadata/namespace").to_string();
        let pods = a.list(api::PODS, Some(&ns), None, None).await?;
        let pv = match text(&p, "/spec/volumeName") {
            "" => Value::Null,
            name => a.get(api::PVS, None, name).await.unwrap_or(Value::Null),
        };
        out.push(one(p, &pv, &classes, &snap_classes, &pods, mode));
    }
    out.sort_by(|x, y| (&x.ns, &x.pvc).cmp(&(&y.ns, &y.pvc)));
    Ok(out)
}

fn one(
    p: Value,
    pv: &Value,
    classes: &[Value],
    snap_classes: &[Value],
    pods: &[Value],
    mode: VolumesMode,
) -> Planned {
    let ns = text(&p, "/metadata/namespace").to_string();
    let name = text(&p, "/metadata/name").to_string();
    let storage_class = match text(&p, "/spec/storageClassName") {
        "" => default_class(classes),
        c => Some(c.to_string()),
    };
    let driver = match text(pv, "/spec/csi/driver") {
        "" => storage_class.as_deref().and_then(|c| {
            classes
                .iter()
                .find(|s| text(s, "/metadata/name") == c)
                .map(|s| text(s, "/provisioner").to_string())
        }),
        d => Some(d.to_string()),
    };
    let annotated = CLASS_ANNOTATIONS.iter().find_map(|k| {
        p["metadata"]["annotations"][*k]
            .as_str()
            .map(str::to_string)
    });
    let snapshot_class = annotated.or_else(|| pick_class(snap_classes, driver.as_deref()?));
    let method = match (mode, &snapshot_class) {
        (VolumesMode::Snapshot, Some(_)) => Method::Snapshot,
        _ => Method::Fs,
    };
    let using: Vec<Value> = pods
        .iter()
        .filter(|pod| mounts(pod, &name))
        .cloned()
        .collect();
    let node = using
        .iter()
        .find(|pod| text(pod, "/status/phase") == "Running")
        .or(using.first())
        .map(|pod| text(pod, "/spec/nodeName").to_string())
        .filter(|n| !n.is_empty());
    Planned {
        size: p["spec"]["resources"]["requests"]["storage"]
            .as_str()
            .map(str::to_string),
        block: text(&p, "/spec/volumeMode") == "Block",
        spec: p["spec"].clone(),
        ns,
        pvc: name,
        storage_class,
        driver,
        method,
        snapshot_class,
        node,
        pods: using
            .into_iter()
            .filter(|pod| text(pod, "/status/phase") == "Running")
            .collect(),
    }
}

fn default_class(classes: &[Value]) -> Option<String> {
    classes
        .iter()
        .find(|c| {
            text(
                c,
                "/metadata/annotations/storageclass.kubernetes.io~1is-default-class",
            ) == "true"
        })
        .map(|c| text(c, "/metadata/name").to_string())
}

/// The VolumeSnapshotClass of `driver` labelled for ferry (or Velero); the
/// only class of the driver when just one exists.
fn pick_class(classes: &[Value], driver: &str) -> Option<String> {
    let of_driver: Vec<&Value> = classes
        .iter()
        .filter(|c| text(c, "/driver") == driver)
        .collect();
    let labelled = of_driver.iter().find(|c| {
        CLASS_LABELS
            .iter()
            .any(|l| c["metadata"]["labels"][*l].as_str() == Some("true"))
    });
    let chosen = labelled.or(match of_driver.len() {
        1 => of_driver.first(),
        _ => None,
    })?;
    Some(text(chosen, "/metadata/name").to_string())
}

/// Whether a pod mounts the PVC `claim`.
fn mounts(pod: &Value, claim: &str) -> bool {
    pod["spec"]["volumes"].as_array().is_some_and(|v| {
        v.iter()
            .any(|v| text(v, "/persistentVolumeClaim/claimName") == claim)
    })
}
