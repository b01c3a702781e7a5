//! Makes tests/fixtures/golden-v2 (run once, by
//! tests/fixtures/make-golden-v2.sh): a repository of format version 2
//! with a snapshot of Kubernetes objects under `/k8s` and a volume under
//! `/volumes` (backed up from the fake API server through a data-mover
//! Job), an older snapshot forgotten, a deletion plan, a drill record, and
//! an object-locked config. The fixture is frozen: the test that reads it
//! is tests/integration/golden.rs.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::volumes::{noise, seed_app, write, Cluster};

const PASSWORD: &str = "k8s-test";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden-v2")
}

/// Every file below `root`: relative path → (size, BLAKE3).
fn manifest(root: &Path) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    for p in super::support::files::files_under(root) {
        let data = std::fs::read(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_string();
        out.insert(
            rel,
            json!({"size": data.len(), "blake3": blake3::hash(&data).to_hex().as_str()}),
        );
    }
    out
}

/// Rewrites the config with an object lock, as `init --object-lock` on a
/// bucket writes it (a directory cannot lock, so the copy is read-only).
fn lock_config(repo: &Path) {
    use ferry::format::config::{self, LockMode, ObjectLock};
    let raw = std::fs::read(repo.join("config")).unwrap();
    let keys = std::fs::read_dir(repo.join("keys")).unwrap();
    let key_path = keys.into_iter().next().unwrap().unwrap().path();
    let name = key_path.file_name().unwrap().to_str().unwrap().to_string();
    let file =
        ferry::format::keys::KeyFile::decode(&name, &std::fs::read(&key_path).unwrap()).unwrap();
    let master = file.unwrap_key(PASSWORD.as_bytes()).unwrap().unwrap();
    let mut body = config::decode(&raw, &master).unwrap();
    body.object_lock = Some(ObjectLock {
        mode: LockMode::Governance,
        retention_seconds: 30 * 86_400,
    });
    std::fs::write(repo.join("config"), body.encode(&master)).unwrap();
}

#[test]
#[ignore = "writes tests/fixtures/golden-v2; run by tests/fixtures/make-golden-v2.sh"]
fn make_golden_v2() {
    let c = Cluster::new();
    let data = c.pvc("shop", "data-0", "csi-fast", "Filesystem", "16Mi");
    write(&data, "PG_VERSION", b"17\n");
    write(&data, "base/1/1259", &noise(300_000, 2));
    write(&data, "old.log", &noise(200_000, 3));
    seed_app(&c, "shop", &["data-0"], super::support::kubelet::NODE);
    c.fake.seed(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "shop-settings", "namespace": "shop"},
        "data": {"currency": "EUR", "greeting": "grüezi\n"}}));
    let time = |t| vec!["--time", t];
    let mut first = c.backup_args("shop", &[]);
    first.extend(time("2026-11-20T10:00:00Z"));
    c.ok(&first);
    std::fs::remove_file(data.join("old.log")).unwrap();
    write(&data, "base/1/2600", &noise(150_000, 4));
    let mut second = c.backup_args("shop", &[]);
    second.extend(time("2026-11-25T10:00:00Z"));
    c.ok(&second);
    c.ok(&["forget", "--keep-last", "1"]);
    c.ok(&["prune", "--keep-delete", "24h"]);
    let sandbox = c.dir.path().join("sandbox");
    std::fs::create_dir_all(&sandbox).unwrap();
    c.ok(&["drill", "--target", sandbox.to_str().unwrap()]);
    let out = c.dir.path().join("out");
    c.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    lock_config(&c.repo());

    let dest = fixture();
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::create_dir_all(&dest).unwrap();
    let status = std::process::Command::new("cp")
        .args([
            "-a",
            c.repo().to_str().unwrap(),
            dest.join("repo").to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(dest.join("password"), format!("{PASSWORD}\n")).unwrap();
    let m = json!({"snapshots": 1, "plans": 1, "drills": 1, "entries": manifest(&out)});
    std::fs::write(
        dest.join("manifest.json"),
        serde_json::to_string_pretty(&m).unwrap() + "\n",
    )
    .unwrap();
}
