//! Prometheus metrics: a small typed registry, its text exposition
//! (format 0.0.4), an atomic writer for node-exporter's textfile collector,
//! and a Pushgateway client (plain HTTP). Names, types and labels are
//! listed in docs/metrics.md.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics file {path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("--metrics-push {url:?}: {reason}")]
    Push { url: String, reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        }
    }
}

/// Label pairs, sorted by name.
pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone)]
struct Family {
    help: String,
    kind: Kind,
    samples: BTreeMap<Labels, f64>,
}

/// Metric families by name. A sample given again with the same labels
/// replaces the earlier value.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    families: BTreeMap<String, Family>,
    /// Labels added to every sample that does not set them itself.
    defaults: Labels,
}

impl Registry {
    pub fn set_default(&mut self, name: &str, value: &str) {
        self.defaults.insert(name.into(), value.into());
    }

    pub fn has_default(&self, name: &str) -> bool {
        self.defaults.contains_key(name)
    }

    pub fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)], v: f64) {
        self.add(name, help, Kind::Gauge, labels, v);
    }

    pub fn counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], v: f64) {
        self.add(name, help, Kind::Counter, labels, v);
    }

    fn add(&mut self, name: &str, help: &str, kind: Kind, labels: &[(&str, &str)], v: f64) {
        let f = self.families.entry(name.into()).or_insert_with(|| Family {
            help: help.into(),
            kind,
            samples: BTreeMap::new(),
        });
        let labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        f.samples.insert(labels.collect(), v);
    }

    pub fn is_empty(&self) -> bool {
        self.families.is_empty()
    }

    /// The values of one metric (for tests and reports).
    pub fn values(&self, name: &str) -> Vec<(Labels, f64)> {
        self.families
            .get(name)
            .map(|f| f.samples.iter().map(|(l, v)| (l.clone(), *v)).collect())
            .unwrap_or_default()
    }

    /// The text exposition of every sample, default labels filled in.
    pub fn render(&self) -> String {
        self.render_where(|_| true, &[])
    }

    /// The text exposition of the samples `keep` selects, without the
    /// labels named in `drop` (the Pushgateway's grouping labels).
    fn render_where(&self, keep: impl Fn(&Labels) -> bool, drop: &[&str]) -> String {
        let mut out = String::new();
        for (name, f) in &self.families {
            let samples: Vec<(Labels, f64)> = f
                .samples
                .iter()
                .map(|(l, v)| (self.full(l), *v))
                .filter(|(l, _)| keep(l))
                .collect();
            if samples.is_empty() {
                continue;
            }
            let _ = writeln!(out, "# HELP {name} {}", escape_help(&f.help));
            let _ = writeln!(out, "# TYPE {name} {}", f.kind.name());
            for (mut l, v) in samples {
                l.retain(|k, _| !drop.contains(&k.as_str()));
                let _ = writeln!(out, "{name}{} {}", labels_text(&l), number(v));
            }
        }
        out
    }

    fn full(&self, l: &Labels) -> Labels {
        let mut full = self.defaults.clone();
        full.extend(l.iter().map(|(k, v)| (k.clone(), v.clone())));
        full
    }

    /// The values of label `name` over every sample.
    fn label_values(&self, name: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .families
            .values()
            .flat_map(|f| f.samples.keys())
            .filter_map(|l| self.full(l).get(name).cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn labels_text(l: &Labels) -> String {
    if l.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = l
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// Writes the exposition to `path` atomically: a temp file in the same
/// directory, then a rename, so the textfile collector never reads half.
pub fn write_file(path: &Path, text: &str) -> Result<(), MetricsError> {
    let err = |source| MetricsError::File {
        path: path.display().to_string(),
        source,
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{}.tmp", name.unwrap_or_default()));
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}

/// Pushes to a Pushgateway: one PUT per region to
/// `/metrics/job/<job>/repository/<id>/region/<region>`, each replacing
/// that group, with the grouping labels taken out of the samples.
pub async fn push(base: &str, job: &str, reg: &Registry) -> Result<(), MetricsError> {
    let repository = reg.label_values("repository");
    let repository = repository
        .first()
        .cloned()
        .unwrap_or_else(|| "unknown".into());
    for region in reg.label_values("region") {
        let body = reg.render_where(
            |l| l.get("region") == Some(&region),
            &["region", "repository"],
        );
        let path = format!(
            "/metrics/{}/{}/{}",
            segment("job", job),
            segment("repository", &repository),
            segment("region", &region)
        );
        put(base, &path, &body).await?;
    }
    Ok(())
}

/// One label of a grouping key as path segments; values that are empty
/// or not plain use the Pushgateway's `name@base64/value` form.
fn segment(name: &str, v: &str) -> String {
    let plain = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if plain {
        return format!("{name}/{v}");
    }
    use base64::Engine;
    let enc = base64::engine::general_purpose::URL_SAFE.encode(v);
    format!("{name}@base64/{}", if enc.is_empty() { "=" } else { &enc })
}

/// One HTTP/1.1 PUT over plain TCP; any status but 2xx is an error.
async fn put(base: &str, path: &str, body: &str) -> Result<(), MetricsError> {
    let fail = |reason: String| MetricsError::Push {
        url: base.to_string(),
        reason,
    };
    let rest = base.strip_prefix("http://").ok_or_else(|| {
        fail("only http:// URLs are supported, e.g. http://pushgateway:9091".into())
    })?;
    let (host, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let addr = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    let mut s = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::net::TcpStream::connect(&addr),
    )
    .await
    .map_err(|_| fail(format!("connecting to {addr} timed out")))?
    .map_err(|e| fail(format!("connecting to {addr}: {e}")))?;
    let full = format!("/{}{path}", prefix.trim_end_matches('/'));
    let full = full.replacen("//", "/", 1);
    let req = format!(
        "PUT {full} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain; version=0.0.4\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut resp = Vec::new();
    let io = async {
        s.write_all(req.as_bytes()).await?;
        s.read_to_end(&mut resp).await
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), io)
        .await
        .map_err(|_| fail("the Pushgateway did not answer in 30s".into()))?
        .map_err(|e| fail(e.to_string()))?;
    let text = String::from_utf8_lossy(&resp);
    let status = text.split_whitespace().nth(1).unwrap_or("");
    if status.starts_with('2') {
        return Ok(());
    }
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").trim();
    Err(fail(format!("{full}: HTTP {status} {body}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_help_type_and_escaped_labels() {
        let mut r = Registry::default();
        r.set_default("repository", "abc");
        r.gauge("ferry_x", "An x.", &[("region", "eu \"1\"")], 1.5);
        r.counter("ferry_y_total", "A y.", &[], 3.0);
        let t = r.render();
        assert!(t.contains("# TYPE ferry_x gauge\n"), "{t}");
        assert!(
            t.contains("ferry_x{region=\"eu \\\"1\\\"\",repository=\"abc\"} 1.5\n"),
            "{t}"
        );
        assert!(t.contains("ferry_y_total{repository=\"abc\"} 3\n"), "{t}");
    }

    #[test]
    fn grouping_values_that_are_not_plain_use_base64() {
        assert_eq!(segment("region", "eu-1"), "region/eu-1");
        assert_eq!(segment("region", "a/b"), "region@base64/YS9i");
        assert_eq!(segment("region", ""), "region@base64/=");
    }
}
