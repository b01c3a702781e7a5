//! One function per command: turn arguments into options, call the engine,
//! print the result.

use std::sync::Arc;

use anyhow::{bail, Context, Result};

use super::args::{CatalogCommand, Cli, Command, FilterArgs, Global, KeyCommand};
use super::output::{print_json, Bar};
use super::{exit, open_repo, Reported};
use crate::engine::backup::{backup, BackupOptions, ParentChoice};
use crate::engine::progress::Progress;
use crate::engine::restore::{restore, RestoreOptions};
use crate::engine::select::{parse_time, select, select_at, Filter};
use crate::engine::{check, diff, ls};
use crate::repo::config::ChunkerParams;
use crate::repo::keys::KdfParams;
use crate::repo::{InitOptions, Repository};
use crate::util::{human_bytes, parse_size};

pub async fn run(mut cli: Cli) -> Result<i32> {
    let cfg = super::apply_config(&mut cli.global)?;
    let g = &cli.global;
    match cli.command {
        Command::Init(a) => {
            let size = |s: &str| parse_size(s).map_err(anyhow::Error::msg);
            let opts = InitOptions {
                chunker: ChunkerParams {
                    min_size: size(&a.chunk_min)? as u32,
                    avg_size: size(&a.chunk_avg)? as u32,
                    max_size: size(&a.chunk_max)? as u32,
                },
                compression_level: a.compression_level,
                pack_size: size(&a.pack_size)? as u32,
                kdf: KdfParams {
                    memory_kib: (size(&a.kdf_memory)? >> 10) as u32,
                    iterations: a.kdf_iterations,
                    parallelism: 1,
                },
            };
            let url = super::repo_url(g)?;
            if url.starts_with("s3://") {
                // Create the bucket when it is missing and the credentials allow.
                let o = super::store::options(g, &cfg)?;
                let s3 = crate::store::s3::S3Store::from_url(&url, &o.s3)?;
                if let crate::store::s3::BucketInit::Created = s3.init().await? {
                    tracing::info!(url = %url, "created the bucket");
                }
            }
            let store = super::open_store(g)?;
            let pw = super::password::password(g, true)?;
            let repo = Repository::init(store, &pw, &opts, g.catalog.clone()).await?;
            if let Err(e) = super::regions::record_primary(g, &repo).await {
                tracing::warn!(error = %format!("{e:#}"), "could not record the primary's objects in the catalog");
            }
            if g.json {
                print_json(
                    &serde_json::json!({ "repository": repo.location(), "id": repo.config().id, "config": repo.config() }),
                );
            } else {
                println!(
                    "created repository {} at {}",
                    repo.config().id,
                    repo.location()
                );
            }
            Ok(exit::OK)
        }
        Command::Backup(a) => {
            let tee = match a.fanout {
                true => Some(super::replicate::tee(g).await?),
                false => None,
            };
            let repo = match &tee {
                Some(t) => super::open_repo_on(g, t.clone()).await?,
                None => open_repo(g).await?,
            };
            let k8s_args = a.clone();
            let parent = match (&a.parent, a.force) {
                (_, true) => ParentChoice::None,
                (Some(p), _) => {
                    ParentChoice::Id(select(repo.snapshots()?, p, &Filter::default())?.0)
                }
                (None, _) => ParentChoice::Auto,
            };
            let mut excludes = cfg.backup.exclude.clone();
            excludes.extend(a.excludes);
            let tags = if a.tags.is_empty() {
                cfg.backup.tags.clone()
            } else {
                a.tags
            };
            let mut opts = BackupOptions {
                paths: a.paths.clone(),
                tags,
                host: a.host.clone().or(cfg.backup.host.clone()),
                parent,
                excludes,
                memory_limit: parse_size(
                    a.memory_limit
                        .as_deref()
                        .or(cfg.backup.memory_limit.as_deref())
                        .unwrap_or("512MiB"),
                )
                .map_err(anyhow::Error::msg)?,
                time: a.time.as_deref().map(parse_time).transpose()?,
                // Totals for the progress bar: a second walk, only when shown.
                scan: Bar::visible(g),
                ..Default::default()
            };
            if a.k8s {
                super::k8s::add_cluster(&k8s_args, &mut opts).await?;
            }
            let progress = Arc::new(Progress::default());
            let bar = Bar::start(g, &progress, "backup");
            let out = backup(repo.clone(), &opts, progress).await;
            bar.finish();
            let out = out?;
            if let Err(e) = super::regions::record_primary(g, &repo).await {
                tracing::warn!(error = %format!("{e:#}"), "could not record the primary's objects in the catalog");
            }
            let fanout = match &tee {
                Some(t) => Some(super::replicate::fanout(g, &repo.config().id, t).await),
                None => None,
            };
            let s = &out.snapshot;
            let fanout = match fanout {
                None => serde_json::Value::Null,
                Some(Ok((regions, failed))) => {
                    if failed > 0 {
                        eprintln!("warning: {failed} regions did not receive the backup; run `ferry replicate` once they are reachable");
                    }
                    serde_json::Value::Array(regions)
                }
                Some(Err(e)) => {
                    eprintln!("warning: the backup was not copied to the other regions: {e:#}");
                    serde_json::json!({ "error": format!("{e:#}") })
                }
            };
            if g.json {
                print_json(
                    &serde_json::json!({ "id": out.id, "complete": s.is_complete(), "snapshot": s, "fanout": fanout }),
                );
            } else {
                let m = &s.summary;
                println!("snapshot {} saved", out.id.short());
                println!(
                    "files: {} new, {} changed, {} unchanged; {} dirs; {} in total",
                    m.files_new,
                    m.files_changed,
                    m.files_unchanged,
                    m.dirs,
                    human_bytes(m.total_bytes)
                );
                println!(
                    "read {}, added {} ({} stored) in {:.2}s",
                    human_bytes(m.read_bytes),
                    human_bytes(m.added_bytes),
                    human_bytes(m.stored_bytes),
                    m.elapsed_seconds
                );
                if !s.skipped.is_empty() {
                    eprintln!(
                        "warning: {} entries could not be backed up completely:",
                        s.skipped.len()
                    );
                    for sk in &s.skipped {
                        eprintln!("  {}: {}", sk.path, sk.error);
                    }
                }
            }
            Ok(if s.is_complete() {
                exit::OK
            } else {
                exit::INCOMPLETE
            })
        }
        Command::Snapshots(f) => {
            let (repo, region) = super::regions::open_read(g).await?;
            if let (Some(r), false) = (&region, g.quiet) {
                eprintln!("using region {r}");
            }
            let filter = filter(&f);
            let snaps: Vec<_> = repo
                .snapshots()?
                .into_iter()
                .filter(|(_, s)| filter.matches(s))
                .collect();
            if g.json {
                let v: Vec<_> = snaps
                    .iter()
                    .map(|(id, s)| serde_json::json!({ "id": id, "snapshot": s }))
                    .collect();
                print_json(&v);
            } else {
                println!(
                    "{:<10} {:<25} {:<16} {:<20} paths",
                    "id", "time", "host", "tags"
                );
                for (id, s) in &snaps {
                    let time = s.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                    println!(
                        "{:<10} {:<25} {:<16} {:<20} {}",
                        id.short(),
                        time,
                        s.host,
                        s.tags.join(","),
                        s.paths.join(" ")
                    );
                }
                println!("{} snapshots", snaps.len());
            }
            Ok(exit::OK)
        }
        Command::Ls(a) => {
            let repo = open_repo(g).await?;
            let (id, snap) = select(repo.snapshots()?, &a.snapshot, &filter(&a.filter))?;
            let entries = ls::ls(&repo, snap.tree, a.path.as_deref()).await?;
            if g.json {
                let v: Vec<_> = entries
                    .iter()
                    .map(|e| serde_json::json!({ "path": e.path, "node": e.node }))
                    .collect();
                print_json(&serde_json::json!({ "snapshot": id, "entries": v }));
            } else {
                for e in &entries {
                    if a.long {
                        let t = chrono::DateTime::from_timestamp_nanos(e.node.mtime)
                            .format("%Y-%m-%d %H:%M:%S");
                        println!(
                            "{:?} {:o} {:>5} {:>5} {:>12} {} {}",
                            e.node.kind,
                            e.node.mode,
                            e.node.uid,
                            e.node.gid,
                            e.node.size,
                            t,
                            e.path
                        );
                    } else {
                        println!("{}", e.path);
                    }
                }
            }
            Ok(exit::OK)
        }
        Command::Diff(a) => {
            let repo = open_repo(g).await?;
            let snaps = repo.snapshots()?;
            let (ida, sa) = select(snaps.clone(), &a.first, &Filter::default())?;
            let (idb, sb) = select(snaps, &a.second, &Filter::default())?;
            let changes = diff::diff(&repo, sa.tree, sb.tree, a.path.as_deref()).await?;
            if g.json {
                print_json(&serde_json::json!({ "from": ida, "to": idb, "changes": changes }));
            } else {
                for c in &changes {
                    println!("{} {}", c.change.symbol(), c.path);
                }
                println!(
                    "{} changes between {} and {}",
                    changes.len(),
                    ida.short(),
                    idb.short()
                );
            }
            Ok(exit::OK)
        }
        Command::Restore(a) => {
            let (repo, region) = super::regions::open_read(g).await?;
            if let (Some(r), false) = (&region, g.quiet) {
                eprintln!("using region {r}");
            }
            let f = filter(&a.filter);
            let (id, snap) = match (&a.at, &a.snapshot) {
                (Some(t), _) => select_at(repo.snapshots()?, parse_time(t)?, &f)?,
                (None, Some(s)) => select(repo.snapshots()?, s, &f)?,
                (None, None) => bail!("name a snapshot (`latest` or an id) or a time with --at"),
            };
            if a.k8s {
                return super::k8s::restore(g.json, &repo, id, &snap, a).await;
            }
            let opts = RestoreOptions {
                target: a.target.context("--target is required to restore files")?,
                includes: a.includes,
                excludes: a.excludes,
                dry_run: a.dry_run,
                overwrite: a.overwrite,
            };
            let progress = Arc::new(Progress::default());
            let bar = Bar::start(g, &progress, "restore");
            let report = restore(&repo, snap.tree, &opts, progress).await;
            bar.finish();
            let report = report?;
            if g.json {
                print_json(
                    &serde_json::json!({ "snapshot": id, "time": snap.time, "region": region, "report": report }),
                );
            } else {
                if report.dry_run {
                    for p in &report.planned {
                        println!("would restore {p}");
                    }
                }
                let verb = if report.dry_run {
                    "would restore"
                } else {
                    "restored"
                };
                println!(
                    "{verb} snapshot {} of {}: {} files, {} dirs, {} other entries, {}",
                    id.short(),
                    snap.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    report.files,
                    report.dirs,
                    report.others,
                    human_bytes(report.bytes)
                );
                for w in &report.warnings {
                    eprintln!("warning: {}: {}", w.path, w.error);
                }
                for f in &report.failed {
                    eprintln!("not restored: {}: {}", f.path, f.error);
                }
            }
            if !report.failed.is_empty() {
                let n = report.failed.len();
                let msg =
                    format!("{n} entries could not be restored (listed above); the others were");
                return Err(Reported(msg).into());
            }
            Ok(exit::OK)
        }
        Command::Check(a) => {
            let repo = open_repo(g).await?;
            let report = check::check(&repo, a.read_data).await?;
            if g.json {
                print_json(&report);
            } else {
                for w in &report.warnings {
                    eprintln!("warning: {}: {}", w.object, w.error);
                }
                for e in &report.errors {
                    println!("damaged: {}: {}", e.object, e.error);
                }
                for a in &report.affected {
                    println!(
                        "affected: snapshot {} {}: {}",
                        a.snapshot.short(),
                        a.path,
                        a.problem
                    );
                }
                println!(
                    "checked {} snapshots, {} packs{}: {}",
                    report.snapshots,
                    report.packs,
                    if a.read_data {
                        format!(
                            ", read {} in {} blobs",
                            human_bytes(report.bytes_read),
                            report.blobs_read
                        )
                    } else {
                        String::new()
                    },
                    if report.ok() {
                        "no errors".to_string()
                    } else {
                        format!("{} errors", report.errors.len())
                    }
                );
            }
            if !report.ok() {
                let n = report.errors.len();
                let msg = format!("the repository has {n} damaged objects; see above");
                return Err(Reported(msg).into());
            }
            Ok(exit::OK)
        }
        Command::Replicate(a) => super::replicate::replicate_cmd(g, a).await,
        Command::Status => super::regions::status_cmd(g).await,
        Command::Repair => super::regions::repair_cmd(g).await,
        Command::Catalog(CatalogCommand::Rebuild) => {
            let repo = open_repo(g).await?;
            repo.catalog().clear().context("clearing the catalog")?;
            repo.sync_catalog().await?;
            let path = repo.catalog().path().display().to_string();
            let (snaps, blobs) = (repo.snapshots()?.len(), repo.index().len());
            if g.json {
                print_json(
                    &serde_json::json!({ "catalog": path, "snapshots": snaps, "blobs": blobs }),
                );
            } else {
                println!("rebuilt catalog {path}: {snaps} snapshots, {blobs} blobs");
            }
            Ok(exit::OK)
        }
        Command::Key(k) => key(g, k).await,
    }
}

fn filter(f: &FilterArgs) -> Filter {
    Filter {
        host: f.host.clone(),
        paths: f
            .paths
            .iter()
            .map(|p| {
                crate::engine::backup::plan::absolute(std::path::Path::new(p))
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| p.clone())
            })
            .collect(),
        tags: f.tags.clone(),
    }
}

async fn key(g: &Global, cmd: KeyCommand) -> Result<i32> {
    let repo = open_repo(g).await?;
    match cmd {
        KeyCommand::Add { new_password_file } => {
            let pw = match (new_password_file, std::env::var("FERRY_NEW_PASSWORD")) {
                (Some(f), _) => std::fs::read_to_string(&f)
                    .with_context(|| format!("reading {}", f.display()))?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .as_bytes()
                    .to_vec(),
                (None, Ok(p)) => p.into_bytes(),
                (None, Err(_)) => {
                    let p = super::password::prompt("new password: ")?;
                    if super::password::prompt("enter it again: ")? != p {
                        bail!("the two passwords differ");
                    }
                    p
                }
            };
            if pw.is_empty() {
                bail!("the new password is empty");
            }
            let id = repo.add_key(&pw, KdfParams::default()).await?;
            if g.json {
                print_json(&serde_json::json!({ "added": id }));
            } else {
                println!("added key {}", id.short());
            }
        }
        KeyCommand::List => {
            let keys = repo.list_keys().await?;
            if g.json {
                let v: Vec<_> = keys
                    .iter()
                    .map(|(id, k)| serde_json::json!({ "id": id, "current": *id == repo.key_id(), "created": k.created, "host": k.host, "username": k.username }))
                    .collect();
                print_json(&v);
            } else {
                for (id, k) in &keys {
                    let cur = if *id == repo.key_id() { "*" } else { " " };
                    println!(
                        "{cur} {} {} {}@{}",
                        id.short(),
                        k.created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        k.username,
                        k.host
                    );
                }
            }
        }
        KeyCommand::Remove { id } => {
            let keys = repo.list_keys().await?;
            let hits: Vec<_> = keys
                .iter()
                .filter(|(k, _)| k.to_hex().starts_with(&id.to_ascii_lowercase()))
                .collect();
            let target = match hits.as_slice() {
                [(k, _)] => *k,
                [] => bail!("no key with id {id}; `ferry key list` shows them"),
                _ => bail!("several keys start with {id}; give more digits"),
            };
            repo.remove_key(&target).await?;
            if g.json {
                print_json(&serde_json::json!({ "removed": target }));
            } else {
                println!("removed key {}", target.short());
            }
        }
    }
    Ok(exit::OK)
}
