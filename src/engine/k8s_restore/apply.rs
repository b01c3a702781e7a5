//! Restoring one object: create, and on AlreadyExists compare with the live
//! object and skip, update or report a conflict; or, in a dry run, plan it.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{json, Value};

use super::fixes::apply_fixes;
use super::plan::Item;
use super::report::{Action, PlannedObject};
use super::{ExistingResourcePolicy, K8sRestoreOptions};
use crate::source::k8s::clean::clean;
use crate::source::k8s::client::Connection;
use crate::source::k8s::discovery::DiscoveryResult;
use crate::source::k8s::error::kube_code;
use crate::source::k8s::rest::{collection_url, Rest};
use crate::source::k8s::K8sError;

/// State shared by the objects of one restore.
pub struct Ctx<'a> {
    pub conn: &'a Connection,
    pub discovery: DiscoveryResult,
    pub opts: &'a K8sRestoreOptions,
    /// (group, plural) of the custom resources whose CRD is being restored.
    pub crds_in_plan: BTreeSet<(String, String)>,
    /// Namespaces known to exist in the target.
    pub namespaces_ready: BTreeSet<String>,
    /// Set when the connection to the server failed: the rest is not attempted.
    pub lost: AtomicBool,
}

/// An object as compared with another: cleaned, fixed, empty maps dropped.
/// Two objects equal under this are "identical" for the conflict policy.
pub fn comparable(obj: &Value, qualified: &str) -> Value {
    let mut obj = obj.clone();
    clean(&mut obj);
    apply_fixes(&mut obj, qualified);
    if let Some(meta) = obj.pointer_mut("/metadata").and_then(Value::as_object_mut) {
        meta.retain(|_, v| v.as_object().is_none_or(|m| !m.is_empty()));
    }
    obj
}

/// Restores (or plans) one object and says what happened.
pub async fn restore_item(ctx: &mut Ctx<'_>, item: &Item) -> PlannedObject {
    if ctx.lost.load(Ordering::Relaxed) {
        let msg = format!(
            "not attempted: the connection to {} was lost",
            ctx.conn.server
        );
        return item.planned(Action::Failed, Some(msg));
    }
    if let Some(reason) = &item.skip {
        return item.planned(Action::Skip, Some(reason.clone()));
    }
    let served = ctx.discovery.find(&item.group, &item.resource).cloned();
    let pending_crd = ctx
        .crds_in_plan
        .contains(&(item.group.clone(), item.resource.clone()));
    if served.is_none() && !(ctx.opts.dry_run && pending_crd) {
        let msg = format!(
            "{} is not served by {}; restore its CustomResourceDefinition or install the API first",
            item.qualified, ctx.conn.server
        );
        return item.planned(Action::Failed, Some(msg));
    }
    let has_status = served.as_ref().is_some_and(|s| s.has_status());
    let url = collection_url(
        &item.group,
        &item.version(),
        &item.resource,
        item.namespace.as_deref(),
    );
    let rest = Rest::new(ctx.conn, url);
    if ctx.opts.dry_run {
        return plan_only(ctx, &rest, item).await;
    }
    if let Some(ns) = &item.namespace {
        if let Err(e) = ensure_namespace(ctx, ns).await {
            if e.is_transport() {
                ctx.lost.store(true, Ordering::Relaxed);
            }
            return item.planned(Action::Failed, Some(e.to_string()));
        }
    }
    let mut body = item.object.clone();
    if ctx.opts.restore_status && !has_status {
        if let (Some(status), Some(map)) = (&item.status, body.as_object_mut()) {
            map.insert("status".into(), status.clone());
        }
    }
    match rest.create(&body, false).await {
        Ok(created) => {
            let msg = restore_status(ctx, &rest, item, has_status, created).await;
            item.planned(Action::Create, msg)
        }
        Err(e) if kube_code(&e) == Some(409) => existing(ctx, &rest, item, has_status).await,
        Err(e) => failed(ctx, item, e),
    }
}

async fn plan_only(ctx: &Ctx<'_>, rest: &Rest<'_>, item: &Item) -> PlannedObject {
    match rest.get(&item.name).await {
        Err(e) if kube_code(&e) == Some(404) => item.planned(Action::Create, None),
        Err(e) => failed(ctx, item, e),
        Ok(live)
            if comparable(&live, &item.qualified) == comparable(&item.object, &item.qualified) =>
        {
            item.planned(Action::Skip, Some("identical to the live object".into()))
        }
        Ok(_) => match ctx.opts.existing_resource_policy {
            ExistingResourcePolicy::Update => {
                item.planned(Action::Update, Some("differs from the live object".into()))
            }
            ExistingResourcePolicy::None => {
                item.planned(Action::Conflict, Some(conflict_message()))
            }
        },
    }
}

async fn existing(ctx: &Ctx<'_>, rest: &Rest<'_>, item: &Item, has_status: bool) -> PlannedObject {
    let live = match rest.get(&item.name).await {
        Ok(live) => live,
        Err(e) => return failed(ctx, item, e),
    };
    if comparable(&live, &item.qualified) == comparable(&item.object, &item.qualified) {
        return item.planned(Action::Skip, Some("identical to the live object".into()));
    }
    if ctx.opts.existing_resource_policy == ExistingResourcePolicy::None {
        tracing::warn!(resource = %item.qualified, name = %item.name, namespace = ?item.namespace, "object exists and differs");
        return item.planned(Action::Conflict, Some(conflict_message()));
    }
    let mut body = item.object.clone();
    body["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"].clone();
    match rest.replace(&item.name, &body).await {
        Ok(updated) => {
            let msg = restore_status(ctx, rest, item, has_status, updated).await;
            item.planned(Action::Update, msg)
        }
        Err(e) => failed(ctx, item, e),
    }
}

fn conflict_message() -> String {
    "exists and differs; left as it is (use --existing-resource-policy update to replace it)".into()
}

/// Writes the stored status through the status subresource, when asked.
async fn restore_status(
    ctx: &Ctx<'_>,
    rest: &Rest<'_>,
    item: &Item,
    has_status: bool,
    mut live: Value,
) -> Option<String> {
    let status = item
        .status
        .as_ref()
        .filter(|_| ctx.opts.restore_status && has_status)?;
    live["status"] = status.clone();
    match rest.replace_status(&item.name, &live).await {
        Ok(_) => None,
        Err(e) => Some(format!("object restored but its status was not: {e}")),
    }
}

/// Creates a namespace missing from the target (e.g. a mapping target).
async fn ensure_namespace(ctx: &mut Ctx<'_>, ns: &str) -> Result<(), K8sError> {
    if ctx.namespaces_ready.contains(ns) {
        return Ok(());
    }
    let rest = Rest::new(ctx.conn, "/api/v1/namespaces".into());
    let server = &ctx.conn.server;
    match rest.get(ns).await {
        Ok(_) => {}
        Err(e) if kube_code(&e) == Some(404) => {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            match rest.create(&obj, false).await {
                Ok(_) => tracing::info!(namespace = %ns, "namespace created for restore"),
                Err(e) if kube_code(&e) == Some(409) => {}
                Err(e) => return Err(K8sError::from_kube(server, "namespaces", ns, e)),
            }
        }
        Err(e) => return Err(K8sError::from_kube(server, "namespaces", ns, e)),
    }
    ctx.namespaces_ready.insert(ns.to_string());
    Ok(())
}

fn failed(ctx: &Ctx<'_>, item: &Item, e: kube::Error) -> PlannedObject {
    let object = match &item.namespace {
        Some(ns) => format!("{ns}/{}", item.name),
        None => item.name.clone(),
    };
    let err = K8sError::from_kube(&ctx.conn.server, &item.qualified, &object, e);
    if err.is_transport() {
        ctx.lost.store(true, Ordering::Relaxed);
    }
    tracing::warn!(resource = %item.qualified, object = %object, error = %err, "object not restored");
    item.planned(Action::Failed, Some(err.to_string()))
}
