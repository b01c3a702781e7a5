//! `ferry restore`: restore a snapshot into a directory, or with `--k8s`
//! its objects into a cluster.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::args::{Global, RestoreArgs};
use super::output::{emit, Bar, Render};
use super::Reported;
use crate::engine::progress::Progress;
use crate::engine::restore::{restore, RestoreOptions, RestoreReport};
use crate::engine::select::{parse_time, select, select_at};
use crate::format::SnapshotId;
use crate::util::human_bytes;

#[derive(Serialize)]
struct RestoreOutput {
    snapshot: SnapshotId,
    time: DateTime<Utc>,
    region: Option<String>,
    /// Regions that were down and not used.
    down: Vec<crate::engine::regions::DownRegion>,
    /// Moves of the reads to the next region when one failed part-way.
    failovers: Vec<crate::store::failover::Switch>,
    report: RestoreReport,
}

impl Render for RestoreOutput {
    fn text(&self) -> String {
        let r = &self.report;
        let mut out = String::new();
        if r.dry_run {
            for p in &r.planned {
                out += &format!("would restore {p}\n");
            }
        }
        let verb = if r.dry_run {
            "would restore"
        } else {
            "restored"
        };
        out + &format!(
            "{verb} snapshot {} of {}: {} files, {} dirs, {} other entries, {}\n",
            self.snapshot.short(),
            crate::util::rfc3339(&self.time),
            r.files,
            r.dirs,
            r.others,
            human_bytes(r.bytes)
        )
    }

    fn warnings(&self) -> Vec<String> {
        let r = &self.report;
        let warned = r
            .warnings
            .iter()
            .map(|w| format!("warning: {}: {}", w.path, w.error));
        let moved = self.failovers.iter().map(|s| {
            format!(
                "warning: region {} failed part-way ({}); the restore went on from region {}",
                s.from, s.error, s.to
            )
        });
        let failed = r
            .failed
            .iter()
            .map(|f| format!("not restored: {}: {}", f.path, f.error));
        moved.chain(warned).chain(failed).collect()
    }
}

pub async fn run(g: &Global, a: RestoreArgs) -> Result<i32> {
    let read = super::regions::open_read(g).await?;
    let repo = read.repo.clone();
    let f = super::filter(&a.filter);
    let (id, snap) = match (&a.at, &a.snapshot) {
        (Some(t), _) => select_at(repo.snapshots()?, parse_time(t)?, &f)?,
        (None, Some(s)) => select(repo.snapshots()?, s, &f)?,
        (None, None) => bail!("name a snapshot (`latest` or an id) or a time with --at"),
    };
    if a.k8s {
        return super::k8s::restore(g, &repo, id, &snap, a).await;
    }
    let opts = RestoreOptions {
        target: a.target.context("--target is required to restore files")?,
        includes: a.includes,
        excludes: a.excludes,
        dry_run: a.dry_run,
        overwrite: a.overwrite,
        max_entries: Some(snap.summary.entry_limit()),
    };
    let progress = Arc::new(Progress::default());
    let bar = Bar::start(g, &progress, "restore");
    let report = restore(&repo, snap.tree, &opts, progress).await;
    bar.finish();
    let out = RestoreOutput {
        snapshot: id,
        time: snap.time,
        region: read.region,
        down: read.down,
        failovers: read.failover.map(|f| f.switches()).unwrap_or_default(),
        report: report?,
    };
    emit(g, &out);
    if !out.report.failed.is_empty() {
        let n = out.report.failed.len();
        let msg = format!("{n} entries could not be restored (listed above); the others were");
        return Err(Reported(msg).into());
    }
    Ok(super::exit::OK)
}
