//! The shared vocabulary: Kubernetes objects as data, their identities and ordered sets of them.
//!
//! Every other module speaks in these types. An object is a `serde_json::Value` (maps keep
//! insertion order); a [`Resource`] adds the bookkeeping kustomize keeps beside an object;
//! a [`ResMap`] is the ordered list the renderer builds and the reconciler consumes.
//!
//! Invariant: nothing here does IO.

use std::fmt;

use serde_json::{Map, Value};

/// Group, version, kind. The core group is the empty string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gvk {
    /// API group (`apps`; empty for core).
    pub group: String,
    /// API version (`v1`).
    pub version: String,
    /// Kind (`Deployment`).
    pub kind: String,
}

impl Gvk {
    /// Builds a Gvk from an object's `apiVersion` and `kind`.
    pub fn from_api_version(api_version: &str, kind: &str) -> Gvk {
        let (group, version) = match api_version.rsplit_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.to_string()),
        };
        Gvk {
            group,
            version,
            kind: kind.to_string(),
        }
    }

    /// `apps/v1` or `v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

impl fmt::Display for Gvk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // kustomize's spelling: `apps_v1_Deployment`, `~G_v1_Service`.
        let group = if self.group.is_empty() {
            "~G"
        } else {
            &self.group
        };
        let version = if self.version.is_empty() {
            "~V"
        } else {
            &self.version
        };
        let kind = if self.kind.is_empty() {
            "~K"
        } else {
            &self.kind
        };
        write!(f, "{group}_{version}_{kind}")
    }
}

/// The identity of an object: Gvk, namespace and name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResId {
    /// Group, version, kind.
    pub gvk: Gvk,
    /// Name.
    pub name: String,
    /// Namespace; empty for cluster-scoped objects or when unset.
    pub namespace: String,
}

impl ResId {
    /// The id of an object as it stands.
    pub fn of(object: &Value) -> ResId {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
        let meta = object.get("metadata");
        ResId {
            gvk: Gvk::from_api_version(
                object
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
                object
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            ),
            name: text(meta.and_then(|m| m.get("name"))),
            namespace: text(meta.and_then(|m| m.get("namespace"))),
        }
    }
}

impl fmt::Display for ResId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // kustomize's spelling: `apps_v1_Deployment|ns|name` (`~X` when the namespace is empty).
        let ns = if self.namespace.is_empty() {
            "~X"
        } else {
            &self.namespace
        };
        write!(f, "{}|{}|{}", self.gvk, ns, self.name)
    }
}

/// Where a resource came from: the file (relative to the build root) and, for generated
/// objects, the generator. Used in error messages and `buildMetadata: [originAnnotations]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// Path of the file the object was read from, relative to the build root.
    pub path: String,
    /// The generator's kind when the object was generated (e.g. `ConfigMapGenerator`).
    pub generator: Option<String>,
}

/// An object plus the bookkeeping kustomize keeps beside it while building.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resource {
    /// The object itself (always a JSON object).
    pub object: Map<String, Value>,
    /// Where it came from.
    pub origin: Option<Origin>,
    /// Ids this object had before renames (prefix/suffix, namespace, hash suffix, patches),
    /// oldest first: name references to any of them are rewritten to the current name.
    pub previous_ids: Vec<ResId>,
    /// Set on generated ConfigMaps/Secrets: how to combine with a same-named object, and
    /// whether to append the content hash to the name once all transformers have run.
    pub generator: Option<GeneratorBehavior>,
    /// Names of the legacy `vars` whose value is read from this object (kustomize's
    /// `refVarNames`): set when a kustomization's vars are merged, read when they are resolved.
    pub ref_var_names: Vec<String>,
    /// The id of the plugin config (an object in `generators:`) that generated this object:
    /// named as `configuredBy` in its origin annotation (`buildMetadata: [originAnnotations]`).
    pub generated_by: Option<ResId>,
    /// JSON pointers of fields written with no value (`key:`) in the file: kyaml keeps such a
    /// field as null until a strategic merge walks it, which drops it (a written `null` stays).
    pub bare_nulls: Vec<String>,
}

/// What a generator asked for its output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GeneratorBehavior {
    /// `create`, `merge` or `replace`.
    pub behavior: String,
    /// Append the content hash to the name when the build is done.
    pub needs_hash: bool,
}

impl Resource {
    /// Wraps an object read from a file.
    pub fn new(object: Map<String, Value>) -> Resource {
        Resource {
            object,
            ..Resource::default()
        }
    }

    /// The current id.
    pub fn id(&self) -> ResId {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
        let meta = self.object.get("metadata");
        ResId {
            gvk: self.gvk(),
            name: text(meta.and_then(|m| m.get("name"))),
            namespace: text(meta.and_then(|m| m.get("namespace"))),
        }
    }

    /// The object's group, version and kind.
    pub fn gvk(&self) -> Gvk {
        Gvk::from_api_version(
            self.object
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            self.object
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        )
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.metadata_str("name")
    }

    /// `metadata.namespace` (empty when unset).
    pub fn namespace(&self) -> &str {
        self.metadata_str("namespace")
    }

    fn metadata_str(&self, field: &str) -> &str {
        self.object
            .get("metadata")
            .and_then(|m| m.get(field))
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The `metadata` map, created if absent.
    pub fn metadata_mut(&mut self) -> &mut Map<String, Value> {
        let meta = self
            .object
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if !meta.is_object() {
            *meta = Value::Object(Map::new());
        }
        match meta {
            Value::Object(map) => map,
            _ => unreachable!("metadata was just made an object"),
        }
    }

    /// Sets `metadata.name`.
    pub fn set_name(&mut self, name: &str) {
        self.metadata_mut()
            .insert("name".into(), Value::String(name.into()));
    }

    /// Sets `metadata.namespace`.
    pub fn set_namespace(&mut self, namespace: &str) {
        self.metadata_mut()
            .insert("namespace".into(), Value::String(namespace.into()));
    }

    /// `metadata.labels` as string pairs (non-string values are skipped).
    pub fn labels(&self) -> Vec<(String, String)> {
        self.string_map("labels")
    }

    /// `metadata.annotations` as string pairs (non-string values are skipped).
    pub fn annotations(&self) -> Vec<(String, String)> {
        self.string_map("annotations")
    }

    fn string_map(&self, field: &str) -> Vec<(String, String)> {
        self.object
            .get("metadata")
            .and_then(|m| m.get(field))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Records the current id as a previous one (call before renaming).
    pub fn remember_id(&mut self) {
        let id = self.id();
        if self.previous_ids.last() != Some(&id) {
            self.previous_ids.push(id);
        }
    }

    /// The object as a `Value`.
    pub fn to_value(&self) -> Value {
        Value::Object(self.object.clone())
    }
}

/// An ordered list of resources with unique ids, as kustomize's `ResMap`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResMap {
    resources: Vec<Resource>,
}

impl ResMap {
    /// An empty map.
    pub fn new() -> ResMap {
        ResMap::default()
    }

    /// Number of resources.
    pub fn len(&self) -> usize {
        self.resources.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    /// Appends a resource; fails with the existing id when one with the same id is present.
    pub fn append(&mut self, resource: Resource) -> Result<(), Box<ResId>> {
        let id = resource.id();
        if self.resources.iter().any(|r| r.id() == id) {
            return Err(Box::new(id));
        }
        self.resources.push(resource);
        Ok(())
    }

    /// The resources in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Resource> {
        self.resources.iter()
    }

    /// The resources in order, mutably.
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Resource> {
        self.resources.iter_mut()
    }

    /// The resources as a slice.
    pub fn as_slice(&self) -> &[Resource] {
        &self.resources
    }

    /// The underlying list, for reordering, removal or replacement.
    pub fn as_mut_vec(&mut self) -> &mut Vec<Resource> {
        &mut self.resources
    }

    /// Consumes the map.
    pub fn into_vec(self) -> Vec<Resource> {
        self.resources
    }
}

impl FromIterator<Resource> for ResMap {
    /// Collects without checking ids (callers that need the check use [`ResMap::append`]).
    fn from_iter<I: IntoIterator<Item = Resource>>(iter: I) -> ResMap {
        ResMap {
            resources: iter.into_iter().collect(),
        }
    }
}

impl IntoIterator for ResMap {
    type Item = Resource;
    type IntoIter = std::vec::IntoIter<Resource>;
    fn into_iter(self) -> Self::IntoIter {
        self.resources.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_spell_like_kustomize() {
        let obj =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
        assert_eq!(ResId::of(&obj).to_string(), "apps_v1_Deployment|~X|web");
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a", "namespace": "n"}});
        assert_eq!(ResId::of(&svc).to_string(), "~G_v1_Service|n|a");
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let Value::Object(map) = obj else {
            unreachable!()
        };
        let mut resmap = ResMap::new();
        assert!(resmap.append(Resource::new(map.clone())).is_ok());
        assert!(resmap.append(Resource::new(map)).is_err());
    }
}
