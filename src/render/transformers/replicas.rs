//! `replicas:`: sets the replica count of the named workloads.

use serde_json::{Number, Value};

use super::fieldspec::{self, CreateKind};
use super::{Error, Result, field_error};
use crate::model::{Gvk, ResMap};
use crate::render::types::{FieldSpec, Replica};

/// The replica transformer for one `replicas:` entry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplicaCountTransformer {
    /// Which workload and how many replicas.
    pub replica: Replica,
    /// Where replica counts live (the configuration's `replicas` specs).
    pub field_specs: Vec<FieldSpec>,
}

impl ReplicaCountTransformer {
    /// Sets the count on every object named so (now or before a rename) whose kind has a
    /// replicas field; fails when no object matches.
    pub fn apply(&self, resmap: &mut ResMap) -> Result<()> {
        let mut found = false;
        for spec in &self.field_specs {
            for resource in resmap.iter_mut() {
                let current = resource.id();
                let gvk = current.gvk.clone();
                let matches = std::iter::once(current.clone())
                    .chain(
                        resource
                            .previous_ids
                            .iter()
                            .map(|prev| crate::model::ResId {
                                gvk: Gvk {
                                    kind: prev.gvk.kind.clone(),
                                    ..gvk.clone()
                                },
                                ..prev.clone()
                            }),
                    )
                    .any(|id| id.name == self.replica.name && gvk_selected(&id.gvk, spec));
                if !matches {
                    continue;
                }
                found = true;
                let mut object = Value::Object(std::mem::take(&mut resource.object));
                let count = self.replica.count;
                let result = fieldspec::apply(
                    &mut object,
                    &gvk,
                    spec,
                    Some(CreateKind::Scalar),
                    &mut |field| {
                        *field = Value::Number(Number::from(count));
                        Ok(())
                    },
                );
                if let Value::Object(map) = object {
                    resource.object = map;
                }
                result.map_err(field_error(current, &spec.path))?;
            }
        }
        if !found {
            let gvks: Vec<String> = self.field_specs.iter().map(spec_gvk_string).collect();
            return Err(Error::NoReplicaTarget {
                name: self.replica.name.clone(),
                kinds: gvks.join(" "),
            });
        }
        Ok(())
    }
}

fn gvk_selected(gvk: &Gvk, spec: &FieldSpec) -> bool {
    (spec.group.is_empty() || spec.group == gvk.group)
        && (spec.version.is_empty() || spec.version == gvk.version)
        && (spec.kind.is_empty() || spec.kind == gvk.kind)
}

/// kustomize's `Kind.version.group` spelling with placeholders for empty parts.
fn spec_gvk_string(spec: &FieldSpec) -> String {
    let or = |s: &str, placeholder: &str| {
        if s.is_empty() {
            placeholder.to_string()
        } else {
            s.to_string()
        }
    };
    format!(
        "{}.{}.{}",
        or(&spec.kind, "[noKind]"),
        or(&spec.version, "[noVer]"),
        or(&spec.group, "[noGrp]")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Resource;
    use crate::render::transformers::TransformerConfig;
    use serde_json::json;

    #[test]
    fn count_is_set_by_current_or_previous_name() {
        let Value::Object(map) =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}})
        else {
            unreachable!()
        };
        let mut resource = Resource::new(map);
        resource.remember_id();
        resource.set_name("p-web");
        let mut resmap: ResMap = [resource].into_iter().collect();
        let transformer = |name: &str| ReplicaCountTransformer {
            replica: Replica {
                name: name.into(),
                count: 3,
            },
            field_specs: TransformerConfig::builtin().replicas,
        };
        transformer("web").apply(&mut resmap).unwrap();
        assert_eq!(
            resmap.as_slice()[0].to_value()["spec"]["replicas"],
            json!(3)
        );
        assert!(transformer("nope").apply(&mut resmap).is_err());
    }
}
