//! The blob index: where each known blob lives, in memory that stays a few
//! bytes per blob however large the repository grows.
//!
//! The catalog's `blobs` table (SQLite, keyed by blob id) is the truth.
//! Memory holds what membership questions need:
//! - up to [`EXACT_LIMIT`] blobs, every id in full (32 bytes a blob, 64 MiB
//!   at the limit), sorted: whether a blob is stored is answered there,
//!   without the catalog, which keeps deduplication as fast as a map;
//! - above it, a filter: the first four bytes of every id, in two bytes a
//!   blob (20 MB at 10 million blobs). A lookup that misses the filter is
//!   answered there; a hit is confirmed by a point lookup on one of a few
//!   read-only catalog connections. At 10 million blobs a new id hits the
//!   filter by chance once in ~430 lookups.
//!
//! Where a blob lives (its pack and entry) is always read from the catalog.
//! Blobs of packs this process stored are kept whole in memory until the
//! index object naming them is in the catalog (a few packs' at most, of
//! at most 32,768 blobs each).
//! Blobs found only in packs a deletion plan names ("doomed") can be read
//! but are not offered for deduplication; the id prefixes of the blobs in
//! planned packs are kept so that only those are asked about.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::catalog::{BlobReader, Catalog, CatalogResult};
use crate::format::blob::{BlobEntry, BlobType};
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

/// Repositories with up to this many blob rows keep every id in memory.
pub const EXACT_LIMIT: usize = 1 << 21;

/// An id added since the load counts this many loaded ones against
/// [`EXACT_LIMIT`]: a loaded id is 36 bytes of sorted arrays, an added one
/// a hash set entry of 34 bytes at a load between 1/2 and 7/8, and both
/// tables while the set grows (a first backup of 2 M files into an empty
/// repository held 2 M added ids, over 200 MiB at the set's last growth).
const ADDED_COST: usize = 3;

/// However far the weighted count is from the limit, at most this share of
/// it (an eighth) is added in full.
const ADDED_SHARE: usize = 8;

/// What memory knows of the ids the catalog held when it was read.
///
/// A blob is named by its type and id: a file whose bytes equal a tree's
/// encoding has that tree's id, and is stored again as a data blob.
pub enum Known {
    /// Every id of each blob type (indexed by the type), sorted and
    /// distinct: membership is certain. Beside them, each blob's length
    /// before compression (the same in every pack that holds it).
    Exact([Vec<BlobId>; 2], [Vec<u32>; 2]),
    /// Id prefixes only: a hit is confirmed in the catalog.
    Prefixes(Filter),
    /// Nothing in memory: every lookup asks the catalog (a prune, which
    /// only looks blobs up by id and writes none it must deduplicate).
    Unloaded,
}

impl Default for Known {
    fn default() -> Self {
        Known::Exact([Vec::new(), Vec::new()], [Vec::new(), Vec::new()])
    }
}

/// Every blob id in the catalog, as [`Known`]: in full up to `limit` rows,
/// else as prefixes. Read row by row in id order.
pub fn load_known(cat: &Catalog, limit: usize) -> CatalogResult<Known> {
    let rows = cat.blob_rows()? as usize;
    if rows > limit {
        return load_prefixes(cat).map(Known::Prefixes);
    }
    let mut ids: [Vec<BlobId>; 2] = [Vec::with_capacity(rows), Vec::new()];
    let mut sizes: [Vec<u32>; 2] = [Vec::with_capacity(rows), Vec::new()];
    cat.each_blob_id(|kind, id, raw_length| {
        let of_kind = &mut ids[kind as usize];
        if of_kind.last().map(|l| &l.0) != Some(id) {
            of_kind.push(BlobId(*id));
            sizes[kind as usize].push(raw_length);
        }
    })?;
    ids[0].shrink_to_fit();
    sizes[0].shrink_to_fit();
    Ok(Known::Exact(ids, sizes))
}

/// The filter of every blob id in the catalog, read row by row in id
/// order (never a list of the rows).
fn load_prefixes(cat: &Catalog) -> CatalogResult<Filter> {
    let mut failed = None;
    let f = Filter::from_sorted(cat.blob_rows()? as usize, |push| {
        failed = cat.each_blob_id(|_, id, _| push(prefix(id))).err();
    });
    match failed {
        Some(e) => Err(e),
        None => Ok(f),
    }
}

/// The id prefixes of the blobs in `packs` (the packs deletion plans name).
pub fn pack_prefixes(cat: &Catalog, packs: &HashSet<PackId>) -> CatalogResult<HashSet<u32>> {
    let mut out = HashSet::new();
    for p in packs {
        out.extend(cat.pack_entries(p)?.iter().map(|e| prefix(&e.id.0)));
    }
    Ok(out)
}

fn other_kind(kind: BlobType) -> BlobType {
    match kind {
        BlobType::Data => BlobType::Tree,
        BlobType::Tree => BlobType::Data,
    }
}

/// Whether the catalog holds a blob, as far as memory can tell.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Member {
    No,
    Yes,
    Maybe,
}

/// The ids the catalog holds: those read at load, and those added since.
#[derive(Default)]
struct Members {
    loaded: Known,
    /// Blobs added since, in full while `loaded` is exact.
    exact: HashSet<(BlobType, BlobId)>,
    /// Id prefixes added since, once `loaded` is a filter.
    prefixes: HashSet<u32>,
    /// How many ids are kept in full before falling back to prefixes.
    limit: usize,
}

impl Members {
    fn add(&mut self, kind: BlobType, id: &BlobId) {
        match &self.loaded {
            Known::Exact(ids, _) => {
                if ids[kind as usize].binary_search(id).is_err()
                    && self.exact.insert((kind, *id))
                    && (ids[0].len() + ids[1].len() + self.exact.len() * ADDED_COST > self.limit
                        || self.exact.len() > self.limit / ADDED_SHARE)
                {
                    self.keep_prefixes_only();
                }
            }
            Known::Prefixes(_) => {
                self.prefixes.insert(prefix(&id.0));
            }
            Known::Unloaded => {}
        }
    }

    /// Keeps prefixes only, from now on.
    fn keep_prefixes_only(&mut self) {
        if let Known::Exact(ids, _) = &self.loaded {
            let mut all: Vec<u32> = ids.iter().flatten().map(|i| prefix(&i.0)).collect();
            all.sort_unstable();
            let f = Filter::from_sorted(all.len(), |push| all.iter().for_each(|p| push(*p)));
            self.prefixes = self.exact.drain().map(|(_, i)| prefix(&i.0)).collect();
            self.exact = HashSet::new();
            self.loaded = Known::Prefixes(f);
        }
    }

    fn lookup(&self, kind: BlobType, id: &BlobId) -> Member {
        match &self.loaded {
            Known::Exact(ids, _) => match ids[kind as usize].binary_search(id).is_ok()
                || self.exact.contains(&(kind, *id))
            {
                true => Member::Yes,
                false => Member::No,
            },
            Known::Prefixes(f) => {
                let p = prefix(&id.0);
                match f.contains(p) || self.prefixes.contains(&p) {
                    true => Member::Maybe,
                    false => Member::No,
                }
            }
            Known::Unloaded => Member::Maybe,
        }
    }

    /// The type and length of blob `id` (data first) when the ids loaded
    /// are exact and nothing was added since: `Some(None)` when no blob
    /// has that id; `None` when only the catalog can tell.
    fn size_of(&self, id: &BlobId) -> Option<Option<(BlobType, u32)>> {
        let Known::Exact(ids, sizes) = &self.loaded else {
            return None;
        };
        if !self.exact.is_empty() {
            return None;
        }
        let found = [BlobType::Data, BlobType::Tree]
            .into_iter()
            .find_map(|kind| {
                let k = kind as usize;
                ids[k].binary_search(id).ok().map(|i| (kind, sizes[k][i]))
            });
        Some(found)
    }

    fn bytes(&self) -> usize {
        let loaded = match &self.loaded {
            Known::Exact(ids, sizes) => {
                (ids[0].capacity() + ids[1].capacity()) * 32
                    + (sizes[0].capacity() + sizes[1].capacity()) * 4
            }
            Known::Prefixes(f) => f.bytes(),
            Known::Unloaded => 0,
        };
        loaded + self.exact.capacity() * 33 + self.prefixes.capacity() * 5
    }
}

#[derive(Default)]
pub struct BlobIndex {
    members: Members,
    /// Blobs of stored packs whose index object is not in the catalog yet.
    recent: HashMap<(BlobType, BlobId), (PackId, BlobEntry)>,
    /// Packs a deletion plan names, and the id prefixes of their blobs.
    doomed: HashSet<PackId>,
    doomed_prefixes: HashSet<u32>,
    readers: Vec<Mutex<BlobReader>>,
    next: AtomicUsize,
}

/// One batch of lookups' catalog connection, taken only when the catalog
/// is asked. From its second query on, the batch runs in one read
/// transaction (one snapshot of the catalog, its locks taken once instead
/// of per query), which ends when the batch does.
struct Asking<'a> {
    index: &'a BlobIndex,
    reader: Option<MutexGuard<'a, BlobReader>>,
    queries: u32,
}

impl Asking<'_> {
    fn reader(&mut self) -> Option<&BlobReader> {
        if self.reader.is_none() {
            self.reader = self.index.reader();
        }
        self.queries += 1;
        if self.queries == 2 {
            if let Some(r) = &self.reader {
                r.begin();
            }
        }
        self.reader.as_deref()
    }
}

impl Drop for Asking<'_> {
    fn drop(&mut self) {
        if let Some(r) = &self.reader {
            r.end();
        }
    }
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
            members: Members {
                limit: EXACT_LIMIT,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Replaces what the index knows with the catalog's content (given as
    /// [`load_known`] read it), the packs deletion plans name and the id
    /// prefixes of their blobs ([`pack_prefixes`]).
    pub fn reload(&mut self, known: Known, doomed: HashSet<PackId>, doomed_prefixes: HashSet<u32>) {
        self.members = Members {
            loaded: known,
            limit: self.members.limit,
            ..Default::default()
        };
        self.recent = HashMap::new();
        self.doomed = doomed;
        self.doomed_prefixes = doomed_prefixes;
    }

    /// Records the blobs of a pack this process stored.
    pub fn insert(&mut self, pack: PackId, entry: BlobEntry) {
        self.recent
            .entry((entry.kind, entry.id))
            .or_insert((pack, entry));
    }

    /// The catalog now holds `index`: its blobs are looked up there.
    pub fn indexed(&mut self, index: &IndexFile) {
        for p in &index.packs {
            for b in &p.blobs {
                self.members.add(b.kind, &b.id);
                let key = (b.kind, b.id);
                if self.recent.get(&key).is_some_and(|(pack, _)| *pack == p.id) {
                    self.recent.remove(&key);
                }
            }
        }
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

    /// What is known of blob `kind`/`id`; `entry` says whether the entry
    /// is wanted or only whether the blob is there. Memory answers when it
    /// can; else the catalog is asked, and a catalog that cannot be read
    /// counts as not holding the blob (the caller stores it again, or
    /// reports it missing).
    fn found(&self, ask: &mut Asking, kind: BlobType, id: &BlobId, entry: bool) -> Found {
        if let Some(&(p, e)) = self.recent.get(&(kind, *id)) {
            return Found::Live(Some((p, e)));
        }
        let member = self.members.lookup(kind, id);
        let doomed =
            !self.doomed_prefixes.is_empty() && self.doomed_prefixes.contains(&prefix(&id.0));
        let checked = match (member, entry || doomed) {
            (Member::No, _) => return Found::Absent,
            (Member::Yes, false) => return Found::Live(None),
            (Member::Maybe, false) => match ask.reader() {
                Some(r) => r.exists(kind, id).map(|e| match e {
                    true => Found::Live(None),
                    false => Found::Absent,
                }),
                None => return Found::Absent,
            },
            (_, true) => match ask.reader() {
                Some(r) => self.rows(r, id, |e| e.kind == kind),
                None => return Found::Absent,
            },
        };
        checked.unwrap_or_else(|e| {
            tracing::warn!(blob = %id, error = %e, "blob lookup failed");
            Found::Absent
        })
    }

    /// The catalog's rows of `id` that `wanted` accepts: a live one first.
    fn rows(
        &self,
        reader: &BlobReader,
        id: &BlobId,
        wanted: impl Fn(&BlobEntry) -> bool,
    ) -> CatalogResult<Found> {
        let mut rows = Vec::new();
        reader.locations(id, &mut rows)?;
        rows.retain(|(_, e)| wanted(e));
        let live = rows.iter().find(|(p, _)| !self.doomed.contains(p));
        Ok(match (live, rows.first()) {
            (Some(l), _) => Found::Live(Some(*l)),
            (None, Some((p, e))) => Found::Doomed(*p, *e),
            (None, None) => Found::Absent,
        })
    }

    fn asking(&self) -> Asking<'_> {
        Asking {
            index: self,
            reader: None,
            queries: 0,
        }
    }

    /// Where blob `kind`/`id` lives: a pack no plan names when there is
    /// one. When the id is stored only as a blob of the other type, that
    /// entry (whose `kind` then differs: the caller reports the mismatch).
    pub fn get(&self, kind: BlobType, id: &BlobId) -> Option<(PackId, BlobEntry)> {
        self.get_with(&mut self.asking(), kind, id)
    }

    fn get_with(
        &self,
        ask: &mut Asking,
        kind: BlobType,
        id: &BlobId,
    ) -> Option<(PackId, BlobEntry)> {
        let found = match self.found(ask, kind, id, true) {
            Found::Absent => {
                let other = other_kind(kind);
                match self.recent.get(&(other, *id)) {
                    Some(l) => Found::Live(Some(*l)),
                    None if self.members.lookup(other, id) == Member::No => Found::Absent,
                    None => match ask.reader() {
                        Some(r) => self.rows(r, id, |_| true).unwrap_or(Found::Absent),
                        None => Found::Absent,
                    },
                }
            }
            found => found,
        };
        match found {
            Found::Live(l) => l,
            Found::Doomed(p, e) => Some((p, e)),
            Found::Absent => None,
        }
    }

    /// [`BlobIndex::get`] for every id, with one reader.
    pub fn get_all(&self, kind: BlobType, ids: &[BlobId]) -> Vec<Option<(PackId, BlobEntry)>> {
        let mut ask = self.asking();
        ids.iter()
            .map(|id| self.get_with(&mut ask, kind, id))
            .collect()
    }

    /// The type and length before compression of the blob each of `ids`
    /// names, looked up as a data blob first (as [`BlobIndex::get`]);
    /// answered from memory while every id is held there, with one reader
    /// otherwise.
    pub fn sizes_all(&self, ids: &[BlobId]) -> Vec<Option<(BlobType, u32)>> {
        let mut ask = self.asking();
        let in_memory = |id| match self.recent.is_empty() {
            true => self.members.size_of(id),
            false => None,
        };
        ids.iter()
            .map(|id| match in_memory(id) {
                Some(known) => known,
                None => self
                    .get_with(&mut ask, BlobType::Data, id)
                    .map(|(_, e)| (e.kind, e.raw_length)),
            })
            .collect()
    }

    /// Whether a writer may reuse the stored blob instead of storing it
    /// again: false for blobs only in packs a deletion plan names, and for
    /// an id stored only as a blob of the other type.
    pub fn contains(&self, kind: BlobType, id: &BlobId) -> bool {
        self.contains_all(kind, std::slice::from_ref(id))
    }

    /// [`BlobIndex::contains`] for every id, with one reader.
    pub fn contains_all(&self, kind: BlobType, ids: &[BlobId]) -> bool {
        let mut ask = self.asking();
        ids.iter()
            .all(|id| matches!(self.found(&mut ask, kind, id, false), Found::Live(_)))
    }

    /// Whether blob `kind`/`id` can be read at all (in a planned pack or
    /// not).
    pub fn locates(&self, kind: BlobType, id: &BlobId) -> bool {
        self.locates_all(kind, std::slice::from_ref(id))[0]
    }

    /// [`BlobIndex::locates`] of each of `ids`, with one reader.
    pub fn locates_all(&self, kind: BlobType, ids: &[BlobId]) -> Vec<bool> {
        let mut ask = self.asking();
        ids.iter()
            .map(|id| !matches!(self.found(&mut ask, kind, id, false), Found::Absent))
            .collect()
    }

    /// Bytes of memory the membership structures take (for tests and logs).
    pub fn memory_bytes(&self) -> usize {
        self.members.bytes() + self.doomed_prefixes.capacity() * 5
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::blob::BlobType;

    const D: BlobType = BlobType::Data;
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

    /// Loads the catalog into `idx`, keeping ids in full up to `limit`.
    fn reload(idx: &mut BlobIndex, cat: &Catalog, doomed: &[u8], limit: usize) {
        let doomed: HashSet<PackId> = doomed.iter().map(|p| PackId([*p; 32])).collect();
        let prefixes = pack_prefixes(cat, &doomed).unwrap();
        idx.members.limit = limit;
        idx.reload(load_known(cat, limit).unwrap(), doomed, prefixes);
    }

    /// Both ways of knowing ids: in full, and as prefixes only.
    const LIMITS: [usize; 2] = [EXACT_LIMIT, 0];

    #[test]
    fn ids_sharing_a_prefix_are_told_apart() {
        for limit in LIMITS {
            let dir = tempfile::tempdir().unwrap();
            let (mut cat, mut idx) = open(&dir);
            let (a, b) = (id(7, 1), id(7, 2));
            cat.add_index(&IndexId([1; 32]), &index(&[(1, vec![entry(a, 0)])]))
                .unwrap();
            reload(&mut idx, &cat, &[], limit);
            assert!(idx.contains(D, &BlobId(a)) && idx.locates(D, &BlobId(a)));
            // Same four first bytes, another blob: the filter hits, the
            // catalog says no.
            assert!(!idx.contains(D, &BlobId(b)) && !idx.locates(D, &BlobId(b)));
            assert_eq!(idx.get(D, &BlobId(b)), None);
            assert!(!idx.contains(D, &BlobId(id(8, 1))));
            assert_eq!(idx.get(D, &BlobId(a)), Some((PackId([1; 32]), entry(a, 0))));
        }
    }

    #[test]
    fn doomed_blobs_are_readable_but_not_offered_for_dedup() {
        for limit in LIMITS {
            let dir = tempfile::tempdir().unwrap();
            let (mut cat, mut idx) = open(&dir);
            let (only_doomed, both, other) = (id(1, 1), id(2, 2), id(3, 3));
            let i = index(&[
                (5, vec![entry(only_doomed, 0), entry(both, 10)]),
                (6, vec![entry(both, 0), entry(other, 10)]),
            ]);
            cat.add_index(&IndexId([1; 32]), &i).unwrap();
            reload(&mut idx, &cat, &[5], limit);
            assert!(!idx.contains(D, &BlobId(only_doomed)));
            assert!(idx.locates(D, &BlobId(only_doomed)));
            assert_eq!(idx.get(D, &BlobId(only_doomed)).unwrap().0, PackId([5; 32]));
            // A copy outside the planned pack is the one offered and read.
            assert!(idx.contains(D, &BlobId(both)));
            assert_eq!(
                idx.get(D, &BlobId(both)),
                Some((PackId([6; 32]), entry(both, 0)))
            );
            assert!(idx.contains(D, &BlobId(other)));
            assert!(!idx.contains_all(D, &[BlobId(both), BlobId(only_doomed)]));
            // Stored again by this process: offered for dedup again.
            idx.insert(PackId([9; 32]), entry(only_doomed, 0));
            assert!(idx.contains(D, &BlobId(only_doomed)));
        }
    }

    #[test]
    fn recorded_blobs_move_to_the_catalog_once_indexed() {
        for limit in LIMITS {
            let dir = tempfile::tempdir().unwrap();
            let (mut cat, mut idx) = open(&dir);
            reload(&mut idx, &cat, &[], limit);
            let a = entry(id(3, 3), 0);
            idx.insert(PackId([4; 32]), a);
            assert_eq!(idx.get(D, &a.id), Some((PackId([4; 32]), a)));
            let i = index(&[(4, vec![a])]);
            cat.add_index(&IndexId([2; 32]), &i).unwrap();
            idx.indexed(&i);
            assert!(idx.recent.is_empty());
            assert_eq!(idx.get_all(D, &[a.id]), [Some((PackId([4; 32]), a))]);
            assert!(idx.contains_all(D, &[a.id]));
            assert!(!idx.contains(D, &BlobId(id(3, 4))));
        }
    }

    #[test]
    fn a_tree_and_a_file_of_the_same_bytes_are_two_blobs() {
        for limit in LIMITS {
            let dir = tempfile::tempdir().unwrap();
            let (mut cat, mut idx) = open(&dir);
            let same = id(9, 9);
            let mut tree = entry(same, 0);
            tree.kind = BlobType::Tree;
            cat.add_index(&IndexId([1; 32]), &index(&[(1, vec![tree])]))
                .unwrap();
            reload(&mut idx, &cat, &[], limit);
            assert!(idx.contains(BlobType::Tree, &BlobId(same)));
            // Not offered to a writer of file data; found, as a tree, by a
            // reader (which then reports the mismatch).
            assert!(!idx.contains(D, &BlobId(same)) && !idx.locates(D, &BlobId(same)));
            assert_eq!(idx.get(D, &BlobId(same)), Some((PackId([1; 32]), tree)));
            // Stored again as data: each type finds its own.
            let data = entry(same, 0);
            let i = index(&[(2, vec![data])]);
            idx.insert(PackId([2; 32]), data);
            assert!(idx.contains(D, &BlobId(same)));
            cat.add_index(&IndexId([2; 32]), &i).unwrap();
            idx.indexed(&i);
            assert_eq!(idx.get(D, &BlobId(same)), Some((PackId([2; 32]), data)));
            assert_eq!(
                idx.get(BlobType::Tree, &BlobId(same)),
                Some((PackId([1; 32]), tree))
            );
            reload(&mut idx, &cat, &[], limit);
            assert_eq!(idx.get(D, &BlobId(same)), Some((PackId([2; 32]), data)));
            assert!(idx.contains(D, &BlobId(same)) && idx.contains(BlobType::Tree, &BlobId(same)));
        }
    }

    #[test]
    fn ids_kept_in_full_fall_back_to_prefixes_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let (mut cat, mut idx) = open(&dir);
        let first = index(&[(1, vec![entry(id(1, 1), 0), entry(id(2, 2), 10)])]);
        cat.add_index(&IndexId([1; 32]), &first).unwrap();
        reload(&mut idx, &cat, &[], 3);
        assert!(matches!(idx.members.loaded, Known::Exact(..)));
        let more = index(&[(2, vec![entry(id(3, 3), 0), entry(id(4, 4), 10)])]);
        cat.add_index(&IndexId([2; 32]), &more).unwrap();
        idx.indexed(&more);
        assert!(matches!(idx.members.loaded, Known::Prefixes(_)));
        assert!((1..=4u8).all(|n| idx.contains(D, &BlobId(id(n as u32, n)))));
        assert!(!idx.contains(D, &BlobId(id(4, 5))) && !idx.contains(D, &BlobId(id(5, 5))));
    }

    /// A catalog of `loaded` ids (1..=loaded) read into an index with
    /// `limit`, then `added` more ids indexed; whether ids stay exact.
    fn exact_after(limit: usize, loaded: u32, added: u32) -> bool {
        let dir = tempfile::tempdir().unwrap();
        let (mut cat, mut idx) = open(&dir);
        let ids = |from: u32, to: u32| (from..to).map(|n| entry(id(n, n as u8), 0)).collect();
        let first = index(&[(1, ids(1, loaded + 1))]);
        cat.add_index(&IndexId([1; 32]), &first).unwrap();
        reload(&mut idx, &cat, &[], limit);
        assert!(matches!(idx.members.loaded, Known::Exact(..)));
        let more = index(&[(2, ids(loaded + 1, loaded + added + 1))]);
        cat.add_index(&IndexId([2; 32]), &more).unwrap();
        idx.indexed(&more);
        let all = loaded + added;
        assert!((1..=all).all(|n| idx.contains(D, &BlobId(id(n, n as u8)))));
        assert!(!idx.contains(D, &BlobId(id(all + 1, (all + 1) as u8))));
        matches!(idx.members.loaded, Known::Exact(..))
    }

    #[test]
    fn ids_added_since_the_load_count_for_their_memory() {
        // Each added id counts ADDED_COST (3) loaded ones: 16 + 2·3 = 22
        // is within 24, 16 + 3·3 = 25 is not.
        assert!(exact_after(24, 16, 2));
        assert!(!exact_after(24, 16, 3));
        // And at most limit / 8 are added in full: 10 of 80, not 11,
        // however far the weighted count is from the limit.
        assert!(exact_after(80, 2, 10));
        assert!(!exact_after(80, 2, 11));
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
        let exact = match load_known(&cat, EXACT_LIMIT).unwrap() {
            Known::Exact(ids, _) => ids,
            _ => panic!("20,000 ids are kept in full"),
        };
        assert_eq!((exact[0].len(), exact[1].len()), (20_000, 0));
        assert_eq!(filter.low.len(), 20_000);
        assert!((0..20_000u32).all(|n| filter.contains(prefix(&blobs[n as usize].id.0))));
        // A prefix of no blob: the bucket holds others, not it.
        let mut other = prefix(&blobs[0].id.0);
        while blobs.iter().any(|b| prefix(&b.id.0) == other) {
            other = other.wrapping_add(1);
        }
        assert!(!filter.contains(other));
        idx.reload(Known::Prefixes(filter), HashSet::new(), HashSet::new());
        assert!(idx.memory_bytes() <= 20_000 * 2 + (BUCKETS + 1) * 4);
        assert!(blobs.iter().all(|b| idx.contains(D, &b.id)));
        assert_eq!(
            idx.get(D, &blobs[777].id),
            Some((PackId([1; 32]), blobs[777]))
        );
    }

    #[test]
    fn sizes_come_from_memory_and_from_the_catalog_alike() {
        let dir = tempfile::tempdir().unwrap();
        let (mut cat, mut idx) = open(&dir);
        let mut tree = entry(id(2, 2), 10);
        tree.kind = BlobType::Tree;
        tree.raw_length = 77;
        let mut big = entry(id(3, 3), 20);
        big.raw_length = 4 << 20;
        cat.add_index(
            &IndexId([1; 32]),
            &index(&[(1, vec![entry(id(1, 1), 0), tree, big])]),
        )
        .unwrap();
        let ask: Vec<BlobId> = [id(1, 1), id(2, 2), id(3, 3), id(4, 4)]
            .into_iter()
            .map(BlobId)
            .collect();
        let want = vec![
            Some((D, 10)),
            Some((BlobType::Tree, 77)),
            Some((D, 4 << 20)),
            None,
        ];
        reload(&mut idx, &cat, &[], EXACT_LIMIT);
        assert!(matches!(idx.members.loaded, Known::Exact(..)));
        assert_eq!(idx.sizes_all(&ask), want);
        reload(&mut idx, &cat, &[], 1);
        assert!(matches!(idx.members.loaded, Known::Prefixes(_)));
        assert_eq!(idx.sizes_all(&ask), want);
        idx.reload(Known::Unloaded, HashSet::new(), HashSet::new());
        assert_eq!(idx.sizes_all(&ask), want);
    }

    #[test]
    fn unloaded_ids_are_asked_of_the_catalog() {
        let dir = tempfile::tempdir().unwrap();
        let (mut cat, mut idx) = open(&dir);
        let first = index(&[(1, vec![entry(id(1, 1), 0), entry(id(2, 2), 10)])]);
        cat.add_index(&IndexId([1; 32]), &first).unwrap();
        idx.reload(Known::Unloaded, HashSet::new(), HashSet::new());
        assert_eq!(idx.memory_bytes(), 0);
        assert!(idx.contains(D, &BlobId(id(1, 1))) && idx.contains(D, &BlobId(id(2, 2))));
        assert!(!idx.contains(D, &BlobId(id(3, 3))));
        assert!(!idx.contains(BlobType::Tree, &BlobId(id(1, 1))));
        assert_eq!(
            idx.get(D, &BlobId(id(2, 2))),
            Some((PackId([1; 32]), entry(id(2, 2), 10)))
        );
        // A blob stored later: known from its pack, then from the catalog.
        let later = entry(id(3, 3), 0);
        idx.insert(PackId([2; 32]), later);
        assert!(idx.contains(D, &BlobId(id(3, 3))));
        let more = index(&[(2, vec![later])]);
        cat.add_index(&IndexId([2; 32]), &more).unwrap();
        idx.indexed(&more);
        assert_eq!(
            idx.get(D, &BlobId(id(3, 3))),
            Some((PackId([2; 32]), later))
        );
        assert_eq!(idx.memory_bytes(), 0);
    }
}
