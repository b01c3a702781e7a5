//! Deletion plans: the packs a `prune` means to delete and when it decided
//! so. A later prune deletes them once the plan is old enough and no
//! snapshot needs them; writers do not deduplicate against them. The rules
//! are in docs/format.md, "Deletion plans".

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::id::PackId;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// When the prune that wrote it decided (its clock).
    pub time: DateTime<Utc>,
    /// The host that wrote it, for reports.
    #[serde(default)]
    pub host: String,
    /// The packs to delete, in ascending order.
    pub packs: Vec<PackId>,
}

impl Plan {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("plan serializes")
    }

    pub fn decode(b: &[u8]) -> Result<Self, super::DecodeError> {
        serde_json::from_slice(b).map_err(super::DecodeError::malformed)
    }
}
