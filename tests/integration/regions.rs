//! Regions: a repository replicated to several local-directory regions,
//! restored from each, replicated incrementally and after interruptions,
//! failed over when the primary is gone, and repaired from a healthy copy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{assert_same_tree, bytes, text, Env, Run};

struct Regions {
    env: Env,
    cfg: PathBuf,
    src: PathBuf,
}

const NAMES: [&str; 3] = ["hz", "eu", "nas"];

impl Regions {
    /// Three regions (hz is the primary), a repository in the primary and a
    /// source tree spanning several packs.
    fn new() -> Self {
        let mut env = Env::new();
        env.repo = env.path("hz");
        env.init_small();
        let cfg = env.path("ferry.toml");
        let mut toml = String::new();
        for n in NAMES {
            let url = env.path(n);
            toml += &format!(
                "[[region]]\nname = {n:?}\nurl = {:?}\n",
                url.to_str().unwrap()
            );
            if n == "hz" {
                toml += "primary = true\n";
            }
        }
        std::fs::write(&cfg, toml).unwrap();
        let src = env.path("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("a"), bytes(700 << 10, 1)).unwrap();
        std::fs::write(src.join("b.txt"), text(300 << 10, 2)).unwrap();
        std::fs::write(src.join("sub/c"), bytes(1500 << 10, 3)).unwrap();
        Regions { env, cfg, src }
    }

    fn try_ferry(&self, args: &[&str]) -> Run {
        let mut all = args.to_vec();
        all.extend(["--config", self.cfg.to_str().unwrap()]);
        self.env.run_with(self.env.command(), &all)
    }

    fn ferry(&self, args: &[&str]) -> Run {
        let r = self.try_ferry(args);
        assert_eq!(r.code, 0, "ferry {args:?}:\n{}\n{}", r.stdout, r.stderr);
        r
    }

    fn backup(&self) -> String {
        let r = self.ferry(&["backup", "--json", self.src.to_str().unwrap()]);
        r.json()["id"].as_str().unwrap().to_string()
    }

    fn dir(&self, region: &str) -> PathBuf {
        self.env.path(region)
    }

    /// Region name -> its status object.
    fn status(&self) -> BTreeMap<String, Value> {
        let v = self.ferry(&["status", "--json"]).json();
        v["regions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["name"].as_str().unwrap().to_string(), r.clone()))
            .collect()
    }

    fn restore_from(&self, region: &str) -> PathBuf {
        let target = self.env.path(&format!("restore-{region}"));
        let t = target.to_str().unwrap();
        self.ferry(&[
            "restore",
            "--region",
            region,
            "--at",
            "2100-01-01T00:00:00Z",
            "--target",
            t,
        ]);
        target
    }
}

/// Every object file under a store directory: key -> size.
/// The objects of a local region; `.tmp-` files of writes cut short are
/// not objects (format.md: readers ignore them).
fn objects(dir: &Path) -> BTreeMap<String, u64> {
    crate::support::files_under(dir)
        .into_iter()
        .filter(|p| {
            !p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".tmp-")
        })
        .map(|p| {
            let size = p.metadata().unwrap().len();
            (
                p.strip_prefix(dir).unwrap().to_str().unwrap().to_string(),
                size,
            )
        })
        .collect()
}

fn region_report<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["region"] == name)
        .unwrap_or_else(|| panic!("no report for {name}: {v}"))
}

fn copied_bytes(report: &Value) -> u64 {
    let copied = report["report"]["copied"].as_object().unwrap();
    copied.values().map(|k| k["bytes"].as_u64().unwrap()).sum()
}

#[test]
fn replicate_restore_from_every_region_and_incrementally() {
    let r = Regions::new();
    let first = r.backup();
    let st = r.status();
    let primary = objects(&r.dir("hz"));
    let total: u64 = primary.values().sum();
    assert_eq!(st["hz"]["held"]["objects"], primary.len() as u64);
    assert_eq!(st["hz"]["newest_snapshot"], first.as_str());
    assert_eq!(st["eu"]["behind"]["bytes"], total, "nothing replicated yet");
    assert!(st["eu"]["newest_snapshot"].is_null());
    assert_eq!(st["eu"]["reachable"], false, "no repository there yet");

    let v = r.ferry(&["replicate", "--json"]).json();
    for n in ["eu", "nas"] {
        let rep = region_report(&v, n);
        assert_eq!(rep["ok"], true, "{v}");
        assert_eq!(
            copied_bytes(rep),
            total,
            "{n} received the whole repository"
        );
        assert_eq!(objects(&r.dir(n)), primary, "{n} holds the same objects");
    }
    let st = r.status();
    for n in NAMES {
        assert_eq!(st[n]["reachable"], true, "{n}: {}", st[n]);
        assert_eq!(st[n]["behind"]["objects"], 0, "{n}");
        assert_eq!(st[n]["newest_snapshot"], first.as_str(), "{n}");
        assert!(st[n]["rpo_seconds"].as_i64().unwrap() >= 0);
    }
    for n in NAMES {
        let t = r.restore_from(n);
        assert_same_tree(&r.src, &Env::restored(&t, &r.src));
    }

    // A second snapshot: only its new objects travel.
    std::fs::write(r.src.join("new"), bytes(400 << 10, 9)).unwrap();
    let second = r.backup();
    let after = objects(&r.dir("hz"));
    let new: BTreeMap<_, _> = after
        .iter()
        .filter(|(k, _)| !primary.contains_key(*k))
        .collect();
    let new_bytes: u64 = new.values().copied().sum();
    assert!(
        new.keys().any(|k| k.starts_with("data/"))
            && new.keys().any(|k| k.starts_with("snapshots/"))
    );
    let st = r.status();
    assert_eq!(st["eu"]["behind"]["objects"], new.len() as u64);
    assert_eq!(st["eu"]["behind"]["bytes"], new_bytes);
    assert_eq!(st["eu"]["newest_snapshot"], first.as_str());

    let v = r.ferry(&["replicate", "--to", "eu", "--json"]).json();
    let rep = region_report(&v, "eu");
    assert_eq!(
        copied_bytes(rep),
        new_bytes,
        "only the new objects were sent: {v}"
    );
    assert_eq!(
        rep["report"]["present"],
        primary.len() as u64 - 1,
        "all but config listed as present"
    );
    assert_eq!(objects(&r.dir("eu")), after);
    let st = r.status();
    assert_eq!(st["eu"]["behind"]["objects"], 0);
    assert_eq!(st["eu"]["newest_snapshot"], second.as_str());
    assert_eq!(
        st["nas"]["behind"]["bytes"], new_bytes,
        "nas was not replicated"
    );
    assert_eq!(st["nas"]["newest_snapshot"], first.as_str());
}

#[test]
fn interrupted_replication_resumes_and_a_down_region_is_reported() {
    let r = Regions::new();
    r.backup();
    let primary = objects(&r.dir("hz"));
    // eu cannot take the index object (a directory is in its way): packs go
    // in, the snapshot must not.
    let index = primary.keys().find(|k| k.starts_with("index/")).unwrap();
    std::fs::create_dir_all(r.dir("eu").join(index)).unwrap();
    let run = r.try_ferry(&["replicate", "--json"]);
    assert_ne!(run.code, 0);
    let v = run.json();
    assert_eq!(region_report(&v, "eu")["ok"], false);
    assert_eq!(
        region_report(&v, "nas")["ok"],
        true,
        "the other region still replicates"
    );
    let eu = objects(&r.dir("eu"));
    assert!(eu.keys().any(|k| k.starts_with("data/")));
    assert!(
        !eu.keys().any(|k| k.starts_with("snapshots/")),
        "no snapshot before its index"
    );

    std::fs::remove_dir(r.dir("eu").join(index)).unwrap();
    let v = r.ferry(&["replicate", "--to", "eu", "--json"]).json();
    let copied = &region_report(&v, "eu")["report"]["copied"];
    assert!(
        copied.get("data").is_none(),
        "packs are not sent again: {copied}"
    );
    assert_eq!(copied["index"]["objects"], 1);
    assert_eq!(copied["snapshots"]["objects"], 1);
    assert_eq!(objects(&r.dir("eu")), primary);

    // Lost objects are copied again, and only they.
    let lost: Vec<_> = primary
        .keys()
        .filter(|k| k.starts_with("data/"))
        .take(2)
        .collect();
    for k in &lost {
        std::fs::remove_file(r.dir("nas").join(k)).unwrap();
    }
    let v = r.ferry(&["replicate", "--to", "nas", "--json"]).json();
    let copied = &region_report(&v, "nas")["report"]["copied"];
    assert_eq!(copied["data"]["objects"], 2, "{copied}");
    assert_eq!(copied.as_object().unwrap().len(), 1, "{copied}");
    assert_eq!(objects(&r.dir("nas")), primary);
}

#[test]
fn restore_fails_over_when_the_primary_is_down() {
    let r = Regions::new();
    r.backup();
    r.ferry(&["replicate"]);
    std::fs::rename(r.dir("hz"), r.env.path("hz-gone")).unwrap();
    let t = r.env.path("restored");
    let run = r.ferry(&[
        "restore",
        "--json",
        "--at",
        "2100-01-01T00:00:00Z",
        "--target",
        t.to_str().unwrap(),
    ]);
    assert_eq!(run.json()["region"], "eu", "{}", run.stderr);
    assert!(run.stderr.contains("using region eu"), "{}", run.stderr);
    assert_same_tree(&r.src, &Env::restored(&t, &r.src));
    let run = r.ferry(&["snapshots"]);
    assert!(run.stderr.contains("using region eu") && run.stdout.contains("1 snapshots"));
    let st = r.status();
    assert_eq!(st["hz"]["reachable"], false);
    assert!(st["hz"]["error"]
        .as_str()
        .unwrap()
        .contains("no repository"));
    assert_eq!(st["eu"]["reachable"], true);
    assert_eq!(st["nas"]["behind"]["objects"], 0);
}

#[test]
fn check_finds_a_damaged_pack_and_repair_replaces_it() {
    let r = Regions::new();
    r.backup();
    r.ferry(&["replicate"]);
    let pack = objects(&r.dir("nas"))
        .into_keys()
        .find(|k| k.starts_with("data/"))
        .unwrap();
    let path = r.dir("nas").join(&pack);
    let good = std::fs::read(&path).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    std::fs::write(&path, &bad).unwrap();

    let run = r.try_ferry(&["check", "--region", "nas", "--read-data"]);
    assert_ne!(run.code, 0);
    assert!(run.stdout.contains(&pack), "{}", run.stdout);
    r.ferry(&["check", "--region", "eu", "--read-data"]);

    let v = r.ferry(&["repair", "--region", "nas", "--json"]).json();
    assert_eq!(v["report"]["repaired"][0][0], pack.as_str(), "{v}");
    assert_eq!(v["report"]["repaired"][0][1], "hz");
    assert_eq!(std::fs::read(&path).unwrap(), good);
    r.ferry(&["check", "--region", "nas", "--read-data"]);

    // replicate --verify finds damage that a listing cannot see.
    let eu = r.dir("eu").join(&pack);
    std::fs::write(&eu, &bad).unwrap();
    let v = r
        .ferry(&["replicate", "--to", "eu", "--verify", "--json"])
        .json();
    let rep = &region_report(&v, "eu")["report"];
    assert_eq!(rep["damaged"][0], pack.as_str(), "{v}");
    assert!(rep["verified"].as_u64().unwrap() > 3);
    assert_eq!(std::fs::read(&eu).unwrap(), good);
}

#[test]
fn bandwidth_limit_and_timetable_are_honoured() {
    let r = Regions::new();
    r.backup();
    let total: u64 = objects(&r.dir("hz")).values().sum();
    let start = std::time::Instant::now();
    r.ferry(&[
        "replicate",
        "--to",
        "eu",
        "--limit",
        "4MiB/s",
        "--concurrency",
        "8",
    ]);
    let secs = start.elapsed().as_secs_f64();
    let floor = total as f64 / (4 << 20) as f64 - 0.15;
    assert!(
        secs >= floor,
        "{total} bytes at 4 MiB/s took only {secs:.2}s"
    );
    // A timetable that is `off` all day does not slow anything down.
    r.ferry(&[
        "replicate",
        "--to",
        "nas",
        "--schedule",
        "00:00,off 12:00,off",
    ]);
    let run = r.try_ferry(&["replicate", "--schedule", "8am,1M"]);
    assert!(
        run.code != 0 && run.stderr.contains("HH:MM"),
        "{}",
        run.stderr
    );
}

#[test]
fn watch_keeps_regions_caught_up() {
    let r = Regions::new();
    r.backup();
    let mut cmd = r.env.command();
    cmd.args(["replicate", "--watch", "--interval", "1s", "--config"])
        .arg(&r.cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let snapshots = |n: &str| {
        std::fs::read_dir(r.dir(n).join("snapshots"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let wait_for = |count: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while snapshots("eu") < count || snapshots("nas") < count {
            assert!(
                std::time::Instant::now() < deadline,
                "regions not caught up"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    wait_for(1);
    std::fs::write(r.src.join("later"), bytes(100 << 10, 7)).unwrap();
    r.backup();
    wait_for(2);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(objects(&r.dir("eu")), objects(&r.dir("hz")));
}

#[test]
fn backup_fanout_copies_to_the_regions_that_are_up() {
    let r = Regions::new();
    std::fs::write(
        r.dir("nas"),
        b"a file where the region's directory should be",
    )
    .unwrap();
    let run = r.ferry(&["backup", "--fanout", "--json", r.src.to_str().unwrap()]);
    let v = run.json();
    let fan = serde_json::json!({ "regions": v["fanout"] });
    assert_eq!(region_report(&fan, "eu")["ok"], true, "{v}");
    assert_eq!(region_report(&fan, "nas")["ok"], false, "{v}");
    assert!(
        run.stderr.contains("1 regions did not receive"),
        "{}",
        run.stderr
    );
    assert_eq!(objects(&r.dir("eu")), objects(&r.dir("hz")));
    let st = r.status();
    assert_eq!(st["eu"]["behind"]["objects"], 0);
    assert_eq!(st["nas"]["reachable"], false);
}

#[test]
fn backup_fanout_streams_new_data_to_regions_holding_the_repository() {
    let r = Regions::new();
    r.backup();
    r.ferry(&["replicate", "--to", "eu"]);
    // nas holds no repository yet: it is caught up by the round after the
    // backup instead.
    std::fs::write(r.src.join("new"), bytes(900 << 10, 9)).unwrap();
    let v = r
        .ferry(&["backup", "--fanout", "--json", r.src.to_str().unwrap()])
        .json();
    let fan = serde_json::json!({ "regions": v["fanout"] });
    let eu = region_report(&fan, "eu");
    assert_eq!(eu["ok"], true, "{v}");
    assert!(eu["streamed"]["objects"].as_u64().unwrap() >= 2, "{v}");
    assert_eq!(eu["streamed"]["dropped"], Value::Null, "{v}");
    // The packs and index went with the backup; the round sent the snapshot.
    let copied = eu["report"]["copied"].as_object().unwrap();
    assert_eq!(copied.keys().collect::<Vec<_>>(), ["snapshots"], "{v}");
    assert_eq!(copied["snapshots"]["objects"], 1, "{v}");
    let nas = region_report(&fan, "nas");
    assert_eq!(nas["ok"], true, "{v}");
    assert!(nas["report"]["copied"]["data"]["objects"].as_u64().unwrap() >= 2);
    for region in ["eu", "nas"] {
        assert_eq!(objects(&r.dir(region)), objects(&r.dir("hz")), "{region}");
        let out = r.restore_from(region);
        assert_same_tree(&r.src, &Env::restored(&out, &r.src));
    }
    let st = r.status();
    assert_eq!(st["eu"]["behind"]["objects"], 0);
    assert_eq!(st["nas"]["behind"]["objects"], 0);
}
