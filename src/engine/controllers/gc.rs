//! The garbage collector: deletes objects whose owners are all gone (background deletion),
//! and finishes foreground deletions once an owner has no dependents left.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use super::{Change, Changes};
use crate::engine::clock::Millis;
use crate::engine::doc;
use crate::engine::store::State;

/// Finalizer of an owner deleted with `propagationPolicy: Foreground`.
pub const FOREGROUND: &str = "foregroundDeletion";

/// One collection pass.
pub fn sync(state: &State, _now: Millis, out: &mut Changes) {
    let mut foreground: HashSet<&str> = HashSet::new();
    // Objects with owners, in store order; with none (and no foreground deletion) there is
    // nothing to collect, and the set of every uid is not built.
    let mut owned = Vec::new();
    for (kind, map) in &state.objects {
        for s in map.values() {
            if doc::is_deleting(&s.doc) && has_finalizer(&s.doc, FOREGROUND) {
                foreground.insert(doc::uid(&s.doc));
            }
            let refs = doc::at(&s.doc, &["metadata", "ownerReferences"]).and_then(Value::as_array);
            if let Some(refs) = refs.filter(|r| !r.is_empty()) {
                owned.push((*kind, s, refs));
            }
        }
    }
    if owned.is_empty() && foreground.is_empty() {
        return;
    }
    let live: HashSet<&str> = state
        .objects
        .values()
        .flat_map(|map| map.values())
        .map(|s| doc::uid(&s.doc))
        .collect();
    let mut dependents: HashMap<&str, usize> = HashMap::new();
    for (kind, s, refs) in owned {
        let uids: Vec<&str> = refs.iter().map(|r| doc::str_at(r, &["uid"])).collect();
        for u in &uids {
            *dependents.entry(u).or_default() += 1;
        }
        let orphaned = uids.iter().all(|u| !live.contains(u));
        let owner_foreground = uids.iter().any(|u| foreground.contains(u));
        if !doc::is_deleting(&s.doc) {
            let (namespace, name) = (
                doc::namespace(&s.doc).to_string(),
                doc::name(&s.doc).to_string(),
            );
            if owner_foreground {
                out.push(Change::DeleteForeground {
                    kind,
                    namespace,
                    name,
                });
            } else if orphaned {
                out.push(Change::Delete {
                    kind,
                    namespace,
                    name,
                });
            }
        }
    }
    // Foreground owners whose dependents are all gone lose that finalizer (and go, unless
    // another finalizer still holds them).
    for (kind, map) in &state.objects {
        for s in map.values() {
            let uid = doc::uid(&s.doc);
            if foreground.contains(uid) && !dependents.contains_key(uid) {
                release(kind, &s.doc, FOREGROUND, out);
            }
        }
    }
}

/// `metadata.finalizers`.
pub fn finalizers(obj: &Value) -> Vec<&str> {
    doc::at(obj, &["metadata", "finalizers"])
        .and_then(Value::as_array)
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Drops `finalizer` from an object being deleted; with none left the object goes (the API
/// server's rule for an update that empties the list of an object being deleted).
pub fn release(kind: &'static str, obj: &Value, finalizer: &str, out: &mut Changes) {
    let rest: Vec<&str> = finalizers(obj)
        .into_iter()
        .filter(|f| *f != finalizer)
        .collect();
    if rest.is_empty() {
        out.push(Change::Remove {
            kind,
            namespace: doc::namespace(obj).to_string(),
            name: doc::name(obj).to_string(),
        });
    } else {
        let mut next = obj.clone();
        doc::set(&mut next, &["metadata", "finalizers"], json!(rest));
        out.update(kind, next);
    }
}

/// Whether `metadata.finalizers` holds `name`.
pub fn has_finalizer(obj: &Value, name: &str) -> bool {
    doc::at(obj, &["metadata", "finalizers"])
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|x| x.as_str() == Some(name)))
}
