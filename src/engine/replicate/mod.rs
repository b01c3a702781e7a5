//! `replicate`: makes one store hold every object another holds, copying
//! only what it lacks (objects are immutable and named by their content), in
//! the repository's write order so that a snapshot becomes visible in the
//! destination only once all its data is there.

mod copy;

use std::collections::{BTreeMap, HashMap};

use futures::StreamExt;
use serde::Serialize;

use super::{EngineError, EngineResult};
use crate::format::config::{peek_id, CONFIG_KEY};
use crate::format::ObjectKind;
use crate::store::{DynStore, ObjectMeta};
pub use copy::{copy_object, matches_name};

/// The object kinds in the order they are copied: the repository's write
/// order, so that an object arrives only after everything it names.
pub const PHASES: [ObjectKind; 5] = [
    ObjectKind::Key,
    ObjectKind::Pack,
    ObjectKind::Index,
    ObjectKind::Snapshot,
    ObjectKind::Drill,
];

#[derive(Clone, Default)]
pub struct ReplicateOptions {
    /// Objects copied at once.
    pub concurrency: usize,
    /// Afterwards, re-read every object the destination holds, check it
    /// against its name, and replace damaged ones from the source.
    pub verify: bool,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct KindReport {
    pub objects: u64,
    pub bytes: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct ReplicateReport {
    /// Copied objects and bytes per kind (`config`, `keys`, `data`, ...).
    pub copied: BTreeMap<String, KindReport>,
    /// Objects the destination already held.
    pub present: u64,
    /// Objects that could not be copied, with the reason; later kinds are
    /// not copied while an earlier one is incomplete.
    pub failed: Vec<(String, String)>,
    /// With `verify`: objects re-read, and damaged ones found (and replaced
    /// when the source had a good copy).
    pub verified: u64,
    pub damaged: Vec<String>,
    /// What the source holds, as listed.
    #[serde(skip)]
    pub source_objects: Vec<ObjectMeta>,
    /// What the destination holds afterwards.
    #[serde(skip)]
    pub dest_objects: Vec<ObjectMeta>,
}

impl ReplicateReport {
    pub fn bytes(&self) -> u64 {
        self.copied.values().map(|k| k.bytes).sum()
    }

    pub fn objects(&self) -> u64 {
        self.copied.values().map(|k| k.objects).sum()
    }

    pub fn complete(&self) -> bool {
        self.failed.is_empty()
    }

    fn count(&mut self, key: &str, bytes: u64) {
        let kind = key.split('/').next().unwrap_or(key).to_string();
        let k = self.copied.entry(kind).or_default();
        k.objects += 1;
        k.bytes += bytes;
    }
}

/// Copies to `dest` what `source` holds and `dest` lacks.
pub async fn replicate(
    source: &DynStore,
    dest: &DynStore,
    opts: &ReplicateOptions,
) -> EngineResult<ReplicateReport> {
    let mut report = ReplicateReport::default();
    let config = source.get(CONFIG_KEY).await?;
    let id = peek_id(&config)?;
    // An object-locked repository stays locked in every region.
    crate::repo::lock::lock_like(dest, &config)?;
    // A config already there (of this repository) is left as it is: it is
    // never written again, by this round or a later one.
    let has_config = match dest.get(CONFIG_KEY).await {
        Ok(theirs) => {
            check_same_repo(dest, &id, &theirs)?;
            true
        }
        Err(e) if e.is_not_found() => false,
        Err(e) => return Err(e.into()),
    };
    let mut held = list_both(source, dest, &mut report).await?;
    let concurrency = opts.concurrency.max(1);
    for kind in PHASES {
        let prefix = kind.prefix();
        let missing: Vec<ObjectMeta> = report
            .source_objects
            .iter()
            .filter(|m| m.key.starts_with(prefix) && held.get(&m.key) != Some(&m.size))
            .cloned()
            .collect();
        report.present += report
            .source_objects
            .iter()
            .filter(|m| m.key.starts_with(prefix))
            .count() as u64
            - missing.len() as u64;
        let mut copies = futures::stream::iter(missing)
            .map(|m| async move { (copy_object(source, dest, &m.key).await, m) })
            .buffer_unordered(concurrency);
        while let Some((res, m)) = copies.next().await {
            match res {
                Ok(n) => {
                    report.count(&m.key, n);
                    held.insert(m.key, n);
                }
                Err(e) => report.failed.push((m.key, e)),
            }
        }
        if !report.failed.is_empty() {
            tracing::warn!(dest = %dest.location(), prefix, "stopping: some objects could not be copied");
            break;
        }
        if kind == ObjectKind::Key && !has_config {
            // The config goes in once the keys that open it are there.
            if !dest.put_if_absent(CONFIG_KEY, config.clone()).await? {
                check_same_repo(dest, &id, &dest.get(CONFIG_KEY).await?)?;
            } else {
                report.count(CONFIG_KEY, config.len() as u64);
            }
        }
    }
    if opts.verify && report.failed.is_empty() {
        copy::verify(source, dest, opts, &mut report).await?;
        held = dest
            .list("")
            .await?
            .into_iter()
            .map(|m| (m.key, m.size))
            .collect();
    }
    finish(&mut report, held, config.len() as u64);
    Ok(report)
}

/// Lists both stores in the reverse of the write order: a backup that
/// finishes while this runs can add packs and index objects that are
/// copied without their snapshot, never a snapshot without its data.
/// Records the source's listing; returns what the destination holds.
async fn list_both(
    source: &DynStore,
    dest: &DynStore,
    report: &mut ReplicateReport,
) -> EngineResult<HashMap<String, u64>> {
    let mut held = HashMap::new();
    for kind in PHASES.into_iter().rev() {
        report
            .source_objects
            .extend(source.list(kind.prefix()).await?);
        for m in dest.list(kind.prefix()).await? {
            held.insert(m.key, m.size);
        }
    }
    Ok(held)
}

/// Records what each side holds afterwards, the config included.
fn finish(report: &mut ReplicateReport, mut held: HashMap<String, u64>, config: u64) {
    held.insert(CONFIG_KEY.into(), config);
    report.source_objects.push(ObjectMeta {
        key: CONFIG_KEY.into(),
        size: config,
    });
    let mut dest_objects: Vec<ObjectMeta> = held
        .into_iter()
        .filter(|(k, _)| !report.failed.iter().any(|(f, _)| f == k))
        .map(|(key, size)| ObjectMeta { key, size })
        .collect();
    dest_objects.sort();
    report.dest_objects = dest_objects;
}

fn check_same_repo(dest: &DynStore, id: &str, theirs: &[u8]) -> EngineResult<()> {
    let theirs = peek_id(theirs)?;
    if theirs != id {
        return Err(EngineError::Usage(format!(
            "{} holds another repository ({theirs}, not {id}); \
             point the region at an empty location or at a copy of this repository",
            dest.location()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
