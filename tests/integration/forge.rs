//! Crafting repositories with ferry's own writer: blobs sealed with the
//! repository's keys, packs, index objects and snapshots exactly as a
//! writer stores them, holding whatever trees a test asks for (hostile or
//! inconsistent ones included), as anyone holding the password could.

use std::sync::Arc;

use ferry::format::index::{IndexFile, IndexPack};
use ferry::format::pack::PackWriter;
use ferry::format::snapshot::{Snapshot, Summary};
use ferry::format::tree::{Node, NodeKind, Tree};
use ferry::format::{BlobEntry, BlobId, BlobType, PackId, SnapshotId};
use ferry::repo::Repository;

use crate::support::{Env, PASSWORD};

/// Blobs per pack: packs stay small however many trees a test makes.
const PACK_BLOBS: usize = 2000;

pub struct Forge {
    pub rt: tokio::runtime::Runtime,
    pub repo: Arc<Repository>,
    pack: PackWriter,
    in_pack: usize,
    index: IndexFile,
}

impl Forge {
    /// Opens the repository of `env` (already initialised) with a catalog
    /// of its own, apart from the one the CLI uses.
    pub fn open(env: &Env) -> Forge {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let store: ferry::store::DynStore =
            Arc::new(ferry::store::local::LocalStore::new(&env.repo));
        let catalog = Some(env.path("forge-catalog.db"));
        let repo = rt
            .block_on(Repository::open(store, PASSWORD.as_bytes(), catalog))
            .unwrap();
        Forge {
            rt,
            repo: Arc::new(repo),
            pack: PackWriter::with_capacity(1 << 20),
            in_pack: 0,
            index: IndexFile::default(),
        }
    }

    /// Stores one blob (deduplicated only within the pack being written).
    pub fn blob(&mut self, kind: BlobType, plain: &[u8]) -> BlobId {
        let id = self.repo.sealer().blob_id(plain);
        let sealed = self.repo.sealer().seal_blob(None, kind, id, plain);
        self.pack.add(sealed);
        self.in_pack += 1;
        if self.in_pack >= PACK_BLOBS {
            self.flush_pack(|_| {});
        }
        id
    }

    pub fn data(&mut self, plain: &[u8]) -> BlobId {
        self.blob(BlobType::Data, plain)
    }

    pub fn tree(&mut self, mut nodes: Vec<Node>) -> BlobId {
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let mut t = Tree { nodes };
        let data = t.encode();
        self.blob(BlobType::Tree, &data)
    }

    /// Writes the pack being filled; `edit` may change its index entries
    /// (to record what the pack does not hold).
    pub fn flush_pack(&mut self, edit: impl FnOnce(&mut Vec<BlobEntry>)) -> Option<PackId> {
        if self.pack.is_empty() {
            return None;
        }
        let w = std::mem::replace(&mut self.pack, PackWriter::with_capacity(1 << 20));
        self.in_pack = 0;
        let p = self.repo.sealer().finish_pack(w);
        self.rt
            .block_on(self.repo.put_pack(&p.id, p.data.clone()))
            .unwrap();
        let mut blobs = p.entries.clone();
        edit(&mut blobs);
        self.index.packs.push(IndexPack {
            id: p.id,
            size: p.data.len() as u64,
            blobs,
        });
        Some(p.id)
    }

    /// Writes the packs, one index object and a snapshot of `root`.
    pub fn snapshot(&mut self, root: BlobId, summary: Summary) -> SnapshotId {
        self.flush_pack(|_| {});
        let index = std::mem::take(&mut self.index);
        self.rt.block_on(self.repo.save_index(&index)).unwrap();
        let snap = Snapshot {
            time: chrono::Utc::now(),
            host: "forge".into(),
            username: "root".into(),
            paths: vec!["/".into()],
            tags: Vec::new(),
            parent: None,
            tree: root,
            summary,
            skipped: Vec::new(),
            extra: None,
            program_version: "0.1.0".into(),
            region: None,
        };
        self.rt.block_on(self.repo.save_snapshot(&snap)).unwrap()
    }
}

/// A regular file node holding `content` (blob ids) of `size` bytes.
pub fn file(name: &str, size: u64, content: Vec<BlobId>) -> Node {
    let mut n = Node::synthetic(name.as_bytes(), NodeKind::File, 0);
    n.size = size;
    n.content = content;
    n
}

pub fn dir(name: &str, subtree: BlobId) -> Node {
    let mut n = Node::synthetic(name.as_bytes(), NodeKind::Dir, 0);
    n.subtree = Some(subtree);
    n
}

/// A summary counting `entries` entries, as a writer records it.
pub fn summary(files: u64, dirs: u64, entries: u64) -> Summary {
    Summary {
        total_files: files,
        files_new: files,
        dirs,
        entries: Some(entries),
        ..Default::default()
    }
}
