//! The backup use of the Kubernetes source: from options to files and metadata.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::clean::{canonical_json, clean, object_path, status_path};
use super::client::{connect, Connection};
use super::discovery::{discover, ApiResourceInfo};
use super::list::list_all;
use super::rest::Rest;
use super::select::{is_namespaces, select, NamespaceFilter, ResourceFilter};
use super::{K8sBackupOptions, K8sCollection, K8sError, K8sFile};

/// Reads every selected object of the cluster and returns it as snapshot files.
///
/// Fails only when nothing can be backed up (no configuration, server
/// unreachable, discovery refused). A resource that cannot be listed (403,
/// any other error) or a group whose discovery fails is left out, named in
/// `warnings` and recorded under `metadata.failed`.
pub async fn collect(opts: &K8sBackupOptions) -> Result<K8sCollection, K8sError> {
    let conn = connect(opts.kubeconfig.as_deref(), opts.context.as_deref()).await?;
    let version = match conn.client.apiserver_version().await {
        Ok(version) => version,
        Err(e @ kube::Error::Api(_)) => {
            return Err(K8sError::from_kube(&conn.server, "/version", "", e))
        }
        Err(e) => {
            return Err(K8sError::Unreachable {
                server: conn.server.clone(),
                source: Box::new(e),
            })
        }
    };
    let discovery = discover(&conn).await?;
    let mut run = Run::default();
    for group in &discovery.failed_groups {
        run.fail(json!({"group": group.group, "reason": group.reason}));
        run.warnings.push(format!(
            "group {} left out: discovery failed: {}",
            group.group, group.reason
        ));
    }
    let cluster_id = cluster_id(&conn, &mut run).await;
    let ns_filter = NamespaceFilter {
        include: &opts.include_namespaces,
        exclude: &opts.exclude_namespaces,
    };
    let resources = select(
        &discovery.resources,
        ResourceFilter {
            include: &opts.include_resources,
            exclude: &opts.exclude_resources,
            cluster: opts.include_cluster_resources,
            // As Velero: excluding some namespaces still backs up "all" of them.
            namespaces_limited: ns_filter.explicit().is_some(),
        },
    );
    for res in &resources {
        if let Err(e) = run.resource(&conn, res, &ns_filter, opts).await {
            if e.is_transport() {
                // The server went away: a snapshot missing the rest is no backup.
                return Err(e);
            }
            tracing::warn!(resource = %res.qualified(), error = %e, "resource left out of backup");
            run.fail(json!({"resource": res.qualified(), "code": e.status_code(), "reason": e.to_string()}));
            run.warnings.push(e.to_string());
        }
    }
    run.files.sort_by(|a, b| a.path.cmp(&b.path));
    let metadata = json!({
        "cluster": {
            "server": conn.server,
            "id": cluster_id,
            "version": version,
        },
        "discovery": discovery.mode,
        "filters": opts,
        "resources": run.counts,
        "failed": run.failed,
    });
    Ok(K8sCollection {
        files: run.files,
        metadata,
        warnings: run.warnings,
    })
}

#[derive(Default)]
struct Run {
    files: Vec<K8sFile>,
    counts: BTreeMap<String, Value>,
    failed: Vec<Value>,
    warnings: Vec<String>,
}

impl Run {
    fn fail(&mut self, entry: Value) {
        self.failed.push(entry);
    }

    async fn resource(
        &mut self,
        conn: &Connection,
        res: &ApiResourceInfo,
        ns_filter: &NamespaceFilter<'_>,
        opts: &K8sBackupOptions,
    ) -> Result<(), K8sError> {
        let scopes: Vec<Option<&str>> = match ns_filter.explicit() {
            Some(list) if res.namespaced => list.iter().map(|n| Some(n.as_str())).collect(),
            _ => vec![None],
        };
        let mut versions = BTreeMap::new();
        let mut count = 0u64;
        for scope in scopes {
            let listed = list_all(
                conn,
                res,
                scope,
                opts.label_selector.as_deref(),
                opts.page_size,
            )
            .await?;
            versions.insert(scope.unwrap_or("_all").to_string(), listed.resource_version);
            for item in listed.items {
                if self.take(res, item, ns_filter) {
                    count += 1;
                }
            }
        }
        tracing::info!(resource = %res.qualified(), count, "resource listed");
        self.counts.insert(
            res.qualified(),
            json!({"apiVersion": res.api_version(), "kind": res.kind, "count": count, "resourceVersions": versions}),
        );
        Ok(())
    }

    /// Cleans and stores one listed object if the namespace filter keeps it.
    fn take(
        &mut self,
        res: &ApiResourceInfo,
        mut item: Value,
        ns_filter: &NamespaceFilter<'_>,
    ) -> bool {
        let meta = &item["metadata"];
        let name = meta["name"].as_str().unwrap_or_default().to_string();
        let namespace = meta["namespace"].as_str().map(str::to_string);
        let scope_ns = if is_namespaces(res) {
            Some(name.as_str())
        } else {
            namespace.as_deref()
        };
        if name.is_empty() || scope_ns.is_some_and(|ns| !ns_filter.matches(ns)) {
            return false;
        }
        let status = clean(&mut item);
        let ns = namespace.as_deref();
        self.files.push(K8sFile {
            path: object_path(&res.group, &res.resource, ns, &name),
            data: canonical_json(&item),
        });
        if let Some(status) = status {
            self.files.push(K8sFile {
                path: status_path(&res.group, &res.resource, ns, &name),
                data: canonical_json(&status),
            });
        }
        true
    }
}

/// The kube-system namespace uid: stable for the cluster's life, so it identifies it.
async fn cluster_id(conn: &Connection, run: &mut Run) -> Value {
    match Rest::new(conn, "/api/v1/namespaces".into())
        .get("kube-system")
        .await
    {
        Ok(ns) => ns["metadata"]["uid"].clone(),
        Err(e) => {
            tracing::warn!(server = %conn.server, error = %e, "cluster id unavailable");
            run.warnings.push(format!(
                "cluster id unavailable (cannot read namespace kube-system on {}): {e}",
                conn.server
            ));
            Value::Null
        }
    }
}
