//! CRD `additionalPrinterColumns`: the columns `engine get` (and `engine serve`'s Table
//! output) shows for a custom kind, remembered when its CRD is registered, and the JSONPath
//! subset that fills them (`.spec.replicas`, `.status.conditions[?(@.type=="Ready")].status`,
//! `.items[0].name`), as the API server's table convertor does.
//!
//! Columns come from the CRD version the kind is served in first (the preferred one); with
//! none declared the table is NAME and AGE, as Kubernetes'. Columns keep their declared order;
//! those with `priority` > 0 are shown with `-o wide` only, as kubectl prints the API server's
//! table. A cell is the first value the path finds, typed as the API server's convertor
//! types it: a value not of the column's type (a string in an `integer` column) is `<none>`.

use std::collections::BTreeMap;
use std::sync::RwLock;

use serde_json::Value;

use super::clock::{Millis, human_age, parse_rfc3339};
use super::kinds::{self, KindInfo};

/// One printer column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Title as declared (the table prints it in capitals).
    pub name: &'static str,
    /// `integer`, `number`, `string`, `boolean`, `date`.
    pub kind: String,
    /// The JSONPath.
    pub json_path: String,
    /// 0: always; more: `-o wide` only.
    pub priority: i64,
}

type Registry = BTreeMap<(&'static str, &'static str), Vec<Column>>;

static COLUMNS: RwLock<Registry> = RwLock::new(BTreeMap::new());

/// Remembers the printer columns a CRD declares for its preferred served version.
pub fn remember(crd: &Value, info: &KindInfo) {
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(version) = versions
        .iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(info.version))
    else {
        return;
    };
    let columns: Vec<Column> = version
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some(Column {
                name: kinds::intern(c.get("name")?.as_str()?),
                kind: c
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("string")
                    .to_string(),
                json_path: c.get("jsonPath")?.as_str()?.to_string(),
                priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
            })
        })
        .collect();
    if let Ok(mut registry) = COLUMNS.write() {
        if columns.is_empty() {
            registry.remove(&(info.group, info.kind));
        } else {
            registry.insert((info.group, info.kind), columns);
        }
    }
}

/// The declared columns of a custom kind (`None`: none declared, or a built-in kind).
pub fn columns(info: &KindInfo) -> Option<Vec<Column>> {
    COLUMNS
        .read()
        .ok()
        .and_then(|r| r.get(&(info.group, info.kind)).cloned())
}

/// The column titles (`NAME` first), wide or not.
pub fn header(columns: &[Column], wide: bool) -> Vec<&'static str> {
    let mut head = vec!["NAME"];
    head.extend(
        columns
            .iter()
            .filter(|c| wide || c.priority == 0)
            .map(|c| upper(c.name)),
    );
    head
}

fn upper(name: &'static str) -> &'static str {
    if name.chars().any(|c| c.is_lowercase()) {
        kinds::intern(&name.to_uppercase())
    } else {
        name
    }
}

/// The cells of one object (`NAME` first).
pub fn cells(columns: &[Column], object: &Value, now: Millis, wide: bool) -> Vec<String> {
    let mut row = vec![
        object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    ];
    for c in columns.iter().filter(|c| wide || c.priority == 0) {
        let found = select(object, &c.json_path);
        let cell = found
            .first()
            .and_then(|v| cell(&c.kind, v, now))
            .unwrap_or_else(|| "<none>".to_string());
        row.push(cell);
    }
    row
}

/// One cell as the API server's table convertor makes it for a column of type `kind`
/// (`None`: a null, or a value of another type).
fn cell(kind: &str, value: &Value, now: Millis) -> Option<String> {
    match (kind, value) {
        (_, Value::Null) => None,
        ("date", Value::String(text)) => Some(
            parse_rfc3339(text)
                .map(|t| human_age(now - t))
                .unwrap_or_else(|| "<invalid>".into()),
        ),
        ("integer", Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map(|i| i.to_string()),
        ("number", Value::Number(n)) => Some(n.to_string()),
        ("boolean", Value::Bool(b)) => Some(b.to_string()),
        ("string", Value::String(s)) => Some(s.clone()),
        // A string column prints whatever it finds (kubectl's JSONPath printing).
        ("string", other) => Some(other.to_string()),
        _ => None,
    }
}

/// The values a JSONPath selects: `.a.b`, `.a[0]`, `.a[*]`, `.a[?(@.k=="v")].b`.
pub fn select<'a>(object: &'a Value, path: &str) -> Vec<&'a Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let path = path.strip_prefix('$').unwrap_or(path);
    let mut current: Vec<&Value> = vec![object];
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let field = &after[..end];
            rest = &after[end..];
            if field.is_empty() {
                continue;
            }
            current = current.into_iter().filter_map(|v| v.get(field)).collect();
        } else if let Some(after) = rest.strip_prefix('[') {
            let Some(close) = after.find(']') else {
                return Vec::new();
            };
            let inside = &after[..close];
            rest = &after[close + 1..];
            current = current.into_iter().flat_map(|v| index(v, inside)).collect();
        } else {
            return Vec::new();
        }
    }
    current
}

fn index<'a>(value: &'a Value, inside: &str) -> Vec<&'a Value> {
    let Some(items) = value.as_array() else {
        return Vec::new();
    };
    if inside == "*" {
        return items.iter().collect();
    }
    if let Ok(i) = inside.parse::<i64>() {
        let i = if i < 0 { items.len() as i64 + i } else { i };
        return usize::try_from(i)
            .ok()
            .and_then(|i| items.get(i))
            .into_iter()
            .collect();
    }
    // ?(@.field=="value")
    let Some(filter) = inside
        .strip_prefix("?(")
        .and_then(|f| f.strip_suffix(')'))
        .and_then(|f| f.strip_prefix("@."))
    else {
        return Vec::new();
    };
    let Some((field, wanted)) = filter.split_once("==") else {
        return Vec::new();
    };
    let wanted = wanted.trim().trim_matches(|c| c == '"' || c == '\'');
    items
        .iter()
        .filter(|item| {
            select(item, &format!(".{}", field.trim()))
                .first()
                .is_some_and(|v| match v {
                    Value::String(s) => s == wanted,
                    Value::Number(n) => wanted.parse::<f64>().ok() == n.as_f64(),
                    Value::Bool(b) => wanted.parse::<bool>().ok() == Some(*b),
                    _ => false,
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_paths_select_fields_indexes_and_filters() {
        let o = json!({"spec": {"replicas": 3, "ports": [{"port": 80}, {"port": 443}]},
            "status": {"conditions": [{"type": "Synced", "status": "False"},
                                      {"type": "Ready", "status": "True"}]}});
        assert_eq!(select(&o, ".spec.replicas"), vec![&json!(3)]);
        assert_eq!(select(&o, ".spec.ports[1].port"), vec![&json!(443)]);
        assert_eq!(select(&o, ".spec.ports[*].port").len(), 2);
        assert_eq!(
            select(&o, r#".status.conditions[?(@.type=="Ready")].status"#),
            vec![&json!("True")]
        );
        assert!(select(&o, ".spec.missing").is_empty());
    }

    #[test]
    fn cells_format_dates_as_ages_and_missing_values_as_none() {
        let columns = vec![
            Column {
                name: "Replicas",
                kind: "integer".into(),
                json_path: ".spec.replicas".into(),
                priority: 0,
            },
            Column {
                name: "Since",
                kind: "date".into(),
                json_path: ".status.since".into(),
                priority: 0,
            },
            Column {
                name: "Extra",
                kind: "string".into(),
                json_path: ".spec.extra".into(),
                priority: 1,
            },
        ];
        let o = json!({"metadata": {"name": "a"}, "spec": {"replicas": 2},
            "status": {"since": "2026-01-01T00:00:00Z"}});
        let now = parse_rfc3339("2026-01-01T00:05:00Z").unwrap_or_default();
        assert_eq!(cells(&columns, &o, now, false), ["a", "2", "5m"]);
        assert_eq!(cells(&columns, &o, now, true), ["a", "2", "5m", "<none>"]);
        assert_eq!(header(&columns, false), ["NAME", "REPLICAS", "SINCE"]);
    }

    #[test]
    fn cells_take_the_first_value_of_the_columns_type_in_declared_order() {
        let column = |name: &'static str, kind: &str, path: &str, priority: i64| Column {
            name,
            kind: kind.into(),
            json_path: path.into(),
            priority,
        };
        let columns = vec![
            column("Port", "integer", ".spec.ports[*].port", 0),
            column("Issuer", "string", ".spec.issuer", 1),
            column("Size", "integer", ".spec.size", 0),
            column("Ready", "boolean", ".spec.ready", 0),
        ];
        let o = json!({"metadata": {"name": "a"},
            "spec": {"ports": [{"port": 80}, {"port": 443}], "issuer": "ca", "size": "big", "ready": true}});
        assert_eq!(cells(&columns, &o, 0, false), ["a", "80", "<none>", "true"]);
        assert_eq!(
            cells(&columns, &o, 0, true),
            ["a", "80", "ca", "<none>", "true"]
        );
        assert_eq!(
            header(&columns, true),
            ["NAME", "PORT", "ISSUER", "SIZE", "READY"]
        );
    }
}
