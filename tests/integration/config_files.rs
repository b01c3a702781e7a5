//! Every example file under `config/` parses, and a config file can name the
//! repository for every command.

use std::path::Path;

use crate::support::Env;

#[test]
fn every_example_toml_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            ferry::config::FileConfig::load(&p).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 1, "config/ holds at least one ferry config");
}

#[test]
fn config_file_names_the_repository_and_flags_win() {
    let env = Env::new();
    env.init_small();
    let cfg = env.path("ferry.toml");
    std::fs::write(
        &cfg,
        format!(
            "repo = {:?}\n[backup]\ntags = [\"from-config\"]\n",
            env.repo.to_str().unwrap()
        ),
    )
    .unwrap();
    let src = env.mkdir("src");
    std::fs::write(src.join("f"), b"x").unwrap();
    let r = env.run_with(
        env.command(),
        &[
            "backup",
            "--json",
            "--config",
            cfg.to_str().unwrap(),
            src.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["snapshot"]["tags"][0], "from-config");
    let other = env.path("missing-repo");
    let r = env.run_with(
        env.command(),
        &[
            "snapshots",
            "--config",
            cfg.to_str().unwrap(),
            "--repo",
            other.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 10, "--repo wins over the config file: {}", r.stderr);
    std::fs::write(&cfg, "repo = 1\n").unwrap();
    let r = env.run_with(
        env.command(),
        &["snapshots", "--config", cfg.to_str().unwrap()],
    );
    assert!(
        r.code != 0 && r.stderr.contains("ferry.toml"),
        "{}",
        r.stderr
    );
}
