//! The kustomization file format, as kustomize v5 reads it (`api/types` upstream).
//!
//! These are plain data types: serde reads them, schemars describes them
//! (`reconcile schema kustomization`), and the renderer interprets them.
//! Field names and defaults follow kustomize exactly so existing trees load unchanged.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A `kustomization.yaml` (kind `Kustomization`) or a component (kind `Component`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Kustomization {
    /// `kustomize.config.k8s.io/v1beta1` (or `v1alpha1` for components).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// `Kustomization` or `Component`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Only used to name the kustomization; kustomize ignores it when building.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectMeta>,
    /// Custom OpenAPI schema (`path: file.json` or `version: v1.xx`) for strategic merge keys.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub openapi: BTreeMap<String, String>,
    /// Prepended to the name of every resource (and to references to it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name_prefix: String,
    /// Appended to the name of every resource (and to references to it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name_suffix: String,
    /// Namespace set on every namespaced resource.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Labels added to metadata, selectors and templates (deprecated: use `labels`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub common_labels: BTreeMap<String, String>,
    /// Labels with control over selectors and templates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<Label>,
    /// Annotations added to metadata and templates.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub common_annotations: BTreeMap<String, String>,
    /// Strategic-merge patches: a file path or an inline patch (deprecated: use `patches`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches_strategic_merge: Vec<String>,
    /// JSON6902 patches with a target (deprecated: use `patches`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches_json6902: Vec<Patch>,
    /// Strategic-merge or JSON6902 patches, from a file or inline, with an optional target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<Patch>,
    /// Image name, tag and digest overrides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Image>,
    /// Legacy spelling of `images`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_tags: Vec<Image>,
    /// Copy a field's value from one resource into others.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replacements: Vec<ReplacementField>,
    /// Replica count overrides by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<Replica>,
    /// Legacy `$(VAR)` substitution (deprecated: use `replacements`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vars: Vec<Var>,
    /// Output order: `legacy` (default) or `fifo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_options: Option<SortOptions>,
    /// Files, directories or nested kustomizations to include.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Components (kind `Component`) to apply after resources and generators.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<String>,
    /// CRD files whose schema tells which fields hold names and merge keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crds: Vec<String>,
    /// Legacy spelling of directory `resources`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bases: Vec<String>,
    /// ConfigMaps generated from literals, files and env files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_map_generator: Vec<GeneratorArgs>,
    /// Secrets generated from literals, files and env files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_generator: Vec<GeneratorArgs>,
    /// Options shared by every generator of this kustomization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_options: Option<GeneratorOptions>,
    /// Transformer configuration files (field specs for names, labels, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configurations: Vec<String>,
    /// Generator plugin configs (only kustomize's builtin plugins are supported).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub generators: Vec<String>,
    /// Transformer plugin configs (only kustomize's builtin plugins are supported).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transformers: Vec<String>,
    /// Validator plugin configs (not supported: no builtin validators exist).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validators: Vec<String>,
    /// `originAnnotations`, `transformerAnnotations`, `managedByLabel`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub build_metadata: Vec<String>,
    /// Helm support is not provided (no network, no helm binary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm_globals: Option<serde_json::Value>,
    /// Helm support is not provided (no network, no helm binary).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub helm_charts: Vec<serde_json::Value>,
    /// Helm support is not provided (no network, no helm binary).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub helm_chart_inflation_generator: Vec<serde_json::Value>,
}

/// The part of `metadata` a kustomization may carry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Name of the kustomization.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Namespace of the kustomization.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Labels of the kustomization.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations of the kustomization.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Group, version and kind, each optional where used as a selector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GvkSelector {
    /// API group (`apps`; empty for the core group).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// API version (`v1`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Kind (`Deployment`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
}

/// Selects resources by id (regular expressions allowed), labels and annotations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Selector {
    /// API group.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// API version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Kind (a regular expression).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Name (a regular expression).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Namespace (a regular expression).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// A Kubernetes label selector (`app=web,tier!=db`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label_selector: String,
    /// A label selector applied to annotations.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub annotation_selector: String,
}

/// One entry of `patches` / `patchesJson6902`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Patch {
    /// File holding the patch, relative to the kustomization.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// The patch itself, inline.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub patch: String,
    /// Which resources the patch applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Selector>,
    /// `allowNameChange`, `allowKindChange`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, bool>,
}

/// One entry of `images`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Image {
    /// Image name to match (without tag or digest).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Replacement image name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub new_name: String,
    /// Suffix appended to the tag.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag_suffix: String,
    /// Replacement tag.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub new_tag: String,
    /// Replacement digest (wins over `newTag`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
}

/// One entry of `replicas`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Replica {
    /// Name of the workload (before prefix/suffix).
    #[serde(default)]
    pub name: String,
    /// Desired replica count.
    pub count: i64,
}

/// One entry of `labels`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Label {
    /// The labels to add.
    #[serde(default)]
    pub pairs: BTreeMap<String, String>,
    /// Also add them to selectors (and templates).
    #[serde(default)]
    pub include_selectors: bool,
    /// Also add them to pod templates.
    #[serde(default)]
    pub include_templates: bool,
    /// Extra field specs where the labels go.
    #[serde(default, rename = "fields", skip_serializing_if = "Vec::is_empty")]
    pub field_specs: Vec<FieldSpec>,
}

/// Where in which kinds a transformer writes (`path: spec/selector`, `create: true`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldSpec {
    /// API group the spec applies to (empty: any).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// API version the spec applies to (empty: any).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Kind the spec applies to (empty: any).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Slash-separated path (`spec/template/metadata/labels`, `[]` for lists).
    #[serde(default)]
    pub path: String,
    /// Create the field when it is absent.
    #[serde(default, rename = "create")]
    pub create_if_not_present: bool,
}

/// One entry of `configMapGenerator` / `secretGenerator`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GeneratorArgs {
    /// Namespace of the generated object.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name of the generated object (before the hash suffix).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// `create` (default), `merge` or `replace` an object of the same name from a base.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub behavior: String,
    /// `KEY=VALUE` literals.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub literals: Vec<String>,
    /// Files (`path` or `key=path`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// Env files of `KEY=VALUE` lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub envs: Vec<String>,
    /// A single env file (legacy).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub env: String,
    /// Per-generator options, merged over `generatorOptions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<GeneratorOptions>,
    /// Secret type (`Opaque` by default); secrets only.
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub secret_type: String,
}

/// Options for generated ConfigMaps and Secrets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GeneratorOptions {
    /// Labels added to generated objects.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to generated objects.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Do not append the content hash to the name.
    #[serde(default)]
    pub disable_name_suffix_hash: bool,
    /// Mark the object immutable.
    #[serde(default)]
    pub immutable: bool,
}

/// One entry of `replacements`: inline, or `path:` to a file of replacements.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplacementField {
    /// File holding a list of replacements.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Where the value comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ReplacementSource>,
    /// Where the value goes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<ReplacementTarget>,
}

/// The source of a replacement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplacementSource {
    /// API group.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// API version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Kind.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Field to read (default `metadata.name`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field_path: String,
    /// How to extract part of the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<FieldOptions>,
}

/// A target of a replacement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplacementTarget {
    /// Resources to write to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<Selector>,
    /// Resources to leave alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reject: Vec<Selector>,
    /// Fields to write.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub field_paths: Vec<String>,
    /// How to write part of the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<FieldOptions>,
}

/// Delimiter/index/create options of a replacement source or target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldOptions {
    /// Split the value on this delimiter.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub delimiter: String,
    /// Which part after splitting.
    #[serde(default)]
    pub index: i64,
    /// Encoding (unused by kustomize).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub encoding: String,
    /// Create the target field if absent.
    #[serde(default)]
    pub create: bool,
}

/// A legacy `vars` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Var {
    /// Variable name, used as `$(NAME)`.
    pub name: String,
    /// The object the value comes from.
    pub objref: VarTarget,
    /// The field of that object (default `metadata.name`).
    #[serde(default)]
    pub fieldref: VarFieldRef,
}

/// The object a var reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VarTarget {
    /// `group/version` or `version`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// API group.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// API version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Kind.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// The field a var reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VarFieldRef {
    /// Dotted path (default `metadata.name`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field_path: String,
}

/// `sortOptions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SortOptions {
    /// `legacy` or `fifo`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub order: String,
    /// Kinds first and last for `legacy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_sort_options: Option<LegacySortOptions>,
}

/// Kind order for the legacy sort.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LegacySortOptions {
    /// Kinds emitted first, in this order.
    #[serde(default)]
    pub order_first: Vec<String>,
    /// Kinds emitted last, in this order.
    #[serde(default)]
    pub order_last: Vec<String>,
}
