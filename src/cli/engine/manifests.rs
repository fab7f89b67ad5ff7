//! Reading `engine create|apply -f FILE`: the same YAML reader, limits and error positions as
//! `render` ([`crate::yaml::parse_manifests`]), and the whole file is read before anything is
//! sent to the engine, so a bad file changes nothing.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Why a manifest file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file (or stdin) cannot be read.
    #[error("{}: {cause}", file.display())]
    Read {
        /// The file (`-` for stdin).
        file: PathBuf,
        /// The IO error (kept out of the source chain: the message already shows it).
        cause: std::io::Error,
    },
    /// The file is larger than the YAML reader accepts.
    #[error("{}: input exceeds the limit of {limit} bytes", file.display())]
    TooLarge {
        /// The file.
        file: PathBuf,
        /// The size limit in bytes.
        limit: usize,
    },
    /// The text is not valid YAML (alias bombs, bad syntax, duplicate keys…); the cause
    /// carries line and column.
    #[error("{}: {cause}", file.display())]
    Yaml {
        /// The file.
        file: PathBuf,
        /// The parser's positioned error (kept out of the source chain: the message already
        /// shows it).
        cause: crate::yaml::Error,
    },
    /// A document is not a mapping (a bare scalar or a sequence).
    #[error("{}: document {index} is not an object", file.display())]
    NotAnObject {
        /// The file.
        file: PathBuf,
        /// 1-based document number.
        index: usize,
    },
}

/// The objects of a multi-document YAML file (`-`: stdin), `List`s unpacked.
pub fn read(path: &Path) -> Result<Vec<Value>, Error> {
    let limit = crate::yaml::MAX_INPUT_BYTES;
    let read_error = |cause| Error::Read {
        file: path.to_path_buf(),
        cause,
    };
    let mut bytes = Vec::new();
    // One byte past the limit is enough to know the file is too large without reading it all.
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    if path.as_os_str() == "-" {
        std::io::stdin()
            .take(cap)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(cap).read_to_end(&mut bytes))
            .map_err(read_error)?;
    }
    if bytes.len() > limit {
        return Err(Error::TooLarge {
            file: path.to_path_buf(),
            limit,
        });
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        read_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text ({e})"),
        ))
    })?;
    parse(path, &text)
}

/// The objects of `text`, read from `file` (for messages).
pub fn parse(file: &Path, text: &str) -> Result<Vec<Value>, Error> {
    let documents = crate::yaml::parse_manifests(text).map_err(|cause| Error::Yaml {
        file: file.to_path_buf(),
        cause,
    })?;
    let mut objects = Vec::new();
    for (i, document) in documents.into_iter().enumerate() {
        if !document.is_object() {
            return Err(Error::NotAnObject {
                file: file.to_path_buf(),
                index: i + 1,
            });
        }
        let is_list = document.get("kind").and_then(Value::as_str) == Some("List");
        match document.get("items") {
            Some(Value::Array(items)) if is_list => objects.extend(items.iter().cloned()),
            _ => objects.push(document),
        }
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_unpacked_and_errors_name_file_and_line() {
        let objects = parse(
            Path::new("m.yaml"),
            "kind: List\nitems:\n- kind: A\n- kind: B\n---\nkind: C\n",
        )
        .unwrap_or_default();
        let kinds: Vec<&str> = objects
            .iter()
            .filter_map(|o| o.get("kind").and_then(Value::as_str))
            .collect();
        assert_eq!(kinds, ["A", "B", "C"]);
        let err = parse(Path::new("m.yaml"), "kind: A\nmetadata:\n\tname: x\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("m.yaml: line 3, column"), "{err}");
        let err = parse(Path::new("m.yaml"), "kind: A\n---\n- x\n")
            .err()
            .map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("m.yaml: document 2 is not an object"));
    }
}
