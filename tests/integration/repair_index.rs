//! `repair index`: a lost index object loses no data. check names the files
//! it leaves unrestorable; repair indexes their packs again from the packs'
//! own headers; then check passes and restore is byte for byte.

use crate::support::{assert_same_tree, bytes, Env};

#[test]
fn repair_index_recovers_the_packs_of_a_lost_index_object() {
    let env = Env::new();
    env.init_small();
    let src = env.mkdir("src");
    for i in 0..8 {
        std::fs::write(src.join(format!("f{i}")), bytes(150_000, i)).unwrap();
    }
    env.backup(&[&src], &[]);
    let indexes = crate::support::files_under(&env.repo.join("index"));
    assert_eq!(indexes.len(), 1, "one index object");
    std::fs::remove_file(&indexes[0]).unwrap();
    env.run(&["catalog", "rebuild"]);
    let r = env.try_run(&["check", "--json"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(!r.json()["affected"].as_array().unwrap().is_empty());
    let warnings = r.json()["warnings"].to_string();
    assert!(warnings.contains("repair index"), "{warnings}");

    let packs = crate::support::files_under(&env.repo.join("data")).len();
    let r = env.run(&["repair", "index", "--dry-run", "--json"]);
    let j = r.json();
    assert_eq!(j["dry_run"], true);
    assert_eq!(j["packs"].as_array().unwrap().len(), packs, "{j}");
    assert!(j["indexes"].as_array().unwrap().is_empty());
    assert!(crate::support::files_under(&env.repo.join("index")).is_empty());

    let r = env.run(&["repair", "index", "--json"]);
    let j = r.json();
    assert_eq!(j["packs"].as_array().unwrap().len(), packs, "{j}");
    assert_eq!(j["indexes"].as_array().unwrap().len(), 1);
    assert!(j["unreadable"].as_array().unwrap().is_empty());
    let r = env.run(&["check", "--read-data", "--json"]);
    assert!(
        r.json()["warnings"].as_array().unwrap().is_empty(),
        "{}",
        r.stdout
    );
    let out = env.path("out");
    env.run(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_same_tree(&src, &Env::restored(&out, &src));
    // Nothing left to index; `repair --region` still asks for its region.
    let r = env.run(&["repair", "index", "--json"]);
    assert!(r.json()["packs"].as_array().unwrap().is_empty());
    let r = env.try_run(&["repair"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("--region"), "{}", r.stderr);
}
