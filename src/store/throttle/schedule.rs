//! Bandwidth settings as users write them: a rate (`40MiB/s`, `512k`,
//! `off`) or an rclone-style timetable (`"08:00,10MiB Mon-19:00,off"`).

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, Timelike};

/// Bytes per second; `None` is unlimited.
pub type Rate = Option<u64>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bandwidth limit {input:?}: {reason}")]
pub struct ParseError {
    pub input: String,
    pub reason: String,
}

fn bad(input: &str, reason: impl Into<String>) -> ParseError {
    ParseError {
        input: input.to_string(),
        reason: reason.into(),
    }
}

/// Parses one rate. `off` (or `0`) is unlimited. Units: `B`, `K`/`KiB`,
/// `M`/`MiB`, `G`/`GiB` (powers of 1024), `KB`/`MB`/`GB` (powers of 1000),
/// optionally followed by `/s`. A bare number is KiB/s, as in rclone.
pub fn parse_rate(s: &str) -> Result<Rate, ParseError> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("off") || t.eq_ignore_ascii_case("unlimited") {
        return Ok(None);
    }
    let t = t
        .strip_suffix("/s")
        .or_else(|| t.strip_suffix("ps"))
        .unwrap_or(t);
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| bad(s, "expected a number such as 40MiB/s, or off"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "k" | "ki" | "kib" => 1024.0,
        "b" => 1.0,
        "m" | "mi" | "mib" => 1024.0 * 1024.0,
        "g" | "gi" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        other => {
            return Err(bad(
                s,
                format!("unknown unit {other:?}; use B, KiB, MiB, GiB, KB, MB or GB"),
            ))
        }
    };
    let bytes = value * mult;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(bad(s, "rate too large"));
    }
    Ok(match bytes as u64 {
        0 => None,
        n => Some(n),
    })
}

const WEEK_MINUTES: u32 = 7 * 24 * 60;
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A bandwidth limit that may change with the local time of day (and day
/// of week). A single rate is a schedule with one entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Schedule {
    /// (minute of the week, Monday 00:00 = 0; rate), sorted by minute.
    entries: Vec<(u32, Rate)>,
    text: String,
}

impl Schedule {
    /// The rate in force at a minute of the week: the latest entry at or
    /// before it, wrapping around to last week's final entry.
    pub fn rate_at_minute(&self, minute_of_week: u32) -> Rate {
        let m = minute_of_week % WEEK_MINUTES;
        match self.entries.iter().rev().find(|(start, _)| *start <= m) {
            Some((_, rate)) => *rate,
            None => self.entries.last().map(|(_, r)| *r).unwrap_or(None),
        }
    }

    /// The rate in force now, by the local clock.
    pub fn rate_now(&self) -> Rate {
        if self.entries.len() == 1 {
            return self.entries[0].1;
        }
        let now = chrono::Local::now();
        let minute =
            now.weekday().num_days_from_monday() * 24 * 60 + now.hour() * 60 + now.minute();
        self.rate_at_minute(minute)
    }

    /// Whether this schedule never limits anything.
    pub fn is_off(&self) -> bool {
        self.entries.iter().all(|(_, r)| r.is_none())
    }
}

fn parse_time(s: &str, t: &str) -> Result<u32, ParseError> {
    let (h, m) = t
        .split_once(':')
        .ok_or_else(|| bad(s, format!("time {t:?} is not HH:MM")))?;
    let h: u32 = h
        .parse()
        .map_err(|_| bad(s, format!("bad hour in {t:?}")))?;
    let m: u32 = m
        .parse()
        .map_err(|_| bad(s, format!("bad minute in {t:?}")))?;
    if h > 23 || m > 59 {
        return Err(bad(s, format!("time {t:?} out of range")));
    }
    Ok(h * 60 + m)
}

impl FromStr for Schedule {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Schedule, ParseError> {
        let text = s.trim().to_string();
        if !text.contains(',') {
            return Ok(Schedule {
                entries: vec![(0, parse_rate(&text)?)],
                text,
            });
        }
        let mut entries = Vec::new();
        for item in text.split_whitespace() {
            let (when, rate) = item
                .split_once(',')
                .ok_or_else(|| bad(s, format!("entry {item:?} is not TIME,RATE")))?;
            let rate = parse_rate(rate)?;
            match when.split_once('-') {
                Some((day, time)) => {
                    let d = DAYS
                        .iter()
                        .position(|d| d.eq_ignore_ascii_case(day))
                        .ok_or_else(|| bad(s, format!("unknown day {day:?}; use Mon..Sun")))?;
                    entries.push((d as u32 * 24 * 60 + parse_time(s, time)?, rate));
                }
                None => {
                    let t = parse_time(s, when)?;
                    entries.extend((0..7).map(|d| (d * 24 * 60 + t, rate)));
                }
            }
        }
        if entries.is_empty() {
            return Err(bad(s, "empty timetable"));
        }
        // A later entry for the same minute wins, as it was written later.
        entries.sort_by_key(|(m, _)| *m);
        entries.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                earlier.1 = later.1;
            }
            same
        });
        Ok(Schedule { entries, text })
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl TryFrom<String> for Schedule {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        s.parse()
    }
}

impl From<Schedule> for String {
    fn from(s: Schedule) -> String {
        s.text
    }
}
