//! What the region scenarios share: a config of regions written from S3
//! servers and directories, ferry run with it (and its `--json` read), test
//! files, and the checks every scenario ends with: `check --read-data` and
//! a byte-identical restore of every snapshot from every region, and the
//! regions' objects pairwise equal.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::proxy::{FaultProxy, Mode};
use crate::support::server::S3Server;

/// Files with their content, by relative path.
pub type Tree = Vec<(String, Vec<u8>)>;

/// A region of a test config: its name and S3 endpoint (or a local path).
pub struct R {
    pub name: String,
    pub endpoint: Option<String>,
    pub url: String,
}

pub fn s3(name: &str, endpoint: String, bucket: &str) -> R {
    R {
        name: name.into(),
        endpoint: Some(endpoint),
        url: format!("s3://{bucket}/cluster-a"),
    }
}

pub fn write_config(d: &Path, regions: &[R]) -> PathBuf {
    let mut toml = String::new();
    for (i, r) in regions.iter().enumerate() {
        toml += &format!("[[region]]\nname = {:?}\nurl = {:?}\n", r.name, r.url);
        if let Some(e) = &r.endpoint {
            toml += &format!("endpoint = {e:?}\nprovider = \"minio\"\n");
        }
        if i == 0 {
            toml += "primary = true\n";
        }
    }
    let cfg = d.join("ferry.toml");
    std::fs::write(&cfg, toml).unwrap();
    cfg
}

pub fn run(d: &Path, cfg: &Path, args: &[&str]) -> (i32, String, String) {
    crate::ferry(d, args, &["--config", cfg.to_str().unwrap()])
}

pub fn ok(d: &Path, cfg: &Path, args: &[&str]) -> String {
    crate::ferry_ok(d, args, &["--config", cfg.to_str().unwrap()])
}

pub fn json(d: &Path, cfg: &Path, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_str(&ok(d, cfg, &a)).unwrap()
}

/// Runs a command, asserting success within `bound` (a scenario bound, not
/// a benchmark); returns its `--json` output and stderr.
pub fn timed(d: &Path, cfg: &Path, args: &[&str], bound: Duration) -> (Value, String) {
    let mut a = args.to_vec();
    a.push("--json");
    let t = Instant::now();
    let (code, out, err) = run(d, cfg, &a);
    let took = t.elapsed();
    assert_eq!(code, 0, "ferry {args:?}:\n{out}\n{err}");
    assert!(took < bound, "ferry {args:?} took {took:?}:\n{err}");
    (serde_json::from_str(&out).unwrap(), err)
}

/// `files` files of `kib` KiB of varied bytes under `src/s{seed}/`.
pub fn add_files(src: &Path, seed: usize, files: usize, kib: usize) {
    for i in 0..files {
        let p = src.join(format!("s{seed}/f{i}"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let data: Vec<u8> = (0..kib << 10)
            .map(|j| ((j * 31 + i * 7 + seed * 13) % 251) as u8 ^ (j >> 9) as u8)
            .collect();
        std::fs::write(p, data).unwrap();
    }
}

/// Like [`add_files`], of bytes that do not compress: each file fills
/// packs of its own size.
pub fn add_noise(src: &Path, seed: usize, files: usize, kib: usize) {
    for i in 0..files {
        let p = src.join(format!("n{seed}/f{i}"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let mut x = (seed as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i as u64 + 1);
        let data: Vec<u8> = (0..kib << 10)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(p, data).unwrap();
    }
}

pub fn init(d: &Path, cfg: &Path) -> Value {
    let mut a = vec!["init", "--json"];
    a.extend(crate::SMALL_REPO);
    serde_json::from_str(&ok(d, cfg, &a)).unwrap()
}

pub fn named<'a>(list: &'a Value, key: &str, name: &str) -> &'a Value {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .find(|r| r[key] == name)
        .unwrap_or_else(|| panic!("no {name} in {list}"))
}

pub fn snapshot_ids(v: &Value) -> Vec<String> {
    let mut ids: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// `check --read-data` of every region, and every snapshot restored from
/// every region byte-identical to `src` as it was at that snapshot
/// (`trees`: snapshot id → the files then).
pub fn verify_all(d: &Path, cfg: &Path, names: &[&str], trees: &[(String, Tree)]) {
    for name in names {
        ok(d, cfg, &["check", "--region", name, "--read-data"]);
        let listed = snapshot_ids(&json(d, cfg, &["snapshots", "--region", name]));
        let mut want: Vec<String> = trees.iter().map(|(id, _)| id.clone()).collect();
        want.sort();
        assert_eq!(listed, want, "snapshots of {name}");
        for (id, tree) in trees {
            let out = d.join(format!("verify-{name}-{id}"));
            ok(
                d,
                cfg,
                &[
                    "restore",
                    "--region",
                    name,
                    id,
                    "--target",
                    out.to_str().unwrap(),
                ],
            );
            let got = crate::read_tree(&out);
            assert!(got == *tree, "snapshot {id} restored from {name} identical");
        }
    }
}

/// The files of `src` as a restore lays them out (under their absolute path).
pub fn expected(src: &Path) -> Tree {
    let rel = src.strip_prefix("/").unwrap().display().to_string();
    crate::read_tree(src)
        .into_iter()
        .map(|(p, data)| (format!("{rel}/{p}"), data))
        .collect()
}

pub fn backup(d: &Path, cfg: &Path, src: &Path) -> Value {
    json(d, cfg, &["backup", src.to_str().unwrap()])
}

/// An endpoint that accepts connections and never answers.
pub async fn black_hole() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    (addr, task)
}

/// A directory region.
pub fn local(name: &str, path: &Path) -> R {
    R {
        name: name.into(),
        endpoint: None,
        url: path.display().to_string(),
    }
}

/// Where the objects of the region `s3(.., bucket)` on `server` lie on
/// its disk.
pub fn bucket_dir(server: &S3Server, bucket: &str) -> PathBuf {
    server.root.path().join(bucket).join("cluster-a")
}

/// Every file below `dir` (a region's objects as they lie on disk, a
/// temporary file included), with the BLAKE3 of its content.
pub fn objects(dir: &Path) -> Vec<(String, String)> {
    crate::read_tree(dir)
        .into_iter()
        .map(|(p, data)| (p, blake3::hash(&data).to_hex().to_string()))
        .collect()
}

/// After convergence: every region holds every object, byte for byte, and
/// nothing else (no temporary file either). `dirs`: (region, its objects'
/// directory).
pub fn assert_same_objects(dirs: &[(&str, PathBuf)]) {
    let (first, dir) = &dirs[0];
    let want = objects(dir);
    assert!(
        want.iter().any(|(p, _)| p.starts_with("snapshots/")),
        "{first} holds snapshots"
    );
    for (name, dir) in &dirs[1..] {
        let got = objects(dir);
        let only = |a: &[(String, String)], b: &[(String, String)]| -> Vec<String> {
            a.iter()
                .filter(|x| !b.contains(x))
                .map(|(p, _)| p.clone())
                .collect()
        };
        assert!(
            got == want,
            "{name} and {first} differ: only in {name}: {:?}; only in {first}: {:?}",
            only(&got, &want),
            only(&want, &got)
        );
    }
}

/// SIGKILLs `child` and reaps it.
pub fn kill(mut child: std::process::Child) {
    let _ = child.kill();
    tokio::task::block_in_place(|| child.wait()).unwrap();
}

/// The id of a `backup --json` report, with the files of `src` then.
pub fn taken(b: &Value, src: &Path) -> (String, Tree) {
    (b["id"].as_str().unwrap().to_string(), expected(src))
}

/// Whether every region of a `replicate --json` report (or a backup's
/// `fanout`, under `"regions"`) is complete.
pub fn all_ok(v: &Value) -> bool {
    v["regions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["ok"] == true)
}

/// Flips a byte in every `n`-th file under `dir` whose path contains
/// `part`; returns the damaged files.
pub fn damage(dir: &Path, part: &str, n: usize) -> Vec<PathBuf> {
    let victims: Vec<PathBuf> = crate::support::files::files_under(dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(part))
        .step_by(n)
        .collect();
    for p in &victims {
        let mut bytes = std::fs::read(p).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x5a;
        std::fs::write(p, bytes).unwrap();
    }
    victims
}

/// The region names of a [`Trio`], the primary first.
pub const TRIO: [&str; 3] = ["cn-hangzhou", "eu-central-1", "ap-southeast-1"];

/// Three S3 servers as regions ([`TRIO`], the first the primary, buckets
/// `{prefix}-0..2`), one of them reached through a fault proxy that starts
/// passing everything; the repository created in all three.
pub struct Trio {
    pub servers: Vec<S3Server>,
    pub proxy: FaultProxy,
    pub prefix: String,
    pub cfg: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Trio {
    pub async fn start(prefix: &str, behind_proxy: usize) -> Trio {
        let mut servers = Vec::new();
        for name in TRIO {
            servers.push(S3Server::start(name).await);
        }
        let proxy = FaultProxy::start(servers[behind_proxy].addr, 1, 0.0, &[]).await;
        let dir = tempfile::tempdir().unwrap();
        let regions: Vec<R> = servers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let endpoint = match i == behind_proxy {
                    true => proxy.endpoint(),
                    false => s.endpoint(),
                };
                s3(&s.region, endpoint, &format!("{prefix}-{i}"))
            })
            .collect();
        let cfg = write_config(dir.path(), &regions);
        init(dir.path(), &cfg);
        Trio {
            servers,
            proxy,
            prefix: prefix.to_string(),
            cfg,
            dir,
        }
    }

    pub fn d(&self) -> &Path {
        self.dir.path()
    }

    /// Where region `i`'s objects lie on its server's disk.
    pub fn bucket(&self, i: usize) -> PathBuf {
        bucket_dir(&self.servers[i], &format!("{}-{i}", self.prefix))
    }

    /// The bucket path of region `i` as the proxy sees its requests.
    pub fn path(&self, i: usize) -> String {
        format!("/{}-{i}/cluster-a/", self.prefix)
    }

    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        run(self.d(), &self.cfg, args)
    }

    pub fn json(&self, args: &[&str]) -> Value {
        json(self.d(), &self.cfg, args)
    }

    pub fn backup(&self, src: &Path) -> (String, Tree) {
        taken(&backup(self.d(), &self.cfg, src), src)
    }

    /// The endpoint back to normal: one `replicate` converges all three,
    /// then every region passes `check --read-data`, restores every
    /// snapshot of `trees` byte-identical, and holds the same objects.
    pub fn converge_and_verify(&self, trees: &[(String, Tree)]) {
        self.proxy.set_mode(Mode::Pass);
        self.proxy.crawl(None);
        let v = self.json(&["replicate"]);
        assert!(all_ok(&v), "{v}");
        let dirs: Vec<(&str, PathBuf)> = (0..3).map(|i| (TRIO[i], self.bucket(i))).collect();
        verify_regions(self.d(), &self.cfg, &dirs, trees);
    }
}

/// Asserts that no temporary file lies under `dir` (a killed run's).
pub fn assert_no_temporary_files(dir: &Path) {
    let temps: Vec<String> = objects(dir)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.contains(".tmp-"))
        .collect();
    assert!(temps.is_empty(), "left by a killed run: {temps:?}");
}

/// Every region passes `check --read-data`, restores every snapshot of
/// `trees` byte-identical, and holds the same objects. `dirs`: (region,
/// its objects' directory).
pub fn verify_regions(d: &Path, cfg: &Path, dirs: &[(&str, PathBuf)], trees: &[(String, Tree)]) {
    let names: Vec<&str> = dirs.iter().map(|(n, _)| *n).collect();
    verify_all(d, cfg, &names, trees);
    assert_same_objects(dirs);
}

/// The region names of a [`Pair`], the primary first.
pub const PAIR: [&str; 3] = ["cn-hangzhou", "eu-central-1", "nas"];

/// Two S3 servers and a directory as regions ([`PAIR`], buckets
/// `{prefix}-0..1`, the directory `nas` under the test's directory); the
/// repository created in all three.
pub struct Pair {
    pub servers: Vec<S3Server>,
    pub prefix: String,
    pub cfg: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Pair {
    pub async fn start(prefix: &str) -> Pair {
        let mut servers = Vec::new();
        for name in &PAIR[..2] {
            servers.push(S3Server::start(name).await);
        }
        let dir = tempfile::tempdir().unwrap();
        let mut regions: Vec<R> = servers
            .iter()
            .enumerate()
            .map(|(i, s)| s3(&s.region, s.endpoint(), &format!("{prefix}-{i}")))
            .collect();
        regions.push(local(PAIR[2], &dir.path().join(PAIR[2])));
        let cfg = write_config(dir.path(), &regions);
        init(dir.path(), &cfg);
        Pair {
            servers,
            prefix: prefix.to_string(),
            cfg,
            dir,
        }
    }

    pub fn d(&self) -> &Path {
        self.dir.path()
    }

    pub fn nas(&self) -> PathBuf {
        self.d().join(PAIR[2])
    }

    /// Each region with its objects' directory.
    pub fn dirs(&self) -> Vec<(&'static str, PathBuf)> {
        let mut dirs: Vec<(&str, PathBuf)> = (0..2)
            .map(|i| {
                (
                    PAIR[i],
                    bucket_dir(&self.servers[i], &format!("{}-{i}", self.prefix)),
                )
            })
            .collect();
        dirs.push((PAIR[2], self.nas()));
        dirs
    }

    pub fn verify(&self, trees: &[(String, Tree)]) {
        verify_regions(self.d(), &self.cfg, &self.dirs(), trees);
    }
}
