//! End to end from the CLI on a real S3 server: init (creating the bucket),
//! backup, restore byte-identical, check --read-data; and a backup and a
//! restore through the fault-injecting proxy that still give a valid
//! snapshot and identical files.

use std::path::Path;

use crate::support::proxy::{Fault, FaultProxy};
use crate::support::server::S3Server;

const ENDPOINT_ARGS: [&str; 4] = ["--s3-provider", "minio", "--s3-region", "test-1"];

fn run(dir: &Path, endpoint: &str, args: &[&str]) -> (i32, String, String) {
    let mut extra = vec!["--s3-endpoint", endpoint];
    extra.extend(ENDPOINT_ARGS);
    crate::ferry(dir, args, &extra)
}

fn ok(dir: &Path, endpoint: &str, args: &[&str]) -> String {
    let mut extra = vec!["--s3-endpoint", endpoint];
    extra.extend(ENDPOINT_ARGS);
    crate::ferry_ok(dir, args, &extra)
}

/// Partly compressible bytes: every third one a letter.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut d = ferry::testdata::random(len, seed);
    for b in d.iter_mut().step_by(3) {
        *b = b'a' + *b % 7;
    }
    d
}

fn assert_same(src: &Path, out: &Path) {
    let restored = out.join(src.strip_prefix("/").unwrap());
    assert!(
        crate::read_tree(src) == crate::read_tree(&restored),
        "restored files differ from {}",
        src.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_restore_and_check_on_s3_from_the_cli() {
    let server = S3Server::start("test-1").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = d.join("src");
    for i in 0..30 {
        let p = src.join(format!("d{}/f{i}", i % 3));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data(20_000 + i * 30_000, i as u64)).unwrap();
    }
    let ep = server.endpoint();
    let repo = "s3://ferry-cli/cluster-a";
    let mut init = vec!["init", "--repo", repo];
    init.extend(crate::SMALL_REPO);
    ok(d, &ep, &init);
    assert!(
        server.root.path().join("ferry-cli").is_dir(),
        "init created the bucket"
    );
    ok(d, &ep, &["backup", "--repo", repo, src.to_str().unwrap()]);
    let out = d.join("out");
    ok(
        d,
        &ep,
        &[
            "restore",
            "--repo",
            repo,
            "latest",
            "--target",
            out.to_str().unwrap(),
            "--limit-download",
            "off",
        ],
    );
    assert_same(&src, &out);
    ok(d, &ep, &["check", "--repo", repo, "--read-data"]);

    // Through faults: resets, 503 SlowDown, 500 after the server acted,
    // truncated bodies, latency. The backup retries its way to a valid
    // snapshot; the restore reads identical files.
    std::fs::write(src.join("d0/new"), data(400_000, 99)).unwrap();
    let faults = [
        Fault::Latency,
        Fault::SlowDown,
        Fault::InternalErrorAfter,
        Fault::ResetUpload,
        Fault::ResetMidBody,
        Fault::TruncatedBody,
    ];
    let proxy = FaultProxy::start(server.addr, 7, 0.15, &faults).await;
    let pep = format!("http://{}", proxy.addr);
    let (code, o, e) = run(
        d,
        &pep,
        &["backup", "--repo", repo, "--json", src.to_str().unwrap()],
    );
    assert_eq!(code, 0, "backup through faults:\n{o}\n{e}");
    let out2 = d.join("out2");
    let (code, o, e) = run(
        d,
        &pep,
        &[
            "restore",
            "--repo",
            repo,
            "latest",
            "--target",
            out2.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "restore through faults:\n{o}\n{e}");
    assert_same(&src, &out2);
    ok(d, &ep, &["check", "--repo", repo, "--read-data"]);
    let snaps: serde_json::Value =
        serde_json::from_str(&ok(d, &ep, &["snapshots", "--repo", repo, "--json"])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_credentials_and_repository_are_clear_errors() {
    let server = S3Server::start("test-1").await;
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(
        dir.path(),
        &server.endpoint(),
        &["snapshots", "--repo", "s3://nobucket/x"],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("nobucket"),
        "the error names the bucket: {err}"
    );
}
