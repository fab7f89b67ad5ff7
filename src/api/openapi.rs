//! The OpenAPI v3 documents kubectl reads: per group version, the PATCH operation of each
//! kind declares the `fieldValidation` parameter, so kubectl's default validation
//! (`--validate=strict`) leaves validation to the server; and `components.schemas` holds the
//! kinds' schemas (from the engine's v1.31 definitions, `engine::schema`) with their
//! `x-kubernetes-group-version-kind`, which is what `kubectl explain` reads.
//!
//! Limits: the reduced definitions carry no descriptions, so `explain` shows fields and
//! types only; custom resources have no schema here.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::engine::{kinds, schema};

const REF_PREFIX: &str = "#/components/schemas/";

/// A compact schema of `engine::schema` as OpenAPI v3; references are collected in `refs`.
fn to_openapi(compact: &Value, refs: &mut BTreeSet<String>) -> Value {
    if let Some(name) = compact.get("r").and_then(Value::as_str) {
        refs.insert(name.to_string());
        return json!({"allOf": [{"$ref": format!("{REF_PREFIX}{name}")}]});
    }
    let mut out = Map::new();
    match compact.get("t").and_then(Value::as_str) {
        Some("quantity") => {
            out.insert("type".into(), json!("string"));
        }
        Some("int-or-string") => {
            out.insert("type".into(), json!("string"));
            out.insert("format".into(), json!("int-or-string"));
        }
        Some(t) => {
            out.insert("type".into(), json!(t));
        }
        None => {}
    }
    if let Some(props) = compact.get("p").and_then(Value::as_object) {
        let converted: Map<String, Value> = props
            .iter()
            .map(|(k, v)| (k.clone(), to_openapi(v, refs)))
            .collect();
        out.insert("properties".into(), Value::Object(converted));
    }
    if let Some(items) = compact.get("i") {
        out.insert("items".into(), to_openapi(items, refs));
    }
    if let Some(values) = compact.get("a") {
        out.insert("additionalProperties".into(), to_openapi(values, refs));
    }
    Value::Object(out)
}

/// `components.schemas` for the kinds in `members`: their definitions and every definition
/// they reference, the kinds' own marked with their group, version and kind.
fn schemas(members: &[&kinds::KindInfo]) -> Map<String, Value> {
    let Some((definitions, roots)) = schema::definitions() else {
        return Map::new();
    };
    let mut out = Map::new();
    let mut pending: BTreeSet<String> = BTreeSet::new();
    let mut marks: Vec<(String, Value)> = Vec::new();
    for k in members {
        let key = if k.group.is_empty() {
            format!("{}/{}", k.version, k.kind)
        } else {
            format!("{}/{}/{}", k.group, k.version, k.kind)
        };
        if let Some(root) = roots.get(&key).and_then(Value::as_str) {
            pending.insert(root.to_string());
            marks.push((
                root.to_string(),
                json!([{"group": k.group, "version": k.version, "kind": k.kind}]),
            ));
        }
    }
    while let Some(name) = pending.pop_first() {
        if out.contains_key(&name) {
            continue;
        }
        let Some(compact) = definitions.get(&name) else {
            continue;
        };
        let mut refs = BTreeSet::new();
        let converted = to_openapi(compact, &mut refs);
        out.insert(name, converted);
        pending.extend(refs.into_iter().filter(|r| !out.contains_key(r)));
    }
    for (name, gvk) in marks {
        if let Some(Value::Object(s)) = out.get_mut(&name) {
            s.insert("x-kubernetes-group-version-kind".into(), gvk);
        }
    }
    out
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: where each group version's document is.
pub fn root() -> Value {
    let mut paths = Map::new();
    let all = kinds::all();
    for k in &all {
        let p = gv_path(k.group, k.version);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", all.len())}),
        );
    }
    json!({"paths": paths})
}

/// `/openapi/v3/api/v1`, `/openapi/v3/apis/{group}/{version}`.
pub fn group_version(gv: &str) -> Option<Value> {
    let members: Vec<_> = kinds::all()
        .into_iter()
        .filter(|k| gv_path(k.group, k.version) == gv)
        .collect();
    if members.is_empty() {
        return None;
    }
    let components = schemas(&members);
    let mut paths = Map::new();
    for k in members {
        let collection = if k.namespaced {
            format!("/{gv}/namespaces/{{namespace}}/{}", k.plural)
        } else {
            format!("/{gv}/{}", k.plural)
        };
        let gvk = json!({"group": k.group, "version": k.version, "kind": k.kind});
        let params = json!([
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
            {"name": "force", "in": "query", "schema": {"type": "boolean"}},
        ]);
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({
                "get": {"x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk, "responses": {}},
                "put": {"x-kubernetes-action": "put", "x-kubernetes-group-version-kind": gvk, "parameters": params, "responses": {}},
                "patch": {"x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk, "parameters": params, "responses": {}},
                "delete": {"x-kubernetes-action": "delete", "x-kubernetes-group-version-kind": gvk, "responses": {}},
            }),
        );
        paths.insert(
            collection,
            json!({
                "get": {"x-kubernetes-action": "list", "x-kubernetes-group-version-kind": gvk, "responses": {}},
                "post": {"x-kubernetes-action": "post", "x-kubernetes-group-version-kind": gvk, "parameters": params, "responses": {}},
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0-reconcile"},
        "paths": paths,
        "components": {"schemas": components},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_patch_declares_field_validation() {
        for k in kinds::all() {
            let gv = gv_path(k.group, k.version);
            assert!(root()["paths"].get(&gv).is_some());
            let doc = group_version(&gv).expect("document");
            let found = doc["paths"]
                .as_object()
                .into_iter()
                .flatten()
                .any(|(_, ops)| {
                    ops["patch"]["x-kubernetes-group-version-kind"]["kind"] == k.kind
                        && ops["patch"]["parameters"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|p| p["name"] == "fieldValidation")
                });
            assert!(found, "{}", k.kind);
        }
        assert!(group_version("apis/nope/v1").is_none());
    }

    #[test]
    fn kinds_have_schemas_whose_references_resolve() {
        let doc = group_version("apis/apps/v1").expect("apps/v1");
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let deployment = &schemas["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "version": "v1", "kind": "Deployment"}])
        );
        assert_eq!(
            deployment["properties"]["spec"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"
        );
        let text = doc.to_string();
        for (at, _) in text.match_indices(REF_PREFIX) {
            let name: String = text[at + REF_PREFIX.len()..]
                .chars()
                .take_while(|c| *c != '"')
                .collect();
            assert!(schemas.contains_key(&name), "dangling reference {name}");
        }
        let core = group_version("api/v1").expect("v1");
        assert!(core["components"]["schemas"]["io.k8s.api.core.v1.Pod"].is_object());
    }
}
