//! Which stored blobs the snapshots use, kept in the catalog (on disk, so
//! that its size does not bound what fits in memory): the operations a
//! prune and a check build on.

use super::{RepoResult, Repository};
use crate::catalog::PackUsage;
use std::collections::HashSet;

use crate::format::{BlobEntry, BlobId, BlobType, IndexId, PackId};

impl Repository {
    /// Forgets every mark made by [`Repository::mark_used`].
    pub async fn reset_usage(&self) -> RepoResult<()> {
        self.on_catalog(|c| c.reset_usage()).await
    }

    /// Marks blobs of type `kind` as used; returns those not marked before.
    pub async fn mark_used(&self, kind: BlobType, ids: Vec<BlobId>) -> RepoResult<Vec<BlobId>> {
        self.on_catalog(move |c| c.mark_used(kind, &ids)).await
    }

    /// Every indexed pack with its used and unused bytes.
    pub async fn pack_usage(&self) -> RepoResult<Vec<PackUsage>> {
        self.on_catalog(|c| c.pack_usage()).await
    }

    /// The entries of a pack that some snapshot uses.
    pub async fn used_entries(&self, pack: PackId) -> RepoResult<Vec<BlobEntry>> {
        self.on_catalog(move |c| c.used_entries(&pack)).await
    }

    /// Of these packs, those that hold a blob some snapshot uses.
    pub async fn still_needed(&self, packs: Vec<PackId>) -> RepoResult<Vec<PackId>> {
        self.on_catalog(move |c| c.still_needed(&packs)).await
    }

    /// Every indexed pack and its size.
    pub async fn indexed_packs(&self) -> RepoResult<Vec<(PackId, u64)>> {
        self.on_catalog(|c| c.packs()).await
    }

    /// The index objects the catalog has read, and those of them that
    /// name any of `packs`.
    pub async fn indexes_naming(
        &self,
        packs: Vec<PackId>,
    ) -> RepoResult<(HashSet<IndexId>, HashSet<IndexId>)> {
        self.on_catalog(move |c| Ok((c.index_ids()?, c.indexes_naming(&packs)?)))
            .await
    }

    /// The entries the index records for one pack, in pack order.
    pub async fn pack_entries(&self, pack: PackId) -> RepoResult<Vec<BlobEntry>> {
        self.on_catalog(move |c| c.pack_entries(&pack)).await
    }
}
