//! `render::Error`: everything that can stop a build, each with the file (and object or
//! field) it concerns and the cause. `Display` reads `<file>: <object>: <cause>`.

use std::fmt;
use std::path::PathBuf;

use crate::model::ResId;
use crate::render::generators::GeneratorError;
use crate::source::FsError;

/// A build failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The directory holds no kustomization file.
    #[error(
        "{}: unable to find one of 'kustomization.yaml', 'kustomization.yml' or 'Kustomization' in directory",
        dir.display()
    )]
    MissingKustomization {
        /// The directory.
        dir: PathBuf,
    },
    /// The directory holds more than one kustomization file.
    #[error("{}: found multiple kustomization files ({})", dir.display(), names.join(", "))]
    MultipleKustomizations {
        /// The directory.
        dir: PathBuf,
        /// The files found.
        names: Vec<String>,
    },
    /// The kustomization file names a field this renderer does not know.
    #[error("{}: unknown field {field:?} in kustomization", file.display())]
    UnknownField {
        /// The kustomization file.
        file: PathBuf,
        /// The field.
        field: String,
    },
    /// The kustomization file could not be read as a kustomization.
    #[error("{}: invalid kustomization: {cause}", file.display())]
    InvalidKustomization {
        /// The kustomization file.
        file: PathBuf,
        /// What is wrong.
        cause: String,
    },
    /// A component was used as a resource, or a kustomization as a component.
    #[error("{}: {cause}", file.display())]
    WrongKind {
        /// The kustomization file.
        file: PathBuf,
        /// What was expected.
        cause: String,
    },
    /// A file could not be read (the file-system error names the path).
    #[error("{source}")]
    Fs {
        /// The file or directory, as the kustomization named it (joined to its directory).
        file: PathBuf,
        /// The file-system error.
        source: FsError,
    },
    /// A file is not valid YAML (the cause carries the line).
    #[error("{}: {cause}", file.display())]
    Yaml {
        /// The file.
        file: PathBuf,
        /// The parser's message.
        cause: String,
    },
    /// A document of a resource file is not a Kubernetes object.
    #[error("{}: document {index}: {cause}", file.display())]
    BadObject {
        /// The file.
        file: PathBuf,
        /// Index of the document in the file (from 1).
        index: usize,
        /// What is wrong (not a map, no kind, no name …).
        cause: String,
    },
    /// A kustomization includes itself, directly or through others.
    #[error("cycle detected: {}", chain.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" -> "))]
    Cycle {
        /// The kustomization directories from the build root to the repeated one.
        chain: Vec<PathBuf>,
    },
    /// A `resources:` entry could not be read (neither a readable resource file nor a
    /// kustomization directory).
    #[error("{}: resources entry {entry:?}: {source}", file.display())]
    Resource {
        /// The kustomization naming it.
        file: PathBuf,
        /// The entry as written.
        entry: String,
        /// Why it could not be read.
        source: Box<Error>,
    },
    /// Two resources have the same id.
    #[error("{}: {id}: may not add resource with an already registered id (from {}; first from {})", file.display(), second.display(), first.display())]
    DuplicateId {
        /// The kustomization adding the second one.
        file: PathBuf,
        /// The id.
        id: Box<ResId>,
        /// Where the first one came from (relative to the build root).
        first: PathBuf,
        /// Where the second one came from (relative to the build root).
        second: PathBuf,
    },
    /// A generator failed.
    #[error("{}: {source}", file.display())]
    Generator {
        /// The kustomization file.
        file: PathBuf,
        /// The cause.
        source: GeneratorError,
    },
    /// A generated object's `behavior` does not fit what the bases hold.
    #[error("{}: {id}: {cause}", file.display())]
    Behavior {
        /// The kustomization file.
        file: PathBuf,
        /// The generated object's id.
        id: Box<ResId>,
        /// What is wrong.
        cause: String,
    },
    /// A field or feature that this renderer refuses (helm, plugins, remote bases …).
    #[error("{}: {what} is not supported", file.display())]
    Unsupported {
        /// The kustomization file.
        file: PathBuf,
        /// What was asked for.
        what: String,
    },
    /// A step of the build failed (transformer, patch, replacement …); the cause is the
    /// owning module's error, already naming the object and field.
    #[error("{}: {step}: {cause}", file.display())]
    Step {
        /// The kustomization file whose step failed.
        file: PathBuf,
        /// The step (`patches`, `namespace`, `replacements`, …).
        step: String,
        /// The owning module's message.
        cause: String,
    },
    /// Something `kustomize build` lets pass that `validate` reports (a patch whose target
    /// selects nothing); the text names the kustomization file.
    #[error("{warning}")]
    Warning {
        /// The message.
        warning: String,
    },
    /// An error in a kustomization included by another one.
    #[error("{source}\n  included from {}", from.display())]
    Included {
        /// The including kustomization directory.
        from: PathBuf,
        /// The inner error.
        source: Box<Error>,
    },
}

impl Error {
    /// True for YAML syntax errors (kustomize reports those alone, without the directory
    /// fallback).
    pub fn is_malformed_yaml(&self) -> bool {
        match self {
            Error::Yaml { .. } => true,
            Error::Included { source, .. } => source.is_malformed_yaml(),
            _ => false,
        }
    }

    /// The innermost error (below `Included` wrappers).
    pub fn root_cause(&self) -> &Error {
        match self {
            Error::Included { source, .. } => source.root_cause(),
            other => other,
        }
    }
}

/// Wraps a step's error with the kustomization file and step name.
pub fn step_error(file: &std::path::Path, step: &str, cause: impl fmt::Display) -> Error {
    Error::Step {
        file: file.to_path_buf(),
        step: step.to_string(),
        cause: cause.to_string(),
    }
}
