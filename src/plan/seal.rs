//! Sealed plan files: `plan --out` signs the file with a key kept in each target, `apply
//! FILE` verifies it before anything else, so an edited plan (an action turned to
//! "unchanged", a summary, a target) is refused, never applied.
//!
//! The key is 32 random bytes stored in the target itself (the engine state's meta table),
//! made on first use; it never leaves the target. The seal is HMAC-SHA256 over the file's
//! JSON document without its `seals` member, serialized compactly in the file's key order,
//! so whitespace is free but every value, key and order is covered. A file holds one seal
//! per target its plans name; each is checked with its own target's key, so the target
//! recorded in a plan cannot be changed either (another target's key does not match, and a
//! target with no key refuses).
//!
//! The same key makes [`source_mac`]: a keyed digest of the rendered objects, Secret values
//! included, so a Secret value changed between `plan --out` and `apply` makes the plan stale
//! while nothing that leaves the process lets anyone test guesses of a value without the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ring::hmac;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::PlanSet;

/// The prefix of every MAC this module makes.
pub const ALGORITHM: &str = "hmac-sha256";

/// The member of a plan file holding its seals.
const SEALS: &str = "seals";

/// One target's seal of a plan file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Seal {
    /// The target whose key made it (`engine:PATH`), as the plans name it.
    pub target: String,
    /// `hmac-sha256:<hex>` of the file without its seals.
    pub mac: String,
}

/// Why a plan file is refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file is not valid JSON.
    #[error("{path}: not a reconcile plan file: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The file carries no seal for a target its plans name.
    #[error(
        "{path}: the plan file is not sealed for {target} (only files written by `reconcile plan --out FILE` are applied; make the plan again)"
    )]
    Unsealed {
        /// The file.
        path: PathBuf,
        /// The target without a seal.
        target: String,
    },
    /// The seal does not match the content: the file was edited after it was saved.
    #[error(
        "{path}: the plan file was changed after `reconcile plan --out` saved it (its seal for {target} does not match); refusing to apply it — make the plan again"
    )]
    Tampered {
        /// The file.
        path: PathBuf,
        /// The target whose seal failed.
        target: String,
    },
    /// The target named holds no key: the plan was not made for it (or it was reset since).
    #[error(
        "{path}: the plan names {target}, which holds no plan key: the plan was not made for that target, or it was reset since; refusing to apply it — make the plan again"
    )]
    NoKey {
        /// The file.
        path: PathBuf,
        /// The target.
        target: String,
    },
    /// The stored key is unreadable.
    #[error("the plan key of {target} is unreadable")]
    BadKey {
        /// The target.
        target: String,
    },
}

fn key_of(target: &str, key_hex: &str) -> Result<hmac::Key, Error> {
    let bytes = hex::decode(key_hex).map_err(|_| Error::BadKey {
        target: target.to_string(),
    })?;
    if bytes.len() < 16 {
        return Err(Error::BadKey {
            target: target.to_string(),
        });
    }
    Ok(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
}

/// The bytes a MAC is taken of: each part after its length, so two different splits of the
/// same bytes never give the same MAC.
fn message(parts: &[&[u8]]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(parts.iter().map(|p| p.len() + 8).sum());
    for part in parts {
        bytes.extend_from_slice(&(part.len() as u64).to_be_bytes());
        bytes.extend_from_slice(part);
    }
    bytes
}

fn mac_of(key: &hmac::Key, parts: &[&[u8]]) -> String {
    let tag = hmac::sign(key, &message(parts));
    format!("{ALGORITHM}:{}", hex::encode(tag.as_ref()))
}

/// The bytes a seal covers: the document without its seals, compact, in its own key order.
fn covered(document: &Value) -> Vec<u8> {
    let mut document = document.clone();
    if let Some(map) = document.as_object_mut() {
        map.shift_remove(SEALS);
    }
    serde_json::to_vec(&document).unwrap_or_default()
}

/// The plan set as a sealed plan file (pretty JSON): one seal per target, with the key of
/// each target (hex) in `keys`.
pub fn seal(set: &PlanSet, keys: &BTreeMap<String, String>) -> Result<String, Error> {
    let mut document = serde_json::to_value(set).map_err(|e| Error::Invalid {
        path: PathBuf::new(),
        message: e.to_string(),
    })?;
    let bytes = covered(&document);
    let mut seals = Vec::new();
    for (target, key_hex) in keys {
        let key = key_of(target, key_hex)?;
        seals.push(Seal {
            target: target.clone(),
            mac: mac_of(&key, &[b"reconcile plan file", &bytes]),
        });
    }
    if let Some(map) = document.as_object_mut() {
        map.insert(
            SEALS.to_string(),
            serde_json::to_value(&seals).unwrap_or_default(),
        );
    }
    let mut text = serde_json::to_string_pretty(&document).unwrap_or_default();
    text.push('\n');
    Ok(text)
}

/// Checks every seal of a plan file's text; `key_for(target)` gives a target's key (hex),
/// `None` when it has none. Returns the parsed document for [`super::file::parse`].
pub fn verify(
    path: &Path,
    text: &str,
    mut key_for: impl FnMut(&str) -> Result<Option<String>, Error>,
) -> Result<Value, Error> {
    let invalid = |message: String| Error::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let document: Value = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
    let seals: Vec<Seal> = match document.get(SEALS) {
        Some(value) => serde_json::from_value(value.clone())
            .map_err(|e| invalid(format!("seals: {e}")))?,
        None => Vec::new(),
    };
    let mut targets: Vec<String> = document
        .get("plans")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|plan| plan.get("target").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    targets.sort();
    targets.dedup();
    let bytes = covered(&document);
    for target in &targets {
        let Some(seal) = seals.iter().find(|s| &s.target == target) else {
            return Err(Error::Unsealed {
                path: path.to_path_buf(),
                target: target.clone(),
            });
        };
        let Some(key_hex) = key_for(target)? else {
            return Err(Error::NoKey {
                path: path.to_path_buf(),
                target: target.clone(),
            });
        };
        let key = key_of(target, &key_hex)?;
        let tag = seal
            .mac
            .strip_prefix(ALGORITHM)
            .and_then(|rest| rest.strip_prefix(':'))
            .and_then(|hex_tag| hex::decode(hex_tag).ok())
            .unwrap_or_default();
        // Checked in constant time: a mismatch says nothing about where it starts.
        if hmac::verify(&key, &message(&[b"reconcile plan file", &bytes]), &tag).is_err() {
            return Err(Error::Tampered {
                path: path.to_path_buf(),
                target: target.clone(),
            });
        }
    }
    Ok(document)
}

/// A keyed digest (`hmac-sha256:<hex>`) of the rendered objects, Secret values included, and
/// the settings that shape a plan. Without the target's key nobody can test a guess of a
/// Secret value against it.
pub fn source_mac(key_hex: &str, objects: &[Value], settings: &Value) -> Result<String, Error> {
    let key = key_of("the target", key_hex)?;
    let rendered = crate::yaml::to_yaml_stream(objects);
    let settings = settings.to_string();
    Ok(mac_of(
        &key,
        &[b"reconcile source", rendered.as_bytes(), settings.as_bytes()],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Plan, Summary};

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const OTHER: &str = "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn set() -> PlanSet {
        PlanSet::new(vec![Plan {
            application: "web".into(),
            source: "overlays/dev".into(),
            source_digest: "sha256:00".into(),
            source_mac: None,
            revision: None,
            target: "engine:/tmp/a.db".into(),
            prune: false,
            inventory_resource_version: None,
            actions: Vec::new(),
            not_pruned: Vec::new(),
            summary: Summary {
                create: 1,
                ..Summary::default()
            },
        }])
    }

    fn keys(key: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("engine:/tmp/a.db".to_string(), key.to_string())])
    }

    fn check(text: &str, key: &str) -> Result<Value, Error> {
        verify(Path::new("plan.json"), text, |_| Ok(Some(key.to_string())))
    }

    #[test]
    fn a_sealed_file_verifies_and_any_edit_is_refused() {
        let text = seal(&set(), &keys(KEY)).expect("sealed");
        assert!(check(&text, KEY).is_ok());
        // Whitespace is not content.
        let compact = serde_json::to_string(&serde_json::from_str::<Value>(&text).expect("json"))
            .expect("text");
        assert!(check(&compact, KEY).is_ok());
        for (from, to) in [
            ("\"create\": 1", "\"create\": 0"),
            ("engine:/tmp/a.db\",\n      \"prune\"", "engine:/tmp/b.db\",\n      \"prune\""),
            ("\"application\": \"web\"", "\"application\": \"web\", \"x\": 1"),
        ] {
            assert!(text.contains(from), "{from} not in {text}");
            let edited = text.replacen(from, to, 1);
            assert!(check(&edited, KEY).is_err(), "edit {from} → {to} passed");
        }
        assert!(matches!(check(&text, OTHER), Err(Error::Tampered { .. })));
        let unsealed = serde_json::to_string_pretty(&set()).expect("json");
        assert!(matches!(check(&unsealed, KEY), Err(Error::Unsealed { .. })));
        let no_key = verify(Path::new("plan.json"), &text, |_| Ok(None));
        assert!(matches!(no_key, Err(Error::NoKey { .. })));
    }

    #[test]
    fn the_source_mac_is_keyed_and_sees_secret_values() {
        let pin = |value: &str| {
            [serde_json::json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "pin"}, "data": {"pin": value}})]
        };
        let settings = serde_json::json!({});
        let mac = |key, value| source_mac(key, &pin(value), &settings).expect("mac");
        assert_eq!(mac(KEY, "MTIzNA=="), mac(KEY, "MTIzNA=="));
        assert_ne!(mac(KEY, "MTIzNA=="), mac(KEY, "OTk5OQ=="));
        assert_ne!(mac(KEY, "MTIzNA=="), mac(OTHER, "MTIzNA=="));
        assert!(mac(KEY, "MTIzNA==").starts_with("hmac-sha256:"));
    }
}
