//! `ferry drill`: restore a snapshot from a region (or every region in
//! turn) into a sandbox, verify it, measure RTO and RPO, record the drill.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::Args;
use serde::Serialize;

use super::args::Global;
use super::exit;
use super::output::{emit, Render};
use crate::engine::drill::k8s::{check_sandboxes, K8sDrillOptions};
use crate::engine::drill::{
    drill, human_duration, parse_duration, record, DrillOptions, DrillReport, Pick, VerifyMode,
};
use crate::engine::k8s_restore::K8sRestoreOptions;
use crate::engine::movers::{VolumeRestoreOptions, VolumesMode};
use crate::engine::regions::{ordered, probe, region_store};
use crate::engine::select::parse_time;
use crate::repo::Repository;
use crate::util::human_bytes;

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// Drill every region of the --config file in turn (else --region, or the primary).
    #[arg(long)]
    pub all_regions: bool,
    /// `latest` or a snapshot id.
    #[arg(long, conflicts_with_all = ["at", "random_within"])]
    pub snapshot: Option<String>,
    /// The newest snapshot taken at or before this time (RFC 3339).
    #[arg(long, conflicts_with = "random_within")]
    pub at: Option<String>,
    /// A random snapshot taken within this long before now (e.g. 30d).
    #[arg(long)]
    pub random_within: Option<String>,
    /// Directory to make the sandbox in (default: the system temp dir).
    #[arg(long, short = 't')]
    pub target: Option<PathBuf>,
    /// Drill the snapshot's Kubernetes objects and volumes into sandbox namespaces.
    #[arg(long, conflicts_with = "target", requires = "namespace_mapping")]
    pub k8s: bool,
    /// With --k8s: each namespace drilled, to its sandbox namespace (old:new,...).
    #[arg(long, requires = "k8s")]
    pub namespace_mapping: Option<String>,
    /// With --k8s: kubeconfig file (default: KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, requires = "k8s")]
    pub kubeconfig: Option<PathBuf>,
    /// With --k8s: kubeconfig context (default: the current one).
    #[arg(long, requires = "k8s")]
    pub context: Option<String>,
    /// With --k8s: rewrite storage classes of the restored PVCs (old:new,...).
    #[arg(long, requires = "k8s")]
    pub storage_class_mapping: Option<String>,
    #[command(flatten)]
    pub movers: super::args::MoverArgs,
    /// `full` (every file's content) or `sample:N%` (content of N% of the files).
    #[arg(long, default_value = "full")]
    pub verify: String,
    /// Fail when restore plus verification takes longer (e.g. 15m).
    #[arg(long)]
    pub rto_target: Option<String>,
    /// Fail when the snapshot is older than this (e.g. 1h).
    #[arg(long)]
    pub rpo_target: Option<String>,
    /// Leave the sandbox in place.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Serialize)]
pub(crate) struct DrillOutput {
    pub(crate) repository: String,
    pub(crate) success: bool,
    pub(crate) regions: Vec<DrillReport>,
}

impl Render for DrillOutput {
    fn text(&self) -> String {
        let mut out = String::new();
        for r in &self.regions {
            out += &region_text(r);
        }
        out
    }

    fn metrics(&self, m: &mut crate::metrics::Registry) {
        super::metrics::drill(self, m);
    }
}

fn region_text(r: &DrillReport) -> String {
    let secs = |s: Option<f64>| {
        s.map(|s| human_duration(std::time::Duration::from_secs_f64(s.max(0.0))))
            .unwrap_or_else(|| "-".into())
    };
    let met = |m: Option<bool>| match m {
        Some(true) => " (target met)",
        Some(false) => " (TARGET MISSED)",
        None => "",
    };
    let mut out =
        format!(
        "region {}: snapshot {} of {}\n  RPO {}{}  RTO {}{}\n  {} files, {}, {}/s, verify {}: {}\n",
        r.region,
        r.snapshot.map(|s| s.short()).unwrap_or_else(|| "-".into()),
        r.snapshot_time
            .map(|t| crate::util::rfc3339(&t))
            .unwrap_or_else(|| "-".into()),
        secs(r.rpo_seconds),
        met(r.rpo_met),
        secs(r.rto_seconds),
        met(r.rto_met),
        r.files,
        human_bytes(r.bytes),
        human_bytes(r.throughput_bytes_per_second.unwrap_or(0.0) as u64),
        r.verify,
        if r.verified { "verified" } else { "NOT VERIFIED" },
    );
    for f in &r.failures {
        out += &format!("  failed: {f}\n");
    }
    if let Some(p) = &r.sandbox {
        out += &format!("  sandbox kept at {}\n", p.display());
    }
    if let Some(k) = &r.k8s {
        out += &format!(
            "  objects: {} restored, {} verified, {} skipped; volumes: {} restored\n",
            k.objects_restored,
            k.objects_verified,
            k.objects_skipped,
            k.volumes.iter().filter(|v| v.action == "restored").count()
        );
        for s in &k.namespaces {
            let fate = if s.removed { "removed" } else { "kept" };
            out += &format!("  namespace {} -> {} ({fate})\n", s.source, s.namespace);
        }
    }
    out
}

fn options(a: &DrillArgs) -> Result<DrillOptions> {
    let dur = |flag: &str, v: &Option<String>| -> Result<Option<std::time::Duration>> {
        v.as_deref()
            .map(|s| parse_duration(s).map_err(|e| anyhow::anyhow!("--{flag}: {e}")))
            .transpose()
    };
    let pick = match (&a.snapshot, &a.at, &a.random_within) {
        (Some(s), _, _) if s != "latest" => bail!(
            "--snapshot {s:?}: a drill takes `latest`; use --at TIME or --random-within 30d for others"
        ),
        (_, Some(t), _) => Pick::At(parse_time(t)?),
        (_, _, Some(w)) => Pick::RandomWithin(dur("random-within", &Some(w.clone()))?.unwrap()),
        _ => Pick::Latest,
    };
    Ok(DrillOptions {
        pick,
        parent: a.target.clone(),
        verify: VerifyMode::parse(&a.verify).map_err(anyhow::Error::msg)?,
        rto_target: dur("rto-target", &a.rto_target)?,
        rpo_target: dur("rpo-target", &a.rpo_target)?,
        keep: a.keep,
        k8s: None,
    })
}

/// The Kubernetes side of `--k8s`; the Jobs' repository flags are set per
/// region.
fn k8s_options(g: &Global, a: &DrillArgs) -> Result<Option<K8sDrillOptions>> {
    if !a.k8s {
        return Ok(None);
    }
    let restore = K8sRestoreOptions {
        kubeconfig: a.kubeconfig.clone(),
        context: a.context.clone(),
        namespace_mapping: super::k8s::mapping(a.namespace_mapping.as_deref())?,
        ..Default::default()
    };
    let volumes = VolumeRestoreOptions {
        mover: super::k8s::mover_options(g, &a.movers, VolumesMode::Snapshot, None)?,
        namespace_mapping: restore.namespace_mapping.clone(),
        storage_class_mapping: super::k8s::mapping(a.storage_class_mapping.as_deref())?,
        ..Default::default()
    };
    Ok(Some(K8sDrillOptions { restore, volumes }))
}

pub async fn run(g: &Global, a: DrillArgs) -> Result<i32> {
    if a.all_regions && g.region.is_some() {
        bail!("give --region R or --all-regions, not both");
    }
    if a.all_regions && g.regions.is_empty() {
        bail!("--all-regions needs [[region]] tables in the --config file");
    }
    let mut opts = options(&a)?;
    let k8s = k8s_options(g, &a)?;
    let chosen = targets(g, a.all_regions)?;
    let pw = super::password::password(g, false)?;
    if let Some(k) = &k8s {
        check_sandboxes(k).await?;
    }
    let mut reports = Vec::new();
    let mut repository = String::new();
    let mut primary = None;
    // Regions found down: probed once per run, never waited on again.
    let mut known_down = std::collections::HashSet::new();
    for (name, store, jobs) in chosen {
        opts.k8s = k8s.clone().map(|mut k| {
            k.volumes.mover.repo_args = jobs;
            k
        });
        if let Some(why) = down(g, &name).await {
            reports.push(unreachable(&name, &opts, why));
            known_down.insert(name);
            continue;
        }
        let repo = match open(store, &pw, g).await {
            Ok(repo) => repo,
            Err(e) if is_fatal(&e) => return Err(e),
            Err(e) => {
                reports.push(unreachable(&name, &opts, format!("{e:#}")));
                continue;
            }
        };
        repository = repo.config().id.clone();
        reports.push(drill(&repo, &name, &opts).await);
        if is_primary(g, &name) {
            primary = Some(repo);
        }
    }
    save_records(g, &pw, primary, &known_down, &mut reports).await;
    let success = reports.iter().all(|r| r.success);
    let out = DrillOutput {
        repository,
        success,
        regions: reports,
    };
    emit(g, &out);
    outcome(&out)
}

/// Why region `name` of the config is down, when its probe (a short
/// budget) finds it so: a region down is not waited on with retries.
async fn down(g: &Global, name: &str) -> Option<String> {
    let r = g.regions.iter().find(|r| r.name == name)?;
    match probe(r).await {
        crate::engine::regions::Health::Down { error } => Some(error),
        _ => None,
    }
}

/// Whether an opening error stops the drill (the password) rather than
/// failing one region.
fn is_fatal(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<crate::repo::RepoError>(),
        Some(crate::repo::RepoError::WrongPassword { .. })
    )
}

/// Whether a drilled region (by name) is where records go first: the
/// primary, or the repository when there are no regions.
fn is_primary(g: &Global, name: &str) -> bool {
    match crate::engine::regions::primary(&g.regions) {
        Some(p) => p.name == name,
        None => true,
    }
}

/// A region to drill: its name, its store, and the repository flags of
/// its restore Jobs.
type Target = (String, crate::store::DynStore, Vec<String>);

/// The regions to drill.
fn targets(g: &Global, all: bool) -> Result<Vec<Target>> {
    if g.regions.is_empty() {
        let name = g.repo.clone().unwrap_or_default();
        let jobs = super::k8s::region_repo_args(g, None);
        return Ok(vec![(name, super::open_store(g)?, jobs)]);
    }
    let chosen: Vec<&crate::config::Region> = match (&g.region, all) {
        (_, true) => ordered(&g.regions),
        (Some(r), _) => vec![super::regions::find(&g.regions, r)?],
        (None, false) => ordered(&g.regions).into_iter().take(1).collect(),
    };
    chosen
        .into_iter()
        .map(|r| {
            Ok((
                r.name.clone(),
                region_store(r)?,
                super::k8s::region_repo_args(g, Some(r)),
            ))
        })
        .collect()
}

async fn open(store: crate::store::DynStore, pw: &[u8], g: &Global) -> Result<Arc<Repository>> {
    Ok(Arc::new(
        Repository::open(store, pw, g.catalog.clone()).await?,
    ))
}

fn unreachable(region: &str, opts: &DrillOptions, why: String) -> DrillReport {
    let mut r = crate::engine::drill::unreachable(region, &opts.verify);
    r.failures.push(format!("opening the region: {why}"));
    r
}

/// Records every drill in the primary region (or the repository), else in
/// the first drilled region that takes it; a failure to record is a
/// failure of the drill. Regions the drill found down are not tried.
async fn save_records(
    g: &Global,
    pw: &[u8],
    primary: Option<Arc<Repository>>,
    down: &std::collections::HashSet<String>,
    reports: &mut [DrillReport],
) {
    let mut candidates = Vec::new();
    match crate::engine::regions::primary(&g.regions) {
        _ if primary.is_some() => {}
        Some(p) if down.contains(&p.name) => {}
        Some(p) if matches!(probe(p).await, crate::engine::regions::Health::Ready { .. }) => {
            candidates.push(region_store(p).map_err(anyhow::Error::from))
        }
        Some(_) => {}
        None => candidates.push(super::open_store(g)),
    }
    let first = crate::engine::regions::primary(&g.regions).map(|r| r.name.clone());
    let others = g
        .regions
        .iter()
        .filter(|r| Some(&r.name) != first.as_ref() && !down.contains(&r.name));
    for r in others {
        candidates.push(region_store(r).map_err(anyhow::Error::from));
    }
    if let Some(repo) = primary {
        if record_all(&repo, reports).await {
            return;
        }
    }
    for store in candidates.into_iter().flatten() {
        if let Ok(repo) = open(store, pw, g).await {
            if record_all(&repo, reports).await {
                return;
            }
        }
    }
    for r in reports.iter_mut().filter(|r| r.record.is_none()) {
        r.failures
            .push("the drill could not be recorded in any region".into());
        r.success = false;
    }
}

/// Records in `repo` the drills not recorded yet; true when all are.
async fn record_all(repo: &Repository, reports: &mut [DrillReport]) -> bool {
    let mut ok = true;
    for r in reports.iter_mut().filter(|r| r.record.is_none()) {
        match record(repo, r).await {
            Ok(id) => r.record = Some(id),
            Err(e) => {
                tracing::warn!(error = %e, "could not record the drill");
                ok = false;
            }
        }
    }
    ok
}

/// The exit code: 0 when every region verified and met its targets.
fn outcome(out: &DrillOutput) -> Result<i32> {
    if out.success {
        return Ok(exit::OK);
    }
    let failed: Vec<String> = out
        .regions
        .iter()
        .filter(|r| !r.success)
        .map(|r| {
            format!(
                "{}: {}",
                r.region,
                r.failures.first().map(String::as_str).unwrap_or("failed")
            )
        })
        .collect();
    let unverified = out.regions.iter().any(|r| !r.verified);
    eprintln!("error: drill failed: {}", failed.join("; "));
    Ok(if unverified {
        exit::DRILL_FAILED
    } else {
        exit::TARGET_MISSED
    })
}
