//! `drill`: a disaster-recovery drill. Picks a snapshot, restores it from
//! one region into a fresh sandbox directory through the engine's restore,
//! verifies what was restored against the snapshot, removes the sandbox
//! (unless kept), and measures RPO (age of the snapshot) and RTO (start of
//! the restore to verified). Every drill is recorded in the repository
//! (`drills/`), so that a rebuilt catalog still knows it.

pub mod k8s;
mod sandbox;
pub mod verify;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::progress::Progress;
use super::restore::{restore, RestoreOptions};
use super::select::Found;
use super::walk::SnapPath;
use super::{EngineError, EngineResult};
use crate::format::drill::DrillRecord;
use crate::format::{DrillId, SnapshotId};
use crate::repo::Repository;
pub use verify::{verify, verify_device, Verification, VerifyMode};

/// Which snapshot a drill restores.
#[derive(Debug, Clone, PartialEq)]
pub enum Pick {
    Latest,
    /// The newest snapshot taken at or before this time.
    At(DateTime<Utc>),
    /// A snapshot taken within this long before now, picked at random.
    RandomWithin(Duration),
}

#[derive(Debug, Clone)]
pub struct DrillOptions {
    pub pick: Pick,
    /// Where the sandbox directory is made (default: the system temp dir).
    pub parent: Option<PathBuf>,
    pub verify: VerifyMode,
    pub rto_target: Option<Duration>,
    pub rpo_target: Option<Duration>,
    /// Leave the sandbox in place afterwards.
    pub keep: bool,
    /// Drill the Kubernetes objects and volumes into sandbox namespaces
    /// instead of the files into a sandbox directory.
    pub k8s: Option<k8s::K8sDrillOptions>,
}

/// An entry of the restore that does not match the snapshot: its path in
/// the snapshot (bytes; in JSON as trees write names) and what differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mismatch {
    pub path: SnapPath,
    pub error: String,
}

impl Mismatch {
    pub fn new(path: impl Into<SnapPath>, error: impl Into<String>) -> Self {
        Mismatch {
            path: path.into(),
            error: error.into(),
        }
    }
}

/// The outcome of one region's drill.
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    pub region: String,
    pub snapshot: Option<SnapshotId>,
    pub snapshot_time: Option<DateTime<Utc>>,
    pub started: DateTime<Utc>,
    pub rpo_seconds: Option<f64>,
    pub rto_seconds: Option<f64>,
    pub files: u64,
    pub bytes: u64,
    /// Restored bytes per second of RTO.
    pub throughput_bytes_per_second: Option<f64>,
    pub verify: String,
    pub verification: Option<Verification>,
    /// Every restored entry matched the snapshot.
    pub verified: bool,
    /// `None` when no target was given.
    pub rto_met: Option<bool>,
    pub rpo_met: Option<bool>,
    /// Verified and every given target met.
    pub success: bool,
    /// What failed, one line each.
    pub failures: Vec<String>,
    /// The sandbox, when kept.
    pub sandbox: Option<PathBuf>,
    /// The drill record written to the repository.
    pub record: Option<DrillId>,
    /// With `--k8s`: the sandbox namespaces, objects and volumes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k8s: Option<k8s::K8sDrill>,
}

impl DrillReport {
    fn failed(region: &str, started: DateTime<Utc>, verify: &VerifyMode, why: String) -> Self {
        let failures = if why.is_empty() { vec![] } else { vec![why] };
        DrillReport {
            region: region.to_string(),
            snapshot: None,
            snapshot_time: None,
            started,
            rpo_seconds: None,
            rto_seconds: None,
            files: 0,
            bytes: 0,
            throughput_bytes_per_second: None,
            verify: verify.label(),
            verification: None,
            verified: false,
            rto_met: None,
            rpo_met: None,
            success: false,
            failures,
            sandbox: None,
            record: None,
            k8s: None,
        }
    }

    /// The record stored for this drill.
    pub fn record(&self) -> DrillRecord {
        DrillRecord {
            time: self.started,
            region: self.region.clone(),
            host: crate::util::hostname(),
            snapshot: self.snapshot.unwrap_or_default(),
            snapshot_time: self.snapshot_time.unwrap_or(self.started),
            rto_seconds: self.rto_seconds.unwrap_or(0.0),
            rpo_seconds: self.rpo_seconds.unwrap_or(0.0),
            files: self.files,
            bytes: self.bytes,
            verify: self.verify.clone(),
            verified: self.verified,
            success: self.success,
            failures: self.failures.clone(),
            program_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// The report of a region that could not be drilled at all.
pub fn unreachable(region: &str, verify: &VerifyMode) -> DrillReport {
    DrillReport::failed(region, Utc::now(), verify, String::new())
}

/// Picks the snapshot a drill restores.
pub fn pick(snaps: Vec<Found>, pick: &Pick, now: DateTime<Utc>) -> EngineResult<Found> {
    let any = super::select::Filter::default();
    match pick {
        Pick::Latest => super::select::select(snaps, "latest", &any),
        Pick::At(t) => super::select::select_at(snaps, *t, &any),
        Pick::RandomWithin(w) => {
            let since = now - chrono::Duration::from_std(*w).unwrap_or(chrono::Duration::MAX);
            let recent: Vec<Found> = snaps.into_iter().filter(|(_, s)| s.time >= since).collect();
            recent.choose(&mut rand::thread_rng()).cloned().ok_or_else(|| {
                EngineError::Usage(format!(
                    "no snapshot was taken within {} before now; back up first or widen --random-within",
                    human_duration(*w)
                ))
            })
        }
    }
}

/// Drills one region: `repo` is the repository opened on that region.
pub async fn drill(repo: &Arc<Repository>, region: &str, opts: &DrillOptions) -> DrillReport {
    let started = Utc::now();
    let fail = |why: String| DrillReport::failed(region, started, &opts.verify, why);
    let (id, snap) = match repo.snapshots().map_err(EngineError::from) {
        Ok(s) => match pick(s, &opts.pick, started) {
            Ok(found) => found,
            Err(e) => return fail(format!("picking the snapshot: {e}")),
        },
        Err(e) => return fail(format!("listing snapshots: {e}")),
    };
    let mut r = fail(String::new());
    r.snapshot = Some(id);
    r.snapshot_time = Some(snap.time);
    r.rpo_seconds = Some(seconds(started - snap.time));
    match &opts.k8s {
        Some(k) => k8s::drill(repo, id, &snap, opts, k, &mut r).await,
        None => {
            let limit = snap.summary.entry_limit();
            into_directory(repo, (snap.tree, limit), region, opts, &mut r).await
        }
    }
    judge(&mut r, opts);
    r
}

/// A drill of the files into a sandbox directory.
async fn into_directory(
    repo: &Arc<Repository>,
    tree: (crate::repo::BlobId, u64),
    region: &str,
    opts: &DrillOptions,
    r: &mut DrillReport,
) {
    let sandbox = match make_sandbox(opts.parent.as_deref(), region) {
        Ok(p) => p,
        Err(e) => return r.failures.push(e.to_string()),
    };
    let clock = Instant::now();
    run(repo, tree, &sandbox, opts, r).await;
    set_rto(r, clock);
    if opts.keep {
        r.sandbox = Some(sandbox);
    } else if let Err(e) = sandbox::remove_tree(&sandbox) {
        r.failures
            .push(format!("removing the sandbox {}: {e}", sandbox.display()));
    }
}

/// RTO (restore start to verified, from `clock`) and throughput.
fn set_rto(r: &mut DrillReport, clock: Instant) {
    let rto = clock.elapsed().as_secs_f64();
    r.rto_seconds = Some(rto);
    r.throughput_bytes_per_second = (rto > 0.0).then(|| r.bytes as f64 / rto);
}

/// The first mismatches as failures, one line each.
fn add_mismatches(r: &mut DrillReport, mismatches: &[Mismatch]) {
    for m in mismatches.iter().take(5) {
        r.failures
            .push(format!("mismatch: {}: {}", m.path, m.error));
    }
    if mismatches.len() > 5 {
        let more = mismatches.len() - 5;
        r.failures.push(format!("mismatch: {more} more entries"));
    }
}

/// Restores into the sandbox and verifies, filling the report.
async fn run(
    repo: &Arc<Repository>,
    (tree, limit): (crate::repo::BlobId, u64),
    sandbox: &Path,
    opts: &DrillOptions,
    r: &mut DrillReport,
) {
    let ropts = RestoreOptions {
        target: sandbox.to_path_buf(),
        max_entries: Some(limit),
        ..Default::default()
    };
    let restored = match restore(repo, tree, &ropts, Arc::new(Progress::default())).await {
        Ok(rep) => rep,
        Err(e) => {
            r.failures.push(format!("restore failed: {e}"));
            return;
        }
    };
    r.files = restored.files;
    r.bytes = restored.bytes;
    for f in restored.failed.iter().take(5) {
        r.failures
            .push(format!("not restored: {}: {}", f.path, f.error));
    }
    if restored.failed.len() > 5 {
        let more = restored.failed.len() - 5;
        r.failures
            .push(format!("not restored: {more} more entries"));
    }
    let v = verify::verify(repo, tree, sandbox, opts.verify).await;
    add_mismatches(r, &v.mismatches);
    r.verified = restored.failed.is_empty() && v.mismatches.is_empty();
    r.verification = Some(v);
}

/// Checks the targets and sets `success`.
fn judge(r: &mut DrillReport, opts: &DrillOptions) {
    let over = |got: Option<f64>, target: Option<Duration>| {
        target.map(|t| got.is_some_and(|g| g <= t.as_secs_f64()))
    };
    r.rto_met = over(r.rto_seconds, opts.rto_target);
    r.rpo_met = over(r.rpo_seconds, opts.rpo_target);
    if let (Some(false), Some(t)) = (r.rto_met, opts.rto_target) {
        r.failures.push(format!(
            "RTO {} is over the target of {}",
            human_duration(secs(r.rto_seconds)),
            human_duration(t)
        ));
    }
    if let (Some(false), Some(t)) = (r.rpo_met, opts.rpo_target) {
        r.failures.push(format!(
            "RPO {} is over the target of {}",
            human_duration(secs(r.rpo_seconds)),
            human_duration(t)
        ));
    }
    r.success = r.verified && r.rto_met != Some(false) && r.rpo_met != Some(false);
}

fn secs(s: Option<f64>) -> Duration {
    Duration::from_secs_f64(s.unwrap_or(0.0).max(0.0))
}

fn seconds(d: chrono::Duration) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

/// A fresh, private directory for one drill: `ferry-drill-<region>-<random>`.
fn make_sandbox(parent: Option<&Path>, region: &str) -> EngineResult<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let parent = parent
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    let safe: String = region
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let dir = parent.join(format!("ferry-drill-{safe}-{:016x}", rand::random::<u64>()));
    std::fs::DirBuilder::new()
        .recursive(false)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| EngineError::Io {
            path: format!(
                "sandbox {} (is --target an existing, writable directory?)",
                dir.display()
            ),
            source: e,
        })?;
    Ok(dir)
}

/// Stores the drill's record in `repo`.
pub async fn record(repo: &Repository, report: &DrillReport) -> EngineResult<DrillId> {
    Ok(repo.save_drill(&report.record()).await?)
}

/// The newest drill record of each region, by region name.
pub async fn last_drills(
    repo: &Repository,
) -> EngineResult<std::collections::BTreeMap<String, DrillRecord>> {
    let mut out = std::collections::BTreeMap::new();
    for (_, r) in repo.drills().await? {
        out.insert(r.region.clone(), r);
    }
    Ok(out)
}

/// Parses a duration such as `90s`, `15m`, `1h`, `30d` or `2w`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration; write e.g. 90s, 15m, 1h, 30d or 2w");
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).map(Duration::from_secs).ok_or_else(bad)
}

/// A duration for people: `42s`, `3m12s`, `2h5m`, `3d4h`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{:.1}s", d.as_secs_f64()),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_bad_ones_are_named() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert!(parse_duration("15").unwrap_err().contains("\"15\""));
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("1y").is_err());
    }

    #[test]
    fn verify_modes_parse() {
        assert_eq!(VerifyMode::parse("full"), Ok(VerifyMode::Full));
        assert_eq!(VerifyMode::parse("sample:5%"), Ok(VerifyMode::Sample(0.05)));
        assert!(VerifyMode::parse("sample:0%").is_err());
        assert!(VerifyMode::parse("sample:5").is_err());
    }
}
