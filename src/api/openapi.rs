//! The OpenAPI v3 documents kubectl reads before `apply`: per group version, the PATCH
//! operation of each kind declares the `fieldValidation` parameter, so kubectl's default
//! validation (`--validate=strict`) leaves validation to the server instead of requiring a
//! full client-side schema.
//!
//! Limits: no schemas (`kubectl explain` has nothing to show).

use serde_json::{Map, Value, json};

use crate::engine::kinds;

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
        "components": {"schemas": {}},
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
}
