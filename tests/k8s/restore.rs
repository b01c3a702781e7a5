//! Restore into an empty cluster: everything, with status, with namespace
//! mapping, and CRDs before their custom resources.

use ferry::engine::k8s_restore::{restore, K8sRestoreOptions};
use ferry::source::k8s::collect;

use super::support::fake_k8s::FakeK8s;
use super::*;

pub async fn backup_of_source(dir: &std::path::Path) -> (FakeK8s, K8sCollection) {
    let source = source_cluster();
    let c = collect(&backup_opts(&source.kubeconfig(dir)))
        .await
        .unwrap();
    (source, c)
}

#[tokio::test]
async fn full_backup_restores_into_an_empty_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let (_source, c) = backup_of_source(dir.path()).await;
    let target = FakeK8s::start();
    let report = restore(
        c.files.clone(),
        &restore_opts(&target.kubeconfig(dir.path())),
    )
    .await
    .unwrap();
    assert!(failures(&report).is_empty(), "{:#?}", failures(&report));
    assert!(!report.has_failures());
    assert_all_restored(&c.files, &target, &[]);
    let totals = report.totals();
    assert_eq!(
        totals.skipped, 3,
        "default, kube-system, kube-public exist and are identical"
    );
    assert_eq!(report.counts["deployments.apps"].created, 6);
    // Fixes: the service got a new cluster IP, the PV lost its old claim uid.
    let svc = target.object("", "services", Some("demo"), "web").unwrap();
    assert!(svc["spec"]["clusterIP"].as_str().is_some());
    let pv = target
        .object("", "persistentvolumes", None, "my-model-pv")
        .unwrap();
    assert!(pv["spec"]["claimRef"].get("uid").is_none());
    assert!(pv["metadata"]["annotations"]
        .get("pv.kubernetes.io/bound-by-controller")
        .is_none());
    // Status is not restored unless asked.
    assert!(target
        .object("apps", "deployments", Some("demo"), "api")
        .unwrap()
        .get("status")
        .is_none());
    // Order: CRDs, then namespaces, ... then everything else alphabetically.
    let order: Vec<&str> = report.objects.iter().map(|o| o.resource.as_str()).collect();
    assert_eq!(order[0], "customresourcedefinitions.apiextensions.k8s.io");
    assert_eq!(order[1], "namespaces");
    let pos = |r: &str| order.iter().position(|x| *x == r).unwrap();
    assert!(pos("persistentvolumes") < pos("persistentvolumeclaims"));
    assert!(pos("serviceaccounts") < pos("rolebindings.rbac.authorization.k8s.io"));
    assert!(pos("services") < pos("cronjobs.batch"));
    assert!(pos("cronjobs.batch") < pos("deployments.apps"));
    assert!(report.render_human().contains("deployments.apps"));
}

#[tokio::test]
async fn restore_status_writes_the_status_subresource() {
    let dir = tempfile::tempdir().unwrap();
    let (_source, c) = backup_of_source(dir.path()).await;
    let target = FakeK8s::start();
    let opts = K8sRestoreOptions {
        restore_status: true,
        ..restore_opts(&target.kubeconfig(dir.path()))
    };
    let report = restore(c.files.clone(), &opts).await.unwrap();
    assert!(!report.has_failures(), "{:#?}", failures(&report));
    let api = target
        .object("apps", "deployments", Some("demo"), "api")
        .unwrap();
    assert_eq!(api["status"]["availableReplicas"], 1);
    assert!(!target
        .requests_matching("PUT /apis/apps/v1/namespaces/demo/deployments/api/status")
        .is_empty());
}

#[tokio::test]
async fn namespace_mapping_moves_objects_and_references() {
    let dir = tempfile::tempdir().unwrap();
    let (_source, c) = backup_of_source(dir.path()).await;
    let target = FakeK8s::start();
    let mut opts = restore_opts(&target.kubeconfig(dir.path()));
    opts.namespace_mapping =
        ferry::engine::k8s_restore::parse_mapping("demo:prod,default:staging").unwrap();
    let report = restore(c.files.clone(), &opts).await.unwrap();
    assert!(!report.has_failures(), "{:#?}", failures(&report));
    assert_all_restored(
        &c.files,
        &target,
        &[("demo", "prod"), ("default", "staging")],
    );
    assert!(target
        .object("", "configmaps", Some("demo"), "app-config")
        .is_none());
    assert!(target.object("", "namespaces", None, "demo").is_none());
    let ns = target.object("", "namespaces", None, "prod").unwrap();
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "prod"
    );
    let rb = target
        .object(
            "rbac.authorization.k8s.io",
            "rolebindings",
            Some("prod"),
            "read-pods",
        )
        .unwrap();
    assert_eq!(rb["subjects"][0]["namespace"], "prod");
    let pv = target
        .object("", "persistentvolumes", None, "my-model-pv")
        .unwrap();
    assert_eq!(pv["spec"]["claimRef"]["namespace"], "staging");
    assert!(target
        .object(
            "samplecontroller.k8s.io",
            "foos",
            Some("staging"),
            "example-foo"
        )
        .is_some());
    let planned = report.object("app-config").unwrap();
    assert_eq!(planned.source_namespace.as_deref(), Some("demo"));
    assert_eq!(planned.namespace.as_deref(), Some("prod"));
}

#[tokio::test]
async fn crd_is_established_and_discovered_before_its_custom_resources() {
    let dir = tempfile::tempdir().unwrap();
    let (_source, c) = backup_of_source(dir.path()).await;
    let target = FakeK8s::start();
    let opts = K8sRestoreOptions {
        include_resources: vec![
            "customresourcedefinitions.apiextensions.k8s.io".into(),
            "foos.samplecontroller.k8s.io".into(),
        ],
        ..restore_opts(&target.kubeconfig(dir.path()))
    };
    let report = restore(c.files.clone(), &opts).await.unwrap();
    assert!(!report.has_failures(), "{:#?}", failures(&report));
    assert_eq!(report.counts["foos.samplecontroller.k8s.io"].created, 1);
    let foo = target
        .object(
            "samplecontroller.k8s.io",
            "foos",
            Some("default"),
            "example-foo",
        )
        .unwrap();
    assert_eq!(foo["spec"]["replicas"], 1);
    let requests = target.state().requests.clone();
    let crd_get = requests
        .iter()
        .position(|r| {
            r.starts_with("GET /apis/apiextensions.k8s.io/v1/customresourcedefinitions/foos")
        })
        .unwrap();
    let foo_post = requests
        .iter()
        .position(|r| r.starts_with("POST /apis/samplecontroller.k8s.io/"))
        .unwrap();
    assert!(
        crd_get < foo_post,
        "waited for the CRD before creating its objects"
    );
}
