//! Request bodies paced by the bandwidth limiter, and the watchdog that
//! abandons a request when its bytes stop moving.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::store::throttle::{self, CHUNK_BYTES};

/// When a transfer last made progress.
#[derive(Debug, Clone)]
pub(crate) struct Activity(Arc<Mutex<Instant>>);

impl Activity {
    pub fn new() -> Activity {
        Activity(Arc::new(Mutex::new(Instant::now())))
    }

    pub fn touch(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn last(&self) -> Instant {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `fut` until it ends, or until `idle` passes without a touch.
    /// Time spent waiting for the bandwidth limiter counts as progress.
    pub async fn watch<T>(
        &self,
        idle: Duration,
        fut: impl Future<Output = T>,
    ) -> Result<T, Stalled> {
        tokio::pin!(fut);
        loop {
            let deadline = self.last() + idle;
            tokio::select! {
                out = &mut fut => return Ok(out),
                () = tokio::time::sleep_until(deadline) => {
                    if self.last() + idle <= Instant::now() {
                        return Err(Stalled(idle));
                    }
                }
            }
        }
    }
}

/// A request that made no progress for the given time.
#[derive(Debug)]
pub(crate) struct Stalled(pub Duration);

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no progress for {:.1} s: request abandoned",
            self.0.as_secs_f64()
        )
    }
}

const UNLIMITED_FRAME_BYTES: usize = 1 << 20;

/// An upload body: the object's bytes in chunks, each released only when the
/// upload limiter (if any) allows, each marking progress.
pub(crate) struct PacedBody {
    data: Bytes,
    limiter: Option<throttle::Pace>,
    activity: Activity,
    wait: Option<Pin<Box<Sleep>>>,
}

impl PacedBody {
    /// Takes the enclosing throttle's upload limiter, if any.
    pub fn new(data: Bytes, activity: Activity) -> PacedBody {
        PacedBody {
            data,
            limiter: throttle::upload_limiter(),
            activity,
            wait: None,
        }
    }

    pub fn into_sdk_body(self) -> aws_sdk_s3::primitives::SdkBody {
        aws_sdk_s3::primitives::SdkBody::from_body_1_x(self)
    }
}

impl Body for PacedBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.data.is_empty() {
            return Poll::Ready(None);
        }
        // Unlimited transfers go in larger frames (fewer writes), still
        // small enough that progress is seen well within the idle timeout.
        let frame = if this.limiter.is_some() {
            CHUNK_BYTES
        } else {
            UNLIMITED_FRAME_BYTES
        };
        let n = this.data.len().min(frame);
        if this.wait.is_none() {
            if let Some(deadline) = this.limiter.as_ref().and_then(|l| l.reserve_now(n)) {
                this.wait = Some(Box::pin(tokio::time::sleep_until(deadline)));
            }
        }
        if let Some(wait) = this.wait.as_mut() {
            if wait.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.wait = None;
        }
        this.activity.touch();
        Poll::Ready(Some(Ok(Frame::data(this.data.split_to(n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.len() as u64)
    }
}
