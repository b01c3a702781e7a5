//! The use cases: backup, restore, check, listing and diffing snapshots,
//! each driving the repository through the pipeline, and restoring
//! Kubernetes objects into a cluster.

pub mod backup;
pub mod check;
pub mod diff;
pub mod drill;
pub mod forget;
pub mod k8s_restore;
pub mod ls;
pub mod movers;
pub mod progress;
pub mod prune;
pub mod regions;
pub mod reindex;
pub mod repair;
pub mod replicate;
pub mod restore;
pub mod select;
pub mod volumes;
pub mod walk;

use crate::repo::RepoError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Format(#[from] crate::format::FormatError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
    /// The repository holds something no writer makes (damage, or a
    /// hostile writer); the operation stopped.
    #[error("damaged repository: {0}")]
    Damage(String),
    #[error("internal task failed: {0}")]
    Task(String),
}

impl From<crate::pipeline::Closed> for EngineError {
    fn from(_: crate::pipeline::Closed) -> Self {
        EngineError::Task("the write pipeline stopped".into())
    }
}

impl From<tokio::task::JoinError> for EngineError {
    fn from(e: tokio::task::JoinError) -> Self {
        EngineError::Task(e.to_string())
    }
}

pub type EngineResult<T> = Result<T, EngineError>;

/// Builds the set of glob patterns that `--include`/`--exclude` name
/// (`*` does not cross `/`).
pub(crate) fn glob_set(patterns: &[String]) -> EngineResult<globset::GlobSet> {
    let mut b = globset::GlobSetBuilder::new();
    for p in patterns {
        let g = globset::GlobBuilder::new(p).literal_separator(true).build();
        b.add(g.map_err(|e| EngineError::Usage(format!("pattern {p:?}: {e}")))?);
    }
    b.build().map_err(|e| EngineError::Usage(e.to_string()))
}
