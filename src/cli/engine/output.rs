//! `-o yaml` and `-o json` exactly as kubectl prints them.
//!
//! kubectl's YAML printer is `sigs.k8s.io/yaml.Marshal`, the same path `kustomize build`
//! prints with, so YAML is [`crate::yaml::to_yaml`]. Its JSON printer is Go's
//! `json.MarshalIndent(obj, "", "    ")` of an unstructured object: keys sorted, four-space
//! indentation, `<`, `>`, `&`, U+2028 and U+2029 escaped.

use serde_json::Value;

/// One object or list as `kubectl get -o yaml` prints it.
pub fn yaml(value: &Value) -> String {
    crate::yaml::to_yaml(value)
}

/// One object or list as `kubectl get -o json` prints it (with the final line break).
pub fn json(value: &Value) -> String {
    let mut out = String::new();
    write_json(value, 0, &mut out);
    out.push('\n');
    out
}

/// The `List` kubectl wraps several objects in.
pub fn list(items: Vec<Value>) -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "items": items,
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    })
}

fn indent(level: usize, out: &mut String) {
    out.push('\n');
    out.extend(std::iter::repeat_n(' ', level * 4));
}

fn write_json(value: &Value, level: usize, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&crate::yaml::go_json_number(n)),
        Value::String(s) => write_string(s, out),
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(level + 1, out);
                write_json(item, level + 1, out);
            }
            indent(level, out);
            out.push(']');
        }
        Value::Object(map) if map.is_empty() => out.push_str("{}"),
        Value::Object(map) => {
            // Go sorts map keys by their bytes.
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(level + 1, out);
                write_string(key, out);
                out.push_str(": ");
                write_json(&map[key.as_str()], level + 1, out);
            }
            indent(level, out);
            out.push('}');
        }
    }
}

/// A string as Go's `encoding/json` writes it with HTML escaping on (its default).
fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_reads_like_kubectl() {
        // Printed by `kubectl label --local -f cm.yaml x=y -o json` (v1.32).
        let cm = json!({"kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "c", "labels": {"x": "y"}},
            "data": {"z": "x", "k": "a<b&c>é\u{2028}", "a": "1"}});
        assert_eq!(
            json(&cm),
            "{\n    \"apiVersion\": \"v1\",\n    \"data\": {\n        \"a\": \"1\",\n        \
             \"k\": \"a\\u003cb\\u0026c\\u003eé\\u2028\",\n        \"z\": \"x\"\n    },\n    \
             \"kind\": \"ConfigMap\",\n    \"metadata\": {\n        \"labels\": {\n            \
             \"x\": \"y\"\n        },\n        \"name\": \"c\"\n    }\n}\n"
        );
        assert_eq!(
            json(&json!({"a": [], "b": {}, "c": [1.5, null]})),
            "{\n    \"a\": [],\n    \"b\": {},\n    \"c\": [\n        1.5,\n        null\n    ]\n}\n"
        );
    }

    #[test]
    fn yaml_reads_like_kubectl() {
        // Printed by `kubectl label --local -f cm.yaml x=y -o yaml` (v1.32).
        let cm = json!({"kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "c", "labels": {"x": "y"}},
            "data": {"z": "x", "k": "a<b&c>é", "a": "1", "on": "on", "e": "", "s": "a: b"}});
        assert_eq!(
            yaml(&cm),
            "apiVersion: v1\ndata:\n  a: \"1\"\n  e: \"\"\n  k: a<b&c>é\n  \"on\": \"on\"\n  \
             s: 'a: b'\n  z: x\nkind: ConfigMap\nmetadata:\n  labels:\n    x: \"y\"\n  name: c\n"
        );
    }
}
