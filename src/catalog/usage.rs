//! What `prune` asks the catalog: which blobs the snapshots use (a
//! temporary table filled while walking their trees, so that the set of
//! used blobs lives on disk, not in memory) and how much of each pack is
//! used.

use rusqlite::params;

use super::{column_id, Catalog, CatalogResult};
use crate::format::blob::{BlobEntry, BlobType};
use crate::format::id::{BlobId, PackId};

/// How much of one indexed pack the snapshots use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackUsage {
    pub pack: PackId,
    pub size: u64,
    pub blobs: u64,
    pub used_blobs: u64,
    /// Stored (sealed) bytes of the used blobs.
    pub used_bytes: u64,
}

impl Catalog {
    /// Empties (or creates) the set of used blobs and the set of packs
    /// about to be deleted. They are scratch tables, rebuilt by every run
    /// that needs them, so they have no rollback journal: a memory journal
    /// held the prior image of every page a batch of marks touched, which
    /// for ids spread over a large set is nearly all of it (200 MiB at
    /// 5 M used blobs).
    pub fn reset_usage(&self) -> CatalogResult<()> {
        self.conn
            .execute_batch(
                "PRAGMA temp.journal_mode = OFF;
                 CREATE TEMP TABLE IF NOT EXISTS used_blobs (id BLOB NOT NULL, kind INTEGER NOT NULL, PRIMARY KEY (id, kind)) WITHOUT ROWID;
                 CREATE TEMP TABLE IF NOT EXISTS doomed (pack BLOB PRIMARY KEY) WITHOUT ROWID;
                 DELETE FROM used_blobs; DELETE FROM doomed;",
            )
            .map_err(|e| self.err(e))
    }

    /// Adds blobs of type `kind` to the used set; returns those that were
    /// not in it yet. (A data blob and a tree blob may share an id: each is
    /// used as what it is.)
    pub fn mark_used(&mut self, kind: BlobType, ids: &[BlobId]) -> CatalogResult<Vec<BlobId>> {
        let path = self.path.display().to_string();
        let err = |source| super::CatalogError {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        let mut new = Vec::new();
        {
            let mut st = tx
                .prepare_cached("INSERT OR IGNORE INTO used_blobs (id, kind) VALUES (?1, ?2)")
                .map_err(err)?;
            for id in ids {
                if st.execute(params![&id.0[..], kind as u8]).map_err(err)? > 0 {
                    new.push(*id);
                }
            }
        }
        tx.commit().map_err(err)?;
        Ok(new)
    }

    /// Every indexed pack with how much of it the used set covers.
    pub fn pack_usage(&self) -> CatalogResult<Vec<PackUsage>> {
        self.rows(
            "SELECT p.id, p.size, COUNT(b.id), COUNT(u.id), COALESCE(SUM(CASE WHEN u.id IS NULL THEN 0 ELSE b.length END), 0)
             FROM packs p LEFT JOIN blobs b ON b.pack = p.id LEFT JOIN used_blobs u ON u.id = b.id AND u.kind = b.kind
             GROUP BY p.id ORDER BY p.id",
            |r| {
                Ok(PackUsage {
                    pack: column_id(&r.get::<_, Vec<u8>>(0)?, 0)?,
                    size: r.get::<_, i64>(1)? as u64,
                    blobs: r.get::<_, i64>(2)? as u64,
                    used_blobs: r.get::<_, i64>(3)? as u64,
                    used_bytes: r.get::<_, i64>(4)? as u64,
                })
            },
        )
    }

    /// Every blob the index records in one pack, in pack order.
    pub fn pack_entries(&self, pack: &PackId) -> CatalogResult<Vec<BlobEntry>> {
        self.entries_of(
            "SELECT id, kind, codec, offset, length, raw_length FROM blobs
             WHERE pack = ?1 ORDER BY offset",
            pack,
        )
    }

    /// The used blobs of one pack, in pack order.
    pub fn used_entries(&self, pack: &PackId) -> CatalogResult<Vec<BlobEntry>> {
        self.entries_of(
            "SELECT b.id, b.kind, b.codec, b.offset, b.length, b.raw_length FROM blobs b
             JOIN used_blobs u ON u.id = b.id AND u.kind = b.kind WHERE b.pack = ?1 ORDER BY b.offset",
            pack,
        )
    }

    /// The blob entries `sql` selects for `pack` (id, kind, codec, offset,
    /// length, raw length).
    fn entries_of(&self, sql: &str, pack: &PackId) -> CatalogResult<Vec<BlobEntry>> {
        let mut st = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = st
            .query_map([&pack.0[..]], |r| {
                Ok(BlobEntry {
                    id: column_id(&r.get::<_, Vec<u8>>(0)?, 0)?,
                    kind: BlobType::from_u8(r.get(1)?).ok_or_else(|| super::bad_column(1))?,
                    codec: r.get(2)?,
                    offset: r.get::<_, i64>(3)? as u64,
                    length: r.get(4)?,
                    raw_length: r.get(5)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Of `packs` (about to be deleted together), those that hold a used
    /// blob found in no pack outside them: they must stay.
    pub fn still_needed(&mut self, packs: &[PackId]) -> CatalogResult<Vec<PackId>> {
        self.conn
            .execute("DELETE FROM doomed", [])
            .map_err(|e| self.err(e))?;
        {
            let mut st = self
                .conn
                .prepare_cached("INSERT OR IGNORE INTO doomed (pack) VALUES (?1)")
                .map_err(|e| self.err(e))?;
            for p in packs {
                st.execute(params![&p.0[..]]).map_err(|e| self.err(e))?;
            }
        }
        if packs.is_empty() {
            return Ok(Vec::new());
        }
        // From the doomed packs' rows (CROSS JOIN keeps that order: not a
        // scan of every blob).
        self.rows(
            "SELECT DISTINCT b.pack FROM doomed d CROSS JOIN blobs b ON b.pack = d.pack
             CROSS JOIN used_blobs u ON u.id = b.id AND u.kind = b.kind
             WHERE NOT EXISTS (SELECT 1 FROM blobs o WHERE o.id = b.id AND o.kind = b.kind
                               AND o.pack NOT IN (SELECT pack FROM doomed))",
            |r| column_id(&r.get::<_, Vec<u8>>(0)?, 0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::id::IndexId;
    use crate::format::index::{IndexFile, IndexPack};

    fn entry(n: u8) -> BlobEntry {
        BlobEntry {
            kind: BlobType::Data,
            codec: 0,
            id: BlobId([n; 32]),
            offset: 0,
            length: 10,
            raw_length: 10,
        }
    }

    fn index(packs: &[(u8, u8)]) -> IndexFile {
        IndexFile {
            packs: packs
                .iter()
                .map(|(p, b)| IndexPack {
                    id: PackId([*p; 32]),
                    size: 100,
                    blobs: vec![entry(*b)],
                })
                .collect(),
        }
    }

    #[test]
    fn a_pack_named_by_two_index_objects_survives_the_removal_of_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut cat = Catalog::open(&dir.path().join("c.db")).unwrap();
        let (old, new) = (IndexId([1; 32]), IndexId([2; 32]));
        // The rewritten index object is recorded first, the old one after
        // (another process read it before it was deleted).
        cat.add_index(&new, &index(&[(7, 70)])).unwrap();
        cat.add_index(&old, &index(&[(7, 70), (8, 80)])).unwrap();
        cat.remove_index(&old).unwrap();
        let packs: Vec<PackId> = cat
            .blob_locations()
            .unwrap()
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(packs, [PackId([7; 32])]);
        cat.remove_index(&new).unwrap();
        assert!(cat.blob_locations().unwrap().is_empty());
        assert!(cat.packs().unwrap().is_empty());
    }

    #[test]
    fn usage_counts_used_blobs_per_pack() {
        let dir = tempfile::tempdir().unwrap();
        let mut cat = Catalog::open(&dir.path().join("c.db")).unwrap();
        cat.add_index(&IndexId([1; 32]), &index(&[(7, 70), (8, 80), (9, 70)]))
            .unwrap();
        cat.reset_usage().unwrap();
        assert_eq!(
            cat.mark_used(BlobType::Data, &[BlobId([70; 32])])
                .unwrap()
                .len(),
            1
        );
        assert!(cat
            .mark_used(BlobType::Data, &[BlobId([70; 32])])
            .unwrap()
            .is_empty());
        // A tree of the same id is another blob, and no pack holds it.
        assert_eq!(
            cat.mark_used(BlobType::Tree, &[BlobId([70; 32])])
                .unwrap()
                .len(),
            1
        );
        let used: Vec<u64> = cat
            .pack_usage()
            .unwrap()
            .iter()
            .map(|u| u.used_blobs)
            .collect();
        assert_eq!(used, [1, 0, 1]);
        // Deleting 7 and 9 together would lose blob 70; 8 alone can go.
        let needed = cat
            .still_needed(&[PackId([7; 32]), PackId([9; 32])])
            .unwrap();
        assert_eq!(needed.len(), 2);
        assert!(cat.still_needed(&[PackId([7; 32])]).unwrap().is_empty());
        assert!(cat.still_needed(&[PackId([8; 32])]).unwrap().is_empty());
    }
}
