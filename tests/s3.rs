//! Integration tests of the stores on real servers: the store test suite on
//! the local directory, on S3 (s3s-fs over HTTP), and on S3 through a
//! fault-injecting proxy; several regions; errors; bandwidth limits.

mod support;

#[path = "s3/cli.rs"]
mod cli;
#[path = "s3/faults.rs"]
mod faults;
#[path = "s3/limits.rs"]
mod limits;
#[path = "s3/object_lock.rs"]
mod object_lock;
#[path = "s3/regions.rs"]
mod regions;
#[path = "s3/regions_cli.rs"]
mod regions_cli;
#[path = "s3/regions_disaster.rs"]
mod regions_disaster;
#[path = "s3/regions_faults.rs"]
mod regions_faults;
#[path = "s3/scenario.rs"]
mod scenario;
#[path = "s3/suite.rs"]
mod suite;

use ferry::store::retry::RetryPolicy;
use ferry::store::s3::S3Store;
use support::server::S3Server;

/// Retries quick enough for tests, many enough to outlast the faults.
pub fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 12,
        initial_backoff_ms: 10,
        max_backoff_ms: 200,
        budget_seconds: 60,
    }
}

/// A store on `server`, its bucket created.
pub async fn s3_store(server: &S3Server, bucket: &str, prefix: &str) -> S3Store {
    let store = S3Store::new(bucket, prefix, &server.settings()).unwrap();
    store.init().await.expect("init the bucket");
    store
}

/// Runs the `ferry` binary with the test servers' keys, a cache of its own
/// under `dir`, and `extra` arguments after `args`.
/// `init` options for a small repository that tests fill quickly: 1 MiB
/// packs, small chunks, a cheap key derivation.
pub const SMALL_REPO: [&str; 12] = [
    "--pack-size",
    "1MiB",
    "--chunk-min",
    "16KiB",
    "--chunk-avg",
    "64KiB",
    "--chunk-max",
    "256KiB",
    "--kdf-memory",
    "8MiB",
    "--kdf-iterations",
    "1",
];

/// The ferry command the S3 tests run, with the test server's keys.
pub fn ferry_command(
    dir: &std::path::Path,
    args: &[&str],
    extra: &[&str],
) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"));
    c.args(args)
        .args(extra)
        .env("FERRY_PASSWORD", "s3-test")
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .env("FERRY_HOST", "s3-host")
        .env("AWS_ACCESS_KEY_ID", support::server::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", support::server::SECRET_KEY)
        .env("FERRY_S3_IDLE_TIMEOUT_MS", "3000")
        .env_remove("FERRY_REPO");
    c
}

pub fn ferry(dir: &std::path::Path, args: &[&str], extra: &[&str]) -> (i32, String, String) {
    let out = tokio::task::block_in_place(|| ferry_command(dir, args, extra).output().unwrap());
    let s = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        s(out.stdout),
        s(out.stderr),
    )
}

/// Like [`ferry`], asserting success; returns stdout.
pub fn ferry_ok(dir: &std::path::Path, args: &[&str], extra: &[&str]) -> String {
    let (code, out, err) = ferry(dir, args, extra);
    assert_eq!(code, 0, "ferry {args:?}:\n{out}\n{err}");
    out
}

/// Every file below `root` with its content, sorted by relative path.
pub fn read_tree(root: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    support::files::files_under(root)
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).unwrap();
            (p.strip_prefix(root).unwrap().display().to_string(), data)
        })
        .collect()
}
