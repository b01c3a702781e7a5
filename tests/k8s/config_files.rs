//! Every example file under `config/` parses: YAML manifests as Kubernetes
//! objects (apiVersion, kind, metadata.name), TOML as TOML.

use std::path::Path;

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn every_config_example_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut all = Vec::new();
    files(&root, &mut all);
    let mut kinds = Vec::new();
    for path in &all {
        let text = std::fs::read_to_string(path).unwrap();
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => {
                let docs = super::support::yaml_docs(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(!docs.is_empty(), "{} is empty", path.display());
                for doc in docs {
                    for key in ["apiVersion", "kind"] {
                        assert!(
                            doc[key].is_string(),
                            "{}: a document lacks {key}",
                            path.display()
                        );
                    }
                    assert!(
                        doc["metadata"]["name"].is_string(),
                        "{}: a document lacks metadata.name",
                        path.display()
                    );
                    kinds.push(doc["kind"].as_str().unwrap().to_string());
                }
            }
            Some("toml") => {
                text.parse::<toml::Table>()
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            _ => panic!(
                "{}: unexpected file in config/ (only .yaml, .yml and .toml)",
                path.display()
            ),
        }
    }
    for kind in [
        "CronJob",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Secret",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} in config/");
    }
}

/// The shipped manifests are one consistent set: the CronJobs' service
/// account exists and is bound to the role the volume coordinator needs,
/// with the verbs it uses; the mover Jobs' own account exists, gets no
/// token and no binding.
#[test]
fn the_service_accounts_and_roles_of_config_fit_together() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut docs = Vec::new();
    for f in [
        "k8s-backup-rbac.yaml",
        "k8s-mover-rbac.yaml",
        "k8s-cronjob.yaml",
        "k8s-drill-cronjob.yaml",
        "k8s-drill-rbac.yaml",
    ] {
        let text = std::fs::read_to_string(root.join(f)).unwrap();
        docs.extend(super::support::yaml_docs(&text).unwrap());
    }
    let accounts: Vec<&str> = docs
        .iter()
        .filter(|d| d["kind"] == "ServiceAccount")
        .filter_map(|d| d["metadata"]["name"].as_str())
        .collect();
    let bound_to = |role: &str| -> Vec<String> {
        docs.iter()
            .filter(|d| d["kind"] == "ClusterRoleBinding" && d["roleRef"]["name"] == role)
            .flat_map(|d| d["subjects"].as_array().cloned().unwrap_or_default())
            .filter_map(|s| s["name"].as_str().map(str::to_string))
            .collect()
    };
    for cron in docs.iter().filter(|d| d["kind"] == "CronJob") {
        let sa = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["serviceAccountName"]
            .as_str()
            .unwrap();
        assert!(
            accounts.contains(&sa),
            "CronJob uses service account {sa}, not in config/"
        );
        assert!(
            bound_to("ferry-volume-mover").iter().any(|s| s == sa),
            "{sa} cannot move volumes"
        );
    }
    let mover = docs
        .iter()
        .find(|d| d["kind"] == "ServiceAccount" && d["metadata"]["name"] == "ferry-mover")
        .expect("the mover Jobs' service account");
    assert_eq!(mover["automountServiceAccountToken"], false);
    assert!(
        !docs.iter().any(|d| d["kind"] == "ClusterRoleBinding"
            && d["subjects"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| s["name"] == "ferry-mover")),
        "the mover Jobs need no API access"
    );
    let role = docs
        .iter()
        .find(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == "ferry-volume-mover")
        .unwrap();
    let allows = |resource: &str, verb: &str| {
        role["rules"].as_array().unwrap().iter().any(|r| {
            r["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == resource)
                && r["verbs"].as_array().unwrap().iter().any(|x| x == verb)
        })
    };
    for (resource, verb) in [
        ("volumesnapshots", "create"),
        ("volumesnapshotcontents", "create"),
        ("persistentvolumeclaims", "create"),
        ("jobs", "create"),
        ("jobs", "delete"),
        ("pods", "list"),
        ("pods/log", "get"),
        ("pods/exec", "create"),
        ("events", "list"),
        ("secrets", "create"),
        ("serviceaccounts", "get"),
    ] {
        assert!(
            allows(resource, verb),
            "ferry-volume-mover lacks {verb} {resource}"
        );
    }
}
