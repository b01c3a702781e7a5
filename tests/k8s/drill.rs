//! `drill --k8s`: a snapshot's objects and volumes restored into a sandbox
//! namespace of the fake API server (the fake kubelet runs the restore
//! Jobs, then the verify Jobs that read the volume back), every object read back and compared
//! with what was sent, the sandbox deleted; a mapping onto a namespace that
//! is not a sandbox, or a sandbox still holding objects, refused; and an
//! object changed by a mutating admission, or a volume changed between its
//! restore and verify Jobs, failing the drill (exit 20).

use serde_json::{json, Value};

use super::support::kubelet::{MOVER_IMAGE, NODE};
use super::volumes::{noise, seed_app, write, Cluster};

const CONFIG: &str = "shop-settings";

/// A cluster with namespace shop: a Deployment and its pod on a volume
/// with data, a ConfigMap and a Service; backed up with its volume.
fn backed_up() -> (Cluster, u64) {
    let c = Cluster::new();
    c.fake.seed(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "shop", "labels": {"team": "web"}}}));
    let data = c.pvc("shop", "data-pg-0", "csi-fast", "Filesystem", "64Mi");
    write(&data, "base/16384/1259", &noise(900_000, 3));
    write(&data, "PG_VERSION", b"17\n");
    seed_app(&c, "shop", &["data-pg-0"], NODE);
    c.fake.seed(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": CONFIG, "namespace": "shop", "labels": {"app": "db"}},
        "data": {"mode": "primary", "max_connections": "100"}}));
    c.fake.seed(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "db", "namespace": "shop"},
        "spec": {"selector": {"app": "db"}, "ports": [{"port": 5432, "targetPort": 5432}]}}));
    let out: Value = serde_json::from_str(&c.ok(&c.backup_args("shop", &[]))).unwrap();
    assert_eq!(out["complete"], true, "{out}");
    (c, 900_000 + 3)
}

fn drill_args<'a>(c: &'a Cluster, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "drill",
        "--k8s",
        "--json",
        "--kubeconfig",
        c.kc(),
        "--namespace-mapping",
        "shop:drill-shop",
        "--mover-image",
        MOVER_IMAGE,
    ];
    a.extend_from_slice(extra);
    a
}

/// Objects of namespace `ns` in the fake cluster.
fn objects_in(c: &Cluster, ns: &str) -> Vec<String> {
    c.fake
        .state()
        .objects
        .keys()
        .filter(|k| k.2 == ns)
        .map(|k| format!("{}/{}/{}", k.0, k.1, k.3))
        .collect()
}

#[test]
fn a_drill_restores_verifies_and_removes_the_sandbox_namespace() {
    let (c, bytes) = backed_up();
    let (code, out, err) = c.run(&drill_args(&c, &[]));
    assert_eq!(code, 0, "{out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let r = &v["regions"][0];
    assert_eq!(
        (r["verified"].as_bool(), r["success"].as_bool()),
        (Some(true), Some(true)),
        "{r:#}"
    );
    assert!(r["record"].is_string(), "{r:#}");
    let k = &r["k8s"];
    assert_eq!(k["namespaces"][0]["namespace"], "drill-shop", "{k:#}");
    assert_eq!(k["namespaces"][0]["removed"], true, "{k:#}");
    // The Deployment, the pod, the ConfigMap and the Service at least.
    assert!(k["objects_verified"].as_u64().unwrap() >= 4, "{k:#}");
    assert_eq!(k["objects_verified"], k["objects_restored"], "{k:#}");
    let vol = &k["volumes"][0];
    assert_eq!(
        (vol["pvc"].as_str(), vol["action"].as_str()),
        (Some("data-pg-0"), Some("restored")),
        "{vol:#}"
    );
    assert_eq!(vol["target_namespace"], "drill-shop");
    assert_eq!(vol["verification"]["content_files"], 2, "{vol:#}");
    assert_eq!(vol["verification"]["verified_bytes"], bytes, "{vol:#}");
    assert_eq!(r["verification"]["verified_bytes"], bytes, "{r:#}");
    assert_eq!(r["bytes"], bytes, "{r:#}");
    assert!(r["rto_seconds"].as_f64().unwrap() > 0.0, "{r:#}");
    assert!(
        objects_in(&c, "drill-shop").is_empty(),
        "left in the sandbox: {:?}",
        objects_in(&c, "drill-shop")
    );
    assert!(c
        .fake
        .object("", "namespaces", None, "drill-shop")
        .is_none());
    assert!(c.leftovers().is_empty(), "left behind: {:?}", c.leftovers());
}

#[test]
fn a_kept_sandbox_holds_the_restore_and_blocks_the_next_drill() {
    let (c, _) = backed_up();
    let (code, out, err) = c.run(&drill_args(&c, &["--keep"]));
    assert_eq!(code, 0, "{out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["regions"][0]["k8s"]["namespaces"][0]["removed"], false);
    let ns = c
        .fake
        .object("", "namespaces", None, "drill-shop")
        .expect("the sandbox namespace is kept");
    assert!(
        ns["metadata"]["labels"]["ferry.io/drill"].is_string(),
        "{ns}"
    );
    assert_eq!(ns["metadata"]["labels"]["team"], "web", "{ns}");
    let cm = c
        .fake
        .object("", "configmaps", Some("drill-shop"), CONFIG)
        .expect("the ConfigMap is in the sandbox");
    assert_eq!(cm["data"]["mode"], "primary");
    assert!(c
        .fake
        .object("apps", "deployments", Some("drill-shop"), "db")
        .is_some());
    let restored = c.kubelet.volume("drill-shop", "data-pg-0").unwrap();
    assert_eq!(std::fs::read(restored.join("PG_VERSION")).unwrap(), b"17\n");

    // The kept sandbox is not empty: the next drill is refused, nothing
    // restored, and the message says what to do.
    let (code, out, err) = c.run(&drill_args(&c, &[]));
    assert_eq!(code, 1, "{out}\n{err}");
    let e: Value = serde_json::from_str(&out).unwrap();
    let msg = e["error"].as_str().unwrap();
    assert!(
        msg.contains("drill-shop")
            && msg.contains("still holds")
            && msg.contains("kubectl delete namespace drill-shop"),
        "{msg}"
    );
}

#[test]
fn a_mapping_onto_a_namespace_that_is_not_a_sandbox_is_refused() {
    let (c, _) = backed_up();
    c.fake.seed(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "prod"}}));
    let before = objects_in(&c, "prod");
    let mut args = drill_args(&c, &[]);
    let at = args.iter().position(|a| *a == "shop:drill-shop").unwrap();
    args[at] = "shop:prod";
    let (code, out, err) = c.run(&args);
    assert_eq!(code, 1, "{out}\n{err}");
    let e: Value = serde_json::from_str(&out).unwrap();
    let msg = e["error"].as_str().unwrap();
    assert!(
        msg.contains("namespace prod exists and is not a drill sandbox"),
        "{msg}"
    );
    assert_eq!(objects_in(&c, "prod"), before, "a refused drill wrote");
    // And a drill without a mapping is refused by the flags.
    let (code, _, err) = c.run(&["drill", "--k8s", "--kubeconfig", c.kc()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--namespace-mapping"), "{err}");
}

#[test]
fn an_object_changed_by_admission_fails_the_drill() {
    let (c, _) = backed_up();
    c.fake.faults(|f| {
        f.mutate.push((
            "configmaps".into(),
            CONFIG.into(),
            "/data/mode".into(),
            json!("replica"),
        ))
    });
    let metrics = c.dir.path().join("drill.prom");
    let m = metrics.to_str().unwrap();
    let (code, out, err) = c.run(&drill_args(&c, &["--metrics-file", m]));
    assert_eq!(code, 20, "{out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let r = &v["regions"][0];
    assert_eq!(
        (r["verified"].as_bool(), r["success"].as_bool()),
        (Some(false), Some(false)),
        "{r:#}"
    );
    let mismatches = r["verification"]["mismatches"].as_array().unwrap();
    assert_eq!(mismatches.len(), 1, "{mismatches:?}");
    assert_eq!(
        mismatches[0]["path"],
        format!("/k8s/core/configmaps/shop/{CONFIG}.json")
    );
    let why = mismatches[0]["error"].as_str().unwrap();
    assert!(
        why.contains("data.mode") && why.contains("\"primary\"") && why.contains("\"replica\""),
        "{why}"
    );
    assert!(err.contains(CONFIG) && err.contains("data.mode"), "{err}");
    // The volume still verified, and the sandbox is gone all the same.
    assert_eq!(r["k8s"]["volumes"][0]["action"], "restored", "{r:#}");
    assert!(objects_in(&c, "drill-shop").is_empty());
    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert!(prom.contains("ferry_drill_success{"), "{prom}");
    assert!(
        prom.lines()
            .any(|l| l.starts_with("ferry_drill_verified{") && l.ends_with(" 0")),
        "{prom}"
    );
}

/// A volume whose data changes between its restore Job and its verify Job
/// (as storage that loses a write would do) fails the drill, and the
/// report names the file. The verify Job mounts the volume read-only.
#[test]
fn a_volume_changed_after_its_restore_fails_the_drill() {
    let (c, _) = backed_up();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, bool)>::new()));
    let log = seen.clone();
    c.kubelet.before_start(move |argv, mounts| {
        let Some(at) = argv.iter().position(|a| a == "mover") else {
            return;
        };
        let verb = argv[at + 1].clone();
        let volume = mounts.iter().find(|m| m.1 == "/ferry/volume");
        if let (Some((host, _, _)), "verify") = (volume, verb.as_str()) {
            // One byte of the table file flipped, the size kept.
            let f = host.join("base/16384/1259");
            let mut data = std::fs::read(&f).unwrap();
            data[4096] ^= 0x20;
            std::fs::write(&f, data).unwrap();
        }
        let read_only = volume.is_some_and(|m| m.2);
        log.lock().unwrap().push((verb, read_only));
    });
    let (code, out, err) = c.run(&drill_args(&c, &[]));
    assert_eq!(code, 20, "{out}\n{err}");
    let jobs = seen.lock().unwrap().clone();
    let want = [("restore".to_string(), false), ("verify".to_string(), true)];
    assert_eq!(jobs, want, "{out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let r = &v["regions"][0];
    assert_eq!(
        (r["verified"].as_bool(), r["success"].as_bool()),
        (Some(false), Some(false)),
        "{r:#}"
    );
    let mismatches = r["verification"]["mismatches"].as_array().unwrap();
    assert_eq!(mismatches.len(), 1, "{mismatches:?}");
    assert_eq!(
        mismatches[0]["path"], "/volumes/shop/data-pg-0/base/16384/1259",
        "{mismatches:?}"
    );
    assert!(err.contains("base/16384/1259"), "{err}");
    // The objects still verified, and the sandbox is gone all the same.
    let k = &r["k8s"];
    assert_eq!(k["objects_verified"], k["objects_restored"], "{k:#}");
    assert_eq!(k["volumes"][0]["action"], "restored", "{k:#}");
    assert!(objects_in(&c, "drill-shop").is_empty());
    assert!(c.leftovers().is_empty(), "left behind: {:?}", c.leftovers());
}
