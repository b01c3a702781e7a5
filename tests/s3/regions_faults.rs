//! Regions dying or crawling while commands run, from the CLI, on S3
//! servers on loopback behind a proxy that can refuse, black-hole, stall or
//! slow a region mid-object: a `backup --fanout` that loses a region
//! part-way or has one too slow to keep up; a `repair --region` that loses
//! a source, or the region it repairs; a `replicate` whose destination dies
//! mid-copy; `repair` SIGKILLed at several points; backups in a loop while
//! `replicate` and `status` run again and again. Each scenario ends with
//! `check --read-data` of every region, a byte-identical restore of every
//! snapshot from every region, and the regions' objects equal.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::scenario::*;
use crate::support::proxy::Mode;

const MODES: [Mode; 3] = [Mode::Refuse, Mode::BlackHole, Mode::Stall];

/// The region of a trio a scenario loses.
const FRA: usize = 1;
const SGP: usize = 2;

/// A region in a trio, in the JSON documents: by name in `list`.
fn region<'a>(list: &'a Value, name: &str) -> &'a Value {
    named(list, "region", name)
}

/// Three regions, the second behind the proxy. In each of three backups
/// with `--fanout` it dies on its first pack (refused, black-holed,
/// stalled mid-object): the backup succeeds on the primary, the third
/// region receives everything, the dead one is reported. Back, one
/// `replicate` converges all three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_dies_mid_object_during_a_fanout_backup() {
    let t = Trio::start("f", FRA).await;
    let src = t.d().join("src");
    let mut trees = Vec::new();
    for (seed, mode) in MODES.into_iter().enumerate() {
        add_files(&src, seed, 3, 600);
        t.proxy.set_mode(Mode::Pass);
        t.proxy
            .set_mode_at(&format!("PUT {}data/", t.path(FRA)), 1, mode);
        let args = ["backup", "--fanout", "--json", src.to_str().unwrap()];
        let started = Instant::now();
        let (code, out, err) = t.run(&args);
        assert_eq!(code, 0, "{mode:?}:\n{out}\n{err}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{mode:?}: {:?}",
            started.elapsed()
        );
        assert_eq!(t.proxy.mode(), mode, "the region died during the backup");
        let v: Value = serde_json::from_str(&out).unwrap();
        let dead = region(&v["fanout"], TRIO[FRA]);
        assert_eq!(dead["ok"], false, "{mode:?}: {v}");
        assert!(dead["streamed"]["dropped"].is_string(), "{mode:?}: {v}");
        assert_eq!(dead["streamed"]["reason"], "failed", "{mode:?}: {v}");
        assert_eq!(region(&v["fanout"], TRIO[SGP])["ok"], true, "{mode:?}: {v}");
        assert!(err.contains(TRIO[FRA]), "names the region: {err}");
        trees.push(taken(&v, &src));
    }
    t.converge_and_verify(&trees);
}

/// Three regions, the third crawling (every pack it is sent takes many
/// seconds): a `backup --fanout` goes on at the pace of the others, drops
/// the slow region once an object has waited past the lag, reports it as
/// dropped for being slow, and leaves it to `replicate`, which catches it
/// up. The snapshot reaches the healthy region with the backup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_region_is_dropped_from_a_fanout_backup() {
    let t = Trio::start("w", SGP).await;
    let src = t.d().join("src");
    add_noise(&src, 0, 2, 300);
    let mut trees = vec![t.backup(&src)];
    t.json(&["replicate"]);
    add_noise(&src, 1, 8, 700);
    t.proxy
        .crawl(Some((&format!("PUT {}data/", t.path(SGP)), 16 << 10)));
    let started = Instant::now();
    let out = crate::ferry_command(
        t.d(),
        &["backup", "--fanout", "--json", src.to_str().unwrap()],
        &["--config", t.cfg.to_str().unwrap()],
    )
    .env("FERRY_FANOUT_LAG", "2")
    .output()
    .unwrap();
    let took = started.elapsed();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{o}\n{e}");
    // A bound against a hang: at its pace the slow region would need
    // minutes for these packs.
    assert!(took < Duration::from_secs(40), "{took:?}\n{e}");
    let v: Value = serde_json::from_str(&o).unwrap();
    let slow = region(&v["fanout"], TRIO[SGP]);
    assert_eq!(slow["ok"], false, "{v}");
    assert_eq!(slow["streamed"]["reason"], "slow", "{v}");
    assert!(
        slow["streamed"]["dropped"]
            .as_str()
            .unwrap()
            .contains("slow"),
        "{v}"
    );
    assert!(slow["error"].as_str().unwrap().contains("replicate"), "{v}");
    let healthy = region(&v["fanout"], TRIO[FRA]);
    assert_eq!(healthy["ok"], true, "{v}");
    assert!(healthy["streamed"]["dropped"].is_null(), "{v}");
    assert!(healthy["streamed"]["objects"].as_u64().unwrap() >= 5, "{v}");
    assert!(e.contains(TRIO[SGP]), "names the slow region: {e}");
    trees.push(taken(&v, &src));
    let listed = |name: &str| snapshot_ids(&t.json(&["snapshots", "--region", name]));
    assert!(listed(TRIO[FRA]).contains(&trees[1].0), "with the backup");
    t.proxy.crawl(None);
    assert!(
        !listed(TRIO[SGP]).contains(&trees[1].0),
        "left to replicate"
    );
    t.converge_and_verify(&trees);
}

/// Three regions, the primary behind the proxy; packs damaged in the
/// third. While `repair` fetches good copies, the primary dies on its first
/// pack (refused, black-holed, stalled mid-object): the repair goes on from
/// the second region and succeeds, naming the primary down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_region_dies_mid_object_during_repair() {
    let t = Trio::start("r", 0).await;
    let src = t.d().join("src");
    add_noise(&src, 0, 6, 400);
    let trees = vec![t.backup(&src)];
    t.json(&["replicate"]);
    for mode in MODES {
        let damaged = damage(&t.bucket(SGP), "/data/", 2).len();
        assert!(damaged >= 2);
        t.proxy.set_mode(Mode::Pass);
        t.proxy
            .set_mode_at(&format!("GET {}data/", t.path(0)), 1, mode);
        let (rep, err) = timed(
            t.d(),
            &t.cfg,
            &["repair", "--region", TRIO[SGP]],
            Duration::from_secs(30),
        );
        assert_eq!(t.proxy.mode(), mode, "the primary died during the repair");
        assert_eq!(rep["damaged"], damaged, "{mode:?}: {rep}");
        let repaired = rep["report"]["repaired"].as_array().unwrap();
        assert_eq!(repaired.len(), damaged, "{mode:?}: {rep}");
        assert!(
            repaired.iter().all(|r| r[1] == TRIO[FRA]),
            "{mode:?}: {rep}"
        );
        assert_eq!(
            region(&rep["down"], TRIO[0])["region"],
            TRIO[0],
            "{mode:?}: {rep}\n{err}"
        );
        ok(
            t.d(),
            &t.cfg,
            &["check", "--region", TRIO[SGP], "--read-data"],
        );
    }
    t.converge_and_verify(&trees);
}

/// The objects `check --read-data --json` of `name` finds fault with.
fn faulty(t: &Trio, name: &str) -> Vec<String> {
    let (_, out, err) = t.run(&["check", "--region", name, "--read-data", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}\n{err}"));
    let mut keys: Vec<String> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let o = e["object"].as_str().unwrap();
            o.split_whitespace().next().unwrap().to_string()
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Object keys of files under a region's directory.
fn keys(dir: &Path, files: &[std::path::PathBuf]) -> Vec<String> {
    let mut k: Vec<String> = files
        .iter()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect();
    k.sort();
    k
}

/// Three regions; every pack of the third damaged. While `repair` writes
/// good copies into it, that region dies (refused, black-holed) on its
/// second pack: the repair fails within seconds with one line naming the
/// region; back, the region holds nothing worse than before (only packs
/// damaged before are found faulty, one fewer), and the next repair
/// completes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_dies_while_it_is_repaired() {
    let t = Trio::start("x", SGP).await;
    let src = t.d().join("src");
    add_noise(&src, 0, 6, 400);
    let trees = vec![t.backup(&src)];
    t.json(&["replicate"]);
    for mode in [Mode::Refuse, Mode::BlackHole] {
        let damaged = keys(&t.bucket(SGP), &damage(&t.bucket(SGP), "/data/", 1));
        assert!(damaged.len() >= 3, "{damaged:?}");
        t.proxy.set_mode(Mode::Pass);
        t.proxy
            .set_mode_at(&format!("PUT {}data/", t.path(SGP)), 2, mode);
        let started = Instant::now();
        let (code, out, err) = t.run(&["repair", "--region", TRIO[SGP], "--json"]);
        let took = started.elapsed();
        assert_eq!(t.proxy.mode(), mode, "the region died during the repair");
        assert_eq!(code, 1, "{mode:?}:\n{out}\n{err}");
        assert!(took < Duration::from_secs(30), "{mode:?}: {took:?}\n{err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        let msg = v["error"].as_str().unwrap();
        assert!(!msg.contains('\n'), "one line: {msg}");
        assert!(msg.contains(TRIO[SGP]) && msg.contains("repair"), "{msg}");
        assert!(msg.contains("after 1 of"), "{msg}");
        t.proxy.set_mode(Mode::Pass);
        let left = faulty(&t, TRIO[SGP]);
        assert_eq!(left.len(), damaged.len() - 1, "{mode:?}: {left:?}");
        assert!(
            left.iter().all(|k| damaged.contains(k)),
            "{left:?} {damaged:?}"
        );
        let rep = t.json(&["repair", "--region", TRIO[SGP]]);
        assert_eq!(rep["damaged"], left.len(), "{rep}");
        assert_eq!(rep["report"]["unrepaired"].as_array().unwrap().len(), 0);
        assert!(faulty(&t, TRIO[SGP]).is_empty());
    }
    t.converge_and_verify(&trees);
}

/// Three regions; `replicate` to the third, which dies (refused,
/// black-holed) on its second pack: replicate exits 1, naming it, the
/// others complete; back, the region is a sound repository (its snapshots
/// all readable: no snapshot without its data), and the next `replicate`
/// completes it. With the default retries: the first failure without an
/// answer probes the region, and no operation retries against it once the
/// probe found it gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicate_destination_dies_mid_copy() {
    let t = Trio::start("y", SGP).await;
    let src = t.d().join("src");
    add_files(&src, 0, 2, 300);
    let mut trees = vec![t.backup(&src)];
    t.json(&["replicate"]);
    for (seed, mode) in [Mode::Refuse, Mode::BlackHole].into_iter().enumerate() {
        add_noise(&src, seed, 6, 400);
        trees.push(t.backup(&src));
        t.proxy.set_mode(Mode::Pass);
        t.proxy
            .set_mode_at(&format!("PUT {}data/", t.path(SGP)), 2, mode);
        let started = Instant::now();
        let out = crate::ferry_command(
            t.d(),
            &["replicate", "--json"],
            &["--config", t.cfg.to_str().unwrap()],
        )
        .output()
        .unwrap();
        let took = started.elapsed();
        eprintln!("{mode:?}: replicate ended in {took:?}");
        let (o, e) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(t.proxy.mode(), mode, "the region died during the copy");
        assert_eq!(out.status.code(), Some(1), "{mode:?}:\n{o}\n{e}");
        assert!(took < Duration::from_secs(40), "{mode:?}: {took:?}\n{e}");
        let last = e.trim_end().lines().last().unwrap_or_default();
        assert!(last.contains(TRIO[SGP]), "the last line names it: {e}");
        let v: Value = serde_json::from_str(&o).unwrap();
        let dead = region(&v["regions"], TRIO[SGP]);
        assert_eq!(dead["ok"], false, "{v}");
        let why = dead.to_string();
        assert!(
            why.contains("not retried") && why.contains("does not answer"),
            "{mode:?}: the probe's verdict ended the retries: {why}"
        );
        for name in &TRIO[..2] {
            assert_eq!(region(&v["regions"], name)["ok"], true, "{v}");
        }
        t.proxy.set_mode(Mode::Pass);
        let listed = snapshot_ids(&t.json(&["snapshots", "--region", TRIO[SGP]]));
        assert!(!listed.contains(&trees.last().unwrap().0), "{listed:?}");
        ok(
            t.d(),
            &t.cfg,
            &["check", "--region", TRIO[SGP], "--read-data"],
        );
        let v = t.json(&["replicate"]);
        assert!(all_ok(&v), "{v}");
        let r = region(&v["regions"], TRIO[SGP]);
        assert!(r["report"]["present"].as_u64().unwrap() > 0, "{v}");
    }
    t.converge_and_verify(&trees);
}

/// `repair` SIGKILLed at several points of a repair of many damaged packs
/// (its writes slowed so that the kills land mid-copy); the killed runs
/// leave no temporary file; a rerun repairs what is left, and nothing is
/// lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_killed_at_several_points_then_converges() {
    let p = Pair::start("p").await;
    let (d, cfg) = (p.d(), &p.cfg);
    let src = d.join("src");
    add_noise(&src, 0, 8, 400);
    let trees = vec![taken(&backup(d, cfg, &src), &src)];
    ok(d, cfg, &["replicate"]);
    let packs = damage(&p.nas(), "/data/", 1).len();
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
        assert_no_temporary_files(&p.nas());
    }
    let (code, out, err) = run(d, cfg, &["check", "--region", "nas", "--read-data"]);
    let still = code != 0;
    let rep = json(d, cfg, &["repair", "--region", "nas"]);
    assert_eq!(
        rep["report"]["unrepaired"].as_array().unwrap().len(),
        0,
        "{rep}\n{out}\n{err}"
    );
    assert_eq!(rep["damaged"] != 0, still, "{rep}");
    p.verify(&trees);
}

/// Backups in a loop while `replicate` and `status` run again and again:
/// none of them fails, every region is a valid repository after every
/// round (no snapshot without its data), and at the end every region holds
/// every snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_in_a_loop_beside_replicate_and_status() {
    let p = Pair::start("l").await;
    let (d, cfg) = (p.d().to_path_buf(), p.cfg.clone());
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
        for name in &PAIR[1..] {
            let (code, out, err) = run(&d, &cfg, &["check", "--region", name]);
            assert_eq!(code, 0, "{name} after round {rounds}:\n{out}\n{err}");
        }
        rounds += 1;
    }
    let trees = backups.join().unwrap();
    let v = json(&d, &cfg, &["replicate"]);
    assert!(all_ok(&v), "{v}");
    let st = json(&d, &cfg, &["status"]);
    for name in PAIR {
        assert_eq!(
            named(&st["regions"], "name", name)["behind"]["objects"],
            0,
            "{st}"
        );
    }
    p.verify(&trees);
}

/// Three regions, the primary refused, then black-holed: `ls`, `diff` and
/// `drill` (of one survivor, and of every region) are served by the
/// others within seconds of overhead, naming the primary down; the drill
/// of every region fails only for the primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_survivors_serve_ls_diff_and_drill() {
    let t = Trio::start("s", 0).await;
    let src = t.d().join("src");
    add_files(&src, 0, 3, 200);
    let mut trees = vec![t.backup(&src)];
    add_files(&src, 1, 2, 200);
    trees.push(t.backup(&src));
    t.json(&["replicate"]);
    let bound = Duration::from_secs(10);
    let (first, second) = (trees[0].0.as_str(), trees[1].0.as_str());
    for mode in [Mode::Refuse, Mode::BlackHole] {
        t.proxy.set_mode(mode);
        let (ls, err) = timed(t.d(), &t.cfg, &["ls", second], bound);
        assert!(
            ls["entries"].as_array().unwrap().len() >= 5,
            "{mode:?}: {ls}"
        );
        assert!(err.contains(TRIO[0]), "names the primary down: {err}");
        let (diff, _) = timed(t.d(), &t.cfg, &["diff", first, second], bound);
        let added = diff["changes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["change"] == "added")
            .count();
        assert!(added >= 2, "{mode:?}: {diff}");
        let sandbox = t.d().join(format!("sandbox-{mode:?}"));
        std::fs::create_dir_all(&sandbox).unwrap();
        let target = sandbox.to_str().unwrap();
        let args = ["drill", "--region", TRIO[FRA], "--target", target];
        let (drill, _) = timed(t.d(), &t.cfg, &args, bound);
        assert_eq!(drill["success"], true, "{mode:?}: {drill}");
        let started = Instant::now();
        let (code, out, err) = t.run(&["drill", "--all-regions", "--target", target, "--json"]);
        assert!(
            started.elapsed() < bound,
            "{mode:?}: {:?}",
            started.elapsed()
        );
        assert_eq!(code, 20, "{mode:?}:\n{out}\n{err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        for (i, name) in TRIO.iter().enumerate() {
            let r = region(&v["regions"], name);
            assert_eq!(r["verified"], i > 0, "{mode:?}: {name}: {v}");
        }
    }
    t.converge_and_verify(&trees);
}

/// Three regions, the primary dying (refused, black-holed) after a few of
/// the pack reads of a restore: the restore continues from the second
/// region without starting over, says so, and restores every byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_dies_part_way_through_a_restore() {
    let t = Trio::start("t", 0).await;
    let src = t.d().join("src");
    add_noise(&src, 0, 8, 500);
    let trees = vec![t.backup(&src)];
    t.json(&["replicate"]);
    let data = format!("GET {}data/", t.path(0));
    for mode in [Mode::Refuse, Mode::BlackHole] {
        t.proxy.set_mode(Mode::Pass);
        let before = t.proxy.log().len();
        t.proxy.set_mode_at(&data, 3, mode);
        let out = t.d().join(format!("out-{mode:?}"));
        let (r, err) = timed(
            t.d(),
            &t.cfg,
            &[
                "restore",
                trees[0].0.as_str(),
                "--target",
                out.to_str().unwrap(),
            ],
            Duration::from_secs(30),
        );
        assert_eq!(t.proxy.mode(), mode, "the primary died during the restore");
        let served = t.proxy.log()[before..]
            .iter()
            .filter(|s| s.line.starts_with(&data))
            .count();
        assert!(served >= 3, "the primary served reads first: {served}");
        assert_eq!(r["region"], TRIO[0], "{mode:?}: {r}");
        let moves = r["failovers"].as_array().unwrap();
        assert_eq!(moves.len(), 1, "{mode:?}: {r}");
        assert_eq!(moves[0]["from"], TRIO[0], "{mode:?}: {r}");
        assert_eq!(moves[0]["to"], TRIO[FRA], "{mode:?}: {r}");
        assert!(err.contains(TRIO[FRA]), "says so: {err}");
        assert!(crate::read_tree(&out) == trees[0].1, "{mode:?}");
    }
    t.converge_and_verify(&trees);
}
