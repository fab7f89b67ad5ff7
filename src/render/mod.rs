//! The renderer: a kustomization directory in, an ordered list of resources out, exactly as
//! `kustomize build` (kustomize v5.5) would produce it.
//!
//! Invariant: rendering reads files only through [`crate::source::Fs`]; no clock, no
//! environment, no network.

pub mod crds;
pub mod field_path;
pub mod error;
pub mod files;
pub mod generators;
pub mod order;
pub mod replacements;
pub mod transformers;
pub mod types;
pub mod vars;
