//! Backup of Kubernetes API objects: connect, discover, select, list, clean,
//! and hand the objects over as snapshot files with the snapshot's metadata.
//!
//! Entry point: [`collect`]. Layout of the files it returns:
//! - `k8s/<group or core>/<resource>/<namespace or _cluster>/<name>.json`:
//!   the object, cleaned of server-set fields and without its status;
//! - `k8s/_status/<group or core>/<resource>/<namespace or _cluster>/<name>.json`:
//!   the object's `status`, when it has one, restored only on request.
//!
//! Both are canonical JSON (sorted keys), so an unchanged object gives the
//! same bytes in every snapshot and deduplicates.

pub mod clean;
pub mod client;
mod collect;
pub mod discovery;
mod discovery_legacy;
pub mod error;
pub mod list;
pub mod rest;
pub mod select;

use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use collect::collect;
pub use error::K8sError;

/// Whether cluster-scoped resources are backed up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum IncludeClusterResources {
    /// Only when no namespace filter limits the backup (a full-cluster backup).
    #[default]
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "true")]
    Include,
    #[serde(rename = "false")]
    Exclude,
}

impl FromStr for IncludeClusterResources {
    type Err = K8sError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "true" => Ok(Self::Include),
            "false" => Ok(Self::Exclude),
            other => Err(K8sError::InvalidOption(format!(
                "--include-cluster-resources={other}: expected auto, true or false"
            ))),
        }
    }
}

/// What to back up and from which cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct K8sBackupOptions {
    /// Kubeconfig file; default: `KUBECONFIG`, `~/.kube/config`, or the
    /// in-cluster service account inside a pod.
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context; default: the current context.
    pub context: Option<String>,
    /// Namespaces to back up; empty or `*` means all.
    pub include_namespaces: Vec<String>,
    pub exclude_namespaces: Vec<String>,
    /// Resources to back up (`configmaps`, `deployments.apps`, `*`); empty means all.
    /// Naming a default exclusion (e.g. `events`) here includes it.
    pub include_resources: Vec<String>,
    pub exclude_resources: Vec<String>,
    /// Label selector applied to every list (`app=web,tier!=db`).
    pub label_selector: Option<String>,
    pub include_cluster_resources: IncludeClusterResources,
    /// Objects per list page.
    pub page_size: u32,
}

impl Default for K8sBackupOptions {
    fn default() -> Self {
        K8sBackupOptions {
            kubeconfig: None,
            context: None,
            include_namespaces: Vec::new(),
            exclude_namespaces: Vec::new(),
            include_resources: Vec::new(),
            exclude_resources: Vec::new(),
            label_selector: None,
            include_cluster_resources: IncludeClusterResources::Auto,
            page_size: 500,
        }
    }
}

/// One file of the snapshot tree holding an object or a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K8sFile {
    /// Relative path, `/`-separated (see the module documentation).
    pub path: String,
    /// Canonical JSON.
    pub data: Vec<u8>,
}

/// The result of a Kubernetes backup.
#[derive(Debug, Clone)]
pub struct K8sCollection {
    /// Object and status files, sorted by path.
    pub files: Vec<K8sFile>,
    /// What the snapshot records: `cluster` (`server`, `id` = kube-system
    /// namespace uid, `version`), `discovery` mode, `filters`, `resources`
    /// (per resource: `apiVersion`, `count`, `resourceVersions`), `failed`
    /// (resources and groups left out, with the reason).
    pub metadata: serde_json::Value,
    /// Non-fatal problems, one sentence each, for the user.
    pub warnings: Vec<String>,
}
