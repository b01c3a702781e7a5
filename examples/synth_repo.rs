//! Builds large inputs for `benches/scale.sh` cheaply.
//!
//! `synth_repo repo DIR BLOBS` creates a repository in DIR (password from
//! FERRY_PASSWORD) holding BLOBS distinct small data blobs, written with
//! ferry's own pipeline (packs, index objects) without chunking or reading
//! files: 64 blobs of 32-48 bytes a file, 256 files a directory. Two
//! snapshots of `/synthetic`: the first names every directory, the second
//! the later half, so `forget --keep-last 1 --prune` frees half the blobs.
//!
//! `synth_repo tree DIR FILES` writes FILES small files of distinct content
//! (40-100 bytes) under DIR, 50 a directory, each directory 4 to 8 levels
//! deep.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry::format::snapshot::{Snapshot, Summary};
use ferry::format::tree::{Node, NodeKind, Tree};
use ferry::format::{BlobId, BlobType};
use ferry::pipeline::{Pipeline, PipelineOptions};
use ferry::repo::{InitOptions, Repository, Sealer};

const BLOBS_PER_FILE: u64 = 64;
const FILES_PER_DIR: u64 = 256;
const MTIME: i64 = 1_700_000_000_000_000_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: synth_repo repo DIR BLOBS | synth_repo tree DIR FILES";
    let (mode, dir, n) = match args.as_slice() {
        [_, m, d, n] => (m.as_str(), PathBuf::from(d), n.parse::<u64>().expect(usage)),
        _ => panic!("{usage}"),
    };
    match mode {
        "repo" => {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(make_repo(&dir, n));
        }
        "tree" => make_tree(&dir, n),
        _ => panic!("{usage}"),
    }
}

/// The content of blob `n`: distinct for every n, 32 to 48 bytes.
fn blob_data(n: u64) -> Vec<u8> {
    let mut v = format!("synthetic blob {n:016x}").into_bytes();
    v.resize(32 + (n % 17) as usize, b'.');
    v
}

async fn make_repo(dir: &Path, blobs: u64) {
    let password = std::env::var("FERRY_PASSWORD").unwrap_or_else(|_| "bench".into());
    let store = ferry::store::open_base(dir.to_str().unwrap(), &Default::default()).unwrap();
    let mut opts = InitOptions::default();
    opts.kdf.memory_kib = 8 << 10;
    opts.kdf.iterations = 1;
    let repo = Arc::new(
        Repository::init(store, password.as_bytes(), &opts, None)
            .await
            .unwrap(),
    );
    let config = repo.config();
    let popts = PipelineOptions::for_memory(256 << 20, config.pack_size, config.chunker.max_size);
    let pipe = Pipeline::start(repo.clone(), &popts);
    let files = blobs.div_ceil(BLOBS_PER_FILE);
    let dirs = files.div_ceil(FILES_PER_DIR);
    let (p, sealer) = (pipe.clone(), repo.sealer().clone());
    let dir_nodes = tokio::task::spawn_blocking(move || {
        (0..dirs)
            .map(|d| write_dir(&p, &sealer, d, blobs))
            .collect::<Vec<Node>>()
    })
    .await
    .unwrap();
    let half = dir_nodes[dir_nodes.len() / 2..].to_vec();
    let (p, sealer) = (pipe.clone(), repo.sealer().clone());
    let roots = tokio::task::spawn_blocking(move || {
        [
            write_tree(&p, &sealer, dir_nodes),
            write_tree(&p, &sealer, half),
        ]
    })
    .await
    .unwrap();
    pipe.finish().await.unwrap();
    for (i, (root, files)) in roots.into_iter().enumerate() {
        let snap = snapshot(root, files, i as i64);
        let id = repo.save_snapshot(&snap).await.unwrap();
        println!("snapshot {id}: {files} files");
    }
    println!("{blobs} data blobs in {files} files, {dirs} directories");
}

/// Stores the blobs and the tree of directory `d`; returns its node.
fn write_dir(pipe: &Pipeline, sealer: &Sealer, d: u64, blobs: u64) -> Node {
    let mut zstd = pipe.compressor();
    let first_file = d * FILES_PER_DIR;
    let mut nodes = Vec::new();
    for f in first_file..first_file + FILES_PER_DIR {
        let first = f * BLOBS_PER_FILE;
        if first >= blobs {
            break;
        }
        let mut node = Node::synthetic(format!("f{f:08}").as_bytes(), NodeKind::File, MTIME);
        for n in first..(first + BLOBS_PER_FILE).min(blobs) {
            let data = blob_data(n);
            let id = sealer.blob_id(&data);
            if pipe.claim(BlobType::Data, &id) {
                pipe.seal_and_add(&mut zstd, BlobType::Data, id, &data)
                    .unwrap();
            }
            node.size += data.len() as u64;
            node.content.push(id);
        }
        nodes.push(node);
    }
    let files = nodes.len() as u64;
    let id = store_tree(pipe, sealer, &mut zstd, nodes);
    let mut node = Node::synthetic(format!("d{d:06}").as_bytes(), NodeKind::Dir, MTIME);
    node.subtree = Some(id);
    node.size = files;
    node
}

/// Stores the root tree over `dirs`; returns it and the files below it.
fn write_tree(pipe: &Pipeline, sealer: &Sealer, dirs: Vec<Node>) -> (BlobId, u64) {
    let mut zstd = pipe.compressor();
    let files = dirs.iter().map(|n| n.size).sum();
    let dirs = dirs
        .into_iter()
        .map(|mut n| {
            n.size = 0;
            n
        })
        .collect();
    (store_tree(pipe, sealer, &mut zstd, dirs), files)
}

fn store_tree(
    pipe: &Pipeline,
    sealer: &Sealer,
    zstd: &mut ferry::pipeline::Compressor,
    nodes: Vec<Node>,
) -> BlobId {
    let data = Tree { nodes }.encode();
    let id = sealer.blob_id(&data);
    if pipe.claim(BlobType::Tree, &id) {
        pipe.seal_and_add(zstd, BlobType::Tree, id, &data).unwrap();
    }
    id
}

fn snapshot(tree: BlobId, files: u64, day: i64) -> Snapshot {
    let time = chrono::DateTime::from_timestamp(1_735_689_600 + day * 86_400, 0).unwrap();
    Snapshot {
        time,
        host: "bench".into(),
        username: "bench".into(),
        paths: vec!["/synthetic".into()],
        tags: Vec::new(),
        parent: None,
        tree,
        summary: Summary {
            total_files: files,
            files_new: files,
            dirs: files.div_ceil(FILES_PER_DIR) + 1,
            ..Default::default()
        },
        skipped: Vec::new(),
        extra: None,
        program_version: format!("ferry {}", env!("CARGO_PKG_VERSION")),
        region: None,
    }
}

/// Writes `files` small files under `root`, 50 a directory; directory j
/// lies 4 + j % 5 levels deep, named by the hex digits of j.
fn make_tree(root: &Path, files: u64) {
    for j in 0..files.div_ceil(50) {
        let depth = 4 + (j % 5) as usize;
        let hex = format!("{j:0depth$x}");
        let mut dir = root.to_path_buf();
        for (i, c) in hex.char_indices() {
            // The last level takes the remaining digits.
            if i + 1 < depth {
                dir.push(format!("d{c}"));
            } else {
                dir.push(format!("l{}", &hex[i..]));
                break;
            }
        }
        std::fs::create_dir_all(&dir).unwrap();
        for f in j * 50..((j + 1) * 50).min(files) {
            let mut body = format!("file {f} of a generated tree\n").into_bytes();
            body.resize(40 + (f % 61) as usize, b'x');
            std::fs::write(dir.join(format!("f{f}")), body).unwrap();
        }
    }
    println!("{files} files under {}", root.display());
}
