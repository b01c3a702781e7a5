//! The ferry config file (TOML, `--config` or `FERRY_CONFIG`): repository
//! location, regions and defaults. Precedence: flags > environment > file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Invalid { path: String, message: String },
}

/// One region: a complete copy of the repository in a bucket or directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Region {
    pub name: String,
    /// `s3://bucket/prefix`, `file:///path` or a plain directory path.
    pub url: String,
    #[serde(default)]
    pub endpoint: Option<String>,
    /// aws | oss | minio | ceph | garage | generic
    #[serde(default)]
    pub provider: Option<String>,
    /// The S3 region name, when it differs from `name`.
    #[serde(default)]
    pub s3_region: Option<String>,
    #[serde(default)]
    pub primary: bool,
    #[serde(default)]
    pub upload_limit: Option<String>,
    #[serde(default)]
    pub download_limit: Option<String>,
}

impl Region {
    /// The store settings this region names, with the `FERRY_*` store
    /// variables of the environment applied over them (command-line flags
    /// go over both).
    pub fn store_options(&self) -> Result<crate::store::options::StoreOptions, ConfigError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| ConfigError::Invalid {
            path: "--config".into(),
            message: format!("region {:?}: {what}: {e}", self.name),
        };
        let mut o = crate::store::options::StoreOptions::default();
        o.s3.endpoint = self.endpoint.clone();
        if let Some(p) = &self.provider {
            o.s3.provider = p.parse().map_err(|e| bad("provider", &e))?;
        }
        o.s3.region = self.s3_region.clone().or_else(|| Some(self.name.clone()));
        if let Some(l) = &self.upload_limit {
            o.limit_upload = Some(l.parse().map_err(|e| bad("upload-limit", &e))?);
        }
        if let Some(l) = &self.download_limit {
            o.limit_download = Some(l.parse().map_err(|e| bad("download-limit", &e))?);
        }
        o.apply_env(|k| std::env::var(k).ok())
            .map_err(|e| bad("environment", &e))?;
        Ok(o)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BackupDefaults {
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub memory_limit: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FileConfig {
    /// The repository, when no regions are configured.
    #[serde(default)]
    pub repo: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub catalog: Option<PathBuf>,
    #[serde(default)]
    pub backup: BackupDefaults,
    #[serde(default)]
    pub region: Vec<Region>,
}

impl FileConfig {
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let cfg: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: origin.into(),
            message: e.to_string(),
        })?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            source: e,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |message: String| {
            Err(ConfigError::Invalid {
                path: origin.into(),
                message,
            })
        };
        let mut names = std::collections::HashSet::new();
        for r in &self.region {
            if r.name.is_empty() || !names.insert(&r.name) {
                return bad(format!(
                    "region names must be unique and non-empty (got {:?})",
                    r.name
                ));
            }
            if r.url.is_empty() {
                return bad(format!("region {:?} has no url", r.name));
            }
            for limit in [&r.upload_limit, &r.download_limit].into_iter().flatten() {
                // A rate (`40MiB/s`, `off`) or an rclone-style timetable.
                limit
                    .parse::<crate::store::throttle::Schedule>()
                    .map_err(|e| ConfigError::Invalid {
                        path: origin.into(),
                        message: format!("region {:?}: {e}", r.name),
                    })?;
            }
        }
        if self.region.iter().filter(|r| r.primary).count() > 1 {
            return bad("more than one region is marked primary".into());
        }
        if self.repo.is_some() && !self.region.is_empty() {
            return bad("give either `repo` or `[[region]]` tables, not both".into());
        }
        Ok(())
    }

    /// The repository to use when no flag or environment names one: `repo`,
    /// else the primary region, else the first region.
    pub fn default_repo(&self) -> Option<&str> {
        self.repo.as_deref().or_else(|| {
            self.region
                .iter()
                .find(|r| r.primary)
                .or(self.region.first())
                .map(|r| r.url.as_str())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_regions_and_rejects_unknown_keys() {
        let text = r#"
[[region]]
name = "cn-hangzhou"
url = "s3://prod-backups-hz/cluster-a"
endpoint = "https://s3.oss-cn-hangzhou.aliyuncs.com"
provider = "oss"
primary = true
[[region]]
name = "eu-central-1"
url = "s3://prod-backups-fra/cluster-a"
upload-limit = "40MiB/s"
"#;
        let c = FileConfig::parse(text, "t").unwrap();
        assert_eq!(c.region.len(), 2);
        assert_eq!(c.default_repo(), Some("s3://prod-backups-hz/cluster-a"));
        assert!(FileConfig::parse("colour = 1", "t").is_err());
        assert!(
            FileConfig::parse("[[region]]\nname='a'\nurl='x'\nupload-limit='fast'", "t").is_err()
        );
        let timetable = "[[region]]\nname='a'\nurl='x'\nupload-limit='08:00,10MiB 19:00,off'";
        assert!(FileConfig::parse(timetable, "t").is_ok());
    }
}
