//! `ferry init`: create a repository.

use anyhow::Result;
use serde::Serialize;

use super::args::{Global, InitArgs};
use super::output::{emit, Render};
use crate::config::FileConfig;
use crate::format::config::{ChunkerParams, ConfigBody};
use crate::format::keys::KdfParams;
use crate::repo::{InitOptions, Repository};
use crate::util::parse_size;

#[derive(Serialize)]
struct InitReport<'a> {
    repository: String,
    id: &'a str,
    config: &'a ConfigBody,
}

impl Render for InitReport<'_> {
    fn text(&self) -> String {
        format!("created repository {} at {}\n", self.id, self.repository)
    }
}

fn options(a: &InitArgs) -> Result<InitOptions> {
    let size = |s: &str| parse_size(s).map_err(anyhow::Error::msg);
    Ok(InitOptions {
        chunker: ChunkerParams {
            min_size: size(&a.chunk_min)? as u32,
            avg_size: size(&a.chunk_avg)? as u32,
            max_size: size(&a.chunk_max)? as u32,
        },
        compression_level: a.compression_level,
        pack_size: size(&a.pack_size)? as u32,
        kdf: KdfParams {
            memory_kib: (size(&a.kdf_memory)? >> 10) as u32,
            iterations: a.kdf_iterations,
            parallelism: 1,
        },
    })
}

pub async fn run(g: &Global, cfg: &FileConfig, a: InitArgs) -> Result<i32> {
    let opts = options(&a)?;
    let url = super::repo_url(g)?;
    if url.starts_with("s3://") {
        // Create the bucket when it is missing and the credentials allow.
        let o = super::store::options(g, cfg)?;
        let s3 = crate::store::s3::S3Store::from_url(&url, &o.s3)?;
        if let crate::store::s3::BucketInit::Created = s3.init().await? {
            tracing::info!(url = %url, "created the bucket");
        }
    }
    let store = super::open_store(g)?;
    let pw = super::password::password(g, true)?;
    let repo = Repository::init(store, &pw, &opts, g.catalog.clone()).await?;
    super::regions::record_primary_or_warn(g, &repo).await;
    emit(
        g,
        &InitReport {
            repository: repo.location(),
            id: &repo.config().id,
            config: repo.config(),
        },
    );
    Ok(super::exit::OK)
}
