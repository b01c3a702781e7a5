//! `pods/{pod}/log`: the container log the fake kubelet keeps for a pod it
//! ran (`<kubelet root>/containers/<pod>/log`), as plain text, with
//! `tailLines`.

use axum::extract::{Path as AxPath, RawQuery, State as AxState};
use axum::response::{IntoResponse, Response};

use super::handlers::Shared;
use super::status as st;

pub async fn handle(
    AxState(shared): AxState<Shared>,
    AxPath((ns, pod)): AxPath<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = q.unwrap_or_default();
    let (exists, root) = {
        let mut state = shared.lock().unwrap();
        state
            .requests
            .push(format!("GET /api/v1/namespaces/{ns}/pods/{pod}/log?{q}"));
        let key = (String::new(), "pods".to_string(), ns.clone(), pod.clone());
        (state.objects.contains_key(&key), state.volume_root.clone())
    };
    if !exists {
        return st::not_found("", "pods", &pod).into_response();
    }
    let file = root.and_then(|r| Some(r.parent()?.join("containers").join(&pod).join("log")));
    let text = file
        .and_then(|f| std::fs::read_to_string(f).ok())
        .unwrap_or_default();
    let tail = q
        .split('&')
        .find_map(|p| p.strip_prefix("tailLines="))
        .and_then(|n| n.parse::<usize>().ok());
    let lines: Vec<&str> = text.lines().collect();
    let from = tail.map_or(0, |n| lines.len().saturating_sub(n));
    let mut body = lines[from..].join("\n");
    if !body.is_empty() {
        body.push('\n');
    }
    ([("content-type", "text/plain")], body).into_response()
}
