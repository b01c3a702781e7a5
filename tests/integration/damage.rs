//! Damaged repositories: `check` names each damaged object and the files it
//! affects; `restore` restores every other file and exits non-zero; never a
//! panic.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::support::{bytes, Env};

/// A repository with one snapshot of many files spread over several packs.
fn setup() -> (Env, PathBuf) {
    let env = Env::new();
    env.init_small();
    let src = env.path("src");
    for i in 0..40 {
        let p = src.join(format!("d{}/f{i:02}", i % 4));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes(60_000 + i * 1000, i as u64)).unwrap();
    }
    env.backup(&[&src], &[]);
    (env, src)
}

fn objects(env: &Env, prefix: &str) -> Vec<PathBuf> {
    crate::support::files_under(&env.repo.join(prefix))
}

/// The largest pack: a data pack (trees are small).
fn data_pack(env: &Env) -> PathBuf {
    objects(env, "data")
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap()
}

fn affected(check: &crate::support::Run) -> BTreeSet<String> {
    check.json()["affected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap().to_string())
        .collect()
}

/// Restores, expecting failures exactly for `expected`; every other file is
/// restored intact.
fn restore_all_but(env: &Env, src: &std::path::Path, expected: &BTreeSet<String>) {
    let out = env.path("out");
    let r = env.try_run(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_eq!(
        r.code, 1,
        "restore of a damaged snapshot exits non-zero: {}",
        r.stderr
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    let failed: BTreeSet<String> = r
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("not restored: "))
        .map(|l| l.split(": ").next().unwrap().to_string())
        .collect();
    assert_eq!(
        &failed, expected,
        "restore reports exactly the files check named"
    );
    let restored = Env::restored(&out, src);
    let mut missing = BTreeSet::new();
    for e in walk_files(src) {
        let rel = e.strip_prefix(src).unwrap();
        let snap_path = format!("{}", e.display());
        match std::fs::read(restored.join(rel)) {
            Ok(data) => assert_eq!(
                data,
                std::fs::read(&e).unwrap(),
                "restored {} intact",
                rel.display()
            ),
            Err(_) => {
                missing.insert(snap_path);
            }
        }
    }
    assert_eq!(&missing, expected, "exactly the affected files are missing");
}

fn walk_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn corrupted_pack_is_found_by_read_data_and_restore_saves_the_rest() {
    let (env, src) = setup();
    let pack = data_pack(&env);
    let mut data = std::fs::read(&pack).unwrap();
    data[100] ^= 0x55;
    std::fs::write(&pack, data).unwrap();
    env.run(&["check"]);
    let r = env.try_run(&["check", "--read-data", "--json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let name = pack.file_name().unwrap().to_str().unwrap();
    assert!(
        r.stdout.contains(name),
        "check names the damaged pack: {}",
        r.stdout
    );
    let hit = affected(&r);
    assert!(!hit.is_empty(), "check names the affected files");
    restore_all_but(&env, &src, &hit);
}

#[test]
fn missing_pack_is_named_with_its_files() {
    let (env, src) = setup();
    let pack = data_pack(&env);
    std::fs::remove_file(&pack).unwrap();
    let r = env.try_run(&["check", "--json"]);
    assert_eq!(r.code, 1);
    let report = r.json();
    let name = pack.file_name().unwrap().to_str().unwrap();
    assert!(
        report["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["object"].as_str().unwrap().contains(name) && e["error"] == "missing"),
        "{report}"
    );
    let hit = affected(&r);
    assert!(!hit.is_empty());
    restore_all_but(&env, &src, &hit);
}

#[test]
fn truncated_pack_and_damaged_metadata_objects_are_named() {
    let (env, _src) = setup();
    let pack = data_pack(&env);
    let data = std::fs::read(&pack).unwrap();
    std::fs::write(&pack, &data[..data.len() / 2]).unwrap();
    let r = env.try_run(&["check"]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("differs from the"), "{}", r.stdout);

    let (env, _src) = setup();
    let snap = objects(&env, "snapshots").pop().unwrap();
    std::fs::write(&snap, b"garbage").unwrap();
    let index = objects(&env, "index").pop().unwrap();
    let mut d = std::fs::read(&index).unwrap();
    let n = d.len();
    d[n - 3] ^= 1;
    std::fs::write(&index, d).unwrap();
    std::fs::remove_dir_all(env.path("cache")).unwrap();
    let r = env.try_run(&["check"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    for obj in [&snap, &index] {
        let name = obj.file_name().unwrap().to_str().unwrap();
        assert!(r.stdout.contains(name), "check names {name}: {}", r.stdout);
    }
}

#[test]
fn damaged_tree_makes_its_directory_unrestorable_but_not_the_rest() {
    let (env, src) = setup();
    // The smallest pack holds trees.
    let pack = objects(&env, "data")
        .into_iter()
        .min_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut data = std::fs::read(&pack).unwrap();
    data[30] ^= 0xff;
    std::fs::write(&pack, data).unwrap();
    std::fs::remove_dir_all(env.path("cache")).unwrap();
    let r = env.try_run(&["check", "--read-data"]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("affected"), "{}", r.stdout);
    let out = env.path("out");
    let r = env.try_run(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_ne!(r.code, 0);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    let _ = src;
}

#[test]
fn read_data_rereads_index_objects_the_catalog_already_knows() {
    // Damage done after the catalog read an index object is invisible to
    // the catalog; `check --read-data` reads every index object again.
    let (env, _src) = setup();
    let index = objects(&env, "index").pop().unwrap();
    let mut d = std::fs::read(&index).unwrap();
    let n = d.len();
    d[n - 3] ^= 1;
    std::fs::write(&index, d).unwrap();
    let r = env.try_run(&["check", "--read-data", "--json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let name = index.file_name().unwrap().to_str().unwrap();
    let errors = r.json()["errors"].as_array().unwrap().clone();
    assert!(
        errors
            .iter()
            .any(|e| e["object"].as_str().unwrap().ends_with(name)),
        "check --read-data names the damaged index object {name}: {errors:?}"
    );
}
