//! A fake Kubernetes API server over real HTTP on 127.0.0.1, serving the
//! real discovery captures and manifests, with faults the tests switch on.

pub mod catalog;
mod crd;
pub mod exec;
pub mod fields;
pub mod handlers;
pub mod list;
pub mod logs;
pub mod objects;
pub mod status;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Value};

pub use objects::{Faults, State};

/// A running fake API server; stops when dropped.
pub struct FakeK8s {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeK8s {
    /// Starts an empty cluster: namespaces default, kube-system, kube-public.
    pub fn start() -> Self {
        let state = Arc::new(Mutex::new(State::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let app = axum::Router::new()
                    .route(
                        "/api/v1/namespaces/{ns}/pods/{pod}/exec",
                        axum::routing::any(exec::handle),
                    )
                    .route(
                        "/api/v1/namespaces/{ns}/pods/{pod}/log",
                        axum::routing::get(logs::handle),
                    )
                    .fallback(handlers::handle)
                    .with_state(shared);
                // Not graceful: clients keep idle connections open, and the
                // runtime's end closes them all.
                tokio::select! {
                    r = axum::serve(listener, app) => r.unwrap(),
                    _ = stop_rx => {}
                }
            });
        });
        let fake = FakeK8s {
            addr: addr_rx.recv().unwrap(),
            state,
            shutdown: Some(stop_tx),
            thread: Some(thread),
        };
        for ns in ["default", "kube-system", "kube-public"] {
            fake.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
        }
        fake
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Switches faults on or off.
    pub fn faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut self.state().faults)
    }

    /// Writes a kubeconfig pointing at this server into `dir`.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join(format!("kubeconfig-{}", self.addr.port()));
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\ncurrent-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
            self.url()
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Stores an object as if created long ago: namespace created when
    /// missing, CRDs established at once, the given status kept.
    pub fn seed(&self, obj: Value) -> Value {
        let mut state = self.state();
        let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        let served = state
            .catalog
            .find_kind(&api_version, &kind)
            .unwrap_or_else(|| panic!("fake does not serve {api_version} {kind}"));
        let ns = served.namespaced.then(|| {
            obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_string()
        });
        if let Some(ns) = &ns {
            let ns_served = state.catalog.find("", "v1", "namespaces").unwrap();
            let ns_obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            let _ = state.create(&ns_served, None, ns_obj, "seed", true);
        }
        let status = obj.get("status").cloned();
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let created = state
            .create(&served, ns.as_deref(), obj, "kubectl-create", true)
            .unwrap_or_else(|e| panic!("seeding {kind} {name}: {:?}", e.1));
        match status.filter(|s| s.as_object().is_some_and(|m| !m.is_empty())) {
            Some(status) => {
                let body = json!({"metadata": {"name": name}, "status": status});
                state
                    .replace(&served, ns.as_deref(), &name, body, true)
                    .unwrap()
            }
            None => created,
        }
    }

    /// Seeds every document of a fixture manifest file.
    pub fn seed_fixture(&self, rel: &str) {
        for doc in super::fixture_docs(rel) {
            self.seed(doc);
        }
    }

    /// Live object by group (empty = core), resource, namespace and name.
    pub fn object(
        &self,
        group: &str,
        resource: &str,
        ns: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let key = (
            group.to_string(),
            resource.to_string(),
            ns.unwrap_or("").to_string(),
            name.to_string(),
        );
        self.state().objects.get(&key).cloned()
    }

    /// Requests received so far whose "METHOD path?query" contains `needle`.
    pub fn requests_matching(&self, needle: &str) -> Vec<String> {
        self.state()
            .requests
            .iter()
            .filter(|r| r.contains(needle))
            .cloned()
            .collect()
    }
}

impl Drop for FakeK8s {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
