//! Regions: opening each region's store, the order regions are tried in,
//! and per-region status (reachability, newest snapshot, RPO, lag behind the
//! primary) from the catalog, without listing buckets.

use serde::Serialize;

use crate::catalog::{Catalog, CatalogResult, Totals};
use crate::config::Region;
use crate::format::config::{peek_id, CONFIG_KEY};
use crate::store::DynStore;

/// Opens a region's store. Every region is opened here, so that store
/// options (endpoint, provider, limits) are applied in one place.
pub fn region_store(r: &Region) -> anyhow::Result<DynStore> {
    open_region(r, None)
}

fn open_region(
    r: &Region,
    retry: Option<crate::store::retry::RetryPolicy>,
) -> anyhow::Result<DynStore> {
    use anyhow::Context;
    let mut o = r.store_options()?;
    if let Some(p) = retry {
        o.retry = p;
    }
    crate::store::open_url_with(&r.url, &o).with_context(|| format!("region {:?}", r.name))
}

/// The regions in the order reads try them: the primary, then the others as
/// the config lists them.
pub fn ordered(regions: &[Region]) -> Vec<&Region> {
    let mut out: Vec<&Region> = regions.iter().filter(|r| r.primary).collect();
    out.extend(regions.iter().filter(|r| !r.primary));
    out
}

/// The primary region: the one marked so, else the first.
pub fn primary(regions: &[Region]) -> Option<&Region> {
    ordered(regions).into_iter().next()
}

/// Whether a region answers and holds a repository: its repository id.
pub async fn probe(r: &Region) -> Result<String, String> {
    // A region that is down should be reported (or failed over from) in
    // seconds, not after a transfer's whole retry budget.
    let quick = crate::store::retry::RetryPolicy {
        max_attempts: 2,
        initial_backoff_ms: 200,
        max_backoff_ms: 500,
        budget_seconds: 5,
    };
    let store = open_region(r, Some(quick)).map_err(|e| format!("{e:#}"))?;
    match store.get(CONFIG_KEY).await {
        Ok(data) => peek_id(&data).map_err(|e| e.to_string()),
        Err(e) if e.is_not_found() => Err(format!(
            "{}: no repository there (missing, moved, or not yet replicated)",
            store.location()
        )),
        Err(e) => Err(e.to_string()),
    }
}

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
}

/// Status of every region, from probes (`Ok(repository id)` or an error)
/// and the catalog.
pub fn status(
    catalog: &Catalog,
    regions: &[Region],
    probes: &[Result<String, String>],
    repo_id: &str,
) -> CatalogResult<Vec<RegionStatus>> {
    let primary = primary(regions).map(|r| r.name.clone()).unwrap_or_default();
    let now = chrono::Utc::now();
    let mut out = Vec::new();
    for (r, p) in regions.iter().zip(probes) {
        let newest = catalog.region_newest_snapshot(&r.name)?;
        let rpo = newest.as_ref().and_then(|(_, t)| {
            let t = chrono::DateTime::parse_from_rfc3339(t).ok()?;
            Some((now - t.with_timezone(&chrono::Utc)).num_seconds())
        });
        let error = match p {
            Ok(id) if id != repo_id => Some(format!("holds another repository ({id})")),
            Ok(_) => None,
            Err(e) => Some(e.clone()),
        };
        out.push(RegionStatus {
            name: r.name.clone(),
            url: r.url.clone(),
            primary: r.name == primary,
            reachable: error.is_none(),
            error,
            held: catalog.region_totals(&r.name)?,
            behind: catalog.region_behind(&r.name, &primary)?,
            newest_snapshot: newest.as_ref().map(|(id, _)| id.clone()),
            newest_snapshot_time: newest.map(|(_, t)| t),
            rpo_seconds: rpo,
            listed_at: catalog.region_listed_at(&r.name)?,
        });
    }
    Ok(out)
}
