//! Settings of the S3 store, as read from the config file (`[[region]]`
//! tables), `FERRY_S3_*` environment variables and flags.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Provider;

/// A secret string that never appears in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// How to reach one bucket. Every field has a default, so an empty table is
/// valid: AWS, the region and credentials from the standard AWS chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct S3Settings {
    /// `https://host[:port]`; `None` uses the provider's default (AWS
    /// regional endpoints).
    pub endpoint: Option<String>,
    pub provider: Provider,
    /// `None` takes `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// A profile of `~/.aws/config` for the standard credential chain.
    pub profile: Option<String>,
    /// Explicit keys; when absent, the standard AWS chain is used
    /// (environment, profile, web identity, container and instance metadata).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
    /// HTTP requests in flight at once (whole objects and multipart parts).
    pub connections: usize,
    /// Objects larger than this are uploaded in parts, in parallel.
    pub multipart_threshold: u64,
    pub part_size: u64,
    /// A request that makes no progress (no byte sent or received) for this
    /// long is abandoned as a transient failure.
    pub idle_timeout_ms: u64,
    /// Objects per listing page (at most 1000 on AWS).
    pub list_page_size: i32,
}

impl Default for S3Settings {
    fn default() -> Self {
        S3Settings {
            endpoint: None,
            provider: Provider::Aws,
            region: None,
            profile: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            // Transfers wait on the network, not the CPU: 8 keeps a 2-core
            // pod's link busy without a crowd of half-finished parts.
            connections: 8,
            // Packs (up to 128 MiB) go in one PUT: one request, and a
            // whole-object CRC32C the server checks and returns on GET,
            // which a multipart object lacks.
            multipart_threshold: 128 << 20,
            part_size: 16 << 20,
            idle_timeout_ms: 60_000,
            list_page_size: 1000,
        }
    }
}

/// A setting from the environment that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {var}={value:?}: {reason}")]
pub struct EnvError {
    pub var: &'static str,
    pub value: String,
    pub reason: String,
}

fn parsed<T: std::str::FromStr>(var: &'static str, value: String) -> Result<T, EnvError>
where
    T::Err: fmt::Display,
{
    value.trim().parse().map_err(|e: T::Err| EnvError {
        var,
        value,
        reason: e.to_string(),
    })
}

impl S3Settings {
    /// Overrides fields with the `FERRY_S3_*` variables `env` returns
    /// (`std::env::var(..).ok()` in the CLI). Call it after reading the config
    /// file and before applying flags: flags > environment > file.
    ///
    /// Variables: `FERRY_S3_ENDPOINT`, `FERRY_S3_PROVIDER`, `FERRY_S3_REGION`,
    /// `FERRY_S3_PROFILE`, `FERRY_S3_ACCESS_KEY_ID`,
    /// `FERRY_S3_SECRET_ACCESS_KEY`, `FERRY_S3_SESSION_TOKEN`,
    /// `FERRY_S3_CONNECTIONS`, `FERRY_S3_MULTIPART_THRESHOLD` and
    /// `FERRY_S3_PART_SIZE` (bytes), `FERRY_S3_IDLE_TIMEOUT_MS`.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), EnvError> {
        let get = |name: &str| env(name).filter(|v| !v.is_empty());
        if let Some(v) = get("FERRY_S3_ENDPOINT") {
            self.endpoint = Some(v);
        }
        if let Some(v) = get("FERRY_S3_PROVIDER") {
            self.provider = parsed("FERRY_S3_PROVIDER", v)?;
        }
        if let Some(v) = get("FERRY_S3_REGION") {
            self.region = Some(v);
        }
        if let Some(v) = get("FERRY_S3_PROFILE") {
            self.profile = Some(v);
        }
        if let Some(v) = get("FERRY_S3_ACCESS_KEY_ID") {
            self.access_key_id = Some(v);
        }
        if let Some(v) = get("FERRY_S3_SECRET_ACCESS_KEY") {
            self.secret_access_key = Some(Secret(v));
        }
        if let Some(v) = get("FERRY_S3_SESSION_TOKEN") {
            self.session_token = Some(Secret(v));
        }
        if let Some(v) = get("FERRY_S3_CONNECTIONS") {
            self.connections = parsed("FERRY_S3_CONNECTIONS", v)?;
        }
        if let Some(v) = get("FERRY_S3_MULTIPART_THRESHOLD") {
            self.multipart_threshold = parsed("FERRY_S3_MULTIPART_THRESHOLD", v)?;
        }
        if let Some(v) = get("FERRY_S3_PART_SIZE") {
            self.part_size = parsed("FERRY_S3_PART_SIZE", v)?;
        }
        if let Some(v) = get("FERRY_S3_IDLE_TIMEOUT_MS") {
            self.idle_timeout_ms = parsed("FERRY_S3_IDLE_TIMEOUT_MS", v)?;
        }
        Ok(())
    }

    /// Checks the values that no server could work with.
    pub fn validate(&self) -> Result<(), String> {
        if self.connections == 0 {
            return Err("connections must be at least 1".into());
        }
        if self.part_size < 5 << 20 && self.provider == Provider::Aws {
            return Err("part-size must be at least 5 MiB on AWS".into());
        }
        if self.part_size == 0 || self.multipart_threshold < self.part_size {
            return Err(
                "multipart-threshold must be at least part-size, and part-size above 0".into(),
            );
        }
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return Err("access-key-id and secret-access-key go together".into());
        }
        if !(1..=1000).contains(&self.list_page_size) {
            return Err("list-page-size must be between 1 and 1000".into());
        }
        Ok(())
    }
}
