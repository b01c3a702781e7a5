//! The shipped CronJobs, run as Kubernetes would run them: the container
//! command lines are taken from the YAML files under config/ unchanged and
//! run with the environment the manifests give (the Secret's values replaced
//! by test credentials, mount paths by temporary directories, the regions'
//! endpoints by S3 servers on loopback), against the fake API server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::support::fake_k8s::FakeK8s;
use crate::support::kubelet::{base64, Kubelet};
use crate::support::server::{S3Server, ACCESS_KEY, SECRET_KEY};

fn config_docs(name: &str) -> Vec<Value> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(name);
    crate::support::yaml_docs(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn doc<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// The machine the job runs on: mount paths mapped to directories, the
/// Secret's keys given test values, a `ferry` on PATH.
struct Node {
    dir: tempfile::TempDir,
    mounts: BTreeMap<String, PathBuf>,
    secret: BTreeMap<String, String>,
    kubeconfig: PathBuf,
    bin: PathBuf,
}

impl Node {
    fn new(fake: &FakeK8s) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = fake.kubeconfig(dir.path());
        let secret_doc = &config_docs("k8s-secret.yaml")[0];
        let mut secret = BTreeMap::new();
        for k in secret_doc["stringData"].as_object().unwrap().keys() {
            let v = match k.as_str() {
                "AWS_ACCESS_KEY_ID" => ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY" => SECRET_KEY,
                _ => "test password for the cronjob",
            };
            secret.insert(k.clone(), v.to_string());
        }
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        Node {
            dir,
            mounts: BTreeMap::new(),
            secret,
            kubeconfig,
            bin,
        }
    }

    /// Puts `ferry` on PATH. Until `ferry forget` exists, the wrapper skips
    /// only that step, saying so.
    fn install_ferry(&self) -> Option<String> {
        let real = env!("CARGO_BIN_EXE_ferry");
        let forget = Command::new(real)
            .args(["forget", "--help"])
            .output()
            .unwrap();
        let wrapper = self.bin.join("ferry");
        let note = (!forget.status.success()).then(|| {
            "ferry forget is not available in this build: the retention step is skipped".to_string()
        });
        let script = match &note {
            None => format!("#!/bin/sh\nexec {real} \"$@\"\n"),
            Some(n) => format!(
                "#!/bin/sh\nif [ \"$1\" = forget ]; then echo 'SKIPPED: {n}' >&2; exit 0; fi\nexec {real} \"$@\"\n"
            ),
        };
        std::fs::write(&wrapper, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        note
    }

    /// A mount path's directory on this machine.
    fn mount(&mut self, path: &str) -> PathBuf {
        let n = self.mounts.len();
        let local = self.dir.path().join(format!("mount{n}"));
        std::fs::create_dir_all(&local).unwrap();
        self.mounts.entry(path.to_string()).or_insert(local).clone()
    }

    fn local(&self, path: &str) -> String {
        for (m, l) in &self.mounts {
            if let Some(rest) = path.strip_prefix(m.as_str()) {
                return format!("{}{rest}", l.display());
            }
        }
        path.to_string()
    }

    /// Runs a container of a CronJob: its command and args, its env (mount
    /// paths mapped), its envFrom Secret.
    fn run(&mut self, cronjob: &Value) -> (i32, String, String) {
        let spec = &cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        let c = &spec["containers"][0];
        for m in c["volumeMounts"].as_array().unwrap() {
            self.mount(m["mountPath"].as_str().unwrap());
        }
        let mut argv: Vec<String> = Vec::new();
        for part in ["command", "args"] {
            if let Some(a) = c[part].as_array() {
                argv.extend(a.iter().map(|s| s.as_str().unwrap().to_string()));
            }
        }
        let mut cmd = Command::new(self.local(&argv[0]));
        // Paths in the arguments that name a mount are mapped (the drill's
        // --target /sandbox); shell scripts see mapped variables instead.
        cmd.args(argv[1..].iter().map(|a| self.local(a)));
        cmd.env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", self.bin.display()))
            .env("HOME", self.dir.path())
            .env("KUBECONFIG", &self.kubeconfig);
        for e in c["env"].as_array().unwrap() {
            cmd.env(
                e["name"].as_str().unwrap(),
                self.local(e["value"].as_str().unwrap()),
            );
        }
        assert_eq!(c["envFrom"][0]["secretRef"]["name"], "ferry-repository");
        cmd.envs(&self.secret);
        let out = tokio::task::block_in_place(|| cmd.output().unwrap());
        let s = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        (
            out.status.code().unwrap_or(-1),
            s(out.stdout),
            s(out.stderr),
        )
    }
}

/// The ConfigMap's ferry.toml, with each region's endpoint set to one of
/// `servers` (what the manifests leave to the provider's default).
fn config_for(servers: &[&S3Server]) -> String {
    let cm = doc(
        &config_docs("k8s-cronjob.yaml"),
        "ConfigMap",
        "ferry-config",
    )
    .clone();
    let text = cm["data"]["ferry.toml"].as_str().unwrap();
    let mut t: toml::Table = text.parse().unwrap();
    let regions = t["region"].as_array_mut().unwrap();
    assert_eq!(regions.len(), servers.len());
    for (r, s) in regions.iter_mut().zip(servers) {
        let r = r.as_table_mut().unwrap();
        r.insert("endpoint".into(), s.endpoint().into());
        r.insert("provider".into(), "minio".into());
        r.insert("s3-region".into(), s.region.clone().into());
        let bucket = r["url"].as_str().unwrap().trim_start_matches("s3://");
        let bucket = bucket.split('/').next().unwrap();
        std::fs::create_dir_all(s.root.path().join(bucket)).unwrap();
    }
    toml::to_string(&t).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_cronjobs_back_up_replicate_export_metrics_and_drill() {
    let (eu, us) = (
        S3Server::start("eu-west-1").await,
        S3Server::start("us-east-1").await,
    );
    let fake = crate::source_cluster();
    let mut node = Node::new(&fake);
    if let Some(note) = node.install_ferry() {
        eprintln!("{note}");
    }
    let backup = doc(&config_docs("k8s-cronjob.yaml"), "CronJob", "ferry-backup").clone();
    let drill = doc(
        &config_docs("k8s-drill-cronjob.yaml"),
        "CronJob",
        "ferry-drill",
    )
    .clone();
    // The ConfigMap, mounted where the CronJob mounts it; the repository
    // made once at install time (`ferry init`, as the README says).
    let etc = node.mount("/etc/ferry");
    std::fs::write(etc.join("ferry.toml"), config_for(&[&eu, &us])).unwrap();
    let mut init = Command::new(env!("CARGO_BIN_EXE_ferry"));
    init.args(["init", "--kdf-memory", "8MiB", "--kdf-iterations", "1"])
        .env("FERRY_CONFIG", etc.join("ferry.toml"))
        .env("XDG_CACHE_HOME", node.dir.path().join("init-cache"))
        .envs(&node.secret);
    let out = tokio::task::block_in_place(|| init.output().unwrap());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Volume data: a PVC with a CSI snapshot class, moved by a Job of the
    // CronJob's mover image that the fake kubelet runs.
    let _kubelet = seed_volume(&fake, &node, &backup);
    let (code, _, err) = node.run(&backup);
    assert_eq!(code, 0, "the backup job failed:\n{err}");
    let mut ls = Command::new(env!("CARGO_BIN_EXE_ferry"));
    ls.args(["ls", "--json", "latest", "volumes/demo/uploads/"])
        .env("FERRY_CONFIG", etc.join("ferry.toml"))
        .env("XDG_CACHE_HOME", node.dir.path().join("ls-cache"))
        .envs(&node.secret);
    let out = tokio::task::block_in_place(|| ls.output().unwrap());
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("/volumes/demo/uploads/photo.jpg"),
        "the volume is not in the snapshot: {listing}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let textfile = node.local("/var/lib/node-exporter/textfile");
    let promfiles: Vec<PathBuf> = std::fs::read_dir(&textfile)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "prom"))
        .collect();
    for step in ["backup", "replicate", "status"] {
        let p = Path::new(&textfile).join(format!("ferry-{step}.prom"));
        assert!(
            promfiles.contains(&p),
            "no metrics of {step}: {promfiles:?}"
        );
    }
    for p in &promfiles {
        let (ok, msg) = promtool(p);
        assert!(ok, "{}: {msg}", p.display());
    }
    // Replication happened: the second region holds the snapshot.
    let status = std::fs::read_to_string(Path::new(&textfile).join("ferry-status.prom")).unwrap();
    let behind: Vec<&str> = status
        .lines()
        .filter(|l| l.starts_with("ferry_region_behind_objects{"))
        .collect();
    assert_eq!(behind.len(), 2, "{status}");
    assert!(behind.iter().all(|l| l.ends_with(" 0")), "{status}");
    assert!(us
        .root
        .path()
        .join("ferry-backups-us/cluster-a/config")
        .exists());

    // With an aggregated API down the backup is incomplete (exit 3): the
    // job still replicates, and fails with 3.
    fake.faults(|f| f.failing_groups = vec!["batch".into()]);
    let before = snapshots(&us);
    let (code, _, err) = node.run(&backup);
    assert_eq!(code, 3, "{err}");
    assert_eq!(
        snapshots(&us),
        before + 1,
        "replicated after the incomplete backup: {err}"
    );
    fake.faults(|f| f.failing_groups.clear());

    // The weekly drill restores namespace demo's objects and volume from
    // both regions into the sandbox namespace, verifies them, removes the
    // sandbox, and succeeds; every request it makes is one its shipped
    // RBAC allows.
    let sent = fake.state().requests.len();
    let (code, out, err) = node.run(&drill);
    assert_eq!(code, 0, "drill:\n{out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["success"], true, "{v:#}");
    let regions = v["regions"].as_array().unwrap();
    assert_eq!(regions.len(), 2, "{v:#}");
    for r in regions {
        let k = &r["k8s"];
        assert_eq!(k["namespaces"][0]["namespace"], "drill-demo", "{r:#}");
        assert_eq!(k["namespaces"][0]["removed"], true, "{r:#}");
        let vol = &k["volumes"][0];
        assert_eq!(vol["pvc"], "uploads", "{r:#}");
        assert_eq!(vol["verification"]["content_files"], 1, "{r:#}");
        assert_eq!(
            r["verification"]["verified_bytes"],
            b"not really a photo".len(),
            "{r:#}"
        );
    }
    assert!(fake.object("", "namespaces", None, "drill-demo").is_none());
    let made: Vec<String> = fake.state().requests[sent..].to_vec();
    let denied = not_allowed(&made, "ferry-drill");
    assert!(
        denied.is_empty(),
        "the drill's RBAC does not allow {denied:#?}"
    );
    let d = Path::new(&textfile).join("ferry-drill.prom");
    let (ok, msg) = promtool(&d);
    assert!(ok, "{msg}");
    let text = std::fs::read_to_string(&d).unwrap();
    for r in ["eu-west-1", "us-east-1"] {
        let line = format!("ferry_drill_success{{region=\"{r}\"");
        let l = text
            .lines()
            .find(|l| l.starts_with(&line))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(l.ends_with(" 1"), "{l}");
    }
}

/// A bound PVC with data, its CSI classes, and what the CronJob's mover
/// Jobs need in namespace ferry: the repository Secret (the test's values)
/// and their service account. The kubelet pulls the CronJob's mover image.
fn seed_volume(fake: &FakeK8s, node: &Node, cronjob: &Value) -> Kubelet {
    let c = &cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    let script = c["command"][2].as_str().unwrap();
    assert!(
        script.contains("--volumes snapshot") && script.contains("--mover-namespace ferry"),
        "{script}"
    );
    let image = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "FERRY_MOVER_IMAGE")
        .and_then(|e| e["value"].as_str())
        .expect("FERRY_MOVER_IMAGE in the CronJob");
    assert_eq!(image, c["image"], "the Jobs run the CronJob's own image");
    let kubelet = Kubelet::start_with_images(fake, &[image]);
    let driver = "hostpath.csi.k8s.io";
    fake.seed(json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "csi-hostpath"}, "provisioner": driver, "volumeBindingMode": "Immediate"}));
    fake.seed(json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
        "metadata": {"name": "csi-hostpath-snap", "labels": {"ferry.io/volumesnapshot-class": "true"}},
        "driver": driver, "deletionPolicy": "Delete"}));
    let data: serde_json::Map<String, Value> = node
        .secret
        .iter()
        .map(|(k, v)| (k.clone(), json!(base64(v.as_bytes()))))
        .collect();
    fake.seed(
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "ferry-repository", "namespace": "ferry"}, "data": data}),
    );
    let sa = config_docs("k8s-mover-rbac.yaml")
        .into_iter()
        .find(|d| d["kind"] == "ServiceAccount")
        .expect("the mover service account");
    fake.seed(sa);
    fake.seed(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "uploads", "namespace": "demo"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "csi-hostpath",
            "resources": {"requests": {"storage": "8Mi"}}}}));
    let dir = kubelet.wait_volume("demo", "uploads");
    std::fs::write(dir.join("photo.jpg"), b"not really a photo").unwrap();
    kubelet
}

fn snapshots(s: &S3Server) -> usize {
    std::fs::read_dir(s.root.path().join("ferry-backups-us/cluster-a/snapshots"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn promtool(file: &Path) -> (bool, String) {
    let out = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(file).unwrap())
        .output()
        .expect("promtool (Debian package prometheus; scripts/test.sh installs it)");
    let msg =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), msg)
}

/// The requests of `log` ("METHOD path?query") that the roles of config/
/// bound to service account `account` do not allow.
fn not_allowed(log: &[String], account: &str) -> Vec<String> {
    let mut docs = Vec::new();
    for e in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("config")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            docs.extend(config_docs(p.file_name().unwrap().to_str().unwrap()));
        }
    }
    let roles: Vec<&str> = docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRoleBinding")
        .filter(|d| {
            let subjects = d["subjects"].as_array().cloned().unwrap_or_default();
            subjects.iter().any(|s| s["name"] == account)
        })
        .filter_map(|d| d["roleRef"]["name"].as_str())
        .collect();
    let rules: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRole")
        .filter(|d| roles.iter().any(|r| d["metadata"]["name"] == *r))
        .flat_map(|d| d["rules"].as_array().unwrap().iter())
        .collect();
    log.iter()
        .filter(|req| !rules.iter().any(|r| allows(r, &attributes(req))))
        .cloned()
        .collect()
}

/// What a request asks, as RBAC sees it.
#[derive(Debug)]
enum Ask {
    NonResource(String, String),
    Resource {
        verb: String,
        group: String,
        resource: String,
        name: Option<String>,
    },
}

/// The RBAC attributes of "METHOD path?query" (Kubernetes' request info).
fn attributes(req: &str) -> Ask {
    let (method, uri) = req.split_once(' ').unwrap();
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match parts.as_slice() {
        ["api", _v, rest @ ..] if !rest.is_empty() => ("", rest),
        ["apis", g, _v, rest @ ..] if !rest.is_empty() => (*g, rest),
        _ => return Ask::NonResource(method.to_lowercase(), path.to_string()),
    };
    let (group, mut rest) = rest;
    // namespaces/NS/RESOURCE/... is a namespaced request; namespaces[/NS]
    // alone is the Namespace object itself.
    if rest.len() > 2 && rest[0] == "namespaces" {
        rest = &rest[2..];
    }
    let resource = match rest.get(2) {
        Some(sub) => format!("{}/{sub}", rest[0]),
        None => rest[0].to_string(),
    };
    let name = rest.get(1).map(|n| n.to_string());
    let verb = match (method, name.is_some()) {
        ("GET", false) if query.contains("watch=true") => "watch",
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", false) => "deletecollection",
        ("DELETE", true) => "delete",
        (m, _) => m,
    };
    Ask::Resource {
        verb: verb.to_string(),
        group: group.to_string(),
        resource,
        name,
    }
}

fn allows(rule: &Value, ask: &Ask) -> bool {
    let has = |field: &str, want: &str| {
        rule[field]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "*" || x == want))
    };
    match ask {
        Ask::NonResource(verb, path) => {
            has("verbs", verb)
                && rule["nonResourceURLs"].as_array().is_some_and(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .any(|u| match u.strip_suffix('*') {
                            Some(prefix) => path.starts_with(prefix),
                            None => u == path,
                        })
                })
        }
        Ask::Resource {
            verb,
            group,
            resource,
            name,
        } => {
            let named = match rule["resourceNames"].as_array() {
                None => true,
                Some(names) => name
                    .as_ref()
                    .is_some_and(|n| names.iter().any(|x| x == n.as_str())),
            };
            has("verbs", verb) && has("apiGroups", group) && has("resources", resource) && named
        }
    }
}
