//! The in-memory blob index: where each known blob lives. Loaded from the
//! catalog, extended as packs are written.

use std::collections::HashMap;

use crate::format::blob::BlobEntry;
use crate::format::id::{BlobId, PackId};

#[derive(Default)]
pub struct BlobIndex {
    blobs: HashMap<BlobId, (u32, BlobEntry)>,
    packs: Vec<PackId>,
    pack_numbers: HashMap<PackId, u32>,
    /// Blobs found only in packs a deletion plan names: readable, but not
    /// offered for deduplication (`contains` is false for them).
    doomed: HashMap<BlobId, (u32, BlobEntry)>,
}

impl BlobIndex {
    pub fn insert(&mut self, pack: PackId, entry: BlobEntry) {
        let n = self.number(pack);
        self.blobs.entry(entry.id).or_insert((n, entry));
    }

    /// Records a blob of a pack that a deletion plan names: it can be read
    /// but is not offered for deduplication.
    pub fn insert_doomed(&mut self, pack: PackId, entry: BlobEntry) {
        let n = self.number(pack);
        self.doomed.entry(entry.id).or_insert((n, entry));
    }

    fn number(&mut self, pack: PackId) -> u32 {
        *self.pack_numbers.entry(pack).or_insert_with(|| {
            self.packs.push(pack);
            (self.packs.len() - 1) as u32
        })
    }

    pub fn get(&self, id: &BlobId) -> Option<(PackId, BlobEntry)> {
        self.blobs
            .get(id)
            .or_else(|| self.doomed.get(id))
            .map(|(n, e)| (self.packs[*n as usize], *e))
    }

    /// Whether a writer may reuse the stored blob instead of storing it
    /// again: false for blobs only in packs a deletion plan names.
    pub fn contains(&self, id: &BlobId) -> bool {
        self.blobs.contains_key(id)
    }

    /// Whether the blob can be read at all (in a planned pack or not).
    pub fn locates(&self, id: &BlobId) -> bool {
        self.blobs.contains_key(id) || self.doomed.contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    pub fn ids(&self) -> impl Iterator<Item = &BlobId> {
        self.blobs.keys()
    }
}
