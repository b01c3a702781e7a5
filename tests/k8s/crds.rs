//! Custom resources: several CRDs at once, multi-version CRDs backed up at
//! their preferred version, CRDs in Velero's priority list, large CRDs.

use ferry::engine::k8s_restore::restore;
use ferry::source::k8s::collect;

use super::support::fake_k8s::FakeK8s;
use super::*;

fn crd_cluster() -> FakeK8s {
    let fake = FakeK8s::start();
    for crd in [
        "volumesnapshotclasses",
        "volumesnapshotcontents",
        "volumesnapshots",
    ] {
        fake.seed_fixture(&format!(
            "manifests/external-snapshotter/crds/snapshot.storage.k8s.io_{crd}.yaml"
        ));
    }
    fake.seed_fixture("manifests/external-snapshotter/examples/snapshotclass-v1.yaml");
    fake.seed_fixture("manifests/external-snapshotter/examples/snapshot-v1.yaml");
    fake.seed_fixture("manifests/external-snapshotter/examples/pvc.yaml");
    fake.seed_fixture("manifests/velero/enable_api_group_versions/case-a-source.yaml");
    fake.seed_fixture("manifests/velero/enable_api_group_versions/music_v1_rockband.yaml");
    // The same band at v1alpha1, under another name: listed at v1 like the first.
    let mut older = support::fixture_docs(
        "manifests/velero/enable_api_group_versions/music_v1alpha1_rockband.yaml",
    )
    .remove(0);
    older["metadata"]["name"] = "stones".into();
    fake.seed(older);
    let kibana = std::fs::read(
        support::fixtures().join("live-objects/velero/crd-v1-kibanas.kibana.k8s.elastic.co.json"),
    )
    .unwrap();
    fake.seed(serde_json::from_slice(&kibana).unwrap());
    fake
}

#[tokio::test]
async fn custom_resources_are_backed_up_at_the_preferred_version_and_restored_after_their_crds() {
    let source = crd_cluster();
    let dir = tempfile::tempdir().unwrap();
    let c = collect(&backup_opts(&source.kubeconfig(dir.path())))
        .await
        .unwrap();
    let p = paths(&c);
    assert!(p.contains(&"k8s/snapshot.storage.k8s.io/volumesnapshotclasses/_cluster/csi-hostpath-snapclass-v1.json"));
    assert!(p.contains(
        &"k8s/snapshot.storage.k8s.io/volumesnapshots/default/new-snapshot-demo-v1.json"
    ));
    assert!(p.contains(&"k8s/apiextensions.k8s.io/customresourcedefinitions/_cluster/kibanas.kibana.k8s.elastic.co.json"));
    let bands: Vec<Value> = c
        .files
        .iter()
        .filter(|f| f.path.starts_with("k8s/music.example.io/rockbands/"))
        .map(json_of)
        .collect();
    assert_eq!(bands.len(), 2, "{p:#?}");
    assert!(
        bands
            .iter()
            .all(|b| b["apiVersion"] == "music.example.io/v1"),
        "preferred (storage) version"
    );
    assert_eq!(
        c.metadata["resources"]["rockbands.music.example.io"]["apiVersion"],
        "music.example.io/v1"
    );

    let target = FakeK8s::start();
    let report = restore(
        c.files.clone(),
        &restore_opts(&target.kubeconfig(dir.path())),
    )
    .await
    .unwrap();
    assert!(!report.has_failures(), "{:#?}", failures(&report));
    assert_all_restored(&c.files, &target, &[]);
    let order: Vec<&str> = report.objects.iter().map(|o| o.resource.as_str()).collect();
    let pos = |r: &str| {
        order
            .iter()
            .position(|x| *x == r)
            .unwrap_or_else(|| panic!("{r} not in {order:?}"))
    };
    assert!(pos("customresourcedefinitions.apiextensions.k8s.io") < pos("namespaces"));
    assert!(
        pos("volumesnapshotclasses.snapshot.storage.k8s.io")
            < pos("volumesnapshots.snapshot.storage.k8s.io")
    );
    assert!(pos("volumesnapshots.snapshot.storage.k8s.io") < pos("persistentvolumeclaims"));
    assert!(pos("persistentvolumeclaims") < pos("rockbands.music.example.io"));
    assert_eq!(
        report.counts["customresourcedefinitions.apiextensions.k8s.io"].created,
        5
    );
    assert_eq!(report.counts["rockbands.music.example.io"].created, 2);
    // Each created CRD was polled until established, then discovery read again.
    let crd_polls =
        target.requests_matching("GET /apis/apiextensions.k8s.io/v1/customresourcedefinitions/");
    assert_eq!(crd_polls.len(), 5, "{crd_polls:#?}");
    let discoveries = target
        .state()
        .requests
        .iter()
        .filter(|r| *r == "GET /apis")
        .count();
    assert_eq!(discoveries, 2);
}
