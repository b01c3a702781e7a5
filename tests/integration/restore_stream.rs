//! A restore that streams its entries: a snapshot of more files than one
//! batch of reads holds comes back whole, with hard links across batches,
//! directory times set after the files in them and a read-only directory's
//! mode applied after its contents.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use ferry::format::tree::{Node, NodeKind};

use crate::forge::{dir, file, summary, Forge};
use crate::support::Env;

/// Files of the snapshot: more than two batches (16,384 files each).
const DIRS: usize = 40;
const PER_DIR: usize = 1000;
/// Directory times, in seconds.
const DIR_TIME: i64 = 1_600_000_000;

fn dir_at(name: &str, subtree: ferry::repo::BlobId, mode: u32) -> Node {
    let mut n = dir(name, subtree);
    n.mtime = DIR_TIME * 1_000_000_000;
    n.mode = mode;
    n
}

fn body(d: usize, f: usize) -> Vec<u8> {
    format!("file {f} of directory {d}\n").into_bytes()
}

/// The snapshot: `dNN/fNNNN` files, a hard-linked pair in the first and
/// the last directory, and `ro` (mode 0555) holding a file and a symlink.
fn forge(env: &Env) -> u64 {
    let mut f = Forge::open(env);
    let shared = f.data(b"linked twice");
    let link = |name: &str| {
        let mut n = file(name, 12, vec![shared]);
        (n.links, n.inode, n.device) = (2, 4242, 7);
        n
    };
    let mut top = Vec::new();
    for d in 0..DIRS {
        let mut nodes: Vec<Node> = (0..PER_DIR)
            .map(|i| {
                let data = body(d, i);
                let id = f.data(&data);
                file(&format!("f{i:04}"), data.len() as u64, vec![id])
            })
            .collect();
        if d == 0 || d == DIRS - 1 {
            nodes.push(link(&format!("link-{d}")));
        }
        let t = f.tree(nodes);
        top.push(dir_at(&format!("d{d:02}"), t, 0o755));
    }
    let mut sym = Node::synthetic(b"sym", NodeKind::Symlink, 0);
    sym.target = Some(b"inner".to_vec());
    let inner = f.data(b"inside ro");
    let ro = f.tree(vec![file("inner", 9, vec![inner]), sym]);
    top.push(dir_at("ro", ro, 0o555));
    let root = f.tree(top);
    let files = (DIRS * PER_DIR + 3) as u64;
    f.snapshot(
        root,
        summary(files, DIRS as u64 + 1, files + DIRS as u64 + 2),
    );
    files
}

#[test]
fn more_files_than_a_batch_restore_whole_with_links_times_and_modes() {
    let env = Env::new();
    env.init_small();
    let files = forge(&env);
    let out = env.path("out");
    let r = env.try_run(&[
        "restore",
        "latest",
        "--json",
        "--target",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = &r.json()["report"];
    assert_eq!(report["files"], files, "{report}");
    assert_eq!(report["dirs"], DIRS as u64 + 1, "{report}");
    assert_eq!(report["others"], 1, "{report}");
    assert!(report["failed"].as_array().unwrap().is_empty(), "{report}");
    for d in 0..DIRS {
        let dir = out.join(format!("d{d:02}"));
        for i in 0..PER_DIR {
            let got = std::fs::read(dir.join(format!("f{i:04}"))).unwrap();
            assert_eq!(got, body(d, i), "d{d:02}/f{i:04}");
        }
        let m = std::fs::metadata(&dir).unwrap();
        assert_eq!(m.mtime(), DIR_TIME, "d{d:02}: time set after its files");
    }
    let (a, b) = (
        std::fs::metadata(out.join("d00/link-0")).unwrap(),
        std::fs::metadata(out.join(format!("d{:02}/link-{}", DIRS - 1, DIRS - 1))).unwrap(),
    );
    assert_eq!(a.ino(), b.ino(), "one inode across batches");
    assert_eq!(a.nlink(), 2);
    assert_eq!(
        std::fs::read(out.join("d00/link-0")).unwrap(),
        b"linked twice"
    );
    let ro = std::fs::symlink_metadata(out.join("ro")).unwrap();
    assert_eq!(ro.permissions().mode() & 0o7777, 0o555);
    assert_eq!(ro.mtime(), DIR_TIME, "ro: time set after its symlink");
    assert_eq!(std::fs::read(out.join("ro/inner")).unwrap(), b"inside ro");
    assert_eq!(
        std::fs::read_link(out.join("ro/sym")).unwrap(),
        std::path::Path::new("inner")
    );
}
