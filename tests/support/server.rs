//! An S3 server for tests: s3s-fs in this process, over real HTTP on
//! 127.0.0.1, with signature checking on. Each instance stands for one
//! region.

use std::net::SocketAddr;

use ferry::store::s3::{Provider, S3Settings, Secret};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use s3s::S3Result;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub const ACCESS_KEY: &str = "ferry-test-access";
pub const SECRET_KEY: &str = "ferry-test-secret-key-0123456789";

/// A running s3s-fs server; stops when dropped.
pub struct S3Server {
    pub addr: SocketAddr,
    pub region: String,
    /// Where s3s-fs keeps the buckets (one directory each).
    pub root: tempfile::TempDir,
    task: JoinHandle<()>,
    denied: Vec<&'static str>,
}

/// Serves s3s-fs over `root` on `listener` until the task is aborted.
fn serve(root: &std::path::Path, listener: TcpListener, denied: &[&'static str]) -> JoinHandle<()> {
    let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs root");
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    builder.set_access(Deny(denied.to_vec()));
    let service = builder.build();
    tokio::spawn(async move {
        let http = ConnBuilder::new(TokioExecutor::new());
        // Connections live in this task's set, so that stopping the
        // server also drops its open keep-alive connections.
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let _ = socket.set_nodelay(true);
            let conn = http
                .serve_connection(TokioIo::new(socket), service.clone())
                .into_owned();
            connections.spawn(async move {
                let _ = conn.await;
            });
            while connections.try_join_next().is_some() {}
        }
    })
}

impl S3Server {
    pub async fn start(region: &str) -> S3Server {
        S3Server::start_denying(region, &[]).await
    }

    /// A server on which the test keys may not run the operations named
    /// (`"CreateBucket"`, `"PutObject"`, ...): a bucket policy in miniature.
    pub async fn start_denying(region: &str, denied: &[&'static str]) -> S3Server {
        let root = tempfile::tempdir().expect("temporary directory");
        S3Server::start_in(region, root, "127.0.0.1:0", denied).await
    }

    /// Serves the buckets under `root` on `bind` (`127.0.0.1:0` for any port).
    pub async fn start_in(
        region: &str,
        root: tempfile::TempDir,
        bind: &str,
        denied: &[&'static str],
    ) -> S3Server {
        let listener = TcpListener::bind(bind)
            .await
            .expect("bind the test S3 server");
        let addr = listener.local_addr().unwrap();
        let task = serve(root.path(), listener, denied);
        S3Server {
            addr,
            region: region.to_string(),
            root,
            task,
            denied: denied.to_vec(),
        }
    }

    /// Stops answering, as a region that goes down; the buckets stay.
    pub fn stop(&mut self) {
        self.task.abort();
    }

    /// Serves the same buckets on the same address again.
    pub async fn restart(&mut self) {
        self.task.abort();
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        };
        self.task = serve(self.root.path(), listener, &self.denied);
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Settings that reach this server with the right keys.
    pub fn settings(&self) -> S3Settings {
        settings_for(&self.endpoint(), &self.region)
    }
}

/// Settings for a test server at `endpoint`: path style, small parts so that
/// tests exercise multipart uploads, a short idle timeout.
pub fn settings_for(endpoint: &str, region: &str) -> S3Settings {
    S3Settings {
        endpoint: Some(endpoint.to_string()),
        provider: Provider::Minio,
        region: Some(region.to_string()),
        access_key_id: Some(ACCESS_KEY.to_string()),
        secret_access_key: Some(Secret(SECRET_KEY.to_string())),
        multipart_threshold: 8 << 20,
        part_size: 5 << 20,
        idle_timeout_ms: 2_000,
        list_page_size: 7,
        ..S3Settings::default()
    }
}

/// Access control: signed requests may do anything but the denied operations.
struct Deny(Vec<&'static str>);

#[async_trait::async_trait]
impl S3Access for Deny {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        if cx.credentials().is_none() || self.0.contains(&cx.s3_op().name()) {
            return Err(s3s::s3_error!(
                AccessDenied,
                "denied by the test server's policy"
            ));
        }
        Ok(())
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}
