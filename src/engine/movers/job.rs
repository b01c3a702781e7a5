//! Waiting for a mover Job: its pod's termination message when it ends,
//! or a failure as soon as the pod's events show it cannot start.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::api::{self, text, Api};
use super::objects::JobSpec;
use super::MoverOptions;
use crate::engine::volumes::{MoverProgress, MoverReport};

/// Pod event reasons that mean the pod will not start by itself.
const STUCK: [&str; 6] = [
    "FailedScheduling",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "FailedMount",
    "FailedAttachVolume",
];

/// Waits for Job `j` and returns its mover's report, or why it failed.
/// While it runs, its progress lines (in the pod's log) go to
/// `o.progress`, about once a second.
pub async fn wait_job(
    a: &Api<'_>,
    j: &JobSpec<'_>,
    o: &MoverOptions,
) -> Result<MoverReport, String> {
    let (ns, name) = (j.ns, j.name);
    let started = Instant::now();
    let mut stuck_since: Option<Instant> = None;
    // The log is read as soon as the pod runs, then about once a second.
    let mut polled: Option<Instant> = None;
    loop {
        let job = a
            .get(api::JOBS, Some(ns), name)
            .await
            .map_err(|e| e.to_string())?;
        let pods = a
            .list(api::PODS, Some(ns), Some(&format!("job-name={name}")), None)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(pod) = pods.first() {
            match text(pod, "/status/phase") {
                "Succeeded" => return parse(&termination(pod).1),
                "Failed" => match parse(&termination(pod).1) {
                    // A verification that found differences: its report.
                    Ok(r) if r.verification.is_some() => return Ok(r),
                    _ => return Err(failed(ns, name, pod)),
                },
                "Running" if polled.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) => {
                    polled = Some(Instant::now());
                    let log = a.logs(ns, text(pod, "/metadata/name"), 4).await;
                    if let Some(p) = log.ok().as_deref().and_then(MoverProgress::last_in) {
                        let secs = started.elapsed().as_secs_f64();
                        o.progress.set(j.source, p.files, p.bytes, secs, None);
                    }
                }
                _ => {}
            }
            if let Some(why) = stuck(a, ns, pod).await {
                let since = *stuck_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= o.pending_grace {
                    return Err(format!("Job {ns}/{name} cannot start: {why}"));
                }
            }
        }
        if let Some(c) = condition(&job, "Failed") {
            return Err(format!("Job {ns}/{name} failed: {c}"));
        }
        if started.elapsed() >= o.timeout {
            return Err(format!(
                "Job {ns}/{name} did not finish within --volume-timeout {}s",
                o.timeout.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The mover's report from its termination message.
fn parse(message: &str) -> Result<MoverReport, String> {
    if let Ok(r) = serde_json::from_str::<MoverReport>(message) {
        return Ok(r);
    }
    let v: Value = serde_json::from_str(message).unwrap_or(Value::Null);
    Err(match v["error"].as_str() {
        Some(e) => e.to_string(),
        None => format!("the mover's termination message is no report: {message:?}"),
    })
}

/// Exit code and termination message of the pod's container.
fn termination(pod: &Value) -> (i64, String) {
    let t = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
    (
        t["exitCode"].as_i64().unwrap_or(-1),
        t["message"].as_str().unwrap_or_default().trim().to_string(),
    )
}

fn failed(ns: &str, name: &str, pod: &Value) -> String {
    let (code, message) = termination(pod);
    let why = match parse(&message) {
        Err(e) if !message.is_empty() => e,
        _ => text(
            &pod["status"]["containerStatuses"][0],
            "/state/terminated/reason",
        )
        .to_string(),
    };
    format!("Job {ns}/{name} failed (exit code {code}): {why}")
}

fn condition(job: &Value, kind: &str) -> Option<String> {
    let cs = job["status"]["conditions"].as_array()?;
    let c = cs
        .iter()
        .find(|c| text(c, "/type") == kind && text(c, "/status") == "True")?;
    Some(format!("{}: {}", text(c, "/reason"), text(c, "/message")))
}

/// The pod's events (or container state) that say it cannot start.
async fn stuck(a: &Api<'_>, ns: &str, pod: &Value) -> Option<String> {
    let waiting = &pod["status"]["containerStatuses"][0]["state"]["waiting"];
    let mut why: Vec<String> = Vec::new();
    if STUCK.contains(&text(waiting, "/reason")) {
        why.push(format!(
            "{}: {}",
            text(waiting, "/reason"),
            text(waiting, "/message")
        ));
    }
    let name = text(pod, "/metadata/name");
    let sel = format!("involvedObject.name={name}");
    let events = a.list(api::EVENTS, Some(ns), None, Some(&sel)).await.ok()?;
    for e in events
        .iter()
        .filter(|e| STUCK.contains(&text(e, "/reason")))
    {
        why.push(format!("{}: {}", text(e, "/reason"), text(e, "/message")));
    }
    why.dedup();
    (!why.is_empty()).then(|| format!("pod {name}: {}", why.join("; ")))
}
