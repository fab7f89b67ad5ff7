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
//!   syncPolicy:               # what `reconcile watch` does (Argo CD's names)
//!     automated: {prune: true, selfHeal: true, allowEmpty: false}
//!     retry: {limit: 5, backoff: {duration: 5s, factor: 2, maxDuration: 3m}}
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
    /// What to do when an update of one of its Deployments fails (Swarm's
    /// `update_config`); a Deployment's own `reconcile.dev/failure-action` annotations win.
    #[serde(default, skip_serializing_if = "FailurePolicy::is_empty")]
    pub failure_policy: FailurePolicy,
    /// What `reconcile watch` does when the application is OutOfSync. Absent: sync
    /// automatically and heal drift (as Flux does); present without `automated`: only report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_policy: Option<SyncPolicy>,
    /// Argo CD's sync options; supported: `CreateNamespace=true` (create the namespaces the
    /// objects go to when they don't exist, as `apply --create-namespace`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sync_options: Vec<String>,
}

/// `failurePolicy:` of an application: written onto its Deployments as the
/// `reconcile.dev/failure-action`, `monitor` and `max-failure-ratio` annotations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FailurePolicy {
    /// `rollback`, `pause` or `continue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// How long updated pods are watched (`30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<String>,
    /// Fraction of updated pods that may fail (0..1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failure_ratio: Option<f64>,
}

impl FailurePolicy {
    fn is_empty(&self) -> bool {
        self == &FailurePolicy::default()
    }

    /// Adds the policy's annotations to a Deployment that declares none of its own.
    pub fn annotate(&self, deployment: &mut serde_json::Value) {
        use crate::rollout::failure::{
            FAILURE_ACTION_ANNOTATION, MAX_FAILURE_RATIO_ANNOTATION, MONITOR_ANNOTATION,
        };
        let Some(action) = &self.action else { return };
        let Some(annotations) = deployment
            .get_mut("metadata")
            .and_then(serde_json::Value::as_object_mut)
            .map(|m| {
                m.entry("annotations")
                    .or_insert_with(|| serde_json::json!({}))
            })
            .and_then(serde_json::Value::as_object_mut)
        else {
            return;
        };
        if annotations.contains_key(FAILURE_ACTION_ANNOTATION) {
            return;
        }
        annotations.insert(FAILURE_ACTION_ANNOTATION.into(), action.clone().into());
        if let Some(monitor) = &self.monitor {
            annotations.insert(MONITOR_ANNOTATION.into(), monitor.clone().into());
        }
        if let Some(ratio) = self.max_failure_ratio {
            annotations.insert(
                MAX_FAILURE_RATIO_ANNOTATION.into(),
                ratio.to_string().into(),
            );
        }
    }

    /// Checks the policy; the message names the field.
    fn validate(&self) -> Result<(), String> {
        if let Some(action) = &self.action {
            action
                .parse::<crate::rollout::failure::FailureAction>()
                .map_err(|e| format!("action: {e}"))?;
        } else if self.monitor.is_some() || self.max_failure_ratio.is_some() {
            return Err("action: required with monitor or maxFailureRatio".to_string());
        }
        if let Some(monitor) = &self.monitor {
            crate::rollout::time::parse_duration(monitor).map_err(|e| format!("monitor: {e}"))?;
        }
        if let Some(ratio) = self.max_failure_ratio
            && !(0.0..=1.0).contains(&ratio)
        {
            return Err(format!("maxFailureRatio: {ratio} is not between 0 and 1"));
        }
        Ok(())
    }
}

/// The sync options `reconcile.yaml` accepts.
const SYNC_OPTIONS: &[&str] = &["CreateNamespace=true", "CreateNamespace=false"];

impl Application {
    /// Whether the application creates missing namespaces (`CreateNamespace=true`).
    pub fn creates_namespaces(&self) -> bool {
        self.sync_options
            .iter()
            .any(|o| o == "CreateNamespace=true")
    }
}

/// Argo CD's `syncPolicy`: when the watcher applies, and how it retries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncPolicy {
    /// Sync by itself when OutOfSync; absent: only report (`reconcile sync APP` syncs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automated: Option<Automated>,
    /// How failed syncs are retried (default: forever, backoff 5s ×2 up to 3m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
}

/// Argo CD's `syncPolicy.automated`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Automated {
    /// Delete inventory members no longer rendered.
    #[serde(default)]
    pub prune: bool,
    /// Re-apply when the live state drifts from the synced revision.
    #[serde(default)]
    pub self_heal: bool,
    /// Allow a prune when the render is empty.
    #[serde(default)]
    pub allow_empty: bool,
}

/// Argo CD's `syncPolicy.retry`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retry {
    /// Retries of a failed sync at the same revision (negative or absent: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// Delay between retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
}

/// Delay before retry `n` (1-based): `duration × factor^(n-1)`, at most `maxDuration`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backoff {
    /// First delay (`5s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Growth per retry (2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<u32>,
    /// Longest delay (`3m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<String>,
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
            app.failure_policy
                .validate()
                .map_err(|e| invalid(format!("applications[{index}].failurePolicy.{e}")))?;
            if let Some(backoff) = app
                .sync_policy
                .as_ref()
                .and_then(|p| p.retry.as_ref())
                .and_then(|r| r.backoff.as_ref())
            {
                for (field, value) in [
                    ("duration", &backoff.duration),
                    ("maxDuration", &backoff.max_duration),
                ] {
                    if let Some(text) = value
                        && let Err(e) = crate::rollout::time::parse_duration(text)
                    {
                        return Err(invalid(format!(
                            "applications[{index}].syncPolicy.retry.backoff.{field}: {e}"
                        )));
                    }
                }
            }
            for (option_index, option) in app.sync_options.iter().enumerate() {
                if !SYNC_OPTIONS.contains(&option.as_str()) {
                    return Err(invalid(format!(
                        "applications[{index}].syncOptions[{option_index}]: {option:?} is not supported (supported: {})",
                        SYNC_OPTIONS.join(", ")
                    )));
                }
            }
            if !inside_repository(&app.path) {
                return Err(invalid(format!(
                    "applications[{index}].path: {:?} is outside the repository; application paths are relative to the repository root and stay inside it (as Argo CD requires)",
                    app.path
                )));
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

/// True for a relative path that does not leave its root (`..` only below a directory).
fn inside_repository(path: &str) -> bool {
    let mut depth: usize = 0;
    for component in Path::new(path).components() {
        match component {
            std::path::Component::Normal(_) => depth += 1,
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            std::path::Component::RootDir | std::path::Component::Prefix(_) => return false,
        }
    }
    true
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
    let name = name.trim_matches('-').to_string();
    if name.is_empty() {
        return "app".to_string();
    }
    shorten(&name)
}

/// Longest application name ([`valid_name`]); the inventory name adds 20 characters.
const MAX_NAME: usize = 50;

/// A name cut to [`MAX_NAME`] keeping its end (the most specific part of a path) and a hash of
/// the whole, so two long paths sharing their last characters never share a name.
fn shorten(name: &str) -> String {
    if name.len() <= MAX_NAME {
        return name.to_string();
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(name.as_bytes());
    let hash = hex::encode(&digest[..4]);
    // Keep room for '-' and the 8 hex digits; the name is ASCII, so bytes are characters.
    let keep = MAX_NAME - hash.len() - 1;
    let tail = name[name.len() - keep..].trim_start_matches('-');
    format!("{tail}-{hash}")
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
    fn application_paths_stay_inside_the_repository() {
        for outside in ["../demo", "/etc/demo", "overlays/../../demo"] {
            let text = format!("applications:\n- name: x\n  path: {outside}\n");
            let error = Config::parse(&text, Path::new("reconcile.yaml"))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                error.contains("is outside the repository"),
                "{outside}: {error}"
            );
        }
        for inside in ["overlays/dev", "./overlays/../base", "."] {
            let text = format!("applications:\n- name: x\n  path: {inside}\n");
            assert!(
                Config::parse(&text, Path::new("reconcile.yaml")).is_ok(),
                "{inside}"
            );
        }
    }

    #[test]
    fn names_from_paths() {
        assert_eq!(name_for_path(Path::new("overlays/dev")), "overlays-dev");
        assert_eq!(
            name_for_path(Path::new("../demo/overlays/Prod/")),
            "demo-overlays-prod"
        );
    }

    #[test]
    fn long_paths_get_valid_distinct_names() {
        let deep = "/home/someone/work/platform/clusters/europe-west/production/apps/payments";
        let a = name_for_path(Path::new(&format!("{deep}/overlays/prod")));
        let b = name_for_path(Path::new(&format!("/x{deep}/overlays/prod")));
        for name in [&a, &b] {
            assert!(valid_name(name), "{name}");
            assert!(name.contains("overlays-prod"), "{name}");
        }
        // Same last 50 characters, different paths: different names (cutting alone collided).
        assert_ne!(a, b);
        assert_eq!(
            a,
            name_for_path(Path::new(&format!("{deep}/overlays/prod")))
        );
        let long = "a".repeat(300);
        assert!(valid_name(&name_for_path(Path::new(&long))));
    }
}
