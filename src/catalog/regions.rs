//! Which objects each region holds (region name, key, size), so that
//! `status` answers without listing buckets. Written by `replicate` and by
//! backups to the primary; `replicate --verify` re-lists and corrects it.

use rusqlite::{params, OptionalExtension};

use super::{Catalog, CatalogError, CatalogResult};
use crate::store::ObjectMeta;

/// Objects and bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    pub objects: u64,
    pub bytes: u64,
}

impl Catalog {
    /// Replaces what is recorded for `region` with a full listing.
    pub fn set_region_objects(
        &mut self,
        region: &str,
        objects: &[ObjectMeta],
    ) -> CatalogResult<()> {
        let path = self.path.display().to_string();
        let err = |source| CatalogError {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        tx.execute("DELETE FROM region_objects WHERE region = ?1", [region])
            .map_err(err)?;
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO region_objects (region, key, size) VALUES (?1, ?2, ?3)",
                )
                .map_err(err)?;
            for m in objects {
                st.execute(params![region, m.key, m.size as i64])
                    .map_err(err)?;
            }
        }
        let now = chrono::Utc::now().to_rfc3339();
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            [format!("region-listed:{region}"), now],
        )
        .map_err(err)?;
        tx.commit().map_err(err)
    }

    /// When `region`'s objects were last recorded from a full listing.
    pub fn region_listed_at(&self, region: &str) -> CatalogResult<Option<String>> {
        self.meta(&format!("region-listed:{region}"))
    }

    pub fn region_totals(&self, region: &str) -> CatalogResult<Totals> {
        self.conn
            .query_row(
                "SELECT count(*), coalesce(sum(size), 0) FROM region_objects WHERE region = ?1",
                [region],
                |r| {
                    Ok(Totals {
                        objects: r.get::<_, i64>(0)? as u64,
                        bytes: r.get::<_, i64>(1)? as u64,
                    })
                },
            )
            .map_err(|e| self.err(e))
    }

    /// What `primary` holds and `region` lacks.
    pub fn region_behind(&self, region: &str, primary: &str) -> CatalogResult<Totals> {
        self.conn
            .query_row(
                "SELECT count(*), coalesce(sum(p.size), 0) FROM region_objects p
                 WHERE p.region = ?2 AND NOT EXISTS
                   (SELECT 1 FROM region_objects r WHERE r.region = ?1 AND r.key = p.key)",
                [region, primary],
                |r| {
                    Ok(Totals {
                        objects: r.get::<_, i64>(0)? as u64,
                        bytes: r.get::<_, i64>(1)? as u64,
                    })
                },
            )
            .map_err(|e| self.err(e))
    }

    /// The newest snapshot `region` holds whose time is known: its id and
    /// time (RFC 3339).
    pub fn region_newest_snapshot(&self, region: &str) -> CatalogResult<Option<(String, String)>> {
        self.conn
            .query_row(
                "SELECT t.id, t.time FROM region_objects r JOIN snapshot_times t
                   ON r.key = 'snapshots/' || t.id
                 WHERE r.region = ?1 ORDER BY t.time DESC, t.id DESC LIMIT 1",
                [region],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}
