//! Bad input gets one clear message each and a non-zero exit: wrong
//! password, missing repository, newer format, unreadable sources, a full
//! disk; and key management.

use std::os::unix::fs::PermissionsExt;

use crate::support::{is_root, Env};

#[test]
fn wrong_password_is_a_clear_error() {
    let env = Env::new();
    env.init_small();
    let mut c = env.command();
    c.env("FERRY_PASSWORD", "not it");
    let r = env.run_with(c, &["snapshots", "--repo", env.repo.to_str().unwrap()]);
    assert_eq!(r.code, 12, "{}", r.stderr);
    assert!(r.stderr.contains("wrong password"), "{}", r.stderr);
}

#[test]
fn missing_repository_and_newer_format() {
    let env = Env::new();
    let r = env.try_run(&["snapshots"]);
    assert_eq!(r.code, 10, "{}", r.stderr);
    assert!(
        r.stderr.contains("no repository at") && r.stderr.contains("ferry init"),
        "{}",
        r.stderr
    );
    env.init_small();
    let r = env.try_run(&["init"]);
    assert!(
        r.code != 0 && r.stderr.contains("already holds a repository"),
        "{}",
        r.stderr
    );
    // A repository of the next format version, which this build does not know.
    let (now, next) = (
        ferry::format::config::FORMAT_VERSION,
        ferry::format::config::FORMAT_VERSION + 1,
    );
    let cfg = env.repo.join("config");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        &format!("\"version\": {now}"),
        &format!("\"version\": {next}"),
    );
    assert!(text.contains(&format!("\"version\": {next}")), "{text}");
    std::fs::write(&cfg, text).unwrap();
    let r = env.try_run(&["snapshots"]);
    assert!(
        r.code != 0
            && r.stderr.contains(&format!("format version {next}"))
            && r.stderr.contains("upgrade ferry"),
        "{}",
        r.stderr
    );
}

#[test]
fn no_password_and_no_repo_say_what_to_do() {
    let env = Env::new();
    let mut c = env.command();
    c.env_remove("FERRY_PASSWORD");
    let r = env.run_with(c, &["init", "--repo", env.repo.to_str().unwrap()]);
    assert!(
        r.code != 0 && r.stderr.contains("FERRY_PASSWORD"),
        "{}",
        r.stderr
    );
    let r = env.run_with(env.command(), &["snapshots"]);
    assert!(r.code != 0 && r.stderr.contains("--repo"), "{}", r.stderr);
    let mut c = env.command();
    c.env("FERRY_REPO", env.repo.to_str().unwrap());
    let r = env.run_with(c, &["snapshots"]);
    assert_eq!(r.code, 10, "FERRY_REPO stands in for --repo: {}", r.stderr);
}

#[test]
fn unreadable_source_files_give_exit_code_3_and_are_recorded() {
    let env = Env::new();
    env.init_small();
    let src = env.path("src");
    std::fs::create_dir_all(src.join("locked")).unwrap();
    std::fs::write(src.join("ok.txt"), b"fine").unwrap();
    std::fs::write(src.join("secret.txt"), b"no").unwrap();
    std::fs::set_permissions(
        src.join("secret.txt"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    std::fs::write(src.join("locked/inner"), b"x").unwrap();
    std::fs::set_permissions(src.join("locked"), std::fs::Permissions::from_mode(0o000)).unwrap();
    // Root reads everything: run the backup as an unprivileged user then.
    let mut c = env.command();
    if is_root() {
        for p in [env.dir.path(), &env.repo] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        std::fs::create_dir_all(env.path("cache-nobody")).unwrap();
        std::fs::set_permissions(
            env.path("cache-nobody"),
            std::fs::Permissions::from_mode(0o777),
        )
        .unwrap();
        std::process::Command::new("chmod")
            .args(["-R", "a+rwX"])
            .arg(&env.repo)
            .status()
            .unwrap();
        c = std::process::Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_ferry"),
        ])
        .env("FERRY_PASSWORD", crate::support::PASSWORD)
        .env("XDG_CACHE_HOME", env.path("cache-nobody"))
        .env("FERRY_HOST", "test-host");
    }
    let r = env.run_with(
        c,
        &[
            "backup",
            "--json",
            "--repo",
            env.repo.to_str().unwrap(),
            src.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 3, "snapshot made, incomplete: {}", r.stderr);
    assert!(
        r.stderr.contains("secret.txt"),
        "warning names the file: {}",
        r.stderr
    );
    let snap = &r.json()["snapshot"];
    let skipped: Vec<String> = snap["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap().to_string())
        .collect();
    assert!(
        skipped.iter().any(|p| p.ends_with("secret.txt")),
        "{skipped:?}"
    );
    assert!(skipped.iter().any(|p| p.ends_with("locked")), "{skipped:?}");
    std::fs::set_permissions(src.join("locked"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = env.path("out");
    env.run(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(Env::restored(&out, &src).join("ok.txt")).unwrap(),
        b"fine"
    );
    assert!(!Env::restored(&out, &src).join("secret.txt").exists());
}

#[test]
fn full_disk_is_one_clear_message_and_loses_nothing() {
    if !is_root() {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let env = Env::new();
    let mnt = env.mkdir("small-disk");
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(&mnt)
        .status();
    if !ok.map(|s| s.success()).unwrap_or(false) {
        eprintln!("skipped: cannot mount tmpfs here");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let repo = mnt.join("repo");
    let r = env.run_with(
        env.command(),
        &[
            "init",
            "--repo",
            repo.to_str().unwrap(),
            "--kdf-memory",
            "8MiB",
            "--kdf-iterations",
            "1",
            "--pack-size",
            "1MiB",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let src = env.mkdir("src");
    std::fs::write(src.join("small"), b"fits").unwrap();
    let r = env.run_with(
        env.command(),
        &[
            "backup",
            "--repo",
            repo.to_str().unwrap(),
            src.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    std::fs::write(src.join("big"), crate::support::bytes(8 << 20, 3)).unwrap();
    let r = env.run_with(
        env.command(),
        &[
            "backup",
            "--repo",
            repo.to_str().unwrap(),
            src.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("disk is full"), "{}", r.stderr);
    let r = env.run_with(env.command(), &["check", "--repo", repo.to_str().unwrap()]);
    assert_eq!(
        r.code, 0,
        "the repository is intact after a full disk: {} {}",
        r.stdout, r.stderr
    );
    let r = env.run_with(
        env.command(),
        &["snapshots", "--json", "--repo", repo.to_str().unwrap()],
    );
    assert_eq!(r.json().as_array().unwrap().len(), 1);
}

#[test]
fn keys_can_be_added_listed_and_removed() {
    let env = Env::new();
    env.init_small();
    let mut c = env.command();
    c.env("FERRY_NEW_PASSWORD", "second password");
    let r = env.run_with(
        c,
        &["key", "add", "--json", "--repo", env.repo.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let added = r.json()["added"].as_str().unwrap().to_string();
    let list = env.run(&["key", "list", "--json"]).json();
    assert_eq!(list.as_array().unwrap().len(), 2);
    let mut c = env.command();
    c.env("FERRY_PASSWORD", "second password");
    let r = env.run_with(c, &["snapshots", "--repo", env.repo.to_str().unwrap()]);
    assert_eq!(
        r.code, 0,
        "the new password opens the repository: {}",
        r.stderr
    );
    let current = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = env.try_run(&["key", "remove", &current]);
    assert!(
        r.code != 0 && r.stderr.contains("unlocked with"),
        "{}",
        r.stderr
    );
    env.run(&["key", "remove", &added[..12]]);
    let mut c = env.command();
    c.env("FERRY_PASSWORD", "second password");
    let r = env.run_with(c, &["snapshots", "--repo", env.repo.to_str().unwrap()]);
    assert_eq!(r.code, 12, "a removed key no longer opens: {}", r.stderr);
}

#[test]
fn an_invalid_bucket_name_is_named_before_any_request() {
    let env = Env::new();
    for (bucket, why) in [("dr", "length"), ("Prod_Backups", "characters")] {
        let url = format!("s3://{bucket}/cluster-a");
        let r = env.run_with(env.command(), &["init", "--repo", &url, "--json"]);
        assert_eq!(r.code, 1, "{}", r.stderr);
        let err = r.stderr.trim();
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(
            err.contains(&format!("bucket name \"{bucket}\" is invalid ({why})"))
                && err.contains("3-63 characters"),
            "{err}"
        );
        assert!(
            !err.contains("ServiceError") && !err.contains("raw:"),
            "{err}"
        );
        let json: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert!(json["error"].as_str().unwrap().contains("is invalid"));
    }
}
