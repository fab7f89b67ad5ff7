//! JSON patches (RFC 6902) with the behaviour of the library kustomize uses
//! (`gopkg.in/evanphx/json-patch.v4`), which users' patches rely on:
//! - the text is JSON when it starts with `[`, YAML otherwise (first document only);
//! - `replace` of a missing map key adds it; `remove` of one is an error;
//! - list indices may be negative (`-1` is the last element); `add` accepts `-` to append;
//! - an unknown `op` is reported when the patch is applied, not when it is read.
//!
//! Errors name the operation's position in the patch and its path.
//!
//! Invariant: pure; no IO.

use serde_json::Value;

/// A JSON patch cannot be read or applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Json6902Error {
    /// The text is neither a JSON nor a YAML list of operations.
    #[error("invalid JSON patch: {cause}")]
    Parse {
        /// What is wrong.
        cause: String,
    },
    /// An operation failed.
    #[error("operation {index} ({op} {path}): {cause}")]
    Operation {
        /// Position of the operation in the patch, from 0.
        index: usize,
        /// The `op` field.
        op: String,
        /// The `path` field.
        path: String,
        /// What went wrong (kustomize's wording where it has one).
        cause: String,
    },
}

/// One operation as written; checked only when applied.
#[derive(Debug, Clone, PartialEq)]
struct Operation {
    op: String,
    path: Option<String>,
    from: Option<String>,
    value: Option<Value>,
}

/// A decoded JSON patch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JsonPatch {
    operations: Vec<Operation>,
}

impl JsonPatch {
    /// Reads a patch from JSON (text starting with `[`) or YAML text. A YAML text holding
    /// nothing (only comments) is an empty patch, as kustomize reads it.
    pub fn parse(text: &str) -> Result<JsonPatch, Json6902Error> {
        let parse_error = |cause: String| Json6902Error::Parse { cause };
        let document = if text.starts_with('[') {
            serde_json::from_str::<Value>(text).map_err(|e| parse_error(e.to_string()))?
        } else {
            crate::yaml::parse_documents(text)
                .map_err(|e| parse_error(e.to_string()))?
                .into_iter()
                .next()
                .unwrap_or(Value::Null)
        };
        let items = match document {
            Value::Null => Vec::new(),
            Value::Array(items) => items,
            other => {
                return Err(parse_error(format!(
                    "expected a list of operations, found {}",
                    kind_name(&other)
                )));
            }
        };
        let mut operations = Vec::with_capacity(items.len());
        for item in items {
            let Value::Object(mut fields) = item else {
                return Err(parse_error(format!(
                    "an operation must be a map, found {}",
                    kind_name(&item)
                )));
            };
            let text = |v: Option<Value>| match v {
                Some(Value::String(s)) => Some(s),
                Some(other) => Some(other.to_string()),
                None => None,
            };
            operations.push(Operation {
                op: text(fields.remove("op")).unwrap_or_default(),
                path: text(fields.remove("path")),
                from: text(fields.remove("from")),
                value: fields.remove("value"),
            });
        }
        Ok(JsonPatch { operations })
    }

    /// True when the patch has no operation.
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    /// Applies every operation in order; on error `doc` is left unchanged.
    pub fn apply(&self, doc: &mut Value) -> Result<(), Json6902Error> {
        let mut work = doc.clone();
        for (index, operation) in self.operations.iter().enumerate() {
            apply_one(&mut work, operation).map_err(|cause| Json6902Error::Operation {
                index,
                op: operation.op.clone(),
                path: operation.path.clone().unwrap_or_default(),
                cause,
            })?;
        }
        *doc = work;
        Ok(())
    }
}

fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

fn apply_one(doc: &mut Value, operation: &Operation) -> Result<(), String> {
    let path = || {
        operation
            .path
            .as_deref()
            .ok_or_else(|| "operation missing path field".to_string())
    };
    let value = || operation.value.clone().unwrap_or(Value::Null);
    match operation.op.as_str() {
        "add" => {
            let path = path()?;
            let (container, key) = container_mut(doc, path).ok_or_else(|| {
                format!("add operation does not apply: doc is missing path: {path:?}")
            })?;
            add(container, &key, value())
        }
        "remove" => {
            let path = path()?;
            let (container, key) = container_mut(doc, path).ok_or_else(|| {
                format!("remove operation does not apply: doc is missing path: {path:?}")
            })?;
            remove(container, &key).map(|_| ())
        }
        "replace" => {
            let path = path()?;
            let (container, key) = container_mut(doc, path).ok_or_else(|| {
                format!("replace operation does not apply: doc is missing path: {path:?}")
            })?;
            replace(container, &key, value())
        }
        "move" => {
            let from = operation
                .from
                .as_deref()
                .ok_or("operation missing from field")?;
            let (container, key) = container_mut(doc, from).ok_or_else(|| {
                format!("move operation does not apply: doc is missing from path: {from:?}")
            })?;
            let moved = remove(container, &key)?;
            let path = path()?;
            let (container, key) = container_mut(doc, path).ok_or_else(|| {
                format!("move operation does not apply: doc is missing destination path: {path:?}")
            })?;
            add(container, &key, moved)
        }
        "copy" => {
            let from = operation
                .from
                .as_deref()
                .ok_or("operation missing from field")?;
            let (container, key) = container_mut(doc, from).ok_or_else(|| {
                format!("copy operation does not apply: doc is missing from path: {from:?}")
            })?;
            // The library copies a missing map key as null.
            let copied = get(container, &key)?.cloned().unwrap_or(Value::Null);
            let path = path()?;
            let (container, key) = container_mut(doc, path).ok_or_else(|| {
                format!("copy operation does not apply: doc is missing destination path: {path:?}")
            })?;
            add(container, &key, copied)
        }
        "test" => {
            let path = path()?;
            let (container, key) = container_mut(doc, path).ok_or_else(|| {
                format!("test operation does not apply: is missing path: {path:?}")
            })?;
            let found = get(container, &key)?.cloned().unwrap_or(Value::Null);
            if found == value() {
                Ok(())
            } else {
                Err(format!("testing value {path} failed: test failed"))
            }
        }
        other => Err(format!("Unexpected kind: {other}")),
    }
}

/// The container (map or list) holding the last element of `path`, and that element's key.
fn container_mut<'a>(doc: &'a mut Value, path: &str) -> Option<(&'a mut Value, String)> {
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() < 2 {
        return None;
    }
    let decode = |p: &str| p.replace("~1", "/").replace("~0", "~");
    let mut current = doc;
    for part in &parts[1..parts.len() - 1] {
        let key = decode(part);
        current = match current {
            Value::Object(map) => map.get_mut(&key)?,
            Value::Array(items) => {
                let index = index_in(&key, items.len()).ok()?;
                items.get_mut(index)?
            }
            _ => return None,
        };
        if !current.is_object() && !current.is_array() {
            return None;
        }
    }
    if !current.is_object() && !current.is_array() {
        return None;
    }
    Some((current, decode(parts[parts.len() - 1])))
}

/// A list index as the patch library reads it: a negative index counts back from `size` (the
/// list's length, or one more for `add`, so `add` at `-1` appends).
fn index_in(key: &str, size: usize) -> Result<usize, String> {
    let invalid = || format!("Unable to access invalid index: {key}");
    let raw: i64 = key.parse().map_err(|_| invalid())?;
    let size = size as i64;
    let index = if raw < 0 {
        if raw < -size {
            return Err(invalid());
        }
        raw + size
    } else {
        raw
    };
    if index >= size {
        return Err(invalid());
    }
    Ok(index as usize)
}

fn get<'a>(container: &'a Value, key: &str) -> Result<Option<&'a Value>, String> {
    match container {
        Value::Object(map) => Ok(map.get(key)),
        Value::Array(items) => Ok(Some(&items[index_in(key, items.len())?])),
        _ => Ok(None),
    }
}

fn add(container: &mut Value, key: &str, value: Value) -> Result<(), String> {
    match container {
        Value::Object(map) => {
            map.insert(key.to_string(), value);
            Ok(())
        }
        Value::Array(items) => {
            let index = if key == "-" {
                items.len()
            } else {
                index_in(key, items.len() + 1)?
            };
            items.insert(index, value);
            Ok(())
        }
        _ => Err("add operation does not apply: not a container".into()),
    }
}

fn remove(container: &mut Value, key: &str) -> Result<Value, String> {
    match container {
        Value::Object(map) => map
            .shift_remove(key)
            .ok_or_else(|| format!("Unable to remove nonexistent key: {key}: missing value")),
        Value::Array(items) => {
            let index = index_in(key, items.len())?;
            Ok(items.remove(index))
        }
        _ => Err("remove operation does not apply: not a container".into()),
    }
}

fn replace(container: &mut Value, key: &str, value: Value) -> Result<(), String> {
    match container {
        // The library answers a missing key with "nothing" rather than an error, so replace
        // adds it.
        Value::Object(map) => {
            map.insert(key.to_string(), value);
            Ok(())
        }
        Value::Array(items) => {
            let index = index_in(key, items.len())?;
            items[index] = value;
            Ok(())
        }
        _ => Err("replace operation does not apply: not a container".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(patch: &str, doc: Value) -> Result<Value, Json6902Error> {
        let mut doc = doc;
        JsonPatch::parse(patch)?.apply(&mut doc)?;
        Ok(doc)
    }

    #[test]
    fn yaml_and_json_text_with_library_quirks() {
        let doc = json!({"spec": {"list": ["a", "b", "c"]}});
        let patched = run(
            "- op: replace\n  path: /spec/missing\n  value: 1\n- op: remove\n  path: /spec/list/-1\n- op: add\n  path: /spec/list/-\n  value: z\n",
            doc.clone(),
        )
        .expect("applies");
        assert_eq!(
            patched,
            json!({"spec": {"list": ["a", "b", "z"], "missing": 1}})
        );
        let patched = run(
            r#"[{"op": "move", "from": "/spec/list/0", "path": "/first"}]"#,
            doc.clone(),
        )
        .expect("applies");
        assert_eq!(patched, json!({"spec": {"list": ["b", "c"]}, "first": "a"}));
        assert!(JsonPatch::parse("# nothing\n").expect("empty").is_empty());
        let patched = run(
            "[{\"op\": \"add\", \"path\": \"/l/-1\", \"value\": 9}, {\"op\": \"copy\", \"from\": \"/none\", \"path\": \"/c\"}]",
            json!({"l": [1, 2]}),
        )
        .expect("applies");
        assert_eq!(patched, json!({"l": [1, 2, 9], "c": null}));
    }

    #[test]
    fn errors_name_operation_and_path() {
        let doc = json!({"spec": {}});
        let err =
            run("- op: remove\n  path: /spec/nothere\n", doc.clone()).expect_err("missing key");
        assert_eq!(
            err.to_string(),
            "operation 0 (remove /spec/nothere): Unable to remove nonexistent key: nothere: missing value"
        );
        let err = run("- op: add\n  path: /spec/a/b\n  value: 1\n", doc.clone())
            .expect_err("missing parent");
        assert!(err.to_string().contains("doc is missing path"), "{err}");
        let err = run("- op: foo\n  path: /spec\n", doc.clone()).expect_err("bad op");
        assert!(err.to_string().ends_with("Unexpected kind: foo"));
        assert!(JsonPatch::parse("a: b\n").is_err());
    }
}
