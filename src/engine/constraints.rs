//! Value constraints of CRD schemas, checked and worded as kube-apiserver 1.31 does.
//!
//! The API server runs kube-openapi's validator over a custom resource and maps each result
//! to a field error (`kubeOpenAPIResultToFieldErrors`): `maxLength` to `Too long`,
//! `maxItems`/`maxProperties` to `Too many`, a bad format to a type error, everything else
//! to `Invalid value` with kube-openapi's own sentence (`spec.size in body should be greater
//! than or equal to 1`). Values print as Go prints them (`%q` strings, `%v` numbers).
//! Patterns are Go RE2 expressions: they are translated where Rust's `regex` reads the same
//! text differently (`\d`, `\w`, `\s` and `\b` are ASCII in Go, a `{` that starts no repeat
//! is a literal, `[` inside a class is a literal) and compiled once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use regex::Regex;
use serde_json::Value;

use super::formats;

/// Where a value sits: `name` is kube-openapi's name for it (used inside messages), `field`
/// the error's field path (the same, except for a CRD's `default`, whose path is the
/// schema's).
#[derive(Clone, Copy)]
pub struct At<'a> {
    /// kube-openapi's name of the value (`spec.size`, `spec.items[0]`).
    pub name: &'a str,
    /// The field path the error is reported at.
    pub field: &'a str,
}

/// The checks on a string or number: length and pattern, then format, then numeric bounds
/// (kube-openapi's string, format and number validators, in that order).
pub fn scalar(schema: &Value, value: &Value, at: At, errs: &mut Vec<String>) {
    match value {
        Value::String(text) => {
            string(schema, text, at, errs);
            if let Some(format) = formats::string_format(schema)
                && !formats::valid(format, text)
            {
                let quoted = go_quote(text);
                errs.push(format!(
                    "{}: Invalid value: {quoted}: {} in body must be of type {format}: {quoted}",
                    at.field, at.name
                ));
            }
        }
        Value::Number(_) => number(schema, value, at, errs),
        _ => {}
    }
}

fn string(schema: &Value, text: &str, at: At, errs: &mut Vec<String>) {
    let length = text.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && length > max
    {
        errs.push(format!(
            "{}: Too long: may not be longer than {max}",
            at.field
        ));
        return;
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && length < min
    {
        errs.push(format!(
            "{}: Invalid value: {}: {} in body should be at least {min} chars long",
            at.field,
            go_quote(text),
            at.name
        ));
        return;
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
        && !pattern.is_empty()
    {
        let shown = match compiled(pattern).as_ref() {
            Ok(re) if re.is_match(text) => return,
            Ok(_) => pattern.to_string(),
            Err(why) => format!("{pattern}, but pattern is invalid: {why}"),
        };
        errs.push(format!(
            "{}: Invalid value: {}: {} in body should match '{shown}'",
            at.field,
            go_quote(text),
            at.name
        ));
    }
}

/// A JSON number as the API server decodes it: an `int64` when it is written as an
/// integer that fits, a `float64` otherwise.
#[derive(Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
}

fn num(value: &Value) -> Option<Num> {
    match value.as_i64() {
        Some(i) => Some(Num::Int(i)),
        None => value.as_f64().map(Num::Float),
    }
}

fn number(schema: &Value, value: &Value, at: At, errs: &mut Vec<String>) {
    let Some(data) = num(value) else {
        return;
    };
    let shown = match data {
        Num::Int(i) => i.to_string(),
        Num::Float(f) => go_float(f),
    };
    let invalid = |detail: String| format!("{}: Invalid value: {shown}: {detail}", at.field);
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    let exclusive = |key: &str| schema.get(key).and_then(Value::as_bool) == Some(true);
    if let Some(factor) = bound("multipleOf") {
        // Integers are checked against the factor truncated to an integer, as Go does.
        let (positive, multiple, factor_shown) = match data {
            Num::Int(i) => {
                let f = factor as i64;
                (f > 0, f > 0 && i % f == 0, f.to_string())
            }
            Num::Float(d) => {
                let mult = if factor < 1.0 {
                    1.0 / factor * d
                } else {
                    d / factor
                };
                (
                    factor > 0.0,
                    factor > 0.0 && json_integer(mult),
                    go_float(factor),
                )
            }
        };
        if !positive {
            errs.push(format!(
                "{}: Invalid value: {factor_shown}: factor MultipleOf declared for {} must be positive: {factor_shown}",
                at.field, at.name
            ));
        } else if !multiple {
            errs.push(invalid(format!(
                "{} in body should be a multiple of {factor_shown}",
                at.name
            )));
        }
    }
    if let Some(min) = bound("minimum") {
        let strict = exclusive("exclusiveMinimum");
        let (below, min_shown) = match data {
            Num::Int(i) => {
                let m = min as i64;
                (if strict { i <= m } else { i < m }, m.to_string())
            }
            Num::Float(d) => (if strict { d <= min } else { d < min }, go_float(min)),
        };
        if below {
            let relation = if strict {
                "greater than"
            } else {
                "greater than or equal to"
            };
            errs.push(invalid(format!(
                "{} in body should be {relation} {min_shown}",
                at.name
            )));
        }
    }
    if let Some(max) = bound("maximum") {
        let strict = exclusive("exclusiveMaximum");
        let (above, max_shown) = match data {
            Num::Int(i) => {
                let m = max as i64;
                (if strict { i >= m } else { i > m }, m.to_string())
            }
            Num::Float(d) => (if strict { d >= max } else { d > max }, go_float(max)),
        };
        if above {
            let relation = if strict {
                "less than"
            } else {
                "less than or equal to"
            };
            errs.push(invalid(format!(
                "{} in body should be {relation} {max_shown}",
                at.name
            )));
        }
    }
}

/// go-openapi's `IsFloat64AJSONInteger`: within ±(2⁵³−1) and integral, or within a
/// relative error of 1e-9 of the integer below it.
pub fn json_integer(f: f64) -> bool {
    let limit = 9_007_199_254_740_991.0;
    if !f.is_finite() || !(-limit..=limit).contains(&f) {
        return false;
    }
    if f.trunc() == f {
        return true;
    }
    if f < 0.0 {
        return false;
    }
    let g = f.trunc();
    g != 0.0 && (f - g) / (f + g) < 1e-9
}

/// `minItems` and `maxItems` of an array of `len` items (after its items were checked).
pub fn items(schema: &Value, len: usize, at: At, errs: &mut Vec<String>) {
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && (len as u64) < min
    {
        errs.push(format!(
            "{}: Invalid value: {len}: {} in body should have at least {min} items",
            at.field, at.name
        ));
    }
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && (len as u64) > max
    {
        errs.push(format!(
            "{}: Too many: {len}: must have at most {max} items",
            at.field
        ));
    }
}

/// `minProperties` and `maxProperties` of an object of `len` fields (before its fields are
/// checked). The API server words too many properties as too many items.
pub fn properties(schema: &Value, len: usize, at: At, errs: &mut Vec<String>) {
    if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
        && (len as u64) < min
    {
        errs.push(format!(
            "{}: Invalid value: {len}: {} in body should have at least {min} properties",
            at.field, at.name
        ));
    }
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
        && (len as u64) > max
    {
        errs.push(format!(
            "{}: Too many: {len}: must have at most {max} items",
            at.field
        ));
    }
}

/// The `enum` check: kube-openapi compares after Go's value conversions (an integer
/// matches a number it truncates to), and the API server quotes every allowed value.
pub fn enumeration(schema: &Value, value: &Value, at: At, errs: &mut Vec<String>) {
    let Some(allowed) = schema.get("enum").and_then(Value::as_array) else {
        return;
    };
    if allowed.is_empty() || allowed.iter().any(|a| enum_equal(value, a)) {
        return;
    }
    let list: Vec<String> = allowed
        .iter()
        .map(|a| match a {
            Value::String(s) => go_quote(s),
            other => go_quote(&other.to_string()),
        })
        .collect();
    errs.push(format!(
        "{}: Unsupported value: {}: supported values: {}",
        at.field,
        go_value(value),
        list.join(", ")
    ));
}

/// Go's `reflect` conversion then `DeepEqual`, as kube-openapi's enum check does it.
fn enum_equal(data: &Value, allowed: &Value) -> bool {
    if data.is_null() {
        return false;
    }
    match (num(data), allowed) {
        (Some(d), Value::Number(_)) => match (d, num(allowed)) {
            (Num::Int(a), Some(Num::Int(b))) => a == b,
            (Num::Float(a), Some(Num::Int(b))) => a as i64 == b,
            (Num::Int(a), Some(Num::Float(b))) => a as f64 == b,
            (Num::Float(a), Some(Num::Float(b))) => a == b,
            _ => false,
        },
        // Go converts an integer to a string as the character of that code point.
        (Some(Num::Int(code)), Value::String(s)) => {
            let c = u32::try_from(code)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{fffd}');
            s.chars().eq(std::iter::once(c))
        }
        _ => data == allowed,
    }
}

/// A pattern compiled, or Go's words for why it does not compile.
type Compiled = Arc<Result<Regex, String>>;

/// The compiled form of a Go pattern, or Go's words for why it does not compile.
pub fn compiled(pattern: &str) -> Compiled {
    static CACHE: OnceLock<Mutex<HashMap<String, Compiled>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    if let Ok(map) = cache.lock()
        && let Some(found) = map.get(pattern)
    {
        return found.clone();
    }
    let result = Arc::new(compile_go(pattern));
    if let Ok(mut map) = cache.lock() {
        // CRDs bring few patterns; the bound only keeps a hostile stream from growing it.
        if map.len() >= 4096 {
            map.clear();
        }
        map.insert(pattern.to_string(), result.clone());
    }
    result
}

fn compile_go(pattern: &str) -> Result<Regex, String> {
    let translated = translate(pattern)?;
    if let Err(e) = regex_syntax::ast::parse::Parser::new().parse(&translated) {
        return Err(go_syntax_error(pattern, &translated, &e));
    }
    Regex::new(&translated).map_err(|e| match e {
        regex::Error::CompiledTooBig(_) => {
            format!("error parsing regexp: expression too large: `{pattern}`")
        }
        other => format!("error parsing regexp: invalid or unsupported Perl syntax: `{other}`"),
    })
}

/// Go's `regexp/syntax` error text (`error parsing regexp: CODE: `EXPR``) for the error
/// Rust's parser found in the translated pattern.
fn go_syntax_error(pattern: &str, translated: &str, e: &regex_syntax::ast::Error) -> String {
    use regex_syntax::ast::ErrorKind as K;
    let span = e.span();
    let text = match translated.get(span.start.offset..span.end.offset) {
        Some(t) if !t.is_empty() => t,
        // An empty span points at the offending character.
        _ => translated
            .get(span.start.offset..)
            .and_then(|rest| rest.chars().next().map(|c| &rest[..c.len_utf8()]))
            .unwrap_or_default(),
    };
    let (code, expr) = match e.kind() {
        K::ClassUnclosed => (
            "missing closing ]",
            translated.get(span.start.offset..).unwrap_or_default(),
        ),
        K::GroupUnclosed => ("missing closing )", pattern),
        K::GroupUnopened => ("unexpected )", pattern),
        K::RepetitionMissing => ("missing argument to repetition operator", text),
        K::RepetitionCountInvalid => ("invalid repeat count", text),
        K::EscapeUnexpectedEof => ("trailing backslash at end of expression", ""),
        K::EscapeUnrecognized
        | K::UnsupportedBackreference
        | K::EscapeHexInvalid
        | K::EscapeHexInvalidDigit
        | K::EscapeHexEmpty => ("invalid escape sequence", text),
        K::ClassRangeInvalid | K::ClassRangeLiteral => ("invalid character class range", text),
        K::GroupNameInvalid
        | K::GroupNameEmpty
        | K::GroupNameDuplicate { .. }
        | K::GroupNameUnexpectedEof => ("invalid named capture", text),
        K::NestLimitExceeded(_) => ("expression nests too deeply", pattern),
        _ => ("invalid or unsupported Perl syntax", text),
    };
    format!("error parsing regexp: {code}: `{expr}`")
}

/// Rewrites a Go RE2 pattern into the Rust `regex` pattern that matches the same strings,
/// or Go's error for syntax Go refuses and Rust would take (flags other than `imsU`).
fn translate(pattern: &str) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut in_class = false;
    let mut class_start = 0;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            let Some(&next) = chars.get(i + 1) else {
                out.push('\\');
                break;
            };
            if next == 'Q' && !in_class {
                let rest: String = chars[i + 2..].iter().collect();
                let (literal, after) = match rest.find("\\E") {
                    Some(end) => (&rest[..end], end + 2),
                    None => (rest.as_str(), rest.len()),
                };
                out.push_str(&regex::escape(literal));
                i += 2 + rest[..after].chars().count();
                continue;
            }
            let ascii = match (next, in_class) {
                ('d', false) => Some("[0-9]"),
                ('D', false) => Some("[^0-9]"),
                ('s', false) => Some("[\\t\\n\\f\\r ]"),
                ('S', false) => Some("[^\\t\\n\\f\\r ]"),
                ('w', false) => Some("[0-9A-Za-z_]"),
                ('W', false) => Some("[^0-9A-Za-z_]"),
                ('b', false) => Some("(?-u:\\b)"),
                ('B', false) => Some("(?-u:\\B)"),
                ('d', true) => Some("0-9"),
                ('s', true) => Some("\\t\\n\\f\\r "),
                ('w', true) => Some("0-9A-Za-z_"),
                ('D', true) => Some("[^0-9]"),
                ('S', true) => Some("[^\\t\\n\\f\\r ]"),
                ('W', true) => Some("[^0-9A-Za-z_]"),
                _ => None,
            };
            match ascii {
                Some(replacement) => out.push_str(replacement),
                None => {
                    out.push('\\');
                    out.push(next);
                }
            }
            i += 2;
            continue;
        }
        if in_class {
            match c {
                ']' if i > class_start => in_class = false,
                '[' if chars.get(i + 1) == Some(&':') => {
                    // A POSIX class `[:alpha:]`: copied through its closing `:]`.
                    let rest: String = chars[i..].iter().collect();
                    if let Some(end) = rest.find(":]") {
                        out.push_str(&rest[..end + 2]);
                        i += rest[..end + 2].chars().count();
                        continue;
                    }
                    out.push_str("\\[");
                    i += 1;
                    continue;
                }
                '[' | '&' | '~' => {
                    out.push('\\');
                    out.push(c);
                    i += 1;
                    continue;
                }
                _ => {}
            }
            out.push(c);
            i += 1;
            continue;
        }
        match c {
            '[' => {
                in_class = true;
                out.push('[');
                i += 1;
                // `]` first in a class (after an optional `^`) is a literal.
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                class_start = i;
                if chars.get(i) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
                continue;
            }
            '{' if !repeat_at(&chars[i..]) => out.push_str("\\{"),
            '(' if chars.get(i + 1) == Some(&'?') => {
                let flags: String = chars[i + 2..]
                    .iter()
                    .take_while(|f| !matches!(f, ':' | ')'))
                    .collect();
                let named = flags.starts_with("P<") || flags.starts_with('<');
                if !named && let Some(bad) = flags.find(|f: char| !"imsU-".contains(f)) {
                    return Err(format!(
                        "error parsing regexp: invalid or unsupported Perl syntax: `(?{}`",
                        &flags[..=bad]
                    ));
                }
                out.push(c);
            }
            _ => out.push(c),
        }
        i += 1;
    }
    Ok(out)
}

/// Whether a `{` starts a Go repeat (`{n}`, `{n,}`, `{n,m}`); otherwise it is a literal.
fn repeat_at(chars: &[char]) -> bool {
    let mut i = 1;
    let digits = |i: &mut usize| {
        let start = *i;
        while chars.get(*i).is_some_and(char::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return false;
    }
    if chars.get(i) == Some(&',') {
        i += 1;
        digits(&mut i);
    }
    chars.get(i) == Some(&'}')
}

/// Go's `strconv.Quote` (`%q`): double quotes, `\"` and `\\`, C escapes for control
/// characters, printable Unicode kept.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%v` of a `float64` (`strconv.FormatFloat(f, 'g', -1, 64)`): the shortest digits
/// that read back, in exponent form (`1e+06`) when the decimal exponent is below -4 or
/// at least 6.
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-trip digits: `d.ddde±x`.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{dot}e{esign}{:02}", exp.abs());
    }
    let point = exp + 1;
    let body = if point <= 0 {
        format!("0.{}{digits}", "0".repeat((-point) as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        format!(
            "{}.{}",
            &digits[..point as usize],
            &digits[point as usize..]
        )
    };
    format!("{sign}{body}")
}

/// How a field error prints its bad value (`field.Error.ErrorBody`): strings with `%q`,
/// numbers and booleans with `%v`, `null`, maps and lists with Go's `%#v`.
pub fn go_value(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::String(s) => go_quote(s),
        _ => go_sharp_v(value),
    }
}

fn go_sharp_v(value: &Value) -> String {
    match value {
        Value::Null => "interface {}(nil)".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(_) => match num(value) {
            Some(Num::Int(i)) => i.to_string(),
            Some(Num::Float(f)) => go_float(f),
            None => value.to_string(),
        },
        Value::String(s) => go_quote(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(go_sharp_v).collect();
            format!("[]interface {{}}{{{}}}", inner.join(", "))
        }
        Value::Object(fields) => {
            let mut keys: Vec<&String> = fields.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", go_quote(k), go_sharp_v(&fields[k.as_str()])))
                .collect();
            format!("map[string]interface {{}}{{{}}}", inner.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(schema: Value, value: Value) -> Vec<String> {
        let at = At {
            name: "spec.x",
            field: "spec.x",
        };
        let mut errs = Vec::new();
        scalar(&schema, &value, at, &mut errs);
        if let Value::Array(items) = &value {
            super::items(&schema, items.len(), at, &mut errs);
        }
        if let Value::Object(fields) = &value {
            properties(&schema, fields.len(), at, &mut errs);
        }
        enumeration(&schema, &value, at, &mut errs);
        errs
    }

    #[test]
    fn strings_are_bounded_in_code_points_and_matched_as_go_does() {
        let s = json!({"type": "string", "maxLength": 3, "minLength": 2, "pattern": "^[a-z]+\\d$"});
        assert_eq!(
            run(s.clone(), json!("héé1")),
            ["spec.x: Too long: may not be longer than 3"]
        );
        assert_eq!(
            run(s.clone(), json!("a")),
            ["spec.x: Invalid value: \"a\": spec.x in body should be at least 2 chars long"]
        );
        assert_eq!(
            run(s.clone(), json!("ab")),
            ["spec.x: Invalid value: \"ab\": spec.x in body should match '^[a-z]+\\d$'"]
        );
        assert!(run(s.clone(), json!("ab1")).is_empty());
        // Go's \d is ASCII: an Arabic-Indic digit does not match.
        assert_eq!(run(json!({"pattern": "^\\d$"}), json!("\u{664}")).len(), 1);
        assert!(run(json!({"pattern": "^a{b$"}), json!("a{b")).is_empty());
        assert!(run(json!({"pattern": "^[a[]+$"}), json!("a[a")).is_empty());
    }

    #[test]
    fn numbers_compare_as_int64_or_float64_and_print_as_go() {
        let s = json!({"type": "integer", "minimum": 1, "maximum": 10, "multipleOf": 2});
        assert_eq!(
            run(s.clone(), json!(0)),
            ["spec.x: Invalid value: 0: spec.x in body should be greater than or equal to 1"]
        );
        assert_eq!(
            run(s.clone(), json!(11)),
            [
                "spec.x: Invalid value: 11: spec.x in body should be a multiple of 2",
                "spec.x: Invalid value: 11: spec.x in body should be less than or equal to 10"
            ]
        );
        let f = json!({"type": "number", "exclusiveMinimum": true, "minimum": 0.5, "exclusiveMaximum": true, "maximum": 1e21});
        assert_eq!(
            run(f.clone(), json!(0.5)),
            ["spec.x: Invalid value: 0.5: spec.x in body should be greater than 0.5"]
        );
        assert_eq!(
            run(f, json!(2e21)),
            ["spec.x: Invalid value: 2e+21: spec.x in body should be less than 1e+21"]
        );
        assert!(run(json!({"multipleOf": 0.1}), json!(0.3)).is_empty());
        assert_eq!(
            run(json!({"multipleOf": 0.5}), json!(3)),
            ["spec.x: Invalid value: 0: factor MultipleOf declared for spec.x must be positive: 0"]
        );
    }

    #[test]
    fn items_properties_and_enums_use_the_api_server_words() {
        let a = json!({"type": "array", "minItems": 2, "maxItems": 3});
        assert_eq!(
            run(a.clone(), json!([1])),
            ["spec.x: Invalid value: 1: spec.x in body should have at least 2 items"]
        );
        assert_eq!(
            run(a, json!([1, 2, 3, 4])),
            ["spec.x: Too many: 4: must have at most 3 items"]
        );
        let o = json!({"type": "object", "minProperties": 1, "maxProperties": 1});
        assert_eq!(
            run(o.clone(), json!({})),
            ["spec.x: Invalid value: 0: spec.x in body should have at least 1 properties"]
        );
        assert_eq!(
            run(o, json!({"a": 1, "b": 2})),
            ["spec.x: Too many: 2: must have at most 1 items"]
        );
        assert_eq!(
            run(json!({"enum": [1, "a", true]}), json!(2)),
            ["spec.x: Unsupported value: 2: supported values: \"1\", \"a\", \"true\""]
        );
        assert!(run(json!({"enum": [1]}), json!(1.0)).is_empty());
        assert_eq!(
            run(json!({"enum": ["a"]}), json!({"k": [1, "v"]})),
            [
                "spec.x: Unsupported value: map[string]interface {}{\"k\":[]interface {}{1, \"v\"}}: supported values: \"a\""
            ]
        );
    }

    #[test]
    fn formats_are_type_errors_naming_the_format() {
        assert_eq!(
            run(
                json!({"type": "string", "format": "date-time"}),
                json!("yesterday")
            ),
            [
                "spec.x: Invalid value: \"yesterday\": spec.x in body must be of type date-time: \"yesterday\""
            ]
        );
        assert!(
            run(
                json!({"type": "string", "format": "quantity"}),
                json!("lots")
            )
            .is_empty()
        );
    }

    #[test]
    fn go_printing_and_pattern_errors() {
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(100000.0), "100000");
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(1234567.0), "1.234567e+06");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_quote("a\"b\n\u{1}é"), "\"a\\\"b\\n\\x01é\"");
        let err = |p: &str| {
            compiled(p)
                .as_ref()
                .as_ref()
                .err()
                .cloned()
                .unwrap_or_default()
        };
        assert_eq!(
            err("+"),
            "error parsing regexp: missing argument to repetition operator: `+`"
        );
        assert_eq!(err("(a"), "error parsing regexp: missing closing ): `(a`");
        assert_eq!(err("a)"), "error parsing regexp: unexpected ): `a)`");
        assert_eq!(err("[a"), "error parsing regexp: missing closing ]: `[a`");
        assert_eq!(
            err("\\q"),
            "error parsing regexp: invalid escape sequence: `\\q`"
        );
        assert_eq!(
            err("(?x)a"),
            "error parsing regexp: invalid or unsupported Perl syntax: `(?x`"
        );
        assert_eq!(
            err("a{3,2}"),
            "error parsing regexp: invalid repeat count: `{3,2}`"
        );
        assert!(
            compiled("^\\Q.*\\E$")
                .as_ref()
                .as_ref()
                .is_ok_and(|re| re.is_match(".*"))
        );
    }
}
