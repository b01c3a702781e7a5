//! Use cases that drive the pipeline: here, restoring Kubernetes objects.

pub mod k8s_restore;
