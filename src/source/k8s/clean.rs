//! Cleaning of live objects (server-set fields removed, status split off),
//! canonical JSON encoding, and the snapshot paths objects are stored at.

use serde_json::{Map, Value};

/// Metadata fields the server sets; never restored, never compared.
pub const SERVER_SET_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Annotations the server or kubectl keep about the object's own history.
const NOISE_ANNOTATIONS: &[&str] = &["deployment.kubernetes.io/revision"];

/// The top directory of Kubernetes objects in a snapshot.
pub const K8S_ROOT: &str = "k8s";
/// Statuses live in their own tree, `k8s/_status/...`, mirroring the object
/// paths: no group is named `_status`, so no object path can collide with it.
pub const STATUS_DIR: &str = "_status";
/// The namespace directory of cluster-scoped objects (no namespace starts with `_`).
pub const CLUSTER_DIR: &str = "_cluster";

/// Removes server-set fields and takes the status out; returns the status.
pub fn clean(obj: &mut Value) -> Option<Value> {
    let map = obj.as_object_mut()?;
    let status = map.remove("status");
    if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in SERVER_SET_METADATA {
            meta.remove(*key);
        }
        if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            for key in NOISE_ANNOTATIONS {
                ann.remove(*key);
            }
            if ann.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    status.filter(|s| !s.is_null() && s.as_object().is_none_or(|m| !m.is_empty()))
}

/// Encodes a value with object keys sorted at every level, two-space
/// indented, with a final newline: the same object always gives the same bytes.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(&sorted(value)).unwrap_or_default();
    out.push(b'\n');
    out
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), sorted(&map[k]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// Where an object lives in a snapshot:
/// `k8s/<group or core>/<resource>/<namespace or _cluster>/<name>.json`.
pub fn object_path(group: &str, resource: &str, namespace: Option<&str>, name: &str) -> String {
    let group = if group.is_empty() { "core" } else { group };
    let ns = namespace.filter(|n| !n.is_empty()).unwrap_or(CLUSTER_DIR);
    format!("{K8S_ROOT}/{group}/{resource}/{ns}/{name}.json")
}

/// Where an object's status lives: `k8s/_status/<group or core>/...`.
pub fn status_path(group: &str, resource: &str, namespace: Option<&str>, name: &str) -> String {
    let path = object_path(group, resource, namespace, name);
    format!("{K8S_ROOT}/{STATUS_DIR}/{}", &path[K8S_ROOT.len() + 1..])
}

/// The parts of an object or status path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectPath {
    /// The group as in the path: `core` for the core group.
    pub group: String,
    pub resource: String,
    pub namespace: Option<String>,
    pub name: String,
    pub is_status: bool,
}

/// Parses a path made by [`object_path`] or [`status_path`].
pub fn parse_path(path: &str) -> Option<ObjectPath> {
    let rest = path.strip_prefix(K8S_ROOT)?.strip_prefix('/')?;
    let (is_status, rest) = match rest
        .strip_prefix(STATUS_DIR)
        .and_then(|r| r.strip_prefix('/'))
    {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let [group, resource, ns, file] = parts.as_slice() else {
        return None;
    };
    let name = file.strip_suffix(".json").filter(|n| !n.is_empty())?;
    Some(ObjectPath {
        group: group.to_string(),
        resource: resource.to_string(),
        namespace: (*ns != CLUSTER_DIR).then(|| ns.to_string()),
        name: name.to_string(),
        is_status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn clean_removes_server_fields_and_returns_status() {
        let mut obj = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "demo", "uid": "u", "resourceVersion": "7",
                "creationTimestamp": "t", "generation": 2, "selfLink": "/x", "managedFields": [],
                "labels": {"app": "web"},
                "annotations": {"deployment.kubernetes.io/revision": "3"}},
            "spec": {"replicas": 2}, "status": {"replicas": 2}});
        let status = clean(&mut obj);
        assert_eq!(status, Some(json!({"replicas": 2})));
        assert_eq!(
            obj,
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "demo", "labels": {"app": "web"}},
            "spec": {"replicas": 2}})
        );
        let mut empty_status = json!({"metadata": {"name": "x"}, "status": {}});
        assert_eq!(clean(&mut empty_status), None);
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a = canonical_json(&json!({"b": 1, "a": {"d": [ {"z": 1, "y": 2} ], "c": null}}));
        let text = String::from_utf8(a).unwrap();
        assert!(text.ends_with("}\n"));
        let order: Vec<usize> = ["\"a\"", "\"c\"", "\"d\"", "\"y\"", "\"z\"", "\"b\""]
            .iter()
            .map(|k| text.find(k).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    }

    #[test]
    fn paths_round_trip() {
        let p = object_path("", "configmaps", Some("demo"), "app-config");
        assert_eq!(p, "k8s/core/configmaps/demo/app-config.json");
        let c = object_path(
            "rbac.authorization.k8s.io",
            "clusterroles",
            None,
            "system:aggregate-to-edit",
        );
        assert_eq!(
            c,
            "k8s/rbac.authorization.k8s.io/clusterroles/_cluster/system:aggregate-to-edit.json"
        );
        let s = status_path("apps", "deployments", Some("demo"), "web.status");
        assert_eq!(s, "k8s/_status/apps/deployments/demo/web.status.json");
        let parsed = parse_path(&s).unwrap();
        assert!(parsed.is_status);
        assert_eq!(
            (parsed.group.as_str(), parsed.name.as_str()),
            ("apps", "web.status")
        );
        let parsed = parse_path(&c).unwrap();
        assert_eq!(parsed.namespace, None);
        assert!(!parsed.is_status);
        for bad in [
            "k8s/core/configmaps/demo.json",
            "files/core/configmaps/demo/x.json",
            "k8s/core/configmaps/demo/.json",
        ] {
            assert!(parse_path(bad).is_none(), "{bad}");
        }
    }
}
