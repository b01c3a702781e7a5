//! `prune`: free what no snapshot needs, without a lock, beside running
//! backups. Deleting is two-phase (docs/format.md, "Deletion plans"): a
//! prune records the packs it means to delete in a plan object; a later
//! prune deletes those of a plan at least `keep_delete` old that no
//! snapshot needs then, and takes back the others. Packs mostly unused are
//! repacked first, so that their old copies can be planned too.

mod repack;
mod used;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use serde::Serialize;

use super::{EngineError, EngineResult};
use crate::catalog::PackUsage;
use crate::format::index::IndexFile;
use crate::format::plan::Plan;
use crate::format::PlanId;
use crate::repo::{IndexId, ObjectKind, PackId, Repository};

#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Unused share of the repository's bytes to tolerate (0..1): partly
    /// used packs are repacked, emptiest first, until the rest is within it.
    pub max_unused: f64,
    /// Repack at most this many bytes of packs per run.
    pub max_repack_size: Option<u64>,
    /// Delete the packs of a plan only once it is this old.
    pub keep_delete: Duration,
    pub dry_run: bool,
    /// The catalog is this prune's own and is thrown away after it: index
    /// objects it deletes leave their rows there (a later sync of that
    /// catalog would remove them, as for any index object that vanished).
    pub catalog_discarded: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            max_unused: 0.05,
            max_repack_size: None,
            keep_delete: Duration::hours(24),
            dry_run: false,
            catalog_discarded: false,
        }
    }
}

/// A number of packs and their stored bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub packs: u64,
    pub bytes: u64,
}

impl Tally {
    /// One more pack of `bytes`.
    fn count(&mut self, bytes: u64) {
        self.packs += 1;
        self.bytes += bytes;
    }
}

impl std::ops::Add for Tally {
    type Output = Tally;
    fn add(self, o: Tally) -> Tally {
        Tally {
            packs: self.packs + o.packs,
            bytes: self.bytes + o.bytes,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    pub snapshots: u64,
    /// Blobs the snapshots use.
    pub used_blobs: u64,
    /// Packs left as they are.
    pub kept: Tally,
    /// Packs whose used blobs were copied into new packs (the old ones are
    /// planned for deletion).
    pub repacked: Tally,
    /// New packs the repacking wrote.
    pub written: Tally,
    /// Packs newly planned for deletion (deleted by a prune at least
    /// --keep-delete later).
    pub planned: Tally,
    /// Packs planned earlier and not old enough yet.
    pub waiting: Tally,
    /// Packs deleted (with --dry-run: that would be).
    pub deleted: Tally,
    /// Planned packs that a snapshot needs again: kept.
    pub taken_back: Tally,
    pub indexes_rewritten: u64,
    pub plans_done: u64,
    /// When the next prune can delete what is planned now.
    pub next_deletion: Option<DateTime<Utc>>,
    /// Object lock: what the prune extended, purged and left for later.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<Box<LockReport>>,
    /// How long the prune took.
    pub elapsed_seconds: f64,
}

/// What a prune of an object-locked repository did about retention.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LockReport {
    pub mode: String,
    pub retention_seconds: u64,
    /// Objects in use whose retention was moved to a full period from now.
    pub extended: u64,
    /// Hidden (deleted) versions whose retention had ended, removed now
    /// (`versions`, `bytes`), and those still retained, which a later prune
    /// removes (`deferred_versions`, `deferred_bytes`, `deferred_until`).
    #[serde(flatten)]
    pub purge: crate::store::Purged,
}

/// What one prune decides, before doing it.
#[derive(Default)]
struct Decision {
    /// Plans old enough: their packs are deleted or taken back now.
    expired: Vec<PlanId>,
    delete: Vec<PackId>,
    repack: Vec<PackUsage>,
    plan: Vec<PackId>,
}

pub async fn prune(repo: &Arc<Repository>, opts: &PruneOptions) -> EngineResult<PruneReport> {
    let clock = std::time::Instant::now();
    let mut report = phases(repo, opts).await?;
    report.elapsed_seconds = clock.elapsed().as_secs_f64();
    Ok(report)
}

async fn phases(repo: &Arc<Repository>, opts: &PruneOptions) -> EngineResult<PruneReport> {
    let mut marked = used::Marked::default();
    let now_ok = !opts.dry_run && opts.keep_delete <= Duration::zero();
    let mut first = round(repo, opts, &mut marked, Round::Whole).await?;
    if !now_ok || first.next_deletion.is_none() {
        if !opts.dry_run {
            first.object_lock = retain(repo, Utc::now()).await?;
        }
        return Ok(first);
    }
    // With --keep-delete 0s the plan just written is old enough at once:
    // carry it out now, as a second prune would, from fresh listings (the
    // snapshots written since the walk are walked too).
    let mut second = round(repo, opts, &mut marked, Round::CarryOut).await?;
    second.object_lock = retain(repo, Utc::now()).await?;
    Ok(PruneReport {
        kept: first.kept,
        repacked: first.repacked,
        written: first.written,
        planned: first.planned + second.planned,
        ..second
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Round {
    /// A whole prune.
    Whole,
    /// Only phase 2, for the plans old enough (the one a whole round just
    /// wrote, with --keep-delete 0s): nothing new is planned or repacked.
    CarryOut,
}

/// One prune: marks what the snapshots use, decides, then (unless a dry
/// run) repacks, writes the new plan and carries out the expired ones
/// (object lock retention is seen to once, after the last round).
async fn round(
    repo: &Arc<Repository>,
    opts: &PruneOptions,
    marked: &mut used::Marked,
    kind: Round,
) -> EngineResult<PruneReport> {
    repo.sync_catalog().await?;
    let now = Utc::now();
    let plans = readable_plans(repo).await?;
    let mut report = PruneReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    tracing::debug!("prune: catalog in step");
    used::mark(repo, marked).await?;
    tracing::debug!(
        snapshots = marked.snapshots(),
        blobs = marked.used,
        "prune: used blobs marked"
    );
    (report.snapshots, report.used_blobs) = (marked.snapshots(), marked.used);
    let stored: HashMap<PackId, u64> = repo.list_sizes(ObjectKind::Pack).await?;
    let usage = match kind {
        Round::Whole => Some(repo.pack_usage().await?),
        Round::CarryOut => None,
    };
    tracing::debug!(
        packs = stored.len(),
        "prune: packs listed and their usage known"
    );
    let d = decide(
        repo,
        opts,
        now,
        &plans,
        usage.as_deref(),
        &stored,
        &mut report,
    )
    .await?;
    tracing::debug!("prune: decided");
    if !opts.dry_run {
        carry_out(repo, opts, now, d, &mut report).await?;
    }
    Ok(report)
}

/// Does what `decide` decided: repacks, writes the new plan, then deletes
/// the packs of the expired plans (index objects first) and those plans.
async fn carry_out(
    repo: &Arc<Repository>,
    opts: &PruneOptions,
    now: DateTime<Utc>,
    d: Decision,
    report: &mut PruneReport,
) -> EngineResult<()> {
    let mut plan = d.plan;
    if !d.repack.is_empty() {
        let written = repack::repack(repo, &d.repack).await?;
        report.written = written;
        plan.extend(d.repack.iter().map(|u| u.pack));
        tracing::debug!(packs = d.repack.len(), "prune: repacked");
    }
    if !plan.is_empty() {
        plan.sort();
        plan.dedup();
        let host = crate::util::hostname();
        repo.save_plan(&Plan {
            time: now,
            host,
            packs: plan,
        })
        .await?;
        report.next_deletion = Some(now + opts.keep_delete);
    }
    if !d.delete.is_empty() {
        report.indexes_rewritten =
            drop_from_indexes(repo, &d.delete, opts.catalog_discarded).await?;
        tracing::debug!(
            indexes = report.indexes_rewritten,
            "prune: index objects rewritten"
        );
        let mut deletes = futures::stream::iter(&d.delete)
            .map(|p| repo.delete_pack(p))
            .buffer_unordered(PARALLEL_DELETES);
        while let Some(done) = deletes.next().await {
            done?;
        }
        tracing::debug!(packs = d.delete.len(), "prune: packs deleted");
    }
    for id in &d.expired {
        repo.delete_key(&id.key()).await?;
        report.plans_done += 1;
    }
    Ok(())
}

/// Object lock: extends the retention of every current object but the
/// packs a plan names (they are on their way out), then removes the hidden
/// versions whose retention has ended. Nothing still retained is asked to
/// go; it is reported as deferred.
async fn retain(repo: &Repository, now: DateTime<Utc>) -> EngineResult<Option<Box<LockReport>>> {
    let Some(lock) = repo.protection() else {
        return Ok(None);
    };
    let planned = repo.planned_packs().await?;
    let mut keys = Vec::new();
    for m in repo.store().list("").await? {
        let pack: Option<PackId> = crate::format::kind::id_from_key(&m.key)
            .filter(|_| m.key.starts_with(ObjectKind::Pack.prefix()));
        let known = ObjectKind::of_key(&m.key).is_some() || m.key == "config";
        if known && !pack.is_some_and(|p| planned.contains(&p)) {
            keys.push(m.key);
        }
    }
    let extended = repo.extend_retention(keys, now).await?;
    Ok(Some(Box::new(LockReport {
        mode: lock.mode.name().to_string(),
        retention_seconds: lock.retention_seconds,
        extended,
        purge: repo.purge_versions(now).await?,
    })))
}

/// The plans in the store; a damaged one stops the prune (it cannot tell
/// which packs writers avoid).
async fn readable_plans(repo: &Repository) -> EngineResult<Vec<(PlanId, Plan)>> {
    let mut out = Vec::new();
    for (id, p) in repo.list_plans().await? {
        match p {
            Ok(p) => out.push((id, p)),
            Err(e) => {
                return Err(EngineError::Usage(format!(
                    "deletion plan {} is damaged ({e}); prune stops: delete the object {} by hand to go on",
                    id.short(),
                    id.key()
                )))
            }
        }
    }
    Ok(out)
}

/// Sorts every pack into kept, repacked, planned, waiting, deleted or taken
/// back, and fills in the report's tallies (without `usage`, only the
/// planned packs).
async fn decide(
    repo: &Repository,
    opts: &PruneOptions,
    now: DateTime<Utc>,
    plans: &[(PlanId, Plan)],
    usage: Option<&[PackUsage]>,
    stored: &HashMap<PackId, u64>,
    r: &mut PruneReport,
) -> EngineResult<Decision> {
    let size_of = |p: &PackId| stored.get(p).copied().unwrap_or(0);
    let mut d = Decision::default();
    let mut planned: HashSet<PackId> = HashSet::new();
    let mut due: Vec<PackId> = Vec::new();
    for (id, plan) in plans {
        let old_enough = now - plan.time >= opts.keep_delete;
        planned.extend(plan.packs.iter().copied());
        if old_enough {
            d.expired.push(*id);
            due.extend(plan.packs.iter().copied());
        } else {
            let next = plan.time + opts.keep_delete;
            r.next_deletion = Some(r.next_deletion.map_or(next, |n| n.min(next)));
        }
    }
    due.sort();
    due.dedup();
    let needed: HashSet<PackId> = repo.still_needed(due.clone()).await?.into_iter().collect();
    for p in &due {
        match needed.contains(p) {
            true => r.taken_back.count(size_of(p)),
            false if stored.contains_key(p) => {
                r.deleted.count(size_of(p));
                d.delete.push(*p);
            }
            false => {}
        }
    }
    let due: HashSet<PackId> = due.into_iter().collect();
    for p in planned
        .iter()
        .filter(|p| !due.contains(p) && stored.contains_key(p))
    {
        r.waiting.count(size_of(p));
    }
    if let Some(usage) = usage {
        classify(opts, usage, stored, &planned, &mut d, r);
    }
    Ok(d)
}

/// The packs no plan names yet: unused or unindexed ones get planned, and
/// partly used ones repacked, the emptiest first, until the unused bytes
/// left in partly used packs are at most `max_unused` of what the
/// repository would then hold (restic's `--max-unused`: 5% repacks only as
/// much as brings the repository to 5% waste, not every pack over 5%),
/// within the size bound; the rest are kept.
fn classify(
    opts: &PruneOptions,
    usage: &[PackUsage],
    stored: &HashMap<PackId, u64>,
    planned: &HashSet<PackId>,
    d: &mut Decision,
    r: &mut PruneReport,
) {
    let mut indexed: HashSet<PackId> = HashSet::new();
    let mut partly: Vec<PackUsage> = Vec::new();
    let (mut used, mut unused) = (0u64, 0u64);
    for u in usage {
        indexed.insert(u.pack);
        if planned.contains(&u.pack) || !stored.contains_key(&u.pack) {
            continue;
        }
        if u.used_blobs == 0 {
            r.planned.count(u.size);
            d.plan.push(u.pack);
            continue;
        }
        used += u.used_bytes;
        if u.used_blobs < u.blobs {
            unused += u.size.saturating_sub(u.used_bytes);
            partly.push(*u);
        } else {
            r.kept.count(u.size);
        }
    }
    // Unused share p of the total after: unused ≤ used · p / (1 − p).
    let allowed = match opts.max_unused {
        p if p >= 1.0 => u64::MAX,
        p => (used as f64 * p / (1.0 - p)) as u64,
    };
    // The emptiest packs first: they free the most for the bytes copied.
    let share = |u: &PackUsage| u.size.saturating_sub(u.used_bytes) as f64 / u.size.max(1) as f64;
    partly.sort_by(|a, b| share(b).total_cmp(&share(a)).then(a.pack.cmp(&b.pack)));
    let mut budget = opts.max_repack_size.unwrap_or(u64::MAX);
    for u in partly {
        if unused > allowed && u.used_bytes <= budget {
            budget -= u.used_bytes;
            unused -= u.size.saturating_sub(u.used_bytes);
            r.repacked.count(u.size);
            d.repack.push(u);
        } else {
            r.kept.count(u.size);
        }
    }
    // Packs no index names: an interrupted backup's (or one still running:
    // the plan's delay covers it).
    for (p, size) in stored {
        if !indexed.contains(p) && !planned.contains(p) {
            r.planned.count(*size);
            d.plan.push(*p);
        }
    }
}

/// Writes, for every index object naming a pack of `gone`, one without
/// those packs, then deletes the old one. Returns how many were rewritten.
/// Index objects never change, so the catalog tells which of those it has
/// read name such a pack; only those, and any listed that it has not read
/// (written since it was brought in step), are loaded. With
/// `catalog_discarded`, the catalog keeps the rows of those it deletes.
async fn drop_from_indexes(
    repo: &Repository,
    gone: &[PackId],
    catalog_discarded: bool,
) -> EngineResult<u64> {
    let listed: HashMap<IndexId, u64> = repo.list_sizes(ObjectKind::Index).await?;
    let (read, naming) = repo.indexes_naming(gone.to_vec()).await?;
    let gone: HashSet<PackId> = gone.iter().copied().collect();
    let (gone, budget) = (&gone, &tokio::sync::Semaphore::new(REWRITE_BUDGET_KIB));
    let rewrites = listed
        .into_iter()
        .filter(|(id, _)| naming.contains(id) || !read.contains(id))
        .map(|(id, size)| async move {
            // An index object is held several times over while it is
            // rewritten (sealed, decoded, encoded again): large ones go
            // one at a time.
            let kib = (size / 1024).clamp(1, REWRITE_BUDGET_KIB as u64) as u32;
            let _held = budget.acquire_many(kib).await;
            rewrite_index(repo, id, gone, catalog_discarded).await
        });
    let mut rewrites = futures::stream::iter(rewrites).buffer_unordered(PARALLEL_REWRITES);
    let mut rewritten = 0;
    while let Some(done) = rewrites.next().await {
        rewritten += done? as u64;
    }
    Ok(rewritten)
}

/// Packs deleted at a time.
const PARALLEL_DELETES: usize = 8;

/// Index objects rewritten at a time, while their stored sizes add up to
/// at most [`REWRITE_BUDGET_KIB`].
const PARALLEL_REWRITES: usize = 4;
const REWRITE_BUDGET_KIB: usize = 8 << 10;

/// Rewrites index object `id` without the packs of `gone`, if it names
/// any: the new object is stored before the old one is deleted.
async fn rewrite_index(
    repo: &Repository,
    id: IndexId,
    gone: &HashSet<PackId>,
    catalog_discarded: bool,
) -> EngineResult<bool> {
    let idx = repo.load_index(&id).await?;
    if !idx.packs.iter().any(|p| gone.contains(&p.id)) {
        return Ok(false);
    }
    let rest = IndexFile {
        packs: idx
            .packs
            .into_iter()
            .filter(|p| !gone.contains(&p.id))
            .collect(),
    };
    if !rest.packs.is_empty() {
        repo.save_index(&rest).await?;
    }
    match catalog_discarded {
        true => repo.delete_key(&id.key()).await?,
        false => repo.delete_index(&id).await?,
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(n: u8, size: u64, used_bytes: u64) -> PackUsage {
        PackUsage {
            pack: PackId([n; 32]),
            size,
            blobs: 10,
            used_blobs: if used_bytes == 0 {
                0
            } else if used_bytes == size {
                10
            } else {
                5
            },
            used_bytes,
        }
    }

    fn run(
        max_unused: f64,
        max_repack: Option<u64>,
        packs: &[PackUsage],
    ) -> (Decision, PruneReport) {
        let opts = PruneOptions {
            max_unused,
            max_repack_size: max_repack,
            ..Default::default()
        };
        let mut stored: HashMap<PackId, u64> = packs.iter().map(|u| (u.pack, u.size)).collect();
        // A pack no index names.
        stored.insert(PackId([99; 32]), 7);
        let (mut d, mut r) = (Decision::default(), PruneReport::default());
        classify(&opts, packs, &stored, &HashSet::new(), &mut d, &mut r);
        (d, r)
    }

    #[test]
    fn repacks_the_emptiest_packs_until_the_waste_is_within_max_unused() {
        let packs = [
            usage(1, 1000, 1000), // full
            usage(2, 1000, 0),    // unused
            usage(3, 1000, 900),  // 10% unused
            usage(4, 1000, 500),  // 50% unused
            usage(5, 1000, 800),  // 20% unused
        ];
        // Used 3200; unused in partly used packs 800. At 10%: allowed
        // 3200 · 0.1 / 0.9 = 355, so pack 4 alone goes (300 left).
        assert_eq!(run(0.10, None, &packs).0.repack.len(), 1);
        // At 5%: allowed 168, so pack 4 (-500) then pack 5 (-200) go, and
        // 100 unused stays.
        let (d, r) = run(0.05, None, &packs);
        let repacked: Vec<u8> = d.repack.iter().map(|u| u.pack.0[0]).collect();
        assert_eq!(repacked, [4, 5]);
        assert_eq!(
            r.repacked,
            Tally {
                packs: 2,
                bytes: 2000
            }
        );
        assert_eq!(
            r.kept,
            Tally {
                packs: 2,
                bytes: 2000
            }
        );
        let mut plan: Vec<u8> = d.plan.iter().map(|p| p.0[0]).collect();
        plan.sort();
        assert_eq!(plan, [2, 99], "the unused pack and the unindexed one");
        // 0% repacks every partly used pack, 100% none.
        assert_eq!(run(0.0, None, &packs).0.repack.len(), 3);
        assert!(run(1.0, None, &packs).0.repack.is_empty());
        // Within --max-repack-size: pack 4 (500 used) fits 600, pack 5
        // (800) does not, pack 3 (900) neither.
        let (d, _) = run(0.0, Some(600), &packs);
        assert_eq!(d.repack.len(), 1);
        assert_eq!(d.repack[0].pack, PackId([4; 32]));
    }
}
