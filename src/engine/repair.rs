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

/// Copies each of `keys` into `target` from the first of `sources`
/// (name, store) holding a copy that matches its name.
pub async fn repair(
    target: &DynStore,
    keys: &[String],
    sources: &[(String, DynStore)],
) -> RepairReport {
    let mut report = RepairReport::default();
    for key in keys {
        let mut why = Vec::new();
        let mut done = false;
        for (name, store) in sources {
            match super::replicate::copy_object(store, target, key).await {
                Ok(_) => {
                    tracing::info!(key, from = %name, "repaired");
                    report.repaired.push((key.clone(), name.clone()));
                    done = true;
                    break;
                }
                Err(e) => why.push(format!("{name}: {e}")),
            }
        }
        if !done {
            let why = if why.is_empty() {
                "no other region is configured".to_string()
            } else {
                why.join("; ")
            };
            report.unrepaired.push((key.clone(), why));
        }
    }
    report
}
