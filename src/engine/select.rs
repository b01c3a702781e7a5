//! Choosing snapshots: `latest`, an id or its prefix, or the newest at or
//! before a point in time, optionally narrowed by host, path and tag.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

use super::{EngineError, EngineResult};
use crate::format::snapshot::Snapshot;
use crate::repo::SnapshotId;

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub host: Option<String>,
    /// Absolute source paths; a snapshot matches when it has all of them.
    pub paths: Vec<String>,
    pub tags: Vec<String>,
}

impl Filter {
    pub fn matches(&self, s: &Snapshot) -> bool {
        self.host.as_ref().is_none_or(|h| &s.host == h)
            && self.paths.iter().all(|p| s.paths.contains(p))
            && self.tags.iter().all(|t| s.tags.contains(t))
    }
}

pub type Found = (SnapshotId, Snapshot);

fn candidates(snaps: Vec<Found>, filter: &Filter) -> Vec<Found> {
    snaps
        .into_iter()
        .filter(|(_, s)| filter.matches(s))
        .collect()
}

/// Resolves `latest` or an id (at least 4 hex digits of it).
pub fn select(snaps: Vec<Found>, spec: &str, filter: &Filter) -> EngineResult<Found> {
    let snaps = candidates(snaps, filter);
    if spec == "latest" {
        return snaps
            .into_iter()
            .max_by_key(|(id, s)| (s.time, *id))
            .ok_or_else(|| {
                EngineError::Usage(
                    "no snapshot matches (the repository has none, or none fits the filters)"
                        .into(),
                )
            });
    }
    let spec = spec.to_ascii_lowercase();
    if spec.len() < 4 || !spec.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(EngineError::Usage(format!(
            "{spec:?} is neither `latest` nor a snapshot id (4 to 64 hex digits)"
        )));
    }
    let mut hits: Vec<Found> = snaps
        .into_iter()
        .filter(|(id, _)| id.to_hex().starts_with(&spec))
        .collect();
    match hits.len() {
        0 => Err(EngineError::Usage(format!(
            "no snapshot with id {spec}; `ferry snapshots` lists them"
        ))),
        1 => Ok(hits.pop().unwrap()),
        n => Err(EngineError::Usage(format!(
            "{n} snapshots have ids starting with {spec}; give more digits"
        ))),
    }
}

/// The newest snapshot taken at or before `at`. When the candidates come
/// from several sources (host and paths), the filter must pick one.
pub fn select_at(snaps: Vec<Found>, at: DateTime<Utc>, filter: &Filter) -> EngineResult<Found> {
    let before: Vec<Found> = candidates(snaps, filter)
        .into_iter()
        .filter(|(_, s)| s.time <= at)
        .collect();
    let newest = before
        .iter()
        .max_by_key(|(id, s)| (s.time, *id))
        .cloned()
        .ok_or_else(|| {
            EngineError::Usage(format!(
                "no snapshot was taken at or before {}",
                at.to_rfc3339()
            ))
        })?;
    let mut sources: Vec<(String, Vec<String>)> = before
        .iter()
        .map(|(_, s)| (s.host.clone(), s.paths.clone()))
        .collect();
    sources.sort();
    sources.dedup();
    if sources.len() > 1 {
        let list: Vec<String> = sources
            .iter()
            .map(|(h, p)| format!("{h}:{}", p.join(",")))
            .collect();
        return Err(EngineError::Usage(format!(
            "snapshots of {} sources precede {}: {}; narrow with --host and --path",
            sources.len(),
            at.to_rfc3339(),
            list.join("; ")
        )));
    }
    Ok(newest)
}

/// Parses a point in time: RFC 3339 (`2026-11-25T10:00:00Z`), or
/// `2026-11-25 10:00:00` / `2026-11-25` taken as UTC.
pub fn parse_time(s: &str) -> EngineResult<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(Utc.from_utc_datetime(&t));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(Utc.from_utc_datetime(&d.and_hms_opt(23, 59, 59).unwrap()));
    }
    Err(EngineError::Usage(format!(
        "{s:?} is not a time; use RFC 3339 such as 2026-11-25T10:00:00Z"
    )))
}
