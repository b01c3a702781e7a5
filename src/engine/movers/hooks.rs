//! Application hooks around a volume's snapshot, from pod annotations:
//! Velero's `pre.hook.backup.velero.io/{container,command,on-error,timeout}`
//! and `post.hook.backup.velero.io/...`, and the same under
//! `pre.hook.backup.ferry.io/...` (which wins when both are set). Commands
//! run through the `pods/exec` subresource as given, not through a shell.
//! The annotations' parsing and the exec are shared with the restore hooks
//! (`restore_hooks.rs`).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::AsyncReadExt;

use super::api::text;
use crate::source::k8s::client::Connection;

/// Before the snapshot, or after it; or in a restored pod once it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Pre,
    Post,
    Restore,
}

impl Phase {
    /// The annotations' prefix (before `.velero.io/` or `.ferry.io/`).
    fn prefix(self) -> &'static str {
        match self {
            Phase::Pre => "pre.hook.backup",
            Phase::Post => "post.hook.backup",
            Phase::Restore => "post.hook.restore",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Phase::Pre => "pre",
            Phase::Post => "post",
            Phase::Restore => "restore",
        }
    }
}

impl HookResult {
    /// Whether it failed with `on-error: Fail`.
    pub fn failed(&self) -> bool {
        self.error.is_some() && self.on_error == "Fail"
    }
}

/// What one hook did, recorded in the volume manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookResult {
    pub phase: Phase,
    pub pod: String,
    pub container: String,
    pub command: Vec<String>,
    /// `Fail` or `Continue`.
    pub on_error: String,
    pub exit_code: Option<i64>,
    pub stdout: String,
    pub stderr: String,
    /// Why the hook failed (exit code, timeout, exec refused).
    pub error: Option<String>,
    pub seconds: f64,
}

pub(super) struct Hook {
    pub container: String,
    pub command: Vec<String>,
    pub fail: bool,
    /// How long the command may run.
    pub timeout: Duration,
    /// Restore hooks: how long to wait for the container to run (or be
    /// ready, with `wait_for_ready`).
    pub wait: Duration,
    pub wait_for_ready: bool,
}

/// Default hook timeout, as Velero's.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a restore hook waits for its container by default (Velero
/// waits forever; a restore that never ends is worse than a failed hook).
const DEFAULT_WAIT: Duration = Duration::from_secs(300);
/// Output kept per stream.
const KEEP: usize = 2048;

fn parse_timeout(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let n: u64 = s[..split].parse().ok()?;
    Some(Duration::from_secs(match &s[split..] {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return None,
    }))
}

/// The hook of `phase` a pod's annotations define, if any. Backup hooks
/// fail their volume by default and have a `timeout`; restore hooks
/// continue by default (as Velero's) and have `exec-timeout`,
/// `wait-timeout` and `wait-for-ready`.
pub(super) fn hook_of(pod: &Value, phase: Phase) -> Result<Option<Hook>, String> {
    let p = phase.name();
    let ann = &pod["metadata"]["annotations"];
    let get = |field: &str| {
        ["ferry.io", "velero.io"]
            .iter()
            .find_map(|d| ann[format!("{}.{d}/{field}", phase.prefix())].as_str())
    };
    let restore = phase == Phase::Restore;
    let Some(raw) = get("command") else {
        return Ok(None);
    };
    let pod_name = text(pod, "/metadata/name");
    let command: Vec<String> = match raw.trim_start().starts_with('[') {
        true => serde_json::from_str(raw).map_err(|e| {
            format!("pod {pod_name}: {p} hook command {raw:?} is not a JSON list of strings: {e}")
        })?,
        false => vec![raw.to_string()],
    };
    if command.is_empty() {
        return Err(format!("pod {pod_name}: {p} hook command is empty"));
    }
    let fail = match get("on-error").unwrap_or(if restore { "Continue" } else { "Fail" }) {
        "Fail" => true,
        "Continue" => false,
        other => {
            return Err(format!(
                "pod {pod_name}: {p} hook on-error {other:?}: expected Fail or Continue"
            ))
        }
    };
    let duration = |field: &str, default: Duration| match get(field) {
        None => Ok(default),
        Some(t) => parse_timeout(t).ok_or_else(|| {
            format!("pod {pod_name}: {p} hook {field} {t:?}: expected e.g. 30s or 2m")
        }),
    };
    let timeout = duration(
        if restore { "exec-timeout" } else { "timeout" },
        DEFAULT_TIMEOUT,
    )?;
    let wait = duration("wait-timeout", DEFAULT_WAIT)?;
    let container = get("container")
        .map(str::to_string)
        .unwrap_or_else(|| text(pod, "/spec/containers/0/name").to_string());
    Ok(Some(Hook {
        container,
        command,
        fail,
        timeout,
        wait,
        wait_for_ready: get("wait-for-ready") == Some("true"),
    }))
}

/// Runs the `phase` hooks of the pods; an error when a hook with
/// `on-error: Fail` failed (the others still ran).
pub async fn run_hooks(
    conn: &Connection,
    pods: &[Value],
    phase: Phase,
    out: &mut Vec<HookResult>,
) -> Result<(), String> {
    let mut failed = None;
    for pod in pods {
        let (ns, name) = (
            text(pod, "/metadata/namespace"),
            text(pod, "/metadata/name"),
        );
        let hook = match hook_of(pod, phase) {
            Ok(Some(h)) => h,
            Ok(None) => continue,
            Err(e) => {
                failed.get_or_insert(e);
                continue;
            }
        };
        let r = exec(conn, ns, name, &hook, phase).await;
        if let (Some(e), true) = (&r.error, hook.fail) {
            let p = phase.name();
            failed.get_or_insert(format!("{p} hook of pod {ns}/{name} failed: {e}"));
        }
        out.push(r);
    }
    failed.map_or(Ok(()), Err)
}

pub(super) async fn exec(
    conn: &Connection,
    ns: &str,
    pod: &str,
    h: &Hook,
    phase: Phase,
) -> HookResult {
    let started = Instant::now();
    let mut r = result(ns, pod, h, phase);
    let api: Api<Pod> = Api::namespaced(conn.client.clone(), ns);
    let ap = AttachParams::default()
        .container(h.container.clone())
        .stdin(false)
        .stdout(true)
        .stderr(true);
    let run = async {
        let mut p = api.exec(pod, h.command.clone(), &ap).await?;
        let (mut so, mut se) = (Vec::new(), Vec::new());
        let status = p.take_status();
        let (mut o, mut e) = (p.stdout(), p.stderr());
        let read_o = async {
            if let Some(o) = o.as_mut() {
                let _ = o.read_to_end(&mut so).await;
            }
        };
        let read_e = async {
            if let Some(e) = e.as_mut() {
                let _ = e.read_to_end(&mut se).await;
            }
        };
        tokio::join!(read_o, read_e);
        let status = match status {
            Some(s) => s.await,
            None => None,
        };
        Ok::<_, kube::Error>((status, so, se))
    };
    match tokio::time::timeout(h.timeout, run).await {
        Err(_) => r.error = Some(format!("timed out after {}s", h.timeout.as_secs())),
        Ok(Err(e)) => r.error = Some(format!("exec refused: {e}")),
        Ok(Ok((status, so, se))) => {
            let keep = |b: Vec<u8>| String::from_utf8_lossy(&b[..b.len().min(KEEP)]).into_owned();
            (r.stdout, r.stderr) = (keep(so), keep(se));
            let (code, error) = exit_of(status);
            (r.exit_code, r.error) = (code, error);
        }
    }
    r.seconds = started.elapsed().as_secs_f64();
    r
}

/// A hook's result before it ran.
pub(super) fn result(ns: &str, pod: &str, h: &Hook, phase: Phase) -> HookResult {
    HookResult {
        phase,
        pod: format!("{ns}/{pod}"),
        container: h.container.clone(),
        command: h.command.clone(),
        on_error: if h.fail { "Fail" } else { "Continue" }.into(),
        exit_code: None,
        stdout: String::new(),
        stderr: String::new(),
        error: None,
        seconds: 0.0,
    }
}

/// The exit code a `pods/exec` Status reports, and an error unless 0.
fn exit_of(
    status: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>,
) -> (Option<i64>, Option<String>) {
    let Some(s) = status else {
        return (None, Some("the exec stream ended without a status".into()));
    };
    if s.status.as_deref() == Some("Success") {
        return (Some(0), None);
    }
    let code = s
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|c| c.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
        .and_then(|c| c.message.as_deref()?.parse().ok());
    let msg = s.message.unwrap_or_else(|| "failed".into());
    (code, Some(msg))
}
