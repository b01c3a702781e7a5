//! The region commands `status` and `repair`, the catalog they share with
//! `replicate`, and reads that fail over from one region to the next.

use std::sync::Arc;

use anyhow::{bail, Context, Result};

use super::args::Global;
use super::output::print_json;
use super::{exit, open_repo, Reported};
use crate::catalog::Catalog;
use crate::config::Region;
use crate::engine::regions::{ordered, primary, probe, region_store};
use crate::repo::{RepoError, Repository};
use crate::util::human_bytes;

pub(crate) fn find<'a>(regions: &'a [Region], name: &str) -> Result<&'a Region> {
    regions.iter().find(|r| r.name == name).with_context(|| {
        let names: Vec<&str> = regions.iter().map(|r| r.name.as_str()).collect();
        format!("no region {name:?} in the --config file (regions: {names:?})")
    })
}

pub(crate) fn need_regions(g: &Global) -> Result<&Region> {
    primary(&g.regions).context("this command needs [[region]] tables in the --config file")
}

/// The catalog of repository `id`, claimed for it when new.
pub(crate) fn open_catalog(g: &Global, id: &str) -> Result<Catalog> {
    let path = g
        .catalog
        .clone()
        .unwrap_or_else(|| crate::catalog::default_path(id));
    let mut cat = Catalog::open(&path)?;
    if cat.meta("repository")?.as_deref() != Some(id) {
        cat.clear()?;
        cat.set_meta("repository", id)?;
    }
    Ok(cat)
}

/// Opens the repository for reading: the region asked for, else the first
/// region that opens, primary first. Returns the region used.
pub(crate) async fn open_read(g: &Global) -> Result<(Arc<Repository>, Option<String>)> {
    if !g.repo_from_regions {
        return Ok((open_repo(g).await?, g.region.clone()));
    }
    let pw = super::password::password(g, false)?;
    let mut failures = Vec::new();
    for r in ordered(&g.regions) {
        if let Err(e) = probe(r).await {
            tracing::warn!(region = %r.name, error = %e, "region unavailable; trying the next");
            failures.push(format!("{}: {e}", r.name));
            continue;
        }
        let store = region_store(r)?;
        match Repository::open(store, &pw, g.catalog.clone()).await {
            Ok(repo) => {
                if !failures.is_empty() {
                    tracing::warn!(region = %r.name, "failed over");
                }
                return Ok((Arc::new(repo), Some(r.name.clone())));
            }
            Err(e @ RepoError::WrongPassword { .. }) => return Err(e.into()),
            Err(e) => {
                tracing::warn!(region = %r.name, error = %e, "region unavailable; trying the next");
                failures.push(format!("{}: {e}", r.name));
            }
        }
    }
    bail!("no region could be opened: {}", failures.join("; "))
}

/// After a backup to the primary, records what it holds.
pub(crate) async fn record_primary(g: &Global, repo: &Repository) -> Result<()> {
    let Some(r) = g.regions.iter().find(|r| Some(&r.url) == g.repo.as_ref()) else {
        return Ok(());
    };
    let listed = repo.store().list("").await?;
    let mut cat = open_catalog(g, &repo.config().id)?;
    cat.set_region_objects(&r.name, &listed)?;
    Ok(())
}

pub(crate) async fn status_cmd(g: &Global) -> Result<i32> {
    need_regions(g)?;
    let probes = futures::future::join_all(g.regions.iter().map(probe)).await;
    let Some(id) = probes.iter().find_map(|p| p.as_ref().ok()).cloned() else {
        let errors: Vec<String> = g
            .regions
            .iter()
            .zip(&probes)
            .map(|(r, p)| {
                format!(
                    "{}: {}",
                    r.name,
                    p.as_ref().err().cloned().unwrap_or_default()
                )
            })
            .collect();
        bail!("no region is reachable: {}", errors.join("; "));
    };
    let cat = open_catalog(g, &id)?;
    let status = crate::engine::regions::status(&cat, &g.regions, &probes, &id)?;
    if g.json {
        print_json(&serde_json::json!({ "repository": id, "regions": status }));
        return Ok(exit::OK);
    }
    for s in &status {
        let rpo = s
            .rpo_seconds
            .map(|t| format!("{t}s"))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<16} {:<11} {:>8} objects {:>10}  behind {:>6} objects {:>10}  newest {} (RPO {rpo}){}",
            s.name,
            if s.reachable { "reachable" } else { "UNREACHABLE" },
            s.held.objects,
            human_bytes(s.held.bytes),
            s.behind.objects,
            human_bytes(s.behind.bytes),
            s.newest_snapshot.as_deref().map(|i| &i[..8]).unwrap_or("-"),
            if s.primary { " [primary]" } else { "" }
        );
        if let Some(e) = &s.error {
            println!("  {e}");
        }
    }
    Ok(exit::OK)
}

pub(crate) async fn repair_cmd(g: &Global) -> Result<i32> {
    let name = g
        .region
        .as_deref()
        .context("name the region to repair with --region")?;
    let target = find(&g.regions, name)?;
    let repo = open_repo(g).await?;
    let check = crate::engine::check::check(&repo, true).await?;
    let keys = crate::engine::repair::damaged_keys(&check);
    let mut sources = Vec::new();
    for r in ordered(&g.regions)
        .into_iter()
        .filter(|r| r.name != target.name)
    {
        sources.push((r.name.clone(), region_store(r)?));
    }
    let report = crate::engine::repair::repair(repo.store(), &keys, &sources).await;
    let listed = repo.store().list("").await?;
    open_catalog(g, &repo.config().id)?.set_region_objects(&target.name, &listed)?;
    if g.json {
        print_json(
            &serde_json::json!({ "region": target.name, "damaged": keys.len(), "report": report }),
        );
    } else {
        for (k, from) in &report.repaired {
            println!("repaired {k} from {from}");
        }
        for (k, e) in &report.unrepaired {
            eprintln!("not repaired: {k}: {e}");
        }
        println!(
            "{}: {} damaged objects, {} repaired",
            target.name,
            keys.len(),
            report.repaired.len()
        );
    }
    if !report.unrepaired.is_empty() {
        return Err(Reported(format!(
            "{} objects could not be repaired; see above",
            report.unrepaired.len()
        ))
        .into());
    }
    Ok(exit::OK)
}
