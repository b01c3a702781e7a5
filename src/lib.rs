//! ferry: an encrypted, deduplicating backup data-mover and cross-region
//! object replicator for Kubernetes.

pub mod engine;
pub mod source;
pub mod store;
