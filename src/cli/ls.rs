//! `ferry ls`: list the entries of a snapshot.
//!
//! The listing is written to an unnamed temporary file as the walk goes and
//! copied to stdout once it is complete: memory stays bounded whatever the
//! size of the snapshot, and a listing that fails half-way prints only its
//! error (with `--json`, the one `{"error"}` document), never half a list.

use std::io::{Seek, Write};

use anyhow::{Context, Result};

use super::args::{Global, LsArgs};
use super::open_repo;
use crate::engine::select::select;
use crate::engine::walk::Entry;
use crate::engine::{ls, EngineError};

pub async fn run(g: &Global, a: LsArgs) -> Result<i32> {
    let repo = open_repo(g).await?;
    let (id, snap) = select(repo.snapshots()?, &a.snapshot, &super::filter(&a.filter))?;
    let limit = snap.summary.entry_limit();
    let file = tempfile::tempfile().context("creating the listing's temporary file")?;
    let mut out = std::io::BufWriter::new(file);
    let io = |e: std::io::Error| EngineError::Io {
        path: "the listing's temporary file".into(),
        source: e,
    };
    if g.json {
        write!(
            out,
            "{{\"snapshot\":{},\"entries\":[",
            serde_json::to_string(&id)?
        )
        .map_err(io)?;
    }
    let mut first = true;
    ls::ls(&repo, snap.tree, a.path.as_deref(), limit, |e| {
        match g.json {
            true => {
                if !std::mem::take(&mut first) {
                    out.write_all(b",").map_err(io)?;
                }
                serde_json::to_writer(&mut out, e).map_err(|e| io(e.into()))?;
            }
            false => line(&mut out, e, a.long).map_err(io)?,
        }
        Ok(())
    })
    .await?;
    if g.json {
        out.write_all(b"]}\n").map_err(io)?;
    }
    let mut file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.rewind().map_err(io)?;
    std::io::copy(&mut file, &mut std::io::stdout().lock())
        .context("writing the listing to stdout")?;
    Ok(super::exit::OK)
}

/// One entry as text: its path, or with `--long` its type, mode, owner,
/// size and time before it.
fn line(out: &mut impl Write, e: &Entry, long: bool) -> std::io::Result<()> {
    if long {
        let n = &e.node;
        let t = chrono::DateTime::from_timestamp_nanos(n.mtime).format("%Y-%m-%d %H:%M:%S");
        writeln!(
            out,
            "{:?} {:o} {:>5} {:>5} {:>12} {} {}",
            n.kind, n.mode, n.uid, n.gid, n.size, t, e.path
        )
    } else {
        writeln!(out, "{}", e.path)
    }
}
