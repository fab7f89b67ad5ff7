//! Server-side field validation of built-in kinds (`fieldValidation=Strict`, what kubectl
//! sends): an unknown field or a value of the wrong type refuses the object, naming the path.
//!
//! The schemas are the Kubernetes v1.31 OpenAPI definitions, reduced by
//! `tools/generate_kinds.py` into `schema_v1_31.json` (properties, element schemas and scalar
//! types only) and parsed once per process.

use std::sync::OnceLock;

use serde_json::{Map, Value};

use super::kinds::KindInfo;

static DOCUMENT: &str = include_str!("schema_v1_31.json");

fn document() -> Option<&'static Value> {
    static PARSED: OnceLock<Option<Value>> = OnceLock::new();
    PARSED
        .get_or_init(|| serde_json::from_str(DOCUMENT).ok())
        .as_ref()
}

/// The reduced OpenAPI definitions (name → compact schema: `t` type, `p` properties, `i`
/// elements, `a` map values, `r` a reference) and the kind table's roots
/// (`apps/v1/Deployment` → definition name), for the API's OpenAPI documents.
pub fn definitions() -> Option<(&'static Map<String, Value>, &'static Map<String, Value>)> {
    let doc = document()?;
    Some((
        doc.get("definitions")?.as_object()?,
        doc.get("kinds")?.as_object()?,
    ))
}

/// What decoding found wrong: the first wrong type, else every unknown field.
#[derive(Debug, Default)]
struct Findings {
    wrong_type: Option<String>,
    unknown: Vec<String>,
}

/// Checks `object` (of built-in kind `info`, in its own `version`) against its OpenAPI
/// schema. The error is the API server's: `Deployment in version "v1" cannot be handled as a
/// Deployment: strict decoding error: unknown field "spec.replica"`.
pub fn check(info: &KindInfo, version: &str, object: &Value) -> Result<(), String> {
    let Some(doc) = document() else {
        return Ok(());
    };
    let key = if info.group.is_empty() {
        format!("{version}/{}", info.kind)
    } else {
        format!("{}/{version}/{}", info.group, info.kind)
    };
    let (Some(root), Some(defs)) = (
        doc.get("kinds")
            .and_then(|k| k.get(&key))
            .and_then(Value::as_str),
        doc.get("definitions").and_then(Value::as_object),
    ) else {
        return Ok(());
    };
    let mut findings = Findings::default();
    let schema = Value::Object(Map::from_iter([("r".to_string(), Value::from(root))]));
    walk(defs, &schema, object, "", &mut findings);
    let prefix = format!(
        "{} in version \"{version}\" cannot be handled as a {}",
        info.kind, info.kind
    );
    if let Some(wrong) = findings.wrong_type {
        return Err(format!("{prefix}: {wrong}"));
    }
    // The engine serves the Canary and BlueGreen strategy types natively (Argo Rollouts'
    // fields beside `type`); a real API server never sees them (reconcile sends a stand-in).
    if info.kind == "Deployment" && info.group == "apps" {
        findings
            .unknown
            .retain(|p| p != "spec.strategy.canary" && p != "spec.strategy.blueGreen");
    }
    if !findings.unknown.is_empty() {
        let list: Vec<String> = findings
            .unknown
            .iter()
            .map(|p| format!("unknown field \"{p}\""))
            .collect();
        return Err(format!(
            "{prefix}: strict decoding error: {}",
            list.join(", ")
        ));
    }
    Ok(())
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(value: &Value) -> bool {
    value.as_i64().is_some()
        || value.as_u64().is_some()
        || value.as_f64().is_some_and(|f| f.fract() == 0.0)
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

fn walk(defs: &Map<String, Value>, schema: &Value, value: &Value, path: &str, out: &mut Findings) {
    if out.wrong_type.is_some() || value.is_null() {
        return;
    }
    let mut schema = schema;
    // A chain of references ends at a definition; the guard bounds a (malformed) cycle.
    for _ in 0..16 {
        match schema.get("r").and_then(Value::as_str) {
            Some(name) => match defs.get(name) {
                Some(next) => schema = next,
                None => return,
            },
            None => break,
        }
    }
    let expected = schema.get("t").and_then(Value::as_str);
    let fits = match expected {
        None => true,
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => is_integer(value),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some("int-or-string") => value.is_string() || is_integer(value),
        Some("quantity") => value.is_string() || value.is_number(),
        Some(_) => true,
    };
    if !fits {
        let go_type = match expected.unwrap_or_default() {
            "object" => "map",
            "array" => "slice",
            "integer" => "int",
            "number" => "float64",
            "boolean" => "bool",
            "int-or-string" => "intstr.IntOrString",
            "quantity" => "resource.Quantity",
            other => other,
        };
        out.wrong_type = Some(format!(
            "json: cannot unmarshal {} into Go struct field {path} of type {go_type}",
            json_type(value)
        ));
        return;
    }
    match value {
        Value::Object(fields) => {
            let properties = schema.get("p").and_then(Value::as_object);
            let values = schema.get("a");
            if properties.is_none() && values.is_none() {
                return; // free-form (RawExtension, FieldsV1)
            }
            for (name, field) in fields {
                let child = join(path, name);
                match (properties.and_then(|p| p.get(name)), values) {
                    (Some(sub), _) | (None, Some(sub)) => walk(defs, sub, field, &child, out),
                    (None, None) => out.unknown.push(child),
                }
            }
        }
        Value::Array(items) => {
            if let Some(element) = schema.get("i") {
                for (index, item) in items.iter().enumerate() {
                    walk(defs, element, item, &format!("{path}[{index}]"), out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::kinds::lookup;
    use serde_json::json;

    fn deploy() -> &'static KindInfo {
        lookup("deploy").unwrap_or_else(|| panic!("deploy"))
    }

    fn web(spec: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "creationTimestamp": null}, "spec": spec})
    }

    #[test]
    fn valid_objects_pass() {
        let obj = web(
            json!({"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "web", "image": "nginx", "resources": {"limits": {"cpu": "1", "memory": 128}},
                 "ports": [{"containerPort": 80}]}]}}}),
        );
        assert_eq!(check(deploy(), "v1", &obj), Ok(()));
    }

    #[test]
    fn unknown_fields_are_named_by_path() {
        let obj = web(json!({"replica": 2, "template": {"spec": {"containers": [
            {"name": "web", "image": "nginx", "imagePullPolicyy": "Always"}]}}}));
        assert_eq!(
            check(deploy(), "v1", &obj),
            Err("Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.replica\", unknown field \"spec.template.spec.containers[0].imagePullPolicyy\"".to_string())
        );
    }

    #[test]
    fn wrong_types_are_refused() {
        let obj = web(json!({"replicas": "two"}));
        assert_eq!(
            check(deploy(), "v1", &obj),
            Err("Deployment in version \"v1\" cannot be handled as a Deployment: json: cannot unmarshal string into Go struct field spec.replicas of type int".to_string())
        );
        let secret = lookup("secret").unwrap_or_else(|| panic!("secret"));
        let obj = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": {"nested": "x"}}});
        assert!(check(secret, "v1", &obj).is_err_and(|e| {
            e.contains("cannot unmarshal object into Go struct field data.k of type string")
        }));
    }
}
