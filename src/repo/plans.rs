//! Deletion plans (see [`crate::format::plan`]): written by `prune`, read by
//! every writer so that it does not deduplicate against planned packs.

use std::collections::HashSet;

use futures::StreamExt;

use super::{ObjectKind, PackId, RepoError, RepoResult, Repository, PARALLEL_LOADS};
use crate::format::crypto::aad;
use crate::format::plan::Plan;
use crate::format::PlanId;

/// A plan that could be read, or the reason it could not.
pub type Listed = (PlanId, Result<Plan, String>);

impl Repository {
    /// Every deletion plan in the store; damaged ones with their error.
    pub async fn list_plans(&self) -> RepoResult<Vec<Listed>> {
        let ids: HashSet<PlanId> = self.list_ids(ObjectKind::Plan).await?;
        let mut loads = futures::stream::iter(ids)
            .map(|id| async move { (id, self.load_plan(&id).await) })
            .buffer_unordered(PARALLEL_LOADS);
        let mut out = Vec::new();
        while let Some((id, res)) = loads.next().await {
            match res {
                Ok(p) => out.push((id, Ok(p))),
                Err(RepoError::Corrupt { reason, .. }) => out.push((id, Err(reason))),
                // Deleted by another prune between the listing and the read.
                Err(RepoError::Store(e)) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by_key(|(id, p)| (p.as_ref().ok().map(|p| p.time), *id));
        Ok(out)
    }

    pub async fn load_plan(&self, id: &PlanId) -> RepoResult<Plan> {
        let key = id.key();
        let plain = self.open_object(&key, id.as_bytes(), aad::PLAN).await?;
        Plan::decode(&plain).map_err(|e| RepoError::corrupt(&key, e))
    }

    /// Stores a plan. It is named by its bytes and never rewritten, so it
    /// is created only where the key is free.
    pub async fn save_plan(&self, plan: &Plan) -> RepoResult<PlanId> {
        self.raise_format().await?;
        let sealed = self.cipher().seal(&plan.encode(), aad::PLAN);
        let id = PlanId::of_bytes(&sealed);
        self.store().put_if_absent(&id.key(), sealed.into()).await?;
        Ok(id)
    }

    /// The packs some readable deletion plan names (damaged plans are
    /// reported by `prune`).
    pub async fn planned_packs(&self) -> RepoResult<HashSet<PackId>> {
        let mut out = HashSet::new();
        for (id, plan) in self.list_plans().await? {
            match plan {
                Ok(p) => out.extend(p.packs),
                Err(e) => tracing::warn!(plan = %id, error = %e, "skipping damaged deletion plan"),
            }
        }
        Ok(out)
    }
}
