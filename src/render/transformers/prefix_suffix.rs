//! `namePrefix:` / `nameSuffix:`: prepends or appends to `metadata.name` (and any other field
//! the configuration names) of every object except CRDs, APIServices and Namespaces.
//!
//! The prefixes and suffixes applied are recorded on the object, as kustomize does, in
//! internal annotations; name references use them to tell apart copies of one base that
//! got different prefixes. [`remove_build_annotations`] drops them when the build is done.

use serde_json::{Map, Value};

use super::fieldspec::{self, CreateKind};
use super::{Result, field_error};
use crate::model::{Gvk, ResMap, Resource};
use crate::render::types::FieldSpec;

/// Internal annotation listing the prefixes applied, oldest first, comma-separated.
pub const PREFIXES_ANNOTATION: &str = "internal.config.kubernetes.io/prefixes";
/// Internal annotation listing the suffixes applied, oldest first, comma-separated.
pub const SUFFIXES_ANNOTATION: &str = "internal.config.kubernetes.io/suffixes";

/// Whether the transformer prepends or appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affix {
    /// `namePrefix`.
    Prefix,
    /// `nameSuffix`.
    Suffix,
}

/// The prefix or suffix transformer.
#[derive(Debug, Clone, PartialEq)]
pub struct PrefixSuffixTransformer {
    /// Prefix or suffix.
    pub affix: Affix,
    /// The text to add.
    pub text: String,
    /// Where to add it (the configuration's `namePrefix` / `nameSuffix` specs).
    pub field_specs: Vec<FieldSpec>,
}

/// Kinds whose names are never prefixed or suffixed: (group, kind); empty group means any.
const SKIPPED_KINDS: &[(&str, &str)] = &[
    ("", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    ("", "Namespace"),
];

impl PrefixSuffixTransformer {
    /// Adds the prefix or suffix to every selected field of every object.
    pub fn apply(&self, resmap: &mut ResMap) -> Result<()> {
        for resource in resmap.iter_mut() {
            // kustomize selects by the id the object had when it was first read.
            let original = original_gvk(resource);
            if SKIPPED_KINDS.iter().any(|(group, kind)| {
                *kind == original.kind && (group.is_empty() || *group == original.group)
            }) {
                continue;
            }
            for spec in &self.field_specs {
                if !gvk_selected(&original, spec) {
                    continue;
                }
                if spec.path == "metadata/name" && !self.text.is_empty() {
                    append_csv_annotation(resource, self.annotation(), &self.text);
                    resource.remember_id();
                }
                let id = resource.id();
                let gvk = resource.gvk();
                let mut object = Value::Object(std::mem::take(&mut resource.object));
                let result = fieldspec::apply(
                    &mut object,
                    &gvk,
                    spec,
                    Some(CreateKind::Scalar),
                    &mut |field| self.set(field),
                );
                if let Value::Object(map) = object {
                    resource.object = map;
                }
                result.map_err(field_error(id, &spec.path))?;
            }
        }
        Ok(())
    }

    fn annotation(&self) -> &'static str {
        match self.affix {
            Affix::Prefix => PREFIXES_ANNOTATION,
            Affix::Suffix => SUFFIXES_ANNOTATION,
        }
    }

    fn set(&self, field: &mut Value) -> std::result::Result<(), String> {
        let current = match field {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => String::new(),
            Value::Object(_) | Value::Array(_) => {
                return Err("expected a scalar name field".to_string());
            }
        };
        *field = Value::String(match self.affix {
            Affix::Prefix => format!("{}{current}", self.text),
            Affix::Suffix => format!("{current}{}", self.text),
        });
        Ok(())
    }
}

/// The Gvk of the object's original id: the current apiVersion with the first kind it had.
pub fn original_gvk(resource: &Resource) -> Gvk {
    match resource.previous_ids.first() {
        Some(id) => Gvk {
            kind: id.gvk.kind.clone(),
            ..resource.gvk()
        },
        None => resource.gvk(),
    }
}

fn gvk_selected(gvk: &Gvk, spec: &FieldSpec) -> bool {
    (spec.group.is_empty() || spec.group == gvk.group)
        && (spec.version.is_empty() || spec.version == gvk.version)
        && (spec.kind.is_empty() || spec.kind == gvk.kind)
}

fn append_csv_annotation(resource: &mut Resource, key: &str, value: &str) {
    let meta = resource.metadata_mut();
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !annotations.is_object() {
        *annotations = Value::Object(Map::new());
    }
    if let Value::Object(map) = annotations {
        let joined = match map.get(key).and_then(Value::as_str) {
            Some(existing) => format!("{existing},{value}"),
            None => value.to_string(),
        };
        map.insert(key.to_string(), Value::String(joined));
    }
}

fn csv_annotation(resource: &Resource, key: &str) -> Vec<String> {
    resource
        .object
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
        .map(|s| s.split(',').map(str::to_string).collect())
        .unwrap_or_default()
}

/// The prefixes applied to the object so far, oldest first.
pub fn name_prefixes(resource: &Resource) -> Vec<String> {
    csv_annotation(resource, PREFIXES_ANNOTATION)
}

/// The suffixes applied to the object so far, oldest first.
pub fn name_suffixes(resource: &Resource) -> Vec<String> {
    csv_annotation(resource, SUFFIXES_ANNOTATION)
}

/// Drops the internal bookkeeping annotations (and an `annotations` map left empty).
pub fn remove_build_annotations(resmap: &mut ResMap) {
    for resource in resmap.iter_mut() {
        let Some(Value::Object(meta)) = resource.object.get_mut("metadata") else {
            continue;
        };
        let Some(Value::Object(annotations)) = meta.get_mut("annotations") else {
            continue;
        };
        let before = annotations.len();
        annotations.retain(|key, _| key != PREFIXES_ANNOTATION && key != SUFFIXES_ANNOTATION);
        if before != annotations.len() && annotations.is_empty() {
            meta.remove("annotations");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::transformers::TransformerConfig;
    use serde_json::json;

    fn resmap(objects: Vec<Value>) -> ResMap {
        objects
            .into_iter()
            .map(|v| match v {
                Value::Object(map) => Resource::new(map),
                _ => unreachable!("test objects are maps"),
            })
            .collect()
    }

    #[test]
    fn names_get_prefix_and_suffix_except_skipped_kinds() {
        let config = TransformerConfig::builtin();
        let mut map = resmap(vec![
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}}),
        ]);
        PrefixSuffixTransformer {
            affix: Affix::Prefix,
            text: "a-".into(),
            field_specs: config.name_prefix,
        }
        .apply(&mut map)
        .unwrap();
        PrefixSuffixTransformer {
            affix: Affix::Suffix,
            text: "-z".into(),
            field_specs: config.name_suffix,
        }
        .apply(&mut map)
        .unwrap();
        let web = &map.as_slice()[0];
        assert_eq!(web.name(), "a-web-z");
        assert_eq!(name_prefixes(web), vec!["a-"]);
        assert_eq!(name_suffixes(web), vec!["-z"]);
        assert_eq!(
            web.previous_ids
                .iter()
                .map(|id| id.name.as_str())
                .collect::<Vec<_>>(),
            vec!["web", "a-web"]
        );
        assert_eq!(map.as_slice()[1].name(), "ns");

        remove_build_annotations(&mut map);
        assert_eq!(
            map.as_slice()[0].to_value(),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a-web-z"}})
        );
    }
}
