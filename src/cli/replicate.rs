//! `replicate`: copies from the primary to the other regions, once or in
//! rounds with `--watch`, and records what each region holds.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::args::{Global, ReplicateArgs};
use super::output::print_json;
use super::regions::{find, need_regions, open_catalog};
use super::{exit, Reported};
use crate::config::Region;
use crate::engine::regions::{probe, region_store};
use crate::engine::replicate::{replicate, ReplicateOptions};
use crate::store::tee::Tee;
use crate::store::throttle::{Bandwidth, Schedule, Throttled};
use crate::store::DynStore;
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

pub(crate) async fn replicate_cmd(g: &Global, a: ReplicateArgs) -> Result<i32> {
    let primary = need_regions(g)?.clone();
    let targets: Vec<Region> = match &a.to {
        Some(name) if *name == primary.name => {
            bail!("{name} is the primary: replicate copies from it")
        }
        Some(name) => vec![find(&g.regions, name)?.clone()],
        None => g
            .regions
            .iter()
            .filter(|r| r.name != primary.name)
            .cloned()
            .collect(),
    };
    // One upload limit shared by every region's copies, paced as the bytes
    // travel, inside which each region's own upload-limit still holds.
    let global = match (&a.schedule, &a.limit) {
        (Some(s), _) | (None, Some(s)) => Bandwidth::new(
            Some(
                s.parse::<Schedule>()
                    .map_err(|e| anyhow::anyhow!("--limit/--schedule {s:?}: {e}"))?,
            ),
            None,
        ),
        _ => Bandwidth::default(),
    };
    let interval = parse_interval(&a.interval)?;
    let id = probe(&primary)
        .await
        .map_err(|e| anyhow::anyhow!("primary region {}: {e}", primary.name))?;
    loop {
        let started = std::time::Instant::now();
        let (results, failed) =
            round(g, &id, &primary, &targets, &global, a.concurrency, a.verify).await?;
        super::metrics::set_repository(&id, Some(&primary.name));
        super::metrics::replicate(&results, started.elapsed().as_secs_f64());
        if g.json {
            print_json(&serde_json::json!({ "source": primary.name, "regions": results }));
        }
        if !a.watch {
            if failed > 0 {
                return Err(Reported(format!("{failed} regions are not fully replicated; see above; run replicate again once they are reachable")).into());
            }
            return Ok(exit::OK);
        }
        tokio::time::sleep(interval).await;
    }
}

/// One replication of every target region at the same time: the JSON
/// report of each and how many did not complete.
#[allow(clippy::too_many_arguments)]
async fn round(
    g: &Global,
    id: &str,
    primary: &Region,
    targets: &[Region],
    global: &Bandwidth,
    concurrency: usize,
    verify: bool,
) -> Result<(Vec<serde_json::Value>, usize)> {
    let source = region_store(primary)?;
    let mut results = Vec::new();
    let mut failed = 0;
    // Regions are served at the same time, each with its own concurrency.
    let rounds = targets.iter().map(|r| {
        let opts = ReplicateOptions {
            concurrency,
            verify,
        };
        let source = &source;
        async move {
            let mut dest = region_store(r)?;
            if !global.is_unlimited() {
                dest = Arc::new(Throttled::shared(dest, global)) as DynStore;
            }
            Ok::<_, anyhow::Error>(replicate(source, &dest, &opts).await?)
        }
    });
    let outcomes = futures::future::join_all(rounds).await;
    for (r, outcome) in targets.iter().zip(outcomes) {
        match outcome {
            Ok(rep) => {
                let mut cat = open_catalog(g, id)?;
                cat.set_region_objects(&primary.name, &rep.source_objects)?;
                cat.set_region_objects(&r.name, &rep.dest_objects)?;
                failed += usize::from(!rep.complete());
                if !g.json {
                    println!(
                        "{}: copied {} objects, {} ({} already there){}",
                        r.name,
                        rep.objects(),
                        human_bytes(rep.bytes()),
                        rep.present,
                        if verify {
                            format!("; verified {}, {} damaged", rep.verified, rep.damaged.len())
                        } else {
                            String::new()
                        }
                    );
                    for (k, e) in &rep.failed {
                        eprintln!("{}: not copied: {k}: {e}", r.name);
                    }
                }
                results.push(
                    serde_json::json!({ "region": r.name, "ok": rep.complete(), "report": rep }),
                );
            }
            Err(e) => {
                failed += 1;
                if !g.json {
                    eprintln!("{}: replication failed: {e:#}", r.name);
                }
                results.push(
                    serde_json::json!({ "region": r.name, "ok": false, "error": format!("{e:#}") }),
                );
            }
        }
    }
    Ok((results, failed))
}

/// For `backup --fanout`: the primary's store, also writing packs and index
/// objects to every other region that answers now and already holds this
/// repository. The others are left to the replication round after the
/// backup.
pub(crate) async fn tee(g: &Global) -> Result<Arc<Tee>> {
    let primary = need_regions(g)?.clone();
    let others: Vec<&Region> = g
        .regions
        .iter()
        .filter(|r| r.name != primary.name)
        .collect();
    let (id, probes) = futures::join!(
        probe(&primary),
        futures::future::join_all(others.iter().map(|r| probe(r)))
    );
    let mut copies = Vec::new();
    if let Ok(id) = id {
        for (r, p) in others.iter().zip(probes) {
            match p {
                Ok(theirs) if theirs == id => copies.push((r.name.clone(), region_store(r)?)),
                Ok(theirs) => tracing::warn!(region = %r.name,
                    "holds another repository ({theirs}); not written by this backup"),
                Err(e) => tracing::warn!(region = %r.name, error = %e,
                    "not written during this backup; it is replicated after it if it answers then"),
            }
        }
    }
    Ok(Tee::new(super::open_store(g)?, copies))
}

/// After a backup with `--fanout`: copies to every other region what it
/// still lacks (the snapshot, and everything for a region the backup could
/// not write to). Failures are reported, not fatal.
/// `id` is the repository's, as the backup opened it.
pub(crate) async fn fanout(
    g: &Global,
    id: &str,
    tee: &Tee,
) -> Result<(Vec<serde_json::Value>, usize)> {
    let primary = need_regions(g)?.clone();
    let targets: Vec<Region> = g
        .regions
        .iter()
        .filter(|r| r.name != primary.name)
        .cloned()
        .collect();
    let unlimited = Bandwidth::default();
    let (mut results, failed) = round(g, id, &primary, &targets, &unlimited, 4, false).await?;
    for t in tee.reports() {
        if let Some(why) = &t.dropped {
            eprintln!(
                "warning: {} stopped receiving the backup's data ({why}); it was caught up afterwards only if its report says ok",
                t.region
            );
        }
        if let Some(r) = results.iter_mut().find(|r| r["region"] == t.region) {
            r["streamed"] = serde_json::to_value(&t)?;
        }
    }
    Ok((results, failed))
}
