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

#[cfg(test)]
mod tests {
    use super::*;

    fn res(group: &str, resource: &str, kind: &str, namespaced: bool) -> ApiResourceInfo {
        ApiResourceInfo {
            group: group.into(),
            version: "v1".into(),
            resource: resource.into(),
            kind: kind.into(),
            namespaced,
            verbs: [
                "create", "delete", "get", "list", "patch", "update", "watch",
            ]
            .map(String::from)
            .to_vec(),
            subresources: Vec::new(),
        }
    }

    fn names(picked: &[ApiResourceInfo]) -> Vec<String> {
        picked.iter().map(ApiResourceInfo::qualified).collect()
    }

    fn filter<'a>(
        include: &'a [String],
        exclude: &'a [String],
        cluster: IncludeClusterResources,
        limited: bool,
    ) -> ResourceFilter<'a> {
        ResourceFilter {
            include,
            exclude,
            cluster,
            namespaces_limited: limited,
        }
    }

    fn cluster() -> Vec<ApiResourceInfo> {
        let mut no_create = res("", "componentstatuses", "ComponentStatus", false);
        no_create.verbs = vec!["get".into(), "list".into()];
        vec![
            res("", "configmaps", "ConfigMap", true),
            res("", "events", "Event", true),
            res("events.k8s.io", "events", "Event", true),
            res("", "nodes", "Node", false),
            res("", "namespaces", "Namespace", false),
            res("apps", "deployments", "Deployment", true),
            res("storage.k8s.io", "storageclasses", "StorageClass", false),
            no_create,
        ]
    }

    #[test]
    fn defaults_exclude_velero_list_and_unrestorable_resources() {
        let picked = select(
            &cluster(),
            filter(&[], &[], IncludeClusterResources::Auto, false),
        );
        assert_eq!(
            names(&picked),
            [
                "configmaps",
                "namespaces",
                "deployments.apps",
                "storageclasses.storage.k8s.io"
            ]
        );
    }

    #[test]
    fn naming_a_default_exclusion_includes_it_once() {
        let include = vec!["events".to_string(), "nodes".to_string()];
        let picked = select(
            &cluster(),
            filter(&include, &[], IncludeClusterResources::Auto, false),
        );
        assert_eq!(
            names(&picked),
            ["events", "nodes"],
            "events.k8s.io duplicate dropped"
        );
    }

    #[test]
    fn cluster_scope_follows_the_option_but_namespaces_follow_the_namespace_filter() {
        let limited = select(
            &cluster(),
            filter(&[], &[], IncludeClusterResources::Auto, true),
        );
        assert_eq!(
            names(&limited),
            ["configmaps", "namespaces", "deployments.apps"]
        );
        let forced = select(
            &cluster(),
            filter(&[], &[], IncludeClusterResources::Include, true),
        );
        assert!(names(&forced).contains(&"storageclasses.storage.k8s.io".to_string()));
        let never = select(
            &cluster(),
            filter(&[], &[], IncludeClusterResources::Exclude, false),
        );
        assert_eq!(
            names(&never),
            ["configmaps", "namespaces", "deployments.apps"]
        );
    }

    #[test]
    fn patterns_match_plural_qualified_and_kind() {
        let d = res("apps", "deployments", "Deployment", true);
        for p in [
            "*",
            "deployments",
            "deployments.apps",
            "deployment",
            "Deployment",
            "deploy",
            "apps",
        ] {
            assert_eq!(matches_resource(p, &d), p != "deploy" && p != "apps", "{p}");
        }
        let exclude = vec!["Deployment".to_string()];
        let picked = select(
            &cluster(),
            filter(&[], &exclude, IncludeClusterResources::Auto, false),
        );
        assert!(!names(&picked).contains(&"deployments.apps".to_string()));
    }

    #[test]
    fn namespace_filter() {
        let include = vec!["a".to_string(), "b".to_string()];
        let exclude = vec!["b".to_string()];
        let f = NamespaceFilter {
            include: &include,
            exclude: &exclude,
        };
        assert!(f.matches("a") && !f.matches("b") && !f.matches("c"));
        assert_eq!(f.explicit(), Some(include.as_slice()));
        let all = NamespaceFilter {
            include: &[],
            exclude: &exclude,
        };
        assert!(all.matches("c") && !all.matches("b") && all.explicit().is_none());
    }
}
