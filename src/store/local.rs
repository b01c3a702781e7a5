//! A store in a local directory: one file per object, written atomically
//! (an unnamed temporary file, fsync, link to its name, fsync of the
//! directory), so that a process killed part-way leaves no partial object
//! and, where the filesystem has `O_TMPFILE`, no temporary file either.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;

use crate::direct::{AlignedBuf, Spare, DIRECT_ALIGN};

use super::{ObjectMeta, ObjectStore, StoreError, StoreErrorKind, StoreResult};

/// Temporary files carry this prefix; listings skip them.
const TEMP_PREFIX: &str = ".tmp-";

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
    /// Open files of recently read objects: restores read thousands of
    /// small ranges of the same packs. Objects are immutable; a `put` or
    /// `delete` through this store drops the key's entry.
    open_files: Arc<Mutex<HashMap<String, Arc<File>>>>,
}

const OPEN_FILES: usize = 64;

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStore {
            root: root.into(),
            open_files: Arc::default(),
        }
    }

    fn cached_open(&self, key: &str, path: &Path) -> io::Result<Arc<File>> {
        if let Some(f) = self.open_files.lock().unwrap().get(key) {
            return Ok(f.clone());
        }
        let f = Arc::new(File::open(path)?);
        let mut cache = self.open_files.lock().unwrap();
        if cache.len() >= OPEN_FILES {
            let victim = cache.keys().next().cloned();
            if let Some(v) = victim {
                cache.remove(&v);
            }
        }
        cache.insert(key.to_string(), f.clone());
        Ok(f)
    }

    fn forget(&self, key: &str) {
        self.open_files.lock().unwrap().remove(key);
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, op: &'static str, key: &str) -> StoreResult<PathBuf> {
        let valid = !key.is_empty()
            && key.split('/').all(|seg| {
                !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && !seg.starts_with(TEMP_PREFIX)
                    && seg
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            });
        if !valid {
            return Err(self.err(StoreErrorKind::Permanent, op, key, "invalid object key"));
        }
        Ok(self.root.join(key))
    }

    fn err(
        &self,
        kind: StoreErrorKind,
        op: &'static str,
        key: &str,
        msg: impl Into<String>,
    ) -> StoreError {
        StoreError::new(kind, self.location(), op, key, msg)
    }

    fn io_err(&self, op: &'static str, key: &str, e: io::Error) -> StoreError {
        let kind = io_kind(&e);
        let msg = match kind {
            StoreErrorKind::NoSpace => format!(
                "{e}: the repository's disk is full; free space on it and run the command again \
                 (nothing stored before is lost)"
            ),
            _ => e.to_string(),
        };
        self.err(kind, op, key, msg)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        op: &'static str,
        key: &str,
        f: impl FnOnce(LocalStore) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(this))
            .await
            .map_err(|e| {
                self.err(
                    StoreErrorKind::Permanent,
                    op,
                    key,
                    format!("worker failed: {e}"),
                )
            })?
    }

    /// Writes `data`, synced, where it can be given the name `path`: an
    /// unnamed file in its directory where the filesystem has them (a run
    /// killed before the link leaves nothing), else a `.tmp-` file beside
    /// it.
    fn write_temp(&self, path: &Path, data: &[u8]) -> io::Result<Staged> {
        let dir = path.parent().expect("object paths have a parent");
        fs::create_dir_all(dir)?;
        if let Some(f) = write_unnamed(dir, data)? {
            return Ok(Staged::Unnamed(f));
        }
        let tmp = temp_name(dir);
        let result = (|| {
            if data.len() >= DIRECT_MIN {
                match write_direct(&tmp, data) {
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                        // The filesystem does not take O_DIRECT: write through the cache.
                        let _ = fs::remove_file(&tmp);
                    }
                    done => return done,
                }
            }
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(data)?;
            f.sync_all()
        })();
        match result {
            Ok(()) => Ok(Staged::Named(tmp)),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }
}

/// A written and synced object, not yet under its key.
enum Staged {
    /// An `O_TMPFILE` inode: it has no name until linked, so a process
    /// killed before that leaves nothing behind.
    Unnamed(File),
    /// A `.tmp-` file beside the object (filesystems without `O_TMPFILE`);
    /// listings skip it, and one a killed run left is removed by a later
    /// listing of its directory (see [`STALE_TEMP`]).
    Named(PathBuf),
}

impl Staged {
    /// Gives the object the name `path`, replacing what is there.
    fn replace(self, path: &Path) -> io::Result<()> {
        let tmp = match self {
            Staged::Named(tmp) => tmp,
            Staged::Unnamed(f) => match link_unnamed(&f, path) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    // Replacing (a repair): a name of its own, renamed over.
                    let tmp = temp_name(path.parent().expect("object paths have a parent"));
                    link_unnamed(&f, &tmp)?;
                    tmp
                }
                linked => return linked,
            },
        };
        fs::rename(&tmp, path).inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
    }

    /// Gives the object the name `path` only if it is free; `Ok(false)`
    /// when it is taken. link(2) fails with EEXIST when the name is taken:
    /// an atomic create-if-absent that never exposes a partial object.
    fn create(self, path: &Path) -> io::Result<bool> {
        let linked = match &self {
            Staged::Unnamed(f) => link_unnamed(f, path),
            Staged::Named(tmp) => {
                let l = fs::hard_link(tmp, path);
                let _ = fs::remove_file(tmp);
                l
            }
        };
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn temp_name(dir: &Path) -> PathBuf {
    dir.join(format!("{TEMP_PREFIX}{:016x}", rand::random::<u64>()))
}

/// A `.tmp-` file older than this belongs to no running write (a write
/// takes seconds) but to a process killed part-way: listings remove it.
pub const STALE_TEMP: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes the temporary file `ent` when a killed process left it.
fn sweep_stale(ent: &fs::DirEntry) {
    let old = ent
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > STALE_TEMP);
    if old {
        let _ = fs::remove_file(ent.path());
    }
}

/// Writes `data` to an unnamed file in `dir` (`O_TMPFILE`), synced; `None`
/// where the filesystem or kernel has no unnamed files, or `/proc` (needed
/// to link them) is not mounted.
fn write_unnamed(dir: &Path, data: &[u8]) -> io::Result<Option<File>> {
    use std::os::unix::fs::OpenOptionsExt;
    if !Path::new("/proc/self/fd").is_dir() {
        return Ok(None);
    }
    let open = |flags: libc::c_int| {
        OpenOptions::new()
            .write(true)
            .mode(0o666)
            .custom_flags(libc::O_TMPFILE | flags)
            .open(dir)
    };
    let direct = data.len() >= DIRECT_MIN;
    let opened = match direct {
        true => open(libc::O_DIRECT),
        false => open(0),
    };
    let (f, direct) = match opened {
        // The filesystem does not take O_DIRECT: write through the cache.
        Err(e) if direct && e.raw_os_error() == Some(libc::EINVAL) => (open(0), false),
        f => (f, direct),
    };
    let Some(mut f) = unnamed_or_none(f)? else {
        return Ok(None);
    };
    match direct {
        true => fill_direct(&mut f, data)?,
        false => {
            f.write_all(data)?;
            f.sync_all()?;
        }
    }
    Ok(Some(f))
}

/// `None` for the errors that mean "no unnamed files here".
fn unnamed_or_none(f: io::Result<File>) -> io::Result<Option<File>> {
    match f {
        Ok(f) => Ok(Some(f)),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Links the unnamed file `f` to `path` (through `/proc/self/fd`, which
/// needs no privilege, unlike `AT_EMPTY_PATH`).
fn link_unnamed(f: &File, path: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::io::AsRawFd;
    let src = std::ffi::CString::new(format!("/proc/self/fd/{}", f.as_raw_fd()))?;
    let dst = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: both are NUL-terminated paths that outlive the call.
    let r = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            src.as_ptr(),
            libc::AT_FDCWD,
            dst.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    match r {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Objects at least this large (packs) are written around the page cache:
/// a backup does not read them back, so caching them would only push the
/// user's data out of memory, and copying into the cache costs more CPU
/// than the disk write itself.
const DIRECT_MIN: usize = 1 << 20;
/// Unaligned data is written in pieces of this size through one aligned
/// buffer.
const DIRECT_PIECE: usize = 1 << 20;

/// Writes `data` (a multiple of the block size) to an O_DIRECT file
/// through an aligned buffer from the same spares reads use.
fn write_aligned_copy(f: &mut File, data: &[u8]) -> io::Result<()> {
    let mut spare = Spare(AlignedBuf::take(DIRECT_PIECE));
    let buf = &mut spare.buf_mut()[..DIRECT_PIECE];
    for piece in data.chunks(DIRECT_PIECE) {
        buf[..piece.len()].copy_from_slice(piece);
        f.write_all(&buf[..piece.len()])?;
    }
    Ok(())
}

/// Creates `path` and writes `data` with O_DIRECT (see [`fill_direct`]).
/// EINVAL means the filesystem does not support it.
fn write_direct(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)?;
    fill_direct(&mut f, data)
}

/// Writes `data` to `f`, opened with O_DIRECT: the block-aligned part
/// around the cache, the tail through it; synced.
fn fill_direct(f: &mut File, data: &[u8]) -> io::Result<()> {
    let aligned = data.len() / DIRECT_ALIGN * DIRECT_ALIGN;
    if (data.as_ptr() as usize).is_multiple_of(DIRECT_ALIGN) {
        // Already where O_DIRECT wants it (packs are built so).
        f.write_all(&data[..aligned])?;
    } else {
        write_aligned_copy(f, &data[..aligned])?;
    }
    crate::direct::set_direct(f, false)?;
    f.write_all(&data[aligned..])?;
    f.sync_all()
}

/// Reads `length` bytes at `offset` with O_DIRECT, around the page cache
/// (a restore or a check reads each pack once). `Ok(None)` when the
/// filesystem does not take O_DIRECT.
fn read_direct(path: &Path, offset: u64, length: usize) -> io::Result<Option<Bytes>> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(None),
        f => f?,
    };
    let align = DIRECT_ALIGN as u64;
    let start = offset / align * align;
    let end = (offset + length as u64).next_multiple_of(align);
    let mut buf = AlignedBuf::take((end - start) as usize);
    let mut got = 0usize;
    {
        let dst = &mut buf.spare_mut()[..(end - start) as usize];
        while got < dst.len() {
            match f.read_at(&mut dst[got..], start + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) && got == 0 => return Ok(None),
                Err(e) => return Err(e),
            }
            if !got.is_multiple_of(DIRECT_ALIGN) {
                break; // the end of the file
            }
        }
    }
    let from = (offset - start) as usize;
    if got < from + length {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the object is shorter than the range",
        ));
    }
    buf.set_len(got);
    Ok(Some(
        Bytes::from_owner(Spare(buf)).slice(from..from + length),
    ))
}

fn io_kind(e: &io::Error) -> StoreErrorKind {
    match e.kind() {
        io::ErrorKind::NotFound => StoreErrorKind::NotFound,
        io::ErrorKind::PermissionDenied => StoreErrorKind::PermissionDenied,
        _ if matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)) => {
            StoreErrorKind::NoSpace
        }
        io::ErrorKind::Interrupted | io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            StoreErrorKind::Transient
        }
        _ => StoreErrorKind::Permanent,
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[async_trait]
impl ObjectStore for LocalStore {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    async fn get(&self, key: &str) -> StoreResult<Bytes> {
        let path = self.path("get", key)?;
        let k = key.to_string();
        self.blocking("get", key, move |s| {
            let direct = match fs::symlink_metadata(&path) {
                Ok(m) if m.len() as usize >= DIRECT_MIN => read_direct(&path, 0, m.len() as usize),
                _ => Ok(None),
            };
            match direct {
                Ok(Some(data)) => Ok(data),
                Ok(None) => fs::read(&path).map(Bytes::from),
                Err(e) => Err(e),
            }
            .map_err(|e| s.io_err("get", &k, e))
        })
        .await
    }

    async fn get_range(&self, key: &str, offset: u64, length: u64) -> StoreResult<Bytes> {
        let path = self.path("get", key)?;
        let k = key.to_string();
        self.blocking("get", key, move |s| {
            let read = match length as usize >= DIRECT_MIN {
                true => read_direct(&path, offset, length as usize).transpose(),
                false => None,
            };
            let read = read.unwrap_or_else(|| {
                let f = s.cached_open(&k, &path)?;
                let mut buf = vec![0u8; length as usize];
                f.read_exact_at(&mut buf, offset).map(|()| Bytes::from(buf))
            });
            read.map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    s.err(
                        StoreErrorKind::Permanent,
                        "get",
                        &k,
                        format!("range {offset}+{length} extends past the end of the object"),
                    )
                } else {
                    s.io_err("get", &k, e)
                }
            })
        })
        .await
    }

    async fn put(&self, key: &str, data: Bytes) -> StoreResult<()> {
        self.forget(key);
        let path = self.path("put", key)?;
        let k = key.to_string();
        self.blocking("put", key, move |s| {
            s.write_temp(&path, &data)
                .and_then(|staged| staged.replace(&path))
                .and_then(|()| sync_dir(path.parent().unwrap()))
                .map_err(|e| s.io_err("put", &k, e))
        })
        .await
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> StoreResult<bool> {
        let path = self.path("put", key)?;
        let k = key.to_string();
        self.blocking("put", key, move |s| {
            let created = s
                .write_temp(&path, &data)
                .and_then(|staged| staged.create(&path))
                .map_err(|e| s.io_err("put", &k, e))?;
            if created {
                sync_dir(path.parent().unwrap()).map_err(|e| s.io_err("put", &k, e))?;
            }
            Ok(created)
        })
        .await
    }

    async fn head(&self, key: &str) -> StoreResult<Option<ObjectMeta>> {
        let path = self.path("head", key)?;
        let k = key.to_string();
        self.blocking("head", key, move |s| match fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(Some(ObjectMeta {
                key: k,
                size: m.len(),
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(s.io_err("head", &k, e)),
        })
        .await
    }

    async fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectMeta>> {
        let p = prefix.to_string();
        self.blocking("list", prefix, move |s| {
            // Walk only the directory the prefix names (up to its last `/`).
            let (dir, _) = p.rsplit_once('/').unwrap_or(("", ""));
            let mut out = Vec::new();
            let mut stack = vec![dir.to_string()];
            while let Some(rel) = stack.pop() {
                let abs = if rel.is_empty() {
                    s.root.clone()
                } else {
                    s.root.join(&rel)
                };
                let rd = match fs::read_dir(&abs) {
                    Ok(rd) => rd,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(s.io_err("list", &p, e)),
                };
                for ent in rd {
                    let ent = ent.map_err(|e| s.io_err("list", &p, e))?;
                    let name = ent.file_name();
                    let Some(name) = name.to_str() else { continue };
                    if name.starts_with(TEMP_PREFIX) {
                        sweep_stale(&ent);
                        continue;
                    }
                    let key = if rel.is_empty() {
                        name.to_string()
                    } else {
                        format!("{rel}/{name}")
                    };
                    let ft = ent.file_type().map_err(|e| s.io_err("list", &p, e))?;
                    if ft.is_dir() {
                        if key.starts_with(&p) || p.starts_with(&format!("{key}/")) {
                            stack.push(key);
                        }
                    } else if ft.is_file() && key.starts_with(&p) {
                        // An object deleted while the listing runs is not
                        // in it (a prune beside a backup).
                        let size = match ent.metadata() {
                            Ok(m) => m.len(),
                            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                            Err(e) => return Err(s.io_err("list", &p, e)),
                        };
                        out.push(ObjectMeta { key, size });
                    }
                }
            }
            out.sort();
            Ok(out)
        })
        .await
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.forget(key);
        let path = self.path("delete", key)?;
        let k = key.to_string();
        self.blocking("delete", key, move |s| {
            fs::remove_file(&path).map_err(|e| s.io_err("delete", &k, e))
        })
        .await
    }
}
