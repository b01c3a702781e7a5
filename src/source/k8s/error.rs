//! The error type of the Kubernetes source and restore: what failed, where, and what to do.

use std::path::PathBuf;

/// A Kubernetes failure that stops a whole backup or restore, or one object of it.
///
/// Every variant names the server, resource or object concerned and says what
/// the user can do about it.
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    /// The kubeconfig file is absent or cannot be read.
    #[error("cannot read kubeconfig {path}: {source}; check --kubeconfig or KUBECONFIG")]
    KubeconfigRead {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The kubeconfig was read but does not describe a usable cluster.
    #[error("invalid kubeconfig {path}: {source}; check its contexts, clusters and users (e.g. `kubectl config view`)")]
    KubeconfigInvalid {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// No kubeconfig and no in-cluster service account were found.
    #[error("no Kubernetes configuration found: {source}; pass --kubeconfig, set KUBECONFIG, or run inside a pod with a service account")]
    NoConfig {
        #[source]
        source: kube::config::InferConfigError,
    },
    /// The in-cluster service account could not be loaded.
    #[error(
        "in-cluster configuration failed: {source}; check the pod's service account token mount"
    )]
    InCluster {
        #[source]
        source: kube::config::InClusterError,
    },
    /// The HTTP client could not be built from the configuration.
    #[error("cannot build a client for {server}: {source}")]
    Client {
        server: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// The API server did not answer.
    #[error("API server {server} is unreachable: {source}; check the address, network and credentials in the kubeconfig")]
    Unreachable {
        server: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// Discovery of the served resources failed as a whole.
    #[error("discovery failed on {server}: {source}")]
    Discovery {
        server: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// The server rejected the credentials (HTTP 401).
    #[error("{server} rejected the credentials (401); refresh the token or certificate in the kubeconfig (e.g. log in again)")]
    Unauthorized { server: String },
    /// The server refused access (HTTP 403).
    #[error("{server}: access to {resource} denied (403): {message}; grant list/get (backup) or create/update (restore) on it to the service account")]
    Forbidden {
        server: String,
        resource: String,
        message: String,
    },
    /// Any other error answer from the API server about one resource or object.
    #[error("{server}: {resource} {object}: {code} {reason}: {message}")]
    Api {
        server: String,
        resource: String,
        object: String,
        code: u16,
        reason: String,
        message: String,
    },
    /// A request to the server failed outside of an API answer.
    #[error("{server}: {resource} {object}: {source}")]
    Request {
        server: String,
        resource: String,
        object: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// Options given by the user are inconsistent.
    #[error("invalid option: {0}")]
    InvalidOption(String),
}

impl K8sError {
    /// Converts a kube error about `resource`/`object` into a [`K8sError`] with context.
    pub fn from_kube(server: &str, resource: &str, object: &str, err: kube::Error) -> Self {
        match err {
            kube::Error::Api(status) if status.code == 401 => K8sError::Unauthorized {
                server: server.to_string(),
            },
            kube::Error::Api(status) if status.code == 403 => K8sError::Forbidden {
                server: server.to_string(),
                resource: resource.to_string(),
                message: status.message,
            },
            kube::Error::Api(status) => K8sError::Api {
                server: server.to_string(),
                resource: resource.to_string(),
                object: object.to_string(),
                code: status.code,
                reason: status.reason,
                message: status.message,
            },
            other => K8sError::Request {
                server: server.to_string(),
                resource: resource.to_string(),
                object: object.to_string(),
                source: Box::new(other),
            },
        }
    }

    /// The HTTP status code when the server answered with an error status.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            K8sError::Unauthorized { .. } => Some(401),
            K8sError::Forbidden { .. } => Some(403),
            K8sError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl K8sError {
    /// Whether the connection to the server failed (rather than the server
    /// answering an error): going on with other requests is pointless.
    pub fn is_transport(&self) -> bool {
        match self {
            K8sError::Unreachable { .. } => true,
            K8sError::Request { source, .. } => {
                matches!(
                    **source,
                    kube::Error::HyperError(_) | kube::Error::Service(_)
                )
            }
            _ => false,
        }
    }
}

/// The HTTP status code of a kube error, when the server answered one.
pub(crate) fn kube_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}
