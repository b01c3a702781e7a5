//! `ferry backup`: back up paths (and with `--k8s` the cluster's objects)
//! into a new snapshot.

use std::sync::Arc;

use anyhow::Result;
use serde::Serialize;

use super::args::{BackupArgs, Global};
use super::output::{emit, Bar, Render};
use super::{exit, open_repo};
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
    /// With `--fanout`: one report per other region, or the error.
    fanout: serde_json::Value,
}

impl Render for BackupReport {
    fn text(&self) -> String {
        let m = &self.snapshot.summary;
        format!(
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
}

async fn options(
    g: &Global,
    cfg: &FileConfig,
    a: &BackupArgs,
    repo: &crate::repo::Repository,
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
        ..Default::default()
    };
    if a.k8s {
        super::k8s::add_cluster(g, a, &mut opts, repo).await?;
    }
    Ok(opts)
}

pub async fn run(g: &Global, cfg: &FileConfig, a: BackupArgs) -> Result<i32> {
    let tee = match a.fanout {
        true => Some(super::replicate::tee(g).await?),
        false => None,
    };
    let repo = match &tee {
        Some(t) => super::open_repo_on(g, t.clone()).await?,
        None => open_repo(g).await?,
    };
    let opts = options(g, cfg, &a, &repo).await?;
    let progress = Arc::new(Progress::default());
    let bar = Bar::start(g, &progress, "backup");
    let out = backup(repo.clone(), &opts, progress).await;
    bar.finish();
    let out = out?;
    super::regions::record_primary_or_warn(g, &repo).await;
    let fanout = match &tee {
        None => serde_json::Value::Null,
        Some(t) => match super::replicate::fanout(g, &repo.config().id, t).await {
            Ok((regions, failed)) => {
                if failed > 0 {
                    eprintln!("warning: {failed} regions did not receive the backup; run `ferry replicate` once they are reachable");
                }
                serde_json::Value::Array(regions)
            }
            Err(e) => {
                eprintln!("warning: the backup was not copied to the other regions: {e:#}");
                serde_json::json!({ "error": format!("{e:#}") })
            }
        },
    };
    let complete = out.snapshot.is_complete();
    emit(
        g,
        &BackupReport {
            id: out.id,
            complete,
            snapshot: out.snapshot,
            fanout,
        },
    );
    Ok(if complete { exit::OK } else { exit::INCOMPLETE })
}
