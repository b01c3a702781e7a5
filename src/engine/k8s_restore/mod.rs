//! Restore of Kubernetes objects from snapshot files into a cluster, in
//! Velero's order, with object fixes, namespace mapping and a conflict policy.
//!
//! Entry point: [`restore`]. It takes the files a backup produced (see
//! [`crate::source::k8s`]), plans every object, and either performs the plan
//! or, with `dry_run`, only reports it. One bad object never stops the rest.

mod apply;
mod crd;
pub mod fixes;
pub mod mapping;
pub mod order;
pub mod plan;
pub mod report;
pub mod snapshot;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::source::k8s::client::connect;
use crate::source::k8s::discovery::discover;
use crate::source::k8s::{K8sError, K8sFile};

pub use apply::comparable;
pub use mapping::parse_mapping;
pub use report::{Action, K8sRestoreReport, PlannedObject, ResourceCounts};

/// What to do when an object already exists and differs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExistingResourcePolicy {
    /// Leave the live object and report a conflict.
    #[default]
    None,
    /// Replace the live object with the snapshot's.
    Update,
}

impl FromStr for ExistingResourcePolicy {
    type Err = K8sError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Self::None),
            "update" => Ok(Self::Update),
            other => Err(K8sError::InvalidOption(format!(
                "--existing-resource-policy={other}: expected none or update"
            ))),
        }
    }
}

/// What to restore and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct K8sRestoreOptions {
    /// Kubeconfig file; default as for backup (KUBECONFIG, ~/.kube/config, in-cluster).
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// Snapshot namespace -> target namespace (see [`parse_mapping`]).
    pub namespace_mapping: BTreeMap<String, String>,
    /// Namespaces of the snapshot to restore; empty or `*` means all.
    pub include_namespaces: Vec<String>,
    pub exclude_namespaces: Vec<String>,
    /// Resources to restore (`configmaps`, `deployments.apps`); empty means all.
    pub include_resources: Vec<String>,
    pub exclude_resources: Vec<String>,
    pub existing_resource_policy: ExistingResourcePolicy,
    /// Also restore the stored `status` of objects.
    pub restore_status: bool,
    /// Plan only: read the cluster, write nothing.
    pub dry_run: bool,
    /// How long to wait for restored CRDs to be Established and NamesAccepted.
    pub crd_ready_timeout_seconds: u64,
}

impl Default for K8sRestoreOptions {
    fn default() -> Self {
        K8sRestoreOptions {
            kubeconfig: None,
            context: None,
            namespace_mapping: BTreeMap::new(),
            include_namespaces: Vec::new(),
            exclude_namespaces: Vec::new(),
            include_resources: Vec::new(),
            exclude_resources: Vec::new(),
            existing_resource_policy: ExistingResourcePolicy::None,
            restore_status: false,
            dry_run: false,
            crd_ready_timeout_seconds: 60,
        }
    }
}

/// Restores `objects` (the `k8s/...` files of a snapshot) into the cluster.
///
/// Fails as a whole only when the cluster cannot be reached or discovered;
/// every per-object problem (422 Invalid, 403, unknown resource, damaged
/// file) is an entry with [`Action::Failed`] in the report, whose
/// [`K8sRestoreReport::has_failures`] tells the CLI to exit non-zero.
pub async fn restore(
    objects: Vec<K8sFile>,
    opts: &K8sRestoreOptions,
) -> Result<K8sRestoreReport, K8sError> {
    let (items, bad) = plan::prepare(objects, opts);
    let conn = connect(opts.kubeconfig.as_deref(), opts.context.as_deref()).await?;
    let discovery = discover(&conn).await?;
    let mut report = K8sRestoreReport::new(
        conn.server.clone(),
        opts.dry_run,
        opts.namespace_mapping.clone(),
    );
    for entry in bad {
        report.record(entry);
    }
    let crds_in_plan: BTreeSet<(String, String)> = items
        .iter()
        .filter(|i| order::is_crd(&i.qualified))
        .filter_map(|i| crd::served_resource(&i.object))
        .collect();
    let mut ctx = apply::Ctx {
        conn: &conn,
        discovery,
        opts,
        crds_in_plan,
        namespaces_ready: BTreeSet::new(),
        lost: Default::default(),
    };
    let mut touched_crds = Vec::new();
    let mut crds_settled = false;
    for item in &items {
        if !crds_settled && !order::is_crd(&item.qualified) {
            crds_settled = true;
            if !touched_crds.is_empty() && !opts.dry_run {
                crd::wait_established(&mut ctx, &touched_crds, &mut report).await?;
            }
        }
        let planned = apply::restore_item(&mut ctx, item).await;
        tracing::debug!(resource = %planned.resource, name = %planned.name, action = ?planned.action, "object restored");
        if order::is_crd(&item.qualified)
            && matches!(planned.action, Action::Create | Action::Update)
        {
            touched_crds.push(item.name.clone());
        }
        report.record(planned);
    }
    let totals = report.totals();
    tracing::info!(
        server = %conn.server,
        dry_run = opts.dry_run,
        created = totals.created,
        skipped = totals.skipped,
        updated = totals.updated,
        conflicts = totals.conflicts,
        failed = totals.failed,
        "kubernetes restore finished"
    );
    Ok(report)
}
