//! `ferry prune`: free what no snapshot needs (two-phase, beside running
//! backups; see docs/format.md, "Deletion plans").

use anyhow::{Context, Result};
use clap::Args;

use super::args::Global;
use super::output::{emit, Render};
use crate::engine::prune::{self, PruneOptions, PruneReport, Tally};
use crate::util::human_bytes;

#[derive(Debug, Args, Clone)]
pub struct PruneArgs {
    /// Repack packs whose unused share is above this (e.g. 5%, 0%).
    #[arg(long, default_value = "5%")]
    pub max_unused: String,
    /// Copy at most this much data when repacking in one run (e.g. 2GiB).
    #[arg(long)]
    pub max_repack_size: Option<String>,
    /// Delete planned packs only once their plan is this old (e.g. 24h, 30m, 0s).
    #[arg(long, default_value = "24h")]
    pub keep_delete: String,
}

/// `--prune` of `forget` shares these; `--dry-run` is the command's own.
#[derive(Debug, Args)]
pub struct PruneCmd {
    #[command(flatten)]
    pub args: PruneArgs,
    /// Show what would be done without changing anything.
    #[arg(long)]
    pub dry_run: bool,
}

fn percent(s: &str) -> Result<f64> {
    let n = s.trim().trim_end_matches('%');
    let v: f64 = n
        .parse()
        .ok()
        .filter(|v: &f64| (0.0..=100.0).contains(v))
        .with_context(|| format!("--max-unused {s:?}: give a percentage from 0% to 100%"))?;
    Ok(v / 100.0)
}

/// `30s`, `15m`, `24h`, `7d`.
fn duration(flag: &str, s: &str) -> Result<chrono::Duration> {
    let t = s.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: i64 = num.parse().ok().with_context(|| {
        format!("--{flag} {s:?}: give a number and a unit, such as 24h, 30m or 7d")
    })?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => anyhow::bail!("--{flag} {s:?}: the unit must be s, m, h or d (such as 24h)"),
    };
    Ok(chrono::Duration::seconds(n * secs))
}

impl PruneArgs {
    pub fn options(&self, dry_run: bool) -> Result<PruneOptions> {
        let max_repack_size = match &self.max_repack_size {
            Some(s) => Some(
                crate::util::parse_size(s)
                    .map_err(|e| anyhow::anyhow!("--max-repack-size {s:?}: {e}"))?,
            ),
            None => None,
        };
        Ok(PruneOptions {
            max_unused: percent(&self.max_unused)?,
            max_repack_size,
            keep_delete: duration("keep-delete", &self.keep_delete)?,
            dry_run,
        })
    }
}

fn line(what: &str, t: &Tally) -> String {
    format!(
        "{what:<28} {:>6} packs {:>10}\n",
        t.packs,
        human_bytes(t.bytes)
    )
}

impl Render for PruneReport {
    fn text(&self) -> String {
        let would = |s: &str| match self.dry_run {
            true => format!("would be {s}"),
            false => s.to_string(),
        };
        let mut out = format!(
            "{} snapshots use {} blobs\n",
            self.snapshots, self.used_blobs
        );
        out += &line("kept", &self.kept);
        out += &line(&would("repacked"), &self.repacked);
        out += &line("written by repacking", &self.written);
        out += &line(&would("planned for deletion"), &self.planned);
        out += &line("planned, not yet due", &self.waiting);
        out += &line(&would("deleted"), &self.deleted);
        out += &line("taken back (needed again)", &self.taken_back);
        if let Some(t) = &self.next_deletion {
            out += &format!(
                "planned packs can be deleted by a prune from {}\n",
                crate::util::rfc3339(t)
            );
        }
        out
    }
}

pub async fn run(g: &Global, a: PruneCmd) -> Result<i32> {
    let opts = a.args.options(a.dry_run)?;
    let repo = super::open_repo(g).await?;
    let report = prune::prune(&repo, &opts).await?;
    emit(g, &report);
    Ok(super::exit::OK)
}
