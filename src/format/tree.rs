//! Trees: one blob per directory, listing its entries sorted by name with
//! their metadata. The JSON encoding is deterministic (fixed field order,
//! sorted entries), so an unchanged directory yields the same tree id.

use std::os::unix::ffi::OsStrExt;

use serde::{Deserialize, Serialize};

use super::error::DecodeError;
use super::id::BlobId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Chardev,
    Blockdev,
    Socket,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Xattr {
    #[serde(with = "bytes_str")]
    pub name: Vec<u8>,
    #[serde(with = "crate::format::crypto::b64vec")]
    pub value: Vec<u8>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    #[serde(with = "bytes_str")]
    pub name: Vec<u8>,
    #[serde(rename = "type")]
    pub kind: NodeKind,
    /// Permission bits, including setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime: i64,
    /// Status change time, nanoseconds since the Unix epoch.
    pub ctime: i64,
    pub inode: u64,
    pub device: u64,
    pub links: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
    /// File data: the blobs whose concatenation is the file's data regions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<BlobId>,
    /// For sparse files, the data regions as (offset, length); everything
    /// else is a hole. Absent for files stored whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extents: Option<Vec<(u64, u64)>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<BlobId>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_bytes_str"
    )]
    pub target: Option<Vec<u8>>,
    /// Device number of character and block devices.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rdev: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<Xattr>,
}

impl Node {
    /// A node with default metadata, as for entries that do not come from a
    /// file system (Kubernetes objects, intermediate directories).
    pub fn synthetic(name: &[u8], kind: NodeKind, mtime: i64) -> Self {
        Node {
            name: name.to_vec(),
            kind,
            mode: if kind == NodeKind::Dir { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            user: String::new(),
            group: String::new(),
            mtime,
            ctime: mtime,
            inode: 0,
            device: 0,
            links: 1,
            size: 0,
            content: Vec::new(),
            extents: None,
            subtree: None,
            target: None,
            rdev: 0,
            xattrs: Vec::new(),
        }
    }

    /// The length of a file's data stream (what its content blobs must add
    /// up to): its size, or for a sparse file the sum of its extents, which
    /// must be ascending, non-overlapping, within the size and not wrap.
    pub fn data_length(&self) -> Result<u64, String> {
        let Some(extents) = &self.extents else {
            return Ok(self.size);
        };
        let (mut end, mut sum) = (0u64, 0u64);
        for &(off, len) in extents {
            let stop = off
                .checked_add(len)
                .ok_or_else(|| format!("sparse extent ({off}, {len}) wraps around"))?;
            if off < end {
                return Err(format!(
                    "sparse extent ({off}, {len}) overlaps the one before it or is out of order"
                ));
            }
            if stop > self.size {
                return Err(format!(
                    "sparse extent ({off}, {len}) lies past the file's size {}",
                    self.size
                ));
            }
            end = stop;
            sum += len;
        }
        Ok(sum)
    }

    /// Whether this node and `other` may be the same hard-linked inode:
    /// the same data.
    pub fn same_content(&self, other: &Node) -> bool {
        self.content == other.content && self.size == other.size && self.extents == other.extents
    }

    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }

    pub fn name_os(&self) -> &std::ffi::OsStr {
        std::ffi::OsStr::from_bytes(&self.name)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

/// A name is safe when it is one path component: not empty, not `.` or
/// `..`, and without `/` or NUL.
pub fn is_safe_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

impl Tree {
    pub fn encode(&mut self) -> Vec<u8> {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        serde_json::to_vec(self).expect("tree serializes")
    }

    /// Decodes a tree, refusing unsafe or duplicate names and unsorted
    /// entries, whatever the repository says.
    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        let t: Tree = serde_json::from_slice(data)?;
        for (i, n) in t.nodes.iter().enumerate() {
            let name = || bytes_str::to_string(&n.name);
            if !is_safe_name(&n.name) {
                return Err(DecodeError::malformed(format!(
                    "unsafe entry name {:?}",
                    name()
                )));
            }
            if i > 0 && t.nodes[i - 1].name >= n.name {
                return Err(DecodeError::malformed(format!(
                    "entries unsorted or duplicated at {:?}",
                    name()
                )));
            }
            if (n.kind == NodeKind::Dir) != n.subtree.is_some() {
                return Err(DecodeError::malformed(format!(
                    "entry {:?}: subtree does not match its type",
                    name()
                )));
            }
        }
        Ok(t)
    }

    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }
}

/// Byte strings as JSON strings: UTF-8 as is, anything else as a NUL
/// followed by base64 (NUL never occurs in names or link targets).
pub(crate) mod bytes_str {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn to_string(v: &[u8]) -> String {
        match std::str::from_utf8(v) {
            Ok(s) if !s.starts_with('\0') => s.to_string(),
            _ => format!("\0{}", STANDARD.encode(v)),
        }
    }

    pub fn from_string(s: &str) -> Result<Vec<u8>, String> {
        match s.strip_prefix('\0') {
            Some(b) => STANDARD.decode(b).map_err(|e| e.to_string()),
            None => Ok(s.as_bytes().to_vec()),
        }
    }

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_string(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        from_string(&s).map_err(serde::de::Error::custom)
    }
}

mod opt_bytes_str {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => super::bytes_str::serialize(b, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| super::bytes_str::from_string(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_validated() {
        let mut t = Tree {
            nodes: vec![
                Node::synthetic(b"b", NodeKind::File, 1),
                Node::synthetic(&[0xff, b'a'], NodeKind::File, 2),
                Node::synthetic(b"a", NodeKind::File, 3),
            ],
        };
        let enc = t.encode();
        let back = Tree::decode(&enc).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.clone().encode(), enc);
        assert!(back.find(&[0xff, b'a']).is_some());
        for bad in [&b".."[..], b"a/b", b"", b"."] {
            let mut t = Tree {
                nodes: vec![Node::synthetic(bad, NodeKind::File, 1)],
            };
            assert!(Tree::decode(&t.encode()).is_err(), "{bad:?} refused");
        }
        let dup = Tree {
            nodes: vec![Node::synthetic(b"x", NodeKind::File, 1); 2],
        };
        assert!(Tree::decode(&serde_json::to_vec(&dup).unwrap()).is_err());
    }
}
