//! YAML in and out, with kustomize's exact semantics.
//!
//! - [`parse_documents`] / [`parse_manifests`] read a stream with go-yaml v3's rules (what
//!   kustomize's kyaml decodes), into `serde_json::Value`s;
//! - [`to_yaml`] / [`to_yaml_stream`] print values byte for byte as `kustomize build` does
//!   (`emit`);
//! - `parse` owns reading, `resolve` the plain-scalar rules of go-yaml v2 and v3, `goformat`
//!   Go's float and time text.
//!
//! Invariant: no file access here; callers hand in text and get values or a positioned
//! [`Error`].

mod emit;
mod goformat;
mod parse;
mod resolve;

use serde_json::Value;

pub use parse::{MAX_DEPTH, MAX_INPUT_BYTES};

/// A YAML text that cannot be read, with the 1-based position of the problem.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}, column {column}: {kind}")]
pub struct Error {
    /// 1-based line of the offending token or node.
    pub line: usize,
    /// 1-based column of the offending token or node.
    pub column: usize,
    /// What is wrong there.
    pub kind: ErrorKind,
}

impl Error {
    pub(crate) fn at(line: usize, column: usize, kind: ErrorKind) -> Self {
        Error { line, column, kind }
    }
}

/// The cause of an [`Error`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ErrorKind {
    /// The text is not well-formed YAML (bad indentation, tabs, unclosed quotes, …); the
    /// scanner's own description.
    #[error("{0}")]
    Syntax(String),
    /// Two keys of one mapping are the same (go-yaml v3 rejects this, so kustomize does too).
    #[error("mapping key {key:?} already defined at line {first_line}")]
    DuplicateKey {
        /// The repeated key.
        key: String,
        /// Line of its first occurrence.
        first_line: usize,
    },
    /// Aliases expand to far more nodes than the document holds (an alias bomb).
    #[error("document contains excessive aliasing")]
    ExcessiveAliasing,
    /// An alias refers to the node that contains it.
    #[error("anchor value contains itself")]
    RecursiveAlias,
    /// Sequences and mappings nest deeper than [`MAX_DEPTH`].
    #[error("nesting exceeds the maximum depth of {limit}")]
    TooDeep {
        /// The depth limit.
        limit: usize,
    },
    /// The input is larger than [`MAX_INPUT_BYTES`].
    #[error("input of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size of the input in bytes.
        size: usize,
        /// The size limit in bytes.
        limit: usize,
    },
    /// A mapping or sequence is used as a mapping key.
    #[error("mapping keys must be scalars")]
    ComplexKey,
    /// A nested mapping of a Kubernetes object has a key that is not a string (`1:`, `true:`);
    /// kustomize cannot marshal such an object.
    #[error(
        "mapping key `{key}` is not a string (json: unsupported type: map[interface {{}}]interface {{}})"
    )]
    NonStringKey {
        /// The key's text.
        key: String,
    },
    /// `.inf` or `.nan`, which JSON (and so kustomize's output) cannot hold.
    #[error("`{text}` is not a finite number (json: unsupported value)")]
    NonFiniteFloat {
        /// The scalar's text.
        text: String,
    },
    /// A scalar does not fit its explicit tag (`!!int abc`).
    #[error("{0}")]
    Tag(String),
    /// A `!!binary` scalar that is not valid base64.
    #[error("!!binary value contains invalid base64 data")]
    InvalidBinary,
    /// The value of a merge key `<<` is neither a mapping nor a sequence of mappings.
    #[error("map merge requires map or sequence of maps as the value")]
    MergeNotMap,
}

/// Parses every document of a YAML stream; empty and null documents are skipped, other
/// non-mapping documents are returned as they are.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, Error> {
    parse::parse_stream(text, parse::Mode::Documents)
}

/// Parses Kubernetes manifests as kustomize holds them: like [`parse_documents`], but every
/// value under the top-level `metadata.annotations` becomes a string holding the scalar's text
/// (`a: 1.0` stays `"1.0"`), and nested mappings with non-string keys are an error.
pub fn parse_manifests(text: &str) -> Result<Vec<Value>, Error> {
    parse::parse_stream(text, parse::Mode::Manifests)
}

/// Prints one document exactly as kustomize prints one resource (keys in go-yaml v2's order,
/// its quoting and folding); the text ends with a line break.
pub fn to_yaml(value: &Value) -> String {
    emit::document(value)
}

/// Prints documents joined by `---` lines, as `kustomize build` prints a resource list.
pub fn to_yaml_stream(values: &[Value]) -> String {
    let mut out = String::new();
    for (index, value) in values.iter().enumerate() {
        if index > 0 {
            out.push_str("---\n");
        }
        out.push_str(&emit::document(value));
    }
    out
}
