//! `ferry repair --region R`: check a region and replace its damaged objects
//! from the healthy ones.

use anyhow::{Context, Result};

use super::args::Global;
use super::output::print_json;
use super::regions::{find, open_catalog};
use super::{exit, open_repo, Reported};
use crate::engine::regions::{ordered, region_store};

pub async fn run(g: &Global) -> Result<i32> {
    let name = g
        .region
        .as_deref()
        .context("name the region to repair with --region")?;
    let target = find(&g.regions, name)?;
    let repo = open_repo(g).await?;
    let check = crate::engine::check::check(&repo, true).await?;
    let keys = crate::engine::repair::damaged_keys(&check);
    let mut sources = Vec::new();
    for r in ordered(&g.regions)
        .into_iter()
        .filter(|r| r.name != target.name)
    {
        sources.push((r.name.clone(), region_store(r)?));
    }
    let report = crate::engine::repair::repair(repo.store(), &keys, &sources).await;
    let listed = repo.store().list("").await?;
    open_catalog(g, &repo.config().id)?.set_region_objects(&target.name, &listed)?;
    if g.json {
        print_json(
            &serde_json::json!({ "region": target.name, "damaged": keys.len(), "report": report }),
        );
    } else {
        for (k, from) in &report.repaired {
            println!("repaired {k} from {from}");
        }
        for (k, e) in &report.unrepaired {
            eprintln!("not repaired: {k}: {e}");
        }
        println!(
            "{}: {} damaged objects, {} repaired",
            target.name,
            keys.len(),
            report.repaired.len()
        );
    }
    if !report.unrepaired.is_empty() {
        return Err(Reported(format!(
            "{} objects could not be repaired; see above",
            report.unrepaired.len()
        ))
        .into());
    }
    Ok(exit::OK)
}
