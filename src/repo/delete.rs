//! Removing objects: snapshots (`forget`), and index objects and packs
//! (`prune`). Each removal takes the object out of the catalog too.

use super::{IndexId, ObjectKind, PackId, RepoResult, Repository, SnapshotId};

impl Repository {
    /// Deletes a snapshot object. One that is already gone (another
    /// `forget` got there first) counts as deleted.
    pub async fn delete_snapshot(&self, id: &SnapshotId) -> RepoResult<()> {
        self.delete_key(&id.key()).await?;
        self.catalog().remove_snapshot(id)?;
        Ok(())
    }

    /// Deletes an index object (once the objects replacing it are durable).
    pub async fn delete_index(&self, id: &IndexId) -> RepoResult<()> {
        self.delete_key(&id.key()).await?;
        let id = *id;
        self.on_catalog(move |c| c.remove_index(&id)).await
    }

    /// Deletes a pack (once no index object names it).
    pub async fn delete_pack(&self, id: &PackId) -> RepoResult<()> {
        self.delete_key(&id.key()).await
    }

    /// Deletes an object of any kind by key; a missing one is not an error.
    pub async fn delete_key(&self, key: &str) -> RepoResult<()> {
        debug_assert!(ObjectKind::of_key(key).is_some());
        match self.store().delete(key).await {
            Err(e) if e.is_not_found() => Ok(()),
            r => Ok(r?),
        }
    }
}
