//! Restore exec hooks: `post.hook.restore.velero.io/...` (and `ferry.io/`)
//! annotations of restored pods run in their container once it runs.

use serde_json::{json, Value};

use super::support::kubelet::MOVER_IMAGE;
use super::volumes::{seed_pod, write, Cluster};

fn restore(c: &Cluster, ns: &str) -> (i32, Value, String) {
    let (code, out, err) = c.run(&[
        "restore",
        "latest",
        "--k8s",
        "--json",
        "--kubeconfig",
        c.kc(),
        "--include-namespaces",
        ns,
        "--namespace-mapping",
        &format!("{ns}:{ns}-dr"),
        "--mover-image",
        MOVER_IMAGE,
    ]);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (code, v, err)
}

fn hook<'a>(v: &'a Value, pod: &str) -> &'a Value {
    let hooks = v["hooks"].as_array().expect("hooks in the report");
    hooks
        .iter()
        .find(|h| h["pod"] == pod)
        .unwrap_or_else(|| panic!("no hook of {pod} in {hooks:?}"))
}

#[test]
fn restore_hooks_run_in_the_restored_pods_and_fail_the_restore_only_with_on_error_fail() {
    let c = Cluster::new();
    let data = c.pvc("shop", "data", "csi-fast", "Filesystem", "8Mi");
    let cache = c.pvc("shop", "cache", "csi-fast", "Filesystem", "8Mi");
    let logs = c.pvc("ops", "logs", "csi-fast", "Filesystem", "8Mi");
    write(&data, "table", b"rows");
    write(&cache, "c", b"c");
    write(&logs, "l", b"l");
    seed_pod(
        &c,
        "shop",
        "db-0",
        &["data"],
        json!({"post.hook.restore.velero.io/container": "sidecar",
            "post.hook.restore.velero.io/command": "[\"touch\", \"restored-marker\"]",
            "post.hook.restore.velero.io/on-error": "Fail",
            "post.hook.restore.ferry.io/exec-timeout": "10s",
            "post.hook.restore.velero.io/wait-timeout": "1m"}),
    );
    seed_pod(
        &c,
        "shop",
        "cache-0",
        &["cache"],
        json!({"post.hook.restore.velero.io/command": "[\"false\"]"}),
    );
    seed_pod(
        &c,
        "ops",
        "logs-0",
        &["logs"],
        json!({"post.hook.restore.ferry.io/command": "[\"sh\", \"-c\", \"exit 3\"]",
            "post.hook.restore.ferry.io/on-error": "Fail"}),
    );
    // A hook whose container never runs waits its wait-timeout, then fails.
    seed_pod(
        &c,
        "ops",
        "late-0",
        &[],
        json!({"post.hook.restore.velero.io/container": "not-there",
            "post.hook.restore.velero.io/command": "[\"true\"]",
            "post.hook.restore.velero.io/wait-timeout": "1s"}),
    );
    c.ok(&c.backup_args("shop,ops", &[]));
    assert!(
        !data.join("restored-marker").exists(),
        "no restore hook runs at backup"
    );

    // A failing hook whose on-error is Continue (the default) is recorded.
    let (code, v, err) = restore(&c, "shop");
    assert_eq!(code, 0, "{v}\n{err}");
    let marker = hook(&v, "shop-dr/db-0");
    assert_eq!(
        (
            marker["phase"].as_str(),
            marker["container"].as_str(),
            marker["exit_code"].as_i64()
        ),
        (Some("restore"), Some("sidecar"), Some(0)),
        "{marker}"
    );
    let restored = c.kubelet.volume("shop-dr", "data").unwrap();
    assert!(
        restored.join("restored-marker").exists(),
        "the hook did not run in the restored volume"
    );
    assert!(!data.join("restored-marker").exists());
    let cont = hook(&v, "shop-dr/cache-0");
    assert_eq!(
        (cont["on_error"].as_str(), cont["exit_code"].as_i64()),
        (Some("Continue"), Some(1)),
        "{cont}"
    );
    assert!(cont["error"].is_string(), "{cont}");
    let pod = c
        .fake
        .object("", "pods", Some("shop-dr"), "db-0")
        .expect("restored pod");
    assert_eq!(pod["status"]["phase"], "Running", "{pod}");

    // One with on-error Fail fails the restore.
    let (code, v, err) = restore(&c, "ops");
    assert_eq!(code, 1, "{v}\n{err}");
    let failed = hook(&v, "ops-dr/logs-0");
    assert_eq!(
        (failed["on_error"].as_str(), failed["exit_code"].as_i64()),
        (Some("Fail"), Some(3)),
        "{failed}"
    );
    assert!(
        v["volumes"].as_array().unwrap()[0]["action"] == "restored",
        "{v}"
    );
    let late = hook(&v, "ops-dr/late-0");
    let why = late["error"].as_str().unwrap_or_default();
    assert!(
        why.contains("not-there") && why.contains("not running within the wait-timeout of 1s"),
        "{late}"
    );
    assert!(late["exit_code"].is_null(), "{late}");
    assert!(c.leftovers().is_empty(), "left behind: {:?}", c.leftovers());
}
