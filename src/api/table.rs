//! Conversion to `meta.k8s.io/v1` `Table`, what kubectl asks for (`as=Table`) to print `get`.
//!
//! The columns are the engine's own `get` columns ([`crate::tables`]): the ones
//! `-o wide` adds get priority 1, so kubectl shows them only with `-o wide`.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::engine::clock::{Millis, human_age, parse_rfc3339};
use crate::engine::doc;
use crate::engine::kinds::KindInfo;
use crate::tables;

/// Whether the request's `Accept` header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

/// A `Table` ready to serialize; rows borrow the objects' metadata, so a LIST of thousands
/// of objects copies none of them.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Table<'a> {
    kind: &'static str,
    api_version: &'static str,
    metadata: Value,
    column_definitions: Vec<Value>,
    rows: Vec<Row<'a>>,
}

#[derive(Debug, Serialize)]
struct Row<'a> {
    cells: Vec<String>,
    object: PartialMetadata<'a>,
}

/// The object as `PartialObjectMetadata` (what `includeObject=Metadata` returns), which
/// kubectl reads for the NAMESPACE and LABELS columns.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PartialMetadata<'a> {
    kind: &'static str,
    api_version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a Value>,
}

/// The Table of `objects` (all of kind `info`).
pub fn table<'a>(
    info: &KindInfo,
    objects: &[&'a Value],
    now: Millis,
    list_meta: Value,
) -> Table<'a> {
    let priorities = tables::priorities(info);
    let column_definitions: Vec<Value> = tables::header(info, true)
        .iter()
        .enumerate()
        .map(|(i, title)| {
            json!({
                "name": title_case(title),
                "type": "string",
                "format": if i == 0 { "name" } else { "" },
                "description": "",
                "priority": priorities.get(i).copied().unwrap_or(0),
            })
        })
        .collect();
    let rows = objects
        .iter()
        .map(|o| Row {
            cells: tables::cells(info, o, now, true),
            object: PartialMetadata {
                kind: "PartialObjectMetadata",
                api_version: "meta.k8s.io/v1",
                metadata: o.get("metadata"),
            },
        })
        .collect();
    Table {
        kind: "Table",
        api_version: "meta.k8s.io/v1",
        metadata: list_meta,
        column_definitions,
        rows,
    }
}

/// The Table of `core/v1` Events, with the API server's columns (`printEvent`): LAST SEEN,
/// TYPE, REASON, OBJECT, MESSAGE, and SUBOBJECT, SOURCE, FIRST SEEN, COUNT, NAME with `-o wide`.
pub fn events_table(events: &[&Value], now: Millis, list_meta: Value) -> Value {
    let columns: Vec<Value> = [
        ("Last Seen", 0),
        ("Type", 0),
        ("Reason", 0),
        ("Object", 0),
        ("Subobject", 1),
        ("Source", 1),
        ("Message", 0),
        ("First Seen", 1),
        ("Count", 1),
        ("Name", 1),
    ]
    .iter()
    .map(|(title, priority)| {
        json!({"name": title, "type": if *title == "Count" { "integer" } else { "string" },
               "format": if *title == "Name" { "name" } else { "" },
               "description": "", "priority": priority})
    })
    .collect();
    let since = |field: &str, e: &Value| {
        parse_rfc3339(doc::str_at(e, &[field]))
            .map(|t| human_age(now - t))
            .unwrap_or_else(|| "<unknown>".into())
    };
    let rows: Vec<Value> = events
        .iter()
        .map(|e| {
            let count = e["count"].as_i64().unwrap_or(1);
            let first = since("firstTimestamp", e);
            let mut last = since("lastTimestamp", e);
            if count > 1 {
                last = format!("{last} (x{count} over {first})");
            }
            let involved = &e["involvedObject"];
            let kind = doc::str_at(involved, &["kind"]).to_lowercase();
            let name = doc::str_at(involved, &["name"]);
            let target = if name.is_empty() {
                kind
            } else {
                format!("{kind}/{name}")
            };
            json!({
                "cells": [last, doc::str_at(e, &["type"]), doc::str_at(e, &["reason"]), target,
                          doc::str_at(involved, &["fieldPath"]),
                          doc::str_at(e, &["source", "component"]),
                          doc::str_at(e, &["message"]).trim(), first, count, doc::name(e)],
                "object": partial_metadata(e),
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// kubectl prints column names upper-cased; the server sends them as titles (`Up-to-date`).
fn title_case(title: &str) -> String {
    let lower = title.to_lowercase();
    let mut chars = lower.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().collect::<String>() + chars.as_str(),
        None => String::new(),
    }
}

/// [`PartialMetadata`] as a value (the events' table).
fn partial_metadata(o: &Value) -> Value {
    let metadata = o
        .get("metadata")
        .cloned()
        .unwrap_or(Value::Object(Map::new()));
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::kinds;

    #[test]
    fn wide_columns_have_priority_one() {
        let info = kinds::by_kind("Deployment").expect("kind");
        let obj = json!({"metadata": {"name": "web", "namespace": "default",
            "creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"replicas": 2}});
        let t = serde_json::to_value(table(info, &[&obj], 0, json!({"resourceVersion": "7"})))
            .expect("serializes");
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["priority"] == 0)
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, ["Name", "Ready", "Up-to-date", "Available", "Age"]);
        assert_eq!(t["rows"][0]["cells"][0], "web");
        assert_eq!(t["rows"][0]["object"]["metadata"]["namespace"], "default");
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }

    #[test]
    fn events_have_the_api_servers_columns() {
        let event = json!({"metadata": {"name": "web.1", "namespace": "default"},
            "involvedObject": {"kind": "Deployment", "name": "web"}, "reason": "ScalingReplicaSet",
            "message": "Scaled up replica set web-1 to 3 ", "type": "Normal", "count": 2,
            "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:01:00Z",
            "source": {"component": "deployment-controller"}});
        let now = parse_rfc3339("2026-01-01T00:02:00Z").unwrap_or_default();
        let t = events_table(&[&event], now, json!({}));
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "60s (x2 over 2m)",
                "Normal",
                "ScalingReplicaSet",
                "deployment/web",
                "",
                "deployment-controller",
                "Scaled up replica set web-1 to 3",
                "2m",
                2,
                "web.1"
            ])
        );
        let narrow: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["priority"] == 0)
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(narrow, ["Last Seen", "Type", "Reason", "Object", "Message"]);
    }
}
