//! `ferry status`: per region, whether it answers, what it holds, its newest
//! snapshot and RPO, and how far it is behind the primary.

use anyhow::{bail, Result};
use clap::Args;

use super::args::Global;
use super::exit;
use super::output::print_json;
use super::regions::{need_regions, open_catalog};
use crate::engine::regions::probe;
use crate::util::human_bytes;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Exit non-zero when a region's RPO (age of its newest snapshot) is over this, e.g. 1h.
    #[arg(long)]
    pub rpo_target: Option<String>,
}

/// Each region's last drill, by region name.
pub(crate) type LastDrills = std::collections::BTreeMap<String, crate::format::drill::DrillRecord>;

/// The last drill of each region, read from the repository (a warning,
/// and none, when it cannot be opened).
async fn last_drills(g: &Global) -> LastDrills {
    let read = async {
        let (repo, _) = super::regions::open_read(g).await?;
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

pub async fn run(g: &Global, a: StatusArgs) -> Result<i32> {
    let target = a
        .rpo_target
        .as_deref()
        .map(crate::engine::drill::parse_duration)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--rpo-target: {e}"))?;
    need_regions(g)?;
    let probes = futures::future::join_all(g.regions.iter().map(probe)).await;
    let Some(id) = probes.iter().find_map(|p| p.as_ref().ok()).cloned() else {
        let errors: Vec<String> = g
            .regions
            .iter()
            .zip(&probes)
            .map(|(r, p)| {
                format!(
                    "{}: {}",
                    r.name,
                    p.as_ref().err().cloned().unwrap_or_default()
                )
            })
            .collect();
        bail!("no region is reachable: {}", errors.join("; "));
    };
    let cat = open_catalog(g, &id)?;
    let status = crate::engine::regions::status(&cat, &g.regions, &probes, &id)?;
    let drills = last_drills(g).await;
    super::metrics::set_repository(&id, None);
    super::metrics::status(&status, cat.snapshots()?.len(), &drills);
    let over = over_target(&status, target);
    let code = if over.is_empty() {
        exit::OK
    } else {
        exit::TARGET_MISSED
    };
    for o in &over {
        eprintln!("error: {o}");
    }
    if g.json {
        print_json(
            &serde_json::json!({ "repository": id, "regions": status, "last_drills": drills, "over_rpo_target": over }),
        );
        return Ok(code);
    }
    for s in &status {
        let rpo = s
            .rpo_seconds
            .map(|t| format!("{t}s"))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<16} {:<11} {:>8} objects {:>10}  behind {:>6} objects {:>10}  newest {} (RPO {rpo}){}",
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
            println!("  {e}");
        }
        println!("{}", drill_text(drills.get(&s.name)));
    }
    Ok(code)
}
