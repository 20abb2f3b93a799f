//! Cron expressions for `VWED.timer.cron`: five fields (minute hour day month
//! weekday) or six with seconds first. Fields take `*`, numbers, `a-b`, lists and
//! `/step`; months and weekdays also take names (`jan`, `mon`). Times are in the
//! time zone of the instant given: local for `VWED.timer.cron`, the job's own zone
//! for jobs (`jobs/triggers.rs`).

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CronError {
    #[error("cron 表达式需要 5 或 6 个字段, 得到 {0} 个: {1}")]
    FieldCount(usize, String),
    #[error("cron 字段 {field} 无效: {value}")]
    Field { field: &'static str, value: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    seconds: u64,
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    /// Both day fields restricted: a day matches if either matches (classic cron).
    day_or: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn parse_field(
    text: &str,
    field: &'static str,
    min: u32,
    max: u32,
    names: &[&str],
    name_base: u32,
) -> Result<(u64, bool), CronError> {
    let bad = || CronError::Field {
        field,
        value: text.to_string(),
    };
    let value = |s: &str| -> Result<u32, CronError> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(i as u32 + name_base);
        }
        let v: u32 = s.parse().map_err(|_| bad())?;
        // Weekday 7 is Sunday too.
        let v = if field == "weekday" && v == 7 { 0 } else { v };
        if v < min || v > max {
            return Err(bad());
        }
        Ok(v)
    };
    let mut bits = 0u64;
    let mut star = false;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().map_err(|_| bad())?),
            None => (part, 1),
        };
        if step == 0 {
            return Err(bad());
        }
        let (lo, hi) = if range == "*" {
            star = step == 1;
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(range)?;
            (v, if part.contains('/') { max } else { v })
        };
        if lo > hi {
            return Err(bad());
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, star))
}

impl Schedule {
    pub fn parse(expr: &str) -> Result<Schedule, CronError> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let (sec, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            n => return Err(CronError::FieldCount(n, expr.to_string())),
        };
        let (seconds, _) = parse_field(sec, "second", 0, 59, &[], 0)?;
        let (minutes, _) = parse_field(rest[0], "minute", 0, 59, &[], 0)?;
        let (hours, _) = parse_field(rest[1], "hour", 0, 23, &[], 0)?;
        let (days, day_star) = parse_field(rest[2], "day", 1, 31, &[], 0)?;
        let (months, _) = parse_field(rest[3], "month", 1, 12, &MONTHS, 1)?;
        let (weekdays, wd_star) = parse_field(rest[4], "weekday", 0, 6, &DAYS, 0)?;
        Ok(Schedule {
            seconds,
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays: weekdays as u8,
            day_or: !day_star && !wd_star,
        })
    }

    fn day_matches<T: TimeZone>(&self, t: &DateTime<T>) -> bool {
        let dom = self.days & (1 << t.day()) != 0;
        let dow = self.weekdays & (1 << t.weekday().num_days_from_sunday()) != 0;
        if self.day_or { dom || dow } else { dom && dow }
    }

    /// The first matching second strictly after `after`, searched up to five years
    /// ahead (an expression such as `0 0 31 2 *` never matches).
    pub fn next_after<Tz: TimeZone>(&self, after: DateTime<Tz>) -> Option<DateTime<Tz>> {
        let zone = after.timezone();
        let mut t = after.with_nanosecond(0)? + Duration::seconds(1);
        let limit = after.clone() + Duration::days(366 * 5);
        while t < limit {
            if self.months & (1 << t.month()) == 0 {
                let (y, m) = if t.month() == 12 {
                    (t.year() + 1, 1)
                } else {
                    (t.year(), t.month() + 1)
                };
                t = zone.with_ymd_and_hms(y, m, 1, 0, 0, 0).earliest()?;
                continue;
            }
            if !self.day_matches(&t) {
                t = (t + Duration::days(1))
                    .with_hour(0)?
                    .with_minute(0)?
                    .with_second(0)?;
                continue;
            }
            if self.hours & (1 << t.hour()) == 0 {
                t = (t + Duration::hours(1)).with_minute(0)?.with_second(0)?;
                continue;
            }
            if self.minutes & (1 << t.minute()) == 0 {
                t = (t + Duration::minutes(1)).with_second(0)?;
                continue;
            }
            if self.seconds & (1 << t.second()) == 0 {
                t += Duration::seconds(1);
                continue;
            }
            return Some(t);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Local;

    fn at(s: &str) -> DateTime<Local> {
        let naive = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").expect("time");
        Local.from_local_datetime(&naive).earliest().expect("local")
    }

    #[test]
    fn every_five_minutes() {
        let s = Schedule::parse("*/5 * * * *").expect("parse");
        assert_eq!(
            s.next_after(at("2026-03-10 10:02:30")),
            Some(at("2026-03-10 10:05:00"))
        );
        assert_eq!(
            s.next_after(at("2026-03-10 10:05:00")),
            Some(at("2026-03-10 10:10:00"))
        );
    }

    #[test]
    fn seconds_field_and_names() {
        let s = Schedule::parse("*/10 * * * * mon-fri").expect("parse");
        // 2026-03-14 is a Saturday.
        assert_eq!(
            s.next_after(at("2026-03-14 12:00:00")),
            Some(at("2026-03-16 00:00:00"))
        );
        let s = Schedule::parse("0 30 8 1 jan *").expect("parse");
        assert_eq!(
            s.next_after(at("2026-03-14 12:00:00")),
            Some(at("2027-01-01 08:30:00"))
        );
    }

    #[test]
    fn bad_expressions_are_refused() {
        for bad in [
            "* * * *",
            "61 * * * *",
            "*/0 * * * *",
            "a * * * *",
            "5-1 * * * *",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }
}
