//! Restore of volume data: per volume of the snapshot a new PVC (namespace
//! and storage class mapped) and a Job that writes the stored tree into it,
//! before the workloads that mount it are created.

use std::collections::BTreeMap;

use futures::StreamExt;
use serde::Serialize;
use serde_json::{json, Value};

use super::api::{self, Api};
use super::backup::{interrupted, read_secret, remove_runs, run_job, Run};
use super::objects::{self, JobSpec};
use super::{MoverOptions, VolumeError, VolumeRecord, RUN_LABEL};

#[derive(Debug, Clone, Default)]
pub struct VolumeRestoreOptions {
    pub mover: MoverOptions,
    pub namespace_mapping: BTreeMap<String, String>,
    pub storage_class_mapping: BTreeMap<String, String>,
    pub dry_run: bool,
    /// After each restore Job, have a verify Job read the volume back
    /// and verify it against the tree (a drill).
    pub verify: Option<crate::engine::drill::VerifyMode>,
}

/// What happened to one volume.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeRestore {
    pub namespace: String,
    pub pvc: String,
    pub target_namespace: String,
    pub storage_class: Option<String>,
    pub size: Option<String>,
    pub mode: String,
    /// `planned` (dry run), `restored` or `failed`.
    pub action: String,
    pub files: u64,
    pub bytes: u64,
    pub seconds: f64,
    /// `bytes / seconds`: how fast the volume was written.
    pub bytes_per_second: f64,
    pub error: Option<String>,
    /// With `verify`: what the verify Job read back and how it matched the
    /// tree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<crate::engine::drill::Verification>,
}

/// Restores the volumes that have data; `pvcs` holds the stored PVC
/// objects by (namespace, name).
pub async fn restore_volumes(
    conn: &crate::source::k8s::client::Connection,
    records: &[VolumeRecord],
    pvcs: &BTreeMap<(String, String), Value>,
    o: &VolumeRestoreOptions,
) -> Result<Vec<VolumeRestore>, VolumeError> {
    let a = Api { conn };
    let todo: Vec<&VolumeRecord> = records.iter().filter(|r| r.tree.is_some()).collect();
    if o.dry_run || todo.is_empty() {
        return Ok(todo.iter().map(|v| planned(v, o)).collect());
    }
    let r = Run {
        a: Api { conn },
        o: &o.mover,
        run: super::run_name("ferry-restore"),
        secret: read_secret(&a, &o.mover).await?,
    };
    let work = futures::stream::iter(todo.into_iter().enumerate())
        .map(|(i, v)| one(&r, i, v, pvcs, o))
        .buffer_unordered(o.mover.parallel.max(1))
        .collect::<Vec<_>>();
    let selector = format!("{RUN_LABEL}={}", r.run);
    let out = tokio::select! {
        v = work => v,
        _ = interrupted() => {
            remove_runs(&a, &selector).await;
            return Err(VolumeError::Interrupted(r.run));
        }
    };
    remove_runs(&a, &selector).await;
    Ok(out)
}

fn planned(v: &VolumeRecord, o: &VolumeRestoreOptions) -> VolumeRestore {
    let class = v
        .storage_class
        .as_ref()
        .map(|c| o.storage_class_mapping.get(c).unwrap_or(c).clone());
    VolumeRestore {
        target_namespace: o
            .namespace_mapping
            .get(&v.namespace)
            .unwrap_or(&v.namespace)
            .clone(),
        namespace: v.namespace.clone(),
        pvc: v.pvc.clone(),
        storage_class: class,
        size: v.size.clone(),
        mode: v.mode.clone(),
        action: "planned".into(),
        files: v.files,
        bytes: v.bytes,
        seconds: 0.0,
        bytes_per_second: 0.0,
        error: None,
        verification: None,
    }
}

async fn one(
    r: &Run<'_>,
    i: usize,
    v: &VolumeRecord,
    pvcs: &BTreeMap<(String, String), Value>,
    o: &VolumeRestoreOptions,
) -> VolumeRestore {
    let mut out = planned(v, o);
    let started = std::time::Instant::now();
    let name = format!("{}/{}", v.namespace, v.pvc);
    r.o.progress.set(&name, 0, 0, 0.0, None);
    match write(r, i, v, &out, pvcs, o).await {
        Ok(m) if Some(m.tree) != v.tree => {
            out.action = "failed".into();
            out.error = Some(format!(
                "the Job restored tree {}, not the snapshot's",
                m.tree.short()
            ));
        }
        Ok(m) => {
            out.action = "restored".into();
            (out.files, out.bytes) = (m.files, m.bytes);
            out.verification = m.verification;
        }
        Err(e) => {
            out.action = "failed".into();
            out.error = Some(e);
        }
    }
    out.seconds = started.elapsed().as_secs_f64();
    out.bytes_per_second = out.bytes as f64 / out.seconds.max(0.001);
    let ok = Some(out.action == "restored");
    r.o.progress
        .set(&name, out.files, out.bytes, out.seconds, ok);
    out
}

async fn write(
    r: &Run<'_>,
    i: usize,
    v: &VolumeRecord,
    t: &VolumeRestore,
    pvcs: &BTreeMap<(String, String), Value>,
    o: &VolumeRestoreOptions,
) -> Result<crate::engine::volumes::MoverReport, String> {
    let ns = t.target_namespace.as_str();
    let stored = pvcs
        .get(&(v.namespace.clone(), v.pvc.clone()))
        .cloned()
        .unwrap_or_else(|| {
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": v.pvc}, "spec": v.spec})
        });
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
    let _ = r.a.create(api::NAMESPACES, None, &namespace).await;
    let pvc = objects::restored_pvc(&stored, ns, t.storage_class.as_deref());
    r.a.create(api::PVCS, Some(ns), &pvc).await.map_err(|e| {
        format!(
            "{e}; delete the PVC {ns}/{} or map the namespace elsewhere",
            v.pvc
        )
    })?;
    let secret = format!("{}-{i}-repo", r.run);
    let copy = objects::secret_copy(&r.secret, &secret, ns, &r.run);
    r.a.create(api::SECRETS, Some(ns), &copy)
        .await
        .map_err(|e| e.to_string())?;
    let tree = v.tree.map(|t| t.to_hex()).unwrap_or_default();
    let target = if v.mode == "Block" {
        objects::DEVICE_PATH
    } else {
        objects::VOLUME_MOUNT
    };
    let mut args = vec![
        "restore".into(),
        "--tree".into(),
        tree,
        "--target".into(),
        target.into(),
    ];
    if v.mode == "Block" {
        args.push("--block".into());
    }
    let name = format!("{}-{i}", r.run);
    let source = format!("{}/{}", v.namespace, v.pvc);
    let job = JobSpec {
        name: &name,
        ns,
        run: &r.run,
        source: &source,
        image: &r.o.image,
        secret: &secret,
        service_account: None,
        claim: &v.pvc,
        block: v.mode == "Block",
        read_only: false,
        node: None,
        deadline_seconds: r.o.timeout.as_secs().max(1),
        repo_args: &r.o.repo_args,
        args,
    };
    let mut report = run_job(r, &job).await?;
    if let Some(mode) = o.verify {
        report.verification = verify(r, job, report.tree, mode).await?;
    }
    Ok(report)
}

/// The check of a restored volume, in a Job of its own after the restore
/// Job `restored` (which wrote `tree`), the volume mounted read-only: it
/// shares nothing with the process that wrote the data.
async fn verify(
    r: &Run<'_>,
    restored: JobSpec<'_>,
    tree: crate::repo::BlobId,
    mode: crate::engine::drill::VerifyMode,
) -> Result<Option<crate::engine::drill::Verification>, String> {
    let name = format!("{}-verify", restored.name);
    let mut args = restored.args.clone();
    args[0] = "verify".into();
    args.extend(["--verify".into(), mode.label()]);
    let job = JobSpec {
        name: &name,
        read_only: true,
        args,
        ..restored
    };
    let checked = run_job(r, &job).await?;
    if checked.tree != tree {
        return Err(format!(
            "the verify Job read tree {}, not the restored one",
            checked.tree.short()
        ));
    }
    Ok(checked.verification)
}
