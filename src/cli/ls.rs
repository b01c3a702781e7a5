//! `ferry ls`: list the entries of a snapshot.

use anyhow::Result;
use serde::Serialize;

use super::args::{Global, LsArgs};
use super::open_repo;
use super::output::{emit, Render};
use crate::engine::ls;
use crate::engine::select::select;
use crate::engine::walk::Entry;
use crate::format::SnapshotId;

#[derive(Serialize)]
struct LsReport {
    snapshot: SnapshotId,
    entries: Vec<Entry>,
    #[serde(skip)]
    long: bool,
}

impl Render for LsReport {
    fn text(&self) -> String {
        let mut out = String::new();
        for e in &self.entries {
            if self.long {
                let n = &e.node;
                let t = chrono::DateTime::from_timestamp_nanos(n.mtime).format("%Y-%m-%d %H:%M:%S");
                out += &format!(
                    "{:?} {:o} {:>5} {:>5} {:>12} {} {}\n",
                    n.kind, n.mode, n.uid, n.gid, n.size, t, e.path
                );
            } else {
                out += &format!("{}\n", e.path);
            }
        }
        out
    }
}

pub async fn run(g: &Global, a: LsArgs) -> Result<i32> {
    let repo = open_repo(g).await?;
    let (id, snap) = select(repo.snapshots()?, &a.snapshot, &super::filter(&a.filter))?;
    let limit = snap.summary.entry_limit();
    let entries = ls::ls(&repo, snap.tree, a.path.as_deref(), limit).await?;
    emit(
        g,
        &LsReport {
            snapshot: id,
            entries,
            long: a.long,
        },
    );
    Ok(super::exit::OK)
}
