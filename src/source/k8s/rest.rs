//! Raw JSON requests on one resource: URLs, list/get/create/replace,
//! keeping objects as `serde_json::Value` so no field is lost in transit.

use std::time::Duration;

use kube::core::params::{DeleteParams, GetParams, ListParams, PostParams};
use kube::core::{request, Request};
use serde_json::Value;

use super::client::Connection;

/// The collection URL of a resource, in a namespace or cluster-wide.
pub fn collection_url(
    group: &str,
    version: &str,
    resource: &str,
    namespace: Option<&str>,
) -> String {
    let base = if group.is_empty() || group == "core" {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    match namespace {
        Some(ns) => format!("{base}/namespaces/{ns}/{resource}"),
        None => format!("{base}/{resource}"),
    }
}

/// Requests on one collection URL.
pub struct Rest<'a> {
    conn: &'a Connection,
    request: Request,
}

const RETRYABLE: [u16; 3] = [429, 503, 504];
const ATTEMPTS: u32 = 4;

/// The field manager ferry writes under.
pub const FIELD_MANAGER: &str = "ferry";

impl<'a> Rest<'a> {
    pub fn new(conn: &'a Connection, url: String) -> Self {
        Rest {
            conn,
            request: Request::new(url),
        }
    }

    /// Sends a request, retrying briefly when the server is overloaded or
    /// unavailable (429, 503, 504).
    async fn send(
        &self,
        build: impl Fn(&Request) -> Result<http::Request<Vec<u8>>, request::Error>,
    ) -> Result<Value, kube::Error> {
        let mut delay = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            let req = build(&self.request).map_err(kube::Error::BuildRequest)?;
            match self.conn.client.request(req).await {
                Err(kube::Error::Api(s)) if RETRYABLE.contains(&s.code) && attempt < ATTEMPTS => {
                    tracing::debug!(server = %self.conn.server, code = s.code, attempt, "request retried");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    pub async fn list(&self, lp: &ListParams) -> Result<Value, kube::Error> {
        self.send(|r| r.list(lp)).await
    }

    pub async fn get(&self, name: &str) -> Result<Value, kube::Error> {
        self.send(|r| r.get(name, &GetParams::default())).await
    }

    pub async fn create(&self, obj: &Value, dry_run: bool) -> Result<Value, kube::Error> {
        let pp = PostParams {
            dry_run,
            field_manager: Some(FIELD_MANAGER.into()),
        };
        let body = serde_json::to_vec(obj).map_err(kube::Error::SerdeError)?;
        self.send(|r| r.create(&pp, body.clone())).await
    }

    pub async fn replace(&self, name: &str, obj: &Value) -> Result<Value, kube::Error> {
        let pp = PostParams {
            dry_run: false,
            field_manager: Some(FIELD_MANAGER.into()),
        };
        let body = serde_json::to_vec(obj).map_err(kube::Error::SerdeError)?;
        self.send(|r| r.replace(name, &pp, body.clone())).await
    }

    pub async fn replace_status(&self, name: &str, obj: &Value) -> Result<Value, kube::Error> {
        let pp = PostParams {
            dry_run: false,
            field_manager: Some(FIELD_MANAGER.into()),
        };
        let body = serde_json::to_vec(obj).map_err(kube::Error::SerdeError)?;
        self.send(|r| r.replace_subresource("status", name, &pp, body.clone()))
            .await
    }

    /// The last `lines` lines of a pod's log (a Rest on pods).
    pub async fn logs(&self, name: &str, lines: i64) -> Result<String, kube::Error> {
        let lp = kube::core::subresource::LogParams {
            tail_lines: Some(lines),
            ..Default::default()
        };
        let req = self
            .request
            .logs(name, &lp)
            .map_err(kube::Error::BuildRequest)?;
        self.conn.client.request_text(req).await
    }

    /// Deletes an object, its dependents in the background (a Job's pods).
    pub async fn delete(&self, name: &str) -> Result<Value, kube::Error> {
        let dp = DeleteParams::background();
        self.send(|r| r.delete(name, &dp)).await
    }
}
