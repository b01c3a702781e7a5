//! Restore exec hooks: Velero's `post.hook.restore.velero.io/{container,
//! command,on-error,exec-timeout,wait-timeout,wait-for-ready}` annotations
//! of the pods a restore created, and the same under `ferry.io/` (which
//! wins). Each runs through `pods/exec` in the restored pod's container
//! once that container is running. Velero's init-container restore hooks
//! (`init.hook.restore.velero.io/...`) are not supported.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::api::{self, text, Api};
use super::hooks::{exec, hook_of, result, Hook, HookResult, Phase};
use crate::engine::k8s_restore::{Action, K8sRestoreReport};
use crate::source::k8s::client::Connection;
use crate::source::k8s::K8sFile;

/// A stored pod with restore hook annotations: its file and object.
#[derive(Debug, Clone)]
pub struct HookedPod {
    pub path: String,
    pub pod: Value,
}

/// The stored pods that carry a restore hook.
pub fn hooked_pods(files: &[K8sFile]) -> Vec<HookedPod> {
    let mut out = Vec::new();
    for f in files {
        let Some(p) = crate::source::k8s::clean::parse_path(&f.path) else {
            continue;
        };
        if p.group != "core" || p.resource != "pods" || p.is_status {
            continue;
        }
        let Ok(pod) = serde_json::from_slice::<Value>(&f.data) else {
            continue;
        };
        let hooked = pod["metadata"]["annotations"]
            .as_object()
            .is_some_and(|a| a.keys().any(|k| k.starts_with("post.hook.restore.")));
        if hooked {
            out.push(HookedPod {
                path: f.path.clone(),
                pod,
            });
        }
    }
    out
}

/// Runs the restore hooks of the hooked pods that `report` says were
/// created, in their target namespaces, all pods at once.
pub async fn run_restore_hooks(
    conn: &Connection,
    pods: &[HookedPod],
    report: &K8sRestoreReport,
) -> Vec<HookResult> {
    let created = pods.iter().filter_map(|h| {
        let o = report
            .objects
            .iter()
            .find(|o| o.path == h.path && o.action == Action::Create)?;
        Some((o.namespace.clone().unwrap_or_default(), &h.pod))
    });
    let runs = created.map(|(ns, pod)| async move { one(conn, &ns, pod).await });
    let done = futures::future::join_all(runs).await;
    done.into_iter().flatten().collect()
}

/// The restore hook of one restored pod; none when its annotations name
/// no command.
async fn one(conn: &Connection, ns: &str, pod: &Value) -> Option<HookResult> {
    let name = text(pod, "/metadata/name");
    let h = match hook_of(pod, Phase::Restore) {
        Ok(h) => h?,
        Err(e) => return Some(bad_annotation(ns, name, e)),
    };
    if let Err(e) = wait_running(conn, ns, name, &h).await {
        let mut r = result(ns, name, &h, Phase::Restore);
        r.error = Some(e);
        return Some(r);
    }
    Some(exec(conn, ns, name, &h, Phase::Restore).await)
}

/// A hook whose annotations cannot be used: a failure (it cannot say it
/// may be ignored).
fn bad_annotation(ns: &str, name: &str, why: String) -> HookResult {
    let h = Hook {
        container: String::new(),
        command: Vec::new(),
        fail: true,
        timeout: Duration::ZERO,
        wait: Duration::ZERO,
        wait_for_ready: false,
    };
    let mut r = result(ns, name, &h, Phase::Restore);
    r.error = Some(why);
    r
}

/// Waits until the hook's container runs (or is ready), at most `h.wait`.
async fn wait_running(conn: &Connection, ns: &str, name: &str, h: &Hook) -> Result<(), String> {
    let a = Api { conn };
    let started = Instant::now();
    let want = if h.wait_for_ready { "ready" } else { "running" };
    loop {
        let pod = a
            .get(api::PODS, Some(ns), name)
            .await
            .map_err(|e| e.to_string())?;
        let statuses = pod["status"]["containerStatuses"].as_array();
        let c = statuses
            .into_iter()
            .flatten()
            .find(|c| text(c, "/name") == h.container);
        let up = c.is_some_and(|c| match h.wait_for_ready {
            true => c["ready"] == true,
            false => c["state"]["running"].is_object(),
        });
        if up {
            return Ok(());
        }
        let phase = text(&pod, "/status/phase");
        if phase == "Succeeded" || phase == "Failed" {
            return Err(format!(
                "pod {ns}/{name} ended ({phase}) before its hook ran"
            ));
        }
        if started.elapsed() >= h.wait {
            return Err(format!(
                "container {} of pod {ns}/{name} was not {want} within the wait-timeout of {}s",
                h.container,
                h.wait.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
