//! The retention policy of `forget`, with restic's semantics: a pure
//! function from snapshot times (and tags) to the snapshots kept, each with
//! the rules that keep it.
//!
//! Snapshots are walked newest first. A counted rule (`--keep-daily 7`)
//! keeps a snapshot whenever its bucket (the day) differs from the bucket of
//! the last snapshot that rule kept, until its count runs out; the oldest
//! snapshot is also kept by every rule that still has counts left (restic
//! 0.14 and later). `--keep-within D` keeps everything newer than the newest
//! snapshot minus D; `--keep-within-daily D` keeps one snapshot per day
//! among those. `--keep-tag` keeps snapshots that carry all the tags of one
//! of its values. The rules are ORed. Buckets are computed in UTC, the
//! time zone ferry records snapshot times in. Snapshots newer than `now`
//! are always kept and do not use up any count (a host with a wrong clock
//! must not push the real history out).

use chrono::{DateTime, Datelike, Duration as ChronoDuration, NaiveDate, TimeZone, Timelike, Utc};
use serde::Serialize;

/// A calendar duration as restic writes it: `1y2m3d4h` (years, months,
/// days, hours; any subset, in this order or not).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Span {
    pub years: i32,
    pub months: i32,
    pub days: i32,
    pub hours: i32,
}

impl Span {
    pub fn parse(s: &str) -> Result<Span, String> {
        let bad =
            || format!("{s:?} is not a duration; write it as restic does, e.g. 2d, 36h, 1y6m");
        let mut span = Span::default();
        let mut num = String::new();
        for c in s.trim().chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let n: i32 = num.parse().map_err(|_| bad())?;
            num.clear();
            match c {
                'y' => span.years += n,
                'm' => span.months += n,
                'd' => span.days += n,
                'h' => span.hours += n,
                _ => return Err(bad()),
            }
        }
        if !num.is_empty() || s.trim().is_empty() {
            return Err(bad());
        }
        Ok(span)
    }

    pub fn is_zero(&self) -> bool {
        *self == Span::default()
    }

    /// `t` minus this span, with Go's `AddDate` normalisation (31 March
    /// minus a month is 3 March, as restic computes it).
    pub fn before(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let months = t.year() * 12 + t.month0() as i32 - self.years * 12 - self.months;
        let (y, m0) = (months.div_euclid(12), months.rem_euclid(12) as u32);
        let first = NaiveDate::from_ymd_opt(y, m0 + 1, 1).expect("valid month");
        let day = first + ChronoDuration::days(i64::from(t.day()) - 1 - i64::from(self.days));
        let naive = day.and_time(t.time());
        Utc.from_utc_datetime(&naive) - ChronoDuration::hours(i64::from(self.hours))
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts = [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ];
        for (n, unit) in parts.into_iter().filter(|(n, _)| *n != 0) {
            write!(f, "{n}{unit}")?;
        }
        Ok(())
    }
}

/// What to keep; every rule is ORed with the others.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
    pub within: Span,
    pub within_hourly: Span,
    pub within_daily: Span,
    pub within_weekly: Span,
    pub within_monthly: Span,
    pub within_yearly: Span,
    /// Each entry is a set of tags a snapshot must all carry to be kept.
    pub tags: Vec<Vec<String>>,
}

impl Policy {
    /// A policy that keeps nothing: refused, since it would remove every
    /// snapshot.
    pub fn is_empty(&self) -> bool {
        let counts = [
            self.last,
            self.hourly,
            self.daily,
            self.weekly,
            self.monthly,
            self.yearly,
        ];
        let spans = [
            self.within,
            self.within_hourly,
            self.within_daily,
            self.within_weekly,
            self.within_monthly,
            self.within_yearly,
        ];
        counts.iter().all(|c| *c == 0) && spans.iter().all(Span::is_zero) && self.tags.is_empty()
    }
}

/// One snapshot as the policy sees it.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    pub time: DateTime<Utc>,
    pub tags: &'a [String],
}

/// The decision for one candidate: kept (with the reasons) or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub keep: bool,
    pub reasons: Vec<String>,
}

/// A bucket function: snapshots with the same value share a bucket.
type Bucket = fn(DateTime<Utc>, usize) -> i64;

fn always(_: DateTime<Utc>, nr: usize) -> i64 {
    nr as i64
}
fn hour(t: DateTime<Utc>, _: usize) -> i64 {
    day(t, 0) * 100 + i64::from(t.hour())
}
fn day(t: DateTime<Utc>, _: usize) -> i64 {
    month(t, 0) * 100 + i64::from(t.day())
}
fn week(t: DateTime<Utc>, _: usize) -> i64 {
    let w = t.iso_week();
    i64::from(w.year()) * 100 + i64::from(w.week())
}
fn month(t: DateTime<Utc>, _: usize) -> i64 {
    i64::from(t.year()) * 100 + i64::from(t.month())
}
fn year(t: DateTime<Utc>, _: usize) -> i64 {
    i64::from(t.year())
}

struct Counted {
    left: u32,
    bucket: Bucket,
    last: Option<i64>,
    reason: &'static str,
}

struct Within {
    span: Span,
    bucket: Bucket,
    last: Option<i64>,
    reason: &'static str,
}

/// Applies `policy` to one group of snapshots. Returns one decision per
/// candidate, in the order given. `now` is the present: later snapshots are
/// kept and left out of the counting.
pub fn apply(policy: &Policy, snaps: &[Candidate<'_>], now: DateTime<Utc>) -> Vec<Decision> {
    let mut out = vec![
        Decision {
            keep: false,
            reasons: Vec::new(),
        };
        snaps.len()
    ];
    // Newest first; ties keep their given order, as a stable sort does.
    let mut order: Vec<usize> = (0..snaps.len()).collect();
    order.sort_by(|a, b| snaps[*b].time.cmp(&snaps[*a].time));
    let (future, past): (Vec<usize>, Vec<usize>) =
        order.into_iter().partition(|i| snaps[*i].time > now);
    for i in future {
        out[i].keep = true;
        out[i].reasons.push("in the future".into());
    }
    let Some(latest) = past.first().map(|i| snaps[*i].time) else {
        return out;
    };
    let mut counted = counted_rules(policy);
    let mut within = within_rules(policy);
    for (nr, &i) in past.iter().enumerate() {
        let cur = &snaps[i];
        let oldest = nr == past.len() - 1;
        let reasons = &mut out[i].reasons;
        for want in &policy.tags {
            if want.iter().all(|t| cur.tags.contains(t)) {
                reasons.push(format!("has tags [{}]", want.join(", ")));
            }
        }
        if !policy.within.is_zero() && cur.time > policy.within.before(latest) {
            reasons.push(format!("within {}", policy.within));
        }
        for rule in counted.iter_mut().filter(|r| r.left > 0) {
            let val = (rule.bucket)(cur.time, nr);
            if rule.last != Some(val) || oldest {
                rule.last = Some(val);
                rule.left -= 1;
                reasons.push(rule.reason.into());
            }
        }
        for rule in within.iter_mut() {
            if cur.time > rule.span.before(latest) {
                let val = (rule.bucket)(cur.time, nr);
                if rule.last != Some(val) || oldest {
                    rule.last = Some(val);
                    reasons.push(format!("{} {}", rule.reason, rule.span));
                }
            }
        }
        out[i].keep = !out[i].reasons.is_empty();
    }
    out
}

fn counted_rules(p: &Policy) -> Vec<Counted> {
    let rules: [(u32, Bucket, &'static str); 6] = [
        (p.last, always, "last snapshot"),
        (p.hourly, hour, "hourly snapshot"),
        (p.daily, day, "daily snapshot"),
        (p.weekly, week, "weekly snapshot"),
        (p.monthly, month, "monthly snapshot"),
        (p.yearly, year, "yearly snapshot"),
    ];
    rules
        .into_iter()
        .map(|(left, bucket, reason)| Counted {
            left,
            bucket,
            last: None,
            reason,
        })
        .collect()
}

fn within_rules(p: &Policy) -> Vec<Within> {
    let rules: [(Span, Bucket, &'static str); 5] = [
        (p.within_hourly, hour, "hourly within"),
        (p.within_daily, day, "daily within"),
        (p.within_weekly, week, "weekly within"),
        (p.within_monthly, month, "monthly within"),
        (p.within_yearly, year, "yearly within"),
    ];
    rules
        .into_iter()
        .filter(|(span, _, _)| !span.is_zero())
        .map(|(span, bucket, reason)| Within {
            span,
            bucket,
            last: None,
            reason,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn now() -> DateTime<Utc> {
        t("2030-01-01T00:00:00Z")
    }

    /// The times kept, newest first.
    fn kept(p: &Policy, times: &[&str], tags: &[&[&str]]) -> Vec<String> {
        let tags: Vec<Vec<String>> = (0..times.len())
            .map(|i| {
                tags.get(i)
                    .map(|t| t.iter().map(|s| s.to_string()).collect())
                    .unwrap_or_default()
            })
            .collect();
        let c: Vec<Candidate> = times
            .iter()
            .zip(&tags)
            .map(|(s, tags)| Candidate { time: t(s), tags })
            .collect();
        let d = apply(p, &c, now());
        let mut out: Vec<(DateTime<Utc>, String)> = times
            .iter()
            .zip(&d)
            .filter(|(_, d)| d.keep)
            .map(|(s, _)| (t(s), s.to_string()))
            .collect();
        out.sort();
        out.reverse();
        out.into_iter().map(|(_, s)| s).collect()
    }

    const DAYS: [&str; 6] = [
        "2026-11-01T10:00:00Z",
        "2026-11-01T18:00:00Z",
        "2026-11-02T10:00:00Z",
        "2026-11-03T10:00:00Z",
        "2026-11-03T11:00:00Z",
        "2026-11-09T10:00:00Z",
    ];

    #[test]
    fn keep_last_keeps_the_newest() {
        let p = Policy {
            last: 2,
            ..Default::default()
        };
        assert_eq!(
            kept(&p, &DAYS, &[]),
            ["2026-11-09T10:00:00Z", "2026-11-03T11:00:00Z"]
        );
    }

    #[test]
    fn daily_keeps_the_newest_of_each_day() {
        let p = Policy {
            daily: 3,
            ..Default::default()
        };
        assert_eq!(
            kept(&p, &DAYS, &[]),
            [
                "2026-11-09T10:00:00Z",
                "2026-11-03T11:00:00Z",
                "2026-11-02T10:00:00Z"
            ]
        );
    }

    #[test]
    fn the_oldest_is_kept_when_counts_are_left() {
        let p = Policy {
            daily: 10,
            ..Default::default()
        };
        let k = kept(&p, &DAYS, &[]);
        assert_eq!(k.len(), 5);
        assert_eq!(k.last().unwrap(), "2026-11-01T10:00:00Z");
    }

    #[test]
    fn weeks_run_monday_to_sunday() {
        // 2026-11-01 is a Sunday, 2026-11-02 a Monday.
        let p = Policy {
            weekly: 2,
            ..Default::default()
        };
        assert_eq!(
            kept(&p, &DAYS[..5], &[]),
            ["2026-11-03T11:00:00Z", "2026-11-01T18:00:00Z"]
        );
    }

    #[test]
    fn within_counts_back_from_the_newest_snapshot() {
        let p = Policy {
            within: Span::parse("1d").unwrap(),
            ..Default::default()
        };
        assert_eq!(kept(&p, &DAYS, &[]), ["2026-11-09T10:00:00Z"]);
        let p = Policy {
            within_daily: Span::parse("7d").unwrap(),
            ..Default::default()
        };
        assert_eq!(
            kept(&p, &DAYS, &[]),
            ["2026-11-09T10:00:00Z", "2026-11-03T11:00:00Z"]
        );
    }

    #[test]
    fn tags_keep_without_counting() {
        let p = Policy {
            last: 1,
            tags: vec![vec!["release".into()]],
            ..Default::default()
        };
        let tags: &[&[&str]] = &[&["release"], &[], &["release", "x"]];
        assert_eq!(
            kept(&p, &DAYS, tags),
            [
                "2026-11-09T10:00:00Z",
                "2026-11-02T10:00:00Z",
                "2026-11-01T10:00:00Z"
            ]
        );
    }

    #[test]
    fn future_snapshots_are_kept_and_not_counted() {
        let p = Policy {
            last: 1,
            ..Default::default()
        };
        let times = [
            "2031-01-01T00:00:00Z",
            "2026-11-09T10:00:00Z",
            "2026-11-01T10:00:00Z",
        ];
        assert_eq!(
            kept(&p, &times, &[]),
            ["2031-01-01T00:00:00Z", "2026-11-09T10:00:00Z"]
        );
    }

    #[test]
    fn empty_policy_is_empty() {
        assert!(Policy::default().is_empty());
        assert!(!Policy {
            within: Span::parse("1h").unwrap(),
            ..Default::default()
        }
        .is_empty());
    }

    #[test]
    fn spans_parse_and_subtract_as_go_does() {
        let s = Span::parse("1y2m3d4h").unwrap();
        assert_eq!((s.years, s.months, s.days, s.hours), (1, 2, 3, 4));
        assert!(Span::parse("3w").is_err());
        assert!(Span::parse("12").is_err());
        assert!(Span::parse("").is_err());
        let m = Span::parse("1m").unwrap();
        assert_eq!(
            m.before(t("2026-03-31T12:00:00Z")),
            t("2026-03-03T12:00:00Z")
        );
        assert_eq!(
            Span::parse("36h")
                .unwrap()
                .before(t("2026-03-02T12:00:00Z")),
            t("2026-03-01T00:00:00Z")
        );
    }
}
