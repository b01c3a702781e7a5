//! The settings of the store stack: S3 connection, bandwidth limits and
//! retries, with their defaults and the environment variables that set them.

use serde::{Deserialize, Serialize};

use super::retry::RetryPolicy;
use super::s3::{EnvError, S3Settings};
use super::throttle::{Bandwidth, Schedule};

/// Everything [`super::open_url_with`] and [`super::compose`] need besides
/// the URL. Sources are merged by the caller: config file, then
/// [`StoreOptions::apply_env`], then flags.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct StoreOptions {
    pub s3: S3Settings,
    /// Upload limit: a rate (`40MiB/s`, `off`) or a timetable
    /// (`"08:00,10MiB 19:00,off"`). `None` is unlimited.
    pub limit_upload: Option<Schedule>,
    /// Download limit, in the same forms.
    pub limit_download: Option<Schedule>,
    pub retry: RetryPolicy,
}

/// A whole number above 0 from the environment variable `var`, if set.
fn positive(
    env: &impl Fn(&str) -> Option<String>,
    var: &'static str,
) -> Result<Option<u64>, EnvError> {
    let Some(value) = env(var).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    match value.trim().parse::<u64>() {
        Ok(n) if n > 0 && n <= u32::MAX as u64 => Ok(Some(n)),
        _ => Err(EnvError {
            var,
            value,
            reason: "expected a whole number above 0".into(),
        }),
    }
}

impl StoreOptions {
    /// Overrides fields with environment variables: the `FERRY_S3_*` ones of
    /// [`S3Settings::apply_env`], `FERRY_LIMIT_UPLOAD` /
    /// `FERRY_LIMIT_DOWNLOAD`, and `FERRY_RETRIES` (attempts per request) /
    /// `FERRY_RETRY_BUDGET` (seconds one request may spend retrying). `env` is `|k| std::env::var(k).ok()` in the
    /// CLI, a map in tests.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), EnvError> {
        self.s3.apply_env(&env)?;
        for (var, field) in [
            ("FERRY_LIMIT_UPLOAD", &mut self.limit_upload),
            ("FERRY_LIMIT_DOWNLOAD", &mut self.limit_download),
        ] {
            if let Some(value) = env(var).filter(|v| !v.is_empty()) {
                let schedule =
                    value
                        .parse()
                        .map_err(|e: super::throttle::ParseError| EnvError {
                            var,
                            value: value.clone(),
                            reason: e.reason,
                        })?;
                *field = Some(schedule);
            }
        }
        if let Some(n) = positive(&env, "FERRY_RETRIES")? {
            self.retry.max_attempts = n as u32;
        }
        if let Some(n) = positive(&env, "FERRY_RETRY_BUDGET")? {
            self.retry.budget_seconds = n;
        }
        Ok(())
    }

    /// Limiters for `limit_upload` and `limit_download`.
    pub fn bandwidth(&self) -> Bandwidth {
        Bandwidth::new(self.limit_upload.clone(), self.limit_download.clone())
    }

    /// The options from the process environment over the defaults.
    pub fn from_env() -> Result<StoreOptions, EnvError> {
        let mut options = StoreOptions::default();
        options.apply_env(|k| std::env::var(k).ok())?;
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::store::s3::Provider;

    #[test]
    fn file_then_environment() {
        let mut o: StoreOptions = toml::from_str(
            r#"
            limit-upload = "08:00,10MiB 19:00,off"
            [s3]
            endpoint = "https://s3.oss-cn-hangzhou.aliyuncs.com"
            provider = "oss"
            region = "cn-hangzhou"
            connections = 4
            [retry]
            max-attempts = 3
            "#,
        )
        .unwrap();
        assert_eq!(o.s3.provider, Provider::Oss);
        assert_eq!(o.s3.connections, 4);
        assert_eq!(o.retry.max_attempts, 3);
        let env: HashMap<&str, &str> = [
            ("FERRY_S3_REGION", "cn-shanghai"),
            ("FERRY_S3_CONNECTIONS", "16"),
            ("FERRY_S3_SECRET_ACCESS_KEY", "hunter2"),
            ("FERRY_S3_ACCESS_KEY_ID", "AK"),
            ("FERRY_LIMIT_DOWNLOAD", "100MiB/s"),
        ]
        .into();
        o.apply_env(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(o.s3.region.as_deref(), Some("cn-shanghai"));
        assert_eq!(o.s3.connections, 16);
        assert_eq!(
            o.s3.endpoint.as_deref(),
            Some("https://s3.oss-cn-hangzhou.aliyuncs.com")
        );
        assert_eq!(o.limit_download.unwrap().rate_now(), Some(100 << 20));
        assert!(
            o.limit_upload.is_some(),
            "the file's value stays when the environment is silent"
        );
        assert!(
            !format!("{:?}", o.s3).contains("hunter2"),
            "secrets stay out of Debug"
        );
    }

    #[test]
    fn bad_environment_names_the_variable() {
        let mut o = StoreOptions::default();
        let e = o
            .apply_env(|k| (k == "FERRY_S3_PROVIDER").then(|| "s4".to_string()))
            .unwrap_err();
        assert!(e.to_string().contains("FERRY_S3_PROVIDER"), "{e}");
        let e = o
            .apply_env(|k| (k == "FERRY_LIMIT_UPLOAD").then(|| "fast".to_string()))
            .unwrap_err();
        assert!(e.to_string().contains("FERRY_LIMIT_UPLOAD"), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<StoreOptions>("[s3]\nendpont = \"x\"").is_err());
    }
}
