//! Round trips of generated trees with every kind of entry, dedup across
//! snapshots, incremental backups, and the restore options.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use crate::support::{assert_same_tree, bytes, is_root, text, Env};

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o640) }, 0);
}

/// A source tree with every kind of entry the format records.
pub fn generate(root: &Path) {
    let w = |rel: &str, data: &[u8]| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
    };
    w("empty", b"");
    w("small.txt", b"hello, ferry\n");
    // Exact chunk-boundary sizes of the small test repository (4/16/64 KiB).
    for (i, n) in [4096usize, 4095, 4097, 16384, 65536, 65537, 131072, 196607]
        .iter()
        .enumerate()
    {
        w(&format!("sizes/exact-{n}"), &bytes(*n, i as u64 + 10));
    }
    w("big/random.bin", &bytes(700_000, 1));
    w("big/text.txt", &text(900_000, 2));
    // Files large enough for a restore to write them around the page cache,
    // of unaligned and aligned sizes, with blobs repeated inside one file
    // and shared with a small file.
    w("large/random-unaligned.bin", &bytes(3 * 1048576 + 1234, 3));
    w("large/text-aligned.txt", &text(2 * 1048576, 4));
    w("large/repeated.bin", &bytes(65536 + 333, 5).repeat(24));
    let mut prefixed = bytes(700_000, 1);
    prefixed.extend(bytes(1_500_001, 6));
    w("large/shares-with-random.bin", &prefixed);
    w("deep/a/b/c/d/e/f/leaf", b"deep");
    let perm = |rel: &str, mode: u32| {
        std::fs::set_permissions(root.join(rel), std::fs::Permissions::from_mode(mode)).unwrap()
    };
    w("modes/private", b"secret");
    perm("modes/private", 0o600);
    w("modes/setuid", b"#!/bin/sh\n");
    perm("modes/setuid", 0o4755);
    std::fs::create_dir_all(root.join("modes/closed")).unwrap();
    w("modes/closed/inside", b"x");
    perm("modes/closed", 0o700);
    symlink("small.txt", root.join("link-rel")).unwrap();
    symlink("/nonexistent/target", root.join("link-dangling")).unwrap();
    symlink("deep/a", root.join("link-dir")).unwrap();
    std::fs::hard_link(root.join("big/random.bin"), root.join("hardlink.bin")).unwrap();
    mkfifo(&root.join("fifo"));
    let odd = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"caf\xe9-latin1");
    std::fs::write(root.join(odd), b"non-UTF-8 name").unwrap();
    let _ = xattr::set(root.join("small.txt"), "user.ferry", b"attr value");
    if is_root() {
        let c = std::ffi::CString::new(root.join("chardev").to_str().unwrap()).unwrap();
        // SAFETY: valid path; makedev(1, 3) is /dev/null's number.
        unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o644, libc::makedev(1, 3)) };
        let c = std::ffi::CString::new(root.join("modes/private").to_str().unwrap()).unwrap();
        // SAFETY: valid path.
        unsafe { libc::chown(c.as_ptr(), 1234, 5678) };
    }
    let t = filetime::FileTime::from_unix_time(1_600_000_000, 123_456_789);
    filetime::set_file_mtime(root.join("big/text.txt"), t).unwrap();
}

#[test]
fn every_kind_of_entry_round_trips() {
    let env = Env::new();
    env.init_small();
    let src = env.path("src");
    generate(&src);
    env.backup(&[&src], &["--tag", "nightly"]);
    let out = env.path("out");
    let r = env.run(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert!(r.stdout.contains("restored snapshot"), "{}", r.stdout);
    assert_same_tree(&src, &Env::restored(&out, &src));
    env.run(&["check", "--read-data"]);
}

#[test]
fn sparse_gigabyte_file_round_trips_sparse() {
    let env = Env::new();
    env.init_small();
    let src = env.mkdir("sparse");
    let f = std::fs::File::create(src.join("disk.img")).unwrap();
    f.set_len(1 << 30).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(&bytes(100_000, 5), 0).unwrap();
    f.write_all_at(&bytes(50_000, 6), 512 << 20).unwrap();
    f.write_all_at(b"tail", (1 << 30) - 4).unwrap();
    drop(f);
    let id = env.backup(&[&src], &[]);
    let out = env.path("out");
    env.run(&["restore", &id, "--target", out.to_str().unwrap()]);
    let restored = Env::restored(&out, &src).join("disk.img");
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(&restored).unwrap();
    assert_eq!(m.len(), 1 << 30);
    assert!(
        m.blocks() * 512 < 16 << 20,
        "restored file stays sparse ({} blocks)",
        m.blocks()
    );
    assert_same_tree(&src, &Env::restored(&out, &src));
}

#[test]
fn unchanged_files_are_not_read_again_and_copies_dedup() {
    let env = Env::new();
    env.init_small();
    let src = env.path("src");
    generate(&src);
    env.backup(&[&src], &[]);
    let r = env.run(&["backup", "--json", src.to_str().unwrap()]);
    let s = &r.json()["snapshot"]["summary"];
    assert_eq!(s["read_bytes"], 0, "unchanged backup reads nothing: {s}");
    assert_eq!(s["files_new"], 0);
    assert!(s["files_unchanged"].as_u64().unwrap() > 10);
    // A copy of existing data under another name adds no data blobs.
    std::fs::copy(src.join("big/random.bin"), src.join("copy.bin")).unwrap();
    let r = env.run(&["backup", "--json", src.to_str().unwrap()]);
    let s = &r.json()["snapshot"]["summary"];
    assert_eq!(s["read_bytes"], 700_000, "only the new file is read: {s}");
    assert!(
        s["added_bytes"].as_u64().unwrap() < 20_000,
        "copy deduplicated, only trees added: {s}"
    );
    // A changed file is read again and its new version restored.
    std::fs::write(src.join("small.txt"), b"changed").unwrap();
    env.backup(&[&src], &[]);
    let out = env.path("out");
    env.run(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_same_tree(&src, &Env::restored(&out, &src));
    let snaps = env.run(&["snapshots", "--json"]).json();
    assert_eq!(snaps.as_array().unwrap().len(), 4);
}

#[test]
fn include_exclude_dry_run_and_overwrite() {
    let env = Env::new();
    env.init_small();
    let src = env.path("src");
    generate(&src);
    env.backup(&[&src], &[]);
    let out = env.path("out");
    let t = out.to_str().unwrap();
    let r = env.run(&[
        "restore",
        "latest",
        "--target",
        t,
        "--include",
        "*.txt",
        "--dry-run",
    ]);
    assert!(
        r.stdout.contains("would restore") && r.stdout.contains("small.txt"),
        "{}",
        r.stdout
    );
    assert!(!out.exists(), "a dry run writes nothing");
    env.run(&[
        "restore",
        "latest",
        "--target",
        t,
        "--include",
        "*.txt",
        "--exclude",
        "big",
    ]);
    let base = Env::restored(&out, &src);
    assert!(base.join("small.txt").exists());
    assert!(
        !base.join("big").exists(),
        "excluded directory not restored"
    );
    assert!(!base.join("sizes").exists(), "not included");
    // Existing files are not replaced without --overwrite; nothing is written.
    std::fs::write(base.join("small.txt"), b"local edit").unwrap();
    let r = env.try_run(&["restore", "latest", "--target", t]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("--overwrite"), "{}", r.stderr);
    assert_eq!(
        std::fs::read(base.join("small.txt")).unwrap(),
        b"local edit"
    );
    assert!(
        !base.join("big").exists(),
        "a refused restore writes nothing"
    );
    env.run(&["restore", "latest", "--target", t, "--overwrite"]);
    assert_same_tree(&src, &base);
}

#[test]
fn ls_and_diff_show_snapshot_contents_and_changes() {
    let env = Env::new();
    env.init_small();
    let src = env.path("src");
    generate(&src);
    let a = env.backup(&[&src], &[]);
    std::fs::write(src.join("small.txt"), b"changed").unwrap();
    std::fs::remove_file(src.join("empty")).unwrap();
    std::fs::write(src.join("added"), b"new").unwrap();
    let b = env.backup(&[&src], &[]);
    let sub = format!("{}/deep", src.display());
    let ls = env.run(&["ls", "latest", &sub]);
    assert!(
        ls.stdout
            .lines()
            .any(|l| l.ends_with("deep/a/b/c/d/e/f/leaf")),
        "{}",
        ls.stdout
    );
    assert!(!ls.stdout.contains("small.txt"));
    let d = env.run(&["diff", &a, &b]);
    let line = |sym: &str, name: &str| {
        d.stdout
            .lines()
            .any(|l| l.starts_with(sym) && l.ends_with(name))
    };
    assert!(line("M", "/small.txt"), "{}", d.stdout);
    assert!(line("-", "/empty"), "{}", d.stdout);
    assert!(line("+", "/added"), "{}", d.stdout);
    assert!(
        !d.stdout.contains("random.bin"),
        "unchanged files are not listed: {}",
        d.stdout
    );
}

/// A directory of many small files is read in several batches (64 files or
/// 8 MiB each), with a file too large for a batch among them; hard links
/// across batches and identical files in different batches come back as
/// they were.
#[test]
fn directories_of_many_files_round_trip_across_read_batches() {
    let env = Env::new();
    env.init_small();
    let src = env.mkdir("many");
    for i in 0..300u64 {
        let data = match i % 3 {
            0 => text(100 + i as usize * 37, i),
            1 => bytes(5000 + i as usize, i),
            _ => b"same content in many files".to_vec(),
        };
        std::fs::write(src.join(format!("f{i:03}")), data).unwrap();
    }
    std::fs::write(src.join("f150-large"), bytes(9 << 20, 99)).unwrap();
    std::fs::hard_link(src.join("f001"), src.join("f299-link-to-f001")).unwrap();
    std::fs::hard_link(src.join("f250"), src.join("f002-link-to-f250")).unwrap();
    let r = env.run(&["backup", "--json", src.to_str().unwrap()]);
    let s = &r.json()["snapshot"]["summary"];
    assert_eq!(s["total_files"], 303, "{s}");
    let out = env.path("out");
    env.run(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_same_tree(&src, &Env::restored(&out, &src));
    env.run(&["check", "--read-data"]);
}

/// A file whose bytes are exactly a tree's encoding (here the empty
/// directory's) has that tree's blob id. Data and trees are different
/// blobs: whichever is stored first, the other is stored as what it is,
/// and check, restore and prune treat each as its own.
#[test]
fn a_file_holding_a_trees_bytes_and_that_tree_are_both_kept() {
    let tree_bytes = ferry::format::tree::Tree::default().encode();
    for file_first in [false, true] {
        let env = Env::new();
        env.init_small();
        let src = env.mkdir("src");
        let first = match file_first {
            true => {
                std::fs::write(src.join("looks-like-a-tree"), &tree_bytes).unwrap();
                env.backup(&[&src], &[])
            }
            false => {
                std::fs::create_dir(src.join("empty")).unwrap();
                env.backup(&[&src], &[])
            }
        };
        if file_first {
            std::fs::create_dir(src.join("empty")).unwrap();
        } else {
            std::fs::write(src.join("looks-like-a-tree"), &tree_bytes).unwrap();
        }
        let second = env.backup(&[&src], &[]);
        let want = crate::support::digest(&src);
        // The first snapshot goes; its blobs must not take the second's.
        env.run(&["forget", &first]);
        env.run(&["prune", "--keep-delete", "0s", "--max-unused", "0%"]);
        let r = env.try_run(&["check", "--read-data", "--json"]);
        assert_eq!(r.code, 0, "file first: {file_first}: {}", r.stdout);
        let out = env.path("out");
        env.run(&["restore", &second, "--target", out.to_str().unwrap()]);
        let got = crate::support::digest(&Env::restored(&out, &src));
        assert_eq!(got, want, "file first: {file_first}");
    }
}
