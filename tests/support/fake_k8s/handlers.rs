//! HTTP routing of the fake API server: discovery with content negotiation,
//! and list/get/create/update/patch/delete on resources and `/status`.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Query, State as AxState};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::catalog::{legacy_core_v1, legacy_core_versions, Served};
use super::list::{list, ListQuery};
use super::objects::State;
use super::status::{self as st, ApiError};

pub type Shared = Arc<Mutex<State>>;

const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct WriteQuery {
    field_manager: Option<String>,
}

pub async fn handle(
    AxState(shared): AxState<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let dead = {
        let mut state = shared.lock().unwrap();
        state.requests.push(format!(
            "{method} {}",
            uri.path_and_query().map(|p| p.as_str()).unwrap_or("")
        ));
        state
            .faults
            .drop_connections_after
            .is_some_and(|n| state.requests.len() > n)
    };
    if dead {
        // A panicking handler makes hyper drop the connection unanswered.
        std::panic::resume_unwind(Box::new("fake API server: connection dropped"));
    }
    let mut state = shared.lock().unwrap();
    match dispatch(&mut state, &method, &uri, &headers, &body) {
        Ok(resp) => resp,
        Err(err) => err.into_response(),
    }
}

fn ok(code: u16, body: Value) -> Response {
    (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response()
}

/// Whether the Accept header asks for aggregated discovery v2.
fn wants_aggregated(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept.split(',').any(|media| {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        params.contains(&"g=apidiscovery.k8s.io")
            && params.contains(&"v=v2")
            && params.contains(&"as=APIGroupDiscoveryList")
    })
}

fn dispatch(
    state: &mut State,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    if state.faults.unauthorized {
        return Err(st::unauthorized());
    }
    let path = uri.path().trim_end_matches('/');
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let aggregated = wants_aggregated(headers) && !state.faults.legacy_only;
    match segs.as_slice() {
        ["version"] => Ok(ok(
            200,
            json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake",
            "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24.0", "compiler": "gc", "platform": "linux/amd64"}),
        )),
        ["api"] | ["apis"] if aggregated => {
            state.aggregated_served += 1;
            let doc = state
                .catalog
                .aggregated(segs[0] == "api", &state.faults.failing_groups);
            Ok(([(header::CONTENT_TYPE, AGGREGATED)], doc.to_string()).into_response())
        }
        ["api"] => Ok(ok(200, legacy_core_versions())),
        ["apis"] => Ok(ok(200, state.catalog.legacy_groups())),
        ["api", "v1"] => Ok(ok(200, legacy_core_v1())),
        ["apis", g] => state
            .catalog
            .legacy_group(g)
            .map(|d| ok(200, d))
            .ok_or_else(st::page_not_found),
        ["apis", g, v] => {
            if state.faults.failing_groups.iter().any(|f| f == g) {
                return Err(st::unavailable(g, v));
            }
            state
                .catalog
                .legacy_resources(g, v)
                .map(|d| ok(200, d))
                .ok_or_else(st::page_not_found)
        }
        ["api", v, rest @ ..] => resource(state, "", v, rest, method, uri, headers, body),
        ["apis", g, v, rest @ ..] => resource(state, g, v, rest, method, uri, headers, body),
        _ => Err(st::page_not_found()),
    }
}

/// A resource request: what, in which namespace, which object, which subresource.
type Route<'a> = (Served, Option<&'a str>, Option<&'a str>, Option<&'a str>);

/// Splits `[namespaces/<ns>/]<resource>[/<name>[/<sub>]]`.
fn route<'a>(state: &State, g: &str, v: &str, rest: &[&'a str]) -> Option<Route<'a>> {
    if rest.len() >= 3 && rest[0] == "namespaces" {
        if let Some(s) = state.catalog.find(g, v, rest[2]).filter(|s| s.namespaced) {
            return Some((s, Some(rest[1]), rest.get(3).copied(), rest.get(4).copied()));
        }
    }
    let s = state.catalog.find(g, v, rest.first()?)?;
    Some((s, None, rest.get(1).copied(), rest.get(2).copied()))
}

fn parse_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let text = std::str::from_utf8(body).map_err(|e| st::bad_request(e.to_string()))?;
    match serde_json::from_str(text) {
        Ok(v) => Ok(v),
        Err(_) if ctype.contains("yaml") => {
            serde_saphyr::from_str(text).map_err(|e| st::bad_request(e.to_string()))
        }
        Err(e) => Err(st::bad_request(format!("invalid JSON body: {e}"))),
    }
}

#[allow(clippy::too_many_arguments)]
fn resource(
    state: &mut State,
    g: &str,
    v: &str,
    rest: &[&str],
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let (s, ns, name, sub) = route(state, g, v, rest).ok_or_else(st::page_not_found)?;
    if ns.is_some() && !s.namespaced {
        return Err(st::page_not_found());
    }
    let verb = match (method.as_str(), name) {
        ("GET", None) => "list",
        ("GET", Some(_)) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", _) => "delete",
        _ => return Err(st::bad_request(format!("method {method} not allowed"))),
    };
    if state
        .faults
        .forbidden
        .contains(&st::qualified(&s.group, &s.resource))
    {
        return Err(st::forbidden(&s.group, &s.resource, verb, ns));
    }
    if sub.is_some_and(|x| x != "status" || !s.subresources.iter().any(|y| y == "status")) {
        return Err(st::page_not_found());
    }
    let manager = Query::<WriteQuery>::try_from_uri(uri)
        .ok()
        .and_then(|q| q.0.field_manager)
        .unwrap_or_else(|| "unknown".into());
    if s.namespaced && ns.is_none() && verb != "list" {
        return Err(st::page_not_found());
    }
    match (verb, name) {
        ("list", _) => {
            let q = Query::<ListQuery>::try_from_uri(uri)
                .map(|q| q.0)
                .unwrap_or_default();
            Ok(ok(200, list(state, &s, ns, &q)?))
        }
        ("get", Some(n)) => Ok(ok(200, state.get(&s, ns, n)?)),
        ("create", None) => Ok(ok(
            201,
            state.create(&s, ns, parse_body(headers, body)?, &manager, false)?,
        )),
        ("update", Some(n)) => Ok(ok(
            200,
            state.replace(&s, ns, n, parse_body(headers, body)?, sub.is_some())?,
        )),
        ("patch", Some(n)) => {
            let ctype = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let patch = parse_body(headers, body)?;
            if ctype.starts_with("application/apply-patch") {
                let (code, obj) = state.apply(&s, ns, n, patch, &manager)?;
                Ok(ok(code, obj))
            } else if ctype.starts_with("application/json-patch") {
                Err(ApiError(
                    415,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 415, "reason": "UnsupportedMediaType", "message": "json-patch is not supported by the fake"}),
                ))
            } else {
                Ok(ok(200, state.merge_patch(&s, ns, n, patch)?))
            }
        }
        ("delete", Some(n)) => Ok(ok(200, state.delete(&s, ns, n)?)),
        _ => Err(st::bad_request(format!(
            "{verb} needs {} name",
            if name.is_some() { "no" } else { "a" }
        ))),
    }
}
