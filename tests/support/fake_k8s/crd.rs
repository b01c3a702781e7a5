//! CustomResourceDefinitions in the fake: established (conditions set) on
//! their first read after creation, and only then served by discovery.

use serde_json::{json, Value};

use super::objects::{State, TIME};

impl State {
    /// Marks a CRD Established/NamesAccepted and serves its versions.
    pub(super) fn establish(&mut self, name: &str) {
        let key = (
            "apiextensions.k8s.io".to_string(),
            "customresourcedefinitions".to_string(),
            String::new(),
            name.to_string(),
        );
        let Some(crd) = self.objects.get_mut(&key) else {
            return;
        };
        crd["status"] = json!({"conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "lastTransitionTime": TIME, "message": "no conflicts found"},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "lastTransitionTime": TIME, "message": "the initial names have been accepted"}],
            "acceptedNames": crd["spec"]["names"].clone(), "storedVersions": []});
        let spec = crd["spec"].clone();
        let group = spec["group"].as_str().unwrap_or_default().to_string();
        let mut versions: Vec<Value> = spec["versions"].as_array().cloned().unwrap_or_default();
        versions.sort_by_key(|v| v["storage"] != true);
        for v in versions
            .iter()
            .filter(|v| v["served"] == true || v["served"].is_null())
        {
            let version = v["name"].as_str().unwrap_or_default();
            let mut res = json!({"resource": spec["names"]["plural"],
                "responseKind": {"group": group, "version": version, "kind": spec["names"]["kind"]},
                "scope": spec["scope"], "singularResource": spec["names"]["singular"],
                "verbs": ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"]});
            if let Some(short) = spec["names"].get("shortNames") {
                res["shortNames"] = short.clone();
            }
            if v["subresources"].get("status").is_some() {
                res["subresources"] = json!([{"subresource": "status", "responseKind": {"group": group, "version": version, "kind": spec["names"]["kind"]}, "verbs": ["get", "patch", "update"]}]);
            }
            self.catalog.add_resource(&group, version, res);
        }
    }
}
