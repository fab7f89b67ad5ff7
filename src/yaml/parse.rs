//! Reading YAML streams into `serde_json::Value`s with go-yaml v3's decoding rules (what
//! kustomize's kyaml uses): scalar resolution, explicit tags, merge keys, duplicate keys.
//!
//! Invariants: input size, nesting depth and alias expansion are bounded, so hostile input
//! fails fast with an [`Error`] instead of exhausting memory or the stack.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::block;
use super::resolve::{self, Resolved, Version};
use super::{Error, ErrorKind};

/// Largest input accepted, in bytes.
pub const MAX_INPUT_BYTES: usize = 32 * 1024 * 1024;

/// Deepest nesting of sequences and mappings accepted in one document.
pub const MAX_DEPTH: usize = 1000;

/// How strictly a document is turned into values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Plain YAML: every key becomes its text.
    Documents,
    /// Kubernetes objects as kustomize holds them: annotation values keep their source text,
    /// and nested mappings with non-string keys are rejected as kustomize rejects them.
    Manifests,
    /// A kustomization file, which kustomize reads with `sigs.k8s.io/yaml` (go-yaml v2):
    /// YAML 1.1 booleans, timestamps kept as text, a repeated key overrides the earlier one.
    Kustomization,
}

impl Mode {
    /// Whether kyaml (go-yaml v3, with its encode/decode round trip) reads these documents.
    fn is_kyaml(self) -> bool {
        self != Mode::Kustomization
    }
}

type NodeId = usize;

/// One node of a parsed document, before aliases and merges are expanded.
#[derive(Debug)]
enum NodeKind {
    Scalar {
        text: String,
        style: TScalarStyle,
        tag: Option<String>,
        /// Inside a flow collection (`[…]`, `{…}`).
        in_flow: bool,
        /// For folded scalars, the indentation kyaml re-encodes their content with.
        fold_indent: usize,
    },
    Sequence(Vec<NodeId>),
    Mapping(Vec<(NodeId, NodeId)>),
    Alias(NodeId),
}

#[derive(Debug)]
struct Node {
    kind: NodeKind,
    line: usize,
    column: usize,
}

/// A container still being filled while events arrive.
struct OpenNode {
    id: NodeId,
    anchor: usize,
    pending_key: Option<NodeId>,
    flow: bool,
    /// For a block sequence, the column of its `-` indicators.
    dash_column: isize,
}

/// Maps the parser's character offsets to bytes, moving forward as events arrive.
struct CharCursor<'a> {
    text: &'a str,
    chars: usize,
    bytes: usize,
}

impl CharCursor<'_> {
    fn byte_at(&mut self, char_index: usize) -> Option<u8> {
        // Marks mostly move forward; a few (a mapping's first key) step back a little.
        while self.chars > char_index {
            let c = self.text[..self.bytes].chars().next_back()?;
            self.bytes -= c.len_utf8();
            self.chars -= 1;
        }
        while self.chars < char_index {
            let c = self.text[self.bytes..].chars().next()?;
            self.bytes += c.len_utf8();
            self.chars += 1;
        }
        self.text.as_bytes().get(self.bytes).copied()
    }
}

/// All nodes of one stream, addressed by index.
#[derive(Default)]
struct Arena {
    nodes: Vec<Node>,
}

impl Arena {
    fn push(&mut self, kind: NodeKind, mark: &Marker) -> NodeId {
        self.nodes.push(Node {
            kind,
            line: mark.line(),
            column: mark.col() + 1,
        });
        self.nodes.len() - 1
    }
}

/// Parses every document of `text`; empty and null documents are skipped.
pub(crate) fn parse_stream(text: &str, mode: Mode) -> Result<Vec<Value>, Error> {
    Ok(parse_stream_tracked(text, mode)?
        .into_iter()
        .map(|(value, _)| value)
        .collect())
}

/// [`parse_stream`], with the JSON pointers of each document's bare-null fields (`key:`).
pub(crate) fn parse_stream_tracked(text: &str, mode: Mode) -> Result<Vec<Tracked>, Error> {
    // yaml-rust2 insists that the continuation lines of a multi-line quoted scalar are
    // indented past the enclosing block, libyaml does not. Their leading blanks are not part
    // of the value, so indenting them and parsing again reads the same value go-yaml does.
    let mut reindented: Option<String> = None;
    let mut attempts = 0;
    loop {
        let current = reindented.as_deref().unwrap_or(text);
        match parse_stream_once(current, mode) {
            Err(err)
                if attempts < MAX_REINDENTS
                    && err.kind == ErrorKind::Syntax(QUOTED_INDENTATION.into()) =>
            {
                match indent_quoted_continuations(current, err.line, err.column) {
                    Some(fixed) => {
                        reindented = Some(fixed);
                        attempts += 1;
                    }
                    None => return Err(err),
                }
            }
            result => return result,
        }
    }
}

/// yaml-rust2's complaint about a quoted scalar's continuation lines.
const QUOTED_INDENTATION: &str = "invalid indentation in quoted scalar";

/// How many quoted scalars one input may need re-indented.
const MAX_REINDENTS: usize = 1000;

/// Indents every continuation line of the quoted scalar whose opening quote is at `line`,
/// `column` (1-based) by that column, so it sits deeper than the enclosing block.
fn indent_quoted_continuations(text: &str, line: usize, column: usize) -> Option<String> {
    let line_start = if line == 1 {
        0
    } else {
        text.match_indices('\n').nth(line - 2)?.0 + 1
    };
    let start = line_start + text[line_start..].char_indices().nth(column - 1)?.0;
    let quote = text[start..]
        .chars()
        .next()
        .filter(|c| matches!(c, '\'' | '"'))?;
    let mut out = String::with_capacity(text.len() + 64);
    out.push_str(&text[..=start]);
    let mut rest = text[start + 1..].char_indices().peekable();
    let mut end = text.len();
    let mut changed = false;
    while let Some((i, c)) = rest.next() {
        out.push(c);
        match c {
            '\\' if quote == '"' => {
                if let Some((_, escaped)) = rest.next() {
                    out.push(escaped);
                    if escaped == '\n' {
                        out.push_str(&" ".repeat(column));
                    }
                }
            }
            '\'' if quote == '\'' => {
                if rest.peek().is_some_and(|(_, next)| *next == '\'') {
                    rest.next();
                    out.push('\'');
                } else {
                    end = start + 1 + i + 1;
                    break;
                }
            }
            '"' if quote == '"' => {
                end = start + 1 + i + 1;
                break;
            }
            '\n' => {
                out.push_str(&" ".repeat(column));
                changed = true;
            }
            _ => {}
        }
    }
    if !changed {
        return None;
    }
    out.push_str(&text[end.min(text.len())..]);
    Some(out)
}

fn parse_stream_once(text: &str, mode: Mode) -> Result<Vec<Tracked>, Error> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(Error::at(
            1,
            1,
            ErrorKind::TooLarge {
                size: text.len(),
                limit: MAX_INPUT_BYTES,
            },
        ));
    }
    check_characters(text)?;
    let mut builder = Builder::new(text);
    let mut values = Vec::new();
    // A first document that is a `List` is decoded once we know whether it is the only one
    // (kyaml unwraps the items of a lone list); every other document is decoded as soon as
    // it ends, so only one document's nodes are held at a time.
    let mut pending_list = None;
    let mut documents = 0;
    let mut push = |tracked: Tracked| {
        if !tracked.0.is_null() {
            values.push(tracked);
        }
    };
    while let Some(root) = builder.next_document()? {
        documents += 1;
        if let Some(first) = pending_list.take() {
            push(Decoder::new(&builder.arena, mode).tracked_document(first, false)?);
        }
        if documents == 1 && Decoder::new(&builder.arena, mode).is_unwrapped_list(root) {
            pending_list = Some(root);
            continue;
        }
        push(Decoder::new(&builder.arena, mode).tracked_document(root, false)?);
        builder.clear();
    }
    if let Some(first) = pending_list {
        push(Decoder::new(&builder.arena, mode).tracked_document(first, documents == 1)?);
    }
    Ok(values)
}

/// go-yaml's reader rejects control characters anywhere in the input, even in comments.
fn check_characters(text: &str) -> Result<(), Error> {
    let allowed = |c: char| {
        matches!(c as u32,
            0x09 | 0x0A | 0x0D | 0x20..=0x7E | 0x85 | 0xA0..=0xD7FF | 0xE000..=0xFFFD
            | 0x1_0000..=0x10_FFFF)
    };
    let Some(offset) = text.find(|c| !allowed(c)) else {
        return Ok(());
    };
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let code = text[offset..].chars().next().map_or(0, |c| c as u32);
    Err(Error::at(
        line,
        column,
        ErrorKind::ControlCharacter { code },
    ))
}

fn scan_error(err: &yaml_rust2::ScanError) -> Error {
    let mark = err.marker();
    Error::at(
        mark.line(),
        mark.col() + 1,
        ErrorKind::Syntax(err.info().to_string()),
    )
}

fn tag_text(tag: Option<Tag>) -> Option<String> {
    tag.map(|t| format!("{}{}", t.handle, t.suffix))
}

/// Turns yaml-rust2's events into nodes, one document at a time.
struct Builder<'t> {
    parser: Parser<std::str::Chars<'t>>,
    arena: Arena,
    stack: Vec<OpenNode>,
    /// Anchor ids of yaml-rust2 are unique per definition; `None` marks a container whose
    /// anchor is still open, so an alias to it would be a cycle.
    anchors: HashMap<usize, Option<NodeId>>,
    cursor: CharCursor<'t>,
}

impl<'t> Builder<'t> {
    fn new(text: &'t str) -> Self {
        Builder {
            parser: Parser::new_from_str(text),
            arena: Arena::default(),
            stack: Vec::new(),
            anchors: HashMap::new(),
            cursor: CharCursor {
                text,
                chars: 0,
                bytes: 0,
            },
        }
    }

    /// Forgets the nodes of the documents already decoded (anchors do not cross documents).
    fn clear(&mut self) {
        self.arena.nodes.clear();
        self.anchors.clear();
    }

    /// Reads events up to the end of the next document and returns its root node.
    fn next_document(&mut self) -> Result<Option<NodeId>, Error> {
        let Builder {
            parser,
            arena,
            stack,
            anchors,
            cursor,
        } = self;
        let arena = &mut *arena;
        loop {
            let in_flow = stack.last().is_some_and(|open| open.flow);
            let (event, mark) = parser.next_token().map_err(|e| scan_error(&e))?;
            let finished = match event {
                Event::StreamEnd => return Ok(None),
                Event::Nothing | Event::StreamStart | Event::DocumentStart | Event::DocumentEnd => {
                    continue;
                }
                Event::Scalar(text, style, anchor, tag) => {
                    if in_flow && style == TScalarStyle::Plain && text.starts_with([':', '?']) {
                        // libyaml (YAML 1.1) lets a plain scalar start with `:` or `?` only in
                        // block context; yaml-rust2 follows YAML 1.2 and accepts `[:x]`.
                        return Err(Error::at(
                            mark.line(),
                            mark.col() + 1,
                            ErrorKind::Syntax("did not find expected node content".into()),
                        ));
                    }
                    if style == TScalarStyle::DoubleQuoted
                        && let Some(offset) = slash_escape(text_after(cursor, mark.index()))
                    {
                        return Err(Error::at(
                            mark.line(),
                            mark.col() + 1 + offset,
                            ErrorKind::Syntax("found unknown escape character".into()),
                        ));
                    }
                    let block = matches!(style, TScalarStyle::Literal | TScalarStyle::Folded);
                    // The column of the enclosing block collection, libyaml's `parser.indent`.
                    let parent_indent = stack.last().map_or(-1, |open| block_indent(arena, open));
                    let text = if block {
                        let prefix = text_before(cursor, mark.index());
                        block_header(text_before_all(prefix, cursor.text))
                            .and_then(|source| block::scan(source, parent_indent))
                            .unwrap_or(text)
                    } else {
                        text
                    };
                    let fold_indent = (parent_indent + 2).max(2) as usize;
                    let id = arena.push(
                        NodeKind::Scalar {
                            text,
                            style,
                            tag: tag_text(tag),
                            in_flow,
                            fold_indent,
                        },
                        &mark,
                    );
                    if anchor != 0 {
                        anchors.insert(anchor, Some(id));
                    }
                    id
                }
                Event::Alias(anchor) => match anchors.get(&anchor) {
                    Some(Some(target)) => arena.push(NodeKind::Alias(*target), &mark),
                    found => {
                        let kind = if found.is_some() {
                            ErrorKind::RecursiveAlias
                        } else {
                            ErrorKind::UnknownAnchor
                        };
                        return Err(Error::at(mark.line(), mark.col() + 1, kind));
                    }
                },
                Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(Error::at(
                            mark.line(),
                            mark.col() + 1,
                            ErrorKind::TooDeep { limit: MAX_DEPTH },
                        ));
                    }
                    let kind = if matches!(event, Event::SequenceStart(..)) {
                        NodeKind::Sequence(Vec::new())
                    } else {
                        NodeKind::Mapping(Vec::new())
                    };
                    let id = arena.push(kind, &mark);
                    if anchor != 0 {
                        anchors.insert(anchor, None);
                    }
                    let at_mark = cursor.byte_at(mark.index());
                    let flow = in_flow || matches!(at_mark, Some(b'[' | b'{'));
                    // yaml-rust2 marks an indentless sequence (`key:\n- a`) after its first `- `.
                    let dash_column = if at_mark == Some(b'-') {
                        mark.col() as isize
                    } else {
                        let before = &cursor.text[..cursor.bytes];
                        let spaces = before.len() - before.trim_end_matches([' ', '\t']).len();
                        mark.col() as isize - spaces as isize - 1
                    };
                    stack.push(OpenNode {
                        id,
                        anchor,
                        pending_key: None,
                        flow,
                        dash_column,
                    });
                    continue;
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    let Some(open) = stack.pop() else {
                        return Err(Error::at(
                            mark.line(),
                            mark.col() + 1,
                            ErrorKind::Syntax("unbalanced collection end".into()),
                        ));
                    };
                    if open.anchor != 0 {
                        anchors.insert(open.anchor, Some(open.id));
                    }
                    open.id
                }
            };
            match stack.last_mut() {
                None => return Ok(Some(finished)),
                Some(parent) => match &mut arena.nodes[parent.id].kind {
                    NodeKind::Sequence(items) => items.push(finished),
                    NodeKind::Mapping(pairs) => match parent.pending_key.take() {
                        None => parent.pending_key = Some(finished),
                        Some(key) => pairs.push((key, finished)),
                    },
                    NodeKind::Scalar { .. } | NodeKind::Alias(_) => {}
                },
            }
        }
    }
}

/// The source up to a character offset.
fn text_before<'t>(cursor: &mut CharCursor<'t>, char_index: usize) -> usize {
    match cursor.byte_at(char_index) {
        Some(_) => cursor.bytes,
        None => cursor.text.len(),
    }
}

/// `(source before the offset, whole source)`.
fn text_before_all(offset: usize, text: &str) -> (&str, &str) {
    (&text[..offset], text)
}

/// libyaml's indentation for a collection: the column of a block sequence's first `-`, or of
/// a block mapping's first key (yaml-rust2 marks a mapping after its first key).
fn block_indent(arena: &Arena, open: &OpenNode) -> isize {
    let node = &arena.nodes[open.id];
    match &node.kind {
        NodeKind::Mapping(pairs) => {
            let first_key = pairs.first().map(|(key, _)| *key).or(open.pending_key);
            first_key.map_or(node.column as isize - 1, |key| {
                arena.nodes[key].column as isize - 1
            })
        }
        _ => open.dash_column,
    }
}

/// Finds the header (`|`, `>-`, `|2+ # note`…) of the block scalar whose content yaml-rust2
/// marks at the end of `before`, and returns the source from that header on.
fn block_header<'t>((before, whole): (&str, &'t str)) -> Option<&'t str> {
    let header_end = if whole[before.len()..].starts_with(['|', '>']) {
        // No content: the mark sits on the indicator itself.
        return Some(&whole[before.len()..]);
    } else {
        // Skip the content line's indentation and any blank lines before it.
        let mut end = before.len();
        loop {
            let line_start = whole[..end].rfind('\n').map_or(0, |i| i + 1);
            if whole[line_start..end].trim().is_empty() && line_start > 0 {
                end = line_start - 1;
            } else {
                break end;
            }
        }
    };
    let line_start = whole[..header_end].rfind('\n').map_or(0, |i| i + 1);
    let line = &whole[line_start..header_end];
    let at = line.char_indices().find_map(|(i, c)| {
        let preceded_ok = i == 0 || line[..i].ends_with([' ', '\t']);
        (matches!(c, '|' | '>') && preceded_ok && is_block_header(&line[i..])).then_some(i)
    })?;
    Some(&whole[line_start + at..])
}

/// `[|>]([+-][1-9]?|[1-9][+-]?)?[ \t]*(#.*)?\r?`
fn is_block_header(line: &str) -> bool {
    let rest = &line[1..];
    let rest = rest.strip_prefix(['+', '-']).map_or_else(
        || {
            let r = rest
                .strip_prefix(|c: char| ('1'..='9').contains(&c))
                .unwrap_or(rest);
            r.strip_prefix(['+', '-']).unwrap_or(r)
        },
        |r| {
            r.strip_prefix(|c: char| ('1'..='9').contains(&c))
                .unwrap_or(r)
        },
    );
    let rest = rest.trim_start_matches([' ', '\t']).trim_end_matches('\r');
    rest.is_empty() || rest.starts_with('#')
}

/// The source from a character offset on.
fn text_after<'t>(cursor: &mut CharCursor<'t>, char_index: usize) -> &'t str {
    match cursor.byte_at(char_index) {
        Some(_) => &cursor.text[cursor.bytes..],
        None => "",
    }
}

/// libyaml knows no `\/` escape (YAML 1.2 added it, and yaml-rust2 accepts it): the
/// character offset of one in the double-quoted scalar starting `source`, if any.
fn slash_escape(source: &str) -> Option<usize> {
    let mut chars = source.char_indices().skip_while(|(_, c)| *c != '"').skip(1);
    let mut column = 0;
    while let Some((_, c)) = chars.next() {
        column += 1;
        match c {
            '"' => return None,
            '\\' => {
                let (_, escaped) = chars.next()?;
                if escaped == '/' {
                    return Some(column);
                }
                column += 1;
            }
            _ => {}
        }
    }
    None
}

/// Turns nodes into values, counting work the way go-yaml v3 does to stop alias bombs.
struct Decoder<'a> {
    arena: &'a Arena,
    mode: Mode,
    decode_count: u64,
    alias_count: u64,
    alias_depth: u32,
    depth: usize,
    /// Where the decoder is (JSON pointer tokens), for `bare_nulls`.
    path: Vec<String>,
    /// JSON pointers of map fields written with no value at all (`key:`): kyaml keeps their
    /// empty text, and its merge drops them where it keeps a written `null` or `~`.
    bare_nulls: Vec<String>,
}

/// A document and the JSON pointers of its fields written with no value (`key:`).
pub(crate) type Tracked = (Value, Vec<String>);

fn pointer(path: &[String]) -> String {
    path.iter()
        .map(|token| format!("/{}", token.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// Where in a document a value sits, for kustomize's special cases.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// The root of a document, or an item of a `List` that kustomize unwraps while reading.
    Resource,
    /// The root of a single-document `List`/`ResourceList`, whose items are resources.
    ListRoot,
    /// The `items` of such a list.
    ListItems,
    /// `metadata` of a resource.
    Metadata,
    /// `metadata.annotations` of a resource.
    Annotations,
    /// One value of `metadata.annotations`.
    AnnotationValue,
    /// Anywhere else.
    Other,
}

impl Place {
    fn is_object_root(self) -> bool {
        matches!(self, Place::Resource | Place::ListRoot)
    }
}

impl<'a> Decoder<'a> {
    fn new(arena: &'a Arena, mode: Mode) -> Self {
        Decoder {
            arena,
            mode,
            decode_count: 0,
            alias_count: 0,
            alias_depth: 0,
            depth: 0,
            path: Vec::new(),
            bare_nulls: Vec::new(),
        }
    }

    /// Decodes a document with the pointers of its bare-null fields (none for an unwrapped
    /// `List`, whose items' paths are not the items' own).
    fn tracked_document(mut self, root: NodeId, only_document: bool) -> Result<Tracked, Error> {
        let value = self.document(root, only_document)?;
        let unwrapped = only_document && self.is_unwrapped_list(root);
        Ok((
            value,
            if unwrapped {
                Vec::new()
            } else {
                self.bare_nulls
            },
        ))
    }

    /// True for a plain scalar with no text and no tag outside flow style (`key:`).
    fn is_bare_null(&self, id: NodeId) -> bool {
        matches!(
            &self.node(id).kind,
            NodeKind::Scalar { text, style: TScalarStyle::Plain, tag: None, in_flow: false, .. }
                if text.is_empty()
        )
    }

    fn node(&self, id: NodeId) -> &'a Node {
        &self.arena.nodes[id]
    }

    fn error(&self, id: NodeId, kind: ErrorKind) -> Error {
        let node = self.node(id);
        Error::at(node.line, node.column, kind)
    }

    fn document(&mut self, root: NodeId, only_document: bool) -> Result<Value, Error> {
        let place = if only_document && self.is_unwrapped_list(root) {
            Place::ListRoot
        } else {
            Place::Resource
        };
        self.decode(root, place)
    }

    /// kyaml's reader unwraps the items of a file holding a single `List` or `ResourceList`
    /// document, so those items are resources in their own right.
    fn is_unwrapped_list(&self, root: NodeId) -> bool {
        let NodeKind::Mapping(pairs) = &self.node(self.target(root)).kind else {
            return false;
        };
        let scalar_text = |id: NodeId| match &self.node(self.target(id)).kind {
            NodeKind::Scalar { text, .. } => Some(text.as_str()),
            _ => None,
        };
        let kind = pairs
            .iter()
            .find(|(k, _)| scalar_text(*k) == Some("kind"))
            .and_then(|(_, v)| scalar_text(*v));
        matches!(kind, Some("List" | "ResourceList"))
            && pairs.iter().any(|(k, _)| scalar_text(*k) == Some("items"))
    }

    /// go-yaml v3's `allowedAliasRatio`: small documents may be mostly aliases, big ones not.
    fn alias_ratio_exceeded(&self) -> bool {
        const LOW: f64 = 400_000.0;
        const HIGH: f64 = 4_000_000.0;
        if self.alias_count <= 100 || self.decode_count <= 1000 {
            return false;
        }
        let decoded = self.decode_count as f64;
        let allowed = if decoded <= LOW {
            0.99
        } else if decoded >= HIGH {
            0.10
        } else {
            0.99 - 0.89 * ((decoded - LOW) / (HIGH - LOW))
        };
        self.alias_count as f64 / decoded > allowed
    }

    fn decode(&mut self, id: NodeId, place: Place) -> Result<Value, Error> {
        self.decode_count += 1;
        if self.alias_depth > 0 {
            self.alias_count += 1;
        }
        if self.alias_ratio_exceeded() {
            return Err(self.error(id, ErrorKind::ExcessiveAliasing));
        }
        match &self.node(id).kind {
            NodeKind::Alias(target) => {
                self.alias_depth += 1;
                let value = self.decode(*target, place);
                self.alias_depth -= 1;
                value
            }
            NodeKind::Scalar {
                text,
                style,
                tag,
                in_flow,
                fold_indent,
            } => {
                if place == Place::AnnotationValue {
                    // kustomize rewrites annotations from each node's source text.
                    return Ok(Value::String(text.clone()));
                }
                if *style == TScalarStyle::Folded && tag.is_none() && self.mode.is_kyaml() {
                    let text = block::folded_round_trip(text, *fold_indent);
                    return self.scalar(id, &text, *style, None, *in_flow);
                }
                self.scalar(id, text, *style, tag.as_deref(), *in_flow)
            }
            NodeKind::Sequence(_) | NodeKind::Mapping(_) if place == Place::AnnotationValue => {
                // The text of a collection node is empty, and that is what kustomize keeps.
                Ok(Value::String(String::new()))
            }
            NodeKind::Sequence(items) => {
                self.enter(id)?;
                let item_place = if place == Place::ListItems {
                    Place::Resource
                } else {
                    Place::Other
                };
                let mut values = Vec::with_capacity(items.len());
                for (index, &item) in items.iter().enumerate() {
                    self.path.push(index.to_string());
                    let value = self.decode(item, item_place);
                    self.path.pop();
                    values.push(value?);
                }
                self.depth -= 1;
                Ok(Value::Array(values))
            }
            NodeKind::Mapping(pairs) => {
                self.enter(id)?;
                let mut map = Map::new();
                self.mapping(pairs, place, &mut map, &mut None)?;
                if self.mode == Mode::Manifests && place.is_object_root() {
                    drop_empty_annotations(&mut map);
                }
                self.depth -= 1;
                Ok(Value::Object(map))
            }
        }
    }

    fn enter(&mut self, id: NodeId) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(id, ErrorKind::TooDeep { limit: MAX_DEPTH }));
        }
        Ok(())
    }

    /// Follows aliases to the node they name.
    fn target(&self, mut id: NodeId) -> NodeId {
        while let NodeKind::Alias(target) = self.node(id).kind {
            id = target;
        }
        id
    }

    /// Decodes a mapping into `out` as v3's `mapping` + `merge`: explicit keys first, then
    /// merged ones that no earlier source set. `merged` holds the keys already set when this
    /// mapping is itself a merge source.
    fn mapping(
        &mut self,
        pairs: &'a [(NodeId, NodeId)],
        place: Place,
        out: &mut Map<String, Value>,
        merged: &mut Option<HashSet<String>>,
    ) -> Result<(), Error> {
        self.check_duplicates(pairs)?;
        let mut merge_source = None;
        for &(key_id, value_id) in pairs {
            if self.is_merge_key(key_id) {
                merge_source = Some(value_id);
                continue;
            }
            let key = self.key_text(key_id, place)?;
            if let Some(set) = merged.as_mut() {
                if set.contains(&key) {
                    continue;
                }
                set.insert(key.clone());
            }
            let child_place = match (place, key.as_str()) {
                (Place::Resource | Place::ListRoot, "metadata") => Place::Metadata,
                (Place::ListRoot, "items") => Place::ListItems,
                (Place::Metadata, "annotations") if self.mode == Mode::Manifests => {
                    Place::Annotations
                }
                (Place::Annotations, _) => Place::AnnotationValue,
                _ => Place::Other,
            };
            self.path.push(key.clone());
            let value = self.decode(value_id, child_place);
            if self.mode == Mode::Manifests
                && matches!(value, Ok(Value::Null))
                && self.is_bare_null(value_id)
            {
                self.bare_nulls.push(pointer(&self.path));
            }
            self.path.pop();
            out.insert(key, value?);
        }
        if let Some(source) = merge_source {
            self.merge(pairs, source, place, out, merged)?;
        }
        Ok(())
    }

    fn merge(
        &mut self,
        pairs: &'a [(NodeId, NodeId)],
        source: NodeId,
        place: Place,
        out: &mut Map<String, Value>,
        merged: &mut Option<HashSet<String>>,
    ) -> Result<(), Error> {
        let outer_set = merged.is_some();
        let mut own = match merged.take() {
            Some(set) => Some(set),
            None => {
                let mut set = HashSet::new();
                for &(key_id, _) in pairs {
                    if !self.is_merge_key(key_id) {
                        set.insert(self.key_text(key_id, place)?);
                    }
                }
                Some(set)
            }
        };
        let sources: Vec<NodeId> = match &self.node(self.target(source)).kind {
            NodeKind::Mapping(_) => vec![source],
            NodeKind::Sequence(items) if !matches!(self.node(source).kind, NodeKind::Alias(_)) => {
                items.clone()
            }
            _ => return Err(self.error(source, ErrorKind::MergeNotMap)),
        };
        for item in sources {
            let target = self.target(item);
            let NodeKind::Mapping(inner) = &self.node(target).kind else {
                return Err(self.error(item, ErrorKind::MergeNotMap));
            };
            self.decode_count += 1;
            let aliased = item != target;
            if aliased {
                self.alias_depth += 1;
            }
            if self.alias_depth > 0 {
                self.alias_count += 1;
            }
            self.enter(target)?;
            let result = self.mapping(inner, place, out, &mut own);
            self.depth -= 1;
            if aliased {
                self.alias_depth -= 1;
            }
            result?;
        }
        // The caller's set (a merge source merging further) keeps what this merge added.
        if outer_set {
            *merged = own;
        }
        Ok(())
    }

    /// v3's `isMerge`: the text `<<` with no tag, the non-specific tag or `!!merge`, whatever
    /// its quoting.
    fn is_merge_key(&self, id: NodeId) -> bool {
        match &self.node(id).kind {
            NodeKind::Scalar { text, tag, .. } => {
                text == "<<"
                    && match tag.as_deref() {
                        None | Some("!") => true,
                        Some(t) => short_tag(t) == "!!merge",
                    }
            }
            _ => false,
        }
    }

    /// v3 rejects two keys of one mapping with the same kind and text.
    fn check_duplicates(&self, pairs: &[(NodeId, NodeId)]) -> Result<(), Error> {
        if pairs.len() < 2 || !self.mode.is_kyaml() {
            return Ok(());
        }
        let identity = |key_id: NodeId| match &self.node(key_id).kind {
            NodeKind::Scalar { text, .. } => (0u8, text.as_str()),
            NodeKind::Sequence(_) => (1, ""),
            NodeKind::Mapping(_) => (2, ""),
            NodeKind::Alias(_) => (3, ""),
        };
        let duplicate = |key_id: NodeId, first_line: usize| {
            let node = self.node(key_id);
            Error::at(
                node.line,
                node.column,
                ErrorKind::DuplicateKey {
                    key: identity(key_id).1.to_string(),
                    first_line,
                },
            )
        };
        // Most mappings are small: comparing pairs beats hashing them.
        if pairs.len() <= 16 {
            for (index, &(key_id, _)) in pairs.iter().enumerate() {
                let this = identity(key_id);
                if let Some(&(first, _)) = pairs[..index].iter().find(|(k, _)| identity(*k) == this)
                {
                    return Err(duplicate(key_id, self.node(first).line));
                }
            }
            return Ok(());
        }
        let mut seen: HashMap<(u8, &str), usize> = HashMap::with_capacity(pairs.len());
        for &(key_id, _) in pairs {
            let this = identity(key_id);
            if let Some(&first_line) = seen.get(&this) {
                return Err(duplicate(key_id, first_line));
            }
            seen.insert(this, self.node(key_id).line);
        }
        Ok(())
    }

    /// A mapping key as text; kustomize's objects only allow string keys below the top level.
    fn key_text(&self, key_id: NodeId, place: Place) -> Result<String, Error> {
        let target = self.target(key_id);
        let NodeKind::Scalar {
            text, style, tag, ..
        } = &self.node(target).kind
        else {
            return Err(self.error(key_id, ErrorKind::ComplexKey));
        };
        if self.mode == Mode::Manifests && !place.is_object_root() {
            let is_string = match (style, tag.as_deref()) {
                (_, Some(t)) if short_tag(t) == "!!str" => true,
                (TScalarStyle::Plain, None) => {
                    resolve::resolve_plain(text, Version::V3) == Resolved::Str
                }
                (_, None | Some("!")) => true,
                (_, Some(_)) => false,
            };
            if !is_string {
                return Err(self.error(key_id, ErrorKind::NonStringKey { key: text.clone() }));
            }
        }
        if self.mode == Mode::Kustomization && *style == TScalarStyle::Plain && tag.is_none() {
            // sigs.k8s.io/yaml prints non-string keys back as text its own way.
            match resolve::resolve_plain(text, Version::V2) {
                Resolved::Int(i) => return Ok(i.to_string()),
                Resolved::Uint(u) => return Ok(u.to_string()),
                Resolved::Bool(b) => return Ok(b.to_string()),
                _ => {}
            }
        }
        Ok(text.clone())
    }

    fn scalar(
        &self,
        id: NodeId,
        text: &str,
        style: TScalarStyle,
        tag: Option<&str>,
        in_flow: bool,
    ) -> Result<Value, Error> {
        let kyaml = self.mode.is_kyaml();
        let version = if kyaml { Version::V3 } else { Version::V2 };
        let mut resolved = match tag {
            None | Some("!") if style != TScalarStyle::Plain => Resolved::Str,
            None => resolve::resolve_plain(text, version),
            // kyaml re-encodes documents before decoding them, and the re-encoded `! 12`
            // loses its non-specific tag, so it resolves like any plain scalar.
            Some("!") if kyaml => resolve::resolve_plain(text, version),
            Some("!") => Resolved::Str,
            Some(full) => {
                let short = short_tag(full);
                if short == "!!binary" {
                    let bytes = decode_base64(text)
                        .ok_or_else(|| self.error(id, ErrorKind::InvalidBinary))?;
                    return Ok(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
                }
                resolve::resolve_tagged(text, &short)
                    .map_err(|cause| self.error(id, ErrorKind::Tag(cause)))?
            }
        };
        if !kyaml && matches!(resolved, Resolved::Timestamp(_)) {
            // go-yaml v2 keeps timestamps as their text when decoding into `interface{}`.
            resolved = Resolved::Str;
        }
        if kyaml
            && in_flow
            && tag.is_none()
            && matches!(resolved, Resolved::Timestamp(_))
            && text.contains(':')
        {
            // kyaml re-encodes documents before decoding them, and in a flow collection the
            // emitter must quote a scalar holding `:`, so such a timestamp comes back as text.
            resolved = Resolved::Str;
        }
        if kyaml && in_flow && tag.is_none() && style == TScalarStyle::Plain && text.is_empty() {
            // Likewise an empty value in a flow collection (`{a: }`) is re-encoded as `''`.
            resolved = Resolved::Str;
        }
        Ok(match resolved {
            Resolved::Null => Value::Null,
            Resolved::Bool(b) => Value::Bool(b),
            Resolved::Int(i) => Value::Number(i.into()),
            Resolved::Uint(u) => Value::Number(u.into()),
            Resolved::Float(f) => match Number::from_f64(f) {
                Some(n) => Value::Number(n),
                None => {
                    return Err(self.error(
                        id,
                        ErrorKind::NonFiniteFloat {
                            text: text.to_string(),
                        },
                    ));
                }
            },
            Resolved::Timestamp(ts) => Value::String(ts),
            Resolved::Str => Value::String(text.to_string()),
        })
    }
}

/// kustomize clears `metadata.annotations` when it holds nothing (`{}`, `~` or no value).
fn drop_empty_annotations(object: &mut Map<String, Value>) {
    if let Some(Value::Object(metadata)) = object.get_mut("metadata") {
        let empty = match metadata.get("annotations") {
            Some(Value::Null) => true,
            Some(Value::Object(annotations)) => annotations.is_empty(),
            _ => false,
        };
        if empty {
            metadata.shift_remove("annotations");
        }
    }
}

/// `tag:yaml.org,2002:int` → `!!int`; other tags unchanged.
fn short_tag(tag: &str) -> String {
    match tag.strip_prefix("tag:yaml.org,2002:") {
        Some(rest) => format!("!!{rest}"),
        None => tag.to_string(),
    }
}

/// Go's `base64.StdEncoding.DecodeString`, which skips newlines and requires padding.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let symbols: Vec<u8> = text
        .bytes()
        .filter(|b| *b != b'\n' && *b != b'\r')
        .collect();
    if !symbols.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(symbols.len() / 4 * 3);
    for (index, chunk) in symbols.chunks(4).enumerate() {
        let last = index + 1 == symbols.len() / 4;
        let mut acc: u32 = 0;
        let mut padding = 0;
        for &c in chunk {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                b'=' if last => {
                    padding += 1;
                    0
                }
                _ => return None,
            };
            if padding > 0 && c != b'=' {
                return None;
            }
            acc = (acc << 6) | u32::from(v);
        }
        if padding > 2 {
            return None;
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - padding]);
    }
    Some(out)
}
