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
}

impl BlobIndex {
    pub fn insert(&mut self, pack: PackId, entry: BlobEntry) {
        let n = *self.pack_numbers.entry(pack).or_insert_with(|| {
            self.packs.push(pack);
            (self.packs.len() - 1) as u32
        });
        self.blobs.entry(entry.id).or_insert((n, entry));
    }

    pub fn get(&self, id: &BlobId) -> Option<(PackId, BlobEntry)> {
        self.blobs
            .get(id)
            .map(|(n, e)| (self.packs[*n as usize], *e))
    }

    pub fn contains(&self, id: &BlobId) -> bool {
        self.blobs.contains_key(id)
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
