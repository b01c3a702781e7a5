//! Runs every fuzz target's entry point on valid objects and many mutations
//! of them (bit flips, truncations, splices): decoders must never panic.

use ferry::format::blob::{BlobEntry, BlobType};
use ferry::format::index::{IndexFile, IndexPack};
use ferry::format::tree::{Node, NodeKind, Tree};
use ferry::repo::{BlobId, PackId};

use crate::support::bytes;

fn seeds() -> Vec<Vec<u8>> {
    let entry = BlobEntry {
        kind: BlobType::Data,
        codec: 1,
        id: BlobId::of_bytes(b"x"),
        offset: 10,
        length: 40,
        raw_length: 100,
    };
    let index = IndexFile {
        packs: vec![IndexPack {
            id: PackId::of_bytes(b"p"),
            size: 1000,
            blobs: vec![entry; 3],
        }],
    };
    let mut tree = Tree {
        nodes: vec![
            Node::synthetic(b"a", NodeKind::File, 1),
            Node::synthetic(b"b", NodeKind::Symlink, 2),
        ],
    };
    vec![
        index.encode(),
        ferry::format::pack::encode_header(&[entry, entry]),
        tree.encode(),
        br#"{"config":{"version":1,"id":"00","chunker":{"min_size":64,"avg_size":256,"max_size":1024},"compression_level":3,"pack_size":1048576,"cipher":"x","blob_id":"y"},"mac":"00"}"#.to_vec(),
        br#"{"time":"2026-11-25T10:00:00Z","host":"h","username":"u","paths":["/a"],"tree":"0000000000000000000000000000000000000000000000000000000000000000","program_version":"1"}"#.to_vec(),
        b"[[region]]\nname = \"a\"\nurl = \"s3://b/p\"\nprimary = true\n".to_vec(),
        br#"{"version":1,"created":"2026-11-25T10:00:00Z","host":"h","username":"u","kdf":"argon2id","params":{"memory_kib":65536,"iterations":3,"parallelism":1},"salt":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","data":"AAAA"}"#.to_vec(),
        ferry::fuzzing::tree_walk_seed(),
    ]
}

fn mutations(seed: &[u8], n: usize, salt: u64) -> Vec<Vec<u8>> {
    let r = bytes(n * 8, salt);
    (0..n)
        .map(|i| {
            let mut m = seed.to_vec();
            let pick = |j: usize| r[(i * 8 + j) % r.len()] as usize;
            match pick(0) % 4 {
                0 if !m.is_empty() => {
                    let at = (pick(1) * 256 + pick(2)) % m.len();
                    m[at] ^= 1 << (pick(3) % 8);
                }
                1 => m.truncate((pick(1) * 256 + pick(2)) % (m.len() + 1)),
                2 => {
                    let at = (pick(1) * 256 + pick(2)) % (m.len() + 1);
                    m.splice(at..at, bytes(pick(3) % 64, i as u64));
                }
                _ => m = bytes(pick(1) * 4, i as u64),
            }
            m
        })
        .collect()
}

#[test]
fn decoders_survive_mutated_inputs() {
    for (s, seed) in seeds().iter().enumerate() {
        for input in std::iter::once(seed.clone()).chain(mutations(seed, 1500, s as u64 + 1)) {
            ferry::fuzzing::pack_header(&input);
            ferry::fuzzing::tree(&input);
            ferry::fuzzing::snapshot(&input);
            ferry::fuzzing::index(&input);
            ferry::fuzzing::config(&input);
            ferry::fuzzing::key_object(&input);
            ferry::fuzzing::tree_walk(&input);
        }
    }
}
