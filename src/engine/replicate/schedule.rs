//! Bandwidth timetables in rclone's `--bwlimit` form: a plain rate
//! (`50MiB/s`, `10M`, `off`) or `HH:MM,RATE` entries (`"08:00,10MiB 19:00,off"`),
//! each in force from its time of day until the next one, wrapping at midnight.

/// A bandwidth limit that may change with the time of day. `None` rates are
/// unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schedule {
    /// (minute of the day, bytes per second), sorted by minute.
    entries: Vec<(u32, Option<u64>)>,
}

/// Parses one rate: `off`, `0` (both unlimited) or a size with an optional `/s`.
pub fn parse_rate(s: &str) -> Result<Option<u64>, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let n = crate::util::parse_size(t.trim_end_matches("/s"))
        .map_err(|e| format!("bandwidth {e}; write e.g. 50MiB/s or off"))?;
    Ok((n > 0).then_some(n))
}

impl Schedule {
    /// The same limit all day.
    pub fn constant(rate: Option<u64>) -> Self {
        Schedule {
            entries: vec![(0, rate)],
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split_whitespace().collect();
        if parts.len() == 1 && !parts[0].contains(',') {
            return Ok(Self::constant(parse_rate(parts[0])?));
        }
        let mut entries = Vec::new();
        for p in parts {
            let (time, rate) = p
                .split_once(',')
                .ok_or_else(|| format!("timetable entry {p:?}: write HH:MM,RATE"))?;
            let (h, m) = time
                .split_once(':')
                .and_then(|(h, m)| Some((h.parse::<u32>().ok()?, m.parse::<u32>().ok()?)))
                .filter(|(h, m)| *h < 24 && *m < 60)
                .ok_or_else(|| format!("timetable entry {p:?}: {time:?} is not a time HH:MM"))?;
            entries.push((h * 60 + m, parse_rate(rate)?));
        }
        if entries.is_empty() {
            return Err("empty bandwidth timetable".into());
        }
        entries.sort_by_key(|e| e.0);
        Ok(Schedule { entries })
    }

    /// The limit in force at `minute` of the day (0..1440).
    pub fn rate_at(&self, minute: u32) -> Option<u64> {
        let last = self.entries.last()?;
        self.entries
            .iter()
            .rev()
            .find(|(m, _)| *m <= minute)
            .unwrap_or(last)
            .1
    }

    /// The limit in force now, by local time.
    pub fn rate_now(&self) -> Option<u64> {
        if self.entries.len() == 1 {
            return self.entries[0].1;
        }
        use chrono::Timelike;
        let now = chrono::Local::now();
        self.rate_at(now.hour() * 60 + now.minute())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timetable() {
        let s = Schedule::parse("08:00,10MiB 19:00,off").unwrap();
        assert_eq!(
            s.rate_at(7 * 60),
            None,
            "before the first entry the last one holds"
        );
        assert_eq!(s.rate_at(8 * 60), Some(10 << 20));
        assert_eq!(s.rate_at(18 * 60 + 59), Some(10 << 20));
        assert_eq!(s.rate_at(20 * 60), None);
        assert_eq!(
            Schedule::parse("50MiB/s").unwrap().rate_now(),
            Some(50 << 20)
        );
        assert_eq!(Schedule::parse("off").unwrap().rate_now(), None);
        assert!(Schedule::parse("25:00,1M").is_err());
        assert!(Schedule::parse("08:00 1M").is_err());
    }
}
