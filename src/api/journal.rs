//! The watch journal: every change to a stored object as a numbered event (ADDED, MODIFIED,
//! DELETED), kept for a while so a watch can resume from a resourceVersion, and fanned out
//! to every open watch.
//!
//! The engine's resourceVersion is one counter for the whole cluster, so an object's version
//! orders its event; a removal bumps the counter too, and its event takes that version
//! (the counter as it stands when a deletion is only found by comparison, after a reload).
//! Changes are found by comparing the stored versions with the last ones seen, which also
//! catches writes by other `reconcile` processes on the same state file.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::broadcast;

use super::status::ApiError;
use crate::engine::doc;
use crate::engine::store::{Changed, Key, State, Stored};

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Gone.
    Deleted,
}

/// A live subscription and the changes it missed since the requested version.
pub type Following = (broadcast::Receiver<Arc<Change>>, Vec<Arc<Change>>);

impl EventType {
    /// The watch protocol's word.
    pub fn word(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Its resourceVersion.
    pub rv: u64,
    /// The object's kind.
    pub kind: &'static str,
    /// What happened.
    pub event: EventType,
    /// The object after the change (before it, for a deletion).
    pub object: Arc<Value>,
}

/// Events kept for resuming watches; older versions get 410 Gone.
const KEPT: usize = 100_000;

#[derive(Default)]
struct Inner {
    seen: HashMap<Key, (u64, Arc<Value>)>,
    kept: VecDeque<Arc<Change>>,
    /// Every change after this version is in `kept`.
    horizon: u64,
    /// The cluster's version when last recorded.
    current: u64,
}

impl Inner {
    /// The event of the object at `key` as stored now, remembering it; `None` when unchanged.
    fn compare(&mut self, key: Key, stored: &Stored) -> Option<Change> {
        let rv = rv_of(&stored.doc);
        let event = match self.seen.get(&key) {
            Some((seen, _)) if *seen == rv => return None,
            Some(_) => EventType::Modified,
            None => EventType::Added,
        };
        let object = Arc::new(stored.doc.clone());
        let kind = key.0;
        self.seen.insert(key, (rv, object.clone()));
        Some(Change {
            rv,
            kind,
            event,
            object,
        })
    }

    fn deleted(&mut self, key: &Key, rv: u64) -> Option<Change> {
        let (_, object) = self.seen.remove(key)?;
        Some(Change {
            rv,
            kind: key.0,
            event: EventType::Deleted,
            object,
        })
    }

    /// The changes of the `changed` objects only; a removed one's event takes the version
    /// of its removal.
    fn compare_some(&mut self, state: &State, changed: Changed) -> Vec<Change> {
        let mut changes = Vec::with_capacity(changed.len());
        for (key, rv) in changed {
            let found = match state.get(key.0, &key.1, &key.2) {
                Some(stored) => self.compare(key, stored),
                None => self.deleted(&key, rv),
            };
            changes.extend(found);
        }
        changes
    }

    /// The changes found by comparing every stored object with what was seen.
    fn compare_all(&mut self, state: &State) -> Vec<Change> {
        let mut changes: Vec<Change> = Vec::new();
        let mut present = 0usize;
        for (kind, map) in &state.objects {
            for ((ns, name), stored) in map {
                present += 1;
                changes.extend(self.compare((*kind, ns.clone(), name.clone()), stored));
            }
        }
        if present != self.seen.len() {
            let gone: Vec<Key> = self
                .seen
                .keys()
                .filter(|(kind, ns, name)| state.get(kind, ns, name).is_none())
                .cloned()
                .collect();
            for key in gone {
                changes.extend(self.deleted(&key, state.rv));
            }
        }
        changes
    }
}

/// The journal shared by the engine thread (writer) and the watches (readers).
pub struct Journal {
    inner: Mutex<Inner>,
    fanout: broadcast::Sender<Arc<Change>>,
    now: AtomicI64,
}

impl Default for Journal {
    fn default() -> Self {
        Journal::new()
    }
}

fn rv_of(object: &Value) -> u64 {
    doc::str_at(object, &["metadata", "resourceVersion"])
        .parse()
        .unwrap_or(0)
}

impl Journal {
    /// An empty journal.
    pub fn new() -> Journal {
        Journal {
            inner: Mutex::new(Inner::default()),
            fanout: broadcast::channel(16_384).0,
            now: AtomicI64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Remembers the state as it is, without events: watches start after it.
    pub fn prime(&self, state: &State) {
        self.now.store(state.now, Ordering::Relaxed);
        let mut inner = self.lock();
        for (kind, map) in &state.objects {
            for ((ns, name), stored) in map {
                inner.seen.insert(
                    (*kind, ns.clone(), name.clone()),
                    (rv_of(&stored.doc), Arc::new(stored.doc.clone())),
                );
            }
        }
        inner.horizon = state.rv;
        inner.current = state.rv;
    }

    /// Records what changed since the last call and sends it to the watches. `changed`
    /// names the objects written or removed since then ([`State::take_changed`]); `None`
    /// compares every object (after a reload: another process may have written anything).
    pub fn record(&self, state: &State, changed: Option<Changed>) {
        self.now.store(state.now, Ordering::Relaxed);
        let mut inner = self.lock();
        if state.rv == inner.current {
            return;
        }
        let mut changes = match changed {
            Some(keys) => inner.compare_some(state, keys),
            None => inner.compare_all(state),
        };
        changes.sort_by_key(|c| c.rv);
        inner.current = state.rv;
        for change in changes {
            let change = Arc::new(change);
            inner.kept.push_back(change.clone());
            // No receiver is fine: nobody watches.
            let _ = self.fanout.send(change);
        }
        while inner.kept.len() > KEPT {
            if let Some(old) = inner.kept.pop_front() {
                inner.horizon = old.rv;
            }
        }
    }

    /// The engine's virtual now when last recorded (for ages in Tables).
    pub fn now(&self) -> crate::engine::clock::Millis {
        self.now.load(Ordering::Relaxed)
    }

    /// The cluster's version when last recorded.
    pub fn current(&self) -> u64 {
        self.lock().current
    }

    /// A receiver of every change from now on, and the changes after `since` already kept
    /// (410 Gone when they are no longer all kept).
    pub fn follow(&self, since: u64) -> Result<Following, ApiError> {
        let inner = self.lock();
        if since < inner.horizon {
            return Err(ApiError::gone(since, inner.horizon));
        }
        let receiver = self.fanout.subscribe();
        let replay = inner
            .kept
            .iter()
            .filter(|c| c.rv > since)
            .cloned()
            .collect();
        Ok((receiver, replay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;
    use serde_json::json;

    #[test]
    fn changes_are_numbered_and_resumable() {
        let mut engine = Engine::in_memory(1).expect("engine");
        let journal = Journal::new();
        journal.prime(engine.fresh_changes().expect("state").0);
        let start = journal.current();
        engine
            .create(&json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "a", "namespace": "default"}, "data": {"k": "1"}}))
            .expect("create");
        let (state, changed) = engine.fresh_changes().expect("state");
        let key = ("ConfigMap", "default".to_string(), "a".to_string());
        assert!(
            changed.as_ref().is_some_and(|c| c.contains_key(&key)),
            "tracked"
        );
        journal.record(state, changed);
        engine
            .delete("ConfigMap", "default", "a", Default::default())
            .expect("delete");
        let (state, changed) = engine.fresh_changes().expect("state");
        journal.record(state, changed);
        let (_, replay) = journal.follow(start).expect("kept");
        let words: Vec<_> = replay
            .iter()
            .filter(|c| c.kind == "ConfigMap")
            .map(|c| c.event.word())
            .collect();
        assert_eq!(words, ["ADDED", "DELETED"]);
        assert!(replay.windows(2).all(|w| w[0].rv <= w[1].rv));
        assert!(start > 0, "bootstrap nodes have versions");
        assert_eq!(journal.follow(start - 1).err().map(|e| e.code), Some(410));
    }

    #[test]
    fn a_deletion_and_a_later_write_in_one_batch_have_their_own_versions() {
        let mut engine = Engine::in_memory(1).expect("engine");
        let journal = Journal::new();
        for name in ["gone", "kept"] {
            engine
                .create(&json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": "default"}, "data": {"k": "1"}}))
                .expect("create");
        }
        journal.prime(engine.fresh_changes().expect("state").0);
        let start = journal.current();
        engine
            .delete("ConfigMap", "default", "gone", Default::default())
            .expect("delete");
        engine
            .apply(&json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "kept", "namespace": "default"}, "data": {"k": "2"}}))
            .expect("update");
        let (state, changed) = engine.fresh_changes().expect("state");
        journal.record(state, changed);
        let (_, replay) = journal.follow(start).expect("kept");
        let config_maps: Vec<(&str, &str, u64)> = replay
            .iter()
            .filter(|c| c.kind == "ConfigMap")
            .map(|c| (c.event.word(), doc::name(&c.object), c.rv))
            .collect();
        assert_eq!(config_maps.len(), 2, "{config_maps:?}");
        let (deleted, modified) = (config_maps[0], config_maps[1]);
        assert_eq!((deleted.0, deleted.1), ("DELETED", "gone"));
        assert_eq!((modified.0, modified.1), ("MODIFIED", "kept"));
        // The update's version is the cluster's newest; the deletion happened before it and
        // must not share it, or a watch that has passed it drops the update.
        assert!(deleted.2 < modified.2, "{config_maps:?}");
        assert_eq!(modified.2, engine.state().rv);
    }
}
