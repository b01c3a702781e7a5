//! The source tree keeps its layers: a module only uses the layers below
//! it (DESIGN's table, as docs/engine.md lists it), and no function grows
//! past 80 lines.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The top-level modules each layer may use besides itself. `util` and
/// `direct` (aligned I/O buffers) are leaf helpers any layer may use.
const ALLOWED: &[(&str, &[&str])] = &[
    ("format", &[]),
    ("store", &[]),
    ("catalog", &["format", "store"]),
    ("repo", &["format", "catalog", "store"]),
    ("pipeline", &["format", "repo", "store"]),
    ("config", &["store"]),
    ("source", &["format", "config", "store"]),
    (
        "engine",
        &[
            "format", "catalog", "repo", "pipeline", "source", "store", "config",
        ],
    ),
];

const LEAVES: &[&str] = &["util", "direct", "testdata"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The files of a top-level module: `src/<m>.rs` and `src/<m>/**`.
fn module_files(m: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let dir = src().join(m);
    if dir.is_dir() {
        rust_files(&dir, &mut out);
    }
    let file = src().join(format!("{m}.rs"));
    if file.is_file() {
        out.push(file);
    }
    out
}

/// The top-level modules a file names as `crate::<m>`.
fn used_modules(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    assert!(
        !text.contains("crate::{"),
        "use crate::{{..}} hides the layers used; name each module"
    );
    out
}

#[test]
fn layers_only_call_downward() {
    let mut violations = Vec::new();
    for (layer, allowed) in ALLOWED {
        for f in module_files(layer) {
            let text = std::fs::read_to_string(&f).unwrap();
            for used in used_modules(&text) {
                let ok = used == *layer
                    || allowed.contains(&used.as_str())
                    || LEAVES.contains(&used.as_str());
                if !ok {
                    violations.push(format!("{}: uses crate::{used}", f.display()));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layer violations:\n{}",
        violations.join("\n")
    );
}

/// Lines of each `fn` body in `text`, found by indentation as rustfmt
/// lays code out: from the `fn` line to the closing brace at its indent.
fn long_functions(path: &Path, text: &str, limit: usize) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        let t = l.trim_start();
        let is_fn = [
            "fn ",
            "pub fn ",
            "async fn ",
            "pub async fn ",
            "pub(crate) fn ",
            "pub(crate) async fn ",
            "const fn ",
            "pub const fn ",
        ]
        .iter()
        .any(|p| t.starts_with(p));
        if is_fn && !t.trim_end().ends_with(';') {
            let indent = l.len() - t.len();
            let close = format!("{}}}", " ".repeat(indent));
            let end = (i + 1..lines.len())
                .find(|&j| {
                    lines[j].starts_with(&close)
                        && lines[j].len() - lines[j].trim_start().len() == indent
                })
                .unwrap_or(lines.len());
            if end - i > limit {
                out.push(format!(
                    "{}:{}: {} lines: {}",
                    path.display(),
                    i + 1,
                    end - i,
                    t
                ));
            }
            i = end;
        }
        i += 1;
    }
    out
}

#[test]
fn no_function_over_80_lines() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let long: Vec<String> = files
        .iter()
        .flat_map(|f| long_functions(f, &std::fs::read_to_string(f).unwrap(), 80))
        .collect();
    assert!(
        long.is_empty(),
        "functions over 80 lines:\n{}",
        long.join("\n")
    );
}
