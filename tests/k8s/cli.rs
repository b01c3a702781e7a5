//! The Kubernetes commands end to end from the CLI: `backup --k8s` into a
//! repository, browse with `ls`/`diff`, `restore --k8s` (dry run, then for
//! real, with namespace mapping) into another fake cluster.

use std::process::Command;

use super::support::fake_k8s::FakeK8s;
use super::*;

struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Self {
        let r = Repo {
            dir: tempfile::tempdir().unwrap(),
        };
        r.ok(&["init", "--kdf-memory", "8MiB", "--kdf-iterations", "1"]);
        r
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let repo = self.dir.path().join("repo");
        let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .arg(args[0])
            .arg("--repo")
            .arg(&repo)
            .args(&args[1..])
            .env("FERRY_PASSWORD", "k8s-test")
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"))
            .env("FERRY_HOST", "cluster-a")
            .output()
            .unwrap();
        let s = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        (
            out.status.code().unwrap_or(-1),
            s(out.stdout),
            s(out.stderr),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "ferry {args:?}:\n{out}\n{err}");
        out
    }
}

#[test]
fn backup_ls_diff_and_restore_from_the_cli() {
    let repo = Repo::new();
    let source = source_cluster();
    let kc = source.kubeconfig(repo.dir.path());
    let kc = kc.to_str().unwrap();
    let out = repo.ok(&[
        "backup",
        "--k8s",
        "--kubeconfig",
        kc,
        "--json",
        "--tag",
        "cluster",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["snapshot"]["paths"], json!(["/k8s"]));
    assert!(
        v["snapshot"]["extra"]["k8s"]["cluster"]["server"]
            .as_str()
            .is_some(),
        "{}",
        v["snapshot"]["extra"]
    );
    let first = v["id"].as_str().unwrap().to_string();

    let ls = repo.ok(&["ls", "latest", "k8s/"]);
    assert!(
        ls.lines()
            .any(|l| l.starts_with("/k8s/apps/deployments/demo/")),
        "{ls}"
    );
    assert!(ls.lines().any(|l| l == "/k8s/core/configmaps/demo"), "{ls}");

    // Change one object in the cluster; the next snapshot differs by it only.
    let mut cm = source
        .object("", "configmaps", Some("demo"), "app-config")
        .expect("fixture configmap");
    cm["data"]["changed"] = json!("yes");
    {
        let mut st = source.state();
        let served = st.catalog.find("", "v1", "configmaps").unwrap();
        st.replace(&served, Some("demo"), "app-config", cm, false)
            .unwrap();
    }
    let out = repo.ok(&["backup", "--k8s", "--kubeconfig", kc, "--json"]);
    let second: Value = serde_json::from_str(&out).unwrap();
    let second = second["id"].as_str().unwrap().to_string();
    let diff = repo.ok(&["diff", &first, &second, "k8s/"]);
    let changed: Vec<&str> = diff.lines().filter(|l| l.starts_with("M ")).collect();
    assert_eq!(
        changed,
        vec!["M /k8s/core/configmaps/demo/app-config.json"],
        "{diff}"
    );

    // Restore into an empty cluster: a dry run writes nothing, then the
    // real restore creates everything, mapped to another namespace.
    let target = FakeK8s::start();
    let tdir = tempfile::tempdir().unwrap();
    let tkc = target.kubeconfig(tdir.path());
    let tkc = tkc.to_str().unwrap();
    let plan = repo.ok(&[
        "restore",
        "latest",
        "--k8s",
        "--kubeconfig",
        tkc,
        "--dry-run",
        "--namespace-mapping",
        "demo:demo-copy",
    ]);
    assert!(plan.contains("demo-copy"), "{plan}");
    assert!(
        target
            .object("", "configmaps", Some("demo-copy"), "app-config")
            .is_none(),
        "dry run wrote nothing"
    );
    let out = repo.ok(&[
        "restore",
        "latest",
        "--k8s",
        "--kubeconfig",
        tkc,
        "--namespace-mapping",
        "demo:demo-copy",
        "--json",
    ]);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert!(report["k8s"]["objects"].as_array().unwrap().len() > 10);
    let cm = target
        .object("", "configmaps", Some("demo-copy"), "app-config")
        .expect("restored under the new namespace");
    assert_eq!(
        cm["data"]["changed"], "yes",
        "the latest snapshot was restored"
    );

    // Point in time: the first snapshot, by id, restores the old object.
    let target2 = FakeK8s::start();
    let t2 = target2.kubeconfig(tdir.path());
    repo.ok(&[
        "restore",
        &first,
        "--k8s",
        "--kubeconfig",
        t2.to_str().unwrap(),
    ]);
    let cm = target2
        .object("", "configmaps", Some("demo"), "app-config")
        .unwrap();
    assert!(cm["data"].get("changed").is_none());

    // A snapshot without objects, and an unreachable cluster: clear errors.
    let dir = repo.dir.path().join("vol");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("f"), b"x").unwrap();
    repo.ok(&["backup", dir.to_str().unwrap()]);
    let (code, _, err) = repo.run(&["restore", "latest", "--k8s", "--kubeconfig", tkc]);
    assert!(code != 0 && err.contains("no Kubernetes objects"), "{err}");
    drop(source);
}
