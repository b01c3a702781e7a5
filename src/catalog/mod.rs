//! The local catalog: a SQLite cache of one repository's snapshots, blob
//! locations and trees. Everything in it can be rebuilt from the repository.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

mod lookup;
mod regions;
mod usage;
pub use lookup::BlobReader;
pub use usage::PackUsage;

use rusqlite::{params, Connection, OptionalExtension};

#[cfg(test)]
use crate::format::blob::{BlobEntry, BlobType};
use crate::format::id::{BlobId, IndexId, PackId, SnapshotId};
use crate::format::index::IndexFile;
use crate::format::snapshot::Snapshot;

const SCHEMA_VERSION: i64 = 4;

/// Pages the catalog's own connection keeps in memory (KiB; SQLite's
/// default is 2 MiB), for the main database and for the temporary tables
/// of a prune: index objects added and the used set filled touch pages all
/// over the blobs table, and reading them back from the file for every
/// row costs more than the rows.
const CACHE_KIB: i64 = 8 << 10;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS indexes (id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS packs (
    id BLOB PRIMARY KEY, size INTEGER NOT NULL, index_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (
    id BLOB NOT NULL, pack BLOB NOT NULL, kind INTEGER NOT NULL, codec INTEGER NOT NULL,
    offset INTEGER NOT NULL, length INTEGER NOT NULL, raw_length INTEGER NOT NULL,
    PRIMARY KEY (id, pack)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS snapshots (
    id TEXT PRIMARY KEY, time TEXT NOT NULL, host TEXT NOT NULL, paths TEXT NOT NULL,
    tags TEXT NOT NULL, tree TEXT NOT NULL, json TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS snapshots_time ON snapshots (time);
CREATE TABLE IF NOT EXISTS trees (id BLOB PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS region_objects (
    region TEXT NOT NULL, key TEXT NOT NULL, size INTEGER NOT NULL,
    PRIMARY KEY (region, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS snapshot_times (id TEXT PRIMARY KEY, time TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS index_packs (
    index_id TEXT NOT NULL, pack BLOB NOT NULL, PRIMARY KEY (index_id, pack)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS index_packs_pack ON index_packs (pack);
-- Covering: a pack's entries (check, prune) come from the index alone.
CREATE INDEX IF NOT EXISTS blobs_pack ON blobs (pack, offset, kind, codec, length, raw_length);
";

const DROP_ALL: &str = "
DROP TABLE IF EXISTS meta; DROP TABLE IF EXISTS indexes; DROP TABLE IF EXISTS packs;
DROP TABLE IF EXISTS blobs; DROP TABLE IF EXISTS snapshots; DROP TABLE IF EXISTS trees;
DROP TABLE IF EXISTS region_objects; DROP TABLE IF EXISTS snapshot_times;
DROP TABLE IF EXISTS index_packs;
";

/// A 32-byte id stored in column `col`; anything else is a damaged row.
fn column_id<T: From<[u8; 32]>>(b: &[u8], col: usize) -> rusqlite::Result<T> {
    let a: [u8; 32] = b.try_into().map_err(|_| bad_column(col))?;
    Ok(T::from(a))
}

fn bad_column(col: usize) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(col, "id".into(), rusqlite::types::Type::Blob)
}

#[derive(Debug, thiserror::Error)]
#[error("catalog {path}: {source}; if it stays broken, run `ferry catalog rebuild`")]
pub struct CatalogError {
    pub path: String,
    #[source]
    pub source: rusqlite::Error,
}

pub type CatalogResult<T> = Result<T, CatalogError>;

pub use regions::Totals;

pub struct Catalog {
    conn: Connection,
    path: PathBuf,
    /// Compresses cached trees (created on first use).
    tree_zstd: Option<zstd::bulk::Compressor<'static>>,
}

/// Cached trees are stored zstd-compressed at this level: a fifth of the
/// bytes to write and read back. Rows of plain JSON (from earlier versions)
/// are read as they are: JSON never starts with zstd's magic number.
const TREE_ZSTD_LEVEL: i32 = 1;
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// `$XDG_CACHE_HOME/ferry` (or `~/.cache/ferry`).
fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("ferry")
}

/// Where a repository's catalog lives unless `--catalog` says otherwise:
/// `$XDG_CACHE_HOME/ferry/<repo id>/catalog.db` (or `~/.cache/...`).
pub fn default_path(repo_id: &str) -> PathBuf {
    cache_dir().join(repo_id).join("catalog.db")
}

/// The catalog of a command given one region of a config file
/// (`--region NAME`), unless `--catalog` or the config says otherwise:
/// `<cache>/ferry/region-<name>-<hash of its URL>/catalog.db`. Every region
/// of a repository has its id; a catalog of its own keeps such a command
/// (`check --region eu`) from seeing what a backup to another region is
/// adding to the repository's catalog while it runs.
pub fn region_path(name: &str, url: &str) -> PathBuf {
    let hash = blake3::hash(url.as_bytes()).to_hex();
    let safe: String = name
        .chars()
        .map(
            |c| match c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                true => c,
                false => '_',
            },
        )
        .collect();
    cache_dir()
        .join(format!("region-{safe}-{}", &hash[..12]))
        .join("catalog.db")
}

impl Catalog {
    /// Makes `to` a copy of the catalog at `from`, as one consistent
    /// snapshot of it (SQLite's online backup, safe while another process
    /// writes `from`). A catalog seeded this way is brought in step with
    /// the repository by the next sync like any other: it only spares
    /// reading every index object and tree again.
    pub fn seed(from: &Path, to: &Path) -> CatalogResult<()> {
        let err = |source| CatalogError {
            path: from.display().to_string(),
            source,
        };
        let src = Connection::open_with_flags(from, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(err)?;
        src.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(err)?;
        let mut dst = Connection::open(to).map_err(|source| CatalogError {
            path: to.display().to_string(),
            source,
        })?;
        // A private copy that a crash leaves for nothing: no journal, no fsync.
        dst.execute_batch("PRAGMA synchronous = OFF; PRAGMA journal_mode = OFF;")
            .map_err(err)?;
        let backup = rusqlite::backup::Backup::new(&src, &mut dst).map_err(err)?;
        backup.step(-1).map_err(err)?;
        Ok(())
    }

    pub fn open(path: &Path) -> CatalogResult<Self> {
        let err = |source| CatalogError {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        // A bulk write (an index object of a million blobs, a prune's
        // deletions) grows the log; once checkpointed it is cut back.
        conn.pragma_update(None, "journal_size_limit", 64i64 << 20)
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.execute_batch(&format!(
            "PRAGMA main.cache_size = -{CACHE_KIB}; PRAGMA temp.cache_size = -{CACHE_KIB};"
        ))
        .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        let cat = Catalog {
            conn,
            path: path.to_path_buf(),
            tree_zstd: None,
        };
        let version: Option<String> = cat.meta("schema")?;
        let current = SCHEMA_VERSION.to_string();
        if version.as_deref() != Some(current.as_str()) {
            if version.is_some() {
                // Another version's cache: start it again from the repository.
                tracing::info!(catalog = %path.display(), found = ?version, "catalog of another schema version; rebuilding it");
                cat.conn.execute_batch(DROP_ALL).map_err(err)?;
                cat.conn.execute_batch(SCHEMA).map_err(err)?;
            }
            cat.set_meta("schema", &current)?;
        }
        Ok(cat)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> CatalogError {
        CatalogError {
            path: self.path.display().to_string(),
            source,
        }
    }

    pub fn meta(&self, key: &str) -> CatalogResult<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn set_meta(&self, key: &str, value: &str) -> CatalogResult<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                [key, value],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    pub fn index_ids(&self) -> CatalogResult<HashSet<IndexId>> {
        self.ids("SELECT id FROM indexes")
    }

    /// Of the index objects read, those that name any of `packs`.
    pub fn indexes_naming(&self, packs: &[PackId]) -> CatalogResult<HashSet<IndexId>> {
        let mut out = HashSet::new();
        for p in packs {
            out.extend(self.ids_with::<IndexId>(
                "SELECT index_id FROM index_packs WHERE pack = ?1",
                [&p.0[..]],
            )?);
        }
        Ok(out)
    }

    pub fn snapshot_ids(&self) -> CatalogResult<HashSet<SnapshotId>> {
        self.ids("SELECT id FROM snapshots")
    }

    fn ids<T: std::str::FromStr + Eq + std::hash::Hash>(
        &self,
        sql: &str,
    ) -> CatalogResult<HashSet<T>> {
        self.ids_with(sql, [])
    }

    /// The ids (hex, in the first column) of every row `sql` selects with
    /// `params`; a row that does not parse is an error (the catalog is
    /// damaged), not a row left out.
    fn ids_with<T: std::str::FromStr + Eq + std::hash::Hash>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> CatalogResult<HashSet<T>> {
        let rows = self.rows_with(sql, params, |r| r.get::<_, String>(0))?;
        rows.into_iter()
            .map(|id| id.parse().map_err(|_| self.err(bad_column(0))))
            .collect()
    }

    /// Every row `sql` selects, as `row` maps it.
    fn rows<T>(
        &self,
        sql: &str,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> CatalogResult<Vec<T>> {
        self.rows_with(sql, [], row)
    }

    /// [`Catalog::rows`] of a statement with parameters.
    fn rows_with<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> CatalogResult<Vec<T>> {
        let mut st = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = st.query_map(params, row).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Records an index object and every pack and blob it names.
    pub fn add_index(&mut self, id: &IndexId, index: &IndexFile) -> CatalogResult<()> {
        let path = self.path.display().to_string();
        let err = |source| CatalogError {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        {
            let idx = id.to_hex();
            let mut pack_st = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO packs (id, size, index_id) VALUES (?1, ?2, ?3)",
                )
                .map_err(err)?;
            let mut blob_st = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO blobs (id, pack, kind, codec, offset, length, raw_length)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(err)?;
            let mut named_st = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO index_packs (index_id, pack) VALUES (?1, ?2)",
                )
                .map_err(err)?;
            for p in &index.packs {
                named_st.execute(params![idx, &p.id.0[..]]).map_err(err)?;
                // A pack is named by its content, so a pack another index
                // object named already has its blob rows (a prune's
                // rewritten index objects name packs the catalog knows).
                let new = pack_st
                    .execute(params![&p.id.0[..], p.size as i64, idx])
                    .map_err(err)?;
                if new == 0 {
                    continue;
                }
                for b in &p.blobs {
                    blob_st
                        .execute(params![
                            &b.id.0[..],
                            &p.id.0[..],
                            b.kind as u8,
                            b.codec,
                            b.offset as i64,
                            b.length,
                            b.raw_length,
                        ])
                        .map_err(err)?;
                }
            }
            tx.execute("INSERT OR REPLACE INTO indexes (id) VALUES (?1)", [&idx])
                .map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    /// Forgets an index object that is no longer in the repository.
    pub fn remove_index(&mut self, id: &IndexId) -> CatalogResult<()> {
        let idx = id.to_hex();
        let path = self.path.display().to_string();
        let err = |source| CatalogError {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        // A pack another index object also names keeps its rows (whichever
        // index object recorded them last).
        tx.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS leaving (pack BLOB PRIMARY KEY) WITHOUT ROWID;
             DELETE FROM leaving;",
        )
        .map_err(err)?;
        for sql in [
            "INSERT INTO leaving SELECT pack FROM index_packs WHERE index_id = ?1",
            "DELETE FROM index_packs WHERE index_id = ?1",
            "DELETE FROM indexes WHERE id = ?1",
        ] {
            tx.execute(sql, [&idx]).map_err(err)?;
        }
        tx.execute_batch(
            "DELETE FROM leaving WHERE pack IN (SELECT pack FROM index_packs);
             DELETE FROM blobs WHERE pack IN (SELECT pack FROM leaving);
             DELETE FROM packs WHERE id IN (SELECT pack FROM leaving);",
        )
        .map_err(err)?;
        tx.commit().map_err(err)
    }

    /// Every known blob location, ordered by blob id then pack id so that
    /// the same catalog content always yields the same answer. For tests
    /// only: the list grows with the repository.
    #[cfg(test)]
    pub fn blob_locations(&self) -> CatalogResult<Vec<(PackId, BlobEntry)>> {
        self.rows(
            "SELECT id, pack, kind, codec, offset, length, raw_length FROM blobs ORDER BY id, pack",
            |r| {
                let id: Vec<u8> = r.get(0)?;
                let pack: Vec<u8> = r.get(1)?;
                let kind: u8 = r.get(2)?;
                Ok((
                    column_id(&pack, 1)?,
                    BlobEntry {
                        kind: BlobType::from_u8(kind).ok_or_else(|| bad_column(2))?,
                        codec: r.get(3)?,
                        id: column_id(&id, 0)?,
                        offset: r.get::<_, i64>(4)? as u64,
                        length: r.get(5)?,
                        raw_length: r.get(6)?,
                    },
                ))
            },
        )
    }

    /// Every known pack and its size.
    pub fn packs(&self) -> CatalogResult<Vec<(PackId, u64)>> {
        self.rows("SELECT id, size FROM packs ORDER BY id", |r| {
            let id: Vec<u8> = r.get(0)?;
            Ok((column_id(&id, 0)?, r.get::<_, i64>(1)? as u64))
        })
    }

    pub fn add_snapshot(&self, id: &SnapshotId, s: &Snapshot) -> CatalogResult<()> {
        let json = serde_json::to_string(s).expect("snapshot serializes");
        let time = s.time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        // Kept when the snapshot leaves the store the catalog follows, so that
        // region status can still date it.
        self.conn
            .execute(
                "INSERT OR REPLACE INTO snapshot_times (id, time) VALUES (?1, ?2)",
                params![id.to_hex(), time],
            )
            .map_err(|e| self.err(e))?;
        self.conn
            .execute(
                "INSERT OR REPLACE INTO snapshots (id, time, host, paths, tags, tree, json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    id.to_hex(),
                    time,
                    s.host,
                    serde_json::to_string(&s.paths).unwrap(),
                    serde_json::to_string(&s.tags).unwrap(),
                    s.tree.to_hex(),
                    json
                ],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    pub fn remove_snapshot(&self, id: &SnapshotId) -> CatalogResult<()> {
        self.conn
            .execute("DELETE FROM snapshots WHERE id = ?1", [id.to_hex()])
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// All snapshots, oldest first (ties broken by id).
    pub fn snapshots(&self) -> CatalogResult<Vec<(SnapshotId, Snapshot)>> {
        let rows = self.rows("SELECT id, json FROM snapshots ORDER BY time, id", |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, json)| Some((id.parse().ok()?, serde_json::from_str(&json).ok()?)))
            .collect())
    }

    #[cfg(test)]
    pub fn tree(&self, id: &BlobId) -> CatalogResult<Option<Vec<u8>>> {
        Ok(self.tree_stored(id)?.and_then(unpack_tree))
    }

    /// A cached tree's row as stored (compressed or not: see
    /// [`unpack_tree`]), so that a caller can open it without holding the
    /// catalog.
    pub fn tree_stored(&self, id: &BlobId) -> CatalogResult<Option<Vec<u8>>> {
        self.conn
            .prepare_cached("SELECT data FROM trees WHERE id = ?1")
            .and_then(|mut st| st.query_row([&id.0[..]], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))
    }

    pub fn put_trees(&mut self, trees: &[(BlobId, Vec<u8>)]) -> CatalogResult<()> {
        let path = self.path.display().to_string();
        let err = |source| CatalogError {
            path: path.clone(),
            source,
        };
        let zstd = match &mut self.tree_zstd {
            Some(z) => z,
            none => {
                none.insert(zstd::bulk::Compressor::new(TREE_ZSTD_LEVEL).expect("valid zstd level"))
            }
        };
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut st = tx
                .prepare_cached("INSERT OR IGNORE INTO trees (id, data) VALUES (?1, ?2)")
                .map_err(err)?;
            for (id, data) in trees {
                let packed = zstd.compress(data);
                let row: &[u8] = match &packed {
                    Ok(z) => z,
                    Err(_) => data,
                };
                st.execute(params![&id.0[..], row]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// Empties every table, keeping the schema.
    /// Makes this the catalog of repository `id`: a catalog that belongs
    /// to another repository (or to none yet) is cleared first. Returns
    /// whether it was cleared.
    pub fn claim(&mut self, id: &str) -> CatalogResult<bool> {
        if self.meta("repository")?.as_deref() == Some(id) {
            return Ok(false);
        }
        self.clear()?;
        self.set_meta("repository", id)?;
        Ok(true)
    }

    pub fn clear(&mut self) -> CatalogResult<()> {
        self.conn
            .execute_batch(
                "DELETE FROM blobs; DELETE FROM packs; DELETE FROM indexes; DELETE FROM snapshots; DELETE FROM trees; \
                 DELETE FROM region_objects; DELETE FROM snapshot_times; DELETE FROM index_packs;",
            )
            .map_err(|e| self.err(e))
    }
}

/// A tree's encoding from its cached row: rows are stored compressed
/// (zstd) or as they are. A row that does not decompress is as good as
/// missing: the tree is read from the repository instead.
pub fn unpack_tree(data: Vec<u8>) -> Option<Vec<u8>> {
    if !data.starts_with(&ZSTD_MAGIC) {
        return Some(data);
    }
    let size = zstd::zstd_safe::get_frame_content_size(&data).ok()??;
    let mut out = Vec::new();
    crate::format::blob::decompress_into(&data, size as usize, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_trees_are_stored_compressed_and_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut cat = Catalog::open(&dir.path().join("catalog.db")).unwrap();
        let tree = br#"{"nodes":[{"name":"a","type":"file","size":1}]}"#.repeat(200);
        let (id, old) = (BlobId([1; 32]), BlobId([2; 32]));
        cat.put_trees(&[(id, tree.clone())]).unwrap();
        let stored: Vec<u8> = cat
            .conn
            .query_row("SELECT data FROM trees WHERE id = ?1", [&id.0[..]], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(stored.starts_with(&ZSTD_MAGIC) && stored.len() < tree.len() / 4);
        assert_eq!(cat.tree(&id).unwrap(), Some(tree.clone()));
        // A plain row, as earlier versions wrote them, reads as it is.
        cat.conn
            .execute(
                "INSERT INTO trees (id, data) VALUES (?1, ?2)",
                params![&old.0[..], &tree],
            )
            .unwrap();
        assert_eq!(cat.tree(&old).unwrap(), Some(tree));
        assert_eq!(cat.tree(&BlobId([3; 32])).unwrap(), None);
    }
}
