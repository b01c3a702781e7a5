//! `ferry key add|list|remove`: the passwords that open the repository.

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::args::{Global, KeyCommand};
use super::open_repo;
use super::output::{emit, Render};
use crate::format::keys::KdfParams;
use crate::format::KeyId;

#[derive(Serialize)]
enum KeyReport {
    #[serde(rename = "added")]
    Added(KeyId),
    #[serde(rename = "removed")]
    Removed(KeyId),
}

impl Render for KeyReport {
    fn text(&self) -> String {
        match self {
            KeyReport::Added(id) => format!("added key {}\n", id.short()),
            KeyReport::Removed(id) => format!("removed key {}\n", id.short()),
        }
    }
}

#[derive(Serialize)]
struct ListedKey {
    id: KeyId,
    current: bool,
    created: DateTime<Utc>,
    host: String,
    username: String,
}

#[derive(Serialize)]
#[serde(transparent)]
struct KeyList(Vec<ListedKey>);

impl Render for KeyList {
    fn text(&self) -> String {
        let mut out = String::new();
        for k in &self.0 {
            let cur = if k.current { "*" } else { " " };
            out += &format!(
                "{cur} {} {} {}@{}\n",
                k.id.short(),
                crate::util::rfc3339(&k.created),
                k.username,
                k.host
            );
        }
        out
    }
}

/// The new password: from the file, FERRY_NEW_PASSWORD, or asked twice.
fn new_password(file: Option<std::path::PathBuf>) -> Result<Vec<u8>> {
    let pw = match (file, std::env::var("FERRY_NEW_PASSWORD")) {
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
    Ok(pw)
}

pub async fn run(g: &Global, cmd: KeyCommand) -> Result<i32> {
    let repo = open_repo(g).await?;
    match cmd {
        KeyCommand::Add { new_password_file } => {
            let pw = new_password(new_password_file)?;
            let id = repo.add_key(&pw, KdfParams::default()).await?;
            emit(g, &KeyReport::Added(id));
        }
        KeyCommand::List => {
            let keys = repo.list_keys().await?;
            let list = keys
                .into_iter()
                .map(|(id, k)| ListedKey {
                    id,
                    current: id == repo.key_id(),
                    created: k.created,
                    host: k.host,
                    username: k.username,
                })
                .collect();
            emit(g, &KeyList(list));
        }
        KeyCommand::Remove { id } => {
            let target = repo.find_key(&id).await?;
            repo.remove_key(&target).await?;
            emit(g, &KeyReport::Removed(target));
        }
    }
    Ok(super::exit::OK)
}
