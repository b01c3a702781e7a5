//! `ferry repair --region R`: check a region and replace its damaged objects
//! from the healthy ones. `ferry repair index`: index again the packs that
//! no index object names.

use anyhow::{Context, Result};

use super::args::{Global, RepairArgs, RepairCommand};
use super::output::{emit, Render};
use super::regions::{lift, regions};
use super::{exit, open_repo, Reported};
use crate::engine::regions::RegionRepairReport;
use crate::engine::reindex::{repair_index, ReindexReport};

impl Render for ReindexReport {
    fn text(&self) -> String {
        let verb = if self.dry_run {
            "would index"
        } else {
            "indexed"
        };
        let mut out = String::new();
        for p in &self.packs {
            out += &format!("{verb} {} ({} blobs)\n", p.pack.key(), p.blobs);
        }
        let blobs: u64 = self.packs.iter().map(|p| p.blobs).sum();
        out + &format!(
            "{} packs no index named, {blobs} blobs {verb}; {} index objects written\n",
            self.packs.len(),
            self.indexes.len()
        )
    }

    fn warnings(&self) -> Vec<String> {
        let bad = self.unreadable.iter();
        bad.map(|u| format!("not indexed: {}: {}", u.pack.key(), u.error))
            .collect()
    }
}

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

pub async fn run(g: &Global, a: RepairArgs) -> Result<i32> {
    if let Some(RepairCommand::Index { dry_run }) = a.what {
        return index(g, dry_run).await;
    }
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

async fn index(g: &Global, dry_run: bool) -> Result<i32> {
    let repo = open_repo(g).await?;
    let report = repair_index(&repo, dry_run).await?;
    emit(g, &report);
    if !report.unreadable.is_empty() {
        return Err(Reported(format!(
            "{} packs could not be indexed; see above",
            report.unreadable.len()
        ))
        .into());
    }
    Ok(exit::OK)
}
