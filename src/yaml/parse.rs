//! Reading YAML streams into `serde_json::Value`s with go-yaml v3's decoding rules (what
//! kustomize's kyaml uses): scalar resolution, explicit tags, merge keys, duplicate keys.
//!
//! Invariants: input size, nesting depth and alias expansion are bounded, so hostile input
//! fails fast with an [`Error`] instead of exhausting memory or the stack.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

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
}

type NodeId = usize;

/// One node of a parsed document, before aliases and merges are expanded.
#[derive(Debug)]
enum NodeKind {
    Scalar {
        text: String,
        style: TScalarStyle,
        tag: Option<String>,
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
    let mut arena = Arena::default();
    let roots = build_nodes(text, &mut arena)?;
    let mut values = Vec::with_capacity(roots.len());
    for root in roots {
        let mut decoder = Decoder::new(&arena, mode);
        let value = decoder.document(root)?;
        if !value.is_null() {
            values.push(value);
        }
    }
    Ok(values)
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

/// Runs the event parser over the whole stream and returns each document's root node.
fn build_nodes(text: &str, arena: &mut Arena) -> Result<Vec<NodeId>, Error> {
    let mut parser = Parser::new_from_str(text);
    let mut roots = Vec::new();
    let mut stack: Vec<OpenNode> = Vec::new();
    // Anchor ids of yaml-rust2 are unique per definition; `None` marks a container whose
    // anchor is still open, so an alias to it would be a cycle.
    let mut anchors: HashMap<usize, Option<NodeId>> = HashMap::new();
    loop {
        let (event, mark) = parser.next_token().map_err(|e| scan_error(&e))?;
        let finished = match event {
            Event::StreamEnd => break,
            Event::Nothing | Event::StreamStart | Event::DocumentStart | Event::DocumentEnd => {
                continue;
            }
            Event::Scalar(text, style, anchor, tag) => {
                let id = arena.push(
                    NodeKind::Scalar {
                        text,
                        style,
                        tag: tag_text(tag),
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
                _ => {
                    return Err(Error::at(
                        mark.line(),
                        mark.col() + 1,
                        ErrorKind::RecursiveAlias,
                    ));
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
                stack.push(OpenNode {
                    id,
                    anchor,
                    pending_key: None,
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
            None => roots.push(finished),
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
    Ok(roots)
}

/// Turns nodes into values, counting work the way go-yaml v3 does to stop alias bombs.
struct Decoder<'a> {
    arena: &'a Arena,
    mode: Mode,
    decode_count: u64,
    alias_count: u64,
    alias_depth: u32,
    depth: usize,
}

/// Where in a document a value sits, for kustomize's special cases.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Root,
    RootMetadata,
    Annotations,
    AnnotationValue,
    Other,
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
        }
    }

    fn node(&self, id: NodeId) -> &'a Node {
        &self.arena.nodes[id]
    }

    fn error(&self, id: NodeId, kind: ErrorKind) -> Error {
        let node = self.node(id);
        Error::at(node.line, node.column, kind)
    }

    fn document(&mut self, root: NodeId) -> Result<Value, Error> {
        self.decode(root, Place::Root)
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
            NodeKind::Scalar { text, style, tag } => {
                if place == Place::AnnotationValue {
                    return Ok(Value::String(text.clone()));
                }
                self.scalar(id, text, *style, tag.as_deref())
            }
            NodeKind::Sequence(items) => {
                self.enter(id)?;
                let mut values = Vec::with_capacity(items.len());
                for &item in items {
                    values.push(self.decode(item, Place::Other)?);
                }
                self.depth -= 1;
                Ok(Value::Array(values))
            }
            NodeKind::Mapping(pairs) => {
                self.enter(id)?;
                let mut map = Map::new();
                self.mapping(pairs, place, &mut map, &mut None)?;
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
                (Place::Root, "metadata") => Place::RootMetadata,
                (Place::RootMetadata, "annotations") if self.mode == Mode::Manifests => {
                    Place::Annotations
                }
                (Place::Annotations, _) => Place::AnnotationValue,
                _ => Place::Other,
            };
            let value = self.decode(value_id, child_place)?;
            out.insert(key, value);
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
        if pairs.len() < 2 {
            return Ok(());
        }
        let mut seen: HashMap<(u8, &str), usize> = HashMap::with_capacity(pairs.len());
        for &(key_id, _) in pairs {
            let node = self.node(key_id);
            let (kind, text) = match &node.kind {
                NodeKind::Scalar { text, .. } => (0, text.as_str()),
                NodeKind::Sequence(_) => (1, ""),
                NodeKind::Mapping(_) => (2, ""),
                NodeKind::Alias(_) => (3, ""),
            };
            if let Some(&first_line) = seen.get(&(kind, text)) {
                return Err(Error::at(
                    node.line,
                    node.column,
                    ErrorKind::DuplicateKey {
                        key: text.to_string(),
                        first_line,
                    },
                ));
            }
            seen.insert((kind, text), node.line);
        }
        Ok(())
    }

    /// A mapping key as text; kustomize's objects only allow string keys below the top level.
    fn key_text(&self, key_id: NodeId, place: Place) -> Result<String, Error> {
        let target = self.target(key_id);
        let NodeKind::Scalar { text, style, tag } = &self.node(target).kind else {
            return Err(self.error(key_id, ErrorKind::ComplexKey));
        };
        if self.mode == Mode::Manifests && place != Place::Root {
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
        Ok(text.clone())
    }

    fn scalar(
        &self,
        id: NodeId,
        text: &str,
        style: TScalarStyle,
        tag: Option<&str>,
    ) -> Result<Value, Error> {
        let resolved = match tag {
            None | Some("!") if style != TScalarStyle::Plain => Resolved::Str,
            None => resolve::resolve_plain(text, Version::V3),
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
    if symbols.len() % 4 != 0 {
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
