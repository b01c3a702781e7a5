//! Builds snapshots of many entries cheaply, for `benches/restore-entries.sh`.
//!
//! `synth_entries DIR FILES` creates a repository in DIR (password from
//! FERRY_PASSWORD) with three snapshots of FILES files each, written with
//! ferry's own pipeline (trees and blobs, no files read), tagged by shape:
//! - `flat`: 1000 files a directory, one level down, each file holding its
//!   own small blob (32-48 bytes);
//! - `deep`: empty files, 50 a directory, the directories 5 or more levels
//!   deep (one level per decimal digit of the directory's number);
//! - `links`: as `flat`, but every two files are hard links of one inode.

use std::path::Path;
use std::sync::Arc;

use ferry::format::snapshot::{Snapshot, Summary};
use ferry::format::tree::{Node, NodeKind, Tree};
use ferry::format::{BlobId, BlobType};
use ferry::pipeline::{Compressor, Pipeline, PipelineOptions};
use ferry::repo::{InitOptions, Repository, Sealer};

const MTIME: i64 = 1_700_000_000_000_000_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: synth_entries DIR FILES";
    let [_, dir, n] = args.as_slice() else {
        panic!("{usage}")
    };
    let files = n.parse::<u64>().expect(usage);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(make_repo(Path::new(dir), files));
}

/// The content of file `n`: distinct for every n, 32 to 48 bytes.
fn blob_data(n: u64) -> Vec<u8> {
    let mut v = format!("synthetic file {n:016x}").into_bytes();
    v.resize(32 + (n % 17) as usize, b'.');
    v
}

/// What one snapshot's trees are being written with.
struct Writer {
    pipe: Arc<Pipeline>,
    sealer: Sealer,
    zstd: Compressor,
    entries: u64,
    dirs: u64,
}

impl Writer {
    fn store(&mut self, nodes: Vec<Node>) -> BlobId {
        self.put(BlobType::Tree, &Tree { nodes }.encode())
    }

    fn put(&mut self, kind: BlobType, data: &[u8]) -> BlobId {
        let id = self.sealer.blob_id(data);
        if self.pipe.claim(kind, &id) {
            self.pipe
                .seal_and_add(&mut self.zstd, kind, id, data)
                .unwrap();
        }
        id
    }

    fn dir_node(&mut self, name: String, nodes: Vec<Node>) -> Node {
        self.entries += nodes.len() as u64;
        self.dirs += 1;
        let mut node = Node::synthetic(name.as_bytes(), NodeKind::Dir, MTIME);
        node.subtree = Some(self.store(nodes));
        node
    }

    /// File `f`: empty, or with its own blob; `links`: a hard link of
    /// inode f / 2 (the files f and f ^ 1 share it).
    fn file(&mut self, f: u64, content: bool, links: bool) -> Node {
        let mut node = Node::synthetic(format!("f{f:08}").as_bytes(), NodeKind::File, MTIME);
        let f_content = if links { f / 2 } else { f };
        if content {
            let data = blob_data(f_content);
            node.size = data.len() as u64;
            node.content.push(self.put(BlobType::Data, &data));
        }
        if links {
            (node.links, node.inode, node.device) = (2, f / 2 + 1, 1);
        }
        node
    }

    /// `files` files, `per_dir` a directory, under directories named by
    /// the digits of their number (`digits` levels) or one level.
    fn shape(
        &mut self,
        files: u64,
        per_dir: u64,
        deep: bool,
        content: bool,
        links: bool,
    ) -> BlobId {
        let dirs = files.div_ceil(per_dir);
        let digits = if deep {
            dirs.to_string().len().max(5)
        } else {
            1
        };
        // A stack of (name, nodes) of the directories being filled.
        let mut open: Vec<(String, Vec<Node>)> = vec![(String::new(), Vec::new())];
        let mut last: Vec<u8> = Vec::new();
        for d in 0..dirs {
            let path: Vec<u8> = match deep {
                true => format!("{d:0digits$}").into_bytes(),
                false => vec![0],
            };
            // Close the directories this one does not share with the last.
            let common = last.iter().zip(&path).take_while(|(a, b)| a == b).count();
            let common = if deep { common.min(digits - 1) } else { 0 };
            while open.len() > 1 + common {
                let (name, nodes) = open.pop().unwrap();
                let n = self.dir_node(name, nodes);
                open.last_mut().unwrap().1.push(n);
            }
            while open.len() < digits {
                let level = open.len() - 1;
                open.push((format!("d{}", path[level] as char), Vec::new()));
            }
            let nodes = (d * per_dir..((d + 1) * per_dir).min(files))
                .map(|f| self.file(f, content, links))
                .collect();
            let leaf = self.dir_node(format!("l{d:08}"), nodes);
            open.last_mut().unwrap().1.push(leaf);
            last = path;
        }
        while open.len() > 1 {
            let (name, nodes) = open.pop().unwrap();
            let n = self.dir_node(name, nodes);
            open.last_mut().unwrap().1.push(n);
        }
        let (_, nodes) = open.pop().unwrap();
        let top = self.dir_node("synthetic".into(), nodes);
        self.entries += 1;
        self.store(vec![top])
    }
}

async fn make_repo(dir: &Path, files: u64) {
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
    let mut made = Vec::new();
    for (tag, per_dir, deep, content, links) in [
        ("flat", 1000, false, true, false),
        ("deep", 50, true, false, false),
        ("links", 1000, false, true, true),
    ] {
        let mut w = Writer {
            pipe: pipe.clone(),
            sealer: repo.sealer().clone(),
            zstd: pipe.compressor(),
            entries: 0,
            dirs: 0,
        };
        let root = tokio::task::block_in_place(|| w.shape(files, per_dir, deep, content, links));
        made.push((tag, root, w.entries, w.dirs));
    }
    pipe.finish().await.unwrap();
    for (day, (tag, tree, entries, dirs)) in made.into_iter().enumerate() {
        let snap = snapshot(tag, tree, files, (entries, dirs), day as i64);
        let id = repo.save_snapshot(&snap).await.unwrap();
        println!("snapshot {id} {tag}: {files} files, {dirs} directories, {entries} entries");
    }
}

fn snapshot(
    tag: &str,
    tree: BlobId,
    files: u64,
    (entries, dirs): (u64, u64),
    day: i64,
) -> Snapshot {
    let time = chrono::DateTime::from_timestamp(1_735_689_600 + day * 86_400, 0).unwrap();
    Snapshot {
        time,
        host: "bench".into(),
        username: "bench".into(),
        paths: vec!["/synthetic".into()],
        tags: vec![tag.into()],
        parent: None,
        tree,
        summary: Summary {
            total_files: files,
            files_new: files,
            dirs,
            entries: Some(entries),
            ..Default::default()
        },
        skipped: Vec::new(),
        extra: None,
        program_version: format!("ferry {}", env!("CARGO_PKG_VERSION")),
        region: None,
    }
}
