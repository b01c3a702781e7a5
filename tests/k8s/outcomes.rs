//! Restore outcomes per object: 422 rejections, conflicts under both
//! policies, and the dry-run plan.

use ferry::engine::k8s_restore::{restore, Action, ExistingResourcePolicy, K8sRestoreOptions};
use serde_json::json;

use super::restore::backup_of_source;
use super::support::fake_k8s::FakeK8s;
use super::*;

#[tokio::test]
async fn invalid_objects_fail_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let (_source, c) = backup_of_source(dir.path()).await;
    let target = FakeK8s::start();
    target.faults(|f| {
        f.invalid.insert(("configmaps".into(), "app-config".into()));
    });
    let mut files = c.files.clone();
    files.push(K8sFile {
        path: "k8s/core/configmaps/demo/broken.json".into(),
        data: b"{not json".to_vec(),
    });
    let report = restore(files, &restore_opts(&target.kubeconfig(dir.path())))
        .await
        .unwrap();
    assert!(report.has_failures());
    let failed = failures(&report);
    assert_eq!(failed.len(), 2, "{failed:#?}");
    let invalid = report.object("app-config").unwrap();
    assert_eq!(invalid.action, Action::Failed);
    let msg = invalid.message.as_deref().unwrap();
    assert!(
        msg.contains("422") && msg.contains("demo/app-config") && msg.contains("is invalid"),
        "{msg}"
    );
    assert_eq!(report.counts["configmaps"].failed, 2);
    assert!(
        target
            .object("apps", "deployments", Some("demo"), "web")
            .is_some(),
        "the rest is restored"
    );
}

fn changed_configmap(target: &FakeK8s) {
    target.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}));
    target.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-config", "namespace": "demo"},
        "data": {"LOG_LEVEL": "info"}}));
}

#[tokio::test]
async fn conflicts_are_reported_or_updated_by_policy() {
    let dir = tempfile::tempdir().unwrap();
    let (_source, c) = backup_of_source(dir.path()).await;
    let only_demo_cm = |policy| K8sRestoreOptions {
        include_resources: vec!["configmaps".into(), "namespaces".into()],
        include_namespaces: vec!["demo".into()],
        existing_resource_policy: policy,
        ..K8sRestoreOptions::default()
    };
    let target = FakeK8s::start();
    changed_configmap(&target);
    let opts = K8sRestoreOptions {
        kubeconfig: Some(target.kubeconfig(dir.path())),
        ..only_demo_cm(ExistingResourcePolicy::None)
    };
    let report = restore(c.files.clone(), &opts).await.unwrap();
    let cm = report.object("app-config").unwrap();
    assert_eq!(cm.action, Action::Conflict);
    assert_eq!(report.object("demo").unwrap().action, Action::Skip);
    assert!(!report.has_failures());
    assert!(report.warnings.iter().any(|w| w.contains("app-config")));
    assert_eq!(
        target
            .object("", "configmaps", Some("demo"), "app-config")
            .unwrap()["data"]["LOG_LEVEL"],
        "info"
    );

    let opts = K8sRestoreOptions {
        kubeconfig: Some(target.kubeconfig(dir.path())),
        ..only_demo_cm(ExistingResourcePolicy::Update)
    };
    let report = restore(c.files.clone(), &opts).await.unwrap();
    assert_eq!(report.object("app-config").unwrap().action, Action::Update);
    assert_eq!(report.counts["configmaps"].updated, 1);
    assert_eq!(
        target
            .object("", "configmaps", Some("demo"), "app-config")
            .unwrap()["data"]["LOG_LEVEL"],
        "debug"
    );

    let report = restore(c.files.clone(), &opts).await.unwrap();
    assert_eq!(
        report.object("app-config").unwrap().action,
        Action::Skip,
        "now identical"
    );
}

#[tokio::test]
async fn dry_run_plans_everything_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_source, c) = backup_of_source(dir.path()).await;
    let target = FakeK8s::start();
    changed_configmap(&target);
    let writes_before = target
        .state()
        .requests
        .iter()
        .filter(|r| !r.starts_with("GET"))
        .count();
    let mut opts = restore_opts(&target.kubeconfig(dir.path()));
    opts.dry_run = true;
    opts.namespace_mapping = [("default".to_string(), "staging".to_string())].into();
    let report = restore(c.files.clone(), &opts).await.unwrap();
    let writes_after = target
        .state()
        .requests
        .iter()
        .filter(|r| !r.starts_with("GET"))
        .count();
    assert_eq!(writes_before, writes_after, "a dry run writes nothing");
    assert!(
        report.dry_run && !report.has_failures(),
        "{:#?}",
        failures(&report)
    );
    let action = |name: &str| report.object(name).unwrap().action;
    assert_eq!(action("app-config"), Action::Conflict);
    assert_eq!(action("demo"), Action::Skip);
    assert_eq!(action("web"), Action::Create);
    assert_eq!(
        action("example-foo"),
        Action::Create,
        "custom resource of a CRD in the plan"
    );
    let objects = report
        .objects
        .iter()
        .filter(|o| !o.path.starts_with("k8s/_status/"))
        .count();
    assert_eq!(
        objects,
        c.files
            .iter()
            .filter(|f| !f.path.starts_with("k8s/_status/"))
            .count()
    );
    let text = report.render_human();
    assert!(text.starts_with("Restore plan for"));
    assert!(text.contains("namespace default -> staging"));
    assert!(text.contains("conflict") && text.contains("demo/app-config"));
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json["objects"][0]["resource"],
        "customresourcedefinitions.apiextensions.k8s.io"
    );
    assert_eq!(json["objects"][0]["action"], "create");
}

#[tokio::test]
async fn forbidden_and_unserved_resources_fail_per_object() {
    let dir = tempfile::tempdir().unwrap();
    let (_source, c) = backup_of_source(dir.path()).await;
    let target = FakeK8s::start();
    target.faults(|f| {
        f.forbidden.insert("secrets".into());
    });
    let opts = K8sRestoreOptions {
        exclude_resources: vec!["customresourcedefinitions.apiextensions.k8s.io".into()],
        ..restore_opts(&target.kubeconfig(dir.path()))
    };
    let report = restore(c.files.clone(), &opts).await.unwrap();
    let secret = report.object("db-credentials").unwrap();
    assert_eq!(secret.action, Action::Failed);
    let msg = secret.message.as_deref().unwrap();
    assert!(msg.contains("403") && msg.contains("grant"), "{msg}");
    let foo = report.object("example-foo").unwrap();
    assert_eq!(foo.action, Action::Failed);
    assert!(
        foo.message.as_deref().unwrap().contains("not served"),
        "{foo:?}"
    );
    assert_eq!(
        report.counts["deployments.apps"].created, 6,
        "everything else restored"
    );
}

#[tokio::test]
async fn a_crd_that_never_becomes_established_fails_its_objects_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (_source, c) = backup_of_source(dir.path()).await;
    let target = FakeK8s::start();
    target.faults(|f| f.crds_never_established = true);
    let opts = K8sRestoreOptions {
        crd_ready_timeout_seconds: 1,
        include_resources: vec![
            "customresourcedefinitions.apiextensions.k8s.io".into(),
            "foos.samplecontroller.k8s.io".into(),
        ],
        ..restore_opts(&target.kubeconfig(dir.path()))
    };
    let started = std::time::Instant::now();
    let report = restore(c.files.clone(), &opts).await.unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(
        report.counts["customresourcedefinitions.apiextensions.k8s.io"].created,
        1
    );
    assert_eq!(report.counts["foos.samplecontroller.k8s.io"].failed, 1);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("not Established")),
        "{:?}",
        report.warnings
    );
}

#[tokio::test]
async fn a_lost_connection_stops_the_restore_with_every_object_accounted_for() {
    let dir = tempfile::tempdir().unwrap();
    let (_source, c) = backup_of_source(dir.path()).await;
    let target = FakeK8s::start();
    let kc = target.kubeconfig(dir.path());
    let before = target.state().requests.len();
    target.faults(|f| f.drop_connections_after = Some(before + 30));
    let report = restore(c.files.clone(), &restore_opts(&kc)).await.unwrap();
    assert!(report.has_failures());
    let objects = c
        .files
        .iter()
        .filter(|f| !f.path.starts_with("k8s/_status/"))
        .count();
    assert_eq!(report.objects.len(), objects);
    let skipped_rest = report
        .objects
        .iter()
        .filter(|o| {
            o.message
                .as_deref()
                .is_some_and(|m| m.starts_with("not attempted"))
        })
        .count();
    assert!(skipped_rest > 10, "{:#?}", failures(&report));
    let after = target.state().requests.len() - before;
    assert!(
        after <= 32,
        "{after} requests: nothing more is sent once the connection is lost"
    );
}
