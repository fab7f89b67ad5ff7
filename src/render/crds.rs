//! `crds:` — OpenAPI definitions of custom kinds whose `x-kubernetes-*` extensions tell the
//! builtin transformers which fields hold names, labels and annotations, as kustomize's
//! `LoadConfigFromCRDs` (`api/internal/accumulator/loadconfigfromcrds.go`) reads them.
//!
//! A file maps type names (`github.com/x/api/v1.MyKind`) to `{Schema, Dependencies}`. A type
//! whose properties include `kind`, `apiVersion` and `metadata` is a kind (named by the last
//! dot-separated part of its type name); its properties are walked, following `$ref`s to other
//! types of the file:
//! - `x-kubernetes-annotation` → a `commonAnnotations` field spec,
//! - `x-kubernetes-label-selector` → a `commonLabels` field spec,
//! - `x-kubernetes-identity` → a `namePrefix` field spec,
//! - `x-kubernetes-object-ref-api-version` + `x-kubernetes-object-ref-kind` (+ optional
//!   `x-kubernetes-object-ref-name-key`, default `name`) → a name reference to that kind.
//!
//! Extension values count only when they are strings, as upstream's `GetString` requires.
//!
//! Invariant: reads only through the [`FileLoader`] given.

use serde_json::{Map, Value};

use crate::render::files::{FileLoader, LoadError};
use crate::render::transformers::TransformerConfig;
use crate::render::transformers::config::NameBackReference;
use crate::render::types::FieldSpec;

/// A `crds:` file could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrdError {
    /// The file could not be read.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The file is not a map of OpenAPI definitions.
    #[error("unable to parse open API definition from '{path}': {cause}")]
    Parse {
        /// The file as the kustomization names it.
        path: String,
        /// What is wrong with it.
        cause: String,
    },
    /// The field specs found conflict with each other.
    #[error("{path}: {cause}")]
    Merge {
        /// The file as the kustomization names it.
        path: String,
        /// The conflict.
        cause: String,
    },
}

/// The field specs declared by every file of `crds:`, merged.
pub fn load_crd_config(
    loader: &dyn FileLoader,
    paths: &[String],
) -> Result<TransformerConfig, CrdError> {
    let mut config = TransformerConfig::default();
    for path in paths {
        let text = loader.load(path)?;
        let definitions = parse_definitions(&text).map_err(|cause| CrdError::Parse {
            path: path.clone(),
            cause,
        })?;
        let found = config_from_definitions(&definitions);
        config.merge(&found).map_err(|e| CrdError::Merge {
            path: path.clone(),
            cause: e.to_string(),
        })?;
    }
    Ok(config)
}

/// JSON when the text starts with `{` (as upstream decides), YAML otherwise.
fn parse_definitions(text: &str) -> Result<Map<String, Value>, String> {
    let value = if text.starts_with('{') {
        serde_json::from_str(text).map_err(|e| e.to_string())?
    } else {
        crate::yaml::parse_documents(text)
            .map_err(|e| e.to_string())?
            .into_iter()
            .next()
            .unwrap_or(Value::Null)
    };
    match value {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        _ => Err("expected a map of type names to definitions".to_string()),
    }
}

/// The `Schema` of a definition (Go's JSON decoding matches the key case-insensitively).
fn schema_of(definition: &Value) -> Option<&Map<String, Value>> {
    definition
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("schema"))
        .and_then(|(_, v)| v.as_object())
}

fn properties_of(schema: &Map<String, Value>) -> Option<&Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

fn config_from_definitions(definitions: &Map<String, Value>) -> TransformerConfig {
    let mut config = TransformerConfig::default();
    // Upstream walks a Go map (random order); sorting keeps our output deterministic.
    let mut names: Vec<&String> = definitions.keys().collect();
    names.sort();
    for name in names {
        let Some(properties) = definitions
            .get(name)
            .and_then(schema_of)
            .and_then(properties_of)
        else {
            continue;
        };
        if !["kind", "apiVersion", "metadata"]
            .iter()
            .all(|k| properties.contains_key(*k))
        {
            continue;
        }
        let kind = name.rsplit('.').next().unwrap_or(name).to_string();
        let mut path = Vec::new();
        let mut chain = Vec::new();
        collect(&mut config, &kind, definitions, name, &mut path, &mut chain);
    }
    config
}

/// A string-valued `x-` extension of a property (keys compare case-insensitively).
fn extension<'a>(property: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    property
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .and_then(|(_, v)| v.as_str())
}

fn field_spec(kind: &str, path: &[String]) -> FieldSpec {
    FieldSpec {
        kind: kind.to_string(),
        path: path.join("/"),
        ..FieldSpec::default()
    }
}

fn collect(
    config: &mut TransformerConfig,
    kind: &str,
    definitions: &Map<String, Value>,
    type_name: &str,
    path: &mut Vec<String>,
    chain: &mut Vec<String>,
) {
    // A type reached again through its own `$ref`s would recurse forever (upstream crashes).
    if chain.iter().any(|t| t == type_name) {
        return;
    }
    let Some(properties) = definitions
        .get(type_name)
        .and_then(schema_of)
        .and_then(properties_of)
    else {
        return;
    };
    chain.push(type_name.to_string());
    let mut names: Vec<&String> = properties.keys().collect();
    names.sort();
    for name in names {
        let Some(property) = properties.get(name).and_then(Value::as_object) else {
            continue;
        };
        path.push(name.clone());
        if extension(property, "x-kubernetes-annotation").is_some() {
            push_unique(&mut config.common_annotations, field_spec(kind, path));
        }
        if extension(property, "x-kubernetes-label-selector").is_some() {
            push_unique(&mut config.common_labels, field_spec(kind, path));
        }
        if extension(property, "x-kubernetes-identity").is_some() {
            push_unique(&mut config.name_prefix, field_spec(kind, path));
        }
        if let (Some(version), Some(ref_kind)) = (
            extension(property, "x-kubernetes-object-ref-api-version"),
            extension(property, "x-kubernetes-object-ref-kind"),
        ) {
            let name_key =
                extension(property, "x-kubernetes-object-ref-name-key").unwrap_or("name");
            let mut referrer_path = path.clone();
            referrer_path.push(name_key.to_string());
            add_name_reference(config, version, ref_kind, field_spec(kind, &referrer_path));
        }
        if let Some(reference) = property.get("$ref").and_then(Value::as_str) {
            collect(config, kind, definitions, reference, path, chain);
        }
        path.pop();
    }
    chain.pop();
}

fn push_unique(specs: &mut Vec<FieldSpec>, spec: FieldSpec) {
    if !specs.contains(&spec) {
        specs.push(spec);
    }
}

fn add_name_reference(config: &mut TransformerConfig, version: &str, kind: &str, spec: FieldSpec) {
    if let Some(existing) = config
        .name_reference
        .iter_mut()
        .find(|r| r.kind == kind && r.version == version && r.group.is_empty())
    {
        push_unique(&mut existing.referrers, spec);
        return;
    }
    config.name_reference.push(NameBackReference {
        group: String::new(),
        version: version.to_string(),
        kind: kind.to_string(),
        referrers: vec![spec],
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const DEFINITIONS: &str = r#"{
      "example.com/api/v1.MyKind": {"Schema": {"properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"},
        "metadata": {"$ref": "k8s.io/apimachinery/pkg/apis/meta/v1.ObjectMeta"},
        "spec": {"$ref": "example.com/api/v1.MyKindSpec"}}}},
      "example.com/api/v1.MyKindSpec": {"Schema": {"properties": {
        "secretRef": {"x-kubernetes-object-ref-api-version": "v1",
                      "x-kubernetes-object-ref-kind": "Secret",
                      "$ref": "k8s.io/api/core/v1.LocalObjectReference"},
        "beeRef": {"x-kubernetes-object-ref-api-version": "v1beta1",
                   "x-kubernetes-object-ref-kind": "Bee", "x-kubernetes-object-ref-name-key": "id"},
        "selector": {"x-kubernetes-label-selector": ""},
        "notes": {"x-kubernetes-annotation": true},
        "loop": {"$ref": "example.com/api/v1.MyKindSpec"}}}}
    }"#;

    #[test]
    fn extensions_become_field_specs() {
        let files: BTreeMap<String, String> = [("crd.json".to_string(), DEFINITIONS.to_string())]
            .into_iter()
            .collect();
        let config = load_crd_config(&files, &["crd.json".to_string()]).unwrap();
        let secret = config
            .name_reference
            .iter()
            .find(|r| r.kind == "Secret")
            .unwrap();
        assert_eq!(secret.version, "v1");
        assert_eq!(secret.referrers[0].kind, "MyKind");
        assert_eq!(secret.referrers[0].path, "spec/secretRef/name");
        let bee = config
            .name_reference
            .iter()
            .find(|r| r.kind == "Bee")
            .unwrap();
        assert_eq!(bee.referrers[0].path, "spec/beeRef/id");
        assert_eq!(config.common_labels[0].path, "spec/selector");
        // Only string extension values count, as upstream reads them with GetString.
        assert!(config.common_annotations.is_empty());
    }

    #[test]
    fn yaml_definitions_and_identity_fields() {
        let yaml = "example.com/v1.Widget:\n  Schema:\n    properties:\n      apiVersion: {type: string}\n      kind: {type: string}\n      metadata: {type: object}\n      alias:\n        x-kubernetes-identity: \"\"\n      notes:\n        x-kubernetes-annotation: \"\"\n";
        let files: BTreeMap<String, String> = [("crd.yaml".to_string(), yaml.to_string())]
            .into_iter()
            .collect();
        let config = load_crd_config(&files, &["crd.yaml".to_string()]).unwrap();
        assert_eq!(config.name_prefix[0].path, "alias");
        assert_eq!(config.name_prefix[0].kind, "Widget");
        assert_eq!(config.common_annotations[0].path, "notes");
    }

    #[test]
    fn unreadable_definitions_name_the_file() {
        let files: BTreeMap<String, String> = [("crd.json".to_string(), "{not json".to_string())]
            .into_iter()
            .collect();
        let err = load_crd_config(&files, &["crd.json".to_string()]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("unable to parse open API definition from 'crd.json'")
        );
    }
}
