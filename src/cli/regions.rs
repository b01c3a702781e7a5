//! The regions of the `--config` file as the commands use them: reads that
//! fail over from one region to the next, and the region errors turned into
//! the CLI's. The work itself is `engine::regions`.

use std::sync::Arc;

use anyhow::Result;

use super::args::Global;
use crate::engine::regions::{DownRegion, Regions, RegionsError};
use crate::repo::Repository;
use crate::store::failover::Failover;

/// A region error as the CLI reports it; repository errors keep their
/// type, so that exit codes (no repository, wrong password) still apply.
pub(crate) fn lift(e: RegionsError) -> anyhow::Error {
    match e {
        RegionsError::Repo(r) => r.into(),
        RegionsError::Engine(crate::engine::EngineError::Repo(r)) => r.into(),
        e => e.into(),
    }
}

/// The regions of the config file, opened for this run.
pub(crate) fn regions(g: &Global) -> Result<Regions> {
    Regions::new(&g.regions, g.catalog.clone()).map_err(lift)
}

/// A repository opened for reading.
pub(crate) struct Read {
    pub repo: Arc<Repository>,
    /// The region reads started from, when regions are in use.
    pub region: Option<String>,
    pub failover: Option<Arc<Failover>>,
    pub down: Vec<DownRegion>,
}

/// Opens the repository for reading: `--repo` or `--region` as given, else
/// over every live region of the config, the first in order first, reads
/// moving on when a region fails. Says on stderr which region is used and
/// which are down.
pub(crate) async fn open_read(g: &Global) -> Result<Read> {
    open_read_with(g, crate::repo::BlobIds::Loaded).await
}

/// [`open_read`], keeping `blob_ids` of the catalog in memory (commands
/// that look no blob up leave them in the catalog).
pub(crate) async fn open_read_with(g: &Global, blob_ids: crate::repo::BlobIds) -> Result<Read> {
    if !g.repo_from_regions {
        return Ok(Read {
            repo: super::open_repo_with(g, super::open_store(g)?, blob_ids).await?,
            region: g.region.clone(),
            failover: None,
            down: Vec::new(),
        });
    }
    let pw = super::password::password(g, false)?;
    let regions = regions(g)?;
    let opened = regions.open_read_with(&pw, blob_ids).await.map_err(lift)?;
    if !g.quiet {
        for d in &opened.down {
            eprintln!("region {} is down, not used: {}", d.region, d.error);
        }
        eprintln!("using region {}", opened.region);
    }
    Ok(Read {
        repo: opened.repo,
        region: Some(opened.region),
        failover: Some(opened.failover),
        down: opened.down,
    })
}

/// The region of the config file named `name`.
pub(crate) fn find<'a>(
    regions: &'a [crate::config::Region],
    name: &str,
) -> Result<&'a crate::config::Region> {
    regions.iter().find(|r| r.name == name).ok_or_else(|| {
        let names: Vec<&str> = regions.iter().map(|r| r.name.as_str()).collect();
        anyhow::anyhow!("no region {name:?} in the --config file (regions: {names:?})")
    })
}

/// A repository opened for a backup.
pub(crate) struct Write {
    pub repo: Arc<Repository>,
    /// The region written to, when regions are in use.
    pub region: Option<String>,
    pub regions: Option<Regions>,
    /// With `--fanout`: the store that also writes to the other regions.
    pub tee: Option<Arc<crate::store::tee::Tee>>,
    pub down: Vec<DownRegion>,
}

/// Opens the repository for a backup: `--repo` or `--region` as given,
/// else the primary, or when it is down the first healthy region in order
/// (saying so on stderr).
pub(crate) async fn open_write(g: &Global, fanout: bool) -> Result<Write> {
    if !g.repo_from_regions {
        anyhow::ensure!(
            !fanout || !g.regions.is_empty(),
            "--fanout needs [[region]] tables in the --config file"
        );
        return Ok(Write {
            repo: super::open_repo_on(g, super::open_store(g)?).await?,
            region: g.region.clone(),
            regions: None,
            tee: None,
            down: Vec::new(),
        });
    }
    let regions = regions(g)?;
    let home = regions.write_target().await.map_err(lift)?;
    let down = regions.down().await;
    if !g.quiet {
        for d in &down {
            eprintln!("region {} is down, not used: {}", d.region, d.error);
        }
        if home.name() != regions.primary().name() {
            eprintln!(
                "the primary region {} is down: writing to region {}",
                regions.primary().name(),
                home.name()
            );
        }
    }
    let home_name = home.name().to_string();
    let id = regions.repo_id().await.map_err(lift)?;
    let (store, tee) = match fanout {
        true => {
            let t = regions.tee(&id, home).await.map_err(lift)?;
            (t.clone() as crate::store::DynStore, Some(t))
        }
        false => (home.store(), None),
    };
    let repo = super::open_repo_on(g, store).await?;
    Ok(Write {
        repo,
        region: Some(home_name),
        regions: Some(regions),
        tee,
        down,
    })
}
