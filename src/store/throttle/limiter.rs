//! A bandwidth limiter shared by every transfer in one direction: a virtual
//! clock that hands out time slots to chunks of bytes, with no saved-up
//! credit, so the rate holds over any window, however short.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::schedule::Schedule;

/// The largest chunk a paced transfer sends at once.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// How late a waiter may wake (timer granularity, scheduling) without its
/// lateness being lost to the rate. Within one second, at most
/// `rate × (1 s + SLACK) + CHUNK_BYTES` bytes pass.
pub const SLACK: Duration = Duration::from_millis(10);

/// Paces bytes to the rate its schedule gives at the moment.
///
/// Each call to [`Limiter::acquire`] reserves the next free slot of
/// `n / rate` seconds and waits until that slot ends, so bytes are released
/// only after the time they cost has passed. Idle time is not banked: a
/// transfer that starts after a pause gets no burst.
#[derive(Debug)]
pub struct Limiter {
    schedule: Schedule,
    next_free: Mutex<Option<Instant>>,
}

impl Limiter {
    pub fn new(schedule: Schedule) -> Limiter {
        Limiter {
            schedule,
            next_free: Mutex::new(None),
        }
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// Waits until `n` more bytes may pass.
    pub async fn acquire(&self, n: usize) {
        if let Some(deadline) = self.reserve(n, self.schedule.rate_now()) {
            tokio::time::sleep_until(deadline).await;
        }
    }

    /// Reserves a slot for `n` bytes at the rate in force and returns when it
    /// ends (the caller sends the bytes then), or `None` when unlimited.
    pub fn reserve_now(&self, n: usize) -> Option<Instant> {
        self.reserve(n, self.schedule.rate_now())
    }

    /// Reserves a slot for `n` bytes at `rate` and returns when it ends, or
    /// `None` when nothing limits the transfer.
    fn reserve(&self, n: usize, rate: Option<u64>) -> Option<Instant> {
        let now = Instant::now();
        let mut next_free = self.next_free.lock().unwrap_or_else(|e| e.into_inner());
        let Some(rate) = rate else {
            *next_free = None;
            return None;
        };
        // A slot that ended only just now (a waiter woke late) is continued,
        // so timer rounding does not lower the rate; an older one means the
        // limiter was idle, and idle time is not banked.
        let start = match *next_free {
            Some(t) if t + SLACK >= now => t,
            _ => now,
        };
        let end = start + Duration::from_secs_f64(n as f64 / rate as f64);
        *next_free = Some(end);
        Some(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn limiter(rate: &str) -> Arc<Limiter> {
        Arc::new(Limiter::new(rate.parse().unwrap()))
    }

    #[tokio::test(start_paused = true)]
    async fn one_transfer_takes_size_over_rate() {
        let l = limiter("1MiB/s");
        let start = Instant::now();
        for _ in 0..(4 << 20) / CHUNK_BYTES {
            l.acquire(CHUNK_BYTES).await;
        }
        let ms = start.elapsed().as_millis();
        assert!((4000..4010).contains(&ms), "{ms} ms");
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_transfers_share_the_rate() {
        let l = limiter("2MiB/s");
        let start = Instant::now();
        let transfers = (0..4).map(|_| {
            let l = l.clone();
            tokio::spawn(async move {
                for _ in 0..16 {
                    l.acquire(CHUNK_BYTES).await;
                }
            })
        });
        futures::future::join_all(transfers).await;
        // 4 x 16 x 64 KiB = 4 MiB at 2 MiB/s.
        let ms = start.elapsed().as_millis();
        assert!((2000..2010).contains(&ms), "{ms} ms");
    }

    #[tokio::test(start_paused = true)]
    async fn no_window_of_one_second_exceeds_the_rate() {
        let rate = 1 << 20;
        let l = limiter("1MiB/s");
        let start = Instant::now();
        let releases = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..3).map(|i| {
            let (l, releases) = (l.clone(), releases.clone());
            tokio::spawn(async move {
                // An idle pause must not be banked as credit for a burst.
                tokio::time::sleep(Duration::from_millis(700 * i)).await;
                for n in [CHUNK_BYTES, 1000, 30_000, CHUNK_BYTES].repeat(8) {
                    l.acquire(n).await;
                    releases.lock().unwrap().push((start.elapsed(), n));
                }
            })
        });
        futures::future::join_all(tasks).await;
        let releases = releases.lock().unwrap();
        for (t0, _) in releases.iter() {
            let in_window: usize = releases
                .iter()
                .filter(|(t, _)| *t >= *t0 && *t < *t0 + Duration::from_secs(1))
                .map(|(_, n)| n)
                .sum();
            assert!(
                in_window <= rate + CHUNK_BYTES,
                "{in_window} bytes in the second after {t0:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn off_never_waits() {
        let l = limiter("off");
        let start = Instant::now();
        l.acquire(1 << 30).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
