//! `ferry catalog rebuild`: recreate the local catalog from the repository.

use anyhow::{Context, Result};
use serde::Serialize;

use super::args::Global;
use super::open_repo;
use super::output::{emit, Render};

#[derive(Serialize)]
struct RebuildReport {
    catalog: String,
    snapshots: usize,
    blobs: usize,
}

impl Render for RebuildReport {
    fn text(&self) -> String {
        format!(
            "rebuilt catalog {}: {} snapshots, {} blobs\n",
            self.catalog, self.snapshots, self.blobs
        )
    }
}

pub async fn rebuild(g: &Global) -> Result<i32> {
    let repo = open_repo(g).await?;
    let stats = repo
        .rebuild_catalog()
        .await
        .context("rebuilding the catalog")?;
    emit(
        g,
        &RebuildReport {
            catalog: stats.path.display().to_string(),
            snapshots: stats.snapshots,
            blobs: stats.blobs,
        },
    );
    Ok(super::exit::OK)
}
