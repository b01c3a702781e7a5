//! Object lock on a real S3 server that implements it: moto's server mode
//! on loopback (installed by scripts/test.sh). A repository created with
//! `--object-lock` in two regions writes every object with a retention;
//! `forget --prune` and `prune` delete nothing still retained and say
//! until when it is deferred; the retention of what is in use is extended;
//! the server itself refuses to delete a locked version; once the
//! retention has passed, a prune deletes the hidden versions.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferry::store::s3::{Provider, S3Store};

/// A moto server on a free loopback port; killed when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m moto.server (scripts/test.sh installs moto[server])");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "moto did not start; install it with pip install 'moto[server]==5.2.5'"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A client of one bucket, for what the test checks behind ferry.
    fn bucket(&self, name: &str) -> S3Store {
        let mut s = crate::support::server::settings_for(&self.endpoint, "us-east-1");
        s.provider = Provider::Ceph;
        S3Store::new(name, "", &s).unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn json(dir: &Path, cfg: &Path, args: &[&str]) -> serde_json::Value {
    let out = crate::ferry_ok(dir, args, &["--config", cfg.to_str().unwrap(), "--json"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// The current retain-until of a key, as HeadObject shows it.
async fn retain_until(s: &S3Store, key: &str) -> chrono::DateTime<chrono::Utc> {
    let out = s
        .client()
        .head_object()
        .bucket(s.bucket())
        .key(format!("repo/{key}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("head {key}: {e:?}"));
    assert_eq!(
        out.object_lock_mode().map(|m| m.as_str()),
        Some("GOVERNANCE"),
        "{key} is locked"
    );
    let t = out.object_lock_retain_until_date().expect("retain-until");
    chrono::DateTime::from_timestamp(t.secs(), 0).unwrap()
}

/// Every stored version of a key: (version id, is a delete marker).
async fn versions(s: &S3Store, key: &str) -> Vec<(String, bool)> {
    let full = format!("repo/{key}");
    let out = s
        .client()
        .list_object_versions()
        .bucket(s.bucket())
        .prefix(&full)
        .send()
        .await
        .unwrap();
    let mut v: Vec<(String, bool)> = out
        .versions()
        .iter()
        .filter(|o| o.key() == Some(full.as_str()))
        .map(|o| (o.version_id().unwrap().to_string(), false))
        .collect();
    v.extend(
        out.delete_markers()
            .iter()
            .filter(|o| o.key() == Some(full.as_str()))
            .map(|o| (o.version_id().unwrap().to_string(), true)),
    );
    v
}

/// The packs the bucket lists (its current versions).
async fn pack_keys(s: &S3Store) -> Vec<String> {
    let mut out = Vec::new();
    let page = s
        .client()
        .list_objects_v2()
        .bucket(s.bucket())
        .prefix("repo/data/")
        .send()
        .await
        .unwrap();
    for o in page.contents() {
        out.push(o.key().unwrap().trim_start_matches("repo/").to_string());
    }
    out
}

fn write_files(root: &Path, n: usize, seed: u64) {
    for i in 0..n {
        let p = root.join(format!("f{i}"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, ferry::testdata::random(60_000, seed + i as u64)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_lock_defers_deletion_extends_retention_and_purges_later() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = d.join("ferry.toml");
    let mut toml = String::new();
    for (name, bucket, primary) in [("eu", "lock-a", true), ("us", "lock-b", false)] {
        toml += &format!(
            "[[region]]\nname = {name:?}\nurl = \"s3://{bucket}/repo\"\nendpoint = {:?}\nprovider = \"ceph\"\ns3-region = \"us-east-1\"\n{}",
            moto.endpoint,
            if primary { "primary = true\n" } else { "" }
        );
    }
    std::fs::write(&cfg, toml).unwrap();
    let c = cfg.to_str().unwrap();

    // A local directory cannot lock: refused with a clear message.
    let (code, _, err) = crate::ferry(
        d,
        &[
            "init",
            "--repo",
            d.join("plain").to_str().unwrap(),
            "--object-lock",
            "governance",
            "--retention",
            "30d",
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("cannot lock objects"), "{err}");

    let retention = 45;
    let mut init = vec!["init", "--object-lock", "governance", "--retention", "45s"];
    init.extend(crate::SMALL_REPO);
    let created = json(d, &cfg, &init);
    assert_eq!(created["config"]["version"], 2, "{created}");
    assert_eq!(created["config"]["object_lock"]["mode"], "governance");
    assert_eq!(
        created["config"]["object_lock"]["retention_seconds"],
        retention
    );
    let (a, b) = (moto.bucket("lock-a"), moto.bucket("lock-b"));
    for s in [&a, &b] {
        let lock = s
            .client()
            .get_object_lock_configuration()
            .bucket(s.bucket())
            .send()
            .await
            .expect("init created the bucket with object lock");
        assert_eq!(
            lock.object_lock_configuration()
                .and_then(|c| c.object_lock_enabled())
                .map(|e| e.as_str()),
            Some("Enabled")
        );
    }

    // Two snapshots that share nothing, in both regions.
    let src = d.join("src");
    write_files(&src.join("old"), 8, 1);
    crate::ferry_ok(d, &["backup", src.to_str().unwrap()], &["--config", c]);
    let first = pack_keys(&a).await;
    // The server enforces the lock: a versioned delete is refused.
    let (version, _) = versions(&a, &first[0]).await[0].clone();
    let refused = a
        .client()
        .delete_object()
        .bucket("lock-a")
        .key(format!("repo/{}", first[0]))
        .version_id(&version)
        .send()
        .await;
    let status = refused
        .expect_err("a locked version cannot be deleted")
        .raw_response()
        .map(|r| r.status().as_u16());
    assert_eq!(status, Some(403));

    std::fs::remove_dir_all(src.join("old")).unwrap();
    write_files(&src.join("new"), 8, 100);
    crate::ferry_ok(d, &["backup", src.to_str().unwrap()], &["--config", c]);
    crate::ferry_ok(d, &["replicate"], &["--config", c]);
    let packs_before = pack_keys(&a).await;
    assert!(!packs_before.is_empty());
    for key in &packs_before {
        retain_until(&a, key).await;
    }
    let config_until = retain_until(&b, "config").await;

    // forget --prune: the old snapshot goes from the listings, its locked
    // version stays and the report says until when.
    std::thread::sleep(Duration::from_secs(2));
    let forgot = json(
        d,
        &cfg,
        &[
            "forget",
            "--keep-last",
            "1",
            "--prune",
            "--keep-delete",
            "1s",
        ],
    );
    assert_eq!(forgot["removed"], 1, "{forgot}");
    assert!(forgot["deferred_until"].is_string(), "{forgot}");
    // A prune that deletes the planned packs: hidden, not yet deletable.
    let pruned = json(d, &cfg, &["prune", "--keep-delete", "0s"]);
    let text = pruned.to_string();
    let eu = &pruned["regions"][0]["report"];
    assert!(eu["deleted"]["packs"].as_u64().unwrap() > 0, "{text}");
    let lock = &eu["object_lock"];
    assert!(
        lock["deferred_versions"].as_u64().unwrap() > eu["deleted"]["packs"].as_u64().unwrap(),
        "{text}"
    );
    assert!(lock["extended"].as_u64().unwrap() > 0, "{text}");
    let until =
        chrono::DateTime::parse_from_rfc3339(lock["deferred_until"].as_str().unwrap()).unwrap();
    let packs_after = pack_keys(&a).await;
    let gone: Vec<&String> = packs_before
        .iter()
        .filter(|k| !packs_after.contains(k))
        .collect();
    assert!(!gone.is_empty(), "the old snapshot's packs are deleted");
    for key in &gone {
        let v = versions(&a, key).await;
        assert!(
            v.iter().any(|(_, marker)| !marker),
            "{key}: the locked version is still stored: {v:?}"
        );
    }
    // What is still in use had its retention extended.
    assert!(
        retain_until(&b, "config").await > config_until,
        "config lock extended in region us"
    );
    let status = json(d, &cfg, &["status"]);
    for r in status["regions"].as_array().unwrap() {
        assert_eq!(r["protection"]["mode"], "governance", "{status}");
        assert_eq!(r["protection"]["retention_seconds"], retention, "{status}");
    }
    let text = crate::ferry_ok(d, &["status"], &["--config", c]);
    assert!(
        text.contains("protection: object lock governance, retention 45s"),
        "{text}"
    );

    // Once the retention has passed, a prune deletes the hidden versions.
    let wait = (until.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds() + 1500;
    std::thread::sleep(Duration::from_millis(wait.max(0) as u64));
    let pruned = json(d, &cfg, &["prune", "--keep-delete", "0s"]);
    let lock = &pruned["regions"][0]["report"]["object_lock"];
    assert!(lock["versions"].as_u64().unwrap() > 0, "{pruned}");
    assert_eq!(lock["deferred_versions"], 0, "{pruned}");
    for key in &gone {
        let v = versions(&a, key).await;
        assert!(
            v.iter().all(|(_, marker)| *marker),
            "{key}: versions purged: {v:?}"
        );
    }
    crate::ferry_ok(d, &["check", "--read-data"], &["--config", c]);
    let out = d.join("out");
    crate::ferry_ok(
        d,
        &["restore", "latest", "--target", out.to_str().unwrap()],
        &["--config", c],
    );
    assert!(crate::read_tree(&src) == crate::read_tree(&out.join(src.strip_prefix("/").unwrap())));
}

/// OSS has no per-object retention through its S3 interface: refused
/// before any request, pointing to the bucket's WORM policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oss_refuses_object_lock_and_points_to_its_worm_policy() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = crate::ferry(
        dir.path(),
        &[
            "init",
            "--repo",
            "s3://oss-bucket/repo",
            "--object-lock",
            "compliance",
            "--retention",
            "30d",
            "--json",
        ],
        &[
            "--s3-provider",
            "oss",
            "--s3-endpoint",
            "http://127.0.0.1:9",
        ],
    );
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("WORM"), "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .contains("retention (WORM) policy"),
        "{doc}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_bucket_with_object_lock_passes_the_lock_suite() {
    let moto = Moto::start();
    let store = moto.bucket("suite-locked");
    store.init_with(true).await.unwrap();
    ferry::store::testsuite::run(&store).await;
    ferry::store::testsuite::run_locked(&store, Duration::from_secs(3)).await;
    // Behind the layers every repository uses (retries, a bandwidth
    // limit), the same holds.
    let options = ferry::store::StoreOptions {
        limit_upload: Some("100MiB/s".parse().unwrap()),
        ..Default::default()
    };
    let composed =
        ferry::store::compose(std::sync::Arc::new(moto.bucket("suite-locked")), &options);
    ferry::store::testsuite::run_locked(&*composed, Duration::from_secs(3)).await;
}
