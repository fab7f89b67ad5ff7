//! Which fields each builtin transformer touches: kustomize's builtin field specs plus the
//! user's `configurations:` files, merged the way kustomize merges them.
//!
//! Invariant: merging never drops a spec; a spec equal to an existing one (same path, same or
//! narrower kind/group/version) is skipped, and one differing only in `create` is an error.

use serde::Deserialize;

use crate::model::Gvk;
use crate::render::types::FieldSpec;

/// A kind of object and the fields of other objects that hold its name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameBackReference {
    /// Group of the referenced kind (empty: any).
    #[serde(default)]
    pub group: String,
    /// Version of the referenced kind (empty: any).
    #[serde(default)]
    pub version: String,
    /// The referenced kind.
    #[serde(default)]
    pub kind: String,
    /// Fields (in other objects) holding the name of an object of this kind.
    #[serde(default, rename = "fieldSpecs")]
    pub referrers: Vec<FieldSpec>,
}

impl NameBackReference {
    /// The referenced kind as a Gvk (empty parts mean "any").
    pub fn gvk(&self) -> Gvk {
        Gvk {
            group: self.group.clone(),
            version: self.version.clone(),
            kind: self.kind.clone(),
        }
    }
}

/// Field specs for every builtin transformer, as kustomize's `TransformerConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransformerConfig {
    /// Where `namePrefix` goes.
    #[serde(default)]
    pub name_prefix: Vec<FieldSpec>,
    /// Where `nameSuffix` goes.
    #[serde(default)]
    pub name_suffix: Vec<FieldSpec>,
    /// Where `namespace` goes (besides `metadata/namespace`).
    #[serde(default, rename = "namespace")]
    pub namespace: Vec<FieldSpec>,
    /// Where `commonLabels` (and `labels` with selectors) go.
    #[serde(default)]
    pub common_labels: Vec<FieldSpec>,
    /// Extra fields for `labels` (kustomize's `labels` config key).
    #[serde(default)]
    pub labels: Vec<FieldSpec>,
    /// Where `labels` with `includeTemplates` go.
    #[serde(default)]
    pub template_labels: Vec<FieldSpec>,
    /// Where `commonAnnotations` go.
    #[serde(default)]
    pub common_annotations: Vec<FieldSpec>,
    /// Which fields hold names of which kinds.
    #[serde(default)]
    pub name_reference: Vec<NameBackReference>,
    /// Where `$(VAR)` references are expanded.
    #[serde(default)]
    pub var_reference: Vec<FieldSpec>,
    /// Where image references are found.
    #[serde(default)]
    pub images: Vec<FieldSpec>,
    /// Where replica counts are set.
    #[serde(default)]
    pub replicas: Vec<FieldSpec>,
}

/// Merging two configurations failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to merge {field} fieldSpec: conflicting fieldspecs ({spec})")]
pub struct MergeError {
    /// The configuration key (`commonLabels`, `nameReference`, …).
    pub field: &'static str,
    /// The spec that conflicts, as `kind:group:version:path`.
    pub spec: String,
}

/// One row of the builtin tables: (kind, group, version, path, create).
type Row = (&'static str, &'static str, &'static str, &'static str, bool);

impl TransformerConfig {
    /// kustomize's builtin field specs.
    pub fn builtin() -> TransformerConfig {
        let specs = |rows: &[Row]| rows.iter().map(row_to_spec).collect::<Vec<_>>();
        let mut config = TransformerConfig {
            name_prefix: specs(builtin::NAME_PREFIX),
            name_suffix: specs(builtin::NAME_SUFFIX),
            namespace: specs(builtin::NAMESPACE),
            common_labels: specs(builtin::COMMON_LABELS),
            labels: Vec::new(),
            template_labels: specs(builtin::TEMPLATE_LABELS),
            common_annotations: specs(builtin::COMMON_ANNOTATIONS),
            name_reference: builtin::NAME_REFERENCE
                .iter()
                .map(|(kind, group, version, rows)| NameBackReference {
                    group: group.to_string(),
                    version: version.to_string(),
                    kind: kind.to_string(),
                    referrers: specs(rows),
                })
                .collect(),
            var_reference: specs(builtin::VAR_REFERENCE),
            images: specs(builtin::IMAGES),
            replicas: specs(builtin::REPLICAS),
        };
        config.sort();
        config
    }

    /// Adds `other`'s specs to this configuration, skipping duplicates, then orders every list
    /// as kustomize does.
    pub fn merge(&mut self, other: &TransformerConfig) -> Result<(), MergeError> {
        merge_field_specs(&mut self.name_prefix, &other.name_prefix, "NamePrefix")?;
        merge_field_specs(&mut self.name_suffix, &other.name_suffix, "NameSuffix")?;
        merge_field_specs(&mut self.namespace, &other.namespace, "NameSpace")?;
        merge_field_specs(
            &mut self.common_annotations,
            &other.common_annotations,
            "CommonAnnotations",
        )?;
        merge_field_specs(
            &mut self.common_labels,
            &other.common_labels,
            "CommonLabels",
        )?;
        merge_field_specs(&mut self.labels, &other.labels, "Labels")?;
        merge_field_specs(
            &mut self.template_labels,
            &other.template_labels,
            "TemplateLabels",
        )?;
        merge_field_specs(
            &mut self.var_reference,
            &other.var_reference,
            "VarReference",
        )?;
        for incoming in &other.name_reference {
            let existing = self.name_reference.iter_mut().find(|nbr| {
                nbr.group == incoming.group
                    && nbr.version == incoming.version
                    && nbr.kind == incoming.kind
            });
            match existing {
                Some(nbr) => {
                    merge_field_specs(&mut nbr.referrers, &incoming.referrers, "NameReference")?
                }
                None => self.name_reference.push(incoming.clone()),
            }
        }
        merge_field_specs(&mut self.images, &other.images, "Images")?;
        merge_field_specs(&mut self.replicas, &other.replicas, "Replicas")?;
        self.sort();
        Ok(())
    }

    /// Orders every list by the referenced kind, as kustomize sorts a loaded configuration.
    /// kustomize's sort is not stable; a stable sort keeps file order among equal kinds, which
    /// is what kustomize's outputs show for the field specs that matter.
    fn sort(&mut self) {
        for list in [
            &mut self.name_prefix,
            &mut self.name_suffix,
            &mut self.namespace,
            &mut self.common_labels,
            &mut self.labels,
            &mut self.template_labels,
            &mut self.common_annotations,
            &mut self.var_reference,
            &mut self.images,
            &mut self.replicas,
        ] {
            list.sort_by(|a, b| {
                gvk_parts_order(
                    (&a.group, &a.version, &a.kind),
                    (&b.group, &b.version, &b.kind),
                )
            });
        }
        self.name_reference.sort_by(|a, b| {
            gvk_parts_order(
                (&a.group, &a.version, &a.kind),
                (&b.group, &b.version, &b.kind),
            )
        });
    }
}

fn row_to_spec(row: &Row) -> FieldSpec {
    let (kind, group, version, path, create) = *row;
    FieldSpec {
        group: group.to_string(),
        version: version.to_string(),
        kind: kind.to_string(),
        path: path.to_string(),
        create_if_not_present: create,
    }
}

/// True when `spec` selects at least what `other` names and has the same path: kustomize's
/// notion of "already present".
fn effectively_equal(spec: &FieldSpec, other: &FieldSpec) -> bool {
    spec.path == other.path
        && (other.group.is_empty() || spec.group == other.group)
        && (other.version.is_empty() || spec.version == other.version)
        && (other.kind.is_empty() || spec.kind == other.kind)
}

/// Appends the specs of `incoming` not already in `specs` (same path, and every kind, group
/// and version the incoming spec names equal); a spec differing only in `create` is an error.
pub fn merge_field_specs(
    specs: &mut Vec<FieldSpec>,
    incoming: &[FieldSpec],
    field: &'static str,
) -> Result<(), MergeError> {
    for spec in incoming {
        match specs
            .iter()
            .find(|existing| effectively_equal(existing, spec))
        {
            Some(existing) if existing.create_if_not_present != spec.create_if_not_present => {
                return Err(MergeError {
                    field,
                    spec: format!(
                        "{}:{}:{}:{}",
                        spec.kind, spec.group, spec.version, spec.path
                    ),
                });
            }
            Some(_) => {}
            None => specs.push(spec.clone()),
        }
    }
    Ok(())
}

/// kustomize's order of kinds (`Gvk.IsLessThan`): a few kinds first, webhooks last, then by
/// `group_version_kind`.
pub fn gvk_order(a: &Gvk, b: &Gvk) -> std::cmp::Ordering {
    gvk_parts_order(
        (&a.group, &a.version, &a.kind),
        (&b.group, &b.version, &b.kind),
    )
}

/// [`gvk_order`] on (group, version, kind), comparing the `group_version_kind` spellings
/// without building them (sorting configurations is on every kustomization's path).
fn gvk_parts_order(a: (&str, &str, &str), b: (&str, &str, &str)) -> std::cmp::Ordering {
    kind_rank(a.2)
        .cmp(&kind_rank(b.2))
        .then_with(|| spelling_bytes(a).cmp(spelling_bytes(b)))
}

/// The bytes of `Gvk`'s display form (`~G_v1_Service`).
fn spelling_bytes<'a>(
    (group, version, kind): (&'a str, &'a str, &'a str),
) -> impl Iterator<Item = u8> + 'a {
    let or = |s: &'a str, placeholder: &'static str| if s.is_empty() { placeholder } else { s };
    [or(group, "~G"), "_", or(version, "~V"), "_", or(kind, "~K")]
        .into_iter()
        .flat_map(str::bytes)
}

fn kind_rank(kind: &str) -> i64 {
    // The same kind order kustomize uses for its legacy output order.
    use crate::render::order::{DEFAULT_ORDER_FIRST as FIRST, DEFAULT_ORDER_LAST as LAST};
    if let Some(i) = FIRST.iter().position(|k| *k == kind) {
        return i as i64 - FIRST.len() as i64;
    }
    if let Some(i) = LAST.iter().position(|k| *k == kind) {
        return i as i64 + 1;
    }
    0
}

/// kustomize's builtin field specs, transcribed from its tables
/// (`api/internal/konfig/builtinpluginconsts` at api/v0.18.0); one row per spec:
/// (kind, group, version, path, create).
#[rustfmt::skip]
mod builtin {
    use super::Row;

    /// Builtin `namePrefix` field specs.
    pub(super) const NAME_PREFIX: &[Row] = &[
        ("", "", "", "metadata/name", false),
    ];

    /// Builtin `nameSuffix` field specs.
    pub(super) const NAME_SUFFIX: &[Row] = &[
        ("", "", "", "metadata/name", false),
    ];

    /// Builtin `commonLabels` field specs.
    pub(super) const COMMON_LABELS: &[Row] = &[
        ("Service", "", "v1", "spec/selector", true),
        ("ReplicationController", "", "v1", "spec/selector", true),
        ("Deployment", "", "", "spec/selector/matchLabels", true),
        ("Deployment", "apps", "", "spec/template/spec/affinity/podAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels", false),
        ("Deployment", "apps", "", "spec/template/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels", false),
        ("Deployment", "apps", "", "spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels", false),
        ("Deployment", "apps", "", "spec/template/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels", false),
        ("Deployment", "apps", "", "spec/template/spec/topologySpreadConstraints/labelSelector/matchLabels", false),
        ("ReplicaSet", "", "", "spec/selector/matchLabels", true),
        ("DaemonSet", "", "", "spec/selector/matchLabels", true),
        ("StatefulSet", "apps", "", "spec/selector/matchLabels", true),
        ("StatefulSet", "apps", "", "spec/template/spec/affinity/podAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels", false),
        ("StatefulSet", "apps", "", "spec/template/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels", false),
        ("StatefulSet", "apps", "", "spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels", false),
        ("StatefulSet", "apps", "", "spec/template/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels", false),
        ("StatefulSet", "apps", "", "spec/template/spec/topologySpreadConstraints/labelSelector/matchLabels", false),
        ("Job", "batch", "", "spec/selector/matchLabels", false),
        ("CronJob", "batch", "", "spec/jobTemplate/spec/selector/matchLabels", false),
        ("PodDisruptionBudget", "policy", "", "spec/selector/matchLabels", false),
        ("NetworkPolicy", "networking.k8s.io", "", "spec/podSelector/matchLabels", false),
        ("NetworkPolicy", "networking.k8s.io", "", "spec/ingress/from/podSelector/matchLabels", false),
        ("NetworkPolicy", "networking.k8s.io", "", "spec/egress/to/podSelector/matchLabels", false),
        ("", "", "", "metadata/labels", true),
        ("ReplicationController", "", "v1", "spec/template/metadata/labels", true),
        ("Deployment", "", "", "spec/template/metadata/labels", true),
        ("ReplicaSet", "", "", "spec/template/metadata/labels", true),
        ("DaemonSet", "", "", "spec/template/metadata/labels", true),
        ("StatefulSet", "apps", "", "spec/template/metadata/labels", true),
        ("StatefulSet", "apps", "", "spec/volumeClaimTemplates[]/metadata/labels", true),
        ("Job", "batch", "", "spec/template/metadata/labels", true),
        ("CronJob", "batch", "", "spec/jobTemplate/metadata/labels", true),
        ("CronJob", "batch", "", "spec/jobTemplate/spec/template/metadata/labels", true),
    ];

    /// Builtin `templateLabels` field specs.
    pub(super) const TEMPLATE_LABELS: &[Row] = &[
        ("", "", "", "metadata/labels", true),
        ("ReplicationController", "", "v1", "spec/template/metadata/labels", true),
        ("Deployment", "", "", "spec/template/metadata/labels", true),
        ("ReplicaSet", "", "", "spec/template/metadata/labels", true),
        ("DaemonSet", "", "", "spec/template/metadata/labels", true),
        ("StatefulSet", "apps", "", "spec/template/metadata/labels", true),
        ("StatefulSet", "apps", "", "spec/volumeClaimTemplates[]/metadata/labels", true),
        ("Job", "batch", "", "spec/template/metadata/labels", true),
        ("CronJob", "batch", "", "spec/jobTemplate/metadata/labels", true),
        ("CronJob", "batch", "", "spec/jobTemplate/spec/template/metadata/labels", true),
    ];

    /// Builtin `commonAnnotations` field specs.
    pub(super) const COMMON_ANNOTATIONS: &[Row] = &[
        ("", "", "", "metadata/annotations", true),
        ("ReplicationController", "", "v1", "spec/template/metadata/annotations", true),
        ("Deployment", "", "", "spec/template/metadata/annotations", true),
        ("ReplicaSet", "", "", "spec/template/metadata/annotations", true),
        ("DaemonSet", "", "", "spec/template/metadata/annotations", true),
        ("StatefulSet", "", "", "spec/template/metadata/annotations", true),
        ("Job", "batch", "", "spec/template/metadata/annotations", true),
        ("CronJob", "batch", "", "spec/jobTemplate/metadata/annotations", true),
        ("CronJob", "batch", "", "spec/jobTemplate/spec/template/metadata/annotations", true),
    ];

    /// Builtin `namespace` field specs.
    pub(super) const NAMESPACE: &[Row] = &[
        ("Namespace", "", "", "metadata/name", true),
        ("APIService", "apiregistration.k8s.io", "", "spec/service/namespace", true),
        ("CustomResourceDefinition", "apiextensions.k8s.io", "", "spec/conversion/webhook/clientConfig/service/namespace", false),
    ];

    /// Builtin `varReference` field specs.
    pub(super) const VAR_REFERENCE: &[Row] = &[
        ("CronJob", "", "", "spec/jobTemplate/spec/template/spec/containers/args", false),
        ("CronJob", "", "", "spec/jobTemplate/spec/template/spec/containers/command", false),
        ("CronJob", "", "", "spec/jobTemplate/spec/template/spec/containers/env/value", false),
        ("CronJob", "", "", "spec/jobTemplate/spec/template/spec/containers/volumeMounts/mountPath", false),
        ("CronJob", "", "", "spec/jobTemplate/spec/template/spec/initContainers/args", false),
        ("CronJob", "", "", "spec/jobTemplate/spec/template/spec/initContainers/command", false),
        ("CronJob", "", "", "spec/jobTemplate/spec/template/spec/initContainers/env/value", false),
        ("CronJob", "", "", "spec/jobTemplate/spec/template/spec/initContainers/volumeMounts/mountPath", false),
        ("CronJob", "", "", "spec/jobTemplate/spec/template/volumes/nfs/server", false),
        ("DaemonSet", "", "", "spec/template/spec/containers/args", false),
        ("DaemonSet", "", "", "spec/template/spec/containers/command", false),
        ("DaemonSet", "", "", "spec/template/spec/containers/env/value", false),
        ("DaemonSet", "", "", "spec/template/spec/containers/volumeMounts/mountPath", false),
        ("DaemonSet", "", "", "spec/template/spec/initContainers/args", false),
        ("DaemonSet", "", "", "spec/template/spec/initContainers/command", false),
        ("DaemonSet", "", "", "spec/template/spec/initContainers/env/value", false),
        ("DaemonSet", "", "", "spec/template/spec/initContainers/volumeMounts/mountPath", false),
        ("DaemonSet", "", "", "spec/template/spec/volumes/nfs/server", false),
        ("Deployment", "", "", "spec/template/spec/containers/args", false),
        ("Deployment", "", "", "spec/template/spec/containers/command", false),
        ("Deployment", "", "", "spec/template/spec/containers/env/value", false),
        ("Deployment", "", "", "spec/template/spec/containers/volumeMounts/mountPath", false),
        ("Deployment", "", "", "spec/template/spec/initContainers/args", false),
        ("Deployment", "", "", "spec/template/spec/initContainers/command", false),
        ("Deployment", "", "", "spec/template/spec/initContainers/env/value", false),
        ("Deployment", "", "", "spec/template/spec/initContainers/volumeMounts/mountPath", false),
        ("Deployment", "", "", "spec/template/spec/volumes/nfs/server", false),
        ("Deployment", "", "", "spec/template/metadata/annotations", false),
        ("Ingress", "", "", "spec/rules/host", false),
        ("Ingress", "", "", "spec/tls/hosts", false),
        ("Ingress", "", "", "spec/tls/secretName", false),
        ("Job", "", "", "spec/template/spec/containers/args", false),
        ("Job", "", "", "spec/template/spec/containers/command", false),
        ("Job", "", "", "spec/template/spec/containers/env/value", false),
        ("Job", "", "", "spec/template/spec/containers/volumeMounts/mountPath", false),
        ("Job", "", "", "spec/template/spec/initContainers/args", false),
        ("Job", "", "", "spec/template/spec/initContainers/command", false),
        ("Job", "", "", "spec/template/spec/initContainers/env/value", false),
        ("Job", "", "", "spec/template/spec/initContainers/volumeMounts/mountPath", false),
        ("Job", "", "", "spec/template/spec/volumes/nfs/server", false),
        ("Pod", "", "", "spec/containers/args", false),
        ("Pod", "", "", "spec/containers/command", false),
        ("Pod", "", "", "spec/containers/env/value", false),
        ("Pod", "", "", "spec/containers/volumeMounts/mountPath", false),
        ("Pod", "", "", "spec/initContainers/args", false),
        ("Pod", "", "", "spec/initContainers/command", false),
        ("Pod", "", "", "spec/initContainers/env/value", false),
        ("Pod", "", "", "spec/initContainers/volumeMounts/mountPath", false),
        ("Pod", "", "", "spec/volumes/nfs/server", false),
        ("ReplicaSet", "", "", "spec/template/spec/containers/args", false),
        ("ReplicaSet", "", "", "spec/template/spec/containers/command", false),
        ("ReplicaSet", "", "", "spec/template/spec/containers/env/value", false),
        ("ReplicaSet", "", "", "spec/template/spec/containers/volumeMounts/mountPath", false),
        ("ReplicaSet", "", "", "spec/template/spec/initContainers/args", false),
        ("ReplicaSet", "", "", "spec/template/spec/initContainers/command", false),
        ("ReplicaSet", "", "", "spec/template/spec/initContainers/env/value", false),
        ("ReplicaSet", "", "", "spec/template/spec/initContainers/volumeMounts/mountPath", false),
        ("ReplicaSet", "", "", "spec/template/spec/volumes/nfs/server", false),
        ("Service", "", "", "spec/ports/port", false),
        ("Service", "", "", "spec/ports/targetPort", false),
        ("StatefulSet", "", "", "spec/template/spec/containers/args", false),
        ("StatefulSet", "", "", "spec/template/spec/containers/command", false),
        ("StatefulSet", "", "", "spec/template/spec/containers/env/value", false),
        ("StatefulSet", "", "", "spec/template/spec/containers/volumeMounts/mountPath", false),
        ("StatefulSet", "", "", "spec/template/spec/initContainers/args", false),
        ("StatefulSet", "", "", "spec/template/spec/initContainers/command", false),
        ("StatefulSet", "", "", "spec/template/spec/initContainers/env/value", false),
        ("StatefulSet", "", "", "spec/template/spec/initContainers/volumeMounts/mountPath", false),
        ("StatefulSet", "", "", "spec/volumeClaimTemplates/spec/nfs/server", false),
        ("PersistentVolume", "", "", "spec/nfs/server", false),
        ("", "", "", "metadata/labels", false),
        ("", "", "", "metadata/annotations", false),
    ];

    /// Builtin `images` field specs.
    pub(super) const IMAGES: &[Row] = &[
        ("", "", "", "spec/containers[]/image", true),
        ("", "", "", "spec/initContainers[]/image", true),
        ("", "", "", "spec/template/spec/containers[]/image", true),
        ("", "", "", "spec/template/spec/initContainers[]/image", true),
    ];

    /// Builtin `replicas` field specs.
    pub(super) const REPLICAS: &[Row] = &[
        ("Deployment", "", "", "spec/replicas", true),
        ("ReplicationController", "", "", "spec/replicas", true),
        ("ReplicaSet", "", "", "spec/replicas", true),
        ("StatefulSet", "", "", "spec/replicas", true),
    ];

    /// Builtin `nameReference` rules: (referenced kind, group, version, referring field specs).
    pub(super) const NAME_REFERENCE: &[(&str, &str, &str, &[Row])] = &[
        ("Deployment", "", "", &[
            ("HorizontalPodAutoscaler", "", "", "spec/scaleTargetRef/name", false),
        ]),
        ("ReplicationController", "", "", &[
            ("HorizontalPodAutoscaler", "", "", "spec/scaleTargetRef/name", false),
        ]),
        ("ReplicaSet", "", "", &[
            ("HorizontalPodAutoscaler", "", "", "spec/scaleTargetRef/name", false),
        ]),
        ("StatefulSet", "", "", &[
            ("HorizontalPodAutoscaler", "", "", "spec/scaleTargetRef/name", false),
        ]),
        ("ConfigMap", "", "v1", &[
            ("Pod", "", "v1", "spec/volumes/configMap/name", false),
            ("Pod", "", "v1", "spec/containers/env/valueFrom/configMapKeyRef/name", false),
            ("Pod", "", "v1", "spec/initContainers/env/valueFrom/configMapKeyRef/name", false),
            ("Pod", "", "v1", "spec/containers/envFrom/configMapRef/name", false),
            ("Pod", "", "v1", "spec/initContainers/envFrom/configMapRef/name", false),
            ("Pod", "", "v1", "spec/volumes/projected/sources/configMap/name", false),
            ("PodTemplate", "", "", "template/spec/volumes/configMap/name", false),
            ("PodTemplate", "", "", "template/spec/containers/env/valueFrom/configMapKeyRef/name", false),
            ("PodTemplate", "", "", "template/spec/initContainers/env/valueFrom/configMapKeyRef/name", false),
            ("PodTemplate", "", "", "template/spec/containers/envFrom/configMapRef/name", false),
            ("PodTemplate", "", "", "template/spec/initContainers/envFrom/configMapRef/name", false),
            ("PodTemplate", "", "", "template/spec/volumes/projected/sources/configMap/name", false),
            ("Deployment", "", "", "spec/template/spec/volumes/configMap/name", false),
            ("Deployment", "", "", "spec/template/spec/containers/env/valueFrom/configMapKeyRef/name", false),
            ("Deployment", "", "", "spec/template/spec/initContainers/env/valueFrom/configMapKeyRef/name", false),
            ("Deployment", "", "", "spec/template/spec/containers/envFrom/configMapRef/name", false),
            ("Deployment", "", "", "spec/template/spec/initContainers/envFrom/configMapRef/name", false),
            ("Deployment", "", "", "spec/template/spec/volumes/projected/sources/configMap/name", false),
            ("ReplicaSet", "", "", "spec/template/spec/volumes/configMap/name", false),
            ("ReplicaSet", "", "", "spec/template/spec/containers/env/valueFrom/configMapKeyRef/name", false),
            ("ReplicaSet", "", "", "spec/template/spec/initContainers/env/valueFrom/configMapKeyRef/name", false),
            ("ReplicaSet", "", "", "spec/template/spec/containers/envFrom/configMapRef/name", false),
            ("ReplicaSet", "", "", "spec/template/spec/initContainers/envFrom/configMapRef/name", false),
            ("ReplicaSet", "", "", "spec/template/spec/volumes/projected/sources/configMap/name", false),
            ("DaemonSet", "", "", "spec/template/spec/volumes/configMap/name", false),
            ("DaemonSet", "", "", "spec/template/spec/containers/env/valueFrom/configMapKeyRef/name", false),
            ("DaemonSet", "", "", "spec/template/spec/initContainers/env/valueFrom/configMapKeyRef/name", false),
            ("DaemonSet", "", "", "spec/template/spec/containers/envFrom/configMapRef/name", false),
            ("DaemonSet", "", "", "spec/template/spec/initContainers/envFrom/configMapRef/name", false),
            ("DaemonSet", "", "", "spec/template/spec/volumes/projected/sources/configMap/name", false),
            ("StatefulSet", "", "", "spec/template/spec/volumes/configMap/name", false),
            ("StatefulSet", "", "", "spec/template/spec/containers/env/valueFrom/configMapKeyRef/name", false),
            ("StatefulSet", "", "", "spec/template/spec/initContainers/env/valueFrom/configMapKeyRef/name", false),
            ("StatefulSet", "", "", "spec/template/spec/containers/envFrom/configMapRef/name", false),
            ("StatefulSet", "", "", "spec/template/spec/initContainers/envFrom/configMapRef/name", false),
            ("StatefulSet", "", "", "spec/template/spec/volumes/projected/sources/configMap/name", false),
            ("Job", "", "", "spec/template/spec/volumes/configMap/name", false),
            ("Job", "", "", "spec/template/spec/containers/env/valueFrom/configMapKeyRef/name", false),
            ("Job", "", "", "spec/template/spec/initContainers/env/valueFrom/configMapKeyRef/name", false),
            ("Job", "", "", "spec/template/spec/containers/envFrom/configMapRef/name", false),
            ("Job", "", "", "spec/template/spec/initContainers/envFrom/configMapRef/name", false),
            ("Job", "", "", "spec/template/spec/volumes/projected/sources/configMap/name", false),
            ("CronJob", "", "", "spec/jobTemplate/spec/template/spec/volumes/configMap/name", false),
            ("CronJob", "", "", "spec/jobTemplate/spec/template/spec/volumes/projected/sources/configMap/name", false),
            ("CronJob", "", "", "spec/jobTemplate/spec/template/spec/containers/env/valueFrom/configMapKeyRef/name", false),
            ("CronJob", "", "", "spec/jobTemplate/spec/template/spec/initContainers/env/valueFrom/configMapKeyRef/name", false),
            ("CronJob", "", "", "spec/jobTemplate/spec/template/spec/containers/envFrom/configMapRef/name", false),
            ("CronJob", "", "", "spec/jobTemplate/spec/template/spec/initContainers/envFrom/configMapRef/name", false),
            ("Node", "", "", "spec/configSource/configMap", false),
            ("Role", "", "", "rules/resourceNames", false),
            ("ClusterRole", "", "", "rules/resourceNames", false),
            ("Ingress", "", "", "metadata/annotations/nginx.ingress.kubernetes.io\\/fastcgi-params-configmap", false),
        ]),
        ("Secret", "", "v1", &[
            ("Pod", "", "v1", "spec/volumes/secret/secretName", false),
            ("Pod", "", "v1", "spec/containers/env/valueFrom/secretKeyRef/name", false),
            ("Pod", "", "v1", "spec/initContainers/env/valueFrom/secretKeyRef/name", false),
            ("Pod", "", "v1", "spec/containers/envFrom/secretRef/name", false),
            ("Pod", "", "v1", "spec/initContainers/envFrom/secretRef/name", false),
            ("Pod", "", "v1", "spec/imagePullSecrets/name", false),
            ("Pod", "", "v1", "spec/volumes/projected/sources/secret/name", false),
            ("PodTemplate", "", "", "template/spec/volumes/secret/secretName", false),
            ("PodTemplate", "", "", "template/spec/containers/env/valueFrom/secretKeyRef/name", false),
            ("PodTemplate", "", "", "template/spec/initContainers/env/valueFrom/secretKeyRef/name", false),
            ("PodTemplate", "", "", "template/spec/containers/envFrom/secretRef/name", false),
            ("PodTemplate", "", "", "template/spec/initContainers/envFrom/secretRef/name", false),
            ("PodTemplate", "", "", "template/spec/imagePullSecrets/name", false),
            ("PodTemplate", "", "", "template/spec/volumes/projected/sources/secret/name", false),
            ("Deployment", "", "", "spec/template/spec/volumes/secret/secretName", false),
            ("Deployment", "", "", "spec/template/spec/containers/env/valueFrom/secretKeyRef/name", false),
            ("Deployment", "", "", "spec/template/spec/initContainers/env/valueFrom/secretKeyRef/name", false),
            ("Deployment", "", "", "spec/template/spec/containers/envFrom/secretRef/name", false),
            ("Deployment", "", "", "spec/template/spec/initContainers/envFrom/secretRef/name", false),
            ("Deployment", "", "", "spec/template/spec/imagePullSecrets/name", false),
            ("Deployment", "", "", "spec/template/spec/volumes/projected/sources/secret/name", false),
            ("ReplicaSet", "", "", "spec/template/spec/volumes/secret/secretName", false),
            ("ReplicaSet", "", "", "spec/template/spec/containers/env/valueFrom/secretKeyRef/name", false),
            ("ReplicaSet", "", "", "spec/template/spec/initContainers/env/valueFrom/secretKeyRef/name", false),
            ("ReplicaSet", "", "", "spec/template/spec/containers/envFrom/secretRef/name", false),
            ("ReplicaSet", "", "", "spec/template/spec/initContainers/envFrom/secretRef/name", false),
            ("ReplicaSet", "", "", "spec/template/spec/imagePullSecrets/name", false),
            ("ReplicaSet", "", "", "spec/template/spec/volumes/projected/sources/secret/name", false),
            ("DaemonSet", "", "", "spec/template/spec/volumes/secret/secretName", false),
            ("DaemonSet", "", "", "spec/template/spec/containers/env/valueFrom/secretKeyRef/name", false),
            ("DaemonSet", "", "", "spec/template/spec/initContainers/env/valueFrom/secretKeyRef/name", false),
            ("DaemonSet", "", "", "spec/template/spec/containers/envFrom/secretRef/name", false),
            ("DaemonSet", "", "", "spec/template/spec/initContainers/envFrom/secretRef/name", false),
            ("DaemonSet", "", "", "spec/template/spec/imagePullSecrets/name", false),
            ("DaemonSet", "", "", "spec/template/spec/volumes/projected/sources/secret/name", false),
            ("StatefulSet", "", "", "spec/template/spec/volumes/secret/secretName", false),
            ("StatefulSet", "", "", "spec/template/spec/containers/env/valueFrom/secretKeyRef/name", false),
            ("StatefulSet", "", "", "spec/template/spec/initContainers/env/valueFrom/secretKeyRef/name", false),
            ("StatefulSet", "", "", "spec/template/spec/containers/envFrom/secretRef/name", false),
            ("StatefulSet", "", "", "spec/template/spec/initContainers/envFrom/secretRef/name", false),
            ("StatefulSet", "", "", "spec/template/spec/imagePullSecrets/name", false),
            ("StatefulSet", "", "", "spec/template/spec/volumes/projected/sources/secret/name", false),
            ("Job", "", "", "spec/template/spec/volumes/secret/secretName", false),
            ("Job", "", "", "spec/template/spec/containers/env/valueFrom/secretKeyRef/name", false),
            ("Job", "", "", "spec/template/spec/initContainers/env/valueFrom/secretKeyRef/name", false),
            ("Job", "", "", "spec/template/spec/containers/envFrom/secretRef/name", false),
            ("Job", "", "", "spec/template/spec/initContainers/envFrom/secretRef/name", false),
            ("Job", "", "", "spec/template/spec/imagePullSecrets/name", false),
            ("Job", "", "", "spec/template/spec/volumes/projected/sources/secret/name", false),
            ("CronJob", "", "", "spec/jobTemplate/spec/template/spec/volumes/secret/secretName", false),
            ("CronJob", "", "", "spec/jobTemplate/spec/template/spec/volumes/projected/sources/secret/name", false),
            ("CronJob", "", "", "spec/jobTemplate/spec/template/spec/containers/env/valueFrom/secretKeyRef/name", false),
            ("CronJob", "", "", "spec/jobTemplate/spec/template/spec/initContainers/env/valueFrom/secretKeyRef/name", false),
            ("CronJob", "", "", "spec/jobTemplate/spec/template/spec/containers/envFrom/secretRef/name", false),
            ("CronJob", "", "", "spec/jobTemplate/spec/template/spec/initContainers/envFrom/secretRef/name", false),
            ("CronJob", "", "", "spec/jobTemplate/spec/template/spec/imagePullSecrets/name", false),
            ("Ingress", "", "", "spec/tls/secretName", false),
            ("Ingress", "", "", "metadata/annotations/ingress.kubernetes.io\\/auth-secret", false),
            ("Ingress", "", "", "metadata/annotations/nginx.ingress.kubernetes.io\\/auth-secret", false),
            ("Ingress", "", "", "metadata/annotations/nginx.ingress.kubernetes.io\\/auth-tls-secret", false),
            ("Ingress", "", "", "spec/tls/secretName", false),
            ("ServiceAccount", "", "", "imagePullSecrets/name", false),
            ("StorageClass", "", "", "parameters/secretName", false),
            ("StorageClass", "", "", "parameters/adminSecretName", false),
            ("StorageClass", "", "", "parameters/userSecretName", false),
            ("StorageClass", "", "", "parameters/secretRef", false),
            ("Role", "", "", "rules/resourceNames", false),
            ("ClusterRole", "", "", "rules/resourceNames", false),
            ("Service", "serving.knative.dev", "v1", "spec/template/spec/containers/env/valueFrom/secretKeyRef/name", false),
            ("PersistentVolume", "", "", "spec/azureFile/secretName", false),
        ]),
        ("Service", "", "v1", &[
            ("StatefulSet", "apps", "", "spec/serviceName", false),
            ("Ingress", "", "", "spec/rules/http/paths/backend/serviceName", false),
            ("Ingress", "", "", "spec/backend/serviceName", false),
            ("Ingress", "", "", "spec/rules/http/paths/backend/service/name", false),
            ("Ingress", "", "", "spec/defaultBackend/service/name", false),
            ("APIService", "apiregistration.k8s.io", "", "spec/service/name", false),
            ("ValidatingWebhookConfiguration", "admissionregistration.k8s.io", "", "webhooks/clientConfig/service", false),
            ("MutatingWebhookConfiguration", "admissionregistration.k8s.io", "", "webhooks/clientConfig/service", false),
        ]),
        ("Role", "rbac.authorization.k8s.io", "", &[
            ("RoleBinding", "rbac.authorization.k8s.io", "", "roleRef/name", false),
        ]),
        ("ClusterRole", "rbac.authorization.k8s.io", "", &[
            ("RoleBinding", "rbac.authorization.k8s.io", "", "roleRef/name", false),
            ("ClusterRoleBinding", "rbac.authorization.k8s.io", "", "roleRef/name", false),
        ]),
        ("ServiceAccount", "", "v1", &[
            ("RoleBinding", "rbac.authorization.k8s.io", "", "subjects", false),
            ("ClusterRoleBinding", "rbac.authorization.k8s.io", "", "subjects", false),
            ("Pod", "", "", "spec/serviceAccountName", false),
            ("StatefulSet", "", "", "spec/template/spec/serviceAccountName", false),
            ("Deployment", "", "", "spec/template/spec/serviceAccountName", false),
            ("ReplicationController", "", "", "spec/template/spec/serviceAccountName", false),
            ("CronJob", "", "", "spec/jobTemplate/spec/template/spec/serviceAccountName", false),
            ("Job", "", "", "spec/template/spec/serviceAccountName", false),
            ("DaemonSet", "", "", "spec/template/spec/serviceAccountName", false),
        ]),
        ("PersistentVolumeClaim", "", "v1", &[
            ("Pod", "", "", "spec/volumes/persistentVolumeClaim/claimName", false),
            ("StatefulSet", "", "", "spec/template/spec/volumes/persistentVolumeClaim/claimName", false),
            ("Deployment", "", "", "spec/template/spec/volumes/persistentVolumeClaim/claimName", false),
            ("ReplicationController", "", "", "spec/template/spec/volumes/persistentVolumeClaim/claimName", false),
            ("CronJob", "", "", "spec/jobTemplate/spec/template/spec/volumes/persistentVolumeClaim/claimName", false),
            ("Job", "", "", "spec/template/spec/volumes/persistentVolumeClaim/claimName", false),
            ("DaemonSet", "", "", "spec/template/spec/volumes/persistentVolumeClaim/claimName", false),
        ]),
        ("PersistentVolume", "", "v1", &[
            ("PersistentVolumeClaim", "", "", "spec/volumeName", false),
            ("ClusterRole", "", "", "rules/resourceNames", false),
        ]),
        ("StorageClass", "storage.k8s.io", "v1", &[
            ("PersistentVolume", "", "", "spec/storageClassName", false),
            ("PersistentVolumeClaim", "", "", "spec/storageClassName", false),
            ("StatefulSet", "", "", "spec/volumeClaimTemplates/spec/storageClassName", false),
        ]),
        ("PriorityClass", "scheduling.k8s.io", "v1", &[
            ("Pod", "", "", "spec/priorityClassName", false),
            ("StatefulSet", "", "", "spec/template/spec/priorityClassName", false),
            ("Deployment", "", "", "spec/template/spec/priorityClassName", false),
            ("ReplicationController", "", "", "spec/template/spec/priorityClassName", false),
            ("CronJob", "", "", "spec/jobTemplate/spec/template/spec/priorityClassName", false),
            ("Job", "", "", "spec/template/spec/priorityClassName", false),
            ("DaemonSet", "", "", "spec/template/spec/priorityClassName", false),
        ]),
        ("IngressClass", "networking.k8s.io/v1", "v1", &[
            ("Ingress", "", "", "spec/ingressClassName", false),
        ]),
        ("ValidatingAdmissionPolicy", "admissionregistration.k8s.io", "", &[
            ("ValidatingAdmissionPolicyBinding", "admissionregistration.k8s.io", "", "spec/policyName", false),
        ]),
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The order compares kustomize's `group_version_kind` spelling, placeholders included.
    #[test]
    fn kinds_order_by_rank_then_spelling() {
        let gvk = |group: &str, version: &str, kind: &str| Gvk {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
        };
        let mut gvks = vec![
            gvk("apps", "v1", "Bee"),
            gvk("", "v1", "Bee"),
            gvk("", "", "Bee"),
            gvk("a", "", ""),
            gvk("", "v1", "Service"),
            gvk(
                "admissionregistration.k8s.io",
                "v1",
                "ValidatingWebhookConfiguration",
            ),
            gvk("", "v1", "Namespace"),
            gvk("apps", "v1", "Bee_"),
            gvk("apps_", "v1", "Bee"),
        ];
        let mut by_string = gvks.clone();
        by_string.sort_by(|a, b| {
            kind_rank(&a.kind)
                .cmp(&kind_rank(&b.kind))
                .then_with(|| a.to_string().cmp(&b.to_string()))
        });
        gvks.sort_by(gvk_order);
        assert_eq!(gvks, by_string);
        assert_eq!(gvks[0], gvk("", "v1", "Namespace"));
    }

    #[test]
    fn builtin_has_every_table() {
        let config = TransformerConfig::builtin();
        assert_eq!(config.name_prefix.len(), 1);
        assert!(
            config
                .common_labels
                .iter()
                .any(|s| s.kind == "Service" && s.path == "spec/selector")
        );
        assert!(config.name_reference.iter().any(|n| n.kind == "ConfigMap"));
        assert_eq!(config.images.len(), 4);
    }

    #[test]
    fn merge_skips_duplicates_and_refuses_conflicts() {
        let mut config = TransformerConfig::builtin();
        let before = config.images.len();
        let extra = TransformerConfig {
            images: vec![
                FieldSpec {
                    path: "spec/containers[]/image".into(),
                    create_if_not_present: true,
                    ..FieldSpec::default()
                },
                FieldSpec {
                    path: "spec/runLatest/image".into(),
                    kind: "Service".into(),
                    ..FieldSpec::default()
                },
            ],
            ..TransformerConfig::default()
        };
        config.merge(&extra).unwrap();
        assert_eq!(config.images.len(), before + 1);
        let conflicting = TransformerConfig {
            images: vec![FieldSpec {
                path: "spec/containers[]/image".into(),
                ..FieldSpec::default()
            }],
            ..TransformerConfig::default()
        };
        assert!(config.merge(&conflicting).is_err());
    }

    #[test]
    fn name_references_merge_by_kind() {
        let mut config = TransformerConfig::builtin();
        let extra = TransformerConfig {
            name_reference: vec![NameBackReference {
                kind: "ConfigMap".into(),
                version: "v1".into(),
                referrers: vec![FieldSpec {
                    path: "spec/configMapName".into(),
                    kind: "Foo".into(),
                    ..FieldSpec::default()
                }],
                ..NameBackReference::default()
            }],
            ..TransformerConfig::default()
        };
        let kinds_before = config.name_reference.len();
        config.merge(&extra).unwrap();
        assert_eq!(config.name_reference.len(), kinds_before);
        let cm = config
            .name_reference
            .iter()
            .find(|n| n.kind == "ConfigMap")
            .unwrap();
        assert!(cm.referrers.iter().any(|s| s.path == "spec/configMapName"));
    }

    /// A `configurations:` file as users write it (kustomize's transformerconfigs example).
    #[test]
    fn configuration_files_deserialize() {
        let text = "nameReference:\n- kind: Bee\n  fieldSpecs:\n  - path: spec/beeRef/name\n    kind: AnimalPark\nvarReference:\n- path: spec/food\n  kind: AnimalPark\ncommonLabels:\n- path: spec/selectors\n  create: true\n  kind: AnimalPark\n";
        let documents = crate::yaml::parse_documents(text).unwrap();
        let custom: TransformerConfig = serde_json::from_value(documents[0].clone()).unwrap();
        assert_eq!(custom.name_reference[0].kind, "Bee");
        assert_eq!(
            custom.name_reference[0].referrers[0].path,
            "spec/beeRef/name"
        );
        assert!(custom.common_labels[0].create_if_not_present);
        let mut config = TransformerConfig::builtin();
        config.merge(&custom).unwrap();
        assert!(config.var_reference.iter().any(|s| s.kind == "AnimalPark"));
    }
}
