//! The Kubernetes side of `backup --k8s` and `restore --k8s`: turn flags
//! into options, collect objects into in-memory files, restore them from a
//! snapshot and print the report.

use std::sync::Arc;

use anyhow::{Context, Result};

use super::args::{BackupArgs, ClusterArgs, RestoreArgs};
use super::output::print_json;
use super::{exit, Reported};
use crate::engine::backup::BackupOptions;
use crate::engine::k8s_restore::{self, parse_mapping, K8sRestoreOptions};
use crate::engine::walk::{read_content, walk, within};
use crate::format::snapshot::{Skipped, Snapshot};
use crate::format::tree::NodeKind;
use crate::repo::{Repository, SnapshotId};
use crate::source::k8s::{collect, K8sBackupOptions, K8sFile};

/// Where Kubernetes objects live in a snapshot.
const K8S_ROOT: &str = "/k8s";

/// Collects the cluster's objects into `opts` as files under `k8s/`.
pub async fn add_cluster(a: &BackupArgs, opts: &mut BackupOptions) -> Result<()> {
    let c: &ClusterArgs = &a.cluster;
    let k = K8sBackupOptions {
        kubeconfig: c.kubeconfig.clone(),
        context: c.context.clone(),
        include_namespaces: c.include_namespaces.clone(),
        exclude_namespaces: c.exclude_namespaces.clone(),
        include_resources: c.include_resources.clone(),
        exclude_resources: c.exclude_resources.clone(),
        label_selector: a.selector.clone(),
        include_cluster_resources: a.include_cluster_resources.parse()?,
        ..Default::default()
    };
    let got = collect(&k).await.context("backing up Kubernetes objects")?;
    tracing::info!(objects = got.files.len(), "collected Kubernetes objects");
    for w in &got.warnings {
        tracing::warn!(warning = %w, "Kubernetes backup");
        opts.warnings.push(Skipped {
            path: K8S_ROOT.into(),
            error: w.clone(),
        });
    }
    opts.files
        .extend(got.files.into_iter().map(|f| (f.path, f.data)));
    opts.extra = Some(serde_json::json!({ "k8s": got.metadata }));
    opts.sources.push(K8S_ROOT.into());
    Ok(())
}

/// Restores the `k8s/` objects of a snapshot into the cluster.
pub async fn restore(
    json: bool,
    repo: &Arc<Repository>,
    id: SnapshotId,
    snap: &Snapshot,
    a: RestoreArgs,
) -> Result<i32> {
    let w = walk(repo, snap.tree, |p| {
        within(p, K8S_ROOT) || within(K8S_ROOT, p)
    })
    .await;
    if let Some((p, e)) = w.errors.first() {
        anyhow::bail!("cannot read {p} of snapshot {}: {e}", id.short());
    }
    let mut objects = Vec::new();
    for e in w
        .entries
        .iter()
        .filter(|e| e.node.kind == NodeKind::File && within(&e.path, K8S_ROOT))
    {
        let data = read_content(repo, &e.node)
            .await
            .with_context(|| format!("reading {}", e.path))?;
        objects.push(K8sFile {
            path: e.path.to_string().trim_start_matches('/').to_string(),
            data,
        });
    }
    if objects.is_empty() {
        anyhow::bail!(
            "snapshot {} holds no Kubernetes objects (it was not made with `backup --k8s`)",
            id.short()
        );
    }
    let c = a.cluster;
    let opts = K8sRestoreOptions {
        kubeconfig: c.kubeconfig,
        context: c.context,
        namespace_mapping: a
            .namespace_mapping
            .as_deref()
            .map(parse_mapping)
            .transpose()?
            .unwrap_or_default(),
        include_namespaces: c.include_namespaces,
        exclude_namespaces: c.exclude_namespaces,
        include_resources: c.include_resources,
        exclude_resources: c.exclude_resources,
        existing_resource_policy: a.existing_resource_policy.parse()?,
        restore_status: a.restore_status,
        dry_run: a.dry_run,
        ..Default::default()
    };
    let report = k8s_restore::restore(objects, &opts).await?;
    if json {
        print_json(&serde_json::json!({ "snapshot": id, "time": snap.time, "k8s": report }));
    } else {
        print!("{}", report.render_human());
    }
    if report.has_failures() {
        return Err(
            Reported("some Kubernetes objects could not be restored (see above)".into()).into(),
        );
    }
    Ok(exit::OK)
}
