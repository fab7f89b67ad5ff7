//! Whether a kind's `status` is part of what a tree declares, as the API server decides it:
//! kinds with the status subresource (every built-in kind with a status, CRDs declaring
//! `subresources.status` for that version) ignore `status` on the main resource, so a
//! declared one is neither compared nor applied; for a custom resource whose CRD version has
//! no status subresource, `status` is an ordinary field — diffed, applied and owned like
//! `spec`.
//!
//! The CRDs consulted are the tree's own (they are applied first, replacing the live ones)
//! and, for kinds the tree does not define, the cluster's, listed once. Plans, `reconcile
//! diff` between revisions (each side's tree, no cluster) and the watcher's drift
//! fingerprints all ask [`StatusRules`], then normalize with
//! [`strip_bookkeeping_as`](crate::diff::normalize::strip_bookkeeping_as).

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::cluster::{self, Cluster};
use crate::model::{Gvk, ResId};
use crate::render::patch::openapi::OpenApi;

const CRD_KIND: &str = "CustomResourceDefinition";
const CRD_GROUP: &str = "apiextensions.k8s.io";

/// `(group, version, kind)` → whether that CRD version has the status subresource.
#[derive(Debug, Default)]
pub struct StatusRules {
    subresource: HashMap<(String, String, String), bool>,
}

impl StatusRules {
    /// The rules for `objects` (a tree's objects) on `cluster`: the live CRDs are listed only
    /// when an object is of a custom kind the tree's CRDs do not define (a failed list names
    /// that object).
    pub fn of<V: Borrow<Value>>(
        objects: &[V],
        cluster: &dyn Cluster,
    ) -> Result<StatusRules, (ResId, cluster::Error)> {
        let mut rules = StatusRules::default();
        let declared: Vec<&Value> = objects
            .iter()
            .map(Borrow::borrow)
            .filter(|o| is_crd(o))
            .collect();
        let defined: HashSet<(String, String)> = declared.iter().flat_map(|c| kinds(c)).collect();
        let api = OpenApi::builtin();
        let needs_live = objects.iter().map(|o| ResId::of(o.borrow())).find(|id| {
            !id.gvk.group.is_empty()
                && !defined.contains(&(id.gvk.group.clone(), id.gvk.kind.clone()))
                && api.for_type(&id.gvk.api_version(), &id.gvk.kind).is_none()
        });
        if let Some(id) = needs_live {
            let crd = Gvk {
                group: CRD_GROUP.into(),
                version: "v1".into(),
                kind: CRD_KIND.into(),
            };
            for live in cluster.list(&crd, None, None).map_err(|e| (id, e))? {
                rules.add(&live);
            }
        }
        // The tree's CRDs are applied before their resources: theirs is the rule.
        for crd in declared {
            rules.add(crd);
        }
        Ok(rules)
    }

    /// The rules of a tree alone (no cluster): its own CRDs decide; a custom kind it does not
    /// define keeps the default (status is the subresource's).
    pub fn of_tree<V: Borrow<Value>>(objects: &[V]) -> StatusRules {
        let mut rules = StatusRules::default();
        for crd in objects.iter().map(Borrow::borrow).filter(|o| is_crd(o)) {
            rules.add(crd);
        }
        rules
    }

    /// Whether `object`'s `status` is an ordinary field ([`StatusRules::status_is_field`]
    /// of its group, version and kind).
    pub fn object_status_is_field(&self, object: &Value) -> bool {
        !self.subresource.is_empty() && self.status_is_field(&ResId::of(object).gvk)
    }

    fn add(&mut self, crd: &Value) {
        let text = |pointer: &str| {
            crd.pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let (group, kind) = (text("/spec/group"), text("/spec/names/kind"));
        for version in crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = version
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let has_status = version.pointer("/subresources/status").is_some();
            self.subresource
                .insert((group.clone(), name.to_string(), kind.clone()), has_status);
        }
    }

    /// True when `gvk`'s `status` is an ordinary field: a custom kind whose CRD version has
    /// no status subresource. Kinds no known CRD defines keep the API server's default for
    /// built-in kinds (status is the subresource's).
    pub fn status_is_field(&self, gvk: &Gvk) -> bool {
        // Asked once per object: no key is built when no CRD is known.
        if self.subresource.is_empty() {
            return false;
        }
        self.subresource
            .get(&(gvk.group.clone(), gvk.version.clone(), gvk.kind.clone()))
            .is_some_and(|has_status| !has_status)
    }
}

fn is_crd(object: &Value) -> bool {
    let id = ResId::of(object);
    id.gvk.kind == CRD_KIND && id.gvk.group == CRD_GROUP
}

fn kinds(crd: &Value) -> Option<(String, String)> {
    let group = crd.pointer("/spec/group")?.as_str()?;
    let kind = crd.pointer("/spec/names/kind")?.as_str()?;
    Some((group.to_string(), kind.to_string()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plan::memory::MemoryCluster;

    fn crd(group: &str, kind: &str, versions: Value) -> Value {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{}s.{group}", kind.to_lowercase())},
            "spec": {"group": group, "names": {"kind": kind, "plural": format!("{}s", kind.to_lowercase())},
                "scope": "Namespaced", "versions": versions}})
    }

    fn gvk(api_version: &str, kind: &str) -> Gvk {
        ResId::of(&json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}})).gvk
    }

    #[test]
    fn status_is_a_field_only_for_crd_versions_without_the_subresource() {
        let tree = vec![
            crd(
                "a.example.com",
                "Widget",
                json!([{"name": "v1", "served": true, "storage": true},
                    {"name": "v2", "served": true, "storage": false, "subresources": {"status": {}}}]),
            ),
            json!({"apiVersion": "a.example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}),
        ];
        let rules = StatusRules::of(&tree, &MemoryCluster::default()).expect("rules");
        assert!(rules.status_is_field(&gvk("a.example.com/v1", "Widget")));
        assert!(!rules.status_is_field(&gvk("a.example.com/v2", "Widget")));
        assert!(!rules.status_is_field(&gvk("apps/v1", "Deployment")));
        assert!(!rules.status_is_field(&gvk("b.example.com/v1", "Gadget")));
        let alone = StatusRules::of_tree(&tree);
        assert!(alone.object_status_is_field(&tree[1]));
        assert!(!alone.object_status_is_field(&tree[2]));
        assert!(!StatusRules::of_tree(&tree[1..]).object_status_is_field(&tree[1]));
    }
}
