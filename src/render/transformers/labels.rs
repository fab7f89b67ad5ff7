//! `commonLabels:` and `labels:`: adds labels to metadata and, as configured, to selectors and
//! pod templates. [`add_entries`] is shared with the annotations transformer: both set string
//! entries in maps found (or created) along field specs.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::config::{TransformerConfig, merge_field_specs};
use super::fieldspec::{self, CreateKind};
use super::{Result, field_error};
use crate::model::{ResId, ResMap};
use crate::render::types::{FieldSpec, Label};

/// The label transformer: these labels, at these fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelTransformer {
    /// Labels to set.
    pub labels: BTreeMap<String, String>,
    /// Where to set them.
    pub field_specs: Vec<FieldSpec>,
}

impl LabelTransformer {
    /// The transformer for `commonLabels` (metadata, selectors and templates).
    pub fn common(
        labels: &BTreeMap<String, String>,
        config: &TransformerConfig,
    ) -> LabelTransformer {
        LabelTransformer {
            labels: labels.clone(),
            field_specs: config.common_labels.clone(),
        }
    }

    /// The transformer for one `labels:` entry: its own fields, the configuration's `labels`
    /// specs, then selectors (`includeSelectors`) or templates (`includeTemplates`) or only
    /// `metadata/labels`.
    pub fn from_label(label: &Label, config: &TransformerConfig) -> Result<LabelTransformer> {
        let mut specs = label.field_specs.clone();
        let mut merge = |incoming: &[FieldSpec]| merge_field_specs(&mut specs, incoming, "Labels");
        merge(&config.labels)?;
        if label.include_selectors {
            merge(&config.common_labels)?;
        } else {
            if label.include_templates {
                merge(&config.template_labels)?;
            }
            merge(&[FieldSpec {
                path: "metadata/labels".into(),
                create_if_not_present: true,
                ..FieldSpec::default()
            }])?;
        }
        Ok(LabelTransformer {
            labels: label.pairs.clone(),
            field_specs: specs,
        })
    }

    /// Sets the labels on every object.
    pub fn apply(&self, resmap: &mut ResMap) -> Result<()> {
        add_entries(resmap, &self.labels, &self.field_specs)
    }
}

/// Sets every `key: value` pair (as strings), in key order, in the maps each spec reaches in
/// every object, creating maps where a spec says `create`.
pub fn add_entries(
    resmap: &mut ResMap,
    entries: &BTreeMap<String, String>,
    specs: &[FieldSpec],
) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    for resource in resmap.iter_mut() {
        let gvk = resource.gvk();
        let mut object = Value::Object(std::mem::take(&mut resource.object));
        let mut result = Ok(());
        'keys: for (key, value) in entries {
            for spec in specs {
                let mut set = |field: &mut Value| set_entry(field, key, value);
                if let Err(cause) =
                    fieldspec::apply(&mut object, &gvk, spec, Some(CreateKind::Mapping), &mut set)
                {
                    // The id is built only for the error: labels never touch the name.
                    result = Err(field_error(ResId::of(&object), &spec.path)(cause));
                    break 'keys;
                }
            }
        }
        if let Value::Object(map) = object {
            resource.object = map;
        }
        result?;
    }
    Ok(())
}

fn set_entry(field: &mut Value, key: &str, value: &str) -> std::result::Result<(), String> {
    if field.is_null() {
        *field = Value::Object(Map::new());
    }
    match field {
        Value::Object(map) => {
            map.insert(key.to_string(), Value::String(value.to_string()));
            Ok(())
        }
        _ => Err(format!(
            "wrong node kind: expected MappingNode to set {key}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Resource;
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

    fn deployment() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"template": {"spec": {"containers": []}}}})
    }

    fn pairs() -> BTreeMap<String, String> {
        BTreeMap::from([("app".to_string(), "web".to_string())])
    }

    #[test]
    fn common_labels_reach_selectors_and_templates() {
        let config = TransformerConfig::builtin();
        let mut map = resmap(vec![deployment()]);
        LabelTransformer::common(&pairs(), &config)
            .apply(&mut map)
            .unwrap();
        assert_eq!(
            map.as_slice()[0].to_value(),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "web", "labels": {"app": "web"}},
                   "spec": {"template": {"spec": {"containers": []}, "metadata": {"labels": {"app": "web"}}},
                            "selector": {"matchLabels": {"app": "web"}}}})
        );
    }

    #[test]
    fn plain_labels_touch_metadata_only_and_templates_on_request() {
        let config = TransformerConfig::builtin();
        let label = Label {
            pairs: pairs(),
            ..Label::default()
        };
        let mut map = resmap(vec![deployment()]);
        LabelTransformer::from_label(&label, &config)
            .unwrap()
            .apply(&mut map)
            .unwrap();
        let obj = map.as_slice()[0].to_value();
        assert_eq!(obj["metadata"]["labels"], json!({"app": "web"}));
        assert!(obj["spec"].get("selector").is_none());
        assert!(obj["spec"]["template"].get("metadata").is_none());

        let label = Label {
            pairs: pairs(),
            include_templates: true,
            ..Label::default()
        };
        let mut map = resmap(vec![deployment()]);
        LabelTransformer::from_label(&label, &config)
            .unwrap()
            .apply(&mut map)
            .unwrap();
        let obj = map.as_slice()[0].to_value();
        assert_eq!(
            obj["spec"]["template"]["metadata"]["labels"],
            json!({"app": "web"})
        );
        assert!(obj["spec"].get("selector").is_none());
    }
}
