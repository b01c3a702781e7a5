//! The region commands `status` and `repair`, the catalog they share with
//! `replicate`, and reads that fail over from one region to the next.

use std::sync::Arc;

use anyhow::{bail, Context, Result};

use super::args::Global;
use super::open_repo;
use crate::catalog::Catalog;
use crate::config::Region;
use crate::engine::regions::{ordered, primary, probe, region_store};
use crate::repo::{RepoError, Repository};

pub(crate) fn find<'a>(regions: &'a [Region], name: &str) -> Result<&'a Region> {
    regions.iter().find(|r| r.name == name).with_context(|| {
        let names: Vec<&str> = regions.iter().map(|r| r.name.as_str()).collect();
        format!("no region {name:?} in the --config file (regions: {names:?})")
    })
}

pub(crate) fn need_regions(g: &Global) -> Result<&Region> {
    primary(&g.regions).context("this command needs [[region]] tables in the --config file")
}

/// The catalog of repository `id`, claimed for it when new.
pub(crate) fn open_catalog(g: &Global, id: &str) -> Result<Catalog> {
    let path = g
        .catalog
        .clone()
        .unwrap_or_else(|| crate::catalog::default_path(id));
    let mut cat = Catalog::open(&path)?;
    cat.claim(id)?;
    Ok(cat)
}

/// Opens the repository for reading: the region asked for, else the first
/// region that opens, primary first. Returns the region used.
pub(crate) async fn open_read(g: &Global) -> Result<(Arc<Repository>, Option<String>)> {
    if !g.repo_from_regions {
        return Ok((open_repo(g).await?, g.region.clone()));
    }
    let pw = super::password::password(g, false)?;
    let mut failures = Vec::new();
    for r in ordered(&g.regions) {
        if let Err(e) = probe(r).await {
            tracing::warn!(region = %r.name, error = %e, "region unavailable; trying the next");
            failures.push(format!("{}: {e}", r.name));
            continue;
        }
        let store = region_store(r)?;
        match Repository::open(store, &pw, g.catalog.clone()).await {
            Ok(repo) => {
                if !failures.is_empty() {
                    tracing::warn!(region = %r.name, "failed over");
                }
                return Ok((Arc::new(repo), Some(r.name.clone())));
            }
            Err(e @ RepoError::WrongPassword { .. }) => return Err(e.into()),
            Err(e) => {
                tracing::warn!(region = %r.name, error = %e, "region unavailable; trying the next");
                failures.push(format!("{}: {e}", r.name));
            }
        }
    }
    bail!("no region could be opened: {}", failures.join("; "))
}

/// [`open_read`], saying on stderr which region is used.
pub(crate) async fn open_read_announced(g: &Global) -> Result<(Arc<Repository>, Option<String>)> {
    let (repo, region) = open_read(g).await?;
    if let (Some(r), false) = (&region, g.quiet) {
        eprintln!("using region {r}");
    }
    Ok((repo, region))
}

/// [`record_primary`]; a failure only costs the bookkeeping, so it is a
/// warning.
pub(crate) async fn record_primary_or_warn(g: &Global, repo: &Repository) {
    if let Err(e) = record_primary(g, repo).await {
        tracing::warn!(error = %format!("{e:#}"), "could not record the primary's objects in the catalog");
    }
}

/// After a backup to the primary, records what it holds.
pub(crate) async fn record_primary(g: &Global, repo: &Repository) -> Result<()> {
    let Some(r) = g.regions.iter().find(|r| Some(&r.url) == g.repo.as_ref()) else {
        return Ok(());
    };
    let listed = repo.store().list("").await?;
    let mut cat = open_catalog(g, &repo.config().id)?;
    cat.set_region_objects(&r.name, &listed)?;
    Ok(())
}
