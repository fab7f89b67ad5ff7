//! Server-side apply (`application/apply-patch+yaml`) for the API: the request's parameters
//! and the API server's wording around [`crate::fields::apply`], which owns the merge,
//! `managedFields` and conflict rules (409 unless `force`).
//!
//! Limits: writes through PUT/PATCH/POST do not record `Update` managers yet.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::status::ApiError;
use crate::engine::doc;
use crate::fields;
use crate::render::patch::openapi::OpenApi;

/// The request's apply parameters.
#[derive(Debug, Clone)]
pub struct ApplyRequest<'a> {
    /// `fieldManager`.
    pub manager: &'a str,
    /// `force=true`.
    pub force: bool,
    /// Virtual now (for `managedFields[].time`).
    pub now: String,
}

/// The object to store when `applied` is applied over `live` (`None`: the object is new).
pub fn merge(
    live: Option<&Value>,
    applied: &Value,
    req: &ApplyRequest<'_>,
) -> Result<Value, ApiError> {
    if req.manager.is_empty() {
        return Err(ApiError::bad_request(
            "PATCH, application/apply-patch+yaml requests require fieldManager to be set",
        ));
    }
    let api_version = doc::str_at(applied, &["apiVersion"]).to_string();
    let api = OpenApi::builtin();
    let schema = fields::schema_for(&api, &api_version, doc::str_at(applied, &["kind"]));
    match fields::apply(live, applied, req.manager, req.force, &req.now, schema) {
        Ok(done) => Ok(done.object),
        Err(fields::Error::Conflicts(found)) => {
            let pairs: Vec<(String, String)> =
                found.into_iter().map(|c| (c.manager, c.path)).collect();
            Err(conflict(&pairs, &api_version))
        }
        Err(other) => Err(ApiError::new(422, "Invalid", other.to_string())),
    }
}

fn conflict(conflicts: &[(String, String)], api_version: &str) -> ApiError {
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(m, f)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{m}\" using {api_version}"), "field": f}))
        .collect();
    let message = if conflicts.len() == 1 {
        let (m, f) = &conflicts[0];
        format!("Apply failed with 1 conflict: conflict with \"{m}\" using {api_version}: {f}")
    } else {
        let mut by_manager: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (m, f) in conflicts {
            by_manager.entry(m).or_default().push(f);
        }
        let mut text = format!("Apply failed with {} conflicts:", conflicts.len());
        for (m, fields) in by_manager {
            text.push_str(&format!(" conflicts with \"{m}\" using {api_version}:"));
            for f in fields {
                text.push_str(&format!("\n- {f}"));
            }
        }
        text
    };
    ApiError {
        details: Some(json!({"causes": causes})),
        ..ApiError::new(409, "Conflict", message)
    }
}

/// Reads an apply body: YAML or JSON, one object.
pub fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the apply configuration is not UTF-8"))?;
    let docs = crate::yaml::parse_documents(text)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    match docs.as_slice() {
        [one] if one.is_object() => Ok(one.clone()),
        _ => Err(ApiError::bad_request(
            "the apply configuration must be exactly one object",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(manager: &str, force: bool) -> ApplyRequest<'_> {
        ApplyRequest {
            manager,
            force,
            now: "2026-01-01T00:00:00Z".into(),
        }
    }

    fn deploy(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                {"name": "app", "image": image}]}}}})
    }

    #[test]
    fn another_managers_field_conflicts_unless_forced() {
        let first = merge(None, &deploy(2, "app:1"), &req("alice", false)).expect("create");
        let err = merge(
            Some(&first),
            &json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"}, "spec": {"replicas": 3}}),
            &req("bob", false),
        )
        .expect_err("conflict");
        assert_eq!(err.code, 409);
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"alice\" using apps/v1: .spec.replicas"
        );
        let same = merge(
            Some(&first),
            &json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"}, "spec": {"replicas": 2}}),
            &req("bob", false),
        );
        assert!(same.is_ok(), "equal values are shared, not conflicting");
        let forced = merge(
            Some(&first),
            &json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"}, "spec": {"replicas": 3}}),
            &req("bob", true),
        )
        .expect("forced");
        assert_eq!(forced["spec"]["replicas"], 3);
        let managers: Vec<&str> = forced["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["manager"].as_str())
            .collect();
        assert!(managers.contains(&"alice") && managers.contains(&"bob"), "{managers:?}");
    }

    #[test]
    fn fields_dropped_from_the_configuration_are_removed() {
        let mut with_label = deploy(2, "app:1");
        doc::set(
            &mut with_label,
            &["metadata", "labels"],
            json!({"tier": "web"}),
        );
        let live = merge(None, &with_label, &req("alice", false)).expect("create");
        let again = merge(Some(&live), &deploy(2, "app:2"), &req("alice", false)).expect("apply");
        assert!(doc::at(&again, &["metadata", "labels", "tier"]).is_none());
        assert_eq!(
            again["spec"]["template"]["spec"]["containers"][0]["image"],
            "app:2"
        );
    }
}
