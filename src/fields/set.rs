//! [`FieldSet`]: a set of field paths, as Kubernetes' structured-merge-diff keeps them, with
//! the `fieldsV1` encoding of `metadata.managedFields`.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use super::Error;
use super::schema::{ListType, Node};

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// A map field (`f:replicas`).
    Field(String),
    /// An element of an associative list, by its key fields (`k:{"name":"web"}`), kept as
    /// canonical JSON (keys sorted).
    Key(String),
    /// An element of a set (a list of scalars merged by value: `v:"a"`), canonical JSON.
    Value(String),
    /// An element of a list by position (`i:0`); only read from foreign managedFields.
    Index(usize),
}

impl PathElement {
    /// The `fieldsV1` spelling (`f:name`, `k:{…}`, `v:…`, `i:0`).
    pub fn encode(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(key) => format!("k:{key}"),
            PathElement::Value(value) => format!("v:{value}"),
            PathElement::Index(index) => format!("i:{index}"),
        }
    }

    fn decode(text: &str) -> Result<PathElement, Error> {
        let invalid = || Error::InvalidFieldsV1(format!("unknown path element {text:?}"));
        let (prefix, rest) = text.split_once(':').ok_or_else(invalid)?;
        match prefix {
            "f" => Ok(PathElement::Field(rest.to_string())),
            "k" => {
                let key: Value = serde_json::from_str(rest).map_err(|_| invalid())?;
                if !key.is_object() {
                    return Err(invalid());
                }
                Ok(PathElement::Key(canonical(&key)))
            }
            "v" => {
                let value: Value = serde_json::from_str(rest).map_err(|_| invalid())?;
                Ok(PathElement::Value(canonical(&value)))
            }
            "i" => rest.parse().map(PathElement::Index).map_err(|_| invalid()),
            _ => Err(invalid()),
        }
    }

    /// The key fields of a [`PathElement::Key`].
    pub(crate) fn key_fields(&self) -> Option<Map<String, Value>> {
        match self {
            PathElement::Key(key) => match serde_json::from_str(key) {
                Ok(Value::Object(map)) => Some(map),
                _ => None,
            },
            _ => None,
        }
    }
}

/// JSON with object keys sorted, so equal keys spell the same.
pub(crate) fn canonical(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&map[k])))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

/// A set of field paths. A node is a *member* when the field (or list element) itself is in
/// the set — a scalar, an atomic list, an empty map, or an associative list element (`.` in
/// `fieldsV1`); its children are the members below it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    /// The fields an object (an applied configuration) sets, typed by `schema` (lists without a
    /// schema are atomic, maps granular, as structured-merge-diff deduces). Nulls set nothing.
    /// Type, identity, server metadata and (unless `schema` makes it a field) status are
    /// nobody's fields and left out.
    pub fn of(object: &Value, schema: Node<'_>) -> FieldSet {
        let mut set = FieldSet::default();
        if let Value::Object(map) = &super::merge::owned_part(object, schema) {
            set.collect_map(map, schema);
        }
        set
    }

    /// The fields of `object`'s `status` (what a write through the status subresource sets).
    pub fn of_status(object: &Value, schema: Node<'_>) -> FieldSet {
        let mut set = FieldSet::default();
        if let Some(status) = object.get("status").filter(|s| !s.is_null()) {
            set.children
                .entry(PathElement::Field("status".into()))
                .or_default()
                .collect_value(status, schema.field("status"));
        }
        set
    }

    fn collect_map(&mut self, map: &Map<String, Value>, schema: Node<'_>) {
        for (name, value) in map {
            if value.is_null() {
                continue;
            }
            let child = self
                .children
                .entry(PathElement::Field(name.clone()))
                .or_default();
            child.collect_value(value, schema.field(name));
        }
    }

    fn collect_value(&mut self, value: &Value, schema: Node<'_>) {
        match value {
            Value::Object(map) if !map.is_empty() => self.collect_map(map, schema),
            Value::Array(items) if !items.is_empty() => match schema.list_type(items) {
                ListType::Map(keys) => {
                    for item in items {
                        let Value::Object(fields) = item else {
                            continue;
                        };
                        let element = self
                            .children
                            .entry(PathElement::Key(key_of(fields, &keys)))
                            .or_default();
                        element.member = true;
                        element.collect_map(fields, schema.elements());
                    }
                }
                ListType::Set => {
                    for item in items {
                        self.children
                            .entry(PathElement::Value(canonical(item)))
                            .or_default()
                            .member = true;
                    }
                }
                ListType::Atomic => self.member = true,
            },
            _ => self.member = true,
        }
    }

    /// True when the set holds no path.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    /// True when `path` (from the root) is a member.
    pub fn contains(&self, path: &[PathElement]) -> bool {
        match path.split_first() {
            None => self.member,
            Some((first, rest)) => self.children.get(first).is_some_and(|c| c.contains(rest)),
        }
    }

    /// True when `path` or anything below it is a member.
    pub fn touches(&self, path: &[PathElement]) -> bool {
        match path.split_first() {
            None => !self.is_empty(),
            Some((first, rest)) => self.children.get(first).is_some_and(|c| c.touches(rest)),
        }
    }

    /// Every path of `self` or `other`.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.member |= other.member;
        for (element, child) in &other.children {
            let merged = match out.children.get(element) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            out.children.insert(element.clone(), merged);
        }
        out
    }

    /// The paths of `self` not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (element, child) in &self.children {
            let rest = match other.children.get(element) {
                Some(theirs) => child.difference(theirs),
                None => child.clone(),
            };
            if !rest.is_empty() {
                out.children.insert(element.clone(), rest);
            }
        }
        out
    }

    /// The paths in both.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (element, child) in &self.children {
            if let Some(theirs) = other.children.get(element) {
                let both = child.intersection(theirs);
                if !both.is_empty() {
                    out.children.insert(element.clone(), both);
                }
            }
        }
        out
    }

    /// Every member path, depth first in element order.
    pub fn paths(&self) -> Vec<Vec<PathElement>> {
        let mut out = Vec::new();
        self.walk(&mut Vec::new(), &mut out);
        out
    }

    fn walk(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Vec<PathElement>>) {
        if self.member {
            out.push(prefix.clone());
        }
        for (element, child) in &self.children {
            prefix.push(element.clone());
            child.walk(prefix, out);
            prefix.pop();
        }
    }

    /// The subset below one path element.
    pub(crate) fn child(&self, element: &PathElement) -> Option<&FieldSet> {
        self.children.get(element)
    }

    pub(crate) fn is_member(&self) -> bool {
        self.member
    }

    pub(crate) fn children(&self) -> impl Iterator<Item = (&PathElement, &FieldSet)> {
        self.children.iter()
    }

    /// Removes one member path (and nothing below it).
    pub fn remove(&mut self, path: &[PathElement]) {
        match path.split_first() {
            None => self.member = false,
            Some((first, rest)) => {
                if let Some(child) = self.children.get_mut(first) {
                    child.remove(rest);
                    if child.is_empty() {
                        self.children.remove(first);
                    }
                }
            }
        }
    }

    /// Adds one member path.
    pub fn insert(&mut self, path: &[PathElement]) {
        match path.split_first() {
            None => self.member = true,
            Some((first, rest)) => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// The `fieldsV1` JSON of the set.
    pub fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        for (element, child) in &self.children {
            if child.is_empty() {
                continue;
            }
            let mut encoded = child.to_fields_v1();
            if child.member
                && !child.children.is_empty()
                && let Value::Object(inner) = &mut encoded
            {
                let mut with_dot = Map::new();
                with_dot.insert(".".into(), Value::Object(Map::new()));
                with_dot.extend(std::mem::take(inner));
                *inner = with_dot;
            }
            map.insert(element.encode(), encoded);
        }
        Value::Object(map)
    }

    /// Reads `fieldsV1` JSON.
    pub fn from_fields_v1(value: &Value) -> Result<FieldSet, Error> {
        let Value::Object(map) = value else {
            return Err(Error::InvalidFieldsV1("fieldsV1 is not a map".into()));
        };
        let mut set = FieldSet::default();
        for (text, child) in map {
            if text == "." {
                set.member = true;
                continue;
            }
            let element = PathElement::decode(text)?;
            let mut decoded = FieldSet::from_fields_v1(child)?;
            if decoded.children.is_empty() {
                decoded.member = true;
            }
            set.children.insert(element, decoded);
        }
        Ok(set)
    }
}

/// A path as users read it: `.spec.template.spec.containers[name="web"].image`.
pub fn display_path(path: &[PathElement]) -> String {
    let mut out = String::new();
    for element in path {
        match element {
            PathElement::Field(name) => {
                out.push('.');
                out.push_str(name);
            }
            PathElement::Key(_) => {
                let fields = element.key_fields().unwrap_or_default();
                let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={}", v)).collect();
                out.push_str(&format!("[{}]", parts.join(",")));
            }
            PathElement::Value(value) => out.push_str(&format!("[={value}]")),
            PathElement::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    if out.is_empty() { ".".into() } else { out }
}

impl fmt::Display for FieldSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let paths: Vec<String> = self.paths().iter().map(|p| display_path(p)).collect();
        write!(f, "{}", paths.join(", "))
    }
}

/// The key of an associative list element: its key fields that are present.
pub(crate) fn key_of(fields: &Map<String, Value>, keys: &[String]) -> String {
    let mut key = Map::new();
    for name in keys {
        if let Some(value) = fields.get(name) {
            key.insert(name.clone(), value.clone());
        }
    }
    canonical(&Value::Object(key))
}

/// True when a list element matches a key: every key field the key names is equal; key fields
/// the key leaves out (defaulted by the server, such as a port's `protocol`) match anything.
pub(crate) fn element_matches(item: &Value, key: &Map<String, Value>) -> bool {
    !key.is_empty()
        && key
            .iter()
            .all(|(name, value)| item.get(name) == Some(value))
}
