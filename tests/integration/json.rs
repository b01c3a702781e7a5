//! Every command's `--json` document, as docs/json.md describes it: one
//! JSON value on stdout with the documented fields, for successes and for
//! failures.

use serde_json::Value;

use crate::support::{Env, Run};

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort();
    k
}

fn ok(r: &Run) -> Value {
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    r.json()
}

#[test]
fn every_repository_command_prints_its_documented_document() {
    let env = Env::new();
    let init = ok(&env.try_run(&[
        "init",
        "--json",
        "--kdf-memory",
        "8MiB",
        "--kdf-iterations",
        "1",
    ]));
    assert_eq!(keys(&init), ["config", "id", "repository"]);
    assert_eq!(init["config"]["id"], init["id"]);
    let src = env.mkdir("src");
    std::fs::write(src.join("a"), b"first").unwrap();
    let first = ok(&env.try_run(&["backup", src.to_str().unwrap(), "--json"]));
    assert_eq!(
        keys(&first),
        ["complete", "down", "fanout", "id", "region", "snapshot"]
    );
    assert_eq!(first["complete"], true);
    assert!(first["fanout"].is_null());
    std::fs::write(src.join("b"), b"second").unwrap();
    let second = ok(&env.try_run(&["backup", src.to_str().unwrap(), "--json"]));
    let (a, b) = (
        first["id"].as_str().unwrap(),
        second["id"].as_str().unwrap(),
    );

    let snaps = ok(&env.try_run(&["snapshots", "--json"]));
    let ids: Vec<&str> = snaps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [a, b]);
    assert_eq!(keys(&snaps[0]), ["id", "snapshot"]);

    let ls = ok(&env.try_run(&["ls", "latest", "--json"]));
    assert_eq!(keys(&ls), ["entries", "snapshot"]);
    assert_eq!(ls["snapshot"], b);
    let paths: Vec<&str> = ls["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    let src_str = src.to_str().unwrap();
    assert!(
        paths.contains(&format!("{src_str}/b").as_str()),
        "{paths:?}"
    );
    assert_eq!(keys(&ls["entries"][0]), ["node", "path"]);

    let diff = ok(&env.try_run(&["diff", a, b, "--json"]));
    assert_eq!(keys(&diff), ["changes", "from", "to"]);
    let changes = diff["changes"].as_array().unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c["path"] == format!("{src_str}/b") && c["change"] == "added"),
        "{changes:?}"
    );

    let out = env.path("out");
    let restore = ok(&env.try_run(&[
        "restore",
        "latest",
        "--target",
        out.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(
        keys(&restore),
        ["down", "failovers", "region", "report", "snapshot", "time"]
    );
    assert_eq!(restore["report"]["files"], 2);
    assert!(restore["report"]["failed"].as_array().unwrap().is_empty());

    let check = ok(&env.try_run(&["check", "--read-data", "--json"]));
    for k in [
        "errors",
        "warnings",
        "affected",
        "snapshots",
        "packs",
        "blobs_read",
        "bytes_read",
        "read_data",
    ] {
        assert!(check.get(k).is_some(), "check has {k}");
    }
    assert_eq!(
        (check["snapshots"].as_u64(), check["read_data"].as_bool()),
        (Some(2), Some(true))
    );

    let rebuilt = ok(&env.try_run(&["catalog", "rebuild", "--json"]));
    assert_eq!(keys(&rebuilt), ["blobs", "catalog", "snapshots"]);
    assert_eq!(rebuilt["snapshots"], 2);
}

#[test]
fn key_commands_print_documented_documents() {
    let env = Env::new();
    env.init_small();
    let pw = env.path("pw2");
    std::fs::write(&pw, "another password\n").unwrap();
    let added = ok(&env.try_run(&[
        "key",
        "add",
        "--new-password-file",
        pw.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(keys(&added), ["added"]);
    let list = ok(&env.try_run(&["key", "list", "--json"]));
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(
        keys(&list[0]),
        ["created", "current", "host", "id", "username"]
    );
    assert_eq!(list.iter().filter(|k| k["current"] == true).count(), 1);
    let id = added["added"].as_str().unwrap();
    let removed = ok(&env.try_run(&["key", "remove", &id[..12], "--json"]));
    assert_eq!(removed["removed"], id);
    let r = env.try_run(&["key", "remove", "ffffffffffff", "--json"]);
    assert_eq!(r.code, 1);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("no key with id"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_failing_command_prints_one_error_document() {
    let env = Env::new();
    let r = env.try_run(&["snapshots", "--json"]);
    assert_eq!(r.code, 10, "{}", r.stderr);
    let v = r.json();
    assert_eq!(keys(&v), ["error"]);
    assert!(v["error"].as_str().unwrap().contains("no repository at"));
}
