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
