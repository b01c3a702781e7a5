//! `ferry snapshots`: list snapshots.

use anyhow::Result;
use serde::Serialize;

use super::args::{FilterArgs, Global};
use super::output::{emit, Render};
use crate::format::snapshot::Snapshot;
use crate::format::SnapshotId;

#[derive(Serialize)]
struct Listed {
    id: SnapshotId,
    snapshot: Snapshot,
}

/// The snapshots, oldest first (`--json`: an array of `{id, snapshot}`).
#[derive(Serialize)]
#[serde(transparent)]
struct SnapshotList(Vec<Listed>);

impl Render for SnapshotList {
    fn text(&self) -> String {
        let mut out = format!(
            "{:<10} {:<25} {:<16} {:<20} paths\n",
            "id", "time", "host", "tags"
        );
        for Listed { id, snapshot: s } in &self.0 {
            out += &format!(
                "{:<10} {:<25} {:<16} {:<20} {}\n",
                id.short(),
                crate::util::rfc3339(&s.time),
                s.host,
                s.tags.join(","),
                s.paths.join(" ")
            );
        }
        out + &format!("{} snapshots\n", self.0.len())
    }
}

pub async fn run(g: &Global, f: FilterArgs) -> Result<i32> {
    let repo = super::regions::open_read_with(g, crate::repo::BlobIds::Unloaded)
        .await?
        .repo;
    let filter = super::filter(&f);
    let list = repo
        .snapshots()?
        .into_iter()
        .filter(|(_, s)| filter.matches(s))
        .map(|(id, snapshot)| Listed { id, snapshot })
        .collect();
    emit(g, &SnapshotList(list));
    Ok(super::exit::OK)
}
