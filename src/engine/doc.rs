//! Small readers and writers over objects held as JSON documents.

use serde_json::{Map, Value};

/// The value at a path of object keys.
pub fn at<'a>(doc: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(doc, |v, k| v.get(*k))
}

/// The string at a path, or "".
pub fn str_at<'a>(doc: &'a Value, path: &[&str]) -> &'a str {
    at(doc, path).and_then(Value::as_str).unwrap_or_default()
}

/// The integer at a path.
pub fn i64_at(doc: &Value, path: &[&str]) -> Option<i64> {
    at(doc, path).and_then(Value::as_i64)
}

/// `metadata.name`.
pub fn name(doc: &Value) -> &str {
    str_at(doc, &["metadata", "name"])
}

/// `metadata.namespace` ("" when cluster-scoped).
pub fn namespace(doc: &Value) -> &str {
    str_at(doc, &["metadata", "namespace"])
}

/// `metadata.uid`.
pub fn uid(doc: &Value) -> &str {
    str_at(doc, &["metadata", "uid"])
}

/// `metadata.labels`.
pub fn labels(doc: &Value) -> Option<&Value> {
    at(doc, &["metadata", "labels"])
}

/// An annotation's value.
pub fn annotation<'a>(doc: &'a Value, key: &str) -> Option<&'a str> {
    at(doc, &["metadata", "annotations", key]).and_then(Value::as_str)
}

/// Whether `metadata.deletionTimestamp` is set.
pub fn is_deleting(doc: &Value) -> bool {
    at(doc, &["metadata", "deletionTimestamp"]).is_some()
}

/// The uid of the object's controller (the owner reference with `controller: true`).
pub fn controller_uid(doc: &Value) -> Option<&str> {
    at(doc, &["metadata", "ownerReferences"])?
        .as_array()?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .and_then(|r| r.get("uid"))
        .and_then(Value::as_str)
}

/// The mutable map at a path, created (replacing non-maps) on the way.
pub fn map_mut<'a>(doc: &'a mut Value, path: &[&str]) -> &'a mut Map<String, Value> {
    let mut cur = doc;
    for key in path {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(map) = cur else {
            unreachable!("made an object above")
        };
        cur = map
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if !cur.is_object() {
        *cur = Value::Object(Map::new());
    }
    match cur {
        Value::Object(map) => map,
        _ => unreachable!("made an object above"),
    }
}

/// Sets the value at a path, creating maps on the way.
pub fn set(doc: &mut Value, path: &[&str], value: Value) {
    if let Some((last, parent)) = path.split_last() {
        map_mut(doc, parent).insert(last.to_string(), value);
    }
}

/// A controller owner reference to `owner`.
pub fn controller_ref(owner: &Value) -> Value {
    serde_json::json!({
        "apiVersion": owner.get("apiVersion").cloned().unwrap_or(Value::Null),
        "kind": owner.get("kind").cloned().unwrap_or(Value::Null),
        "name": name(owner),
        "uid": uid(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// A Kubernetes quantity of CPU in millicores (`500m`, `2`, `0.5`).
pub fn cpu_millis(q: &Value) -> Option<i64> {
    let text = match q {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    if let Some(m) = text.strip_suffix('m') {
        return m.parse::<f64>().ok().map(|v| v.round() as i64);
    }
    text.parse::<f64>()
        .ok()
        .map(|v| (v * 1000.0).round() as i64)
}

/// A Kubernetes quantity of bytes (`128Mi`, `1G`, `1e9`, `512`).
pub fn bytes(q: &Value) -> Option<i64> {
    let text = match q {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("k", 1e3),
        ("K", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("m", 1e-3),
    ];
    for (suffix, scale) in SUFFIXES {
        if let Some(num) = text.strip_suffix(suffix) {
            return num.parse::<f64>().ok().map(|v| (v * scale).round() as i64);
        }
    }
    text.parse::<f64>().ok().map(|v| v.round() as i64)
}

/// Prints a byte count as kubectl would for a capacity (`8Gi`, `512Mi`, `1000`).
pub fn format_bytes(b: i64) -> String {
    for (suffix, scale) in [
        ("Ti", 1i64 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if b != 0 && b % scale == 0 {
            return format!("{}{suffix}", b / scale);
        }
    }
    b.to_string()
}

/// Prints millicores as Kubernetes does (`2`, `500m`).
pub fn format_cpu(m: i64) -> String {
    if m % 1000 == 0 {
        (m / 1000).to_string()
    } else {
        format!("{m}m")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities_parse() {
        assert_eq!(cpu_millis(&json!("500m")), Some(500));
        assert_eq!(cpu_millis(&json!(2)), Some(2000));
        assert_eq!(cpu_millis(&json!("0.25")), Some(250));
        assert_eq!(bytes(&json!("128Mi")), Some(128 << 20));
        assert_eq!(bytes(&json!("1G")), Some(1_000_000_000));
        assert_eq!(format_bytes(8 << 30), "8Gi");
        assert_eq!(format_cpu(1500), "1500m");
    }
}
