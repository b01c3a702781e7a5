//! `pods/exec` over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`):
//! the command of the query really runs, as given (no shell), in the
//! directory of the pod's first PVC (the fake kubelet's volume directory);
//! stdout on channel 1, stderr on 2, the `Status` on 3.

use std::path::PathBuf;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path as AxPath, RawQuery, State as AxState};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::handlers::Shared;
use super::status as st;

/// Decodes one `application/x-www-form-urlencoded` value.
fn decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match h.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(x) => {
                        out.push(x);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn params(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

pub async fn handle(
    AxState(shared): AxState<Shared>,
    AxPath((ns, pod)): AxPath<(String, String)>,
    RawQuery(q): RawQuery,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let q = q.unwrap_or_default();
    let ps = params(&q);
    let command: Vec<String> = ps
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    let container = ps
        .iter()
        .find(|(k, _)| k == "container")
        .map(|(_, v)| v.clone());
    let cwd = {
        let mut state = shared.lock().unwrap();
        state
            .requests
            .push(format!("GET /api/v1/namespaces/{ns}/pods/{pod}/exec?{q}"));
        if state.faults.forbidden.contains("pods/exec") {
            return st::forbidden("", "pods/exec", "create", Some(&ns)).into_response();
        }
        let key = (String::new(), "pods".to_string(), ns.clone(), pod.clone());
        let Some(p) = state.objects.get(&key).cloned() else {
            return st::not_found("", "pods", &pod).into_response();
        };
        let names: Vec<&str> = p["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str())
            .collect();
        let c = container
            .clone()
            .unwrap_or_else(|| names.first().unwrap_or(&"").to_string());
        if !names.contains(&c.as_str()) {
            return st::bad_request(format!("container {c} is not valid for pod {pod}"))
                .into_response();
        }
        if command.is_empty() {
            return st::bad_request("you must specify at least 1 command".into()).into_response();
        }
        volume_dir(&state, &ns, &p)
    };
    let Ok(ws) = ws else {
        return st::bad_request("exec needs a WebSocket upgrade".into()).into_response();
    };
    ws.protocols(["v5.channel.k8s.io", "v4.channel.k8s.io"])
        .on_upgrade(move |socket| run(socket, command, cwd))
}

/// The directory of the pod's first PVC, or `/`.
fn volume_dir(state: &super::objects::State, ns: &str, pod: &Value) -> PathBuf {
    let root = state.volume_root.clone();
    let claim = pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|v| v["persistentVolumeClaim"]["claimName"].as_str());
    let pv = claim.and_then(|c| {
        let key = (
            String::new(),
            "persistentvolumeclaims".to_string(),
            ns.to_string(),
            c.to_string(),
        );
        state.objects.get(&key)?["spec"]["volumeName"]
            .as_str()
            .map(str::to_string)
    });
    match (root, pv) {
        (Some(r), Some(pv)) if r.join(&pv).is_dir() => r.join(pv),
        _ => PathBuf::from("/"),
    }
}

async fn run(mut socket: WebSocket, command: Vec<String>, cwd: PathBuf) {
    let cmd = command.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&cmd[0])
            .args(&cmd[1..])
            .current_dir(&cwd)
            .output()
    })
    .await
    .unwrap();
    let frame = |ch: u8, data: &[u8]| {
        let mut v = vec![ch];
        v.extend_from_slice(data);
        Message::Binary(v.into())
    };
    let status = match &out {
        Err(e) => json!({"metadata": {}, "status": "Failure", "reason": "InternalError",
            "message": format!("failed to exec in container: exec: \"{}\": {e}", command[0])}),
        Ok(o) if o.status.success() => json!({"metadata": {}, "status": "Success"}),
        Ok(o) => {
            let code = o.status.code().unwrap_or(137);
            json!({"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                "message": format!("command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"),
                "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}})
        }
    };
    if let Ok(o) = &out {
        if !o.stdout.is_empty() {
            let _ = socket.send(frame(1, &o.stdout)).await;
        }
        if !o.stderr.is_empty() {
            let _ = socket.send(frame(2, &o.stderr)).await;
        }
    }
    let _ = socket.send(frame(3, status.to_string().as_bytes())).await;
    let _ = socket.send(Message::Close(None)).await;
}
