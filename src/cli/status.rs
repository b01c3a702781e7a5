//! `ferry status`: per region, whether it answers, what it holds, its newest
//! snapshot and RPO, and how far it is behind the primary.

use anyhow::{bail, Result};

use super::args::Global;
use super::exit;
use super::output::print_json;
use super::regions::{need_regions, open_catalog};
use crate::engine::regions::probe;
use crate::util::human_bytes;

pub async fn run(g: &Global) -> Result<i32> {
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
    if g.json {
        print_json(&serde_json::json!({ "repository": id, "regions": status }));
        return Ok(exit::OK);
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
    }
    Ok(exit::OK)
}
