//! kustomize's builtin transformers, one file each, and the one fixed order they run in.
//!
//! Each transformer is a config struct with `apply(&self, &mut ResMap)`. [`configure_builtin`]
//! turns a kustomization into the list of [`Step`]s kustomize would run, in its one fixed order
//! (`kusttarget_configplugin.go`): patchesStrategicMerge, patches, namespace, prefix, suffix,
//! labels, annotations, patchesJson6902, replicas, images, replacements; [`run_builtin`] runs
//! them. The transformer plugins named in `transformers:` come after, through
//! [`plugins::configure_plugin`]. Name references are fixed once, at the very end of a build,
//! by [`fix_name_references`].
//!
//! Invariant: no IO except through the [`FileLoader`] handed in; no clock, no environment.

pub mod annotations;
pub mod config;
pub mod fieldspec;
pub mod images;
pub mod labels;
pub mod name_reference;
pub mod namespace;
pub mod plugins;
pub mod prefix_suffix;
pub mod replicas;

use crate::model::{ResId, ResMap};
use std::sync::Arc;

use crate::render::files::{FileLoader, LoadError};
use crate::render::patch::openapi::OpenApi;
use crate::render::patch::{
    self, PatchJson6902Transformer, PatchStrategicMergeTransformer, PatchTransformer,
};
use crate::render::replacements::{ReplacementError, ReplacementTransformer};
use crate::render::types::Kustomization;

pub use config::TransformerConfig;

use annotations::AnnotationsTransformer;
use images::ImageTagTransformer;
use labels::LabelTransformer;
use name_reference::NameReferenceTransformer;
use namespace::NamespaceTransformer;
use prefix_suffix::{Affix, PrefixSuffixTransformer};
use replicas::ReplicaCountTransformer;

/// A transformer failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field spec could not be followed or its field could not be set.
    #[error("considering field '{path}' of object {}: {cause}", kustomize_id(id))]
    Field {
        /// The object being transformed.
        id: Box<ResId>,
        /// The field spec's path.
        path: String,
        /// What went wrong.
        cause: fieldspec::WalkError,
    },
    /// Two objects ended up with the same id.
    #[error(
        "{transformer} transformation produces ID conflict: {}",
        kustomize_id(id)
    )]
    IdConflict {
        /// Which transformer (`namespace`, `prefix`…).
        transformer: &'static str,
        /// The duplicated id.
        id: Box<ResId>,
    },
    /// A transformer's configuration is invalid.
    #[error("invalid {transformer} configuration: {cause}")]
    Config {
        /// Which transformer or configuration file.
        transformer: String,
        /// What is wrong.
        cause: String,
    },
    /// `configurations:` files could not be merged.
    #[error("merging configurations: {0}")]
    Merge(#[from] config::MergeError),
    /// A name reference matched several objects.
    #[error(
        "updating name reference in '{path}' field of '{id}': considering field '{path}' of object {id}: found multiple possible referrals: {candidates}",
        id = kustomize_id(referrer)
    )]
    AmbiguousReference {
        /// The object holding the reference.
        referrer: Box<ResId>,
        /// The field holding the name.
        path: String,
        /// The ids of the objects it could mean.
        candidates: String,
    },
    /// A file named in the kustomization could not be read.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A patch could not be read or applied.
    #[error(transparent)]
    Patch(Box<patch::Error>),
    /// A replacement failed.
    #[error(transparent)]
    Replacement(Box<ReplacementError>),
    /// A `replicas:` entry names no object of a kind with a replica count.
    #[error("resource with name {name} does not match a config with the following GVK [{kinds}]")]
    NoReplicaTarget {
        /// The name asked for.
        name: String,
        /// The kinds that have replica counts, as kustomize spells them.
        kinds: String,
    },
    /// A name reference could not be followed.
    #[error("{cause}")]
    NameReference {
        /// What went wrong, with the referrer and field.
        cause: String,
    },
    /// A `builtin` plugin kind kustomize does not have.
    #[error("unable to load builtin {kind}.builtin.[noGrp]")]
    UnknownBuiltin {
        /// The kind asked for.
        kind: String,
    },
    /// A plugin kind that would need plugin execution.
    #[error("transformer kind {kind} is not supported (no plugin execution)")]
    UnsupportedTransformer {
        /// `apiVersion/kind` of the plugin config.
        kind: String,
    },
}

impl From<patch::Error> for Error {
    fn from(error: patch::Error) -> Error {
        Error::Patch(Box::new(error))
    }
}

impl From<ReplacementError> for Error {
    fn from(error: ReplacementError) -> Error {
        Error::Replacement(Box::new(error))
    }
}

/// An id as kustomize spells it in messages: `Kind.version.group/name.namespace`, with
/// `[noGrp]`, `[noVer]`, `[noKind]`, `[noName]`, `[noNs]` for empty parts.
pub fn kustomize_id(id: &ResId) -> String {
    let or = |s: &str, placeholder: &'static str| {
        if s.is_empty() {
            placeholder.to_string()
        } else {
            s.to_string()
        }
    };
    format!(
        "{}.{}.{}/{}.{}",
        or(&id.gvk.kind, "[noKind]"),
        or(&id.gvk.version, "[noVer]"),
        or(&id.gvk.group, "[noGrp]"),
        or(&id.name, "[noName]"),
        or(&id.namespace, "[noNs]")
    )
}

/// kustomize's result type for transformers.
pub type Result<T> = std::result::Result<T, Error>;

/// Wraps a field-spec walk error with the object and path it happened at.
pub(crate) fn field_error(id: ResId, path: &str) -> impl FnOnce(fieldspec::WalkError) -> Error {
    move |cause| Error::Field {
        id: Box::new(id),
        path: path.to_string(),
        cause,
    }
}

/// One configured builtin transformer, as kustomize's `configureBuiltinTransformers` makes
/// them: a kustomization yields a list of these, applied in order.
#[derive(Debug, Clone)]
pub enum Step {
    /// `patchesStrategicMerge:` (file paths or inline patches).
    PatchStrategicMerge(PatchStrategicMergeTransformer),
    /// One `patches:` entry.
    Patch(PatchTransformer),
    /// `namespace:`.
    Namespace(NamespaceTransformer),
    /// `namePrefix:` or `nameSuffix:`.
    PrefixSuffix(PrefixSuffixTransformer),
    /// One `labels:` entry or `commonLabels:`.
    Labels(LabelTransformer),
    /// `commonAnnotations:`.
    Annotations(AnnotationsTransformer),
    /// One `patchesJson6902:` entry.
    PatchJson6902(PatchJson6902Transformer),
    /// One `replicas:` entry.
    Replicas(ReplicaCountTransformer),
    /// One `images:` entry.
    Images(ImageTagTransformer),
    /// `replacements:`.
    Replacements(ReplacementTransformer),
}

impl Step {
    /// kustomize's name for the builtin plugin (used in `transformerAnnotations`).
    pub fn kind(&self) -> &'static str {
        match self {
            Step::PatchStrategicMerge(_) => "PatchStrategicMergeTransformer",
            Step::Patch(_) => "PatchTransformer",
            Step::Namespace(_) => "NamespaceTransformer",
            Step::PrefixSuffix(t) if t.affix == Affix::Prefix => "PrefixTransformer",
            Step::PrefixSuffix(_) => "SuffixTransformer",
            Step::Labels(_) => "LabelTransformer",
            Step::Annotations(_) => "AnnotationsTransformer",
            Step::PatchJson6902(_) => "PatchJson6902Transformer",
            Step::Replicas(_) => "ReplicaCountTransformer",
            Step::Images(_) => "ImageTagTransformer",
            Step::Replacements(_) => "ReplacementTransformer",
        }
    }

    /// Applies the step, then drops objects left empty (kustomize's `DropEmpties`). Returns
    /// the warnings of patches whose target selected nothing (kustomize builds anyway).
    pub fn apply(&self, resmap: &mut ResMap) -> Result<Vec<patch::Warning>> {
        let mut warnings = Vec::new();
        match self {
            Step::PatchStrategicMerge(t) => warnings = t.apply(resmap)?,
            Step::Patch(t) => warnings = t.apply(resmap)?,
            Step::PatchJson6902(t) => warnings = t.apply(resmap)?,
            Step::Namespace(t) => t.apply(resmap)?,
            Step::PrefixSuffix(t) => t.apply(resmap)?,
            Step::Labels(t) => t.apply(resmap)?,
            Step::Annotations(t) => t.apply(resmap)?,
            Step::Replicas(t) => t.apply(resmap)?,
            Step::Images(t) => t.apply(resmap)?,
            Step::Replacements(t) => t
                .apply(resmap)
                .map_err(|e| Error::Replacement(Box::new(e)))?,
        }
        resmap.as_mut_vec().retain(|r| !r.object.is_empty());
        Ok(warnings)
    }
}

/// The builtin transformers a kustomization asks for, configured, in kustomize's order:
/// patchesStrategicMerge, patches, namespace, prefix, suffix, labels (each `labels:` entry,
/// then `commonLabels`), annotations, patchesJson6902, replicas, images, replacements.
/// Every file they name is read here, before any of them runs, as kustomize does; `schema`
/// gives the merge keys of strategic merge patches.
pub fn configure_builtin(
    k: &Kustomization,
    config: &TransformerConfig,
    files: &dyn FileLoader,
    schema: Arc<OpenApi>,
) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    if !k.patches_strategic_merge.is_empty() {
        steps.push(Step::PatchStrategicMerge(
            PatchStrategicMergeTransformer::new(
                &k.patches_strategic_merge,
                files,
                Arc::clone(&schema),
            )?,
        ));
    }
    for entry in &k.patches {
        steps.push(Step::Patch(PatchTransformer::new(
            entry,
            files,
            Arc::clone(&schema),
        )?));
    }
    if !k.namespace.is_empty() {
        steps.push(Step::Namespace(NamespaceTransformer {
            namespace: k.namespace.clone(),
            field_specs: config.namespace.clone(),
            ..NamespaceTransformer::default()
        }));
    }
    if !k.name_prefix.is_empty() {
        steps.push(Step::PrefixSuffix(PrefixSuffixTransformer {
            affix: Affix::Prefix,
            text: k.name_prefix.clone(),
            field_specs: config.name_prefix.clone(),
        }));
    }
    if !k.name_suffix.is_empty() {
        steps.push(Step::PrefixSuffix(PrefixSuffixTransformer {
            affix: Affix::Suffix,
            text: k.name_suffix.clone(),
            field_specs: config.name_suffix.clone(),
        }));
    }
    if !k.labels.is_empty() || !k.common_labels.is_empty() {
        for label in &k.labels {
            steps.push(Step::Labels(LabelTransformer::from_label(label, config)?));
        }
        steps.push(Step::Labels(LabelTransformer::common(
            &k.common_labels,
            config,
        )));
    }
    if !k.common_annotations.is_empty() {
        steps.push(Step::Annotations(AnnotationsTransformer::common(
            &k.common_annotations,
            config,
        )));
    }
    for entry in &k.patches_json6902 {
        steps.push(Step::PatchJson6902(PatchJson6902Transformer::new(
            entry, files,
        )?));
    }
    for replica in &k.replicas {
        steps.push(Step::Replicas(ReplicaCountTransformer {
            replica: replica.clone(),
            field_specs: config.replicas.clone(),
        }));
    }
    for image in k.images.iter().chain(&k.image_tags) {
        steps.push(Step::Images(ImageTagTransformer {
            image: image.clone(),
            field_specs: config.images.clone(),
        }));
    }
    if !k.replacements.is_empty() {
        let parse = |text: &str| parse_single_document(text);
        steps.push(Step::Replacements(ReplacementTransformer::from_fields(
            &k.replacements,
            files,
            &parse,
        )?));
    }
    Ok(steps)
}

/// Runs every builtin transformer the kustomization asks for, in kustomize's order; returns
/// the warnings of patches that selected nothing.
pub fn run_builtin(
    k: &Kustomization,
    resmap: &mut ResMap,
    config: &TransformerConfig,
    files: &dyn FileLoader,
    schema: Arc<OpenApi>,
) -> Result<Vec<patch::Warning>> {
    let mut warnings = Vec::new();
    for step in configure_builtin(k, config, files, schema)? {
        warnings.extend(step.apply(resmap)?);
    }
    Ok(warnings)
}

/// The last step of a build, after hash suffixes: rewrites references to renamed objects,
/// then drops the bookkeeping annotations the transformers kept on objects.
pub fn fix_name_references(resmap: &mut ResMap, config: &TransformerConfig) -> Result<()> {
    NameReferenceTransformer {
        back_references: config.name_reference.clone(),
    }
    .apply(resmap)?;
    prefix_suffix::remove_build_annotations(resmap);
    Ok(())
}

/// Parses a file holding one YAML document (replacement files, plugin configs).
pub(crate) fn parse_single_document(text: &str) -> std::result::Result<serde_json::Value, String> {
    let documents = crate::yaml::parse_documents(text).map_err(|e| e.to_string())?;
    Ok(documents
        .into_iter()
        .next()
        .unwrap_or(serde_json::Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::types::{Image, Label, Patch, Replica};
    use std::collections::BTreeMap;

    /// Every builtin transformer at once: the steps come out in kustomize's order whatever
    /// the order of the fields in the file.
    #[test]
    fn steps_follow_kustomizes_fixed_order() {
        let files: BTreeMap<String, String> = BTreeMap::from([(
            "smp.yaml".to_string(),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: b\n".to_string(),
        )]);
        let pairs = BTreeMap::from([("a".to_string(), "b".to_string())]);
        let k = Kustomization {
            images: vec![Image {
                name: "nginx".into(),
                new_tag: "2".into(),
                ..Image::default()
            }],
            replicas: vec![Replica {
                name: "web".into(),
                count: 2,
            }],
            patches_json6902: vec![Patch {
                patch: "[{\"op\": \"add\", \"path\": \"/data\", \"value\": {}}]".into(),
                target: Some(crate::render::types::Selector {
                    name: "c".into(),
                    ..Default::default()
                }),
                ..Patch::default()
            }],
            common_annotations: pairs.clone(),
            labels: vec![Label {
                pairs: pairs.clone(),
                ..Label::default()
            }],
            common_labels: pairs,
            name_suffix: "-s".into(),
            name_prefix: "p-".into(),
            namespace: "n".into(),
            patches: vec![Patch {
                path: "smp.yaml".into(),
                ..Patch::default()
            }],
            patches_strategic_merge: vec!["smp.yaml".into()],
            ..Kustomization::default()
        };
        let steps = configure_builtin(
            &k,
            &TransformerConfig::builtin(),
            &files,
            OpenApi::builtin(),
        )
        .unwrap();
        let kinds: Vec<&str> = steps.iter().map(Step::kind).collect();
        assert_eq!(
            kinds,
            vec![
                "PatchStrategicMergeTransformer",
                "PatchTransformer",
                "NamespaceTransformer",
                "PrefixTransformer",
                "SuffixTransformer",
                "LabelTransformer",
                "LabelTransformer",
                "AnnotationsTransformer",
                "PatchJson6902Transformer",
                "ReplicaCountTransformer",
                "ImageTagTransformer",
            ]
        );
    }
}
