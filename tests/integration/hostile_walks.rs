//! Tree graphs no backup makes, under a memory limit: trees nested far
//! deeper than any path can be, and a small graph of trees naming the same
//! subtree twice at every level (2^48 paths). Every walk ends with a clear
//! outcome and exit code, no abort, nothing written outside the target.

use crate::forge::{dir, file, summary, Forge};
use crate::hostile::{restore_limited, run_limited, LIMIT};
use crate::support::Env;

/// A chain of `depth` directories named `d`, a file at the bottom.
fn nested(depth: usize) -> (Env, usize) {
    let env = Env::new();
    env.init_small();
    let mut f = Forge::open(&env);
    let blob = f.data(b"bottom");
    let mut t = f.tree(vec![file("f", 6, vec![blob])]);
    for _ in 0..depth {
        t = f.tree(vec![dir("d", t)]);
    }
    f.snapshot(t, summary(1, depth as u64, depth as u64 + 1));
    (env, depth)
}

/// The entries of the environment's directory, apart from `out` and the
/// caches: what a restore must not add to.
fn outside(env: &Env) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "out")
        .collect();
    v.sort();
    v
}

/// The first snapshot path of the chain longer than a path can be.
fn first_too_long() -> String {
    let mut p = String::new();
    while p.len() <= ferry::engine::walk::MAX_PATH {
        p.push_str("/d");
    }
    p
}

fn deep(depth: usize) {
    let (env, _) = nested(depth);
    let r = run_limited(&env, LIMIT, &["check", "--json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let affected = r.json()["affected"].as_array().unwrap().clone();
    assert_eq!(affected.len(), 1, "{affected:?}");
    assert_eq!(affected[0]["path"], first_too_long().as_str());
    assert!(affected[0]["problem"]
        .as_str()
        .unwrap()
        .contains("longer than the 4096 bytes"));
    assert!(r.json()["errors"].as_array().unwrap().is_empty());
    let before = outside(&env);
    let out = env.path("out");
    let r = restore_limited(&env, &out);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let failed = r.json()["report"]["failed"].as_array().unwrap().clone();
    assert!(
        failed.iter().any(|f| f["path"] == first_too_long().as_str()
            && f["error"]
                .as_str()
                .unwrap()
                .contains("longer than the 4096 bytes")),
        "{failed:?}"
    );
    // The directories a path can reach are restored; the rest are named.
    assert!(out.join("d/d/d/d").is_dir());
    assert_eq!(outside(&env), before, "nothing written outside the target");
    let r = run_limited(&env, LIMIT, &["ls", "latest", "--json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("longer than the 4096 bytes"),
        "{}",
        r.stderr
    );
}

#[test]
fn trees_nested_15_000_deep_end_with_a_clear_outcome() {
    deep(15_000);
}

#[test]
fn trees_nested_100_000_deep_end_with_a_clear_outcome() {
    deep(100_000);
}

/// 49 trees, each naming the next twice: 2^48 paths from 49 small objects.
#[test]
fn a_dag_of_trees_stops_at_the_entries_the_summary_records() {
    let env = Env::new();
    env.init_small();
    let mut f = Forge::open(&env);
    let blob = f.data(b"leaf");
    let mut t = f.tree(vec![file("f", 4, vec![blob])]);
    for _ in 0..48 {
        t = f.tree(vec![dir("a", t), dir("b", t)]);
    }
    // What the forger claims: one entry per tree object and the file.
    f.snapshot(t, summary(1, 48, 97));
    let r = run_limited(&env, LIMIT, &["check", "--json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let affected = r.json()["affected"].as_array().unwrap().clone();
    assert_eq!(affected.len(), 1, "{affected:?}");
    assert_eq!(affected[0]["path"], "/");
    assert!(affected[0]["problem"]
        .as_str()
        .unwrap()
        .contains("more than the 97 entries"));
    let before = outside(&env);
    let out = env.path("out");
    for args in [
        vec![
            "restore",
            "latest",
            "--json",
            "--target",
            out.to_str().unwrap(),
        ],
        vec!["ls", "latest", "--json"],
    ] {
        let r = run_limited(&env, LIMIT, &args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert!(
            r.stdout.contains("more than the 97 entries")
                || r.stderr.contains("more than the 97 entries"),
            "{args:?}: {} {}",
            r.stdout,
            r.stderr
        );
    }
    assert_eq!(outside(&env), before, "nothing written outside the target");
    assert!(!out.exists() || std::fs::read_dir(&out).unwrap().next().is_none());
}
