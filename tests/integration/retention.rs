//! Retention: `forget` decides as restic's `forget` does (checked against
//! restic itself on the same snapshot times), and `prune` frees what no
//! snapshot needs in two phases, leaving a repository `check` passes.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::support::Env;

/// Snapshot times around the bucket edges: the same hour, day, ISO week
/// (Sunday/Monday), month end and year end, and sparse stretches.
const TIMES: [&str; 26] = [
    "2024-12-29T10:00:00Z",
    "2024-12-30T10:00:00Z",
    "2024-12-31T23:30:00Z",
    "2025-01-01T00:30:00Z",
    "2025-01-05T12:00:00Z",
    "2025-01-06T12:00:00Z",
    "2025-02-28T08:00:00Z",
    "2025-03-01T08:00:00Z",
    "2025-03-31T09:00:00Z",
    "2025-06-15T09:00:00Z",
    "2025-10-31T10:00:00Z",
    "2025-11-01T10:00:00Z",
    "2025-11-20T10:00:00Z",
    "2025-11-23T10:00:00Z",
    "2025-11-24T10:00:00Z",
    "2025-11-24T10:20:00Z",
    "2025-11-24T11:05:00Z",
    "2025-11-25T00:00:00Z",
    "2025-11-26T06:00:00Z",
    "2025-11-26T06:59:59Z",
    "2025-11-26T07:00:00Z",
    "2025-11-27T13:00:00Z",
    "2025-11-28T13:00:00Z",
    "2025-11-29T13:00:00Z",
    "2025-11-30T13:00:00Z",
    "2025-11-30T14:00:00Z",
];

const POLICIES: [&[&str]; 9] = [
    &["--keep-last", "3"],
    &["--keep-hourly", "5"],
    &["--keep-daily", "4"],
    &["--keep-weekly", "3"],
    &["--keep-monthly", "4", "--keep-yearly", "10"],
    &["--keep-daily", "30"],
    &[
        "--keep-last",
        "2",
        "--keep-daily",
        "3",
        "--keep-weekly",
        "2",
        "--keep-monthly",
        "3",
    ],
    &["--keep-within", "3d"],
    &[
        "--keep-within-daily",
        "7d",
        "--keep-within-weekly",
        "1m",
        "--keep-within-monthly",
        "1y",
    ],
];

fn restic(dir: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new("restic")
        .args(args)
        .env("RESTIC_REPOSITORY", dir.join("restic-repo"))
        .env("RESTIC_PASSWORD", "pw")
        .env("RESTIC_CACHE_DIR", dir.join("restic-cache"))
        .env("TZ", "UTC")
        .output()
        .expect(
            "restic is needed by this test (Debian package restic; scripts/test.sh installs it)",
        );
    assert!(
        out.status.success(),
        "restic {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The kept times of a `forget --json` report (ferry's or restic's: both
/// have groups with a `keep` list of snapshots with a `time`).
fn kept_times(groups: &serde_json::Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for g in groups.as_array().expect("groups") {
        for s in g["keep"].as_array().into_iter().flatten() {
            let t = chrono::DateTime::parse_from_rfc3339(s["time"].as_str().unwrap()).unwrap();
            out.insert(t.with_timezone(&chrono::Utc).to_rfc3339());
        }
    }
    out
}

#[test]
fn forget_keeps_what_restic_keeps() {
    let env = Env::new();
    env.init_small();
    let src = env.mkdir("src");
    std::fs::write(src.join("f"), "data").unwrap();
    restic(env.dir.path(), &["init"]);
    for t in TIMES {
        env.backup(&[&src], &["--time", t]);
        let restic_time = t.replace('T', " ").replace('Z', "");
        let src = src.to_str().unwrap();
        restic(
            env.dir.path(),
            &["backup", "--host", "test-host", "--time", &restic_time, src],
        );
    }
    let version = String::from_utf8(restic(env.dir.path(), &["version"]).stdout).unwrap();
    let old_restic = ["restic 0.14.", "restic 0.13.", "restic 0.12."]
        .iter()
        .any(|v| version.starts_with(v));
    let oldest = chrono::DateTime::parse_from_rfc3339(TIMES[0])
        .unwrap()
        .to_rfc3339();
    for policy in POLICIES {
        let mut args = vec!["forget", "--dry-run", "--json"];
        args.extend_from_slice(policy);
        let theirs: serde_json::Value =
            serde_json::from_slice(&restic(env.dir.path(), &args).stdout).unwrap();
        let ours = env.run(&args).json();
        assert_eq!(ours["dry_run"], true);
        let (ours, theirs) = (kept_times(&ours["groups"]), kept_times(&theirs));
        assert!(
            theirs.is_subset(&ours),
            "policy {policy:?}: {ours:?} {theirs:?}"
        );
        // restic before 0.15 does not yet keep the oldest snapshot when a
        // rule has counts left over; ferry does, as restic does since.
        let extra: Vec<&String> = ours.difference(&theirs).collect();
        match old_restic {
            false => assert!(extra.is_empty(), "policy {policy:?}: {extra:?}"),
            true => assert!(
                extra.is_empty() || extra == [&oldest],
                "policy {policy:?}: {extra:?}"
            ),
        }
    }
    // Nothing was removed by the dry runs.
    let all = env.run(&["snapshots", "--json"]).json();
    assert_eq!(all.as_array().unwrap().len(), TIMES.len());
}

#[test]
fn forget_removes_by_policy_per_group_and_by_name() {
    let env = Env::new();
    env.init_small();
    let (a, b) = (env.mkdir("pvc-a"), env.mkdir("pvc-b"));
    std::fs::write(a.join("f"), "a").unwrap();
    std::fs::write(b.join("f"), "b").unwrap();
    let mut ids_a = Vec::new();
    for t in [
        "2025-01-01T00:00:00Z",
        "2025-01-02T00:00:00Z",
        "2025-01-03T00:00:00Z",
    ] {
        ids_a.push(env.backup(&[&a], &["--time", t]));
        env.backup(&[&b], &["--time", t]);
    }
    let future = env.backup(&[&a], &["--time", "2099-01-01T00:00:00Z", "--tag", "x"]);
    let r = env.run(&["forget", "--json", "--keep-last", "1"]).json();
    assert_eq!(
        r["groups"].as_array().unwrap().len(),
        2,
        "grouped by host and paths"
    );
    // Group a: the future one (not counted) and the newest past one; group b: one.
    assert_eq!(r["kept"], 3);
    assert_eq!(r["removed"], 4);
    let left: BTreeSet<String> = env
        .run(&["snapshots", "--json"])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left.len(), 3);
    assert!(left.contains(&future) && left.contains(&ids_a[2]));
    // By name (a prefix is enough).
    let r = env.run(&["forget", "--json", &ids_a[2][..12]]).json();
    assert_eq!(r["removed"], 1);
    assert_eq!(
        env.run(&["snapshots", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let r = env.try_run(&["forget", "--json", &ids_a[0][..12]]);
    assert_ne!(r.code, 0, "an id that is gone is an error");
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("no snapshot with id"));
}

#[test]
fn forget_refuses_an_empty_policy_and_bad_durations() {
    let env = Env::new();
    env.init_small();
    let src = env.mkdir("src");
    std::fs::write(src.join("f"), "x").unwrap();
    env.backup(&[&src], &[]);
    let r = env.try_run(&["forget", "--json"]);
    assert_ne!(r.code, 0);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("no policy given"));
    let r = env.try_run(&["forget", "--keep-within", "3w"]);
    assert!(
        r.code != 0 && r.stderr.contains("--keep-within"),
        "{}",
        r.stderr
    );
    let r = env.try_run(&["forget", "--keep-last", "1", "--group-by", "user"]);
    assert!(
        r.code != 0 && r.stderr.contains("--group-by"),
        "{}",
        r.stderr
    );
    assert_eq!(
        env.run(&["snapshots", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// Every pack's key in the repository directory.
fn packs(env: &Env) -> BTreeSet<String> {
    crate::support::files_under(&env.repo.join("data"))
        .into_iter()
        .map(|p| p.display().to_string())
        .collect()
}

/// A repository of two snapshots of `src`: the first holds a file of 3 MiB
/// that the second no longer has (and a new one of 2 MiB); their ids.
fn old_and_new(env: &Env, seed: u64) -> (std::path::PathBuf, String, String) {
    env.init_small();
    let src = env.mkdir("src");
    std::fs::write(src.join("old"), crate::support::bytes(3 << 20, seed)).unwrap();
    let first = env.backup(&[&src], &["--time", "2025-01-01T00:00:00Z"]);
    std::fs::remove_file(src.join("old")).unwrap();
    std::fs::write(src.join("new"), crate::support::bytes(2 << 20, seed + 1)).unwrap();
    let second = env.backup(&[&src], &["--time", "2025-01-02T00:00:00Z"]);
    (src, first, second)
}

#[test]
fn prune_plans_then_deletes_and_the_rest_restores() {
    let env = Env::new();
    let (src, first, _) = old_and_new(&env, 1);
    let before = packs(&env);
    env.run(&["forget", first.as_str()]);

    let dry = env
        .run(&["prune", "--json", "--dry-run", "--keep-delete", "0s"])
        .json();
    assert!(dry["planned"]["packs"].as_u64().unwrap() > 0, "{dry}");
    assert!(env
        .path("repo/plans")
        .read_dir()
        .map_or(true, |mut d| d.next().is_none()));

    let one = env.run(&["prune", "--json", "--keep-delete", "1s"]).json();
    assert_eq!(
        one["deleted"]["packs"], 0,
        "the first prune only plans: {one}"
    );
    let planned = one["planned"]["packs"].as_u64().unwrap();
    assert!(planned > 0);
    assert_eq!(packs(&env), before, "nothing deleted yet");
    env.run(&["check"]);

    std::thread::sleep(std::time::Duration::from_millis(1100));
    let two = env.run(&["prune", "--json", "--keep-delete", "1s"]).json();
    assert_eq!(two["deleted"]["packs"].as_u64().unwrap(), planned, "{two}");
    assert_eq!(two["taken_back"]["packs"], 0);
    assert_eq!(packs(&env).len(), before.len() - planned as usize);
    env.run(&["check", "--read-data"]);
    let out = env.path("out");
    env.run(&["restore", "latest", "--target", out.to_str().unwrap()]);
    let restored = Env::restored(&out, &src);
    assert_eq!(
        crate::support::digest(&restored),
        crate::support::digest(&src)
    );

    // A third prune finds nothing more to do.
    let three = env.run(&["prune", "--json", "--keep-delete", "0s"]).json();
    assert_eq!(three["planned"]["packs"], 0, "{three}");
    assert_eq!(three["deleted"]["packs"], 0);
}

/// `--keep-delete 0s` opts out of the delay (restic's `forget --prune`,
/// Kopia's `--safety=none`): the plan is carried out in the same run.
#[test]
fn forget_prune_with_keep_delete_0s_frees_the_space_in_one_run() {
    let env = Env::new();
    let (src, _, kept) = old_and_new(&env, 4);
    let before = packs(&env);
    let r = env
        .run(&[
            "forget",
            "--keep-last",
            "1",
            "--prune",
            "--keep-delete",
            "0s",
            "--json",
        ])
        .json();
    assert_eq!(r["removed"], 1, "{r}");
    let p = &r["prune"];
    let planned = p["planned"]["packs"].as_u64().unwrap();
    assert!(planned > 0, "{r}");
    assert_eq!(p["deleted"]["packs"].as_u64().unwrap(), planned, "{r}");
    assert_eq!(p["plans_done"], 1, "{r}");
    assert!(p["next_deletion"].is_null(), "nothing left waiting: {r}");
    assert_eq!(packs(&env).len(), before.len() - planned as usize);
    assert!(env
        .path("repo/plans")
        .read_dir()
        .map_or(true, |mut d| d.next().is_none()));
    let c = env.try_run(&["check", "--read-data", "--json"]);
    assert_eq!(c.code, 0, "{}", c.stdout);
    let out = env.path("out");
    env.run(&["restore", kept.as_str(), "--target", out.to_str().unwrap()]);
    assert_eq!(
        crate::support::digest(&Env::restored(&out, &src)),
        crate::support::digest(&src)
    );
    // The next prune finds nothing to do.
    let again = env.run(&["prune", "--json", "--keep-delete", "0s"]).json();
    assert_eq!(again["planned"]["packs"], 0, "{again}");
    assert_eq!(again["deleted"]["packs"], 0, "{again}");
}

/// A prune on a machine that has no catalog of the repository (a new pod,
/// an emptied cache) builds its own from the repository's objects, and
/// plans and deletes what a prune with the shared catalog would.
#[test]
fn a_prune_with_no_catalog_to_start_from_frees_the_same_space() {
    let env = Env::new();
    let (src, first, kept) = old_and_new(&env, 6);
    env.run(&["forget", first.as_str()]);
    let dry = env
        .run(&["prune", "--json", "--dry-run", "--keep-delete", "0s"])
        .json();
    let planned = dry["planned"]["packs"].as_u64().unwrap();
    assert!(planned > 0, "{dry}");
    let before = packs(&env);
    let repo = env.repo.to_str().unwrap().to_string();
    let fresh = |cache: &str| {
        let mut c = env.command();
        c.env("XDG_CACHE_HOME", env.mkdir(cache));
        c
    };
    let args = ["prune", "--repo", &repo, "--keep-delete", "0s", "--json"];
    let r = env.run_with(fresh("cache-new-pod"), &args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let p = r.json();
    assert_eq!(p["planned"], dry["planned"], "{p}");
    assert_eq!(p["deleted"]["packs"].as_u64().unwrap(), planned, "{p}");
    assert_eq!(packs(&env).len(), before.len() - planned as usize);
    let c = env.run_with(
        fresh("cache-checker"),
        &["check", "--repo", &repo, "--read-data", "--json"],
    );
    assert_eq!(c.code, 0, "{}", c.stdout);
    // The shared catalog, behind the repository now, catches up.
    let out = env.path("out");
    env.run(&["restore", kept.as_str(), "--target", out.to_str().unwrap()]);
    assert_eq!(
        crate::support::digest(&Env::restored(&out, &src)),
        crate::support::digest(&src)
    );
}

#[test]
fn prune_waits_for_keep_delete() {
    let env = Env::new();
    env.init_small();
    let src = env.mkdir("src");
    std::fs::write(src.join("f"), crate::support::bytes(1 << 20, 3)).unwrap();
    let id = env.backup(&[&src], &[]);
    env.run(&["forget", id.as_str()]);
    let one = env.run(&["prune", "--json"]).json();
    assert!(one["planned"]["packs"].as_u64().unwrap() > 0);
    assert!(one["next_deletion"].is_string());
    let two = env.run(&["prune", "--json"]).json();
    assert_eq!(two["deleted"]["packs"], 0, "planned under 24h ago: {two}");
    assert_eq!(two["waiting"], one["planned"]);
    let r = env.try_run(&["prune", "--max-unused", "120%"]);
    assert!(
        r.code != 0 && r.stderr.contains("--max-unused"),
        "{}",
        r.stderr
    );
}

#[test]
fn the_cronjob_retention_command_line_runs() {
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/k8s-cronjob.yaml"
    ))
    .unwrap();
    let line = yaml
        .lines()
        .find_map(|l| l.split_once("ferry forget ").map(|(_, rest)| rest))
        // The metrics flag the job adds is another test's business.
        .map(|rest| rest.split(" --metrics-file").next().unwrap())
        .expect("the CronJob has a `ferry forget` step");
    let env = Env::new();
    env.init_small();
    let src = env.mkdir("src");
    // The newest of each day stays, and the oldest (counts are left over):
    // only the middle one of the first day goes.
    let times = [
        "2025-01-01T00:00:00Z",
        "2025-01-01T01:00:00Z",
        "2025-01-01T02:00:00Z",
        "2025-01-02T00:00:00Z",
    ];
    for (i, t) in times.iter().enumerate() {
        std::fs::write(src.join("f"), crate::support::bytes(64 << 10, i as u64)).unwrap();
        env.backup(&[&src], &["--time", t]);
    }
    let repo = env.repo.to_str().unwrap().to_string();
    let mut args = vec!["forget".to_string()];
    args.extend(
        line.trim_end_matches('\\')
            .split_whitespace()
            .map(|w| w.replace("\"$FERRY_REPO\"", &repo)),
    );
    args.push("--json".into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    // The job names its repository through the environment (FERRY_CONFIG
    // or FERRY_REPO), as the manifest's env does.
    let mut c = env.command();
    c.env("FERRY_REPO", &repo);
    let r = env.run_with(c, &refs);
    assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    let j = r.json();
    assert_eq!(j["removed"], 1, "{j}");
    assert!(j["prune"]["planned"]["packs"].as_u64().unwrap() > 0, "{j}");
    env.run(&["check"]);
}
