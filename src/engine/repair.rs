//! `repair`: replaces a region's damaged or missing objects (as `check`
//! found them) with copies from healthy regions, each verified against its
//! name before it is written.

use serde::Serialize;

use super::check::CheckReport;
use super::replicate::PHASES;
use crate::store::DynStore;

#[derive(Debug, Default, Serialize)]
pub struct RepairReport {
    /// Replaced objects and the region each came from.
    pub repaired: Vec<(String, String)>,
    /// Objects no region had a good copy of, with what went wrong.
    pub unrepaired: Vec<(String, String)>,
}

/// The object keys a check report names as damaged or missing, in write
/// order (packs before index objects before snapshots).
pub fn damaged_keys(report: &CheckReport) -> Vec<String> {
    let mut keys: Vec<String> = report
        .errors
        .iter()
        .filter_map(|p| p.object.split_whitespace().next())
        .filter(|k| PHASES.iter().any(|p| k.starts_with(p.prefix())))
        .map(str::to_string)
        .collect();
    keys.sort_by_key(|k| {
        (
            PHASES.iter().position(|p| k.starts_with(p.prefix())),
            k.clone(),
        )
    });
    keys.dedup();
    keys
}

/// A repair that stopped because its target failed.
#[derive(Debug)]
pub struct RepairStopped {
    /// What was repaired before the target failed.
    pub report: RepairReport,
    pub error: String,
}

/// Copies each of `keys` into `target` from the first of `sources`
/// (name, store) holding a copy that matches its name. Stops at the first
/// write to `target` that fails: the objects written before it are whole,
/// the others are as they were.
pub async fn repair(
    target: &DynStore,
    keys: &[String],
    sources: &[(String, DynStore)],
) -> Result<RepairReport, RepairStopped> {
    let mut report = RepairReport::default();
    for key in keys {
        let mut why = Vec::new();
        let mut good = None;
        for (name, store) in sources {
            match fetch(store, key).await {
                Ok(data) => {
                    good = Some((name, data));
                    break;
                }
                Err(e) => why.push(format!("{name}: {e}")),
            }
        }
        let Some((name, data)) = good else {
            let why = match why.is_empty() {
                true => "no other region is configured".to_string(),
                false => why.join("; "),
            };
            report.unrepaired.push((key.clone(), why));
            continue;
        };
        if let Err(e) = target.put(key, data).await {
            return Err(RepairStopped {
                report,
                error: e.to_string(),
            });
        }
        tracing::info!(key, from = %name, "repaired");
        report.repaired.push((key.clone(), name.clone()));
    }
    Ok(report)
}

/// A copy of `key` from `source` that matches its name.
async fn fetch(source: &DynStore, key: &str) -> Result<bytes::Bytes, String> {
    let data = source.get(key).await.map_err(|e| e.to_string())?;
    match super::replicate::matches_name(key, &data) {
        true => Ok(data),
        false => Err(format!(
            "the copy in {} does not match its name either",
            source.location()
        )),
    }
}
