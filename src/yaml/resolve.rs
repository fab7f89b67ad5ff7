//! Plain scalar resolution as go-yaml does it: v3 rules when reading (what kustomize's kyaml
//! decodes), v2 rules when writing (what `sigs.k8s.io/yaml` re-reads, which decides quoting).
//!
//! Invariant: this file only classifies text; it never builds documents or prints YAML.

use super::goformat;

/// What a scalar's text stands for once resolved.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Resolved {
    /// `~`, `null`, `Null`, `NULL` or the empty scalar.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer that fits in i64.
    Int(i64),
    /// An integer beyond i64 that fits in u64.
    Uint(u64),
    /// A float, possibly infinite or NaN (`.inf`, `.nan`).
    Float(f64),
    /// A timestamp, already printed as Go's `json.Marshal` prints a `time.Time`.
    Timestamp(String),
    /// Anything else: the text itself.
    Str,
}

/// The YAML version whose resolver to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// go-yaml v2 (YAML 1.1 booleans such as `yes`, `on`, `n`).
    V2,
    /// go-yaml v3 (only `true`/`false` spellings are booleans, `0o` octals).
    V3,
}

/// Resolves an untagged plain scalar, as go-yaml's `resolve("", text)`.
pub(crate) fn resolve_plain(text: &str, version: Version) -> Resolved {
    let Some(&first) = text.as_bytes().first() else {
        return Resolved::Null;
    };
    let hint = match first {
        b'+' | b'-' | b'0'..=b'9' => Hint::Number,
        b'y' | b'Y' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'o' | b'O' | b'~' => Hint::Word,
        b'.' => Hint::Dot,
        _ => return Resolved::Str,
    };
    if let Some(known) = lookup_word(text, version) {
        return known;
    }
    match hint {
        Hint::Word => Resolved::Str,
        Hint::Dot => match go_parse_float(text) {
            Some(f) => Resolved::Float(f),
            None => Resolved::Str,
        },
        Hint::Number => resolve_number(text, version, true),
    }
}

/// Resolves text as `resolve` does when the scalar carries the explicit tag `tag` (in short
/// form, e.g. `!!int`). Returns `Err(cause)` when the text cannot be decoded as that tag.
pub(crate) fn resolve_tagged(text: &str, tag: &str) -> Result<Resolved, String> {
    let resolved = match tag {
        "!!str" => return Ok(Resolved::Str),
        "!!null" | "!!bool" | "!!int" | "!!float" | "!!timestamp" => {
            let Some(&first) = text.as_bytes().first() else {
                return check_tag(text, tag, Resolved::Null);
            };
            match first {
                b'+'
                | b'-'
                | b'0'..=b'9'
                | b'y'
                | b'Y'
                | b'n'
                | b'N'
                | b't'
                | b'T'
                | b'f'
                | b'F'
                | b'o'
                | b'O'
                | b'~'
                | b'.' => {
                    if let Some(known) = lookup_word(text, Version::V3) {
                        known
                    } else if first == b'.' {
                        go_parse_float(text).map_or(Resolved::Str, Resolved::Float)
                    } else if first.is_ascii_alphabetic() || first == b'~' {
                        Resolved::Str
                    } else {
                        resolve_number(text, Version::V3, tag == "!!timestamp")
                    }
                }
                _ => Resolved::Str,
            }
        }
        _ => return Ok(Resolved::Str),
    };
    check_tag(text, tag, resolved)
}

/// go-yaml's check that the resolved kind agrees with the explicit tag (ints may become floats).
fn check_tag(text: &str, tag: &str, resolved: Resolved) -> Result<Resolved, String> {
    let resolved_tag = match &resolved {
        Resolved::Null => "!!null",
        Resolved::Bool(_) => "!!bool",
        Resolved::Int(_) | Resolved::Uint(_) => "!!int",
        Resolved::Float(_) => "!!float",
        Resolved::Timestamp(_) => "!!timestamp",
        Resolved::Str => "!!str",
    };
    if resolved_tag == tag {
        return Ok(resolved);
    }
    if tag == "!!float" {
        // go-yaml only widens int and int64 (not uint64) into floats.
        if let Resolved::Int(i) = resolved {
            return Ok(Resolved::Float(i as f64));
        }
    }
    Err(format!("cannot decode {resolved_tag} `{text}` as a {tag}"))
}

#[derive(Clone, Copy)]
enum Hint {
    Number,
    Word,
    Dot,
}

/// The fixed spellings of go-yaml's `resolveMap`.
fn lookup_word(text: &str, version: Version) -> Option<Resolved> {
    let found = match text {
        "true" | "True" | "TRUE" => Resolved::Bool(true),
        "false" | "False" | "FALSE" => Resolved::Bool(false),
        "" | "~" | "null" | "Null" | "NULL" => Resolved::Null,
        ".nan" | ".NaN" | ".NAN" => Resolved::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Resolved::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Resolved::Float(f64::NEG_INFINITY),
        _ if version == Version::V2 => match text {
            "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Resolved::Bool(true),
            "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Resolved::Bool(false),
            _ => return None,
        },
        _ => return None,
    };
    Some(found)
}

/// The `'D'`/`'S'` branch of go-yaml's resolver: timestamp, int, uint, float, binary, octal.
fn resolve_number(text: &str, version: Version, try_timestamp: bool) -> Resolved {
    if try_timestamp && let Some(ts) = goformat::parse_yaml_timestamp(text) {
        return Resolved::Timestamp(ts);
    }
    let plain: String = text.chars().filter(|&c| c != '_').collect();
    if let Some(i) = go_parse_int(&plain, 0) {
        return Resolved::Int(i);
    }
    if let Some(u) = go_parse_uint(&plain, 0) {
        return Resolved::Uint(u);
    }
    if is_yaml_style_float(&plain)
        && let Some(f) = go_parse_float(&plain)
    {
        return Resolved::Float(f);
    }
    // go-yaml's own prefix branches parse what follows the prefix with an explicit base,
    // and Go's ParseInt then accepts a sign there too: `0o-12` is -10, `0b-1` is -1.
    let prefixed = |prefix: &str, radix: u32| -> Option<Resolved> {
        if let Some(rest) = plain.strip_prefix(prefix) {
            if let Some(i) = go_parse_int(rest, radix) {
                return Some(Resolved::Int(i));
            }
            return go_parse_uint(rest, radix).map(Resolved::Uint);
        }
        let rest = plain.strip_prefix('-')?.strip_prefix(prefix)?;
        go_parse_int(&format!("-{rest}"), radix).map(Resolved::Int)
    };
    if let Some(found) = prefixed("0b", 2) {
        return found;
    }
    if version == Version::V3
        && let Some(found) = prefixed("0o", 8)
    {
        return found;
    }
    Resolved::Str
}

/// Go's `strconv.ParseInt(s, radix, 64)`; radix 0 reads a `0x`/`0o`/`0b`/`0` prefix.
pub(crate) fn go_parse_int(s: &str, radix: u32) -> Option<i64> {
    let (negative, digits) = match s.as_bytes().first()? {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let magnitude = go_parse_uint(digits, radix)?;
    if negative {
        if magnitude > 1u64 << 63 {
            return None;
        }
        Some((magnitude as i64).wrapping_neg())
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Go's `strconv.ParseUint(s, radix, 64)`: no sign; radix 0 reads the base from a prefix.
pub(crate) fn go_parse_uint(s: &str, radix: u32) -> Option<u64> {
    let bytes = s.as_bytes();
    if bytes.is_empty() {
        return None;
    }
    let (radix, digits) = if radix != 0 {
        (radix, s)
    } else if bytes[0] == b'0' {
        match bytes.get(1).map(u8::to_ascii_lowercase) {
            Some(b'b') if bytes.len() >= 3 => (2, &s[2..]),
            Some(b'o') if bytes.len() >= 3 => (8, &s[2..]),
            Some(b'x') if bytes.len() >= 3 => (16, &s[2..]),
            _ => (8, &s[1..]),
        }
    } else {
        (10, s)
    };
    if radix != 8 && digits.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    for c in digits.chars() {
        let digit = c.to_digit(radix)?;
        value = value
            .checked_mul(u64::from(radix))?
            .checked_add(u64::from(digit))?;
    }
    Some(value)
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn is_yaml_style_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Go's `strconv.ParseFloat(s, 64)` for the decimal forms go-yaml lets through: underscores
/// only between digits, and out-of-range values are an error (so they stay strings).
fn go_parse_float(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let body = match b.first() {
        Some(b'+' | b'-') => &b[1..],
        _ => b,
    };
    // Rust accepts "inf"/"nan" spellings that go-yaml never routes here, and only decimal
    // mantissas with an optional exponent reach this point in Go without failing.
    if body.is_empty()
        || !body
            .iter()
            .all(|c| c.is_ascii_digit() || b".eE+-_".contains(c))
    {
        return None;
    }
    let value: f64 = if body.contains(&b'_') {
        if !underscores_between_digits(body) {
            return None;
        }
        s.replace('_', "").parse().ok()?
    } else {
        s.parse().ok()?
    };
    value.is_finite().then_some(value)
}

/// Go's `underscoreOK` for a decimal number: each `_` sits between two digits.
fn underscores_between_digits(b: &[u8]) -> bool {
    b.iter().enumerate().all(|(i, &c)| {
        c != b'_'
            || (i > 0 && b[i - 1].is_ascii_digit() && b.get(i + 1).is_some_and(u8::is_ascii_digit))
    })
}

/// go-yaml v2's `isBase60Float`: `1:20` and friends are quoted on the way out.
pub(crate) fn is_base60_float(s: &str) -> bool {
    let b = s.as_bytes();
    let Some(&c) = b.first() else {
        return false;
    };
    if !(c == b'+' || c == b'-' || c.is_ascii_digit()) || !s.contains(':') {
        return false;
    }
    // ^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$
    let mut i = usize::from(c == b'+' || c == b'-');
    if !b.get(i).is_some_and(u8::is_ascii_digit) {
        return false;
    }
    i += 1;
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
        i += 1;
    }
    let mut groups = 0;
    while b.get(i) == Some(&b':') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() && i - start < 2 {
            i += 1;
        }
        match i - start {
            1 => {}
            2 if b[start] <= b'5' => {}
            // Two digits with a first digit above 5 cannot match `[0-5]?[0-9]`.
            _ => return false,
        }
        groups += 1;
    }
    if groups == 0 {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
    }
    i == b.len()
}

/// Whether go-yaml v2 would read `s` back as a string if it were printed plain.
pub(crate) fn v2_reads_as_string(s: &str) -> bool {
    resolve_plain(s, Version::V2) == Resolved::Str && !is_base60_float(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v3(s: &str) -> Resolved {
        resolve_plain(s, Version::V3)
    }

    #[test]
    fn v3_words() {
        assert_eq!(v3("true"), Resolved::Bool(true));
        assert_eq!(v3("FALSE"), Resolved::Bool(false));
        assert_eq!(v3("yes"), Resolved::Str);
        assert_eq!(v3("on"), Resolved::Str);
        assert_eq!(v3("~"), Resolved::Null);
        assert_eq!(v3(""), Resolved::Null);
        // `<` has no resolver hint, so `<<` is text; merge keys are recognised by the decoder.
        assert_eq!(v3("<<"), Resolved::Str);
        assert!(matches!(v3(".inf"), Resolved::Float(f) if f.is_infinite()));
    }

    #[test]
    fn v3_numbers() {
        assert_eq!(v3("0777"), Resolved::Int(511));
        assert_eq!(v3("0o17"), Resolved::Int(15));
        assert_eq!(v3("0x1F"), Resolved::Int(31));
        assert_eq!(v3("0b101"), Resolved::Int(5));
        assert_eq!(v3("-0b11"), Resolved::Int(-3));
        assert_eq!(v3("1_000"), Resolved::Int(1000));
        assert_eq!(v3("+12"), Resolved::Int(12));
        assert_eq!(v3("-9223372036854775808"), Resolved::Int(i64::MIN));
        assert_eq!(v3("18446744073709551615"), Resolved::Uint(u64::MAX));
        assert_eq!(v3("99999999999999999999"), Resolved::Float(1e20));
        assert_eq!(v3("08"), Resolved::Float(8.0));
        assert_eq!(v3("1.0"), Resolved::Float(1.0));
        assert_eq!(v3(".5"), Resolved::Float(0.5));
        assert_eq!(v3("1e400"), Resolved::Str);
        assert_eq!(v3("1.2.3"), Resolved::Str);
        assert_eq!(v3("0x"), Resolved::Str);
        assert_eq!(v3("-"), Resolved::Str);
        assert_eq!(v3("1e5"), Resolved::Float(1e5));
        assert_eq!(v3("0o-12"), Resolved::Int(-10));
        assert_eq!(v3("0b-1"), Resolved::Int(-1));
        assert_eq!(v3(".0_1"), Resolved::Float(0.01));
        assert_eq!(v3("._1"), Resolved::Str);
        assert_eq!(v3("0"), Resolved::Int(0));
        assert_eq!(resolve_plain("0o-12", Version::V2), Resolved::Str);
    }

    #[test]
    fn v3_timestamps() {
        assert_eq!(
            v3("2001-12-14"),
            Resolved::Timestamp("2001-12-14T00:00:00Z".into())
        );
        assert_eq!(v3("2001-13-14"), Resolved::Str);
    }

    #[test]
    fn tagged() {
        assert_eq!(resolve_tagged("3", "!!float"), Ok(Resolved::Float(3.0)));
        assert_eq!(resolve_tagged("123", "!!str"), Ok(Resolved::Str));
        assert_eq!(
            resolve_tagged("abc", "!!int"),
            Err("cannot decode !!str `abc` as a !!int".into())
        );
    }

    #[test]
    fn v2_quoting_decisions() {
        for s in [
            "yes",
            "n",
            "On",
            "1",
            "1.5",
            "0x10",
            "~",
            "null",
            "2001-12-14",
            "1:20",
        ] {
            assert!(!v2_reads_as_string(s), "{s}");
        }
        for s in [
            "abc",
            "1.2.3",
            "1:70",
            "a:b",
            "nginx:1.7",
            "1e400",
            "yess",
            "<<",
        ] {
            assert!(v2_reads_as_string(s), "{s}");
        }
    }
}
