//! Dotted field paths as kustomize's replacements and vars read them
//! (`spec.template.spec.containers.[name=app].image`, `data.[a.b]`, `ports[0]`).
//!
//! Two walks exist upstream and both are kept, because they disagree in ways users see:
//! [`lookup`] (kyaml's `PathGetter`) finds one node and compares `[key=value]` exactly;
//! [`find_targets`] (kyaml's `PathMatcher`) finds every node, treats `[key=value]` as an
//! unanchored regular expression, understands `*`, and may create what is missing.
//!
//! Invariant: no IO; objects are `serde_json::Value` trees.

use regex::Regex;
use serde_json::{Map, Value};

/// A path could not be walked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldPathError {
    /// A part expected a map or a list and found something else.
    #[error("wrong node kind at `{part}`: expected {expected} but got {actual}")]
    WrongKind {
        /// The path part being applied.
        part: String,
        /// `MappingNode` or `SequenceNode`.
        expected: &'static str,
        /// What the node was.
        actual: &'static str,
    },
    /// `[key]` without `=`.
    #[error("list path element `{part}` must contain fieldName=fieldValue for element to match")]
    BadListElement {
        /// The offending part.
        part: String,
    },
    /// A negative list index.
    #[error("array index {index} cannot be negative")]
    NegativeIndex {
        /// The index.
        index: i64,
    },
    /// `*` where only one node may be found.
    #[error("wildcard is not supported in PathGetter")]
    WildcardInLookup,
    /// A numeric index past the end of a list.
    #[error("index {index} specified but only {len} elements found")]
    IndexOutOfRange {
        /// The index.
        index: usize,
        /// The list's length.
        len: usize,
    },
    /// The value of `[key=value]` is not a valid regular expression.
    #[error("invalid regular expression in `{part}`: {cause}")]
    BadRegex {
        /// The offending part.
        part: String,
        /// The regex error.
        cause: String,
    },
}

/// Splits a dotted path, keeping `[a=b.c]` list selectors whole and unwrapping `[a.b]` map
/// keys, with `\.` escaping a dot (kyaml's `SmarterPathSplitter`).
pub fn split(path: &str) -> Vec<String> {
    let mut pieces: Vec<&str> = path.split('.').collect();
    if pieces.len() > 1 && pieces[0].is_empty() {
        pieces.remove(0);
    }
    let mut escaped: Vec<String> = Vec::new();
    for piece in pieces {
        match escaped.last_mut() {
            Some(last) if last.ends_with('\\') => {
                last.pop();
                last.push('.');
                last.push_str(piece);
            }
            _ => escaped.push(piece.to_string()),
        }
    }
    let mut result = Vec::new();
    let mut i = 0;
    while i < escaped.len() {
        let elem = &escaped[i];
        if elem.starts_with('[') && !elem.ends_with(']') {
            let mut bracketed = vec![elem.clone()];
            while i < escaped.len() - 1 {
                i += 1;
                bracketed.push(escaped[i].clone());
                if escaped[i].ends_with(']') {
                    break;
                }
            }
            let joined = bracketed.join(".");
            if joined.contains('=') {
                result.push(joined);
            } else {
                result.push(joined.trim_matches(|c| c == '[' || c == ']').to_string());
            }
        } else {
            result.push(elem.clone());
        }
        i += 1;
    }
    result
}

/// Like [`split`], then turns `ports[0]` into `ports`, `0` (how vars spell list indices).
pub fn split_with_slice_indices(path: &str) -> Vec<String> {
    let mut result = Vec::new();
    for part in split(path) {
        if let Some((name, index)) = slice_index(&part) {
            if !name.is_empty() {
                result.push(name.to_string());
            }
            result.push(index.to_string());
        } else {
            result.push(part);
        }
    }
    result
}

fn slice_index(part: &str) -> Option<(&str, &str)> {
    let body = part.strip_suffix(']')?;
    let open = body.rfind('[')?;
    let digits = &body[open + 1..];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((&body[..open], digits))
}

fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::Object(_) => "MappingNode",
        Value::Array(_) => "SequenceNode",
        _ => "ScalarNode",
    }
}

fn is_list_selector(part: &str) -> bool {
    part.starts_with('[') && part.ends_with(']')
}

fn index_number(part: &str) -> Option<usize> {
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

fn split_list_selector(part: &str) -> Result<(&str, &str), FieldPathError> {
    let inner = part.strip_prefix('[').unwrap_or(part);
    let inner = inner.strip_suffix(']').unwrap_or(inner);
    inner
        .split_once('=')
        .ok_or_else(|| FieldPathError::BadListElement {
            part: part.to_string(),
        })
}

/// The text kyaml compares a scalar by: strings as they are, other scalars as YAML prints them.
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some("null".to_string()),
        _ => None,
    }
}

/// Finds the one node at `path` (kyaml's `PathGetter`): `[k=v]` picks the first list element
/// whose field `k` equals `v` (`[=v]`: whose value is `v`), a number or `-` picks by position.
/// A missing field or a null on the way yields `None`.
pub fn lookup<'a>(root: &'a Value, path: &[String]) -> Result<Option<&'a Value>, FieldPathError> {
    let mut node = root;
    for part in path.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        if node.is_null() {
            return Ok(None);
        }
        let next = if let Ok(index) = part.parse::<i64>() {
            if index < 0 {
                return Err(FieldPathError::NegativeIndex { index });
            }
            let list = expect_list(node, part)?;
            usize::try_from(index).ok().and_then(|i| list.get(i))
        } else if part == "-" {
            expect_list(node, part)?.last()
        } else if part == "*" {
            return Err(FieldPathError::WildcardInLookup);
        } else if is_list_selector(part) {
            let (key, wanted) = split_list_selector(part)?;
            let list = expect_list(node, part)?;
            if key.is_empty() {
                list.iter()
                    .find(|e| scalar_text(e).as_deref() == Some(wanted))
            } else {
                list.iter()
                    .filter(|e| e.is_object())
                    .find(|e| e.get(key).and_then(scalar_text).as_deref() == Some(wanted))
            }
        } else {
            match node {
                Value::Object(map) => map.get(part),
                other => {
                    return Err(FieldPathError::WrongKind {
                        part: part.to_string(),
                        expected: "MappingNode",
                        actual: kind_name(other),
                    });
                }
            }
        };
        match next {
            Some(n) => node = n,
            None => return Ok(None),
        }
    }
    Ok(Some(node))
}

fn expect_list<'a>(node: &'a Value, part: &str) -> Result<&'a [Value], FieldPathError> {
    match node {
        Value::Array(list) => Ok(list),
        Value::Null => Ok(&[]),
        other => Err(FieldPathError::WrongKind {
            part: part.to_string(),
            expected: "SequenceNode",
            actual: kind_name(other),
        }),
    }
}

/// One step from a node to a child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A map key.
    Key(String),
    /// A list position.
    Index(usize),
}

/// A node found by [`find_targets`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// How to reach it from the root.
    pub steps: Vec<Step>,
    /// True when the walk created it as an empty, untyped scalar: kustomize then lets the
    /// written text decide its type (`"8080"` becomes the number 8080).
    pub created_scalar: bool,
}

/// What kind of node to create at the end of a path when it is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateKind {
    /// A scalar, typed by the text later written into it.
    Scalar,
    /// A map.
    Map,
    /// A list.
    List,
}

impl CreateKind {
    /// The kind of node that would hold `value`.
    pub fn of(value: &Value) -> CreateKind {
        match value {
            Value::Object(_) => CreateKind::Map,
            Value::Array(_) => CreateKind::List,
            _ => CreateKind::Scalar,
        }
    }
}

/// Finds every node at `path` (kyaml's `PathMatcher`), creating missing parts when `create`
/// is set: maps or lists for intermediate parts (lists before `[k=v]` and numbers), and a node
/// of kind `create` at the end. `[k=v]` matches elements whose field `k` matches the unanchored
/// regular expression `v`, and creates `{k: v}` when nothing matches; `*` walks every element.
pub fn find_targets(
    root: &mut Value,
    path: &[String],
    create: Option<CreateKind>,
) -> Result<Vec<Target>, FieldPathError> {
    let mut found = Vec::new();
    let mut steps = Vec::new();
    walk(root, path, create, &mut steps, false, &mut found)?;
    Ok(found)
}

fn new_node(next: Option<&String>, create: CreateKind) -> (Value, bool) {
    match next {
        Some(p) if is_list_selector(p) || index_number(p).is_some() => {
            (Value::Array(Vec::new()), false)
        }
        Some(_) => (Value::Object(Map::new()), false),
        None => match create {
            CreateKind::Map => (Value::Object(Map::new()), false),
            CreateKind::List => (Value::Array(Vec::new()), false),
            // The placeholder is replaced by the written value; `created` tells the writer.
            CreateKind::Scalar => (Value::Null, true),
        },
    }
}

fn walk(
    node: &mut Value,
    path: &[String],
    create: Option<CreateKind>,
    steps: &mut Vec<Step>,
    created: bool,
    found: &mut Vec<Target>,
) -> Result<(), FieldPathError> {
    let Some(part) = path.first() else {
        found.push(Target {
            steps: steps.clone(),
            created_scalar: created,
        });
        return Ok(());
    };
    let rest = &path[1..];
    if let Some(index) = index_number(part) {
        let list = list_mut(node, part)?;
        let Some(list) = list else {
            return Err(FieldPathError::IndexOutOfRange { index, len: 0 });
        };
        let mut child_created = false;
        if let (true, Some(kind)) = (list.len() == index, create) {
            let (fresh, is_scalar) = new_node(rest.first(), kind);
            list.push(fresh);
            child_created = is_scalar;
        }
        let len = list.len();
        let Some(child) = list.get_mut(index) else {
            return Err(FieldPathError::IndexOutOfRange { index, len });
        };
        steps.push(Step::Index(index));
        walk(child, rest, create, steps, child_created, found)?;
        steps.pop();
        return Ok(());
    }
    if is_list_selector(part) {
        let (key, pattern) = split_list_selector(part)?;
        let regex = Regex::new(pattern).map_err(|e| FieldPathError::BadRegex {
            part: part.clone(),
            cause: e.to_string(),
        })?;
        let Some(list) = list_mut(node, part)? else {
            return Ok(());
        };
        let matches = |element: &Value| -> bool {
            let text = if key.is_empty() {
                scalar_text(element)
            } else {
                element
                    .as_object()
                    .and_then(|m| m.get(key))
                    .and_then(scalar_text)
            };
            text.is_some_and(|t| regex.is_match(t.trim()))
        };
        let mut hits: Vec<usize> = (0..list.len()).filter(|&i| matches(&list[i])).collect();
        if hits.is_empty() && create.is_some() {
            let value = Value::String(pattern.to_string());
            let element = if key.is_empty() {
                value
            } else {
                let mut map = Map::new();
                map.insert(key.to_string(), value);
                Value::Object(map)
            };
            list.push(element);
            hits = (0..list.len()).filter(|&i| matches(&list[i])).collect();
        }
        for i in hits {
            steps.push(Step::Index(i));
            walk(&mut list[i], rest, create, steps, false, found)?;
            steps.pop();
        }
        return Ok(());
    }
    if part == "*" {
        let Some(list) = list_mut(node, part)? else {
            return Ok(());
        };
        for (i, child) in list.iter_mut().enumerate() {
            steps.push(Step::Index(i));
            walk(child, rest, create, steps, false, found)?;
            steps.pop();
        }
        return Ok(());
    }
    let map = match node {
        Value::Object(map) => map,
        Value::Null => return Ok(()),
        other => {
            return Err(FieldPathError::WrongKind {
                part: part.clone(),
                expected: "MappingNode",
                actual: kind_name(other),
            });
        }
    };
    let mut child_created = false;
    if !map.contains_key(part.as_str()) {
        let Some(kind) = create else {
            return Ok(());
        };
        let (fresh, is_scalar) = new_node(rest.first(), kind);
        map.insert(part.clone(), fresh);
        child_created = is_scalar;
    }
    let Some(child) = map.get_mut(part.as_str()) else {
        return Ok(());
    };
    steps.push(Step::Key(part.clone()));
    walk(child, rest, create, steps, child_created, found)?;
    steps.pop();
    Ok(())
}

fn list_mut<'a>(
    node: &'a mut Value,
    part: &str,
) -> Result<Option<&'a mut Vec<Value>>, FieldPathError> {
    match node {
        Value::Array(list) => Ok(Some(list)),
        Value::Null => Ok(None),
        other => Err(FieldPathError::WrongKind {
            part: part.to_string(),
            expected: "SequenceNode",
            actual: kind_name(other),
        }),
    }
}

/// The node at `steps`, if it is still there.
pub fn get_mut<'a>(root: &'a mut Value, steps: &[Step]) -> Option<&'a mut Value> {
    let mut node = root;
    for step in steps {
        node = match step {
            Step::Key(k) => node.as_object_mut()?.get_mut(k)?,
            Step::Index(i) => node.as_array_mut()?.get_mut(*i)?,
        };
    }
    Some(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parts(path: &str) -> Vec<String> {
        split(path)
    }

    #[test]
    fn splitting_keeps_list_selectors_and_unwraps_dotted_keys() {
        assert_eq!(
            split("spec.containers.[name=com.foo.app].image"),
            vec!["spec", "containers", "[name=com.foo.app]", "image"]
        );
        assert_eq!(
            split("metadata.annotations.[a.b/c]"),
            vec!["metadata", "annotations", "a.b/c"]
        );
        assert_eq!(split(r"data.a\.b"), vec!["data", "a.b"]);
        assert_eq!(split("[x]"), vec!["[x]"]);
        assert_eq!(
            split_with_slice_indices("spec.ports[0].port"),
            vec!["spec", "ports", "0", "port"]
        );
    }

    #[test]
    fn lookup_compares_list_selectors_exactly() {
        let obj =
            json!({"c": [{"name": "app2", "v": 1}, {"name": "app", "v": 2}], "l": ["a", "b"]});
        assert_eq!(
            lookup(&obj, &parts("c.[name=app].v")).unwrap(),
            Some(&json!(2))
        );
        assert_eq!(lookup(&obj, &parts("c.1.v")).unwrap(), Some(&json!(2)));
        assert_eq!(lookup(&obj, &parts("c.-.v")).unwrap(), Some(&json!(2)));
        assert_eq!(lookup(&obj, &parts("l.[=b]")).unwrap(), Some(&json!("b")));
        assert_eq!(lookup(&obj, &parts("c.5.v")).unwrap(), None);
        assert_eq!(lookup(&obj, &parts("missing.x")).unwrap(), None);
        assert!(lookup(&obj, &parts("c.x")).is_err());
        assert_eq!(
            lookup(&obj, &parts("c.*")),
            Err(FieldPathError::WildcardInLookup)
        );
    }

    #[test]
    fn targets_match_list_selectors_as_unanchored_regexes() {
        let mut obj = json!({"c": [{"name": "app"}, {"name": "myapp2"}, {"name": "db"}]});
        let found = find_targets(&mut obj, &parts("c.[name=app].name"), None).unwrap();
        assert_eq!(found.len(), 2);
        let found = find_targets(&mut obj, &parts("c.*.name"), None).unwrap();
        assert_eq!(found.len(), 3);
    }

    #[test]
    fn targets_are_created_with_the_right_intermediate_kinds() {
        let mut obj = json!({"spec": {}});
        let found = find_targets(
            &mut obj,
            &parts("spec.list.0.[name=x].v"),
            Some(CreateKind::Scalar),
        )
        .unwrap();
        assert_eq!(found.len(), 1);
        assert!(found[0].created_scalar);
        assert_eq!(obj, json!({"spec": {"list": [[{"name": "x", "v": null}]]}}));
    }

    #[test]
    fn index_past_the_end_is_an_error_unless_appending() {
        let mut obj = json!({"l": ["a"]});
        assert_eq!(
            find_targets(&mut obj, &parts("l.3"), None),
            Err(FieldPathError::IndexOutOfRange { index: 3, len: 1 })
        );
        let found = find_targets(&mut obj, &parts("l.1"), Some(CreateKind::Scalar)).unwrap();
        assert_eq!(found[0].steps, vec![Step::Key("l".into()), Step::Index(1)]);
    }
}
