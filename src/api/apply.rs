//! The API's side of field ownership: server-side apply (`application/apply-patch+yaml`) and
//! the `Update` entries of every other write, both through [`crate::fields`] — the same pure
//! implementation the reconciler applies with — plus the API server's wording for conflicts
//! (409 with one `FieldManagerConflict` cause per field).
//!
//! Lists are typed by the strategic-merge schema the renderer embeds (associative by merge
//! keys, sets of scalars, otherwise atomic), as structured-merge-diff types them.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::status::ApiError;
use crate::fields::{self, Conflict};
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
    /// `status` is an ordinary field (a CRD without the status subresource).
    pub status_is_field: bool,
}

fn type_of(object: &Value) -> (&str, &str) {
    let text = |key: &str| object.get(key).and_then(Value::as_str).unwrap_or_default();
    (text("apiVersion"), text("kind"))
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
    let api = OpenApi::builtin();
    let (api_version, kind) = type_of(applied);
    let schema = fields::schema_for(&api, api_version, kind).with_status_field(req.status_is_field);
    let mut body = applied.clone();
    if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        meta.remove("resourceVersion");
    }
    match fields::apply(live, &body, req.manager, req.force, &req.now, schema) {
        Ok(done) => Ok(done.object),
        Err(fields::Error::Conflicts(conflicts)) => Err(conflict(&conflicts, live)),
        Err(err @ fields::Error::InvalidFieldsV1(_)) => Err(invalid_managed_fields(&err)),
    }
}

/// Records a write that is not an apply (POST, PUT, JSON/merge/strategic PATCH) by `manager`
/// in `new`'s `managedFields`, as an `Update` entry; `old` is the object before the write,
/// `subresource` what it was written through (`status`, `scale`; empty: the object);
/// `status_is_field`: `status` is an ordinary field of the object (a CRD without the status
/// subresource).
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: &str,
    status_is_field: bool,
    now: &str,
) -> Result<(), ApiError> {
    let api = OpenApi::builtin();
    let (api_version, kind) = type_of(new);
    let (api_version, kind) = (api_version.to_string(), kind.to_string());
    let schema = fields::schema_for(&api, &api_version, &kind).with_status_field(status_is_field);
    fields::update(old, new, manager, subresource, now, schema)
        .map_err(|e| invalid_managed_fields(&e))
}

/// The manager of a write without `fieldManager`: the user agent's program name, as the API
/// server derives it (`kubectl-create/v1.32.4 (linux/amd64) …` → `kubectl-create`).
pub fn manager_of(field_manager: Option<&str>, user_agent: &str) -> String {
    if let Some(m) = field_manager.filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    let program = user_agent.split('/').next().unwrap_or_default().trim();
    if program.is_empty() {
        "unknown".into()
    } else {
        program.chars().take(128).collect()
    }
}

fn invalid_managed_fields(err: &fields::Error) -> ApiError {
    ApiError::new(
        422,
        "Invalid",
        format!("metadata.managedFields: Invalid value: {err}"),
    )
}

/// The API server's message: `Apply failed with 1 conflict: conflict with "alice" using
/// apps/v1: .spec.replicas`, grouped by manager when there are several.
fn conflict(conflicts: &[Conflict], live: Option<&Value>) -> ApiError {
    let versions: BTreeMap<String, String> = live
        .and_then(|l| fields::managed_fields(l).ok())
        .into_iter()
        .flatten()
        .map(|e| (e.manager, e.api_version))
        .collect();
    let using = |m: &str| versions.get(m).map(String::as_str).unwrap_or("v1");
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| {
            json!({"reason": "FieldManagerConflict",
                   "message": format!("conflict with \"{}\" using {}", c.manager, using(&c.manager)),
                   "field": c.path})
        })
        .collect();
    let message = if let [one] = conflicts {
        format!(
            "Apply failed with 1 conflict: conflict with \"{}\" using {}: {}",
            one.manager,
            using(&one.manager),
            one.path
        )
    } else {
        let mut by_manager: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for c in conflicts {
            by_manager.entry(&c.manager).or_default().push(&c.path);
        }
        let mut text = format!("Apply failed with {} conflicts:", conflicts.len());
        for (m, paths) in by_manager {
            text.push_str(&format!(" conflicts with \"{m}\" using {}:", using(m)));
            for p in paths {
                text.push_str(&format!("\n- {p}"));
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
    use crate::engine::doc;

    fn req(manager: &str, force: bool) -> ApplyRequest<'_> {
        ApplyRequest {
            manager,
            force,
            now: "2026-01-01T00:00:00Z".into(),
            status_is_field: false,
        }
    }

    fn deploy(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                {"name": "app", "image": image}]}}}})
    }

    fn replicas(n: i64) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web"}, "spec": {"replicas": n}})
    }

    #[test]
    fn another_managers_field_conflicts_unless_forced() {
        let first = merge(None, &deploy(2, "app:1"), &req("alice", false)).expect("create");
        assert_eq!(first["metadata"]["name"], "web");
        let err = merge(Some(&first), &replicas(3), &req("bob", false)).expect_err("conflict");
        assert_eq!(err.code, 409);
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"alice\" using apps/v1: .spec.replicas"
        );
        let same = merge(Some(&first), &replicas(2), &req("bob", false));
        assert!(same.is_ok(), "equal values are shared, not conflicting");
        let forced = merge(Some(&first), &replicas(3), &req("bob", true)).expect("forced");
        assert_eq!(forced["spec"]["replicas"], 3);
        let managers: Vec<&str> = forced["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["manager"].as_str())
            .collect();
        assert_eq!(managers, ["alice", "bob"]);
        assert!(
            forced["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]
                .get("f:replicas")
                .is_none()
        );
    }

    #[test]
    fn an_updates_fields_conflict_with_a_later_apply() {
        let created = merge(None, &deploy(2, "app:1"), &req("alice", false)).expect("create");
        // `kubectl scale` (an Update by another manager) takes .spec.replicas over.
        let mut scaled = created.clone();
        scaled["spec"]["replicas"] = json!(5);
        record_update(
            Some(&created),
            &mut scaled,
            "kubectl-scale",
            "scale",
            false,
            "t",
        )
        .expect("update");
        let entries = fields::managed_fields(&scaled).expect("entries");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].manager, "kubectl-scale");
        assert_eq!(entries[1].operation, fields::Operation::Update);
        assert!(!entries[0].fields.contains(&[
            fields::PathElement::Field("spec".into()),
            fields::PathElement::Field("replicas".into())
        ]));
        let err =
            merge(Some(&scaled), &deploy(2, "app:1"), &req("alice", false)).expect_err("conflict");
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"kubectl-scale\" using apps/v1: .spec.replicas"
        );
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
        assert_eq!(
            again["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
                ["k:{\"name\":\"app\"}"]["f:image"],
            json!({})
        );
    }

    #[test]
    fn the_manager_comes_from_the_user_agent_when_not_given() {
        assert_eq!(manager_of(Some("helm"), "kubectl/v1.32"), "helm");
        assert_eq!(
            manager_of(None, "kubectl-create/v1.32.4 (linux/amd64) kubernetes/abc"),
            "kubectl-create"
        );
        assert_eq!(manager_of(Some(""), ""), "unknown");
    }
}
