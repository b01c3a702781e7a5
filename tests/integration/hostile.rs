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
