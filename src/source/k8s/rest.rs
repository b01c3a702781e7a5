//! Raw JSON requests on one resource: URLs, list/get/create/replace/apply,
//! keeping objects as `serde_json::Value` so no field is lost in transit.

use kube::core::params::{GetParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::Request;
use serde_json::Value;

use super::client::Connection;

/// The collection URL of a resource, in a namespace or cluster-wide.
pub fn collection_url(group: &str, version: &str, resource: &str, namespace: Option<&str>) -> String {
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

/// The field manager ferry writes under.
pub const FIELD_MANAGER: &str = "ferry";

impl<'a> Rest<'a> {
    pub fn new(conn: &'a Connection, url: String) -> Self {
        Rest {
            conn,
            request: Request::new(url),
        }
    }

    pub async fn list(&self, lp: &ListParams) -> Result<Value, kube::Error> {
        let req = self.request.list(lp).map_err(kube::Error::BuildRequest)?;
        self.conn.client.request(req).await
    }

    pub async fn get(&self, name: &str) -> Result<Value, kube::Error> {
        let req = self
            .request
            .get(name, &GetParams::default())
            .map_err(kube::Error::BuildRequest)?;
        self.conn.client.request(req).await
    }

    pub async fn create(&self, obj: &Value, dry_run: bool) -> Result<Value, kube::Error> {
        let pp = PostParams {
            dry_run,
            field_manager: Some(FIELD_MANAGER.into()),
        };
        let req = self
            .request
            .create(&pp, serde_json::to_vec(obj).map_err(kube::Error::SerdeError)?)
            .map_err(kube::Error::BuildRequest)?;
        self.conn.client.request(req).await
    }

    pub async fn replace(&self, name: &str, obj: &Value) -> Result<Value, kube::Error> {
        let pp = PostParams {
            dry_run: false,
            field_manager: Some(FIELD_MANAGER.into()),
        };
        let body = serde_json::to_vec(obj).map_err(kube::Error::SerdeError)?;
        let req = self
            .request
            .replace(name, &pp, body)
            .map_err(kube::Error::BuildRequest)?;
        self.conn.client.request(req).await
    }

    pub async fn replace_status(&self, name: &str, obj: &Value) -> Result<Value, kube::Error> {
        let pp = PostParams {
            dry_run: false,
            field_manager: Some(FIELD_MANAGER.into()),
        };
        let body = serde_json::to_vec(obj).map_err(kube::Error::SerdeError)?;
        let req = self
            .request
            .replace_subresource("status", name, &pp, body)
            .map_err(kube::Error::BuildRequest)?;
        self.conn.client.request(req).await
    }

    /// Server-side apply, taking ownership of conflicting fields.
    pub async fn apply(&self, name: &str, obj: &Value) -> Result<Value, kube::Error> {
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        let req = self
            .request
            .patch(name, &pp, &Patch::Apply(obj))
            .map_err(kube::Error::BuildRequest)?;
        self.conn.client.request(req).await
    }
}
