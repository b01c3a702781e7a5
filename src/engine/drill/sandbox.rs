//! Removing a drill's sandbox directory. A restore leaves tens of
//! thousands of fresh files; unlinked one after another, each waits on the
//! file system's journal, so that removing them can take longer than
//! restoring them. Unlinked by a pool of threads, many go into one journal
//! commit.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Threads unlinking at once: they wait on the file system, not the CPU.
const UNLINKERS: usize = 8;

/// Removes `root` and everything below it, never following a symlink:
/// the files (and symlinks and special files) by a pool of threads, then
/// the directories, deepest first. The first error is returned.
pub fn remove_tree(root: &Path) -> std::io::Result<()> {
    let (dirs, files) = list(root)?;
    let next = AtomicUsize::new(0);
    let failed: Mutex<Option<std::io::Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..UNLINKERS.min(files.len()) {
            s.spawn(|| {
                while let Some(f) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
                    match std::fs::remove_file(f) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            let mut first = failed.lock().unwrap();
                            first.get_or_insert(with_path(e, f));
                        }
                        _ => {}
                    }
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().unwrap() {
        return Err(e);
    }
    // Directories were listed parents first.
    for d in dirs.iter().rev() {
        std::fs::remove_dir(d).map_err(|e| with_path(e, d))?;
    }
    Ok(())
}

/// The directories under `root` (itself first, every parent before its
/// children) and every other entry.
fn list(root: &Path) -> std::io::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let (mut dirs, mut files) = (vec![root.to_path_buf()], Vec::new());
    let mut i = 0;
    while let Some(dir) = dirs.get(i).cloned() {
        for e in std::fs::read_dir(&dir).map_err(|e| with_path(e, &dir))? {
            let e = e?;
            match e.file_type()?.is_dir() {
                true => dirs.push(e.path()),
                false => files.push(e.path()),
            }
        }
        i += 1;
    }
    Ok((dirs, files))
}

fn with_path(e: std::io::Error, p: &Path) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_a_tree_without_following_links() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"x").unwrap();
        let root = t.path().join("sandbox");
        for d in ["a/b/c", "a/d", "e"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for (i, f) in ["a/1", "a/b/2", "a/b/c/3", "a/d/4", "e/5", "6"]
            .iter()
            .enumerate()
        {
            std::fs::write(root.join(f), vec![i as u8; 100]).unwrap();
        }
        std::os::unix::fs::symlink(&outside, root.join("a/link")).unwrap();
        remove_tree(&root).unwrap();
        assert!(!root.exists());
        assert_eq!(std::fs::read(outside.join("keep")).unwrap(), b"x");
        let err = remove_tree(&root).unwrap_err();
        assert!(err.to_string().contains("sandbox"), "{err}");
    }
}
