//! `ferry init`: create a repository.

use anyhow::Result;
use serde::Serialize;

use super::args::{Global, InitArgs};
use super::output::{emit, Render};
use crate::config::FileConfig;
use crate::format::config::{ChunkerParams, ConfigBody, LockMode, ObjectLock};
use crate::format::keys::KdfParams;
use crate::repo::{InitOptions, Repository};
use crate::util::parse_size;

#[derive(Serialize)]
struct InitReport<'a> {
    repository: String,
    id: &'a str,
    config: &'a ConfigBody,
    /// With regions: what was done in each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    regions: Vec<crate::engine::regions::InitRegion>,
}

impl Render for InitReport<'_> {
    fn text(&self) -> String {
        let mut out = format!("created repository {} at {}\n", self.id, self.repository);
        if let Some(l) = &self.config.object_lock {
            out += &format!(
                "every object is locked ({}) for {} s from its write, renewed by prune while in use\n",
                l.mode.name(),
                l.retention_seconds
            );
        }
        for r in self.regions.iter().filter(|r| r.ok) {
            let bucket = if r.bucket_created {
                " (bucket created)"
            } else {
                ""
            };
            out += &format!("  region {}: ready{bucket}\n", r.region);
        }
        out
    }

    fn warnings(&self) -> Vec<String> {
        let failed = self.regions.iter().filter(|r| !r.ok);
        failed
            .map(|r| {
                format!(
                    "region {}: not created: {}",
                    r.region,
                    r.error.as_deref().unwrap_or("")
                )
            })
            .collect()
    }
}

fn object_lock(a: &InitArgs) -> Result<Option<ObjectLock>> {
    let (Some(mode), Some(retention)) = (&a.object_lock, &a.retention) else {
        return Ok(None);
    };
    let mode = match mode.to_ascii_lowercase().as_str() {
        "governance" => LockMode::Governance,
        "compliance" => LockMode::Compliance,
        _ => anyhow::bail!("--object-lock {mode:?}: give governance or compliance"),
    };
    let d = super::prune::duration("retention", retention)?;
    anyhow::ensure!(
        d.num_seconds() > 0,
        "--retention {retention:?}: give a retention longer than 0, such as 30d"
    );
    Ok(Some(ObjectLock {
        mode,
        retention_seconds: d.num_seconds() as u64,
    }))
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
        object_lock: object_lock(a)?,
    })
}

pub async fn run(g: &Global, cfg: &FileConfig, a: InitArgs) -> Result<i32> {
    let opts = options(&a)?;
    if g.repo_from_regions {
        return in_regions(g, &opts).await;
    }
    let url = super::repo_url(g)?;
    if url.starts_with("s3://") {
        // Create the bucket when it is missing and the credentials allow.
        let o = super::store::options(g, cfg)?;
        let s3 = crate::store::s3::S3Store::from_url(&url, &o.s3)?;
        let locked = opts.object_lock.is_some();
        if let crate::store::s3::BucketInit::Created = s3.init_with(locked).await? {
            tracing::info!(url = %url, "created the bucket");
        }
    }
    let store = super::open_store(g)?;
    let pw = super::password::password(g, true)?;
    let repo = Repository::init(store, &pw, &opts, g.catalog.clone()).await?;
    emit(
        g,
        &InitReport {
            repository: repo.location(),
            id: &repo.config().id,
            config: repo.config(),
            regions: Vec::new(),
        },
    );
    Ok(super::exit::OK)
}

/// `init --config C` with regions: the repository in every region.
async fn in_regions(g: &Global, opts: &InitOptions) -> Result<i32> {
    let pw = super::password::password(g, true)?;
    let regions = super::regions::regions(g)?;
    let (repo, done) = crate::engine::regions::init_all(&regions, &pw, opts)
        .await
        .map_err(super::regions::lift)?;
    let report = InitReport {
        repository: repo.location(),
        id: &repo.config().id,
        config: repo.config(),
        regions: done,
    };
    emit(g, &report);
    let failed = report.regions.iter().filter(|r| !r.ok).count();
    if failed > 0 {
        return Err(super::Reported(format!(
            "the repository was not created in {failed} regions; see above"
        ))
        .into());
    }
    Ok(super::exit::OK)
}
