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
