//! Discovery: `/version`, `/api`, `/apis`, `/api/v1`, `/apis/{group}/{version}`, built from
//! what the engine serves now ([`Served`]: the built-in kinds and the established CRDs in its
//! store), so a CRD created is discovered at once and one deleted is gone at once.

use serde_json::{Value, json};

use crate::engine::kinds::KindInfo;
use crate::engine::served::Served;

/// The Kubernetes version the server reports (what kubectl v1.32 expects to talk to).
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0-reconcile",
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "",
        "compiler": "reconcile",
        "platform": "linux/amd64",
    })
}

/// Whether the kind has a `scale` subresource.
pub fn has_scale(info: &KindInfo) -> bool {
    info.subresources.contains(&"scale")
}

/// Whether the kind has a `status` subresource.
pub fn has_status(info: &KindInfo) -> bool {
    info.subresources.contains(&"status")
}

/// `/api`.
pub fn core_versions(address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    })
}

/// `/apis`: one group per API group served, built-in groups first (table order).
pub fn groups(served: &Served) -> Value {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    // Every served version, the preferred one first (the kinds list theirs preferred first).
    for k in served.kinds().iter().filter(|k| !k.group.is_empty()) {
        for version in k.versions {
            if !seen.contains(&(k.group, version)) {
                seen.push((k.group, version));
            }
        }
    }
    let mut groups: Vec<Value> = Vec::new();
    for (group, version) in &seen {
        let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
        match groups.iter_mut().find(|g| g["name"] == *group) {
            Some(g) => {
                if let Some(list) = g["versions"].as_array_mut() {
                    list.push(gv);
                }
            }
            None => groups.push(json!({
                "name": group,
                "versions": [gv.clone()],
                "preferredVersion": gv,
            })),
        }
    }
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// The verbs the server implements (of those the kind table lists).
const SERVED_VERBS: &[&str] = crate::engine::kinds::STANDARD_VERBS;

/// `/apis/{group}`; `None` for a group the server lacks.
pub fn group(served: &Served, name: &str) -> Option<Value> {
    let mut found = groups(served)["groups"]
        .as_array()?
        .iter()
        .find(|g| g["name"] == name)
        .cloned()?;
    found["kind"] = Value::from("APIGroup");
    found["apiVersion"] = Value::from("v1");
    Some(found)
}

/// `/api/v1` or `/apis/{group}/{version}`; `None` for a group version the server lacks.
pub fn resources(served: &Served, group: &str, version: &str) -> Option<Value> {
    let members: Vec<&KindInfo> = served
        .kinds()
        .iter()
        .copied()
        .filter(|k| k.group == group && k.versions.contains(&version))
        .collect();
    if members.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for k in &members {
        let verbs: Vec<&str> = served
            .verbs(k)
            .into_iter()
            .filter(|v| SERVED_VERBS.contains(v))
            .collect();
        let mut r = json!({
            "name": k.plural,
            "singularName": k.singular,
            "namespaced": k.namespaced,
            "kind": k.kind,
            "verbs": verbs,
        });
        if !k.short.is_empty() {
            r["shortNames"] = json!(k.short);
        }
        if !k.categories.is_empty() {
            r["categories"] = json!(k.categories);
        }
        resources.push(r);
        if has_status(k) {
            resources.push(json!({
                "name": format!("{}/status", k.plural),
                "singularName": "",
                "namespaced": k.namespaced,
                "kind": k.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if has_scale(k) {
            resources.push(json!({
                "name": format!("{}/scale", k.plural),
                "singularName": "",
                "namespaced": k.namespaced,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_discoverable() {
        let served = Served::builtin();
        for k in served.kinds().iter().copied() {
            let list = resources(&served, k.group, k.version).expect("group version served");
            let names: Vec<&str> = list["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["name"].as_str())
                .collect();
            assert!(names.contains(&k.plural), "{} missing", k.plural);
            assert_eq!(served.kind_for(k.group, k.version, k.plural), Some(k));
        }
        let apis = groups(&served);
        assert!(
            apis["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|g| g["name"] == "apps")
        );
        assert!(resources(&served, "nope.example.com", "v1").is_none());
        assert!(group(&served, "apps").is_some_and(|g| g["kind"] == "APIGroup"));
        assert!(group(&served, "nope.example.com").is_none());
    }
}
