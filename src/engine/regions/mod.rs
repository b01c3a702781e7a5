//! Regions: the stores of every region of the config, each probed once per
//! run with a short budget and then taken for up or down for the rest of
//! it; the order regions are tried in; reads that fail over from one region
//! to the next; writes that go to the first healthy region; the catalog's
//! record of what each region holds.

mod bootstrap;
mod repair;
mod status;
mod sync;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub use bootstrap::{init_all, InitRegion};
pub use repair::RegionRepairReport;
pub use status::{status, RegionStatus, StatusReport};
pub use sync::{Direction, RegionOutcome, RoundOptions, RoundReport};

use crate::catalog::{Catalog, CatalogError};
use crate::config::Region;
use crate::format::config::{peek_id, CONFIG_KEY};
use crate::repo::{RepoError, Repository};
use crate::store::compose_watched;
use crate::store::failover::{Breaker, Failover, Pulse, Switch};
use crate::store::retry::RetryPolicy;
use crate::store::{DynStore, StoreError};

/// How long a probe may take: a refused connection is known in
/// milliseconds, an endpoint that accepts connections and never answers
/// within this.
pub const PROBE_TIMEOUT: Duration = crate::store::failover::PULSE_TIMEOUT;

#[derive(Debug, thiserror::Error)]
pub enum RegionsError {
    #[error("this command needs [[region]] tables in the --config file")]
    NoRegions,
    #[error("no region {name:?} in the --config file (regions: {names})")]
    Unknown { name: String, names: String },
    #[error("region {name:?}: {message}")]
    Setup { name: String, message: String },
    #[error("no region holds a reachable copy of the repository: {0}")]
    NoneReachable(String),
    #[error("{0}")]
    Usage(String),
    #[error(
        "region {name:?} failed while it was being repaired, after {repaired} of {total} objects \
         ({error}); what was written there is whole: run `ferry repair --region {name}` again \
         once it answers"
    )]
    RepairTargetFailed {
        name: String,
        repaired: usize,
        total: usize,
        error: String,
    },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] super::EngineError),
}

pub type RegionsResult<T> = Result<T, RegionsError>;

/// What a probe found in a region.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Health {
    /// It answers and holds the repository with this id.
    Ready { id: String },
    /// It answers and holds no repository (or its bucket is missing).
    Empty { error: String },
    /// It does not answer, or fails.
    Down { error: String },
}

/// A region that is not used in this run, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DownRegion {
    pub region: String,
    pub error: String,
}

/// One region of the run: its settings, its store, what the probe found.
#[derive(Debug)]
pub struct RegionHandle {
    pub region: Region,
    store: Arc<Breaker>,
    /// The same store with short retries, for reads that can fail over.
    quick: DynStore,
    health: tokio::sync::OnceCell<Health>,
}

impl RegionHandle {
    pub fn name(&self) -> &str {
        &self.region.name
    }

    /// The region's store; it fails at once for the rest of the run once
    /// the region is known to be down.
    pub fn store(&self) -> DynStore {
        self.store.clone()
    }

    /// What the probe found (probing now if nobody did).
    pub async fn health(&self) -> &Health {
        self.health
            .get_or_init(|| async {
                let h = probe(&self.region).await;
                if let Health::Down { error } = &h {
                    self.store.trip(error);
                }
                h
            })
            .await
    }

    /// Whether the region holds repository `id` and still answers.
    pub async fn holds(&self, id: &str) -> bool {
        !self.store.is_down() && matches!(self.health().await, Health::Ready { id: i } if i == id)
    }
}
/// The regions in the order reads try them: the primary, then the others
/// as the config lists them.
pub fn ordered(regions: &[Region]) -> Vec<&Region> {
    let mut out: Vec<&Region> = regions.iter().filter(|r| r.primary).collect();
    out.extend(regions.iter().filter(|r| !r.primary));
    out
}

/// The primary region: the one marked so, else the first.
pub fn primary(regions: &[Region]) -> Option<&Region> {
    ordered(regions).into_iter().next()
}

/// Opens a region's store. Every region is opened here, so that store
/// options (endpoint, provider, limits) are applied in one place.
/// Its retries stop as soon as a probe finds the region gone (see
/// [`Pulse`]).
pub fn region_store(r: &Region) -> RegionsResult<DynStore> {
    Ok(RegionStores::open(r)?.store)
}

/// A region's store with full retries and the same with short ones, over
/// one [`Pulse`]: whatever finds the region down speaks for both.
struct RegionStores {
    store: DynStore,
    quick: DynStore,
    pulse: Arc<Pulse>,
}

impl RegionStores {
    fn open(r: &Region) -> RegionsResult<RegionStores> {
        let setup = |message: String| RegionsError::Setup {
            name: r.name.clone(),
            message,
        };
        let o = r.store_options().map_err(|e| setup(e.to_string()))?;
        let base = crate::store::open_base(&r.url, &o).map_err(|e| setup(format!("{e:#}")))?;
        let pulse = Pulse::new(Some(base.clone()));
        let live = || Some(pulse.clone() as Arc<dyn crate::store::retry::Liveness>);
        let quick = crate::store::StoreOptions {
            retry: quick_policy(),
            ..o.clone()
        };
        Ok(RegionStores {
            store: compose_watched(base.clone(), &o, &o.bandwidth(), live()),
            quick: compose_watched(base, &quick, &quick.bandwidth(), live()),
            pulse: pulse.clone(),
        })
    }
}

fn open_region(r: &Region, retry: RetryPolicy) -> RegionsResult<DynStore> {
    let setup = |message: String| RegionsError::Setup {
        name: r.name.clone(),
        message,
    };
    let mut o = r.store_options().map_err(|e| setup(e.to_string()))?;
    o.retry = retry;
    crate::store::open_url_with(&r.url, &o).map_err(|e| setup(format!("{e:#}")))
}

/// Short retries: a region that fails is left for the next one.
fn quick_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff_ms: 100,
        max_backoff_ms: 1_000,
        budget_seconds: 5,
    }
}

/// Whether a region answers and holds a repository, within
/// [`PROBE_TIMEOUT`].
pub async fn probe(r: &Region) -> Health {
    let quick = RetryPolicy {
        max_attempts: 2,
        ..quick_policy()
    };
    let store = match open_region(r, quick) {
        Ok(s) => s,
        Err(e) => {
            return Health::Down {
                error: e.to_string(),
            }
        }
    };
    let got = tokio::time::timeout(PROBE_TIMEOUT, store.get(CONFIG_KEY)).await;
    match got {
        Err(_) => Health::Down {
            error: format!(
                "{}: no answer within {} s",
                store.location(),
                PROBE_TIMEOUT.as_secs()
            ),
        },
        Ok(Ok(data)) => match peek_id(&data) {
            Ok(id) => Health::Ready { id },
            Err(e) => Health::Down {
                error: format!("{}: damaged config: {e}", store.location()),
            },
        },
        Ok(Err(e)) if e.is_not_found() => Health::Empty {
            error: match bootstrap::bucket_missing(r).await {
                true => format!(
                    "{}: the bucket does not exist; `ferry init --config` or `ferry replicate` \
                     creates it where the credentials allow",
                    store.location()
                ),
                false => format!(
                    "{}: no repository there yet ({}); `ferry replicate` creates it",
                    store.location(),
                    e.message
                ),
            },
        },
        Ok(Err(e)) => Health::Down {
            error: e.to_string(),
        },
    }
}

/// The regions of a run, in the order reads try them: the primary (the one
/// marked so, else the first), then the others as the config lists them.
#[derive(Debug)]
pub struct Regions {
    entries: Vec<RegionHandle>,
    catalog: Option<PathBuf>,
}

/// A repository opened for reading over the live regions.
#[derive(Debug)]
pub struct Opened {
    pub repo: Arc<Repository>,
    /// The region reads started from.
    pub region: String,
    pub failover: Arc<Failover>,
    pub down: Vec<DownRegion>,
}

impl Opened {
    /// The regions reads moved away from during the run.
    pub fn switches(&self) -> Vec<Switch> {
        self.failover.switches()
    }
}

impl Regions {
    /// Opens every region's store (no request is sent yet).
    pub fn new(regions: &[Region], catalog: Option<PathBuf>) -> RegionsResult<Regions> {
        if regions.is_empty() {
            return Err(RegionsError::NoRegions);
        }
        let mut entries = Vec::new();
        for r in ordered(regions) {
            let s = RegionStores::open(r)?;
            entries.push(RegionHandle {
                region: r.clone(),
                store: Breaker::with_pulse(&r.name, s.store, s.pulse),
                quick: s.quick,
                health: tokio::sync::OnceCell::new(),
            });
        }
        Ok(Regions { entries, catalog })
    }

    /// Every region, primary first.
    pub fn all(&self) -> &[RegionHandle] {
        &self.entries
    }

    pub fn primary(&self) -> &RegionHandle {
        &self.entries[0]
    }

    pub fn find(&self, name: &str) -> RegionsResult<&RegionHandle> {
        self.entries
            .iter()
            .find(|e| e.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self.entries.iter().map(|e| e.name()).collect();
                RegionsError::Unknown {
                    name: name.to_string(),
                    names: names.join(", "),
                }
            })
    }

    /// Probes every region at once (each only once per run).
    pub async fn probe(&self) {
        futures::future::join_all(self.entries.iter().map(|e| e.health())).await;
    }

    /// The repository's id: the first region's in order that holds one.
    pub async fn repo_id(&self) -> RegionsResult<String> {
        self.probe().await;
        for e in &self.entries {
            if let Health::Ready { id } = e.health().await {
                return Ok(id.clone());
            }
        }
        Err(RegionsError::NoneReachable(self.describe_down().await))
    }

    /// The regions that hold repository `id` and answer, in order.
    pub async fn live(&self, id: &str) -> Vec<&RegionHandle> {
        self.probe().await;
        let mut out = Vec::new();
        for e in &self.entries {
            if e.holds(id).await {
                out.push(e);
            }
        }
        out
    }

    /// The regions that are down (at the probe or since), with why.
    pub async fn down(&self) -> Vec<DownRegion> {
        let mut out = Vec::new();
        for e in &self.entries {
            let error = match (e.health.get(), e.store.why()) {
                (_, Some(why)) => why,
                (Some(Health::Down { error }), None) => error.clone(),
                _ => continue,
            };
            out.push(DownRegion {
                region: e.name().to_string(),
                error,
            });
        }
        out
    }

    async fn describe_down(&self) -> String {
        let mut parts = Vec::new();
        for e in &self.entries {
            match e.health().await {
                Health::Ready { .. } => {}
                Health::Empty { error } | Health::Down { error } => {
                    parts.push(format!("{}: {error}", e.name()))
                }
            }
        }
        parts.join("; ")
    }

    /// Opens the repository for reading over every live region, the first
    /// live one in order first; reads move on when a region fails.
    pub async fn open_read(&self, password: &[u8]) -> RegionsResult<Opened> {
        self.open_read_with(password, crate::repo::BlobIds::Loaded)
            .await
    }

    /// [`Regions::open_read`], keeping `blob_ids` of the catalog in memory.
    pub async fn open_read_with(
        &self,
        password: &[u8],
        blob_ids: crate::repo::BlobIds,
    ) -> RegionsResult<Opened> {
        let id = self.repo_id().await?;
        let live = self.live(&id).await;
        // With a region to move to, a failing one is left after short
        // retries; a lone region keeps the full ones.
        let members: Vec<(String, DynStore)> = live
            .iter()
            .map(|e| match live.len() {
                1 => (e.name().to_string(), e.store()),
                _ => (e.name().to_string(), e.quick.clone()),
            })
            .collect();
        let Some((first, _)) = members.first().cloned() else {
            return Err(RegionsError::NoneReachable(self.describe_down().await));
        };
        let failover = Failover::new(members);
        let repo =
            Repository::open_with(failover.clone(), password, self.catalog.clone(), blob_ids)
                .await?;
        Ok(Opened {
            repo: Arc::new(repo),
            region: first,
            failover,
            down: self.down().await,
        })
    }

    /// The region writes go to: the primary, else the first healthy region
    /// in order.
    pub async fn write_target(&self) -> RegionsResult<&RegionHandle> {
        let id = self.repo_id().await?;
        let live = self.live(&id).await;
        live.first()
            .copied()
            .ok_or_else(|| RegionsError::NoneReachable(String::new()))
    }

    /// The catalog of repository `id`, claimed for it when new.
    pub fn catalog(&self, id: &str) -> RegionsResult<Catalog> {
        let path = self
            .catalog
            .clone()
            .unwrap_or_else(|| crate::catalog::default_path(id));
        let mut cat = Catalog::open(&path)?;
        cat.claim(id)?;
        Ok(cat)
    }

    /// Lists a region and records what it holds in the catalog.
    pub async fn record(&self, id: &str, region: &RegionHandle) -> RegionsResult<()> {
        let listed = region.store().list("").await?;
        self.catalog(id)?
            .set_region_objects(region.name(), &listed)?;
        Ok(())
    }

    /// [`Regions::record`] for the region named `name`; a
    /// failure only costs the bookkeeping, so it is a warning.
    pub async fn record_or_warn(&self, id: &str, name: &str) {
        let Ok(r) = self.find(name) else { return };
        if let Err(e) = self.record(id, r).await {
            tracing::warn!(region = name, error = %e, "could not record the region's objects in the catalog");
        }
    }
}
