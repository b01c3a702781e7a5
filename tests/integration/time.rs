//! Point-in-time selection: `restore --at` picks the newest snapshot taken at
//! or before the time, of the same source.

use crate::support::Env;

#[test]
fn restore_at_picks_the_state_at_that_time() {
    let env = Env::new();
    env.init_small();
    let src = env.mkdir("src");
    let times = [
        "2026-11-24T08:00:00Z",
        "2026-11-25T09:00:00Z",
        "2026-11-25T11:00:00Z",
    ];
    for (i, t) in times.iter().enumerate() {
        std::fs::write(src.join("state"), format!("version {i}")).unwrap();
        env.backup(&[&src], &["--time", t]);
    }
    let restore_at = |at: &str, dir: &str| {
        let out = env.path(dir);
        env.run(&["restore", "--at", at, "--target", out.to_str().unwrap()]);
        std::fs::read_to_string(Env::restored(&out, &src).join("state")).unwrap()
    };
    assert_eq!(restore_at("2026-11-25T10:00:00Z", "a"), "version 1");
    assert_eq!(
        restore_at("2026-11-25T11:00:00Z", "b"),
        "version 2",
        "a snapshot exactly at the time counts"
    );
    assert_eq!(restore_at("2026-11-24T23:59:59+00:00", "c"), "version 0");
    let r = env.try_run(&[
        "restore",
        "--at",
        "2026-11-01T00:00:00Z",
        "--target",
        env.path("d").to_str().unwrap(),
    ]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("no snapshot was taken at or before"),
        "{}",
        r.stderr
    );
    let r = env.try_run(&[
        "restore",
        "--at",
        "yesterday-ish",
        "--target",
        env.path("e").to_str().unwrap(),
    ]);
    assert!(r.code != 0 && r.stderr.contains("RFC 3339"), "{}", r.stderr);
}

#[test]
fn restore_at_with_several_sources_needs_a_path() {
    let env = Env::new();
    env.init_small();
    let (a, b) = (env.path("pvc-a"), env.path("pvc-b"));
    for (d, content) in [(&a, "a"), (&b, "b")] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("f"), content).unwrap();
    }
    env.backup(&[&a], &["--time", "2026-11-25T09:00:00Z"]);
    env.backup(&[&b], &["--time", "2026-11-25T09:30:00Z"]);
    let out = env.path("out");
    let r = env.try_run(&[
        "restore",
        "--at",
        "2026-11-25T10:00:00Z",
        "--target",
        out.to_str().unwrap(),
    ]);
    assert!(
        r.code != 0 && r.stderr.contains("--path"),
        "ambiguous source is refused: {}",
        r.stderr
    );
    env.run(&[
        "restore",
        "--at",
        "2026-11-25T10:00:00Z",
        "--path",
        a.to_str().unwrap(),
        "--target",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(Env::restored(&out, &a).join("f")).unwrap(),
        "a"
    );
    assert!(!Env::restored(&out, &b).exists());
}
