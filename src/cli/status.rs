//! `ferry status`: per region, whether it answers, what it holds, its newest
//! snapshot and RPO, and how far it is behind the primary.

use anyhow::Result;

use super::args::Global;
use super::exit;
use super::output::{emit, Render};
use super::regions::{lift, regions};
use crate::engine::regions::StatusReport;
use crate::util::human_bytes;

impl Render for StatusReport {
    fn text(&self) -> String {
        let mut out = String::new();
        for s in &self.regions {
            let rpo = s
                .rpo_seconds
                .map(|t| format!("{t}s"))
                .unwrap_or_else(|| "-".into());
            out += &format!(
                "{:<16} {:<11} {:>8} objects {:>10}  behind {:>6} objects {:>10}  newest {} (RPO {rpo}){}\n",
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
                out += &format!("  {e}\n");
            }
        }
        out
    }
}

pub async fn run(g: &Global) -> Result<i32> {
    let report = crate::engine::regions::status(&regions(g)?)
        .await
        .map_err(lift)?;
    emit(g, &report);
    Ok(exit::OK)
}
