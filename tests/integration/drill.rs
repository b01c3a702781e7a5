//! Disaster-recovery drills: `ferry drill` restores a snapshot from each
//! region into a sandbox, verifies it, measures RTO and RPO, records the
//! drill in the repository (so a rebuilt catalog still shows it in
//! `status`), exits non-zero naming what failed, and exports its metrics.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{bytes, text, Env, Run};

struct Setup {
    env: Env,
    cfg: PathBuf,
    src: PathBuf,
}

impl Setup {
    /// Two local regions (hz primary, eu), a source tree with files,
    /// a hard link, a symlink and odd modes, backed up and replicated.
    fn new(time: Option<&str>) -> Self {
        let mut env = Env::new();
        env.repo = env.path("hz");
        env.init_small();
        let cfg = env.path("ferry.toml");
        let (hz, eu) = (env.path("hz"), env.path("eu"));
        let toml = format!(
            "[[region]]\nname = \"hz\"\nurl = {:?}\nprimary = true\n[[region]]\nname = \"eu\"\nurl = {:?}\n",
            hz.to_str().unwrap(),
            eu.to_str().unwrap()
        );
        std::fs::write(&cfg, toml).unwrap();
        let src = env.mkdir("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("a"), bytes(700 << 10, 1)).unwrap();
        std::fs::write(src.join("sub/b.txt"), text(300 << 10, 2)).unwrap();
        std::fs::write(src.join("empty"), b"").unwrap();
        std::fs::hard_link(src.join("a"), src.join("a-link")).unwrap();
        std::os::unix::fs::symlink("sub/b.txt", src.join("to-b")).unwrap();
        set_mode(&src.join("sub/b.txt"), 0o640);
        let s = Setup { env, cfg, src };
        let mut args = vec!["backup", "--json", s.src.to_str().unwrap()];
        if let Some(t) = time {
            args.extend(["--time", t]);
        }
        s.ferry(&args);
        s.ferry(&["replicate"]);
        s
    }

    fn try_ferry(&self, args: &[&str]) -> Run {
        self.try_ferry_with(self.env.command(), args)
    }

    fn try_ferry_with(&self, c: Command, args: &[&str]) -> Run {
        let mut all = args.to_vec();
        all.extend(["--config", self.cfg.to_str().unwrap()]);
        self.env.run_with(c, &all)
    }

    fn ferry(&self, args: &[&str]) -> Run {
        let r = self.try_ferry(args);
        assert_eq!(r.code, 0, "ferry {args:?}:\n{}\n{}", r.stdout, r.stderr);
        r
    }
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn region<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["region"] == name)
        .unwrap_or_else(|| panic!("no region {name} in {v:#}"))
}

/// Runs `promtool check metrics` on a file (Debian's `prometheus`, which
/// scripts/test.sh installs).
pub fn promtool(file: &Path) -> (bool, String) {
    let text = std::fs::read(file).unwrap();
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/test.sh installs it)");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&text).unwrap();
    let out = child.wait_with_output().unwrap();
    let msg =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), msg)
}

#[test]
fn drill_of_every_region_verifies_is_recorded_and_shown_by_status() {
    let s = Setup::new(None);
    let sandboxes = s.env.mkdir("sandboxes");
    let metrics = s.env.path("drill.prom");
    let r = s.try_ferry(&[
        "drill",
        "--all-regions",
        "--target",
        sandboxes.to_str().unwrap(),
        "--rto-target",
        "15m",
        "--rpo-target",
        "1h",
        "--json",
        "--metrics-file",
        metrics.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(v["success"], true);
    for name in ["hz", "eu"] {
        let d = region(&v, name);
        assert_eq!(d["verified"], true, "{d:#}");
        assert_eq!(d["rto_met"], true);
        assert_eq!(d["rpo_met"], true);
        assert!(d["rto_seconds"].as_f64().unwrap() > 0.0);
        assert!(d["rpo_seconds"].as_f64().unwrap() >= 0.0);
        // a (and its link a-link), sub/b.txt, empty: every file's
        // content read back, the hard-linked one once.
        let total = (700 << 10) + (300 << 10);
        assert_eq!(d["files"], 4, "{d:#}");
        assert_eq!(d["bytes"], total as u64, "{d:#}");
        assert_eq!(d["verification"]["verified_bytes"], total as u64);
        assert_eq!(d["verification"]["content_files"], 3);
        assert!(d["record"].is_string());
    }
    assert_eq!(
        std::fs::read_dir(&sandboxes).unwrap().count(),
        0,
        "sandboxes removed"
    );
    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert!(prom.contains("ferry_drill_success{region=\"eu\""), "{prom}");
    assert!(
        prom.contains("ferry_drill_rto_seconds{region=\"hz\""),
        "{prom}"
    );
    let (ok, msg) = promtool(&metrics);
    assert!(ok, "promtool: {msg}\n{prom}");

    // The records live in the repository: a rebuilt catalog still knows them.
    s.ferry(&["catalog", "rebuild"]);
    // (replicate records again what each region holds, which status reads)
    s.ferry(&["replicate"]);
    let st = s.ferry(&["status", "--json", "--rpo-target", "1h"]).json();
    for name in ["hz", "eu"] {
        let d = &st["last_drills"][name];
        assert_eq!(d["success"], true, "{st:#}");
        assert_eq!(d["snapshot"], region(&v, name)["snapshot"]);
    }
}

#[test]
fn drill_over_its_targets_fails_with_its_own_code() {
    let s = Setup::new(Some("2020-01-01T00:00:00Z"));
    let r = s.try_ferry(&["drill", "--rpo-target", "1h", "--json"]);
    assert_eq!(r.code, 21, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    let d = region(&v, "hz");
    assert_eq!(d["verified"], true);
    assert_eq!(d["rpo_met"], false);
    assert!(r.stderr.contains("RPO"), "{}", r.stderr);
    // And status says the same of every region.
    let st = s.try_ferry(&["status", "--json", "--rpo-target", "1h"]);
    assert_eq!(st.code, 21, "{}\n{}", st.stdout, st.stderr);
    assert_eq!(st.json()["over_rpo_target"].as_array().unwrap().len(), 2);
    assert_eq!(st.json()["last_drills"]["hz"]["success"], false);
    // Nothing within a week: a random pick has nothing to drill.
    let r = s.try_ferry(&["drill", "--random-within", "7d", "--json"]);
    assert_eq!(r.code, 20, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("no snapshot was taken within"),
        "{}",
        r.stderr
    );
}

#[test]
fn drill_of_a_damaged_region_fails_and_names_it() {
    let s = Setup::new(None);
    // Damage every pack of eu: its restore cannot read the data back.
    for p in crate::support::files_under(&s.env.path("eu/data")) {
        let mut b = std::fs::read(&p).unwrap();
        let n = b.len() / 2;
        b[n] ^= 0xff;
        std::fs::write(&p, b).unwrap();
    }
    let r = s.try_ferry(&["drill", "--all-regions", "--json"]);
    assert_eq!(r.code, 20, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(region(&v, "hz")["success"], true);
    assert_eq!(region(&v, "eu")["verified"], false);
    assert!(r.stderr.contains("eu:"), "{}", r.stderr);
}

#[test]
fn drill_refuses_bad_flags_with_one_line() {
    let s = Setup::new(None);
    for (args, what) in [
        (vec!["drill", "--verify", "sample:0%"], "--verify"),
        (vec!["drill", "--rto-target", "15"], "--rto-target"),
        (vec!["drill", "--region", "mars"], "mars"),
        (vec!["drill", "--region", "hz", "--all-regions"], "not both"),
    ] {
        let r = s.try_ferry(&args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(what), "{args:?}: {}", r.stderr);
    }
}

#[test]
fn sampled_drill_checks_every_entry_and_some_content() {
    let s = Setup::new(None);
    let r = s.ferry(&["drill", "--verify", "sample:100%", "--json"]);
    let d = region(&r.json(), "hz").clone();
    assert_eq!(d["verify"], "sample:100%");
    assert_eq!(d["verification"]["content_files"], 3);
    // Entries: the root's path components, src, sub and six entries.
    assert!(d["verification"]["entries"].as_u64().unwrap() >= 7);
}

/// The verifier itself: a restore altered afterwards (one byte of a file,
/// a mode, a replaced hard link, a retargeted symlink) is reported entry by
/// entry; the untouched restore verifies.
#[test]
fn verification_finds_every_kind_of_difference() {
    use ferry::engine::drill::verify::{verify, VerifyMode};
    let s = Setup::new(None);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store =
            ferry::store::open_url_with(s.env.path("hz").to_str().unwrap(), &Default::default())
                .unwrap();
        let catalog = Some(s.env.path("lib-catalog"));
        let repo =
            ferry::repo::Repository::open(store, crate::support::PASSWORD.as_bytes(), catalog)
                .await
                .unwrap();
        let repo = std::sync::Arc::new(repo);
        let (_, snap) = repo.snapshots().unwrap().pop().unwrap();
        let target = s.env.mkdir("restored");
        let opts = ferry::engine::restore::RestoreOptions {
            target: target.clone(),
            ..Default::default()
        };
        let progress = std::sync::Arc::new(Default::default());
        ferry::engine::restore::restore(&repo, snap.tree, &opts, progress)
            .await
            .unwrap();
        let clean = verify(&repo, snap.tree, &target, VerifyMode::Full).await;
        assert!(clean.mismatches.is_empty(), "{:?}", clean.mismatches);

        let root = crate::support::Env::restored(&target, &s.src);
        let mut a = std::fs::read(root.join("a")).unwrap();
        a[1000] ^= 1;
        std::fs::write(root.join("a"), a).unwrap();
        set_mode(&root.join("sub/b.txt"), 0o644);
        std::fs::remove_file(root.join("to-b")).unwrap();
        std::os::unix::fs::symlink("a", root.join("to-b")).unwrap();
        std::fs::remove_file(root.join("empty")).unwrap();
        let v = verify(&repo, snap.tree, &target, VerifyMode::Full).await;
        let bad: Vec<(String, String)> = v
            .mismatches
            .iter()
            .map(|m| {
                (
                    m.path.to_string().rsplit('/').next().unwrap().to_string(),
                    m.error.clone(),
                )
            })
            .collect();
        let names: Vec<&str> = bad.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "empty", "b.txt", "to-b"], "{bad:?}");
        assert!(bad[0].1.contains("content differs"), "{bad:?}");
        assert!(bad[1].1.contains("not restored"), "{bad:?}");
        assert!(bad[2].1.contains("mode"), "{bad:?}");
        assert!(bad[3].1.contains("link target"), "{bad:?}");
    });
}
