//! The blob index: where each known blob lives, in memory that stays a few
//! bytes per blob however large the repository grows.
//!
//! The catalog's `blobs` table (SQLite, keyed by blob id) is the truth.
//! Memory holds a filter of it: the first four bytes of every id, in two
//! bytes a blob (20 MB at 10 million blobs, against ~100 bytes a blob for
//! a map of full entries). A lookup that misses the filter is answered
//! there; a hit is confirmed by a point lookup on one of a few read-only
//! catalog connections, which also gives the full entry. At 10 million
//! blobs a new id hits the filter by chance once in ~430 lookups.
//!
//! Blobs of packs this process stored are kept whole in memory until the
//! index object naming them is in the catalog (a few thousand at a time);
//! then only their prefix stays. Blobs found only in packs a deletion plan
//! names ("doomed") can be read but are not offered for deduplication.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::catalog::{BlobReader, Catalog, CatalogResult};
use crate::format::blob::BlobEntry;
use crate::format::id::{BlobId, PackId};
use crate::format::index::IndexFile;

/// The part of a blob id the filter keeps.
fn prefix(id: &[u8; 32]) -> u32 {
    u32::from_be_bytes([id[0], id[1], id[2], id[3]])
}

/// Buckets of the filter: the first 16 bits of an id choose one.
const BUCKETS: usize = 1 << 16;

/// A set of 32-bit id prefixes in two bytes each: the first 16 bits pick a
/// bucket (`starts`, 256 KiB), the last 16 are kept sorted within it.
pub struct Filter {
    starts: Vec<u32>,
    low: Vec<u16>,
}

impl Default for Filter {
    fn default() -> Self {
        Filter {
            starts: vec![0; BUCKETS + 1],
            low: Vec::new(),
        }
    }
}

impl Filter {
    /// Builds the filter from prefixes given in ascending order.
    fn from_sorted(rows: usize, each: impl FnOnce(&mut dyn FnMut(u32))) -> Filter {
        let mut f = Filter {
            starts: vec![0; BUCKETS + 1],
            low: Vec::with_capacity(rows),
        };
        let mut last = None;
        each(&mut |p| {
            if last != Some(p) {
                last = Some(p);
                f.starts[(p >> 16) as usize + 1] += 1;
                f.low.push(p as u16);
            }
        });
        for b in 0..BUCKETS {
            f.starts[b + 1] += f.starts[b];
        }
        f
    }

    fn contains(&self, p: u32) -> bool {
        let b = (p >> 16) as usize;
        let bucket = &self.low[self.starts[b] as usize..self.starts[b + 1] as usize];
        bucket.binary_search(&(p as u16)).is_ok()
    }

    fn bytes(&self) -> usize {
        self.low.capacity() * 2 + self.starts.capacity() * 4
    }
}

/// The filter of every blob id in the catalog, read row by row in id
/// order (never a list of the rows).
pub fn load_prefixes(cat: &Catalog) -> CatalogResult<Filter> {
    let mut failed = None;
    let f = Filter::from_sorted(cat.blob_rows()? as usize, |push| {
        failed = cat.each_blob_id(|id| push(prefix(id))).err();
    });
    match failed {
        Some(e) => Err(e),
        None => Ok(f),
    }
}

#[derive(Default)]
pub struct BlobIndex {
    /// Id prefixes of the blobs the catalog held when loaded.
    loaded: Filter,
    /// Id prefixes of blobs the catalog gained since.
    added: HashSet<u32>,
    /// Blobs of stored packs whose index object is not in the catalog yet.
    recent: HashMap<BlobId, (PackId, BlobEntry)>,
    /// Packs a deletion plan names.
    doomed: HashSet<PackId>,
    readers: Vec<Mutex<BlobReader>>,
    next: AtomicUsize,
}

/// What the catalog knows of one blob.
enum Found {
    Absent,
    /// In at least one pack no deletion plan names.
    Live(Option<(PackId, BlobEntry)>),
    /// Only in planned packs.
    Doomed(PackId, BlobEntry),
}

impl BlobIndex {
    /// An index answering from `readers` (connections to the catalog).
    pub fn new(readers: Vec<BlobReader>) -> Self {
        BlobIndex {
            readers: readers.into_iter().map(Mutex::new).collect(),
            ..Default::default()
        }
    }

    /// Replaces what the index knows with the catalog's content (given as
    /// [`load_prefixes`] read it) and the packs deletion plans name.
    pub fn reload(&mut self, prefixes: Filter, doomed: HashSet<PackId>) {
        self.loaded = prefixes;
        self.added = HashSet::new();
        self.recent = HashMap::new();
        self.doomed = doomed;
    }

    /// Records the blobs of a pack this process stored.
    pub fn insert(&mut self, pack: PackId, entry: BlobEntry) {
        self.recent.entry(entry.id).or_insert((pack, entry));
    }

    /// The catalog now holds `index`: its blobs are looked up there.
    pub fn indexed(&mut self, index: &IndexFile) {
        for p in &index.packs {
            for b in &p.blobs {
                self.added.insert(prefix(&b.id.0));
                if self
                    .recent
                    .get(&b.id)
                    .is_some_and(|(pack, _)| *pack == p.id)
                {
                    self.recent.remove(&b.id);
                }
            }
        }
    }

    /// Whether the catalog may hold `id` (false: it certainly does not).
    fn may_hold(&self, id: &BlobId) -> bool {
        let p = prefix(&id.0);
        self.loaded.contains(p) || self.added.contains(&p)
    }

    /// A free reader, or the next one in turn when all are busy.
    fn reader(&self) -> Option<MutexGuard<'_, BlobReader>> {
        let n = self.readers.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if let Ok(r) = self.readers[(start + i) % n].try_lock() {
                return Some(r);
            }
        }
        let r = self.readers.get(start % n.max(1))?;
        Some(r.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Asks the catalog about `id`; `entry` says whether the entry is
    /// wanted or only whether the blob is there. A catalog that cannot be
    /// read counts as not holding it (the caller stores the blob again, or
    /// reports it missing).
    fn find(&self, reader: &BlobReader, id: &BlobId, entry: bool) -> Found {
        if !self.may_hold(id) {
            return Found::Absent;
        }
        let checked = match (entry, self.doomed.is_empty()) {
            (false, true) => reader.exists(id).map(|e| match e {
                true => Found::Live(None),
                false => Found::Absent,
            }),
            _ => self.rows(reader, id),
        };
        checked.unwrap_or_else(|e| {
            tracing::warn!(blob = %id, error = %e, "blob lookup failed");
            Found::Absent
        })
    }

    fn rows(&self, reader: &BlobReader, id: &BlobId) -> CatalogResult<Found> {
        let mut rows = Vec::new();
        reader.locations(id, &mut rows)?;
        let live = rows.iter().find(|(p, _)| !self.doomed.contains(p));
        Ok(match (live, rows.first()) {
            (Some(l), _) => Found::Live(Some(*l)),
            (None, Some((p, e))) => Found::Doomed(*p, *e),
            (None, None) => Found::Absent,
        })
    }

    /// Runs `f` with a reader, or without one when there is none.
    fn with_reader<T>(&self, f: impl FnOnce(Option<&BlobReader>) -> T) -> T {
        match self.reader() {
            Some(r) => f(Some(&r)),
            None => f(None),
        }
    }

    fn found(&self, reader: Option<&BlobReader>, id: &BlobId, entry: bool) -> Found {
        if let Some(&(p, e)) = self.recent.get(id) {
            return Found::Live(Some((p, e)));
        }
        reader.map_or(Found::Absent, |r| self.find(r, id, entry))
    }

    /// Where a blob lives: a pack no plan names when there is one.
    pub fn get(&self, id: &BlobId) -> Option<(PackId, BlobEntry)> {
        self.with_reader(|r| self.get_with(r, id))
    }

    fn get_with(&self, r: Option<&BlobReader>, id: &BlobId) -> Option<(PackId, BlobEntry)> {
        match self.found(r, id, true) {
            Found::Live(l) => l,
            Found::Doomed(p, e) => Some((p, e)),
            Found::Absent => None,
        }
    }

    /// [`BlobIndex::get`] for every id, with one reader.
    pub fn get_all(&self, ids: &[BlobId]) -> Vec<Option<(PackId, BlobEntry)>> {
        self.with_reader(|r| ids.iter().map(|id| self.get_with(r, id)).collect())
    }

    /// Whether a writer may reuse the stored blob instead of storing it
    /// again: false for blobs only in packs a deletion plan names.
    pub fn contains(&self, id: &BlobId) -> bool {
        self.contains_all(std::slice::from_ref(id))
    }

    /// [`BlobIndex::contains`] for every id, with one reader.
    pub fn contains_all(&self, ids: &[BlobId]) -> bool {
        self.with_reader(|r| {
            ids.iter()
                .all(|id| matches!(self.found(r, id, false), Found::Live(_)))
        })
    }

    /// Whether the blob can be read at all (in a planned pack or not).
    pub fn locates(&self, id: &BlobId) -> bool {
        self.with_reader(|r| !matches!(self.found(r, id, false), Found::Absent))
    }

    /// Bytes of memory the filter takes (for tests and logs).
    pub fn filter_bytes(&self) -> usize {
        self.loaded.bytes() + self.added.capacity() * 5
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::blob::BlobType;
    use crate::format::id::IndexId;
    use crate::format::index::IndexPack;

    fn entry(id: [u8; 32], offset: u64) -> BlobEntry {
        BlobEntry {
            kind: BlobType::Data,
            codec: 0,
            id: BlobId(id),
            offset,
            length: 10,
            raw_length: 10,
        }
    }

    fn id(n: u32, tail: u8) -> [u8; 32] {
        let mut b = [tail; 32];
        b[..4].copy_from_slice(&n.to_be_bytes());
        b
    }

    fn index(packs: &[(u8, Vec<BlobEntry>)]) -> IndexFile {
        IndexFile {
            packs: packs
                .iter()
                .map(|(p, blobs)| IndexPack {
                    id: PackId([*p; 32]),
                    size: 1000,
                    blobs: blobs.clone(),
                })
                .collect(),
        }
    }

    fn open(dir: &tempfile::TempDir) -> (Catalog, BlobIndex) {
        let cat = Catalog::open(&dir.path().join("c.db")).unwrap();
        let readers = vec![cat.reader().unwrap(), cat.reader().unwrap()];
        (cat, BlobIndex::new(readers))
    }

    #[test]
    fn ids_sharing_a_prefix_are_told_apart_by_the_catalog() {
        let dir = tempfile::tempdir().unwrap();
        let (mut cat, mut idx) = open(&dir);
        let (a, b) = (id(7, 1), id(7, 2));
        cat.add_index(&IndexId([1; 32]), &index(&[(1, vec![entry(a, 0)])]))
            .unwrap();
        idx.reload(load_prefixes(&cat).unwrap(), HashSet::new());
        assert!(idx.contains(&BlobId(a)) && idx.locates(&BlobId(a)));
        // Same four first bytes, another blob: the filter hits, the
        // catalog says no.
        assert!(!idx.contains(&BlobId(b)) && !idx.locates(&BlobId(b)));
        assert_eq!(idx.get(&BlobId(b)), None);
        assert!(!idx.contains(&BlobId(id(8, 1))));
        assert_eq!(idx.get(&BlobId(a)), Some((PackId([1; 32]), entry(a, 0))));
    }

    #[test]
    fn doomed_blobs_are_readable_but_not_offered_for_dedup() {
        let dir = tempfile::tempdir().unwrap();
        let (mut cat, mut idx) = open(&dir);
        let (only_doomed, both) = (id(1, 1), id(2, 2));
        let i = index(&[
            (5, vec![entry(only_doomed, 0), entry(both, 10)]),
            (6, vec![entry(both, 0)]),
        ]);
        cat.add_index(&IndexId([1; 32]), &i).unwrap();
        idx.reload(load_prefixes(&cat).unwrap(), [PackId([5; 32])].into());
        assert!(!idx.contains(&BlobId(only_doomed)));
        assert!(idx.locates(&BlobId(only_doomed)));
        assert_eq!(idx.get(&BlobId(only_doomed)).unwrap().0, PackId([5; 32]));
        // A copy outside the planned pack is the one offered and read.
        assert!(idx.contains(&BlobId(both)));
        assert_eq!(
            idx.get(&BlobId(both)),
            Some((PackId([6; 32]), entry(both, 0)))
        );
        assert!(!idx.contains_all(&[BlobId(both), BlobId(only_doomed)]));
        // Stored again by this process: offered for dedup again.
        idx.insert(PackId([9; 32]), entry(only_doomed, 0));
        assert!(idx.contains(&BlobId(only_doomed)));
    }

    #[test]
    fn recorded_blobs_move_to_the_catalog_once_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut cat, mut idx) = open(&dir);
        idx.reload(load_prefixes(&cat).unwrap(), HashSet::new());
        let a = entry(id(3, 3), 0);
        idx.insert(PackId([4; 32]), a);
        assert_eq!(idx.get(&a.id), Some((PackId([4; 32]), a)));
        let i = index(&[(4, vec![a])]);
        cat.add_index(&IndexId([2; 32]), &i).unwrap();
        idx.indexed(&i);
        assert!(idx.recent.is_empty());
        assert_eq!(idx.get_all(&[a.id]), [Some((PackId([4; 32]), a))]);
        assert!(idx.contains_all(&[a.id]));
    }

    #[test]
    fn the_filter_takes_two_bytes_a_blob() {
        let dir = tempfile::tempdir().unwrap();
        let (mut cat, mut idx) = open(&dir);
        let blobs: Vec<BlobEntry> = (0..20_000u32)
            .map(|n| entry(*blake3::hash(&n.to_le_bytes()).as_bytes(), n as u64))
            .collect();
        cat.add_index(&IndexId([1; 32]), &index(&[(1, blobs.clone())]))
            .unwrap();
        let filter = load_prefixes(&cat).unwrap();
        assert_eq!(filter.low.len(), 20_000);
        assert!((0..20_000u32).all(|n| filter.contains(prefix(&blobs[n as usize].id.0))));
        // A prefix of no blob: the bucket holds others, not it.
        let mut other = prefix(&blobs[0].id.0);
        while blobs.iter().any(|b| prefix(&b.id.0) == other) {
            other = other.wrapping_add(1);
        }
        assert!(!filter.contains(other));
        idx.reload(filter, HashSet::new());
        assert!(idx.filter_bytes() <= 20_000 * 2 + (BUCKETS + 1) * 4);
        assert!(blobs.iter().all(|b| idx.contains(&b.id)));
        assert_eq!(idx.get(&blobs[777].id), Some((PackId([1; 32]), blobs[777])));
    }
}
