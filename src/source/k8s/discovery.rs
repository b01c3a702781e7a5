//! Discovery of served resources: aggregated (apidiscovery.k8s.io/v2) with
//! fallback to the legacy per-group documents, tolerating groups that fail.

use kube::core::discovery::v2::{APIGroupDiscovery, APIGroupDiscoveryList};
use kube::core::ApiResource;
use serde::Serialize;

use super::client::Connection;
use super::error::{kube_code, K8sError};

/// One resource served by the cluster, at its group's preferred version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiResourceInfo {
    /// API group, empty for the core group.
    pub group: String,
    pub version: String,
    /// Plural resource name, as in URLs (`deployments`).
    pub resource: String,
    pub kind: String,
    pub namespaced: bool,
    pub verbs: Vec<String>,
    /// Subresource names (`status`, `scale`, ...).
    pub subresources: Vec<String>,
}

impl ApiResourceInfo {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `resource.group` as kubectl and Velero spell it (`deployments.apps`, `configmaps`).
    pub fn qualified(&self) -> String {
        qualified_name(&self.group, &self.resource)
    }

    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    pub fn has_status(&self) -> bool {
        self.subresources.iter().any(|s| s == "status")
    }

    /// The kube dynamic resource used to build requests.
    pub fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            api_version: self.api_version(),
            kind: self.kind.clone(),
            plural: self.resource.clone(),
        }
    }
}

/// `resource.group`, or `resource` for the core group.
pub fn qualified_name(group: &str, resource: &str) -> String {
    if group.is_empty() || group == "core" {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

/// Which discovery protocol answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscoveryMode {
    Aggregated,
    Legacy,
}

/// A group whose discovery failed; its resources are left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedGroup {
    pub group: String,
    pub reason: String,
}

/// Everything discovery found.
#[derive(Debug, Clone, Serialize)]
pub struct DiscoveryResult {
    pub mode: DiscoveryMode,
    pub resources: Vec<ApiResourceInfo>,
    pub failed_groups: Vec<FailedGroup>,
}

impl DiscoveryResult {
    /// Finds a served resource by group (empty or `core` for core) and plural name.
    pub fn find(&self, group: &str, resource: &str) -> Option<&ApiResourceInfo> {
        let group = if group == "core" { "" } else { group };
        self.resources
            .iter()
            .find(|r| r.group == group && r.resource == resource)
    }
}

/// Discovers every served resource at its preferred version.
///
/// Tries aggregated discovery first. kube's aggregated calls parse a legacy
/// answer (`APIGroupList`) into an empty list without error, so an empty
/// answer is taken as "not supported" and the legacy documents are read.
pub async fn discover(conn: &Connection) -> Result<DiscoveryResult, K8sError> {
    match conn.client.list_api_groups_aggregated().await {
        Ok(list) if !list.items.is_empty() => {
            let core = conn
                .client
                .list_core_api_versions_aggregated()
                .await
                .map_err(|e| discovery_error(conn, e))?;
            if core.items.is_empty() {
                tracing::warn!(server = %conn.server, "aggregated core discovery empty, reading legacy /api");
                let mut result = from_aggregated(list);
                super::discovery_legacy::core(conn, &mut result).await?;
                return Ok(result);
            }
            let mut result = from_aggregated(list);
            let core = from_aggregated(core);
            result.resources.extend(core.resources);
            result.failed_groups.extend(core.failed_groups);
            Ok(result)
        }
        Ok(_) => {
            tracing::info!(server = %conn.server, "aggregated discovery returned nothing, using legacy discovery");
            super::discovery_legacy::discover(conn).await
        }
        Err(e) if kube_code(&e).is_some_and(|c| c != 401 && c != 403) => {
            tracing::info!(server = %conn.server, error = %e, "aggregated discovery refused, using legacy discovery");
            super::discovery_legacy::discover(conn).await
        }
        Err(e) => Err(discovery_error(conn, e)),
    }
}

pub(crate) fn discovery_error(conn: &Connection, e: kube::Error) -> K8sError {
    if kube_code(&e) == Some(401) {
        K8sError::Unauthorized {
            server: conn.server.clone(),
        }
    } else if kube_code(&e).is_some() {
        K8sError::Discovery {
            server: conn.server.clone(),
            source: Box::new(e),
        }
    } else {
        K8sError::Unreachable {
            server: conn.server.clone(),
            source: Box::new(e),
        }
    }
}

fn from_aggregated(list: APIGroupDiscoveryList) -> DiscoveryResult {
    let mut result = DiscoveryResult {
        mode: DiscoveryMode::Aggregated,
        resources: Vec::new(),
        failed_groups: Vec::new(),
    };
    for group in list.items {
        add_group(group, &mut result);
    }
    result
}

fn add_group(group: APIGroupDiscovery, result: &mut DiscoveryResult) {
    let name = group.metadata.and_then(|m| m.name).unwrap_or_default();
    // Versions come in preference order; a stale one means its aggregated
    // API server did not answer, as client-go reports it.
    let Some(preferred) = group.versions.into_iter().next() else {
        return;
    };
    let version = preferred.version.unwrap_or_default();
    if preferred.freshness.as_deref() == Some("Stale") {
        tracing::warn!(group = %name, version = %version, "discovery stale for group");
        result.failed_groups.push(FailedGroup {
            group: name,
            reason: format!("discovery of {version} is stale: its API server did not answer"),
        });
        return;
    }
    for res in preferred.resources {
        let Some(resource) = res.resource else {
            continue;
        };
        result.resources.push(ApiResourceInfo {
            group: name.clone(),
            version: version.clone(),
            kind: res.response_kind.and_then(|k| k.kind).unwrap_or_default(),
            namespaced: res.scope.as_deref() == Some("Namespaced"),
            verbs: res.verbs,
            subresources: res
                .subresources
                .into_iter()
                .filter_map(|s| s.subresource)
                .collect(),
            resource,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/k8s-fixtures/discovery/kubernetes-api-discovery/"
        );
        std::fs::read(format!("{dir}{name}")).unwrap()
    }

    #[test]
    fn aggregated_capture_gives_preferred_versions_and_subresources() {
        let list: APIGroupDiscoveryList =
            serde_json::from_slice(&fixture("aggregated_v2.json")).unwrap();
        let result = from_aggregated(list);
        assert!(result.failed_groups.is_empty());
        let deploy = result.find("apps", "deployments").unwrap();
        assert_eq!(
            (deploy.version.as_str(), deploy.kind.as_str()),
            ("v1", "Deployment")
        );
        assert!(deploy.namespaced && deploy.has_status() && deploy.supports("create"));
        assert!(deploy.subresources.contains(&"scale".to_string()));
        let hpa = result
            .find("autoscaling", "horizontalpodautoscalers")
            .unwrap();
        assert_eq!(hpa.version, "v2", "first listed version is preferred");
        let crd = result
            .find("apiextensions.k8s.io", "customresourcedefinitions")
            .unwrap();
        assert!(!crd.namespaced);
        assert_eq!(
            crd.qualified(),
            "customresourcedefinitions.apiextensions.k8s.io"
        );
    }

    #[test]
    fn stale_groups_are_failed_not_served() {
        let mut raw: serde_json::Value =
            serde_json::from_slice(&fixture("aggregated_v2.json")).unwrap();
        for g in raw["items"].as_array_mut().unwrap() {
            if g["metadata"]["name"] == "batch" {
                g["versions"][0]["freshness"] = "Stale".into();
            }
        }
        let result = from_aggregated(serde_json::from_value(raw).unwrap());
        assert!(result.find("batch", "jobs").is_none());
        assert_eq!(result.failed_groups[0].group, "batch");
    }

    #[test]
    fn a_legacy_answer_parses_as_an_empty_aggregated_list() {
        // Why `discover` treats an empty aggregated answer as "fall back".
        let list: APIGroupDiscoveryList = serde_json::from_slice(&fixture("apis.json")).unwrap();
        assert!(list.items.is_empty());
    }

    #[test]
    fn api_resource_urls() {
        let list: APIGroupDiscoveryList =
            serde_json::from_slice(&fixture("aggregated_v2.json")).unwrap();
        let result = from_aggregated(list);
        let ar = result.find("apps", "deployments").unwrap().api_resource();
        assert_eq!(
            (ar.api_version.as_str(), ar.plural.as_str()),
            ("apps/v1", "deployments")
        );
        assert_eq!(qualified_name("core", "pods"), "pods");
    }
}
