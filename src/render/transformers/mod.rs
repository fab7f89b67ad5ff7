//! kustomize's builtin transformers, one file each, and the one fixed order they run in.
//!
//! Each transformer is a config struct with `apply(&self, &mut ResMap)`. [`run_builtin`] runs
//! the transformers a kustomization asks for in kustomize's order (`kusttarget_configplugin.go`):
//! patches, namespace, prefix, suffix, labels, annotations, JSON6902 patches, replicas,
//! images, replacements; then the transformer plugins named in `transformers:`.
//! Name references are fixed once, at the very end of a build, by [`name_reference`].
//!
//! Invariant: no IO except through the [`FileLoader`] handed in; no clock, no environment.

pub mod annotations;
pub mod config;
pub mod fieldspec;
pub mod images;
pub mod labels;
// pub mod name_reference;
pub mod namespace;
pub mod prefix_suffix;
pub mod replicas;

use crate::model::ResId;
use crate::render::files::LoadError;

pub use config::TransformerConfig;

/// A transformer failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field spec could not be followed or its field could not be set.
    #[error("considering field '{path}' of object {id}: {cause}")]
    Field {
        /// The object being transformed.
        id: ResId,
        /// The field spec's path.
        path: String,
        /// What went wrong.
        cause: fieldspec::WalkError,
    },
    /// Two objects ended up with the same id.
    #[error("{transformer} transformation produces ID conflict: {id}")]
    IdConflict {
        /// Which transformer (`namespace`, `prefix`…).
        transformer: &'static str,
        /// The duplicated id.
        id: ResId,
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
        "updating name reference in '{path}' field of '{referrer}': found multiple possible referrals: {candidates}"
    )]
    AmbiguousReference {
        /// The object holding the reference.
        referrer: ResId,
        /// The field holding the name.
        path: String,
        /// The ids of the objects it could mean.
        candidates: String,
    },
    /// A file named in the kustomization could not be read.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A plugin kind that would need plugin execution.
    #[error("transformer kind {kind} is not supported (no plugin execution)")]
    UnsupportedTransformer {
        /// `apiVersion/kind` of the plugin config.
        kind: String,
    },
}

/// kustomize's result type for transformers.
pub type Result<T> = std::result::Result<T, Error>;

/// Wraps a field-spec walk error with the object and path it happened at.
pub(crate) fn field_error(id: ResId, path: &str) -> impl FnOnce(fieldspec::WalkError) -> Error {
    move |cause| Error::Field {
        id,
        path: path.to_string(),
        cause,
    }
}
