//! Volume data through data-mover Jobs, end to end from the CLI: the fake
//! API server with the snapshot CRDs, and the fake kubelet behind it that
//! binds PVCs to directories, freezes snapshots and really runs the Jobs'
//! `ferry mover` containers in private mount namespaces.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::support::fake_k8s::FakeK8s;
use super::support::kubelet::{base64, Kubelet, MOVER_IMAGE};

const DRIVER: &str = "hostpath.csi.k8s.io";

pub struct Cluster {
    pub fake: FakeK8s,
    pub kubelet: Kubelet,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

impl Cluster {
    /// A cluster with a CSI class that has a VolumeSnapshotClass (csi-fast),
    /// one without (nfs), the repository Secret in namespace ferry, and an
    /// initialised repository.
    pub fn new() -> Cluster {
        let fake = FakeK8s::start();
        let kubelet = Kubelet::start(&fake);
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = fake.kubeconfig(dir.path());
        let c = Cluster {
            fake,
            kubelet,
            dir,
            kubeconfig,
        };
        c.ok(&["init", "--kdf-memory", "8MiB", "--kdf-iterations", "1"]);
        for (name, provisioner) in [("csi-fast", DRIVER), ("nfs", "nfs.csi.k8s.io")] {
            c.fake.seed(
                json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": {"name": name}, "provisioner": provisioner, "reclaimPolicy": "Delete",
                "volumeBindingMode": "Immediate"}),
            );
        }
        c.fake.seed(json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
            "metadata": {"name": "csi-snap", "labels": {"velero.io/csi-volumesnapshot-class": "true"}},
            "driver": DRIVER, "deletionPolicy": "Delete"}));
        c.fake.seed(
            json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
            "metadata": {"name": "csi-other"}, "driver": DRIVER, "deletionPolicy": "Delete"}),
        );
        // As the CronJob's Secret: the password only; the Jobs get the
        // repository location from the coordinator's --repo.
        c.fake.seed(
            json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "ferry-repository", "namespace": "ferry"},
            "data": {"FERRY_PASSWORD": base64(b"k8s-test")}}),
        );
        // The mover Jobs' own service account (config/k8s-mover-rbac.yaml).
        c.fake
            .seed(json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "ferry-mover", "namespace": "ferry"},
            "automountServiceAccountToken": false}));
        c
    }

    pub fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
        cmd.arg(args[0])
            .arg("--repo")
            .arg(self.repo())
            .args(&args[1..])
            .env("FERRY_PASSWORD", "k8s-test")
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"))
            .env("FERRY_HOST", "cluster-a");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.command(args).output().unwrap();
        let s = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        (
            out.status.code().unwrap_or(-1),
            s(out.stdout),
            s(out.stderr),
        )
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "ferry {args:?}:\n{out}\n{err}");
        out
    }

    /// `backup --k8s --json` of namespace `ns` with the test's mover image.
    pub fn backup_args<'a>(&'a self, ns: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec![
            "backup",
            "--k8s",
            "--json",
            "--kubeconfig",
            self.kc(),
            "--include-namespaces",
            ns,
            "--mover-image",
            MOVER_IMAGE,
        ];
        a.extend_from_slice(extra);
        a
    }

    pub fn kc(&self) -> &str {
        self.kubeconfig.to_str().unwrap()
    }

    /// Seeds a bound PVC and returns its directory (or file, for Block).
    pub fn pvc(&self, ns: &str, name: &str, class: &str, mode: &str, size: &str) -> PathBuf {
        self.fake.seed(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": class, "volumeMode": mode,
                "resources": {"requests": {"storage": size}}}}));
        self.kubelet.wait_volume(ns, name)
    }

    /// Objects still carrying the label of a mover run.
    pub fn leftovers(&self) -> Vec<String> {
        self.fake
            .state()
            .objects
            .iter()
            .filter(|(_, o)| o["metadata"]["labels"]["ferry.io/backup"].is_string())
            .map(|(k, _)| format!("{}/{}/{}/{}", k.0, k.1, k.2, k.3))
            .collect()
    }
}

/// A workload using the PVCs: a Deployment and its running pod on the node.
pub(super) fn seed_app(c: &Cluster, ns: &str, claims: &[&str], node: &str) {
    let volumes: Vec<Value> = claims
        .iter()
        .map(|n| json!({"name": n, "persistentVolumeClaim": {"claimName": n}}))
        .collect();
    let pod_spec =
        json!({"containers": [{"name": "db", "image": "postgres:17"}], "volumes": volumes});
    c.fake
        .seed(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "db", "namespace": ns, "labels": {"app": "db"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": pod_spec.clone()}}}));
    let mut running = pod_spec;
    running["nodeName"] = json!(node);
    c.fake.seed(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "db-0", "namespace": ns, "labels": {"app": "db"}},
        "spec": running, "status": {"phase": "Running"}}));
}

pub fn write(dir: &Path, rel: &str, data: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

/// Bytes that do not deduplicate or compress away.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Every file under `dir` with its bytes, by relative path.
pub(super) fn tree_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = super::support::files::files_under(dir)
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            (rel, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

pub(super) fn volume<'a>(v: &'a Value, pvc: &str) -> &'a Value {
    let vols = v["snapshot"]["extra"]["volumes"]
        .as_array()
        .expect("volume manifest");
    vols.iter()
        .find(|x| x["pvc"] == pvc)
        .unwrap_or_else(|| panic!("no volume {pvc} in {vols:?}"))
}

/// Writes a block device image: data at 0 and at 8 MiB, a hole between.
fn fill_block(dev: &Path, seed: u64) -> Vec<u8> {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(dev).unwrap();
    f.write_all(&noise(300_000, seed)).unwrap();
    f.seek(SeekFrom::Start(8 << 20)).unwrap();
    f.write_all(&noise(200_000, seed + 1)).unwrap();
    drop(f);
    std::fs::read(dev).unwrap()
}

#[test]
fn three_volumes_backed_up_listed_diffed_and_restored_into_another_namespace() {
    let c = Cluster::new();
    let data = c.pvc("shop", "data-pg-0", "csi-fast", "Filesystem", "64Mi");
    let raw = c.pvc("shop", "raw-0", "csi-fast", "Block", "16Mi");
    let shared = c.pvc("shop", "shared", "nfs", "Filesystem", "8Mi");
    write(&data, "base/16384/1259", &noise(2_500_000, 1));
    write(&data, "PG_VERSION", b"17\n");
    write(&shared, "uploads/a.txt", b"first upload\n");
    let block = fill_block(&raw, 7);
    seed_app(
        &c,
        "shop",
        &["data-pg-0", "raw-0", "shared"],
        super::support::kubelet::NODE,
    );

    let first: Value =
        serde_json::from_str(&c.ok(&c.backup_args("shop", &["--parallel-volumes", "2"]))).unwrap();
    assert_eq!(first["complete"], true, "{first}");
    let pg = volume(&first, "data-pg-0");
    assert_eq!(
        (pg["method"].as_str(), pg["consistent"].as_bool()),
        (Some("snapshot"), Some(true)),
        "{pg}"
    );
    assert_eq!(pg["storage_class"], "csi-fast");
    let (bytes, secs) = (
        pg["bytes"].as_f64().unwrap(),
        pg["seconds"].as_f64().unwrap(),
    );
    assert!(bytes >= 2_500_000.0, "{pg}");
    let rate = pg["bytes_per_second"].as_f64().unwrap();
    assert!((rate - bytes / secs).abs() <= rate * 0.01, "{pg}");
    assert_eq!(pg["driver"], DRIVER);
    assert_eq!(volume(&first, "raw-0")["mode"], "Block");
    assert_eq!(volume(&first, "raw-0")["method"], "snapshot");
    let nfs = volume(&first, "shared");
    assert_eq!(
        (nfs["method"].as_str(), nfs["consistent"].as_bool()),
        (Some("fs"), Some(false)),
        "{nfs}"
    );
    assert!(c.leftovers().is_empty(), "left behind: {:?}", c.leftovers());

    let ls: Value =
        serde_json::from_str(&c.ok(&["ls", "--json", "latest", "volumes/shop/data-pg-0/"]))
            .unwrap();
    let paths: Vec<&str> = ls["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert!(
        paths.contains(&"/volumes/shop/data-pg-0/base/16384/1259"),
        "{paths:?}"
    );
    let ls = c.ok(&["ls", "latest", "volumes/shop/raw-0/"]);
    assert!(ls.lines().any(|l| l == "/volumes/shop/raw-0/block"), "{ls}");

    // The live volume changes after the first snapshot.
    write(&data, "PG_VERSION", b"18\n");
    write(&shared, "uploads/b.txt", b"second upload\n");
    let second: Value = serde_json::from_str(&c.ok(&c.backup_args("shop", &[]))).unwrap();
    let (s1, s2) = (
        first["id"].as_str().unwrap(),
        second["id"].as_str().unwrap(),
    );
    let diff: Value =
        serde_json::from_str(&c.ok(&["diff", "--json", s1, s2, "volumes/shop/"])).unwrap();
    let changes: Vec<(String, String)> = diff["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().to_string(),
                c["change"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        changes.contains(&(
            "/volumes/shop/data-pg-0/PG_VERSION".into(),
            "modified".into()
        )),
        "{changes:?}"
    );
    assert!(
        changes.contains(&("/volumes/shop/shared/uploads/b.txt".into(), "added".into())),
        "{changes:?}"
    );
    assert!(
        !changes
            .iter()
            .any(|(p, _)| p.contains("1259") || p.contains("raw-0")),
        "{changes:?}"
    );

    let dry: Value = serde_json::from_str(&c.ok(&[
        "restore",
        "latest",
        "--k8s",
        "--json",
        "--dry-run",
        "--kubeconfig",
        c.kc(),
        "--namespace-mapping",
        "shop:shop-dr",
        "--storage-class-mapping",
        "nfs:csi-fast",
        "--mover-image",
        MOVER_IMAGE,
    ]))
    .unwrap();
    let planned = dry["volumes"].as_array().unwrap();
    assert_eq!(planned.len(), 3, "{dry}");
    let p = planned.iter().find(|v| v["pvc"] == "shared").unwrap();
    assert_eq!(
        (
            p["storage_class"].as_str(),
            p["size"].as_str(),
            p["action"].as_str()
        ),
        (Some("csi-fast"), Some("8Mi"), Some("planned"))
    );
    assert!(
        c.kubelet.volume("shop-dr", "shared").is_none(),
        "a dry run created a PVC"
    );

    let out: Value = serde_json::from_str(&c.ok(&[
        "restore",
        "latest",
        "--k8s",
        "--json",
        "--kubeconfig",
        c.kc(),
        "--namespace-mapping",
        "shop:shop-dr",
        "--storage-class-mapping",
        "nfs:csi-fast",
        "--mover-image",
        MOVER_IMAGE,
    ]))
    .unwrap();
    assert!(
        out["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["action"] == "restored"),
        "{out}"
    );
    let dr = |pvc: &str| {
        c.kubelet
            .volume("shop-dr", pvc)
            .unwrap_or_else(|| panic!("{pvc} not restored"))
    };
    assert_eq!(tree_of(&dr("data-pg-0")), tree_of(&data));
    assert_eq!(tree_of(&dr("shared")), tree_of(&shared));
    assert_eq!(std::fs::read(dr("raw-0")).unwrap(), block);
    let pvc = c
        .fake
        .object("", "persistentvolumeclaims", Some("shop-dr"), "shared")
        .unwrap();
    assert_eq!(pvc["spec"]["storageClassName"], "csi-fast");
    assert!(c
        .fake
        .object("apps", "deployments", Some("shop-dr"), "db")
        .is_some());
    assert!(c.leftovers().is_empty(), "left behind: {:?}", c.leftovers());
}

#[test]
fn an_unschedulable_job_fails_its_volume_fast_and_the_others_go_on() {
    let c = Cluster::new();
    let ok = c.pvc("shop", "data", "csi-fast", "Filesystem", "8Mi");
    write(&ok, "f", b"kept");
    let stuck = c.pvc("shop", "cache", "nfs", "Filesystem", "8Mi");
    write(&stuck, "g", b"not reachable");
    // The pod using the nfs volume runs on a node that is gone: its fs Job
    // must run there and cannot be scheduled.
    seed_app(&c, "shop", &["cache"], "node-gone");
    let started = Instant::now();
    let (code, out, err) = c.run(&c.backup_args("shop", &[]));
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let failed = volume(&v, "cache");
    let msg = failed["error"].as_str().unwrap_or_default();
    assert!(
        msg.contains("FailedScheduling") && msg.contains("node affinity/selector"),
        "{failed}"
    );
    assert!(failed["tree"].is_null());
    assert!(volume(&v, "data")["tree"].is_string());
    assert!(
        v["snapshot"]["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["path"] == "/volumes/shop/cache"),
        "{v}"
    );
    assert!(c.leftovers().is_empty(), "left behind: {:?}", c.leftovers());
}

#[test]
fn an_image_that_cannot_be_pulled_fails_with_the_pods_events() {
    let c = Cluster::new();
    let d = c.pvc("shop", "data", "csi-fast", "Filesystem", "8Mi");
    write(&d, "f", b"x");
    let mut args = c.backup_args("shop", &[]);
    let i = args.iter().position(|a| *a == MOVER_IMAGE).unwrap();
    args[i] = "registry.invalid/ferry:nope";
    let (code, out, err) = c.run(&args);
    assert_eq!(code, 3, "{out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let msg = volume(&v, "data")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        msg.contains("ErrImagePull") && msg.contains("registry.invalid/ferry:nope"),
        "{msg}"
    );
    assert!(c.leftovers().is_empty(), "left behind: {:?}", c.leftovers());
}

#[test]
fn a_job_killed_mid_backup_then_the_next_backup_succeeds_without_leftovers() {
    let c = Cluster::new();
    let d = c.pvc("shop", "data", "csi-fast", "Filesystem", "256Mi");
    for i in 0..12 {
        write(&d, &format!("f{i}"), &noise(4 << 20, i));
    }
    let child = c
        .command(&c.backup_args("shop", &[]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.kubelet.running() == 0 {
        assert!(Instant::now() < deadline, "no mover container started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(c.kubelet.kill_running(), 1);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let msg = volume(&v, "data")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(msg.contains("exit code 137"), "{msg}");
    assert!(c.leftovers().is_empty(), "left behind: {:?}", c.leftovers());

    // A backup that died without cleaning up left a Job behind.
    c.fake.seed(json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "ferry-backup-dead-0", "namespace": "ferry", "labels": {"ferry.io/backup": "ferry-backup-dead"}},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "x", "image": "unpullable"}]}}}}));
    let v: Value = serde_json::from_str(&c.ok(&c.backup_args("shop", &[]))).unwrap();
    assert_eq!(v["complete"], true);
    assert_eq!(volume(&v, "data")["files"], 12);
    assert!(c.leftovers().is_empty(), "left behind: {:?}", c.leftovers());
    let ls = c.ok(&["ls", "latest", "volumes/shop/data/"]);
    assert!(ls.lines().any(|l| l == "/volumes/shop/data/f11"), "{ls}");
}

/// A running pod on the node mounting `claims`, with hook annotations.
pub(super) fn seed_pod(c: &Cluster, ns: &str, name: &str, claims: &[&str], annotations: Value) {
    let volumes: Vec<Value> = claims
        .iter()
        .map(|n| json!({"name": n, "persistentVolumeClaim": {"claimName": n}}))
        .collect();
    c.fake.seed(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "annotations": annotations},
        "spec": {"nodeName": super::support::kubelet::NODE, "volumes": volumes,
            "containers": [{"name": "app", "image": "busybox:1.36"}, {"name": "sidecar", "image": "busybox:1.36"}]},
        "status": {"phase": "Running"}}));
}

#[test]
fn hooks_write_a_marker_before_the_snapshot_and_remove_it_after() {
    let c = Cluster::new();
    let d = c.pvc("shop", "data", "csi-fast", "Filesystem", "8Mi");
    write(&d, "table", b"rows");
    seed_pod(
        &c,
        "shop",
        "db-0",
        &["data"],
        json!({
        "pre.hook.backup.velero.io/container": "sidecar",
        "pre.hook.backup.velero.io/command": "[\"touch\", \"hook-marker\"]",
        "post.hook.backup.ferry.io/command": "[\"rm\", \"hook-marker\"]",
        "post.hook.backup.ferry.io/timeout": "10s"}),
    );
    let v: Value = serde_json::from_str(&c.ok(&c.backup_args("shop", &[]))).unwrap();
    let hooks = volume(&v, "data")["hooks"].as_array().unwrap().clone();
    assert_eq!(hooks.len(), 2, "{hooks:?}");
    assert_eq!(
        (hooks[0]["phase"].as_str(), hooks[0]["container"].as_str()),
        (Some("pre"), Some("sidecar"))
    );
    assert_eq!(hooks[0]["command"], json!(["touch", "hook-marker"]));
    assert_eq!(
        (hooks[1]["phase"].as_str(), hooks[1]["exit_code"].as_i64()),
        (Some("post"), Some(0))
    );
    let ls = c.ok(&["ls", "latest", "volumes/shop/data/"]);
    assert!(
        ls.lines().any(|l| l == "/volumes/shop/data/hook-marker"),
        "{ls}"
    );
    assert!(
        !d.join("hook-marker").exists(),
        "the post hook did not run on the live volume"
    );
    let exec = c.fake.requests_matching("/pods/db-0/exec");
    assert_eq!(exec.len(), 2, "{exec:?}");
    assert!(
        exec[0].contains("command=touch&command=hook-marker"),
        "{exec:?}"
    );
}

#[test]
fn failing_hooks_fail_or_continue_as_their_on_error_says() {
    let c = Cluster::new();
    let a = c.pvc("shop", "vol-a", "csi-fast", "Filesystem", "8Mi");
    let b = c.pvc("shop", "vol-b", "csi-fast", "Filesystem", "8Mi");
    write(&a, "a", b"a");
    write(&b, "b", b"b");
    seed_pod(
        &c,
        "shop",
        "a-0",
        &["vol-a"],
        json!({
        "pre.hook.backup.velero.io/command": "[\"false\"]",
        "pre.hook.backup.velero.io/on-error": "Continue"}),
    );
    seed_pod(
        &c,
        "shop",
        "b-0",
        &["vol-b"],
        json!({
        "pre.hook.backup.velero.io/command": "[\"sleep\", \"5\"]",
        "pre.hook.backup.velero.io/timeout": "1s",
        "pre.hook.backup.velero.io/on-error": "Fail",
        "post.hook.backup.velero.io/command": "[\"touch\", \"post-ran\"]"}),
    );
    let (code, out, err) = c.run(&c.backup_args("shop", &[]));
    assert_eq!(code, 3, "{out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let va = volume(&v, "vol-a");
    assert!(va["tree"].is_string(), "{va}");
    assert_eq!(va["hooks"][0]["exit_code"], 1, "{va}");
    assert_eq!(va["hooks"][0]["on_error"], "Continue");
    let vb = volume(&v, "vol-b");
    assert!(vb["tree"].is_null(), "{vb}");
    let msg = vb["error"].as_str().unwrap_or_default();
    assert!(
        msg.contains("pre hook of pod shop/b-0") && msg.contains("timed out"),
        "{msg}"
    );
    assert!(
        b.join("post-ran").exists(),
        "the post hook must run even when the pre hook failed"
    );
    assert!(c.leftovers().is_empty(), "left behind: {:?}", c.leftovers());
}

/// A loop device over `file` (detached on drop), or the file itself where
/// loop devices are not available (said on stderr).
pub struct BlockDevice {
    pub path: PathBuf,
    looped: bool,
}

impl BlockDevice {
    pub fn over(file: &Path) -> BlockDevice {
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(file)
            .output();
        match out {
            Ok(o) if o.status.success() => BlockDevice {
                path: PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()),
                looped: true,
            },
            other => {
                eprintln!(
                    "NOTE: no loop device ({:?}); the block volume is read as the regular file {}",
                    other.map(|o| String::from_utf8_lossy(&o.stderr).into_owned()),
                    file.display()
                );
                BlockDevice {
                    path: file.to_path_buf(),
                    looped: false,
                }
            }
        }
    }
}

impl Drop for BlockDevice {
    fn drop(&mut self) {
        if self.looped {
            let _ = Command::new("losetup").arg("-d").arg(&self.path).status();
        }
    }
}

fn file_of(dir: &Path, name: &str, len: u64, fill: u8) -> PathBuf {
    let p = dir.join(name);
    let f = std::fs::File::create(&p).unwrap();
    if fill == 0 {
        f.set_len(len).unwrap();
    } else {
        std::fs::write(&p, vec![fill; len as usize]).unwrap();
    }
    p
}

fn write_at(path: &Path, at: u64, data: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(data, at).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn a_block_device_is_read_with_holes_deduplicated_and_written_back_over_stale_data() {
    let c = Cluster::new();
    let img = file_of(c.dir.path(), "disk.img", 32 << 20, 0);
    let (a, b) = (noise(6 << 20, 11), noise(2 << 20, 12));
    write_at(&img, 0, &a);
    write_at(&img, 16 << 20, &b);
    let dev = BlockDevice::over(&img);
    let mover = |args: &[&str]| -> Value {
        let mut full = vec!["mover"];
        full.extend_from_slice(args);
        full.push("--json");
        serde_json::from_str(&c.ok(&full)).unwrap()
    };
    let src = dev.path.to_str().unwrap();
    let first = mover(&["backup", "--source", src, "--block"]);
    assert_eq!(first["bytes"], 32 << 20, "{first}");
    assert_eq!(
        first["zero_bytes"],
        24 << 20,
        "the zero regions are holes: {first}"
    );
    assert_eq!(first["files"], 1);

    // 4 KiB change in the second region: only the chunks around it are new.
    write_at(&img, (17 << 20) + 12345, &noise(4096, 13));
    let second = mover(&["backup", "--source", src, "--block"]);
    let added = second["added_bytes"].as_u64().unwrap();
    assert!(
        added > 0 && added < 4 << 20,
        "dedup against the first backup: {second}"
    );
    assert_ne!(first["tree"], second["tree"]);

    // A reused device full of stale bytes: the holes must come back as zeros.
    let stale = file_of(c.dir.path(), "stale.img", 32 << 20, 0xAA);
    let target = BlockDevice::over(&stale);
    let tree = second["tree"].as_str().unwrap();
    let t = target.path.to_str().unwrap();
    let r = mover(&["restore", "--tree", tree, "--target", t, "--block"]);
    assert_eq!(r["bytes"], 32 << 20, "{r}");
    drop(target);
    assert!(
        std::fs::read(&stale).unwrap() == std::fs::read(&img).unwrap(),
        "the restored device differs from the source"
    );

    // A device smaller than the volume is refused before anything is written.
    let small = file_of(c.dir.path(), "small.img", 8 << 20, 0x55);
    let small_dev = BlockDevice::over(&small);
    let (code, _, err) = c.run(&[
        "mover",
        "restore",
        "--tree",
        tree,
        "--target",
        small_dev.path.to_str().unwrap(),
        "--block",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("at least as large"), "{err}");
}

#[test]
fn a_restore_into_a_wait_for_first_consumer_class_binds_on_the_jobs_node() {
    let c = Cluster::new();
    c.fake.seed(
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "local-wffc"}, "provisioner": DRIVER, "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer"}),
    );
    // The class as the API server and scheduler treat it: a claim without a
    // scheduled consumer stays Pending.
    c.fake
        .seed(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "idle", "namespace": "probe"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-wffc",
            "resources": {"requests": {"storage": "1Mi"}}}}));
    let d = c.pvc("shop", "data", "csi-fast", "Filesystem", "8Mi");
    write(&d, "db/table", &noise(300_000, 21));
    let raw = c.pvc("shop", "raw", "csi-fast", "Block", "16Mi");
    let block = fill_block(&raw, 22);
    let v: Value = serde_json::from_str(&c.ok(&c.backup_args("shop", &[]))).unwrap();
    assert_eq!(v["complete"], true, "{v}");
    assert!(
        c.kubelet.volume("probe", "idle").is_none(),
        "bound without a consumer"
    );

    let restore = |extra: &[&str]| -> Value {
        let mut a = vec![
            "restore",
            "latest",
            "--k8s",
            "--json",
            "--kubeconfig",
            c.kc(),
            "--include-namespaces",
            "shop",
            "--namespace-mapping",
            "shop:shop-dr",
            "--storage-class-mapping",
            "csi-fast:local-wffc",
            "--mover-image",
            MOVER_IMAGE,
        ];
        a.extend_from_slice(extra);
        serde_json::from_str(&c.ok(&a)).unwrap()
    };
    let dry = restore(&["--dry-run"]);
    let mut planned: Vec<(String, String, String, String)> = dry["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let f = |k: &str| p[k].as_str().unwrap_or_default().to_string();
            (f("pvc"), f("storage_class"), f("size"), f("action"))
        })
        .collect();
    planned.sort();
    let row = |pvc: &str, size: &str| {
        (
            pvc.to_string(),
            "local-wffc".to_string(),
            size.to_string(),
            "planned".to_string(),
        )
    };
    assert_eq!(
        planned,
        vec![row("data", "8Mi"), row("raw", "16Mi")],
        "{dry}"
    );
    assert!(
        c.fake
            .object("", "persistentvolumeclaims", Some("shop-dr"), "data")
            .is_none(),
        "a dry run created a PVC"
    );

    let out = restore(&[]);
    for vol in out["volumes"].as_array().unwrap() {
        assert_eq!(vol["action"], "restored", "{out}");
    }
    for pvc in ["data", "raw"] {
        let p = c
            .fake
            .object("", "persistentvolumeclaims", Some("shop-dr"), pvc)
            .unwrap();
        assert_eq!(p["status"]["phase"], "Bound", "{p}");
        assert_eq!(
            p["metadata"]["annotations"]["volume.kubernetes.io/selected-node"],
            super::support::kubelet::NODE,
            "bound on the node of its first consumer, the restore Job: {p}"
        );
    }
    let dr = c.kubelet.volume("shop-dr", "data").unwrap();
    assert_eq!(tree_of(&dr), tree_of(&d));
    let dr_raw = c.kubelet.volume("shop-dr", "raw").unwrap();
    assert!(std::fs::read(dr_raw).unwrap() == block);
    assert!(c.leftovers().is_empty(), "left behind: {:?}", c.leftovers());
}

#[test]
fn progress_per_volume_shows_on_a_terminal() {
    let c = Cluster::new();
    let d = c.pvc("shop", "media", "csi-fast", "Filesystem", "256Mi");
    for i in 0..8 {
        write(&d, &format!("f{i}"), &noise(4 << 20, 40 + i));
    }
    // `script` gives the backup a terminal for its stderr, as a person
    // running it has.
    let args: Vec<&str> = c
        .backup_args("shop", &[])
        .into_iter()
        .filter(|a| *a != "--json")
        .collect();
    let base = c.command(&args);
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
    let line: Vec<String> = std::iter::once(base.get_program())
        .chain(base.get_args())
        .map(quote)
        .collect();
    let mut cmd = Command::new("script");
    cmd.args(["-q", "-e", "-c", &line.join(" "), "/dev/null"]);
    for (k, v) in base.get_envs().filter_map(|(k, v)| Some((k, v?))) {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("script (util-linux)");
    let tty = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{tty}");
    let shown = tty
        .split(['\r', '\n'])
        .rfind(|l| l.contains("shop/media"))
        .unwrap_or_else(|| panic!("no progress line for the volume: {tty:?}"));
    assert!(
        shown.contains("32.00 MiB") && shown.contains("done"),
        "{shown:?}"
    );
    assert!(shown.contains("/s"), "no rate: {shown:?}");
}

#[test]
fn a_missing_mover_service_account_fails_before_any_job_with_what_to_do() {
    let c = Cluster::new();
    let d = c.pvc("shop", "data", "csi-fast", "Filesystem", "8Mi");
    write(&d, "f", b"x");
    c.fake
        .state()
        .objects
        .retain(|k, _| !(k.1 == "serviceaccounts" && k.3 == "ferry-mover"));
    let (code, out, err) = c.run(&c.backup_args("shop", &[]));
    assert_eq!(code, 1, "{out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let msg = v["error"].as_str().unwrap_or_default();
    assert!(
        msg.contains("ferry/ferry-mover") && msg.contains("config/k8s-mover-rbac.yaml"),
        "{msg}"
    );
    assert!(c.leftovers().is_empty(), "left behind: {:?}", c.leftovers());
    assert!(
        c.fake.requests_matching("POST /apis/batch/v1").is_empty(),
        "a Job was created"
    );
}
