//! Repositories that lost objects or were written by a hostile writer:
//! `check` finds every problem with a non-zero exit, and opening the
//! repository is not stopped by key objects nobody needed a password for.

use crate::support::{text, Env};

fn objects(env: &Env, prefix: &str) -> Vec<std::path::PathBuf> {
    crate::support::files_under(&env.repo.join(prefix))
}

#[test]
fn check_fails_when_a_lost_index_leaves_files_unrestorable() {
    let env = Env::new();
    env.init_small();
    let src = env.mkdir("src");
    std::fs::write(src.join("a.txt"), text(200_000, 1)).unwrap();
    env.backup(&[&src], &[]);
    for index in objects(&env, "index") {
        std::fs::remove_file(index).unwrap();
    }
    // The catalog must not hide the loss.
    env.run(&["catalog", "rebuild"]);
    let r = env.try_run(&["check", "--json"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let affected = r.json()["affected"].as_array().unwrap().clone();
    // The trees went with the index too: the snapshot's root is named.
    assert!(
        affected.iter().any(|a| a["path"] == "/"),
        "check names what cannot be restored: {affected:?}"
    );
}

#[test]
fn key_objects_with_hostile_parameters_do_not_stop_opening() {
    let env = Env::new();
    env.init_small();
    let good = objects(&env, "keys").pop().unwrap();
    let mut key: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&good).unwrap()).unwrap();
    // 4 TiB of memory and 2^32-1 passes, under a correct name.
    key["params"]["memory_kib"] = serde_json::json!(u32::MAX);
    key["params"]["iterations"] = serde_json::json!(u32::MAX);
    let bytes = serde_json::to_vec(&key).unwrap();
    let name = blake3::hash(&bytes).to_hex().to_string();
    std::fs::write(env.repo.join("keys").join(&name), &bytes).unwrap();
    // A key object whose name is not its hash.
    let fake = "0".repeat(64);
    std::fs::write(
        env.repo.join("keys").join(&fake),
        std::fs::read(&good).unwrap(),
    )
    .unwrap();
    let r = env.run(&["snapshots", "--json"]);
    assert!(
        r.stderr.contains(&name),
        "the refused key is named: {}",
        r.stderr
    );
    // Alone, the hostile key gives one clear error naming it, and no abort.
    std::fs::remove_file(&good).unwrap();
    std::fs::remove_file(env.repo.join("keys").join(&fake)).unwrap();
    let r = env.try_run(&["snapshots"]);
    assert_ne!(r.code, 0);
    assert!(r.code > 0 && r.code < 128, "exit, not a signal: {}", r.code);
    assert!(
        r.stderr.contains(&name) && r.stderr.contains("memory"),
        "{}",
        r.stderr
    );
}

/// Runs ferry under a limit on its address space, as a hostile repository
/// must not make it allocate without bound.
pub fn run_limited(env: &Env, limit_bytes: u64, args: &[&str]) -> crate::support::Run {
    use std::os::unix::process::CommandExt;
    let repo = env.repo.to_str().unwrap().to_string();
    let mut all = vec![args[0], "--repo", &repo];
    all.extend_from_slice(&args[1..]);
    let mut c = env.command();
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit_bytes,
                rlim_max: limit_bytes,
            };
            match libc::setrlimit(libc::RLIMIT_AS, &lim) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    env.run_with(c, &all)
}

/// Address space allowed to ferry in these tests: far below what the
/// reported failures allocated (1.9 to 4.9 GB).
pub const LIMIT: u64 = 1 << 30;

/// `restore latest --json --target OUT` under [`LIMIT`].
pub fn restore_limited(env: &Env, out: &std::path::Path) -> crate::support::Run {
    run_limited(
        env,
        LIMIT,
        &[
            "restore",
            "latest",
            "--json",
            "--target",
            out.to_str().unwrap(),
        ],
    )
}

fn problems(r: &crate::support::Run) -> Vec<(String, String)> {
    let j = r.json();
    j["affected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let p = a["path"].as_str().unwrap().to_string();
            (p, a["problem"].as_str().unwrap().to_string())
        })
        .collect()
}

fn failed(r: &crate::support::Run) -> Vec<(String, String)> {
    let j = r.json();
    j["report"]["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let p = a["path"].as_str().unwrap().to_string();
            (p, a["error"].as_str().unwrap().to_string())
        })
        .collect()
}

/// Files whose content breaks a rule of docs/format.md: check names each
/// with its snapshot and path and fails; restore refuses exactly them and
/// writes the good file.
#[test]
fn check_and_restore_refuse_files_that_break_the_rules() {
    use crate::forge::{dir, file, summary, Forge};
    let env = Env::new();
    env.init_small();
    let mut f = Forge::open(&env);
    let five = f.data(b"hello");
    // An empty tree as content, and a tree's JSON stored as a data blob.
    let tree_json = br#"{"nodes":[]}"#;
    let as_tree = f.tree(Vec::new());
    let listing = ferry::format::tree::Tree {
        nodes: vec![file("x", 0, Vec::new())],
    }
    .encode();
    let as_data = f.data(&listing);
    let sparse = |name: &str, extents: Vec<(u64, u64)>| {
        let mut n = file(name, 100, vec![five]);
        n.extents = Some(extents);
        n
    };
    let nodes = vec![
        file("good", 5, vec![five]),
        file("size-differs", 10, vec![five]),
        file("content-is-a-tree", tree_json.len() as u64, vec![as_tree]),
        sparse("extent-past-size", vec![(98, 5)]),
        sparse("extents-overlap", vec![(0, 3), (2, 2)]),
        sparse("extent-wraps", vec![(u64::MAX - 1, 5)]),
        dir("subtree-is-data", as_data),
    ];
    let root = f.tree(nodes);
    let sid = f.snapshot(root, summary(6, 1, 7));
    let r = run_limited(&env, LIMIT, &["check", "--json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let found = problems(&r);
    let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/content-is-a-tree",
            "/extent-past-size",
            "/extent-wraps",
            "/extents-overlap",
            "/size-differs",
            "/subtree-is-data"
        ],
        "{found:?}"
    );
    let why = |p: &str| &found.iter().find(|(x, _)| x == p).unwrap().1;
    assert!(
        why("/size-differs").contains("records 10 bytes"),
        "{found:?}"
    );
    assert!(why("/content-is-a-tree").contains("tree blob"), "{found:?}");
    assert!(why("/extent-past-size").contains("past the file's size"));
    assert!(why("/extents-overlap").contains("overlaps"));
    assert!(why("/extent-wraps").contains("wraps"));
    assert!(why("/subtree-is-data").contains("data blob"));
    assert!(r.json()["affected"][0]["snapshot"] == sid.to_hex().as_str());
    let out = env.path("out");
    let r = restore_limited(&env, &out);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let refused: Vec<String> = failed(&r).into_iter().map(|(p, _)| p).collect();
    let mut expected: Vec<&str> = paths.clone();
    expected.sort();
    let mut refused_sorted = refused.clone();
    refused_sorted.sort();
    assert_eq!(refused_sorted, expected, "{}", r.stdout);
    assert_eq!(std::fs::read(out.join("good")).unwrap(), b"hello");
    for p in &paths {
        let written = out.join(&p[1..]);
        let dir_empty = written.is_dir() && std::fs::read_dir(&written).unwrap().next().is_none();
        assert!(
            !written.is_file() && (dir_empty || !written.exists()),
            "{p} not written"
        );
    }
}

/// Two entries claiming one hard-linked inode with different contents:
/// an error for check; restore warns and gives each its own content.
#[test]
fn hard_links_with_different_content_fail_check_and_restore_apart() {
    use crate::forge::{file, summary, Forge};
    let env = Env::new();
    env.init_small();
    let mut f = Forge::open(&env);
    let (a, b) = (f.data(b"first"), f.data(b"other!"));
    let mut one = file("a", 5, vec![a]);
    let mut two = file("b", 6, vec![b]);
    for n in [&mut one, &mut two] {
        (n.links, n.inode, n.device) = (2, 77, 5);
    }
    let root = f.tree(vec![one, two]);
    f.snapshot(root, summary(2, 1, 2));
    let r = run_limited(&env, LIMIT, &["check", "--json"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let found = problems(&r);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "/b");
    assert!(
        found[0].1.contains("hard link") && found[0].1.contains("/a"),
        "{found:?}"
    );
    let out = env.path("out");
    let r = restore_limited(&env, &out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let warnings = r.json()["report"]["warnings"].clone();
    assert!(warnings.to_string().contains("hard link"), "{warnings}");
    assert_eq!(std::fs::read(out.join("a")).unwrap(), b"first");
    assert_eq!(std::fs::read(out.join("b")).unwrap(), b"other!");
}

/// A key object under a name that is not its hash: opening skips it with a
/// warning, check reports it.
#[test]
fn check_reports_a_key_object_whose_name_is_not_its_hash() {
    let env = Env::new();
    env.init_small();
    let good = objects(&env, "keys").pop().unwrap();
    let fake = "1".repeat(64);
    std::fs::copy(&good, env.repo.join("keys").join(&fake)).unwrap();
    let r = env.run(&["snapshots", "--json"]);
    assert!(r.stderr.contains(&fake), "a warning names it: {}", r.stderr);
    let r = env.try_run(&["check", "--json"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let errors = r.json()["errors"].as_array().unwrap().clone();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["object"], format!("keys/{fake}"));
    assert!(errors[0]["error"]
        .as_str()
        .unwrap()
        .contains("does not match its name"));
}

/// An index entry inside the size the index records for its pack but past
/// the pack's blobs (over its header): check without --read-data finds it
/// from the listed size, and names the file; restore refuses the file.
#[test]
fn check_without_read_data_rejects_index_entries_past_the_blobs() {
    use crate::forge::{file, summary, Forge};
    let env = Env::new();
    env.init_small();
    let mut f = Forge::open(&env);
    let blob = f.data(b"some data of a file");
    f.flush_pack(|entries| entries[0].length += 40);
    let root = f.tree(vec![file("f", 19, vec![blob])]);
    f.snapshot(root, summary(1, 1, 1));
    let r = env.try_run(&["check", "--json"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let j = r.json();
    let errors = j["errors"].as_array().unwrap();
    assert!(
        errors.iter().any(|e| e["object"]
            .as_str()
            .unwrap()
            .ends_with(&format!("blob {blob}"))
            && e["error"].as_str().unwrap().contains("past the end")),
        "{errors:?}"
    );
    assert_eq!(
        problems(&r)
            .iter()
            .map(|p| p.0.as_str())
            .collect::<Vec<_>>(),
        ["/f"]
    );
    let out = env.path("out");
    let r = env.try_run(&[
        "restore",
        "latest",
        "--json",
        "--target",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(!out.join("f").exists());
}
