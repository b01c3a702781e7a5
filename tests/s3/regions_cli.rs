//! Regions on real S3 servers from the CLI: three s3s-fs servers and a
//! local directory are four regions; backup to the primary, replicate,
//! restore from each; the primary's server stopped, restore fails over.

use std::path::Path;

use crate::support::server::S3Server;

fn ferry(dir: &Path, cfg: &Path, args: &[&str]) -> (i32, String, String) {
    crate::ferry(dir, args, &["--config", cfg.to_str().unwrap()])
}

fn ok(dir: &Path, cfg: &Path, args: &[&str]) -> String {
    crate::ferry_ok(dir, args, &["--config", cfg.to_str().unwrap()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicate_across_s3_regions_and_fail_over() {
    let hz = S3Server::start("cn-hangzhou").await;
    let fra = S3Server::start("eu-central-1").await;
    let sgp = S3Server::start("ap-southeast-1").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = d.join("ferry.toml");
    let mut toml = String::new();
    for (i, s) in [&hz, &fra, &sgp].iter().enumerate() {
        toml += &format!(
            "[[region]]\nname = {:?}\nurl = \"s3://backups-{i}/cluster-a\"\nendpoint = {:?}\nprovider = \"minio\"\n{}",
            s.region,
            s.endpoint(),
            if i == 0 { "primary = true\n" } else { "" }
        );
    }
    toml += &format!(
        "[[region]]\nname = \"nas\"\nurl = {:?}\n",
        d.join("nas").to_str().unwrap()
    );
    std::fs::write(&cfg, toml).unwrap();
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
    ok(
        d,
        &cfg,
        &[
            "init",
            "--pack-size",
            "1MiB",
            "--chunk-min",
            "16KiB",
            "--chunk-avg",
            "64KiB",
            "--chunk-max",
            "256KiB",
            "--kdf-memory",
            "8MiB",
            "--kdf-iterations",
            "1",
        ],
    );
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
