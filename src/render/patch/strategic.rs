//! Strategic merge patch as kustomize applies it: kyaml's `merge2` walker (`kyaml/yaml/walk`,
//! `kyaml/yaml/merge2`) with list items from the patch placed first.
//!
//! The rules users see:
//! - maps merge key by key; a `null` in the patch deletes the field; `$patch: delete` deletes
//!   the map (or the whole object), `$patch: replace` replaces it;
//! - a list merges element by element only when the OpenAPI schema gives it a `merge`
//!   strategy (containers by `name`, ports by `containerPort`+`protocol`, finalizers by value,
//!   …); every other list — and every list of a kind the schema does not know — is replaced;
//! - in a merged list the patch's elements come first, then the object's other elements; an
//!   element `{$patch: delete}` with its keys removes it; a list element `{$patch: replace}`
//!   replaces the list;
//! - directives kustomize does not know (`$setElementOrder/…`, `$retainKeys`,
//!   `$deleteFromPrimitiveList/…`) are ordinary fields to it, and are kept as such.
//!
//! kyaml works on shared, mutable YAML nodes and parts of its result depend on which nodes are
//! the same node. To give the same results this module walks an arena of nodes with the same
//! operations (field setter, element setter, element matcher) rather than plain values.
//!
//! Invariant: pure; no IO.

use serde_json::{Map, Value};

use super::openapi::{OpenApi, Schema};

/// A strategic merge patch cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// The patch and the object disagree on what a field is (a map against a list, …).
    #[error("wrong node kind: expected {expected} but got {found}: node contents:\n{contents}")]
    WrongKind {
        /// The kind the walk expected (`MappingNode`, `SequenceNode`, `ScalarNode`).
        expected: &'static str,
        /// The kind found.
        found: &'static str,
        /// The offending node, as YAML.
        contents: String,
    },
    /// A `$patch` directive with a value other than `delete`, `replace` or `merge`.
    #[error("unknown patch strategy '{value}'")]
    UnknownDirective {
        /// The directive's value.
        value: String,
    },
    /// A directive was looked for on a scalar.
    #[error("no implemented strategic merge patch strategy for '{tag}' ('{text}')")]
    NoStrategy {
        /// The scalar's YAML tag.
        tag: &'static str,
        /// The scalar's text.
        text: String,
    },
}

/// Merges `patch` into `object` as `kustomize build` does. `None` means the patch deleted the
/// object (`$patch: delete` at the top).
pub fn merge(object: &Value, patch: &Value, api: &OpenApi) -> Result<Option<Value>, MergeError> {
    merge_with_bare_nulls(object, &[], patch, api)
}

/// [`merge`] where `bare_nulls` point at the object's fields written with no value (`key:`):
/// kyaml's merge drops those where it walks (maps, and the elements of merged lists) and
/// keeps a written `null`/`~` (its "explicitly set null"); inside replaced lists both stay.
pub fn merge_with_bare_nulls(
    object: &Value,
    bare_nulls: &[String],
    patch: &Value,
    api: &OpenApi,
) -> Result<Option<Value>, MergeError> {
    let mut tree = Tree::default();
    let dest = tree.add(object);
    for pointer in bare_nulls {
        if let Some(id) = tree.resolve(dest, pointer)
            && matches!(tree.nodes[id], Node::Null)
        {
            tree.bare.insert(id);
        }
    }
    let origin = tree.add(patch);
    let mut walker = Walker { tree, api };
    let merged = walker.walk([Some(RNode::new(dest)), Some(RNode::new(origin))], None)?;
    Ok(merged.map(|node| walker.tree.to_value(node.id)))
}

const DIRECTIVE_KEY: &str = "$patch";

#[derive(Debug, Clone)]
enum Node {
    Map(Vec<(String, usize)>),
    Seq(Vec<usize>),
    Scalar(Value),
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Map,
    Seq,
    Scalar,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Map => "MappingNode",
            Kind::Seq => "SequenceNode",
            Kind::Scalar => "ScalarNode",
        }
    }
}

/// A handle on a node; `keep` marks a null that must survive being set on a map (kyaml's
/// persistent null, for `field: null` already in the object).
#[derive(Debug, Clone, Copy)]
struct RNode {
    id: usize,
    keep: bool,
}

impl RNode {
    fn new(id: usize) -> RNode {
        RNode { id, keep: false }
    }
}

type Src = Option<RNode>;

#[derive(Debug, Default)]
struct Tree {
    nodes: Vec<Node>,
    /// Null nodes written with no text (`key:`).
    bare: std::collections::HashSet<usize>,
}

impl Tree {
    fn push(&mut self, node: Node) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn add(&mut self, value: &Value) -> usize {
        let node = match value {
            Value::Object(map) => {
                Node::Map(map.iter().map(|(k, v)| (k.clone(), self.add(v))).collect())
            }
            Value::Array(items) => Node::Seq(items.iter().map(|v| self.add(v)).collect()),
            Value::Null => Node::Null,
            scalar => Node::Scalar(scalar.clone()),
        };
        self.push(node)
    }

    fn to_value(&self, id: usize) -> Value {
        match &self.nodes[id] {
            Node::Map(fields) => {
                let mut map = Map::new();
                for (key, value) in fields {
                    map.insert(key.clone(), self.to_value(*value));
                }
                Value::Object(map)
            }
            Node::Seq(items) => Value::Array(items.iter().map(|i| self.to_value(*i)).collect()),
            Node::Scalar(v) => v.clone(),
            Node::Null => Value::Null,
        }
    }

    fn kind(&self, id: usize) -> Option<Kind> {
        match self.nodes[id] {
            Node::Map(_) => Some(Kind::Map),
            Node::Seq(_) => Some(Kind::Seq),
            Node::Scalar(_) => Some(Kind::Scalar),
            Node::Null => None,
        }
    }

    fn is_null(&self, src: Src) -> bool {
        src.is_none_or(|n| matches!(self.nodes[n.id], Node::Null))
    }

    fn is_map(&self, id: usize) -> bool {
        matches!(self.nodes[id], Node::Map(_))
    }

    fn is_empty_map(&self, src: Src) -> bool {
        self.is_null(src)
            || src.is_some_and(|n| matches!(&self.nodes[n.id], Node::Map(f) if f.is_empty()))
    }

    fn is_nil_or_empty(&self, id: usize) -> bool {
        match &self.nodes[id] {
            Node::Null => true,
            Node::Map(f) => f.is_empty(),
            Node::Seq(i) => i.is_empty(),
            Node::Scalar(_) => false,
        }
    }

    /// The node's scalar text, as go-yaml's `Node.Value` (empty for maps and lists).
    /// The node a JSON pointer names below `root`.
    fn resolve(&self, root: usize, pointer: &str) -> Option<usize> {
        let mut id = root;
        for token in pointer.split('/').skip(1) {
            let token = token.replace("~1", "/").replace("~0", "~");
            id = match &self.nodes[id] {
                Node::Map(fields) => fields.iter().find(|(k, _)| *k == token).map(|(_, v)| *v)?,
                Node::Seq(items) => *items.get(token.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(id)
    }

    fn text(&self, id: usize) -> String {
        match &self.nodes[id] {
            Node::Scalar(v) => scalar_text(v),
            Node::Null if self.bare.contains(&id) => String::new(),
            Node::Null => "null".to_string(),
            Node::Map(_) | Node::Seq(_) => String::new(),
        }
    }

    fn field(&self, id: usize, name: &str) -> Option<usize> {
        match &self.nodes[id] {
            Node::Map(fields) => fields.iter().find(|(k, _)| k == name).map(|(_, v)| *v),
            _ => None,
        }
    }

    fn field_names(&self, id: usize) -> Vec<String> {
        match &self.nodes[id] {
            Node::Map(fields) => fields.iter().map(|(k, _)| k.clone()).collect(),
            _ => Vec::new(),
        }
    }

    fn items(&self, id: usize) -> Vec<usize> {
        match &self.nodes[id] {
            Node::Seq(items) => items.clone(),
            _ => Vec::new(),
        }
    }

    fn set_items(&mut self, id: usize, items: Vec<usize>) {
        self.nodes[id] = Node::Seq(items);
    }

    fn remove_field(&mut self, id: usize, name: &str) {
        if let Node::Map(fields) = &mut self.nodes[id]
            && let Some(pos) = fields.iter().position(|(k, _)| k == name)
        {
            fields.remove(pos);
        }
    }

    fn invalid(&self, id: usize, expected: Kind) -> MergeError {
        MergeError::WrongKind {
            expected: expected.name(),
            found: self.kind(id).map_or("ScalarNode", Kind::name),
            contents: crate::yaml::to_yaml(&self.to_value(id)),
        }
    }

    fn error_if_invalid(&self, src: Src, expected: Kind) -> Result<(), MergeError> {
        match src {
            Some(n) if !self.is_null(src) && self.kind(n.id) != Some(expected) => {
                Err(self.invalid(n.id, expected))
            }
            _ => Ok(()),
        }
    }

    /// kyaml's `FieldSetter`: a null (not kept) clears the field, an existing field takes the
    /// value in place (the same node, so other holders of it see the change), a new one is
    /// appended.
    fn set_field(&mut self, map: usize, name: &str, value: Src) {
        let Some(value) = value.filter(|v| v.keep || !matches!(self.nodes[v.id], Node::Null))
        else {
            self.remove_field(map, name);
            return;
        };
        if let Some(existing) = self.field(map, name) {
            if existing != value.id {
                self.nodes[existing] = self.nodes[value.id].clone();
            }
            return;
        }
        if let Node::Map(fields) = &mut self.nodes[map] {
            fields.push((name.to_string(), value.id));
        }
    }

    /// kyaml's `FieldMatcher{Name, StringValue}`: the field's value when the field exists and
    /// (for a non-empty `value`) its text equals `value`; for an empty name, the node itself
    /// when its text equals `value`.
    fn match_field(&self, id: usize, name: &str, value: &str) -> Result<Option<usize>, MergeError> {
        if matches!(self.nodes[id], Node::Null) {
            return Ok(None);
        }
        if name.is_empty() {
            if self.kind(id) != Some(Kind::Scalar) {
                return Err(self.invalid(id, Kind::Scalar));
            }
            return Ok((self.text(id) == value).then_some(id));
        }
        if !self.is_map(id) {
            return Err(self.invalid(id, Kind::Map));
        }
        Ok(self
            .field(id, name)
            .filter(|v| value.is_empty() || self.text(*v) == value))
    }

    /// kyaml's `ElementSetter`: drops null and empty-map elements, then removes (`element`
    /// `None`) or replaces the elements whose `keys` have `values`, appending `element` when
    /// none matched.
    fn set_element(
        &mut self,
        list: usize,
        element: Option<usize>,
        keys: &[String],
        values: &[String],
    ) -> Result<(), MergeError> {
        let blank = [String::new()];
        let keys = if keys.is_empty() { &blank[..] } else { keys };
        let mapping_setter = !keys[0].is_empty() && values.first().is_some_and(|v| !v.is_empty());
        let mut kept = Vec::new();
        let mut matched = false;
        for elem in self.items(list) {
            if self.is_empty_map(Some(RNode::new(elem))) {
                continue;
            }
            if !self.is_map(elem) && mapping_setter {
                kept.push(elem);
                continue;
            }
            // As kyaml: a key without a value is judged by the previous key's match.
            let mut found = true;
            let mut last = None;
            for (j, key) in keys.iter().enumerate() {
                if let Some(value) = values.get(j) {
                    last = self.match_field(elem, key, value)?;
                }
                if last.is_none() {
                    found = false;
                    break;
                }
            }
            if !found {
                if !values.is_empty() {
                    kept.push(elem);
                }
                continue;
            }
            matched = true;
            if let Some(new) = element {
                kept.push(new);
            }
        }
        let Some(new) = element.filter(|e| !matches!(self.nodes[*e], Node::Null)) else {
            self.set_items(list, kept);
            return Ok(());
        };
        if !matched {
            kept.push(new);
        }
        self.set_items(list, kept);
        Ok(())
    }

    /// kyaml's `ElementMatcher{Keys, Values}`: the first element whose keys have the values.
    fn find_element(&self, list: usize, keys: &[String], values: &[String]) -> Option<usize> {
        if self.kind(list) != Some(Kind::Seq) || keys.len() != values.len() {
            return None;
        }
        let items = self.items(list);
        if keys.first().is_none_or(|k| k.is_empty()) {
            let wanted = values.first().map(String::as_str).unwrap_or_default();
            return items.into_iter().find(|i| self.text(*i) == wanted);
        }
        items.into_iter().find(|elem| {
            self.is_map(*elem)
                && keys
                    .iter()
                    .zip(values)
                    .all(|(k, v)| self.field(*elem, k).is_some_and(|f| self.text(f) == *v))
        })
    }
}

/// The text kyaml compares scalars by.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

/// A plain scalar as YAML would read the text (a merge key kyaml re-adds as untyped text).
fn plain_scalar(text: &str) -> Value {
    if let Ok(n) = text.parse::<i64>() {
        return Value::from(n);
    }
    match text {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(text.to_string()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Directive {
    Merge,
    Replace,
    Delete,
}

struct Walker<'a> {
    tree: Tree,
    api: &'a OpenApi,
}

impl<'a> Walker<'a> {
    /// The schema for a node: the one inherited from the parent, else the schema of the
    /// resource type named by the node's own `apiVersion`/`kind` (object first, then patch).
    fn schema_for(&self, sources: &[Src; 2], inherited: Option<Schema<'a>>) -> Option<Schema<'a>> {
        if inherited.is_some() {
            return inherited;
        }
        for src in sources.iter().flatten() {
            if !self.tree.is_map(src.id) {
                continue;
            }
            let text = |name: &str| {
                self.tree
                    .field(src.id, name)
                    .and_then(|f| match &self.tree.nodes[f] {
                        Node::Scalar(Value::String(s)) => Some(s.clone()),
                        _ => None,
                    })
                    .unwrap_or_default()
            };
            let (api_version, kind) = (text("apiVersion"), text("kind"));
            if api_version.is_empty() || kind.is_empty() {
                continue;
            }
            if let Some(schema) = self.api.for_type(&api_version, &kind) {
                return Some(schema);
            }
        }
        None
    }

    fn walk(
        &mut self,
        sources: [Src; 2],
        inherited: Option<Schema<'a>>,
    ) -> Result<Src, MergeError> {
        let schema = self.schema_for(&sources, inherited);
        let kind = sources.iter().flatten().find_map(|n| self.tree.kind(n.id));
        match kind {
            None => self.walk_map(sources, schema),
            Some(kind) => {
                for src in sources {
                    self.tree.error_if_invalid(src, kind)?;
                }
                match kind {
                    Kind::Map => self.walk_map(sources, schema),
                    Kind::Seq if schema.is_some_and(|s| s.merges_lists()) => {
                        self.walk_associative(sources, schema)
                    }
                    // A list without a merge strategy, or a scalar: the patch's value wins.
                    Kind::Seq | Kind::Scalar => Ok(sources[1].or(sources[0])),
                }
            }
        }
    }

    fn walk_map(
        &mut self,
        mut sources: [Src; 2],
        schema: Option<Schema<'a>>,
    ) -> Result<Src, MergeError> {
        let Some(dest) = self.visit_map(sources)? else {
            return Ok(None);
        };
        sources[0] = Some(dest);
        let mut names: Vec<String> = sources
            .iter()
            .flatten()
            .flat_map(|n| self.tree.field_names(n.id))
            .collect();
        names.sort();
        names.dedup();
        for name in names {
            let field_schema = schema.and_then(|s| s.field(&name));
            let values =
                sources.map(|s| s.and_then(|n| self.tree.field(n.id, &name)).map(RNode::new));
            let merged = self.walk(values, field_schema)?;
            if self.tree.is_map(dest.id) {
                self.tree.set_field(dest.id, &name, merged);
            }
        }
        Ok(Some(dest))
    }

    fn visit_map(&mut self, [dest, origin]: [Src; 2]) -> Result<Src, MergeError> {
        if self.tree.is_null(dest) {
            let directive = self.directive(origin).unwrap_or(Directive::Merge);
            if directive == Directive::Delete {
                return Ok(None);
            }
            // A `null` already in the object survives a patch that does not mention it.
            if origin.is_none()
                && let Some(d) = dest
            {
                return Ok(Some(RNode {
                    id: self.tree.push(Node::Null),
                    keep: !self.tree.text(d.id).is_empty(),
                }));
            }
            return Ok(origin);
        }
        if origin.is_some() && self.tree.is_null(origin) {
            return Ok(None);
        }
        Ok(match self.directive(origin)? {
            Directive::Delete => None,
            Directive::Replace => origin,
            Directive::Merge => dest,
        })
    }

    fn visit_associative_list(&mut self, [dest, origin]: [Src; 2]) -> Result<Src, MergeError> {
        if self.tree.is_null(dest) {
            return Ok(origin);
        }
        if origin.is_some() && self.tree.is_null(origin) {
            return Ok(None);
        }
        Ok(match self.directive(origin)? {
            Directive::Delete => None,
            Directive::Replace => origin,
            Directive::Merge => dest,
        })
    }

    /// Reads the `$patch` directive of a patch node and removes it from the node.
    fn directive(&mut self, patch: Src) -> Result<Directive, MergeError> {
        let Some(patch) = patch else {
            return Ok(Directive::Merge);
        };
        match self.tree.kind(patch.id) {
            Some(Kind::Map) => {
                let Some(value) = self.tree.field(patch.id, DIRECTIVE_KEY) else {
                    return Ok(Directive::Merge);
                };
                let directive = parse_directive(&self.tree.text(value))?;
                self.tree.remove_field(patch.id, DIRECTIVE_KEY);
                Ok(directive)
            }
            Some(Kind::Seq) => {
                // Only an element holding nothing but `$patch` is a directive for the list.
                let holder = self
                    .tree
                    .items(patch.id)
                    .into_iter()
                    .find(|e| self.tree.field(*e, DIRECTIVE_KEY).is_some());
                let Some(holder) = holder else {
                    return Ok(Directive::Merge);
                };
                if self.tree.field_names(holder).len() > 1 {
                    return Ok(Directive::Merge);
                }
                let Some(value) = self.tree.field(holder, DIRECTIVE_KEY) else {
                    return Ok(Directive::Merge);
                };
                let text = self.tree.text(value);
                let directive = parse_directive(&text)?;
                self.tree
                    .set_element(patch.id, None, &[DIRECTIVE_KEY.to_string()], &[text])?;
                Ok(directive)
            }
            Some(Kind::Scalar) | None => Err(MergeError::NoStrategy {
                tag: if self.tree.kind(patch.id).is_none() {
                    "!!null"
                } else {
                    "!!str"
                },
                text: self.tree.text(patch.id),
            }),
        }
    }

    fn walk_associative(
        &mut self,
        mut sources: [Src; 2],
        schema: Option<Schema<'a>>,
    ) -> Result<Src, MergeError> {
        let Some(dest) = self.visit_associative_list(sources)? else {
            return Ok(None);
        };
        sources[0] = Some(dest);
        let keys = schema.map(|s| s.merge_keys()).unwrap_or_default();
        let values = self.element_values(&sources, &keys);
        if !values.is_empty() || !keys.is_empty() {
            return self.set_elements(sources, values, &keys, dest, schema);
        }
        let primitives = self.primitive_values(&sources);
        self.set_elements(sources, primitives, &[String::new()], dest, schema)
    }

    /// The key values of every element, patch first, without repeats.
    fn element_values(&self, sources: &[Src; 2], keys: &[String]) -> Vec<Vec<String>> {
        let mut result: Vec<Vec<String>> = Vec::new();
        for src in [sources[1], sources[0]].into_iter().flatten() {
            for elem in self.tree.items(src.id) {
                let values: Vec<String> = keys
                    .iter()
                    .map(|key| match self.tree.field(elem, key) {
                        Some(f) if !self.tree.is_nil_or_empty(f) => self.tree.text(f),
                        _ => String::new(),
                    })
                    .collect();
                if values.is_empty() || result.contains(&values) {
                    continue;
                }
                result.push(values);
            }
        }
        result
    }

    /// The values of a list of scalars (finalizers), patch first, without repeats.
    fn primitive_values(&self, sources: &[Src; 2]) -> Vec<Vec<String>> {
        let mut result: Vec<Vec<String>> = Vec::new();
        for src in [sources[1], sources[0]].into_iter().flatten() {
            for elem in self.tree.items(src.id) {
                let value = vec![self.tree.text(elem)];
                if !result.contains(&value) {
                    result.push(value);
                }
            }
        }
        result
    }

    fn set_elements(
        &mut self,
        sources: [Src; 2],
        mut values_list: Vec<Vec<String>>,
        keys: &[String],
        dest: RNode,
        schema: Option<Schema<'a>>,
    ) -> Result<Src, MergeError> {
        let added = self.tree.push(Node::Seq(Vec::new()));
        let element_schema = schema.and_then(|s| s.elements());
        if keys.len() > 1 {
            merge_values(&mut values_list);
        }
        let mut valid_keys = Vec::new();
        for values in &values_list {
            if values.is_empty() {
                continue;
            }
            let (keys_now, values_now) = validate_keys(&values_list, values, keys);
            valid_keys = keys_now;
            let (lookup_keys, lookup_values) =
                validate_keys(std::slice::from_ref(&values_now), &values_now, &valid_keys);
            let elements = sources.map(|s| {
                s.and_then(|n| self.tree.find_element(n.id, &lookup_keys, &lookup_values))
                    .map(RNode::new)
            });
            let merged = self.walk(elements, element_schema)?;
            let mut deleted = false;
            for (i, key) in valid_keys.iter().enumerate() {
                if self.tree.is_empty_map(merged) {
                    self.tree
                        .set_element(dest.id, None, &valid_keys, &values_now)?;
                    deleted = true;
                } else if let Some(m) = merged
                    && self.tree.is_map(m.id)
                    && self.tree.field(m.id, key).is_none()
                    && !values_now[i].is_empty()
                {
                    let key_node = self.tree.push(Node::Scalar(plain_scalar(&values_now[i])));
                    self.tree.set_field(m.id, key, Some(RNode::new(key_node)));
                }
            }
            if deleted {
                continue;
            }
            if let Some(m) = merged {
                self.tree
                    .set_element(added, Some(m.id), &valid_keys, &values_now)?;
            }
        }
        if values_list.is_empty() {
            return Ok(Some(dest));
        }
        // The patch's elements first: the object's elements are set onto the new list.
        self.append_list(added, dest.id, &valid_keys)?;
        Ok(Some(RNode::new(added)))
    }

    /// kyaml's `appendListNode(dst, src, keys)`, quirks included: an element missing a key is
    /// appended as it is, and with several keys matching elements are first removed.
    fn append_list(&mut self, dst: usize, src: usize, keys: &[String]) -> Result<(), MergeError> {
        for elem in self.tree.items(src) {
            if keys.first().is_none_or(|k| k.is_empty()) {
                let text = self.tree.text(elem);
                self.tree
                    .set_element(dst, Some(elem), &[String::new()], &[text])?;
                continue;
            }
            let mut values = Vec::new();
            for key in keys {
                if matches!(self.tree.nodes[elem], Node::Null) {
                    self.push_item(dst, elem);
                    continue;
                }
                if !self.tree.is_map(elem) {
                    return Err(self.tree.invalid(elem, Kind::Map));
                }
                match self.tree.field(elem, key) {
                    Some(value) => values.push(self.tree.text(value)),
                    None => self.push_item(dst, elem),
                }
            }
            if keys.len() > 1 {
                self.tree.set_element(dst, None, keys, &values)?;
            }
            self.tree.set_element(dst, Some(elem), keys, &values)?;
        }
        Ok(())
    }

    fn push_item(&mut self, list: usize, item: usize) {
        if let Node::Seq(items) = &mut self.tree.nodes[list] {
            items.push(item);
        }
    }
}

fn parse_directive(text: &str) -> Result<Directive, MergeError> {
    match text {
        "delete" => Ok(Directive::Delete),
        "replace" => Ok(Directive::Replace),
        "merge" => Ok(Directive::Merge),
        other => Err(MergeError::UnknownDirective {
            value: other.to_string(),
        }),
    }
}

/// kyaml's `validateKeys`: the keys that have a value in some element (all keys when none
/// has), with this element's values for them.
fn validate_keys(
    values_list: &[Vec<String>],
    values: &[String],
    keys: &[String],
) -> (Vec<String>, Vec<String>) {
    let used: Vec<&String> = keys
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            values_list
                .iter()
                .any(|vs| vs.get(*i).is_some_and(|v| !v.is_empty()))
        })
        .map(|(_, k)| k)
        .collect();
    if used.is_empty() {
        return (keys.to_vec(), values.to_vec());
    }
    let valid_keys: Vec<String> = keys.iter().filter(|k| used.contains(k)).cloned().collect();
    let valid_values: Vec<String> = values
        .iter()
        .enumerate()
        .filter(|(i, v)| !v.is_empty() || keys.get(*i).is_some_and(|k| used.contains(&k)))
        .map(|(_, v)| v.clone())
        .collect();
    (valid_keys, valid_values)
}

/// kyaml's `mergeValues`: key tuples that differ only where one side is empty are the same
/// element (a port without `protocol` matches the same port with one).
fn merge_values(values_list: &mut [Vec<String>]) {
    for i in 0..values_list.len() {
        for j in 0..values_list.len() {
            if let Some(merged) = match_values(&values_list[i], &values_list[j]) {
                values_list[i] = merged.clone();
                values_list[j] = merged;
            }
        }
    }
}

fn match_values(a: &[String], b: &[String]) -> Option<Vec<String>> {
    if a.len() != b.len() {
        return None;
    }
    let mut common = false;
    let mut merged = Vec::with_capacity(a.len());
    for (x, y) in a.iter().zip(b) {
        if x == y {
            common = true;
            merged.push(x.clone());
        } else if !x.is_empty() && !y.is_empty() {
            return None;
        } else if !x.is_empty() {
            merged.push(x.clone());
        } else {
            merged.push(y.clone());
        }
    }
    common.then_some(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn yaml(text: &str) -> Value {
        crate::yaml::parse_documents(text)
            .expect("valid yaml")
            .remove(0)
    }

    /// Merges with the builtin schema; expected results come from `kubectl kustomize`
    /// (kustomize v5.5) on the same object and patch.
    fn check(object: &str, patch: &str, expected: &str) {
        let merged = merge(&yaml(object), &yaml(patch), &OpenApi::builtin()).expect("merges");
        assert_eq!(merged, Some(yaml(expected)));
    }

    const DEPLOYMENT: &str = "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: d
  finalizers: [a, b, c]
  labels: {z: '1', a: '2'}
spec:
  nul: null
  template:
    spec:
      containers:
      - name: a
        image: a
        ports:
        - containerPort: 80
        - containerPort: 81
          protocol: UDP
      - name: b
        image: b
        env:
        - {name: X, value: x}
      - {}
      volumes:
      - name: v
        emptyDir: {}
";

    #[test]
    fn lists_merge_by_schema_keys_patch_items_first() {
        check(
            DEPLOYMENT,
            "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: d
  labels: {m: '3', b: '4'}
  $deleteFromPrimitiveList/finalizers: [b]
  finalizers: [d, a]
spec:
  newfield: {x: 1, $patch: replace}
  template:
    spec:
      $setElementOrder/containers: [{name: b}, {name: a}]
      containers:
      - name: b
        $patch: replace
        image: bb
      - name: c
        image: c
      - name: a
        ports:
        - {containerPort: 80, protocol: TCP, name: http}
        - containerPort: 82
      volumes:
      - name: v
        emptyDir: null
        $retainKeys: [name]
        hostPath: {path: /x}
",
            "
apiVersion: apps/v1
kind: Deployment
metadata:
  $deleteFromPrimitiveList/finalizers: [b]
  finalizers: [d, a, b, c]
  labels: {a: '2', b: '4', m: '3', z: '1'}
  name: d
spec:
  newfield: {x: 1}
  nul: null
  template:
    spec:
      $setElementOrder/containers: [{name: b}, {name: a}]
      containers:
      - {image: bb, name: b}
      - {image: c, name: c}
      - image: a
        name: a
        ports:
        - containerPort: 82
        - containerPort: 80
        - {containerPort: 81, protocol: UDP}
      volumes:
      - $retainKeys: [name]
        hostPath: {path: /x}
        name: v
",
        );
    }

    #[test]
    fn element_replace_directive_keeps_the_object_element() {
        check(
            "
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  template:
    spec:
      containers:
      - {name: a, image: a}
      - name: b
        image: b
        env: [{name: X, value: x}]
",
            "
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  template:
    spec:
      containers:
      - {name: b, $patch: replace, image: bb}
",
            "
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  template:
    spec:
      containers:
      - name: b
        image: b
        env: [{name: X, value: x}]
      - {name: a, image: a}
",
        );
    }

    #[test]
    fn unknown_kinds_replace_lists_and_delete_directives_remove() {
        check(
            "{apiVersion: x.io/v1, kind: Foo, metadata: {name: f}, spec: {items: [1, 2], keep: k, drop: d}}",
            "{apiVersion: x.io/v1, kind: Foo, metadata: {name: f}, spec: {items: [3], drop: null}}",
            "{apiVersion: x.io/v1, kind: Foo, metadata: {name: f}, spec: {items: [3], keep: k}}",
        );
        let deleted = merge(
            &json!({"kind": "Foo", "metadata": {"name": "f"}}),
            &json!({"kind": "Foo", "metadata": {"name": "f"}, "$patch": "delete"}),
            &OpenApi::builtin(),
        );
        assert_eq!(deleted, Ok(None));
        let bad = merge(
            &json!({"a": {"b": 1}}),
            &json!({"a": {"$patch": "nope"}}),
            &OpenApi::builtin(),
        );
        assert_eq!(
            bad,
            Err(MergeError::UnknownDirective {
                value: "nope".into()
            })
        );
        let wrong = merge(
            &json!({"a": {"b": 1}}),
            &json!({"a": [1]}),
            &OpenApi::builtin(),
        );
        assert!(matches!(wrong, Err(MergeError::WrongKind { .. })));
    }
}
