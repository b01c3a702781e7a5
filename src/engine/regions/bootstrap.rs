//! Creating the repository in every region: the bucket where it is missing
//! and the credentials allow (else an error naming the permission and the
//! region), then the same keys and config as the first region's.

use serde::Serialize;

use super::{Health, RegionHandle, Regions, RegionsError, RegionsResult};
use crate::engine::replicate::{replicate, ReplicateOptions};
use crate::repo::{InitOptions, RepoError, Repository};

/// Makes a region ready to receive a repository: an S3 bucket is created
/// when missing, and the credentials are checked for every operation a
/// repository needs. Returns whether a bucket was created. For an
/// object-locked repository the bucket is created with Object Lock, and an
/// existing one must have it.
pub(super) async fn prepare(r: &RegionHandle, object_lock: bool) -> RegionsResult<bool> {
    if !r.region.url.starts_with("s3://") {
        return Ok(false);
    }
    let setup = |message: String| RegionsError::Setup {
        name: r.name().to_string(),
        message,
    };
    let o = r.region.store_options().map_err(|e| setup(e.to_string()))?;
    let s3 = crate::store::s3::S3Store::from_url(&r.region.url, &o.s3)
        .map_err(|e| setup(e.to_string()))?;
    match s3.init_with(object_lock).await {
        Ok(b) => Ok(b == crate::store::s3::BucketInit::Created),
        Err(e) => Err(setup(e.to_string())),
    }
}

/// Whether the repository a region holds is object-locked (its config,
/// read without a key); false when it cannot be read.
pub(super) async fn locked(r: &RegionHandle) -> bool {
    match r.store().get(crate::format::config::CONFIG_KEY).await {
        Ok(raw) => matches!(crate::format::config::peek_lock(&raw), Ok(Some(_))),
        Err(_) => false,
    }
}

/// Whether a region's S3 bucket is missing (as opposed to a bucket that
/// holds no repository yet), asked with one `HeadBucket` within the probe
/// budget.
pub(super) async fn bucket_missing(r: &crate::config::Region) -> bool {
    if !r.url.starts_with("s3://") {
        return false;
    }
    let Ok(o) = r.store_options() else {
        return false;
    };
    let Ok(s3) = crate::store::s3::S3Store::from_url(&r.url, &o.s3) else {
        return false;
    };
    let head = s3.client().head_bucket().bucket(s3.bucket()).send();
    match tokio::time::timeout(super::PROBE_TIMEOUT, head).await {
        Ok(Err(e)) => e.raw_response().is_some_and(|h| h.status().as_u16() == 404),
        _ => false,
    }
}

/// What `init --config` did in one region.
#[derive(Debug, Clone, Serialize)]
pub struct InitRegion {
    pub region: String,
    pub ok: bool,
    /// Whether its bucket was created.
    pub bucket_created: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Creates the repository in the primary, then the same repository (keys
/// and config, byte for byte) in every other region. A region that is down
/// or refuses is reported; `replicate` creates the repository there later.
pub async fn init_all(
    regions: &Regions,
    password: &[u8],
    opts: &InitOptions,
) -> RegionsResult<(Repository, Vec<InitRegion>)> {
    regions.probe().await;
    let home = regions.primary();
    if let Health::Down { error } = home.health().await {
        return Err(RegionsError::Setup {
            name: home.name().to_string(),
            message: format!("the primary region is down: {error}"),
        });
    }
    let bucket_created = prepare(home, opts.object_lock.is_some()).await?;
    let repo = Repository::init(home.store(), password, opts, regions.catalog.clone()).await?;
    let mut out = vec![InitRegion {
        region: home.name().to_string(),
        ok: true,
        bucket_created,
        error: None,
    }];
    for r in regions.all().iter().skip(1) {
        out.push(copy_to(&repo, r).await);
    }
    let id = repo.config().id.clone();
    for r in regions.all() {
        if out.iter().any(|o| o.ok && o.region == r.name()) {
            regions.record_or_warn(&id, r.name()).await;
        }
    }
    Ok((repo, out))
}

async fn copy_to(repo: &Repository, r: &RegionHandle) -> InitRegion {
    let mut o = InitRegion {
        region: r.name().to_string(),
        ok: false,
        bucket_created: false,
        error: None,
    };
    let result = async {
        match r.health().await {
            Health::Down { error } => {
                return Err(RegionsError::Usage(format!(
                    "down ({error}); `ferry replicate` creates the repository there once it answers"
                )))
            }
            Health::Ready { .. } => {
                return Err(RepoError::AlreadyExists {
                    location: r.store().location(),
                }
                .into())
            }
            Health::Empty { .. } => {}
        }
        o.bucket_created = prepare(r, repo.protection().is_some()).await?;
        let opts = ReplicateOptions {
            concurrency: 4,
            verify: false,
        };
        let rep = replicate(repo.store(), &r.store(), &opts).await?;
        match rep.failed.first() {
            Some((k, e)) => Err(RegionsError::Usage(format!("{k}: {e}"))),
            None => Ok(()),
        }
    }
    .await;
    match result {
        Ok(()) => o.ok = true,
        Err(e) => o.error = Some(e.to_string()),
    }
    o
}
