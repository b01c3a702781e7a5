//! `forget`: remove snapshots, by a retention policy applied per group of
//! snapshots (restic's semantics, see [`policy`]) or by name. Only the
//! snapshot objects go; `prune` frees the data no snapshot needs any more.

pub mod policy;
pub mod regions;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::select::{self, Filter, Found};
use super::{EngineError, EngineResult};
use crate::repo::{Repository, SnapshotId};
use policy::{Candidate, Policy};

/// Which snapshot fields make up a group (restic's `--group-by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GroupBy {
    pub host: bool,
    pub paths: bool,
    pub tags: bool,
}

impl Default for GroupBy {
    fn default() -> Self {
        GroupBy {
            host: true,
            paths: true,
            tags: false,
        }
    }
}

impl GroupBy {
    /// Parses `host,paths,tags` (any subset; empty for one group).
    pub fn parse(s: &str) -> EngineResult<GroupBy> {
        let mut g = GroupBy {
            host: false,
            paths: false,
            tags: false,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "host" => g.host = true,
                "paths" => g.paths = true,
                "tags" => g.tags = true,
                other => {
                    return Err(EngineError::Usage(format!(
                        "--group-by {other:?}: use host, paths and tags, comma-separated"
                    )))
                }
            }
        }
        Ok(g)
    }
}

/// What to forget.
#[derive(Debug, Clone, Default)]
pub struct ForgetOptions {
    pub policy: Policy,
    pub group_by: GroupBy,
    pub filter: Filter,
    /// Snapshots named on the command line (ids or prefixes); the policy is
    /// not used then.
    pub ids: Vec<String>,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Decided {
    pub id: SnapshotId,
    pub time: DateTime<Utc>,
    pub host: String,
    pub paths: Vec<String>,
    pub tags: Vec<String>,
    /// The rules that keep it (empty for removed snapshots).
    pub reasons: Vec<String>,
}

/// One group and what the policy decided for it.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub host: Option<String>,
    pub paths: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    /// Newest first.
    pub keep: Vec<Decided>,
    pub remove: Vec<Decided>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ForgetReport {
    pub dry_run: bool,
    pub groups: Vec<Group>,
    /// Snapshots removed (with --dry-run: that would be).
    pub removed: usize,
    pub kept: usize,
    /// The other regions the removals were carried to (`--config`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<regions::RegionRemoval>,
    /// Object lock: the removed snapshots are hidden at once, and their
    /// stored versions stay until this date, when a prune deletes them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deferred_until: Option<DateTime<Utc>>,
}

/// Decides and (unless dry-run) removes snapshots.
pub async fn forget(repo: &Arc<Repository>, opts: &ForgetOptions) -> EngineResult<ForgetReport> {
    let snaps = repo.snapshots()?;
    let groups = match opts.ids.is_empty() {
        true => decide(snaps, opts, Utc::now())?,
        false => named(snaps, &opts.ids)?,
    };
    let mut report = ForgetReport {
        dry_run: opts.dry_run,
        removed: groups.iter().map(|g| g.remove.len()).sum(),
        kept: groups.iter().map(|g| g.keep.len()).sum(),
        groups,
        regions: Vec::new(),
        deferred_until: None,
    };
    let now = Utc::now();
    for d in report.groups.iter().flat_map(|g| &g.remove) {
        let until = repo.retention(&d.id.key()).await?.map(|r| r.until);
        report.deferred_until = report.deferred_until.max(until.filter(|u| *u > now));
        if !opts.dry_run {
            repo.delete_snapshot(&d.id).await?;
        }
    }
    report
        .groups
        .retain(|g| !(g.keep.is_empty() && g.remove.is_empty()));
    Ok(report)
}

fn decided((id, s): &Found, reasons: Vec<String>) -> Decided {
    Decided {
        id: *id,
        time: s.time,
        host: s.host.clone(),
        paths: s.paths.clone(),
        tags: s.tags.clone(),
        reasons,
    }
}

/// The group key of a snapshot: the fields `by` names.
type Key = (Option<String>, Option<Vec<String>>, Option<Vec<String>>);

fn key_of(by: GroupBy, s: &crate::format::snapshot::Snapshot) -> Key {
    let sorted = |v: &Vec<String>| {
        let mut v = v.clone();
        v.sort();
        v
    };
    (
        by.host.then(|| s.host.clone()),
        by.paths.then(|| sorted(&s.paths)),
        by.tags.then(|| sorted(&s.tags)),
    )
}

/// Applies the policy to each group of the filtered snapshots.
pub fn decide(
    snaps: Vec<Found>,
    opts: &ForgetOptions,
    now: DateTime<Utc>,
) -> EngineResult<Vec<Group>> {
    if opts.policy.is_empty() {
        return Err(EngineError::Usage(
            "no policy given: name snapshots to remove, or give at least one --keep-* option"
                .into(),
        ));
    }
    let mut groups: BTreeMap<Key, Vec<Found>> = BTreeMap::new();
    for f in snaps.into_iter().filter(|(_, s)| opts.filter.matches(s)) {
        groups
            .entry(key_of(opts.group_by, &f.1))
            .or_default()
            .push(f);
    }
    let mut out = Vec::new();
    for ((host, paths, tags), mut members) in groups {
        // Newest first, ties by id, so that the decision is reproducible.
        members.sort_by_key(|f| std::cmp::Reverse((f.1.time, f.0)));
        let candidates: Vec<Candidate> = members
            .iter()
            .map(|(_, s)| Candidate {
                time: s.time,
                tags: &s.tags,
            })
            .collect();
        let decisions = policy::apply(&opts.policy, &candidates, now);
        let mut g = Group {
            host,
            paths,
            tags,
            keep: Vec::new(),
            remove: Vec::new(),
        };
        for (f, d) in members.iter().zip(decisions) {
            match d.keep {
                true => g.keep.push(decided(f, d.reasons)),
                false => g.remove.push(decided(f, Vec::new())),
            }
        }
        out.push(g);
    }
    Ok(out)
}

/// The snapshots named by id or prefix, as one group of removals.
fn named(snaps: Vec<Found>, ids: &[String]) -> EngineResult<Vec<Group>> {
    let mut remove: Vec<Decided> = Vec::new();
    for spec in ids {
        if spec == "latest" {
            return Err(EngineError::Usage(
                "forget removes snapshots named by id; `latest` is not accepted here".into(),
            ));
        }
        let found = select::select(snaps.clone(), spec, &Filter::default())?;
        if !remove.iter().any(|d| d.id == found.0) {
            remove.push(decided(&found, Vec::new()));
        }
    }
    Ok(vec![Group {
        host: None,
        paths: None,
        tags: None,
        keep: Vec::new(),
        remove,
    }])
}

impl ForgetReport {
    /// The ids of the snapshots removed (with --dry-run: that would be).
    pub fn removed_ids(&self) -> Vec<SnapshotId> {
        self.groups
            .iter()
            .flat_map(|g| g.remove.iter().map(|d| d.id))
            .collect()
    }
}
