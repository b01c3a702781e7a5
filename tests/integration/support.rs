//! Helpers for the integration tests: a scratch environment with its own
//! repository and catalog, a way to run the `ferry` binary, generated source
//! trees and a comparison of two trees.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "../support/files.rs"]
mod files;
pub use files::files_under;

pub const PASSWORD: &str = "correct horse battery staple";

pub struct Env {
    pub dir: tempfile::TempDir,
    pub repo: PathBuf,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

impl Env {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo");
        Env { dir, repo }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A new directory under this environment's temporary directory.
    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
        c.env("FERRY_PASSWORD", PASSWORD)
            .env("XDG_CACHE_HOME", self.path("cache"))
            .env("FERRY_HOST", "test-host")
            .env_remove("FERRY_REPO")
            .env_remove("FERRY_CATALOG")
            .env_remove("FERRY_LOG");
        c
    }

    pub fn run_with(&self, mut c: Command, args: &[&str]) -> Run {
        let out: Output = c.args(args).output().expect("run ferry");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs ferry with `--repo <this env's repo>` prepended to `args`.
    pub fn try_run(&self, args: &[&str]) -> Run {
        let repo = self.repo.to_str().unwrap().to_string();
        let mut all = vec![args[0], "--repo", &repo];
        all.extend_from_slice(&args[1..]);
        self.run_with(self.command(), &all)
    }

    /// Like `try_run`, and asserts exit code 0.
    pub fn run(&self, args: &[&str]) -> Run {
        let r = self.try_run(args);
        assert_eq!(
            r.code, 0,
            "ferry {args:?} failed:\nstdout: {}\nstderr: {}",
            r.stdout, r.stderr
        );
        r
    }

    /// A repository with small chunks and packs and a fast key derivation,
    /// so that tests exercise many chunks and packs quickly.
    pub fn init_small(&self) {
        self.run(&[
            "init",
            "--chunk-min",
            "4KiB",
            "--chunk-avg",
            "16KiB",
            "--chunk-max",
            "64KiB",
            "--pack-size",
            "1MiB",
            "--kdf-memory",
            "8MiB",
            "--kdf-iterations",
            "1",
        ]);
    }

    /// Backs up `paths` and returns the new snapshot id.
    pub fn backup(&self, paths: &[&Path], extra: &[&str]) -> String {
        let mut args: Vec<String> = vec!["backup".into(), "--json".into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(paths.iter().map(|p| p.to_str().unwrap().to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = self.run(&refs);
        r.json()["id"].as_str().unwrap().to_string()
    }

    /// Where a restored source path lands under `target`.
    pub fn restored(target: &Path, source: &Path) -> PathBuf {
        target.join(source.strip_prefix("/").unwrap())
    }
}

pub use ferry::testdata::{random as bytes, text};

/// What a tree holds, for comparing a source with its restore: for each
/// relative path, the type, permission bits, size, mtime and a digest of the
/// content or link target, and the xattrs.
pub fn digest(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, String> = BTreeMap::new();
    walk(root, root, &mut out, &mut inodes);
    out
}

fn walk(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, String>,
    inodes: &mut BTreeMap<u64, String>,
) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let m = std::fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let mut xattrs: Vec<String> = xattr::list(&p)
            .map(|l| {
                l.map(|n| {
                    format!(
                        "{}={:?}",
                        n.to_string_lossy(),
                        xattr::get(&p, &n).ok().flatten()
                    )
                })
                .collect()
            })
            .unwrap_or_default();
        xattrs.sort();
        let what = if ft.is_symlink() {
            format!(
                "link {:?}",
                std::fs::read_link(&p).unwrap().as_os_str().as_bytes()
            )
        } else if ft.is_dir() {
            format!("dir {:o}", m.permissions().mode() & 0o7777)
        } else if ft.is_file() {
            let link = if m.nlink() > 1 {
                let first = inodes.entry(m.ino()).or_insert_with(|| rel.clone()).clone();
                format!(" linked-with {first}")
            } else {
                String::new()
            };
            let hash = blake3::hash(&std::fs::read(&p).unwrap());
            format!(
                "file {:o} {} {} {}{link}",
                m.permissions().mode() & 0o7777,
                m.len(),
                m.mtime_nsec() + m.mtime() * 1_000_000_000,
                hash
            )
        } else {
            format!("special {:o} rdev {}", m.mode(), m.rdev())
        };
        out.insert(
            rel,
            format!("{what} uid {} gid {} xattrs {:?}", m.uid(), m.gid(), xattrs),
        );
        if ft.is_dir() {
            walk(root, &p, out, inodes);
        }
    }
}

/// Asserts two trees hold the same entries, naming the first difference.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let (da, db) = (digest(a), digest(b));
    for (k, v) in &da {
        assert_eq!(
            Some(v),
            db.get(k),
            "entry {k} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
    assert_eq!(
        da.len(),
        db.len(),
        "{} has entries {} lacks: {:?}",
        b.display(),
        a.display(),
        db.keys()
            .filter(|k| !da.contains_key(*k))
            .collect::<Vec<_>>()
    );
}

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The paths below `root`, relative and as bytes, of every entry.
pub fn walk_names(root: &std::path::Path) -> std::collections::BTreeSet<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = std::collections::BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            out.insert(rel);
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out
}
