//! Block scalars (`|`, `>`) exactly as kustomize ends up with them: libyaml's scanning rules
//! (indentation detection, folding, chomping, no final break at the end of input), and the
//! round trip kyaml puts folded scalars through (go-yaml v3's folded writer, which adds line
//! breaks because it tests the first character of the value instead of the next line's).
//!
//! Invariant: pure text functions; the event parser still decides where a block scalar is.

use super::emit;

/// Reads a block scalar whose indicator (`|` or `>`) starts `source`, as libyaml's
/// `scan_block_scalar` does; `parent_indent` is the column of the enclosing block collection
/// (-1 at the top level). Returns `None` when the text does not look like a block scalar
/// header, so the caller keeps the value it already has.
pub(crate) fn scan(source: &str, parent_indent: isize) -> Option<String> {
    let mut chars = Scanner::new(source);
    let literal = match chars.peek()? {
        '|' => true,
        '>' => false,
        _ => return None,
    };
    chars.next();
    let mut chomping = 0i8;
    let mut increment = 0usize;
    let read_chomp = |chars: &mut Scanner, chomping: &mut i8| match chars.peek() {
        Some('+') => {
            *chomping = 1;
            chars.next();
        }
        Some('-') => {
            *chomping = -1;
            chars.next();
        }
        _ => {}
    };
    let read_increment = |chars: &mut Scanner, increment: &mut usize| -> Option<()> {
        if let Some(c) = chars.peek()
            && let Some(d) = c.to_digit(10)
        {
            if d == 0 {
                return None;
            }
            *increment = d as usize;
            chars.next();
        }
        Some(())
    };
    if matches!(chars.peek(), Some('+' | '-')) {
        read_chomp(&mut chars, &mut chomping);
        read_increment(&mut chars, &mut increment)?;
    } else {
        read_increment(&mut chars, &mut increment)?;
        read_chomp(&mut chars, &mut chomping);
    }
    while matches!(chars.peek(), Some(' ' | '\t')) {
        chars.next();
    }
    if chars.peek() == Some('#') {
        while chars.peek().is_some_and(|c| !is_break(c)) {
            chars.next();
        }
    }
    match chars.peek() {
        None => {}
        Some(c) if is_break(c) => {
            chars.read_line();
        }
        Some(_) => return None,
    }

    let mut indent = if increment > 0 {
        if parent_indent >= 0 {
            parent_indent as usize + increment
        } else {
            increment
        }
    } else {
        0
    };
    let mut value = String::new();
    let mut leading_break = String::new();
    let mut trailing_breaks = String::new();
    chars.scan_breaks(&mut indent, &mut trailing_breaks, parent_indent)?;
    let mut leading_blank = false;
    while chars.column == indent && chars.peek().is_some_and(|c| c != '\0') {
        let trailing_blank = matches!(chars.peek(), Some(' ' | '\t'));
        if !literal && !leading_blank && !trailing_blank && leading_break.starts_with('\n') {
            if trailing_breaks.is_empty() {
                value.push(' ');
            }
        } else {
            value.push_str(&leading_break);
        }
        leading_break.clear();
        value.push_str(&trailing_breaks);
        trailing_breaks.clear();
        leading_blank = matches!(chars.peek(), Some(' ' | '\t'));
        while let Some(c) = chars.peek() {
            if is_break(c) || c == '\0' {
                break;
            }
            value.push(c);
            chars.next();
        }
        if let Some(line_break) = chars.read_line() {
            leading_break.push_str(line_break);
        }
        chars.scan_breaks(&mut indent, &mut trailing_breaks, parent_indent)?;
    }
    if chomping != -1 {
        value.push_str(&leading_break);
    }
    if chomping == 1 {
        value.push_str(&trailing_breaks);
    }
    Some(value)
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// A character cursor that tracks the column, as libyaml's reader does.
struct Scanner<'a> {
    rest: std::iter::Peekable<std::str::Chars<'a>>,
    column: usize,
}

impl<'a> Scanner<'a> {
    fn new(source: &'a str) -> Self {
        Scanner {
            rest: source.chars().peekable(),
            column: 0,
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.rest.peek().copied()
    }

    fn next(&mut self) -> Option<char> {
        self.column += 1;
        self.rest.next()
    }

    /// libyaml's `read_line`: CR LF, CR and NEL read as `\n`; LS and PS are kept.
    fn read_line(&mut self) -> Option<&'static str> {
        let read = match self.peek()? {
            '\r' => {
                self.rest.next();
                if self.peek() == Some('\n') {
                    self.rest.next();
                }
                "\n"
            }
            '\n' | '\u{85}' => {
                self.rest.next();
                "\n"
            }
            '\u{2028}' => {
                self.rest.next();
                "\u{2028}"
            }
            '\u{2029}' => {
                self.rest.next();
                "\u{2029}"
            }
            _ => return None,
        };
        self.column = 0;
        Some(read)
    }

    /// libyaml's `scan_block_scalar_breaks`: indentation and empty lines, and the content
    /// indentation when it is still to be detected. `None` on a tab in the indentation.
    fn scan_breaks(
        &mut self,
        indent: &mut usize,
        breaks: &mut String,
        parent_indent: isize,
    ) -> Option<()> {
        let mut max_indent = 0;
        loop {
            while (*indent == 0 || self.column < *indent) && self.peek() == Some(' ') {
                self.next();
            }
            max_indent = max_indent.max(self.column);
            if (*indent == 0 || self.column < *indent) && self.peek() == Some('\t') {
                return None;
            }
            match self.peek() {
                Some(c) if is_break(c) => {
                    if let Some(line_break) = self.read_line() {
                        breaks.push_str(line_break);
                    }
                }
                _ => break,
            }
        }
        if *indent == 0 {
            let minimum = (parent_indent + 1).max(1) as usize;
            *indent = max_indent.max(minimum);
        }
        Some(())
    }
}

/// The value a folded scalar has after kyaml re-encodes it with go-yaml v3 and reads it back.
/// `indent` is the indentation the re-encoded content gets.
pub(crate) fn folded_round_trip(value: &str, indent: usize) -> String {
    if !emit::block_allowed(value) {
        // The encoder falls back to a double-quoted scalar, which keeps the value.
        return value.to_string();
    }
    let written = write_folded(value, indent);
    scan(&written, indent as isize - 2).unwrap_or_else(|| value.to_string())
}

/// `yaml_emitter_write_folded_scalar` of the go-yaml v3 fork in `sigs.k8s.io/yaml` (what
/// kyaml uses), header included.
fn write_folded(value: &str, indent: usize) -> String {
    let chars: Vec<char> = value.chars().collect();
    let mut out = String::from(">");
    if chars.first().is_some_and(|&c| c == ' ' || is_break(c)) {
        out.push('2');
    }
    let chomp = match chars.as_slice() {
        [] => Some('-'),
        [.., last] if !is_break(*last) => Some('-'),
        [_] => Some('+'),
        [.., before, _] if is_break(*before) => Some('+'),
        _ => None,
    };
    out.extend(chomp);
    // The bug kyaml inherits: whether to add a break is decided from the first non-break
    // character of the whole value, not from the line that follows.
    let first_content = chars.iter().copied().find(|&c| !is_break(c));
    let extra_breaks = !matches!(first_content, None | Some(' ' | '\t' | '\0'));
    // sigs.k8s.io/yaml's go-yaml v3 fork ends the header line before the content.
    out.push('\n');
    let mut column = 0;
    let mut indention = true;
    let mut breaks = true;
    let mut leading_spaces = true;
    let write_indent = |out: &mut String, column: &mut usize, indention: &mut bool| {
        if !*indention || *column > indent {
            out.push('\n');
            *column = 0;
            *indention = true;
        }
        while *column < indent {
            out.push(' ');
            *column += 1;
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if is_break(c) {
            if !breaks && !leading_spaces && c == '\n' && extra_breaks {
                out.push('\n');
            }
            out.push(c);
            column = 0;
            if c == '\n' {
                indention = true;
            }
            breaks = true;
        } else {
            if breaks {
                write_indent(&mut out, &mut column, &mut indention);
                leading_spaces = c == ' ' || c == '\t';
            }
            // go-yaml v3's preferred width is unlimited, so no line is folded here.
            out.push(c);
            column += 1;
            indention = false;
            breaks = false;
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_and_folded_values() {
        assert_eq!(scan("|\n  a\n  b\n", 0).as_deref(), Some("a\nb\n"));
        assert_eq!(scan("|-\n  a\n", 0).as_deref(), Some("a"));
        assert_eq!(scan("|+\n  a\n\n", 0).as_deref(), Some("a\n\n"));
        assert_eq!(scan("|\n  a", 0).as_deref(), Some("a"));
        assert_eq!(scan(">\n  a\n  b\n\n  c\n", 0).as_deref(), Some("a b\nc\n"));
        assert_eq!(scan(">\n  a\n\n    b\n", 0).as_deref(), Some("a\n\n  b\n"));
        assert_eq!(scan("|2\n    x\n  y\n", 0).as_deref(), Some("  x\ny\n"));
        assert_eq!(scan("| # comment\n  x\n", 0).as_deref(), Some("x\n"));
        assert_eq!(scan("|\n  x\nnext: 1\n", 0).as_deref(), Some("x\n"));
        assert_eq!(scan("x", 0), None);
    }

    #[test]
    fn folded_round_trip_matches_kustomize() {
        // Values taken from `kubectl kustomize` output for the same sources.
        assert_eq!(folded_round_trip("keep\n\n", 2), "keep\n\n\n");
        assert_eq!(folded_round_trip("a\n b\nc\n", 2), "a\n\n b\nc\n");
        assert_eq!(folded_round_trip("a\nb\n", 2), "a\nb\n");
        assert_eq!(folded_round_trip("fold ed", 2), "fold ed");
        assert_eq!(folded_round_trip("\nlead\ntail", 2), "\nlead\ntail");
    }
}
