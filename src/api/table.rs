//! Conversion to `meta.k8s.io/v1` `Table`, what kubectl asks for (`as=Table`) to print `get`.
//!
//! The columns are the engine's own `get` columns ([`crate::tables`]): the ones
//! `-o wide` adds get priority 1, so kubectl shows them only with `-o wide`.

use serde_json::{Map, Value, json};

use crate::tables;
use crate::engine::clock::Millis;
use crate::engine::kinds::KindInfo;

/// Whether the request's `Accept` header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

/// The Table of `objects` (all of kind `info`).
pub fn table(info: &KindInfo, objects: &[&Value], now: Millis, list_meta: Value) -> Value {
    let narrow = tables::header(info, false).len();
    let columns: Vec<Value> = tables::header(info, true)
        .iter()
        .enumerate()
        .map(|(i, title)| {
            json!({
                "name": title_case(title),
                "type": "string",
                "format": if i == 0 { "name" } else { "" },
                "description": "",
                "priority": if i < narrow { 0 } else { 1 },
            })
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            json!({
                "cells": tables::cells(info, o, now, true),
                "object": partial_metadata(o),
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

/// The object as `PartialObjectMetadata` (what `includeObject=Metadata` returns), which
/// kubectl reads for the NAMESPACE and LABELS columns.
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
        let t = table(info, &[&obj], 0, json!({"resourceVersion": "7"}));
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
}
