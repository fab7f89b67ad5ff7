//! Cron schedules (`*/5 * * * *`, `0 3 * * 1-5`, `@hourly`) evaluated on the virtual clock (UTC).

use super::clock::Millis;

/// A parsed five-field schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    days: Vec<bool>,
    months: Vec<bool>,
    weekdays: Vec<bool>,
    days_any: bool,
    weekdays_any: bool,
}

impl Schedule {
    /// Parses standard cron syntax and the `@` shorthands.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let expanded = match text.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "expected exactly 5 fields, found {}: {text:?}",
                fields.len()
            ));
        }
        let field = |i: usize, min: usize, max: usize| {
            parse_field(fields[i], min, max).map_err(|e| format!("{e} in {text:?}"))
        };
        Ok(Schedule {
            minutes: field(0, 0, 59)?,
            hours: field(1, 0, 23)?,
            days: field(2, 1, 31)?,
            months: field(3, 1, 12)?,
            weekdays: {
                let mut w = field(4, 0, 7)?;
                if w[7] {
                    w[0] = true;
                }
                w
            },
            days_any: fields[2] == "*" || fields[2] == "?",
            weekdays_any: fields[4] == "*" || fields[4] == "?",
        })
    }

    /// The first instant strictly after `after` that matches (minute resolution).
    pub fn next_after(&self, after: Millis) -> Option<Millis> {
        let mut t = (after.div_euclid(60_000) + 1) * 60_000;
        // Four years of minutes is more than any valid schedule needs.
        for _ in 0..(4 * 366 * 24 * 60) {
            let (month, day, weekday, hour, minute) = parts(t);
            let day_ok = match (self.days_any, self.weekdays_any) {
                (true, true) => true,
                (true, false) => self.weekdays[weekday],
                (false, true) => self.days[day],
                (false, false) => self.days[day] || self.weekdays[weekday],
            };
            if !self.months[month] {
                t += 60_000;
                continue;
            }
            if day_ok && self.hours[hour] && self.minutes[minute] {
                return Some(t);
            }
            t += 60_000;
        }
        None
    }
}

fn parse_field(text: &str, min: usize, max: usize) -> Result<Vec<bool>, String> {
    let mut set = vec![false; max + 1];
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<usize>()
                    .map_err(|_| format!("invalid step {s:?}"))?,
            ),
            None => (part, 1),
        };
        if step == 0 {
            return Err("step must be positive".into());
        }
        let (lo, hi) = if range == "*" || range == "?" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (num(a, min, max)?, num(b, min, max)?)
        } else {
            let v = num(range, min, max)?;
            (v, if part.contains('/') { max } else { v })
        };
        if lo > hi {
            return Err(format!("invalid range {range:?}"));
        }
        for v in (lo..=hi).step_by(step) {
            set[v] = true;
        }
    }
    Ok(set)
}

fn num(text: &str, min: usize, max: usize) -> Result<usize, String> {
    let v: usize = text
        .parse()
        .map_err(|_| format!("invalid value {text:?}"))?;
    if v < min || v > max {
        return Err(format!("value {v} out of range [{min}, {max}]"));
    }
    Ok(v)
}

fn parts(t: Millis) -> (usize, usize, usize, usize, usize) {
    let text = super::clock::rfc3339(t);
    let n = |r: std::ops::Range<usize>| text[r].parse::<usize>().unwrap_or(0);
    let days = t.div_euclid(86_400_000);
    // 1970-01-01 was a Thursday (4).
    let weekday = (days + 4).rem_euclid(7) as usize;
    (n(5..7), n(8..10), weekday, n(11..13), n(14..16))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::clock::{GENESIS, parse_rfc3339};

    #[test]
    fn schedules_find_the_next_minute() {
        let s = Schedule::parse("*/5 * * * *").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.next_after(GENESIS), Some(GENESIS + 5 * 60_000));
        let daily = Schedule::parse("@daily").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            daily.next_after(GENESIS),
            parse_rfc3339("2026-01-02T00:00:00Z")
        );
        // 2026-01-01 is a Thursday: the next Monday is the 5th.
        let monday = Schedule::parse("30 9 * * 1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            monday.next_after(GENESIS),
            parse_rfc3339("2026-01-05T09:30:00Z")
        );
        assert!(Schedule::parse("61 * * * *").is_err());
        assert!(Schedule::parse("* * *").is_err());
    }
}
