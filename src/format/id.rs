//! Typed 256-bit ids: one type per kind of object, all from one macro, shown
//! and parsed as lowercase hex.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::kind::ObjectKind;

macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            pub fn from_bytes(b: [u8; 32]) -> Self {
                $name(b)
            }

            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// The first 8 hex digits, as listings show.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }

            /// BLAKE3 of `data`, unkeyed: the id of an object named by its bytes.
            pub fn of_bytes(data: &[u8]) -> Self {
                $name(*blake3::hash(data).as_bytes())
            }

            pub fn from_slice(b: &[u8]) -> Option<Self> {
                Some($name(b.try_into().ok()?))
            }
        }

        impl From<[u8; 32]> for $name {
            fn from(b: [u8; 32]) -> Self {
                $name(b)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, IdParseError> {
                let mut b = [0u8; 32];
                hex::decode_to_slice(s, &mut b).map_err(|_| IdParseError(s.to_string()))?;
                Ok($name(b))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a 64-digit hex id")]
pub struct IdParseError(pub String);

define_id!(
    /// A blob (chunk of file data or tree): keyed BLAKE3 of its plaintext.
    BlobId
);
define_id!(
    /// A pack object: BLAKE3 of its stored bytes.
    PackId
);
define_id!(
    /// An index object: BLAKE3 of its stored bytes.
    IndexId
);
define_id!(
    /// A snapshot object: BLAKE3 of its stored bytes.
    SnapshotId
);
define_id!(
    /// A key object: BLAKE3 of its stored bytes.
    KeyId
);
define_id!(
    /// A deletion plan of `prune`: BLAKE3 of its stored bytes.
    PlanId
);
define_id!(
    /// A drill record: BLAKE3 of its stored bytes.
    DrillId
);

impl PackId {
    /// The object key of this pack: `data/<first 2 hex>/<id>`.
    pub fn key(&self) -> String {
        ObjectKind::Pack.key(&self.to_hex())
    }
}

impl IndexId {
    pub fn key(&self) -> String {
        ObjectKind::Index.key(&self.to_hex())
    }
}

impl SnapshotId {
    pub fn key(&self) -> String {
        ObjectKind::Snapshot.key(&self.to_hex())
    }
}

impl KeyId {
    pub fn key(&self) -> String {
        ObjectKind::Key.key(&self.to_hex())
    }
}

impl PlanId {
    pub fn key(&self) -> String {
        ObjectKind::Plan.key(&self.to_hex())
    }
}

impl DrillId {
    pub fn key(&self) -> String {
        ObjectKind::Drill.key(&self.to_hex())
    }
}

pub use super::kind::id_from_key;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_roundtrip_and_keys() {
        let id = PackId::of_bytes(b"abc");
        let parsed: PackId = id.to_hex().parse().unwrap();
        assert_eq!(id, parsed);
        assert!(id
            .key()
            .starts_with(&format!("data/{}/", &id.to_hex()[..2])));
        assert_eq!(id_from_key::<PackId>(&id.key()), Some(id));
        assert!("zz".parse::<PackId>().is_err());
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<PackId>(&json).unwrap(), id);
    }
}
