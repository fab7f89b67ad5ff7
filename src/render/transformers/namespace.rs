//! `namespace:`: sets `metadata.namespace` on every namespaced object, plus the extra
//! namespace fields of the configuration (APIService and CRD webhook services, the name of a
//! `Namespace` object) and the namespace of RoleBinding subjects named `default`.
//!
//! Invariant: cluster-scoped kinds (kustomize's built-in list, by exact apiVersion and kind)
//! never get `metadata.namespace`; kinds not on that list are treated as namespaced.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde_json::Value;

use super::fieldspec::{self, CreateKind};
use super::{Error, Result, field_error};
use crate::model::{Gvk, ResId, ResMap, Resource};
use crate::render::types::FieldSpec;

/// Which RoleBinding / ClusterRoleBinding subjects get the new namespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SubjectMode {
    /// Only subjects named `default` (kustomize's default).
    #[default]
    DefaultOnly,
    /// Every ServiceAccount subject.
    AllServiceAccounts,
    /// No subject.
    None,
}

impl SubjectMode {
    /// Parses the plugin's `setRoleBindingSubjects` value (empty means `defaultOnly`).
    pub fn parse(text: &str) -> Result<SubjectMode> {
        match text {
            "" | "defaultOnly" => Ok(SubjectMode::DefaultOnly),
            "allServiceAccounts" => Ok(SubjectMode::AllServiceAccounts),
            "none" => Ok(SubjectMode::None),
            other => Err(Error::Config {
                transformer: "NamespaceTransformer".into(),
                cause: format!(
                    "invalid value {other:?} for setRoleBindingSubjects: must be one of \"defaultOnly\", \"none\" or \"allServiceAccounts\""
                ),
            }),
        }
    }
}

/// The namespace transformer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NamespaceTransformer {
    /// The namespace to set; empty does nothing.
    pub namespace: String,
    /// Extra namespace fields (the configuration's `namespace` specs).
    pub field_specs: Vec<FieldSpec>,
    /// Only fill namespaces that are unset or empty.
    pub unset_only: bool,
    /// Which binding subjects to update.
    pub role_binding_subjects: SubjectMode,
}

/// Kinds that are certainly cluster-scoped, by `apiVersion` and `kind` (kustomize's built-in
/// Kubernetes 1.21 schema).
const CLUSTER_SCOPED: &[(&str, &str)] = &[
    (
        "admissionregistration.k8s.io/v1",
        "MutatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io/v1",
        "ValidatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io/v1beta1",
        "MutatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io/v1beta1",
        "ValidatingWebhookConfiguration",
    ),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("apiextensions.k8s.io/v1beta1", "CustomResourceDefinition"),
    ("apiregistration.k8s.io/v1", "APIService"),
    ("apiregistration.k8s.io/v1beta1", "APIService"),
    ("certificates.k8s.io/v1", "CertificateSigningRequest"),
    ("certificates.k8s.io/v1beta1", "CertificateSigningRequest"),
    ("flowcontrol.apiserver.k8s.io/v1beta1", "FlowSchema"),
    (
        "flowcontrol.apiserver.k8s.io/v1beta1",
        "PriorityLevelConfiguration",
    ),
    ("networking.k8s.io/v1", "IngressClass"),
    ("networking.k8s.io/v1beta1", "IngressClass"),
    ("node.k8s.io/v1", "RuntimeClass"),
    ("node.k8s.io/v1beta1", "RuntimeClass"),
    ("policy/v1beta1", "PodSecurityPolicy"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io/v1beta1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1beta1", "ClusterRoleBinding"),
    ("scheduling.k8s.io/v1", "PriorityClass"),
    ("scheduling.k8s.io/v1beta1", "PriorityClass"),
    ("storage.k8s.io/v1", "CSIDriver"),
    ("storage.k8s.io/v1", "CSINode"),
    ("storage.k8s.io/v1", "StorageClass"),
    ("storage.k8s.io/v1", "VolumeAttachment"),
    ("storage.k8s.io/v1beta1", "CSIDriver"),
    ("storage.k8s.io/v1beta1", "CSINode"),
    ("storage.k8s.io/v1beta1", "StorageClass"),
    ("storage.k8s.io/v1beta1", "VolumeAttachment"),
    ("v1", "ComponentStatus"),
    ("v1", "Namespace"),
    ("v1", "Node"),
    ("v1", "NodeProxyOptions"),
    ("v1", "PersistentVolume"),
];

/// True when kustomize knows the kind to be cluster-scoped.
pub fn is_cluster_scoped(gvk: &Gvk) -> bool {
    // Asked for every pair of objects by name references: looked up by kind, no allocation.
    static BY_KIND: LazyLock<HashMap<&str, Vec<&str>>> = LazyLock::new(|| {
        let mut by_kind: HashMap<&str, Vec<&str>> = HashMap::new();
        for (api_version, kind) in CLUSTER_SCOPED {
            by_kind.entry(kind).or_default().push(api_version);
        }
        by_kind
    });
    BY_KIND
        .get(gvk.kind.as_str())
        .is_some_and(|versions| versions.iter().any(|v| is_api_version(gvk, v)))
}

/// True when `gvk`'s `apiVersion` (`group/version`, or `version` for the core group) is
/// `api_version`.
fn is_api_version(gvk: &Gvk, api_version: &str) -> bool {
    if gvk.group.is_empty() {
        return api_version == gvk.version;
    }
    api_version
        .strip_prefix(gvk.group.as_str())
        .and_then(|rest| rest.strip_prefix('/'))
        == Some(gvk.version.as_str())
}

/// The namespace kustomize compares with: `default` for an unset namespace, nothing for a
/// cluster-scoped kind.
pub fn effective_namespace<'a>(gvk: &Gvk, namespace: &'a str) -> &'a str {
    if is_cluster_scoped(gvk) {
        "~X"
    } else if namespace.is_empty() {
        "default"
    } else {
        namespace
    }
}

fn id_conflict(id: ResId) -> Error {
    Error::IdConflict {
        transformer: "namespace",
        id: Box::new(id),
    }
}

fn is_role_binding(kind: &str) -> bool {
    kind == "RoleBinding" || kind == "ClusterRoleBinding"
}

impl NamespaceTransformer {
    /// Sets the namespace on every resource; fails when two resources end up with one id.
    pub fn apply(&self, resmap: &mut ResMap) -> Result<()> {
        if self.namespace.is_empty() {
            return Ok(());
        }
        // kustomize checks, after each object, that its new id is held by it alone among the
        // current ids of all objects (the ones not yet moved keep their old id). A count of
        // the current ids, kept up to date as objects move, answers that without a scan.
        let mut current: HashMap<ResId, usize> = HashMap::with_capacity(resmap.len());
        for resource in resmap.iter() {
            *current.entry(resource.id()).or_default() += 1;
        }
        for resource in resmap.as_mut_vec().iter_mut() {
            if resource.object.is_empty() {
                continue;
            }
            let before = resource.id();
            resource.remember_id();
            self.apply_to(resource)?;
            let id = resource.id();
            if id == before {
                if current.get(&id).copied().unwrap_or_default() != 1 {
                    return Err(id_conflict(id));
                }
                continue;
            }
            if let Some(count) = current.get_mut(&before) {
                *count = count.saturating_sub(1);
            }
            let count = current.entry(id.clone()).or_default();
            *count += 1;
            if *count != 1 {
                return Err(id_conflict(id));
            }
        }
        Ok(())
    }

    fn apply_to(&self, resource: &mut Resource) -> Result<()> {
        let gvk = resource.gvk();
        let id = resource.id();
        let api_version = gvk.api_version();
        let role_binding = is_role_binding(&gvk.kind);
        let specs: Vec<&FieldSpec> = self
            .field_specs
            .iter()
            .filter(|fs| fs.path != "metadata/namespace")
            .filter(|fs| api_version == "v1" || fs.path != "metadata/name")
            .filter(|fs| {
                !(role_binding && is_role_binding(&fs.kind) && fs.path == "subjects/namespace")
            })
            .collect();
        let mut object = Value::Object(std::mem::take(&mut resource.object));
        let result = self.apply_specs(&mut object, &gvk, &specs, role_binding);
        if let Value::Object(map) = object {
            resource.object = map;
        }
        result.map_err(|(path, cause)| field_error(id, &path)(cause))
    }

    fn apply_specs(
        &self,
        object: &mut Value,
        gvk: &Gvk,
        specs: &[&FieldSpec],
        role_binding: bool,
    ) -> std::result::Result<(), (String, fieldspec::WalkError)> {
        let mut set = |v: &mut Value| self.set(v);
        if !is_cluster_scoped(gvk) {
            let meta = FieldSpec {
                path: "metadata/namespace".into(),
                create_if_not_present: true,
                ..FieldSpec::default()
            };
            fieldspec::apply(object, gvk, &meta, Some(CreateKind::Scalar), &mut set)
                .map_err(|e| (meta.path.clone(), e))?;
        }
        if role_binding {
            self.set_subjects(object)
                .map_err(|e| ("subjects".to_string(), e))?;
        }
        for spec in specs {
            fieldspec::apply(object, gvk, spec, Some(CreateKind::Scalar), &mut set)
                .map_err(|e| (spec.path.clone(), e))?;
        }
        Ok(())
    }

    fn set_subjects(&self, object: &mut Value) -> std::result::Result<(), fieldspec::WalkError> {
        let Some(subjects) = object.get_mut("subjects").and_then(Value::as_array_mut) else {
            return Ok(());
        };
        for subject in subjects.iter_mut().filter_map(Value::as_object_mut) {
            let wanted = match self.role_binding_subjects {
                SubjectMode::None => false,
                SubjectMode::DefaultOnly => {
                    subject.get("name").and_then(Value::as_str) == Some("default")
                }
                SubjectMode::AllServiceAccounts => {
                    subject.get("kind").and_then(Value::as_str) == Some("ServiceAccount")
                }
            };
            if wanted {
                let field = subject
                    .entry("namespace")
                    .or_insert_with(|| Value::String(String::new()));
                self.set(field).map_err(fieldspec::WalkError::Setter)?;
            }
        }
        Ok(())
    }

    fn set(&self, field: &mut Value) -> std::result::Result<(), String> {
        match field {
            Value::Object(_) | Value::Array(_) => {
                Err("namespace field specs must target scalar nodes".to_string())
            }
            Value::String(existing) if self.unset_only && !existing.is_empty() => Ok(()),
            Value::Bool(_) | Value::Number(_) if self.unset_only => Ok(()),
            _ => {
                *field = Value::String(self.namespace.clone());
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::transformers::TransformerConfig;
    use serde_json::json;

    #[test]
    fn scope_is_decided_by_exact_api_version_and_kind() {
        let gvk = |api_version: &str, kind: &str| Gvk::from_api_version(api_version, kind);
        for (api_version, kind) in CLUSTER_SCOPED {
            assert!(
                is_cluster_scoped(&gvk(api_version, kind)),
                "{api_version} {kind}"
            );
        }
        assert!(!is_cluster_scoped(&gvk("v1", "ConfigMap")));
        assert!(!is_cluster_scoped(&gvk(
            "rbac.authorization.k8s.io/v2",
            "ClusterRole"
        )));
        assert!(!is_cluster_scoped(&gvk(
            "rbac.authorization.k8s.io",
            "ClusterRole"
        )));
        assert!(!is_cluster_scoped(&gvk("example.com/v1", "Namespace")));
        assert!(!is_cluster_scoped(&Gvk {
            group: "rbac.authorization.k8s.io/v1".into(),
            version: String::new(),
            kind: "ClusterRole".into(),
        }));
    }

    fn resmap(objects: Vec<Value>) -> ResMap {
        objects
            .into_iter()
            .map(|v| match v {
                Value::Object(map) => Resource::new(map),
                _ => unreachable!("test objects are maps"),
            })
            .collect()
    }

    fn objects(resmap: &ResMap) -> Vec<Value> {
        resmap.iter().map(Resource::to_value).collect()
    }

    fn transformer(namespace: &str) -> NamespaceTransformer {
        NamespaceTransformer {
            namespace: namespace.into(),
            field_specs: TransformerConfig::builtin().namespace,
            ..NamespaceTransformer::default()
        }
    }

    #[test]
    fn namespaced_objects_get_the_namespace_cluster_scoped_do_not() {
        let mut map = resmap(vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "old"}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r"}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "old"}}),
            json!({"apiVersion": "example.com/v1", "kind": "Namespace", "metadata": {"name": "x"}}),
        ]);
        transformer("new").apply(&mut map).unwrap();
        assert_eq!(
            objects(&map),
            vec![
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "new"}}),
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r"}}),
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "new"}}),
                json!({"apiVersion": "example.com/v1", "kind": "Namespace", "metadata": {"name": "x", "namespace": "new"}}),
            ]
        );
        assert_eq!(map.as_slice()[0].previous_ids[0].namespace, "old");
    }

    #[test]
    fn only_default_subjects_move_by_default() {
        let binding = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "b"},
            "subjects": [
                {"kind": "ServiceAccount", "name": "default", "namespace": "a"},
                {"kind": "ServiceAccount", "name": "other", "namespace": "a"},
            ]
        });
        let mut map = resmap(vec![binding.clone()]);
        transformer("new").apply(&mut map).unwrap();
        let subjects = &objects(&map)[0]["subjects"];
        assert_eq!(subjects[0]["namespace"], "new");
        assert_eq!(subjects[1]["namespace"], "a");

        let mut map = resmap(vec![binding]);
        NamespaceTransformer {
            role_binding_subjects: SubjectMode::AllServiceAccounts,
            ..transformer("new")
        }
        .apply(&mut map)
        .unwrap();
        assert_eq!(objects(&map)[0]["subjects"][1]["namespace"], "new");
    }

    #[test]
    fn unset_only_keeps_existing_namespaces() {
        let mut map = resmap(vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "keep"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d"}}),
        ]);
        NamespaceTransformer {
            unset_only: true,
            ..transformer("new")
        }
        .apply(&mut map)
        .unwrap();
        assert_eq!(objects(&map)[0]["metadata"]["namespace"], "keep");
        assert_eq!(objects(&map)[1]["metadata"]["namespace"], "new");
    }

    #[test]
    fn collisions_are_reported() {
        let mut map = resmap(vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "a"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "b"}}),
        ]);
        assert!(matches!(
            transformer("x").apply(&mut map),
            Err(Error::IdConflict { .. })
        ));
    }

    #[test]
    fn a_move_onto_an_object_not_yet_moved_is_a_collision() {
        // The first object moves onto the id the second already holds: kustomize counts the
        // current ids of all objects after each move, so this fails at the first one.
        let mut map = resmap(vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "x"}}),
        ]);
        let err = transformer("x").apply(&mut map);
        assert!(matches!(err, Err(Error::IdConflict { .. })), "{err:?}");
    }

    #[test]
    fn many_objects_keep_their_order_and_get_the_namespace() {
        let mut map = resmap(
            (0..2000)
                .map(|i| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("c{i}")}}))
                .collect(),
        );
        transformer("x").apply(&mut map).unwrap();
        let objects = objects(&map);
        assert_eq!(objects.len(), 2000);
        assert!(objects.iter().all(|o| o["metadata"]["namespace"] == "x"));
        assert_eq!(objects[1999]["metadata"]["name"], "c1999");
    }
}
