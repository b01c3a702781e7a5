//! ferry: an encrypted, deduplicating backup data-mover and cross-region
//! object replicator for Kubernetes.

pub mod catalog;
pub mod cli;
pub mod config;
pub mod direct;
pub mod engine;
pub mod format;
#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
pub mod pipeline;
pub mod repo;
pub mod source;
pub mod store;
#[doc(hidden)]
pub mod testdata;
pub mod util;
