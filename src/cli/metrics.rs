//! The metrics of a command run: each report adds its samples (through
//! `Render::metrics`, or directly for commands that print as they go), and
//! once the command ends they are written to `--metrics-file` and/or pushed
//! to `--metrics-push`, with the command's outcome. Names are listed in
//! docs/metrics.md.

use std::sync::Mutex;

use super::args::Global;
use super::drill::DrillOutput;
use crate::engine::regions::{RegionStatus, RoundReport};
use crate::format::snapshot::Snapshot;
use crate::metrics::Registry;

static PENDING: Mutex<Option<Registry>> = Mutex::new(None);

/// Adds samples to this run's metrics.
pub(crate) fn add(f: impl FnOnce(&mut Registry)) {
    let mut p = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    f(p.get_or_insert_with(Registry::default));
}

/// Labels every sample with the repository id (and the region, unless a
/// sample names its own).
pub(crate) fn set_repository(id: &str, region: Option<&str>) {
    add(|m| {
        m.set_default("repository", id);
        if let Some(r) = region {
            m.set_default("region", r);
        }
    });
}

/// Writes and pushes this run's metrics, with `ferry_command_*` for the
/// outcome. A failure to deliver them is reported and fails the run.
pub(crate) async fn flush(
    g: &Global,
    command: &str,
    code: i32,
    seconds: f64,
) -> Result<(), String> {
    if g.metrics_file.is_none() && g.metrics_push.is_none() {
        return Ok(());
    }
    let mut m = PENDING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_default();
    if !m.has_default("region") {
        let home = g
            .region
            .clone()
            .or_else(|| crate::engine::regions::primary(&g.regions).map(|r| r.name.clone()));
        m.set_default("region", home.as_deref().unwrap_or("default"));
    }
    if !m.has_default("repository") {
        m.set_default("repository", "unknown");
    }
    let l = [("command", command)];
    m.gauge(
        "ferry_command_success",
        "1 when the command succeeded (exit code 0), else 0.",
        &l,
        f64::from(code == 0),
    );
    m.gauge(
        "ferry_command_exit_code",
        "The command's exit code.",
        &l,
        code as f64,
    );
    m.gauge(
        "ferry_command_duration_seconds",
        "How long the command ran.",
        &l,
        seconds,
    );
    m.gauge(
        "ferry_command_last_run_timestamp_seconds",
        "When the command ended (Unix time).",
        &l,
        now(),
    );
    let text = m.render();
    if let Some(path) = &g.metrics_file {
        crate::metrics::write_file(path, &text).map_err(|e| e.to_string())?;
    }
    if let Some(url) = &g.metrics_push {
        crate::metrics::push(url, command, &m)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn now() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64 / 1000.0
}

/// `ferry_drill_*`, per region.
pub(crate) fn drill(out: &DrillOutput, m: &mut Registry) {
    for r in &out.regions {
        let l = [("region", r.region.as_str())];
        m.gauge(
            "ferry_drill_success",
            "1 when the drill verified and met every given target.",
            &l,
            f64::from(r.success),
        );
        m.gauge(
            "ferry_drill_verified",
            "1 when every restored entry matched the snapshot.",
            &l,
            f64::from(r.verified),
        );
        if let Some(v) = r.rto_seconds {
            m.gauge(
                "ferry_drill_rto_seconds",
                "Start of the restore to verified.",
                &l,
                v,
            );
        }
        if let Some(v) = r.rpo_seconds {
            m.gauge(
                "ferry_drill_rpo_seconds",
                "Age of the drilled snapshot when the drill started.",
                &l,
                v,
            );
        }
        let verified = r.verification.as_ref().map_or(0, |v| v.verified_bytes);
        m.gauge(
            "ferry_drill_verified_bytes",
            "File bytes read back and matched blob by blob.",
            &l,
            verified as f64,
        );
        m.gauge(
            "ferry_drill_restored_bytes",
            "File bytes restored into the sandbox.",
            &l,
            r.bytes as f64,
        );
        m.gauge(
            "ferry_drill_restored_files",
            "Files restored into the sandbox.",
            &l,
            r.files as f64,
        );
        m.gauge(
            "ferry_drill_timestamp_seconds",
            "When the drill started (Unix time).",
            &l,
            r.started.timestamp() as f64,
        );
    }
}

/// `ferry_backup_*`.
pub(crate) fn backup(s: &Snapshot, m: &mut Registry) {
    let x = &s.summary;
    m.gauge(
        "ferry_backup_duration_seconds",
        "How long the backup took.",
        &[],
        x.elapsed_seconds,
    );
    m.counter(
        "ferry_backup_files_total",
        "Files in the snapshot.",
        &[],
        x.total_files as f64,
    );
    m.gauge(
        "ferry_backup_files_new",
        "Files new since the parent snapshot.",
        &[],
        x.files_new as f64,
    );
    m.counter(
        "ferry_backup_bytes_total",
        "Bytes of the files in the snapshot.",
        &[],
        x.total_bytes as f64,
    );
    m.gauge(
        "ferry_backup_bytes_new",
        "Plaintext bytes new to the repository.",
        &[],
        x.added_bytes as f64,
    );
    m.gauge(
        "ferry_backup_stored_bytes",
        "Bytes written to the store (compressed, sealed).",
        &[],
        x.stored_bytes as f64,
    );
    m.gauge(
        "ferry_backup_skipped_entries",
        "Source entries that could not be read.",
        &[],
        s.skipped.len() as f64,
    );
    m.gauge(
        "ferry_backup_last_success_timestamp_seconds",
        "Time of the snapshot this backup made (Unix time).",
        &[],
        s.time.timestamp() as f64,
    );
}

/// `ferry_replicate_*`, per destination region, from replicate's report.
pub(crate) fn replicate(report: &RoundReport, seconds: f64) {
    add(|m| {
        for r in &report.regions {
            let l = [("region", r.region.as_str())];
            let (objects, bytes) = r
                .report
                .as_ref()
                .map_or((0, 0), |rep| (rep.objects(), rep.bytes()));
            m.counter(
                "ferry_replicate_objects_total",
                "Objects copied to the region by this run.",
                &l,
                objects as f64,
            );
            m.counter(
                "ferry_replicate_bytes_total",
                "Bytes copied to the region by this run.",
                &l,
                bytes as f64,
            );
            m.gauge(
                "ferry_replicate_success",
                "1 when the region holds everything the primary held.",
                &l,
                f64::from(r.ok),
            );
            m.gauge(
                "ferry_replicate_duration_seconds",
                "How long the replication round took.",
                &l,
                seconds,
            );
        }
    });
}

/// `ferry_region_*` and `ferry_repository_*`, from `status`.
pub(crate) fn status(
    status: &[RegionStatus],
    snapshots: usize,
    drills: &super::status::LastDrills,
) {
    add(|m| {
        for s in status {
            let l = [("region", s.name.as_str())];
            m.gauge(
                "ferry_region_up",
                "1 when the region answers and holds this repository.",
                &l,
                f64::from(s.reachable),
            );
            if let Some(rpo) = s.rpo_seconds {
                m.gauge(
                    "ferry_region_rpo_seconds",
                    "Age of the region's newest snapshot.",
                    &l,
                    rpo as f64,
                );
            }
            m.gauge(
                "ferry_region_behind_objects",
                "Objects the primary holds and the region lacks.",
                &l,
                s.behind.objects as f64,
            );
            m.gauge(
                "ferry_region_behind_bytes",
                "Bytes the primary holds and the region lacks.",
                &l,
                s.behind.bytes as f64,
            );
            m.gauge(
                "ferry_region_held_bytes",
                "Bytes the region is recorded as holding.",
                &l,
                s.held.bytes as f64,
            );
            if let Some(d) = drills.get(&s.name) {
                m.gauge(
                    "ferry_region_last_drill_timestamp_seconds",
                    "When the region's last drill started.",
                    &l,
                    d.time.timestamp() as f64,
                );
                m.gauge(
                    "ferry_region_last_drill_success",
                    "1 when the region's last drill succeeded.",
                    &l,
                    f64::from(d.success),
                );
            }
            if s.primary {
                let l = [("region", s.name.as_str())];
                m.gauge(
                    "ferry_repository_size_bytes",
                    "Bytes the primary region holds.",
                    &l,
                    s.held.bytes as f64,
                );
                m.gauge(
                    "ferry_repository_snapshots",
                    "Snapshots in the repository.",
                    &l,
                    snapshots as f64,
                );
            }
        }
    });
}

/// `ferry_forget_*`: the primary's (or the repository's) decision, and
/// the removals carried to each other region.
pub(crate) fn forget(f: &crate::engine::forget::ForgetReport, seconds: f64, m: &mut Registry) {
    m.gauge(
        "ferry_forget_snapshots_kept",
        "Snapshots the policy kept.",
        &[],
        f.kept as f64,
    );
    m.gauge(
        "ferry_forget_snapshots_removed",
        "Snapshots removed (with --dry-run: that would be).",
        &[],
        f.removed as f64,
    );
    m.gauge(
        "ferry_forget_dry_run",
        "1 when nothing was removed because of --dry-run.",
        &[],
        f64::from(f.dry_run),
    );
    m.gauge(
        "ferry_forget_duration_seconds",
        "How long the forget took.",
        &[],
        seconds,
    );
    if !f.dry_run {
        m.gauge(
            "ferry_forget_last_success_timestamp_seconds",
            "When snapshots were last forgotten by the policy (Unix time).",
            &[],
            now(),
        );
    }
    for r in &f.regions {
        let l = [("region", r.region.as_str())];
        m.gauge(
            "ferry_forget_snapshots_removed",
            "Snapshots removed (with --dry-run: that would be).",
            &l,
            r.removed as f64,
        );
        m.gauge(
            "ferry_forget_region_success",
            "1 when the removals reached the region.",
            &l,
            f64::from(r.error.is_none()),
        );
    }
}

/// `ferry_prune_*`, per region pruned (or the repository's region).
pub(crate) fn prune(outcome: &super::prune::PruneOutcome, m: &mut Registry) {
    use super::prune::PruneOutcome;
    match outcome {
        PruneOutcome::One(r) => prune_region(r, &[], m),
        PruneOutcome::Regions { regions } => {
            for r in regions {
                let l = [("region", r.region.as_str())];
                m.gauge(
                    "ferry_prune_success",
                    "1 when the region was pruned.",
                    &l,
                    f64::from(r.report.is_some()),
                );
                if let Some(rep) = &r.report {
                    prune_region(rep, &l, m);
                }
            }
        }
    }
}

fn prune_region(r: &crate::engine::prune::PruneReport, l: &[(&str, &str)], m: &mut Registry) {
    let tallies = [
        ("kept", "left as they are", &r.kept),
        (
            "repacked",
            "whose used blobs were copied into new packs",
            &r.repacked,
        ),
        ("written", "written by repacking", &r.written),
        ("planned", "newly planned for deletion", &r.planned),
        ("waiting", "planned earlier, not due yet", &r.waiting),
        (
            "deleted",
            "deleted (with --dry-run: that would be)",
            &r.deleted,
        ),
        (
            "taken_back",
            "planned, but needed again: kept",
            &r.taken_back,
        ),
    ];
    for (what, help, t) in tallies {
        m.gauge(
            &format!("ferry_prune_packs_{what}"),
            &format!("Packs {help}."),
            l,
            t.packs as f64,
        );
        m.gauge(
            &format!("ferry_prune_bytes_{what}"),
            &format!("Bytes of the packs {help}."),
            l,
            t.bytes as f64,
        );
    }
    m.gauge(
        "ferry_prune_snapshots",
        "Snapshots whose data the prune kept.",
        l,
        r.snapshots as f64,
    );
    m.gauge(
        "ferry_prune_dry_run",
        "1 when nothing was changed because of --dry-run.",
        l,
        f64::from(r.dry_run),
    );
    m.gauge(
        "ferry_prune_duration_seconds",
        "How long the prune took.",
        l,
        r.elapsed_seconds,
    );
    if let Some(t) = r.next_deletion {
        m.gauge(
            "ferry_prune_next_deletion_timestamp_seconds",
            "When a prune can delete the packs planned now (Unix time).",
            l,
            t.timestamp() as f64,
        );
    }
    if !r.dry_run {
        m.gauge(
            "ferry_prune_last_success_timestamp_seconds",
            "When the prune finished (Unix time).",
            l,
            now(),
        );
    }
}
