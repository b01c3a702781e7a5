//! Entry points for the fuzz targets in `fuzz/` (and the test that runs
//! them on generated inputs): each decodes untrusted bytes the way ferry
//! does when reading a repository, and must never panic.

use crate::format::crypto::{aad, MasterKey};
use crate::format::{config, index::IndexFile, pack, snapshot::Snapshot, tree::Tree};

fn key() -> MasterKey {
    MasterKey {
        encrypt: [7; 32],
        blob_id: [9; 32],
        mac: [11; 32],
    }
}

pub fn pack_header(data: &[u8]) {
    let _ = pack::decode_header(data, data.len() as u64 * 2);
    let id = crate::repo::PackId::of_bytes(data);
    let _ = pack::read_pack_header(&id, data, &key().cipher());
}

pub fn tree(data: &[u8]) {
    if let Ok(mut t) = Tree::decode(data) {
        let again = Tree::decode(&t.encode()).expect("a decoded tree re-encodes to a valid tree");
        assert_eq!(again, t);
    }
}

pub fn snapshot(data: &[u8]) {
    let _ = serde_json::from_slice::<Snapshot>(data);
    let _ = key().cipher().open(data, aad::SNAPSHOT);
}

pub fn index(data: &[u8]) {
    if let Ok(idx) = IndexFile::decode(data) {
        assert_eq!(
            IndexFile::decode(&idx.encode()).expect("re-encoded index decodes"),
            idx
        );
    }
}

pub fn config(data: &[u8]) {
    let _ = config::peek_version(data);
    let _ = config::decode(data, &key());
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::config::FileConfig::parse(text, "fuzz");
    }
}

/// A key object as `keys/` may hold it: decoded and checked against the
/// limits (no key is derived: the limits bound that, not the fuzzer).
pub fn key_object(data: &[u8]) {
    let name = format!("keys/{}", blake3::hash(data).to_hex());
    if let Ok(k) = crate::format::keys::KeyFile::decode(&name, data) {
        assert!(
            k.params.memory_kib <= 1 << 20,
            "a decoded key is within the limits"
        );
        assert!(k.params.iterations <= 20 && k.params.parallelism <= 16);
    }
}

/// The tree walk over trees from the input: chunks separated by 0xFF bytes
/// are trees (the first is the root), each named by its blob id, and any
/// subtree naming another chunk's id leads there. The walk must end within
/// its entry limit and path length, whatever graph the trees make.
pub fn tree_walk(data: &[u8]) {
    use crate::engine::walk::{walk_with, MAX_PATH};
    let k = key();
    let mut trees = std::collections::HashMap::new();
    let mut root = None;
    for chunk in data.split(|&b| b == 0xFF).take(64) {
        let id = k.blob_id(chunk);
        root.get_or_insert(id);
        if let Ok(t) = Tree::decode(chunk) {
            for n in &t.nodes {
                let _ = n.data_length();
            }
            trees.insert(id, t);
        }
    }
    let Some(root) = root else { return };
    const LIMIT: u64 = 10_000;
    let load = |id| {
        let t = trees.get(&id).cloned().ok_or_else(|| "missing".to_string());
        async move { t }
    };
    let walked = futures::executor::block_on(walk_with(load, root, LIMIT, |_| true));
    if let Ok(w) = walked {
        assert!(
            w.entries.len() as u64 <= LIMIT,
            "the walk stops at its limit"
        );
        assert!(w
            .entries
            .iter()
            .all(|e| e.path.as_bytes().len() <= MAX_PATH));
    }
}

/// A seed for [`tree_walk`]: a few trees, each naming the next twice.
pub fn tree_walk_seed() -> Vec<u8> {
    use crate::format::tree::{Node, NodeKind};
    let k = key();
    let mut leaf = Tree {
        nodes: vec![Node::synthetic(b"f", NodeKind::File, 0)],
    };
    let mut chunks = vec![leaf.encode()];
    for _ in 0..4 {
        let below = k.blob_id(chunks.last().unwrap());
        let mut nodes = Vec::new();
        for name in [b"a", b"b"] {
            let mut n = Node::synthetic(name, NodeKind::Dir, 0);
            n.subtree = Some(below);
            nodes.push(n);
        }
        chunks.push(Tree { nodes }.encode());
    }
    chunks.reverse();
    chunks.join(&0xFF)
}
