//! Legacy discovery: `/api`, `/apis` and one `APIResourceList` per group
//! version; a group that fails to answer is recorded and skipped.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;

use super::client::Connection;
use super::discovery::{
    discovery_error, ApiResourceInfo, DiscoveryMode, DiscoveryResult, FailedGroup,
};

/// Reads `/apis`, each group's preferred version, then the core group.
pub async fn discover(conn: &Connection) -> Result<DiscoveryResult, super::K8sError> {
    let groups = conn
        .client
        .list_api_groups()
        .await
        .map_err(|e| discovery_error(conn, e))?;
    let mut result = DiscoveryResult {
        mode: DiscoveryMode::Legacy,
        resources: Vec::new(),
        failed_groups: Vec::new(),
    };
    for group in groups.groups {
        let Some(gv) = group
            .preferred_version
            .as_ref()
            .or_else(|| group.versions.first())
            .map(|v| v.group_version.clone())
        else {
            continue;
        };
        match conn.client.list_api_group_resources(&gv).await {
            Ok(list) => add_list(&group.name, list, &mut result),
            Err(e) => {
                tracing::warn!(group = %group.name, error = %e, "discovery failed for group");
                result.failed_groups.push(FailedGroup {
                    group: group.name.clone(),
                    reason: e.to_string(),
                });
            }
        }
    }
    core(conn, &mut result).await?;
    Ok(result)
}

/// Adds the core group's resources from `/api` and `/api/v1`.
pub async fn core(conn: &Connection, result: &mut DiscoveryResult) -> Result<(), super::K8sError> {
    let versions = conn
        .client
        .list_core_api_versions()
        .await
        .map_err(|e| discovery_error(conn, e))?;
    let version = versions
        .versions
        .first()
        .cloned()
        .unwrap_or_else(|| "v1".into());
    match conn.client.list_core_api_resources(&version).await {
        Ok(list) => add_list("", list, result),
        Err(e) => {
            tracing::warn!(group = "core", error = %e, "discovery failed for group");
            result.failed_groups.push(FailedGroup {
                group: "core".into(),
                reason: e.to_string(),
            });
        }
    }
    Ok(())
}

fn add_list(group: &str, list: APIResourceList, result: &mut DiscoveryResult) {
    let version = list
        .group_version
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let (subs, mains): (Vec<_>, Vec<_>) = list
        .resources
        .into_iter()
        .partition(|r| r.name.contains('/'));
    for res in mains {
        let prefix = format!("{}/", res.name);
        result.resources.push(ApiResourceInfo {
            group: group.to_string(),
            version: version.clone(),
            subresources: subs
                .iter()
                .filter_map(|s| s.name.strip_prefix(&prefix).map(str::to_string))
                .collect(),
            resource: res.name,
            kind: res.kind,
            namespaced: res.namespaced,
            verbs: res.verbs,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_core_list_attaches_subresources_to_their_resource() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/k8s-fixtures/discovery/kubernetes-api-discovery/api__v1.json"
        );
        let list: APIResourceList = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let mut result = DiscoveryResult {
            mode: DiscoveryMode::Legacy,
            resources: Vec::new(),
            failed_groups: Vec::new(),
        };
        add_list("", list, &mut result);
        let pods = result.find("", "pods").unwrap();
        assert_eq!((pods.version.as_str(), pods.kind.as_str()), ("v1", "Pod"));
        for sub in ["status", "log", "exec", "eviction"] {
            assert!(pods.subresources.iter().any(|s| s == sub), "pods/{sub}");
        }
        assert!(result.resources.iter().all(|r| !r.resource.contains('/')));
        let bindings = result.find("core", "bindings").unwrap();
        assert!(!bindings.supports("list"));
    }
}
