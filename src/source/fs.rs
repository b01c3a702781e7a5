//! Reading file-system entries: metadata into tree nodes, sparse-file data
//! regions, and a reader over those regions.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::Mutex;

use crate::format::tree::{Node, NodeKind, Xattr};

/// Caches uid/gid → name lookups for one backup run.
#[derive(Default)]
pub struct NameCache {
    users: Mutex<HashMap<u32, String>>,
    groups: Mutex<HashMap<u32, String>>,
}

impl NameCache {
    fn user(&self, uid: u32) -> String {
        let mut m = self.users.lock().unwrap();
        m.entry(uid)
            .or_insert_with(|| crate::util::user_name(uid).unwrap_or_default())
            .clone()
    }

    fn group(&self, gid: u32) -> String {
        let mut m = self.groups.lock().unwrap();
        m.entry(gid)
            .or_insert_with(|| crate::util::group_name(gid).unwrap_or_default())
            .clone()
    }
}

fn kind_of(meta: &Metadata) -> NodeKind {
    let ft = meta.file_type();
    if ft.is_dir() {
        NodeKind::Dir
    } else if ft.is_symlink() {
        NodeKind::Symlink
    } else if ft.is_fifo() {
        NodeKind::Fifo
    } else if ft.is_char_device() {
        NodeKind::Chardev
    } else if ft.is_block_device() {
        NodeKind::Blockdev
    } else if ft.is_socket() {
        NodeKind::Socket
    } else {
        NodeKind::File
    }
}

fn nanos(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

/// Builds a node from `lstat` metadata (content and subtree left empty),
/// taking what cannot have changed from `previous`, the same entry in the
/// parent snapshot. Returns a warning when some metadata (xattrs, link
/// target) could not be read; the node is still usable.
pub fn node_from_meta(
    path: &Path,
    name: &[u8],
    meta: &Metadata,
    names: &NameCache,
    previous: Option<&Node>,
) -> (Node, Option<String>) {
    let kind = kind_of(meta);
    let mut warning = None;
    let mut node = Node::synthetic(name, kind, nanos(meta.mtime(), meta.mtime_nsec()));
    node.mode = meta.mode() & 0o7777;
    node.uid = meta.uid();
    node.gid = meta.gid();
    node.user = names.user(meta.uid());
    node.group = names.group(meta.gid());
    node.ctime = nanos(meta.ctime(), meta.ctime_nsec());
    node.inode = meta.ino();
    node.device = meta.dev();
    node.links = meta.nlink();
    if kind == NodeKind::File {
        node.size = meta.len();
    }
    if matches!(kind, NodeKind::Chardev | NodeKind::Blockdev) {
        node.rdev = meta.rdev();
    }
    if kind == NodeKind::Symlink {
        match std::fs::read_link(path) {
            Ok(t) => node.target = Some(t.as_os_str().as_bytes().to_vec()),
            Err(e) => warning = Some(format!("reading link target: {e}")),
        }
    }
    // Extended attributes change the ctime: when the previous snapshot saw
    // the same inode with the same ctime, its attributes still hold.
    match previous.filter(|p| p.kind == kind && p.inode == node.inode && p.ctime == node.ctime) {
        Some(p) => node.xattrs = p.xattrs.clone(),
        None => match read_xattrs(path) {
            Ok(x) => node.xattrs = x,
            Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => {}
            Err(e) => warning = Some(format!("reading extended attributes: {e}")),
        },
    }
    (node, warning)
}

fn read_xattrs(path: &Path) -> io::Result<Vec<Xattr>> {
    let mut out = Vec::new();
    for name in xattr::list(path)? {
        if let Some(value) = xattr::get(path, &name)? {
            out.push(Xattr {
                name: name.as_bytes().to_vec(),
                value,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The data regions of a file that has holes, as (offset, length); `None`
/// for a file stored whole (no holes, or holes not detectable).
pub fn data_extents(file: &File, meta: &Metadata) -> Option<Vec<(u64, u64)>> {
    let size = meta.len();
    if size == 0 || meta.blocks() * 512 >= size {
        return None;
    }
    let fd = file.as_raw_fd();
    let mut extents = Vec::new();
    let mut pos: i64 = 0;
    while (pos as u64) < size {
        // SAFETY: lseek on an open descriptor has no memory effects.
        let data = unsafe { libc::lseek(fd, pos, libc::SEEK_DATA) };
        if data < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENXIO) {
                break; // only a hole remains
            }
            return None;
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        if hole < 0 {
            return None;
        }
        let end = (hole as u64).min(size);
        if end > data as u64 {
            extents.push((data as u64, end - data as u64));
        }
        pos = hole;
    }
    Some(extents)
}

/// Reads the data regions of a sparse file one after the other.
pub struct ExtentReader {
    file: File,
    extents: Vec<(u64, u64)>,
    next: usize,
    left: u64,
}

impl ExtentReader {
    pub fn new(file: File, extents: Vec<(u64, u64)>) -> Self {
        ExtentReader {
            file,
            extents,
            next: 0,
            left: 0,
        }
    }
}

impl Read for ExtentReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.left == 0 {
            let Some(&(off, len)) = self.extents.get(self.next) else {
                return Ok(0);
            };
            self.file.seek(SeekFrom::Start(off))?;
            self.next += 1;
            self.left = len;
        }
        let want = (buf.len() as u64).min(self.left) as usize;
        let n = self.file.read(&mut buf[..want])?;
        if n == 0 {
            // The file shrank while being read: stop here.
            self.left = 0;
            self.next = self.extents.len();
            return Ok(0);
        }
        self.left -= n as u64;
        Ok(n)
    }
}
