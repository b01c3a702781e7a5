//! `ferry mover backup|restore|verify` (hidden): what a data-mover Job runs. It
//! moves one mounted volume to or from the repository and writes its
//! report, as JSON, to the container's termination message file, where the
//! coordinator (`backup --k8s --volumes`, `restore --k8s`) reads it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use super::args::Global;
use super::output::{emit, Render};
use super::{exit, open_repo};
use crate::engine::drill::VerifyMode;
use crate::engine::progress::Progress;
use crate::engine::volumes::{
    mover_backup, mover_restore, mover_verify, MoverBackupOptions, MoverProgress, MoverReport,
};
use crate::repo::BlobId;

#[derive(Debug, Subcommand)]
pub enum MoverCommand {
    /// Store a mounted volume as a tree (no snapshot) and report its id.
    Backup(MoverBackupArgs),
    /// Write a stored tree into a mounted volume.
    Restore(MoverRestoreArgs),
    /// Read a restored volume back and verify it against the tree (a
    /// drill's check, in a Job of its own after the restore).
    Verify(MoverVerifyArgs),
}

#[derive(Debug, Args)]
pub struct MoverBackupArgs {
    /// The volume's mount path, or with --block its device path.
    #[arg(long)]
    pub source: PathBuf,
    /// The volume is a block device.
    #[arg(long)]
    pub block: bool,
    /// The tree of the volume's previous backup: unchanged files keep its
    /// content unread (not used for block volumes).
    #[arg(long)]
    pub parent: Option<String>,
    /// Compare files by size and mtime only, not ctime and inode (the
    /// volume is a new clone of a storage snapshot).
    #[arg(long)]
    pub ignore_inode: bool,
    /// Write the report here (the container's terminationMessagePath).
    #[arg(long)]
    pub report: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MoverRestoreArgs {
    /// The tree to restore (from the snapshot's volume manifest).
    #[arg(long)]
    pub tree: String,
    /// The volume's mount path, or with --block its device path.
    #[arg(long)]
    pub target: PathBuf,
    #[arg(long)]
    pub block: bool,
    #[arg(long)]
    pub report: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MoverVerifyArgs {
    /// The tree the volume was restored from.
    #[arg(long)]
    pub tree: String,
    /// The volume's mount path, or with --block its device path.
    #[arg(long)]
    pub target: PathBuf,
    #[arg(long)]
    pub block: bool,
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// `full` (every file's content) or `sample:N%`.
    #[arg(long, default_value = "full")]
    pub verify: String,
}

impl Render for MoverReport {
    fn text(&self) -> String {
        format!(
            "tree {}: {} files, {} dirs, {} bytes ({} added) in {:.2}s\n",
            self.tree, self.files, self.dirs, self.bytes, self.added_bytes, self.seconds
        )
    }
}

pub async fn run(g: &Global, c: MoverCommand) -> Result<i32> {
    let (report_path, out) = match c {
        MoverCommand::Backup(a) => {
            let r = async {
                let mo = MoverBackupOptions {
                    block: a.block,
                    host: std::env::var("FERRY_HOST").ok(),
                    parent: a.parent.as_deref().map(tree_id).transpose()?,
                    ignore_inode: a.ignore_inode,
                };
                let repo = open_repo(g).await?;
                let progress = Arc::new(Progress::default());
                let ticker = Ticker::start(&progress);
                let r = mover_backup(repo, &a.source, &mo, progress).await;
                ticker.stop();
                Ok::<_, anyhow::Error>(r?)
            }
            .await;
            (a.report, r)
        }
        MoverCommand::Restore(a) => {
            let r = async {
                let tree = tree_id(&a.tree)?;
                let repo = open_repo(g).await?;
                let progress = Arc::new(Progress::default());
                let ticker = Ticker::start(&progress);
                let r = mover_restore(repo, tree, &a.target, a.block, progress).await;
                ticker.stop();
                Ok::<_, anyhow::Error>(r?)
            }
            .await;
            (a.report, r)
        }
        MoverCommand::Verify(a) => {
            let r = async {
                let tree = tree_id(&a.tree)?;
                let mode = VerifyMode::parse(&a.verify).map_err(anyhow::Error::msg)?;
                let repo = open_repo(g).await?;
                Ok::<_, anyhow::Error>(mover_verify(repo, tree, &a.target, a.block, mode).await?)
            }
            .await;
            (a.report, r)
        }
    };
    // The termination message carries the report, or the error for the
    // coordinator to show.
    let message = match &out {
        Ok(r) => serde_json::to_string(r)?,
        Err(e) => serde_json::json!({ "error": format!("{e:#}") }).to_string(),
    };
    if let Some(p) = &report_path {
        write_report(p, &message)?;
    }
    let report = out?;
    emit(g, &report);
    // A verification that found differences fails the Job; its report
    // still names them.
    Ok(match &report.verification {
        Some(v) if !v.mismatches.is_empty() => exit::DRILL_FAILED,
        _ => exit::OK,
    })
}

fn tree_id(s: &str) -> Result<BlobId> {
    s.parse().with_context(|| format!("{s}: not a tree id"))
}

/// Progress lines on stderr (the container's log), which the coordinator
/// reads through `pods/log`: one at once, one every second, and a last one
/// with the final counts.
struct Ticker {
    progress: Arc<Progress>,
    task: tokio::task::JoinHandle<()>,
}

impl Ticker {
    fn start(p: &Arc<Progress>) -> Ticker {
        let progress = p.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                print_progress(&progress);
            }
        });
        Ticker {
            progress: p.clone(),
            task,
        }
    }

    fn stop(self) {
        self.task.abort();
        print_progress(&self.progress);
    }
}

fn print_progress(p: &Progress) {
    let (files, bytes, ..) = p.snapshot();
    eprintln!("{}", MoverProgress { files, bytes }.line());
}

fn write_report(path: &Path, message: &str) -> Result<()> {
    std::fs::write(path, message)
        .with_context(|| format!("writing the report to {}", path.display()))
}
