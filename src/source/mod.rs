//! Sources of backup entries: Kubernetes API objects (and, later, files and block devices).

pub mod k8s;
