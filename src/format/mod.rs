//! The repository format, without I/O: ids, object kinds and their keys,
//! blobs, packs, index objects, trees, snapshots, the config, key objects
//! and the crypto that seals them. Everything above (catalog, repository,
//! engine) reads and writes the format through these types; nothing here
//! touches a store, the catalog or the file system.

pub mod blob;
pub mod config;
pub mod crypto;
pub mod drill;
pub mod error;
pub mod id;
pub mod index;
pub mod keys;
pub mod kind;
pub mod pack;
pub mod plan;
pub mod snapshot;
pub mod tree;

pub use blob::{BlobEntry, BlobType};
pub use error::{DecodeError, FormatError, FormatResult};
pub use id::{BlobId, DrillId, IndexId, KeyId, PackId, PlanId, SnapshotId};
pub use kind::ObjectKind;
