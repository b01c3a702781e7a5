//! `prune` and `forget` killed with SIGKILL at many points leave a
//! repository that `check` passes and that the next prune completes; and
//! backups running in a loop while prunes run lose nothing.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::Env;

/// Starts ferry with `args` (after `--repo`) and SIGKILLs it after `after`.
/// `Ok(())` when it was still running then, else `Err(how long it ran)`.
fn kill_after(env: &Env, args: &[&str], after: Duration) -> Result<(), Duration> {
    let repo = env.repo.to_str().unwrap();
    let mut c = env.command();
    c.arg(args[0]).args(["--repo", repo]).args(&args[1..]);
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while start.elapsed() < after {
        if child.try_wait().unwrap().is_some() {
            return Err(start.elapsed());
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let _ = child.kill();
    child.wait().unwrap();
    Ok(())
}

#[test]
fn prune_and_forget_killed_at_many_points_leave_a_sound_repository() {
    let env = Env::new();
    env.init_small();
    let src = env.mkdir("src");
    let mut killed = 0;
    let mut expected = BTreeMap::new();
    // The kill points are fractions of how long an uninterrupted run took
    // last, so they fall inside the run on a fast machine as on a slow one;
    // after each kill the estimate grows, so later kills land deeper.
    let mut full = Duration::from_millis(40);
    for round in 0..16u64 {
        for f in 0..4u64 {
            let data = crate::support::bytes(300 << 10, round * 10 + f);
            std::fs::write(src.join(format!("f{f}")), data).unwrap();
        }
        let id = env.backup(&[&src], &[]);
        expected.insert(id, crate::support::digest(&src));
        let delay = full.mul_f64([0.2, 0.4, 0.6, 0.8, 0.95][round as usize % 5]);
        let args: &[&str] = match round % 3 {
            0 => &[
                "forget",
                "--keep-last",
                "2",
                "--prune",
                "--keep-delete",
                "0s",
                "--max-unused",
                "0%",
            ],
            _ => &["prune", "--keep-delete", "0s", "--max-unused", "0%"],
        };
        match kill_after(&env, args, delay) {
            Ok(()) => {
                killed += 1;
                full = full.mul_f64(1.3);
            }
            Err(ran) => full = ran,
        }
        let r = env.try_run(&["check", "--json"]);
        assert_eq!(r.code, 0, "round {round}: check after a kill: {}", r.stdout);
    }
    eprintln!("killed {killed} of 16, last full run {full:?}");
    assert!(
        killed >= 3,
        "only {killed} runs were killed before they finished"
    );
    env.run(&["forget", "--keep-last", "2"]);
    for _ in 0..2 {
        env.run(&["prune", "--keep-delete", "0s", "--max-unused", "0%"]);
    }
    env.run(&["check", "--read-data"]);
    let snaps = env.run(&["snapshots", "--json"]).json();
    let snaps = snaps.as_array().unwrap();
    assert_eq!(snaps.len(), 2);
    for s in snaps {
        let id = s["id"].as_str().unwrap();
        let out = env.path(&format!("out-{id}"));
        env.run(&["restore", id, "--target", out.to_str().unwrap()]);
        let got = crate::support::digest(&Env::restored(&out, &src));
        assert_eq!(Some(&got), expected.get(id), "snapshot {id}");
    }
}

#[test]
fn backups_running_while_prunes_run_lose_nothing() {
    let env = Arc::new(Env::new());
    env.init_small();
    let stop = Arc::new(AtomicBool::new(false));
    let backups = {
        let (env, stop) = (env.clone(), stop.clone());
        std::thread::spawn(move || {
            let src = env.mkdir("src");
            let catalog = env.path("backup-host/catalog.db");
            let mut made = BTreeMap::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Half the data carries over from the previous round.
                std::fs::write(
                    src.join(format!("f{}", i % 2)),
                    crate::support::bytes(400 << 10, i),
                )
                .unwrap();
                // Another host: a catalog of its own.
                let id = env.backup(&[&src], &["--catalog", catalog.to_str().unwrap()]);
                made.insert(id, crate::support::digest(&src));
                i += 1;
            }
            (src, made)
        })
    };
    let start = Instant::now();
    let mut prunes = 0;
    while start.elapsed() < Duration::from_secs(25) {
        env.run(&[
            "forget",
            "--keep-last",
            "3",
            "--prune",
            "--keep-delete",
            "8s",
            "--max-unused",
            "0%",
        ]);
        prunes += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let (src, made) = backups.join().unwrap();
    assert!(
        made.len() >= 5 && prunes >= 5,
        "{} backups, {prunes} prunes",
        made.len()
    );
    env.run(&["check", "--read-data"]);
    let snaps = env.run(&["snapshots", "--json"]).json();
    let snaps = snaps.as_array().unwrap();
    assert!(!snaps.is_empty());
    for s in snaps {
        let id = s["id"].as_str().unwrap();
        let out = env.path(&format!("out-{id}"));
        env.run(&["restore", id, "--target", out.to_str().unwrap()]);
        let got = crate::support::digest(&Env::restored(&out, &src));
        assert_eq!(Some(&got), made.get(id), "snapshot {id}");
    }
}
