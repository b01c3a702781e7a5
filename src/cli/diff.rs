//! `ferry diff`: what changed between two snapshots.

use anyhow::Result;
use serde::Serialize;

use super::args::{DiffArgs, Global};
use super::open_repo;
use super::output::{emit, Render};
use crate::engine::diff::{self, DiffEntry};
use crate::engine::select::{select, Filter};
use crate::format::SnapshotId;

#[derive(Serialize)]
struct DiffReport {
    from: SnapshotId,
    to: SnapshotId,
    changes: Vec<DiffEntry>,
}

impl Render for DiffReport {
    fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.changes {
            out += &format!("{} {}\n", c.change.symbol(), c.path);
        }
        out + &format!(
            "{} changes between {} and {}\n",
            self.changes.len(),
            self.from.short(),
            self.to.short()
        )
    }
}

pub async fn run(g: &Global, a: DiffArgs) -> Result<i32> {
    let repo = open_repo(g).await?;
    let snaps = repo.snapshots()?;
    let (from, sa) = select(snaps.clone(), &a.first, &Filter::default())?;
    let (to, sb) = select(snaps, &a.second, &Filter::default())?;
    let limit = (sa.summary.entry_limit()).saturating_add(sb.summary.entry_limit());
    let trees = (sa.tree, sb.tree);
    let changes = diff::diff(&repo, trees, a.path.as_deref(), limit).await?;
    emit(g, &DiffReport { from, to, changes });
    Ok(super::exit::OK)
}
