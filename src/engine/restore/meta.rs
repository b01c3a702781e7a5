//! Creating directories and special files inside the restore target, and
//! applying metadata without ever following a symlink.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::Failure;
use crate::engine::walk::SnapPath;
use crate::format::tree::{Node, NodeKind};

fn cpath(p: &Path) -> Result<CString, String> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| "path contains NUL".to_string())
}

/// Creates a directory, or accepts a real directory already there. Anything
/// else in its place (a file, a symlink) is replaced only with `overwrite`.
pub fn make_dir(target: &Path, path: &Path, overwrite: bool) -> Result<(), String> {
    debug_assert!(path.starts_with(target));
    match std::fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let m = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
            if m.is_dir() {
                Ok(())
            } else if overwrite {
                std::fs::remove_file(path).map_err(|e| format!("replacing: {e}"))?;
                std::fs::create_dir(path).map_err(|e| e.to_string())
            } else {
                Err("a non-directory is in the way (use --overwrite to replace it)".into())
            }
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Runs `create`; when the name is taken and `overwrite` is set, removes
/// what is there (never a directory) and runs it again.
pub fn replace_with<T>(
    path: &Path,
    overwrite: bool,
    create: impl Fn() -> io::Result<T>,
) -> Result<T, String> {
    match create() {
        Ok(v) => Ok(v),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && overwrite => {
            let m = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
            if m.is_dir() {
                return Err("a directory is in the way".into());
            }
            std::fs::remove_file(path).map_err(|e| format!("replacing: {e}"))?;
            create().map_err(|e| e.to_string())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            Err("already exists (use --overwrite to replace it)".into())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Creates a symlink, fifo or device node.
pub fn make_special(path: &Path, node: &Node, overwrite: bool) -> Result<(), String> {
    let c = cpath(path)?;
    let mknod = |kind: libc::mode_t| {
        // SAFETY: c is a valid NUL-terminated path.
        let rc = unsafe {
            libc::mknod(
                c.as_ptr(),
                kind | (node.mode & 0o7777) as libc::mode_t,
                node.rdev as libc::dev_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    match node.kind {
        NodeKind::Symlink => {
            let target = node.target.clone().unwrap_or_default();
            replace_with(path, overwrite, || {
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), path)
            })
        }
        NodeKind::Fifo => replace_with(path, overwrite, || mknod(libc::S_IFIFO)),
        NodeKind::Chardev => replace_with(path, overwrite, || mknod(libc::S_IFCHR)),
        NodeKind::Blockdev => replace_with(path, overwrite, || mknod(libc::S_IFBLK)),
        NodeKind::Socket => {
            Err("sockets are recorded but not recreated (a program creates them)".into())
        }
        NodeKind::File | NodeKind::Dir => unreachable!("not a special file"),
    }
}

/// Applies owner (when running as root), mode, xattrs and times; a failure
/// is a warning, the entry stays.
pub fn apply(path: &Path, node: &Node, display: &SnapPath, warnings: &mut Vec<Failure>) {
    let mut warn = |what: &str, e: String| {
        warnings.push(Failure {
            path: display.clone(),
            error: format!("{what}: {e}"),
        })
    };
    let Ok(c) = cpath(path) else { return };
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        // SAFETY: c is a valid NUL-terminated path.
        if unsafe { libc::lchown(c.as_ptr(), node.uid, node.gid) } != 0 {
            warn("setting owner", io::Error::last_os_error().to_string());
        }
    }
    for x in &node.xattrs {
        if let Err(e) = xattr::set(path, std::ffi::OsStr::from_bytes(&x.name), &x.value) {
            warn("setting extended attribute", e.to_string());
        }
    }
    if node.kind != NodeKind::Symlink {
        // SAFETY: c is a valid path; AT_SYMLINK_NOFOLLOW is not supported by
        // fchmodat on Linux, but the entry is known not to be a symlink.
        if unsafe {
            libc::fchmodat(
                libc::AT_FDCWD,
                c.as_ptr(),
                (node.mode & 0o7777) as libc::mode_t,
                0,
            )
        } != 0
        {
            warn("setting mode", io::Error::last_os_error().to_string());
        }
    }
    let t = filetime::FileTime::from_unix_time(
        node.mtime.div_euclid(1_000_000_000),
        node.mtime.rem_euclid(1_000_000_000) as u32,
    );
    if let Err(e) = filetime::set_symlink_file_times(path, t, t) {
        warn("setting times", e.to_string());
    }
}

/// Like [`apply`], through an open regular file: no path lookups.
pub fn apply_file(
    file: &std::fs::File,
    node: &Node,
    display: &SnapPath,
    warnings: &mut Vec<Failure>,
) {
    use std::os::unix::io::AsRawFd;
    let fd = file.as_raw_fd();
    let mut warn = |what: &str, e: String| {
        warnings.push(Failure {
            path: display.clone(),
            error: format!("{what}: {e}"),
        })
    };
    // SAFETY: geteuid cannot fail; fd is open for the calls below.
    if unsafe { libc::geteuid() } == 0 && unsafe { libc::fchown(fd, node.uid, node.gid) } != 0 {
        warn("setting owner", io::Error::last_os_error().to_string());
    }
    for x in &node.xattrs {
        use xattr::FileExt;
        if let Err(e) = file.set_xattr(std::ffi::OsStr::from_bytes(&x.name), &x.value) {
            warn("setting extended attribute", e.to_string());
        }
    }
    // SAFETY: as above.
    if unsafe { libc::fchmod(fd, (node.mode & 0o7777) as libc::mode_t) } != 0 {
        warn("setting mode", io::Error::last_os_error().to_string());
    }
    let t = filetime::FileTime::from_unix_time(
        node.mtime.div_euclid(1_000_000_000),
        node.mtime.rem_euclid(1_000_000_000) as u32,
    );
    if let Err(e) = filetime::set_file_handle_times(file, Some(t), Some(t)) {
        warn("setting times", e.to_string());
    }
}
