//! The kinds an engine serves right now: every built-in kind, and the kinds of the
//! CustomResourceDefinitions in its store that are established and serve a version, as
//! kube-apiserver's discovery controller lists them. A CRD being deleted (a
//! `deletionTimestamp`, held by a finalizer) is still served, without the verbs that write
//! (`create`, `patch`, `update`); a deleted one is gone at once, and so is a version turned
//! `served: false`.
//!
//! Discovery, the API's routing and the CLI's resource words read this, never the
//! process-wide registry in [`kinds`], which interns every kind the process ever saw.
//!
//! Invariant: cheap to ask. [`Cache`] rebuilds it only when a CRD changed (their names and
//! resourceVersions, compared in one pass over the CRDs, never over the store) or the state
//! was replaced (a reload or a reset), and hands out one shared [`Arc`] meanwhile.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde_json::Value;

use super::crd;
use super::doc;
use super::kinds::{self, KindInfo};
use super::store::State;

/// The verbs a CRD being deleted keeps in discovery (kube-apiserver's).
const TERMINATING_VERBS: &[&str] = &["delete", "deletecollection", "get", "list", "watch"];

/// A custom kind served now, with the CRD that defines it.
#[derive(Debug, Clone)]
pub struct CustomKind {
    /// The kind (interned in [`kinds`]).
    pub info: &'static KindInfo,
    /// Its CustomResourceDefinition as stored.
    pub crd: Value,
    /// The CRD is being deleted: reads and deletes only.
    pub terminating: bool,
}

/// What is served at one moment.
#[derive(Debug, Clone)]
pub struct Served {
    /// Built-in kinds (table order), then custom ones in discovery order.
    all: Vec<&'static KindInfo>,
    custom: Vec<CustomKind>,
    generation: u64,
}

impl Served {
    /// Only the built-in kinds (no CRD).
    pub fn builtin() -> Served {
        Served {
            all: kinds::KINDS.iter().collect(),
            custom: Vec::new(),
            generation: 0,
        }
    }

    /// What `state`'s CRDs make served.
    pub fn of(state: &State) -> Served {
        let mut custom: Vec<CustomKind> = Vec::new();
        for stored in state.kind(crd::KIND).values() {
            let definition = &stored.doc;
            if !established(definition) {
                continue;
            }
            let Some(info) = crd::info_of(definition) else {
                continue;
            };
            // No served version: the group is not in discovery at all.
            if info.versions.is_empty() {
                continue;
            }
            let info = kinds::register(info);
            if custom.iter().any(|c| c.info.key == info.key) {
                continue;
            }
            custom.push(CustomKind {
                info,
                crd: definition.clone(),
                terminating: doc::is_deleting(definition),
            });
        }
        let ordered = kinds::discovery_order(custom.iter().map(|c| c.info).collect());
        Served {
            all: kinds::KINDS.iter().chain(ordered).collect(),
            custom,
            generation: generation(&fingerprint(state)),
        }
    }

    /// Every kind served, in the order discovery lists their groups (built-in ones first).
    pub fn kinds(&self) -> &[&'static KindInfo] {
        &self.all
    }

    /// The custom kinds served, with their CRDs.
    pub fn custom(&self) -> &[CustomKind] {
        &self.custom
    }

    /// The CRD behind `info`, when it is a custom kind served now.
    pub fn custom_of(&self, info: &KindInfo) -> Option<&CustomKind> {
        self.custom.iter().find(|c| c.info.key == info.key)
    }

    /// Whether `info`'s CRD is being deleted (creates are refused).
    pub fn is_terminating(&self, info: &KindInfo) -> bool {
        self.custom_of(info).is_some_and(|c| c.terminating)
    }

    /// The verbs discovery lists for `info` (those of [`KindInfo::verbs`], fewer for a CRD
    /// being deleted).
    pub fn verbs(&self, info: &KindInfo) -> Vec<&'static str> {
        let terminating = self.is_terminating(info);
        info.verbs
            .iter()
            .copied()
            .filter(|v| !terminating || TERMINATING_VERBS.contains(v))
            .collect()
    }

    /// The kind a URL's group, version and plural resource name route to.
    pub fn kind_for(&self, group: &str, version: &str, plural: &str) -> Option<&'static KindInfo> {
        self.all
            .iter()
            .copied()
            .find(|k| k.group == group && k.plural == plural && k.versions.contains(&version))
    }

    /// The kind an `apiVersion` and `kind` name, when served in that version.
    pub fn resolve(&self, api_version: &str, kind: &str) -> Option<&'static KindInfo> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        self.all
            .iter()
            .copied()
            .find(|k| k.group == group && k.kind == kind && k.versions.contains(&version))
    }

    /// The kind a kubectl resource word names, with kubectl's warning for an ambiguous short
    /// name ([`kinds::resolve_word`]'s rules over what is served now).
    pub fn resolve_word(&self, word: &str) -> Option<(&'static KindInfo, Option<String>)> {
        kinds::resolve_word_in(&self.all, word)
    }

    /// A number that changes whenever the CRDs served change (for clients' caches: the
    /// OpenAPI documents' `hash`).
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// Whether a CRD's `Established` condition is `True`.
fn established(definition: &Value) -> bool {
    doc::at(definition, &["status", "conditions"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            doc::str_at(c, &["type"]) == "Established" && doc::str_at(c, &["status"]) == "True"
        })
}

/// The CRDs' names and resourceVersions, in store order: equal fingerprints of one loaded
/// state mean nothing about the CRDs changed.
fn fingerprint(state: &State) -> Vec<(String, String)> {
    state
        .kind(crd::KIND)
        .iter()
        .map(|((_, name), stored)| {
            (
                name.clone(),
                doc::str_at(&stored.doc, &["metadata", "resourceVersion"]).to_string(),
            )
        })
        .collect()
}

fn generation(fingerprint: &[(String, String)]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    fingerprint.hash(&mut hasher);
    hasher.finish()
}

/// The last [`Served`] built, and the CRD fingerprint it was built from.
#[derive(Debug, Default)]
pub struct Cache {
    built: Option<(Vec<(String, String)>, Arc<Served>)>,
}

impl Cache {
    /// What `state` serves: the cached answer when its CRDs did not change.
    pub fn get(&mut self, state: &State) -> Arc<Served> {
        let crds = state.kind(crd::KIND);
        if let Some((seen, served)) = &self.built
            && seen.len() == crds.len()
            && crds.iter().zip(seen).all(|(((_, name), stored), (n, rv))| {
                name == n && doc::str_at(&stored.doc, &["metadata", "resourceVersion"]) == rv
            })
        {
            return served.clone();
        }
        let served = Arc::new(Served::of(state));
        self.built = Some((fingerprint(state), served.clone()));
        served
    }

    /// Forgets the cached answer (the state was replaced: resourceVersions start over).
    pub fn clear(&mut self) {
        self.built = None;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn crd(name: &str, versions: Value) -> Value {
        let (plural, group) = name.split_once('.').unwrap_or((name, ""));
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": name},
            "spec": {"group": group, "scope": "Namespaced",
                "names": {"plural": plural, "singular": plural.trim_end_matches('s'),
                    "kind": "Gizmo", "shortNames": ["gz"]},
                "versions": versions},
            "status": {"conditions": [{"type": "Established", "status": "True"}]}})
    }

    fn state_with(crds: &[Value]) -> State {
        let mut state = State::empty(1);
        let info = kinds::by_kind(crd::KIND).unwrap_or_else(|| panic!("CRD kind"));
        for c in crds {
            state.create(info, c.clone(), None);
        }
        state
    }

    fn served_version() -> Value {
        json!([{"name": "v1", "served": true, "storage": true}])
    }

    #[test]
    fn only_established_crds_with_a_served_version_are_served() {
        let mut pending = crd("gizmos.pending.served.test", served_version());
        pending["status"] = json!({});
        let state = state_with(&[
            crd("gizmos.a.served.test", served_version()),
            pending,
            crd(
                "gizmos.off.served.test",
                json!([{"name": "v1", "served": false, "storage": true}]),
            ),
        ]);
        let served = Served::of(&state);
        assert!(served.kind_for("a.served.test", "v1", "gizmos").is_some());
        assert!(served.kind_for("pending.served.test", "v1", "gizmos").is_none());
        assert!(served.kind_for("off.served.test", "v1", "gizmos").is_none());
        assert!(served.kind_for("apps", "v1", "deployments").is_some());
        assert_eq!(
            served.resolve_word("gizmos.a.served.test").map(|(k, _)| k.group),
            Some("a.served.test")
        );
        assert!(served.resolve_word("gizmos.off.served.test").is_none());
        assert!(Served::builtin().resolve_word("gizmos").is_none());
    }

    #[test]
    fn a_crd_being_deleted_keeps_reads_and_deletes_only() {
        let mut going = crd("gizmos.going.served.test", served_version());
        going["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let served = Served::of(&state_with(&[going]));
        let info = served
            .kind_for("going.served.test", "v1", "gizmos")
            .unwrap_or_else(|| panic!("served while terminating"));
        assert!(served.is_terminating(info));
        assert_eq!(
            served.verbs(info),
            ["delete", "deletecollection", "get", "list", "watch"]
        );
    }

    #[test]
    fn the_cache_follows_every_crd_change_and_nothing_else() {
        let mut state = state_with(&[crd("gizmos.cache.served.test", served_version())]);
        let mut cache = Cache::default();
        let first = cache.get(&state);
        assert!(Arc::ptr_eq(&first, &cache.get(&state)));
        let info = kinds::by_kind("ConfigMap").unwrap_or_else(|| panic!("kind"));
        state.create(
            info,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}}),
            None,
        );
        assert!(Arc::ptr_eq(&first, &cache.get(&state)));
        state.remove(crd::KIND, "", "gizmos.cache.served.test");
        let after = cache.get(&state);
        assert!(!Arc::ptr_eq(&first, &after));
        assert!(after.kind_for("cache.served.test", "v1", "gizmos").is_none());
        assert_ne!(first.generation(), after.generation());
    }
}
