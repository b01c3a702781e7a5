//! Restore order: Velero's default resource priorities, then everything
//! else alphabetically by `resource.group`.

/// Resources restored first, in this order (`resource` for core, else `resource.group`).
pub const PRIORITIES: &[&str] = &[
    "customresourcedefinitions.apiextensions.k8s.io",
    "namespaces",
    "storageclasses.storage.k8s.io",
    "volumesnapshotclasses.snapshot.storage.k8s.io",
    "volumesnapshotcontents.snapshot.storage.k8s.io",
    "volumesnapshots.snapshot.storage.k8s.io",
    "persistentvolumes",
    "persistentvolumeclaims",
    "clusterroles.rbac.authorization.k8s.io",
    "roles.rbac.authorization.k8s.io",
    "serviceaccounts",
    "clusterrolebindings.rbac.authorization.k8s.io",
    "rolebindings.rbac.authorization.k8s.io",
    "secrets",
    "configmaps",
    "limitranges",
    "priorityclasses.scheduling.k8s.io",
    "pods",
    "replicasets.apps",
    "endpoints",
    "services",
];

/// The sort key of a resource (`resource` or `resource.group`): its priority
/// index, or after all priorities in alphabetical order.
pub fn rank(qualified: &str) -> (usize, String) {
    let index = PRIORITIES
        .iter()
        .position(|p| *p == qualified)
        .unwrap_or(PRIORITIES.len());
    let name = if index < PRIORITIES.len() {
        String::new()
    } else {
        qualified.to_string()
    };
    (index, name)
}

/// Whether a resource is the CRD resource.
pub fn is_crd(qualified: &str) -> bool {
    qualified == PRIORITIES[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crds_then_namespaces_then_priorities_then_alphabetical() {
        let mut names = vec![
            "deployments.apps",
            "services",
            "namespaces",
            "customresourcedefinitions.apiextensions.k8s.io",
            "configmaps",
            "cronjobs.batch",
            "foos.samplecontroller.k8s.io",
        ];
        names.sort_by_key(|n| rank(n));
        assert_eq!(
            names,
            [
                "customresourcedefinitions.apiextensions.k8s.io",
                "namespaces",
                "configmaps",
                "services",
                "cronjobs.batch",
                "deployments.apps",
                "foos.samplecontroller.k8s.io",
            ]
        );
    }
}
