//! A local s3s-fs S3 server for benchmarks: `cargo run --release --example
//! s3_server -- 127.0.0.1:9000 /tmp/s3root`. Keys are those of the tests
//! (`tests/support/server.rs`).

#[path = "../tests/support/server.rs"]
#[allow(dead_code)]
mod server;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let bind = args.next().unwrap_or_else(|| "127.0.0.1:9000".to_string());
    let root = match args.next() {
        Some(dir) => {
            std::fs::create_dir_all(&dir).expect("create the server root");
            tempfile::TempDir::new_in(&dir).expect("a directory under the root")
        }
        None => tempfile::tempdir().expect("temporary directory"),
    };
    let server = server::S3Server::start_in("local", root, &bind, &[]).await;
    eprintln!(
        "s3s-fs at {} (root {}), access key {}, secret key {}",
        server.endpoint(),
        server.root.path().display(),
        server::ACCESS_KEY,
        server::SECRET_KEY
    );
    tokio::signal::ctrl_c().await.ok();
}
