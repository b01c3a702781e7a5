//! The Kubernetes side of `backup --k8s` and `restore --k8s`: turn flags
//! into options, collect objects into in-memory files, restore them from a
//! snapshot and print the report.

use std::sync::Arc;

use anyhow::{Context, Result};

use super::args::{BackupArgs, ClusterArgs, Global, MoverArgs, RestoreArgs};
use super::output::print_json;
use super::{exit, Reported};
use crate::engine::backup::BackupOptions;
use crate::engine::k8s_restore::snapshot::{
    read_objects, split, volume_records, StoredPvcs, K8S_ROOT,
};
use crate::engine::k8s_restore::{self, parse_mapping, K8sRestoreOptions};
use crate::engine::movers::hooks::HookResult;
use crate::engine::movers::restore_hooks::{hooked_pods, run_restore_hooks};
use crate::engine::movers::{
    backup_volumes, previous_trees, restore_volumes, MoverOptions, VolumeRecord, VolumeRestore,
    VolumeRestoreOptions, VolumesMode,
};
use crate::format::snapshot::{Skipped, Snapshot};
use crate::repo::{Repository, SnapshotId};
use crate::source::k8s::client::connect;
use crate::source::k8s::{collect, K8sBackupOptions};

/// Collects the cluster's objects into `opts` as files under `k8s/`, and
/// with `--volumes` the trees the mover Jobs stored under `volumes/`.
pub async fn add_cluster(
    g: &Global,
    a: &BackupArgs,
    opts: &mut BackupOptions,
    repo: &Repository,
) -> Result<()> {
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
    let mut extra = serde_json::json!({ "k8s": got.metadata });
    opts.sources.push(K8S_ROOT.into());
    let mode: VolumesMode = a.volumes.parse()?;
    if mode != VolumesMode::None {
        let cluster = got.metadata["cluster"]["id"].as_str();
        let volumes = add_volumes(g, a, (mode, cluster), opts, repo).await?;
        extra["volumes"] = serde_json::to_value(&volumes)?;
    }
    opts.extra = Some(extra);
    Ok(())
}

/// The repository flags for the Jobs' `ferry`: those the coordinator got,
/// or, when the repository came from the regions of `--config`, the
/// location and S3 settings of the region the backup writes to (flags
/// still win). Credentials stay in the Secret.
pub(crate) fn repo_args(g: &Global, region: Option<&str>) -> Vec<String> {
    let r = region
        .filter(|_| g.repo_from_regions)
        .and_then(|n| g.regions.iter().find(|r| r.name == n));
    region_repo_args(g, r)
}

/// The repository flags for the Jobs' `ferry` of region `r`: its location
/// and S3 settings (flags still win; the S3 region defaults to the region's
/// name, as its store does), or without a region those the coordinator got.
pub(crate) fn region_repo_args(g: &Global, r: Option<&crate::config::Region>) -> Vec<String> {
    let (repo, endpoint, provider, s3_region) = match r {
        Some(r) => (
            Some(r.url.clone()),
            g.s3_endpoint.clone().or(r.endpoint.clone()),
            g.s3_provider.clone().or(r.provider.clone()),
            (g.s3_region.clone()).or(Some(r.s3_region.clone().unwrap_or(r.name.clone()))),
        ),
        None => (
            g.repo.clone(),
            g.s3_endpoint.clone(),
            g.s3_provider.clone(),
            g.s3_region.clone(),
        ),
    };
    let mut v = Vec::new();
    for (flag, value) in [
        ("--repo", repo),
        ("--s3-endpoint", endpoint),
        ("--s3-provider", provider),
        ("--s3-region", s3_region),
    ] {
        if let Some(x) = value {
            v.extend([flag.to_string(), x]);
        }
    }
    v
}

pub(crate) fn mover_options(
    g: &Global,
    m: &MoverArgs,
    mode: VolumesMode,
    region: Option<&str>,
) -> Result<MoverOptions> {
    let timeout = parse_duration(&m.volume_timeout).with_context(|| {
        format!(
            "--volume-timeout {}: expected e.g. 90s, 30m or 4h",
            m.volume_timeout
        )
    })?;
    if m.parallel_volumes == 0 {
        anyhow::bail!("--parallel-volumes 0: at least one volume Job must run at a time");
    }
    let d = MoverOptions::default();
    Ok(MoverOptions {
        mode,
        parallel: m.parallel_volumes,
        timeout,
        image: m.mover_image.clone().unwrap_or(d.image),
        namespace: m.mover_namespace.clone(),
        secret: m.mover_secret.clone(),
        service_account: m.mover_service_account.clone(),
        repo_args: repo_args(g, region),
        pending_grace: std::env::var("FERRY_MOVER_PENDING_GRACE_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .map(std::time::Duration::from_secs)
            .unwrap_or(d.pending_grace),
        progress: d.progress,
        parents: d.parents,
    })
}

/// `90s`, `30m`, `4h`, `1d` (a bare number is seconds).
fn parse_duration(s: &str) -> Result<std::time::Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse()?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        other => anyhow::bail!("unknown unit {other:?}"),
    };
    Ok(std::time::Duration::from_secs(secs))
}

/// Runs the mover Jobs and places their trees at `volumes/<ns>/<pvc>`; a
/// failed volume is recorded (the snapshot is then incomplete).
async fn add_volumes(
    g: &Global,
    a: &BackupArgs,
    (mode, cluster): (VolumesMode, Option<&str>),
    opts: &mut BackupOptions,
    repo: &Repository,
) -> Result<Vec<VolumeRecord>> {
    let c = &a.cluster;
    let conn = connect(c.kubeconfig.as_deref(), c.context.as_deref()).await?;
    let mut mo = mover_options(g, &a.movers, mode, opts.region.as_deref())?;
    mo.parents = previous_trees(repo, cluster)?;
    let bars = super::output::VolumeBars::start(g, &mo.progress);
    let out = backup_volumes(&conn, &c.include_namespaces, &c.exclude_namespaces, &mo).await;
    bars.finish();
    let out = out.context("backing up volumes")?;
    // The Jobs wrote packs and index objects of their own: read the index
    // again, so that the snapshot names only trees the repository holds.
    repo.sync_catalog().await?;
    let mut volumes = out.volumes;
    for v in &mut volumes {
        if let Some(t) = v.tree {
            if let Err(e) = repo.load_tree(&t).await {
                v.error = Some(format!(
                    "the tree {} the Job reported is not in the repository: {e}",
                    t.short()
                ));
                v.tree = None;
            }
        }
        match v.tree {
            Some(t) => opts.trees.push((v.path.clone(), t)),
            None => opts.warnings.push(Skipped {
                path: format!("/{}", v.path),
                error: v.error.clone().unwrap_or_default(),
            }),
        }
    }
    if !volumes.is_empty() {
        opts.sources.push("/volumes".into());
    }
    Ok(volumes)
}

/// Restores the `k8s/` objects of a snapshot into the cluster, and with
/// `--volumes restore` its volumes before the workloads that mount them.
pub async fn restore(
    g: &Global,
    repo: &Arc<Repository>,
    id: SnapshotId,
    snap: &Snapshot,
    a: RestoreArgs,
) -> Result<i32> {
    let objects = read_objects(repo, id, snap).await?;
    let records = volume_records(snap)?;
    let with_volumes = match a.volumes.as_str() {
        "restore" => !records.is_empty(),
        "none" => false,
        other => anyhow::bail!("--volumes {other}: expected restore or none"),
    };
    let c = a.cluster.clone();
    let opts = K8sRestoreOptions {
        kubeconfig: c.kubeconfig.clone(),
        context: c.context.clone(),
        namespace_mapping: mapping(a.namespace_mapping.as_deref())?,
        include_namespaces: c.include_namespaces.clone(),
        exclude_namespaces: c.exclude_namespaces.clone(),
        include_resources: c.include_resources,
        exclude_resources: c.exclude_resources,
        existing_resource_policy: a.existing_resource_policy.parse()?,
        restore_status: a.restore_status,
        dry_run: a.dry_run,
        ..Default::default()
    };
    let hooked = hooked_pods(&objects);
    let mut volume_report = Vec::new();
    let (mut report, workloads) = if with_volumes {
        let (first, pvcs, workloads) = split(objects, &records);
        let report = k8s_restore::restore(first, &opts).await?;
        volume_report = volumes_step(g, &a, &opts, records, &pvcs).await?;
        (report, workloads)
    } else {
        (k8s_restore::restore(objects, &opts).await?, Vec::new())
    };
    if !workloads.is_empty() {
        report.merge(k8s_restore::restore(workloads, &opts).await?);
    }
    let hooks = match hooked.is_empty() || a.dry_run {
        true => Vec::new(),
        false => {
            let conn = connect(opts.kubeconfig.as_deref(), opts.context.as_deref()).await?;
            run_restore_hooks(&conn, &hooked, &report).await
        }
    };
    print_restore(g, id, snap, &report, &volume_report, &hooks);
    let failed_volumes = volume_report
        .iter()
        .filter(|v| v.action == "failed")
        .count();
    let failed_hooks = hooks.iter().filter(|h| h.failed()).count();
    if report.has_failures() || failed_volumes > 0 || failed_hooks > 0 {
        return Err(Reported(format!(
            "some Kubernetes objects, {failed_volumes} volumes or {failed_hooks} restore hooks \
             failed (see above)"
        ))
        .into());
    }
    Ok(exit::OK)
}

/// The volumes of the selected namespaces, into new PVCs.
async fn volumes_step(
    g: &Global,
    a: &RestoreArgs,
    opts: &K8sRestoreOptions,
    records: Vec<VolumeRecord>,
    pvcs: &StoredPvcs,
) -> Result<Vec<VolumeRestore>> {
    let conn = connect(opts.kubeconfig.as_deref(), opts.context.as_deref()).await?;
    // Restore Jobs read from the primary region (the one backups write to).
    let primary = crate::engine::regions::primary(&g.regions).map(|r| r.name.clone());
    let vo = VolumeRestoreOptions {
        mover: mover_options(g, &a.movers, VolumesMode::Snapshot, primary.as_deref())?,
        namespace_mapping: opts.namespace_mapping.clone(),
        storage_class_mapping: mapping(a.storage_class_mapping.as_deref())?,
        dry_run: a.dry_run,
        verify: None,
    };
    let selected: Vec<VolumeRecord> = records
        .into_iter()
        .filter(|v| {
            opts.include_namespaces.is_empty() || opts.include_namespaces.contains(&v.namespace)
        })
        .filter(|v| !opts.exclude_namespaces.contains(&v.namespace))
        .collect();
    let bars = super::output::VolumeBars::start(g, &vo.mover.progress);
    let out = restore_volumes(&conn, &selected, pvcs, &vo).await;
    bars.finish();
    out.context("restoring volumes")
}

fn print_restore(
    g: &Global,
    id: SnapshotId,
    snap: &Snapshot,
    report: &k8s_restore::K8sRestoreReport,
    volumes: &[VolumeRestore],
    hooks: &[HookResult],
) {
    if g.json {
        print_json(
            &serde_json::json!({ "snapshot": id, "time": snap.time, "k8s": report,
            "volumes": volumes, "hooks": hooks }),
        );
        return;
    }
    print!("{}", report.render_human());
    for v in volumes {
        let err = v
            .error
            .as_deref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        println!(
            "  volume {:<8} {}/{} -> {}/{} class {} size {}{err}",
            v.action,
            v.namespace,
            v.pvc,
            v.target_namespace,
            v.pvc,
            v.storage_class.as_deref().unwrap_or("-"),
            v.size.as_deref().unwrap_or("-"),
        );
    }
    for h in hooks {
        let how = match &h.error {
            None => "ok".to_string(),
            Some(e) => format!("failed ({}): {e}", h.on_error),
        };
        println!(
            "  restore hook {} {} {:?}: {how}",
            h.pod, h.container, h.command
        );
    }
}

pub(crate) fn mapping(spec: Option<&str>) -> Result<std::collections::BTreeMap<String, String>> {
    Ok(spec.map(parse_mapping).transpose()?.unwrap_or_default())
}
