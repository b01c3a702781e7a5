//! `ferry backup`: back up paths (and with `--k8s` the cluster's objects)
//! into a new snapshot.

use std::sync::Arc;

use anyhow::Result;
use serde::Serialize;

use super::args::{BackupArgs, Global};
use super::exit;
use super::output::{emit, Bar, Render};
use crate::config::FileConfig;
use crate::engine::backup::{backup, BackupOptions, ParentChoice};
use crate::engine::progress::Progress;
use crate::engine::select::{parse_time, select, Filter};
use crate::format::snapshot::Snapshot;
use crate::format::SnapshotId;
use crate::util::{human_bytes, parse_size};

#[derive(Serialize)]
struct BackupReport {
    id: SnapshotId,
    complete: bool,
    snapshot: Snapshot,
    /// The region written to, when the regions of a config file are used.
    region: Option<String>,
    /// Regions that were down and not used.
    down: Vec<crate::engine::regions::DownRegion>,
    /// With `--fanout`: one report per other region, or the error.
    fanout: serde_json::Value,
}

impl Render for BackupReport {
    fn text(&self) -> String {
        let m = &self.snapshot.summary;
        let region = match &self.region {
            Some(r) => format!("written to region {r}\n"),
            None => String::new(),
        };
        region
            + &format!(
            "snapshot {} saved\nfiles: {} new, {} changed, {} unchanged; {} dirs; {} in total\n\
             read {}, added {} ({} stored) in {:.2}s\n",
            self.id.short(),
            m.files_new,
            m.files_changed,
            m.files_unchanged,
            m.dirs,
            human_bytes(m.total_bytes),
            human_bytes(m.read_bytes),
            human_bytes(m.added_bytes),
            human_bytes(m.stored_bytes),
            m.elapsed_seconds
        )
    }

    fn warnings(&self) -> Vec<String> {
        let skipped = &self.snapshot.skipped;
        if skipped.is_empty() {
            return Vec::new();
        }
        let mut out = vec![format!(
            "warning: {} entries could not be backed up completely:",
            skipped.len()
        )];
        out.extend(skipped.iter().map(|s| format!("  {}: {}", s.path, s.error)));
        out
    }

    fn metrics(&self, m: &mut crate::metrics::Registry) {
        super::metrics::backup(&self.snapshot, m);
    }
}

async fn options(
    g: &Global,
    cfg: &FileConfig,
    a: &BackupArgs,
    repo: &crate::repo::Repository,
    region: Option<String>,
) -> Result<BackupOptions> {
    let parent = match (&a.parent, a.force) {
        (_, true) => ParentChoice::None,
        (Some(p), _) => ParentChoice::Id(select(repo.snapshots()?, p, &Filter::default())?.0),
        (None, _) => ParentChoice::Auto,
    };
    let mut excludes = cfg.backup.exclude.clone();
    excludes.extend(a.excludes.iter().cloned());
    let tags = match a.tags.is_empty() {
        true => cfg.backup.tags.clone(),
        false => a.tags.clone(),
    };
    let memory_limit = a
        .memory_limit
        .as_deref()
        .or(cfg.backup.memory_limit.as_deref())
        .unwrap_or("512MiB");
    let mut opts = BackupOptions {
        paths: a.paths.clone(),
        tags,
        host: a.host.clone().or(cfg.backup.host.clone()),
        parent,
        excludes,
        memory_limit: parse_size(memory_limit).map_err(anyhow::Error::msg)?,
        time: a.time.as_deref().map(parse_time).transpose()?,
        // Totals for the progress bar: a second walk, only when shown.
        scan: Bar::visible(g),
        region,
        ..Default::default()
    };
    if a.k8s {
        super::k8s::add_cluster(g, a, &mut opts, repo).await?;
    }
    Ok(opts)
}

pub async fn run(g: &Global, cfg: &FileConfig, a: BackupArgs) -> Result<i32> {
    let w = super::regions::open_write(g, a.fanout).await?;
    let repo = w.repo.clone();
    let opts = options(g, cfg, &a, &repo, w.region.clone()).await?;
    let progress = Arc::new(Progress::default());
    let bar = Bar::start(g, &progress, "backup");
    let out = backup(repo.clone(), &opts, progress).await;
    bar.finish();
    let out = out?;
    let fanout = after(&w).await;
    let complete = out.snapshot.is_complete();
    emit(
        g,
        &BackupReport {
            id: out.id,
            complete,
            snapshot: out.snapshot,
            region: w.region,
            down: w.down,
            fanout,
        },
    );
    Ok(if complete { exit::OK } else { exit::INCOMPLETE })
}

/// After the backup: the catalog records what the region written to holds,
/// and with `--fanout` the other regions receive what they still lack.
async fn after(w: &super::regions::Write) -> serde_json::Value {
    let (Some(regions), Some(name)) = (&w.regions, &w.region) else {
        return serde_json::Value::Null;
    };
    let id = &w.repo.config().id;
    regions.record_or_warn(id, name).await;
    let (Some(tee), Ok(home)) = (&w.tee, regions.find(name)) else {
        return serde_json::Value::Null;
    };
    match regions.after_fanout(home, tee).await {
        Ok(round) => {
            for r in &round.regions {
                if let Some(why) = r.streamed.as_ref().and_then(|t| t.dropped.as_ref()) {
                    eprintln!("warning: {} stopped receiving the backup's data ({why}); it was caught up afterwards only if its report says ok", r.region);
                }
            }
            if round.failed() > 0 {
                eprintln!("warning: {} regions did not receive the backup; run `ferry replicate` once they are reachable", round.failed());
            }
            serde_json::to_value(&round.regions).unwrap_or_default()
        }
        Err(e) => {
            eprintln!("warning: the backup was not copied to the other regions: {e}");
            serde_json::json!({ "error": e.to_string() })
        }
    }
}
