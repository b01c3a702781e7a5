//! Point lookups of blob locations, on read-only connections of their own
//! (the catalog is in WAL mode, so they run beside its writer), and the
//! streamed scan of blob ids that the in-memory filter is built from.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::{bad_column, column_id, Catalog, CatalogError, CatalogResult};
use crate::format::blob::{BlobEntry, BlobType};
use crate::format::id::{BlobId, PackId};

/// Pages a reader keeps in memory (KiB; SQLite's default is 2 MiB): the
/// upper levels of the blobs table's B-tree stay cached.
const READER_CACHE_KIB: i64 = 8 << 10;

/// A read-only connection for point lookups of the `blobs` table.
pub struct BlobReader {
    conn: Connection,
    path: PathBuf,
}

impl BlobReader {
    pub fn open(path: &Path) -> CatalogResult<Self> {
        let err = |source| CatalogError {
            path: path.display().to_string(),
            source,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(err)?;
        conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)
            .map_err(err)?;
        Ok(BlobReader {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn err(&self, source: rusqlite::Error) -> CatalogError {
        CatalogError {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Starts a read transaction: the queries until [`BlobReader::end`]
    /// see one snapshot of the catalog and take its locks once. A failure
    /// only leaves each query in a transaction of its own.
    pub fn begin(&self) {
        if self.conn.is_autocommit() {
            let _ = self
                .conn
                .prepare_cached("BEGIN")
                .and_then(|mut s| s.execute([]));
        }
    }

    /// Ends the read transaction [`BlobReader::begin`] started, so that the
    /// next queries see what writers have committed since.
    pub fn end(&self) {
        if !self.conn.is_autocommit()
            && self
                .conn
                .prepare_cached("COMMIT")
                .and_then(|mut s| s.execute([]))
                .is_err()
        {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    /// Whether any pack holds blob `id` as a blob of type `kind`.
    pub fn exists(&self, kind: BlobType, id: &BlobId) -> CatalogResult<bool> {
        self.conn
            .prepare_cached("SELECT 1 FROM blobs WHERE id = ?1 AND kind = ?2 LIMIT 1")
            .and_then(|mut st| {
                st.query_row(rusqlite::params![&id.0[..], kind as u8], |_| Ok(()))
                    .optional()
            })
            .map(|r| r.is_some())
            .map_err(|e| self.err(e))
    }

    /// Every location of blob `id`, ordered by pack id, appended to `out`.
    pub fn locations(&self, id: &BlobId, out: &mut Vec<(PackId, BlobEntry)>) -> CatalogResult<()> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT pack, kind, codec, offset, length, raw_length FROM blobs
                 WHERE id = ?1 ORDER BY pack",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([&id.0[..]], |r| {
                let pack: Vec<u8> = r.get(0)?;
                Ok((
                    column_id(&pack, 0)?,
                    BlobEntry {
                        kind: BlobType::from_u8(r.get(1)?).ok_or_else(|| bad_column(1))?,
                        codec: r.get(2)?,
                        id: *id,
                        offset: r.get::<_, i64>(3)? as u64,
                        length: r.get(4)?,
                        raw_length: r.get(5)?,
                    },
                ))
            })
            .map_err(|e| self.err(e))?;
        for row in rows {
            out.push(row.map_err(|e| self.err(e))?);
        }
        Ok(())
    }
}

impl Catalog {
    /// A read-only connection to this catalog for point lookups.
    pub fn reader(&self) -> CatalogResult<BlobReader> {
        BlobReader::open(&self.path)
    }

    /// The number of blob rows (a blob stored in two packs counts twice).
    pub fn blob_rows(&self) -> CatalogResult<u64> {
        self.conn
            .query_row("SELECT COUNT(*) FROM blobs", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// The number of distinct blobs.
    pub fn distinct_blobs(&self) -> CatalogResult<u64> {
        self.conn
            .query_row("SELECT COUNT(DISTINCT id) FROM blobs", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// Calls `f` with the type and id of every blob row, in id order,
    /// without collecting them (the table may hold tens of millions).
    pub fn each_blob_id(&self, mut f: impl FnMut(BlobType, &[u8; 32], u32)) -> CatalogResult<()> {
        let mut st = self
            .conn
            .prepare("SELECT id, kind, raw_length FROM blobs ORDER BY id")
            .map_err(|e| self.err(e))?;
        let mut rows = st.query([]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let id = r.get_ref(0).map_err(|e| self.err(e))?;
            let bytes = id.as_blob().map_err(|e| self.err(e.into()))?;
            let id: &[u8; 32] = bytes.try_into().map_err(|_| self.err(bad_column(0)))?;
            let kind = r.get::<_, u8>(1).map_err(|e| self.err(e))?;
            let kind = BlobType::from_u8(kind).ok_or_else(|| self.err(bad_column(1)))?;
            let raw_length = r.get::<_, u32>(2).map_err(|e| self.err(e))?;
            f(kind, id, raw_length);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::id::IndexId;
    use crate::format::index::{IndexFile, IndexPack};

    fn entry(id: u8, offset: u64) -> BlobEntry {
        BlobEntry {
            kind: BlobType::Data,
            codec: 0,
            id: BlobId([id; 32]),
            offset,
            length: 10,
            raw_length: 12,
        }
    }

    #[test]
    fn a_reader_sees_what_the_writer_commits_in_pack_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut cat = Catalog::open(&dir.path().join("c.db")).unwrap();
        let reader = cat.reader().unwrap();
        assert!(!reader.exists(BlobType::Data, &BlobId([5; 32])).unwrap());
        let index = IndexFile {
            packs: vec![
                IndexPack {
                    id: PackId([9; 32]),
                    size: 100,
                    blobs: vec![entry(5, 40), entry(6, 0)],
                },
                IndexPack {
                    id: PackId([3; 32]),
                    size: 100,
                    blobs: vec![entry(5, 20)],
                },
            ],
        };
        cat.add_index(&IndexId([1; 32]), &index).unwrap();
        assert!(reader.exists(BlobType::Data, &BlobId([5; 32])).unwrap());
        assert!(!reader.exists(BlobType::Tree, &BlobId([5; 32])).unwrap());
        let mut out = Vec::new();
        reader.locations(&BlobId([5; 32]), &mut out).unwrap();
        assert_eq!(
            out,
            [
                (PackId([3; 32]), entry(5, 20)),
                (PackId([9; 32]), entry(5, 40))
            ]
        );
        // In a read transaction the reader keeps its snapshot; once it
        // ends, it sees what was committed meanwhile.
        reader.begin();
        assert!(!reader.exists(BlobType::Data, &BlobId([7; 32])).unwrap());
        let more = IndexFile {
            packs: vec![IndexPack {
                id: PackId([4; 32]),
                size: 100,
                blobs: vec![entry(7, 0)],
            }],
        };
        cat.add_index(&IndexId([2; 32]), &more).unwrap();
        assert!(!reader.exists(BlobType::Data, &BlobId([7; 32])).unwrap());
        reader.end();
        assert!(reader.exists(BlobType::Data, &BlobId([7; 32])).unwrap());
        cat.remove_index(&IndexId([2; 32])).unwrap();
        let mut ids = Vec::new();
        cat.each_blob_id(|_, id, _| ids.push(id[0])).unwrap();
        assert_eq!(ids, [5, 5, 6]);
        assert_eq!(cat.blob_rows().unwrap(), 3);
    }
}
