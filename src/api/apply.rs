//! Server-side apply (`application/apply-patch+yaml`): the applied configuration merged into
//! the live object, `managedFields` recording which manager applied which fields, and 409
//! conflicts when another manager owns a field the apply would change (unless `force`).
//!
//! The field sets are kept in `fieldsV1` form (`f:<field>`, list items as
//! `k:{"name":…}` when they carry a `name`, other lists whole). Fields a manager applied
//! before and leaves out now are removed when no other manager owns them.
//!
//! Limits: only Apply operations are tracked (writes through PUT/PATCH do not take fields
//! over), lists without a `name` key are owned whole.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::patch;
use super::status::ApiError;
use crate::engine::doc;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Field(String),
    Item(String),
}

type Path = Vec<Step>;

/// The leaf fields an applied configuration sets, with their values.
fn leaves(value: &Value, path: &mut Path, out: &mut BTreeMap<Path, Value>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind") {
                    continue;
                }
                if path.len() == 1
                    && path[0] == Step::Field("metadata".into())
                    && matches!(
                        k.as_str(),
                        "name" | "namespace" | "managedFields" | "resourceVersion"
                    )
                {
                    continue;
                }
                path.push(Step::Field(k.clone()));
                leaves(v, path, out);
                path.pop();
            }
        }
        Value::Array(items)
            if !items.is_empty()
                && items
                    .iter()
                    .all(|i| i.get("name").is_some_and(Value::is_string)) =>
        {
            for item in items {
                let key = doc::str_at(item, &["name"]).to_string();
                path.push(Step::Item(key));
                leaves(item, path, out);
                path.pop();
            }
        }
        other => {
            out.insert(path.clone(), other.clone());
        }
    }
}

fn lookup<'a>(value: &'a Value, path: &[Step]) -> Option<&'a Value> {
    let mut at = value;
    for step in path {
        at = match step {
            Step::Field(f) => at.get(f)?,
            Step::Item(name) => at
                .as_array()?
                .iter()
                .find(|i| doc::str_at(i, &["name"]) == name)?,
        };
    }
    Some(at)
}

fn remove(value: &mut Value, path: &[Step]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut at = value;
    for step in parent_path {
        let next = match step {
            Step::Field(f) => at.get_mut(f),
            Step::Item(name) => at
                .as_array_mut()
                .and_then(|a| a.iter_mut().find(|i| doc::str_at(i, &["name"]) == name)),
        };
        match next {
            Some(n) => at = n,
            None => return,
        }
    }
    match last {
        Step::Field(f) => {
            if let Some(m) = at.as_object_mut() {
                m.remove(f);
            }
        }
        Step::Item(name) => {
            if let Some(a) = at.as_array_mut() {
                a.retain(|i| doc::str_at(i, &["name"]) != name);
            }
        }
    }
}

/// How users read a path in a conflict: `.spec.template.spec.containers[name="app"].image`.
fn display(path: &[Step]) -> String {
    path.iter()
        .map(|s| match s {
            Step::Field(f) => format!(".{f}"),
            Step::Item(n) => format!("[name=\"{n}\"]"),
        })
        .collect()
}

/// `fieldsV1` of a set of leaf paths.
fn fields_v1(paths: &[&Path]) -> Value {
    let mut root = Map::new();
    for path in paths {
        let mut at = &mut root;
        for step in path.iter() {
            let key = match step {
                Step::Field(f) => format!("f:{f}"),
                Step::Item(n) => format!("k:{}", json!({"name": n})),
            };
            let entry = at.entry(key).or_insert_with(|| Value::Object(Map::new()));
            match entry {
                Value::Object(m) => at = m,
                _ => break,
            }
        }
    }
    Value::Object(root)
}

/// Leaf paths of a `fieldsV1` tree.
fn paths_of(fields: &Value, prefix: &mut Path, out: &mut Vec<Path>) {
    let Some(map) = fields.as_object() else {
        return;
    };
    if map.is_empty() && !prefix.is_empty() {
        out.push(prefix.clone());
        return;
    }
    for (key, child) in map {
        let step = if let Some(f) = key.strip_prefix("f:") {
            Step::Field(f.to_string())
        } else if let Some(k) = key.strip_prefix("k:") {
            let parsed: Value = serde_json::from_str(k).unwrap_or(Value::Null);
            Step::Item(doc::str_at(&parsed, &["name"]).to_string())
        } else {
            continue;
        };
        prefix.push(step);
        paths_of(child, prefix, out);
        prefix.pop();
    }
}

/// One manager's entry in `managedFields`.
struct Entry {
    manager: String,
    operation: String,
    paths: Vec<Path>,
    raw: Value,
}

fn entries(live: &Value) -> Vec<Entry> {
    doc::at(live, &["metadata", "managedFields"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| {
            let mut paths = Vec::new();
            paths_of(
                e.get("fieldsV1").unwrap_or(&Value::Null),
                &mut Vec::new(),
                &mut paths,
            );
            Entry {
                manager: doc::str_at(e, &["manager"]).to_string(),
                operation: doc::str_at(e, &["operation"]).to_string(),
                paths,
                raw: e.clone(),
            }
        })
        .collect()
}

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
    let mut wanted = BTreeMap::new();
    leaves(applied, &mut Vec::new(), &mut wanted);
    let api_version = doc::str_at(applied, &["apiVersion"]).to_string();
    let mine = json!({
        "manager": req.manager,
        "operation": "Apply",
        "apiVersion": api_version,
        "time": req.now,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields_v1(&wanted.keys().collect::<Vec<_>>()),
    });
    let Some(live) = live else {
        let mut created = applied.clone();
        doc::set(&mut created, &["metadata", "managedFields"], json!([mine]));
        return Ok(created);
    };
    let others: Vec<Entry> = entries(live)
        .into_iter()
        .filter(|e| !(e.manager == req.manager && e.operation == "Apply"))
        .collect();
    let previous: Vec<Path> = entries(live)
        .into_iter()
        .filter(|e| e.manager == req.manager && e.operation == "Apply")
        .flat_map(|e| e.paths)
        .collect();
    let mut conflicts: Vec<(String, String)> = Vec::new();
    for (path, value) in &wanted {
        if lookup(live, path) == Some(value) {
            continue;
        }
        for other in &others {
            if other.paths.iter().any(|p| p == path) {
                conflicts.push((other.manager.clone(), display(path)));
            }
        }
    }
    if !conflicts.is_empty() && !req.force {
        return Err(conflict(&conflicts, &api_version));
    }
    let mut patch_body = applied.clone();
    if let Some(meta) = patch_body
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
    {
        meta.remove("managedFields");
        meta.remove("resourceVersion");
    }
    let mut merged = patch::strategic_merge(live, &mut patch_body)?;
    // Fields this manager applied before and no longer applies go, unless someone else
    // owns them.
    for path in previous.iter().filter(|p| !wanted.contains_key(*p)) {
        if !others.iter().any(|o| o.paths.contains(path)) {
            remove(&mut merged, path);
        }
    }
    let mut managed: Vec<Value> = Vec::new();
    for other in &others {
        // Forced fields change hands.
        let kept: Vec<&Path> = other
            .paths
            .iter()
            .filter(|p| {
                !(req.force && wanted.contains_key(*p) && lookup(live, p) != wanted.get(*p))
            })
            .collect();
        if kept.is_empty() {
            continue;
        }
        let mut entry = other.raw.clone();
        entry["fieldsV1"] = fields_v1(&kept);
        managed.push(entry);
    }
    managed.push(mine);
    doc::set(
        &mut merged,
        &["metadata", "managedFields"],
        Value::Array(managed),
    );
    Ok(merged)
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
        assert_eq!(managers, ["alice", "bob"]);
        assert!(
            forced["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]
                .get("f:replicas")
                .is_none()
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
}
