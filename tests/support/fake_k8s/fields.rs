//! Fields the fake server sets or derives: apiVersion/kind at the served
//! version, managedFields, defaults (namespace label, cluster IPs, node
//! ports), and the merge used by apply and merge patches.

use serde_json::{json, Value};

use super::catalog::Served;
use super::objects::TIME;

/// Sets `apiVersion` to the version the object is served at, and its kind.
pub fn with_version(mut obj: Value, s: &Served) -> Value {
    obj["apiVersion"] = json!(if s.group.is_empty() {
        s.version.clone()
    } else {
        format!("{}/{}", s.group, s.version)
    });
    obj["kind"] = json!(s.kind);
    obj
}

pub fn managed(manager: &str, operation: &str, s: &Served) -> Value {
    let api_version = if s.group.is_empty() {
        s.version.clone()
    } else {
        format!("{}/{}", s.group, s.version)
    };
    json!([{"manager": manager, "operation": operation, "apiVersion": api_version, "time": TIME,
        "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {}}}])
}

/// Defaults the real server fills in on create.
pub fn defaults(s: &Served, name: &str, obj: &mut Value, seq: u64) {
    match (s.group.as_str(), s.resource.as_str()) {
        ("", "namespaces") => {
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
        }
        ("", "services") => {
            if obj["spec"]["clusterIP"].is_null() {
                let ip = format!("10.96.{}.{}", (seq / 250) % 250, seq % 250 + 1);
                obj["spec"]["clusterIP"] = json!(ip);
                obj["spec"]["clusterIPs"] = json!([ip]);
            }
            let node_ports = matches!(
                obj["spec"]["type"].as_str(),
                Some("NodePort" | "LoadBalancer")
            );
            for (i, port) in obj["spec"]["ports"]
                .as_array_mut()
                .into_iter()
                .flatten()
                .enumerate()
            {
                if node_ports && port["nodePort"].is_null() {
                    port["nodePort"] = json!(30000 + (seq as usize * 7 + i) % 2000);
                }
            }
        }
        _ => {}
    }
}

/// JSON merge patch (RFC 7386); also used to approximate apply and strategic merge.
pub fn merge(target: &mut Value, patch: &Value) {
    let Some(patch) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let map = target.as_object_mut().unwrap();
    for (k, v) in patch {
        if v.is_null() {
            map.remove(k);
        } else {
            merge(map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}
