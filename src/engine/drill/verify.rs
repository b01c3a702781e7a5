//! Verifying a restored tree against its snapshot: every entry's type,
//! permission bits, size and link target, hard links sharing one inode, and
//! the content of regular files, by recomputing each blob's keyed id from
//! the restored bytes.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::engine::restore::target_path;
use crate::engine::walk::{walk, Entry, SnapPath};
use crate::format::tree::NodeKind;
use crate::repo::{BlobId, Repository, Sealer};

/// How much file content is read back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VerifyMode {
    /// Every file's content.
    Full,
    /// The content of about this share (0..=1) of the files, picked at
    /// random; the metadata of every entry is still checked.
    Sample(f64),
}

impl VerifyMode {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "full" {
            return Ok(VerifyMode::Full);
        }
        let pct = s
            .strip_prefix("sample:")
            .and_then(|p| p.strip_suffix('%'))
            .and_then(|p| p.parse::<f64>().ok())
            .filter(|p| *p > 0.0 && *p <= 100.0);
        match pct {
            Some(p) => Ok(VerifyMode::Sample(p / 100.0)),
            None => Err(format!(
                "--verify {s:?}: write `full` or `sample:N%` with 0 < N <= 100, e.g. sample:5%"
            )),
        }
    }

    pub fn label(&self) -> String {
        match self {
            VerifyMode::Full => "full".into(),
            VerifyMode::Sample(p) => format!("sample:{}%", p * 100.0),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// Entries whose metadata was compared.
    pub entries: u64,
    /// Files whose content was read back and matched blob by blob (a
    /// hard-linked file once).
    pub content_files: u64,
    /// Bytes read back and matched.
    pub verified_bytes: u64,
    /// Entries that differ from the snapshot, with what differs.
    pub mismatches: Vec<super::Mismatch>,
    /// How long the verification took.
    #[serde(default)]
    pub seconds: f64,
}

/// Compares the restored tree under `sandbox` with snapshot tree `root`.
pub async fn verify(
    repo: &Arc<Repository>,
    root: BlobId,
    sandbox: &Path,
    mode: VerifyMode,
) -> Verification {
    let clock = std::time::Instant::now();
    let mut v = verify_tree(repo, root, sandbox, mode).await;
    v.seconds = clock.elapsed().as_secs_f64();
    v
}

async fn verify_tree(
    repo: &Arc<Repository>,
    root: BlobId,
    sandbox: &Path,
    mode: VerifyMode,
) -> Verification {
    let mut v = Verification::default();
    // The restore before it walked the same trees within the snapshot's
    // entry limit.
    let w = match walk(repo, root, u64::MAX, |_| true).await {
        Ok(w) => w,
        Err(e) => {
            let root = crate::engine::walk::SnapPath::root();
            v.mismatches.push(super::Mismatch::new(root, e.to_string()));
            return v;
        }
    };
    for (path, error) in w.errors {
        v.mismatches.push(super::Mismatch::new(
            path,
            format!("tree unreadable: {error}"),
        ));
    }
    let (repo, sandbox) = (repo.clone(), sandbox.to_path_buf());
    let entries = w.entries;
    let checked =
        tokio::task::spawn_blocking(move || check_entries(&repo, &sandbox, &entries, mode));
    match checked.await {
        Ok(c) => add(&mut v, c),
        Err(e) => v.mismatches.push(super::Mismatch::new(
            SnapPath::root(),
            format!("verifier failed: {e}"),
        )),
    }
    v.mismatches.sort_by(|a, b| a.path.cmp(&b.path));
    v
}

/// Checks every entry: by a few threads, each taking the next entry,
/// reading it back into a buffer of its own (the files are fresh in the
/// page cache, so hashing, not the disk, sets the pace). The hard links
/// of a file are checked after, in snapshot order: that each is the same
/// inode, and the content once.
fn check_entries(
    repo: &Repository,
    sandbox: &Path,
    entries: &[Entry],
    mode: VerifyMode,
) -> Verification {
    let next = AtomicUsize::new(0);
    let (done, linked) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..readers().min(entries.len().max(1)))
            .map(|_| s.spawn(|| Checker::new(repo, sandbox, mode).run(entries, &next)))
            .collect();
        let mut all = (Verification::default(), Vec::new());
        for w in workers {
            match w.join() {
                Ok((v, linked)) => {
                    add(&mut all.0, v);
                    all.1.extend(linked);
                }
                Err(_) => all.0.mismatches.push(super::Mismatch::new(
                    SnapPath::root(),
                    "verifier failed: a checking thread panicked",
                )),
            }
        }
        all
    });
    let mut v = done;
    let mut checker = Checker::new(repo, sandbox, mode);
    let mut inodes: HashMap<(u64, u64), (String, u64)> = HashMap::new();
    let mut linked = linked;
    linked.sort_unstable_by_key(|(i, _)| *i);
    for (i, ino) in linked {
        let e = &entries[i];
        let (first, seen) = inodes
            .entry((e.node.device, e.node.inode))
            .or_insert_with(|| (e.path.to_string(), ino));
        if *seen != ino {
            let why = format!("not a hard link of {first}, as in the snapshot");
            v.mismatches.push(super::Mismatch::new(e.path.clone(), why));
        } else if *first == e.path.to_string() {
            checker.content(e);
        }
    }
    add(&mut v, checker.v);
    v
}

fn add(to: &mut Verification, v: Verification) {
    to.entries += v.entries;
    to.content_files += v.content_files;
    to.verified_bytes += v.verified_bytes;
    to.mismatches.extend(v.mismatches);
}

/// One checking thread: what it found, and its read buffer.
struct Checker<'a> {
    repo: &'a Repository,
    sandbox: &'a Path,
    mode: VerifyMode,
    buf: Vec<u8>,
    v: Verification,
}

impl<'a> Checker<'a> {
    fn new(repo: &'a Repository, sandbox: &'a Path, mode: VerifyMode) -> Self {
        let v = Verification::default();
        let buf = Vec::new();
        Checker {
            repo,
            sandbox,
            mode,
            buf,
            v,
        }
    }

    /// Checks entries until none is left; returns what it found and the
    /// hard-linked files it met (index, restored inode), whose content is
    /// left for the serial pass.
    fn run(mut self, entries: &[Entry], next: &AtomicUsize) -> (Verification, Vec<(usize, u64)>) {
        let mut linked = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(e) = entries.get(i) else { break };
            self.v.entries += 1;
            let p = target_path(self.sandbox, &e.path);
            match check_meta(e, &p) {
                Err(why) => self
                    .v
                    .mismatches
                    .push(super::Mismatch::new(e.path.clone(), why)),
                Ok(ino)
                    if e.node.kind == NodeKind::File && e.node.links > 1 && e.node.inode != 0 =>
                {
                    linked.push((i, ino))
                }
                Ok(_) if e.node.kind == NodeKind::File => self.content(e),
                Ok(_) => {}
            }
        }
        (self.v, linked)
    }

    /// Reads a file back and matches its blobs, if the mode picks it.
    fn content(&mut self, e: &Entry) {
        if !picked(self.mode) {
            return;
        }
        let lengths: Option<Vec<u32>> = self
            .repo
            .locate_blobs(&e.node.content)
            .into_iter()
            .map(|f| f.map(|(_, b)| b.raw_length))
            .collect();
        let path = target_path(self.sandbox, &e.path);
        let key = self.repo.sealer();
        let r = match lengths {
            Some(l) => check_file(key, &path, e, &l, &mut self.buf),
            None => Err("a blob of this file is not in the index".into()),
        };
        match r {
            Ok(()) => {
                self.v.content_files += 1;
                self.v.verified_bytes += e.node.size;
            }
            Err(why) => self
                .v
                .mismatches
                .push(super::Mismatch::new(e.path.clone(), why)),
        }
    }
}

fn picked(mode: VerifyMode) -> bool {
    match mode {
        VerifyMode::Full => true,
        VerifyMode::Sample(p) => rand::random::<f64>() < p,
    }
}

/// Type, permission bits, size and link target; the restored inode.
fn check_meta(e: &Entry, p: &Path) -> Result<u64, String> {
    let m = std::fs::symlink_metadata(p).map_err(|err| format!("not restored: {err}"))?;
    let ft = m.file_type();
    let kind_ok = match e.node.kind {
        NodeKind::File => ft.is_file(),
        NodeKind::Dir => ft.is_dir(),
        NodeKind::Symlink => ft.is_symlink(),
        _ => {
            use std::os::unix::fs::FileTypeExt;
            ft.is_fifo() || ft.is_char_device() || ft.is_block_device() || ft.is_socket()
        }
    };
    if !kind_ok {
        return Err(format!("restored as another type (want {:?})", e.node.kind));
    }
    if e.node.kind == NodeKind::Symlink {
        let got = std::fs::read_link(p).map_err(|err| format!("link unreadable: {err}"))?;
        let want = e.node.target.as_deref().map(std::ffi::OsStr::from_bytes);
        if Some(got.as_os_str()) != want {
            return Err(format!("link target {got:?} differs from the snapshot's"));
        }
        return Ok(m.ino());
    }
    let (want, got) = (e.node.mode & 0o7777, m.permissions().mode() & 0o7777);
    if want != got {
        return Err(format!("mode {got:o}, snapshot has {want:o}"));
    }
    if e.node.kind == NodeKind::File && m.len() != e.node.size {
        return Err(format!("size {}, snapshot has {}", m.len(), e.node.size));
    }
    Ok(m.ino())
}

/// How many files are read back at a time: twice the cores, as the
/// restore's writers.
fn readers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .max(2)
        * 2
}

/// The data regions of a file: the whole file, or its extents when sparse.
fn regions(e: &Entry) -> Vec<(u64, u64)> {
    match &e.node.extents {
        Some(x) => x.clone(),
        None => vec![(0, e.node.size)],
    }
}

/// Reads a restored file's data regions and checks that they split into
/// blobs whose keyed ids are the snapshot's, in order.
fn check_file(
    key: &Sealer,
    path: &Path,
    e: &Entry,
    lengths: &[u32],
    buf: &mut Vec<u8>,
) -> Result<(), String> {
    let mut f = std::fs::File::open(path).map_err(|err| format!("cannot read back: {err}"))?;
    let total: u64 = lengths.iter().map(|l| *l as u64).sum();
    let mapped: u64 = regions(e).iter().map(|r| r.1).sum();
    if total != mapped {
        return Err(format!(
            "snapshot blobs hold {total} bytes, its data regions {mapped}"
        ));
    }
    let mut regions = regions(e).into_iter();
    let (mut at, mut left) = regions.next().unwrap_or((0, 0));
    f.seek(SeekFrom::Start(at)).map_err(|err| err.to_string())?;
    for (i, (id, len)) in e.node.content.iter().zip(lengths).enumerate() {
        buf.clear();
        buf.reserve(*len as usize);
        let mut need = *len as u64;
        while need > 0 {
            while left == 0 {
                (at, left) = regions.next().ok_or("data regions end early")?;
                f.seek(SeekFrom::Start(at)).map_err(|err| err.to_string())?;
            }
            let n = need.min(left);
            let got = (&mut f)
                .take(n)
                .read_to_end(buf)
                .map_err(|err| err.to_string())?;
            if got as u64 != n {
                return Err(format!("file ends early, at blob {i}"));
            }
            (need, left, at) = (need - n, left - n, at + n);
        }
        if key.blob_id(buf) != *id {
            return Err(format!("content differs from the snapshot's, in blob {i}"));
        }
    }
    Ok(())
}

/// Verifies a block volume's data written onto `device`: the `block` file
/// of `root` read back from the device at its extents, blob by blob.
pub async fn verify_device(repo: &Arc<Repository>, root: BlobId, device: &Path) -> Verification {
    let clock = std::time::Instant::now();
    let mut v = check_device(repo, root, device).await;
    v.seconds = clock.elapsed().as_secs_f64();
    v
}

async fn check_device(repo: &Arc<Repository>, root: BlobId, device: &Path) -> Verification {
    let mut v = Verification {
        entries: 1,
        ..Default::default()
    };
    let name = crate::engine::volumes::BLOCK_FILE;
    let path = SnapPath::root().join(name.as_bytes());
    let node = match repo.load_tree(&root).await {
        Ok(t) => t.find(name.as_bytes()).cloned(),
        Err(e) => {
            v.mismatches
                .push(super::Mismatch::new(path, format!("tree unreadable: {e}")));
            return v;
        }
    };
    let Some(node) = node.filter(|n| n.kind == NodeKind::File) else {
        v.mismatches
            .push(super::Mismatch::new(path, "the tree holds no block data"));
        return v;
    };
    let e = Entry { path, node };
    let (device, size) = (device.to_path_buf(), e.node.size);
    let lengths: Option<Vec<u32>> = repo
        .locate_blobs(&e.node.content)
        .into_iter()
        .map(|f| f.map(|(_, b)| b.raw_length))
        .collect();
    let key = repo.sealer().clone();
    let done = tokio::task::spawn_blocking(move || {
        let r = match lengths {
            Some(l) => check_file(&key, &device, &e, &l, &mut Vec::new()),
            None => Err("a blob of the block data is not in the index".into()),
        };
        (e.path, r)
    })
    .await;
    match done {
        Ok((_, Ok(()))) => (v.content_files, v.verified_bytes) = (1, size),
        Ok((p, Err(why))) => v.mismatches.push(super::Mismatch::new(p, why)),
        Err(e) => v.mismatches.push(super::Mismatch::new(
            SnapPath::root(),
            format!("verifier failed: {e}"),
        )),
    }
    v
}
