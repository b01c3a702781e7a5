//! Regions on real S3 servers from the CLI: three s3s-fs servers and a
//! local directory are four regions; backup to the primary, replicate,
//! restore from each; the primary's server stopped, restore fails over; a
//! backup streamed to every region; a region's server stopped in the middle
//! of a replication and the copy resumed; a damaged pack found and
//! repaired.

use std::path::Path;

use super::scenario::{add_files, local, ok, run as ferry, s3, write_config, R};
use crate::support::server::S3Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicate_across_s3_regions_and_fail_over() {
    let hz = S3Server::start("cn-hangzhou").await;
    let fra = S3Server::start("eu-central-1").await;
    let sgp = S3Server::start("ap-southeast-1").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut regions: Vec<R> = [&hz, &fra, &sgp]
        .iter()
        .enumerate()
        .map(|(i, s)| s3(&s.region, s.endpoint(), &format!("backups-{i}")))
        .collect();
    regions.push(local("nas", &d.join("nas")));
    let cfg = write_config(d, &regions);
    for i in 1..3 {
        // The other regions' buckets exist already (made by their owners).
        std::fs::create_dir_all(
            [&hz, &fra, &sgp][i]
                .root
                .path()
                .join(format!("backups-{i}")),
        )
        .unwrap();
    }
    let src = d.join("src");
    for i in 0..12 {
        let p = src.join(format!("d{}/f{i}", i % 2));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(
            p,
            (0..(50_000 + i * 40_000))
                .map(|j| (j * 7 + i) as u8)
                .collect::<Vec<u8>>(),
        )
        .unwrap();
    }
    let mut init = vec!["init"];
    init.extend(crate::SMALL_REPO);
    ok(d, &cfg, &init);
    ok(d, &cfg, &["backup", src.to_str().unwrap()]);
    ok(d, &cfg, &["replicate"]);
    let status: serde_json::Value =
        serde_json::from_str(&ok(d, &cfg, &["status", "--json"])).unwrap();
    let text = status.to_string();
    for name in ["cn-hangzhou", "eu-central-1", "ap-southeast-1", "nas"] {
        assert!(text.contains(name), "status names {name}: {text}");
    }
    for region in ["eu-central-1", "ap-southeast-1", "nas"] {
        let out = d.join(format!("out-{region}"));
        ok(
            d,
            &cfg,
            &[
                "restore",
                "--region",
                region,
                "latest",
                "--target",
                out.to_str().unwrap(),
            ],
        );
        assert!(
            crate::read_tree(&src) == crate::read_tree(&out.join(src.strip_prefix("/").unwrap())),
            "restore from {region} identical"
        );
        ok(d, &cfg, &["check", "--region", region, "--read-data"]);
    }
    // The primary's server goes away: restore fails over to the next region.
    drop(hz);
    let out = d.join("out-failover");
    let (code, o, e) = ferry(
        d,
        &cfg,
        &[
            "restore",
            "--at",
            "2100-01-01T00:00:00Z",
            "--target",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "failover restore:\n{o}\n{e}");
    assert!(e.contains("eu-central-1"), "says which region it used: {e}");
    assert!(crate::read_tree(&src) == crate::read_tree(&out.join(src.strip_prefix("/").unwrap())));
}

/// A config of S3 regions, the first the primary; the other buckets exist.
fn s3_regions(d: &Path, servers: &[&S3Server]) -> std::path::PathBuf {
    for (i, s) in servers.iter().enumerate().skip(1) {
        std::fs::create_dir_all(s.root.path().join(format!("backups-{i}"))).unwrap();
    }
    let regions: Vec<R> = servers
        .iter()
        .enumerate()
        .map(|(i, s)| s3(&s.region, s.endpoint(), &format!("backups-{i}")))
        .collect();
    write_config(d, &regions)
}

/// Data objects a server holds in a bucket.
fn packs(server: &S3Server, bucket: &str) -> Vec<std::path::PathBuf> {
    crate::support::files::files_under(&server.root.path().join(bucket))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/data/"))
        .collect()
}

fn region<'a>(v: &'a serde_json::Value, key: &str, name: &str) -> &'a serde_json::Value {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["region"] == name || r["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {v}"))
}

/// Streaming a backup to S3 regions, a region's server going down in the
/// middle of a replication and the copy resuming, status after each step,
/// and a damaged pack in one region found by `check` and replaced by
/// `repair`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_regions_stream_resume_and_repair() {
    let hz = S3Server::start("cn-hangzhou").await;
    let fra = S3Server::start("eu-central-1").await;
    let mut sgp = S3Server::start("ap-southeast-1").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = s3_regions(d, &[&hz, &fra, &sgp]);
    let src = d.join("src");
    add_files(&src, 0, 6, 300);
    let mut init = vec!["init"];
    init.extend(crate::SMALL_REPO);
    ok(d, &cfg, &init);
    ok(d, &cfg, &["backup", src.to_str().unwrap()]);
    ok(d, &cfg, &["replicate"]);
    let status = |d: &Path| -> serde_json::Value {
        serde_json::from_str(&ok(d, &cfg, &["status", "--json"])).unwrap()
    };
    let st = status(d);
    for name in ["eu-central-1", "ap-southeast-1"] {
        let r = region(&st, "regions", name);
        assert_eq!(r["behind"]["objects"], 0, "{st}");
        assert!(r["rpo_seconds"].as_i64().unwrap() >= 0, "{st}");
    }

    // A backup streamed to every region: its packs travel with it, the
    // round after sends the snapshot only.
    add_files(&src, 1, 4, 300);
    let v: serde_json::Value = serde_json::from_str(&ok(
        d,
        &cfg,
        &["backup", "--fanout", "--json", src.to_str().unwrap()],
    ))
    .unwrap();
    let fan = serde_json::json!({ "regions": v["fanout"] });
    for name in ["eu-central-1", "ap-southeast-1"] {
        let r = region(&fan, "regions", name);
        assert_eq!(r["ok"], true, "{v}");
        assert!(r["streamed"]["objects"].as_u64().unwrap() >= 2, "{v}");
        let copied = r["report"]["copied"].as_object().unwrap();
        assert_eq!(copied.keys().collect::<Vec<_>>(), ["snapshots"], "{v}");
    }

    // A new backup, then a replication to Singapore slow enough to stop
    // its server in the middle.
    add_files(&src, 2, 8, 400);
    ok(d, &cfg, &["backup", src.to_str().unwrap()]);
    let before = packs(&sgp, "backups-2").len();
    let mut child = crate::ferry_command(
        d,
        &[
            "replicate",
            "--to",
            "ap-southeast-1",
            "--limit",
            "600KiB/s",
            "--json",
        ],
        &["--config", cfg.to_str().unwrap()],
    )
    .env("FERRY_RETRIES", "2")
    .env("FERRY_RETRY_BUDGET", "3")
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while packs(&sgp, "backups-2").len() < before + 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "no pack reached Singapore"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "replicate ended before the stop"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    sgp.stop();
    let out = tokio::task::block_in_place(|| child.wait_with_output()).unwrap();
    assert_ne!(
        out.status.code(),
        Some(0),
        "replicate to a stopped server fails"
    );
    let got_there = packs(&sgp, "backups-2").len() - before;
    let st = status(d);
    let r = region(&st, "regions", "ap-southeast-1");
    assert_eq!(r["reachable"], false, "{st}");
    assert!(r["behind"]["objects"].as_u64().unwrap() > 0, "{st}");

    // Back up: the copy resumes with what is missing only.
    sgp.restart().await;
    let v: serde_json::Value = serde_json::from_str(&ok(
        d,
        &cfg,
        &["replicate", "--to", "ap-southeast-1", "--json"],
    ))
    .unwrap();
    let r = region(&v, "regions", "ap-southeast-1");
    assert_eq!(r["ok"], true, "{v}");
    assert!(
        r["report"]["present"].as_u64().unwrap() as usize >= got_there,
        "{v}"
    );
    let copied = r["report"]["copied"]["data"]["objects"]
        .as_u64()
        .unwrap_or(0) as usize;
    assert!(copied > 0 && got_there > 0, "{v}");
    assert_eq!(
        packs(&sgp, "backups-2").len(),
        packs(&hz, "backups-0").len()
    );
    let st = status(d);
    assert_eq!(
        region(&st, "regions", "ap-southeast-1")["behind"]["objects"],
        0,
        "{st}"
    );

    // Frankfurt catches up too, before the damage below.
    ok(d, &cfg, &["replicate"]);

    // A pack damaged on Frankfurt's disk: check names it, repair fetches a
    // good copy, check passes again.
    let victim = packs(&fra, "backups-1").pop().unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[10] ^= 0x55;
    std::fs::write(&victim, bytes).unwrap();
    let name = victim.file_name().unwrap().to_str().unwrap().to_string();
    let (code, o, e) = ferry(
        d,
        &cfg,
        &["check", "--region", "eu-central-1", "--read-data"],
    );
    assert_ne!(code, 0, "check finds the damage:\n{o}\n{e}");
    assert!(
        format!("{o}{e}").contains(&name),
        "check names {name}:\n{o}\n{e}"
    );
    ok(d, &cfg, &["repair", "--region", "eu-central-1"]);
    ok(
        d,
        &cfg,
        &["check", "--region", "eu-central-1", "--read-data"],
    );

    for name in ["eu-central-1", "ap-southeast-1"] {
        let out = d.join(format!("out-{name}"));
        ok(
            d,
            &cfg,
            &[
                "restore",
                "--region",
                name,
                "latest",
                "--target",
                out.to_str().unwrap(),
            ],
        );
        let (want, got) = (
            crate::read_tree(&src),
            crate::read_tree(&out.join(src.strip_prefix("/").unwrap())),
        );
        let names = |t: &[(String, Vec<u8>)]| {
            t.iter()
                .map(|(n, d)| (n.clone(), d.len()))
                .collect::<Vec<_>>()
        };
        assert!(
            want == got,
            "restore from {name} identical: {:?} vs {:?}",
            names(&want),
            names(&got)
        );
    }
}
