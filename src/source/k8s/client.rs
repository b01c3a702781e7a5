//! Connecting to a cluster: in-cluster service account inside a pod, kubeconfig elsewhere.

use std::path::Path;
use std::time::Duration;

use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use kube::Client;

use super::error::K8sError;

/// A connected client with the API server URL it talks to (for messages and metadata).
#[derive(Clone)]
pub struct Connection {
    pub client: Client,
    pub server: String,
}

/// Builds a client as kubectl would: an explicit kubeconfig or context first,
/// then the in-cluster service account when running in a pod (and
/// `KUBECONFIG` is unset), then the default kubeconfig.
///
/// No request is made: an unreachable server is reported by the first call.
pub async fn connect(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<Connection, K8sError> {
    // The S3 client brings a second TLS crypto backend into the build, after
    // which rustls needs the process-wide choice made explicitly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = load_config(kubeconfig, context).await?;
    let server = config.cluster_url.to_string();
    let client = Client::try_from(config).map_err(|source| K8sError::Client {
        server: server.clone(),
        source: Box::new(source),
    })?;
    tracing::debug!(server = %server, "kubernetes client ready");
    Ok(Connection { client, server })
}

async fn load_config(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<Config, K8sError> {
    let kube_opts = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let mut config = if let Some(path) = kubeconfig {
        from_file(path, &kube_opts).await?
    } else if context.is_some() {
        Config::from_kubeconfig(&kube_opts)
            .await
            .map_err(|source| K8sError::KubeconfigInvalid {
                path: default_kubeconfig_name(),
                source,
            })?
    } else if in_pod() && std::env::var_os("KUBECONFIG").is_none() {
        Config::incluster().map_err(|source| K8sError::InCluster { source })?
    } else {
        Config::infer()
            .await
            .map_err(|source| K8sError::NoConfig { source })?
    };
    // kube's default retry backs off up to 15 times on 503: minutes per
    // failing aggregated group. Requests are retried briefly in `rest` instead.
    config.default_retry = false;
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(Duration::from_secs(120));
    Ok(config)
}

async fn from_file(path: &Path, kube_opts: &KubeConfigOptions) -> Result<Config, K8sError> {
    let kubeconfig = Kubeconfig::read_from(path).map_err(|source| K8sError::KubeconfigRead {
        path: path.to_path_buf(),
        source,
    })?;
    Config::from_custom_kubeconfig(kubeconfig, kube_opts)
        .await
        .map_err(|source| K8sError::KubeconfigInvalid {
            path: path.display().to_string(),
            source,
        })
}

fn in_pod() -> bool {
    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
}

fn default_kubeconfig_name() -> String {
    std::env::var("KUBECONFIG").unwrap_or_else(|_| "~/.kube/config".to_string())
}
