//! Reading and writing drill records (`drills/`).

use super::{RepoError, RepoResult, Repository};
use crate::format::crypto::aad;
use crate::format::drill::DrillRecord;
use crate::format::{DrillId, ObjectKind};

impl Repository {
    /// Seals and stores a drill record.
    pub async fn save_drill(&self, record: &DrillRecord) -> RepoResult<DrillId> {
        self.raise_format().await?;
        let plain = serde_json::to_vec(record).expect("drill record serializes");
        let id = self
            .seal_object(&plain, aad::DRILL, |id| DrillId(id).key())
            .await?;
        Ok(DrillId(id))
    }

    pub async fn load_drill(&self, id: &DrillId) -> RepoResult<DrillRecord> {
        let key = id.key();
        let plain = self.open_object(&key, id.as_bytes(), aad::DRILL).await?;
        serde_json::from_slice(&plain).map_err(|e| RepoError::corrupt(&key, e))
    }

    /// Every readable drill record, oldest first; damaged ones are skipped
    /// with a warning.
    pub async fn drills(&self) -> RepoResult<Vec<(DrillId, DrillRecord)>> {
        let ids: std::collections::HashSet<DrillId> = self.list_ids(ObjectKind::Drill).await?;
        let mut out = Vec::new();
        for id in ids {
            match self.load_drill(&id).await {
                Ok(r) => out.push((id, r)),
                Err(RepoError::Corrupt { reason, .. }) => {
                    tracing::warn!(drill = %id, error = %reason, "skipping damaged drill record");
                }
                Err(e) => return Err(e),
            }
        }
        out.sort_by_key(|(id, r)| (r.time, *id));
        Ok(out)
    }
}
