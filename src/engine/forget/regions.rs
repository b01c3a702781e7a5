//! Carrying a `forget` decided on the primary to the other regions: the
//! same snapshot objects are deleted in every region that answers. Only
//! snapshots the primary listed are ever named, so a snapshot that exists
//! only in another region is never removed.

use serde::Serialize;

use crate::format::SnapshotId;
use crate::store::DynStore;

#[derive(Debug, Clone, Serialize)]
pub struct RegionRemoval {
    pub region: String,
    /// Snapshot objects deleted there (those it held).
    pub removed: usize,
    /// Why the region could not be reached; run `forget` again (or the same
    /// policy) once it answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Deletes `removed` from one region's store.
pub async fn remove_in(region: &str, store: &DynStore, removed: &[SnapshotId]) -> RegionRemoval {
    let mut out = RegionRemoval {
        region: region.to_string(),
        removed: 0,
        error: None,
    };
    for id in removed {
        match store.delete(&id.key()).await {
            Ok(()) => out.removed += 1,
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                out.error = Some(e.to_string());
                break;
            }
        }
    }
    out
}
