//! The kinds of objects a repository holds, the keys they are stored
//! under, and the order in which writers store and readers list them.

use std::str::FromStr;

/// A kind of repository object. Every object but `config` is named by the
/// BLAKE3 of its stored bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    Config,
    Key,
    Pack,
    Index,
    Snapshot,
    /// A deletion plan of `prune`: packs it means to delete, and when it
    /// decided so (see docs/format.md, "Deletion plans").
    Plan,
    /// A record of a disaster-recovery drill (`drills/`): refers to a
    /// snapshot, so written after snapshots; readers that do not know the
    /// kind ignore it.
    Drill,
}

impl ObjectKind {
    /// The order writers store objects in: an object is written only once
    /// everything it refers to is durable. Copies (replicate) follow it too.
    pub const WRITE_ORDER: [ObjectKind; 7] = [
        ObjectKind::Key,
        ObjectKind::Config,
        ObjectKind::Pack,
        ObjectKind::Index,
        ObjectKind::Snapshot,
        ObjectKind::Plan,
        ObjectKind::Drill,
    ];

    /// The order readers list named objects in beside a running writer:
    /// the reverse of the write order, so that whatever a listed snapshot
    /// needs was already durable when the later listings ran.
    pub const LIST_ORDER: [ObjectKind; 3] =
        [ObjectKind::Snapshot, ObjectKind::Index, ObjectKind::Pack];

    /// The key prefix objects of this kind live under (`config` is a single
    /// key, not a prefix).
    pub const fn prefix(self) -> &'static str {
        match self {
            ObjectKind::Config => "config",
            ObjectKind::Key => "keys/",
            ObjectKind::Pack => "data/",
            ObjectKind::Index => "index/",
            ObjectKind::Snapshot => "snapshots/",
            ObjectKind::Plan => "plans/",
            ObjectKind::Drill => "drills/",
        }
    }

    /// The short name used in reports (`data`, `index`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            ObjectKind::Config => "config",
            ObjectKind::Key => "keys",
            ObjectKind::Pack => "data",
            ObjectKind::Index => "index",
            ObjectKind::Snapshot => "snapshots",
            ObjectKind::Plan => "plans",
            ObjectKind::Drill => "drills",
        }
    }

    /// The key of the object of this kind named `hex` (packs are spread
    /// over 256 directories by their first two digits).
    pub fn key(self, hex: &str) -> String {
        match self {
            ObjectKind::Config => "config".to_string(),
            ObjectKind::Pack => format!("data/{}/{}", &hex[..2.min(hex.len())], hex),
            k => format!("{}{}", k.prefix(), hex),
        }
    }

    /// The kind of object a key names, if any.
    pub fn of_key(key: &str) -> Option<ObjectKind> {
        if key == "config" {
            return Some(ObjectKind::Config);
        }
        Self::WRITE_ORDER
            .into_iter()
            .find(|k| *k != ObjectKind::Config && key.starts_with(k.prefix()))
    }

    /// Whether objects of this kind are named by the BLAKE3 of their bytes.
    pub const fn content_named(self) -> bool {
        !matches!(self, ObjectKind::Config)
    }
}

/// Parses the id at the end of an object key (`data/ab/<id>`, `index/<id>`).
pub fn id_from_key<T: FromStr>(key: &str) -> Option<T> {
    key.rsplit('/').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_kinds_round_trip() {
        let hex = "ab".repeat(32);
        for k in ObjectKind::WRITE_ORDER {
            assert_eq!(ObjectKind::of_key(&k.key(&hex)), Some(k));
        }
        assert_eq!(ObjectKind::Pack.key(&hex), format!("data/ab/{hex}"));
        assert_eq!(ObjectKind::of_key("locks/x"), None);
    }

    #[test]
    fn readers_list_in_reverse_write_order() {
        let written: Vec<_> = ObjectKind::WRITE_ORDER
            .into_iter()
            .filter(|k| ObjectKind::LIST_ORDER.contains(k))
            .collect();
        let mut listed = ObjectKind::LIST_ORDER.to_vec();
        listed.reverse();
        assert_eq!(written, listed);
    }
}
