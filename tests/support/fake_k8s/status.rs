//! `Status` error bodies exactly as the API server writes them
//! (apimachinery `pkg/api/errors`), and the response type carrying them.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// An error answer: HTTP code plus a `Status` body.
#[derive(Debug)]
pub struct ApiError(pub u16, pub Value);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.0).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (code, axum::Json(self.1)).into_response()
    }
}

fn status(code: u16, reason: &str, message: String, details: Value) -> ApiError {
    let mut body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code});
    if !details.is_null() {
        body["details"] = details;
    }
    ApiError(code, body)
}

/// `resource.group` or `resource` as the server names a resource in messages.
pub fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

fn details(group: &str, resource: &str, name: &str) -> Value {
    let mut d = json!({"name": name, "kind": resource});
    if !group.is_empty() {
        d["group"] = json!(group);
    }
    d
}

pub fn not_found(group: &str, resource: &str, name: &str) -> ApiError {
    let msg = format!("{} \"{name}\" not found", qualified(group, resource));
    status(404, "NotFound", msg, details(group, resource, name))
}

pub fn page_not_found() -> ApiError {
    status(
        404,
        "NotFound",
        "the server could not find the requested resource".into(),
        Value::Null,
    )
}

pub fn already_exists(group: &str, resource: &str, name: &str) -> ApiError {
    let msg = format!("{} \"{name}\" already exists", qualified(group, resource));
    status(409, "AlreadyExists", msg, details(group, resource, name))
}

pub fn conflict(group: &str, resource: &str, name: &str) -> ApiError {
    let msg = format!(
        "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
        qualified(group, resource)
    );
    status(409, "Conflict", msg, details(group, resource, name))
}

pub fn expired() -> ApiError {
    status(410, "Expired", "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into(), Value::Null)
}

pub fn forbidden(group: &str, resource: &str, verb: &str, namespace: Option<&str>) -> ApiError {
    let scope = match namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".into(),
    };
    let msg = format!(
        "{} is forbidden: User \"system:serviceaccount:ferry:ferry\" cannot {verb} resource \"{resource}\" in API group \"{group}\" {scope}",
        qualified(group, resource)
    );
    let mut d = json!({"kind": resource});
    if !group.is_empty() {
        d["group"] = json!(group);
    }
    status(403, "Forbidden", msg, d)
}

pub fn invalid(group: &str, resource: &str, name: &str, field: &str, why: &str) -> ApiError {
    let msg = format!(
        "{} \"{name}\" is invalid: {field}: {why}",
        qualified(group, resource)
    );
    let mut d = details(group, resource, name);
    d["causes"] = json!([{"reason": "FieldValueInvalid", "message": why, "field": field}]);
    status(422, "Invalid", msg, d)
}

pub fn namespace_not_found(ns: &str) -> ApiError {
    not_found("", "namespaces", ns)
}

pub fn bad_request(message: String) -> ApiError {
    status(400, "BadRequest", message, Value::Null)
}

pub fn unavailable(group: &str, version: &str) -> ApiError {
    status(
        503,
        "ServiceUnavailable",
        format!("the server is currently unable to handle the request ({group}/{version})"),
        Value::Null,
    )
}

pub fn unauthorized() -> ApiError {
    status(401, "Unauthorized", "Unauthorized".into(), Value::Null)
}
