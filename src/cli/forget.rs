//! `ferry forget`: remove snapshots by a retention policy (restic's
//! `--keep-*` options) or by id, and with `--prune` free their data.

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use super::args::{FilterArgs, Global};
use super::output::{emit, Render};
use super::prune::PruneArgs;
use super::prune::PruneOutcome;
use crate::engine::forget::policy::{Policy, Span};
use crate::engine::forget::{self, ForgetOptions, ForgetReport, GroupBy};

#[derive(Debug, Args, Clone)]
pub struct ForgetArgs {
    /// Snapshots to remove, by id or prefix (instead of a policy).
    pub snapshots: Vec<String>,
    /// Keep the N newest snapshots.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_last: u32,
    /// Keep the newest snapshot of each of the last N hours that have one.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_hourly: u32,
    /// Keep the newest snapshot of each of the last N days that have one.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_daily: u32,
    /// Keep the newest snapshot of each of the last N weeks (Monday to Sunday).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_weekly: u32,
    /// Keep the newest snapshot of each of the last N months.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_monthly: u32,
    /// Keep the newest snapshot of each of the last N years.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_yearly: u32,
    /// Keep snapshots newer than the newest minus this duration (1y2m3d4h).
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
    /// Keep one snapshot per hour within this duration of the newest.
    #[arg(long, value_name = "DURATION")]
    pub keep_within_hourly: Option<String>,
    /// Keep one snapshot per day within this duration of the newest.
    #[arg(long, value_name = "DURATION")]
    pub keep_within_daily: Option<String>,
    /// Keep one snapshot per week within this duration of the newest.
    #[arg(long, value_name = "DURATION")]
    pub keep_within_weekly: Option<String>,
    /// Keep one snapshot per month within this duration of the newest.
    #[arg(long, value_name = "DURATION")]
    pub keep_within_monthly: Option<String>,
    /// Keep one snapshot per year within this duration of the newest.
    #[arg(long, value_name = "DURATION")]
    pub keep_within_yearly: Option<String>,
    /// Keep snapshots with these tags (comma-separated: all of them; repeatable: any).
    #[arg(long, value_name = "TAGS")]
    pub keep_tag: Vec<String>,
    /// Apply the policy per group of these fields: host, paths, tags (comma-separated, or "").
    #[arg(long, default_value = "host,paths")]
    pub group_by: String,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Show what would be removed without removing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Then run `prune` to free the data the removed snapshots held.
    #[arg(long)]
    pub prune: bool,
    #[command(flatten)]
    pub prune_args: PruneArgs,
}

fn span(flag: &str, v: &Option<String>) -> Result<Span> {
    match v {
        None => Ok(Span::default()),
        Some(s) => Span::parse(s).map_err(|e| anyhow::anyhow!("--{flag}: {e}")),
    }
}

impl ForgetArgs {
    fn policy(&self) -> Result<Policy> {
        Ok(Policy {
            last: self.keep_last,
            hourly: self.keep_hourly,
            daily: self.keep_daily,
            weekly: self.keep_weekly,
            monthly: self.keep_monthly,
            yearly: self.keep_yearly,
            within: span("keep-within", &self.keep_within)?,
            within_hourly: span("keep-within-hourly", &self.keep_within_hourly)?,
            within_daily: span("keep-within-daily", &self.keep_within_daily)?,
            within_weekly: span("keep-within-weekly", &self.keep_within_weekly)?,
            within_monthly: span("keep-within-monthly", &self.keep_within_monthly)?,
            within_yearly: span("keep-within-yearly", &self.keep_within_yearly)?,
            tags: self
                .keep_tag
                .iter()
                .map(|t| {
                    t.split(',')
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                })
                .collect(),
        })
    }

    fn options(&self) -> Result<ForgetOptions> {
        let policy = self.policy()?;
        if !self.snapshots.is_empty() && !policy.is_empty() {
            anyhow::bail!("give snapshot ids or --keep-* options, not both");
        }
        Ok(ForgetOptions {
            policy,
            group_by: GroupBy::parse(&self.group_by)?,
            filter: super::filter(&self.filter),
            ids: self.snapshots.clone(),
            dry_run: self.dry_run,
        })
    }
}

/// What `forget` did, and what the prune after it did.
#[derive(Serialize)]
struct ForgetOutput {
    #[serde(flatten)]
    forget: ForgetReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    prune: Option<PruneOutcome>,
    /// How long the forget took (the prune after it apart).
    #[serde(skip)]
    seconds: f64,
}

impl Render for ForgetOutput {
    fn metrics(&self, m: &mut crate::metrics::Registry) {
        super::metrics::forget(&self.forget, self.seconds, m);
        if let Some(p) = &self.prune {
            super::metrics::prune(p, m);
        }
    }

    fn text(&self) -> String {
        let f = &self.forget;
        let mut out = String::new();
        for g in &f.groups {
            let mut what = Vec::new();
            if let Some(h) = &g.host {
                what.push(format!("host {h}"));
            }
            if let Some(p) = &g.paths {
                what.push(format!("paths [{}]", p.join(", ")));
            }
            if let Some(t) = &g.tags {
                what.push(format!("tags [{}]", t.join(", ")));
            }
            if !what.is_empty() {
                out += &format!("snapshots of {}:\n", what.join(", "));
            }
            for d in &g.keep {
                let time = crate::util::rfc3339(&d.time);
                out += &format!(
                    "  keep   {} {time}  {}\n",
                    d.id.short(),
                    d.reasons.join(", ")
                );
            }
            for d in &g.remove {
                let time = crate::util::rfc3339(&d.time);
                out += &format!("  remove {} {time}\n", d.id.short());
            }
        }
        let verb = if f.dry_run { "would remove" } else { "removed" };
        out += &format!("{verb} {} snapshots, kept {}\n", f.removed, f.kept);
        if let Some(t) = &f.deferred_until {
            out += &format!(
                "object lock: their stored versions are deferred until {}; a prune after that deletes them\n",
                crate::util::rfc3339(t)
            );
        }
        for r in &f.regions {
            match &r.error {
                None => out += &format!("region {}: removed {} snapshots\n", r.region, r.removed),
                Some(e) => {
                    out += &format!(
                        "region {}: not reached ({e}); run forget again later\n",
                        r.region
                    )
                }
            }
        }
        if let Some(p) = &self.prune {
            out += &p.text();
        }
        out
    }
}

pub async fn run(g: &Global, a: ForgetArgs) -> Result<i32> {
    let opts = a.options()?;
    let prune_opts = match a.prune {
        true => Some(a.prune_args.options(a.dry_run)?),
        false => None,
    };
    let clock = std::time::Instant::now();
    // A one-store prune's private catalog is copied from the shared one
    // while the key is derived and the snapshots are forgotten (the
    // prune's sync then drops the snapshots this forget removed).
    let seeding = match prune_opts.is_some() && super::prune::one_store(g) {
        true => Some(super::prune::Seeding::start(
            super::open_store(g)?,
            g.catalog.clone(),
        )),
        false => None,
    };
    let forgotten = forget_only(g, &opts, clock).await;
    let (forget, seconds) = match forgotten {
        Ok(done) => done,
        Err(e) => {
            if let Some(s) = seeding {
                s.finish().await;
            }
            return Err(e);
        }
    };
    let prune = match prune_opts {
        Some(p) => Some(super::prune::prune_all(g, &p, seeding).await?),
        None => None,
    };
    let unreached = forget.regions.iter().filter(|r| r.error.is_some()).count()
        + prune.as_ref().map_or(0, PruneOutcome::failed);
    emit(
        g,
        &ForgetOutput {
            forget,
            prune,
            seconds,
        },
    );
    match unreached {
        0 => Ok(super::exit::OK),
        n => Err(super::Reported(format!("{n} region steps failed; see above")).into()),
    }
}

/// The forget itself, and how long it took since `clock`.
async fn forget_only(
    g: &Global,
    opts: &ForgetOptions,
    clock: std::time::Instant,
) -> Result<(ForgetReport, f64)> {
    // forget reads snapshots and looks no blob up: the catalog's blob ids
    // stay on disk.
    let repo = super::regions::open_read_with(g, crate::repo::BlobIds::Unloaded)
        .await?
        .repo;
    super::metrics::set_repository(&repo.config().id, None);
    let mut forget = forget::forget(&repo, opts).await?;
    if !opts.dry_run {
        forget.regions = other_regions(g, &forget.removed_ids()).await;
    }
    Ok((forget, clock.elapsed().as_secs_f64()))
}

/// With `--config` regions (and no `--region`), the removals decided on the
/// primary are carried to every other region.
async fn other_regions(
    g: &Global,
    removed: &[crate::format::SnapshotId],
) -> Vec<forget::regions::RegionRemoval> {
    if !g.repo_from_regions || removed.is_empty() {
        return Vec::new();
    }
    let primary = crate::engine::regions::primary(&g.regions).map(|r| r.name.clone());
    let mut out = Vec::new();
    for r in g
        .regions
        .iter()
        .filter(|r| Some(&r.name) != primary.as_ref())
    {
        let done = match crate::engine::regions::region_store(r) {
            Ok(store) => forget::regions::remove_in(&r.name, &store, removed).await,
            Err(e) => forget::regions::RegionRemoval {
                region: r.name.clone(),
                removed: 0,
                error: Some(format!("{e:#}")),
            },
        };
        out.push(done);
    }
    out
}
