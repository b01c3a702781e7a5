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
