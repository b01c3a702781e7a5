//! File names are bytes: names that are not UTF-8 (Latin-1, Shift-JIS),
//! names that differ only in such bytes, names with newlines and
//! backslashes go through backup, ls, diff, `--include`, `--json` and
//! restore byte for byte.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use base64::Engine;

use crate::support::Env;

/// The odd names of the source tree, relative to its root, as bytes.
const FILES: &[(&[u8], &[u8])] = &[
    (b"caf\xe9-latin1", b"latin-1 e acute"),
    (
        b"x\xff",
        b"first of two names that are the same when made UTF-8",
    ),
    (
        b"x\xfe",
        b"second of two names that are the same when made UTF-8",
    ),
    (b"line\nbreak", b"a newline in the name"),
    (b"back\\slash", b"a backslash in the name"),
    (b"\x83e\x83X\x83g", b"Shift-JIS"),
    (b"d\xe9/inner\xff", b"inside a directory that is not UTF-8"),
    (b"plain.txt", b"plain"),
];

fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

fn make_source(root: &Path) {
    std::fs::create_dir_all(root.join(os(b"d\xe9"))).unwrap();
    for (name, data) in FILES {
        std::fs::write(root.join(os(name)), data).unwrap();
    }
    std::os::unix::fs::symlink(os(b"target-\xff"), root.join(os(b"link-to-\xff"))).unwrap();
}

/// Every entry below `root`: relative path bytes to kind and content (or
/// link target).
fn listing(root: &Path) -> BTreeMap<Vec<u8>, (String, Vec<u8>)> {
    let mut out = BTreeMap::new();
    for rel in crate::support::walk_names(root) {
        let p = root.join(OsStr::from_bytes(&rel));
        let m = std::fs::symlink_metadata(&p).unwrap();
        let v = if m.is_symlink() {
            let t = std::fs::read_link(&p).unwrap();
            ("link".to_string(), t.as_os_str().as_bytes().to_vec())
        } else if m.is_dir() {
            ("dir".to_string(), Vec::new())
        } else {
            ("file".to_string(), std::fs::read(&p).unwrap())
        };
        out.insert(rel, v);
    }
    out
}

/// A path of `--json` output as bytes: the string, or after a NUL the
/// base64 of the bytes.
fn json_bytes(v: &serde_json::Value) -> Vec<u8> {
    let s = v.as_str().expect("a path is a string");
    match s.strip_prefix('\0') {
        Some(b) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .expect("base64 after NUL"),
        None => s.as_bytes().to_vec(),
    }
}

fn snap_path(src: &Path, rel: &[u8]) -> Vec<u8> {
    let mut p = src.as_os_str().as_bytes().to_vec();
    p.push(b'/');
    p.extend_from_slice(rel);
    p
}

#[test]
fn odd_names_restore_byte_for_byte() {
    let env = Env::new();
    env.init_small();
    let src = env.path("src");
    make_source(&src);
    env.backup(&[&src], &[]);
    let out = env.path("out");
    let r = env.run(&[
        "restore",
        "latest",
        "--target",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(r.json()["report"]["failed"], serde_json::json!([]));
    let want = listing(&src);
    assert_eq!(want.len(), FILES.len() + 2, "source made as meant");
    assert_eq!(listing(&Env::restored(&out, &src)), want);
    env.run(&["check", "--read-data"]);
}

#[test]
fn ls_json_gives_exact_bytes_and_utf8_as_before() {
    let env = Env::new();
    env.init_small();
    let src = env.path("src");
    make_source(&src);
    env.backup(&[&src], &[]);
    let r = env.run(&["ls", "latest", src.to_str().unwrap(), "--json"]);
    let entries = r.json()["entries"].as_array().unwrap().clone();
    let paths: Vec<Vec<u8>> = entries.iter().map(|e| json_bytes(&e["path"])).collect();
    for (name, _) in FILES {
        assert!(
            paths.contains(&snap_path(&src, name)),
            "{:?} listed",
            os(name)
        );
    }
    assert!(paths.contains(&snap_path(&src, b"link-to-\xff")));
    let link = entries
        .iter()
        .find(|e| json_bytes(&e["path"]) == snap_path(&src, b"link-to-\xff"))
        .unwrap();
    assert_eq!(json_bytes(&link["node"]["target"]), b"target-\xff");
    // UTF-8 paths are plain strings, the others NUL + base64.
    let plain = format!("{}/back\\slash", src.display());
    assert!(entries.iter().any(|e| e["path"] == plain.as_str()));
    let latin = entries
        .iter()
        .find(|e| json_bytes(&e["path"]) == snap_path(&src, b"caf\xe9-latin1"))
        .unwrap();
    assert!(latin["path"].as_str().unwrap().starts_with('\0'));
    // Text output keeps one entry per line, even for a name with a newline.
    let text = env.run(&["ls", "latest", src.to_str().unwrap()]);
    assert_eq!(text.stdout.lines().count(), entries.len());
}

#[test]
fn diff_names_changed_entries_by_their_bytes() {
    let env = Env::new();
    env.init_small();
    let src = env.path("src");
    make_source(&src);
    let first = env.backup(&[&src], &[]);
    std::fs::write(
        src.join(os(b"x\xfe")),
        b"changed content, longer than before",
    )
    .unwrap();
    std::fs::write(src.join(os(b"new\xe9")), b"new").unwrap();
    std::fs::remove_file(src.join(os(b"x\xff"))).unwrap();
    let second = env.backup(&[&src], &[]);
    let r = env.run(&["diff", &first, &second, "--json"]);
    let changes: BTreeMap<Vec<u8>, String> = r.json()["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                json_bytes(&c["path"]),
                c["change"].as_str().unwrap().to_string(),
            )
        })
        .filter(|(p, _)| p.starts_with(src.as_os_str().as_bytes()))
        .filter(|(p, _)| *p != src.as_os_str().as_bytes())
        .collect();
    let want: BTreeMap<Vec<u8>, String> = [
        (snap_path(&src, b"x\xfe"), "modified"),
        (snap_path(&src, b"new\xe9"), "added"),
        (snap_path(&src, b"x\xff"), "removed"),
    ]
    .into_iter()
    .map(|(p, c)| (p, c.to_string()))
    .collect();
    assert_eq!(changes, want);
}

#[test]
fn include_and_exclude_match_bytes() {
    let env = Env::new();
    env.init_small();
    let src = env.path("src");
    make_source(&src);
    env.backup(&[&src], &[]);
    // `?` stands for the one byte that is not UTF-8.
    let out = env.path("inc");
    let t = out.to_str().unwrap();
    env.run(&[
        "restore",
        "latest",
        "--target",
        t,
        "--include",
        "caf?-latin1",
    ]);
    let got: Vec<Vec<u8>> = listing(&Env::restored(&out, &src)).into_keys().collect();
    assert_eq!(got, vec![b"caf\xe9-latin1".to_vec()]);
    // Both names that differ only in bytes that are not UTF-8 come back.
    let out = env.path("both");
    let t = out.to_str().unwrap();
    env.run(&["restore", "latest", "--target", t, "--include", "x*"]);
    let got: Vec<Vec<u8>> = listing(&Env::restored(&out, &src)).into_keys().collect();
    assert_eq!(got, vec![b"x\xfe".to_vec(), b"x\xff".to_vec()]);
    // Excluding the directory whose name is not UTF-8 leaves everything
    // else; a dry run lists the exact bytes in --json.
    let out = env.path("dry");
    let t = out.to_str().unwrap();
    let r = env.run(&[
        "restore",
        "latest",
        "--target",
        t,
        "--dry-run",
        "--json",
        "--exclude",
        "d?",
    ]);
    let planned: Vec<Vec<u8>> = r.json()["report"]["planned"]
        .as_array()
        .unwrap()
        .iter()
        .map(json_bytes)
        .collect();
    assert!(planned.contains(&snap_path(&src, b"x\xff")));
    assert!(planned.contains(&snap_path(&src, b"line\nbreak")));
    assert!(!planned
        .iter()
        .any(|p| p.starts_with(&snap_path(&src, b"d\xe9"))));
}
