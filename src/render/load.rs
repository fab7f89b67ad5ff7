//! Loading: finding and reading a kustomization file, reading resource files into objects,
//! and the directory bookkeeping kustomize's loader does (new roots, the load restrictor,
//! cycle detection).
//!
//! Invariant: every read goes through [`crate::source::Fs`]; files a kustomization names are
//! checked by [`Restrictor`] against its directory.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

use crate::model::{Gvk, Origin, ResId, Resource};
use crate::render::error::Error;
use crate::render::files::{FileLoader, LoadError};
use crate::render::generators::DataSource;
use crate::render::patch::openapi::{OpenApi, SchemaSetting};
use crate::render::types::Kustomization;
use crate::source::{Fs, FsError, Restrictor, clean};

/// The names a kustomization file may have, in kustomize's order.
pub const KUSTOMIZATION_FILE_NAMES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

const KUSTOMIZATION_VERSION: &str = "kustomize.config.k8s.io/v1beta1";
const COMPONENT_VERSION: &str = "kustomize.config.k8s.io/v1alpha1";

/// A kustomization directory, opened: where it is, which file, and what it says.
#[derive(Debug, Clone)]
pub struct KustDir<'a> {
    /// The file system.
    pub fs: &'a dyn Fs,
    /// The directory, resolved (no symlinks).
    pub dir: PathBuf,
    /// `kustomization.yaml`, `kustomization.yml` or `Kustomization`.
    pub file_name: &'static str,
    /// The parsed file (legacy fields folded in: `bases` into `resources`, `imageTags` into
    /// `images`, `env` into `envs`).
    pub kustomization: Kustomization,
    /// The directories that led here (the build root first, this one last): no new root may
    /// contain any of them.
    pub chain: Vec<PathBuf>,
    /// This directory relative to the build root, as kustomize's origin path (`../base`).
    pub origin_path: String,
    /// The build root's `buildMetadata` (kustomize hands it down to every base).
    pub build_metadata: Vec<String>,
    /// The OpenAPI schema setting of the whole build (strategic-merge keys), shared by every
    /// kustomization of it: the root decides first, else the first one below that names one.
    pub openapi: Rc<RefCell<SchemaSetting>>,
}

/// Reads a file relative to a kustomization directory, with the root-only restrictor.
#[derive(Debug, Clone, Copy)]
pub struct DirLoader<'a> {
    /// The file system.
    pub fs: &'a dyn Fs,
    /// The kustomization directory (resolved).
    pub dir: &'a Path,
}

impl DirLoader<'_> {
    /// The resolved path of `relative`, checked against the directory.
    pub fn resolve(&self, relative: &str) -> Result<PathBuf, FsError> {
        Restrictor::check(self.fs, self.dir, &self.dir.join(relative))
    }

    /// The bytes of `relative`.
    pub fn read_bytes(&self, relative: &str) -> Result<Vec<u8>, Error> {
        let file = self.dir.join(relative);
        let resolved = Restrictor::check(self.fs, self.dir, &file).map_err(|source| Error::Fs {
            file: file.clone(),
            source,
        })?;
        // `resolved` has no symlinks left: read it without walking it again.
        let read = match self.fs.entry_kind(&resolved) {
            Ok(Some(crate::source::EntryKind::Dir)) => {
                Err(FsError::IsADirectory { path: file.clone() })
            }
            Ok(Some(_)) => self.fs.read_raw(&resolved),
            Ok(None) => Err(FsError::NotFound { path: file.clone() }),
            Err(e) => Err(e),
        };
        read.map_err(|source| Error::Fs { file, source })
    }

    /// The text of `relative` (UTF-8 required).
    pub fn read_text(&self, relative: &str) -> Result<String, Error> {
        let bytes = self.read_bytes(relative)?;
        String::from_utf8(bytes).map_err(|_| Error::Yaml {
            file: self.dir.join(relative),
            cause: "file is not valid UTF-8".into(),
        })
    }
}

impl FileLoader for DirLoader<'_> {
    fn load(&self, relative_path: &str) -> Result<String, LoadError> {
        self.read_text(relative_path).map_err(|e| LoadError {
            path: relative_path.to_string(),
            cause: match e {
                Error::Fs { source, .. } => source.to_string(),
                other => other.to_string(),
            },
        })
    }
}

impl DataSource for DirLoader<'_> {
    fn load_bytes(&self, path: &str) -> Result<Vec<u8>, String> {
        self.read_bytes(path).map_err(|e| e.to_string())
    }
}

impl<'a> KustDir<'a> {
    /// Opens the build root `dir`.
    pub fn open_root(fs: &'a dyn Fs, dir: &Path) -> Result<KustDir<'a>, Error> {
        let resolved = resolve_dir(fs, dir)?;
        let openapi = Rc::new(RefCell::new(SchemaSetting::default()));
        let mut root = KustDir::open(fs, resolved, Vec::new(), String::new(), Vec::new(), openapi)?;
        root.build_metadata = root.kustomization.build_metadata.clone();
        root.configure_openapi(true)?;
        Ok(root)
    }

    fn open(
        fs: &'a dyn Fs,
        dir: PathBuf,
        mut chain: Vec<PathBuf>,
        origin_path: String,
        build_metadata: Vec<String>,
        openapi: Rc<RefCell<SchemaSetting>>,
    ) -> Result<KustDir<'a>, Error> {
        let (file_name, kustomization) = read_kustomization(fs, &dir)?;
        chain.push(dir.clone());
        Ok(KustDir {
            fs,
            dir,
            file_name,
            kustomization,
            chain,
            origin_path,
            build_metadata,
            openapi,
        })
    }

    /// Applies this kustomization's `openapi:` field to the build's schema setting
    /// (kustomize's `openapi.SetSchema`, with reset for the root).
    fn configure_openapi(&self, is_root: bool) -> Result<(), Error> {
        self.openapi
            .borrow_mut()
            .configure(&self.kustomization.openapi, &self.loader(), is_root)
            .map_err(|e| Error::InvalidKustomization {
                file: self.file(),
                cause: e.to_string(),
            })
    }

    /// The OpenAPI schema in effect for strategic merge patches.
    pub fn schema(&self) -> Arc<OpenApi> {
        self.openapi.borrow().schema()
    }

    /// True when the build records origins and transformations (any `buildMetadata`).
    pub fn tracking(&self) -> bool {
        !self.build_metadata.is_empty()
    }

    /// The kustomization file's path.
    pub fn file(&self) -> PathBuf {
        self.dir.join(self.file_name)
    }

    /// A loader for files this kustomization names.
    pub fn loader(&self) -> DirLoader<'_> {
        DirLoader {
            fs: self.fs,
            dir: &self.dir,
        }
    }

    /// True for kind `Component`.
    pub fn is_component(&self) -> bool {
        self.kustomization.kind == "Component"
    }

    /// The origin path of a file this kustomization names (`../base/deployment.yaml`).
    pub fn origin_of(&self, relative: &str) -> String {
        join_origin(&self.origin_path, relative)
    }

    /// Opens the kustomization directory `entry` names, refusing cycles: the new directory
    /// may not be, or contain, any directory on the way here.
    pub fn open_child(&self, entry: &str) -> Result<KustDir<'a>, Error> {
        if entry.is_empty() {
            return Err(Error::Fs {
                file: self.dir.clone(),
                source: FsError::NotFound {
                    path: PathBuf::new(),
                },
            });
        }
        if Path::new(entry).is_absolute() {
            return Err(Error::InvalidKustomization {
                file: self.file(),
                cause: format!("new root '{entry}' cannot be absolute"),
            });
        }
        let candidate = resolve_dir(self.fs, &self.dir.join(entry))?;
        if self
            .chain
            .iter()
            .any(|visited| visited.starts_with(&candidate))
        {
            let mut chain = self.chain.clone();
            chain.push(candidate);
            return Err(Error::Cycle { chain });
        }
        let child = KustDir::open(
            self.fs,
            candidate,
            self.chain.clone(),
            self.origin_of(entry),
            self.build_metadata.clone(),
            Rc::clone(&self.openapi),
        )?;
        child.configure_openapi(false)?;
        Ok(child)
    }

    /// Reads the objects of the resource file `entry` names.
    pub fn read_resource_file(&self, entry: &str) -> Result<Vec<Resource>, Error> {
        let loader = self.loader();
        let file = self.dir.join(entry);
        let text = loader.read_text(entry)?;
        let origin = Origin {
            path: self.origin_of(entry),
            generator: None,
        };
        parse_resources(&file, &text, &origin)
    }
}

fn join_origin(base: &str, relative: &str) -> String {
    let joined = if base.is_empty() {
        PathBuf::from(relative)
    } else {
        Path::new(base).join(relative)
    };
    clean(&joined).to_string_lossy().into_owned()
}

/// Resolves `dir` and checks it is a directory.
fn resolve_dir(fs: &dyn Fs, dir: &Path) -> Result<PathBuf, Error> {
    let resolved = fs.resolve(dir).map_err(|source| Error::Fs {
        file: dir.to_path_buf(),
        source,
    })?;
    if fs.is_dir(&resolved) {
        Ok(resolved)
    } else {
        Err(Error::Fs {
            file: dir.to_path_buf(),
            source: FsError::NotADirectory {
                path: dir.to_path_buf(),
            },
        })
    }
}

/// Finds and parses the kustomization file of `dir`.
pub fn read_kustomization(fs: &dyn Fs, dir: &Path) -> Result<(&'static str, Kustomization), Error> {
    let entries = fs.list_dir(dir).map_err(|source| Error::Fs {
        file: dir.to_path_buf(),
        source,
    })?;
    let found: Vec<&'static str> = KUSTOMIZATION_FILE_NAMES
        .iter()
        .copied()
        .filter(|name| entries.iter().any(|e| e == name) && fs.is_file(&dir.join(name)))
        .collect();
    let file_name = match found.as_slice() {
        [] => {
            return Err(Error::MissingKustomization {
                dir: dir.to_path_buf(),
            });
        }
        [one] => *one,
        many => {
            return Err(Error::MultipleKustomizations {
                dir: dir.to_path_buf(),
                names: many.iter().map(|s| s.to_string()).collect(),
            });
        }
    };
    let loader = DirLoader { fs, dir };
    let text = loader.read_text(file_name)?;
    let file = dir.join(file_name);
    let mut problems = Vec::new();
    let kustomization = parse_kustomization(&file, &text, &mut problems);
    match (kustomization, problems.into_iter().next()) {
        (Some(k), None) => Ok((file_name, k)),
        (_, Some(problem)) => Err(problem),
        (None, None) => Err(Error::InvalidKustomization {
            file,
            cause: "unreadable".into(),
        }),
    }
}

/// The kustomization schema as JSON (for field names at every level).
fn kustomization_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        serde_json::to_value(schemars::schema_for!(Kustomization)).unwrap_or(Value::Null)
    })
}

/// The top-level field names of a kustomization, from its schema.
fn known_fields() -> Vec<&'static str> {
    kustomization_schema()
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// Follows `$ref` and picks the non-null branch of `anyOf`/`oneOf`.
fn schema_node<'a>(node: &'a Value, root: &'a Value) -> &'a Value {
    if let Some(reference) = node.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap_or_default();
        if let Some(target) = root.get("$defs").and_then(|d| d.get(name)) {
            return schema_node(target, root);
        }
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(branches) = node.get(key).and_then(Value::as_array)
            && let Some(branch) = branches
                .iter()
                .find(|b| b.get("type").and_then(Value::as_str) != Some("null"))
        {
            return schema_node(branch, root);
        }
    }
    node
}

/// Renames keys that match a field name only case-insensitively to the field's spelling, as
/// Go's `encoding/json` (which kustomize decodes kustomizations with) accepts them.
fn canonicalize_keys(value: &mut Value, node: &Value, root: &Value) {
    let node = schema_node(node, root);
    match value {
        Value::Object(map) => {
            let Some(properties) = node.get("properties").and_then(Value::as_object) else {
                return;
            };
            // Go's decoder leaves a field at its zero value when the YAML says `null`.
            map.retain(|_, v| !v.is_null());
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                if properties.contains_key(&key) {
                    continue;
                }
                let lower = key.to_lowercase();
                if let Some(canonical) = properties.keys().find(|p| p.to_lowercase() == lower)
                    && let Some(v) = map.remove(&key)
                {
                    map.insert(canonical.clone(), v);
                }
            }
            for (key, v) in map.iter_mut() {
                if let Some(child) = properties.get(key) {
                    canonicalize_keys(v, child, root);
                }
            }
        }
        Value::Array(items) => {
            if let Some(child) = node.get("items") {
                for item in items {
                    canonicalize_keys(item, child, root);
                }
            }
        }
        _ => {}
    }
}

/// Parses kustomization text; every problem found is pushed to `problems` (unknown fields
/// are all reported, not only the first). Returns the kustomization when it is usable.
pub fn parse_kustomization(
    file: &Path,
    text: &str,
    problems: &mut Vec<Error>,
) -> Option<Kustomization> {
    // go-yaml v2 rules, as kustomize reads kustomization files (a repeated key wins).
    let value = match crate::yaml::parse_kustomization(text) {
        Ok(value) => value.unwrap_or(Value::Null),
        Err(e) => {
            problems.push(Error::Yaml {
                file: file.to_path_buf(),
                cause: e.to_string(),
            });
            return None;
        }
    };
    let map = match value {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        other => {
            problems.push(Error::InvalidKustomization {
                file: file.to_path_buf(),
                cause: format!("expected a map, found {}", json_type(&other)),
            });
            return None;
        }
    };
    let schema = kustomization_schema();
    let mut value = Value::Object(map);
    canonicalize_keys(&mut value, schema, schema);
    let Value::Object(map) = value else {
        return None;
    };
    let known = known_fields();
    // Unknown fields are all reported; the rest is still read so a caller collecting
    // problems can keep walking.
    let mut map = map;
    map.retain(|key, _| {
        let is_known = known.iter().any(|k| k == key);
        if !is_known {
            problems.push(Error::UnknownField {
                file: file.to_path_buf(),
                field: key.clone(),
            });
        }
        is_known
    });
    // kustomize compares the decoded struct with an empty one (Go's DeepEqual): a list or map
    // written out, even empty (`resources: []`), is not nil, so the file is not empty.
    let declares_a_collection = map.iter().any(|(key, value)| {
        key != "apiVersion" && key != "kind" && matches!(value, Value::Array(_) | Value::Object(_))
    });
    let mut k: Kustomization = match serde_json::from_value(Value::Object(map)) {
        Ok(k) => k,
        Err(e) => {
            problems.push(Error::InvalidKustomization {
                file: file.to_path_buf(),
                cause: e.to_string(),
            });
            return None;
        }
    };
    let empty = Kustomization {
        api_version: k.api_version.clone(),
        kind: k.kind.clone(),
        ..Kustomization::default()
    };
    if k == empty && !declares_a_collection {
        problems.push(Error::InvalidKustomization {
            file: file.to_path_buf(),
            cause: "kustomization.yaml is empty".into(),
        });
        return None;
    }
    if k.kind.is_empty() {
        k.kind = "Kustomization".into();
    }
    let mut bad = Vec::new();
    if k.kind != "Kustomization" && k.kind != "Component" {
        bad.push("kind should be Kustomization or Component".to_string());
    }
    let required = if k.kind == "Component" {
        COMPONENT_VERSION
    } else {
        KUSTOMIZATION_VERSION
    };
    if !k.api_version.is_empty() && k.api_version != required {
        bad.push(format!("apiVersion for {} should be {required}", k.kind));
    }
    if !bad.is_empty() {
        problems.push(Error::InvalidKustomization {
            file: file.to_path_buf(),
            cause: bad.join("; "),
        });
        return None;
    }
    if k.api_version.is_empty() {
        k.api_version = required.into();
    }
    // Legacy spellings, folded as kustomize's FixKustomization does.
    let bases = std::mem::take(&mut k.bases);
    k.resources.extend(bases);
    let image_tags = std::mem::take(&mut k.image_tags);
    k.images.extend(image_tags);
    for generator in k
        .config_map_generator
        .iter_mut()
        .chain(k.secret_generator.iter_mut())
    {
        if !generator.env.is_empty() {
            let env = std::mem::take(&mut generator.env);
            generator.envs.push(env);
        }
    }
    Some(k)
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// Parses a resource file into objects: empty documents are skipped, `kind: FooList` with
/// `items` is expanded, every object needs a `kind` and a `metadata.name`.
pub fn parse_resources(file: &Path, text: &str, origin: &Origin) -> Result<Vec<Resource>, Error> {
    let documents = crate::yaml::parse_manifests_tracked(text).map_err(|e| Error::Yaml {
        file: file.to_path_buf(),
        cause: e.to_string(),
    })?;
    let mut out = Vec::new();
    for (i, (document, bare_nulls)) in documents.into_iter().enumerate() {
        let bad = |cause: String| Error::BadObject {
            file: file.to_path_buf(),
            index: i + 1,
            cause,
        };
        let first = out.len();
        collect_objects(document, &mut out, &bad, origin)?;
        // A document that is one object keeps its pointers; a `FooList`'s items do not.
        if out.len() == first + 1 {
            out[first].bare_nulls = bare_nulls;
        }
    }
    Ok(out)
}

fn collect_objects(
    document: Value,
    out: &mut Vec<Resource>,
    bad: &dyn Fn(String) -> Error,
    origin: &Origin,
) -> Result<(), Error> {
    let map = match document {
        Value::Null => return Ok(()),
        Value::Object(map) if map.is_empty() => return Ok(()),
        Value::Object(map) => map,
        other => {
            return Err(bad(format!(
                "expected an object (a map), found {}",
                json_type(&other)
            )));
        }
    };
    let kind = map
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if kind.is_empty() {
        return Err(bad(format!("missing kind in object {}", describe(&map))));
    }
    if kind.ends_with("List") {
        match map.get("items") {
            None => {}
            Some(Value::Null) => return Ok(()),
            Some(Value::Array(items)) => {
                for item in items.clone() {
                    collect_objects(item, out, bad, origin)?;
                }
                return Ok(());
            }
            Some(other) => {
                return Err(bad(format!(
                    "expected array in {kind}/items, but found {}",
                    json_type(other)
                )));
            }
        }
    } else {
        let name = map.get("metadata").and_then(|m| m.get("name"));
        if name.is_none_or(|n| n.is_null() || n.as_str() == Some("")) {
            return Err(bad(format!(
                "missing metadata.name in object {}",
                describe(&map)
            )));
        }
    }
    let mut resource = Resource::new(map);
    resource.origin = Some(origin.clone());
    out.push(resource);
    Ok(())
}

fn describe(map: &Map<String, Value>) -> String {
    ResId::of(&Value::Object(map.clone())).to_string()
}

/// Kinds Kubernetes serves without a namespace (kustomize's builtin OpenAPI scope table).
pub fn is_cluster_scoped(gvk: &Gvk) -> bool {
    const CLUSTER_SCOPED: &[(&str, &str)] = &[
        ("", "ComponentStatus"),
        ("", "Namespace"),
        ("", "Node"),
        ("", "PersistentVolume"),
        (
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration",
        ),
        (
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration",
        ),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
        (
            "admissionregistration.k8s.io",
            "ValidatingAdmissionPolicyBinding",
        ),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("apiregistration.k8s.io", "APIService"),
        ("authentication.k8s.io", "TokenReview"),
        ("authentication.k8s.io", "SelfSubjectReview"),
        ("authorization.k8s.io", "SelfSubjectAccessReview"),
        ("authorization.k8s.io", "SelfSubjectRulesReview"),
        ("authorization.k8s.io", "SubjectAccessReview"),
        ("certificates.k8s.io", "CertificateSigningRequest"),
        ("certificates.k8s.io", "ClusterTrustBundle"),
        ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
        ("networking.k8s.io", "IngressClass"),
        ("networking.k8s.io", "IPAddress"),
        ("networking.k8s.io", "ServiceCIDR"),
        ("node.k8s.io", "RuntimeClass"),
        ("policy", "PodSecurityPolicy"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("resource.k8s.io", "DeviceClass"),
        ("resource.k8s.io", "ResourceSlice"),
        ("scheduling.k8s.io", "PriorityClass"),
        ("storage.k8s.io", "CSIDriver"),
        ("storage.k8s.io", "CSINode"),
        ("storage.k8s.io", "StorageClass"),
        ("storage.k8s.io", "VolumeAttachment"),
        ("storage.k8s.io", "VolumeAttributesClass"),
    ];
    CLUSTER_SCOPED
        .iter()
        .any(|(group, kind)| *group == gvk.group && *kind == gvk.kind)
}

/// kustomize's effective namespace: cluster-scoped objects have none, an empty namespace is
/// `default`.
pub fn effective_namespace(id: &ResId) -> &str {
    if is_cluster_scoped(&id.gvk) {
        "~X"
    } else if id.namespace.is_empty() {
        "default"
    } else {
        &id.namespace
    }
}

/// kustomize's `ResId.Equals`: same group, version, kind, name and effective namespace.
pub fn same_id(a: &ResId, b: &ResId) -> bool {
    a.gvk == b.gvk && a.name == b.name && effective_namespace(a) == effective_namespace(b)
}
