//! Backup: discovery (aggregated and legacy), selection, paging, 410, failures.

use ferry::source::k8s::{collect, IncludeClusterResources};
use serde_json::{json, Value};

use super::support::fake_k8s::FakeK8s;
use super::*;

#[tokio::test]
async fn full_cluster_backup_stores_clean_canonical_objects_and_metadata() {
    let fake = source_cluster();
    let dir = tempfile::tempdir().unwrap();
    let c = collect(&backup_opts(&fake.kubeconfig(dir.path())))
        .await
        .unwrap();
    let p = paths(&c);
    for expected in [
        "k8s/apps/deployments/demo/web.json",
        "k8s/core/configmaps/demo/app-config.json",
        "k8s/core/secrets/demo/db-credentials.json",
        "k8s/core/namespaces/_cluster/demo.json",
        "k8s/rbac.authorization.k8s.io/clusterrolebindings/_cluster/read-secrets-global.json",
        "k8s/apiextensions.k8s.io/customresourcedefinitions/_cluster/foos.samplecontroller.k8s.io.json",
        "k8s/samplecontroller.k8s.io/foos/default/example-foo.json",
        "k8s/core/persistentvolumes/_cluster/my-model-pv.json",
        "k8s/_status/apps/deployments/demo/api.json",
    ] {
        assert!(p.contains(&expected), "{expected} missing from {p:#?}");
    }
    for f in &c.files {
        let v = json_of(f);
        let meta = &v["metadata"];
        for noise in [
            "managedFields",
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
            "selfLink",
        ] {
            assert!(meta.get(noise).is_none(), "{} keeps {noise}", f.path);
        }
        assert!(
            v.get("status").is_none() || f.path.starts_with("k8s/_status/"),
            "{} keeps status",
            f.path
        );
        let canonical = ferry::source::k8s::clean::canonical_json(&v);
        assert_eq!(canonical, f.data, "{} is not canonical", f.path);
    }
    let status = json_of(file(&c, "k8s/_status/apps/deployments/demo/api.json").unwrap());
    assert_eq!(status["availableReplicas"], 1);
    let deploy = json_of(file(&c, "k8s/apps/deployments/demo/web.json").unwrap());
    assert_eq!(deploy["apiVersion"], "apps/v1");
    assert_eq!(deploy["kind"], "Deployment");

    let kube_system_uid =
        fake.object("", "namespaces", None, "kube-system").unwrap()["metadata"]["uid"].clone();
    assert_eq!(c.metadata["cluster"]["id"], kube_system_uid);
    assert_eq!(
        c.metadata["cluster"]["server"]
            .as_str()
            .unwrap()
            .trim_end_matches('/'),
        fake.url()
    );
    assert_eq!(
        c.metadata["cluster"]["version"]["gitVersion"],
        "v1.33.0-fake"
    );
    assert_eq!(c.metadata["discovery"], "aggregated");
    assert_eq!(c.metadata["resources"]["deployments.apps"]["count"], 6);
    assert!(
        c.metadata["resources"]["configmaps"]["resourceVersions"]["_all"]
            .as_str()
            .is_some_and(|rv| !rv.is_empty())
    );
    assert_eq!(c.metadata["failed"], json!([]));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // Default exclusions and resources that cannot be restored are left out.
    assert!(c.metadata["resources"].get("events").is_none());
    assert!(c.metadata["resources"].get("nodes").is_none());
    assert!(c.metadata["resources"].get("componentstatuses").is_none());

    let again = collect(&backup_opts(&fake.kubeconfig(dir.path())))
        .await
        .unwrap();
    assert_eq!(
        again.files, c.files,
        "an unchanged cluster gives the same bytes"
    );
}

#[tokio::test]
async fn legacy_only_server_falls_back_to_legacy_discovery() {
    let fake = source_cluster();
    let dir = tempfile::tempdir().unwrap();
    let opts = backup_opts(&fake.kubeconfig(dir.path()));
    let aggregated = collect(&opts).await.unwrap();
    fake.faults(|f| f.legacy_only = true);
    let legacy = collect(&opts).await.unwrap();
    assert_eq!(legacy.metadata["discovery"], "legacy");
    assert_eq!(paths(&legacy), paths(&aggregated));
    assert!(
        !fake.requests_matching("GET /apis/apps/v1").is_empty(),
        "legacy group documents were read"
    );
}

#[tokio::test]
async fn filters_select_namespaces_resources_labels_and_cluster_scope() {
    let fake = source_cluster();
    let dir = tempfile::tempdir().unwrap();
    let base = backup_opts(&fake.kubeconfig(dir.path()));
    let only_demo = collect(&K8sBackupOptions {
        include_namespaces: vec!["demo".into()],
        ..base.clone()
    })
    .await
    .unwrap();
    for p in paths(&only_demo) {
        assert!(
            p.contains("/demo/") || p.ends_with("/_cluster/demo.json"),
            "{p} outside demo"
        );
    }
    let with_cluster = K8sBackupOptions {
        include_namespaces: vec!["demo".into()],
        include_cluster_resources: IncludeClusterResources::Include,
        ..base.clone()
    };
    assert!(paths(&collect(&with_cluster).await.unwrap())
        .contains(&"k8s/storage.k8s.io/storageclasses/_cluster/e2e-storage-class.json"));
    let resources = K8sBackupOptions {
        include_resources: vec!["deployments.apps".into(), "configmaps".into()],
        exclude_namespaces: vec!["default".into()],
        ..base.clone()
    };
    let c = collect(&resources).await.unwrap();
    assert!(paths(&c)
        .iter()
        .all(|p| p.contains("/deployments/") || p.contains("/configmaps/")));
    assert!(paths(&c).iter().all(|p| !p.contains("/default/")));
    let labelled = collect(&K8sBackupOptions {
        label_selector: Some("app=web".into()),
        ..base.clone()
    })
    .await
    .unwrap();
    assert!(paths(&labelled).contains(&"k8s/apps/deployments/demo/web.json"));
    assert!(!paths(&labelled).contains(&"k8s/apps/deployments/demo/api.json"));
    let no_secrets = collect(&K8sBackupOptions {
        exclude_resources: vec!["secrets".into()],
        ..base
    })
    .await
    .unwrap();
    assert!(paths(&no_secrets).iter().all(|p| !p.contains("/secrets/")));
}

fn seed_configmaps(fake: &FakeK8s, ns: &str, n: usize) {
    for i in 0..n {
        fake.seed(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{i:04}"), "namespace": ns}, "data": {"i": i.to_string()}}));
    }
}

fn bulk_opts(fake: &FakeK8s, dir: &std::path::Path) -> K8sBackupOptions {
    K8sBackupOptions {
        include_namespaces: vec!["bulk".into()],
        include_resources: vec!["configmaps".into()],
        ..backup_opts(&fake.kubeconfig(dir))
    }
}

#[tokio::test]
async fn paging_reads_1500_objects_in_pages_of_500() {
    let fake = FakeK8s::start();
    seed_configmaps(&fake, "bulk", 1500);
    let dir = tempfile::tempdir().unwrap();
    let c = collect(&bulk_opts(&fake, dir.path())).await.unwrap();
    assert_eq!(c.files.len(), 1500);
    assert_eq!(c.metadata["resources"]["configmaps"]["count"], 1500);
    let lists = fake.requests_matching("GET /api/v1/namespaces/bulk/configmaps?");
    assert_eq!(lists.len(), 3, "{lists:#?}");
    assert!(lists.iter().all(|r| r.contains("limit=500")));
    assert!(lists[1].contains("continue="));
}

#[tokio::test]
async fn expired_continue_token_restarts_the_list() {
    let fake = FakeK8s::start();
    seed_configmaps(&fake, "bulk", 1500);
    fake.faults(|f| f.expire_next_continue = true);
    let dir = tempfile::tempdir().unwrap();
    let c = collect(&bulk_opts(&fake, dir.path())).await.unwrap();
    let mut names: Vec<&str> = paths(&c);
    names.dedup();
    assert_eq!(names.len(), 1500, "no object lost or duplicated");
    let lists = fake.requests_matching("GET /api/v1/namespaces/bulk/configmaps?");
    assert_eq!(
        lists.len(),
        5,
        "first page, expired second page, then three pages: {lists:#?}"
    );
}

#[tokio::test]
async fn a_group_whose_discovery_fails_is_recorded_and_skipped() {
    for legacy in [false, true] {
        let fake = source_cluster();
        fake.faults(|f| {
            f.failing_groups = vec!["batch".into()];
            f.legacy_only = legacy;
        });
        let dir = tempfile::tempdir().unwrap();
        let c = collect(&backup_opts(&fake.kubeconfig(dir.path())))
            .await
            .unwrap();
        assert!(
            paths(&c).iter().all(|p| !p.starts_with("k8s/batch/")),
            "legacy={legacy}"
        );
        assert!(paths(&c).contains(&"k8s/apps/deployments/demo/web.json"));
        let failed = c.metadata["failed"].as_array().unwrap();
        assert!(
            failed.iter().any(|f| f["group"] == "batch"),
            "legacy={legacy}: {failed:?}"
        );
        assert!(c.warnings.iter().any(|w| w.contains("batch")));
    }
}

#[tokio::test]
async fn rbac_403_on_a_resource_is_recorded_and_the_rest_backed_up() {
    let fake = source_cluster();
    fake.faults(|f| {
        f.forbidden.insert("secrets".into());
    });
    let dir = tempfile::tempdir().unwrap();
    let c = collect(&backup_opts(&fake.kubeconfig(dir.path())))
        .await
        .unwrap();
    assert!(paths(&c).iter().all(|p| !p.contains("/secrets/")));
    assert!(paths(&c).contains(&"k8s/core/configmaps/demo/app-config.json"));
    let failed: &Value = &c.metadata["failed"][0];
    assert_eq!(failed["resource"], "secrets");
    assert_eq!(failed["code"], 403);
    let warning = c.warnings.iter().find(|w| w.contains("secrets")).unwrap();
    assert!(
        warning.contains("403") && warning.contains("grant"),
        "{warning}"
    );
}
