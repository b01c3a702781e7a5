//! Test support: the fake Kubernetes API server, s3s-fs S3 servers in the
//! test process, a fault-injecting HTTP proxy, and fixture helpers.
#![allow(dead_code)]

pub mod fake_k8s;
pub mod files;
pub mod kubelet;
pub mod proxy;
pub mod server;

use std::path::PathBuf;

/// `../shared/k8s-fixtures`, the real discovery documents and manifests.
pub fn fixtures() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/k8s-fixtures"
    ))
}

/// Reads every document of a fixture YAML file (relative to [`fixtures`]).
pub fn fixture_docs(rel: &str) -> Vec<serde_json::Value> {
    let text =
        std::fs::read_to_string(fixtures().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    yaml_docs(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Parses a multi-document YAML text, dropping empty documents.
pub fn yaml_docs(text: &str) -> Result<Vec<serde_json::Value>, String> {
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(text).map_err(|e| e.to_string())?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}
