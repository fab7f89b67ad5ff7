//! Accumulation: kustomize's `KustTarget.AccumulateTarget`, walked in the same order —
//! resources (files and nested kustomizations), transformer configurations and CRDs,
//! generators, components, transformers, validators, vars.
//!
//! Invariant: reads only through [`KustDir`] (and so through the `Fs` and its restrictor).

use std::path::Path;

use serde_json::Value;

use crate::model::{GeneratorBehavior, Origin, ResMap, Resource};
use crate::render::build_metadata;
use crate::render::error::{Error, step_error};
use crate::render::generators;
use crate::render::load::{KustDir, same_id};
use crate::render::transformers::{self, TransformerConfig};
use crate::render::vars::VarSet;

/// What a (sub)build has gathered so far: its objects, the transformer configuration in
/// force and the declared legacy vars.
#[derive(Debug, Clone, Default)]
pub struct Accumulator {
    /// The objects, in accumulation order.
    pub resources: ResMap,
    /// Field specs for the builtin transformers (builtin ones plus `configurations:`).
    pub config: TransformerConfig,
    /// Legacy `vars` declared so far.
    pub vars: VarSet,
    /// Things kustomize lets pass but a user wants to know (a patch that selects nothing).
    pub warnings: Vec<String>,
}

impl Accumulator {
    /// An empty accumulator.
    pub fn new() -> Accumulator {
        Accumulator::default()
    }

    /// Appends objects, refusing an id already present (kustomize's `AppendAll`).
    pub fn append_all(&mut self, incoming: Vec<Resource>, file: &Path) -> Result<(), Error> {
        for resource in incoming {
            append_unique(&mut self.resources, resource, file)?;
        }
        Ok(())
    }

    /// Folds a child build into this one (kustomize's `MergeAccumulator`).
    pub fn merge(&mut self, child: Accumulator, file: &std::path::Path) -> Result<(), Error> {
        self.append_all(child.resources.into_vec(), file)?;
        self.warnings.extend(child.warnings);
        // Most children carry exactly the parent's configuration; merging it would change
        // nothing.
        if self.config != child.config {
            self.config
                .merge(&child.config)
                .map_err(|e| step_error(file, "configurations", e))?;
        }
        self.vars
            .merge_set(&child.vars)
            .map_err(|e| step_error(file, "vars", e))?;
        Ok(())
    }
}

fn origin_path(resource: &Resource) -> std::path::PathBuf {
    resource
        .origin
        .as_ref()
        .map(|o| o.path.clone())
        .unwrap_or_default()
        .into()
}

/// Appends one object unless an object with an equal id (kustomize's `ResId.Equals`: the
/// empty namespace is `default`) is already there; `file` is the kustomization adding it.
pub fn append_unique(resources: &mut ResMap, resource: Resource, file: &Path) -> Result<(), Error> {
    let id = resource.id();
    // Names are compared first, borrowed: full ids are built only for namesakes.
    let existing = resources
        .iter()
        .filter(|r| r.name() == id.name)
        .find(|r| same_id(&r.id(), &id));
    if let Some(existing) = existing {
        return Err(Error::DuplicateId {
            file: file.to_path_buf(),
            id: Box::new(id),
            first: origin_path(existing),
            second: origin_path(&resource),
        });
    }
    resources.as_mut_vec().push(resource);
    Ok(())
}

/// Adds a generated object: created when new, merged into or replacing the base object of
/// the same id when `behavior` says so (kustomize's `appendReplaceOrMerge`).
pub fn absorb(
    kust: &KustDir<'_>,
    resources: &mut ResMap,
    mut generated: Resource,
) -> Result<(), Error> {
    let id = generated.id();
    let behavior = generated
        .generator
        .as_ref()
        .map(|g| g.behavior.clone())
        .unwrap_or_default();
    let matches: Vec<usize> = resources
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.previous_ids
                .iter()
                .chain(std::iter::once(&r.id()))
                .any(|old| same_id(old, &id))
        })
        .map(|(i, _)| i)
        .collect();
    let behavior_error = |cause: String| Error::Behavior {
        file: kust.file(),
        id: Box::new(id.clone()),
        cause,
    };
    match matches.as_slice() {
        [] => match behavior.as_str() {
            "merge" | "replace" => Err(behavior_error(
                "does not exist; cannot merge or replace".into(),
            )),
            _ => append_unique(resources, generated, &kust.file()),
        },
        [index] => {
            let old = &resources.as_slice()[*index];
            match behavior.as_str() {
                "replace" => copy_merge_metadata(&mut generated, old),
                "merge" => {
                    copy_merge_metadata(&mut generated, old);
                    for field in ["data", "binaryData"] {
                        merge_string_map(&mut generated, old, field);
                    }
                    if old.origin.is_some() {
                        generated.origin = old.origin.clone();
                    }
                }
                _ => {
                    return Err(behavior_error(
                        "exists; behavior must be merge or replace".into(),
                    ));
                }
            }
            resources.as_mut_vec()[*index] = generated;
            Ok(())
        }
        many => Err(behavior_error(format!(
            "found multiple objects {} that could accept merge",
            many.iter()
                .map(|i| resources.as_slice()[*i].id().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Labels and annotations of `old` under `new`'s; name, namespace and history from `old`;
/// hash only when both asked for it (kustomize's `CopyMergeMetaDataFieldsFrom`).
fn copy_merge_metadata(new: &mut Resource, old: &Resource) {
    for field in ["labels", "annotations"] {
        let old_map = old
            .object
            .get("metadata")
            .and_then(|m| m.get(field))
            .and_then(Value::as_object);
        let new_map = new
            .object
            .get("metadata")
            .and_then(|m| m.get(field))
            .and_then(Value::as_object);
        let mut merged = old_map.cloned().unwrap_or_default();
        if let Some(new_map) = new_map {
            for (k, v) in new_map {
                merged.insert(k.clone(), v.clone());
            }
        }
        let meta = new.metadata_mut();
        if merged.is_empty() {
            meta.remove(field);
        } else {
            meta.insert(field.into(), Value::Object(merged));
        }
    }
    let name = old.name().to_string();
    let namespace = old.namespace().to_string();
    new.set_name(&name);
    if namespace.is_empty() {
        new.metadata_mut().remove("namespace");
    } else {
        new.set_namespace(&namespace);
    }
    new.previous_ids = old.previous_ids.clone();
    new.ref_var_names = old.ref_var_names.clone();
    let old_hash = old.generator.as_ref().is_some_and(|g| g.needs_hash);
    let new_behavior = new.generator.take().unwrap_or_default();
    new.generator = Some(GeneratorBehavior {
        behavior: old
            .generator
            .as_ref()
            .map(|g| g.behavior.clone())
            .unwrap_or_default(),
        needs_hash: new_behavior.needs_hash && old_hash,
    });
}

fn merge_string_map(new: &mut Resource, old: &Resource, field: &str) {
    let Some(old_map) = old.object.get(field).and_then(Value::as_object) else {
        return;
    };
    let mut merged = old_map.clone();
    if let Some(new_map) = new.object.get(field).and_then(Value::as_object) {
        for (k, v) in new_map {
            merged.insert(k.clone(), v.clone());
        }
    }
    new.object.insert(field.into(), Value::Object(merged));
}

/// Runs `configMapGenerator` and `secretGenerator` of `kust`, absorbing their objects.
pub fn run_builtin_generators(kust: &KustDir<'_>, resources: &mut ResMap) -> Result<(), Error> {
    let k = &kust.kustomization;
    let loader = kust.loader();
    let origin_in = kust.origin_of(kust.file_name);
    let global = k.generator_options.as_ref();
    let mut made = Vec::new();
    for args in &k.config_map_generator {
        let mut r = generators::make_config_map(&loader, args, global).map_err(|source| {
            Error::Generator {
                file: kust.file(),
                source,
            }
        })?;
        r.origin = Some(Origin {
            path: origin_in.clone(),
            generator: Some("ConfigMapGenerator".into()),
        });
        made.push(r);
    }
    for args in &k.secret_generator {
        let mut r =
            generators::make_secret(&loader, args, global).map_err(|source| Error::Generator {
                file: kust.file(),
                source,
            })?;
        r.origin = Some(Origin {
            path: origin_in.clone(),
            generator: Some("SecretGenerator".into()),
        });
        made.push(r);
    }
    // `helmGlobals` alone inflates nothing, so kustomize builds; charts need helm.
    if !k.helm_charts.is_empty() || !k.helm_chart_inflation_generator.is_empty() {
        return Err(Error::Unsupported {
            file: kust.file(),
            what: "helm chart inflation".into(),
        });
    }
    for r in made {
        absorb(kust, resources, r)?;
    }
    Ok(())
}

/// Appends the content hash to the name of every generated object that asked for it
/// (kustomize's `HashTransformer`, run once all transformers are done).
pub fn add_hashes(resources: &mut ResMap) -> Result<(), Error> {
    for resource in resources.iter_mut() {
        if !resource.generator.as_ref().is_some_and(|g| g.needs_hash) {
            continue;
        }
        let hash = generators::content_hash(&resource.object)
            .map_err(|e| step_error(&origin_path(resource), "name hash", e))?;
        resource.remember_id();
        let name = format!("{}-{}", resource.name(), hash);
        resource.set_name(&name);
    }
    Ok(())
}

/// kustomize's `accumulateTarget`: builds `kust` on top of `acc` (empty for a kustomization,
/// the parent's for a component).
pub fn accumulate_target(kust: &KustDir<'_>, mut acc: Accumulator) -> Result<Accumulator, Error> {
    let k = &kust.kustomization;
    accumulate_resources(kust, &mut acc, &k.resources)?;
    let config = load_configurations(kust)?;
    if acc.config != config {
        acc.config
            .merge(&config)
            .map_err(|e| step_error(&kust.file(), "configurations", e))?;
    }
    if !k.crds.is_empty() {
        let crd_config = crate::render::crds::load_crd_config(&kust.loader(), &k.crds)
            .map_err(|e| step_error(&kust.file(), "crds", e))?;
        acc.config
            .merge(&crd_config)
            .map_err(|e| step_error(&kust.file(), "crds", e))?;
    }
    run_builtin_generators(kust, &mut acc.resources)?;
    run_generator_plugins(kust, &mut acc.resources)?;
    for entry in &k.components {
        acc = accumulate_component(kust, acc, entry)?;
    }
    run_transformers(kust, &mut acc)?;
    if !k.validators.is_empty() {
        return Err(Error::Unsupported {
            file: kust.file(),
            what: "validators (plugin execution)".into(),
        });
    }
    merge_vars(kust, &mut acc)?;
    Ok(acc)
}

/// `resources:` (and legacy `bases:`): each entry is a resource file, or failing that a
/// kustomization directory built on its own and appended.
pub fn accumulate_resources(
    kust: &KustDir<'_>,
    acc: &mut Accumulator,
    entries: &[String],
) -> Result<(), Error> {
    for entry in entries {
        if entry.contains("://") || entry.starts_with("git@") || entry.starts_with("github.com/") {
            return Err(Error::Unsupported {
                file: kust.file(),
                what: format!("remote resource {entry:?}"),
            });
        }
        let as_file = match kust.read_resource_file(entry) {
            Ok(objects) => {
                acc.append_all(objects, &kust.file())?;
                continue;
            }
            Err(e) => e,
        };
        let child = match kust.open_child(entry) {
            Ok(child) => child,
            Err(as_dir) => {
                if as_file.is_malformed_yaml() {
                    return Err(as_file);
                }
                if matches!(as_dir, Error::Cycle { .. }) {
                    return Err(as_dir);
                }
                // Report the attempt that fits what is there: a directory's kustomization
                // problem, or else why the entry could not be read as a file.
                if kust.fs.is_dir(&kust.dir.join(entry)) {
                    return Err(Error::Included {
                        from: kust.dir.clone(),
                        source: Box::new(as_dir),
                    });
                }
                return Err(Error::Resource {
                    file: kust.file(),
                    entry: entry.clone(),
                    source: Box::new(as_file),
                });
            }
        };
        if child.is_component() {
            return Err(Error::WrongKind {
                file: child.file(),
                cause: format!(
                    "expected kind != 'Component' for path '{}'",
                    child.dir.display()
                ),
            });
        }
        let child_acc =
            accumulate_target(&child, Accumulator::new()).map_err(|e| Error::Included {
                from: kust.dir.clone(),
                source: Box::new(e),
            })?;
        acc.merge(child_acc, &kust.file())
            .map_err(|e| Error::Included {
                from: kust.dir.clone(),
                source: Box::new(e),
            })?;
    }
    Ok(())
}

/// One `components:` entry: a kind `Component` directory applied to the parent's objects.
fn accumulate_component(
    kust: &KustDir<'_>,
    acc: Accumulator,
    entry: &str,
) -> Result<Accumulator, Error> {
    let child = kust.open_child(entry).map_err(|e| Error::Included {
        from: kust.dir.clone(),
        source: Box::new(e),
    })?;
    if !child.is_component() {
        return Err(Error::WrongKind {
            file: child.file(),
            cause: format!(
                "expected kind 'Component' for path '{}' but got '{}'",
                child.dir.display(),
                child.kustomization.kind
            ),
        });
    }
    accumulate_target(&child, acc).map_err(|e| Error::Included {
        from: kust.dir.clone(),
        source: Box::new(e),
    })
}

/// The builtin field specs merged with the `configurations:` files.
fn load_configurations(kust: &KustDir<'_>) -> Result<TransformerConfig, Error> {
    // Built once per process: every kustomization of a build starts from it.
    static BUILTIN: std::sync::OnceLock<TransformerConfig> = std::sync::OnceLock::new();
    let mut config = BUILTIN.get_or_init(TransformerConfig::builtin).clone();
    for entry in &kust.kustomization.configurations {
        let file = kust.dir.join(entry);
        let text = kust.loader().read_text(entry)?;
        let documents = crate::yaml::parse_documents(&text).map_err(|e| Error::Yaml {
            file: file.clone(),
            cause: e.to_string(),
        })?;
        for document in documents {
            if document.is_null() {
                continue;
            }
            let custom: TransformerConfig = serde_json::from_value(document)
                .map_err(|e| step_error(&file, "configurations", e))?;
            config
                .merge(&custom)
                .map_err(|e| step_error(&file, "configurations", e))?;
        }
    }
    Ok(config)
}

/// Reads plugin configurations (`generators:`, `transformers:`): each entry is an inline
/// object, a file of objects, or a kustomization directory whose output is the configs.
pub fn load_plugin_configs(kust: &KustDir<'_>, entries: &[String]) -> Result<Vec<Resource>, Error> {
    let mut configs = Accumulator::new();
    let mut paths = Vec::new();
    for entry in entries {
        let inline = crate::render::load::parse_resources(
            &kust.file(),
            entry,
            &Origin {
                path: kust.origin_of(kust.file_name),
                generator: None,
            },
        );
        match inline {
            Ok(objects) if !objects.is_empty() => configs.append_all(objects, &kust.file())?,
            _ => paths.push(entry.clone()),
        }
    }
    accumulate_resources(kust, &mut configs, &paths)?;
    Ok(configs.resources.into_vec())
}

/// `generators:`: kustomize's builtin generator plugins, configured by objects.
fn run_generator_plugins(kust: &KustDir<'_>, resources: &mut ResMap) -> Result<(), Error> {
    if kust.kustomization.generators.is_empty() {
        return Ok(());
    }
    let configs = load_plugin_configs(kust, &kust.kustomization.generators)?;
    let loader = kust.loader();
    for config in configs {
        let kind = config.gvk().kind;
        let origin = Some(Origin {
            path: config
                .origin
                .as_ref()
                .map(|o| o.path.clone())
                .unwrap_or_default(),
            generator: Some(kind.clone()),
        });
        let is_delegated = crate::render::builtin_generators::is_builtin(&config)
            && crate::render::builtin_generators::DELEGATED_KINDS.contains(&kind.as_str());
        let made = if is_delegated {
            let args = plugin_generator_args(&config)
                .map_err(|e| step_error(&kust.file(), "generators", e))?;
            let made = if kind == "ConfigMapGenerator" {
                generators::make_config_map(&loader, &args, None)
            } else {
                generators::make_secret(&loader, &args, None)
            };
            let mut made = made.map_err(|source| Error::Generator {
                file: kust.file(),
                source,
            })?;
            made.generated_by = Some(config.id());
            vec![made]
        } else {
            crate::render::builtin_generators::generate(&config)
                .map_err(|e| step_error(&kust.file(), "generators", e))?
        };
        for mut resource in made {
            resource.origin = origin.clone();
            absorb(kust, resources, resource)?;
        }
    }
    Ok(())
}

/// A builtin ConfigMap/Secret generator config: the generator fields at top level, the
/// name and namespace defaulting to the config's own metadata.
fn plugin_generator_args(config: &Resource) -> Result<crate::render::types::GeneratorArgs, String> {
    const FIELDS: &[&str] = &[
        "namespace",
        "name",
        "behavior",
        "literals",
        "files",
        "envs",
        "env",
        "options",
        "type",
    ];
    let fields: serde_json::Map<String, Value> = config
        .object
        .iter()
        .filter(|(k, _)| FIELDS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut args: crate::render::types::GeneratorArgs =
        serde_json::from_value(Value::Object(fields)).map_err(|e| e.to_string())?;
    if args.name.is_empty() {
        args.name = config.name().to_string();
    }
    if args.namespace.is_empty() {
        args.namespace = config.namespace().to_string();
    }
    if !args.env.is_empty() {
        let env = std::mem::take(&mut args.env);
        args.envs.push(env);
    }
    Ok(args)
}

/// The builtin transformers, in kustomize's order, then `transformers:` plugins.
fn run_transformers(kust: &KustDir<'_>, acc: &mut Accumulator) -> Result<(), Error> {
    let k = &kust.kustomization;
    let loader = kust.loader();
    let file = kust.file();
    let tracking = kust.tracking();
    let configured_in = kust.origin_of(kust.file_name);
    let steps = transformers::configure_builtin(k, &acc.config, &loader, kust.schema())
        .map_err(|e| step_error(&file, "transformers", e))?;
    for step in steps {
        let warnings = step
            .apply(&mut acc.resources)
            .map_err(|e| step_error(&file, step_name(&step), e))?;
        acc.warnings.extend(
            warnings
                .into_iter()
                .map(|w| format!("{}: {}: {w}", file.display(), step_name(&step))),
        );
        if tracking {
            build_metadata::record_transformation(&mut acc.resources, &configured_in, step.kind());
        }
    }
    if k.transformers.is_empty() {
        return Ok(());
    }
    for config in load_plugin_configs(kust, &k.transformers)? {
        let kind = config.gvk().kind;
        let steps = transformers::plugins::configure_plugin(&config, &loader, kust.schema())
            .map_err(|e| step_error(&file, "transformers", e))?;
        for step in steps {
            let warnings = step
                .apply(&mut acc.resources)
                .map_err(|e| step_error(&file, &kind, e))?;
            acc.warnings.extend(
                warnings
                    .into_iter()
                    .map(|w| format!("{}: {kind}: {w}", file.display())),
            );
        }
        if tracking {
            build_metadata::record_plugin_transformation(&mut acc.resources, &config);
        }
    }
    Ok(())
}

/// The kustomization field a builtin step comes from, for error messages.
fn step_name(step: &transformers::Step) -> &'static str {
    use transformers::Step;
    match step {
        Step::PatchStrategicMerge(_) => "patchesStrategicMerge",
        Step::Patch(_) => "patches",
        Step::Namespace(_) => "namespace",
        Step::PrefixSuffix(_) => "namePrefix/nameSuffix",
        Step::Labels(_) => "labels",
        Step::Annotations(_) => "commonAnnotations",
        Step::PatchJson6902(_) => "patchesJson6902",
        Step::Replicas(_) => "replicas",
        Step::Images(_) => "images",
        Step::Replacements(_) => "replacements",
    }
}

/// Marks the objects `vars:` read and adds the vars to the set (resolved once the whole
/// build is done).
fn merge_vars(kust: &KustDir<'_>, acc: &mut Accumulator) -> Result<(), Error> {
    acc.vars
        .merge_from_kustomization(&kust.kustomization.vars, &mut acc.resources)
        .map_err(|e| step_error(&kust.file(), "vars", e))
}
