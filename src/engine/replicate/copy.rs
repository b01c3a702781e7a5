//! Copying and re-checking single objects: every object but `config` is
//! named by the BLAKE3 of its bytes, so a copy is verified by its name.

use futures::StreamExt;

use super::{ReplicateOptions, ReplicateReport};
use crate::engine::EngineResult;
use crate::store::DynStore;

/// Whether `data` matches the name at the end of `key`.
pub fn matches_name(key: &str, data: &[u8]) -> bool {
    let name = key.rsplit('/').next().unwrap_or(key);
    blake3::hash(data).to_hex().as_str() == name
}

/// Copies one object, verified; returns its size. Bandwidth limits are the
/// stores' own (see [`crate::store::throttle`]), paced as the bytes travel.
pub async fn copy_object(source: &DynStore, dest: &DynStore, key: &str) -> Result<u64, String> {
    // Both stores retry on their own (see [`crate::store::retry`]).
    let data = source.get(key).await.map_err(|e| e.to_string())?;
    if !matches_name(key, &data) {
        return Err(format!(
            "the source copy in {} does not match its name; run `ferry check --read-data` \
             and `ferry repair` on that region",
            source.location()
        ));
    }
    let n = data.len() as u64;
    dest.put(key, data).await.map_err(|e| e.to_string())?;
    tracing::debug!(key, bytes = n, dest = %dest.location(), "copied");
    Ok(n)
}

/// Re-reads every object in `dest`, and replaces those that do not match
/// their name with the source's copy.
pub async fn verify(
    source: &DynStore,
    dest: &DynStore,
    opts: &ReplicateOptions,
    report: &mut ReplicateReport,
) -> EngineResult<()> {
    let mut listed = Vec::new();
    for kind in super::PHASES {
        listed.extend(dest.list(kind.prefix()).await?);
    }
    let mut checks = futures::stream::iter(listed)
        .map(|m| async move {
            let ok = match dest.get(&m.key).await {
                Ok(d) => matches_name(&m.key, &d),
                Err(e) if e.is_not_found() => false,
                Err(e) => return (m.key, Err(e)),
            };
            (m.key, Ok(ok))
        })
        .buffer_unordered(opts.concurrency.max(1));
    let mut damaged = Vec::new();
    while let Some((key, ok)) = checks.next().await {
        report.verified += 1;
        if !ok? {
            tracing::warn!(key, dest = %dest.location(), "damaged copy");
            damaged.push(key);
        }
    }
    for key in damaged {
        report.damaged.push(key.clone());
        match copy_object(source, dest, &key).await {
            Ok(n) => report.count(&key, n),
            Err(e) => report.failed.push((key, e)),
        }
    }
    Ok(())
}
