//! From snapshot files to the ordered list of objects to restore: parsing,
//! filters, namespace mapping, fixes, and Velero's order.

use std::collections::BTreeMap;

use serde_json::Value;

use super::fixes::{apply_fixes, skip_reason};
use super::mapping::map_namespaces;
use super::order::rank;
use super::report::{Action, PlannedObject};
use super::K8sRestoreOptions;
use crate::source::k8s::clean::{clean, parse_path};
use crate::source::k8s::discovery::{qualified_name, ApiResourceInfo};
use crate::source::k8s::select::{matches_resource, NamespaceFilter};
use crate::source::k8s::K8sFile;

/// One object ready to be sent to the target cluster.
#[derive(Debug, Clone)]
pub struct Item {
    pub path: String,
    /// API group, empty for core.
    pub group: String,
    pub resource: String,
    /// `resource` or `resource.group`.
    pub qualified: String,
    pub source_namespace: Option<String>,
    /// Namespace after mapping.
    pub namespace: Option<String>,
    /// Name after mapping (only namespaces are renamed).
    pub name: String,
    /// The object, mapped and fixed.
    pub object: Value,
    pub status: Option<Value>,
    /// Why the object is not restored, if it is not.
    pub skip: Option<String>,
}

impl Item {
    pub fn planned(&self, action: Action, message: Option<String>) -> PlannedObject {
        PlannedObject {
            path: self.path.clone(),
            resource: self.qualified.clone(),
            source_namespace: self.source_namespace.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            action,
            message,
        }
    }

    /// `group/version` from the stored object.
    pub fn version(&self) -> String {
        let api_version = self.object["apiVersion"].as_str().unwrap_or("v1");
        api_version.rsplit('/').next().unwrap_or("v1").to_string()
    }
}

/// Parses, filters, maps, fixes and orders the snapshot files. Files that
/// cannot be read come back as failed plan entries.
pub fn prepare(files: Vec<K8sFile>, opts: &K8sRestoreOptions) -> (Vec<Item>, Vec<PlannedObject>) {
    let (objects, mut statuses, bad) = parse_files(files);
    let mut items: Vec<Item> = objects
        .into_iter()
        .filter(|(_, parsed, object)| selected(parsed, object, opts))
        .map(|(path, parsed, object)| {
            let status = statuses.remove(&path);
            item(path, parsed, object, status, opts)
        })
        .collect();
    items.sort_by(|a, b| {
        (rank(&a.qualified), &a.qualified, &a.namespace, &a.name).cmp(&(
            rank(&b.qualified),
            &b.qualified,
            &b.namespace,
            &b.name,
        ))
    });
    (items, bad)
}

type Parsed = crate::source::k8s::clean::ObjectPath;

/// The objects of the files (path, parsed path, object), their recorded
/// statuses by object path, and the files that are not objects.
#[allow(clippy::type_complexity)]
fn parse_files(
    files: Vec<K8sFile>,
) -> (
    Vec<(String, Parsed, Value)>,
    BTreeMap<String, Value>,
    Vec<PlannedObject>,
) {
    let mut statuses = BTreeMap::new();
    let mut objects = Vec::new();
    let mut bad = Vec::new();
    for file in files {
        let Some(parsed) = parse_path(&file.path) else {
            bad.push(bad_file(
                &file.path,
                "not a k8s/<group>/<resource>/<namespace>/<name>.json path",
            ));
            continue;
        };
        match serde_json::from_slice::<Value>(&file.data) {
            Ok(v) if parsed.is_status => {
                statuses.insert(file.path.replacen("k8s/_status/", "k8s/", 1), v);
            }
            Ok(v) if v.is_object() && v["kind"].is_string() => objects.push((file.path, parsed, v)),
            Ok(_) => bad.push(bad_file(&file.path, "not a Kubernetes object (no kind)")),
            Err(e) => bad.push(bad_file(&file.path, &format!("invalid JSON: {e}"))),
        }
    }
    (objects, statuses, bad)
}

/// The group of a parsed path: empty for the core group.
fn api_group(parsed: &Parsed) -> String {
    match parsed.group.as_str() {
        "core" => String::new(),
        g => g.to_string(),
    }
}

/// Whether the namespace and resource filters keep an object.
fn selected(parsed: &Parsed, object: &Value, opts: &K8sRestoreOptions) -> bool {
    let group = api_group(parsed);
    let qualified = qualified_name(&group, &parsed.resource);
    let info = ApiResourceInfo {
        group,
        version: String::new(),
        resource: parsed.resource.clone(),
        kind: object["kind"].as_str().unwrap_or_default().to_string(),
        namespaced: parsed.namespace.is_some(),
        verbs: Vec::new(),
        subresources: Vec::new(),
    };
    let scope_ns = match qualified == "namespaces" {
        true => Some(&parsed.name),
        false => parsed.namespace.as_ref(),
    };
    let ns_filter = NamespaceFilter {
        include: &opts.include_namespaces,
        exclude: &opts.exclude_namespaces,
    };
    let included = opts.include_resources.is_empty()
        || opts
            .include_resources
            .iter()
            .any(|p| matches_resource(p, &info));
    let excluded = opts
        .exclude_resources
        .iter()
        .any(|p| matches_resource(p, &info));
    scope_ns.is_none_or(|ns| ns_filter.matches(ns)) && included && !excluded
}

/// Cleans, maps and fixes one selected object.
fn item(
    path: String,
    parsed: Parsed,
    mut object: Value,
    status: Option<Value>,
    opts: &K8sRestoreOptions,
) -> Item {
    let group = api_group(&parsed);
    let qualified = qualified_name(&group, &parsed.resource);
    clean(&mut object);
    // The path says where the object lived; the object agrees with it.
    if let (Some(ns), Some(meta)) = (
        &parsed.namespace,
        object
            .pointer_mut("/metadata")
            .and_then(Value::as_object_mut),
    ) {
        meta.insert("namespace".into(), Value::String(ns.clone()));
    }
    map_namespaces(&mut object, &qualified, &opts.namespace_mapping);
    apply_fixes(&mut object, &qualified);
    let skip = skip_reason(&object, &qualified);
    Item {
        path,
        namespace: object["metadata"]["namespace"]
            .as_str()
            .map(str::to_string)
            .filter(|_| parsed.namespace.is_some()),
        name: object["metadata"]["name"]
            .as_str()
            .unwrap_or(&parsed.name)
            .to_string(),
        source_namespace: parsed.namespace,
        group,
        resource: parsed.resource,
        qualified,
        object,
        status,
        skip,
    }
}

fn bad_file(path: &str, message: &str) -> PlannedObject {
    let parsed = parse_path(path);
    PlannedObject {
        path: path.to_string(),
        resource: parsed
            .as_ref()
            .map(|p| qualified_name(&p.group, &p.resource))
            .unwrap_or_else(|| "unknown".into()),
        source_namespace: parsed.as_ref().and_then(|p| p.namespace.clone()),
        namespace: None,
        name: parsed.map(|p| p.name).unwrap_or_default(),
        action: Action::Failed,
        message: Some(format!(
            "invalid object file: {message}; the snapshot may be damaged (`ferry check`)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn file(path: &str, v: Value) -> K8sFile {
        K8sFile {
            path: path.into(),
            data: serde_json::to_vec(&v).unwrap(),
        }
    }

    #[test]
    fn prepare_orders_maps_filters_and_reports_bad_files() {
        let files = vec![
            file(
                "k8s/apps/deployments/demo/web.json",
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}),
            ),
            file(
                "k8s/core/namespaces/_cluster/demo.json",
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}),
            ),
            file(
                "k8s/core/configmaps/other/c.json",
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "other"}}),
            ),
            file(
                "k8s/_status/apps/deployments/demo/web.json",
                json!({"replicas": 1}),
            ),
            file("k8s/core/configmaps/demo/bad.json", json!([1, 2])),
            file("elsewhere/x.json", json!({})),
        ];
        let opts = K8sRestoreOptions {
            namespace_mapping: [("demo".to_string(), "prod".to_string())].into(),
            exclude_namespaces: vec!["other".into()],
            ..K8sRestoreOptions::default()
        };
        let (items, bad) = prepare(files, &opts);
        let order: Vec<(&str, Option<&str>, &str)> = items
            .iter()
            .map(|i| {
                (
                    i.qualified.as_str(),
                    i.namespace.as_deref(),
                    i.name.as_str(),
                )
            })
            .collect();
        assert_eq!(
            order,
            [
                ("namespaces", None, "prod"),
                ("deployments.apps", Some("prod"), "web")
            ]
        );
        assert_eq!(
            items[1].object["metadata"]["namespace"], "prod",
            "namespace taken from the path, then mapped"
        );
        assert_eq!(items[1].status, Some(json!({"replicas": 1})));
        assert_eq!(items[1].source_namespace.as_deref(), Some("demo"));
        assert_eq!(bad.len(), 2);
        assert!(bad.iter().all(|b| b.action == Action::Failed));
        assert_eq!(bad[0].resource, "configmaps");
    }
}
