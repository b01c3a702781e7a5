//! Replication rounds between regions: one way (a source to some targets),
//! or converging (every live region receives what any other holds), a
//! region with no repository yet created first, regions that are down
//! named and skipped, and the catalog told what each region holds.

use std::sync::Arc;

use serde::Serialize;

use super::{bootstrap, DownRegion, Health, RegionHandle, Regions, RegionsError, RegionsResult};
use crate::engine::replicate::{replicate, ReplicateOptions, ReplicateReport};
use crate::store::tee::{FanoutLimits, Tee, TeeReport};
use crate::store::throttle::{Bandwidth, Throttled};
use crate::store::DynStore;

/// Which way a round copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Direction {
    /// Every live region receives what any other live region holds.
    Converge,
    /// From the source (the primary, else the first live region) to these
    /// regions only.
    OneWay(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct RoundOptions {
    pub direction: Direction,
    /// Objects copied at once, per region.
    pub concurrency: usize,
    pub verify: bool,
    /// One limit shared by every copy of the round.
    pub bandwidth: Bandwidth,
}

/// What one region received in a round.
#[derive(Debug, Serialize)]
pub struct RegionOutcome {
    pub region: String,
    pub ok: bool,
    /// The regions it was copied from.
    pub sources: Vec<String>,
    /// Whether the repository was created there by this round.
    pub created: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<ReplicateReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// With `backup --fanout`: what it received during the backup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub streamed: Option<TeeReport>,
}

/// `ferry replicate` (one round).
#[derive(Debug, Serialize)]
pub struct RoundReport {
    /// The source of a one-way round; none when converging.
    pub source: Option<String>,
    pub regions: Vec<RegionOutcome>,
    /// Regions not used in this round, and why.
    pub down: Vec<DownRegion>,
}

impl RoundReport {
    /// How many regions did not receive everything.
    pub fn failed(&self) -> usize {
        self.regions.iter().filter(|r| !r.ok).count()
    }
}

impl Regions {
    /// One replication round; see [`Direction`].
    pub async fn replicate(&self, opts: &RoundOptions) -> RegionsResult<RoundReport> {
        let id = self.repo_id().await?;
        let live = self.live(&id).await;
        let (source, targets): (Option<&RegionHandle>, Vec<&RegionHandle>) = match &opts.direction {
            // Every region is a target: one that is down or holds another
            // repository is reported as not replicated.
            Direction::Converge => (None, self.all().iter().collect()),
            Direction::OneWay(names) => {
                let source = *live
                    .first()
                    .ok_or(RegionsError::NoneReachable(String::new()))?;
                let mut t = Vec::new();
                for n in names {
                    let r = self.find(n)?;
                    if r.name() == source.name() {
                        return Err(RegionsError::Usage(format!(
                            "{n} is the source of this round (the first live region): replicate copies from it"
                        )));
                    }
                    t.push(r);
                }
                (Some(source), t)
            }
        };
        let rounds = targets.iter().map(|t| {
            let sources: Vec<&RegionHandle> = match source {
                Some(s) => vec![s],
                None => live
                    .iter()
                    .copied()
                    .filter(|s| s.name() != t.name())
                    .collect(),
            };
            self.fill(&id, t, sources, opts)
        });
        let regions = futures::future::join_all(rounds).await;
        Ok(RoundReport {
            source: source.map(|s| s.name().to_string()),
            regions,
            down: self.down().await,
        })
    }

    /// Copies to `target` what each of `sources` holds and it lacks,
    /// creating the repository there first when it has none.
    async fn fill(
        &self,
        id: &str,
        target: &RegionHandle,
        sources: Vec<&RegionHandle>,
        opts: &RoundOptions,
    ) -> RegionOutcome {
        let mut out = RegionOutcome {
            region: target.name().to_string(),
            ok: false,
            sources: sources.iter().map(|s| s.name().to_string()).collect(),
            created: false,
            report: None,
            error: None,
            streamed: None,
        };
        match self.fill_from(id, target, &sources, opts, &mut out).await {
            Ok(report) => {
                out.ok = report.complete();
                out.report = Some(report);
            }
            Err(e) => out.error = Some(e.to_string()),
        }
        out
    }

    async fn fill_from(
        &self,
        id: &str,
        target: &RegionHandle,
        sources: &[&RegionHandle],
        opts: &RoundOptions,
        out: &mut RegionOutcome,
    ) -> RegionsResult<ReplicateReport> {
        match target.health().await {
            Health::Down { error } => {
                return Err(RegionsError::Usage(format!("region is down: {error}")))
            }
            Health::Empty { .. } => {
                let lock = match sources.first() {
                    Some(s) => bootstrap::locked(s).await,
                    None => false,
                };
                bootstrap::prepare(target, lock).await?;
                out.created = true;
            }
            Health::Ready { .. } => {}
        }
        let mut dest = target.store();
        if !opts.bandwidth.is_unlimited() {
            dest = Arc::new(Throttled::shared(dest, &opts.bandwidth)) as DynStore;
        }
        let ropts = ReplicateOptions {
            concurrency: opts.concurrency,
            verify: opts.verify,
        };
        let mut total = ReplicateReport::default();
        for s in sources {
            let rep = match replicate(&s.store(), &dest, &ropts).await {
                Ok(rep) if !source_died(s, target, &rep) => rep,
                Ok(_) => continue,
                Err(_) if source_died_err(s, target) => continue,
                Err(e) => return Err(e.into()),
            };
            let mut cat = self.catalog(id)?;
            // When converging, every source is a target too and records its
            // own listing once it has received everything; a listing taken
            // here, before that, must not overwrite it.
            if let Direction::OneWay(_) = opts.direction {
                cat.set_region_objects(s.name(), &rep.source_objects)?;
            }
            cat.set_region_objects(target.name(), &rep.dest_objects)?;
            let complete = rep.complete();
            merge(&mut total, rep);
            if !complete {
                break;
            }
        }
        Ok(total)
    }

    /// For `backup --fanout`: the store of `home`, also writing packs and
    /// index objects to every other region that holds this repository and
    /// answers. The others are left to [`Regions::after_fanout`]. A copy
    /// has short retries: one that fails is dropped (and caught up after),
    /// so a region dying mid-object holds the backup up for seconds; one
    /// that falls behind by more than the [`FanoutLimits`] (from the
    /// environment) is dropped as slow.
    pub async fn tee(&self, id: &str, home: &RegionHandle) -> RegionsResult<Arc<Tee>> {
        let limits = FanoutLimits::from_env().map_err(RegionsError::Usage)?;
        let mut copies = Vec::new();
        for r in self.live(id).await {
            if r.name() != home.name() {
                copies.push((r.name().to_string(), r.quick.clone()));
            }
        }
        Ok(Tee::new(home.store(), copies, limits))
    }

    /// A region the backup stopped writing to is probed again, with the
    /// probe's budget, before the round after it: down, it is not tried
    /// at length; up again (a passing failure), the round catches it up.
    async fn reprobe_dropped(&self, tee: &Tee) {
        for t in tee.reports() {
            let (Some(why), Ok(r)) = (&t.dropped, self.find(&t.region)) else {
                continue;
            };
            if t.dropped_as_slow() {
                continue;
            }
            if let Health::Down { error } = super::probe(&r.region).await {
                r.store.trip(&format!("{why}; probed again: {error}"));
            }
        }
    }

    /// After a backup with `--fanout`: once the copies' queues have
    /// drained, copies to every other region what it still lacks (the
    /// snapshot, and everything for a region the backup could not write
    /// to), with what each received during the backup. A region dropped as
    /// slow is left to `replicate`: catching it up here would hold the
    /// backup to its pace.
    pub async fn after_fanout(&self, home: &RegionHandle, tee: &Tee) -> RegionsResult<RoundReport> {
        tee.finish().await;
        let streamed = tee.reports();
        let slow = |name: &str| {
            streamed
                .iter()
                .any(|t| t.region == name && t.dropped_as_slow())
        };
        let others = self
            .all()
            .iter()
            .filter(|r| r.name() != home.name() && !slow(r.name()))
            .map(|r| r.name().to_string())
            .collect();
        let opts = RoundOptions {
            direction: Direction::OneWay(others),
            concurrency: 4,
            verify: false,
            bandwidth: Bandwidth::default(),
        };
        self.reprobe_dropped(tee).await;
        let mut report = self.replicate(&opts).await?;
        for t in streamed {
            if let Some(r) = report.regions.iter_mut().find(|r| r.region == t.region) {
                r.streamed = Some(t);
                continue;
            }
            report.regions.push(RegionOutcome {
                region: t.region.clone(),
                ok: false,
                sources: Vec::new(),
                created: false,
                report: None,
                error: Some(format!(
                    "dropped from the backup as too slow ({}); not caught up now, so as not \
                     to hold the backup to its pace: `ferry replicate` catches it up",
                    t.dropped.as_deref().unwrap_or_default()
                )),
                streamed: Some(t),
            });
        }
        Ok(report)
    }
}

/// Whether a copy from `source` fell short because the source died during
/// the round (its breaker tripped) while `target` still answers: that source
/// is no longer live, so what it alone held is not owed to `target` in this
/// round; the next round brings it once the source is back.
fn source_died(source: &RegionHandle, target: &RegionHandle, rep: &ReplicateReport) -> bool {
    !rep.complete() && source_died_err(source, target)
}

fn source_died_err(source: &RegionHandle, target: &RegionHandle) -> bool {
    let died = source.store.is_down() && !target.store.is_down();
    if died {
        tracing::warn!(
            source = source.name(),
            target = target.name(),
            "the source region died during the round; the others are still copied from"
        );
    }
    died
}

/// Adds one source's copy to a region's report: copied objects and bytes
/// add up; `present` is the most any one source found already there.
fn merge(total: &mut ReplicateReport, rep: ReplicateReport) {
    for (kind, k) in rep.copied {
        let t = total.copied.entry(kind).or_default();
        t.objects += k.objects;
        t.bytes += k.bytes;
    }
    total.present = total.present.max(rep.present);
    total.failed.extend(rep.failed);
    total.verified += rep.verified;
    total.damaged.extend(rep.damaged);
}
