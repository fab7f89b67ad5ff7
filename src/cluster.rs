//! The one interface the reconciler and the rollout driver are written against.
//!
//! Two implementations: the built-in engine (`crate::engine`) and a Kubernetes API server
//! (`crate::k8s`). The interface is deliberately small: object CRUD, time, a lock, and one metrics
//! read. Everything progressive delivery needs (a second `-canary`/`-preview` track, a
//! Service selector switch, a traffic weight annotation) is expressed as ordinary objects
//! applied through [`Cluster::apply`], so one rollout driver serves both backends.

use std::borrow::Cow;
use std::time::Duration;

use serde_json::Value;

use crate::model::{Gvk, ResId};

/// Label put on the Deployment of a second track (`canary` or `preview`); the stable track
/// has no such label.
pub const TRACK_LABEL: &str = "reconcile.dev/track";

/// Annotation on a Service: percentage of traffic sent to pods labelled `track=canary`.
/// The engine splits its simulated traffic by it; on Kubernetes a mesh would honour it.
pub const CANARY_WEIGHT_ANNOTATION: &str = "reconcile.dev/canary-weight";

/// kubectl's word for the resource of a kind: `deployments.apps`, `configmaps`.
pub fn resource_word(gvk: &Gvk) -> String {
    let plural = crate::engine::kinds::by_group_kind(&gvk.group, &gvk.kind)
        .map(|info| info.plural.to_string())
        .unwrap_or_else(|| format!("{}s", gvk.kind.to_lowercase()));
    if gvk.group.is_empty() {
        plural
    } else {
        format!("{plural}.{}", gvk.group)
    }
}

/// kubectl's words for a missing object: `deployments.apps "web" not found`.
pub fn not_found_message(id: &ResId) -> String {
    format!("{} \"{}\" not found", resource_word(&id.gvk), id.name)
}

/// Errors a cluster reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object does not exist.
    #[error("{}", not_found_message(.0))]
    NotFound(Box<ResId>),
    /// Admission refused the object (invalid name, immutable field, quota, unknown kind …).
    #[error("{}: {message}", crate::diff::display_id(id))]
    Invalid {
        /// The object refused.
        id: Box<ResId>,
        /// Why, in the API server's words.
        message: String,
    },
    /// The object changed since it was read (resourceVersion mismatch).
    #[error(
        "{}: conflict: the object has been modified (resourceVersion {expected} expected, {found} found)",
        crate::diff::display_id(id)
    )]
    Conflict {
        /// The object.
        id: Box<ResId>,
        /// The resourceVersion the caller expected.
        expected: String,
        /// The one found.
        found: String,
    },
    /// Another process holds the target's lock.
    #[error(
        "target {target} is locked by another reconcile process ({holder}); try again when it finishes"
    )]
    Locked {
        /// The target.
        target: String,
        /// Who holds it.
        holder: String,
    },
    /// Anything else the backend reports (database, network, …).
    #[error("{0}")]
    Backend(String),
}

/// A per-track metric over a time window, read from the cluster's telemetry.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricQuery {
    /// Namespace of the pods.
    pub namespace: String,
    /// Label selector of the pods (`app=web,reconcile.dev/track=canary`).
    pub selector: String,
    /// `success-rate` (0..1) or `latency-p99` (milliseconds).
    pub metric: String,
    /// How far back to look.
    pub window: Duration,
    /// The Deployment whose track is measured.
    pub app: String,
    /// The track measured (`canary`, `preview`).
    pub track: String,
    /// Where a Kubernetes target reads it (the engine simulates every metric).
    pub provider: Option<crate::rollout::analysis::Provider>,
}

/// An object a watch saw change, as it was then (or as it was last, when it went).
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// The object.
    pub object: Value,
    /// True when it was deleted.
    pub deleted: bool,
}

/// A cluster: the built-in engine or a Kubernetes API server.
pub trait Cluster {
    /// Human name of the target (`engine:.reconcile/engine.db`, `kube:prod`).
    fn target_name(&self) -> String;

    /// The live object, if any.
    fn get(&self, id: &ResId) -> Result<Option<Value>, Error>;

    /// Live objects of one kind, in a namespace (`None`: all) matching a label selector.
    fn list(
        &self,
        gvk: &Gvk,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>, Error>;

    /// Creates the object or updates it to the given desired state (the fields the cluster
    /// owns — status, uid, resourceVersion, allocated clusterIP … — are kept). Returns the
    /// live object after the write.
    fn apply(&mut self, object: &Value) -> Result<Value, Error>;

    /// Applies several objects in order, as [`Cluster::apply`] does one. Stops at the first
    /// failure, returning its index and error; the objects before it stay applied. Backends
    /// whose writes trigger expensive work (the engine settles its controllers after each
    /// write) may override this to do that work once for the whole batch.
    /// Nothing is returned, and an owned object may be kept as it is sent: a batch may hold
    /// every object of a large application, and copies of them would double its memory.
    fn apply_batch(&mut self, objects: Vec<Cow<'_, Value>>) -> Result<(), (usize, Error)> {
        for (index, object) in objects.iter().enumerate() {
            self.apply(object).map_err(|e| (index, e))?;
        }
        Ok(())
    }

    /// The target's warnings about the writes since the last call (the API server's `Warning`
    /// headers). Targets that give none return nothing.
    fn take_warnings(&mut self) -> Vec<String> {
        Vec::new()
    }

    /// Deletes the object (dependents are garbage-collected). `Ok(false)` if it was absent.
    fn delete(&mut self, id: &ResId) -> Result<bool, Error>;

    /// Refuses, before anything is written, an object the target would not take for its
    /// kind or fields: a group/version it doesn't serve (unless a CRD among `objects` defines
    /// it), an unknown field or a wrong type. Targets that cannot tell accept everything.
    fn check_served(&self, objects: &[&Value]) -> Result<(), Error> {
        let _ = objects;
        Ok(())
    }

    /// Asks the target, before anything is written, whether it would take each object as
    /// sent (a server-side dry run: validation, admission, quota). Returns the index of the
    /// first object refused and why. Objects a dry run cannot judge yet (a kind whose CRD, or a
    /// namespace, the same apply creates) pass. Targets that cannot tell accept everything.
    fn check_writes(&self, objects: &[&Value]) -> Result<(), (usize, Error)> {
        let _ = objects;
        Ok(())
    }

    /// True when [`Cluster::apply`] is server-side apply: the object sent is the applied
    /// configuration, and the target merges it into the live object itself (a Kubernetes API
    /// server). Otherwise callers send the whole object, merged with the live one.
    fn applies_server_side(&self) -> bool {
        false
    }

    /// What the target would store for `object` if it were applied now (server-side dry
    /// run: defaults and admission included), or `None` when the target cannot tell. Plans
    /// use it to drop differences the server would erase anyway.
    fn dry_run_apply(&self, object: &Value) -> Option<Value> {
        let _ = object;
        None
    }

    /// The cluster's current time (virtual on the engine), as RFC 3339.
    fn now(&self) -> String;

    /// Lets `duration` pass: the engine advances its virtual clock and runs its controllers;
    /// a real cluster sleeps.
    fn wait(&mut self, duration: Duration) -> Result<(), Error>;

    /// Takes the target's exclusive lock for a plan/apply; held until [`Cluster::unlock`].
    fn lock(&mut self, holder: &str) -> Result<(), Error>;

    /// Releases the lock taken by [`Cluster::lock`].
    fn unlock(&mut self) -> Result<(), Error>;

    /// Reads a metric of the pods a query selects; `None` when there is no data yet.
    fn metric(&self, query: &MetricQuery) -> Result<Option<f64>, Error>;

    /// True when the cluster carries Canary/BlueGreen rollouts forward by itself as its time
    /// passes (the engine runs the rollout driver in its controller loop); a caller then
    /// only watches. Otherwise the caller's process is the driver.
    fn drives_rollouts(&self) -> bool {
        false
    }

    /// From now until [`Cluster::settle_deferred`], writes need not run the target's
    /// controllers: applications applied at one instant settle together, once. A no-op for
    /// targets whose controllers run on their own.
    fn defer_settling(&mut self) {}

    /// Ends [`Cluster::defer_settling`], running the controllers once if anything was written.
    fn settle_deferred(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// Messages of the recent warning events about an object, oldest first (probe failures
    /// and pull errors are only reported there). Empty when the backend keeps none.
    fn warnings(&self, _kind: &str, _namespace: &str, _name: &str) -> Result<Vec<String>, Error> {
        Ok(Vec::new())
    }

    /// Names the target whatever its spelling (a canonical state path, a context), so one
    /// target named twice is used once.
    fn identity(&self) -> String {
        self.target_name()
    }

    /// Reads again what other processes wrote since the last read; true when something
    /// changed (the engine reloads its state file). A server is always current: `false`.
    fn refresh(&mut self) -> Result<bool, Error> {
        Ok(false)
    }

    /// Moves a virtual clock on by `by` without waiting for it (the engine's time follows a
    /// watcher's wall clock); true when its controllers changed something. A real
    /// cluster's clock moves by itself: `false`.
    fn advance_clock(&mut self, by: Duration) -> Result<bool, Error> {
        let _ = by;
        Ok(false)
    }

    /// The changes to objects of `kinds` (every namespace) seen since the last call, oldest
    /// first, from watches started on the first call for each kind (the first call of a kind
    /// reports every object of it). `None` when the target has no watches: the caller then
    /// relies on [`Cluster::refresh`].
    fn observe(&mut self, kinds: &[Gvk]) -> Result<Option<Vec<Observed>>, Error> {
        let _ = kinds;
        Ok(None)
    }

    /// A number that changes whenever what a page of the target shows may have changed
    /// (objects, events); pages redraw when it moves.
    fn change_marker(&mut self) -> u64 {
        0
    }

    /// Takes the target's one-watcher lock for `holder` (its description: pid, address),
    /// held until this handle is dropped; `Ok(false)` when the target keeps no such lock
    /// itself (the engine's is a file beside its state, which the watcher takes).
    fn lock_watcher(&mut self, holder: &str) -> Result<bool, Error> {
        let _ = holder;
        Ok(false)
    }

    /// The description of the watcher holding the target's watcher lock (see
    /// [`Cluster::lock_watcher`]), if one runs; `None` too when the target keeps none.
    fn watcher(&self) -> Result<Option<String>, Error> {
        Ok(None)
    }
}
