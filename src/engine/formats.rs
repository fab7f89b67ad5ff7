//! String formats of CRD schemas, checked as kube-apiserver 1.31 checks them.
//!
//! The API server strips the formats its version does not support
//! (`supportedVersionedFormats` in apiextensions-apiserver: names compared with every `-`
//! removed, so `date-time` is `datetime`), then kube-openapi's validator checks a string
//! against the formats its registry (`strfmt.Default`) knows. Each checker here follows the
//! Go function that registry calls: `net.ParseIP`, `net.ParseMAC`, `url.ParseRequestURI`,
//! `mail.ParseAddress`, `time.ParseDuration` (with strfmt's Scala-like fallback), strfmt's
//! own date and date-time rules and govalidator's patterns and checksums.
//! `quantity` is supported but no checker is registered for it in 1.31, so any string
//! passes; `password` accepts everything. Formats on numbers (`int32`, `double`…) are not
//! string formats: [`string_format`] answers `None` for them.

use std::net::Ipv6Addr;
use std::sync::OnceLock;

use regex::Regex;

/// The formats the API server validates on strings (supported by 1.31 and registered).
const CHECKED: &[&str] = &[
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
];

/// The format a schema node checks its string values against, as named in the schema
/// (`date-time`), or `None` when the API server checks none: no format, a format its
/// version strips, one without a registered checker, or a schema that is not for strings.
pub fn string_format(schema: &serde_json::Value) -> Option<&str> {
    let format = schema.get("format").and_then(serde_json::Value::as_str)?;
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(serde_json::Value::as_bool)
        == Some(true);
    let for_strings = int_or_string
        || matches!(
            schema.get("type").and_then(serde_json::Value::as_str),
            None | Some("string")
        );
    (for_strings && CHECKED.contains(&normalized(format).as_str())).then_some(format)
}

/// The format a non-string value is type-checked against (kube-openapi's type validator
/// names it instead of the type): the string formats above, or `int32`/`int64` on integers
/// and `float`/`double` on numbers. Other formats are stripped by the API server.
pub fn kept_format(schema: &serde_json::Value) -> Option<&str> {
    let format = schema.get("format").and_then(serde_json::Value::as_str)?;
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(serde_json::Value::as_bool)
        == Some(true);
    let kept = match schema.get("type").and_then(serde_json::Value::as_str) {
        _ if int_or_string => {
            CHECKED.contains(&normalized(format).as_str()) || format == "quantity"
        }
        None | Some("string") => {
            CHECKED.contains(&normalized(format).as_str()) || normalized(format) == "quantity"
        }
        Some("integer") => matches!(format, "int32" | "int64"),
        Some("number") => matches!(format, "float" | "double"),
        Some(_) => false,
    };
    kept.then_some(format)
}

fn normalized(format: &str) -> String {
    format.replace('-', "")
}

/// Whether `value` is valid in `format` (a name [`string_format`] returned).
pub fn valid(format: &str, value: &str) -> bool {
    match normalized(format).as_str() {
        "bsonobjectid" => value.len() == 24 && value.bytes().all(|b| b.is_ascii_hexdigit()),
        "uri" => request_uri(value),
        "email" => email(value),
        "hostname" => hostname(value),
        "ipv4" => parse_ipv4(value, true).is_some() || sloppy_ipv6(value),
        "ipv6" => value.contains(':') && parse_ip(value),
        "cidr" => cidr(value),
        "mac" => mac(value),
        "uuid" => uuid(value, None),
        "uuid3" => uuid(value, Some('3')),
        "uuid4" => uuid(value, Some('4')),
        "uuid5" => uuid(value, Some('5')),
        "isbn" => isbn10(value) || isbn13(value),
        "isbn10" => isbn10(value),
        "isbn13" => isbn13(value),
        "creditcard" => credit_card(value),
        "ssn" => value.len() == 11 && matches(&SSN, r"^[0-9]{3}[- ]?[0-9]{2}[- ]?[0-9]{4}$", value),
        "hexcolor" => matches(&HEX_COLOR, "^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$", value),
        "rgbcolor" => rgb_color(value),
        "byte" => matches(
            &BASE64,
            "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$",
            value,
        ),
        "date" => date(value),
        "datetime" => date_time(value),
        "duration" => go_duration(value) || scala_duration(value),
        _ => true,
    }
}

static SSN: OnceLock<Regex> = OnceLock::new();
static HEX_COLOR: OnceLock<Regex> = OnceLock::new();
static BASE64: OnceLock<Regex> = OnceLock::new();
static RGB: OnceLock<Regex> = OnceLock::new();
static HOSTNAME: OnceLock<Regex> = OnceLock::new();
static TIME_OF_DAY: OnceLock<Regex> = OnceLock::new();
static SCALA_DURATION: OnceLock<Regex> = OnceLock::new();

/// Whether the fixed pattern `pattern` (compiled once into `cell`) matches.
fn matches(cell: &'static OnceLock<Regex>, pattern: &str, value: &str) -> bool {
    cell.get_or_init(|| Regex::new(pattern).unwrap_or_else(|_| unreachable_pattern()))
        .is_match(value)
}

/// The fixed patterns of this module are tested to compile; a pattern that cannot would
/// be a bug caught by the unit tests, never by input.
fn unreachable_pattern() -> Regex {
    Regex::new("$^").unwrap_or_else(|_| panic!("the empty pattern compiles"))
}

/// Go's `net.ParseIP` for dotted IPv4: four decimal fields of at most 255; `sloppy` (as
/// `k8s.io/utils/net.ParseIPSloppy`) allows leading zeros, which Go 1.17+ refuses.
fn parse_ipv4(s: &str, sloppy: bool) -> Option<[u8; 4]> {
    let fields: Vec<&str> = s.split('.').collect();
    if fields.len() != 4 {
        return None;
    }
    let mut out = [0u8; 4];
    for (i, field) in fields.iter().enumerate() {
        if field.is_empty()
            || field.len() > 3 && !sloppy
            || !field.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        if !sloppy && field.len() > 1 && field.starts_with('0') {
            return None;
        }
        let n: u32 = field.parse().ok()?;
        out[i] = u8::try_from(n).ok()?;
    }
    Some(out)
}

/// Go's `net.ParseIP`: IPv4 or IPv6 (no zone).
fn parse_ip(s: &str) -> bool {
    parse_ipv4(s, false).is_some() || (!s.contains('%') && s.parse::<Ipv6Addr>().is_ok())
}

/// strfmt's `ipv4` accepts whatever `ParseIPSloppy` parses when the text has a dot: an
/// IPv6 address with an embedded IPv4 part too.
fn sloppy_ipv6(s: &str) -> bool {
    s.contains('.') && s.contains(':') && !s.contains('%') && s.parse::<Ipv6Addr>().is_ok()
}

/// `ParseCIDRSloppy`: an address, `/`, and a decimal prefix length within its size.
fn cidr(s: &str) -> bool {
    let Some((addr, bits)) = s.split_once('/') else {
        return false;
    };
    if bits.is_empty() || !bits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let max = if addr.contains(':') { 128 } else { 32 };
    let ok_addr = if addr.contains(':') {
        !addr.contains('%') && addr.parse::<Ipv6Addr>().is_ok()
    } else {
        parse_ipv4(addr, true).is_some()
    };
    ok_addr && bits.len() <= 4 && bits.parse::<u32>().is_ok_and(|n| n <= max)
}

/// Go's `net.ParseMAC`: 6, 8 or 20 octets as `xx:xx…`, `xx-xx…` or `xxxx.xxxx…`.
fn mac(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 14 {
        return false;
    }
    let hex2 = |pair: &[u8]| pair.len() == 2 && pair.iter().all(u8::is_ascii_hexdigit);
    if b[2] == b':' || b[2] == b'-' {
        if !(b.len() + 1).is_multiple_of(3) {
            return false;
        }
        let n = (b.len() + 1) / 3;
        if ![6, 8, 20].contains(&n) {
            return false;
        }
        (0..n).all(|i| {
            let x = i * 3;
            hex2(&b[x..x + 2]) && (x + 2 == b.len() || b[x + 2] == b[2])
        })
    } else if b[4] == b'.' {
        if !(b.len() + 1).is_multiple_of(5) {
            return false;
        }
        let n = 2 * (b.len() + 1) / 5;
        if ![6, 8, 20].contains(&n) {
            return false;
        }
        (0..n / 2).all(|i| {
            let x = i * 5;
            hex2(&b[x..x + 2]) && hex2(&b[x + 2..x + 4]) && (x + 4 == b.len() || b[x + 4] == b'.')
        })
    } else {
        false
    }
}

fn uuid(s: &str, version: Option<char>) -> bool {
    static PLAIN: OnceLock<Regex> = OnceLock::new();
    static V3: OnceLock<Regex> = OnceLock::new();
    static V4: OnceLock<Regex> = OnceLock::new();
    static V5: OnceLock<Regex> = OnceLock::new();
    match version {
        None => matches(
            &PLAIN,
            "(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
            s,
        ),
        Some('3') => matches(
            &V3,
            "(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
            s,
        ),
        Some('4') => matches(
            &V4,
            "(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$",
            s,
        ),
        Some(_) => matches(
            &V5,
            "(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$",
            s,
        ),
    }
}

/// govalidator's ISBN input: whitespace and `-` removed (Go's `\s` is ASCII).
fn isbn_digits(s: &str) -> Vec<u8> {
    s.bytes()
        .filter(|b| !matches!(b, b'-' | b' ' | b'\t' | b'\n' | b'\x0c' | b'\r'))
        .collect()
}

fn isbn10(s: &str) -> bool {
    let d = isbn_digits(s);
    let shape = d.len() == 10
        && d[..9].iter().all(u8::is_ascii_digit)
        && (d[9].is_ascii_digit() || d[9] == b'X');
    if !shape {
        return false;
    }
    let mut sum: u32 = (0..9)
        .map(|i| (i as u32 + 1) * u32::from(d[i] - b'0'))
        .sum();
    sum += 10
        * if d[9] == b'X' {
            10
        } else {
            u32::from(d[9] - b'0')
        };
    sum.is_multiple_of(11)
}

fn isbn13(s: &str) -> bool {
    let d = isbn_digits(s);
    if d.len() != 13 || !d.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = (0..12)
        .map(|i| if i % 2 == 0 { 1 } else { 3 } * u32::from(d[i] - b'0'))
        .sum();
    u32::from(d[12] - b'0') == (10 - sum % 10) % 10
}

/// govalidator's `IsCreditCard`: the digits alone match a known issuer's shape and pass
/// the Luhn checksum.
fn credit_card(s: &str) -> bool {
    static CARD: OnceLock<Regex> = OnceLock::new();
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    if !matches(
        &CARD,
        "^(?:4[0-9]{12}(?:[0-9]{3})?|5[1-5][0-9]{14}|6(?:011|5[0-9][0-9])[0-9]{12}|3[47][0-9]{13}|3(?:0[0-5]|[68][0-9])[0-9]{11}|(?:2131|1800|35[0-9]{3})[0-9]{11})$",
        &digits,
    ) {
        return false;
    }
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let n = u32::from(b - b'0');
            match (i % 2 == 1, n * 2) {
                (false, _) => n,
                (true, d) if d >= 10 => d % 10 + 1,
                (true, d) => d,
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn rgb_color(s: &str) -> bool {
    const N: &str = r"(0|[1-9][0-9]?|1[0-9][0-9]?|2[0-4][0-9]|25[0-5])";
    const S: &str = r"[\t\n\x0C\r ]*";
    let pattern = format!(r"^rgb\({S}{N}{S},{S}{N}{S},{S}{N}{S}\)$");
    RGB.get_or_init(|| Regex::new(&pattern).unwrap_or_else(|_| unreachable_pattern()))
        .is_match(s)
}

/// strfmt's `IsHostname`: RFC 1034 labels (letters, digits, symbols and letters of any
/// script), a top-level label of 2–63 letters, at most 255 bytes and labels of at most 63.
fn hostname(s: &str) -> bool {
    let ok = matches(
        &HOSTNAME,
        r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|([a-zA-Z0-9\p{S}\p{L}](([-a-zA-Z0-9\p{S}\p{L}]{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}([a-zA-Z\p{L}]){2,63})$",
        s,
    );
    ok && s.len() <= 255 && s.split('.').all(|label| label.len() <= 63)
}

/// Go's `time.Parse("2006-01-02", s)`: a four-digit year, a two-digit month and a
/// two-digit day that exists in that month.
fn date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = &s[r];
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (Some(year), Some(month), Some(day)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// strfmt's `IsDateTime`: lower-cased and split at `t`, a valid date, then a time of day
/// `hh:mm:ss`, optional fraction, `z` or an offset, hours ≤ 23, minutes and seconds ≤ 59.
fn date_time(s: &str) -> bool {
    if s.len() < 4 {
        return false;
    }
    let lower = s.to_lowercase();
    let parts: Vec<&str> = lower.split('t').collect();
    if parts.len() < 2 || !date(parts[0]) {
        return false;
    }
    let re = TIME_OF_DAY.get_or_init(|| {
        Regex::new(r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$")
            .unwrap_or_else(|_| unreachable_pattern())
    });
    re.captures(parts[1]).is_some_and(|c| {
        let part = |i: usize| c.get(i).map_or("", |m| m.as_str());
        part(1) <= "23" && part(2) <= "59" && part(3) <= "59"
    })
}

/// Go's `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` with the units ns, us,
/// µs, μs, ms, s, m, h, or "0", within ±2⁶³ ns.
fn go_duration(s: &str) -> bool {
    let mut rest = s.strip_prefix(['-', '+']).unwrap_or(s);
    let negative = s.starts_with('-');
    if rest == "0" {
        return true;
    }
    if rest.is_empty() {
        return false;
    }
    let limit: u128 = 1 << 63;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let first = rest.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return false;
        }
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let mut whole: u128 = 0;
        for c in rest[..int_len].bytes() {
            whole = whole * 10 + u128::from(c - b'0');
            if whole > limit {
                return false;
            }
        }
        rest = &rest[int_len..];
        let mut fraction = (0f64, 1f64);
        let mut post = false;
        if let Some(after) = rest.strip_prefix('.') {
            let frac_len = after.bytes().take_while(u8::is_ascii_digit).count();
            for c in after[..frac_len].bytes() {
                if fraction.1 < 1e18 {
                    fraction = (fraction.0 * 10.0 + f64::from(c - b'0'), fraction.1 * 10.0);
                }
            }
            post = frac_len > 0;
            rest = &after[frac_len..];
        }
        if int_len == 0 && !post {
            return false;
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(rest.len(), |(i, _)| i);
        let unit: u128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return false,
        };
        rest = &rest[unit_len..];
        if whole > limit / unit {
            return false;
        }
        let mut value = whole * unit;
        if fraction.0 > 0.0 {
            value += (fraction.0 * (unit as f64 / fraction.1)) as u128;
            if value > limit {
                return false;
            }
        }
        total += value;
        if total > limit {
            return false;
        }
    }
    negative || total < limit
}

/// strfmt's fallback for durations like `3 days` or `1 hour 5 mins`: some `digits unit`
/// pair whose unit is one of ns/nano, us/µs/micro, ms/milli, s/sec, m/min, h/hr/hour,
/// d/day, w/wk/week (the last spelling of each as a prefix).
fn scala_duration(s: &str) -> bool {
    const UNITS: &[&[&str]] = &[
        &["ns", "nano"],
        &["us", "\u{b5}s", "micro"],
        &["ms", "milli"],
        &["s", "sec"],
        &["m", "min"],
        &["h", "hr", "hour"],
        &["d", "day"],
        &["w", "wk", "week"],
    ];
    let re = SCALA_DURATION.get_or_init(|| {
        Regex::new("(([0-9]+)[\t\n\x0C\r ]*([A-Za-z\u{b5}]+))")
            .unwrap_or_else(|_| unreachable_pattern())
    });
    let mut ok = false;
    for m in re.captures_iter(s) {
        let digits = m.get(2).map_or("", |d| d.as_str());
        // Go's strconv.Atoi fails past int64, and the whole parse fails with it.
        if digits.parse::<i64>().is_err() {
            return false;
        }
        let unit = m.get(3).map_or("", |u| u.as_str()).trim().to_lowercase();
        for variants in UNITS {
            let last = variants.len() - 1;
            for (i, variant) in variants.iter().enumerate() {
                if (i == last && unit.starts_with(variant)) || variant.eq_ignore_ascii_case(&unit) {
                    ok = true;
                }
            }
        }
    }
    ok
}

/// Go's `url.ParseRequestURI`: an absolute URI or an absolute path, no control bytes,
/// a well-formed authority (host, optional numeric port, userinfo) and `%` escapes.
fn request_uri(s: &str) -> bool {
    if s.is_empty() || s.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return false;
    }
    if s == "*" {
        return true;
    }
    let (scheme, rest) = match split_scheme(s) {
        Some(split) => split,
        None => return false,
    };
    let rest = match rest.split_once('?') {
        Some((before, _)) => before,
        None => rest,
    };
    if !rest.starts_with('/') {
        // A rootless path after a scheme is opaque (`mailto:x`); without one it is refused.
        return !scheme.is_empty();
    }
    let mut path = rest;
    if !scheme.is_empty()
        && let Some(after) = rest.strip_prefix("//")
    {
        let (authority, tail) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        };
        if !authority_ok(authority) {
            return false;
        }
        path = tail;
    }
    unescape_ok(path, Escape::Path)
}

/// Go's `getScheme`: the scheme and the rest; `None` when the text starts with `:`.
fn split_scheme(s: &str) -> Option<(&str, &str)> {
    for (i, c) in s.bytes().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
            b':' if i == 0 => return None,
            b':' => return Some((&s[..i], &s[i + 1..])),
            _ => return Some(("", s)),
        }
    }
    Some(("", s))
}

fn authority_ok(authority: &str) -> bool {
    let (userinfo, host) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    if !host_ok(host) {
        return false;
    }
    match userinfo {
        None => true,
        Some(user) => {
            user.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._:~!$&'()*+,;=%@".contains(&b))
                && unescape_ok(user, Escape::User)
        }
    }
}

fn host_ok(host: &str) -> bool {
    let port_ok = |port: &str| {
        port.is_empty()
            || port
                .strip_prefix(':')
                .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
    };
    if host.starts_with('[') {
        let Some(end) = host.rfind(']') else {
            return false;
        };
        if !port_ok(&host[end + 1..]) {
            return false;
        }
        return match host[..end].find("%25") {
            Some(zone) => {
                unescape_ok(&host[..zone], Escape::Host)
                    && unescape_ok(&host[zone..end], Escape::Zone)
                    && unescape_ok(&host[end..], Escape::Host)
            }
            None => unescape_ok(host, Escape::Host),
        };
    }
    if let Some(i) = host.rfind(':')
        && !port_ok(&host[i..])
    {
        return false;
    }
    unescape_ok(host, Escape::Host)
}

#[derive(Clone, Copy, PartialEq)]
enum Escape {
    Path,
    User,
    Host,
    Zone,
}

/// Go's `url.unescape` error cases: a `%` needs two hex digits; in a host only `%25` may
/// escape an ASCII byte, and a host or zone may hold no byte that must be escaped.
fn unescape_ok(s: &str, mode: Escape) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 >= b.len() || !b[i + 1].is_ascii_hexdigit() || !b[i + 2].is_ascii_hexdigit() {
                return false;
            }
            if mode == Escape::Host && hex_value(b[i + 1]) < 8 && &s[i..i + 3] != "%25" {
                return false;
            }
            if mode == Escape::Zone {
                let v = hex_value(b[i + 1]) << 4 | hex_value(b[i + 2]);
                if &s[i..i + 3] != "%25" && v != b' ' && host_byte_must_escape(v) {
                    return false;
                }
            }
            i += 3;
            continue;
        }
        if matches!(mode, Escape::Host | Escape::Zone) && b[i] < 0x80 && host_byte_must_escape(b[i])
        {
            return false;
        }
        i += 1;
    }
    true
}

fn hex_value(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

/// Go's `shouldEscape` in host mode: unreserved characters, sub-delims and the
/// characters of IPv6 literals and ports stay as they are.
fn host_byte_must_escape(c: u8) -> bool {
    !(c.is_ascii_alphanumeric() || b"-_.~!$&'()*+,;=:[]<>\"".contains(&c))
}

/// Go's `mail.ParseAddress` accepting the text as one address with a non-empty
/// addr-spec: `local@domain`, optionally followed by a `(comment)`, or
/// `display name <local@domain>`, or a group `name: address;` holding exactly one.
fn email(s: &str) -> bool {
    let mut p = MailParser { s };
    p.single_address()
}

struct MailParser<'a> {
    s: &'a str,
}

impl MailParser<'_> {
    fn single_address(&mut self) -> bool {
        let Some(count) = self.address(true) else {
            return false;
        };
        self.skip_cfws() && self.s.is_empty() && count == 1
    }

    /// The number of addresses parsed (a group may hold several), or `None` on error.
    fn address(&mut self, handle_group: bool) -> Option<usize> {
        self.skip_space();
        if self.s.is_empty() {
            return None;
        }
        let start = self.s;
        if self.addr_spec().is_some() {
            self.skip_space();
            if self.s.starts_with('(') {
                self.comment()?;
            }
            return Some(1);
        }
        self.s = start;
        if !self.s.starts_with('<') {
            self.phrase()?;
        }
        self.skip_space();
        if handle_group && let Some(rest) = self.s.strip_prefix(':') {
            self.s = rest;
            return self.group_list();
        }
        self.s = self.s.strip_prefix('<')?;
        self.addr_spec()?;
        self.s = self.s.strip_prefix('>')?;
        Some(1)
    }

    fn group_list(&mut self) -> Option<usize> {
        let mut count = 0;
        if !self.skip_cfws() {
            return None;
        }
        if let Some(rest) = self.s.strip_prefix(';') {
            self.s = rest;
            self.skip_cfws();
            return Some(0);
        }
        loop {
            if !self.skip_cfws() {
                return None;
            }
            count += self.address(false)?;
            if !self.skip_cfws() {
                return None;
            }
            if let Some(rest) = self.s.strip_prefix(';') {
                self.s = rest;
                self.skip_cfws();
                return Some(count);
            }
            self.s = self.s.strip_prefix(',')?;
        }
    }

    fn addr_spec(&mut self) -> Option<()> {
        self.skip_space();
        if self.s.is_empty() {
            return None;
        }
        if self.s.starts_with('"') {
            if self.quoted_string()?.is_empty() {
                return None;
            }
        } else {
            self.atom(true, false)?;
        }
        self.s = self.s.strip_prefix('@')?;
        self.skip_space();
        if self.s.is_empty() {
            return None;
        }
        if let Some(rest) = self.s.strip_prefix('[') {
            let end = rest.find(']')?;
            let literal = &rest[..end];
            if literal
                .chars()
                .any(|c| matches!(c, '[' | '\\') || !(c == ' ' || c == '\t' || is_vchar(c)))
            {
                return None;
            }
            if !parse_ip(literal) {
                return None;
            }
            self.s = &rest[end + 1..];
            return Some(());
        }
        self.atom(true, false).map(|_| ())
    }

    /// Words (atoms with dots allowed, or quoted strings) up to the angle address.
    fn phrase(&mut self) -> Option<()> {
        let mut words = 0;
        loop {
            if !self.skip_cfws() {
                return None;
            }
            if self.s.starts_with('"') {
                self.quoted_string()?;
            } else if self.atom(true, true).is_none() {
                break;
            }
            words += 1;
        }
        (words > 0).then_some(())
    }

    fn atom(&mut self, dot: bool, permissive: bool) -> Option<&str> {
        let end = self
            .s
            .char_indices()
            .find(|(_, c)| !is_atext(*c, dot))
            .map_or(self.s.len(), |(i, _)| i);
        if end == 0 {
            return None;
        }
        let atom = &self.s[..end];
        if !permissive && (atom.starts_with('.') || atom.ends_with('.') || atom.contains("..")) {
            return None;
        }
        self.s = &self.s[end..];
        Some(atom)
    }

    fn quoted_string(&mut self) -> Option<String> {
        let mut out = String::new();
        let chars = self.s.char_indices().skip(1);
        let mut escaped = false;
        for (i, c) in chars {
            if escaped {
                if !(is_vchar(c) || c == ' ' || c == '\t') {
                    return None;
                }
                out.push(c);
                escaped = false;
            } else if c == '"' {
                self.s = &self.s[i + 1..];
                return Some(out);
            } else if c == '\\' {
                escaped = true;
            } else if is_qtext(c) || c == ' ' || c == '\t' {
                out.push(c);
            } else {
                return None;
            }
        }
        None
    }

    fn comment(&mut self) -> Option<()> {
        let mut depth = 0;
        for (i, c) in self.s.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        self.s = &self.s[i + 1..];
                        return Some(());
                    }
                }
                _ => {}
            }
        }
        None
    }

    fn skip_space(&mut self) {
        self.s = self.s.trim_start_matches([' ', '\t']);
    }

    /// Skips folding white space and comments; false on an unclosed comment.
    fn skip_cfws(&mut self) -> bool {
        self.skip_space();
        while self.s.starts_with('(') {
            if self.comment().is_none() {
                return false;
            }
            self.skip_space();
        }
        true
    }
}

fn is_vchar(c: char) -> bool {
    ('!'..='~').contains(&c) || !c.is_ascii()
}

fn is_atext(c: char, dot: bool) -> bool {
    match c {
        '.' => dot,
        '(' | ')' | '<' | '>' | '[' | ']' | ':' | ';' | '@' | '\\' | ',' | '"' => false,
        _ => is_vchar(c),
    }
}

fn is_qtext(c: char) -> bool {
    c != '\\' && c != '"' && is_vchar(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(format: &str, good: &[&str], bad: &[&str]) {
        for v in good {
            assert!(valid(format, v), "{format}: {v:?} should be valid");
        }
        for v in bad {
            assert!(!valid(format, v), "{format}: {v:?} should be invalid");
        }
    }

    #[test]
    fn only_supported_registered_string_formats_are_checked() {
        assert_eq!(
            string_format(&json!({"type": "string", "format": "date-time"})),
            Some("date-time")
        );
        assert_eq!(string_format(&json!({"format": "email"})), Some("email"));
        assert_eq!(
            string_format(&json!({"type": "string", "format": "quantity"})),
            None
        );
        assert_eq!(
            string_format(&json!({"type": "string", "format": "int-or-string"})),
            None
        );
        assert_eq!(
            string_format(&json!({"type": "integer", "format": "int64"})),
            None
        );
        assert_eq!(
            string_format(&json!({"type": "integer", "format": "email"})),
            None
        );
        assert_eq!(
            kept_format(&json!({"type": "integer", "format": "int32"})),
            Some("int32")
        );
        assert_eq!(
            kept_format(&json!({"type": "integer", "format": "uint8"})),
            None
        );
        assert_eq!(
            kept_format(&json!({"type": "number", "format": "double"})),
            Some("double")
        );
        assert_eq!(
            kept_format(&json!({"type": "boolean", "format": "date"})),
            None
        );
    }

    #[test]
    fn network_formats_follow_go_net() {
        check(
            "ipv4",
            &["1.2.3.4", "010.1.1.1", "::ffff:1.2.3.4"],
            &["1.2.3", "256.1.1.1", "::1", "a.b.c.d", ""],
        );
        check(
            "ipv6",
            &["::1", "2001:db8::8a2e:370:7334", "::ffff:1.2.3.4"],
            &["1.2.3.4", "fe80::1%eth0", ":::", "12345::"],
        );
        check(
            "cidr",
            &["10.0.0.0/8", "010.0.0.0/8", "2001:db8::/32", "0.0.0.0/0"],
            &[
                "10.0.0.0/33",
                "10.0.0.0",
                "10.0.0.0/",
                "::/129",
                "10.0.0.0/-1",
            ],
        );
        check(
            "mac",
            &[
                "00:00:5e:00:53:01",
                "00-00-5E-00-53-01",
                "0000.5e00.5301",
                "00:00:5e:00:53:01:02:03",
            ],
            &[
                "00:00:5e:00:53",
                "00:00:5e:00:53:0g",
                "00:00-5e:00:53:01",
                "0000.5e00.53",
                "",
            ],
        );
        check(
            "hostname",
            &[
                "example.com",
                "x",
                "x-y",
                "localhost",
                "ex$ample",
                "www.example.ôlà",
                "xn--bcher-kva.example",
            ],
            // strfmt's pattern allows one dash only right after a single-label's first letter.
            &[
                "my-host",
                "-www",
                "www-",
                "www.example-.org",
                "www.ex ample.org",
                "_www.example.org",
                "a.b.c.d",
                "x.",
                &"a".repeat(64),
            ],
        );
        check(
            "uri",
            &[
                "https://example.com/a?b=c",
                "/absolute/path",
                "mailto:a@b.c",
                "http://[::1]:8080/x",
                "http://u:p@h/",
            ],
            &[
                "relative/path",
                "",
                "http://exa mple.com/",
                "http://h:port/",
                "http://h/%zz",
                ":nope",
                "http://h/\u{1}",
            ],
        );
        check(
            "email",
            &[
                "a@b.c",
                "First Last <first@example.com>",
                "\"quoted name\"@example.com",
                "a@[1.2.3.4]",
                "x@y (comment)",
            ],
            &[
                "plain",
                "a@",
                "@b.c",
                "a@b..c",
                ".a@b.c",
                "First Last",
                "a@b.c, d@e.f",
                "<a@b.c",
            ],
        );
    }

    #[test]
    fn identifier_formats_follow_strfmt_and_govalidator() {
        check(
            "uuid",
            &[
                "123e4567-e89b-12d3-a456-426614174000",
                "123E4567E89B12D3A456426614174000",
            ],
            &[
                "123e4567-e89b-12d3-a456",
                "g23e4567-e89b-12d3-a456-426614174000",
            ],
        );
        check(
            "uuid3",
            &["a3bb189e-8bf9-3888-9912-ace4e6543002"],
            &["a3bb189e-8bf9-4888-9912-ace4e6543002"],
        );
        check(
            "uuid4",
            &["a3bb189e-8bf9-4888-9912-ace4e6543002"],
            &["a3bb189e-8bf9-4888-c912-ace4e6543002"],
        );
        check(
            "uuid5",
            &["a3bb189e-8bf9-5888-a912-ace4e6543002"],
            &["a3bb189e-8bf9-3888-a912-ace4e6543002"],
        );
        check(
            "bsonobjectid",
            &["507f1f77bcf86cd799439011"],
            &["507f1f77bcf86cd79943901", "507f1f77bcf86cd79943901z"],
        );
        check(
            "isbn10",
            &["0321751043", "0-321-75104-3", "080442957X"],
            &["0321751044", "032175104"],
        );
        check(
            "isbn13",
            &["978-0321751041", "9780321751041"],
            &["9780321751042"],
        );
        check("isbn", &["0321751043", "978-0321751041"], &["123"]);
        check(
            "creditcard",
            &["4111 1111 1111 1111", "5500-0000-0000-0004"],
            &["4111 1111 1111 1112", "1234"],
        );
        check(
            "ssn",
            &["123-45-6789", "123 45 6789"],
            &["123456789", "123-45-678x", "12-345-6789"],
        );
        check("hexcolor", &["#fff", "ABCDEF"], &["#ffff", "#ggg"]);
        check(
            "rgbcolor",
            &["rgb(255,255,255)", "rgb( 0 , 10 , 200 )"],
            &["rgb(256,0,0)", "rgb(1,2)"],
        );
        check("byte", &["aGVsbG8=", "aGVsbG8h"], &["", "aGVsbG8", "a=Vs"]);
        check("password", &["", "anything"], &[]);
    }

    #[test]
    fn time_formats_follow_go_time_and_strfmt() {
        check(
            "date",
            &["2024-02-29", "2023-12-31"],
            &[
                "2023-02-29",
                "2023-13-01",
                "2023-1-01",
                "2023-01-01T00:00:00Z",
            ],
        );
        check(
            "date-time",
            &[
                "2014-12-15T19:30:20.000Z",
                "2014-12-15t19:30:20+01:00",
                "2014-12-15T23:59:59Z",
            ],
            &[
                "2014-12-15",
                "2014-12-15T24:00:00Z",
                "2014-12-15 19:30:20Z",
                "2014-12-15T19:30:20",
            ],
        );
        check(
            "duration",
            &[
                "1h30m",
                "-1.5s",
                "0",
                "300ms",
                "2\u{b5}s",
                "3 days",
                "1 hour 5 mins",
                "1 week",
            ],
            &["", "1", "1x", ".s", "s", "9223372036854775808ns", "forever"],
        );
    }
}
