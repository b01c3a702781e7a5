//! `replicate`: every live region receives what any other holds (or, with
//! `--to`, the named regions receive what the primary holds), once or in
//! rounds with `--watch`.

use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::args::{Global, ReplicateArgs};
use super::output::{emit, Render};
use super::regions::{lift, regions};
use super::{exit, Reported};
use crate::engine::regions::{Direction, RoundOptions, RoundReport};
use crate::store::throttle::{Bandwidth, Schedule};
use crate::util::human_bytes;

fn parse_interval(s: &str) -> Result<Duration> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .with_context(|| format!("interval {s:?}: write e.g. 30s, 5m, 1h"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => bail!("interval {s:?}: unit {unit:?} is not s, m or h"),
    };
    Ok(Duration::from_secs(n * mult))
}

impl Render for RoundReport {
    fn text(&self) -> String {
        let mut out = String::new();
        for r in &self.regions {
            let Some(rep) = &r.report else { continue };
            let created = if r.created {
                " (repository created)"
            } else {
                ""
            };
            out += &format!(
                "{}: copied {} objects, {} ({} already there) from {}{created}{}\n",
                r.region,
                rep.objects(),
                human_bytes(rep.bytes()),
                rep.present,
                r.sources.join(", "),
                if rep.verified > 0 {
                    format!("; verified {}, {} damaged", rep.verified, rep.damaged.len())
                } else {
                    String::new()
                }
            );
        }
        out
    }

    fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for d in &self.down {
            out.push(format!(
                "region {} is down, not replicated: {}",
                d.region, d.error
            ));
        }
        for r in &self.regions {
            if let Some(e) = &r.error {
                out.push(format!("{}: replication failed: {e}", r.region));
            }
            for (k, e) in r.report.iter().flat_map(|rep| &rep.failed) {
                out.push(format!("{}: not copied: {k}: {e}", r.region));
            }
        }
        out
    }
}

fn options(a: &ReplicateArgs) -> Result<RoundOptions> {
    // One upload limit shared by every region's copies, paced as the bytes
    // travel, inside which each region's own upload-limit still holds.
    let bandwidth = match (&a.schedule, &a.limit) {
        (Some(s), _) | (None, Some(s)) => Bandwidth::new(
            Some(
                s.parse::<Schedule>()
                    .map_err(|e| anyhow::anyhow!("--limit/--schedule {s:?}: {e}"))?,
            ),
            None,
        ),
        _ => Bandwidth::default(),
    };
    Ok(RoundOptions {
        direction: match &a.to {
            Some(name) => Direction::OneWay(vec![name.clone()]),
            None => Direction::Converge,
        },
        concurrency: a.concurrency,
        verify: a.verify,
        bandwidth,
    })
}

pub async fn run(g: &Global, a: ReplicateArgs) -> Result<i32> {
    let opts = options(&a)?;
    let interval = parse_interval(&a.interval)?;
    loop {
        // Each round probes the regions afresh: one that was down may be back.
        let started = std::time::Instant::now();
        let regions = regions(g)?;
        let report = regions.replicate(&opts).await.map_err(lift)?;
        if let Ok(id) = regions.repo_id().await {
            super::metrics::set_repository(&id, report.source.as_deref());
        }
        super::metrics::replicate(&report, started.elapsed().as_secs_f64());
        emit(g, &report);
        let failed = report.failed();
        if !a.watch {
            if failed > 0 {
                let names: Vec<&str> = report
                    .regions
                    .iter()
                    .filter(|r| !r.ok)
                    .map(|r| r.region.as_str())
                    .collect();
                return Err(Reported(format!(
                    "{failed} regions are not fully replicated ({}); see above; run replicate again once they are reachable",
                    names.join(", ")
                ))
                .into());
            }
            return Ok(exit::OK);
        }
        tokio::time::sleep(interval).await;
    }
}
