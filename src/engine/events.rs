//! Events, recorded and aggregated as `kubectl get events` shows them.
//!
//! Invariant: an event repeated on the same object with the same reason and message bumps the
//! count and last-seen time of the existing record instead of adding a new one.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::clock::Millis;

/// How many events the engine keeps; the oldest are dropped first (Kubernetes drops events
/// after an hour; a bound on the count keeps big simulations cheap).
pub const MAX_EVENTS: usize = 20_000;

/// One event about one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Sequence number (unique, increasing).
    pub id: u64,
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Machine-readable reason (`Scheduled`, `ScalingReplicaSet`, `BackOff`).
    pub reason: String,
    /// The object's kind.
    pub object_kind: String,
    /// The object's namespace ("" for cluster-scoped).
    pub namespace: String,
    /// The object's name.
    pub object_name: String,
    /// Human message.
    pub message: String,
    /// Reporting component (`default-scheduler`, `kubelet`, `deployment-controller`).
    pub source: String,
    /// How many times it happened.
    pub count: u64,
    /// First occurrence.
    pub first: Millis,
    /// Last occurrence.
    pub last: Millis,
}

/// An event to record (the store assigns id and times).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// `Normal` or `Warning`.
    pub warning: bool,
    /// Reason.
    pub reason: String,
    /// Kind of the object.
    pub object_kind: &'static str,
    /// Namespace of the object.
    pub namespace: String,
    /// Name of the object.
    pub object_name: String,
    /// Message.
    pub message: String,
    /// Reporting component.
    pub source: &'static str,
}

impl NewEvent {
    /// A `Normal` event.
    pub fn normal(
        source: &'static str,
        object_kind: &'static str,
        namespace: &str,
        object_name: &str,
        reason: &str,
        message: String,
    ) -> NewEvent {
        NewEvent {
            warning: false,
            reason: reason.into(),
            object_kind,
            namespace: namespace.into(),
            object_name: object_name.into(),
            message,
            source,
        }
    }

    /// A `Warning` event.
    pub fn warning(
        source: &'static str,
        object_kind: &'static str,
        namespace: &str,
        object_name: &str,
        reason: &str,
        message: String,
    ) -> NewEvent {
        NewEvent {
            warning: true,
            ..NewEvent::normal(source, object_kind, namespace, object_name, reason, message)
        }
    }
}

/// The event log.
#[derive(Debug, Clone, Default)]
pub struct Events {
    /// Records, oldest first.
    pub list: Vec<Event>,
    index: HashMap<u64, usize>,
    /// Ids written or changed since the last save.
    pub dirty: Vec<u64>,
    /// Ids dropped since the last save.
    pub dropped: Vec<u64>,
    /// Next id.
    pub next_id: u64,
}

impl Events {
    /// Rebuilds the log from saved records.
    pub fn from_saved(mut list: Vec<Event>, next_id: u64) -> Events {
        list.sort_by_key(|e| e.id);
        let mut events = Events {
            list,
            next_id,
            ..Events::default()
        };
        events.reindex();
        events
    }

    fn reindex(&mut self) {
        self.index = self
            .list
            .iter()
            .enumerate()
            .map(|(i, e)| (key_of(e), i))
            .collect();
    }

    /// Records an event at `now`, aggregating repeats.
    pub fn record(&mut self, new: NewEvent, now: Millis) {
        let kind = if new.warning { "Warning" } else { "Normal" };
        let key = key_hash(
            &new.namespace,
            new.object_kind,
            &new.object_name,
            &new.reason,
            &new.message,
        );
        if let Some(&i) = self.index.get(&key) {
            let e = &mut self.list[i];
            e.count += 1;
            e.last = now;
            self.dirty.push(e.id);
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.index.insert(key, self.list.len());
        self.list.push(Event {
            id,
            kind: kind.into(),
            reason: new.reason,
            object_kind: new.object_kind.into(),
            namespace: new.namespace,
            object_name: new.object_name,
            message: new.message,
            source: new.source.into(),
            count: 1,
            first: now,
            last: now,
        });
        self.dirty.push(id);
        if self.list.len() >= 2 * MAX_EVENTS {
            let drop = self.list.len() - MAX_EVENTS;
            self.dropped.extend(self.list.drain(..drop).map(|e| e.id));
            self.reindex();
        }
    }

    /// Events sorted as `kubectl get events --sort-by=.lastTimestamp` shows them.
    pub fn sorted(&self) -> Vec<&Event> {
        let mut out: Vec<&Event> = self.list.iter().collect();
        out.sort_by_key(|e| (e.last, e.id));
        out
    }

    /// Events about one object, oldest first.
    pub fn about(&self, kind: &str, namespace: &str, name: &str) -> Vec<&Event> {
        let mut out: Vec<&Event> = self
            .list
            .iter()
            .filter(|e| e.object_kind == kind && e.namespace == namespace && e.object_name == name)
            .collect();
        out.sort_by_key(|e| (e.last, e.id));
        out
    }
}

fn key_of(e: &Event) -> u64 {
    key_hash(
        &e.namespace,
        &e.object_kind,
        &e.object_name,
        &e.reason,
        &e.message,
    )
}

/// FNV-1a over the fields that identify an aggregated event (a 0 byte between fields).
fn key_hash(namespace: &str, kind: &str, name: &str, reason: &str, message: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [namespace, kind, name, reason, message] {
        for b in part.bytes().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Messages of the warning events about one object, oldest first (for failure causes).
pub fn warning_messages(events: &Events, kind: &str, namespace: &str, name: &str) -> Vec<String> {
    events
        .about(kind, namespace, name)
        .into_iter()
        .filter(|e| e.kind == "Warning")
        .map(|e| e.message.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_aggregated() {
        let mut log = Events::default();
        let ev = || {
            NewEvent::warning(
                "kubelet",
                "Pod",
                "default",
                "p",
                "BackOff",
                "back-off".into(),
            )
        };
        log.record(ev(), 1000);
        log.record(ev(), 5000);
        assert_eq!(log.list.len(), 1);
        assert_eq!(
            (log.list[0].count, log.list[0].first, log.list[0].last),
            (2, 1000, 5000)
        );
    }
}
