//! Which discovered resources and namespaces a backup takes: verbs, default
//! exclusions (as Velero's), user filters, cluster scope, duplicates.

use super::discovery::ApiResourceInfo;
use super::IncludeClusterResources;

/// Resources left out unless named in `include_resources`: they are rebuilt
/// by the cluster itself or make no sense in another cluster (Velero's list).
pub const DEFAULT_EXCLUDED_RESOURCES: &[&str] = &[
    "events",
    "events.events.k8s.io",
    "nodes",
    "csinodes.storage.k8s.io",
    "volumeattachments.storage.k8s.io",
    "backups.velero.io",
    "restores.velero.io",
    "backuprepositories.velero.io",
];

/// Resources served under two groups: the second is dropped when the first is taken.
const DUPLICATES: &[(&str, &str)] = &[("events", "events.events.k8s.io")];

/// Verbs a resource must support to be backed up and restored.
const REQUIRED_VERBS: &[&str] = &["list", "get", "create", "delete"];

/// Whether a user pattern (`*`, `configmaps`, `deployments.apps`, `Deployment`) names a resource.
pub fn matches_resource(pattern: &str, res: &ApiResourceInfo) -> bool {
    pattern == "*"
        || pattern == res.resource
        || pattern == res.qualified()
        || pattern.eq_ignore_ascii_case(&res.kind)
}

/// Include/exclude lists of namespaces; an empty include list (or `*`) means all.
#[derive(Debug, Clone, Default)]
pub struct NamespaceFilter<'a> {
    pub include: &'a [String],
    pub exclude: &'a [String],
}

impl NamespaceFilter<'_> {
    pub fn matches(&self, namespace: &str) -> bool {
        let included =
            self.include.is_empty() || self.include.iter().any(|n| n == "*" || n == namespace);
        included && !self.exclude.iter().any(|n| n == namespace)
    }

    /// Namespaces to list one by one, or `None` to list across all namespaces.
    pub fn explicit(&self) -> Option<&[String]> {
        if self.include.is_empty() || self.include.iter().any(|n| n == "*") {
            None
        } else {
            Some(self.include)
        }
    }
}

/// Resource filters given by the user.
#[derive(Debug, Clone, Copy)]
pub struct ResourceFilter<'a> {
    pub include: &'a [String],
    pub exclude: &'a [String],
    pub cluster: IncludeClusterResources,
    /// Whether the backup is limited to some namespaces (for `auto`).
    pub namespaces_limited: bool,
}

/// Picks the resources to back up, in a stable order (group, resource).
pub fn select(discovered: &[ApiResourceInfo], filter: ResourceFilter<'_>) -> Vec<ApiResourceInfo> {
    let mut picked: Vec<ApiResourceInfo> = discovered
        .iter()
        .filter(|r| REQUIRED_VERBS.iter().all(|v| r.supports(v)))
        .filter(|r| wanted(r, filter))
        .cloned()
        .collect();
    for (keep, drop) in DUPLICATES {
        if picked.iter().any(|r| r.qualified() == *keep) {
            picked.retain(|r| r.qualified() != *drop);
        }
    }
    picked.sort_by(|a, b| (&a.group, &a.resource).cmp(&(&b.group, &b.resource)));
    picked.dedup_by(|a, b| a.group == b.group && a.resource == b.resource);
    picked
}

fn wanted(res: &ApiResourceInfo, filter: ResourceFilter<'_>) -> bool {
    let named = |p: &String| p != "*" && matches_resource(p, res);
    if filter.exclude.iter().any(|p| matches_resource(p, res)) {
        return false;
    }
    let explicitly = filter.include.iter().any(named);
    if !filter.include.is_empty() && !filter.include.iter().any(|p| matches_resource(p, res)) {
        return false;
    }
    if DEFAULT_EXCLUDED_RESOURCES.contains(&res.qualified().as_str()) && !explicitly {
        return false;
    }
    if res.namespaced || is_namespaces(res) {
        return true;
    }
    match filter.cluster {
        IncludeClusterResources::Include => true,
        IncludeClusterResources::Exclude => false,
        IncludeClusterResources::Auto => !filter.namespaces_limited,
    }
}

/// The `namespaces` resource follows the namespace filters, not the cluster-scope option.
pub fn is_namespaces(res: &ApiResourceInfo) -> bool {
    res.group.is_empty() && res.resource == "namespaces"
}
