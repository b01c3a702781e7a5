//! A fault-injecting HTTP proxy for tests: sits between a store and an S3
//! server and, for a share of requests chosen by a seeded random generator,
//! delays, refuses, loses, cuts or stalls them. It can also stand for a
//! region that dies: switched (at once, or when the n-th request matching a
//! pattern arrives) to refuse connections, to black-hole them, or to stall
//! every transfer, open connections included, and switched back; and it
//! can slow a region to a crawl.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

type Body = BoxBody<Bytes, std::io::Error>;

/// What the proxy does to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward after a pause.
    Latency,
    /// Answer 503 SlowDown without forwarding.
    SlowDown,
    /// Forward, then answer 500 InternalError: the server acted, the client
    /// cannot know it.
    InternalErrorAfter,
    /// Read part of the request body, then reset the connection.
    ResetUpload,
    /// Forward, send half the response body, then reset the connection.
    ResetMidBody,
    /// Forward, send the headers and half the body, then close the connection
    /// cleanly: fewer bytes than `Content-Length` announced.
    TruncatedBody,
    /// Forward, then answer nothing: the client must give up by itself.
    Stall,
    /// Forward, send the headers and half the body, then nothing more.
    StallMidBody,
}

/// How the endpoint behind the proxy is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Requests pass (with the random faults above).
    Pass,
    /// Nothing listens: new connections are refused, open ones reset.
    Refuse,
    /// Connections are accepted and never answered; open ones go silent
    /// wherever their transfer was.
    BlackHole,
    /// Requests are read and answered with headers and half the body (an
    /// upload: half its body is read), then nothing more; open ones go
    /// silent wherever their transfer was.
    Stall,
}

pub const ALL_FAULTS: [Fault; 8] = [
    Fault::Latency,
    Fault::SlowDown,
    Fault::InternalErrorAfter,
    Fault::ResetUpload,
    Fault::ResetMidBody,
    Fault::TruncatedBody,
    Fault::Stall,
    Fault::StallMidBody,
];

struct State {
    upstream: SocketAddr,
    rng: Mutex<StdRng>,
    /// Chance that a request meets one of `faults`.
    rate: f64,
    faults: Vec<Fault>,
    requests: AtomicUsize,
    injected: Mutex<Vec<Fault>>,
    /// Faults go only to requests whose method and path contain this.
    only: Mutex<Option<String>>,
    /// Faults left to inject.
    budget: AtomicUsize,
    log: Mutex<Vec<Seen>>,
    mode: tokio::sync::watch::Sender<Mode>,
    /// Switch to this mode when this many more requests matching the
    /// pattern have arrived.
    trigger: Mutex<Option<(String, usize, Mode)>>,
    /// Requests matching the pattern are held as if their body travelled
    /// at this many bytes per second.
    crawl: Mutex<Option<(String, u64)>>,
}

/// A request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `METHOD /path?query`.
    pub line: String,
    /// The request's headers, names in lowercase.
    pub headers: Vec<String>,
    pub fault: Option<Fault>,
}

/// A running proxy; stops accepting when dropped.
pub struct FaultProxy {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    pub async fn start(upstream: SocketAddr, seed: u64, rate: f64, faults: &[Fault]) -> FaultProxy {
        let state = Arc::new(State {
            upstream,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            rate,
            faults: faults.to_vec(),
            requests: AtomicUsize::new(0),
            injected: Mutex::new(Vec::new()),
            only: Mutex::new(None),
            budget: AtomicUsize::new(usize::MAX),
            log: Mutex::new(Vec::new()),
            mode: tokio::sync::watch::channel(Mode::Pass).0,
            trigger: Mutex::new(None),
            crawl: Mutex::new(None),
        });
        let listener = bind("127.0.0.1:0".parse().unwrap());
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(accept_loop(state.clone(), listener));
        FaultProxy { addr, state, task }
    }

    /// Switches the endpoint to `mode` now.
    pub fn set_mode(&self, mode: Mode) {
        self.state.mode.send_replace(mode);
    }

    /// Switches to `mode` when the `n`-th request from now whose
    /// `METHOD /path?query` contains `pattern` arrives; that request meets
    /// the new mode part-way (half its upload read, or half its answer
    /// sent).
    pub fn set_mode_at(&self, pattern: &str, n: usize, mode: Mode) {
        *self.state.trigger.lock().unwrap() = Some((pattern.to_string(), n.max(1), mode));
    }

    /// Slows the requests whose `METHOD /path?query` contains `pattern` to
    /// a crawl: each is held, before it is forwarded, as long as its body
    /// takes at `bytes_per_second` (at least 100 ms). `None` lifts it.
    pub fn crawl(&self, slow: Option<(&str, u64)>) {
        *self.state.crawl.lock().unwrap() = slow.map(|(p, r)| (p.to_string(), r.max(1)));
    }

    pub fn mode(&self) -> Mode {
        *self.state.mode.borrow()
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// Injects faults only into requests whose `METHOD /path?query`
    /// contains `pattern`.
    pub fn only_matching(&self, pattern: &str) {
        *self.state.only.lock().unwrap() = Some(pattern.to_string());
    }

    /// Injects at most `n` more faults.
    pub fn limit_faults(&self, n: usize) {
        self.state.budget.store(n, Ordering::Relaxed);
    }

    /// Every request seen so far.
    pub fn log(&self) -> Vec<Seen> {
        self.state.log.lock().unwrap().clone()
    }

    pub fn injected(&self) -> Vec<Fault> {
        self.state.injected.lock().unwrap().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn bind(addr: SocketAddr) -> TcpListener {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(addr).unwrap();
    socket.listen(128).unwrap()
}

/// Accepts connections while the mode is not `Refuse`; while it is, the
/// port has no listener, so connections are refused.
async fn accept_loop(state: Arc<State>, listener: TcpListener) {
    let addr = listener.local_addr().unwrap();
    let mut listener = Some(listener);
    let mut mode = state.mode.subscribe();
    loop {
        let Some(l) = &listener else {
            let _ = mode.wait_for(|m| *m != Mode::Refuse).await;
            listener = Some(bind(addr));
            continue;
        };
        let accepted = tokio::select! {
            a = l.accept() => a,
            _ = mode.wait_for(|m| *m == Mode::Refuse) => {
                listener = None;
                continue;
            }
        };
        let Ok((socket, _)) = accepted else { continue };
        // Closing with SO_LINGER 0 sends a TCP reset, not a FIN.
        let _ = socket.set_zero_linger();
        tokio::spawn(connection(state.clone(), socket));
    }
}

/// Serves one connection until the mode leaves `Pass`: then it is reset
/// (`Refuse`) or held open and never read or written again.
async fn connection(state: Arc<State>, socket: TcpStream) {
    let mut mode = state.mode.subscribe();
    if *mode.borrow_and_update() == Mode::BlackHole {
        let _held = socket;
        return std::future::pending().await;
    }
    let st = state.clone();
    let service = hyper::service::service_fn(move |req| handle(st.clone(), req));
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(socket), service);
    tokio::pin!(conn);
    let changed = tokio::select! {
        _ = &mut conn => return,
        m = mode.wait_for(|m| *m == Mode::Refuse || *m == Mode::BlackHole) => *m.unwrap(),
    };
    if changed == Mode::BlackHole {
        // Held: the peer waits on a connection that says nothing more.
        std::future::pending::<()>().await;
    }
}

/// Fires the switch set with [`FaultProxy::set_mode_at`] when `line` is
/// its n-th match.
fn trigger(state: &State, line: &str) {
    let mut t = state.trigger.lock().unwrap();
    let fire = match &mut *t {
        Some((pattern, n, _)) if line.contains(pattern.as_str()) => {
            *n -= 1;
            *n == 0
        }
        _ => false,
    };
    if fire {
        let (_, _, mode) = t.take().unwrap();
        state.mode.send_replace(mode);
    }
}

fn pick<B>(state: &State, req: &Request<B>) -> Option<Fault> {
    state.requests.fetch_add(1, Ordering::Relaxed);
    let line = format!("{} {}", req.method(), req.uri());
    trigger(state, &line);
    let headers = req
        .headers()
        .keys()
        .map(|k| k.as_str().to_string())
        .collect();
    let eligible = match &*state.only.lock().unwrap() {
        Some(p) => line.contains(p.as_str()),
        None => true,
    };
    let fault = {
        let mut rng = state.rng.lock().unwrap();
        let spent = state.budget.load(Ordering::Relaxed) == 0;
        if spent || !eligible || state.faults.is_empty() || !rng.gen_bool(state.rate) {
            None
        } else {
            Some(state.faults[rng.gen_range(0..state.faults.len())])
        }
    };
    if let Some(f) = fault {
        state.budget.fetch_sub(1, Ordering::Relaxed);
        state.injected.lock().unwrap().push(f);
    }
    state.log.lock().unwrap().push(Seen {
        line,
        headers,
        fault,
    });
    fault
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn s3_error(status: StatusCode, code: &str) -> Response<Body> {
    let xml = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>");
    Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .body(full(xml))
        .unwrap()
}

/// A body that yields `head`, then either fails (the connection is reset),
/// ends early, or never ends.
fn cut_body(head: Bytes, then: Fault) -> Body {
    let stream = futures::stream::unfold((Some(head), then), |(head, then)| async move {
        if let Some(h) = head {
            return Some((Ok(Frame::data(h)), (None, then)));
        }
        match then {
            Fault::StallMidBody => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                None
            }
            Fault::ResetMidBody => {
                Some((Err(std::io::Error::other("injected reset")), (None, then)))
            }
            _ => None,
        }
    });
    StreamBody::new(stream).boxed()
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::io::Error> {
    let fault = pick(&state, &req);
    let mode = *state.mode.borrow();
    let fault = match mode {
        Mode::Pass => fault,
        // The request that switched the mode meets it part-way.
        Mode::Refuse => Some(Fault::ResetUpload),
        Mode::BlackHole | Mode::Stall => Some(Fault::StallMidBody),
    };
    let (parts, mut body) = req.into_parts();
    if matches!(mode, Mode::BlackHole | Mode::Stall) && parts.method != hyper::Method::GET {
        // An upload (or a request with no answer body) stalls half-read.
        let _ = body.frame().await;
        std::future::pending::<()>().await;
    }
    if fault == Some(Fault::ResetUpload) {
        let _ = body.frame().await;
        return Err(std::io::Error::other("injected reset during upload"));
    }
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let crawl = state.crawl.lock().unwrap().clone();
    if let Some((pattern, rate)) = crawl {
        if format!("{} {}", parts.method, parts.uri).contains(&pattern) {
            let ms = (body.len() as u64 * 1000 / rate).max(100);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
    match fault {
        Some(Fault::SlowDown) => return Ok(s3_error(StatusCode::SERVICE_UNAVAILABLE, "SlowDown")),
        Some(Fault::Latency) => {
            let ms = state.rng.lock().unwrap().gen_range(20..200);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        _ => {}
    }
    let upstream = forward(state.upstream, Request::from_parts(parts, body)).await?;
    let (parts, body) = upstream.into_parts();
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let half = body.slice(..body.len() / 2);
    let response = |b: Body| Ok(Response::from_parts(parts.clone(), b));
    match fault {
        Some(Fault::InternalErrorAfter) => {
            Ok(s3_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError"))
        }
        Some(f @ (Fault::ResetMidBody | Fault::TruncatedBody)) => response(cut_body(half, f)),
        Some(Fault::Stall) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            response(full(body))
        }
        Some(Fault::StallMidBody) => response(cut_body(half, Fault::StallMidBody)),
        _ => response(full(body)),
    }
}

async fn forward(
    upstream: SocketAddr,
    req: Request<Bytes>,
) -> Result<Response<Incoming>, std::io::Error> {
    let stream = TcpStream::connect(upstream).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let (parts, body) = req.into_parts();
    let req = Request::from_parts(parts, Full::new(body));
    sender
        .send_request(req)
        .await
        .map_err(std::io::Error::other)
}
