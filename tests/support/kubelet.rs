//! A fake kubelet, CSI driver and Job controller behind the fake API server.
//!
//! - A PVC is a directory under a temporary root (a `Block` PVC a sparse
//!   file of its requested size); unbound PVCs are bound to a new PV of the
//!   storage class's provisioner, filled from their `dataSource` snapshot.
//! - A VolumeSnapshot of a PVC becomes `readyToUse` as a frozen copy of the
//!   PVC's directory, with a dynamic VolumeSnapshotContent; one naming a
//!   pre-made content is bound to it when the content's handle exists.
//! - A Job gets one pod. A pod whose nodeSelector matches no node gets a
//!   FailedScheduling event and stays Pending; one whose image is not a
//!   known mover image gets ErrImagePull. A claim of a
//!   WaitForFirstConsumer class stays Pending until a pod using it is
//!   scheduled, then binds on that pod's node; the pod's container starts
//!   once its claims are bound. A `volumeDevices` entry is a loop device
//!   over the block PVC's file (the file itself where there are no loop
//!   devices). Otherwise its container really
//!   runs: the command (`ferry` is the binary under test), args and
//!   environment (`env`, `envFrom` Secrets) of the spec, in a private mount
//!   namespace (`unshare --mount`) where its volumes are bind-mounted at
//!   their mount paths and device paths and a file at its
//!   terminationMessagePath. Its exit code and termination message go into
//!   the pod and Job status. Deleting a running pod or Job kills it.
//! - Any other pod created without a status (a restored one) becomes
//!   Running once its claims are bound (no process runs for it).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::fake_k8s::objects::{Key, State};
use super::fake_k8s::FakeK8s;

type Shared = Arc<Mutex<State>>;

/// Called as a container is about to start, with its command line and its
/// volume mounts (host path, container path, read-only): a test's way to act on a
/// volume at a fixed point between two Jobs.
pub type StartHook = Box<dyn Fn(&[String], &[(PathBuf, String, bool)]) + Send>;
type Hook = Arc<Mutex<Option<StartHook>>>;

/// The image a Job must run to be pulled.
pub const MOVER_IMAGE: &str = "ferry-test/ferry:dev";
/// The one node of the fake cluster.
pub const NODE: &str = "node-1";

pub struct Kubelet {
    pub root: tempfile::TempDir,
    state: Shared,
    stop: Arc<AtomicBool>,
    /// Running containers: pod key -> process id.
    running: Arc<Mutex<HashMap<Key, u32>>>,
    hook: Hook,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn key(group: &str, resource: &str, ns: &str, name: &str) -> Key {
    (group.into(), resource.into(), ns.into(), name.into())
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

impl Kubelet {
    /// Starts the kubelet of `fake`, seeding the node and the
    /// external-snapshotter CRDs.
    pub fn start(fake: &FakeK8s) -> Kubelet {
        Self::start_with_images(fake, &[MOVER_IMAGE])
    }

    /// The same, pulling `images` (a Job with another image gets
    /// ErrImagePull).
    pub fn start_with_images(fake: &FakeK8s, images: &[&str]) -> Kubelet {
        let images: Arc<Vec<String>> = Arc::new(images.iter().map(|i| i.to_string()).collect());
        for crd in [
            "volumesnapshotclasses",
            "volumesnapshotcontents",
            "volumesnapshots",
        ] {
            fake.seed_fixture(&format!(
                "manifests/external-snapshotter/crds/snapshot.storage.k8s.io_{crd}.yaml"
            ));
        }
        fake.seed(json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}));
        // Mount points of the movers live under /ferry, covered by a tmpfs
        // in each container's mount namespace.
        std::fs::create_dir_all("/ferry").unwrap();
        let root = tempfile::tempdir().unwrap();
        for d in ["pv", "snapshots", "containers"] {
            std::fs::create_dir_all(root.path().join(d)).unwrap();
        }
        fake.state().volume_root = Some(root.path().join("pv"));
        let mut k = Kubelet {
            root,
            state: fake.state.clone(),
            stop: Arc::new(AtomicBool::new(false)),
            running: Arc::default(),
            hook: Arc::default(),
            thread: None,
        };
        let (state, stop, running) = (k.state.clone(), k.stop.clone(), k.running.clone());
        let hook = k.hook.clone();
        let root = k.root.path().to_path_buf();
        k.thread = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                tick(&state, &root, &running, &images, &hook);
                std::thread::sleep(Duration::from_millis(50));
            }
        }));
        k
    }

    /// The directory (or, for a block PVC, the file) of a bound PVC.
    pub fn volume(&self, ns: &str, pvc: &str) -> Option<PathBuf> {
        let st = self.state.lock().unwrap();
        let p = st
            .objects
            .get(&key("", "persistentvolumeclaims", ns, pvc))?;
        let pv = s(p, "/spec/volumeName");
        (!pv.is_empty() && s(p, "/status/phase") == "Bound")
            .then(|| self.root.path().join("pv").join(pv))
    }

    /// Waits until the PVC is bound and returns its directory or file.
    pub fn wait_volume(&self, ns: &str, pvc: &str) -> PathBuf {
        for _ in 0..200 {
            if let Some(p) = self.volume(ns, pvc) {
                return p;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("PVC {ns}/{pvc} was not bound");
    }

    /// Kills every running container (as the OOM killer or a node loss
    /// would); returns how many.
    pub fn kill_running(&self) -> usize {
        let running = self.running.lock().unwrap();
        for pid in running.values() {
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
        running.len()
    }

    /// Calls `f` before each container starts (see [`StartHook`]).
    pub fn before_start(&self, f: impl Fn(&[String], &[(PathBuf, String, bool)]) + Send + 'static) {
        *self.hook.lock().unwrap() = Some(Box::new(f));
    }

    /// How many containers run now.
    pub fn running(&self) -> usize {
        self.running.lock().unwrap().len()
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.kill_running();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Give the killed containers' threads time to detach their loop
        // devices.
        for _ in 0..100 {
            if self.running() == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn tick(
    state: &Shared,
    root: &Path,
    running: &Arc<Mutex<HashMap<Key, u32>>>,
    images: &[String],
    hook: &Hook,
) {
    let mut st = state.lock().unwrap();
    bind_pvcs(&mut st, root);
    take_snapshots(&mut st, root);
    let l = Launcher {
        shared: state,
        root,
        running,
        hook,
    };
    start_jobs(&mut st, &l, images);
    start_waiting(&mut st, &l);
    run_pods(&mut st);
    // Pods deleted while running: their containers are killed.
    for (k, pid) in running.lock().unwrap().iter() {
        if !st.objects.contains_key(k) {
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
    }
}

/// Sets fields of a stored object with a new resourceVersion.
fn update(st: &mut State, k: &Key, f: impl FnOnce(&mut Value)) {
    st.rv += 1;
    let rv = st.rv.to_string();
    if let Some(o) = st.objects.get_mut(k) {
        f(o);
        o["metadata"]["resourceVersion"] = json!(rv);
    }
}

fn create(st: &mut State, group: &str, version: &str, resource: &str, obj: Value) {
    let served = st.catalog.find(group, version, resource).unwrap();
    let ns = obj["metadata"]["namespace"].as_str().map(str::to_string);
    let _ = st.create(&served, ns.as_deref(), obj, "kubelet", true);
}

fn event(st: &mut State, ns: &str, pod: &str, reason: &str, message: &str) {
    st.rv += 1;
    let name = format!("{pod}.{:x}", st.rv);
    create(
        st,
        "",
        "v1",
        "events",
        json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": ns},
        "involvedObject": {"kind": "Pod", "namespace": ns, "name": pod},
        "reason": reason, "message": message, "type": "Warning", "count": 1,
        "source": {"component": "kubelet"}}),
    );
}

fn items(st: &State, group: &str, resource: &str) -> Vec<(Key, Value)> {
    st.objects
        .iter()
        .filter(|(k, _)| k.0 == group && k.1 == resource)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Parses `10Mi`, `1Gi`, `512Ki`, `1000`.
fn quantity(q: &str) -> u64 {
    let units = [
        ("Ki", 1u64 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("k", 1000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
    ];
    for (u, m) in units {
        if let Some(n) = q.strip_suffix(u) {
            return n.parse::<u64>().unwrap_or(0) * m;
        }
    }
    q.parse().unwrap_or(0)
}

/// Copies a directory tree (or a file, keeping holes) with `cp -a`.
fn copy(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .args(["-a", "--sparse=always"])
        .arg(from)
        .arg(to)
        .status()
        .unwrap()
        .success();
    assert!(ok, "cp {} {}", from.display(), to.display());
}

fn bind_pvcs(st: &mut State, root: &Path) {
    for (k, pvc) in items(st, "", "persistentvolumeclaims") {
        if s(&pvc, "/status/phase") == "Bound" {
            continue;
        }
        let ns = k.2.clone();
        let pv = format!("pvc-{}", s(&pvc, "/metadata/uid"));
        let path = root.join("pv").join(&pv);
        let block = s(&pvc, "/spec/volumeMode") == "Block";
        let size = s(&pvc, "/spec/resources/requests/storage").to_string();
        let class = s(&pvc, "/spec/storageClassName").to_string();
        // WaitForFirstConsumer: the claim stays Pending until a pod using
        // it is scheduled, and its volume is made on that pod's node.
        let node = match wffc(st, &class) {
            false => None,
            true => match consumer_node(st, &ns, &k.3) {
                Some(n) => Some(n),
                None => continue,
            },
        };
        let from = &pvc["spec"]["dataSource"];
        if s(from, "/kind") == "VolumeSnapshot" {
            let vs = st.objects.get(&key(
                "snapshot.storage.k8s.io",
                "volumesnapshots",
                &ns,
                s(from, "/name"),
            ));
            let Some(handle) = vs.and_then(|v| handle_of(st, v)) else {
                continue;
            };
            copy(&root.join("snapshots").join(handle), &path);
        } else if block {
            let f = std::fs::File::create(&path).unwrap();
            f.set_len(quantity(&size)).unwrap();
        } else {
            std::fs::create_dir_all(&path).unwrap();
        }
        let driver = st
            .objects
            .get(&key("storage.k8s.io", "storageclasses", "", &class))
            .map(|c| s(c, "/provisioner").to_string())
            .unwrap_or_else(|| "hostpath.csi.k8s.io".into());
        create(
            st,
            "",
            "v1",
            "persistentvolumes",
            json!({"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": pv},
            "spec": {"capacity": {"storage": size}, "accessModes": pvc["spec"]["accessModes"].clone(),
                "volumeMode": if block { "Block" } else { "Filesystem" }, "storageClassName": class,
                "csi": {"driver": driver, "volumeHandle": pv},
                "claimRef": {"kind": "PersistentVolumeClaim", "namespace": ns, "name": k.3}},
            "status": {"phase": "Bound"}}),
        );
        update(st, &k, |o| {
            if let Some(n) = &node {
                o["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] = json!(n);
            }
            o["spec"]["volumeName"] = json!(pv);
            o["status"] = json!({"phase": "Bound", "accessModes": o["spec"]["accessModes"].clone(),
                "capacity": {"storage": size}});
        });
    }
}

/// Whether a storage class binds on the first consumer's node.
fn wffc(st: &State, class: &str) -> bool {
    st.objects
        .get(&key("storage.k8s.io", "storageclasses", "", class))
        .is_some_and(|c| s(c, "/volumeBindingMode") == "WaitForFirstConsumer")
}

/// The node of a scheduled pod that uses the claim.
fn consumer_node(st: &State, ns: &str, claim: &str) -> Option<String> {
    items(st, "", "pods")
        .into_iter()
        .filter(|(k, _)| k.2 == ns)
        .map(|(_, p)| p)
        .find(|p| {
            !s(p, "/spec/nodeName").is_empty()
                && p["spec"]["volumes"].as_array().is_some_and(|v| {
                    v.iter()
                        .any(|v| s(v, "/persistentVolumeClaim/claimName") == claim)
                })
        })
        .map(|p| s(&p, "/spec/nodeName").to_string())
}

/// Whether every PVC the pod spec mounts is bound; with `scheduling`, a
/// claim of a WaitForFirstConsumer class may still be pending (it binds
/// once the pod is scheduled).
fn claims_bound(st: &State, ns: &str, spec: &Value, scheduling: bool) -> bool {
    let volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
    volumes.iter().all(|v| {
        let c = s(v, "/persistentVolumeClaim/claimName");
        let Some(p) = st.objects.get(&key("", "persistentvolumeclaims", ns, c)) else {
            return true;
        };
        s(p, "/status/phase") == "Bound" || (scheduling && wffc(st, s(p, "/spec/storageClassName")))
    })
}

/// The storage snapshot handle of a ready VolumeSnapshot.
fn handle_of(st: &State, vs: &Value) -> Option<String> {
    if vs["status"]["readyToUse"] != true {
        return None;
    }
    let c = st.objects.get(&key(
        "snapshot.storage.k8s.io",
        "volumesnapshotcontents",
        "",
        s(vs, "/status/boundVolumeSnapshotContentName"),
    ))?;
    Some(s(c, "/status/snapshotHandle").to_string()).filter(|h| !h.is_empty())
}

fn take_snapshots(st: &mut State, root: &Path) {
    for (k, vs) in items(st, "snapshot.storage.k8s.io", "volumesnapshots") {
        if vs
            .get("status")
            .is_some_and(|s| s.get("readyToUse").is_some() || s.get("error").is_some())
        {
            continue;
        }
        let ns = k.2.clone();
        let src = &vs["spec"]["source"];
        let content = if !s(src, "/persistentVolumeClaimName").is_empty() {
            let pvc = s(src, "/persistentVolumeClaimName");
            let Some(pv) = st
                .objects
                .get(&key("", "persistentvolumeclaims", &ns, pvc))
                .map(|p| s(p, "/spec/volumeName").to_string())
                .filter(|p| !p.is_empty())
            else {
                continue;
            };
            let handle = format!("snap-{}", s(&vs, "/metadata/uid"));
            copy(
                &root.join("pv").join(&pv),
                &root.join("snapshots").join(&handle),
            );
            let class = s(&vs, "/spec/volumeSnapshotClassName").to_string();
            let driver = st
                .objects
                .get(&key(
                    "snapshot.storage.k8s.io",
                    "volumesnapshotclasses",
                    "",
                    &class,
                ))
                .map(|c| s(c, "/driver").to_string())
                .unwrap_or_default();
            let content = format!("snapcontent-{}", s(&vs, "/metadata/uid"));
            create(
                st,
                "snapshot.storage.k8s.io",
                "v1",
                "volumesnapshotcontents",
                json!({
                "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent",
                "metadata": {"name": content},
                "spec": {"deletionPolicy": "Delete", "driver": driver, "source": {"volumeHandle": pv},
                    "volumeSnapshotClassName": class,
                    "volumeSnapshotRef": {"kind": "VolumeSnapshot", "namespace": ns, "name": k.3, "uid": s(&vs, "/metadata/uid")}}}),
            );
            // Status is not taken on create (a status subresource).
            let ck = key(
                "snapshot.storage.k8s.io",
                "volumesnapshotcontents",
                "",
                &content,
            );
            update(
                st,
                &ck,
                |o| {
                    o["status"] =
                        json!({"snapshotHandle": handle, "readyToUse": true, "restoreSize": 0})
                },
            );
            content
        } else {
            let content = s(src, "/volumeSnapshotContentName").to_string();
            let ck = key(
                "snapshot.storage.k8s.io",
                "volumesnapshotcontents",
                "",
                &content,
            );
            let Some(c) = st.objects.get(&ck) else {
                continue;
            };
            let handle = s(c, "/spec/source/snapshotHandle").to_string();
            if handle.is_empty() || !root.join("snapshots").join(&handle).exists() {
                update(
                    st,
                    &k,
                    |o| o["status"] = json!({"readyToUse": false, "error": {"message": format!("snapshot {handle} not found")}}),
                );
                continue;
            }
            update(st, &ck, |o| {
                o["status"] = json!({"snapshotHandle": handle, "readyToUse": true})
            });
            content
        };
        update(st, &k, |o| {
            o["status"] = json!({"boundVolumeSnapshotContentName": content, "readyToUse": true,
                "creationTime": "2026-12-01T00:00:00Z"})
        });
    }
}

/// What starting a container needs besides the state.
struct Launcher<'a> {
    shared: &'a Shared,
    root: &'a Path,
    running: &'a Arc<Mutex<HashMap<Key, u32>>>,
    hook: &'a Hook,
}

fn start_jobs(st: &mut State, l: &Launcher, images: &[String]) {
    for (k, job) in items(st, "batch", "jobs") {
        if job["metadata"]["annotations"]["kubelet.test/pod"].is_string() {
            continue;
        }
        let ns = k.2.clone();
        // As the scheduler does: wait until the pod's PVCs are bound, but
        // for those that wait for their first consumer.
        if !claims_bound(st, &ns, &job["spec"]["template"]["spec"], true) {
            continue;
        }
        let pod_name = format!("{}-{:05x}", k.3, st.rv % 0xfffff);
        update(st, &k, |o| {
            o["metadata"]["annotations"]["kubelet.test/pod"] = json!(pod_name)
        });
        let mut spec = job["spec"]["template"]["spec"].clone();
        let mut labels = job["spec"]["template"]["metadata"]["labels"].clone();
        labels["job-name"] = json!(k.3);
        let selector = spec["nodeSelector"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let nodes = items(st, "", "nodes");
        let node = nodes.iter().find(|(_, n)| {
            selector
                .iter()
                .all(|(l, v)| n["metadata"]["labels"][l] == *v)
        });
        if let Some((nk, _)) = node {
            spec["nodeName"] = json!(nk.3);
        }
        create(
            st,
            "",
            "v1",
            "pods",
            json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod_name, "namespace": ns, "labels": labels,
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": k.3, "controller": true}]},
            "spec": spec.clone(), "status": {"phase": "Pending"}}),
        );
        let pk = key("", "pods", &ns, &pod_name);
        let image = s(&spec, "/containers/0/image").to_string();
        if node.is_none() {
            let msg = format!("0/{} nodes are available: {} node(s) didn't match Pod's node affinity/selector. preemption: 0/{} nodes are available.", nodes.len(), nodes.len(), nodes.len());
            event(st, &ns, &pod_name, "FailedScheduling", &msg);
            update(
                st,
                &pk,
                |o| o["status"] = json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": msg}]}),
            );
        } else if !images.contains(&image) {
            let msg = format!("Failed to pull image \"{image}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": not found");
            event(st, &ns, &pod_name, "Failed", &msg);
            event(st, &ns, &pod_name, "Failed", "Error: ErrImagePull");
            update(st, &pk, |o| {
                o["status"] = json!({"phase": "Pending", "containerStatuses": [{"name": "mover", "ready": false, "restartCount": 0, "image": image,
                "state": {"waiting": {"reason": "ErrImagePull", "message": msg}}}]})
            });
        } else if !claims_bound(st, &ns, &spec, false) {
            // Scheduled; the container starts once its claims are bound.
            update(st, &pk, |o| {
                o["metadata"]["annotations"]["kubelet.test/waiting"] = json!(k.3)
            });
        } else {
            launch(st, l, (k.clone(), pk), &spec);
        }
    }
}

/// Pods created without a status (restored ones; not a Job's, which the
/// kubelet makes itself) start running once their claims are bound: the
/// phase and every container's state say so. Their containers run no
/// process; `pods/exec` runs its command in the pod's first volume.
fn run_pods(st: &mut State) {
    for (pk, pod) in items(st, "", "pods") {
        if !pod["status"]["phase"].is_null() || !claims_bound(st, &pk.2, &pod["spec"], false) {
            continue;
        }
        let started = "2026-01-01T00:00:00Z";
        let statuses: Vec<Value> = (pod["spec"]["containers"].as_array().into_iter().flatten())
            .map(|c| {
                json!({"name": c["name"], "image": c["image"], "ready": true, "started": true,
                "restartCount": 0, "state": {"running": {"startedAt": started}}})
            })
            .collect();
        update(st, &pk, |o| {
            o["status"] = json!({"phase": "Running", "startTime": started,
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": statuses})
        });
    }
}

/// Starts the containers of scheduled pods whose claims got bound.
fn start_waiting(st: &mut State, l: &Launcher) {
    for (pk, pod) in items(st, "", "pods") {
        let job = s(&pod, "/metadata/annotations/kubelet.test~1waiting").to_string();
        if job.is_empty() || !claims_bound(st, &pk.2, &pod["spec"], false) {
            continue;
        }
        update(st, &pk, |o| {
            o["metadata"]["annotations"]
                .as_object_mut()
                .unwrap()
                .remove("kubelet.test/waiting");
        });
        let jk = key("batch", "jobs", &pk.2, &job);
        launch(st, l, (jk, pk), &pod["spec"]);
    }
}

fn launch(st: &mut State, l: &Launcher, (jk, pk): (Key, Key), spec: &Value) {
    match container(st, l.root, &pk.2, &pk.3, spec) {
        Ok(cmd) => {
            if let Some(f) = &*l.hook.lock().unwrap() {
                let mounts: Vec<(PathBuf, String, bool)> = (cmd.mounts.iter())
                    .map(|m| (m.0.clone(), m.1.clone(), m.2))
                    .collect();
                f(&cmd.argv, &mounts);
            }
            run(
                st,
                l.shared.clone(),
                l.running.clone(),
                (jk, pk),
                cmd,
                l.root,
            )
        }
        Err(e) => {
            let (ns, pod) = (pk.2.clone(), pk.3.clone());
            event(st, &ns, &pod, "FailedMount", &e);
        }
    }
}

/// What runs in a container.
struct Container {
    env: BTreeMap<String, String>,
    /// (host path, container path, read-only, is a file)
    mounts: Vec<(PathBuf, String, bool, bool)>,
    argv: Vec<String>,
    termination: String,
    log: PathBuf,
    /// Loop devices attached for `volumeDevices`, detached when it ends.
    loops: Vec<String>,
}

/// Attaches a block PVC's file as a loop device (`losetup`, read-only when
/// the claim is), so that the container sees a real block special file at
/// its devicePath. Where loop devices are not available the file itself is
/// bound there, and the container reads a regular file instead; it says so.
fn attach(file: &Path, read_only: bool) -> Option<String> {
    let mut cmd = Command::new("losetup");
    if read_only {
        cmd.arg("--read-only");
    }
    let out = cmd.args(["-f", "--show"]).arg(file).output();
    match out {
        Ok(o) if o.status.success() => Some(String::from_utf8_lossy(&o.stdout).trim().to_string()),
        other => {
            let why = match other {
                Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                Err(e) => e.to_string(),
            };
            eprintln!(
                "fake kubelet: no loop device ({why}); the block volume {} is given to the container as a regular file",
                file.display()
            );
            None
        }
    }
}

/// Detaches loop devices.
pub fn detach(loops: &[String]) {
    for l in loops {
        let _ = Command::new("losetup").args(["-d", l]).status();
    }
}

fn container(
    st: &State,
    root: &Path,
    ns: &str,
    pod: &str,
    spec: &Value,
) -> Result<Container, String> {
    let c = &spec["containers"][0];
    let dir = root.join("containers").join(pod);
    std::fs::create_dir_all(&dir).unwrap();
    let mut env = BTreeMap::new();
    env.insert(
        "PATH".to_string(),
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
    );
    env.insert("HOSTNAME".to_string(), pod.to_string());
    for from in c["envFrom"].as_array().into_iter().flatten() {
        let name = s(from, "/secretRef/name");
        let secret = st
            .objects
            .get(&key("", "secrets", ns, name))
            .ok_or_else(|| format!("MountVolume.SetUp failed: secret \"{name}\" not found"))?;
        for (k, v) in secret["data"].as_object().into_iter().flatten() {
            let bytes = base64_decode(v.as_str().unwrap_or_default());
            env.insert(k.clone(), String::from_utf8_lossy(&bytes).into_owned());
        }
    }
    for e in c["env"].as_array().into_iter().flatten() {
        env.insert(s(e, "/name").into(), s(e, "/value").into());
    }
    let mut sources = BTreeMap::new();
    for v in spec["volumes"].as_array().into_iter().flatten() {
        let name = s(v, "/name").to_string();
        let path = if v.get("emptyDir").is_some() {
            let p = dir.join(format!("empty-{name}"));
            std::fs::create_dir_all(&p).unwrap();
            p
        } else {
            let claim = s(v, "/persistentVolumeClaim/claimName");
            let pvc = st
                .objects
                .get(&key("", "persistentvolumeclaims", ns, claim))
                .filter(|p| s(p, "/status/phase") == "Bound")
                .ok_or_else(|| {
                    format!("persistentvolumeclaim \"{claim}\" not found or not bound")
                })?;
            root.join("pv").join(s(pvc, "/spec/volumeName"))
        };
        sources.insert(name, (path, v["persistentVolumeClaim"]["readOnly"] == true));
    }
    let mut mounts = Vec::new();
    for m in c["volumeMounts"].as_array().into_iter().flatten() {
        let (p, ro) = sources
            .get(s(m, "/name"))
            .cloned()
            .ok_or("volume not found")?;
        mounts.push((
            p,
            s(m, "/mountPath").to_string(),
            ro || m["readOnly"] == true,
            false,
        ));
    }
    let mut loops = Vec::new();
    for d in c["volumeDevices"].as_array().into_iter().flatten() {
        let (p, ro) = sources
            .get(s(d, "/name"))
            .cloned()
            .ok_or("volume not found")?;
        let dev = match attach(&p, ro) {
            Some(l) => {
                loops.push(l.clone());
                PathBuf::from(l)
            }
            None => p,
        };
        mounts.push((dev, s(d, "/devicePath").to_string(), ro, true));
    }
    let termination = match s(c, "/terminationMessagePath") {
        "" => "/dev/termination-log".to_string(),
        t => t.to_string(),
    };
    let mut argv: Vec<String> = c["command"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(c["args"].as_array().into_iter().flatten())
        .map(|a| a.as_str().unwrap_or_default().to_string())
        .collect();
    if argv.first().map(String::as_str) == Some("ferry") {
        argv[0] = env!("CARGO_BIN_EXE_ferry").to_string();
    }
    Ok(Container {
        env,
        mounts,
        argv,
        termination,
        log: dir.join("log"),
        loops,
    })
}

/// The shell script that sets up the container's mount namespace, then
/// execs its command (`"$@"`).
fn setup_script(c: &Container, termination_file: &Path) -> String {
    let q = |p: &str| format!("'{}'", p.replace('\'', "'\\''"));
    let mut lines = vec![
        "set -e".to_string(),
        "mount -t tmpfs tmpfs /ferry".to_string(),
    ];
    let mut all = c.mounts.clone();
    all.push((
        termination_file.to_path_buf(),
        c.termination.clone(),
        false,
        true,
    ));
    for (src, dst, ro, file) in &all {
        let parent = Path::new(dst).parent().unwrap().display().to_string();
        lines.push(format!("mkdir -p {}", q(&parent)));
        if *file {
            lines.push(format!("[ -e {d} ] || touch {d}", d = q(dst)));
        } else {
            lines.push(format!("mkdir -p {}", q(dst)));
        }
        lines.push(format!(
            "mount --bind {} {}",
            q(&src.display().to_string()),
            q(dst)
        ));
        if *ro {
            lines.push(format!("mount -o remount,bind,ro {}", q(dst)));
        }
    }
    lines.push("exec \"$@\"".into());
    lines.join("\n")
}

/// Starts a container; a thread waits for it and records its end.
fn run(
    st: &mut State,
    shared: Shared,
    running: Arc<Mutex<HashMap<Key, u32>>>,
    (job, pod): (Key, Key),
    c: Container,
    root: &Path,
) {
    let term_file = root.join("containers").join(&pod.3).join("termination-log");
    std::fs::write(&term_file, b"").unwrap();
    let script = setup_script(&c, &term_file);
    let log = std::fs::File::create(&c.log).unwrap();
    let child = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            "sh",
        ])
        .args(&c.argv)
        .env_clear()
        .envs(&c.env)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn();
    update(
        st,
        &pod,
        |o| o["status"] = json!({"phase": "Running", "containerStatuses": [{"name": "mover", "ready": true, "state": {"running": {"startedAt": "2026-12-01T00:00:00Z"}}}]}),
    );
    update(st, &job, |o| o["status"] = json!({"active": 1}));
    let loops = c.loops.clone();
    let mut child = match child {
        Ok(ch) => ch,
        Err(e) => {
            detach(&loops);
            return finish(st, &job, &pod, 128, format!("cannot start: {e}"));
        }
    };
    running.lock().unwrap().insert(pod.clone(), child.id());
    std::thread::spawn(move || {
        let status = child.wait().unwrap();
        detach(&loops);
        running.lock().unwrap().remove(&pod);
        use std::os::unix::process::ExitStatusExt;
        let code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        let mut message = std::fs::read_to_string(&term_file).unwrap_or_default();
        message.truncate(4096);
        finish(&mut shared.lock().unwrap(), &job, &pod, code, message);
    });
}

fn finish(st: &mut State, job: &Key, pod: &Key, code: i32, message: String) {
    let ok = code == 0;
    let reason = match code {
        0 => "Completed",
        137 => "OOMKilled",
        _ => "Error",
    };
    update(st, pod, |o| {
        o["status"] = json!({"phase": if ok { "Succeeded" } else { "Failed" },
        "containerStatuses": [{"name": "mover", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": code, "reason": reason, "message": message}}}]})
    });
    update(st, job, |o| {
        o["status"] = if ok {
            json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
        } else {
            json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]})
        }
    });
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0);
    for v in s.bytes().filter_map(val) {
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// Base64 of `data`, for Secrets the tests seed.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
