//! The real kubectl against the fake server, to keep the fake honest.

use std::path::Path;
use std::process::Command;

use super::support::fake_k8s::FakeK8s;
use super::support::fixtures;

fn kubectl(kubeconfig: &Path, cache: &Path, args: &[&str]) -> Option<String> {
    let bin = ["/usr/bin/kubectl", "/usr/local/bin/kubectl"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let out = Command::new(bin)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

#[test]
fn kubectl_get_and_apply_work_against_the_fake() {
    let fake = super::source_cluster();
    let dir = tempfile::tempdir().unwrap();
    let kc = fake.kubeconfig(dir.path());
    let cache = dir.path().join("cache");
    let Some(out) = kubectl(
        &kc,
        &cache,
        &["get", "configmaps", "-n", "demo", "-o", "json"],
    ) else {
        eprintln!("kubectl not installed: skipping the kubectl test");
        return;
    };
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["items"][0]["metadata"]["name"], "app-config");

    assert!(
        fake.state().aggregated_served >= 2,
        "kubectl negotiated aggregated discovery"
    );
    let names = kubectl(&kc, &cache, &["get", "deployments", "-A", "-o", "name"]).unwrap();
    assert!(names.contains("deployment.apps/web"), "{names}");
    let web = kubectl(
        &kc,
        &cache,
        &["get", "deploy", "-l", "app=web", "-n", "demo", "-o", "name"],
    )
    .unwrap();
    assert_eq!(web.trim(), "deployment.apps/web");
    let by_field = [
        "get",
        "services",
        "-A",
        "--field-selector",
        "metadata.namespace=demo",
        "-o",
        "name",
    ];
    assert_eq!(
        kubectl(&kc, &cache, &by_field).unwrap().trim(),
        "service/web"
    );
    let foo = kubectl(
        &kc,
        &cache,
        &[
            "get",
            "foos",
            "example-foo",
            "-o",
            "jsonpath={.spec.deploymentName}",
        ],
    )
    .unwrap();
    assert_eq!(foo, "example-foo");

    let cm = fixtures().join("manifests/kubectl-testdata/apply-cm.yaml");
    let server_side_apply = |file: &std::path::Path| {
        let f = file.to_str().unwrap();
        kubectl(
            &kc,
            &cache,
            &["apply", "--server-side", "--validate=false", "-f", f],
        )
        .unwrap()
    };
    let applied = server_side_apply(&cm);
    assert!(applied.contains("serverside-applied"), "{applied}");
    let deploy =
        fixtures().join("manifests/kubernetes-examples/model-serving-tensorflow/deployment.yaml");
    let created = kubectl(
        &kc,
        &cache,
        &["apply", "--validate=false", "-f", deploy.to_str().unwrap()],
    )
    .unwrap();
    assert!(created.contains("created"), "{created}");
    let again = server_side_apply(&deploy);
    assert!(again.contains("serverside-applied"), "{again}");
    assert!(!fake.requests_matching("PATCH ").is_empty());

    // What kubectl wrote, ferry backs up, managed fields and all cleaned.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = rt
        .block_on(ferry::source::k8s::collect(&super::backup_opts(&kc)))
        .unwrap();
    let cm = super::file(&c, "k8s/core/configmaps/default/test1.json")
        .expect("applied configmap backed up");
    let cm = super::json_of(cm);
    assert_eq!(cm["data"]["key2"], "apple");
    assert!(cm["metadata"].get("managedFields").is_none());
    assert!(super::file(&c, "k8s/apps/deployments/default/tf-serving.json").is_some());
}

#[test]
fn kubectl_sees_a_new_crd_after_it_is_established() {
    let fake = FakeK8s::start();
    let dir = tempfile::tempdir().unwrap();
    let kc = fake.kubeconfig(dir.path());
    let cache = dir.path().join("cache");
    let crd = fixtures().join("manifests/sample-controller/crd.yaml");
    if kubectl(
        &kc,
        &cache,
        &["create", "--validate=false", "-f", crd.to_str().unwrap()],
    )
    .is_none()
    {
        eprintln!("kubectl not installed: skipping the kubectl test");
        return;
    }
    kubectl(
        &kc,
        &cache,
        &["get", "crd", "foos.samplecontroller.k8s.io", "-o", "name"],
    )
    .unwrap();
    let foo = fixtures().join("manifests/sample-controller/example-foo.yaml");
    kubectl(
        &kc,
        &cache,
        &["create", "--validate=false", "-f", foo.to_str().unwrap()],
    )
    .unwrap();
    let got = kubectl(&kc, &cache, &["get", "foos", "-o", "name"]).unwrap();
    assert_eq!(got.trim(), "foo.samplecontroller.k8s.io/example-foo");
}
