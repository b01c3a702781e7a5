//! The catalog is a cache: rebuilt from the repository alone, it answers
//! every query as before; deleted, it is recreated.

use crate::support::Env;

fn answers(env: &Env) -> (String, String, String) {
    let snaps = env.run(&["snapshots", "--json"]).stdout;
    let ls = env.run(&["ls", "latest", "--json"]).stdout;
    let first = env.run(&["snapshots", "--json"]).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let diff = env.run(&["diff", &first, "latest", "--json"]).stdout;
    (snaps, ls, diff)
}

#[test]
fn rebuild_gives_identical_answers() {
    let env = Env::new();
    env.init_small();
    let src = env.path("src");
    crate::roundtrip::generate(&src);
    env.backup(&[&src], &["--tag", "a"]);
    std::fs::write(src.join("new-file"), b"more").unwrap();
    env.backup(&[&src], &["--tag", "b"]);
    let before = answers(&env);
    let r = env.run(&["catalog", "rebuild", "--json"]);
    assert_eq!(r.json()["snapshots"], 2);
    assert_eq!(answers(&env), before, "rebuilt catalog answers the same");
    // Lose the whole cache directory: the next command recreates it.
    std::fs::remove_dir_all(env.path("cache")).unwrap();
    assert_eq!(answers(&env), before, "recreated catalog answers the same");
    // An explicit catalog path works too.
    let cat = env.path("elsewhere.db");
    let mut c = env.command();
    c.env("FERRY_CATALOG", &cat);
    let r = env.run_with(
        c,
        &["snapshots", "--json", "--repo", env.repo.to_str().unwrap()],
    );
    assert_eq!(r.stdout, before.0);
    assert!(cat.exists());
}

#[test]
fn blob_locations_match_after_rebuild() {
    let env = Env::new();
    env.init_small();
    let src = env.path("src");
    crate::roundtrip::generate(&src);
    env.backup(&[&src], &[]);
    let id: String = std::fs::read_dir(env.path("cache/ferry"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .into_string()
        .unwrap();
    let db = env.path(&format!("cache/ferry/{id}/catalog.db"));
    let dump = || {
        let c = rusqlite::Connection::open(&db).unwrap();
        let mut st = c.prepare("SELECT hex(id), hex(pack), kind, codec, offset, length, raw_length FROM blobs ORDER BY id, pack").unwrap();
        let rows: Vec<String> = st
            .query_map([], |r| {
                Ok(format!(
                    "{}:{}:{}:{}:{}:{}:{}",
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?
                ))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows
    };
    let before = dump();
    assert!(before.len() > 20);
    env.run(&["catalog", "rebuild"]);
    assert_eq!(dump(), before);
}
