//! `repair --region R`: check a region and replace its damaged objects from
//! the live regions, primary first; regions that are down are not asked.

use std::sync::Arc;

use serde::Serialize;

use super::{DownRegion, Regions, RegionsResult};
use crate::engine::repair::{damaged_keys, repair, RepairReport};
use crate::repo::Repository;

#[derive(Debug, Serialize)]
pub struct RegionRepairReport {
    pub region: String,
    /// Objects `check --read-data` found damaged or missing.
    pub damaged: usize,
    pub report: RepairReport,
    /// Regions that were down and not asked for copies.
    pub down: Vec<DownRegion>,
}

impl Regions {
    /// Repairs region `name`, opened as `repo`, from the other live regions.
    pub async fn repair(
        &self,
        name: &str,
        repo: &Arc<Repository>,
    ) -> RegionsResult<RegionRepairReport> {
        let target = self.find(name)?;
        let check = crate::engine::check::check(repo, true).await?;
        let keys = damaged_keys(&check);
        let id = repo.config().id.clone();
        let mut sources = Vec::new();
        if !keys.is_empty() {
            for r in self.live(&id).await {
                if r.name() != target.name() {
                    sources.push((r.name().to_string(), r.store()));
                }
            }
        }
        let report = repair(repo.store(), &keys, &sources).await;
        let listed = repo.store().list("").await?;
        self.catalog(&id)?
            .set_region_objects(target.name(), &listed)?;
        Ok(RegionRepairReport {
            region: target.name().to_string(),
            damaged: keys.len(),
            report,
            down: self.down().await,
        })
    }
}
