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

/// A manifest path or link target in the byte-string form of trees: the
/// string, or NUL and the base64 of bytes that are not UTF-8.
fn manifest_bytes(s: &str) -> Vec<u8> {
    use base64::Engine;
    match s.strip_prefix('\0') {
        Some(b) => base64::engine::general_purpose::STANDARD.decode(b).unwrap(),
        None => s.as_bytes().to_vec(),
    }
}

fn golden_command(env: &Env, fixtures: &Path) -> std::process::Command {
    let mut c = env.command();
    let pw = std::fs::read_to_string(fixtures.join("password")).unwrap();
    c.env("FERRY_PASSWORD", pw.trim());
    c
}

/// Checks one restored entry against its manifest record.
fn check_more_entry(root: &Path, rel: &str, want: &serde_json::Value) {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let p = root.join(std::ffi::OsStr::from_bytes(&manifest_bytes(rel)));
    let m = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{rel:?}: {e}"));
    let kind = want["kind"].as_str().unwrap();
    if kind != "symlink" {
        let mode = want["mode"].as_u64().unwrap() as u32;
        assert_eq!(m.mode() & 0o7777, mode, "{rel:?} mode");
    }
    match kind {
        "file" => {
            let data = std::fs::read(&p).unwrap();
            let hash = blake3::hash(&data).to_hex();
            assert_eq!(hash.as_str(), want["blake3"].as_str().unwrap(), "{rel:?}");
            assert_eq!(m.mtime(), want["mtime"].as_i64().unwrap(), "{rel:?} mtime");
            // Holes stay holes: no more blocks than the source had.
            let allocated = want["allocated"].as_u64().unwrap();
            assert!(m.blocks() * 512 <= allocated.max(4096), "{rel:?} is sparse");
            for (name, value) in want["xattrs"].as_object().into_iter().flatten() {
                let got = xattr::get(&p, std::ffi::OsStr::from_bytes(&manifest_bytes(name)))
                    .unwrap()
                    .unwrap_or_else(|| panic!("{rel:?}: xattr {name:?} missing"));
                assert_eq!(
                    got,
                    manifest_bytes(&format!("\0{}", value.as_str().unwrap()))
                );
            }
        }
        "symlink" => {
            let target = std::fs::read_link(&p).unwrap();
            assert_eq!(
                target.as_os_str().as_bytes(),
                manifest_bytes(want["target"].as_str().unwrap())
            );
        }
        "dir" => assert!(m.is_dir()),
        "fifo" => assert!(m.file_type().is_fifo(), "{rel:?}"),
        "chardev" if crate::support::is_root() => {
            assert!(m.file_type().is_char_device(), "{rel:?}");
            let rdev = &want["rdev"];
            let dev = libc::makedev(
                rdev[0].as_u64().unwrap() as u32,
                rdev[1].as_u64().unwrap() as u32,
            );
            assert_eq!(m.rdev(), dev, "{rel:?} rdev");
        }
        "chardev" => {}
        k => panic!("unknown kind {k}"),
    }
}

#[test]
fn golden_v1_more_restores_every_byte_and_name() {
    use std::os::unix::fs::MetadataExt;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden-v1-more");
    let env = Env::new();
    let repo = fixtures.join("repo");
    let repo = repo.to_str().unwrap();
    let out = env.path("out");
    let c = golden_command(&env, &fixtures);
    let r = env.run_with(
        c,
        &[
            "restore",
            "latest",
            "--repo",
            repo,
            "--target",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("manifest.json")).unwrap())
            .unwrap();
    let root = out.join(manifest["source"].as_str().unwrap().trim_start_matches('/'));
    let entries = manifest["entries"].as_object().unwrap();
    for (rel, want) in entries {
        check_more_entry(&root, rel, want);
    }
    // Nothing restored under a name the source did not have.
    let listed = crate::support::walk_names(&root);
    let expected: std::collections::BTreeSet<Vec<u8>> =
        entries.keys().map(|k| manifest_bytes(k)).collect();
    assert_eq!(
        listed, expected,
        "restored names are the source's, byte for byte"
    );
    // Hard links come back as one inode.
    let a = std::fs::metadata(root.join("linked-a")).unwrap();
    let b = std::fs::metadata(root.join("linked-b")).unwrap();
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 2));
    // Two snapshots, two index objects and two keys: the second password opens it too.
    let c = golden_command(&env, &fixtures);
    let r = env.run_with(c, &["snapshots", "--repo", repo, "--json"]);
    let snaps: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 2);
    let mut c = env.command();
    c.env("FERRY_PASSWORD", "second-password");
    let r = env.run_with(c, &["check", "--read-data", "--repo", repo, "--json"]);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let check: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(check["snapshots"], 2);
}

#[test]
fn every_format_version_has_a_golden_fixture() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for v in 1..=ferry::format::config::FORMAT_VERSION {
        let config = dir.join(format!("golden-v{v}/repo/config"));
        let text = std::fs::read_to_string(&config).unwrap_or_else(|e| {
            panic!(
                "format version {v} has no fixture at {}: {e}",
                config.display()
            )
        });
        let found = ferry::format::config::peek_version(text.as_bytes()).unwrap();
        assert_eq!(found, v, "{} is of version {found}", config.display());
    }
}

/// The golden repository of format version 2 (tests/fixtures/make-golden-v2.sh):
/// Kubernetes objects and a volume restore byte for byte, beside a deletion
/// plan, a drill record and an object-locked config; the copy in a
/// directory opens read-only.
#[test]
fn golden_v2_restores_k8s_objects_and_volumes_byte_for_byte() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden-v2");
    let env = Env::new();
    let repo = fixtures.join("repo");
    let repo = repo.to_str().unwrap();
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("manifest.json")).unwrap())
            .unwrap();
    let count = |dir: &str| {
        std::fs::read_dir(fixtures.join("repo").join(dir))
            .unwrap()
            .count()
    };
    assert_eq!(count("plans") as u64, manifest["plans"].as_u64().unwrap());
    assert_eq!(count("drills") as u64, manifest["drills"].as_u64().unwrap());
    let config = std::fs::read(fixtures.join("repo/config")).unwrap();
    assert_eq!(ferry::format::config::peek_version(&config).unwrap(), 2);
    let lock = ferry::format::config::peek_lock(&config).unwrap().unwrap();
    assert_eq!(lock.mode, ferry::format::config::LockMode::Governance);

    let out = env.path("out");
    let r = env.run_with(
        golden_command(&env, &fixtures),
        &[
            "restore",
            "latest",
            "--repo",
            repo,
            "--target",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let entries = manifest["entries"].as_object().unwrap();
    let (mut k8s, mut volumes) = (0, 0);
    for (rel, want) in entries {
        let data = std::fs::read(out.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(
            data.len() as u64,
            want["size"].as_u64().unwrap(),
            "{rel} size"
        );
        assert_eq!(
            blake3::hash(&data).to_hex().as_str(),
            want["blake3"].as_str().unwrap(),
            "{rel} content"
        );
        k8s += rel.starts_with("k8s/") as usize;
        volumes += rel.starts_with("volumes/") as usize;
    }
    assert!(
        k8s >= 3 && volumes >= 3,
        "{k8s} objects, {volumes} volume files"
    );
    let restored = crate::support::files_under(&out).len();
    assert_eq!(
        restored,
        entries.len(),
        "nothing restored beyond the manifest"
    );

    let r = env.run_with(
        golden_command(&env, &fixtures),
        &["check", "--read-data", "--repo", repo, "--json"],
    );
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let check: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(check["snapshots"], manifest["snapshots"]);
    // An object-locked repository in a directory: nothing can be written.
    let copy = env.path("copy");
    assert!(std::process::Command::new("cp")
        .args(["-a", repo, copy.to_str().unwrap()])
        .status()
        .unwrap()
        .success());
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"new data").unwrap();
    let r = env.run_with(
        golden_command(&env, &fixtures),
        &[
            "backup",
            "--repo",
            copy.to_str().unwrap(),
            src.to_str().unwrap(),
        ],
    );
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(r.stderr.contains("read-only"), "{}", r.stderr);
}

/// A version-1 repository is read as it is and raised to version 2 by the
/// prune that writes its first deletion plan; it stays readable.
#[test]
fn a_version_1_repository_is_raised_to_2_by_its_first_plan() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden-v1-more");
    let env = Env::new();
    let copy = env.path("copy");
    assert!(std::process::Command::new("cp")
        .args([
            "-a",
            fixtures.join("repo").to_str().unwrap(),
            copy.to_str().unwrap()
        ])
        .status()
        .unwrap()
        .success());
    let repo = copy.to_str().unwrap();
    let version = || {
        ferry::format::config::peek_version(&std::fs::read(copy.join("config")).unwrap()).unwrap()
    };
    let run = |args: &[&str]| {
        let r = env.run_with(golden_command(&env, &fixtures), args);
        assert_eq!(r.code, 0, "{args:?}: {} {}", r.stdout, r.stderr);
        r.stdout
    };
    run(&["snapshots", "--repo", repo]);
    run(&["prune", "--repo", repo, "--dry-run"]);
    assert_eq!(version(), 1, "reading and a dry run leave version 1");
    run(&[
        "forget",
        "--repo",
        repo,
        "--keep-last",
        "1",
        "--group-by",
        "host",
    ]);
    run(&["prune", "--repo", repo, "--max-unused", "0%"]);
    assert_eq!(version(), 2, "the first plan raised the version");
    assert_eq!(std::fs::read_dir(copy.join("plans")).unwrap().count(), 1);
    let out = env.path("out");
    run(&[
        "restore",
        "latest",
        "--repo",
        repo,
        "--target",
        out.to_str().unwrap(),
    ]);
    run(&["check", "--read-data", "--repo", repo]);
}
