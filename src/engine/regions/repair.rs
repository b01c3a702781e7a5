//! `repair --region R`: check a region and replace its damaged objects from
//! the live regions, primary first; regions that are down are not asked.

use std::sync::Arc;

use serde::Serialize;

use super::{DownRegion, Regions, RegionsError, RegionsResult};
use crate::engine::repair::{damaged_keys, repair, RepairReport};
use crate::repo::Repository;
use crate::store::failover::Breaker;
use crate::store::DynStore;

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
        let mut others = Vec::new();
        if !keys.is_empty() {
            for r in self.live(&id).await {
                if r.name() != target.name() {
                    others.push(r);
                }
            }
        }
        // With another region to ask, one that fails is left after short
        // retries (and not asked again), as reads that fail over do.
        let sources: Vec<(String, Arc<Breaker>)> = others
            .iter()
            .map(|r| {
                let store = match others.len() {
                    1 => r.store(),
                    _ => r.quick.clone(),
                };
                (r.name().to_string(), Breaker::new(r.name(), store))
            })
            .collect();
        let stores: Vec<(String, DynStore)> = sources
            .iter()
            .map(|(n, b)| (n.clone(), b.clone() as DynStore))
            .collect();
        // Writes have short retries too: a region that dies while it is
        // repaired stops the repair within seconds.
        let dest = target.quick.clone();
        let result = repair(&dest, &keys, &stores).await;
        for (r, (_, b)) in others.iter().zip(&sources) {
            if let Some(why) = b.why() {
                r.store.trip(&why);
            }
        }
        let report = result.map_err(|s| RegionsError::RepairTargetFailed {
            name: target.name().to_string(),
            repaired: s.report.repaired.len(),
            total: keys.len(),
            error: s.error,
        })?;
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
