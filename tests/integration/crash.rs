//! Crash consistency: a backup killed at any moment (SIGKILL) leaves a
//! repository that `check` passes and that the next backup completes.

use std::process::Stdio;
use std::time::Duration;

use crate::support::{assert_same_tree, bytes, Env};

#[test]
fn killed_backups_leave_a_consistent_repository() {
    let env = Env::new();
    env.init_small();
    let src = env.path("src");
    for i in 0..120 {
        let p = src.join(format!("d{}/f{i:03}", i % 6));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes(150_000 + i * 997, i as u64)).unwrap();
    }
    let repo = env.repo.to_str().unwrap().to_string();
    // Kill points spread over the run: early (walk), middle (packs and
    // indexes being written) and late (snapshot being written).
    let delays_ms = [5u64, 40, 90, 150, 230, 320, 450, 700];
    let mut killed = 0;
    for (round, delay) in delays_ms.iter().enumerate() {
        // Change some files so that each round has new data to write.
        for i in (round..120).step_by(9) {
            std::fs::write(
                src.join(format!("d{}/f{i:03}", i % 6)),
                bytes(150_000 + i * 997, (i * 31 + round) as u64),
            )
            .unwrap();
        }
        let mut child = env
            .command()
            .args(["backup", "--repo", &repo, src.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(*delay));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
        let r = env.try_run(&["check", "--read-data"]);
        assert_eq!(
            r.code, 0,
            "check after a kill at {delay} ms:\n{}\n{}",
            r.stdout, r.stderr
        );
    }
    assert!(
        killed >= 3,
        "the kills landed during backups ({killed} of {})",
        delays_ms.len()
    );
    env.backup(&[&src], &[]);
    env.run(&["check", "--read-data"]);
    let out = env.path("out");
    env.run(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_same_tree(&src, &Env::restored(&out, &src));
}
