//! PATCH: JSON patch (RFC 6902, the `json-patch` crate), JSON merge patch (RFC 7386) and
//! strategic merge patch (the renderer's merge, with the merge keys of the built-in kinds).
//! Server-side apply lives in [`super::apply`].
//!
//! kubectl's strategic patches carry directives kustomize's merge does not act on
//! (`$setElementOrder/…`, `$retainKeys`, `$deleteFromPrimitiveList/…`); they are resolved
//! here first so they never end up stored as fields.

use serde_json::{Map, Value};

use super::status::ApiError;
use crate::render::patch::openapi::OpenApi;
use crate::render::patch::strategic;

/// The patch types of the `Content-Type` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`.
    Json,
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchType {
    /// The patch type a `Content-Type` names.
    pub fn of(content_type: &str) -> Result<PatchType, ApiError> {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        match media {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(PatchType::Apply),
            other => Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got \"{other}\")"
                ),
            )),
        }
    }
}

/// `object` with the JSON, merge or strategic `patch` applied.
pub fn apply_patch(object: &Value, kind: PatchType, patch: &[u8]) -> Result<Value, ApiError> {
    let invalid_body =
        |e: serde_json::Error| ApiError::bad_request(format!("error decoding patch: {e}"));
    match kind {
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_slice(patch).map_err(invalid_body)?;
            let mut out = object.clone();
            json_patch::patch(&mut out, &ops).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            })?;
            Ok(out)
        }
        PatchType::Merge => {
            let doc: Value = serde_json::from_slice(patch).map_err(invalid_body)?;
            let mut out = object.clone();
            json_patch::merge(&mut out, &doc);
            Ok(out)
        }
        PatchType::Strategic => {
            let mut doc: Value = serde_json::from_slice(patch).map_err(invalid_body)?;
            strategic_merge(object, &mut doc)
        }
        PatchType::Apply => Err(ApiError::bad_request(
            "server-side apply is handled by the apply module",
        )),
    }
}

/// A strategic merge patch applied as the API server does for the built-in kinds.
pub fn strategic_merge(object: &Value, patch: &mut Value) -> Result<Value, ApiError> {
    let mut base = object.clone();
    resolve_directives(patch, &mut base);
    match strategic::merge(&base, patch, &OpenApi::builtin()) {
        Ok(Some(merged)) => Ok(merged),
        Ok(None) => Err(ApiError::bad_request(
            "a strategic merge patch cannot delete the object: use DELETE",
        )),
        Err(e) => Err(ApiError::new(422, "Invalid", e.to_string())),
    }
}

/// Removes the ordering and retention directives from `patch` and performs
/// `$deleteFromPrimitiveList/<field>` on `object` at the same place.
fn resolve_directives(patch: &mut Value, object: &mut Value) {
    let Value::Object(map) = patch else {
        if let Value::Array(items) = patch {
            for item in items {
                resolve_directives(item, &mut Value::Null);
            }
        }
        return;
    };
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            let doomed = map.remove(&key).unwrap_or(Value::Null);
            let doomed = doomed.as_array().cloned().unwrap_or_default();
            if let Some(Value::Array(list)) = object.get_mut(field) {
                list.retain(|v| !doomed.contains(v));
            }
        } else if key.starts_with("$setElementOrder/") || key == "$retainKeys" {
            map.remove(&key);
        } else if let Some(child) = map.get_mut(&key) {
            let mut scratch = Value::Null;
            let target = match object {
                Value::Object(o) => o.entry(key.clone()).or_insert(Value::Null),
                _ => &mut scratch,
            };
            let was_null = target.is_null();
            resolve_directives(child, target);
            // The walk must not leave an empty placeholder where the object had nothing.
            if was_null
                && let Value::Object(o) = object
                && o.get(&key).is_some_and(Value::is_null)
            {
                o.remove(&key);
            }
        }
    }
}

/// An empty JSON object.
pub fn empty() -> Value {
    Value::Object(Map::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "finalizers": ["a", "b"]},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [
                {"name": "app", "image": "app:1"}, {"name": "side", "image": "side:1"}]}}}})
    }

    #[test]
    fn kubectl_set_image_patch_merges_by_container_name() {
        let patch = br#"{"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"app"},{"name":"side"}],"containers":[{"image":"app:2","name":"app"}]}}}}"#;
        let out = apply_patch(&deployment(), PatchType::Strategic, patch).expect("patch");
        let containers = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers.as_array().map(Vec::len), Some(2));
        assert!(
            containers
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["image"] == "app:2")
        );
        assert!(!out.to_string().contains("$setElementOrder"));
    }

    #[test]
    fn delete_from_primitive_list_and_merge_and_json_patch() {
        let patch = br#"{"metadata":{"$deleteFromPrimitiveList/finalizers":["a"]}}"#;
        let out = apply_patch(&deployment(), PatchType::Strategic, patch).expect("patch");
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
        let out = apply_patch(
            &deployment(),
            PatchType::Merge,
            br#"{"spec":{"replicas":3}}"#,
        )
        .expect("merge");
        assert_eq!(out["spec"]["replicas"], 3);
        let out = apply_patch(
            &deployment(),
            PatchType::Json,
            br#"[{"op":"replace","path":"/spec/replicas","value":5}]"#,
        )
        .expect("json patch");
        assert_eq!(out["spec"]["replicas"], 5);
        let bad = apply_patch(
            &deployment(),
            PatchType::Json,
            br#"[{"op":"remove","path":"/nope"}]"#,
        );
        assert_eq!(bad.err().map(|e| e.code), Some(422));
        assert_eq!(
            apply_patch(&deployment(), PatchType::Merge, b"{not json")
                .err()
                .map(|e| e.code),
            Some(400)
        );
    }
}
