//! Checking a restored object against what ferry sent: the object is read
//! back from the API server, and every field ferry sent (its spec and other
//! top-level fields, its name, namespace, labels and annotations) must be
//! there with the same value. Fields the server adds (defaults, uid,
//! resourceVersion, managedFields, status) are not the drill's business; a
//! field the server changed or dropped (a mutating admission, a webhook, a
//! controller) is a mismatch, named by its path.

use serde_json::{Map, Value};

use crate::engine::k8s_restore::plan::Item;
use crate::source::k8s::client::Connection;
use crate::source::k8s::rest::{collection_url, Rest};

/// Reads `item` back from the server; what differs from what was sent.
pub async fn read_back(conn: &Connection, item: &Item) -> Option<String> {
    let url = collection_url(
        &item.group,
        &item.version(),
        &item.resource,
        item.namespace.as_deref(),
    );
    match Rest::new(conn, url).get(&item.name).await {
        Ok(live) => differs(&item.object, &live),
        Err(e) => Some(format!("not readable from the API server: {e}")),
    }
}

/// The part of an object a drill compares: all but apiVersion, kind and
/// status; of the metadata, the name, namespace, labels and annotations.
fn sent_part(obj: &Value) -> Value {
    let mut out = Map::new();
    for (k, v) in obj.as_object().into_iter().flatten() {
        match k.as_str() {
            "apiVersion" | "kind" | "status" => {}
            "metadata" => {
                let mut meta = Map::new();
                for f in ["name", "namespace", "labels", "annotations"] {
                    if let Some(x) = v.get(f) {
                        meta.insert(f.into(), x.clone());
                    }
                }
                out.insert(k.clone(), Value::Object(meta));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// The first field of `sent` that `live` lacks or holds with another value.
pub fn differs(sent: &Value, live: &Value) -> Option<String> {
    contained(&sent_part(sent), live, "")
}

/// Empty values the server may leave out.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn contained(want: &Value, got: &Value, at: &str) -> Option<String> {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => w.iter().find_map(|(k, wv)| {
            let here = format!("{at}.{k}");
            match g.get(k) {
                Some(gv) => contained(wv, gv, &here),
                None if is_empty(wv) => None,
                None => Some(format!(
                    "{}: sent {}, not on the server",
                    &here[1..],
                    short(wv)
                )),
            }
        }),
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => w
            .iter()
            .zip(g)
            .enumerate()
            .find_map(|(i, (wv, gv))| contained(wv, gv, &format!("{at}[{i}]"))),
        (w, g) if w == g || (is_empty(w) && g.is_null()) => None,
        (w, g) => Some(format!(
            "{}: sent {}, the server has {}",
            at.trim_start_matches('.'),
            short(w),
            short(g)
        )),
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_additions_pass_and_changes_are_named() {
        let sent = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "db", "namespace": "d", "labels": {"app": "db"}},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "db", "image": "pg:17"}]}},
                     "paused": null, "strategy": {}}});
        let mut live = sent.clone();
        live["apiVersion"] = json!("apps/v1beta2");
        live["metadata"]["uid"] = json!("u");
        live["metadata"]["labels"]["added-by"] = json!("webhook");
        live["spec"]["progressDeadlineSeconds"] = json!(600);
        live["spec"].as_object_mut().unwrap().remove("paused");
        live["spec"].as_object_mut().unwrap().remove("strategy");
        live["status"] = json!({"replicas": 1});
        assert_eq!(differs(&sent, &live), None);

        let mut changed = live.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("pg:16");
        let why = differs(&sent, &changed).unwrap();
        assert!(
            why.starts_with("spec.template.spec.containers[0].image: sent \"pg:17\""),
            "{why}"
        );
        let mut dropped = live;
        dropped["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("app");
        let why = differs(&sent, &dropped).unwrap();
        assert!(why.starts_with("metadata.labels.app: sent"), "{why}");
    }
}
