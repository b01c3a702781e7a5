//! `ferry repair --region R`: check a region and replace its damaged objects
//! from the healthy ones.

use anyhow::{Context, Result};

use super::args::Global;
use super::output::{emit, Render};
use super::regions::{lift, regions};
use super::{exit, open_repo, Reported};
use crate::engine::regions::RegionRepairReport;

impl Render for RegionRepairReport {
    fn text(&self) -> String {
        let mut out = String::new();
        for (k, from) in &self.report.repaired {
            out += &format!("repaired {k} from {from}\n");
        }
        out + &format!(
            "{}: {} damaged objects, {} repaired\n",
            self.region,
            self.damaged,
            self.report.repaired.len()
        )
    }

    fn warnings(&self) -> Vec<String> {
        let down = self.down.iter().map(|d| {
            format!(
                "region {} is down, not asked for copies: {}",
                d.region, d.error
            )
        });
        let failed = self.report.unrepaired.iter();
        down.chain(failed.map(|(k, e)| format!("not repaired: {k}: {e}")))
            .collect()
    }
}

pub async fn run(g: &Global) -> Result<i32> {
    let name = g
        .region
        .as_deref()
        .context("name the region to repair with --region")?;
    let repo = open_repo(g).await?;
    let report = regions(g)?.repair(name, &repo).await.map_err(lift)?;
    emit(g, &report);
    if !report.report.unrepaired.is_empty() {
        return Err(Reported(format!(
            "{} objects could not be repaired; see above",
            report.report.unrepaired.len()
        ))
        .into());
    }
    Ok(exit::OK)
}
