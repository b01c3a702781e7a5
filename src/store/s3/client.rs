//! Builds the one aws-sdk-s3 client a store shares between all its requests:
//! region, endpoint, addressing style, credentials, and the SDK behaviours
//! ferry replaces with its own (retries, stall detection, checksums).

use std::time::Duration;

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_credential_types::provider::{self, future, ProvideCredentials};
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    SharedCredentialsProvider, StalledStreamProtectionConfig,
};

use super::S3Settings;

/// The HTTPS client of every S3 request and of the credential chain:
/// rustls with ring, the crypto provider the rest of ferry uses.
fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The region the settings name, else the standard environment variables,
/// else `us-east-1`.
pub(crate) fn region(settings: &S3Settings) -> String {
    settings
        .region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "us-east-1".to_string())
}

pub(crate) fn build(settings: &S3Settings, region: &str) -> aws_sdk_s3::Client {
    let quirks = settings.provider.quirks();
    let region = Region::new(region.to_string());
    let credentials = match (&settings.access_key_id, &settings.secret_access_key) {
        (Some(id), Some(secret)) => SharedCredentialsProvider::new(Credentials::new(
            id,
            &secret.0,
            settings.session_token.as_ref().map(|t| t.0.clone()),
            None,
            "ferry-settings",
        )),
        _ => SharedCredentialsProvider::new(LazyDefaultChain {
            region: region.clone(),
            profile: settings.profile.clone(),
            chain: tokio::sync::OnceCell::new(),
        }),
    };
    let mut config = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .http_client(https_client())
        .region(region)
        .credentials_provider(credentials)
        .force_path_style(quirks.path_style)
        // Checksums are computed by the store itself (Content-MD5 always,
        // CRC32C where the provider knows it), so the SDK never switches to
        // aws-chunked bodies, which OSS and several S3 clones reject.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenSupported)
        // Retries belong to the retry wrapper, and stalls to the store's own
        // watchdog, which knows about bandwidth limits.
        .retry_config(RetryConfig::disabled())
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .build(),
        );
    if let Some(endpoint) = &settings.endpoint {
        config = config.endpoint_url(endpoint.trim_end_matches('/'));
    }
    aws_sdk_s3::Client::from_conf(config.build())
}

/// The standard AWS credential chain (environment, profile, web identity,
/// ECS and instance metadata), built on first use so that a store can be
/// opened outside async code. The SDK caches the credentials it returns.
#[derive(Debug)]
struct LazyDefaultChain {
    region: Region,
    profile: Option<String>,
    chain: tokio::sync::OnceCell<DefaultCredentialsChain>,
}

impl ProvideCredentials for LazyDefaultChain {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let chain = self
                .chain
                .get_or_init(|| async {
                    let config = aws_config::provider_config::ProviderConfig::default()
                        .with_http_client(https_client());
                    let mut builder = DefaultCredentialsChain::builder()
                        .configure(config)
                        .region(self.region.clone());
                    if let Some(profile) = &self.profile {
                        builder = builder.profile_name(profile);
                    }
                    builder.build().await
                })
                .await;
            let result: provider::Result = chain.provide_credentials().await;
            result
        })
    }
}
