//! Per-region status (reachability, newest snapshot, RPO, lag behind the
//! primary) from one probe of each region and the catalog, without listing
//! buckets.

use serde::Serialize;

use super::{Health, Regions, RegionsResult};
use crate::catalog::Totals;

#[derive(Debug, Clone, Serialize)]
pub struct RegionStatus {
    pub name: String,
    pub url: String,
    pub primary: bool,
    pub reachable: bool,
    pub error: Option<String>,
    /// Objects and bytes the catalog records the region as holding.
    pub held: Totals,
    /// What the primary holds and this region lacks.
    pub behind: Totals,
    pub newest_snapshot: Option<String>,
    pub newest_snapshot_time: Option<String>,
    /// Age of the newest snapshot in seconds: the data lost if only this
    /// region survived now.
    pub rpo_seconds: Option<i64>,
    /// When the catalog last recorded a full listing of the region.
    pub listed_at: Option<String>,
    /// The object lock the region's repository writes under (none when it
    /// is not locked, or the region does not answer).
    pub protection: Option<crate::format::config::ObjectLock>,
}

/// `ferry status`: the repository and every region, primary first.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub repository: String,
    pub regions: Vec<RegionStatus>,
}

/// The object lock of a region's config (read without a key).
async fn protection(r: &super::RegionHandle) -> Option<crate::format::config::ObjectLock> {
    let raw = r
        .store()
        .get(crate::format::config::CONFIG_KEY)
        .await
        .ok()?;
    crate::format::config::peek_lock(&raw).ok().flatten()
}

/// Status of every region, from one probe each and the catalog.
pub async fn status(regions: &Regions) -> RegionsResult<StatusReport> {
    let id = regions.repo_id().await?;
    let cat = regions.catalog(&id)?;
    let primary = regions.primary().name().to_string();
    let now = chrono::Utc::now();
    let mut out = Vec::new();
    for e in regions.all() {
        let name = e.name();
        let newest = cat.region_newest_snapshot(name)?;
        let rpo = newest.as_ref().and_then(|(_, t)| {
            let t = chrono::DateTime::parse_from_rfc3339(t).ok()?;
            Some((now - t.with_timezone(&chrono::Utc)).num_seconds())
        });
        let error = match e.health().await {
            Health::Ready { id: theirs } if *theirs != id => {
                Some(format!("holds another repository ({theirs})"))
            }
            Health::Ready { .. } => None,
            Health::Empty { error } | Health::Down { error } => Some(error.clone()),
        };
        let protection = match error {
            None => protection(e).await,
            Some(_) => None,
        };
        out.push(RegionStatus {
            protection,
            name: name.to_string(),
            url: e.region.url.clone(),
            primary: name == primary,
            reachable: error.is_none(),
            error,
            held: cat.region_totals(name)?,
            behind: cat.region_behind(name, &primary)?,
            newest_snapshot: newest.as_ref().map(|(id, _)| id.clone()),
            newest_snapshot_time: newest.map(|(_, t)| t),
            rpo_seconds: rpo,
            listed_at: cat.region_listed_at(name)?,
        });
    }
    Ok(StatusReport {
        repository: id,
        regions: out,
    })
}
