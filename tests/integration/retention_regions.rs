//! `forget --config` decides on the primary's snapshots and removes them in
//! every region, never one that exists only in another region; `prune
//! --config` frees space in each region.

use std::path::Path;

use crate::support::{Env, Run};

fn ferry(env: &Env, cfg: &Path, args: &[&str]) -> Run {
    let mut all = args.to_vec();
    all.extend(["--config", cfg.to_str().unwrap()]);
    let r = env.run_with(env.command(), &all);
    assert_eq!(r.code, 0, "ferry {args:?}:\n{}\n{}", r.stdout, r.stderr);
    r
}

fn ids(r: &Run) -> Vec<String> {
    let mut v: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn forget_and_prune_reach_every_region() {
    let mut env = Env::new();
    env.repo = env.path("hz");
    env.init_small();
    let cfg = env.path("ferry.toml");
    let toml = format!(
        "[[region]]\nname = \"hz\"\nurl = {:?}\nprimary = true\n[[region]]\nname = \"eu\"\nurl = {:?}\n",
        env.path("hz").to_str().unwrap(),
        env.path("eu").to_str().unwrap()
    );
    std::fs::write(&cfg, toml).unwrap();
    let src = env.mkdir("src");
    for (i, t) in [
        "2025-01-01T00:00:00Z",
        "2025-01-02T00:00:00Z",
        "2025-01-03T00:00:00Z",
    ]
    .iter()
    .enumerate()
    {
        std::fs::write(src.join("f"), crate::support::bytes(200 << 10, i as u64)).unwrap();
        env.backup(&[&src], &["--time", t]);
    }
    ferry(&env, &cfg, &["replicate"]);
    // A snapshot only the secondary holds (written there directly).
    std::fs::write(src.join("g"), "only in eu").unwrap();
    let eu = env.path("eu");
    let r = env.run_with(
        env.command(),
        &[
            "backup",
            "--json",
            "--repo",
            eu.to_str().unwrap(),
            "--time",
            "2024-06-01T00:00:00Z",
            "--catalog",
            env.path("eu-cat.db").to_str().unwrap(),
            src.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let only_eu = r.json()["id"].as_str().unwrap().to_string();

    let r = ferry(&env, &cfg, &["forget", "--json", "--keep-last", "1"]).json();
    assert_eq!(r["removed"], 2, "{r}");
    assert_eq!(r["regions"][0]["region"], "eu");
    assert_eq!(r["regions"][0]["removed"], 2, "{r}");
    let list = |region: &str| {
        ids(&ferry(
            &env,
            &cfg,
            &["snapshots", "--json", "--region", region],
        ))
    };
    let hz = list("hz");
    assert_eq!(hz.len(), 1);
    let mut want = vec![hz[0].clone(), only_eu];
    want.sort();
    assert_eq!(list("eu"), want, "the snapshot only eu holds stays");

    for _ in 0..2 {
        let p = ferry(&env, &cfg, &["prune", "--json", "--keep-delete", "0s"]).json();
        assert_eq!(p["regions"].as_array().unwrap().len(), 2, "{p}");
    }
    for region in ["hz", "eu"] {
        ferry(&env, &cfg, &["check", "--read-data", "--region", region]);
    }
}
