//! Go's text formats that leak into kustomize's output: `strconv.FormatFloat(f, 'g', -1, 64)`,
//! `encoding/json`'s float printing, and `time.Parse`/`time.Format(RFC3339Nano)` for the
//! timestamp layouts go-yaml accepts.
//!
//! Invariant: pure functions from values to text, no YAML knowledge.

/// The shortest decimal digits of a finite, non-zero `f` and its decimal point position:
/// `f = 0.d1d2d3… × 10^point`.
fn shortest_digits(f: f64) -> (String, i32) {
    // Rust's `{:e}` prints the shortest round-tripping digits, like Go's shortest mode.
    let text = format!("{:e}", f.abs());
    let (mantissa, exponent) = text.split_once('e').unwrap_or((text.as_str(), "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exponent: i32 = exponent.parse().unwrap_or(0);
    (digits, exponent + 1)
}

/// `strconv.FormatFloat(f, 'g', -1, 64)`: `1e+21`, `1.2345675e+06`, `0.5`, `1e-05`.
pub(crate) fn format_float_g(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    if f == 0.0 {
        return format!("{sign}0");
    }
    let (digits, point) = shortest_digits(f);
    let exp = point - 1;
    // Go uses %e when the exponent is < -4 or >= 6 in shortest mode.
    if !(-4..6).contains(&exp) {
        let mut out = String::from(sign);
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let abs = exp.unsigned_abs();
        if abs < 10 {
            out.push('0');
        }
        out.push_str(&abs.to_string());
        out
    } else {
        format!("{sign}{}", fixed_notation(&digits, point))
    }
}

/// Digits placed around the decimal point without an exponent.
fn fixed_notation(digits: &str, point: i32) -> String {
    if point <= 0 {
        format!("0.{}{}", "0".repeat(point.unsigned_abs() as usize), digits)
    } else if point as usize >= digits.len() {
        format!("{}{}", digits, "0".repeat(point as usize - digits.len()))
    } else {
        let (int, frac) = digits.split_at(point as usize);
        format!("{int}.{frac}")
    }
}

/// How a float value ends up in kustomize's YAML: `json.Marshal` prints it, go-yaml v2 reads
/// that text back (integral values within range become ints) and prints it again.
pub(crate) fn format_float_for_yaml(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e21 {
        // encoding/json prints integral floats below 1e21 as plain digits, which v2 reads
        // back as an int when they fit 64 bits.
        if f == 0.0 {
            return "0".into();
        }
        let (digits, point) = shortest_digits(f);
        let text = fixed_notation(&digits, point);
        if f < 0.0 {
            if let Ok(i) = format!("-{text}").parse::<i64>() {
                return i.to_string();
            }
        } else if let Ok(u) = text.parse::<u64>() {
            return u.to_string();
        }
    }
    format_float_g(f)
}

/// A civil date and time with a fixed UTC offset, as `time.Parse` yields it.
struct Timestamp {
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
    offset_seconds: i32,
}

/// go-yaml's `parseTimestamp`: the four layouts it tries with `time.Parse`, printed as
/// `time.Time.MarshalJSON` would (RFC 3339 with nanoseconds, trailing zeros trimmed).
pub(crate) fn parse_yaml_timestamp(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return None;
    }
    let ts = parse_datetime(b)?;
    Some(format_rfc3339_nano(&ts))
}

/// A cursor over the value being parsed, with Go's `getnum` helpers.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    /// One or two digits, as Go's `getnum(value, false)`.
    fn short_num(&mut self) -> Option<u32> {
        let first = *self.b.get(self.i)?;
        if !first.is_ascii_digit() {
            return None;
        }
        self.i += 1;
        let mut n = u32::from(first - b'0');
        if let Some(&second) = self.b.get(self.i)
            && second.is_ascii_digit()
        {
            self.i += 1;
            n = n * 10 + u32::from(second - b'0');
        }
        Some(n)
    }

    /// Exactly two digits, as Go's `getnum(value, true)`.
    fn two_digits(&mut self) -> Option<u32> {
        let a = *self.b.get(self.i)?;
        let c = *self.b.get(self.i + 1)?;
        if !a.is_ascii_digit() || !c.is_ascii_digit() {
            return None;
        }
        self.i += 2;
        Some(u32::from(a - b'0') * 10 + u32::from(c - b'0'))
    }

    fn literal(&mut self, c: u8) -> Option<()> {
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    fn at_end(&self) -> bool {
        self.i == self.b.len()
    }
}

fn parse_datetime(b: &[u8]) -> Option<Timestamp> {
    let mut cur = Cursor { b, i: 0 };
    let year = std::str::from_utf8(&b[..4]).ok()?.parse().ok()?;
    cur.i = 5;
    let month = cur.short_num()?;
    cur.literal(b'-')?;
    let day = cur.short_num()?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut ts = Timestamp {
        year,
        month,
        day,
        hour: 0,
        minute: 0,
        second: 0,
        nanos: 0,
        offset_seconds: 0,
    };
    if cur.at_end() {
        return Some(ts);
    }
    let with_zone = match b[cur.i] {
        b'T' | b't' => true,
        b' ' => false,
        _ => return None,
    };
    cur.i += 1;
    ts.hour = cur.short_num()?;
    cur.literal(b':')?;
    ts.minute = cur.short_num()?;
    cur.literal(b':')?;
    ts.second = cur.short_num()?;
    if ts.hour >= 24 || ts.minute >= 60 || ts.second >= 60 {
        return None;
    }
    // Go accepts a comma or a period before the fraction and keeps at most 9 digits.
    if matches!(b.get(cur.i), Some(b'.' | b',')) && b.get(cur.i + 1).is_some_and(u8::is_ascii_digit)
    {
        cur.i += 1;
        let start = cur.i;
        while cur.i < b.len() && b[cur.i].is_ascii_digit() {
            cur.i += 1;
        }
        let frac = &b[start..cur.i.min(start + 9)];
        let mut nanos = 0u32;
        for (k, &d) in frac.iter().enumerate() {
            nanos += u32::from(d - b'0') * 10u32.pow(8 - k as u32);
        }
        ts.nanos = nanos;
    }
    if with_zone && cur.literal(b'Z').is_none() {
        let sign = match b.get(cur.i)? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        cur.i += 1;
        let hours = cur.two_digits()?;
        cur.literal(b':')?;
        let minutes = cur.two_digits()?;
        // Go's range test is deliberately lax: offsets up to 24h and 60 minutes pass.
        if hours > 24 || minutes > 60 {
            return None;
        }
        ts.offset_seconds = sign * (hours * 3600 + minutes * 60) as i32;
    }
    cur.at_end().then_some(ts)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `time.RFC3339Nano`: `2006-01-02T15:04:05.999999999Z07:00`.
fn format_rfc3339_nano(ts: &Timestamp) -> String {
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        ts.year, ts.month, ts.day, ts.hour, ts.minute, ts.second
    );
    if ts.nanos != 0 {
        let frac = format!("{:09}", ts.nanos);
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    if ts.offset_seconds == 0 {
        out.push('Z');
    } else {
        let sign = if ts.offset_seconds < 0 { '-' } else { '+' };
        let abs = ts.offset_seconds.unsigned_abs();
        out.push_str(&format!("{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_g_format() {
        let cases = [
            (1.0, "1"),
            (1e21, "1e+21"),
            (1e20, "1e+20"),
            (1234567.5, "1.2345675e+06"),
            (123456.5, "123456.5"),
            (0.00001, "1e-05"),
            (0.0001, "0.0001"),
            (-2.5, "-2.5"),
            (1e100, "1e+100"),
            (0.1, "0.1"),
            (5e-324, "5e-324"),
        ];
        for (f, want) in cases {
            assert_eq!(format_float_g(f), want, "{f}");
        }
    }

    #[test]
    fn floats_as_kustomize_prints_them() {
        let cases = [
            (1.0, "1"),
            (-0.0, "0"),
            (1e19, "10000000000000000000"),
            (1e20, "1e+20"),
            (-9.3e18, "-9.3e+18"),
            (1.5, "1.5"),
            (1e6, "1000000"),
        ];
        for (f, want) in cases {
            assert_eq!(format_float_for_yaml(f), want, "{f}");
        }
    }

    #[test]
    fn timestamps() {
        let cases = [
            ("2001-12-14", Some("2001-12-14T00:00:00Z")),
            ("2001-12-14 21:59:43.10", Some("2001-12-14T21:59:43.1Z")),
            (
                "2001-12-14t21:59:43.10-05:00",
                Some("2001-12-14T21:59:43.1-05:00"),
            ),
            ("2001-1-2T3:4:5Z", Some("2001-01-02T03:04:05Z")),
            (
                "2001-12-14T21:59:43,123456789123Z",
                Some("2001-12-14T21:59:43.123456789Z"),
            ),
            ("2001-12-14T21:59:43+00:00", Some("2001-12-14T21:59:43Z")),
            ("2001-02-29", None),
            ("2000-02-29", Some("2000-02-29T00:00:00Z")),
            ("2001-12-14 21:59:43.10 -5", None),
            ("2001-12-14T21:59:43", None),
            ("2001-12-14 24:00:00", None),
            ("20011-12-14", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_yaml_timestamp(text).as_deref(), want, "{text}");
        }
    }
}
