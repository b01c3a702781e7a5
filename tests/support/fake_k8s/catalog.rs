//! The fake server's served resources, built from the real aggregated
//! discovery capture (groups) and `api__v1.json` (core), and every discovery
//! document derived from them, aggregated and legacy.

use serde_json::{json, Value};

/// One served resource at one version.
#[derive(Debug, Clone)]
pub struct Served {
    pub group: String,
    pub version: String,
    pub resource: String,
    pub kind: String,
    pub namespaced: bool,
    pub subresources: Vec<String>,
}

/// Groups in aggregated form (`APIGroupDiscovery` values), core first.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub groups: Vec<Value>,
}

fn read(name: &str) -> Value {
    let path = super::super::fixtures()
        .join("discovery/kubernetes-api-discovery")
        .join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// The real `/api/v1` document.
pub fn legacy_core_v1() -> Value {
    read("api__v1.json")
}

/// The real `/api` document.
pub fn legacy_core_versions() -> Value {
    read("api.json")
}

impl Catalog {
    pub fn load() -> Self {
        let core = legacy_to_aggregated("", &legacy_core_v1());
        let mut groups = vec![core];
        groups.extend(
            read("aggregated_v2.json")["items"]
                .as_array()
                .unwrap()
                .iter()
                .cloned(),
        );
        Catalog { groups }
    }

    fn name(group: &Value) -> &str {
        group["metadata"]["name"].as_str().unwrap_or_default()
    }

    /// Finds a resource by group (empty = core), version and plural.
    pub fn find(&self, group: &str, version: &str, resource: &str) -> Option<Served> {
        let g = self.groups.iter().find(|g| Self::name(g) == group)?;
        let v = g["versions"]
            .as_array()?
            .iter()
            .find(|v| v["version"] == version)?;
        let r = v["resources"]
            .as_array()?
            .iter()
            .find(|r| r["resource"] == resource)?;
        Some(Served {
            group: group.into(),
            version: version.into(),
            resource: resource.into(),
            kind: r["responseKind"]["kind"]
                .as_str()
                .unwrap_or_default()
                .into(),
            namespaced: r["scope"] == "Namespaced",
            subresources: r["subresources"]
                .as_array()
                .map(|s| {
                    s.iter()
                        .filter_map(|x| x["subresource"].as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// Finds a resource by apiVersion and kind (for seeding manifests).
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<Served> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let g = self.groups.iter().find(|g| Self::name(g) == group)?;
        let v = g["versions"]
            .as_array()?
            .iter()
            .find(|v| v["version"] == version)?;
        let r = v["resources"]
            .as_array()?
            .iter()
            .find(|r| r["responseKind"]["kind"] == kind)?;
        self.find(group, version, r["resource"].as_str()?)
    }

    /// Serves a resource at a group version (a CRD established), replacing
    /// an earlier entry of the same resource.
    pub fn add_resource(&mut self, group: &str, version: &str, resource: Value) {
        let g = match self.groups.iter().position(|g| Self::name(g) == group) {
            Some(i) => i,
            None => {
                self.groups
                    .push(json!({"metadata": {"name": group}, "versions": []}));
                self.groups.len() - 1
            }
        };
        let versions = self.groups[g]["versions"].as_array_mut().unwrap();
        let v = match versions.iter().position(|v| v["version"] == version) {
            Some(i) => i,
            None => {
                versions.push(json!({"version": version, "resources": [], "freshness": "Current"}));
                versions.len() - 1
            }
        };
        let resources = versions[v]["resources"].as_array_mut().unwrap();
        resources.retain(|r| r["resource"] != resource["resource"]);
        resources.push(resource);
    }

    /// `/apis` or `/api` as an `APIGroupDiscoveryList`; failing groups are stale.
    pub fn aggregated(&self, core: bool, failing: &[String]) -> Value {
        let items: Vec<Value> = self
            .groups
            .iter()
            .filter(|g| (Self::name(g).is_empty()) == core)
            .map(|g| {
                let mut g = g.clone();
                if failing.iter().any(|f| f == Self::name(&g)) {
                    for v in g["versions"].as_array_mut().unwrap() {
                        v["freshness"] = json!("Stale");
                        v["resources"] = json!([]);
                    }
                }
                g
            })
            .collect();
        json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
    }

    fn api_group(g: &Value) -> Value {
        let name = Self::name(g);
        let versions: Vec<Value> = g["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| json!({"groupVersion": format!("{name}/{}", v["version"].as_str().unwrap()), "version": v["version"]}))
            .collect();
        json!({"name": name, "versions": versions, "preferredVersion": versions[0]})
    }

    /// Legacy `/apis` (`APIGroupList`).
    pub fn legacy_groups(&self) -> Value {
        let groups: Vec<Value> = self
            .groups
            .iter()
            .filter(|g| !Self::name(g).is_empty())
            .map(Self::api_group)
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    /// Legacy `/apis/{group}` (`APIGroup`).
    pub fn legacy_group(&self, group: &str) -> Option<Value> {
        let g = self
            .groups
            .iter()
            .find(|g| Self::name(g) == group && !group.is_empty())?;
        let mut doc = Self::api_group(g);
        doc["kind"] = json!("APIGroup");
        doc["apiVersion"] = json!("v1");
        Some(doc)
    }

    /// Legacy `/apis/{group}/{version}` (`APIResourceList`).
    pub fn legacy_resources(&self, group: &str, version: &str) -> Option<Value> {
        let g = self.groups.iter().find(|g| Self::name(g) == group)?;
        let v = g["versions"]
            .as_array()?
            .iter()
            .find(|v| v["version"] == version)?;
        let mut out = Vec::new();
        for r in v["resources"].as_array()? {
            let name = r["resource"].as_str().unwrap_or_default();
            let namespaced = r["scope"] == "Namespaced";
            let mut entry = json!({"name": name, "singularName": r["singularResource"], "namespaced": namespaced,
                "kind": r["responseKind"]["kind"], "verbs": r["verbs"]});
            for key in ["shortNames", "categories"] {
                if r.get(key).is_some() {
                    entry[key] = r[key].clone();
                }
            }
            out.push(entry);
            for s in r["subresources"].as_array().into_iter().flatten() {
                out.push(json!({"name": format!("{name}/{}", s["subresource"].as_str().unwrap_or_default()),
                    "singularName": "", "namespaced": namespaced, "kind": s["responseKind"]["kind"], "verbs": s["verbs"]}));
            }
        }
        let gv = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        Some(
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}),
        )
    }
}

/// Converts a legacy `APIResourceList` into an aggregated `APIGroupDiscovery`
/// (what client-go's SplitGroupsAndResources undoes).
fn legacy_to_aggregated(group: &str, list: &Value) -> Value {
    let version = list["groupVersion"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    let all = list["resources"].as_array().unwrap();
    let mut resources = Vec::new();
    for r in all
        .iter()
        .filter(|r| !r["name"].as_str().unwrap().contains('/'))
    {
        let name = r["name"].as_str().unwrap();
        let subs: Vec<Value> = all
            .iter()
            .filter_map(|s| {
                let sub = s["name"].as_str()?.strip_prefix(&format!("{name}/"))?;
                Some(json!({"subresource": sub, "responseKind": {"group": group, "version": version, "kind": s["kind"]}, "verbs": s["verbs"]}))
            })
            .collect();
        let mut entry = json!({"resource": name, "responseKind": {"group": group, "version": version, "kind": r["kind"]},
            "scope": if r["namespaced"] == true { "Namespaced" } else { "Cluster" },
            "singularResource": r["singularName"], "verbs": r["verbs"]});
        for key in ["shortNames", "categories"] {
            if r.get(key).is_some() {
                entry[key] = r[key].clone();
            }
        }
        if !subs.is_empty() {
            entry["subresources"] = json!(subs);
        }
        resources.push(entry);
    }
    json!({"metadata": {"name": group}, "versions": [{"version": version, "resources": resources, "freshness": "Current"}]})
}
