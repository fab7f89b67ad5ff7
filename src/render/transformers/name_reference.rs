//! Fixing name references after renames: wherever an object names another one (a ConfigMap in
//! a pod template, a ServiceAccount in a RoleBinding subject, a Service in an Ingress…) and
//! that other object was renamed (prefix, suffix, namespace, hash suffix), write the new name.
//!
//! This mirrors kustomize's `nameReferenceTransformer` and `nameref` filter: candidates are
//! the objects one of whose previous ids has the old name and the referenced kind, that the
//! referrer can see (same namespace, cluster-scoped, or a RoleBinding's subject namespaces);
//! ties are broken by the prefixes and suffixes both objects received.
//!
//! Invariant: only fields of referrers change; names and namespaces of objects never do.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::config::NameBackReference;
use super::fieldspec;
use super::namespace::{effective_namespace, is_cluster_scoped};
use super::prefix_suffix::{name_prefixes, name_suffixes};
use super::{Error, Result, field_error};
use crate::model::{Gvk, ResId, ResMap, Resource};
use crate::render::types::FieldSpec;

/// The name reference transformer: which fields name which kinds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NameReferenceTransformer {
    /// The configuration's `nameReference` rules.
    pub back_references: Vec<NameBackReference>,
}

/// What the transformer needs to know about a possible referral, taken before any change.
#[derive(Debug, Clone)]
struct Candidate {
    id: ResId,
    /// Previous ids as kustomize sees them: current group and version, previous kind.
    previous_ids: Vec<ResId>,
    original_namespace: String,
    prefixes: Vec<String>,
    suffixes: Vec<String>,
}

impl Candidate {
    fn of(resource: &Resource) -> Candidate {
        let id = resource.id();
        let previous_ids: Vec<ResId> = resource
            .previous_ids
            .iter()
            .map(|prev| ResId {
                gvk: Gvk {
                    kind: prev.gvk.kind.clone(),
                    ..id.gvk.clone()
                },
                ..prev.clone()
            })
            .collect();
        let original = previous_ids.first().unwrap_or(&id);
        let original_namespace =
            effective_namespace(&original.gvk, &original.namespace).to_string();
        Candidate {
            previous_ids,
            original_namespace,
            prefixes: name_prefixes(resource),
            suffixes: name_suffixes(resource),
            id,
        }
    }

    fn current_namespace(&self) -> &str {
        effective_namespace(&self.id.gvk, &self.id.namespace)
    }
}

/// One field to update in one referrer: the field spec and the kind it names.
struct Update<'a> {
    spec: &'a FieldSpec,
    target: Gvk,
}

impl NameReferenceTransformer {
    /// Rewrites every name reference whose target was renamed.
    pub fn apply(&self, resmap: &mut ResMap) -> Result<()> {
        let candidates: Vec<Candidate> = resmap.iter().map(Candidate::of).collect();
        for index in 0..resmap.len() {
            let referrer_original = original_gvk(&candidates[index]);
            let updates: Vec<Update> = self
                .back_references
                .iter()
                .flat_map(|nbr| nbr.referrers.iter().map(move |spec| (nbr, spec)))
                .filter(|(_, spec)| {
                    gvk_selected(&referrer_original, &spec.group, &spec.version, &spec.kind)
                })
                .map(|(nbr, spec)| Update {
                    spec,
                    target: nbr.gvk(),
                })
                .collect();
            if updates.is_empty() {
                continue;
            }
            let resource = &mut resmap.as_mut_vec()[index];
            let visible = visible_candidates(resource, &candidates)?;
            let context = Referrer {
                id: candidates[index].id.clone(),
                prefixes: candidates[index].prefixes.clone(),
                suffixes: candidates[index].suffixes.clone(),
                role_ref: role_ref_gvk(resource),
            };
            let mut object = Value::Object(std::mem::take(&mut resource.object));
            let mut result = Ok(());
            for update in &updates {
                result = context.update(&mut object, update, &visible);
                if result.is_err() {
                    break;
                }
            }
            if let Value::Object(map) = object {
                resource.object = map;
            }
            result?;
        }
        Ok(())
    }
}

fn original_gvk(candidate: &Candidate) -> Gvk {
    candidate
        .previous_ids
        .first()
        .map_or_else(|| candidate.id.gvk.clone(), |id| id.gvk.clone())
}

/// kustomize's `Gvk.IsSelected`: every non-empty part of the selector must match.
fn gvk_selected(gvk: &Gvk, group: &str, version: &str, kind: &str) -> bool {
    (group.is_empty() || group == gvk.group)
        && (version.is_empty() || version == gvk.version)
        && (kind.is_empty() || kind == gvk.kind)
}

/// The objects `referrer` may name: all when it is cluster-scoped; else cluster-scoped ones,
/// those in its namespace, and for a RoleBinding those in its ServiceAccount subjects'
/// namespaces.
fn visible_candidates<'a>(
    referrer: &Resource,
    candidates: &'a [Candidate],
) -> Result<Vec<&'a Candidate>> {
    let id = referrer.id();
    if is_cluster_scoped(&id.gvk) {
        return Ok(candidates.iter().collect());
    }
    let mut binding_namespaces = BTreeSet::new();
    if id.gvk.kind == "RoleBinding"
        && let Some(subjects) = referrer.object.get("subjects").and_then(Value::as_array)
    {
        for subject in subjects.iter().filter_map(Value::as_object) {
            if let (Some(namespace), Some(kind)) = (subject.get("namespace"), subject.get("kind"))
                && kind.as_str() == Some("ServiceAccount")
            {
                let namespace = namespace.as_str().ok_or_else(|| Error::NameReference {
                    cause: format!(
                        "Invalid Input: namespace is blank for resource \"{}\"",
                        super::kustomize_id(&id)
                    ),
                })?;
                binding_namespaces.insert(namespace.to_string());
            }
        }
    }
    let referrer_namespace = effective_namespace(&id.gvk, &id.namespace);
    Ok(candidates
        .iter()
        .filter(|c| {
            is_cluster_scoped(&c.id.gvk)
                || c.current_namespace() == referrer_namespace
                || binding_namespaces.contains(&c.id.namespace)
        })
        .collect())
}

/// `roleRef`'s apiGroup and kind, when the object has both.
fn role_ref_gvk(resource: &Resource) -> Option<Gvk> {
    let role_ref = resource.object.get("roleRef")?;
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Some(Gvk {
        group: text(role_ref.get("apiGroup")?),
        version: String::new(),
        kind: text(role_ref.get("kind")?),
    })
}

/// The referrer being updated.
struct Referrer {
    id: ResId,
    prefixes: Vec<String>,
    suffixes: Vec<String>,
    role_ref: Option<Gvk>,
}

impl Referrer {
    fn update(&self, object: &mut Value, update: &Update, visible: &[&Candidate]) -> Result<()> {
        // The spec already selected this referrer by its original kind; walk without creating.
        let spec = FieldSpec {
            path: update.spec.path.clone(),
            ..FieldSpec::default()
        };
        let mut failure = None;
        let walked = fieldspec::apply(object, &self.id.gvk, &spec, None, &mut |field| {
            self.set(field, update, visible).map_err(|e| {
                let text = e.to_string();
                failure = Some(e);
                text
            })
        });
        if let Some(error) = failure {
            return Err(error);
        }
        walked.map_err(field_error(self.id.clone(), &update.spec.path))
    }

    fn set(&self, field: &mut Value, update: &Update, visible: &[&Candidate]) -> Result<()> {
        match field {
            Value::Null => Ok(()),
            Value::Object(map) => self.set_mapping(map, update, visible),
            Value::Array(items) => {
                for item in items {
                    match item {
                        Value::Object(map) => self.set_mapping(map, update, visible)?,
                        Value::Array(_) => {
                            return Err(self.config_error(
                                update,
                                "is expected to be either a string or a map of string",
                            ));
                        }
                        Value::Null => {}
                        scalar => self.set_scalar(scalar, update, visible)?,
                    }
                }
                Ok(())
            }
            scalar => self.set_scalar(scalar, update, visible),
        }
    }

    fn set_scalar(&self, field: &mut Value, update: &Update, visible: &[&Candidate]) -> Result<()> {
        let old = scalar_text(field);
        let Some(referral) = self.select(&old, visible.to_vec(), update, false)? else {
            return Ok(());
        };
        if referral.id.name != old {
            *field = Value::String(referral.id.name.clone());
        }
        Ok(())
    }

    fn set_mapping(
        &self,
        map: &mut Map<String, Value>,
        update: &Update,
        visible: &[&Candidate],
    ) -> Result<()> {
        let Some(name) = map.get("name") else {
            return Err(self.config_error(update, "path config error; no 'name' field in node"));
        };
        let old = scalar_text(name);
        let candidates: Vec<&Candidate> = match map.get("namespace") {
            None => visible.to_vec(),
            Some(namespace) => {
                let namespace = scalar_text(namespace);
                let by_original: Vec<&Candidate> = visible
                    .iter()
                    .copied()
                    .filter(|c| c.original_namespace == namespace && !is_cluster_scoped(&c.id.gvk))
                    .collect();
                if by_original.is_empty() {
                    visible
                        .iter()
                        .copied()
                        .filter(|c| {
                            c.current_namespace() == namespace && !is_cluster_scoped(&c.id.gvk)
                        })
                        .collect()
                } else {
                    by_original
                }
            }
        };
        let Some(referral) = self.select(&old, candidates, update, true)? else {
            return Ok(());
        };
        if referral.id.name == old && referral.id.namespace.is_empty() {
            return Ok(());
        }
        map.insert("name".into(), Value::String(referral.id.name.clone()));
        if !referral.id.namespace.is_empty() {
            map.insert(
                "namespace".into(),
                Value::String(referral.id.namespace.clone()),
            );
        }
        Ok(())
    }

    /// kustomize's `selectReferral`: narrow the candidates step by step until one is left.
    fn select<'a>(
        &self,
        old_name: &str,
        mut candidates: Vec<&'a Candidate>,
        update: &Update,
        compare_namespaces: bool,
    ) -> Result<Option<&'a Candidate>> {
        let target = &update.target;
        candidates.retain(|c| c.previous_ids.iter().any(|id| id.name == old_name));
        candidates.retain(|c| {
            c.previous_ids
                .iter()
                .any(|id| gvk_selected(&id.gvk, &target.group, &target.version, &target.kind))
        });
        if update.spec.path.ends_with("roleRef/name")
            && let Some(role_ref) = &self.role_ref
        {
            candidates.retain(|c| {
                c.previous_ids
                    .iter()
                    .any(|id| gvk_selected(&id.gvk, &role_ref.group, "", &role_ref.kind))
            });
        }
        if !is_cluster_scoped(&self.id.gvk) {
            let own = effective_namespace(&self.id.gvk, &self.id.namespace).to_string();
            candidates.retain(|c| {
                is_cluster_scoped(&c.id.gvk)
                    || c.id.gvk.kind == "ServiceAccount"
                    || c.current_namespace() == own
            });
        }
        if candidates.len() == 1 {
            return Ok(candidates.pop());
        }
        candidates.retain(|c| self.affixes_match(c, true));
        if candidates.len() > 1 {
            candidates.retain(|c| self.affixes_match(c, false));
        }
        match candidates.len() {
            0 => return Ok(None),
            1 => return Ok(candidates.pop()),
            _ => {}
        }
        let first = candidates[0];
        let identical = candidates.iter().all(|c| {
            c.id.name == first.id.name
                && (!compare_namespaces || c.id.namespace == first.id.namespace)
        });
        if identical {
            return Ok(Some(first));
        }
        Err(Error::AmbiguousReference {
            referrer: Box::new(self.id.clone()),
            path: update.spec.path.clone(),
            candidates: candidates
                .iter()
                .map(|c| super::kustomize_id(&c.id))
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// True when both objects received the same trailing prefixes and suffixes; with
    /// `allow_empty`, an object without any prefix (suffix) matches every other.
    fn affixes_match(&self, candidate: &Candidate, allow_empty: bool) -> bool {
        let prefixes_ok = (allow_empty
            && (self.prefixes.is_empty() || candidate.prefixes.is_empty()))
            || same_ending(&self.prefixes, &candidate.prefixes);
        let suffixes_ok = (allow_empty
            && (self.suffixes.is_empty() || candidate.suffixes.is_empty()))
            || same_ending(&self.suffixes, &candidate.suffixes);
        prefixes_ok && suffixes_ok
    }

    fn config_error(&self, update: &Update, cause: &str) -> Error {
        Error::NameReference {
            cause: format!(
                "updating name reference in '{}' field of '{}': {cause}",
                update.spec.path,
                super::kustomize_id(&self.id)
            ),
        }
    }
}

/// True when the shorter list is the tail of the longer one (both empty counts).
fn same_ending(a: &[String], b: &[String]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if short.is_empty() {
        return long.is_empty();
    }
    long.ends_with(short)
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::transformers::TransformerConfig;
    use serde_json::json;

    fn resource(value: Value) -> Resource {
        match value {
            Value::Object(map) => Resource::new(map),
            _ => unreachable!("test objects are maps"),
        }
    }

    fn renamed(value: Value, new_name: &str, new_namespace: Option<&str>) -> Resource {
        let mut r = resource(value);
        r.remember_id();
        r.set_name(new_name);
        if let Some(ns) = new_namespace {
            r.set_namespace(ns);
        }
        r
    }

    fn fix(resources: Vec<Resource>) -> Vec<Value> {
        let mut map: ResMap = resources.into_iter().collect();
        NameReferenceTransformer {
            back_references: TransformerConfig::builtin().name_reference,
        }
        .apply(&mut map)
        .unwrap();
        map.iter().map(Resource::to_value).collect()
    }

    #[test]
    fn config_map_references_in_pod_templates_follow_renames() {
        let cm = renamed(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}}),
            "cfg-abc",
            None,
        );
        let deployment = resource(json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"spec": {
                "containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "cfg"}}],
                                "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]}],
                "volumes": [{"name": "v", "configMap": {"name": "cfg"}}, {"name": "o", "configMap": {"name": "other"}}]
            }}}
        }));
        let out = fix(vec![cm, deployment]);
        let spec = &out[1]["spec"]["template"]["spec"];
        assert_eq!(
            spec["containers"][0]["envFrom"][0]["configMapRef"]["name"],
            "cfg-abc"
        );
        assert_eq!(
            spec["containers"][0]["env"][0]["valueFrom"]["configMapKeyRef"]["name"],
            "cfg-abc"
        );
        assert_eq!(spec["volumes"][0]["configMap"]["name"], "cfg-abc");
        assert_eq!(spec["volumes"][1]["configMap"]["name"], "other");
    }

    #[test]
    fn role_binding_subjects_get_name_and_namespace() {
        let sa = renamed(
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa", "namespace": "a"}}),
            "p-sa",
            Some("b"),
        );
        let binding = resource(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "crb"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "a"}]
        }));
        let out = fix(vec![sa, binding]);
        assert_eq!(
            out[1]["subjects"][0],
            json!({"kind": "ServiceAccount", "name": "p-sa", "namespace": "b"})
        );
    }

    #[test]
    fn role_refs_only_match_the_referenced_kind() {
        let role = renamed(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"}}),
            "p-r",
            None,
        );
        let cluster_role = renamed(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r"}}),
            "q-r",
            None,
        );
        let binding = resource(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "rb"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "r"}
        }));
        let out = fix(vec![role, cluster_role, binding]);
        assert_eq!(out[2]["roleRef"]["name"], "q-r");
    }

    #[test]
    fn other_namespaces_are_invisible() {
        let cm = renamed(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "x"}}),
            "cfg-1",
            None,
        );
        let pod = resource(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "y"},
            "spec": {"volumes": [{"name": "v", "configMap": {"name": "cfg"}}]}
        }));
        let out = fix(vec![cm, pod]);
        assert_eq!(out[1]["spec"]["volumes"][0]["configMap"]["name"], "cfg");
    }

    /// Two copies of one base with different prefixes, joined under a suffix: each pod keeps
    /// naming its own copy of the ConfigMap (`kubectl kustomize` output).
    #[test]
    fn prefixes_tell_copies_of_one_base_apart() {
        use crate::render::transformers::prefix_suffix::{Affix, PrefixSuffixTransformer};
        let config = TransformerConfig::builtin();
        let copy = |prefix: &str| -> Vec<Resource> {
            let mut map: ResMap = [
                resource(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}})),
                resource(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pod"},
                                "spec": {"volumes": [{"name": "v", "configMap": {"name": "cfg"}}]}})),
            ]
            .into_iter()
            .collect();
            PrefixSuffixTransformer {
                affix: Affix::Prefix,
                text: prefix.into(),
                field_specs: config.name_prefix.clone(),
            }
            .apply(&mut map)
            .unwrap();
            map.into_vec()
        };
        let mut top: ResMap = copy("a-").into_iter().chain(copy("b-")).collect();
        PrefixSuffixTransformer {
            affix: Affix::Suffix,
            text: "-top".into(),
            field_specs: config.name_suffix.clone(),
        }
        .apply(&mut top)
        .unwrap();
        NameReferenceTransformer {
            back_references: config.name_reference.clone(),
        }
        .apply(&mut top)
        .unwrap();
        let out: Vec<Value> = top.iter().map(Resource::to_value).collect();
        assert_eq!(
            out[1]["spec"]["volumes"][0]["configMap"]["name"],
            "a-cfg-top"
        );
        assert_eq!(
            out[3]["spec"]["volumes"][0]["configMap"]["name"],
            "b-cfg-top"
        );
    }
}
