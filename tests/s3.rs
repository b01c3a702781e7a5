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
#[path = "s3/regions.rs"]
mod regions;
#[path = "s3/regions_cli.rs"]
mod regions_cli;
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
