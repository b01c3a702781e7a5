//! Copying and re-checking single objects: every object but `config` is
//! named by the BLAKE3 of its bytes, so a copy is verified by its name.

use futures::StreamExt;

use super::{ReplicateOptions, ReplicateReport};
use crate::engine::EngineResult;
use crate::store::{DynStore, StoreError};

const ATTEMPTS: u32 = 3;

/// Whether `data` matches the name at the end of `key`.
pub fn matches_name(key: &str, data: &[u8]) -> bool {
    let name = key.rsplit('/').next().unwrap_or(key);
    blake3::hash(data).to_hex().as_str() == name
}

async fn retry<T, F, Fut>(mut f: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 0;
    loop {
        match f().await {
            Err(e) if e.is_retryable() && attempt + 1 < ATTEMPTS => {
                attempt += 1;
                tracing::debug!(error = %e, attempt, "retrying");
                tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
            }
            r => return r,
        }
    }
}

/// Copies one object, verified; returns its size. Bandwidth limits are the
/// stores' own (see [`crate::store::throttle`]), paced as the bytes travel.
pub async fn copy_object(source: &DynStore, dest: &DynStore, key: &str) -> Result<u64, String> {
    let data = retry(|| source.get(key)).await.map_err(|e| e.to_string())?;
    if !matches_name(key, &data) {
        return Err(format!(
            "the source copy in {} does not match its name; run `ferry check --read-data` \
             and `ferry repair` on that region",
            source.location()
        ));
    }
    let n = data.len() as u64;
    retry(|| dest.put(key, data.clone()))
        .await
        .map_err(|e| e.to_string())?;
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
    for prefix in super::PHASES {
        listed.extend(dest.list(prefix).await?);
    }
    let mut checks = futures::stream::iter(listed)
        .map(|m| async move {
            let ok = match retry(|| dest.get(&m.key)).await {
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
