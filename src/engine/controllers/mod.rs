//! The controllers: each a pure function of (state, now) that returns changes.
//!
//! The engine runs them in a fixed order, applying each one's changes before the next runs,
//! and repeats until a whole round changes nothing; then it jumps the clock to the earliest
//! instant any controller asked to be woken at.
//!
//! Invariant: no controller writes the state; they only describe writes as [`Change`]s.

pub mod clusterrole;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod gc;
pub mod hpa;
pub mod job;
pub mod namespace;
pub mod node;
pub mod pod;
pub mod replicaset;
pub mod rollout;
pub mod statefulset;
pub mod volume;
pub mod workloads;

use serde_json::Value;

use super::clock::Millis;
use super::events::NewEvent;
use pod::PodSim;

/// One write a controller asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Create an object through admission (defaults, quota). On refusal the engine records
    /// a `FailedCreate` warning on `owner` (kind, namespace, name).
    Create {
        /// The kind.
        kind: &'static str,
        /// The object.
        doc: Value,
        /// Simulation state to start it with.
        sim: Option<PodSim>,
        /// The controller object that asked, for the failure event.
        owner: Option<(&'static str, String, String)>,
    },
    /// Write an object as an API client would (create or update through admission, the
    /// fields the cluster owns kept); a refusal is recorded as a warning event.
    Apply {
        /// The kind.
        kind: &'static str,
        /// The desired object.
        doc: Value,
    },
    /// Replace an object's document (spec and/or status).
    Update {
        /// The kind.
        kind: &'static str,
        /// The new document.
        doc: Value,
    },
    /// Replace only an object's `status` (no copy of the rest of the document).
    Status {
        /// The kind.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The new status.
        status: Value,
    },
    /// Bind a pod to a node: set `spec.nodeName` and the pod's status.
    Bind {
        /// Namespace of the pod.
        namespace: String,
        /// Name of the pod.
        name: String,
        /// The node.
        node: String,
        /// The pod's status after binding.
        status: Value,
    },
    /// Replace a pod's simulation state.
    Sim {
        /// Namespace of the pod.
        namespace: String,
        /// Name of the pod.
        name: String,
        /// The new state.
        sim: PodSim,
    },
    /// Delete through the API (pods terminate gracefully; dependents are collected).
    Delete {
        /// The kind.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// Delete through the API with foreground propagation (the object waits for its own
    /// dependents), as the garbage collector does for dependents of a foreground deletion.
    DeleteForeground {
        /// The kind.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// Remove an object from the store at once (the last step of a deletion).
    Remove {
        /// The kind.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// Record an event.
    Event(NewEvent),
}

/// What one controller pass produced.
#[derive(Debug, Default)]
pub struct Changes {
    /// Writes, in order.
    pub list: Vec<Change>,
    /// The earliest future instant the controller wants to run again.
    pub wake: Option<Millis>,
}

impl Changes {
    /// Asks to be run again at `at` (the earliest request wins).
    pub fn wake_at(&mut self, at: Millis) {
        self.wake = Some(self.wake.map_or(at, |w| w.min(at)));
    }

    /// Adds a write.
    pub fn push(&mut self, change: Change) {
        self.list.push(change);
    }

    /// Adds an event.
    pub fn event(&mut self, event: NewEvent) {
        self.list.push(Change::Event(event));
    }

    /// Asks for an object update.
    pub fn update(&mut self, kind: &'static str, doc: Value) {
        self.list.push(Change::Update { kind, doc });
    }
}
