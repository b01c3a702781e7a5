//! Store settings for a command: the config file's region, then
//! `FERRY_S3_*` and `FERRY_LIMIT_*` environment variables, then flags.

use anyhow::{Context, Result};

use super::args::Global;
use crate::config::FileConfig;
use crate::store::options::StoreOptions;

pub fn options(g: &Global, cfg: &FileConfig) -> Result<StoreOptions> {
    let mut o = match cfg
        .region
        .iter()
        .find(|r| g.repo.as_deref() == Some(r.url.as_str()))
    {
        Some(r) => r.store_options()?,
        None => StoreOptions::from_env()?,
    };
    if let Some(e) = &g.s3_endpoint {
        o.s3.endpoint = Some(e.clone());
    }
    if let Some(p) = &g.s3_provider {
        o.s3.provider = p.parse().context("--s3-provider")?;
    }
    if let Some(r) = &g.s3_region {
        o.s3.region = Some(r.clone());
    }
    if let Some(l) = &g.limit_upload {
        o.limit_upload = Some(l.parse().context("--limit-upload")?);
    }
    if let Some(l) = &g.limit_download {
        o.limit_download = Some(l.parse().context("--limit-download")?);
    }
    Ok(o)
}
