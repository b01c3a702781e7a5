//! Namespace mapping: rewrites the namespace of namespaced objects, of
//! Namespace objects themselves, and of references that carry one.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::source::k8s::K8sError;

/// Parses `old:new,old2:new2`.
pub fn parse_mapping(spec: &str) -> Result<BTreeMap<String, String>, K8sError> {
    let mut map = BTreeMap::new();
    for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match pair.split_once(':') {
            Some((old, new)) if !old.is_empty() && !new.is_empty() => {
                map.insert(old.to_string(), new.to_string());
            }
            _ => {
                return Err(K8sError::InvalidOption(format!(
                    "--namespace-mapping entry {pair:?}: expected old:new"
                )))
            }
        }
    }
    Ok(map)
}

/// Applies `mapping` to one object of `qualified` resource (`resource[.group]`).
pub fn map_namespaces(obj: &mut Value, qualified: &str, mapping: &BTreeMap<String, String>) {
    if mapping.is_empty() {
        return;
    }
    let mapped = |ns: &Value| ns.as_str().and_then(|n| mapping.get(n)).cloned();
    if let Some(new) = mapped(&obj["metadata"]["namespace"]) {
        obj["metadata"]["namespace"] = Value::String(new);
    }
    match qualified {
        "namespaces" => {
            if let Some(new) = mapped(&obj["metadata"]["name"]) {
                obj["metadata"]["name"] = Value::String(new.clone());
                if let Some(labels) = obj
                    .pointer_mut("/metadata/labels")
                    .and_then(Value::as_object_mut)
                {
                    if labels.contains_key("kubernetes.io/metadata.name") {
                        labels.insert("kubernetes.io/metadata.name".into(), Value::String(new));
                    }
                }
            }
        }
        "rolebindings.rbac.authorization.k8s.io"
        | "clusterrolebindings.rbac.authorization.k8s.io" => {
            if let Some(subjects) = obj.pointer_mut("/subjects").and_then(Value::as_array_mut) {
                for subject in subjects {
                    if let Some(new) = mapped(&subject["namespace"]) {
                        subject["namespace"] = Value::String(new);
                    }
                }
            }
        }
        "persistentvolumes" => {
            if let Some(new) = mapped(&obj["spec"]["claimRef"]["namespace"]) {
                obj["spec"]["claimRef"]["namespace"] = Value::String(new);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_pairs_and_rejects_garbage() {
        let m = parse_mapping("a:b, c:d").unwrap();
        assert_eq!(m.get("a").map(String::as_str), Some("b"));
        assert_eq!(m.get("c").map(String::as_str), Some("d"));
        assert!(parse_mapping("a-b").is_err());
        assert!(parse_mapping(":b").is_err());
    }

    #[test]
    fn rewrites_binding_subjects_and_claim_refs() {
        let m = parse_mapping("demo:prod").unwrap();
        let mut rb = json!({"metadata": {"name": "x", "namespace": "demo"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "demo"},
                         {"kind": "Group", "name": "g"}]});
        map_namespaces(&mut rb, "rolebindings.rbac.authorization.k8s.io", &m);
        assert_eq!(rb["metadata"]["namespace"], "prod");
        assert_eq!(rb["subjects"][0]["namespace"], "prod");
        assert!(rb["subjects"][1].get("namespace").is_none());
        let mut pv = json!({"metadata": {"name": "pv"}, "spec": {"claimRef": {"namespace": "demo", "name": "c"}}});
        map_namespaces(&mut pv, "persistentvolumes", &m);
        assert_eq!(pv["spec"]["claimRef"]["namespace"], "prod");
        let mut ns = json!({"metadata": {"name": "demo", "labels": {"kubernetes.io/metadata.name": "demo"}}});
        map_namespaces(&mut ns, "namespaces", &m);
        assert_eq!(ns["metadata"]["name"], "prod");
        assert_eq!(
            ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "prod"
        );
    }
}
