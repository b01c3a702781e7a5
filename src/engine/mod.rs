//! The use cases: backup, restore, check, listing and diffing snapshots,
//! each driving the repository through the pipeline, and restoring
//! Kubernetes objects into a cluster.

pub mod backup;
pub mod check;
pub mod diff;
pub mod k8s_restore;
pub mod ls;
pub mod progress;
pub mod regions;
pub mod repair;
pub mod replicate;
pub mod restore;
pub mod select;
pub mod walk;

use crate::repo::RepoError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
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
