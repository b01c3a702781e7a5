//! The few resources the volume movers use, as raw JSON.

use kube::core::params::ListParams;
use serde_json::Value;

use super::VolumeError;
use crate::source::k8s::client::Connection;
use crate::source::k8s::rest::{collection_url, Rest};

/// A resource by group, version and plural.
#[derive(Debug, Clone, Copy)]
pub struct Res(pub &'static str, pub &'static str, pub &'static str);

pub const PVCS: Res = Res("", "v1", "persistentvolumeclaims");
pub const PVS: Res = Res("", "v1", "persistentvolumes");
pub const PODS: Res = Res("", "v1", "pods");
pub const EVENTS: Res = Res("", "v1", "events");
pub const SECRETS: Res = Res("", "v1", "secrets");
pub const SERVICE_ACCOUNTS: Res = Res("", "v1", "serviceaccounts");
pub const NAMESPACES: Res = Res("", "v1", "namespaces");
pub const JOBS: Res = Res("batch", "v1", "jobs");
pub const STORAGE_CLASSES: Res = Res("storage.k8s.io", "v1", "storageclasses");
pub const SNAPSHOTS: Res = Res("snapshot.storage.k8s.io", "v1", "volumesnapshots");
pub const CONTENTS: Res = Res("snapshot.storage.k8s.io", "v1", "volumesnapshotcontents");
pub const SNAPSHOT_CLASSES: Res = Res("snapshot.storage.k8s.io", "v1", "volumesnapshotclasses");

/// Whether the resource is namespaced.
fn namespaced(r: Res) -> bool {
    !matches!(
        r.2,
        "persistentvolumes"
            | "namespaces"
            | "storageclasses"
            | "volumesnapshotcontents"
            | "volumesnapshotclasses"
    )
}

pub struct Api<'a> {
    pub conn: &'a Connection,
}

fn err(what: String) -> impl FnOnce(kube::Error) -> VolumeError {
    move |e| VolumeError::Api {
        what,
        source: Box::new(e),
    }
}

/// Whether an API error is 404 Not Found.
pub fn not_found(e: &VolumeError) -> bool {
    matches!(e, VolumeError::Api { source, .. } if matches!(**source, kube::Error::Api(ref s) if s.code == 404))
}

impl<'a> Api<'a> {
    fn rest(&self, r: Res, ns: Option<&str>) -> Rest<'a> {
        let ns = ns.filter(|_| namespaced(r));
        Rest::new(self.conn, collection_url(r.0, r.1, r.2, ns))
    }

    /// The last `lines` lines of a pod's log.
    pub async fn logs(&self, ns: &str, pod: &str, lines: i64) -> Result<String, VolumeError> {
        let what = format!("reading the log of pod {ns}/{pod}");
        self.rest(PODS, Some(ns))
            .logs(pod, lines)
            .await
            .map_err(err(what))
    }

    pub async fn get(&self, r: Res, ns: Option<&str>, name: &str) -> Result<Value, VolumeError> {
        let what = format!("reading {} {}{name}", r.2, prefix(ns));
        self.rest(r, ns).get(name).await.map_err(err(what))
    }

    /// Lists items (all namespaces when `ns` is None), with optional label and field selectors.
    pub async fn list(
        &self,
        r: Res,
        ns: Option<&str>,
        labels: Option<&str>,
        fields: Option<&str>,
    ) -> Result<Vec<Value>, VolumeError> {
        let mut lp = ListParams::default();
        if let Some(l) = labels {
            lp = lp.labels(l);
        }
        if let Some(f) = fields {
            lp = lp.fields(f);
        }
        let what = format!("listing {} {}", r.2, prefix(ns));
        let v = self.rest(r, ns).list(&lp).await.map_err(err(what))?;
        Ok(v["items"].as_array().cloned().unwrap_or_default())
    }

    pub async fn create(
        &self,
        r: Res,
        ns: Option<&str>,
        obj: &Value,
    ) -> Result<Value, VolumeError> {
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        let what = format!("creating {} {}{name}", r.2, prefix(ns));
        self.rest(r, ns).create(obj, false).await.map_err(err(what))
    }

    /// Deletes an object; one already gone is no error.
    pub async fn delete(&self, r: Res, ns: Option<&str>, name: &str) -> Result<(), VolumeError> {
        let what = format!("deleting {} {}{name}", r.2, prefix(ns));
        match self.rest(r, ns).delete(name).await.map_err(err(what)) {
            Err(e) if !not_found(&e) => Err(e),
            _ => Ok(()),
        }
    }
}

fn prefix(ns: Option<&str>) -> String {
    ns.map(|n| format!("{n}/")).unwrap_or_default()
}

/// A string field by JSON pointer, or "".
pub fn text<'v>(v: &'v Value, pointer: &str) -> &'v str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}
