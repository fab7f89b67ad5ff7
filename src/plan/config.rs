//! `reconcile.yaml`: the applications of a repository.
//!
//! ```yaml
//! applications:
//! - name: gallery-dev
//!   path: overlays/dev
//!   target: engine            # optional; --target overrides
//!   namespace: gallery        # default namespace of objects that name none
//!   prune: true               # apply prunes without --prune
//!   ignoreDifferences:
//!   - {group: apps, kind: Deployment, jsonPointers: [/spec/replicas]}
//! ```

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::diff::IgnoreRule;

/// The file name looked for at the repository root.
pub const CONFIG_FILE: &str = "reconcile.yaml";

/// Errors reading `reconcile.yaml`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid YAML.
    #[error("{path}: {source}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: crate::yaml::Error,
    },
    /// The YAML does not match the schema (`reconcile schema config`).
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the field.
        message: String,
    },
}

/// The content of `reconcile.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// The applications, each a kustomization applied to a target.
    #[serde(default)]
    pub applications: Vec<Application>,
    /// What `reconcile promote` carries between environment folders, beyond images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub promotion: Vec<crate::promote::PromotionRule>,
}

/// One application.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Application {
    /// Unique name (lowercase letters, digits and `-`); names its inventory.
    pub name: String,
    /// Directory of its kustomization, relative to `reconcile.yaml`.
    pub path: String,
    /// Target (`engine`, `engine:PATH`); `--target` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Namespace given to namespaced objects that name none (default `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Prune on every apply, as if `--prune` were given.
    #[serde(default)]
    pub prune: bool,
    /// Fields left out of diffs (and kept as they are live when applying).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_differences: Vec<IgnoreRule>,
}

impl Config {
    /// Reads and checks a `reconcile.yaml`.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and checks the text of a `reconcile.yaml` (`path` is for messages).
    pub fn parse(text: &str, path: &Path) -> Result<Config, Error> {
        let invalid = |message: String| Error::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let documents = crate::yaml::parse_documents(text).map_err(|source| Error::Yaml {
            path: path.to_path_buf(),
            source,
        })?;
        let config: Config = match documents.into_iter().next() {
            None => Config::default(),
            Some(value) => serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?,
        };
        let mut seen = std::collections::HashSet::new();
        for (index, app) in config.applications.iter().enumerate() {
            if !valid_name(&app.name) {
                return Err(invalid(format!(
                    "applications[{index}].name: {:?} must be lowercase letters, digits and '-' (at most 50)",
                    app.name
                )));
            }
            if !seen.insert(app.name.as_str()) {
                return Err(invalid(format!(
                    "applications[{index}].name: {:?} is used twice",
                    app.name
                )));
            }
            if app.path.trim().is_empty() {
                return Err(invalid(format!("applications[{index}].path: required")));
            }
            for (rule_index, rule) in app.ignore_differences.iter().enumerate() {
                for pointer in &rule.json_pointers {
                    if !pointer.starts_with('/') {
                        return Err(invalid(format!(
                            "applications[{index}].ignoreDifferences[{rule_index}].jsonPointers: {pointer:?} is not a JSON pointer (it starts with /)"
                        )));
                    }
                }
            }
        }
        Ok(config)
    }

    /// The application with this name.
    pub fn find(&self, name: &str) -> Option<&Application> {
        self.applications.iter().find(|a| a.name == name)
    }
}

/// True for a name usable in an object name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 50
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// An application name for a path given on the command line (`overlays/dev` →
/// `overlays-dev`; `.` → the directory's own name).
pub fn name_for_path(path: &Path) -> String {
    let text = if path.components().count() == 0 || path == Path::new(".") {
        std::env::current_dir()
            .ok()
            .and_then(|dir| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "app".to_string())
    } else {
        path.to_string_lossy().into_owned()
    };
    let mut name: String = text
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while name.contains("--") {
        name = name.replace("--", "-");
    }
    let name = name.trim_matches('-');
    let name: String = name
        .chars()
        .rev()
        .take(50)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let name = name.trim_matches('-').to_string();
    if name.is_empty() {
        "app".to_string()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applications_are_read_and_checked() {
        let text = "applications:\n- name: gallery-dev\n  path: overlays/dev\n  prune: true\n  ignoreDifferences:\n  - kind: Deployment\n    jsonPointers: [/spec/replicas]\n";
        let config = Config::parse(text, Path::new("reconcile.yaml")).map_err(|e| e.to_string());
        let config = config.unwrap_or_default();
        assert_eq!(config.applications.len(), 1);
        assert!(config.find("gallery-dev").is_some_and(|a| a.prune));
        let bad = Config::parse(
            "applications:\n- name: x\n  path: y\n  prun: true\n",
            Path::new("r.yaml"),
        );
        assert!(
            bad.unwrap_err()
                .to_string()
                .contains("unknown field `prun`")
        );
        let bad = Config::parse(
            "applications:\n- name: Gallery\n  path: y\n",
            Path::new("r.yaml"),
        );
        assert!(
            bad.unwrap_err()
                .to_string()
                .contains("applications[0].name")
        );
    }

    #[test]
    fn names_from_paths() {
        assert_eq!(name_for_path(Path::new("overlays/dev")), "overlays-dev");
        assert_eq!(
            name_for_path(Path::new("../demo/overlays/Prod/")),
            "demo-overlays-prod"
        );
    }
}
