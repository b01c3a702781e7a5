//! Sources of backup entries: the file system, and Kubernetes API objects,
//! which become in-memory files placed into the same snapshot tree.

pub mod block;
pub mod fs;
pub mod k8s;
