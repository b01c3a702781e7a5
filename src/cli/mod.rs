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
mod init;
mod k8s;
mod key;
mod ls;
pub mod mover;
mod output;
pub mod password;
mod regions;
mod repair;
mod replicate;
mod restore;
mod snapshots;
mod status;
mod store;

use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;

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
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
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
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            let code = exit_code(&e);
            if json && e.downcast_ref::<Reported>().is_none() {
                output::print_json(&serde_json::json!({ "error": format!("{e:#}") }));
            }
            eprintln!("error: {e:#}");
            code
        }
    }
}

/// Runs one command.
async fn run(mut cli: Cli) -> Result<i32> {
    let cfg = apply_config(&mut cli.global)?;
    let g = &cli.global;
    match cli.command {
        Command::Init(a) => init::run(g, &cfg, a).await,
        Command::Backup(a) => backup::run(g, &cfg, a).await,
        Command::Snapshots(f) => snapshots::run(g, f).await,
        Command::Ls(a) => ls::run(g, a).await,
        Command::Diff(a) => diff::run(g, a).await,
        Command::Restore(a) => restore::run(g, a).await,
        Command::Check(a) => check::run(g, a).await,
        Command::Replicate(a) => replicate::replicate_cmd(g, a).await,
        Command::Status => status::run(g).await,
        Command::Repair => repair::run(g).await,
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
    crate::store::open_url_with(&url, &opts)
}

pub(crate) async fn open_repo(g: &Global) -> Result<Arc<Repository>> {
    open_repo_on(g, open_store(g)?).await
}

/// Opens the repository on a store built by the caller.
pub(crate) async fn open_repo_on(
    g: &Global,
    store: crate::store::DynStore,
) -> Result<Arc<Repository>> {
    let pw = password::password(g, false)?;
    Ok(Arc::new(
        Repository::open(store, &pw, g.catalog.clone()).await?,
    ))
}
