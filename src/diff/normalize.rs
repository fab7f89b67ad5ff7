//! Normalisation: what of a live object is compared with what the user declared.
//!
//! Like server-side apply's field ownership, only the fields the user declares (now, or in
//! the last apply — recorded by [`APPLIED_FIELDS_ANNOTATION`] as a value-free shape) are
//! compared. Everything else the cluster fills in (status, uid, resourceVersion, a Service's
//! clusterIP, a Deployment's defaulted strategy, a container's terminationMessagePath …) is
//! projected away from the live object, so it never shows as drift. reconcile's own
//! bookkeeping (managed-by label, owner and rollout annotations, track labels) is stripped
//! from both sides.
//!
//! Invariant: pure functions of their inputs; nothing here does IO.

use serde_json::{Map, Value};

use crate::cluster::{CANARY_WEIGHT_ANNOTATION, TRACK_LABEL};

/// Label reconcile puts on every object it applies.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY_VALUE: &str = "reconcile";
/// Annotation naming the application that owns an applied object.
pub const OWNER_ANNOTATION: &str = "reconcile.dev/owner";
/// Annotation holding the value-free shape of the fields declared at the last apply.
pub const APPLIED_FIELDS_ANNOTATION: &str = "reconcile.dev/applied-fields";
/// Annotation holding the user's BlueGreen/Canary strategy of a Deployment sent to the
/// cluster as a plain RollingUpdate (the cluster only knows the standard strategies).
pub const STRATEGY_ANNOTATION: &str = "reconcile.dev/strategy";
/// Annotation holding a Deployment's rollout state (step, weight, analysis runs …).
pub const ROLLOUT_STATE_ANNOTATION: &str = "reconcile.dev/rollout";
/// Annotation holding a Deployment's revision history (pod templates, for `rollout undo`).
pub const ROLLOUT_HISTORY_ANNOTATION: &str = "reconcile.dev/rollout-history";

/// Annotations that are bookkeeping of reconcile or of the cluster, never user intent.
const BOOKKEEPING_ANNOTATIONS: &[&str] = &[
    OWNER_ANNOTATION,
    APPLIED_FIELDS_ANNOTATION,
    STRATEGY_ANNOTATION,
    ROLLOUT_STATE_ANNOTATION,
    ROLLOUT_HISTORY_ANNOTATION,
    CANARY_WEIGHT_ANNOTATION,
    "deployment.kubernetes.io/revision",
    "kubectl.kubernetes.io/last-applied-configuration",
];

/// Metadata fields the cluster owns.
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
    "finalizers",
];

/// Removes reconcile's and the cluster's bookkeeping from an object (desired or live),
/// `status` included (the status subresource's, not the user's).
pub fn strip_bookkeeping(object: &mut Value) {
    strip_bookkeeping_but_status(object);
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
}

/// [`strip_bookkeeping`], or [`strip_bookkeeping_but_status`] when `status_is_field` (as
/// [`StatusRules`](crate::plan::status::StatusRules) decides for the object's kind).
pub fn strip_bookkeeping_as(object: &mut Value, status_is_field: bool) {
    if status_is_field {
        strip_bookkeeping_but_status(object);
    } else {
        strip_bookkeeping(object);
    }
}

/// [`strip_bookkeeping`] for a kind whose `status` is an ordinary field (a custom resource
/// whose CRD has no status subresource): the status stays, compared like `spec`.
pub fn strip_bookkeeping_but_status(object: &mut Value) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(meta)) = map.get_mut("metadata") {
        for field in SERVER_METADATA {
            meta.remove(*field);
        }
        if let Some(Value::Object(labels)) = meta.get_mut("labels") {
            labels.remove(MANAGED_BY_LABEL);
            labels.remove(TRACK_LABEL);
        }
        if let Some(Value::Object(annotations)) = meta.get_mut("annotations") {
            for key in BOOKKEEPING_ANNOTATIONS {
                annotations.remove(*key);
            }
        }
    }
    // Track labels are injected into selectors and pod templates by the rollout driver.
    if let Some(Value::Object(spec)) = map.get_mut("spec") {
        if let Some(Value::Object(selector)) = spec.get_mut("selector") {
            selector.remove(TRACK_LABEL);
            if let Some(Value::Object(labels)) = selector.get_mut("matchLabels") {
                labels.remove(TRACK_LABEL);
            }
        }
        if let Some(Value::Object(labels)) = spec
            .get_mut("template")
            .and_then(|t| t.get_mut("metadata"))
            .and_then(|m| m.get_mut("labels"))
        {
            labels.remove(TRACK_LABEL);
        }
    }
}

/// Puts back the strategy the user declared on a live Deployment that went out as a
/// RollingUpdate stand-in (see [`STRATEGY_ANNOTATION`]), so both sides speak the user's words.
pub fn restore_declared_strategy(live: &mut Value) {
    let declared = live
        .pointer(&format!(
            "/metadata/annotations/{}",
            escape_pointer(STRATEGY_ANNOTATION)
        ))
        .and_then(Value::as_str)
        .and_then(|text| serde_json::from_str::<Value>(text).ok());
    if let (Some(strategy), Some(Value::Object(spec))) = (declared, live.get_mut("spec")) {
        spec.insert("strategy".into(), strategy);
    }
}

/// Escapes one JSON-pointer token (`~` → `~0`, `/` → `~1`).
pub fn escape_pointer(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// The value-free shape of an object: the same maps and lists with every scalar replaced by
/// `0`, except list elements' merge keys (`name` …), which identify them. Recorded at apply time so a field removed from the manifests shows as a removal.
pub fn shape(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
        Value::Array(items) => {
            // Elements keep their merge key's value, so they can still be matched.
            let key = merge_key(items);
            Value::Array(
                items
                    .iter()
                    .map(|item| {
                        let mut element = shape(item);
                        if let (Some(k), Value::Object(map)) = (key, &mut element)
                            && let Some(value) = item.get(k)
                        {
                            map.insert(k.to_string(), value.clone());
                        }
                        element
                    })
                    .collect(),
            )
        }
        _ => Value::from(0),
    }
}

/// The fields to compare: the union of two shapes (maps merged key by key, lists element by
/// element, matched by merge key when the elements have one).
pub fn union_shape(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut out = x.clone();
            for (key, value) in y {
                let merged = match x.get(key) {
                    Some(existing) => union_shape(existing, value),
                    None => value.clone(),
                };
                out.insert(key.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(x), Value::Array(y)) => {
            let key = merge_key(x).or_else(|| merge_key(y));
            let mut out = x.clone();
            for (index, item) in y.iter().enumerate() {
                match find_match(x, item, index, key) {
                    Some(position) => out[position] = union_shape(&x[position], item),
                    None => out.push(item.clone()),
                }
            }
            Value::Array(out)
        }
        (Value::Null, other) => other.clone(),
        (first, _) => first.clone(),
    }
}

/// The merge key of a list of maps, as strategic merge patch names them: `name` for
/// containers/env/volumes/ports, `mountPath` for volumeMounts, `containerPort` or `port` for
/// unnamed ports, `ip` for hostAliases.
fn merge_key(items: &[Value]) -> Option<&'static str> {
    const CANDIDATES: &[&str] = &[
        "name",
        "mountPath",
        "containerPort",
        "port",
        "ip",
        "devicePath",
    ];
    if items.is_empty() || !items.iter().all(Value::is_object) {
        return None;
    }
    CANDIDATES
        .iter()
        .copied()
        .find(|key| items.iter().all(|item| item.get(*key).is_some()))
}

/// Position in `items` of the element matching `item` (by merge key, else by index).
fn find_match(items: &[Value], item: &Value, index: usize, key: Option<&str>) -> Option<usize> {
    match key.and_then(|k| item.get(k).map(|v| (k, v))) {
        Some((k, wanted)) => items
            .iter()
            .position(|candidate| candidate.get(k) == Some(wanted)),
        None if key.is_none() && index < items.len() => Some(index),
        None => None,
    }
}

/// Keeps only the parts of `live` that `fields` (a shape) names. List elements of `live`
/// that match no element of the shape are kept whole: they are real extra elements.
pub fn project(live: &Value, fields: &Value) -> Value {
    match (live, fields) {
        (Value::Object(map), Value::Object(wanted)) => Value::Object(
            map.iter()
                .filter_map(|(k, v)| wanted.get(k).map(|f| (k.clone(), project(v, f))))
                .collect(),
        ),
        (Value::Array(items), Value::Array(wanted)) => {
            let key = merge_key(wanted).or_else(|| merge_key(items));
            Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| match find_match(wanted, item, index, key) {
                        Some(position) => project(item, &wanted[position]),
                        None => item.clone(),
                    })
                    .collect(),
            )
        }
        _ => live.clone(),
    }
}

/// Empty maps whose presence is the setting (`parent`, `key`): a CRD version's
/// `subresources.status: {}` turns the status subresource on.
const PRESENCE_MARKERS: &[(&str, &str)] = &[("subresources", "status")];

/// Drops nulls (a declared null means "absent") and empty maps/lists (the API server treats
/// them as absent), recursively — except the empty maps whose presence is a setting
/// ([`PRESENCE_MARKERS`]).
pub fn drop_empty(value: &mut Value) {
    drop_empty_under(value, "");
}

fn drop_empty_under(value: &mut Value, parent: &str) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                drop_empty_under(child, key);
            }
            map.retain(|key, child| {
                !is_empty(child)
                    || (child.is_object() && PRESENCE_MARKERS.contains(&(parent, key.as_str())))
            });
        }
        Value::Array(items) => items.iter_mut().for_each(|item| drop_empty_under(item, "")),
        _ => {}
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// Makes equal numbers spelled differently (`1` and `1.0`) compare equal, taking the
/// desired spelling, and an integer declared as a string where live holds a number
/// (`port: "80"` vs `80`) is left alone: that is a real difference in the manifests.
pub fn align_numbers(desired: &Value, live: &mut Value) {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => {
            for (key, value) in l.iter_mut() {
                if let Some(wanted) = d.get(key) {
                    align_numbers(wanted, value);
                }
            }
        }
        (Value::Array(d), Value::Array(l)) => {
            for (wanted, value) in d.iter().zip(l.iter_mut()) {
                align_numbers(wanted, value);
            }
        }
        (Value::Number(d), live @ Value::Number(_)) if d.as_f64() == live.as_f64() => {
            *live = Value::Number(d.clone());
        }
        _ => {}
    }
}

/// Folds a Secret's `stringData` into `data` (base64), as the API server does on write, so
/// a Secret declared with `stringData` compares equal to its live form.
pub fn fold_string_data(object: &mut Value) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    let Some(Value::Object(string_data)) = map.remove("stringData") else {
        return;
    };
    let data = map
        .entry("data")
        .or_insert_with(|| Value::Object(Map::new()));
    if !data.is_object() {
        *data = Value::Object(Map::new());
    }
    if let Value::Object(data) = data {
        for (key, value) in string_data {
            let text = match value {
                Value::String(text) => text,
                other => other.to_string(),
            };
            data.insert(key, Value::String(base64(text.as_bytes())));
        }
    }
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// True for a Secret of any group and version: masking keys on the kind alone, so a
/// Secret with an unusual `apiVersion` (`v2`, `example.com/v1`) is masked too.
pub fn is_secret(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("Secret")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn projection_drops_defaulted_fields_but_keeps_extra_list_elements() {
        let live = json!({"spec": {
            "clusterIP": "10.0.0.7", "sessionAffinity": "None",
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}, {"port": 9090}]}});
        let fields = shape(&json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}]}}));
        assert_eq!(
            project(&live, &fields),
            json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 9090}]}})
        );
    }

    #[test]
    fn containers_match_by_name_not_position() {
        let live = json!([{"name": "b", "image": "b:1", "imagePullPolicy": "IfNotPresent"},
                          {"name": "a", "image": "a:1", "terminationMessagePath": "/dev/x"}]);
        let fields = shape(&json!([{"name": "a", "image": "a:2"}, {"name": "b", "image": "b:1"}]));
        assert_eq!(
            project(&live, &fields),
            json!([{"name": "b", "image": "b:1"}, {"name": "a", "image": "a:1"}])
        );
    }

    #[test]
    fn previously_applied_fields_stay_compared() {
        let desired = json!({"spec": {"template": {}}});
        let applied = shape(&json!({"spec": {"replicas": 3}}));
        let fields = union_shape(&shape(&desired), &applied);
        let live = json!({"spec": {"replicas": 3, "revisionHistoryLimit": 10}});
        assert_eq!(project(&live, &fields), json!({"spec": {"replicas": 3}}));
    }

    #[test]
    fn bookkeeping_is_stripped() {
        let mut live = json!({"metadata": {"name": "x", "uid": "u", "resourceVersion": "4",
            "labels": {"app": "x", MANAGED_BY_LABEL: "reconcile"},
            "annotations": {OWNER_ANNOTATION: "demo", "keep": "1"}},
            "spec": {"selector": {"app": "x", TRACK_LABEL: "stable"}}, "status": {}});
        strip_bookkeeping(&mut live);
        assert_eq!(
            live,
            json!({"metadata": {"name": "x", "labels": {"app": "x"}, "annotations": {"keep": "1"}},
                   "spec": {"selector": {"app": "x"}}})
        );
    }

    #[test]
    fn string_data_folds_into_base64_data() {
        let mut secret = json!({"stringData": {"password": "hunter2"}, "data": {"a": "YQ=="}});
        fold_string_data(&mut secret);
        assert_eq!(
            secret,
            json!({"data": {"a": "YQ==", "password": "aHVudGVyMg=="}})
        );
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abcd"), "YWJjZA==");
    }

    #[test]
    fn equal_numbers_align_and_empties_drop() {
        let mut live = json!({"a": 1.0, "b": {}, "c": [], "d": null, "e": 2});
        align_numbers(&json!({"a": 1, "e": 3}), &mut live);
        drop_empty(&mut live);
        assert_eq!(live, json!({"a": 1, "e": 2}));
        // Turning a CRD version's status subresource on is a change.
        let mut version = json!({"name": "v1", "subresources": {"status": {}, "x": {}}});
        drop_empty(&mut version);
        assert_eq!(
            version,
            json!({"name": "v1", "subresources": {"status": {}}})
        );
    }

    #[test]
    fn a_status_that_is_a_field_stays() {
        let mut object = json!({"metadata": {"name": "x", "uid": "u"},
            "status": {"conditions": [{"type": "Ready"}]}});
        strip_bookkeeping_but_status(&mut object);
        assert_eq!(
            object,
            json!({"metadata": {"name": "x"}, "status": {"conditions": [{"type": "Ready"}]}})
        );
    }
}
