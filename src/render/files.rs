//! How transformers and generators read the files a kustomization names.

/// Reads a file named in a kustomization, relative to that kustomization's directory, with
/// kustomize's load restrictor applied (no escaping the root, no symlinks out of the tree).
///
/// The renderer's loader implements it over a [`crate::source::Fs`]; tests use a map.
pub trait FileLoader {
    /// The file's text, or an error that names the file and the cause.
    fn load(&self, relative_path: &str) -> Result<String, LoadError>;
}

/// A file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {cause}")]
pub struct LoadError {
    /// The path as the kustomization wrote it.
    pub path: String,
    /// What went wrong.
    pub cause: String,
}

impl FileLoader for std::collections::BTreeMap<String, String> {
    fn load(&self, relative_path: &str) -> Result<String, LoadError> {
        self.get(relative_path).cloned().ok_or_else(|| LoadError {
            path: relative_path.to_string(),
            cause: "no such file".to_string(),
        })
    }
}
