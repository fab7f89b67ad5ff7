//! The OpenAPI data strategic merge reads: which lists merge element by element, and by which
//! keys, as kustomize's `kyaml/openapi` gives them to its merge walker.
//!
//! kustomize embeds the Kubernetes v1.21.2 OpenAPI document; `kubernetes_v1_21_2.json` beside
//! this file is that document's `definitions`, reduced to what merging can observe: `$ref`s,
//! array and map element schemas, `type`, the patch extensions
//! (`x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key`,
//! `x-kubernetes-list-map-keys`) and `x-kubernetes-group-version-kind`. Scalar-only properties
//! are left out: a missing schema and a scalar schema walk alike.
//!
//! A kustomization's `openapi: {path: schema.json}` replaces that data for the whole build,
//! `openapi: {version: v1.21.2}` names the embedded one. [`SchemaSetting`] keeps kustomize's
//! rule for which kustomization of a build decides.
//!
//! Invariant: no IO; custom schema text is handed in through a [`FileLoader`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

use crate::render::files::{FileLoader, LoadError};

/// The Kubernetes OpenAPI version kustomize v5.5 embeds (and the only one it accepts).
pub const BUILTIN_VERSION: &str = "v1.21.2";

const BUILTIN_DEFINITIONS: &str = include_str!("kubernetes_v1_21_2.json");

/// How deep `$ref` chains are followed before giving up (a cycle of references).
const MAX_REF_DEPTH: usize = 64;

/// The `openapi:` field of a kustomization cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenApiError {
    /// The schema file could not be read.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Both `path` and `version` are given.
    #[error("builtin version and custom schema provided, cannot use both")]
    BothPathAndVersion,
    /// `version` names a schema kustomize does not embed.
    #[error("the specified OpenAPI version is not built in")]
    UnknownVersion {
        /// The version asked for.
        version: String,
    },
    /// The schema file is not a JSON or YAML OpenAPI document.
    #[error("invalid schema file {path}: {cause}")]
    Invalid {
        /// The file, as the kustomization names it.
        path: String,
        /// What is wrong with it.
        cause: String,
    },
}

/// OpenAPI definitions indexed by the resource types they describe.
#[derive(Debug, Clone, Default)]
pub struct OpenApi {
    definitions: Map<String, Value>,
    /// `(apiVersion, kind)` to definition name.
    by_type: HashMap<(String, String), String>,
}

impl OpenApi {
    /// The embedded Kubernetes v1.21.2 schema.
    pub fn builtin() -> Arc<OpenApi> {
        static BUILTIN: OnceLock<Arc<OpenApi>> = OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                let mut api = OpenApi::default();
                // The embedded file is generated and checked by a unit test; a broken one
                // leaves every list without merge keys rather than failing builds.
                if let Ok(Value::Object(document)) =
                    serde_json::from_str::<Value>(BUILTIN_DEFINITIONS)
                    && let Some(Value::Object(definitions)) = document.get("definitions")
                {
                    api.add_definitions(definitions);
                }
                Arc::new(api)
            })
            .clone()
    }

    /// Reads a custom schema (a swagger document with `definitions`), JSON or YAML as
    /// kustomize accepts: text starting with `{` is JSON, anything else YAML.
    pub fn from_text(path: &str, text: &str) -> Result<OpenApi, OpenApiError> {
        let invalid = |cause: String| OpenApiError::Invalid {
            path: path.to_string(),
            cause,
        };
        let document = if text.starts_with('{') {
            serde_json::from_str::<Value>(text).map_err(|e| invalid(e.to_string()))?
        } else {
            crate::yaml::parse_documents(text)
                .map_err(|e| invalid(e.to_string()))?
                .into_iter()
                .next()
                .unwrap_or(Value::Null)
        };
        let mut api = OpenApi::default();
        match &document {
            Value::Object(map) => {
                if let Some(definitions) = map.get("definitions") {
                    let Value::Object(definitions) = definitions else {
                        return Err(invalid("`definitions` is not a map".into()));
                    };
                    api.add_definitions(definitions);
                }
            }
            Value::Null => {}
            _ => return Err(invalid("the document is not a map".into())),
        }
        Ok(api)
    }

    /// `self`'s definitions over `base`'s: a custom schema set by a kustomization below the
    /// root is read after kustomize has loaded its builtin schema, so builtin types stay known.
    pub fn layered_over(&self, base: &OpenApi) -> OpenApi {
        let mut merged = base.clone();
        merged.add_definitions(&self.definitions);
        merged
    }

    fn add_definitions(&mut self, definitions: &Map<String, Value>) {
        for (name, definition) in definitions {
            self.definitions.insert(name.clone(), definition.clone());
            let Some(Value::Array(gvks)) = definition.get("x-kubernetes-group-version-kind") else {
                continue;
            };
            for gvk in gvks {
                let text = |key: &str| gvk.get(key).and_then(Value::as_str).unwrap_or_default();
                let (group, version, kind) = (text("group"), text("version"), text("kind"));
                let api_version = if group.is_empty() {
                    version.to_string()
                } else {
                    format!("{group}/{version}")
                };
                self.by_type
                    .insert((api_version, kind.to_string()), name.clone());
            }
        }
    }

    /// The schema of a resource type, if known.
    pub fn for_type(&self, api_version: &str, kind: &str) -> Option<Schema<'_>> {
        let name = self
            .by_type
            .get(&(api_version.to_string(), kind.to_string()))?;
        let schema = self.definitions.get(name)?;
        Some(Schema { api: self, schema })
    }

    fn resolve<'a>(&'a self, mut schema: &'a Value) -> Option<&'a Value> {
        for _ in 0..MAX_REF_DEPTH {
            let Some(reference) = schema.get("$ref") else {
                return Some(schema);
            };
            let name = reference.as_str()?.strip_prefix("#/definitions/")?;
            schema = self.definitions.get(name)?;
        }
        None
    }
}

/// One schema node (a resource, a field, a list's elements) inside an [`OpenApi`].
#[derive(Debug, Clone, Copy)]
pub struct Schema<'a> {
    api: &'a OpenApi,
    schema: &'a Value,
}

impl<'a> Schema<'a> {
    /// The schema of a map's field (a declared property, or the value schema of a map type).
    pub fn field(&self, name: &str) -> Option<Schema<'a>> {
        let property = self
            .schema
            .get("properties")
            .and_then(|p| p.get(name))
            .or_else(|| {
                self.schema
                    .get("additionalProperties")
                    .filter(|s| s.is_object())
            })?;
        let schema = self.api.resolve(property)?;
        Some(Schema {
            api: self.api,
            schema,
        })
    }

    /// The schema of a list's elements (only for a schema typed exactly `array`).
    pub fn elements(&self) -> Option<Schema<'a>> {
        let is_array = match self.schema.get("type") {
            Some(Value::String(t)) => t == "array",
            Some(Value::Array(types)) => types.len() == 1 && types[0] == "array",
            _ => false,
        };
        if !is_array {
            return None;
        }
        let items = self.schema.get("items").filter(|i| i.is_object())?;
        let schema = self.api.resolve(items)?;
        Some(Schema {
            api: self.api,
            schema,
        })
    }

    /// `x-kubernetes-patch-strategy` (empty when absent).
    pub fn patch_strategy(&self) -> &'a str {
        self.schema
            .get("x-kubernetes-patch-strategy")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The merge keys: `x-kubernetes-list-map-keys` when present, else the single
    /// `x-kubernetes-patch-merge-key`, else none (a list of scalars). Only read when the
    /// schema has a patch strategy, as kyaml does.
    pub fn merge_keys(&self) -> Vec<String> {
        if self.patch_strategy().is_empty() {
            return Vec::new();
        }
        if let Some(Value::Array(keys)) = self.schema.get("x-kubernetes-list-map-keys") {
            return keys
                .iter()
                .map(|k| k.as_str().unwrap_or_default().to_string())
                .collect();
        }
        match self
            .schema
            .get("x-kubernetes-patch-merge-key")
            .and_then(Value::as_str)
        {
            Some(key) => vec![key.to_string()],
            None => Vec::new(),
        }
    }

    /// True when the patch strategy includes `merge`: the list merges element by element.
    pub fn merges_lists(&self) -> bool {
        self.patch_strategy().split(',').any(|s| s == "merge")
    }
}

/// Which schema a build uses, kept as kustomize keeps its process-wide schema setting: the
/// root kustomization decides first; when it names none, the first kustomization below it
/// (in build order) that names one decides for the rest of the build.
#[derive(Debug, Clone, Default)]
pub struct SchemaSetting {
    chosen: Option<Arc<OpenApi>>,
}

impl SchemaSetting {
    /// Applies one kustomization's `openapi:` field. `is_root` is true for the kustomization
    /// the build starts from (kustomize's reset). The schema file is read even when another
    /// kustomization already decided, as kustomize does (so a missing file is an error).
    pub fn configure(
        &mut self,
        openapi: &BTreeMap<String, String>,
        files: &dyn FileLoader,
        is_root: bool,
    ) -> Result<(), OpenApiError> {
        let custom = match openapi.get("path") {
            Some(path) => Some(OpenApi::from_text(path, &files.load(path)?)?),
            None => None,
        };
        if self.chosen.is_some() && !is_root {
            return Ok(());
        }
        let version = openapi.get("version");
        if let Some(custom) = custom {
            if version.is_some() {
                return Err(OpenApiError::BothPathAndVersion);
            }
            let api = if is_root {
                custom
            } else {
                custom.layered_over(&OpenApi::builtin())
            };
            self.chosen = Some(Arc::new(api));
            return Ok(());
        }
        match version.map(String::as_str) {
            None | Some("") => {
                if is_root {
                    self.chosen = None;
                }
            }
            Some(BUILTIN_VERSION) => self.chosen = Some(OpenApi::builtin()),
            Some(other) => {
                return Err(OpenApiError::UnknownVersion {
                    version: other.to_string(),
                });
            }
        }
        Ok(())
    }

    /// The schema in effect.
    pub fn schema(&self) -> Arc<OpenApi> {
        self.chosen.clone().unwrap_or_else(OpenApi::builtin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_schema_knows_container_merge_keys() {
        let api = OpenApi::builtin();
        let deployment = api
            .for_type("apps/v1", "Deployment")
            .expect("Deployment is builtin");
        let containers = deployment
            .field("spec")
            .and_then(|s| s.field("template"))
            .and_then(|s| s.field("spec"))
            .and_then(|s| s.field("containers"))
            .expect("containers has a schema");
        assert!(containers.merges_lists());
        assert_eq!(containers.merge_keys(), ["name"]);
        let ports = containers
            .elements()
            .and_then(|c| c.field("ports"))
            .expect("ports");
        assert_eq!(ports.merge_keys(), ["containerPort", "protocol"]);
        let finalizers = deployment
            .field("metadata")
            .and_then(|m| m.field("finalizers"));
        assert_eq!(finalizers.map(|f| f.merges_lists()), Some(true));
        let args = containers.elements().and_then(|c| c.field("args"));
        assert!(args.is_none_or(|a| !a.merges_lists()));
    }

    #[test]
    fn root_setting_wins_and_version_must_be_builtin() {
        let files: BTreeMap<String, String> =
            [("s.json".to_string(), r#"{"definitions": {}}"#.to_string())].into();
        let mut setting = SchemaSetting::default();
        let version = BTreeMap::from([("version".to_string(), "v1.21.2".to_string())]);
        setting
            .configure(&version, &files, true)
            .expect("builtin version");
        let path = BTreeMap::from([("path".to_string(), "s.json".to_string())]);
        setting
            .configure(&path, &files, false)
            .expect("ignored below the root");
        assert!(setting.schema().for_type("apps/v1", "Deployment").is_some());

        let old = BTreeMap::from([("version".to_string(), "v1.14.1".to_string())]);
        assert!(matches!(
            SchemaSetting::default().configure(&old, &files, true),
            Err(OpenApiError::UnknownVersion { .. })
        ));
        let both = BTreeMap::from([
            ("version".to_string(), "v1.21.2".to_string()),
            ("path".to_string(), "s.json".to_string()),
        ]);
        assert_eq!(
            SchemaSetting::default().configure(&both, &files, true),
            Err(OpenApiError::BothPathAndVersion)
        );
        let mut custom_root = SchemaSetting::default();
        custom_root
            .configure(&path, &files, true)
            .expect("custom schema");
        assert!(
            custom_root
                .schema()
                .for_type("apps/v1", "Deployment")
                .is_none()
        );
    }
}
