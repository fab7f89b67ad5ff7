//! `commonAnnotations:`: adds annotations to metadata and pod templates.

use std::collections::BTreeMap;

use super::Result;
use super::config::TransformerConfig;
use super::labels::add_entries;
use crate::model::ResMap;
use crate::render::types::FieldSpec;

/// The annotations transformer: these annotations, at these fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnnotationsTransformer {
    /// Annotations to set.
    pub annotations: BTreeMap<String, String>,
    /// Where to set them.
    pub field_specs: Vec<FieldSpec>,
}

impl AnnotationsTransformer {
    /// The transformer for `commonAnnotations`.
    pub fn common(
        annotations: &BTreeMap<String, String>,
        config: &TransformerConfig,
    ) -> AnnotationsTransformer {
        AnnotationsTransformer {
            annotations: annotations.clone(),
            field_specs: config.common_annotations.clone(),
        }
    }

    /// Sets the annotations on every object.
    pub fn apply(&self, resmap: &mut ResMap) -> Result<()> {
        add_entries(resmap, &self.annotations, &self.field_specs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Resource;
    use serde_json::{Value, json};

    #[test]
    fn annotations_reach_metadata_and_job_templates() {
        let Value::Object(job) = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
                                        "spec": {"template": {"spec": {}}}})
        else {
            unreachable!()
        };
        let mut map: ResMap = [Resource::new(job)].into_iter().collect();
        let pairs = BTreeMap::from([("team".to_string(), "a".to_string())]);
        AnnotationsTransformer::common(&pairs, &TransformerConfig::builtin())
            .apply(&mut map)
            .unwrap();
        let obj = map.as_slice()[0].to_value();
        assert_eq!(obj["metadata"]["annotations"], json!({"team": "a"}));
        assert_eq!(
            obj["spec"]["template"]["metadata"]["annotations"],
            json!({"team": "a"})
        );
    }
}
