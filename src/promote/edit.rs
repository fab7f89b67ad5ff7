//! Span-based YAML edits: find a scalar by its path in a block-style document and replace
//! exactly its bytes, or insert / remove whole lines — so comments, key order, quoting,
//! indentation, blank lines and a missing final newline stay as they were.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;
pub use yaml_rust2::scanner::TScalarStyle as ScalarStyle;
use yaml_rust2::scanner::TScalarStyle;

/// An edit could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// The text is not YAML.
    #[error("not valid YAML: {0}")]
    Parse(String),
    /// The document has a shape the editor does not handle (flow collections, anchors…).
    #[error("{0}: not supported yet")]
    Unsupported(String),
}

/// A parsed node with where it starts in the text (byte offsets).
#[derive(Debug, Clone)]
pub enum Node {
    /// A scalar: its value, style and byte span.
    Scalar {
        /// The value.
        value: String,
        /// How it is written.
        style: TScalarStyle,
        /// Byte offset of its first character (a quote for quoted scalars).
        start: usize,
        /// Byte offset just after it.
        end: usize,
    },
    /// A sequence and its items.
    Seq {
        /// Items.
        items: Vec<Node>,
        /// Byte offset of its start.
        start: usize,
        /// Written in flow style (`[a, b]`).
        flow: bool,
    },
    /// A mapping and its pairs.
    Map {
        /// Key and value pairs.
        pairs: Vec<(Node, Node)>,
        /// Byte offset of its start.
        start: usize,
        /// Written in flow style (`{a: b}`).
        flow: bool,
    },
    /// Anything else (an alias).
    Other {
        /// Byte offset of its start.
        start: usize,
    },
}

impl Node {
    /// Where the node starts.
    pub fn start(&self) -> usize {
        match self {
            Node::Scalar { start, .. }
            | Node::Seq { start, .. }
            | Node::Map { start, .. }
            | Node::Other { start } => *start,
        }
    }

    /// The value under `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map { pairs, .. } => pairs
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The scalar's value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// The farthest byte any scalar of this node ends at.
    pub fn end(&self) -> usize {
        match self {
            Node::Scalar { end, .. } => *end,
            Node::Seq { items, start, .. } => items.iter().map(Node::end).max().unwrap_or(*start),
            Node::Map { pairs, start, .. } => pairs
                .iter()
                .map(|(k, v)| k.end().max(v.end()))
                .max()
                .unwrap_or(*start),
            Node::Other { start } => *start,
        }
    }
}

#[derive(Default)]
struct Builder {
    events: Vec<(Event, Marker)>,
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, marker: Marker) {
        self.events.push((event, marker));
    }
}

/// The first document of `text`, with spans.
pub fn parse(text: &str) -> Result<Option<Node>, EditError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser
        .load(&mut builder, false)
        .map_err(|e| EditError::Parse(e.to_string()))?;
    // Markers count characters; edits need bytes.
    let offsets: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()))
        .collect();
    let byte = |m: &Marker| offsets.get(m.index()).copied().unwrap_or(text.len());
    let mut events = builder.events.into_iter().peekable();
    // Skip to the first document's content.
    while let Some((event, _)) = events.peek() {
        match event {
            Event::StreamStart | Event::DocumentStart | Event::Nothing => {
                events.next();
            }
            _ => break,
        }
    }
    fn node(
        events: &mut std::iter::Peekable<std::vec::IntoIter<(Event, Marker)>>,
        text: &str,
        byte: &dyn Fn(&Marker) -> usize,
    ) -> Result<Option<Node>, EditError> {
        let Some((event, marker)) = events.next() else {
            return Ok(None);
        };
        let start = byte(&marker);
        Ok(Some(match event {
            Event::Scalar(value, style, _, _) => {
                let end = scalar_end(text, start, style);
                Node::Scalar {
                    value,
                    style,
                    start,
                    end,
                }
            }
            Event::SequenceStart(..) => {
                let flow = text[start..].starts_with('[');
                let mut items = Vec::new();
                loop {
                    if matches!(events.peek(), Some((Event::SequenceEnd, _)) | None) {
                        events.next();
                        break;
                    }
                    match node(events, text, byte)? {
                        Some(item) => items.push(item),
                        None => break,
                    }
                }
                Node::Seq { items, start, flow }
            }
            Event::MappingStart(..) => {
                let flow = text[start..].starts_with('{');
                let mut pairs = Vec::new();
                loop {
                    if matches!(events.peek(), Some((Event::MappingEnd, _)) | None) {
                        events.next();
                        break;
                    }
                    let Some(key) = node(events, text, byte)? else {
                        break;
                    };
                    let Some(value) = node(events, text, byte)? else {
                        break;
                    };
                    pairs.push((key, value));
                }
                Node::Map { pairs, start, flow }
            }
            Event::DocumentEnd | Event::StreamEnd => return Ok(None),
            _ => Node::Other { start },
        }))
    }
    node(&mut events, text, &byte)
}

/// Where a scalar that starts at `start` ends.
fn scalar_end(text: &str, start: usize, style: TScalarStyle) -> usize {
    let rest = &text[start..];
    match style {
        TScalarStyle::SingleQuoted => {
            let bytes = rest.as_bytes();
            let mut i = 1;
            while i < bytes.len() {
                if bytes[i] == b'\'' {
                    if bytes.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    return start + i + 1;
                }
                i += 1;
            }
            text.len()
        }
        TScalarStyle::DoubleQuoted => {
            let bytes = rest.as_bytes();
            let mut i = 1;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' => i += 2,
                    b'"' => return start + i + 1,
                    _ => i += 1,
                }
            }
            text.len()
        }
        _ => {
            // A plain scalar on one line: up to a comment or the end of the line.
            let line_end = rest.find('\n').unwrap_or(rest.len());
            let line = &rest[..line_end];
            let cut = line.find(" #").unwrap_or(line.len());
            start + line[..cut].trim_end().len()
        }
    }
}

/// `value` written as a YAML scalar in the style `like` was written in, or quoted when plain
/// would not read back as the same string (`1.10`, `true`, `:x`).
pub fn format_scalar(value: &str, like: Option<TScalarStyle>) -> String {
    let single = || format!("'{}'", value.replace('\'', "''"));
    let double = || format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""));
    match like {
        Some(TScalarStyle::SingleQuoted) => single(),
        Some(TScalarStyle::DoubleQuoted) => double(),
        _ if plain_reads_back(value) => value.to_string(),
        _ => double(),
    }
}

fn plain_reads_back(value: &str) -> bool {
    if value.is_empty() || value.contains(['\n', '#', '"', '\'']) || value.trim() != value {
        return false;
    }
    let text = format!("k: {value}\n");
    match yaml_rust2::YamlLoader::load_from_str(&text) {
        Ok(docs) => docs
            .first()
            .map(|d| &d["k"])
            .is_some_and(|v| v.as_str() == Some(value)),
        Err(_) => false,
    }
}

/// One replacement of a byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splice {
    /// Start byte.
    pub start: usize,
    /// End byte (exclusive).
    pub end: usize,
    /// New text.
    pub text: String,
}

/// Applies splices (non-overlapping, any order) to `text`.
pub fn apply(text: &str, mut splices: Vec<Splice>) -> String {
    splices.sort_by_key(|s| std::cmp::Reverse(s.start));
    let mut out = text.to_string();
    for splice in splices {
        out.replace_range(splice.start..splice.end, &splice.text);
    }
    out
}

/// The start of the line holding byte `at`.
pub fn line_start(text: &str, at: usize) -> usize {
    text[..at].rfind('\n').map_or(0, |i| i + 1)
}

/// Just after the newline ending the line holding byte `at` (or the end of the text).
pub fn line_end(text: &str, at: usize) -> usize {
    text[at..].find('\n').map_or(text.len(), |i| at + i + 1)
}

/// The column (in bytes) of byte `at` on its line.
pub fn column(text: &str, at: usize) -> usize {
    at - line_start(text, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_cover_exactly_the_scalar() {
        let text = "a: 1 # one\nb:\n  - name: x\n    tag: \"v1\"  # pinned\n  - name: 'y'\n";
        let doc = parse(text)
            .ok()
            .flatten()
            .unwrap_or(Node::Other { start: 0 });
        let Some(Node::Seq { items, .. }) = doc.get("b") else {
            panic!("no b");
        };
        let Some(Node::Scalar { start, end, .. }) = items[0].get("tag") else {
            panic!("no tag");
        };
        assert_eq!(&text[*start..*end], "\"v1\"");
        let Some(Node::Scalar { start, end, .. }) = doc.get("a") else {
            panic!("no a");
        };
        assert_eq!(&text[*start..*end], "1");
        let Some(Node::Scalar { start, end, .. }) = items[1].get("name") else {
            panic!("no name");
        };
        assert_eq!(&text[*start..*end], "'y'");
    }

    #[test]
    fn scalars_keep_their_style_and_read_back() {
        assert_eq!(format_scalar("1.10", None), "\"1.10\"");
        assert_eq!(format_scalar("v1.2.3", None), "v1.2.3");
        assert_eq!(
            format_scalar("2.0", Some(TScalarStyle::SingleQuoted)),
            "'2.0'"
        );
        assert_eq!(format_scalar("true", Some(TScalarStyle::Plain)), "\"true\"");
    }

    #[test]
    fn non_ascii_text_before_the_edit_is_kept() {
        let text = "# é ü\nk: old\n";
        let doc = parse(text)
            .ok()
            .flatten()
            .unwrap_or(Node::Other { start: 0 });
        let Some(Node::Scalar { start, end, .. }) = doc.get("k") else {
            panic!("no k");
        };
        let out = apply(
            text,
            vec![Splice {
                start: *start,
                end: *end,
                text: "new".into(),
            }],
        );
        assert_eq!(out, "# é ü\nk: new\n");
    }
}
