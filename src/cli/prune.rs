//! `ferry prune`: free what no snapshot needs (two-phase, beside running
//! backups; see docs/format.md, "Deletion plans").

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use super::args::Global;
use super::output::{emit, Render};
use crate::engine::prune::{self, PruneOptions, PruneReport, Tally};
use crate::util::human_bytes;

#[derive(Debug, Args, Clone)]
pub struct PruneArgs {
    /// Tolerate this share of unused data in the repository; partly used
    /// packs are repacked, the emptiest first, until no more is left
    /// (restic's meaning; 0% repacks every partly used pack).
    #[arg(long, default_value = "5%")]
    pub max_unused: String,
    /// Copy at most this much data when repacking in one run (e.g. 2GiB).
    #[arg(long)]
    pub max_repack_size: Option<String>,
    /// Delete planned packs only once their plan is this old (e.g. 24h, 30m, 0s).
    #[arg(long, default_value = "24h")]
    pub keep_delete: String,
}

/// `--prune` of `forget` shares these; `--dry-run` is the command's own.
#[derive(Debug, Args)]
pub struct PruneCmd {
    #[command(flatten)]
    pub args: PruneArgs,
    /// Show what would be done without changing anything.
    #[arg(long)]
    pub dry_run: bool,
}

fn percent(s: &str) -> Result<f64> {
    let n = s.trim().trim_end_matches('%');
    let v: f64 = n
        .parse()
        .ok()
        .filter(|v: &f64| (0.0..=100.0).contains(v))
        .with_context(|| format!("--max-unused {s:?}: give a percentage from 0% to 100%"))?;
    Ok(v / 100.0)
}

/// `30s`, `15m`, `24h`, `7d`.
pub(super) fn duration(flag: &str, s: &str) -> Result<chrono::Duration> {
    let t = s.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: i64 = num.parse().ok().with_context(|| {
        format!("--{flag} {s:?}: give a number and a unit, such as 24h, 30m or 7d")
    })?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => anyhow::bail!("--{flag} {s:?}: the unit must be s, m, h or d (such as 24h)"),
    };
    Ok(chrono::Duration::seconds(n * secs))
}

impl PruneArgs {
    pub fn options(&self, dry_run: bool) -> Result<PruneOptions> {
        let max_repack_size = match &self.max_repack_size {
            Some(s) => Some(
                crate::util::parse_size(s)
                    .map_err(|e| anyhow::anyhow!("--max-repack-size {s:?}: {e}"))?,
            ),
            None => None,
        };
        Ok(PruneOptions {
            max_unused: percent(&self.max_unused)?,
            max_repack_size,
            keep_delete: duration("keep-delete", &self.keep_delete)?,
            dry_run,
            catalog_discarded: false,
        })
    }
}

fn line(what: &str, t: &Tally) -> String {
    format!(
        "{what:<28} {:>6} packs {:>10}\n",
        t.packs,
        human_bytes(t.bytes)
    )
}

impl Render for PruneReport {
    fn text(&self) -> String {
        let would = |s: &str| match self.dry_run {
            true => format!("would be {s}"),
            false => s.to_string(),
        };
        let mut out = format!(
            "{} snapshots use {} blobs\n",
            self.snapshots, self.used_blobs
        );
        out += &line("kept", &self.kept);
        out += &line(&would("repacked"), &self.repacked);
        out += &line("written by repacking", &self.written);
        out += &line(&would("planned for deletion"), &self.planned);
        out += &line("planned, not yet due", &self.waiting);
        out += &line(&would("deleted"), &self.deleted);
        out += &line("taken back (needed again)", &self.taken_back);
        if let Some(t) = &self.next_deletion {
            out += &format!(
                "planned packs can be deleted by a prune from {}\n",
                crate::util::rfc3339(t)
            );
        }
        if let Some(l) = &self.object_lock {
            out += &lock_text(l);
        }
        out
    }
}

fn lock_text(l: &prune::LockReport) -> String {
    let p = &l.purge;
    let mut out = format!(
        "object lock ({}, {} s): retention extended on {} objects in use\n",
        l.mode, l.retention_seconds, l.extended
    );
    out += &format!(
        "{:<28} {:>6} versions {:>10}\n",
        "deleted versions (expired)",
        p.versions,
        human_bytes(p.bytes)
    );
    if let Some(t) = &p.deferred_until {
        out += &format!(
            "deferred: {} versions ({}) still retained, deleted by a prune after {}\n",
            p.deferred_versions,
            human_bytes(p.deferred_bytes),
            crate::util::rfc3339(t)
        );
    }
    out
}

/// One region's prune, or why it could not run.
#[derive(Serialize)]
pub struct RegionPrune {
    pub region: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<PruneReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The prune of the repository, or (with `--config` regions and no
/// `--region`) of every region, each freeing its own space.
#[derive(Serialize)]
#[serde(untagged)]
pub enum PruneOutcome {
    One(PruneReport),
    Regions { regions: Vec<RegionPrune> },
}

impl PruneOutcome {
    pub fn failed(&self) -> usize {
        match self {
            PruneOutcome::One(_) => 0,
            PruneOutcome::Regions { regions } => {
                regions.iter().filter(|r| r.error.is_some()).count()
            }
        }
    }
}

impl Render for PruneOutcome {
    fn metrics(&self, m: &mut crate::metrics::Registry) {
        super::metrics::prune(self, m);
    }

    fn text(&self) -> String {
        match self {
            PruneOutcome::One(r) => r.text(),
            PruneOutcome::Regions { regions } => regions
                .iter()
                .map(|r| match (&r.report, &r.error) {
                    (Some(rep), _) => format!("region {}:\n{}", r.region, rep.text()),
                    (None, e) => format!(
                        "region {}: not pruned: {}\n",
                        r.region,
                        e.as_deref().unwrap_or("")
                    ),
                })
                .collect(),
        }
    }
}

/// A catalog of this process alone: the shared one is updated by
/// concurrent backups while the prune reads it, and the prune must decide
/// on its own listings only. It starts as a copy of the shared one, which
/// the sync then brings in step with those listings. Removed (with
/// SQLite's side files) on drop.
pub(crate) struct PrivateCatalog(std::path::PathBuf);

impl PrivateCatalog {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("ferry-prune-{}-{nanos}.db", std::process::id());
        PrivateCatalog(std::env::temp_dir().join(name))
    }
}

impl Drop for PrivateCatalog {
    fn drop(&mut self) {
        for ext in ["", "-wal", "-shm"] {
            let mut p = self.0.clone().into_os_string();
            p.push(ext);
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A private catalog being seeded from the shared one of a store's
/// repository (see [`crate::repo::Repository::seed_catalog`]), while
/// something else runs (forget before its prune).
pub(crate) struct Seeding {
    cat: PrivateCatalog,
    task: tokio::task::JoinHandle<()>,
}

impl Seeding {
    /// Starts copying `shared` (or the default catalog of `store`'s
    /// repository) into a new private catalog.
    pub(crate) fn start(store: crate::store::DynStore, shared: Option<std::path::PathBuf>) -> Self {
        let cat = PrivateCatalog::new();
        let to = cat.0.clone();
        let task = tokio::spawn(async move {
            crate::repo::Repository::seed_catalog(&store, shared, to).await;
        });
        Seeding { cat, task }
    }

    /// The catalog, once seeded (or empty, if the copy failed: the sync
    /// then reads everything).
    pub(crate) async fn finish(self) -> PrivateCatalog {
        let _ = self.task.await;
        self.cat
    }
}

async fn prune_store(
    store: crate::store::DynStore,
    pw: &[u8],
    opts: &PruneOptions,
    cat: PrivateCatalog,
) -> Result<PruneReport> {
    let repo = crate::repo::Repository::open_with(
        store,
        pw,
        Some(cat.0.clone()),
        crate::repo::BlobIds::Unloaded,
    )
    .await?;
    super::metrics::set_repository(&repo.config().id, None);
    // The catalog is this prune's alone, removed right after it.
    let opts = PruneOptions {
        catalog_discarded: true,
        ..opts.clone()
    };
    let report = prune::prune(&std::sync::Arc::new(repo), &opts).await?;
    drop(cat);
    Ok(report)
}

/// Whether a prune of `g` prunes one store (not every region).
pub(crate) fn one_store(g: &Global) -> bool {
    !g.repo_from_regions || g.regions.len() < 2
}

/// Prunes the repository, or every region when the repository came from
/// the config file's regions (each region frees its own space). `seeding`:
/// the private catalog of a one-store prune, begun earlier.
pub async fn prune_all(
    g: &Global,
    opts: &PruneOptions,
    seeding: Option<Seeding>,
) -> Result<PruneOutcome> {
    let pw = super::password::password(g, false)?;
    if one_store(g) {
        let store = super::open_store(g)?;
        let seeding = seeding.unwrap_or_else(|| Seeding::start(store.clone(), g.catalog.clone()));
        let cat = seeding.finish().await;
        return Ok(PruneOutcome::One(prune_store(store, &pw, opts, cat).await?));
    }
    let mut regions = Vec::new();
    for r in crate::engine::regions::ordered(&g.regions) {
        let done = async {
            let store = crate::engine::regions::region_store(r)?;
            let cat = Seeding::start(store.clone(), g.catalog.clone())
                .finish()
                .await;
            prune_store(store, &pw, opts, cat).await
        }
        .await;
        regions.push(match done {
            Ok(rep) => RegionPrune {
                region: r.name.clone(),
                report: Some(rep),
                error: None,
            },
            Err(e) => RegionPrune {
                region: r.name.clone(),
                report: None,
                error: Some(format!("{e:#}")),
            },
        });
    }
    Ok(PruneOutcome::Regions { regions })
}

pub async fn run(g: &Global, a: PruneCmd) -> Result<i32> {
    let opts = a.args.options(a.dry_run)?;
    let outcome = prune_all(g, &opts, None).await?;
    emit(g, &outcome);
    match outcome.failed() {
        0 => Ok(super::exit::OK),
        n => Err(super::Reported(format!("{n} regions could not be pruned; see above")).into()),
    }
}
