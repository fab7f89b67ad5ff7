//! kustomize's patch transformers: `patches:`, `patchesStrategicMerge:` and
//! `patchesJson6902:` (`PatchTransformer`, `PatchStrategicMergeTransformer`,
//! `PatchJson6902Transformer` upstream), each a config struct built from a kustomization
//! entry (reading its file through a [`FileLoader`]) with one `apply`.
//!
//! The rules users see:
//! - a `patches:` entry is a strategic merge patch when its text reads as Kubernetes objects
//!   and a JSON6902 patch when it reads as a list of operations (JSON when it starts with
//!   `[`, YAML otherwise); text that is both or neither is an error;
//! - a strategic merge patch without `target` applies to the object with the patch's own
//!   group/version/kind/name/namespace (current or original id) and fails when there is none;
//!   with `target` it applies to every selected object, taking the object's group, version and
//!   name (several patches in one entry cannot have a target);
//! - a patch never renames an object, changes its kind or namespace, unless
//!   `options: {allowNameChange: true}` / `allowKindChange`; a JSON6902 patch may rename
//!   freely; renamed objects remember their old id so references follow;
//! - a target that selects nothing is not an error (kustomize builds anyway): `apply` returns
//!   a [`Warning`] for `validate` to report.
//!
//! Invariant: no IO except through the [`FileLoader`] handed to the constructors.

pub mod json6902;
pub mod openapi;
pub mod selector;
pub mod strategic;

use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::model::{ResId, ResMap, Resource};
use crate::render::files::{FileLoader, LoadError};
use crate::render::types::{Patch, Selector};

use json6902::{Json6902Error, JsonPatch};
use openapi::OpenApi;
use selector::SelectorError;
use strategic::MergeError;

/// Annotation prefix of kustomize's internal bookkeeping, kept across JSON patches.
const INTERNAL_ANNOTATION_PREFIX: &str = "internal.config.kubernetes.io/";
/// kyaml's legacy internal annotations, kept as the internal ones are.
const LEGACY_INTERNAL_ANNOTATIONS: &[&str] = &[
    "config.kubernetes.io/path",
    "config.kubernetes.io/index",
    "config.k8s.io/id",
];

/// A patch could not be configured or applied.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `patches:` entry has neither `path` nor `patch`, or both.
    #[error("{transformer}: {cause}")]
    Config {
        /// `patches`, `patchesStrategicMerge` or `patchesJson6902`.
        transformer: &'static str,
        /// What is wrong with the entry.
        cause: String,
    },
    /// The patch file could not be read.
    #[error("failed to get the patch file from path({path}): {source}")]
    Load {
        /// The file, as the kustomization names it.
        path: String,
        /// The loader's error.
        source: LoadError,
    },
    /// The patch text reads as both a strategic merge and a JSON6902 patch.
    #[error("illegally qualifies as both an SM and JSON patch: {source_text}")]
    Ambiguous {
        /// kustomize's description of the patch (`[path: "p.yaml"]`, `[patch: "…"]`).
        source_text: String,
    },
    /// The patch text reads as neither a strategic merge nor a JSON6902 patch.
    #[error("unable to parse SM or JSON patch from {source_text}")]
    Unreadable {
        /// kustomize's description of the patch.
        source_text: String,
        /// Why it is not a strategic merge patch.
        smp_cause: String,
        /// Why it is not a JSON6902 patch.
        json_cause: String,
    },
    /// A strategic merge patch file or entry is not valid YAML objects.
    #[error("{source_text}: {cause}")]
    InvalidStrategicMerge {
        /// The file or inline text.
        source_text: String,
        /// The parser's complaint.
        cause: String,
    },
    /// A JSON6902 patch is not a list of operations.
    #[error("decoding {source_text}: {source}")]
    InvalidJson {
        /// The file or inline text.
        source_text: String,
        /// The parser's complaint.
        source: Json6902Error,
    },
    /// Several strategic merge patches in one entry together with `target`.
    #[error(
        "Multiple Strategic-Merge Patches in one `patches` entry is not allowed to set `patches.target` field: {source_text}"
    )]
    TargetWithSeveralPatches {
        /// kustomize's description of the patch.
        source_text: String,
    },
    /// A JSON6902 patch without `target`.
    #[error("must specify a target for JSON patch {source_text}")]
    JsonWithoutTarget {
        /// kustomize's description of the patch.
        source_text: String,
    },
    /// The target selector is invalid.
    #[error("unable to find patch target {target:?} in `resources`: {source}")]
    Selector {
        /// The selector as kustomize prints it.
        target: String,
        /// What is wrong with it.
        source: SelectorError,
    },
    /// No object (or several) has the id a strategic merge patch names.
    #[error(
        "no resource matches strategic merge patch \"{id}\": {matches} matches for Id {id}; failed to find unique target for patch {id}"
    )]
    Target {
        /// The patch's id.
        id: Box<ResId>,
        /// `no` or `multiple`.
        matches: &'static str,
    },
    /// A strategic merge patch failed on an object.
    #[error("applying strategic merge patch {source_text} to {id}: {source}")]
    Merge {
        /// kustomize's description of the patch.
        source_text: String,
        /// The object patched.
        id: Box<ResId>,
        /// What failed.
        source: MergeError,
    },
    /// A JSON6902 patch failed on an object.
    #[error("applying JSON patch {source_text} to {id}: {source}")]
    Json {
        /// kustomize's description of the patch.
        source_text: String,
        /// The object patched.
        id: Box<ResId>,
        /// What failed.
        source: Json6902Error,
    },
    /// A JSON patch left `metadata.annotations` a list (kustomize crashes there; a scalar
    /// there is read as no annotations).
    #[error("applying JSON patch {source_text} to {id}: metadata.annotations is not a map")]
    AnnotationsNotAMap {
        /// kustomize's description of the patch.
        source_text: String,
        /// The object patched.
        id: Box<ResId>,
    },
    /// A JSON patch left the object without a kind or a name.
    #[error("applying JSON patch {source_text} to {id}: missing {field} in object")]
    IncompleteObject {
        /// kustomize's description of the patch.
        source_text: String,
        /// The object patched, before the patch.
        id: Box<ResId>,
        /// `kind` or `metadata.name`.
        field: &'static str,
    },
    /// After patching, two objects have the same id.
    #[error("may not add resource with an already registered id: {id}")]
    IdConflict {
        /// The duplicated id.
        id: Box<ResId>,
    },
}

/// A patch that did nothing because its target selected no object; kustomize carries on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// kustomize's description of the patch (`[path: "p.yaml"]`, `[patch: "…"]`).
    pub patch: String,
    /// The target, as kustomize prints a selector.
    pub target: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "patch {} selects no resource (target {})",
            self.patch, self.target
        )
    }
}

/// One `patches:` entry.
#[derive(Debug, Clone)]
pub struct PatchTransformer {
    source_text: String,
    target: Option<Selector>,
    body: Body,
    allow_name_change: bool,
    allow_kind_change: bool,
    schema: Arc<OpenApi>,
}

#[derive(Debug, Clone)]
enum Body {
    Strategic(Vec<Value>),
    Json(JsonPatch),
}

impl PatchTransformer {
    /// Reads the entry (its file through `files`) and decides what kind of patch it is.
    pub fn new(
        entry: &Patch,
        files: &dyn FileLoader,
        schema: Arc<OpenApi>,
    ) -> Result<PatchTransformer, Error> {
        let config = |cause: &str| Error::Config {
            transformer: "patches",
            cause: cause.to_string(),
        };
        let inline = entry.patch.trim();
        let (text, source_text) = match (inline.is_empty(), entry.path.is_empty()) {
            (true, true) => return Err(config("must specify one of patch and path")),
            (false, false) => return Err(config("patch and path can't be set at the same time")),
            (false, true) => (inline.to_string(), format!("[patch: {}]", go_quote(inline))),
            (true, false) => {
                let text = files.load(&entry.path).map_err(|source| Error::Load {
                    path: entry.path.clone(),
                    source,
                })?;
                (text, format!("[path: {}]", go_quote(&entry.path)))
            }
        };
        let strategic = strategic_patches(&text);
        let json = json_patch(&text);
        let body = match (strategic, json) {
            (Ok(_), Ok(_)) => return Err(Error::Ambiguous { source_text }),
            (Err(smp_cause), Err(json_cause)) => {
                return Err(Error::Unreadable {
                    source_text,
                    smp_cause,
                    json_cause: json_cause.to_string(),
                });
            }
            (Ok(patches), Err(_)) => Body::Strategic(patches),
            (Err(_), Ok(ops)) => Body::Json(ops),
        };
        let option = |name: &str| entry.options.get(name).copied().unwrap_or(false);
        Ok(PatchTransformer {
            source_text,
            target: entry.target.clone(),
            body,
            allow_name_change: option("allowNameChange"),
            allow_kind_change: option("allowKindChange"),
            schema,
        })
    }

    /// Applies the patch; returns a warning when the target selects nothing.
    pub fn apply(&self, resources: &mut ResMap) -> Result<Vec<Warning>, Error> {
        match &self.body {
            Body::Strategic(patches) => self.apply_strategic(patches, resources),
            Body::Json(ops) => self.apply_json(ops, resources),
        }
    }

    fn apply_strategic(
        &self,
        patches: &[Value],
        resources: &mut ResMap,
    ) -> Result<Vec<Warning>, Error> {
        let allow = Allow {
            name: self.allow_name_change,
            kind: self.allow_kind_change,
        };
        if let Some(target) = &self.target {
            if patches.len() > 1 {
                return Err(Error::TargetWithSeveralPatches {
                    source_text: self.source_text.clone(),
                });
            }
            let selected = select(resources, target)?;
            if selected.is_empty() {
                return Ok(vec![self.warning(target)]);
            }
            if let Some(patch) = patches.first() {
                apply_to_selected(
                    resources,
                    &selected,
                    patch,
                    allow,
                    &self.schema,
                    &self.source_text,
                )?;
            }
            return Ok(Vec::new());
        }
        for patch in patches {
            let index = find_by_id(resources, &ResId::of(patch))?;
            let resource = &mut resources.as_mut_vec()[index];
            if !apply_to_resource(resource, patch, allow, &self.schema, &self.source_text)? {
                resources.as_mut_vec().remove(index);
            }
        }
        Ok(Vec::new())
    }

    fn apply_json(&self, ops: &JsonPatch, resources: &mut ResMap) -> Result<Vec<Warning>, Error> {
        let Some(target) = &self.target else {
            return Err(Error::JsonWithoutTarget {
                source_text: self.source_text.clone(),
            });
        };
        let selected = select(resources, target)?;
        if selected.is_empty() {
            return Ok(vec![self.warning(target)]);
        }
        for index in selected {
            let resource = &mut resources.as_mut_vec()[index];
            resource.remember_id();
            apply_json_to_resource(resource, ops, &self.source_text)?;
        }
        Ok(Vec::new())
    }

    fn warning(&self, target: &Selector) -> Warning {
        Warning {
            patch: self.source_text.clone(),
            target: selector_text(target),
        }
    }
}

/// `patchesStrategicMerge:`: every entry (a file or an inline patch), in order.
#[derive(Debug, Clone)]
pub struct PatchStrategicMergeTransformer {
    patches: Vec<(String, Value)>,
    schema: Arc<OpenApi>,
}

impl PatchStrategicMergeTransformer {
    /// Reads every entry: text that parses as objects is an inline patch, anything else a file.
    pub fn new(
        entries: &[String],
        files: &dyn FileLoader,
        schema: Arc<OpenApi>,
    ) -> Result<PatchStrategicMergeTransformer, Error> {
        if entries.is_empty() {
            return Err(Error::Config {
                transformer: "patchesStrategicMerge",
                cause: "empty file path and empty patch content".into(),
            });
        }
        let mut patches = Vec::new();
        for entry in entries {
            let parsed = match strategic_patches(entry) {
                Ok(parsed) => parsed
                    .into_iter()
                    .map(|p| (format!("[patch: {}]", go_quote(entry)), p))
                    .collect(),
                Err(_) => {
                    let text = files.load(entry).map_err(|source| Error::Load {
                        path: entry.clone(),
                        source,
                    })?;
                    let parsed =
                        strategic_patches(&text).map_err(|cause| Error::InvalidStrategicMerge {
                            source_text: entry.clone(),
                            cause,
                        })?;
                    parsed
                        .into_iter()
                        .map(|p| (format!("[path: {}]", go_quote(entry)), p))
                        .collect::<Vec<_>>()
                }
            };
            patches.extend(parsed);
        }
        if patches.is_empty() {
            return Err(Error::Config {
                transformer: "patchesStrategicMerge",
                cause: format!("patch appears to be empty; files={entries:?}"),
            });
        }
        Ok(PatchStrategicMergeTransformer { patches, schema })
    }

    /// Applies each patch to the object with the patch's id (it must exist).
    pub fn apply(&self, resources: &mut ResMap) -> Result<Vec<Warning>, Error> {
        for (source_text, patch) in &self.patches {
            let index = find_by_id(resources, &ResId::of(patch))?;
            apply_to_selected(
                resources,
                &[index],
                patch,
                Allow::default(),
                &self.schema,
                source_text,
            )?;
        }
        Ok(Vec::new())
    }
}

/// One `patchesJson6902:` entry.
#[derive(Debug, Clone)]
pub struct PatchJson6902Transformer {
    source_text: String,
    target: Selector,
    ops: JsonPatch,
}

impl PatchJson6902Transformer {
    /// Reads the entry's operations (from `path` or inline `patch`).
    pub fn new(entry: &Patch, files: &dyn FileLoader) -> Result<PatchJson6902Transformer, Error> {
        let config = |cause: String| Error::Config {
            transformer: "patchesJson6902",
            cause,
        };
        let target = match &entry.target {
            Some(target) if !target.name.is_empty() => target.clone(),
            _ => return Err(config("must specify the target name".into())),
        };
        let (text, source_text) = match (entry.path.is_empty(), entry.patch.is_empty()) {
            (true, true) => return Err(config("empty file path and empty jsonOp".into())),
            (false, false) => {
                return Err(config(
                    "must specify a file path or jsonOp, not both".into(),
                ));
            }
            (false, true) => {
                let text = files.load(&entry.path).map_err(|source| Error::Load {
                    path: entry.path.clone(),
                    source,
                })?;
                if text.is_empty() {
                    return Err(config(format!(
                        "patch file '{}' empty seems to be empty",
                        entry.path
                    )));
                }
                (text, entry.path.clone())
            }
            (true, false) => (entry.patch.clone(), entry.patch.clone()),
        };
        let ops = JsonPatch::parse(&text).map_err(|source| Error::InvalidJson {
            source_text: source_text.clone(),
            source,
        })?;
        if ops.is_empty() {
            return Err(config(format!(
                "patch appears to be empty; file={}, JsonOp={}",
                entry.path, entry.patch
            )));
        }
        Ok(PatchJson6902Transformer {
            source_text,
            target,
            ops,
        })
    }

    /// Applies the operations to every selected object.
    pub fn apply(&self, resources: &mut ResMap) -> Result<Vec<Warning>, Error> {
        let selected = select(resources, &self.target)?;
        if selected.is_empty() {
            return Ok(vec![Warning {
                patch: self.source_text.clone(),
                target: selector_text(&self.target),
            }]);
        }
        for index in selected {
            apply_json_to_resource(
                &mut resources.as_mut_vec()[index],
                &self.ops,
                &self.source_text,
            )?;
        }
        Ok(Vec::new())
    }
}

/// Which identity changes a strategic merge patch may make.
#[derive(Debug, Clone, Copy, Default)]
struct Allow {
    name: bool,
    kind: bool,
}

/// Parses patch text as kustomize reads resources; an error when it is not objects.
fn strategic_patches(text: &str) -> Result<Vec<Value>, String> {
    let resources =
        crate::render::load::parse_resources(Path::new("patch"), text, &Default::default())
            .map_err(|e| e.to_string())?;
    Ok(resources
        .into_iter()
        .map(|r| Value::Object(r.object))
        .collect())
}

/// kustomize's `jsonPatchFromBytes`: empty text is refused, the rest decoded.
fn json_patch(text: &str) -> Result<JsonPatch, Json6902Error> {
    if text.is_empty() {
        return Err(Json6902Error::Parse {
            cause: "empty json patch operations".into(),
        });
    }
    JsonPatch::parse(text)
}

fn select(resources: &ResMap, target: &Selector) -> Result<Vec<usize>, Error> {
    selector::select(resources, target).map_err(|source| Error::Selector {
        target: selector_text(target),
        source,
    })
}

/// The one object that has `id` as its current or a previous id (kustomize's `GetById`).
fn find_by_id(resources: &ResMap, id: &ResId) -> Result<usize, Error> {
    let wanted = comparable(id);
    let matches: Vec<usize> = resources
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            selector::previous_ids(r)
                .iter()
                .chain(std::iter::once(&r.id()))
                .any(|i| comparable(i) == wanted)
        })
        .map(|(i, _)| i)
        .collect();
    match matches.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::Target {
            id: Box::new(id.clone()),
            matches: "no",
        }),
        _ => Err(Error::Target {
            id: Box::new(id.clone()),
            matches: "multiple",
        }),
    }
}

/// An id with kustomize's effective namespace, for equality as `ResId.Equals` decides.
fn comparable(id: &ResId) -> ResId {
    ResId {
        namespace: selector::effective_namespace(id),
        ..id.clone()
    }
}

/// kustomize's `resWrangler.ApplySmPatch`: a copy of the patch, with the target's group and
/// version and its metadata normalised, merged into each selected object; emptied objects are
/// dropped and ids must stay unique.
fn apply_to_selected(
    resources: &mut ResMap,
    selected: &[usize],
    patch: &Value,
    allow: Allow,
    schema: &OpenApi,
    source_text: &str,
) -> Result<(), Error> {
    let mut deleted = Vec::new();
    for &index in selected {
        let resource = &mut resources.as_mut_vec()[index];
        let prepared = prepare_patch(patch, resource);
        if !apply_to_resource(resource, &prepared, allow, schema, source_text)? {
            deleted.push(index);
        }
    }
    let list = resources.as_mut_vec();
    for index in deleted.into_iter().rev() {
        list.remove(index);
    }
    list.retain(|r| !r.object.is_empty());
    let mut seen = std::collections::HashSet::new();
    for resource in list.iter() {
        let id = comparable(&resource.id());
        if !seen.insert(id) {
            return Err(Error::IdConflict {
                id: Box::new(resource.id()),
            });
        }
    }
    Ok(())
}

/// What kustomize does to its copy of a patch before merging it into a selected object:
/// labels and annotations become string maps (dropped when empty), the namespace is dropped
/// when empty, apiVersion comes from the object.
fn prepare_patch(patch: &Value, resource: &Resource) -> Value {
    let mut copy = patch.clone();
    let Value::Object(object) = &mut copy else {
        return copy;
    };
    let meta = object
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    if let Value::Object(meta) = meta {
        for field in ["labels", "annotations"] {
            let strings: Map<String, Value> = match meta.get(field) {
                Some(Value::Object(map)) => map
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(meta_text(v))))
                    .collect(),
                _ => Map::new(),
            };
            meta.remove(field);
            if !strings.is_empty() {
                meta.insert(field.to_string(), Value::Object(strings));
            }
        }
        let namespace = meta
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        meta.remove("namespace");
        if !namespace.is_empty() {
            meta.insert("namespace".into(), Value::String(namespace));
        }
        let name = meta.get("name").map(meta_text).unwrap_or_default();
        meta.insert("name".into(), Value::String(name));
    }
    object.insert(
        "apiVersion".into(),
        Value::String(resource.gvk().api_version()),
    );
    copy
}

/// A metadata map value as kyaml reads it into a string map (the scalar's text).
fn meta_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_string(),
        Value::Array(_) | Value::Object(_) => String::new(),
    }
}

/// kustomize's `Resource.ApplySmPatch`: merges, then puts back the name, kind and namespace
/// unless allowed to change. Returns false when the patch deleted the object.
/// True when the JSON pointer `pointer` names a null field of `object`.
fn null_at(object: &Map<String, Value>, pointer: &str) -> bool {
    let mut tokens = pointer.splitn(3, '/').skip(1);
    let Some(first) = tokens.next() else {
        return false;
    };
    let first = first.replace("~1", "/").replace("~0", "~");
    let rest = tokens.next().map(|r| format!("/{r}")).unwrap_or_default();
    object
        .get(&first)
        .and_then(|v| v.pointer(&rest))
        .is_some_and(Value::is_null)
}

fn apply_to_resource(
    resource: &mut Resource,
    patch: &Value,
    allow: Allow,
    schema: &OpenApi,
    source_text: &str,
) -> Result<bool, Error> {
    let id = resource.id();
    let (name, namespace, kind) = (id.name.clone(), id.namespace.clone(), id.gvk.kind.clone());
    if allow.name || allow.kind {
        resource.remember_id();
    }
    let merged =
        strategic::merge_with_bare_nulls(&resource.to_value(), &resource.bare_nulls, patch, schema)
            .map_err(|source| Error::Merge {
                source_text: source_text.to_string(),
                id: Box::new(id.clone()),
                source,
            })?;
    let object = match merged {
        Some(Value::Object(object)) if !object.is_empty() => object,
        _ => {
            resource.object = Map::new();
            return Ok(false);
        }
    };
    resource.object = object;
    // The merge dropped the bare nulls it walked; those left (in replaced lists) stay bare.
    resource.bare_nulls.retain(|p| null_at(&resource.object, p));
    if !allow.kind {
        resource.object.insert("kind".into(), Value::String(kind));
    }
    if !allow.name {
        resource.set_name(&name);
    }
    if namespace.is_empty() {
        if let Some(Value::Object(meta)) = resource.object.get_mut("metadata") {
            meta.remove("namespace");
        }
    } else {
        resource.set_namespace(&namespace);
    }
    Ok(true)
}

/// Applies JSON operations to one object as kustomize does: the operations see the object with
/// kustomize's internal bookkeeping annotations (previous names, generator flags), which this
/// model keeps outside the object; those and the internal annotations the object carries are
/// put back afterwards, and annotations end as a string map (dropped when empty).
fn apply_json_to_resource(
    resource: &mut Resource,
    ops: &JsonPatch,
    source_text: &str,
) -> Result<(), Error> {
    let bookkeeping = bookkeeping_annotations(resource);
    let mut document = resource.to_value();
    if let Value::Object(object) = &mut document
        && !bookkeeping.is_empty()
    {
        let meta = object
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(meta) = meta {
            let annotations = meta
                .entry("annotations")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(annotations) = annotations {
                for (key, value) in &bookkeeping {
                    annotations.insert(key.clone(), Value::String(value.clone()));
                }
            }
        }
    }
    let internal: Vec<(String, String)> = string_annotations(&document)
        .into_iter()
        .filter(|(k, _)| {
            k.starts_with(INTERNAL_ANNOTATION_PREFIX)
                || LEGACY_INTERNAL_ANNOTATIONS.contains(&k.as_str())
        })
        .collect();
    let id = resource.id();
    ops.apply(&mut document).map_err(|source| Error::Json {
        source_text: source_text.to_string(),
        id: Box::new(id.clone()),
        source,
    })?;
    if document
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .is_some_and(Value::is_array)
    {
        return Err(Error::AnnotationsNotAMap {
            source_text: source_text.to_string(),
            id: Box::new(id),
        });
    }
    let mut annotations: Map<String, Value> = string_annotations(&document)
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    for (key, value) in internal {
        annotations.insert(key, Value::String(value));
    }
    for (key, _) in &bookkeeping {
        annotations.remove(key);
    }
    let kind = document
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let named = document
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let missing = if kind.is_empty() {
        Some("kind")
    } else if !named && !kind.ends_with("List") {
        Some("metadata.name")
    } else {
        None
    };
    if let Some(field) = missing {
        return Err(Error::IncompleteObject {
            source_text: source_text.to_string(),
            id: Box::new(id),
            field,
        });
    }
    resource.object = match document {
        Value::Object(object) => object,
        _ => Map::new(),
    };
    let meta = resource.metadata_mut();
    meta.remove("annotations");
    if !annotations.is_empty() {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    Ok(())
}

/// `metadata.annotations` as kyaml reads it into a string map.
fn string_annotations(document: &Value) -> Vec<(String, String)> {
    match document.get("metadata").and_then(|m| m.get("annotations")) {
        Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), meta_text(v))).collect(),
        _ => Vec::new(),
    }
}

/// The internal annotations kustomize would hold on the object at this point of the build:
/// previous names, namespaces and kinds once it was renamed (or patched by `patches:`), and
/// the generator's behaviour and hash flag for generated objects.
fn bookkeeping_annotations(resource: &Resource) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if !resource.previous_ids.is_empty() {
        let csv = |f: &dyn Fn(&ResId) -> String| {
            resource
                .previous_ids
                .iter()
                .map(f)
                .collect::<Vec<_>>()
                .join(",")
        };
        out.push((
            format!("{INTERNAL_ANNOTATION_PREFIX}previousKinds"),
            csv(&|id| id.gvk.kind.clone()),
        ));
        out.push((
            format!("{INTERNAL_ANNOTATION_PREFIX}previousNames"),
            csv(&|id| id.name.clone()),
        ));
        out.push((
            format!("{INTERNAL_ANNOTATION_PREFIX}previousNamespaces"),
            csv(&selector::effective_namespace),
        ));
    }
    if let Some(generator) = &resource.generator {
        let behavior = match generator.behavior.as_str() {
            "create" | "merge" | "replace" => generator.behavior.clone(),
            _ => "unspecified".to_string(),
        };
        out.push((
            format!("{INTERNAL_ANNOTATION_PREFIX}generatorBehavior"),
            behavior,
        ));
        if generator.needs_hash {
            out.push((
                format!("{INTERNAL_ANNOTATION_PREFIX}needsHashSuffix"),
                "enabled".to_string(),
            ));
        }
    }
    out
}

/// kustomize's `Selector.String()`: `group_version_kind|namespace|name:a=…:l=…`.
pub fn selector_text(selector: &Selector) -> String {
    let id = ResId {
        gvk: crate::model::Gvk {
            group: selector.group.clone(),
            version: selector.version.clone(),
            kind: selector.kind.clone(),
        },
        name: selector.name.clone(),
        namespace: selector.namespace.clone(),
    };
    format!(
        "{id}:a={}:l={}",
        selector.annotation_selector, selector.label_selector
    )
}

/// Go's `%q` for the texts kustomize quotes in messages.
fn go_quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("\"{text}\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn resources(text: &str) -> ResMap {
        crate::yaml::parse_manifests(text)
            .expect("valid yaml")
            .into_iter()
            .map(|v| match v {
                Value::Object(map) => Resource::new(map),
                _ => unreachable!("test objects are maps"),
            })
            .collect()
    }

    fn patch(yaml: &str) -> Patch {
        let value = crate::yaml::parse_documents(yaml)
            .expect("valid yaml")
            .remove(0);
        serde_json::from_value(value).expect("a patches entry")
    }

    fn no_files() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    fn run(entry: &str, objects: &mut ResMap) -> Result<Vec<Warning>, Error> {
        PatchTransformer::new(&patch(entry), &no_files(), OpenApi::builtin())?.apply(objects)
    }

    const OBJECTS: &str = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec: {replicas: 1}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: prod, labels: {app: api}}
spec: {replicas: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web, labels: {app: web}}
spec:
  ports: [{port: 80}]
";

    /// Expected objects are `kubectl kustomize` output for the same entries.
    #[test]
    fn targets_select_by_labels_and_keep_identity() {
        let mut objects = resources(OBJECTS);
        let entry = r#"
target: {kind: Deployment, labelSelector: "app in (web,api)"}
patch: |-
  apiVersion: apps/v1
  kind: Deployment
  metadata:
    name: placeholder
    namespace: elsewhere
    labels: {patched: "true"}
  spec:
    replicas: 3
"#;
        assert_eq!(run(entry, &mut objects).expect("applies"), Vec::new());
        let json = "
target: {kind: Service, name: web}
patch: |-
  - op: replace
    path: /metadata/name
    value: web-svc
  - op: add
    path: /spec/ports/-
    value: {port: 443}
";
        run(json, &mut objects).expect("applies");
        let by_id = "
patch: |-
  apiVersion: apps/v1
  kind: Deployment
  metadata: {name: api, namespace: prod}
  spec:
    template: {spec: {containers: [{name: c, image: i}]}}
";
        run(by_id, &mut objects).expect("applies");
        let expected = resources(
            "
apiVersion: apps/v1
kind: Deployment
metadata: {labels: {app: web, patched: 'true'}, name: web}
spec: {replicas: 3}
---
apiVersion: apps/v1
kind: Deployment
metadata: {labels: {app: api, patched: 'true'}, name: api, namespace: prod}
spec:
  replicas: 3
  template: {spec: {containers: [{image: i, name: c}]}}
---
apiVersion: v1
kind: Service
metadata: {labels: {app: web}, name: web-svc}
spec:
  ports: [{port: 80}, {port: 443}]
",
        );
        let objects_only: Vec<_> = objects.iter().map(Resource::to_value).collect();
        let expected_only: Vec<_> = expected.iter().map(Resource::to_value).collect();
        assert_eq!(objects_only, expected_only);
        // The JSON patch renamed the Service: its old id is remembered for references.
        assert_eq!(
            objects.as_slice()[2]
                .previous_ids
                .first()
                .map(|id| id.name.as_str()),
            Some("web")
        );
    }

    #[test]
    fn unmatched_targets_warn_and_unmatched_ids_fail() {
        let mut objects = resources(OBJECTS);
        let warnings = run(
            "{target: {kind: ConfigMap}, patch: '[{\"op\": \"add\", \"path\": \"/data\", \"value\": {}}]'}",
            &mut objects,
        )
        .expect("not an error");
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].target, "~G_~V_ConfigMap|~X|:a=:l=");
        let missing = run(
            "patch: '{apiVersion: v1, kind: ConfigMap, metadata: {name: nope}}'",
            &mut objects,
        );
        assert!(
            matches!(missing, Err(Error::Target { matches: "no", .. })),
            "{missing:?}"
        );
    }

    /// `patches:` records the old id before a JSON patch, so kustomize's object has internal
    /// annotations and `add /metadata/annotations/x` works; the legacy transformer does not.
    #[test]
    fn json_patches_see_kustomize_bookkeeping_annotations() {
        let add = "- {op: add, path: /metadata/annotations/foo, value: bar}";
        let mut objects = resources(OBJECTS);
        run(
            &format!("target: {{kind: Service}}\npatch: '{add}'"),
            &mut objects,
        )
        .expect("applies");
        let service = &objects.as_slice()[2];
        assert_eq!(
            service.annotations(),
            [("foo".to_string(), "bar".to_string())]
        );

        let mut objects = resources(OBJECTS);
        let legacy = patch(&format!(
            "{{target: {{kind: Service, name: web}}, patch: '{add}'}}"
        ));
        let result = PatchJson6902Transformer::new(&legacy, &no_files())
            .expect("valid")
            .apply(&mut objects);
        assert!(matches!(result, Err(Error::Json { .. })), "{result:?}");
    }

    #[test]
    fn patch_kind_is_detected_from_the_text() {
        let files = no_files();
        let make = |yaml: &str| PatchTransformer::new(&patch(yaml), &files, OpenApi::builtin());
        assert!(matches!(
            make("patch: '# nothing'"),
            Err(Error::Ambiguous { .. })
        ));
        assert!(matches!(
            make("patch: 'just text'"),
            Err(Error::Unreadable { .. })
        ));
        assert!(matches!(make("{}"), Err(Error::Config { .. })));
        assert!(matches!(make("{path: p.yaml}"), Err(Error::Load { .. })));
        let mut objects = resources(OBJECTS);
        let json_without_target =
            make("patch: '[{\"op\": \"remove\", \"path\": \"/spec\"}]'").expect("a JSON patch");
        assert!(matches!(
            json_without_target.apply(&mut objects),
            Err(Error::JsonWithoutTarget { .. })
        ));
    }

    #[test]
    fn name_changes_need_permission() {
        let entry = |options: &str| {
            format!(
                "
{options}
patch: |-
  apiVersion: apps/v1
  kind: Deployment
  metadata: {{name: web}}
  spec: {{replicas: 2}}
  ---
  apiVersion: apps/v1
  kind: Deployment
  metadata: {{name: web}}
"
            )
        };
        // Two documents in one entry apply one after the other, each by id.
        let mut objects = resources(OBJECTS);
        run(&entry(""), &mut objects).expect("applies");
        assert_eq!(objects.as_slice()[0].object["spec"]["replicas"], 2);

        let rename = "
options: {allowNameChange: true}
target: {name: web, kind: Deployment}
patch: |-
  apiVersion: apps/v1
  kind: Deployment
  metadata: {name: web-v2}
";
        let mut objects = resources(OBJECTS);
        run(rename, &mut objects).expect("applies");
        assert_eq!(objects.as_slice()[0].name(), "web-v2");
        assert_eq!(objects.as_slice()[0].previous_ids[0].name, "web");
        let mut objects = resources(OBJECTS);
        run(
            &rename.replace("allowNameChange: true", "allowNameChange: false"),
            &mut objects,
        )
        .expect("applies");
        assert_eq!(objects.as_slice()[0].name(), "web");
    }

    #[test]
    fn legacy_transformers_read_files_and_inline_text() {
        let files: BTreeMap<String, String> = [(
            "two.yaml".to_string(),
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 5}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\n$patch: delete\n".to_string(),
        )]
        .into();
        let mut objects = resources(OBJECTS);
        PatchStrategicMergeTransformer::new(&["two.yaml".to_string()], &files, OpenApi::builtin())
            .expect("reads the file")
            .apply(&mut objects)
            .expect("applies");
        assert_eq!(objects.len(), 2);
        assert_eq!(objects.as_slice()[0].object["spec"]["replicas"], 5);
        let empty = PatchStrategicMergeTransformer::new(
            &["# only a comment".to_string()],
            &files,
            OpenApi::builtin(),
        );
        assert!(empty.is_err());

        let json = patch(
            "{target: {kind: Deployment, name: api}, patch: '- {op: replace, path: /spec/replicas, value: 9}'}",
        );
        PatchJson6902Transformer::new(&json, &files)
            .expect("valid")
            .apply(&mut objects)
            .expect("applies");
        assert_eq!(objects.as_slice()[1].object["spec"]["replicas"], 9);
        let nameless = patch("{target: {kind: Deployment}, patch: '[]'}");
        assert!(PatchJson6902Transformer::new(&nameless, &files).is_err());
    }
}
