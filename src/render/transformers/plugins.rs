//! Builtin transformer plugins named in a kustomization's `transformers:` list: objects with
//! `apiVersion: builtin` and a builtin kind, configured by their own fields. Anything else
//! would need plugin execution, which reconcile does not do.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::annotations::AnnotationsTransformer;
use super::images::ImageTagTransformer;
use super::labels::LabelTransformer;
use super::namespace::{NamespaceTransformer, SubjectMode};
use super::prefix_suffix::{Affix, PrefixSuffixTransformer};
use super::replicas::ReplicaCountTransformer;
use super::{Error, Result, Step, parse_single_document};
use crate::model::Resource;
use crate::render::files::FileLoader;
use crate::render::patch::openapi::OpenApi;
use crate::render::patch::{
    PatchJson6902Transformer, PatchStrategicMergeTransformer, PatchTransformer,
};
use crate::render::replacements::ReplacementTransformer;
use crate::render::types::{FieldSpec, Image, Patch, ReplacementField, Replica, Selector};

/// The steps a plugin configuration object stands for (two for `PrefixSuffixTransformer`);
/// `schema` gives the merge keys of strategic merge patches.
pub fn configure_plugin(
    config: &Resource,
    files: &dyn FileLoader,
    schema: Arc<OpenApi>,
) -> Result<Vec<Step>> {
    let gvk = config.gvk();
    if !(gvk.group.is_empty() && gvk.version == "builtin") {
        return Err(Error::UnsupportedTransformer { kind: gvk.kind });
    }
    let fields = &config.object;
    let kind = gvk.kind.as_str();
    let err = |cause: String| Error::Config {
        transformer: kind.to_string(),
        cause,
    };
    let specs = || -> Result<Option<Vec<FieldSpec>>> { optional(fields, "fieldSpecs", kind) };
    let required_specs = || -> Result<Vec<FieldSpec>> {
        specs()?.ok_or_else(|| err("fieldSpecs is not expected to be nil".into()))
    };
    let steps = match kind {
        "PrefixSuffixTransformer" | "PrefixTransformer" | "SuffixTransformer" => {
            let field_specs = required_specs()?;
            let mut steps = Vec::new();
            if kind != "SuffixTransformer" {
                steps.push(Step::PrefixSuffix(PrefixSuffixTransformer {
                    affix: Affix::Prefix,
                    text: string_field(fields, "prefix"),
                    field_specs: field_specs.clone(),
                }));
            }
            if kind != "PrefixTransformer" {
                steps.push(Step::PrefixSuffix(PrefixSuffixTransformer {
                    affix: Affix::Suffix,
                    text: string_field(fields, "suffix"),
                    field_specs,
                }));
            }
            steps
        }
        "LabelTransformer" => vec![Step::Labels(LabelTransformer {
            labels: string_map(fields, "labels"),
            field_specs: specs()?.unwrap_or_default(),
        })],
        "AnnotationsTransformer" => vec![Step::Annotations(AnnotationsTransformer {
            annotations: string_map(fields, "annotations"),
            field_specs: specs()?.unwrap_or_default(),
        })],
        "NamespaceTransformer" => vec![Step::Namespace(NamespaceTransformer {
            namespace: config.namespace().to_string(),
            field_specs: specs()?.unwrap_or_default(),
            unset_only: fields
                .get("unsetOnly")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            role_binding_subjects: SubjectMode::parse(&string_field(
                fields,
                "setRoleBindingSubjects",
            ))?,
        })],
        "ImageTagTransformer" => vec![Step::Images(ImageTagTransformer {
            image: optional::<Image>(fields, "imageTag", kind)?.unwrap_or_default(),
            field_specs: specs()?.unwrap_or_default(),
        })],
        "ReplicaCountTransformer" => vec![Step::Replicas(ReplicaCountTransformer {
            replica: optional::<Replica>(fields, "replica", kind)?.unwrap_or_default(),
            field_specs: specs()?.unwrap_or_default(),
        })],
        "ReplacementTransformer" => {
            let list: Vec<ReplacementField> =
                optional(fields, "replacements", kind)?.unwrap_or_default();
            let parse = |text: &str| parse_single_document(text);
            vec![Step::Replacements(ReplacementTransformer::from_fields(
                &list, files, &parse,
            )?)]
        }
        "PatchTransformer" => {
            let entry = Patch {
                path: string_field(fields, "path"),
                patch: string_field(fields, "patch"),
                target: optional::<Selector>(fields, "target", kind)?,
                options: optional::<BTreeMap<String, bool>>(fields, "options", kind)?
                    .unwrap_or_default(),
            };
            vec![Step::Patch(PatchTransformer::new(&entry, files, schema)?)]
        }
        "PatchJson6902Transformer" => {
            let entry = Patch {
                path: string_field(fields, "path"),
                patch: string_field(fields, "jsonOp"),
                target: optional::<Selector>(fields, "target", kind)?,
                options: BTreeMap::new(),
            };
            vec![Step::PatchJson6902(PatchJson6902Transformer::new(
                &entry, files,
            )?)]
        }
        "PatchStrategicMergeTransformer" => {
            let mut patches: Vec<String> = optional(fields, "paths", kind)?.unwrap_or_default();
            let inline = string_field(fields, "patches");
            if patches.is_empty() && inline.is_empty() {
                return Err(err("empty file path and empty patch content".into()));
            }
            if !inline.is_empty() {
                patches.push(inline);
            }
            vec![Step::PatchStrategicMerge(
                PatchStrategicMergeTransformer::new(&patches, files, schema)?,
            )]
        }
        other => {
            return Err(Error::UnknownBuiltin {
                kind: other.to_string(),
            });
        }
    };
    Ok(steps)
}

/// A field read with serde, `None` when absent or null.
fn optional<T: DeserializeOwned>(
    fields: &Map<String, Value>,
    key: &str,
    kind: &str,
) -> Result<Option<T>> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => serde_json::from_value(value.clone())
            .map(Some)
            .map_err(|e| Error::Config {
                transformer: kind.to_string(),
                cause: format!("{key}: {e}"),
            }),
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn string_field(fields: &Map<String, Value>, key: &str) -> String {
    fields.get(key).and_then(scalar_text).unwrap_or_default()
}

fn string_map(fields: &Map<String, Value>, key: &str) -> BTreeMap<String, String> {
    fields
        .get(key)
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| scalar_text(v).map(|v| (k.clone(), v)))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ResMap;
    use serde_json::json;

    fn resource(value: Value) -> Resource {
        match value {
            Value::Object(map) => Resource::new(map),
            _ => unreachable!("test objects are maps"),
        }
    }

    #[test]
    fn prefix_suffix_plugin_configures_both_steps() {
        let config = resource(json!({
            "apiVersion": "builtin", "kind": "PrefixSuffixTransformer", "metadata": {"name": "x"},
            "prefix": "baked-", "suffix": "-pie", "fieldSpecs": [{"path": "metadata/name"}]
        }));
        let files = BTreeMap::new();
        let steps = configure_plugin(&config, &files, OpenApi::builtin()).unwrap();
        let mut map: ResMap = [resource(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "apple"}}),
        )]
        .into_iter()
        .collect();
        for step in &steps {
            step.apply(&mut map).unwrap();
        }
        assert_eq!(map.as_slice()[0].name(), "baked-apple-pie");
    }

    #[test]
    fn namespace_plugin_reads_metadata_namespace() {
        let config = resource(json!({
            "apiVersion": "builtin", "kind": "NamespaceTransformer",
            "metadata": {"name": "x", "namespace": "test"},
            "fieldSpecs": [{"path": "metadata/namespace", "create": true}]
        }));
        let steps = configure_plugin(&config, &BTreeMap::new(), OpenApi::builtin()).unwrap();
        let mut map: ResMap = [resource(
            json!({"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "w"}}),
        )]
        .into_iter()
        .collect();
        steps[0].apply(&mut map).unwrap();
        assert_eq!(map.as_slice()[0].namespace(), "test");
    }

    #[test]
    fn other_plugins_are_refused() {
        let config = resource(
            json!({"apiVersion": "someteam.example.com/v1", "kind": "ChartInflator", "metadata": {"name": "x"}}),
        );
        let err = configure_plugin(&config, &BTreeMap::new(), OpenApi::builtin())
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("transformer kind ChartInflator is not supported (no plugin execution)")
        );
    }
}
