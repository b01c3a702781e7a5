//! Snapshot objects: when, where from, and the root tree of one backup.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::id::{BlobId, SnapshotId};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Summary {
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unchanged: u64,
    pub dirs: u64,
    pub total_files: u64,
    pub total_bytes: u64,
    /// Bytes read from source files (unchanged files are not read).
    pub read_bytes: u64,
    /// Blobs and their plaintext bytes that were new to the repository.
    pub blobs_added: u64,
    pub added_bytes: u64,
    /// Bytes written to the store (sealed, compressed).
    pub stored_bytes: u64,
    pub elapsed_seconds: f64,
    /// Every entry below the root tree, each time a path reaches it
    /// (absent in snapshots of older builds and when the count is unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries: Option<u64>,
}

/// Snapshots without an entry count allow this many entries more than
/// their files and directories (symlinks, special files and Kubernetes
/// objects are not counted in the summary).
pub const UNCOUNTED_ENTRIES: u64 = 1 << 20;

impl Summary {
    /// The most entries a walk of this snapshot may meet before it stops
    /// with a damage error: the recorded count, or without one a bound
    /// from the files and directories.
    pub fn entry_limit(&self) -> u64 {
        match self.entries {
            Some(n) => n,
            None => (self.total_files.saturating_add(self.dirs))
                .saturating_mul(2)
                .saturating_add(UNCOUNTED_ENTRIES),
        }
    }
}

/// A source entry the backup could not read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub path: String,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub time: DateTime<Utc>,
    pub host: String,
    pub username: String,
    /// The backed-up source paths, absolute.
    pub paths: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub parent: Option<SnapshotId>,
    pub tree: BlobId,
    #[serde(default)]
    pub summary: Summary,
    /// Entries that could not be read, or changed while being read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
    /// Free-form metadata of other sources (the Kubernetes cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<serde_json::Value>,
    pub program_version: String,
    /// The region the backup wrote to, when it ran over the regions of a
    /// config file (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl Snapshot {
    /// The source identity a parent or a point-in-time restore matches on.
    pub fn same_source(&self, host: &str, paths: &[String]) -> bool {
        self.host == host && self.paths == paths
    }

    pub fn is_complete(&self) -> bool {
        self.skipped.is_empty()
    }
}
