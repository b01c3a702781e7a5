//! `ferry check`: verify the repository's structure, and with
//! `--read-data` all its data.

use anyhow::Result;

use super::args::{CheckArgs, Global};
use super::output::{emit, Render};
use super::{open_repo, Reported};
use crate::engine::check::{self, CheckReport};
use crate::util::human_bytes;

impl Render for CheckReport {
    fn text(&self) -> String {
        let mut out = String::new();
        for e in &self.errors {
            out += &format!("damaged: {}: {}\n", e.object, e.error);
        }
        for a in &self.affected {
            out += &format!(
                "affected: snapshot {} {}: {}\n",
                a.snapshot.short(),
                a.path,
                a.problem
            );
        }
        let read = match self.read_data {
            true => format!(
                ", read {} in {} blobs",
                human_bytes(self.bytes_read),
                self.blobs_read
            ),
            false => String::new(),
        };
        let verdict = match self.ok() {
            true => "no errors".to_string(),
            false => format!(
                "{} errors, {} entries of snapshots affected",
                self.errors.len(),
                self.affected.len()
            ),
        };
        out + &format!(
            "checked {} snapshots, {} packs{read}: {verdict}\n",
            self.snapshots, self.packs
        )
    }

    fn warnings(&self) -> Vec<String> {
        let w = self.warnings.iter();
        w.map(|w| format!("warning: {}: {}", w.object, w.error))
            .collect()
    }
}

pub async fn run(g: &Global, a: CheckArgs) -> Result<i32> {
    let repo = open_repo(g).await?;
    let report = check::check(&repo, a.read_data).await?;
    emit(g, &report);
    if !report.ok() {
        let (n, a) = (report.errors.len(), report.affected.len());
        let msg = format!(
            "the repository has {n} damaged objects and {a} snapshot entries that cannot be \
             restored; see above"
        );
        return Err(Reported(msg).into());
    }
    Ok(super::exit::OK)
}
