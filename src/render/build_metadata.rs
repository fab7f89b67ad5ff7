//! `buildMetadata: [originAnnotations, transformerAnnotations, managedByLabel]` and the
//! clean-up kustomize does at the very end of every build (`api/krusty/kustomizer.go`).
//!
//! - `originAnnotations`: `config.kubernetes.io/origin` tells where each object came from
//!   (`path:` of its file, or `configuredIn:`/`configuredBy:` of the generator that made it);
//! - `transformerAnnotations`: `alpha.config.kubernetes.io/transformations` lists, oldest first,
//!   every builtin transformer configured in any kustomization of the build, whether or not it
//!   changed the object (kustomize annotates every object after each configured transformer);
//! - `managedByLabel`: `app.kubernetes.io/managed-by` with the kustomize version string the
//!   oracle prints.
//!
//! Only the top kustomization's `buildMetadata` counts (kustomize hands it down to every base).
//! Whatever is asked, [`finish`] always runs last: it drops origin and transformation
//! annotations nobody asked for and rewrites every object's annotations as kustomize does
//! (values become strings, an empty map disappears).
//!
//! Invariant: no IO.

use serde_json::{Map, Value};

use crate::model::{Origin, ResMap, Resource};

/// Where kustomize records an object's origin.
pub const ORIGIN_ANNOTATION: &str = "config.kubernetes.io/origin";
/// Where kustomize records the transformers applied to an object.
pub const TRANSFORMATIONS_ANNOTATION: &str = "alpha.config.kubernetes.io/transformations";
/// The label `managedByLabel` adds.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Its value: `kustomize-` and the version, as the oracle (`kubectl kustomize`, whose embedded
/// kustomize reports no release version) prints it.
pub const MANAGED_BY_VALUE: &str = "kustomize-(devel)";

/// Build annotations kustomize uses internally and removes at the end of a build (its
/// `resource.BuildAnnotations`; inputs carrying them lose them too).
const BUILD_ANNOTATIONS: &[&str] = &[
    "internal.config.kubernetes.io/previousKinds",
    "internal.config.kubernetes.io/previousNames",
    "internal.config.kubernetes.io/prefixes",
    "internal.config.kubernetes.io/suffixes",
    "internal.config.kubernetes.io/previousNamespaces",
    "internal.config.kubernetes.io/allowNameChange",
    "internal.config.kubernetes.io/allowKindChange",
    "internal.config.kubernetes.io/refBy",
    "internal.config.kubernetes.io/generatorBehavior",
    "internal.config.kubernetes.io/needsHashSuffix",
    "internal.config.kubernetes.io/path",
    "internal.config.kubernetes.io/index",
    "internal.config.kubernetes.io/seqindent",
    "internal.config.kubernetes.io/id",
    "internal.config.kubernetes.io/annotations-migration-resource-id",
    "config.kubernetes.io/path",
    "config.kubernetes.io/index",
    "config.k8s.io/id",
];

/// The top kustomization's `buildMetadata` options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BuildMetadata {
    /// `originAnnotations`.
    pub origin_annotations: bool,
    /// `transformerAnnotations`.
    pub transformer_annotations: bool,
    /// `managedByLabel`.
    pub managed_by_label: bool,
    /// Any entry at all (even an unknown one) turns origin tracking on, as upstream does.
    pub tracking: bool,
}

impl BuildMetadata {
    /// Reads the options; unknown entries are ignored as kustomize ignores them.
    pub fn from_options(options: &[String]) -> BuildMetadata {
        let has = |name: &str| options.iter().any(|o| o == name);
        BuildMetadata {
            origin_annotations: has("originAnnotations"),
            transformer_annotations: has("transformerAnnotations"),
            managed_by_label: has("managedByLabel"),
            tracking: !options.is_empty(),
        }
    }
}

/// Records that the builtin transformer `kind` configured in `configured_in` (the
/// kustomization file's path from the build root, e.g. `../base/kustomization.yaml`) ran over
/// `resmap`: objects without an origin are taken to be its output, the others get it appended
/// to their transformations. Call only while tracking, once per configured transformer.
pub fn record_transformation(resmap: &mut ResMap, configured_in: &str, kind: &str) {
    let by = ConfiguredBy {
        api_version: "builtin",
        kind,
        name: "",
        namespace: "",
    };
    append_transformation(resmap, configured_in, by, None);
}

fn append_transformation(
    resmap: &mut ResMap,
    configured_in: &str,
    by: ConfiguredBy<'_>,
    config: Option<&crate::model::ResId>,
) {
    let entry = transformation_entry(configured_in, by);
    for resource in resmap.iter_mut() {
        if resource.origin.is_none() {
            // Taken as the transformer's output, as upstream does.
            resource.origin = Some(Origin {
                path: configured_in.to_string(),
                generator: Some(by.kind.to_string()),
            });
            resource.generated_by = config.cloned();
            continue;
        }
        let annotations = annotations_mut(resource);
        let mut list = annotations
            .get(TRANSFORMATIONS_ANNOTATION)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        list.push_str(&entry);
        annotations.insert(TRANSFORMATIONS_ANNOTATION.to_string(), Value::String(list));
    }
}

/// kustomize's last steps, in its order: the managed-by label, then every object's
/// annotations rewritten without build annotations, with the origin annotation set (when
/// asked) or removed, and the transformations removed unless asked.
pub fn finish(resmap: &mut ResMap, metadata: &BuildMetadata) {
    for resource in resmap.iter_mut() {
        if metadata.managed_by_label {
            let meta = resource.metadata_mut();
            let labels = meta
                .entry("labels")
                .or_insert_with(|| Value::Object(Map::new()));
            if !labels.is_object() {
                *labels = Value::Object(Map::new());
            }
            if let Value::Object(labels) = labels {
                labels.insert(
                    MANAGED_BY_LABEL.to_string(),
                    Value::String(MANAGED_BY_VALUE.into()),
                );
            }
        }
        let origin = resource
            .origin
            .as_ref()
            .map(|origin| match &resource.generated_by {
                Some(config) if origin.generator.is_some() => {
                    generated_origin_text(&origin.path, config)
                }
                _ => origin_text(origin),
            });
        let meta = resource.metadata_mut();
        let mut annotations: Map<String, Value> = match meta.get("annotations") {
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(node_text(v))))
                .collect(),
            _ => Map::new(),
        };
        for key in BUILD_ANNOTATIONS {
            annotations.remove(*key);
        }
        annotations.remove(ORIGIN_ANNOTATION);
        if metadata.origin_annotations
            && let Some(origin) = origin
        {
            annotations.insert(ORIGIN_ANNOTATION.to_string(), Value::String(origin));
        }
        if !metadata.transformer_annotations {
            annotations.remove(TRANSFORMATIONS_ANNOTATION);
        }
        if annotations.is_empty() {
            meta.remove("annotations");
        } else {
            meta.insert("annotations".to_string(), Value::Object(annotations));
        }
    }
}

/// The text kustomize reads from an annotation value node: strings as they are, other scalars
/// as written, maps and lists as nothing.
fn node_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_string(),
        Value::Array(_) | Value::Object(_) => String::new(),
    }
}

fn annotations_mut(resource: &mut Resource) -> &mut Map<String, Value> {
    let meta = resource.metadata_mut();
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !annotations.is_object() {
        *annotations = Value::Object(Map::new());
    }
    match annotations {
        Value::Object(map) => map,
        _ => unreachable!("annotations were just made a map"),
    }
}

/// `configuredBy` of an origin: the generator or transformer config (for builtin fields of a
/// kustomization, `apiVersion: builtin` and the plugin's kind only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfiguredBy<'a> {
    /// `builtin` for kustomize's builtin plugins.
    pub api_version: &'a str,
    /// The plugin kind (`PrefixTransformer`).
    pub kind: &'a str,
    /// The config's `metadata.name` (empty for kustomization fields).
    pub name: &'a str,
    /// The config's `metadata.namespace` (empty for kustomization fields).
    pub namespace: &'a str,
}

/// The origin annotation's YAML, fields in kustomize's order.
pub fn origin_text(origin: &Origin) -> String {
    match &origin.generator {
        None => format!("path: {}\n", scalar(&origin.path)),
        Some(kind) => configured_text(
            &origin.path,
            ConfiguredBy {
                api_version: "builtin",
                kind,
                name: "",
                namespace: "",
            },
        ),
    }
}

/// The origin of an object made by a plugin config from `generators:` (`configuredIn` is the
/// file holding the config, `configuredBy` names the config).
fn generated_origin_text(configured_in: &str, config: &crate::model::ResId) -> String {
    let api_version = config.gvk.api_version();
    configured_text(
        configured_in,
        ConfiguredBy {
            api_version: &api_version,
            kind: &config.gvk.kind,
            name: &config.name,
            namespace: &config.namespace,
        },
    )
}

fn configured_text(configured_in: &str, by: ConfiguredBy<'_>) -> String {
    let mut out = format!(
        "configuredIn: {}\nconfiguredBy:\n  apiVersion: {}\n  kind: {}\n",
        scalar(configured_in),
        scalar(by.api_version),
        scalar(by.kind)
    );
    if !by.name.is_empty() {
        out.push_str(&format!("  name: {}\n", scalar(by.name)));
    }
    if !by.namespace.is_empty() {
        out.push_str(&format!("  namespace: {}\n", scalar(by.namespace)));
    }
    out
}

/// Records that a transformer plugin config from `transformers:` ran over `resmap`
/// (`configuredIn` is the config's own origin path, `configuredBy` names the config).
pub fn record_plugin_transformation(resmap: &mut ResMap, config: &Resource) {
    let configured_in = config
        .origin
        .as_ref()
        .map(|o| o.path.clone())
        .unwrap_or_default();
    let api_version = config.gvk().api_version();
    let kind = config.gvk().kind;
    let by = ConfiguredBy {
        api_version: &api_version,
        kind: &kind,
        name: config.name(),
        namespace: config.namespace(),
    };
    append_transformation(resmap, &configured_in, by, Some(&config.id()));
}

/// One item of the transformations annotation's YAML list.
fn transformation_entry(configured_in: &str, by: ConfiguredBy<'_>) -> String {
    let mut out = String::new();
    for (i, line) in configured_text(configured_in, by).lines().enumerate() {
        out.push_str(if i == 0 { "- " } else { "  " });
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A string as go-yaml prints it in block context: plain when that reads back as the same
/// string, double-quoted otherwise.
fn scalar(text: &str) -> String {
    let plain_safe = !text.is_empty()
        && !text.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@` ".contains(c))
        && !text.ends_with(' ')
        && !text.contains(": ")
        && !text.contains(" #")
        && !text.chars().any(|c| c.is_control())
        && crate::render::replacements::resolve_plain(text).is_string();
    if plain_safe {
        text.to_string()
    } else {
        serde_json::to_string(text).unwrap_or_else(|_| format!("\"{text}\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resource(value: Value, origin: Option<Origin>) -> Resource {
        let mut r = Resource::new(value.as_object().cloned().unwrap_or_default());
        r.origin = origin;
        r
    }

    fn file(path: &str) -> Option<Origin> {
        Some(Origin {
            path: path.into(),
            generator: None,
        })
    }

    #[test]
    fn origins_and_transformations_read_like_kustomize() {
        let mut rm: ResMap = vec![
            resource(
                json!({"kind": "Service", "metadata": {"name": "s"}}),
                file("../base/service.yaml"),
            ),
            resource(
                json!({"kind": "ConfigMap", "metadata": {"name": "c"}}),
                Some(Origin {
                    path: "kustomization.yaml".into(),
                    generator: Some("ConfigMapGenerator".into()),
                }),
            ),
        ]
        .into_iter()
        .collect();
        record_transformation(&mut rm, "../base/kustomization.yaml", "PrefixTransformer");
        record_transformation(&mut rm, "kustomization.yaml", "PrefixTransformer");
        let options = [
            "originAnnotations".to_string(),
            "transformerAnnotations".to_string(),
        ];
        finish(&mut rm, &BuildMetadata::from_options(&options));
        let service = rm.as_slice()[0].to_value();
        assert_eq!(
            service["metadata"]["annotations"][ORIGIN_ANNOTATION],
            json!("path: ../base/service.yaml\n")
        );
        assert_eq!(
            service["metadata"]["annotations"][TRANSFORMATIONS_ANNOTATION],
            json!(
                "- configuredIn: ../base/kustomization.yaml\n  configuredBy:\n    apiVersion: builtin\n    kind: PrefixTransformer\n\
                 - configuredIn: kustomization.yaml\n  configuredBy:\n    apiVersion: builtin\n    kind: PrefixTransformer\n"
            )
        );
        let config_map = rm.as_slice()[1].to_value();
        assert_eq!(
            config_map["metadata"]["annotations"][ORIGIN_ANNOTATION],
            json!(
                "configuredIn: kustomization.yaml\nconfiguredBy:\n  apiVersion: builtin\n  kind: ConfigMapGenerator\n"
            )
        );
    }

    #[test]
    fn plugin_generated_objects_name_their_config() {
        let mut made = resource(
            json!({"kind": "ConfigMap", "metadata": {"name": "bob"}}),
            Some(Origin {
                path: "../base/configmap.yaml".into(),
                generator: Some("ConfigMapGenerator".into()),
            }),
        );
        made.generated_by = Some(crate::model::ResId {
            gvk: crate::model::Gvk::from_api_version("builtin", "ConfigMapGenerator"),
            name: "notImportantHere".into(),
            namespace: String::new(),
        });
        let mut rm: ResMap = vec![made].into_iter().collect();
        finish(
            &mut rm,
            &BuildMetadata::from_options(&["originAnnotations".to_string()]),
        );
        assert_eq!(
            rm.as_slice()[0].to_value()["metadata"]["annotations"][ORIGIN_ANNOTATION],
            json!(
                "configuredIn: ../base/configmap.yaml\nconfiguredBy:\n  apiVersion: builtin\n  kind: ConfigMapGenerator\n  name: notImportantHere\n"
            )
        );
    }

    #[test]
    fn plugin_transformations_name_their_config() {
        let mut rm: ResMap = vec![resource(
            json!({"kind": "ConfigMap", "metadata": {"name": "c"}}),
            file("resource.yaml"),
        )]
        .into_iter()
        .collect();
        let config = resource(
            json!({"apiVersion": "builtin", "kind": "NamespaceTransformer",
                   "metadata": {"name": "not-important-to-example", "namespace": "test"}}),
            file("kustomization.yaml"),
        );
        record_plugin_transformation(&mut rm, &config);
        finish(
            &mut rm,
            &BuildMetadata::from_options(&["transformerAnnotations".to_string()]),
        );
        assert_eq!(
            rm.as_slice()[0].to_value()["metadata"]["annotations"][TRANSFORMATIONS_ANNOTATION],
            json!(
                "- configuredIn: kustomization.yaml\n  configuredBy:\n    apiVersion: builtin\n    kind: NamespaceTransformer\n    name: not-important-to-example\n    namespace: test\n"
            )
        );
    }

    #[test]
    fn finish_normalizes_annotations_and_adds_the_label() {
        let mut rm: ResMap = vec![
            resource(
                json!({"kind": "A", "metadata": {"name": "a", "annotations": {}}}),
                file("a.yaml"),
            ),
            resource(
                json!({"kind": "B", "metadata": {"name": "b", "annotations": {"x": 1, "y": true,
                    "config.kubernetes.io/origin": "path: elsewhere\n"}}}),
                file("b.yaml"),
            ),
        ]
        .into_iter()
        .collect();
        finish(
            &mut rm,
            &BuildMetadata::from_options(&["managedByLabel".to_string()]),
        );
        let a = rm.as_slice()[0].to_value();
        assert_eq!(
            a["metadata"],
            json!({"name": "a", "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE}})
        );
        let b = rm.as_slice()[1].to_value();
        assert_eq!(b["metadata"]["annotations"], json!({"x": "1", "y": "true"}));
    }
}
