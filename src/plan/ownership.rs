//! Applies with server-side-apply semantics through any [`crate::cluster::Cluster`]: the
//! object sent is the live object with reconcile's applied configuration merged in by
//! [`crate::fields::apply`] (field manager [`FIELD_MANAGER`], forced: git is the source of
//! truth), so fields other writers added survive and only fields reconcile set at its
//! previous apply and no longer declares are removed.
//!
//! Objects applied before `managedFields` were recorded carry only the value-free shape of
//! their last apply ([`APPLIED_FIELDS_ANNOTATION`]); their previous field set is read from it.

use serde_json::{Map, Value};

use crate::diff::normalize::{APPLIED_FIELDS_ANNOTATION, escape_pointer, union_shape};
use crate::fields::{self, Entry, FieldSet, Operation};
use crate::render::patch::openapi::OpenApi;

/// The field manager reconcile applies as.
pub const FIELD_MANAGER: &str = "reconcile";

/// The object to write: `prepared` applied over `live` by [`FIELD_MANAGER`], without the
/// live resourceVersion (the write is not conditional on it). With `status_is_field` (a CRD
/// without the status subresource) `status` is applied like `spec`; a status the apply
/// removes whole is written as `status: null`, so the write removes it.
pub fn merge_for_apply(
    live: Option<&Value>,
    prepared: &Value,
    now: &str,
    status_is_field: bool,
) -> Result<Value, fields::Error> {
    let api = OpenApi::builtin();
    let api_version = prepared
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = prepared
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let schema = fields::schema_for(&api, api_version, kind).with_status_field(status_is_field);
    let live = live.map(|l| with_legacy_ownership(l, api_version, now, schema));
    let applied = fields::apply(live.as_ref(), prepared, FIELD_MANAGER, true, now, schema)?;
    let mut object = applied.object;
    if let Value::Object(root) = &mut object {
        if let Some(Value::Object(meta)) = root.get_mut("metadata") {
            meta.shift_remove("resourceVersion");
        }
        let emptied = root
            .get("status")
            .is_none_or(|s| s.as_object().is_some_and(Map::is_empty));
        if status_is_field && emptied && live.as_ref().is_some_and(|l| l.get("status").is_some()) {
            root.insert("status".into(), Value::Null);
        }
    }
    Ok(object)
}

/// The fields of `declared` plus those reconcile applied last time and still owns on `live`:
/// what a plan's diff compares (a removal shows only when the apply will remove it).
pub fn compared_shape(declared: &Value, live: Option<&Value>) -> Value {
    let declared_shape = crate::diff::normalize::shape(declared);
    match live.and_then(applied_shape) {
        Some(previous) => union_shape(&declared_shape, &previous),
        None => declared_shape,
    }
}

/// True when `live` records no field of reconcile's (never applied with `managedFields`).
pub fn lacks_ownership(live: &Value) -> bool {
    !fields::managed_fields(live)
        .unwrap_or_default()
        .iter()
        .any(|e| e.manager == FIELD_MANAGER && e.operation == Operation::Apply)
}

fn applied_shape(live: &Value) -> Option<Value> {
    live.pointer(&format!(
        "/metadata/annotations/{}",
        escape_pointer(APPLIED_FIELDS_ANNOTATION)
    ))
    .and_then(Value::as_str)
    .and_then(|text| serde_json::from_str::<Value>(text).ok())
}

/// `live` with a reconcile `Apply` entry read from the applied-fields annotation when it has
/// none (objects applied by earlier versions).
fn with_legacy_ownership(
    live: &Value,
    api_version: &str,
    now: &str,
    schema: fields::Node<'_>,
) -> Value {
    if !lacks_ownership(live) {
        return live.clone();
    }
    let Some(shape) = applied_shape(live) else {
        return live.clone();
    };
    let previous = FieldSet::of(&project_strict(live, &shape), schema);
    let mut entries = fields::managed_fields(live).unwrap_or_default();
    entries.push(Entry {
        manager: FIELD_MANAGER.to_string(),
        operation: Operation::Apply,
        api_version: api_version.to_string(),
        time: now.to_string(),
        fields: previous,
        subresource: String::new(),
    });
    let mut live = live.clone();
    fields::set_managed_fields(&mut live, &entries);
    live
}

/// The parts of `live` a shape names; list elements are matched by the key values the shape
/// kept (its non-zero scalars), and elements matching nothing are left out.
fn project_strict(live: &Value, shape: &Value) -> Value {
    match (live, shape) {
        (Value::Object(map), Value::Object(wanted)) => Value::Object(
            map.iter()
                .filter_map(|(k, v)| wanted.get(k).map(|s| (k.clone(), project_strict(v, s))))
                .collect(),
        ),
        (Value::Array(items), Value::Array(wanted)) if wanted.iter().all(Value::is_object) => {
            Value::Array(
                wanted
                    .iter()
                    .filter_map(|element| {
                        let keys: Map<String, Value> = element
                            .as_object()
                            .map(|m| {
                                m.iter()
                                    .filter(|(_, v)| !v.is_object() && !v.is_array())
                                    .filter(|(_, v)| v.as_i64() != Some(0) && v.as_u64() != Some(0))
                                    .map(|(k, v)| (k.clone(), v.clone()))
                                    .collect()
                            })
                            .unwrap_or_default();
                        if keys.is_empty() {
                            return None;
                        }
                        items
                            .iter()
                            .find(|item| keys.iter().all(|(k, v)| item.get(k) == Some(v)))
                            .map(|item| project_strict(item, element))
                    })
                    .collect(),
            )
        }
        _ => live.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn legacy_objects_lose_only_fields_their_last_apply_declared() {
        let declared_before = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "annotations": {"old": "1"}}, "data": {"a": "1", "b": "2"}});
        let shape = crate::diff::normalize::shape(&declared_before);
        let mut live = declared_before.clone();
        live["metadata"]["annotations"][APPLIED_FIELDS_ANNOTATION] = json!(shape.to_string());
        live["metadata"]["annotations"]["theirs"] = json!("x");
        live["data"]["foreign"] = json!("y");
        let declared_now = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c"}, "data": {"a": "1"}});
        let merged = merge_for_apply(Some(&live), &declared_now, "t", false).unwrap();
        assert_eq!(merged["data"], json!({"a": "1", "foreign": "y"}));
        let annotations = merged["metadata"]["annotations"].as_object().unwrap();
        assert!(annotations.contains_key("theirs"));
        assert!(!annotations.contains_key("old"));
        assert!(!lacks_ownership(&merged));
    }

    #[test]
    fn a_status_that_is_a_field_is_applied_owned_and_removed() {
        let widget = |status: Option<Value>| {
            let mut w = json!({"apiVersion": "example.com/v1", "kind": "Widget",
                "metadata": {"name": "w"}, "spec": {"size": 1}});
            if let Some(status) = status {
                w["status"] = status;
            }
            w
        };
        let ready = json!({"conditions": [{"type": "Ready", "status": "True"}]});
        let created = merge_for_apply(None, &widget(Some(ready.clone())), "t", true)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(created["status"], ready);
        let owned = fields::managed_fields(&created).unwrap_or_default();
        assert!(
            owned[0]
                .fields
                .to_fields_v1()
                .to_string()
                .contains("f:status"),
            "{owned:?}"
        );
        // Dropped from the tree: removed, spelled `null` so the write removes it.
        let dropped = merge_for_apply(Some(&created), &widget(None), "t", true)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dropped["status"], Value::Null);
        // With the status subresource, a declared status is nobody's and never written.
        let ignored = merge_for_apply(None, &widget(Some(ready)), "t", false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(ignored.get("status").is_none(), "{ignored}");
    }
}
