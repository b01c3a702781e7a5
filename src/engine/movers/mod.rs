//! Volume data of a Kubernetes backup: per PVC a CSI snapshot (or the live
//! volume) mounted into a data-mover Job that runs `ferry mover`, which
//! stores the volume as a tree in the same repository. The coordinator
//! (`backup --k8s --volumes ...`) gathers the trees; the CLI places them
//! under `volumes/<namespace>/<pvc>/` of the one snapshot it writes.
//!
//! Entry points: [`backup_volumes`] and [`restore_volumes`]. The layout of
//! the temporary objects and the manifest are in `docs/k8s.md`.

mod api;
mod backup;
pub mod hooks;
mod job;
mod objects;
mod parents;
mod plan;
mod restore;
pub mod restore_hooks;

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::repo::BlobId;

pub use backup::backup_volumes;
pub use parents::{previous_trees, ParentTree};
pub use restore::{restore_volumes, VolumeRestore, VolumeRestoreOptions};

/// The label every temporary object carries; its value names the backup
/// (or restore) that made it.
pub const RUN_LABEL: &str = "ferry.io/backup";
/// Labels marking the VolumeSnapshotClass to use for a CSI driver.
pub const CLASS_LABELS: [&str; 2] = [
    "ferry.io/volumesnapshot-class",
    "velero.io/csi-volumesnapshot-class",
];
/// PVC annotations naming the VolumeSnapshotClass for that PVC.
pub const CLASS_ANNOTATIONS: [&str; 2] = [
    "ferry.io/volumesnapshot-class",
    "velero.io/csi-volumesnapshot-class",
];

/// `--volumes`: how volume data is backed up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumesMode {
    /// A CSI snapshot where the PVC's driver has a VolumeSnapshotClass, the
    /// live volume otherwise.
    #[default]
    Snapshot,
    /// Always the live volume (not point-in-time).
    Fs,
    /// No volume data.
    None,
}

impl FromStr for VolumesMode {
    type Err = VolumeError;
    fn from_str(s: &str) -> Result<Self, VolumeError> {
        match s {
            "snapshot" => Ok(Self::Snapshot),
            "fs" => Ok(Self::Fs),
            "none" => Ok(Self::None),
            other => Err(VolumeError::Option(format!(
                "--volumes {other}: expected snapshot, fs or none"
            ))),
        }
    }
}

/// How one volume was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// From a CSI VolumeSnapshot: point in time.
    Snapshot,
    /// From the live volume, mounted read-only: not point in time.
    Fs,
}

/// Settings of the data-mover Jobs.
#[derive(Debug, Clone)]
pub struct MoverOptions {
    pub mode: VolumesMode,
    /// At most this many Jobs at once.
    pub parallel: usize,
    /// A volume whose Job has not finished by then fails.
    pub timeout: Duration,
    pub image: String,
    /// Where snapshots are re-homed and Jobs run.
    pub namespace: String,
    /// The Secret (in the mover namespace) whose keys become the Jobs'
    /// environment: FERRY_REPO, FERRY_PASSWORD, S3 credentials...
    pub secret: String,
    /// The service account of the Jobs in the mover namespace (Jobs in a
    /// volume's namespace run as its default account); none of them gets
    /// an API token.
    pub service_account: String,
    /// How long a pod may report FailedScheduling / image pull errors
    /// before its volume fails.
    pub pending_grace: Duration,
    /// Global flags the Jobs' `ferry` gets before `mover` (the repository
    /// and S3 settings the coordinator was given; credentials stay in the
    /// Secret).
    pub repo_args: Vec<String>,
    /// Where the running volumes' progress is counted.
    pub progress: Arc<VolumeProgress>,
    /// The previous tree of each volume (`<namespace>/<pvc>`), which its
    /// backup mover compares the files with ([`previous_trees`]).
    pub parents: BTreeMap<String, ParentTree>,
}

impl Default for MoverOptions {
    fn default() -> Self {
        MoverOptions {
            mode: VolumesMode::Snapshot,
            parallel: 4,
            timeout: Duration::from_secs(4 * 3600),
            image: DEFAULT_IMAGE.into(),
            namespace: "ferry".into(),
            secret: "ferry-repository".into(),
            service_account: "ferry-mover".into(),
            pending_grace: Duration::from_secs(10),
            repo_args: Vec::new(),
            progress: Arc::default(),
            parents: BTreeMap::new(),
        }
    }
}

/// Progress of the volumes of a run, by `<namespace>/<pvc>`, as their
/// Jobs' logs report it; the library counts, the CLI renders.
#[derive(Debug, Default)]
pub struct VolumeProgress {
    volumes: Mutex<BTreeMap<String, VolumeState>>,
}

/// Where one volume is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VolumeState {
    pub files: u64,
    pub bytes: u64,
    pub seconds: f64,
    /// `Some(true)` once stored, `Some(false)` once failed.
    pub done: Option<bool>,
}

impl VolumeProgress {
    /// Sets a volume's counters (a running one's, or with `done` its end).
    pub fn set(&self, volume: &str, files: u64, bytes: u64, seconds: f64, done: Option<bool>) {
        let mut v = self.volumes.lock().unwrap();
        let s = v.entry(volume.to_string()).or_default();
        *s = VolumeState {
            files: files.max(s.files),
            bytes: bytes.max(s.bytes),
            seconds,
            done,
        };
    }

    pub fn snapshot(&self) -> Vec<(String, VolumeState)> {
        let v = self.volumes.lock().unwrap();
        v.iter().map(|(k, s)| (k.clone(), s.clone())).collect()
    }
}

/// The image Jobs run unless `--mover-image` says otherwise.
pub const DEFAULT_IMAGE: &str = concat!("ghcr.io/ferry-backup/ferry:", env!("CARGO_PKG_VERSION"));

/// One volume of a snapshot: what the snapshot's `volumes` manifest holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub namespace: String,
    pub pvc: String,
    /// Where the data is in the snapshot tree (`volumes/<namespace>/<pvc>`).
    pub path: String,
    pub storage_class: Option<String>,
    pub driver: Option<String>,
    /// The requested size (`spec.resources.requests.storage`).
    pub size: Option<String>,
    /// `Filesystem` or `Block`.
    pub mode: String,
    pub method: Method,
    /// Whether the data is one point in time (snapshot method).
    pub consistent: bool,
    /// The PVC's spec at backup time.
    pub spec: serde_json::Value,
    /// The stored tree; absent when the volume failed.
    pub tree: Option<BlobId>,
    pub files: u64,
    pub bytes: u64,
    pub added_bytes: u64,
    /// The mover's report of files new, changed and unchanged against the
    /// parent tree, and of the file data it read.
    #[serde(flatten)]
    pub incremental: crate::engine::volumes::Incremental,
    pub seconds: f64,
    /// `bytes / seconds`: how fast the volume was read.
    #[serde(default)]
    pub bytes_per_second: f64,
    /// Why the volume is not in the snapshot.
    pub error: Option<String>,
    /// The hooks run around its snapshot, in order.
    #[serde(default)]
    pub hooks: Vec<hooks::HookResult>,
}

/// Failures that stop the volume part of a backup or restore as a whole
/// (one volume's failure is recorded in its [`VolumeRecord`] instead).
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("{0}")]
    Option(String),
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error(transparent)]
    K8s(#[from] crate::source::k8s::K8sError),
    #[error("interrupted; the temporary objects of run {0} were deleted")]
    Interrupted(String),
}

/// A short name for a run, unique enough to label its objects.
pub fn run_name(prefix: &str) -> String {
    use rand::Rng;
    let n: u32 = rand::thread_rng().gen();
    format!("{prefix}-{n:08x}")
}
