//! Metrics: every command's `--metrics-file` passes `promtool check
//! metrics`, and `--metrics-push` reaches a real Pushgateway (Debian's
//! prometheus-pushgateway, started here on loopback) grouped by job =
//! command, repository and region, without an instance label of ours.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{bytes, Env};

struct Gateway {
    child: Child,
    addr: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out.split_once("\r\n\r\n")?.1.to_string())
}

impl Gateway {
    fn start() -> Self {
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new("prometheus-pushgateway")
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-pushgateway (Debian package; scripts/test.sh installs it)");
        let g = Gateway { child, addr };
        let until = Instant::now() + Duration::from_secs(20);
        while http_get(&g.addr, "/-/ready").is_none() {
            assert!(Instant::now() < until, "the Pushgateway did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        g
    }

    fn metrics(&self) -> String {
        http_get(&self.addr, "/metrics").unwrap()
    }
}

/// The sample lines of `name` in an exposition.
fn samples<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .collect()
}

fn setup() -> (Env, std::path::PathBuf, std::path::PathBuf) {
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
    std::fs::write(src.join("a"), bytes(300 << 10, 7)).unwrap();
    (env, cfg, src)
}

#[test]
fn every_command_writes_metrics_that_promtool_accepts() {
    let (env, cfg, src) = setup();
    let c = cfg.to_str().unwrap();
    let file = |n: &str| env.path(&format!("{n}.prom"));
    let run = |args: &[&str], name: &str| {
        let f = file(name);
        let mut all = args.to_vec();
        all.extend(["--config", c, "--metrics-file", f.to_str().unwrap()]);
        let r = env.run_with(env.command(), &all);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        let (ok, msg) = crate::drill::promtool(&f);
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(ok, "{name}: promtool: {msg}\n{text}");
        text
    };
    let b = run(&["backup", src.to_str().unwrap()], "backup");
    for m in [
        "ferry_backup_duration_seconds",
        "ferry_backup_files_total",
        "ferry_backup_files_new",
        "ferry_backup_bytes_total",
        "ferry_backup_bytes_new",
        "ferry_backup_stored_bytes",
        "ferry_backup_last_success_timestamp_seconds",
        "ferry_backup_skipped_entries",
    ] {
        assert_eq!(samples(&b, m).len(), 1, "{m}:\n{b}");
    }
    assert!(
        samples(&b, "ferry_backup_files_total")[0].ends_with(" 1"),
        "{b}"
    );
    let r = run(&["replicate"], "replicate");
    // A converging replicate reports every region it brought in step: eu
    // received the backup, hz (the primary) had nothing to receive.
    let copied = samples(&r, "ferry_replicate_objects_total");
    let eu: Vec<_> = copied
        .iter()
        .filter(|s| s.contains("region=\"eu\""))
        .collect();
    assert_eq!(eu.len(), 1, "{r}");
    assert!(!eu[0].ends_with(" 0"), "objects were copied: {r}");
    let hz: Vec<_> = copied
        .iter()
        .filter(|s| s.contains("region=\"hz\""))
        .collect();
    assert!(hz.iter().all(|s| s.ends_with(" 0")), "{r}");
    assert_eq!(
        samples(&r, "ferry_replicate_bytes_total").len(),
        copied.len(),
        "{r}"
    );
    let s = run(&["status"], "status");
    for m in [
        "ferry_region_up",
        "ferry_region_rpo_seconds",
        "ferry_region_behind_objects",
        "ferry_region_behind_bytes",
    ] {
        assert_eq!(samples(&s, m).len(), 2, "{m}: one per region:\n{s}");
    }
    assert_eq!(samples(&s, "ferry_repository_snapshots").len(), 1, "{s}");
    assert!(
        samples(&s, "ferry_repository_snapshots")[0].ends_with(" 1"),
        "{s}"
    );
    // A command without metrics of its own still reports its outcome.
    let l = run(&["snapshots"], "snapshots");
    let ok = samples(&l, "ferry_command_success");
    assert!(
        ok[0].contains("command=\"snapshots\"") && ok[0].ends_with(" 1"),
        "{l}"
    );
}

#[test]
fn metrics_are_pushed_to_a_pushgateway_per_command_repository_and_region() {
    let (env, cfg, src) = setup();
    let gw = Gateway::start();
    let url = format!("http://{}", gw.addr);
    let c = cfg.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--config", c, "--metrics-push", &url]);
        let r = env.run_with(env.command(), &all);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    };
    run(&["backup", src.to_str().unwrap()]);
    run(&["replicate"]);
    run(&["status"]);
    let text = gw.metrics();
    let id = std::fs::read_dir(env.path("cache/ferry"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .to_string_lossy()
        .into_owned();
    let b = samples(&text, "ferry_backup_files_total");
    assert_eq!(b.len(), 1, "{text}");
    for want in [
        "job=\"backup\"".to_string(),
        "region=\"hz\"".into(),
        format!("repository=\"{id}\""),
        "instance=\"\"".into(),
    ] {
        assert!(b[0].contains(&want), "{want} in {}", b[0]);
    }
    let up = samples(&text, "ferry_region_up");
    assert_eq!(up.len(), 2, "one group per region: {text}");
    assert!(up
        .iter()
        .any(|l| l.contains("job=\"status\"") && l.contains("region=\"eu\"")));
    let rep = samples(&text, "ferry_replicate_bytes_total");
    assert!(
        rep[0].contains("job=\"replicate\"") && rep[0].contains("region=\"eu\""),
        "{text}"
    );

    // A Pushgateway that is not there fails the run and says so.
    let r = env.run_with(
        env.command(),
        &[
            "snapshots",
            "--config",
            c,
            "--metrics-push",
            "http://127.0.0.1:1",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("metrics"), "{}", r.stderr);
}

/// The value of the one sample of `name` whose labels include `label`.
fn value(text: &str, name: &str, label: &str) -> f64 {
    let found: Vec<&str> = samples(text, name)
        .into_iter()
        .filter(|l| l.contains(label))
        .collect();
    assert_eq!(found.len(), 1, "{name} with {label}:\n{text}");
    found[0].rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn forget_and_prune_report_retention_metrics_to_files_and_the_pushgateway() {
    let (env, cfg, src) = setup();
    let gw = Gateway::start();
    let url = format!("http://{}", gw.addr);
    let c = cfg.to_str().unwrap();
    let run = |args: &[&str], name: &str| {
        let f = env.path(&format!("{name}.prom"));
        let mut all = args.to_vec();
        all.extend(["--config", c, "--metrics-file", f.to_str().unwrap()]);
        all.extend(["--metrics-push", &url]);
        let r = env.run_with(env.command(), &all);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        let (ok, msg) = crate::drill::promtool(&f);
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(ok, "{name}: promtool: {msg}\n{text}");
        text
    };
    let s = src.to_str().unwrap();
    let plain = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--config", c]);
        let r = env.run_with(env.command(), &all);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    };
    plain(&["backup", s, "--time", "2026-11-20T10:00:00Z"]);
    std::fs::write(src.join("a"), bytes(400 << 10, 8)).unwrap();
    plain(&["backup", s, "--time", "2026-11-21T10:00:00Z"]);
    plain(&["replicate"]);

    let f = run(&["forget", "--keep-last", "1"], "forget");
    assert_eq!(
        value(&f, "ferry_forget_snapshots_kept", "region=\"hz\""),
        1.0,
        "{f}"
    );
    assert_eq!(
        value(&f, "ferry_forget_snapshots_removed", "region=\"hz\""),
        1.0
    );
    // The removal carried to eu.
    assert_eq!(
        value(&f, "ferry_forget_snapshots_removed", "region=\"eu\""),
        1.0
    );
    assert_eq!(
        value(&f, "ferry_forget_region_success", "region=\"eu\""),
        1.0
    );
    assert_eq!(value(&f, "ferry_forget_dry_run", "region=\"hz\""), 0.0);
    assert_eq!(
        samples(&f, "ferry_forget_last_success_timestamp_seconds").len(),
        1
    );
    assert_eq!(samples(&f, "ferry_forget_duration_seconds").len(), 1);

    // The first prune plans what the forgotten snapshot alone held, in each
    // region; the second deletes it.
    let p = run(&["prune", "--keep-delete", "1s"], "prune");
    for region in ["region=\"hz\"", "region=\"eu\""] {
        assert_eq!(value(&p, "ferry_prune_success", region), 1.0, "{p}");
        assert!(value(&p, "ferry_prune_packs_planned", region) >= 1.0, "{p}");
        assert!(value(&p, "ferry_prune_bytes_planned", region) > 0.0, "{p}");
        assert_eq!(value(&p, "ferry_prune_packs_deleted", region), 0.0, "{p}");
        assert_eq!(value(&p, "ferry_prune_snapshots", region), 1.0, "{p}");
        assert_eq!(samples(&p, "ferry_prune_duration_seconds").len(), 2);
    }
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let p2 = run(&["prune", "--keep-delete", "1s"], "prune-again");
    for region in ["region=\"hz\"", "region=\"eu\""] {
        assert!(
            value(&p2, "ferry_prune_packs_deleted", region) >= 1.0,
            "{p2}"
        );
        assert!(
            value(&p2, "ferry_prune_bytes_deleted", region) > 0.0,
            "{p2}"
        );
        assert!(
            value(&p2, "ferry_prune_last_success_timestamp_seconds", region) > 1.7e9,
            "{p2}"
        );
    }

    // In the Pushgateway: one group per command and region.
    let text = gw.metrics();
    let forgot = samples(&text, "ferry_forget_snapshots_removed");
    assert_eq!(forgot.len(), 2, "{text}");
    assert!(
        forgot.iter().all(|l| l.contains("job=\"forget\"")),
        "{text}"
    );
    let deleted = samples(&text, "ferry_prune_packs_deleted");
    assert_eq!(deleted.len(), 2, "{text}");
    assert!(
        deleted.iter().any(|l| l.contains("job=\"prune\"")
            && l.contains("region=\"eu\"")
            && !l.ends_with(" 0")),
        "the second prune's push replaced the first's: {text}"
    );
}
