//! Raw command-line arguments, as clap parses them. Validation into
//! settings happens in `run`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    about = "Encrypted, deduplicating backups and cross-region replication for Kubernetes"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Config file (TOML) with the repository or regions and defaults.
    #[arg(long, global = true, env = "FERRY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Repository location: a local directory (the default kind) or URL.
    #[arg(long, short = 'r', global = true, env = "FERRY_REPO")]
    pub repo: Option<String>,
    /// Use this region of the --config file as the repository (not with --repo).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// The regions of the config file (filled in from it, not a flag).
    #[arg(skip)]
    pub regions: Vec<crate::config::Region>,
    /// Whether the repository came from the config file's regions rather
    /// than from --repo or FERRY_REPO (reads may then fail over).
    #[arg(skip)]
    pub repo_from_regions: bool,
    /// Read the repository password from this file (first line).
    #[arg(long, global = true)]
    pub password_file: Option<PathBuf>,
    /// Run this shell command and use its output as the password.
    #[arg(long, global = true)]
    pub password_command: Option<String>,
    /// Local catalog (SQLite cache) to use instead of the default under
    /// $XDG_CACHE_HOME/ferry/<repository id>/.
    #[arg(long, global = true, env = "FERRY_CATALOG")]
    pub catalog: Option<PathBuf>,
    /// Machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "FERRY_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    /// More log output (repeat for more).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr; no progress.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// No progress bars even on a terminal.
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// S3 endpoint URL (OSS, MinIO, Ceph, Garage; AWS needs none).
    #[arg(long, global = true)]
    pub s3_endpoint: Option<String>,
    /// S3 provider: aws, oss, minio, ceph, garage or generic.
    #[arg(long, global = true)]
    pub s3_provider: Option<String>,
    /// S3 region name.
    #[arg(long, global = true)]
    pub s3_region: Option<String>,
    /// Upload bandwidth limit: `40MiB/s`, `off`, or a timetable `"08:00,10MiB 19:00,off"`.
    #[arg(long, global = true)]
    pub limit_upload: Option<String>,
    /// Download bandwidth limit, as --limit-upload.
    #[arg(long, global = true)]
    pub limit_download: Option<String>,
    /// Write the run's Prometheus metrics to this file (atomically; for
    /// node-exporter's textfile collector).
    #[arg(long, global = true, env = "FERRY_METRICS_FILE")]
    pub metrics_file: Option<PathBuf>,
    /// Push the run's metrics to this Pushgateway, e.g. http://pushgateway:9091.
    #[arg(long, global = true, env = "FERRY_METRICS_PUSH")]
    pub metrics_push: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a repository.
    Init(InitArgs),
    /// Back up paths into a new snapshot.
    Backup(BackupArgs),
    /// List snapshots.
    Snapshots(FilterArgs),
    /// List the entries of a snapshot.
    Ls(LsArgs),
    /// Show what changed between two snapshots.
    Diff(DiffArgs),
    /// Restore a snapshot into a directory.
    Restore(RestoreArgs),
    /// Verify the repository's structure, and with --read-data all its data.
    Check(CheckArgs),
    /// Remove snapshots by a retention policy (--keep-*) or by id.
    Forget(super::forget::ForgetArgs),
    /// Free the data no snapshot needs (two-phase; safe beside running backups).
    Prune(super::prune::PruneCmd),
    /// Copy to every region what it lacks of the others (or with --to, of the primary).
    Replicate(ReplicateArgs),
    /// Per region: reachable?, newest snapshot and its age, lag behind the primary.
    Status(super::status::StatusArgs),
    /// Restore a snapshot into a sandbox, verify it, and measure RTO and RPO.
    Drill(super::drill::DrillArgs),
    /// Check a region (--region) and replace its damaged objects from healthy
    /// regions; `repair index` indexes again packs no index object names.
    Repair(RepairArgs),
    /// Manage the local catalog.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Manage the passwords (keys) that open the repository.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Move one volume inside a data-mover Job (started by `backup --k8s`).
    #[command(subcommand, hide = true)]
    Mover(super::mover::MoverCommand),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Minimum chunk size.
    #[arg(long, default_value = "512KiB")]
    pub chunk_min: String,
    /// Average chunk size.
    #[arg(long, default_value = "1MiB")]
    pub chunk_avg: String,
    /// Maximum chunk size.
    #[arg(long, default_value = "8MiB")]
    pub chunk_max: String,
    /// zstd level (1-22), or 0 for no compression.
    #[arg(long, default_value_t = 3)]
    pub compression_level: i32,
    /// Target pack size.
    #[arg(long, default_value = "16MiB")]
    pub pack_size: String,
    /// Argon2id memory for the password key.
    #[arg(long, default_value = "64MiB")]
    pub kdf_memory: String,
    /// Argon2id passes for the password key.
    #[arg(long, default_value_t = 3)]
    pub kdf_iterations: u32,
    /// Write every object under S3 Object Lock: governance or compliance.
    #[arg(long, requires = "retention")]
    pub object_lock: Option<String>,
    /// How long each object stays locked, renewed by prune while in use
    /// (e.g. 30d; s, m, h or d).
    #[arg(long, requires = "object_lock")]
    pub retention: Option<String>,
}

#[derive(Debug, Args, Default, Clone)]
pub struct FilterArgs {
    /// Only snapshots of this host.
    #[arg(long)]
    pub host: Option<String>,
    /// Only snapshots that include this source path (repeatable).
    #[arg(long = "path")]
    pub paths: Vec<String>,
    /// Only snapshots with this tag (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
}

/// Which cluster to talk to (kubeconfig as kubectl reads it, or the pod's
/// service account).
#[derive(Debug, Args, Clone, Default)]
pub struct ClusterArgs {
    /// Kubeconfig file (default: KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current one).
    #[arg(long)]
    pub context: Option<String>,
    /// Only these namespaces (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub include_namespaces: Vec<String>,
    /// Not these namespaces (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub exclude_namespaces: Vec<String>,
    /// Only these resources, e.g. deployments.apps,configmaps.
    #[arg(long, value_delimiter = ',')]
    pub include_resources: Vec<String>,
    /// Not these resources, e.g. secrets.
    #[arg(long, value_delimiter = ',')]
    pub exclude_resources: Vec<String>,
}

/// The data-mover Jobs of `backup --k8s` and `restore --k8s`.
#[derive(Debug, Args, Clone)]
pub struct MoverArgs {
    /// Volume Jobs running at once.
    #[arg(long, default_value_t = 4)]
    pub parallel_volumes: usize,
    /// A volume not done by then fails: 90s, 30m, 4h.
    #[arg(long, default_value = "4h")]
    pub volume_timeout: String,
    /// Image of the Jobs (holding the ferry binary) [default: this version's release image].
    #[arg(long)]
    pub mover_image: Option<String>,
    /// Namespace where snapshots are re-homed and snapshot Jobs run.
    #[arg(long, default_value = "ferry")]
    pub mover_namespace: String,
    /// Secret in the mover namespace with the repository settings (FERRY_REPO, FERRY_PASSWORD, ...).
    #[arg(long, default_value = "ferry-repository")]
    pub mover_secret: String,
    /// Service account of the Jobs in the mover namespace (they need no API access).
    #[arg(long, default_value = "ferry-mover")]
    pub mover_service_account: String,
}

#[derive(Debug, Args, Clone)]
pub struct BackupArgs {
    /// Files and directories to back up (volume paths; optional with --k8s).
    #[arg(required_unless_present = "k8s")]
    pub paths: Vec<PathBuf>,
    /// Back up the Kubernetes cluster's objects into k8s/ of the snapshot.
    #[arg(long)]
    pub k8s: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Label selector for Kubernetes objects, e.g. app=web.
    #[arg(long)]
    pub selector: Option<String>,
    /// Back up cluster-scoped resources: auto (when no namespace filter), true, false.
    #[arg(long, default_value = "auto")]
    pub include_cluster_resources: String,
    /// With --k8s, volume data: snapshot (CSI snapshot where the driver has a
    /// VolumeSnapshotClass, else fs), fs (live volume, not point-in-time), none.
    #[arg(long, default_value = "snapshot")]
    pub volumes: String,
    #[command(flatten)]
    pub movers: MoverArgs,
    /// Tag the snapshot (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Host name to record (default: this machine's, or FERRY_HOST).
    #[arg(long)]
    pub host: Option<String>,
    /// Compare against this snapshot instead of the newest of the same host and paths.
    #[arg(long)]
    pub parent: Option<String>,
    /// Read every file, ignoring any parent snapshot.
    #[arg(long)]
    pub force: bool,
    /// Skip entries matching this glob (matched against the absolute path and the name; repeatable).
    #[arg(long = "exclude")]
    pub excludes: Vec<String>,
    /// Ceiling for data buffered in the pipeline [default: 512MiB].
    #[arg(long, env = "FERRY_MEMORY_LIMIT")]
    pub memory_limit: Option<String>,
    /// Record this time instead of now (RFC 3339).
    #[arg(long)]
    pub time: Option<String>,
    /// Then copy the new objects to every other region of the --config file
    /// (a region that fails is reported; `replicate` catches it up later).
    #[arg(long)]
    pub fanout: bool,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// `latest` or a snapshot id.
    pub snapshot: String,
    /// Only this path and below (e.g. /data/pvc-a or k8s/).
    pub path: Option<String>,
    /// Show mode, owner, size and time.
    #[arg(long, short = 'l')]
    pub long: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    pub first: String,
    pub second: String,
    /// Only this path and below.
    pub path: Option<String>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// `latest` or a snapshot id (not with --at).
    pub snapshot: Option<String>,
    /// Restore the newest snapshot taken at or before this time (RFC 3339).
    #[arg(long, conflicts_with = "snapshot")]
    pub at: Option<String>,
    /// Directory to restore files into (required unless --k8s).
    #[arg(long, short = 't', required_unless_present = "k8s")]
    pub target: Option<PathBuf>,
    /// Restore the snapshot's Kubernetes objects into the cluster.
    #[arg(long)]
    pub k8s: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Rewrite namespaces: old:new,...
    #[arg(long)]
    pub namespace_mapping: Option<String>,
    /// What to do with objects that already exist and differ: none (warn) or update.
    #[arg(long, default_value = "none")]
    pub existing_resource_policy: String,
    /// Also restore the objects' recorded status.
    #[arg(long)]
    pub restore_status: bool,
    /// Rewrite storage classes of restored PVCs: old:new,...
    #[arg(long)]
    pub storage_class_mapping: Option<String>,
    /// With --k8s, volume data: restore (new PVCs filled by restore Jobs) or none.
    #[arg(long, default_value = "restore")]
    pub volumes: String,
    #[command(flatten)]
    pub movers: MoverArgs,
    /// Only restore entries matching this glob (and below; repeatable).
    #[arg(long = "include")]
    pub includes: Vec<String>,
    /// Do not restore entries matching this glob (repeatable).
    #[arg(long = "exclude")]
    pub excludes: Vec<String>,
    /// Show what would be restored without writing.
    #[arg(long)]
    pub dry_run: bool,
    /// Replace entries that already exist in the target.
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Read and verify every pack.
    #[arg(long)]
    pub read_data: bool,
}

#[derive(Debug, Args)]
pub struct RepairArgs {
    #[command(subcommand)]
    pub what: Option<RepairCommand>,
}

#[derive(Debug, Subcommand)]
pub enum RepairCommand {
    /// Index again, from their own verified headers, the packs that no
    /// index object names (after an index object was lost).
    Index {
        /// Only report the packs that would be indexed; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Args)]
pub struct ReplicateArgs {
    /// Only this region, from the primary (default: every live region receives what any other holds).
    #[arg(long)]
    pub to: Option<String>,
    /// Bandwidth for all copies together, e.g. 50MiB/s (or `off`).
    #[arg(long)]
    pub limit: Option<String>,
    /// Bandwidth timetable, as rclone's: "08:00,10MiB 19:00,off" (wins over --limit).
    #[arg(long)]
    pub schedule: Option<String>,
    /// Keep replicating, every --interval.
    #[arg(long)]
    pub watch: bool,
    /// Pause between rounds with --watch (e.g. 30s, 5m, 1h).
    #[arg(long, default_value = "60s")]
    pub interval: String,
    /// Re-list each region, re-read every object it holds, and replace damaged copies.
    #[arg(long)]
    pub verify: bool,
    /// Objects copied at once per region.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
}

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Recreate the local catalog from the repository alone.
    Rebuild,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Add a password (from --new-password-file, FERRY_NEW_PASSWORD, or a prompt).
    Add {
        #[arg(long)]
        new_password_file: Option<PathBuf>,
    },
    /// List the keys.
    List,
    /// Remove a key by id (or a unique prefix of it).
    Remove { id: String },
}
