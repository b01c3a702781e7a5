//! The layout of a snapshot's root: every source path placed at its absolute
//! location, with in-memory files (Kubernetes objects) beside them.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::super::{EngineError, EngineResult};

/// A directory of the snapshot's skeleton.
#[derive(Debug, Default)]
pub struct VDir {
    /// The real directory whose metadata this one takes, if any.
    pub meta_from: Option<PathBuf>,
    pub children: BTreeMap<Vec<u8>, VEntry>,
}

#[derive(Debug)]
pub enum VEntry {
    Dir(VDir),
    /// A source path, backed up with everything below it.
    Source(PathBuf),
    /// An in-memory file.
    Bytes(Vec<u8>),
    /// A directory already stored (a volume backed up by a data-mover Job).
    Tree(crate::repo::BlobId),
    /// A block device (or a regular file standing in for one), stored as a
    /// file whose all-zero regions are holes.
    Device(PathBuf),
}

/// Makes `p` absolute and lexically normal (no `.` or `..`), without
/// following symlinks.
pub fn absolute(p: &Path) -> EngineResult<PathBuf> {
    let abs = std::path::absolute(p).map_err(|e| EngineError::Io {
        path: p.display().to_string(),
        source: e,
    })?;
    let mut out = PathBuf::from("/");
    for c in abs.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    Ok(out)
}

impl VDir {
    /// Adds a source path; one inside another already added is covered by it.
    pub fn add_source(&mut self, path: &Path) -> EngineResult<()> {
        let names: Vec<Vec<u8>> = path
            .components()
            .skip(1)
            .map(|c| c.as_os_str().as_bytes().to_vec())
            .collect();
        let Some((last, parents)) = names.split_last() else {
            return Err(EngineError::Usage(
                "backing up `/` as a whole is not supported; name the directories".into(),
            ));
        };
        let mut dir = self;
        let mut real = PathBuf::from("/");
        for n in parents {
            real.push(std::ffi::OsStr::from_bytes(n));
            let entry = dir.children.entry(n.clone()).or_insert_with(|| {
                VEntry::Dir(VDir {
                    meta_from: Some(real.clone()),
                    children: BTreeMap::new(),
                })
            });
            match entry {
                VEntry::Dir(d) => dir = d,
                VEntry::Source(_) => return Ok(()),
                VEntry::Bytes(_) | VEntry::Tree(_) | VEntry::Device(_) => {
                    return Err(EngineError::Usage(format!(
                        "{} clashes with an in-memory file or volume",
                        path.display()
                    )))
                }
            }
        }
        dir.children
            .insert(last.clone(), VEntry::Source(path.to_path_buf()));
        Ok(())
    }

    /// Adds an in-memory file at a relative `/`-separated path.
    pub fn add_bytes(&mut self, rel: &str, data: Vec<u8>) -> EngineResult<()> {
        self.add_entry(rel, VEntry::Bytes(data))
    }

    /// Adds a stored directory tree at a relative `/`-separated path.
    pub fn add_tree(&mut self, rel: &str, tree: crate::repo::BlobId) -> EngineResult<()> {
        self.add_entry(rel, VEntry::Tree(tree))
    }

    /// Adds a block device's data as a file at a relative path.
    pub fn add_device(&mut self, rel: &str, device: PathBuf) -> EngineResult<()> {
        self.add_entry(rel, VEntry::Device(device))
    }

    fn add_entry(&mut self, rel: &str, entry: VEntry) -> EngineResult<()> {
        let parts: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
        let bad = || {
            EngineError::Usage(format!(
                "in-memory file path {rel:?} is not a clean relative path"
            ))
        };
        if parts.is_empty()
            || parts
                .iter()
                .any(|p| !crate::format::tree::is_safe_name(p.as_bytes()))
        {
            return Err(bad());
        }
        let (last, parents) = parts.split_last().unwrap();
        let mut dir = self;
        for n in parents {
            match dir
                .children
                .entry(n.as_bytes().to_vec())
                .or_insert_with(|| VEntry::Dir(VDir::default()))
            {
                VEntry::Dir(d) => dir = d,
                _ => return Err(bad()),
            }
        }
        if dir
            .children
            .insert(last.as_bytes().to_vec(), entry)
            .is_some()
        {
            return Err(bad());
        }
        Ok(())
    }
}
