//! The coordinator of a volume backup: per PVC a snapshot (or the live
//! volume) and a mover Job, at most `parallel` at once; every temporary
//! object deleted at the end, on failure and on interruption.

use std::fmt::Display;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

use super::api::{self, text, Api};
use super::hooks::{run_hooks, HookResult, Phase};
use super::job::wait_job;
use super::objects::{self, ContentRef, JobSpec};
use super::plan::{plan, Planned};
use super::{Method, MoverOptions, VolumeError, VolumeRecord, RUN_LABEL};
use crate::engine::volumes::{volume_path, MoverReport};
use crate::source::k8s::client::Connection;

/// The volumes of one backup.
#[derive(Debug, Clone, Default)]
pub struct VolumeBackup {
    /// The label value of this run's temporary objects.
    pub run: String,
    /// One record per PVC, failed ones with their error.
    pub volumes: Vec<VolumeRecord>,
}

pub(super) struct Run<'a> {
    pub a: Api<'a>,
    pub o: &'a MoverOptions,
    pub run: String,
    pub secret: Value,
}

fn s(e: impl Display) -> String {
    e.to_string()
}

/// Backs up the data of the bound PVCs of the selected namespaces.
pub async fn backup_volumes(
    conn: &Connection,
    include: &[String],
    exclude: &[String],
    o: &MoverOptions,
) -> Result<VolumeBackup, VolumeError> {
    let a = Api { conn };
    remove_runs(&a, RUN_LABEL).await;
    let planned = plan(&a, include, exclude, o.mode).await?;
    if planned.is_empty() {
        return Ok(VolumeBackup::default());
    }
    let secret = read_secret(&a, o).await?;
    let r = Run {
        a: Api { conn },
        o,
        run: super::run_name("ferry-backup"),
        secret,
    };
    tracing::info!(run = %r.run, volumes = planned.len(), "backing up volumes");
    let work = futures::stream::iter(planned.into_iter().enumerate())
        .map(|(i, p)| volume(&r, i, p))
        .buffer_unordered(o.parallel.max(1))
        .collect::<Vec<_>>();
    let mut volumes = tokio::select! {
        v = work => v,
        _ = interrupted() => {
            remove_runs(&a, &format!("{RUN_LABEL}={}", r.run)).await;
            return Err(VolumeError::Interrupted(r.run));
        }
    };
    remove_runs(&a, &format!("{RUN_LABEL}={}", r.run)).await;
    volumes.sort_by(|x, y| x.path.cmp(&y.path));
    Ok(VolumeBackup {
        run: r.run,
        volumes,
    })
}

/// The repository Secret of the Jobs, after checking that the Jobs' service
/// account exists (a Job whose account is missing gets no pod at all).
pub(super) async fn read_secret(a: &Api<'_>, o: &MoverOptions) -> Result<Value, VolumeError> {
    let sa = a.get(
        api::SERVICE_ACCOUNTS,
        Some(&o.namespace),
        &o.service_account,
    );
    if let Err(e) = sa.await {
        return Err(VolumeError::Option(format!(
            "the service account {}/{} of the mover Jobs cannot be read ({e}); apply \
             config/k8s-mover-rbac.yaml or name one with --mover-service-account",
            o.namespace, o.service_account
        )));
    }
    a.get(api::SECRETS, Some(&o.namespace), &o.secret)
        .await
        .map_err(|e| {
            VolumeError::Option(format!(
                "the repository Secret {}/{} for the mover Jobs cannot be read ({e}); create it \
                 (FERRY_REPO, FERRY_PASSWORD, ...) as for the CronJob, or name it with --mover-secret",
                o.namespace, o.secret
            ))
        })
}

/// Ctrl-C or SIGTERM (a CronJob's pod being stopped).
pub(super) async fn interrupted() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Deletes every temporary object matching the label selector: this run's,
/// or with the bare label key, leftovers of runs that did not end cleanly.
pub(super) async fn remove_runs(a: &Api<'_>, selector: &str) {
    for r in [
        api::JOBS,
        api::PODS,
        api::PVCS,
        api::SNAPSHOTS,
        api::CONTENTS,
        api::SECRETS,
    ] {
        let items = match a.list(r, None, Some(selector), None).await {
            Ok(items) => items,
            Err(e) if api::not_found(&e) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list temporary objects");
                continue;
            }
        };
        for it in items {
            let ns = Some(text(&it, "/metadata/namespace")).filter(|n| !n.is_empty());
            let name = text(&it, "/metadata/name");
            if let Err(e) = a.delete(r, ns, name).await {
                tracing::warn!(error = %e, "cannot delete a temporary object");
            }
        }
    }
}

async fn volume(r: &Run<'_>, i: usize, p: Planned) -> VolumeRecord {
    let started = Instant::now();
    let name = format!("{}/{}", p.ns, p.pvc);
    r.o.progress.set(&name, 0, 0, 0.0, None);
    tracing::info!(namespace = %p.ns, pvc = %p.pvc, method = ?p.method, "volume started");
    let mut hooks = Vec::new();
    let res = match p.method {
        Method::Snapshot => via_snapshot(r, i, &p, &mut hooks).await,
        Method::Fs => via_fs(r, i, &p, &mut hooks).await,
    };
    let secs = started.elapsed().as_secs_f64();
    let (files, bytes) = res.as_ref().map_or((0, 0), |m| (m.files, m.bytes));
    r.o.progress
        .set(&name, files, bytes, secs, Some(res.is_ok()));
    match &res {
        Ok(m) => tracing::info!(namespace = %p.ns, pvc = %p.pvc, bytes = m.bytes,
            rate = (m.bytes as f64 / secs.max(0.001)) as u64, "volume done"),
        Err(e) => tracing::warn!(namespace = %p.ns, pvc = %p.pvc, error = %e, "volume failed"),
    }
    record(p, res, secs, hooks)
}

fn record(
    p: Planned,
    res: Result<MoverReport, String>,
    seconds: f64,
    hooks: Vec<HookResult>,
) -> VolumeRecord {
    let (m, error) = match res {
        Ok(m) => (Some(m), None),
        Err(e) => (None, Some(e)),
    };
    VolumeRecord {
        path: volume_path(&p.ns, &p.pvc),
        namespace: p.ns,
        pvc: p.pvc,
        storage_class: p.storage_class,
        driver: p.driver,
        size: p.size,
        mode: if p.block { "Block" } else { "Filesystem" }.into(),
        method: p.method,
        consistent: p.method == Method::Snapshot && m.is_some(),
        spec: p.spec,
        tree: m.as_ref().map(|m| m.tree),
        files: m.as_ref().map_or(0, |m| m.files),
        bytes: m.as_ref().map_or(0, |m| m.bytes),
        added_bytes: m.as_ref().map_or(0, |m| m.added_bytes),
        incremental: m.as_ref().map(|m| m.incremental).unwrap_or_default(),
        seconds,
        bytes_per_second: m
            .as_ref()
            .map_or(0.0, |m| m.bytes as f64 / seconds.max(0.001)),
        error,
        hooks,
    }
}

/// `ferry mover backup ...` of a volume: with the tree of its previous
/// backup as parent when there is one (not for block volumes, which
/// deduplicate by chunk). A snapshot's clone gets new inodes and ctimes
/// where the driver copies files: its files are compared by size and
/// mtime alone.
fn mover_args(r: &Run<'_>, p: &Planned) -> Vec<String> {
    let mut v = vec!["backup".to_string(), "--source".into()];
    if p.block {
        v.extend([objects::DEVICE_PATH.into(), "--block".into()]);
        return v;
    }
    v.push(objects::VOLUME_MOUNT.into());
    let parent = r.o.parents.get(&format!("{}/{}", p.ns, p.pvc));
    if let Some(t) = parent.filter(|t| t.fits(&p.spec)) {
        v.extend(["--parent".into(), t.tree.to_hex()]);
        if p.method == Method::Snapshot {
            v.push("--ignore-inode".into());
        }
    }
    v
}

/// Pre hooks, the VolumeSnapshot, post hooks as soon as it is taken
/// (always, even when it failed), then until it is ready.
async fn take_snapshot(
    r: &Run<'_>,
    p: &Planned,
    name: &str,
    hooks: &mut Vec<HookResult>,
) -> Result<Value, String> {
    let class = p.snapshot_class.clone().unwrap_or_default();
    let taken = match run_hooks(r.a.conn, &p.pods, Phase::Pre, hooks).await {
        Err(e) => Err(e),
        Ok(()) => {
            let vs = objects::snapshot_of_pvc(name, &p.ns, &r.run, &p.pvc, &class);
            match r.a.create(api::SNAPSHOTS, Some(&p.ns), &vs).await {
                Err(e) => Err(e.to_string()),
                Ok(_) => wait_snapshot(r, &p.ns, name, true).await,
            }
        }
    };
    let post = run_hooks(r.a.conn, &p.pods, Phase::Post, hooks).await;
    taken?;
    post?;
    wait_snapshot(r, &p.ns, name, false).await
}

/// Snapshot, re-homed into the mover namespace, a PVC from it, a Job.
async fn via_snapshot(
    r: &Run<'_>,
    i: usize,
    p: &Planned,
    hooks: &mut Vec<HookResult>,
) -> Result<MoverReport, String> {
    let base = format!("{}-{i}", r.run);
    let source = format!("{}/{}", p.ns, p.pvc);
    let (mns, run) = (r.o.namespace.as_str(), r.run.as_str());
    let class = p.snapshot_class.clone().unwrap_or_default();
    let vs = take_snapshot(r, p, &base, hooks).await?;
    let content_name = text(&vs, "/status/boundVolumeSnapshotContentName");
    let content =
        r.a.get(api::CONTENTS, None, content_name)
            .await
            .map_err(s)?;
    let c = ContentRef {
        driver: text(&content, "/spec/driver").into(),
        handle: text(&content, "/status/snapshotHandle").into(),
        class,
        namespace: mns.into(),
        snapshot: format!("{base}-m"),
    };
    let static_name = format!("{base}-c");
    let sc = objects::static_content(&static_name, run, &source, &c);
    r.a.create(api::CONTENTS, None, &sc).await.map_err(s)?;
    let mvs = objects::snapshot_of_content(&c.snapshot, mns, run, &source, &static_name);
    r.a.create(api::SNAPSHOTS, Some(mns), &mvs)
        .await
        .map_err(s)?;
    wait_snapshot(r, mns, &c.snapshot, false).await?;
    let pvc = objects::pvc_from_snapshot(&base, mns, run, &source, &p.spec, &c.snapshot);
    r.a.create(api::PVCS, Some(mns), &pvc).await.map_err(s)?;
    let job = JobSpec {
        name: &base,
        ns: mns,
        run,
        source: &source,
        image: &r.o.image,
        secret: &r.o.secret,
        service_account: Some(&r.o.service_account),
        claim: &base,
        block: p.block,
        read_only: true,
        node: None,
        deadline_seconds: r.o.timeout.as_secs().max(1),
        repo_args: &r.o.repo_args,
        args: mover_args(r, p),
    };
    run_job(r, &job).await
}

/// The live volume, mounted read-only on the node of the pod that uses it,
/// between the pre and post hooks.
async fn via_fs(
    r: &Run<'_>,
    i: usize,
    p: &Planned,
    hooks: &mut Vec<HookResult>,
) -> Result<MoverReport, String> {
    run_hooks(r.a.conn, &p.pods, Phase::Pre, hooks).await?;
    let res = fs_job(r, i, p).await;
    let post = run_hooks(r.a.conn, &p.pods, Phase::Post, hooks).await;
    let m = res?;
    post?;
    Ok(m)
}

async fn fs_job(r: &Run<'_>, i: usize, p: &Planned) -> Result<MoverReport, String> {
    let base = format!("{}-{i}", r.run);
    let source = format!("{}/{}", p.ns, p.pvc);
    let secret = format!("{base}-repo");
    let copy = objects::secret_copy(&r.secret, &secret, &p.ns, &r.run);
    r.a.create(api::SECRETS, Some(&p.ns), &copy)
        .await
        .map_err(s)?;
    let job = JobSpec {
        name: &base,
        ns: &p.ns,
        run: &r.run,
        source: &source,
        image: &r.o.image,
        secret: &secret,
        service_account: None,
        claim: &p.pvc,
        block: p.block,
        read_only: true,
        node: p.node.as_deref(),
        deadline_seconds: r.o.timeout.as_secs().max(1),
        repo_args: &r.o.repo_args,
        args: mover_args(r, p),
    };
    run_job(r, &job).await
}

pub(super) async fn run_job(r: &Run<'_>, j: &JobSpec<'_>) -> Result<MoverReport, String> {
    let job = objects::mover_job(j);
    r.a.create(api::JOBS, Some(j.ns), &job).await.map_err(s)?;
    wait_job(&r.a, j, r.o).await
}

/// Waits until a VolumeSnapshot is readyToUse (or with `taken`, until the
/// storage snapshot is cut: `creationTime`); its error fails at once.
async fn wait_snapshot(r: &Run<'_>, ns: &str, name: &str, taken: bool) -> Result<Value, String> {
    let started = Instant::now();
    loop {
        let vs = r.a.get(api::SNAPSHOTS, Some(ns), name).await.map_err(s)?;
        let cut = taken && vs["status"]["creationTime"].is_string();
        if vs["status"]["readyToUse"] == true || cut {
            return Ok(vs);
        }
        if let Some(m) = vs["status"]["error"]["message"].as_str() {
            return Err(format!("VolumeSnapshot {ns}/{name} failed: {m}"));
        }
        if started.elapsed() >= r.o.timeout {
            return Err(format!(
                "VolumeSnapshot {ns}/{name} was not ready within --volume-timeout"
            ));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
