//! Paged listing of one resource (limit + continue), restarted from the
//! first page when the server expires the continue token (410).

use kube::core::params::ListParams;
use serde_json::Value;

use super::client::Connection;
use super::discovery::ApiResourceInfo;
use super::error::{kube_code, K8sError};
use super::rest::{collection_url, Rest};

/// How many times a list is restarted after 410 Expired before giving up.
const MAX_RESTARTS: u32 = 3;

/// The items of one complete list and the resourceVersion it was read at.
#[derive(Debug, Default)]
pub struct Listed {
    pub items: Vec<Value>,
    /// `metadata.resourceVersion` of the first page: the list's point in time.
    pub resource_version: String,
    /// Restarts caused by expired continue tokens.
    pub restarts: u32,
}

/// Lists every object of `res` (in `namespace`, or all), `page_size` at a time.
///
/// Items get `apiVersion` and `kind` filled in: servers omit them in lists.
pub async fn list_all(
    conn: &Connection,
    res: &ApiResourceInfo,
    namespace: Option<&str>,
    label_selector: Option<&str>,
    page_size: u32,
) -> Result<Listed, K8sError> {
    let url = collection_url(&res.group, &res.version, &res.resource, namespace);
    let rest = Rest::new(conn, url);
    let mut restarts = 0;
    'restart: loop {
        let mut listed = Listed {
            restarts,
            ..Listed::default()
        };
        let mut token: Option<String> = None;
        loop {
            let lp = ListParams {
                label_selector: label_selector.map(str::to_string),
                limit: (page_size > 0).then_some(page_size),
                continue_token: token.clone(),
                ..ListParams::default()
            };
            let page = match rest.list(&lp).await {
                Ok(page) => page,
                Err(e) if kube_code(&e) == Some(410) && restarts < MAX_RESTARTS => {
                    restarts += 1;
                    tracing::warn!(resource = %res.qualified(), namespace = ?namespace, restarts, "continue token expired, restarting list");
                    continue 'restart;
                }
                Err(e) => {
                    let object = namespace
                        .map(|n| format!("in namespace {n}"))
                        .unwrap_or_default();
                    return Err(K8sError::from_kube(
                        &conn.server,
                        &res.qualified(),
                        &object,
                        e,
                    ));
                }
            };
            let meta = &page["metadata"];
            if token.is_none() {
                listed.resource_version = str_at(meta, "resourceVersion");
            }
            if let Some(items) = page.get("items").and_then(Value::as_array) {
                listed
                    .items
                    .extend(items.iter().cloned().map(|item| with_type(item, res)));
            }
            let next = str_at(meta, "continue");
            tracing::debug!(resource = %res.qualified(), items = listed.items.len(), remaining = ?meta.get("remainingItemCount"), "list page");
            if next.is_empty() {
                return Ok(listed);
            }
            token = Some(next);
        }
    }
}

fn str_at(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn with_type(mut item: Value, res: &ApiResourceInfo) -> Value {
    if let Some(map) = item.as_object_mut() {
        map.insert("apiVersion".into(), Value::String(res.api_version()));
        map.insert("kind".into(), Value::String(res.kind.clone()));
    }
    item
}
