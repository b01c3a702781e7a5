//! `ferry status`: per region, whether it answers, what it holds, its newest
//! snapshot and RPO, how far it is behind the primary, and its last drill.

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use super::args::Global;
use super::exit;
use super::output::{emit, Render};
use super::regions::{lift, regions};
use crate::engine::regions::StatusReport;
use crate::util::human_bytes;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Exit non-zero when a region's RPO (age of its newest snapshot) is over this, e.g. 1h.
    #[arg(long)]
    pub rpo_target: Option<String>,
}

/// Each region's last drill, by region name.
pub(crate) type LastDrills = std::collections::BTreeMap<String, crate::format::drill::DrillRecord>;

/// The status of every region, with their last drills and the regions
/// over `--rpo-target`.
#[derive(Serialize)]
struct StatusOutput {
    #[serde(flatten)]
    report: StatusReport,
    last_drills: LastDrills,
    over_rpo_target: Vec<String>,
}

/// The last drill of each region, read from the repository opened once,
/// over the regions `status` already probed (a warning, and none, when it
/// cannot be opened).
async fn last_drills(g: &Global, regions: &crate::engine::regions::Regions) -> LastDrills {
    let read = async {
        let repo = match g.repo_from_regions {
            true => {
                let pw = super::password::password(g, false)?;
                regions.open_read(&pw).await.map_err(lift)?.repo
            }
            false => super::open_repo_on(g, super::open_store(g)?).await?,
        };
        Ok::<_, anyhow::Error>(crate::engine::drill::last_drills(&repo).await?)
    };
    read.await.unwrap_or_else(|e| {
        tracing::warn!(error = %format!("{e:#}"), "drill records not read");
        Default::default()
    })
}

/// Regions whose RPO is over the target (or unknown), as messages.
fn over_target(
    status: &[crate::engine::regions::RegionStatus],
    target: Option<std::time::Duration>,
) -> Vec<String> {
    let Some(t) = target else { return Vec::new() };
    status
        .iter()
        .filter(|s| s.rpo_seconds.is_none_or(|r| r as f64 > t.as_secs_f64()))
        .map(|s| match s.rpo_seconds {
            Some(r) => format!(
                "{}: RPO {r}s is over the target of {}s",
                s.name,
                t.as_secs()
            ),
            None => format!("{}: no snapshot, so no RPO", s.name),
        })
        .collect()
}

fn drill_text(d: Option<&crate::format::drill::DrillRecord>) -> String {
    match d {
        None => "  last drill: never".into(),
        Some(d) => format!(
            "  last drill: {} RTO {:.1}s {}",
            crate::util::rfc3339(&d.time),
            d.rto_seconds,
            if d.success { "ok" } else { "FAILED" }
        ),
    }
}

impl Render for StatusOutput {
    fn text(&self) -> String {
        let mut out = String::new();
        for s in &self.report.regions {
            let rpo = s
                .rpo_seconds
                .map(|t| format!("{t}s"))
                .unwrap_or_else(|| "-".into());
            out += &format!(
                "{:<16} {:<11} {:>8} objects {:>10}  behind {:>6} objects {:>10}  newest {} (RPO {rpo}){}\n",
                s.name,
                if s.reachable { "reachable" } else { "UNREACHABLE" },
                s.held.objects,
                human_bytes(s.held.bytes),
                s.behind.objects,
                human_bytes(s.behind.bytes),
                s.newest_snapshot.as_deref().map(|i| &i[..8]).unwrap_or("-"),
                if s.primary { " [primary]" } else { "" }
            );
            if let Some(e) = &s.error {
                out += &format!("  {e}\n");
            }
            out += &match &s.protection {
                Some(l) => format!(
                    "  protection: object lock {}, retention {}\n",
                    l.mode.name(),
                    crate::util::human_seconds(l.retention_seconds)
                ),
                None if s.reachable => "  protection: none\n".to_string(),
                None => String::new(),
            };
            out += &drill_text(self.last_drills.get(&s.name));
            out.push('\n');
        }
        out
    }
}

pub async fn run(g: &Global, a: StatusArgs) -> Result<i32> {
    let target = a
        .rpo_target
        .as_deref()
        .map(crate::engine::drill::parse_duration)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--rpo-target: {e}"))?;
    let regions = regions(g)?;
    let report = crate::engine::regions::status(&regions)
        .await
        .map_err(lift)?;
    let drills = last_drills(g, &regions).await;
    let snapshots = regions
        .catalog(&report.repository)
        .map_err(lift)?
        .snapshots()?
        .len();
    super::metrics::set_repository(&report.repository, None);
    super::metrics::status(&report.regions, snapshots, &drills);
    let over = over_target(&report.regions, target);
    for o in &over {
        eprintln!("error: {o}");
    }
    let code = match over.is_empty() {
        true => exit::OK,
        false => exit::TARGET_MISSED,
    };
    emit(
        g,
        &StatusOutput {
            report,
            last_drills: drills,
            over_rpo_target: over,
        },
    );
    Ok(code)
}
