//! The restore plan and summary: one entry per object in restore order, and
//! counts per resource; rendered for people or serialised as JSON.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

/// What was (or, in a dry run, would be) done with one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Created; in a dry run: absent from the cluster, would be created.
    Create,
    /// Left alone: identical to the live object, or not restorable by design.
    Skip,
    /// Differed from the live object and was replaced (`--existing-resource-policy update`).
    Update,
    /// Differs from the live object, which was left as it is (a warning).
    Conflict,
    /// Could not be restored; `message` says why.
    Failed,
}

/// One object of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedObject {
    /// The file the object came from.
    pub path: String,
    /// `resource` or `resource.group`.
    pub resource: String,
    /// Namespace in the snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
    /// Namespace in the target cluster, after mapping.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Per-resource outcome counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ResourceCounts {
    pub created: u64,
    pub skipped: u64,
    pub updated: u64,
    pub conflicts: u64,
    pub failed: u64,
}

/// The result of [`super::restore`]: the plan in order and the counts.
#[derive(Debug, Clone, Serialize)]
pub struct K8sRestoreReport {
    pub dry_run: bool,
    /// API server restored into.
    pub server: String,
    pub namespace_mapping: BTreeMap<String, String>,
    /// Every object, in restore order.
    pub objects: Vec<PlannedObject>,
    pub counts: BTreeMap<String, ResourceCounts>,
    pub warnings: Vec<String>,
}

impl K8sRestoreReport {
    /// The first object of the plan with this name (any kind, namespace).
    pub fn object(&self, name: &str) -> Option<&PlannedObject> {
        self.objects.iter().find(|o| o.name == name)
    }

    pub(crate) fn new(server: String, dry_run: bool, mapping: BTreeMap<String, String>) -> Self {
        K8sRestoreReport {
            dry_run,
            server,
            namespace_mapping: mapping,
            objects: Vec::new(),
            counts: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }

    pub(crate) fn record(&mut self, object: PlannedObject) {
        let counts = self.counts.entry(object.resource.clone()).or_default();
        match object.action {
            Action::Create => counts.created += 1,
            Action::Skip => counts.skipped += 1,
            Action::Update => counts.updated += 1,
            Action::Conflict => counts.conflicts += 1,
            Action::Failed => counts.failed += 1,
        }
        if matches!(object.action, Action::Conflict | Action::Failed) {
            let what = format!("{} {}", object.resource, object_name(&object));
            self.warnings.push(match &object.message {
                Some(m) => format!("{what}: {m}"),
                None => what,
            });
        }
        self.objects.push(object);
    }

    /// Appends the objects of a later phase of the same restore.
    pub fn merge(&mut self, later: K8sRestoreReport) {
        for (res, c) in later.counts {
            let mine = self.counts.entry(res).or_default();
            mine.created += c.created;
            mine.skipped += c.skipped;
            mine.updated += c.updated;
            mine.conflicts += c.conflicts;
            mine.failed += c.failed;
        }
        self.objects.extend(later.objects);
        self.warnings.extend(later.warnings);
    }

    /// Whether any object failed: the CLI then exits non-zero.
    pub fn has_failures(&self) -> bool {
        self.counts.values().any(|c| c.failed > 0)
    }

    /// Total counts over all resources.
    pub fn totals(&self) -> ResourceCounts {
        self.counts
            .values()
            .fold(ResourceCounts::default(), |a, c| ResourceCounts {
                created: a.created + c.created,
                skipped: a.skipped + c.skipped,
                updated: a.updated + c.updated,
                conflicts: a.conflicts + c.conflicts,
                failed: a.failed + c.failed,
            })
    }

    /// A plain-text rendering: the plan (dry run) or the problems, then the counts.
    pub fn render_human(&self) -> String {
        let mut out = String::new();
        let verb = if self.dry_run {
            "Restore plan for"
        } else {
            "Restored into"
        };
        let _ = writeln!(out, "{verb} {}", self.server);
        for (old, new) in &self.namespace_mapping {
            let _ = writeln!(out, "  namespace {old} -> {new}");
        }
        for o in &self.objects {
            if self.dry_run || matches!(o.action, Action::Conflict | Action::Failed) {
                let action = format!("{:?}", o.action).to_lowercase();
                let msg = o
                    .message
                    .as_deref()
                    .map(|m| format!("  ({m})"))
                    .unwrap_or_default();
                let _ = writeln!(out, "  {action:<8} {} {}{msg}", o.resource, object_name(o));
            }
        }
        let _ = writeln!(
            out,
            "{:<48} {:>7} {:>7} {:>7} {:>9} {:>6}",
            "RESOURCE", "CREATED", "SKIPPED", "UPDATED", "CONFLICTS", "FAILED"
        );
        for (res, c) in &self.counts {
            let _ = writeln!(
                out,
                "{res:<48} {:>7} {:>7} {:>7} {:>9} {:>6}",
                c.created, c.skipped, c.updated, c.conflicts, c.failed
            );
        }
        out
    }
}

fn object_name(o: &PlannedObject) -> String {
    match &o.namespace {
        Some(ns) => format!("{ns}/{}", o.name),
        None => o.name.clone(),
    }
}
