//! The golden repository of format version 1 restores byte for byte.

use std::path::Path;

use crate::support::Env;

#[test]
fn golden_v1_repository_restores_byte_for_byte() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden-v1");
    let env = Env::new();
    let repo = fixtures.join("repo");
    let out = env.path("out");
    let mut c = env.command();
    c.env(
        "FERRY_PASSWORD",
        std::fs::read_to_string(fixtures.join("password"))
            .unwrap()
            .trim(),
    );
    let r = env.run_with(
        c,
        &[
            "restore",
            "latest",
            "--repo",
            repo.to_str().unwrap(),
            "--target",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("manifest.json")).unwrap())
            .unwrap();
    let root = out.join(manifest["source"].as_str().unwrap().trim_start_matches('/'));
    let mut count = 0;
    for (rel, want) in manifest["entries"].as_object().unwrap() {
        let p = root.join(rel);
        let m = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{rel}: {e}"));
        match want["kind"].as_str().unwrap() {
            "file" => {
                let data = std::fs::read(&p).unwrap();
                assert_eq!(
                    blake3::hash(&data).to_hex().as_str(),
                    want["blake3"].as_str().unwrap(),
                    "{rel} content"
                );
                assert_eq!(data.len() as u64, want["size"].as_u64().unwrap());
            }
            "symlink" => assert_eq!(
                std::fs::read_link(&p).unwrap().to_str().unwrap(),
                want["target"].as_str().unwrap()
            ),
            "dir" => assert!(m.is_dir()),
            k => panic!("unknown kind {k}"),
        }
        use std::os::unix::fs::PermissionsExt;
        if want["kind"] != "symlink" {
            assert_eq!(
                m.permissions().mode() & 0o7777,
                want["mode"].as_u64().unwrap() as u32,
                "{rel} mode"
            );
        }
        use std::os::unix::fs::MetadataExt;
        if want["kind"] == "file" {
            assert_eq!(m.mtime(), want["mtime"].as_i64().unwrap(), "{rel} mtime");
        }
        count += 1;
    }
    assert!(count >= 8, "the manifest lists the fixture's entries");
    // The golden repository is intact, too.
    let mut c = env.command();
    c.env(
        "FERRY_PASSWORD",
        std::fs::read_to_string(fixtures.join("password"))
            .unwrap()
            .trim(),
    );
    let r = env.run_with(
        c,
        &["check", "--read-data", "--repo", repo.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
}
