//! The fake cluster's object store: create/get/replace/apply/delete with
//! server-set fields, status subresource, AlreadyExists/Conflict, and CRDs
//! that become served once established.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::catalog::{Catalog, Served};
use super::fields::{defaults, managed, merge, with_version};
use super::status::{self as st, ApiError};

/// (group, resource, namespace or "", name).
pub type Key = (String, String, String, String);

/// Faults the tests switch on.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// `resource[.group]` answering 403 to every request.
    pub forbidden: BTreeSet<String>,
    /// Groups whose discovery fails (stale in aggregated, 503 in legacy).
    pub failing_groups: Vec<String>,
    /// (`resource[.group]`, name) rejected with 422 on create and update.
    pub invalid: BTreeSet<(String, String)>,
    /// Expire the next continue token presented (410), once.
    pub expire_next_continue: bool,
    /// Answer discovery only with the legacy documents.
    pub legacy_only: bool,
    /// After this many requests, every connection is dropped without answer.
    pub drop_connections_after: Option<usize>,
    /// Every request answered 401 Unauthorized.
    pub unauthorized: bool,
    /// Created CRDs never become established.
    pub crds_never_established: bool,
    /// A mutating admission: on create of (`resource[.group]`, name), the
    /// field at this JSON pointer is set to the value.
    pub mutate: Vec<(String, String, String, Value)>,
}

pub struct State {
    pub catalog: Catalog,
    pub objects: BTreeMap<Key, Value>,
    pub rv: u64,
    pub faults: Faults,
    /// "METHOD path?query" of every request, in order.
    pub requests: Vec<String>,
    /// Discovery answers given in the aggregated (v2) form.
    pub aggregated_served: u32,
    /// CRDs created but not yet established (they are on their first GET).
    pub pending_crds: BTreeSet<String>,
    /// Where the fake kubelet keeps PV directories (`pods/exec` runs there).
    pub volume_root: Option<std::path::PathBuf>,
}

pub(super) const TIME: &str = "2026-11-25T10:00:00Z";

impl State {
    pub fn new() -> Self {
        State {
            catalog: Catalog::load(),
            objects: BTreeMap::new(),
            rv: 1000,
            faults: Faults::default(),
            requests: Vec::new(),
            aggregated_served: 0,
            pending_crds: BTreeSet::new(),
            volume_root: None,
        }
    }

    fn next_rv(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }

    fn key(s: &Served, ns: Option<&str>, name: &str) -> Key {
        (
            s.group.clone(),
            s.resource.clone(),
            ns.unwrap_or("").to_string(),
            name.to_string(),
        )
    }

    pub fn get(&mut self, s: &Served, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
        if s.group == "apiextensions.k8s.io"
            && !self.faults.crds_never_established
            && self.pending_crds.remove(name)
        {
            self.establish(name);
        }
        self.objects
            .get(&Self::key(s, ns, name))
            .cloned()
            .map(|o| with_version(o, s))
            .ok_or_else(|| st::not_found(&s.group, &s.resource, name))
    }

    /// POST: a new object with server-set fields; `established` makes a CRD served at once.
    pub fn create(
        &mut self,
        s: &Served,
        ns: Option<&str>,
        mut obj: Value,
        manager: &str,
        established: bool,
    ) -> Result<Value, ApiError> {
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            return Err(st::invalid(
                &s.group,
                &s.resource,
                "",
                "metadata.name",
                "Required value: name or generateName is required",
            ));
        }
        self.check_invalid(s, &name)?;
        if let Some(ns) = ns {
            if !self.objects.contains_key(&(
                String::new(),
                "namespaces".into(),
                String::new(),
                ns.into(),
            )) {
                return Err(st::namespace_not_found(ns));
            }
            obj["metadata"]["namespace"] = json!(ns);
        }
        let key = Self::key(s, ns, &name);
        if self.objects.contains_key(&key) {
            return Err(st::already_exists(&s.group, &s.resource, &name));
        }
        if s.subresources.iter().any(|x| x == "status") {
            obj.as_object_mut().unwrap().remove("status");
        }
        let rv = self.next_rv();
        let meta = obj["metadata"].as_object_mut().unwrap();
        meta.insert(
            "uid".into(),
            json!(format!("6f1c2a7e-0000-4000-8000-{:012}", self.rv)),
        );
        meta.insert("resourceVersion".into(), json!(rv));
        meta.insert("creationTimestamp".into(), json!(TIME));
        meta.insert("managedFields".into(), managed(manager, "Update", s));
        if obj.get("spec").is_some() {
            obj["metadata"]["generation"] = json!(1);
        }
        defaults(s, &name, &mut obj, self.rv);
        self.admit(s, &name, &mut obj);
        self.objects.insert(key, obj.clone());
        if s.group == "apiextensions.k8s.io" && s.resource == "customresourcedefinitions" {
            if established {
                self.establish(&name);
            } else {
                self.pending_crds.insert(name);
            }
        }
        Ok(with_version(obj, s))
    }

    /// PUT on the object (`status_only` = PUT on `/status`).
    pub fn replace(
        &mut self,
        s: &Served,
        ns: Option<&str>,
        name: &str,
        mut obj: Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        self.check_invalid(s, name)?;
        let key = Self::key(s, ns, name);
        let Some(live) = self.objects.get(&key).cloned() else {
            return Err(st::not_found(&s.group, &s.resource, name));
        };
        let sent_rv = obj["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !sent_rv.is_empty() && sent_rv != live["metadata"]["resourceVersion"] {
            return Err(st::conflict(&s.group, &s.resource, name));
        }
        let has_status = s.subresources.iter().any(|x| x == "status");
        if status_only {
            let status = obj["status"].clone();
            obj = live.clone();
            obj["status"] = status;
        } else if has_status {
            match live.get("status") {
                Some(status) => obj["status"] = status.clone(),
                None => drop(obj.as_object_mut().unwrap().remove("status")),
            }
        }
        for k in ["uid", "creationTimestamp", "generation"] {
            if let Some(v) = live["metadata"].get(k) {
                obj["metadata"][k] = v.clone();
            }
        }
        if let Some(ns) = ns {
            obj["metadata"]["namespace"] = json!(ns);
        }
        if !status_only && obj.get("spec") != live.get("spec") {
            obj["metadata"]["generation"] =
                json!(live["metadata"]["generation"].as_i64().unwrap_or(0) + 1);
        }
        obj["metadata"]["resourceVersion"] = json!(self.next_rv());
        obj["metadata"]["managedFields"] = managed("ferry", "Update", s);
        self.objects.insert(key, obj.clone());
        Ok(with_version(obj, s))
    }

    /// PATCH application/apply-patch+yaml: create, or merge into the live object.
    pub fn apply(
        &mut self,
        s: &Served,
        ns: Option<&str>,
        name: &str,
        patch: Value,
        manager: &str,
    ) -> Result<(u16, Value), ApiError> {
        let key = Self::key(s, ns, name);
        let Some(mut live) = self.objects.get(&key).cloned() else {
            let mut created = self.create(s, ns, patch, manager, false)?;
            created["metadata"]["managedFields"][0]["operation"] = json!("Apply");
            return Ok((201, created));
        };
        merge(&mut live, &patch);
        let mut out = self.replace(s, ns, name, live, false)?;
        out["metadata"]["managedFields"] = managed(manager, "Apply", s);
        self.objects.insert(key, out.clone());
        Ok((200, out))
    }

    /// PATCH application/merge-patch+json (and strategic merge, approximated).
    pub fn merge_patch(
        &mut self,
        s: &Served,
        ns: Option<&str>,
        name: &str,
        patch: Value,
    ) -> Result<Value, ApiError> {
        let mut live = self.get(s, ns, name)?;
        merge(&mut live, &patch);
        live["metadata"]["resourceVersion"] = Value::Null;
        self.replace(s, ns, name, live, false)
    }

    /// DELETE; a namespace takes everything in it along (at once, where
    /// a real server finalizes it in the background).
    pub fn delete(&mut self, s: &Served, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
        let gone = self
            .objects
            .remove(&Self::key(s, ns, name))
            .map(|o| with_version(o, s))
            .ok_or_else(|| st::not_found(&s.group, &s.resource, name))?;
        if s.group.is_empty() && s.resource == "namespaces" {
            self.objects.retain(|k, _| k.2 != name);
        }
        Ok(gone)
    }

    /// Applies the mutating admission faults to an object being created.
    fn admit(&self, s: &Served, name: &str, obj: &mut Value) {
        let q = st::qualified(&s.group, &s.resource);
        for (res, n, pointer, value) in &self.faults.mutate {
            if *res == q && n == name {
                if let Some(field) = obj.pointer_mut(pointer) {
                    *field = value.clone();
                }
            }
        }
    }

    fn check_invalid(&self, s: &Served, name: &str) -> Result<(), ApiError> {
        if self
            .faults
            .invalid
            .contains(&(st::qualified(&s.group, &s.resource), name.to_string()))
        {
            return Err(st::invalid(
                &s.group,
                &s.resource,
                name,
                "spec",
                "Invalid value: rejected by admission",
            ));
        }
        Ok(())
    }
}
