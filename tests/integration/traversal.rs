//! Restore never writes outside its target, whatever a (possibly
//! malicious) repository says, and never follows symlinks it finds.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;

use ferry::format::blob::BlobType;
use ferry::format::snapshot::{Snapshot, Summary};
use ferry::format::tree::{Node, NodeKind, Tree};
use ferry::pipeline::{Pipeline, PipelineOptions, RawBlob};
use ferry::repo::Repository;
use ferry::store::local::LocalStore;

use crate::support::{Env, PASSWORD};

/// Writes a snapshot whose root tree is `tree`, with one data blob "evil"
/// that file nodes may refer to, bypassing every check of the writer.
async fn forge(env: &Env, build: impl FnOnce(ferry::repo::BlobId) -> Tree) {
    let store = Arc::new(LocalStore::new(&env.repo));
    let repo = Arc::new(
        Repository::open(store, PASSWORD.as_bytes(), Some(env.path("forge.db")))
            .await
            .unwrap(),
    );
    let pipe = Pipeline::start(
        repo.clone(),
        &PipelineOptions {
            seal_workers: 1,
            uploads: 1,
            index_every_packs: 10,
            index_every_blobs: 1000,
        },
    );
    let data = b"evil".to_vec();
    let blob = repo.sealer().blob_id(&data);
    if pipe.claim(BlobType::Data, &blob) {
        pipe.submit(RawBlob {
            kind: BlobType::Data,
            id: blob,
            data,
        })
        .await
        .unwrap();
    }
    let tree = build(blob);
    let encoded = serde_json::to_vec(&tree).unwrap();
    let tid = repo.sealer().blob_id(&encoded);
    pipe.claim(BlobType::Tree, &tid);
    pipe.submit(RawBlob {
        kind: BlobType::Tree,
        id: tid,
        data: encoded,
    })
    .await
    .unwrap();
    pipe.finish().await.unwrap();
    let snap = Snapshot {
        time: chrono::Utc::now(),
        host: "evil".into(),
        username: "evil".into(),
        paths: vec!["/x".into()],
        tags: vec![],
        parent: None,
        tree: tid,
        summary: Summary::default(),
        skipped: vec![],
        extra: None,
        program_version: "0".into(),
        region: None,
    };
    repo.save_snapshot(&snap).await.unwrap();
}

fn file(name: &[u8], blob: ferry::repo::BlobId) -> Node {
    let mut n = Node::synthetic(name, NodeKind::File, 0);
    n.content = vec![blob];
    n.size = 4;
    n
}

fn restore_refused(env: &Env, outside: &Path) {
    let out = env.path("target");
    let r = env.try_run(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_ne!(
        r.code, 0,
        "a malicious snapshot is not restored silently: {}",
        r.stdout
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert!(
        !outside.exists(),
        "nothing written outside the target: {}",
        outside.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_dot_and_absolute_names_are_refused() {
    for name in [
        &b".."[..],
        b"../escape",
        b"/tmp/ferry-escape-abs",
        b"a/../../escape",
        b".",
    ] {
        let env = Env::new();
        env.init_small();
        let outside = env.path("escape");
        forge(&env, |blob| {
            let mut dir = Node::synthetic(b"d", NodeKind::Dir, 0);
            dir.subtree = None;
            Tree {
                nodes: vec![file(name, blob)],
            }
        })
        .await;
        restore_refused(&env, &outside);
        assert!(!Path::new("/tmp/ferry-escape-abs").exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_and_a_directory_of_the_same_name_are_refused() {
    let env = Env::new();
    env.init_small();
    let outside = env.mkdir("outside-dir");
    let victim = outside.join("victim");
    forge(&env, |blob| {
        let mut link = Node::synthetic(b"a", NodeKind::Symlink, 0);
        link.target = Some(outside.to_str().unwrap().as_bytes().to_vec());
        let mut dir = Node::synthetic(b"a", NodeKind::Dir, 0);
        // The directory's tree would hold `victim`; any subtree id will do,
        // the duplicate name is refused first.
        dir.subtree = Some(blob);
        Tree {
            nodes: vec![link, dir, file(b"victim", blob)],
        }
    })
    .await;
    restore_refused(&env, &victim);
}

#[test]
fn existing_symlinks_in_the_target_are_never_followed() {
    let env = Env::new();
    env.init_small();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("dir")).unwrap();
    std::fs::write(src.join("file"), b"from backup").unwrap();
    std::fs::write(src.join("dir/inner"), b"inner").unwrap();
    env.backup(&[&src], &[]);
    let outside = env.mkdir("outside");
    std::fs::write(outside.join("victim"), b"untouched").unwrap();
    let out = env.path("out");
    let base = Env::restored(&out, &src);
    std::fs::create_dir_all(&base).unwrap();
    symlink(outside.join("victim"), base.join("file")).unwrap();
    symlink(&outside, base.join("dir")).unwrap();
    let r = env.try_run(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_ne!(
        r.code, 0,
        "existing entries are not replaced without --overwrite"
    );
    env.run(&[
        "restore",
        "latest",
        "--target",
        out.to_str().unwrap(),
        "--overwrite",
    ]);
    assert_eq!(std::fs::read(outside.join("victim")).unwrap(), b"untouched");
    assert!(
        !outside.join("inner").exists(),
        "nothing written through the directory symlink"
    );
    assert_eq!(std::fs::read(base.join("file")).unwrap(), b"from backup");
    assert!(std::fs::symlink_metadata(base.join("dir"))
        .unwrap()
        .is_dir());
    assert_eq!(std::fs::read(base.join("dir/inner")).unwrap(), b"inner");
}
