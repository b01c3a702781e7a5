//! Regions dying while commands run, from the CLI, on S3 servers on
//! loopback behind a proxy that can refuse, black-hole or stall a region
//! mid-object: a `backup --fanout` and a `repair --region` that lose a
//! region part-way; `repair` SIGKILLed at several points; backups in a loop
//! while `replicate` and `status` run again and again. Each scenario ends
//! with `check --read-data` of every region, a byte-identical restore of
//! every snapshot from every region, and the regions' objects equal.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::scenario::*;
use crate::support::proxy::{FaultProxy, Mode};
use crate::support::server::S3Server;

const MODES: [Mode; 3] = [Mode::Refuse, Mode::BlackHole, Mode::Stall];

fn all_ok(v: &Value) -> bool {
    v["regions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["ok"] == true)
}

/// Flips a byte in every `n`-th file under `dir` whose path contains
/// `part`; returns how many were damaged.
fn damage(dir: &std::path::Path, part: &str, n: usize) -> usize {
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
    victims.len()
}

/// Three regions, the second behind the proxy. In each of three backups
/// with `--fanout` it dies on its first pack (refused, black-holed,
/// stalled mid-object): the backup succeeds on the primary, the third
/// region receives everything, the dead one is reported. Back, one
/// `replicate` converges all three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_dies_mid_object_during_a_fanout_backup() {
    let hz = S3Server::start("cn-hangzhou").await;
    let fra = S3Server::start("eu-central-1").await;
    let sgp = S3Server::start("ap-southeast-1").await;
    let proxy = FaultProxy::start(fra.addr, 1, 0.0, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = write_config(
        d,
        &[
            s3(&hz.region, hz.endpoint(), "f-0"),
            s3(&fra.region, proxy.endpoint(), "f-1"),
            s3(&sgp.region, sgp.endpoint(), "f-2"),
        ],
    );
    init(d, &cfg);
    let src = d.join("src");
    let mut trees = Vec::new();
    for (seed, mode) in MODES.into_iter().enumerate() {
        add_files(&src, seed, 3, 600);
        proxy.set_mode(Mode::Pass);
        proxy.set_mode_at("PUT /f-1/cluster-a/data/", 1, mode);
        let args = ["backup", "--fanout", "--json", src.to_str().unwrap()];
        let t = Instant::now();
        let (code, out, err) = run(d, &cfg, &args);
        assert_eq!(code, 0, "{mode:?}:\n{out}\n{err}");
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{mode:?}: {:?}",
            t.elapsed()
        );
        assert_eq!(proxy.mode(), mode, "the region died during the backup");
        let v: Value = serde_json::from_str(&out).unwrap();
        let dead = named(&v["fanout"], "region", "eu-central-1");
        assert_eq!(dead["ok"], false, "{mode:?}: {v}");
        assert!(dead["streamed"]["dropped"].is_string(), "{mode:?}: {v}");
        let alive = named(&v["fanout"], "region", "ap-southeast-1");
        assert_eq!(alive["ok"], true, "{mode:?}: {v}");
        assert!(err.contains("eu-central-1"), "names the region: {err}");
        trees.push(taken(&v, &src));
    }
    proxy.set_mode(Mode::Pass);
    let v = json(d, &cfg, &["replicate"]);
    assert!(all_ok(&v), "{v}");
    let names = ["cn-hangzhou", "eu-central-1", "ap-southeast-1"];
    verify_all(d, &cfg, &names, &trees);
    assert_same_objects(&[
        (names[0], bucket_dir(&hz, "f-0")),
        (names[1], bucket_dir(&fra, "f-1")),
        (names[2], bucket_dir(&sgp, "f-2")),
    ]);
}

/// Three regions, the primary behind the proxy; packs damaged in the
/// third. While `repair` fetches good copies, the primary dies on its first
/// pack (refused, black-holed, stalled mid-object): the repair goes on from
/// the second region and succeeds, naming the primary down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_region_dies_mid_object_during_repair() {
    let hz = S3Server::start("cn-hangzhou").await;
    let fra = S3Server::start("eu-central-1").await;
    let sgp = S3Server::start("ap-southeast-1").await;
    let proxy = FaultProxy::start(hz.addr, 1, 0.0, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = write_config(
        d,
        &[
            s3(&hz.region, proxy.endpoint(), "r-0"),
            s3(&fra.region, fra.endpoint(), "r-1"),
            s3(&sgp.region, sgp.endpoint(), "r-2"),
        ],
    );
    init(d, &cfg);
    let src = d.join("src");
    add_noise(&src, 0, 6, 400);
    let trees = vec![taken(&backup(d, &cfg, &src), &src)];
    ok(d, &cfg, &["replicate"]);
    for mode in MODES {
        let damaged = damage(&bucket_dir(&sgp, "r-2"), "/data/", 2);
        assert!(damaged >= 2);
        proxy.set_mode(Mode::Pass);
        proxy.set_mode_at("GET /r-0/cluster-a/data/", 1, mode);
        let (rep, err) = timed(
            d,
            &cfg,
            &["repair", "--region", "ap-southeast-1"],
            Duration::from_secs(30),
        );
        assert_eq!(proxy.mode(), mode, "the primary died during the repair");
        assert_eq!(rep["damaged"], damaged, "{mode:?}: {rep}");
        let repaired = rep["report"]["repaired"].as_array().unwrap();
        assert_eq!(repaired.len(), damaged, "{mode:?}: {rep}");
        assert!(
            repaired.iter().all(|r| r[1] == "eu-central-1"),
            "{mode:?}: {rep}"
        );
        assert_eq!(
            named(&rep["down"], "region", "cn-hangzhou")["region"],
            "cn-hangzhou",
            "{mode:?}: {rep}\n{err}"
        );
        ok(
            d,
            &cfg,
            &["check", "--region", "ap-southeast-1", "--read-data"],
        );
    }
    proxy.set_mode(Mode::Pass);
    let v = json(d, &cfg, &["replicate"]);
    assert!(all_ok(&v), "{v}");
    let names = ["cn-hangzhou", "eu-central-1", "ap-southeast-1"];
    verify_all(d, &cfg, &names, &trees);
    assert_same_objects(&[
        (names[0], bucket_dir(&hz, "r-0")),
        (names[1], bucket_dir(&fra, "r-1")),
        (names[2], bucket_dir(&sgp, "r-2")),
    ]);
}

/// `repair` SIGKILLed at several points of a repair of many damaged packs
/// (its writes slowed so that the kills land mid-copy); the killed runs
/// leave no temporary file; a rerun repairs what is left, and nothing is
/// lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_killed_at_several_points_then_converges() {
    let servers = [
        S3Server::start("cn-hangzhou").await,
        S3Server::start("eu-central-1").await,
    ];
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut regions: Vec<R> = servers
        .iter()
        .enumerate()
        .map(|(i, s)| s3(&s.region, s.endpoint(), &format!("p-{i}")))
        .collect();
    regions.push(local("nas", &d.join("nas")));
    let cfg = write_config(d, &regions);
    init(d, &cfg);
    let src = d.join("src");
    add_noise(&src, 0, 8, 400);
    let trees = vec![taken(&backup(d, &cfg, &src), &src)];
    ok(d, &cfg, &["replicate"]);
    let nas = d.join("nas");
    let packs = damage(&nas, "/data/", 1);
    assert!(packs >= 3, "{packs}");
    for delay in [150u64, 500, 1000, 1600, 2400] {
        let child = crate::ferry_command(
            d,
            &["repair", "--region", "nas"],
            &["--config", cfg.to_str().unwrap()],
        )
        .env("FERRY_LIMIT_UPLOAD", "1MiB/s")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
        tokio::time::sleep(Duration::from_millis(delay)).await;
        kill(child);
        let temps: Vec<String> = objects(&nas)
            .into_iter()
            .map(|(p, _)| p)
            .filter(|p| p.contains(".tmp-"))
            .collect();
        assert!(temps.is_empty(), "left by the killed run: {temps:?}");
    }
    let (code, out, err) = run(d, &cfg, &["check", "--region", "nas", "--read-data"]);
    let still = code != 0;
    let rep = json(d, &cfg, &["repair", "--region", "nas"]);
    assert_eq!(
        rep["report"]["unrepaired"].as_array().unwrap().len(),
        0,
        "{rep}\n{out}\n{err}"
    );
    assert_eq!(rep["damaged"] != 0, still, "{rep}");
    let names = ["cn-hangzhou", "eu-central-1", "nas"];
    verify_all(d, &cfg, &names, &trees);
    assert_same_objects(&[
        (names[0], bucket_dir(&servers[0], "p-0")),
        (names[1], bucket_dir(&servers[1], "p-1")),
        (names[2], nas),
    ]);
}

/// Backups in a loop while `replicate` and `status` run again and again:
/// none of them fails, every region is a valid repository after every
/// round (no snapshot without its data), and at the end every region holds
/// every snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_in_a_loop_beside_replicate_and_status() {
    let hz = S3Server::start("cn-hangzhou").await;
    let fra = S3Server::start("eu-central-1").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let cfg = write_config(
        &d,
        &[
            s3(&hz.region, hz.endpoint(), "l-0"),
            s3(&fra.region, fra.endpoint(), "l-1"),
            local("nas", &d.join("nas")),
        ],
    );
    init(&d, &cfg);
    let src = d.join("src");
    let backups = {
        let (d, cfg, src) = (d.clone(), cfg.clone(), src.clone());
        std::thread::spawn(move || {
            let mut trees = Vec::new();
            for seed in 0..5 {
                add_files(&src, seed, 3, 300);
                let args = ["backup", "--json", src.to_str().unwrap()];
                let out = crate::ferry_command(&d, &args, &["--config", cfg.to_str().unwrap()])
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                assert!(out.status.success(), "backup {seed}: {text}");
                trees.push(taken(&serde_json::from_str(&text).unwrap(), &src));
            }
            trees
        })
    };
    let mut rounds = 0;
    while !backups.is_finished() || rounds < 2 {
        let (code, out, err) = run(&d, &cfg, &["replicate", "--json"]);
        assert_eq!(code, 0, "replicate beside a backup:\n{out}\n{err}");
        json(&d, &cfg, &["status"]);
        for name in ["eu-central-1", "nas"] {
            let (code, out, err) = run(&d, &cfg, &["check", "--region", name]);
            assert_eq!(code, 0, "{name} after round {rounds}:\n{out}\n{err}");
        }
        rounds += 1;
    }
    let trees = backups.join().unwrap();
    let v = json(&d, &cfg, &["replicate"]);
    assert!(all_ok(&v), "{v}");
    let st = json(&d, &cfg, &["status"]);
    for name in ["cn-hangzhou", "eu-central-1", "nas"] {
        assert_eq!(
            named(&st["regions"], "name", name)["behind"]["objects"],
            0,
            "{st}"
        );
    }
    let names = ["cn-hangzhou", "eu-central-1", "nas"];
    verify_all(&d, &cfg, &names, &trees);
    assert_same_objects(&[
        (names[0], bucket_dir(&hz, "l-0")),
        (names[1], bucket_dir(&fra, "l-1")),
        (names[2], d.join("nas")),
    ]);
}
