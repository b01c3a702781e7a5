//! CustomResourceDefinitions during restore: waiting until the restored ones
//! are Established and NamesAccepted, then refreshing discovery.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::apply::Ctx;
use super::report::K8sRestoreReport;
use crate::source::k8s::discovery::discover;
use crate::source::k8s::rest::Rest;
use crate::source::k8s::K8sError;

const CRD_URL: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
const POLL: Duration = Duration::from_millis(100);

/// The (group, plural) a CRD object serves.
pub fn served_resource(crd: &Value) -> Option<(String, String)> {
    let group = crd["spec"]["group"].as_str()?;
    let plural = crd["spec"]["names"]["plural"].as_str()?;
    Some((group.to_string(), plural.to_string()))
}

fn ready(crd: &Value) -> bool {
    let conditions = crd["status"]["conditions"].as_array();
    let is_true = |kind: &str| {
        conditions.is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == kind && c["status"] == "True")
        })
    };
    is_true("Established") && is_true("NamesAccepted")
}

/// Waits for each named CRD to be ready (or the timeout), then rediscovers.
pub async fn wait_established(
    ctx: &mut Ctx<'_>,
    names: &[String],
    report: &mut K8sRestoreReport,
) -> Result<(), K8sError> {
    let rest = Rest::new(ctx.conn, CRD_URL.into());
    let deadline = Instant::now() + Duration::from_secs(ctx.opts.crd_ready_timeout_seconds);
    for name in names {
        loop {
            match rest.get(name).await {
                Ok(crd) if ready(&crd) => break,
                Ok(_) if Instant::now() < deadline => tokio::time::sleep(POLL).await,
                Ok(_) => {
                    tracing::warn!(crd = %name, "CRD not established before timeout");
                    report.warnings.push(format!(
                        "CustomResourceDefinition {name} not Established/NamesAccepted after {}s; its objects will fail",
                        ctx.opts.crd_ready_timeout_seconds
                    ));
                    break;
                }
                Err(e) => {
                    report
                        .warnings
                        .push(format!("cannot read CustomResourceDefinition {name}: {e}"));
                    break;
                }
            }
        }
    }
    ctx.discovery = discover(ctx.conn).await?;
    Ok(())
}
