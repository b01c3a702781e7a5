//! Tests of the rate and timetable parser and of schedule selection.

use super::schedule::{parse_rate, Schedule};

const MIB: u64 = 1 << 20;

#[test]
fn rates() {
    assert_eq!(parse_rate("40MiB/s"), Ok(Some(40 * MIB)));
    assert_eq!(parse_rate("40M"), Ok(Some(40 * MIB)));
    assert_eq!(parse_rate("10MiB"), Ok(Some(10 * MIB)));
    assert_eq!(parse_rate("512k"), Ok(Some(512 * 1024)));
    assert_eq!(
        parse_rate("512"),
        Ok(Some(512 * 1024)),
        "a bare number is KiB/s, as in rclone"
    );
    assert_eq!(parse_rate("1.5G"), Ok(Some(3 * 512 * MIB)));
    assert_eq!(parse_rate("100MB/s"), Ok(Some(100_000_000)));
    assert_eq!(parse_rate("800B/s"), Ok(Some(800)));
    assert_eq!(parse_rate(" off "), Ok(None));
    assert_eq!(parse_rate("OFF"), Ok(None));
    assert_eq!(parse_rate("0"), Ok(None));
}

#[test]
fn bad_rates_say_why() {
    for s in ["", "fast", "10 parsecs", "10Q", "-5M", "1.2.3M"] {
        let e = parse_rate(s).expect_err(s);
        assert!(e.to_string().contains(&format!("{s:?}")), "{e}");
    }
}

fn at(day: u32, h: u32, m: u32) -> u32 {
    day * 24 * 60 + h * 60 + m
}

#[test]
fn a_single_rate_is_a_constant_schedule() {
    let s: Schedule = "20MiB/s".parse().unwrap();
    assert_eq!(s.rate_at_minute(at(0, 0, 0)), Some(20 * MIB));
    assert_eq!(s.rate_at_minute(at(6, 23, 59)), Some(20 * MIB));
    assert_eq!(s.rate_now(), Some(20 * MIB));
    assert!("off".parse::<Schedule>().unwrap().is_off());
}

#[test]
fn daily_timetable() {
    let s: Schedule = "08:00,10MiB 19:00,off".parse().unwrap();
    assert_eq!(
        s.rate_at_minute(at(2, 7, 59)),
        None,
        "before 08:00, yesterday's 19:00 entry holds"
    );
    assert_eq!(s.rate_at_minute(at(2, 8, 0)), Some(10 * MIB));
    assert_eq!(s.rate_at_minute(at(2, 18, 59)), Some(10 * MIB));
    assert_eq!(s.rate_at_minute(at(2, 19, 0)), None);
    assert_eq!(
        s.rate_at_minute(at(0, 0, 0)),
        None,
        "Monday 00:00 wraps to Sunday 19:00"
    );
    assert!(!s.is_off());
    assert_eq!(s.to_string(), "08:00,10MiB 19:00,off");
}

#[test]
fn rclone_example_timetable() {
    let s: Schedule = "08:00,512k 12:00,10M 13:00,512k 18:00,30M 23:00,off"
        .parse()
        .unwrap();
    assert_eq!(s.rate_at_minute(at(4, 12, 30)), Some(10 * MIB));
    assert_eq!(s.rate_at_minute(at(4, 13, 0)), Some(512 * 1024));
    assert_eq!(s.rate_at_minute(at(4, 22, 0)), Some(30 * MIB));
    assert_eq!(s.rate_at_minute(at(5, 3, 0)), None);
}

#[test]
fn weekday_entries() {
    let s: Schedule = "Mon-00:00,512k Sat-09:00,off Sun-20:00,1M".parse().unwrap();
    assert_eq!(s.rate_at_minute(at(3, 12, 0)), Some(512 * 1024), "Thursday");
    assert_eq!(s.rate_at_minute(at(5, 9, 0)), None, "Saturday 09:00");
    assert_eq!(s.rate_at_minute(at(6, 21, 0)), Some(MIB), "Sunday evening");
}

#[test]
fn later_entry_for_the_same_time_wins() {
    let s: Schedule = "08:00,1M Wed-08:00,2M".parse().unwrap();
    assert_eq!(s.rate_at_minute(at(2, 8, 0)), Some(2 * MIB));
    assert_eq!(s.rate_at_minute(at(3, 8, 0)), Some(MIB));
}

#[test]
fn bad_timetables() {
    for s in [
        "08:00,10M 25:00,off",
        "08:00;10M",
        "8h,10M 9:00,1M",
        "Xyz-08:00,1M 09:00,off",
        "08:00,lots 09:00,1M",
    ] {
        assert!(s.parse::<Schedule>().is_err(), "{s} should not parse");
    }
}

#[test]
fn serde_as_a_string() {
    #[derive(serde::Deserialize)]
    struct T {
        limit: Schedule,
    }
    let t: T = toml::from_str(r#"limit = "08:00,10MiB 19:00,off""#).unwrap();
    assert_eq!(t.limit.rate_at_minute(at(1, 9, 0)), Some(10 * MIB));
    assert!(toml::from_str::<T>(r#"limit = "fast""#).is_err());
}

mod nested {
    use std::sync::Arc;
    use std::time::Instant;

    use async_trait::async_trait;
    use bytes::Bytes;

    use crate::store::memory::MemoryStore;
    use crate::store::throttle::{upload_limiter, Schedule, Throttled, CHUNK_BYTES};
    use crate::store::{DynStore, ObjectMeta, ObjectStore, StoreResult};

    /// A store that paces its uploads itself, as the S3 store does, and
    /// notes when the last one was through.
    #[derive(Debug, Default)]
    struct Pacing(MemoryStore, std::sync::Mutex<Option<Instant>>);

    #[async_trait]
    impl ObjectStore for Pacing {
        fn location(&self) -> String {
            "pacing".into()
        }
        async fn get(&self, key: &str) -> StoreResult<Bytes> {
            self.0.get(key).await
        }
        async fn get_range(&self, key: &str, offset: u64, length: u64) -> StoreResult<Bytes> {
            self.0.get_range(key, offset, length).await
        }
        async fn put(&self, key: &str, data: Bytes) -> StoreResult<()> {
            if let Some(pace) = upload_limiter() {
                for chunk in data.chunks(CHUNK_BYTES) {
                    pace.acquire(chunk.len()).await;
                }
            }
            *self.1.lock().unwrap() = Some(Instant::now());
            self.0.put(key, data).await
        }
        async fn put_if_absent(&self, key: &str, data: Bytes) -> StoreResult<bool> {
            self.0.put_if_absent(key, data).await
        }
        async fn head(&self, key: &str) -> StoreResult<Option<ObjectMeta>> {
            self.0.head(key).await
        }
        async fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectMeta>> {
            self.0.list(prefix).await
        }
        async fn delete(&self, key: &str) -> StoreResult<()> {
            self.0.delete(key).await
        }
    }

    fn limit(rate: &str) -> Option<Schedule> {
        Some(rate.parse().unwrap())
    }

    /// A global limit around a region's own: the bytes travel at the pace
    /// of the slower one (not at the region's, with the global one charged
    /// after the burst), and are paced once.
    #[tokio::test]
    async fn the_slowest_of_nested_limits_holds() {
        let base = Arc::new(Pacing::default());
        let region: DynStore = Arc::new(Throttled::new(base.clone(), limit("4MiB/s"), None));
        let both = Throttled::new(region.clone(), limit("1MiB/s"), None);
        let start = Instant::now();
        put_paced_at_1mib(&both, "1 MiB/s and 4 MiB/s").await;
        let sent = base.1.lock().unwrap().unwrap() - start;
        assert!(
            sent.as_secs_f64() >= 0.2,
            "sent in {sent:?}: paced by the region's limit only"
        );
        // The region's limit alone, when it is the slower.
        let slow: DynStore = Arc::new(Throttled::new(
            Arc::new(Pacing::default()),
            limit("1MiB/s"),
            None,
        ));
        let fast = Throttled::new(slow, limit("8MiB/s"), None);
        put_paced_at_1mib(&fast, "8 MiB/s and 1 MiB/s").await;
    }

    /// Puts 256 KiB through `store` and checks that it took as long as at
    /// 1 MiB/s, the slower of the `limits` it is under.
    async fn put_paced_at_1mib(store: &Throttled, limits: &str) {
        let start = Instant::now();
        store
            .put("a", Bytes::from(vec![7u8; 256 << 10]))
            .await
            .unwrap();
        let t = start.elapsed().as_secs_f64();
        assert!((0.2..0.45).contains(&t), "256 KiB under {limits} took {t}s");
    }
}
