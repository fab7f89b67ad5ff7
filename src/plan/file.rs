//! The plan file (`plan --out plan.json`) and what makes a saved plan stale.
//!
//! A plan file holds no object, only ids, masked diffs, the digest of the rendered source
//! and the resourceVersions the plan was computed from: `apply plan.json` renders the same
//! source again, refuses if its digest differs ("source changed") or if any live object
//! changed since ("plan is stale"), and applies exactly the plan. Saved files are sealed
//! ([`super::seal`]): an edited file is refused before any of this.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Plan, PlanSet};

/// Errors reading a plan file.
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
    /// The file is not a plan.
    #[error("{path}: not a reconcile plan file: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Version of the plan file format.
pub const FORMAT_VERSION: u32 = 1;

/// Documents printed together (on all cores) for [`source_digest`].
const DIGEST_CHUNK: usize = 2048;

/// `sha256:<hex>` of the rendered objects and the application settings that shape a plan.
///
/// Secrets are hashed masked (values replaced by [`crate::diff::mask`]'s masks): the digest
/// leaves the process (plan files, the inventory), and a plain hash of a short value (a PIN)
/// is reversed by trying every value. A change of a Secret's keys changes the digest; a change
/// of a value alone does not (a `secretGenerator` Secret's name changes with its values).
pub fn source_digest(objects: &[Value], settings: &Value) -> String {
    use rayon::prelude::*;
    // The hash of the masked objects' YAML stream (`---` between documents), fed a chunk of
    // documents at a time: neither a masked copy of every object nor the whole text is held.
    // Only Secrets are copied to be masked.
    let document = |object: &Value| {
        if crate::diff::normalize::is_secret(object) {
            let mut masked = object.clone();
            crate::diff::mask::mask_one(&mut masked);
            crate::yaml::to_yaml(&masked)
        } else {
            crate::yaml::to_yaml(object)
        }
    };
    let mut hasher = Sha256::new();
    for (chunk_index, chunk) in objects.chunks(DIGEST_CHUNK).enumerate() {
        let texts: Vec<String> = if chunk.len() < DIGEST_CHUNK {
            chunk.iter().map(document).collect()
        } else {
            chunk.par_iter().map(document).collect()
        };
        for (index, text) in texts.iter().enumerate() {
            if chunk_index > 0 || index > 0 {
                hasher.update(b"---\n");
            }
            hasher.update(text.as_bytes());
        }
    }
    hasher.update(b"\n---settings---\n");
    hasher.update(settings.to_string().as_bytes());
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Reads a plan file's text (check its seals with [`super::seal::verify`], then [`parse`]).
pub fn read_text(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a plan file (unverified: for looking, not applying).
pub fn read(path: &Path) -> Result<PlanSet, Error> {
    let text = read_text(path)?;
    let document: Value = serde_json::from_str(&text).map_err(|e| Error::Invalid {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    parse(path, document)
}

/// A plan file's document as plans.
pub fn parse(path: &Path, document: Value) -> Result<PlanSet, Error> {
    let set: PlanSet = serde_json::from_value(document).map_err(|e| Error::Invalid {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if set.format_version != FORMAT_VERSION {
        return Err(Error::Invalid {
            path: path.to_path_buf(),
            message: format!(
                "format version {} (this reconcile reads {FORMAT_VERSION})",
                set.format_version
            ),
        });
    }
    Ok(set)
}

/// True when the file looks like a plan file rather than a directory to render.
pub fn is_plan_file(path: &Path) -> bool {
    path.is_file() && path.extension().is_some_and(|e| e == "json")
}

/// Why a saved plan no longer matches a freshly computed one (same source, same target),
/// or `None` when it still does.
pub fn staleness(saved: &Plan, fresh: &Plan) -> Option<String> {
    if saved.source_digest != fresh.source_digest {
        return Some(format!(
            "the source of application {} changed since the plan was made ({} → {})",
            saved.application,
            short(&saved.source_digest),
            short(&fresh.source_digest)
        ));
    }
    if saved.source_mac != fresh.source_mac {
        return Some(format!(
            "the source of application {} changed since the plan was made (a Secret value or \
             another rendered value; the keyed digests differ)",
            saved.application
        ));
    }
    if saved.inventory_resource_version != fresh.inventory_resource_version {
        return Some(format!(
            "the inventory of application {} changed since the plan was made",
            saved.application
        ));
    }
    // The first fresh action of each object, found by key rather than by a scan per action.
    let mut fresh_by_key = std::collections::HashMap::with_capacity(fresh.actions.len());
    for action in &fresh.actions {
        fresh_by_key
            .entry(super::prune::key(&action.id()))
            .or_insert(action);
    }
    for action in &saved.actions {
        let now = fresh_by_key.get(&super::prune::key(&action.id())).copied();
        let live_now = now.and_then(|a| a.live_resource_version.clone());
        if live_now != action.live_resource_version {
            return Some(format!(
                "{} changed since the plan was made (resourceVersion {} then, {} now)",
                action.display(),
                action.live_resource_version.as_deref().unwrap_or("absent"),
                live_now.as_deref().unwrap_or("absent")
            ));
        }
    }
    if saved.actions.len() != fresh.actions.len() {
        return Some(format!(
            "the objects of application {} changed since the plan was made",
            saved.application
        ));
    }
    // The actions applied are exactly the saved ones, in the same order.
    for (then, now) in saved.actions.iter().zip(&fresh.actions) {
        if !then.same_object(now) || then.action != now.action {
            return Some(format!(
                "{} would be {} now, {} in the plan",
                now.display(),
                format!("{:?}", now.action).to_lowercase(),
                format!("{:?}", then.action).to_lowercase()
            ));
        }
    }
    None
}

fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn digests_change_with_content_and_settings() {
        let a = [json!({"kind": "ConfigMap", "data": {"a": "1"}})];
        let b = [json!({"kind": "ConfigMap", "data": {"a": "2"}})];
        let settings = json!({"prune": false});
        assert_eq!(source_digest(&a, &settings), source_digest(&a, &settings));
        assert_ne!(source_digest(&a, &settings), source_digest(&b, &settings));
        assert_ne!(
            source_digest(&a, &settings),
            source_digest(&a, &json!({"prune": true}))
        );
        assert!(source_digest(&a, &settings).starts_with("sha256:"));
    }

    #[test]
    fn secret_values_cannot_be_recovered_from_the_digest() {
        let pin = |value: &str| {
            [
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pin"},
                    "data": {"pin": value}}),
            ]
        };
        let settings = json!({});
        // Every PIN gives the same digest, so trying PINs against it finds nothing.
        assert_eq!(
            source_digest(&pin("MTIzNA=="), &settings),
            source_digest(&pin("OTk5OQ=="), &settings)
        );
        let with_key = [
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pin"},
                               "data": {"pin": "MTIzNA==", "other": "eA=="}}),
        ];
        assert_ne!(
            source_digest(&pin("MTIzNA=="), &settings),
            source_digest(&with_key, &settings)
        );
    }
}
