//! Drill records (`drills/<id>`): the outcome of one disaster-recovery
//! drill, sealed like a snapshot, so that the record outlives any catalog.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::id::SnapshotId;

/// One drill of one region: what was restored, how long it took, and
/// whether it verified and met its targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillRecord {
    /// When the drill started.
    pub time: DateTime<Utc>,
    /// The region restored from (the repository location when no regions
    /// are configured).
    pub region: String,
    pub host: String,
    pub snapshot: SnapshotId,
    pub snapshot_time: DateTime<Utc>,
    /// Seconds from the start of the restore to the end of verification.
    pub rto_seconds: f64,
    /// Age of the snapshot when the drill started, in seconds.
    pub rpo_seconds: f64,
    pub files: u64,
    pub bytes: u64,
    /// `full` or `sample:<percent>%`.
    pub verify: String,
    /// Every restored entry matched the snapshot.
    pub verified: bool,
    /// Verified and every given target met.
    pub success: bool,
    /// What failed, one line each (empty on success).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    pub program_version: String,
}
