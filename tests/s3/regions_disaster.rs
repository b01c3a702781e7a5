//! Regions in a disaster, from the CLI, on several S3 servers on loopback:
//! fresh buckets bootstrapped and a region added later; the primary
//! refused, black-holed or stalling, and every command served by the
//! survivors within seconds; backups written to the next region; the
//! primary back and every region converging; a restore whose region dies
//! part-way; replicate killed at several points. Each scenario ends with
//! `check --read-data` of every region and a restore from each.

use std::time::Duration;

use serde_json::Value;

use super::scenario::*;
use crate::support::proxy::{Fault, FaultProxy};
use crate::support::server::S3Server;

/// Fresh servers without buckets: `init --config` creates the repository
/// (bucket included) in every region; backup and replicate; a fourth region
/// added to the config later is created and filled by the next replicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_buckets_bootstrap_and_a_region_added_later() {
    let servers = [
        S3Server::start("cn-hangzhou").await,
        S3Server::start("eu-central-1").await,
        S3Server::start("ap-southeast-1").await,
        S3Server::start("us-west-2").await,
    ];
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut regions: Vec<R> = servers[..3]
        .iter()
        .enumerate()
        .map(|(i, s)| s3(&s.region, s.endpoint(), &format!("fresh-{i}")))
        .collect();
    let cfg = write_config(d, &regions);
    let v = init(d, &cfg);
    for s in &servers[..3] {
        let r = named(&v["regions"], "region", &s.region);
        assert_eq!(r["ok"], true, "{v}");
        assert_eq!(r["bucket_created"], true, "{v}");
    }
    let src = d.join("src");
    add_files(&src, 0, 5, 200);
    let b = backup(d, &cfg, &src);
    let mut trees = vec![(b["id"].as_str().unwrap().to_string(), expected(&src))];
    let r = json(d, &cfg, &["replicate"]);
    assert!(
        r["regions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["ok"] == true),
        "{r}"
    );

    // A fourth region, with no bucket yet.
    regions.push(s3("us-west-2", servers[3].endpoint(), "added-later"));
    let cfg = write_config(d, &regions);
    let r = json(d, &cfg, &["replicate"]);
    let added = named(&r["regions"], "region", "us-west-2");
    assert_eq!(added["ok"], true, "{r}");
    assert_eq!(added["created"], true, "{r}");
    assert!(
        added["report"]["copied"]["data"]["objects"]
            .as_u64()
            .unwrap()
            > 0,
        "{r}"
    );
    add_files(&src, 1, 3, 200);
    let b = backup(d, &cfg, &src);
    trees.push((b["id"].as_str().unwrap().to_string(), expected(&src)));
    ok(d, &cfg, &["replicate"]);
    let st = json(d, &cfg, &["status"]);
    for s in &servers {
        let r = named(&st["regions"], "name", &s.region);
        assert_eq!(r["reachable"], true, "{st}");
        assert_eq!(r["behind"]["objects"], 0, "{st}");
    }
    let names: Vec<&str> = servers.iter().map(|s| s.region.as_str()).collect();
    verify_all(d, &cfg, &names, &trees);
    let mut dirs: Vec<(&str, std::path::PathBuf)> = (0..3)
        .map(|i| (names[i], bucket_dir(&servers[i], &format!("fresh-{i}"))))
        .collect();
    dirs.push((names[3], bucket_dir(&servers[3], "added-later")));
    assert_same_objects(&dirs);
}

/// A region whose credentials may not create buckets: init names the
/// permission and the region, and exits non-zero; the others are created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_names_the_missing_permission_and_the_region() {
    let a = S3Server::start("cn-hangzhou").await;
    let b = S3Server::start_denying("eu-central-1", &["CreateBucket"]).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = write_config(
        d,
        &[
            s3(&a.region, a.endpoint(), "perm-0"),
            s3(&b.region, b.endpoint(), "perm-1"),
        ],
    );
    let mut args = vec!["init", "--json"];
    args.extend(crate::SMALL_REPO);
    let (code, out, err) = run(d, &cfg, &args);
    assert_ne!(code, 0, "{out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        named(&v["regions"], "region", "cn-hangzhou")["ok"],
        true,
        "{v}"
    );
    let denied = named(&v["regions"], "region", "eu-central-1");
    assert_eq!(denied["ok"], false, "{v}");
    let msg = denied["error"].as_str().unwrap();
    assert!(
        msg.contains("s3:CreateBucket") && msg.contains("eu-central-1"),
        "{msg}"
    );
    // Replicating to it says the same, with the hint, instead of a bare 404.
    let (code, out, _) = run(d, &cfg, &["replicate", "--json"]);
    assert_ne!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    let msg = named(&v["regions"], "region", "eu-central-1")["error"].to_string();
    assert!(msg.contains("s3:CreateBucket"), "{msg}");
    // Status names the missing bucket with a hint, not a bare 404.
    let st = json(d, &cfg, &["status"]);
    let r = named(&st["regions"], "name", "eu-central-1");
    assert_eq!(r["reachable"], false, "{st}");
    let msg = r["error"].as_str().unwrap();
    assert!(
        msg.contains("bucket does not exist") && msg.contains("replicate"),
        "{msg}"
    );
}

/// Four regions (three S3 servers and a directory). The primary's server
/// stops: status, snapshots, check, repair, restore and a new backup work
/// from the others within seconds; the backup is written to the next region
/// and records it. The primary back, replicate converges all four.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_down_then_back_and_regions_converge() {
    let mut hz = S3Server::start("cn-hangzhou").await;
    let fra = S3Server::start("eu-central-1").await;
    let sgp = S3Server::start("ap-southeast-1").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut regions = vec![
        s3(&hz.region, hz.endpoint(), "b-0"),
        s3(&fra.region, fra.endpoint(), "b-1"),
        s3(&sgp.region, sgp.endpoint(), "b-2"),
    ];
    regions.push(R {
        name: "nas".into(),
        endpoint: None,
        url: d.join("nas").display().to_string(),
    });
    let cfg = write_config(d, &regions);
    init(d, &cfg);
    let src = d.join("src");
    add_files(&src, 0, 6, 200);
    let b = backup(d, &cfg, &src);
    let mut trees = vec![(b["id"].as_str().unwrap().to_string(), expected(&src))];
    ok(d, &cfg, &["replicate"]);

    hz.stop();
    let bound = Duration::from_secs(10);
    let (st, _) = timed(d, &cfg, &["status"], bound);
    assert_eq!(
        named(&st["regions"], "name", "cn-hangzhou")["reachable"],
        false,
        "{st}"
    );
    assert_eq!(
        named(&st["regions"], "name", "eu-central-1")["reachable"],
        true,
        "{st}"
    );
    let (snaps, err) = timed(d, &cfg, &["snapshots"], bound);
    assert_eq!(snaps.as_array().unwrap().len(), 1, "{snaps}");
    assert!(err.contains("cn-hangzhou"), "names the region down: {err}");
    timed(
        d,
        &cfg,
        &["check", "--region", "eu-central-1", "--read-data"],
        bound,
    );
    let (rep, _) = timed(d, &cfg, &["repair", "--region", "ap-southeast-1"], bound);
    assert_eq!(rep["damaged"], 0, "{rep}");
    let out = d.join("out-down");
    let (r, _) = timed(
        d,
        &cfg,
        &["restore", "latest", "--target", out.to_str().unwrap()],
        bound,
    );
    assert_eq!(r["region"], "eu-central-1", "{r}");
    assert_eq!(
        named(&r["down"], "region", "cn-hangzhou")["region"],
        "cn-hangzhou"
    );
    assert!(crate::read_tree(&out) == trees[0].1);

    // A backup during the outage goes to the next region and says so.
    add_files(&src, 1, 4, 200);
    let (b, err) = timed(
        d,
        &cfg,
        &["backup", src.to_str().unwrap()],
        Duration::from_secs(20),
    );
    assert_eq!(b["region"], "eu-central-1", "{b}");
    assert_eq!(b["snapshot"]["region"], "eu-central-1", "{b}");
    assert!(err.contains("eu-central-1"), "{err}");
    trees.push((b["id"].as_str().unwrap().to_string(), expected(&src)));
    // Replicate among the live regions works, naming the one down.
    let (code, out, _) = run(d, &cfg, &["replicate", "--json"]);
    assert_ne!(code, 0, "a region is down");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        named(&v["down"], "region", "cn-hangzhou")["region"],
        "cn-hangzhou"
    );
    assert_eq!(named(&v["regions"], "region", "nas")["ok"], true, "{v}");

    // The primary comes back and receives what was written meanwhile.
    hz.restart().await;
    let v = json(d, &cfg, &["replicate"]);
    let back = named(&v["regions"], "region", "cn-hangzhou");
    assert_eq!(back["ok"], true, "{v}");
    assert!(
        back["report"]["copied"]["snapshots"]["objects"]
            .as_u64()
            .unwrap()
            >= 1,
        "{v}"
    );
    let st = json(d, &cfg, &["status"]);
    let newest = named(&st["regions"], "name", "eu-central-1")["newest_snapshot"].clone();
    for name in ["cn-hangzhou", "eu-central-1", "ap-southeast-1", "nas"] {
        let r = named(&st["regions"], "name", name);
        assert_eq!(r["newest_snapshot"], newest, "{st}");
        assert_eq!(r["behind"]["objects"], 0, "{st}");
    }
    verify_all(
        d,
        &cfg,
        &["cn-hangzhou", "eu-central-1", "ap-southeast-1", "nas"],
        &trees,
    );
    assert_same_objects(&[
        ("cn-hangzhou", bucket_dir(&hz, "b-0")),
        ("eu-central-1", bucket_dir(&fra, "b-1")),
        ("ap-southeast-1", bucket_dir(&sgp, "b-2")),
        ("nas", d.join("nas")),
    ]);
}

/// The primary black-holed, then stalling mid-object: reads and a backup
/// are served by the others within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_holed_and_stalling_primary() {
    let hz = S3Server::start("cn-hangzhou").await;
    let fra = S3Server::start("eu-central-1").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let live = [
        s3(&hz.region, hz.endpoint(), "h-0"),
        s3(&fra.region, fra.endpoint(), "h-1"),
    ];
    let cfg = write_config(d, &live);
    init(d, &cfg);
    let src = d.join("src");
    add_files(&src, 0, 4, 300);
    let b = backup(d, &cfg, &src);
    let mut trees = vec![(b["id"].as_str().unwrap().to_string(), expected(&src))];
    ok(d, &cfg, &["replicate"]);

    let (hole, _task) = black_hole().await;
    let cfg = write_config(
        d,
        &[
            s3(&hz.region, format!("http://{hole}"), "h-0"),
            s3(&fra.region, fra.endpoint(), "h-1"),
        ],
    );
    let bound = Duration::from_secs(10);
    let (st, _) = timed(d, &cfg, &["status"], bound);
    assert_eq!(
        named(&st["regions"], "name", "cn-hangzhou")["reachable"],
        false,
        "{st}"
    );
    timed(d, &cfg, &["snapshots"], bound);
    let out = d.join("out-hole");
    let (r, _) = timed(
        d,
        &cfg,
        &["restore", "latest", "--target", out.to_str().unwrap()],
        bound,
    );
    assert_eq!(r["region"], "eu-central-1", "{r}");
    assert!(crate::read_tree(&out) == trees[0].1);
    add_files(&src, 1, 2, 300);
    let (b, _) = timed(
        d,
        &cfg,
        &["backup", src.to_str().unwrap()],
        Duration::from_secs(20),
    );
    assert_eq!(b["snapshot"]["region"], "eu-central-1", "{b}");
    trees.push((b["id"].as_str().unwrap().to_string(), expected(&src)));

    // The primary answers again, but every pack read stalls mid-body: the
    // restore moves to the next region.
    let proxy = FaultProxy::start(hz.addr, 7, 1.0, &[Fault::StallMidBody]).await;
    proxy.only_matching("GET /h-0/cluster-a/data/");
    let cfg = write_config(
        d,
        &[
            s3(&hz.region, proxy.endpoint(), "h-0"),
            s3(&fra.region, fra.endpoint(), "h-1"),
        ],
    );
    let out = d.join("out-stall");
    let restore = crate::ferry_command(
        d,
        &[
            "restore",
            trees[0].0.as_str(),
            "--target",
            out.to_str().unwrap(),
            "--json",
        ],
        &["--config", cfg.to_str().unwrap()],
    )
    .env("FERRY_S3_IDLE_TIMEOUT_MS", "1500")
    .output();
    let restore = restore.unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let (code, o, e) = (
        restore.status.code().unwrap_or(-1),
        text(&restore.stdout),
        text(&restore.stderr),
    );
    assert_eq!(code, 0, "{o}\n{e}");
    let r: Value = serde_json::from_str(&o).unwrap();
    assert_eq!(r["region"], "cn-hangzhou", "{r}");
    assert_eq!(r["failovers"][0]["to"], "eu-central-1", "{r}");
    assert!(crate::read_tree(&out) == trees[0].1);
    drop(proxy);
    let cfg = write_config(d, &live);
    ok(d, &cfg, &["replicate"]);
    verify_all(d, &cfg, &["cn-hangzhou", "eu-central-1"], &trees);
    assert_same_objects(&[
        ("cn-hangzhou", bucket_dir(&hz, "h-0")),
        ("eu-central-1", bucket_dir(&fra, "h-1")),
    ]);
}

/// `replicate` killed (SIGKILL) at several points of its copy, with a
/// backup between two of the kills; the killed runs leave no temporary
/// file in the directory region; a rerun converges every region with
/// nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicate_killed_at_several_points_then_converges() {
    let servers = [
        S3Server::start("cn-hangzhou").await,
        S3Server::start("eu-central-1").await,
        S3Server::start("ap-southeast-1").await,
    ];
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut regions: Vec<R> = servers
        .iter()
        .enumerate()
        .map(|(i, s)| s3(&s.region, s.endpoint(), &format!("k-{i}")))
        .collect();
    regions.push(local("nas", &d.join("nas")));
    let cfg = write_config(d, &regions);
    init(d, &cfg);
    let src = d.join("src");
    add_files(&src, 0, 8, 400);
    let b = backup(d, &cfg, &src);
    let mut trees = vec![(b["id"].as_str().unwrap().to_string(), expected(&src))];
    for (n, delay) in [300u64, 900, 1800, 2500].into_iter().enumerate() {
        if n == 2 {
            add_files(&src, 1, 3, 400);
            let b = backup(d, &cfg, &src);
            trees.push((b["id"].as_str().unwrap().to_string(), expected(&src)));
        }
        let mut child =
            crate::ferry_command(d, &["replicate"], &["--config", cfg.to_str().unwrap()])
                .env("FERRY_LIMIT_UPLOAD", "1MiB/s")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
        tokio::time::sleep(Duration::from_millis(delay)).await;
        child.kill().unwrap();
        tokio::task::block_in_place(|| child.wait()).unwrap();
        assert_no_temporary_files(&d.join("nas"));
    }
    let v = json(d, &cfg, &["replicate"]);
    assert!(all_ok(&v), "{v}");
    let mut dirs: Vec<(&str, std::path::PathBuf)> = (0..3)
        .map(|i| (TRIO[i], bucket_dir(&servers[i], &format!("k-{i}"))))
        .collect();
    dirs.push(("nas", d.join("nas")));
    verify_regions(d, &cfg, &dirs, &trees);
}
