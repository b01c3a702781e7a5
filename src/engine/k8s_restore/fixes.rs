//! Object fixes before restore, as Velero users rely on: fields bound to the
//! old cluster (IPs, node names, uids, controller links) are removed.

use serde_json::Value;

/// Annotations a PV/PVC binding leaves behind; the new cluster binds afresh.
const BIND_ANNOTATIONS: &[&str] = &[
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
];

const JOB_UID_LABELS: &[&str] = &["controller-uid", "batch.kubernetes.io/controller-uid"];

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Applies every fix relevant to an object of `qualified` resource.
pub fn apply_fixes(obj: &mut Value, qualified: &str) {
    if let Some(meta) = obj.pointer_mut("/metadata").and_then(Value::as_object_mut) {
        meta.remove("ownerReferences");
    }
    match qualified {
        "services" => fix_service(obj),
        "persistentvolumes" => {
            if let Some(claim) = obj
                .pointer_mut("/spec/claimRef")
                .and_then(Value::as_object_mut)
            {
                claim.remove("uid");
                claim.remove("resourceVersion");
            }
            remove_annotations(obj, BIND_ANNOTATIONS);
        }
        "persistentvolumeclaims" => remove_annotations(obj, BIND_ANNOTATIONS),
        "serviceaccounts" => fix_service_account(obj),
        "pods" => {
            if let Some(spec) = obj.pointer_mut("/spec").and_then(Value::as_object_mut) {
                spec.remove("nodeName");
            }
        }
        "jobs.batch" => fix_job(obj),
        _ => {}
    }
}

/// Why an object is not restored at all, if it is not.
pub fn skip_reason(obj: &Value, qualified: &str) -> Option<String> {
    if qualified != "secrets" || obj["type"] != "kubernetes.io/service-account-token" {
        return None;
    }
    let sa = obj["metadata"]["annotations"]["kubernetes.io/service-account.name"].as_str()?;
    let name = obj["metadata"]["name"].as_str()?;
    name.starts_with(&format!("{sa}-token-"))
        .then(|| format!("token secret of service account {sa}: the target cluster makes its own"))
}

fn fix_service(obj: &mut Value) {
    let explicit_ports = explicit_node_ports(obj);
    let Some(spec) = obj.pointer_mut("/spec").and_then(Value::as_object_mut) else {
        return;
    };
    if spec.get("clusterIP").and_then(Value::as_str) != Some("None") {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports {
            let keep = port["nodePort"]
                .as_i64()
                .is_some_and(|p| explicit_ports.contains(&p));
            if let (false, Some(port)) = (keep, port.as_object_mut()) {
                port.remove("nodePort");
            }
        }
    }
    if spec.get("type").and_then(Value::as_str) != Some("LoadBalancer") {
        spec.remove("healthCheckNodePort");
    }
}

/// NodePorts the user set (seen in kubectl's last-applied configuration);
/// others were assigned by the old cluster.
fn explicit_node_ports(obj: &Value) -> Vec<i64> {
    let Some(text) = obj["metadata"]["annotations"][LAST_APPLIED].as_str() else {
        return Vec::new();
    };
    let applied: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    applied["spec"]["ports"]
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .filter_map(|p| p["nodePort"].as_i64())
                .collect()
        })
        .unwrap_or_default()
}

fn fix_service_account(obj: &mut Value) {
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let prefix = format!("{name}-token-");
    if let Some(secrets) = obj.pointer_mut("/secrets").and_then(Value::as_array_mut) {
        secrets.retain(|s| !s["name"].as_str().is_some_and(|n| n.starts_with(&prefix)));
        if secrets.is_empty() {
            obj.as_object_mut().map(|m| m.remove("secrets"));
        }
    }
}

fn fix_job(obj: &mut Value) {
    for path in [
        "/metadata/labels",
        "/spec/template/metadata/labels",
        "/spec/selector/matchLabels",
    ] {
        if let Some(labels) = obj.pointer_mut(path).and_then(Value::as_object_mut) {
            for key in JOB_UID_LABELS {
                labels.remove(*key);
            }
        }
    }
    let empty = |v: Option<&Value>| match v {
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => true,
    };
    let selector = obj.pointer("/spec/selector");
    if selector.is_some()
        && empty(selector.and_then(|s| s.get("matchLabels")))
        && empty(selector.and_then(|s| s.get("matchExpressions")))
    {
        if let Some(spec) = obj.pointer_mut("/spec").and_then(Value::as_object_mut) {
            spec.remove("selector");
            spec.remove("manualSelector");
        }
    }
}

fn remove_annotations(obj: &mut Value, keys: &[&str]) {
    if let Some(ann) = obj
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        for key in keys {
            ann.remove(*key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_keeps_headless_and_explicit_node_ports() {
        let applied = r#"{"spec":{"ports":[{"port":80,"nodePort":30080}]}}"#;
        let mut svc = json!({"metadata": {"name": "s", "annotations": {LAST_APPLIED: applied}},
            "spec": {"type": "NodePort", "clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"],
                     "ports": [{"port": 80, "nodePort": 30080}, {"port": 81, "nodePort": 31999}]}});
        apply_fixes(&mut svc, "services");
        assert!(svc["spec"].get("clusterIP").is_none());
        assert!(svc["spec"].get("clusterIPs").is_none());
        assert_eq!(svc["spec"]["ports"][0]["nodePort"], 30080);
        assert!(svc["spec"]["ports"][1].get("nodePort").is_none());
        let mut headless = json!({"metadata": {"name": "h"}, "spec": {"clusterIP": "None"}});
        apply_fixes(&mut headless, "services");
        assert_eq!(headless["spec"]["clusterIP"], "None");
    }

    #[test]
    fn job_loses_controller_uid_and_generated_selector() {
        let mut job = json!({"metadata": {"name": "j", "labels": {"controller-uid": "u", "app": "x"},
                "ownerReferences": [{"uid": "o"}]},
            "spec": {"selector": {"matchLabels": {"controller-uid": "u"}}, "manualSelector": false,
                     "template": {"metadata": {"labels": {"controller-uid": "u", "batch.kubernetes.io/controller-uid": "u"}}}}});
        apply_fixes(&mut job, "jobs.batch");
        assert_eq!(job["metadata"]["labels"], json!({"app": "x"}));
        assert!(job["metadata"].get("ownerReferences").is_none());
        assert!(job["spec"].get("selector").is_none());
        assert_eq!(job["spec"]["template"]["metadata"]["labels"], json!({}));
    }

    #[test]
    fn pv_pod_and_service_account_fixes() {
        let mut pv = json!({"metadata": {"name": "pv", "annotations": {"pv.kubernetes.io/bound-by-controller": "yes"}},
            "spec": {"claimRef": {"name": "c", "namespace": "n", "uid": "u", "resourceVersion": "7"}}});
        apply_fixes(&mut pv, "persistentvolumes");
        assert_eq!(
            pv["spec"]["claimRef"],
            json!({"name": "c", "namespace": "n"})
        );
        assert_eq!(pv["metadata"]["annotations"], json!({}));
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "node-1"}});
        apply_fixes(&mut pod, "pods");
        assert_eq!(pod["spec"], json!({}));
        let mut sa = json!({"metadata": {"name": "app"}, "secrets": [{"name": "app-token-x7k2p"}, {"name": "pull"}]});
        apply_fixes(&mut sa, "serviceaccounts");
        assert_eq!(sa["secrets"], json!([{"name": "pull"}]));
        let mut nothing = json!({"metadata": {"name": "cm"}});
        apply_fixes(&mut nothing, "configmaps");
        assert_eq!(nothing, json!({"metadata": {"name": "cm"}}));
    }

    #[test]
    fn generated_token_secrets_are_skipped() {
        let token = json!({"type": "kubernetes.io/service-account-token", "metadata": {"name": "app-token-abcde",
            "annotations": {"kubernetes.io/service-account.name": "app"}}});
        assert!(skip_reason(&token, "secrets").is_some());
        let own = json!({"type": "kubernetes.io/service-account-token", "metadata": {"name": "ci-token",
            "annotations": {"kubernetes.io/service-account.name": "app"}}});
        assert!(skip_reason(&own, "secrets").is_none());
    }
}
