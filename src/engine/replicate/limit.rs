//! A token-bucket rate limiter shared by every concurrent copy: callers ask
//! for the bytes they are about to send and wait until the budget allows it.
//! The bucket holds at most a tenth of a second of budget, so transfers stay
//! smooth instead of bursting after idle time.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::schedule::Schedule;

#[derive(Debug)]
pub struct RateLimiter {
    schedule: Schedule,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// Available bytes; negative when callers have borrowed ahead.
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    pub fn new(schedule: Schedule) -> Self {
        RateLimiter {
            schedule,
            state: Mutex::new(Bucket {
                tokens: 0.0,
                last: Instant::now(),
            }),
        }
    }

    /// How long a caller sending `bytes` now must wait, with the budget
    /// taken.
    fn reserve(&self, bytes: u64) -> Option<Duration> {
        let rate = self.schedule.rate_now()? as f64;
        let mut b = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(b.last).as_secs_f64() * rate;
        b.tokens = (b.tokens + refill).min(rate / 10.0);
        b.last = now;
        b.tokens -= bytes as f64;
        (b.tokens < 0.0).then(|| Duration::from_secs_f64(-b.tokens / rate))
    }

    /// Waits until `bytes` may be sent.
    pub async fn acquire(&self, bytes: u64) {
        if let Some(wait) = self.reserve(bytes) {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn holds_the_rate() {
        let l = RateLimiter::new(Schedule::constant(Some(1 << 20)));
        let start = Instant::now();
        for _ in 0..4 {
            l.acquire(128 << 10).await;
        }
        let t = start.elapsed().as_secs_f64();
        assert!((0.45..0.8).contains(&t), "512 KiB at 1 MiB/s took {t}s");
        let free = RateLimiter::new(Schedule::constant(None));
        free.acquire(1 << 40).await;
    }
}
