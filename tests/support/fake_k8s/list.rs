//! Lists as the API server pages them: limit, continue tokens in the
//! apiserver's format, remainingItemCount, label and field selectors, 410.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use super::catalog::Served;
use super::fields::with_version;
use super::objects::State;
use super::status::{self as st, ApiError};

/// Query parameters of a list.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    pub limit: Option<usize>,
    #[serde(rename = "continue")]
    pub continue_token: Option<String>,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
}

fn token(rv: i64, start: &str) -> String {
    URL_SAFE_NO_PAD.encode(
        json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{start}\u{0}")}).to_string(),
    )
}

fn decode(tok: &str) -> Option<(i64, String)> {
    let raw: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(tok).ok()?).ok()?;
    Some((raw["rv"].as_i64()?, raw["start"].as_str()?.to_string()))
}

pub fn list(
    state: &mut State,
    s: &Served,
    ns: Option<&str>,
    q: &ListQuery,
) -> Result<Value, ApiError> {
    let (rv, start) = match q.continue_token.as_deref().filter(|t| !t.is_empty()) {
        None => (state.rv as i64, String::new()),
        Some(tok) => {
            let (rv, start) =
                decode(tok).ok_or_else(|| st::bad_request("continue key is not valid".into()))?;
            if std::mem::take(&mut state.faults.expire_next_continue) {
                let mut err = st::expired();
                err.1["metadata"]["continue"] = json!(token(-1, start.trim_end_matches('\u{0}')));
                return Err(err);
            }
            (rv, start)
        }
    };
    let labels = q.label_selector.as_deref().unwrap_or("");
    let fields = q.field_selector.as_deref().unwrap_or("");
    let mut matching: Vec<(String, Value)> = state
        .objects
        .iter()
        .filter(|((g, r, n, _), _)| {
            *g == s.group && *r == s.resource && ns.is_none_or(|ns| ns == n)
        })
        .map(|((_, _, n, name), o)| {
            (
                if n.is_empty() {
                    name.clone()
                } else {
                    format!("{n}/{name}")
                },
                o,
            )
        })
        .filter(|(key, _)| key.as_str() >= start.as_str())
        .filter(|(_, o)| label_match(labels, &o["metadata"]["labels"]) && field_match(fields, o))
        .map(|(k, o)| (k, o.clone()))
        .collect();
    matching.sort_by(|a, b| a.0.cmp(&b.0));
    let limit = q.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
    let total = matching.len();
    let page: Vec<(String, Value)> = matching.into_iter().take(limit).collect();
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if total > page.len() {
        meta["continue"] = json!(token(rv, &page.last().unwrap().0));
        if labels.is_empty() && fields.is_empty() {
            meta["remainingItemCount"] = json!(total - page.len());
        }
    }
    let items: Vec<Value> = page
        .into_iter()
        .map(|(_, o)| {
            let mut o = with_version(o, s);
            let m = o.as_object_mut().unwrap();
            m.remove("apiVersion");
            m.remove("kind");
            o
        })
        .collect();
    Ok(
        json!({"kind": format!("{}List", s.kind), "apiVersion": with_version(json!({}), s)["apiVersion"], "metadata": meta, "items": items}),
    )
}

/// Splits on commas outside parentheses.
fn requirements(sel: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth) = (Vec::new(), String::new(), 0);
    for c in sel.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter()
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .collect()
}

/// Label selector: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`.
pub fn label_match(sel: &str, labels: &Value) -> bool {
    let get = |k: &str| labels.get(k.trim()).and_then(Value::as_str);
    requirements(sel).iter().all(|r| {
        let set = |list: &str| -> Vec<String> {
            list.trim()
                .trim_start_matches('(')
                .trim_end_matches(')')
                .split(',')
                .map(|x| x.trim().to_string())
                .collect()
        };
        if let Some((k, v)) = r.split_once(" notin ") {
            get(k).is_none_or(|x| !set(v).iter().any(|s| s == x))
        } else if let Some((k, v)) = r.split_once(" in ") {
            get(k).is_some_and(|x| set(v).iter().any(|s| s == x))
        } else if let Some((k, v)) = r.split_once("!=") {
            get(k) != Some(v.trim())
        } else if let Some((k, v)) = r.split_once("==").or_else(|| r.split_once('=')) {
            get(k) == Some(v.trim())
        } else if let Some(k) = r.strip_prefix('!') {
            get(k).is_none()
        } else {
            get(r).is_some()
        }
    })
}

/// Field selector: `path=v`, `path==v`, `path!=v` on dotted paths (`metadata.name`).
pub fn field_match(sel: &str, obj: &Value) -> bool {
    let get = |path: &str| {
        let mut v = obj;
        for part in path.trim().split('.') {
            v = &v[part];
        }
        match v {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        }
    };
    requirements(sel).iter().all(|r| {
        if let Some((k, v)) = r.split_once("!=") {
            get(k) != v.trim()
        } else if let Some((k, v)) = r.split_once("==").or_else(|| r.split_once('=')) {
            get(k) == v.trim()
        } else {
            false
        }
    })
}
