//! Paths inside a snapshot, as bytes. Names in trees are bytes (Linux file
//! names need not be UTF-8), so a path built from them is bytes too and is
//! turned into a file system path without any conversion.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::format::tree::bytes_str;

/// A path from the snapshot root (`/data/pvc-a/file`): `/` and names joined
/// by `/`. Serialized as trees serialize names: UTF-8 as is, anything else
/// as a NUL followed by base64.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SnapPath(Vec<u8>);

impl SnapPath {
    pub fn root() -> Self {
        SnapPath(b"/".to_vec())
    }

    /// Normalises a user-given snapshot path (`k8s/`, `/data/x/`, `./a`) to
    /// `/k8s`, `/data/x`, `/a`.
    pub fn normalize(p: &[u8]) -> Self {
        let mut out = SnapPath::root();
        for part in p.split(|&b| b == b'/') {
            if !part.is_empty() && part != b"." {
                out = out.join(part);
            }
        }
        out
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == b"/"
    }

    /// The path of entry `name` of this directory.
    pub fn join(&self, name: &[u8]) -> SnapPath {
        let mut v = Vec::with_capacity(self.0.len() + 1 + name.len());
        v.extend_from_slice(&self.0);
        if !self.is_root() {
            v.push(b'/');
        }
        v.extend_from_slice(name);
        SnapPath(v)
    }

    /// Whether this path is `prefix` or below it.
    pub fn within(&self, prefix: &SnapPath) -> bool {
        within(self, prefix)
    }

    /// The last component (the whole path for the root).
    pub fn file_name(&self) -> &[u8] {
        match self.0.iter().rposition(|&b| b == b'/') {
            Some(i) if !self.is_root() => &self.0[i + 1..],
            _ => &self.0,
        }
    }

    /// The directories above this path, nearest last, without the root:
    /// `/a/b/c` gives `/a`, `/a/b`.
    pub fn ancestors(&self) -> impl Iterator<Item = &[u8]> {
        let p = &self.0;
        (1..p.len()).filter(|&i| p[i] == b'/').map(move |i| &p[..i])
    }

    /// The names from the root down.
    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.0.split(|&b| b == b'/').filter(|s| !s.is_empty())
    }

    /// The path as a file system path (absolute, as in the snapshot).
    pub fn as_path(&self) -> &Path {
        Path::new(OsStr::from_bytes(&self.0))
    }

    /// The path relative to `base` as a file system path under `base`.
    pub fn under(&self, base: &Path) -> std::path::PathBuf {
        let mut p = base.to_path_buf();
        for part in self.components() {
            p.push(OsStr::from_bytes(part));
        }
        p
    }

    /// A key sorting paths component by component, as a directory listing
    /// reads: the bytes with `/` below every byte a name can hold (names
    /// hold no NUL).
    pub fn sort_key(&self) -> Vec<u8> {
        self.0
            .iter()
            .map(|&c| if c == b'/' { 0 } else { c })
            .collect()
    }
}

/// Whether `path` is `prefix` or below it (both as bytes).
pub fn within(path: impl AsRef<[u8]>, prefix: impl AsRef<[u8]>) -> bool {
    let (path, prefix) = (path.as_ref(), prefix.as_ref());
    prefix == b"/"
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|r| r.first() == Some(&b'/'))
}

impl Default for SnapPath {
    fn default() -> Self {
        SnapPath::root()
    }
}

impl AsRef<[u8]> for SnapPath {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<&str> for SnapPath {
    fn from(s: &str) -> Self {
        SnapPath::normalize(s.as_bytes())
    }
}

/// For people: UTF-8 as is, with bytes that are not UTF-8 and control
/// characters (a newline in a name) written as `\xNN`, so that one entry
/// stays on one line. The exact bytes are in the `--json` form.
impl fmt::Display for SnapPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                if c.is_control() {
                    for b in c.to_string().bytes() {
                        write!(f, "\\x{b:02x}")?;
                    }
                } else {
                    write!(f, "{c}")?;
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for SnapPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

impl Serialize for SnapPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        bytes_str::serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for SnapPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        bytes_str::deserialize(d).map(SnapPath)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_kept_and_shown() {
        let p = SnapPath::root().join(b"d").join(b"caf\xe9\nx");
        assert_eq!(p.as_bytes(), b"/d/caf\xe9\nx");
        assert_eq!(p.to_string(), "/d/caf\\xe9\\x0ax");
        assert_eq!(p.file_name(), b"caf\xe9\nx");
        assert_eq!(p.ancestors().collect::<Vec<_>>(), vec![&b"/d"[..]]);
        assert_eq!(p.as_path().as_os_str().as_bytes(), b"/d/caf\xe9\nx");
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.starts_with("\"\\u0000"), "{json}");
        assert_eq!(serde_json::from_str::<SnapPath>(&json).unwrap(), p);
        let utf8 = SnapPath::from("data/x/");
        assert_eq!(serde_json::to_string(&utf8).unwrap(), "\"/data/x\"");
        assert!(p.within(&SnapPath::from("/d")));
        assert!(!SnapPath::from("/dd").within(&SnapPath::from("/d")));
        assert!(p.within(&SnapPath::root()));
        assert_eq!(SnapPath::root().file_name(), b"/");
    }
}
