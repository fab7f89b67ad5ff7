//! Printing values exactly as kustomize does: `sigs.k8s.io/yaml.JSONToYAML(json.Marshal(obj))`,
//! that is go-yaml v2's encoder (key order, quoting decisions) driving libyaml's emitter
//! (scalar styles, folding at width 80, indentation of 2, indentless block sequences in maps).
//!
//! Invariant: the emitter is a pure function of the value; it never fails.

use serde_json::{Map, Value};

use super::goformat;
use super::resolve;

/// libyaml's preferred line width, which go-yaml v2 never changes.
const BEST_WIDTH: usize = 80;
/// libyaml's indentation step.
const BEST_INDENT: isize = 2;

/// Prints one document the way kustomize prints one resource.
pub(crate) fn document(value: &Value) -> String {
    let mut emitter = Emitter::new();
    emitter.node(value, Context::Root);
    // Document end: a final line break unless the output already ends a line.
    emitter.write_indent();
    emitter.out
}

/// The scalar styles of libyaml.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
}

/// Where a node sits, as libyaml's `root/sequence/mapping/simple_key` context flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    Root,
    SequenceItem,
    MappingValue,
    SimpleKey,
    ComplexKey,
}

impl Context {
    fn is_mapping(self) -> bool {
        matches!(
            self,
            Context::MappingValue | Context::SimpleKey | Context::ComplexKey
        )
    }
}

/// What libyaml's `yaml_emitter_analyze_scalar` learns about a scalar's text.
#[derive(Debug, Clone, Copy)]
struct Analysis {
    multiline: bool,
    flow_plain_allowed: bool,
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// libyaml's `is_printable`: what may appear unescaped (no astral characters, no BOM).
fn is_printable(c: char) -> bool {
    matches!(c as u32, 0x0A | 0x20..=0x7E | 0xA0..=0xD7FF | 0xE000..=0xFFFD) && c != '\u{FEFF}'
}

/// Whether libyaml's emitter may print `text` as a block scalar (no trailing space, no space
/// before a line break, only printable characters).
pub(crate) fn block_allowed(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    analyze(&chars).block_allowed
}

fn analyze(chars: &[char]) -> Analysis {
    if chars.is_empty() {
        return Analysis {
            multiline: false,
            flow_plain_allowed: false,
            block_plain_allowed: true,
            single_quoted_allowed: true,
            block_allowed: false,
        };
    }
    let mut block_indicators = false;
    let mut flow_indicators = false;
    let mut line_breaks = false;
    let mut special_characters = false;
    let mut leading_space = false;
    let mut leading_break = false;
    let mut trailing_space = false;
    let mut trailing_break = false;
    let mut break_space = false;
    let mut space_break = false;
    let mut previous_space = false;
    let mut previous_break = false;
    let mut preceded_by_whitespace = true;

    if chars.starts_with(&['-', '-', '-']) || chars.starts_with(&['.', '.', '.']) {
        block_indicators = true;
        flow_indicators = true;
    }
    for (i, &c) in chars.iter().enumerate() {
        let next = chars.get(i + 1).copied();
        let followed_by_whitespace = next.is_none_or(is_blank);
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => {
                    flow_indicators = true;
                    block_indicators = true;
                }
                '?' | ':' => {
                    flow_indicators = true;
                    if followed_by_whitespace {
                        block_indicators = true;
                    }
                }
                '-' if followed_by_whitespace => {
                    flow_indicators = true;
                    block_indicators = true;
                }
                _ => {}
            }
        } else {
            match c {
                ',' | '?' | '[' | ']' | '{' | '}' => flow_indicators = true,
                ':' => {
                    flow_indicators = true;
                    if followed_by_whitespace {
                        block_indicators = true;
                    }
                }
                '#' if preceded_by_whitespace => {
                    flow_indicators = true;
                    block_indicators = true;
                }
                _ => {}
            }
        }
        if !is_printable(c) {
            special_characters = true;
        }
        let last = i + 1 == chars.len();
        if c == ' ' {
            leading_space |= i == 0;
            trailing_space |= last;
            break_space |= previous_break;
            previous_space = true;
            previous_break = false;
        } else if is_break(c) {
            line_breaks = true;
            leading_break |= i == 0;
            trailing_break |= last;
            space_break |= previous_space;
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_whitespace = is_blank(c) || is_break(c) || c == '\0';
    }

    let mut a = Analysis {
        multiline: line_breaks,
        flow_plain_allowed: true,
        block_plain_allowed: true,
        single_quoted_allowed: true,
        block_allowed: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.flow_plain_allowed = false;
        a.block_plain_allowed = false;
    }
    if trailing_space {
        a.block_allowed = false;
    }
    if break_space {
        a.flow_plain_allowed = false;
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
    }
    if space_break || special_characters {
        a.flow_plain_allowed = false;
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
        a.block_allowed = false;
    }
    if line_breaks {
        a.flow_plain_allowed = false;
        a.block_plain_allowed = false;
    }
    if flow_indicators {
        a.flow_plain_allowed = false;
    }
    if block_indicators {
        a.block_plain_allowed = false;
    }
    a
}

/// `encoding/json` leaves NEL (U+0085) unescaped, and go-yaml v2 reads it back inside a
/// double-quoted scalar as a line break, folding it (and the spaces around it) like YAML
/// line folding: one break becomes a space, `n` consecutive breaks `n - 1` newlines.
fn fold_next_lines(s: &str) -> std::borrow::Cow<'_, str> {
    const NEL: char = '\u{85}';
    if !s.contains(NEL) {
        return std::borrow::Cow::Borrowed(s);
    }
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != ' ' && chars[i] != NEL {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let mut whitespace = String::new();
        let mut leading_break = false;
        let mut trailing_breaks = 0;
        while i < chars.len() && (chars[i] == ' ' || chars[i] == NEL) {
            if chars[i] == ' ' {
                if !leading_break {
                    whitespace.push(' ');
                }
            } else if !leading_break {
                whitespace.clear();
                leading_break = true;
            } else {
                trailing_breaks += 1;
            }
            i += 1;
        }
        if !leading_break {
            out.push_str(&whitespace);
        } else if trailing_breaks == 0 {
            out.push(' ');
        } else {
            out.extend(std::iter::repeat_n('\n', trailing_breaks));
        }
    }
    std::borrow::Cow::Owned(out)
}

/// go-yaml v2's `stringv`: the style it asks libyaml for.
fn requested_string_style(s: &str) -> Style {
    if s.contains('\n') {
        Style::Literal
    } else if resolve::v2_reads_as_string(s) {
        Style::Plain
    } else {
        Style::DoubleQuoted
    }
}

/// go-yaml v2's `keyList.Less` for string keys: runs of digits compare as numbers, letters
/// sort before non-letters.
pub(crate) fn key_less(a: &str, b: &str) -> bool {
    let is_letter = |c: char| c.is_alphabetic() && !c.is_numeric();
    let is_digit = |c: char| c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric());
    let digit_value = |c: char| i64::from(c as u32) - i64::from(b'0');
    let mut a_chars = a.chars();
    let mut b_chars = b.chars();
    // Whether the digits right before the current position (equal in both keys) include a
    // non-zero one, so a `0` here continues a number rather than leading one.
    let mut nonzero_digit_run = false;
    loop {
        let (ca, cb) = match (a_chars.next(), b_chars.next()) {
            (Some(ca), Some(cb)) => (ca, cb),
            (None, Some(_)) => return true,
            _ => return false,
        };
        if ca == cb {
            if is_digit(ca) {
                nonzero_digit_run |= ca != '0';
            } else {
                nonzero_digit_run = false;
            }
            continue;
        }
        let al = is_letter(ca);
        let bl = is_letter(cb);
        if al && bl {
            return ca < cb;
        }
        if al || bl {
            return bl;
        }
        let start = i64::from((ca == '0' || cb == '0') && nonzero_digit_run);
        let number = |first: char, rest: &mut std::str::Chars<'_>| {
            let (mut value, mut len) = (start, 0usize);
            let mut next = Some(first);
            while let Some(c) = next.filter(|&c| is_digit(c)) {
                value = value.wrapping_mul(10).wrapping_add(digit_value(c));
                len += 1;
                next = rest.next();
            }
            (value, len)
        };
        let (an, a_len) = number(ca, &mut a_chars);
        let (bn, b_len) = number(cb, &mut b_chars);
        if an != bn {
            return an < bn;
        }
        if a_len != b_len {
            return a_len < b_len;
        }
        return ca < cb;
    }
}

fn sorted_entries(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|(a, _), (b, _)| {
        if key_less(a, b) {
            std::cmp::Ordering::Less
        } else if key_less(b, a) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
    entries
}

/// The parts of libyaml's emitter state that shape block output.
struct Emitter {
    out: String,
    column: usize,
    indent: isize,
    indents: Vec<isize>,
    whitespace: bool,
    indention: bool,
    flow_level: usize,
    scratch: Vec<char>,
}

impl Emitter {
    fn new() -> Self {
        Emitter {
            out: String::new(),
            column: 0,
            indent: -1,
            indents: Vec::new(),
            whitespace: true,
            indention: true,
            flow_level: 0,
            scratch: Vec::new(),
        }
    }

    fn increase_indent(&mut self, flow: bool, indentless: bool) {
        self.indents.push(self.indent);
        if self.indent < 0 {
            self.indent = if flow { BEST_INDENT } else { 0 };
        } else if !indentless {
            self.indent += BEST_INDENT;
        }
    }

    fn restore_indent(&mut self) {
        self.indent = self.indents.pop().unwrap_or(-1);
    }

    fn put(&mut self, c: char) {
        self.out.push(c);
        self.column += 1;
    }

    fn put_break(&mut self) {
        self.out.push('\n');
        self.column = 0;
    }

    /// libyaml's `write_break`: `\n` as the configured break, other breaks copied.
    fn write_break(&mut self, c: char) {
        if c == '\n' {
            self.put_break();
        } else {
            self.out.push(c);
            self.column = 0;
        }
    }

    fn write_indent(&mut self) {
        let indent = self.indent.max(0) as usize;
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.put_break();
        }
        while self.column < indent {
            self.put(' ');
        }
        self.whitespace = true;
        self.indention = true;
    }

    fn write_indicator(
        &mut self,
        indicator: &str,
        need_whitespace: bool,
        is_whitespace: bool,
        is_indention: bool,
    ) {
        if need_whitespace && !self.whitespace {
            self.put(' ');
        }
        for c in indicator.chars() {
            self.put(c);
        }
        self.whitespace = is_whitespace;
        self.indention = self.indention && is_indention;
    }

    fn node(&mut self, value: &Value, context: Context) {
        match value {
            Value::Null => self.scalar("null", Style::Plain, context),
            Value::Bool(b) => self.scalar(if *b { "true" } else { "false" }, Style::Plain, context),
            Value::Number(n) => {
                let text = match n.as_f64() {
                    Some(f) if !n.is_i64() && !n.is_u64() => goformat::format_float_for_yaml(f),
                    _ => n.to_string(),
                };
                self.scalar(&text, Style::Plain, context);
            }
            Value::String(s) => {
                let s = fold_next_lines(s);
                self.scalar(&s, requested_string_style(&s), context);
            }
            Value::Array(items) if items.is_empty() => self.empty_flow("[", "]"),
            Value::Object(map) if map.is_empty() => self.empty_flow("{", "}"),
            Value::Array(items) => self.block_sequence(items, context),
            Value::Object(map) => self.block_mapping(map),
        }
    }

    /// `[]` and `{}`: libyaml switches to flow style for empty collections.
    fn empty_flow(&mut self, open: &str, close: &str) {
        self.write_indicator(open, true, true, false);
        self.increase_indent(true, false);
        self.flow_level += 1;
        self.flow_level -= 1;
        self.restore_indent();
        self.write_indicator(close, false, false, false);
    }

    fn block_sequence(&mut self, items: &[Value], context: Context) {
        self.increase_indent(false, context.is_mapping() && !self.indention);
        for item in items {
            self.write_indent();
            self.write_indicator("-", true, false, true);
            self.node(item, Context::SequenceItem);
        }
        self.restore_indent();
    }

    fn block_mapping(&mut self, map: &Map<String, Value>) {
        self.increase_indent(false, false);
        for (key, value) in sorted_entries(map) {
            self.write_indent();
            let multiline = fold_next_lines(key).chars().any(is_break);
            let simple = !multiline && key.len() <= 128;
            if simple {
                self.node_string_key(key, Context::SimpleKey);
                self.write_indicator(":", false, false, false);
            } else {
                self.write_indicator("?", true, false, true);
                self.node_string_key(key, Context::ComplexKey);
                self.write_indent();
                self.write_indicator(":", true, false, true);
            }
            self.node(value, Context::MappingValue);
        }
        self.restore_indent();
    }

    fn node_string_key(&mut self, key: &str, context: Context) {
        let key = fold_next_lines(key);
        self.scalar(&key, requested_string_style(&key), context);
    }

    /// libyaml's `select_scalar_style` followed by the matching writer.
    fn scalar(&mut self, text: &str, requested: Style, context: Context) {
        // One buffer of characters serves every scalar, to spare an allocation each.
        let mut chars = std::mem::take(&mut self.scratch);
        chars.clear();
        chars.extend(text.chars());
        self.scalar_chars(&chars, requested, context);
        self.scratch = chars;
    }

    fn scalar_chars(&mut self, chars: &[char], requested: Style, context: Context) {
        let analysis = analyze(chars);
        let simple_key = context == Context::SimpleKey;
        let mut style = requested;
        if simple_key && analysis.multiline {
            style = Style::DoubleQuoted;
        }
        if style == Style::Plain {
            let allowed = if self.flow_level > 0 {
                analysis.flow_plain_allowed
            } else {
                analysis.block_plain_allowed
            };
            if !allowed || (chars.is_empty() && (self.flow_level > 0 || simple_key)) {
                style = Style::SingleQuoted;
            }
        }
        if style == Style::SingleQuoted && !analysis.single_quoted_allowed {
            style = Style::DoubleQuoted;
        }
        if style == Style::Literal && (!analysis.block_allowed || self.flow_level > 0 || simple_key)
        {
            style = Style::DoubleQuoted;
        }

        self.increase_indent(true, false);
        let allow_breaks = !simple_key;
        match style {
            Style::Plain => self.write_plain(chars, allow_breaks),
            Style::SingleQuoted => self.write_single_quoted(chars, allow_breaks),
            Style::DoubleQuoted => self.write_double_quoted(chars, allow_breaks),
            Style::Literal => self.write_literal(chars),
        }
        self.restore_indent();
    }

    fn write_plain(&mut self, chars: &[char], allow_breaks: bool) {
        if !self.whitespace {
            self.put(' ');
        }
        let mut spaces = false;
        let mut breaks = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                let next_is_space = chars.get(i + 1) == Some(&' ');
                if allow_breaks && !spaces && self.column > BEST_WIDTH && !next_is_space {
                    self.write_indent();
                } else {
                    self.put(c);
                }
                spaces = true;
            } else if is_break(c) {
                if !breaks && c == '\n' {
                    self.put_break();
                }
                self.write_break(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                self.put(c);
                self.indention = false;
                spaces = false;
                breaks = false;
            }
        }
        self.whitespace = false;
        self.indention = false;
    }

    fn write_single_quoted(&mut self, chars: &[char], allow_breaks: bool) {
        self.write_indicator("'", true, false, false);
        let mut spaces = false;
        let mut breaks = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                let inner = i > 0 && i + 1 < chars.len();
                let next_is_space = chars.get(i + 1) == Some(&' ');
                if allow_breaks && !spaces && self.column > BEST_WIDTH && inner && !next_is_space {
                    self.write_indent();
                } else {
                    self.put(c);
                }
                spaces = true;
            } else if is_break(c) {
                if !breaks && c == '\n' {
                    self.put_break();
                }
                self.write_break(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                if c == '\'' {
                    self.put('\'');
                }
                self.put(c);
                self.indention = false;
                spaces = false;
                breaks = false;
            }
        }
        self.write_indicator("'", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn write_double_quoted(&mut self, chars: &[char], allow_breaks: bool) {
        self.write_indicator("\"", true, false, false);
        // libyaml tests for a byte order mark at the start of the value rather than at the
        // current character, so a leading BOM escapes every character.
        let starts_with_bom = chars.first() == Some(&'\u{FEFF}');
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if !is_printable(c) || starts_with_bom || is_break(c) || c == '"' || c == '\\' {
                self.put('\\');
                match c {
                    '\0' => self.put('0'),
                    '\u{7}' => self.put('a'),
                    '\u{8}' => self.put('b'),
                    '\t' => self.put('t'),
                    '\n' => self.put('n'),
                    '\u{b}' => self.put('v'),
                    '\u{c}' => self.put('f'),
                    '\r' => self.put('r'),
                    '\u{1b}' => self.put('e'),
                    '"' => self.put('"'),
                    '\\' => self.put('\\'),
                    '\u{85}' => self.put('N'),
                    '\u{a0}' => self.put('_'),
                    '\u{2028}' => self.put('L'),
                    '\u{2029}' => self.put('P'),
                    _ => {
                        let code = c as u32;
                        let (marker, digits) = if code <= 0xFF {
                            ('x', 2)
                        } else if code <= 0xFFFF {
                            ('u', 4)
                        } else {
                            ('U', 8)
                        };
                        self.put(marker);
                        for d in format!("{code:0digits$X}").chars() {
                            self.put(d);
                        }
                    }
                }
                spaces = false;
            } else if c == ' ' {
                let inner = i > 0 && i + 1 < chars.len();
                if allow_breaks && !spaces && self.column > BEST_WIDTH && inner {
                    self.write_indent();
                    if chars.get(i + 1) == Some(&' ') {
                        self.put('\\');
                    }
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                spaces = false;
            }
        }
        self.write_indicator("\"", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn write_literal(&mut self, chars: &[char]) {
        self.write_indicator("|", true, false, false);
        // Block scalar hints: an indentation indicator when the text starts with a space or a
        // break, then the chomping indicator.
        if chars.first().is_some_and(|&c| c == ' ' || is_break(c)) {
            self.write_indicator(&BEST_INDENT.to_string(), false, false, false);
        }
        let chomp = match chars {
            [] => Some("-"),
            [.., last] if !is_break(*last) => Some("-"),
            [_] => Some("+"),
            [.., before, _] if is_break(*before) => Some("+"),
            _ => None,
        };
        if let Some(chomp) = chomp {
            self.write_indicator(chomp, false, false, false);
        }
        self.put_break();
        self.indention = true;
        self.whitespace = true;
        let mut breaks = true;
        for &c in chars {
            if is_break(c) {
                self.write_break(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                self.put(c);
                self.indention = false;
                breaks = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_key_order() {
        let mut keys = vec![
            "k10", "k9", "b", "a", "A", "_x", "1", "10", "2", "a1", "a01",
        ];
        keys.sort_by(|a, b| {
            if key_less(a, b) {
                std::cmp::Ordering::Less
            } else if key_less(b, a) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        });
        // Non-letters sort before letters; digit runs compare as numbers.
        assert_eq!(
            keys,
            [
                "_x", "1", "2", "10", "A", "a", "a1", "a01", "b", "k9", "k10"
            ]
        );
    }
}
