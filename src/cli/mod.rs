//! The command-line interface: parses arguments, opens the repository,
//! calls the engine and renders its results. No logic of its own.

//!
//! One file per command, each with a `run` that turns arguments into
//! options, calls the engine and renders its report (text, or `--json`).

pub mod args;
mod backup;
mod catalog;
mod check;
mod diff;
mod drill;
mod forget;
mod init;
mod k8s;
mod key;
mod ls;
mod metrics;
pub mod mover;
mod output;
pub mod password;
mod prune;
mod regions;
mod repair;
mod replicate;
mod restore;
mod snapshots;
mod status;
mod store;

use std::sync::Arc;

use anyhow::{Context, Result};

use crate::repo::{RepoError, Repository};
use args::{CatalogCommand, Cli, Command, FilterArgs, Global};

/// Exit codes, as restic's where they overlap.
pub mod exit {
    pub const OK: i32 = 0;
    pub const ERROR: i32 = 1;
    /// A snapshot was made but some source entries could not be read.
    pub const INCOMPLETE: i32 = 3;
    pub const NO_REPOSITORY: i32 = 10;
    pub const WRONG_PASSWORD: i32 = 12;
    /// A drill's restore or verification failed (or it could not run).
    pub const DRILL_FAILED: i32 = 20;
    /// A drill verified but missed its RTO or RPO target, or `status
    /// --rpo-target` found a region over the target.
    pub const TARGET_MISSED: i32 = 21;
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().get_matches();
    let command = matches.subcommand_name().unwrap_or("ferry").to_string();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    output::init_logging(&cli.global);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return exit::ERROR;
        }
    };
    let json = cli.global.json;
    let started = std::time::Instant::now();
    let Cli {
        mut global,
        command: cmd,
    } = cli;
    let code = rt.block_on(run(&mut global, cmd));
    let code = match code {
        Ok(code) => code,
        Err(e) => {
            let code = exit_code(&e);
            if json && e.downcast_ref::<Reported>().is_none() {
                output::print_json(&serde_json::json!({ "error": format!("{e:#}") }));
            }
            eprintln!("error: {e:#}");
            code
        }
    };
    let secs = started.elapsed().as_secs_f64();
    match rt.block_on(metrics::flush(&global, &command, code, secs)) {
        Ok(()) => code,
        Err(e) => {
            eprintln!("error: the metrics were not delivered: {e}");
            if code == exit::OK {
                exit::ERROR
            } else {
                code
            }
        }
    }
}

/// Runs one command.
async fn run(global: &mut Global, command: Command) -> Result<i32> {
    let cfg = apply_config(global)?;
    let g = &*global;
    match command {
        Command::Init(a) => init::run(g, &cfg, a).await,
        Command::Backup(a) => backup::run(g, &cfg, a).await,
        Command::Snapshots(f) => snapshots::run(g, f).await,
        Command::Ls(a) => ls::run(g, a).await,
        Command::Diff(a) => diff::run(g, a).await,
        Command::Restore(a) => restore::run(g, a).await,
        Command::Check(a) => check::run(g, a).await,
        Command::Forget(a) => forget::run(g, a).await,
        Command::Prune(a) => prune::run(g, a).await,
        Command::Replicate(a) => replicate::run(g, a).await,
        Command::Status(a) => status::run(g, a).await,
        Command::Drill(a) => drill::run(g, a).await,
        Command::Repair(a) => repair::run(g, a).await,
        Command::Catalog(CatalogCommand::Rebuild) => catalog::rebuild(g).await,
        Command::Key(k) => key::run(g, k).await,
        Command::Mover(c) => mover::run(g, c).await,
    }
}

/// The snapshot filter that `--host`, `--path` and `--tag` give.
fn filter(f: &FilterArgs) -> crate::engine::select::Filter {
    crate::engine::select::Filter {
        host: f.host.clone(),
        paths: f
            .paths
            .iter()
            .map(|p| {
                crate::engine::backup::plan::absolute(std::path::Path::new(p))
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| p.clone())
            })
            .collect(),
        tags: f.tags.clone(),
    }
}

/// A failure whose details the command already printed (in its JSON report
/// too); only this summary goes to stderr.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Reported(pub String);

fn exit_code(e: &anyhow::Error) -> i32 {
    for cause in e.chain() {
        let repo = cause.downcast_ref::<RepoError>().or_else(|| {
            match cause.downcast_ref::<crate::engine::EngineError>() {
                Some(crate::engine::EngineError::Repo(r)) => Some(r),
                _ => None,
            }
        });
        match repo {
            Some(RepoError::NotFound { .. }) => return exit::NO_REPOSITORY,
            Some(RepoError::WrongPassword { .. }) => return exit::WRONG_PASSWORD,
            _ => {}
        }
    }
    exit::ERROR
}

/// The config file, when `--config` or `FERRY_CONFIG` names one.
pub(crate) fn file_config(g: &Global) -> Result<crate::config::FileConfig> {
    match &g.config {
        Some(p) => Ok(crate::config::FileConfig::load(p)?),
        None => Ok(Default::default()),
    }
}

/// Fills what flags and environment left unset from the config file.
pub(crate) fn apply_config(g: &mut Global) -> Result<crate::config::FileConfig> {
    let cfg = file_config(g)?;
    g.regions = cfg.region.clone();
    if let Some(name) = &g.region {
        if g.repo.is_some() {
            anyhow::bail!("give --repo or --region, not both (FERRY_REPO counts as --repo)");
        }
        let r = regions::find(&g.regions, name)?;
        g.repo = Some(r.url.clone());
    }
    if g.repo.is_none() {
        g.repo = cfg.default_repo().map(str::to_string);
        g.repo_from_regions = !g.regions.is_empty();
    }
    if g.catalog.is_none() {
        g.catalog = cfg.catalog.clone();
    }
    if let (None, Some(name), Some(url)) = (&g.catalog, &g.region, &g.repo) {
        // One region alone: a catalog of its own (see catalog::region_path).
        g.catalog = Some(crate::catalog::region_path(name, url));
    }
    let no_password = g.password_file.is_none()
        && g.password_command.is_none()
        && std::env::var_os("FERRY_PASSWORD").is_none();
    if no_password {
        g.password_file = cfg.password_file.clone();
    }
    Ok(cfg)
}

pub(crate) fn repo_url(g: &Global) -> Result<String> {
    g.repo.clone().context(
        "no repository given: pass --repo, set FERRY_REPO, or name one in the --config file",
    )
}

/// The repository's store, with retries and bandwidth limits.
pub(crate) fn open_store(g: &Global) -> Result<crate::store::DynStore> {
    let url = repo_url(g)?;
    let opts = store::options(g, &file_config(g)?)?;
    Ok(crate::store::open_url_with(&url, &opts)?)
}

/// Opens the repository `--repo` or `--region` names, else reads over the
/// live regions of the config file (see [`regions::open_read`]).
pub(crate) async fn open_repo(g: &Global) -> Result<Arc<Repository>> {
    if g.repo_from_regions {
        return Ok(regions::open_read(g).await?.repo);
    }
    open_repo_on(g, open_store(g)?).await
}

/// Opens the repository on a store built by the caller.
pub(crate) async fn open_repo_on(
    g: &Global,
    store: crate::store::DynStore,
) -> Result<Arc<Repository>> {
    open_repo_with(g, store, crate::repo::BlobIds::Loaded).await
}

/// [`open_repo_on`], keeping `blob_ids` of the catalog in memory.
pub(crate) async fn open_repo_with(
    g: &Global,
    store: crate::store::DynStore,
    blob_ids: crate::repo::BlobIds,
) -> Result<Arc<Repository>> {
    let pw = password::password(g, false)?;
    let repo = Repository::open_with(store, &pw, g.catalog.clone(), blob_ids).await?;
    metrics::set_repository(&repo.config().id, None);
    Ok(Arc::new(repo))
}
