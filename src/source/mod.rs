//! Sources of backup entries: the file system, and in-memory files (such as
//! Kubernetes objects) placed into the same snapshot tree.

pub mod fs;
