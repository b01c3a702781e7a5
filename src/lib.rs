//! ferry: an encrypted, deduplicating backup data-mover and cross-region
//! object replicator for Kubernetes.

pub mod catalog;
pub mod repo;
pub mod store;
pub mod util;
