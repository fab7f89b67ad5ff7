//! The built-in orchestration engine: an embedded cluster that behaves like Kubernetes.
//!
//! A tour, in the order a command flows:
//! - [`Engine::open`] loads the whole [`store::State`] from the SQLite file once;
//! - a write goes through [`admission`] (defaults, validation, quota) into the store;
//! - [`Engine::advance`] moves the virtual [`clock`] event by event: at each instant the
//!   [`controllers`] (deployment, replicaset, [`scheduler`], kubelet, node lifecycle,
//!   endpoints, garbage collector, namespaces) run until nothing changes, then time jumps to
//!   the earliest instant one of them asked for;
//! - the changed objects, events and clock are written back in one transaction.
//!
//! Invariants: the engine never reads the wall clock; every random choice comes from the
//! seeded source stored with the state; a refused write changes nothing; a command either
//! commits all its writes or none.

pub mod admission;
mod cel;
pub mod clock;
pub mod constraints;
pub mod controllers;
pub mod convert;
pub mod crd;
pub mod cron;
pub mod doc;
pub mod events;
pub mod formats;
pub mod images;
pub mod kinds;
mod kinds_table;
pub mod labels;
pub mod logs;
mod par;
pub mod printer;
pub mod quota;
pub mod scale;
pub mod scheduler;
pub mod schema;
pub mod served;
pub mod store;
pub mod traffic;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cluster::{self, Cluster, MetricQuery};
use crate::model::{Gvk, ResId};
use clock::{Millis, SECOND, rfc3339};
use controllers::{Change, Changes};
use events::NewEvent;
use images::ImageBehavior;
use kinds::KindInfo;
use labels::Selector;
use store::{Database, LockHolder, State, StoreError};

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The state file could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The kind is not one the engine serves.
    #[error("the server doesn't have a resource type \"{0}\"")]
    UnknownKind(String),
    /// The object's group/version does not serve its kind (a custom resource without its CRD).
    #[error("{0}")]
    NoMatch(String),
    /// The object does not exist.
    #[error("{resource} \"{name}\" not found")]
    NotFound {
        /// kubectl's resource word (`deployments.apps`).
        resource: String,
        /// Name.
        name: String,
    },
    /// The object exists already (`create`).
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists {
        /// kubectl's resource word.
        resource: String,
        /// Name.
        name: String,
    },
    /// Admission refused the object.
    #[error("{message}")]
    Invalid {
        /// The object.
        id: Box<ResId>,
        /// The API server's message.
        message: String,
    },
    /// The caller's resourceVersion is stale.
    #[error(
        "Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
    )]
    Conflict {
        /// The object.
        id: Box<ResId>,
        /// kubectl's resource word.
        resource: String,
        /// Name.
        name: String,
        /// The version the caller had.
        expected: String,
        /// The version stored.
        found: String,
    },
    /// Another process holds the plan/apply lock.
    #[error(
        "engine state is locked by {holder} (lock id {pid}) since {since}; if that process is gone, `reconcile unlock {pid}` removes the lock"
    )]
    Locked {
        /// Who.
        holder: String,
        /// Their process id.
        pid: u32,
        /// Since when.
        since: String,
    },
    /// A command's argument is wrong (bad node name, bad duration, …).
    #[error("{0}")]
    Usage(String),
}

/// How dependents of a deleted object are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    /// Delete the object now; the garbage collector deletes dependents afterwards.
    #[default]
    Background,
    /// Delete dependents first; the object goes when they are gone.
    Foreground,
    /// Delete the object and leave dependents without an owner.
    Orphan,
}

/// Capacity of a simulated node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    /// CPU in millicores.
    pub cpu_millis: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Pod slots.
    pub pods: i64,
    /// Extra labels.
    pub labels: Vec<(String, String)>,
}

impl Default for NodeSpec {
    fn default() -> Self {
        NodeSpec {
            cpu_millis: 4000,
            memory: 8 << 30,
            pods: 110,
            labels: Vec::new(),
        }
    }
}

/// What an [`Engine::advance`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advanced {
    /// Virtual time before.
    pub from: Millis,
    /// Virtual time after.
    pub to: Millis,
    /// Instants at which controllers ran.
    pub steps: u64,
}

/// How often `drain` retries an eviction a PodDisruptionBudget refused (kubectl's 5 s).
pub const DRAIN_RETRY: Millis = 5 * SECOND;

/// One thing a drain did, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrainStep {
    /// The drain will evict this pod (`namespace/name`).
    Evicting(String),
    /// A budget refused the eviction this time; it is retried.
    Blocked {
        /// The pod, `namespace/name`.
        pod: String,
        /// The PodDisruptionBudget's name.
        budget: String,
    },
    /// The pod was evicted.
    Evicted(String),
}

/// What [`Engine::drain`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drained {
    /// Evictions, refusals and successes in order.
    pub steps: Vec<DrainStep>,
    /// Pods still on the node when the timeout passed (empty: drained).
    pub remaining: Vec<String>,
    /// Virtual time the drain waited.
    pub waited: Millis,
}

/// Most controller rounds at one instant before the engine gives up on quiescence (a
/// controller that keeps changing its mind would otherwise spin forever).
const MAX_ROUNDS: usize = 400;

/// The seed of a new cluster's random source.
pub const DEFAULT_SEED: u64 = 20_260_101;

/// The default number of worker nodes.
pub const DEFAULT_NODES: usize = 3;

/// The engine: a state file and the cluster state loaded from it.
pub struct Engine {
    db: Database,
    state: State,
    stale: bool,
    next_wake: Option<Millis>,
    holds_lock: bool,
    gc_epoch: Option<u64>,
    /// Writes skip running the controllers until [`Engine::settle_deferred`] (a watcher
    /// applying many applications in one pass settles once, not once per write).
    deferring: bool,
    /// A write was made while deferring: the controllers have yet to run.
    unsettled: bool,
    /// Admission's warnings for the client since [`Engine::take_warnings`] last ran.
    warnings: Vec<String>,
    /// What the store's CRDs make served, rebuilt when they change.
    served: served::Cache,
}

/// A state with this many objects is freed on a thread of its own when its engine goes.
const BACKGROUND_DROP_OBJECTS: usize = 10_000;

impl Drop for Engine {
    fn drop(&mut self) {
        // Freeing a big cluster object by object is a noticeable part of a large apply; it is
        // done off the caller's thread (a process about to exit does not wait for it).
        let objects: usize = self.state.objects.values().map(|kind| kind.len()).sum();
        if objects >= BACKGROUND_DROP_OBJECTS {
            let state = std::mem::replace(&mut self.state, State::empty(0));
            // Should no thread start, the state is dropped here, with the closure.
            let _ = std::thread::Builder::new()
                .name("engine-drop".into())
                .spawn(move || drop(state));
        }
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Engine({})", self.db.path())
    }
}

fn resource_word(info: &KindInfo) -> String {
    if info.group.is_empty() {
        info.plural.to_string()
    } else {
        format!("{}.{}", info.plural, info.group)
    }
}

/// The namespace and name an object is stored under (a namespaced kind's object without a
/// namespace goes to `default`; a cluster-scoped one has none).
fn stored_name<'a>(info: &KindInfo, object: &'a Value) -> (&'a str, &'a str) {
    let ns = if info.namespaced {
        match doc::namespace(object) {
            "" => "default",
            n => n,
        }
    } else {
        ""
    };
    (ns, doc::name(object))
}

fn id_of(info: &KindInfo, ns: &str, name: &str) -> ResId {
    ResId {
        gvk: Gvk {
            group: info.group.into(),
            version: info.version.into(),
            kind: info.kind.into(),
        },
        name: name.into(),
        namespace: ns.into(),
    }
}

impl Engine {
    /// Opens the cluster in a state file (created with 3 worker nodes when new).
    pub fn open(path: &Path) -> Result<Engine, Error> {
        Engine::open_db(Database::open(Some(path))?, DEFAULT_NODES)
    }

    /// Opens the cluster of an existing state file; a missing file is an error, never created.
    pub fn open_existing(path: &Path) -> Result<Engine, Error> {
        Engine::open_db(Database::open_existing(path)?, DEFAULT_NODES)
    }

    /// Opens the cluster of an existing state file read-only (read commands): works on a
    /// read-only file system; any write is refused with [`store::StoreError::ReadOnly`].
    pub fn open_read_only(path: &Path) -> Result<Engine, Error> {
        Engine::open_db(Database::open_read_only(path)?, DEFAULT_NODES)
    }

    /// The key sealing saved plans of this target (hex), if one was made.
    pub fn plan_key(&self) -> Result<Option<String>, Error> {
        Ok(self.db.plan_key()?)
    }

    /// The key sealing saved plans of this target, made on first use.
    pub fn ensure_plan_key(&mut self) -> Result<String, Error> {
        Ok(self.db.ensure_plan_key()?)
    }

    /// A new cluster in memory standing in for the state file `path`, not created yet: what a
    /// read-only command sees before anything was applied.
    pub fn in_memory_as(path: &Path) -> Result<Engine, Error> {
        Engine::open_db(Database::in_memory_as(path)?, DEFAULT_NODES)
    }

    /// A cluster kept in memory only (tests, benchmarks) with `nodes` default workers.
    pub fn in_memory(nodes: usize) -> Result<Engine, Error> {
        Engine::open_db(Database::open(None)?, nodes)
    }

    fn open_db(db: Database, nodes: usize) -> Result<Engine, Error> {
        db.begin()?;
        let loaded = (|| -> Result<State, Error> {
            if db.is_initialized()? {
                Ok(db.load()?)
            } else {
                let mut state = State::empty(DEFAULT_SEED);
                bootstrap(&mut state, nodes);
                if !db.is_read_only() {
                    db.save(&mut state)?;
                }
                Ok(state)
            }
        })();
        match loaded {
            Ok(state) => {
                db.commit()?;
                Ok(Engine {
                    db,
                    state,
                    stale: false,
                    next_wake: None,
                    holds_lock: false,
                    gc_epoch: None,
                    deferring: false,
                    unsettled: false,
                    warnings: Vec::new(),
                    served: served::Cache::default(),
                })
            }
            Err(e) => {
                db.rollback();
                Err(e)
            }
        }
    }

    /// Where the state lives.
    pub fn path(&self) -> &str {
        self.db.path()
    }

    /// The state as loaded (read-only view for printing).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Reloads the state when another process committed since it was loaded; `true` when
    /// it did (how a watcher sees `engine scale` from another shell without polling objects).
    pub fn refresh(&mut self) -> Result<bool, Error> {
        let before = self.state.commit_seq;
        self.read(|_| ())?;
        Ok(self.state.commit_seq != before)
    }

    /// Virtual now.
    pub fn now_millis(&self) -> Millis {
        self.state.now
    }

    /// Runs `op` as one transaction: reloads when another process wrote meanwhile, saves
    /// what changed, and on error leaves the file (and, after a reload, memory) untouched.
    fn transact<T>(
        &mut self,
        op: impl FnOnce(&mut Engine) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.db.begin()?;
        let fresh = (|| -> Result<(), Error> {
            let seq = self.db.commit_seq()?;
            if self.stale || seq != self.state.commit_seq {
                self.state = self.db.load()?;
                self.served.clear();
                self.stale = false;
                self.next_wake = None;
            }
            Ok(())
        })();
        if let Err(e) = fresh {
            self.db.rollback();
            return Err(e);
        }
        // Every writer respects a running plan/apply's lock (`engine reset`, `engine apply`,
        // `advance` …), not only other applies.
        if let Some(l) = &self.state.lock
            && !self.holds_lock
            && l.pid != std::process::id()
            && pid_alive(l.pid)
        {
            let locked = Error::Locked {
                holder: l.holder.clone(),
                pid: l.pid,
                since: l.since.clone(),
            };
            self.db.rollback();
            return Err(locked);
        }
        let result = op(self).and_then(|value| {
            self.db.save(&mut self.state)?;
            Ok(value)
        });
        match result {
            Ok(v) => {
                self.db.commit()?;
                Ok(v)
            }
            Err(e) => {
                self.db.rollback();
                self.stale = true;
                Err(e)
            }
        }
    }

    fn read<T>(&mut self, op: impl FnOnce(&State) -> T) -> Result<T, Error> {
        if self.stale || self.db.commit_seq()? != self.state.commit_seq {
            self.state = self.db.load()?;
            self.served.clear();
            self.stale = false;
        }
        Ok(op(&self.state))
    }

    /// The kinds served now: the built-in ones and those of the established CRDs in the
    /// store (see [`served`]); cheap when no CRD changed since the last call.
    pub fn served(&mut self) -> Result<std::sync::Arc<served::Served>, Error> {
        self.read(|_| ())?;
        Ok(self.served.get(&self.state))
    }

    // ---- objects ----

    fn kind_of(object: &Value) -> Result<&'static KindInfo, Error> {
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if kind.is_empty() {
            return Err(Error::UnknownKind("(object has no kind)".into()));
        }
        kinds::resolve(api_version, kind).map_err(|e| Error::NoMatch(e.to_string()))
    }

    /// The kind of an object a user sends, after server-side field validation (Strict) of
    /// built-in kinds; custom resources are checked against their CRD at admission.
    fn request_kind(object: &Value) -> Result<&'static KindInfo, Error> {
        let info = Engine::kind_of(object)?;
        if kinds::is_builtin(info) {
            let version = doc::str_at(object, &["apiVersion"])
                .rsplit('/')
                .next()
                .unwrap_or_default();
            schema::check(info, version, object).map_err(|message| Error::Invalid {
                id: Box::new(ResId::of(object)),
                message,
            })?;
        }
        Ok(info)
    }

    fn admit_create(
        &mut self,
        info: &'static KindInfo,
        mut obj: Value,
        sim: Option<controllers::pod::PodSim>,
    ) -> Result<store::Key, Error> {
        // The API server names a generateName object before validating admission (quota,
        // LimitRanger), so their refusals name it: `pods "web-5d9c7b6f4-x2k9p" is forbidden`.
        let prefix = doc::str_at(&obj, &["metadata", "generateName"]).to_string();
        if doc::name(&obj).is_empty() && !prefix.is_empty() {
            let ns = match (info.namespaced, doc::namespace(&obj)) {
                (false, _) => "",
                (true, "") => "default",
                (true, n) => n,
            }
            .to_string();
            let name = self.state.generated_name(info.key, &ns, &prefix);
            doc::set(&mut obj, &["metadata", "name"], json!(name));
        }
        let mut rng = self.state.rng;
        let mut warnings = Vec::new();
        let result = admission::admit(&self.state, &mut rng, info, None, &mut obj, &mut warnings);
        self.state.rng = rng;
        self.keep_warnings(warnings);
        result.map_err(|message| Error::Invalid {
            id: Box::new(ResId::of(&obj)),
            message,
        })?;
        let (ns, name) = (
            doc::namespace(&obj).to_string(),
            doc::name(&obj).to_string(),
        );
        if !name.is_empty() && self.state.get(info.key, &ns, &name).is_some() {
            return Err(Error::AlreadyExists {
                resource: resource_word(info),
                name,
            });
        }
        let sim = if info.kind == "Pod" {
            Some(sim.unwrap_or_default())
        } else {
            sim
        };
        Ok(self.state.create(info, obj, sim))
    }

    /// Creates an object; fails if it exists. Returns it as stored.
    pub fn create(&mut self, object: &Value) -> Result<Value, Error> {
        let info = Engine::request_kind(object)?;
        let version = convert::version_of(doc::str_at(object, &["apiVersion"])).to_string();
        self.transact(|e| {
            let key = e.admit_create(info, object.clone(), None)?;
            e.settle();
            Ok(e.state
                .get(key.0, &key.1, &key.2)
                .map(|s| convert::to_version(info, &s.doc, &version))
                .unwrap_or(Value::Null))
        })
    }

    /// Creates or updates an object to the given desired state, keeping what the cluster
    /// owns (status, uid, allocated IPs and ports, controller annotations).
    pub fn apply(&mut self, object: &Value) -> Result<Value, Error> {
        let info = Engine::request_kind(object)?;
        let version = convert::version_of(doc::str_at(object, &["apiVersion"])).to_string();
        self.transact(|e| {
            let key = e.apply_in(info, object)?;
            e.settle();
            // Answered in the version it was sent in, as the API server answers a request.
            Ok(e.state
                .get(key.0, &key.1, &key.2)
                .map(|s| convert::to_version(info, &s.doc, &version))
                .unwrap_or(Value::Null))
        })
    }

    /// Keeps admission's warnings for [`Engine::take_warnings`], up to a bound: a long-lived
    /// engine whose writer never asks for them does not grow.
    fn keep_warnings(&mut self, warnings: Vec<String>) {
        const KEPT: usize = 256;
        let room = KEPT.saturating_sub(self.warnings.len());
        self.warnings.extend(warnings.into_iter().take(room));
    }

    /// The warnings admission gave since the last call (a CRD validation rule the engine
    /// could not evaluate, a failure ratcheted on an unchanged value), each once, oldest first:
    /// what the API server sends as `Warning` headers.
    pub fn take_warnings(&mut self) -> Vec<String> {
        let mut seen = HashSet::new();
        std::mem::take(&mut self.warnings)
            .into_iter()
            .filter(|w| seen.insert(w.clone()))
            .collect()
    }

    /// The CRD a custom resource would be admitted by (one among `batch`, else the stored
    /// one) and the resource as stored.
    fn crd_and_live<'a>(
        &'a self,
        batch: &[&'a Value],
        object: &Value,
    ) -> Option<(&'a Value, Option<&'a Value>)> {
        let (group, _) = doc::str_at(object, &["apiVersion"]).rsplit_once('/')?;
        let kind = doc::str_at(object, &["kind"]);
        let stored = Engine::kind_of(object).ok();
        let crd = batch
            .iter()
            .copied()
            .filter(|o| doc::str_at(o, &["kind"]) == crd::KIND)
            .find(|c| crd::info_of(c).is_some_and(|i| i.group == group && i.kind == kind))
            .or_else(|| {
                let info = stored?;
                let name = format!("{}.{}", info.plural, info.group);
                self.state.get(crd::KIND, "", &name).map(|s| &s.doc)
            })?;
        let live = stored.and_then(|info| {
            let (ns, name) = stored_name(info, object);
            self.state.get(info.key, ns, name).map(|s| &s.doc)
        });
        Some((crd, live))
    }

    /// Why a request for `info`'s objects in `version` fails (a CRD whose conversion webhook
    /// the engine cannot call, see [`crd::conversion_failure`]; `sent`: the request carries
    /// an object in `version`); `None`: it is served.
    pub fn conversion_failure(&self, info: &KindInfo, version: &str, sent: bool) -> Option<String> {
        crd::conversion_failure(&self.state, info, version, sent)
    }

    /// The API server's update (PUT, PATCH, apply through `engine serve`): as
    /// [`Engine::apply`], but `metadata.finalizers` is the writer's, and an object being
    /// deleted whose last finalizer goes is deleted. Returns the object as stored (as it was
    /// last, when deleted).
    pub fn replace(&mut self, object: &Value) -> Result<Value, Error> {
        let info = Engine::request_kind(object)?;
        self.transact(|e| {
            let (key, gone) = e.replace_in(info, object)?;
            e.settle();
            Ok(e.state
                .get(key.0, &key.1, &key.2)
                .map(|s| s.doc.clone())
                .or(gone)
                .unwrap_or(Value::Null))
        })
    }

    /// What [`Engine::replace`] would store, without storing it (`dryRun=All`).
    pub fn dry_run_replace(&mut self, object: &Value) -> Result<Value, Error> {
        let info = Engine::kind_of(object)?;
        self.read(|_| ())?;
        let saved = self.state.clone();
        let result = self.replace_in(info, object).map(|(key, gone)| {
            self.state
                .get(key.0, &key.1, &key.2)
                .map(|s| s.doc.clone())
                .or(gone)
                .unwrap_or(Value::Null)
        });
        self.state = saved;
        result
    }

    fn replace_in(
        &mut self,
        info: &'static KindInfo,
        object: &Value,
    ) -> Result<(store::Key, Option<Value>), Error> {
        let key = self.update_in(info, object, Finalizers::FromWriter)?;
        // Pods and Namespaces are finished by the kubelet and the namespace controller.
        let finished = !matches!(info.kind, "Pod" | "Namespace")
            && self.state.get(key.0, &key.1, &key.2).is_some_and(|s| {
                doc::is_deleting(&s.doc) && controllers::gc::finalizers(&s.doc).is_empty()
            });
        let gone = if finished {
            self.state.remove(key.0, &key.1, &key.2)
        } else {
            None
        };
        Ok((key, gone))
    }

    /// A controller's delete: true when it changed the object (deleted it or marked it).
    fn apply_delete(
        &mut self,
        kind: &str,
        namespace: &str,
        name: &str,
        propagation: Propagation,
    ) -> bool {
        let Some(info) = kinds::by_key(kind) else {
            return false;
        };
        let Some(before) = self.state.get(kind, namespace, name).map(|s| s.doc.clone()) else {
            return false;
        };
        self.delete_in(info, namespace, name, propagation);
        self.state.get(kind, namespace, name).map(|s| &s.doc) != Some(&before)
    }

    fn apply_in(&mut self, info: &'static KindInfo, object: &Value) -> Result<store::Key, Error> {
        self.update_in(info, object, Finalizers::Kept)
    }

    /// [`Engine::apply_in`]; a new object sent owned is stored as it is, not copied.
    fn apply_in_owned(
        &mut self,
        info: &'static KindInfo,
        object: std::borrow::Cow<'_, Value>,
    ) -> Result<store::Key, Error> {
        let (ns, name) = stored_name(info, &object);
        if self.state.get(info.key, ns, name).is_none() {
            return self.admit_create(info, object.into_owned(), None);
        }
        self.apply_in(info, &object)
    }

    /// Creates or updates an object; `finalizers` says whose `metadata.finalizers` win.
    fn update_in(
        &mut self,
        info: &'static KindInfo,
        object: &Value,
        finalizers: Finalizers,
    ) -> Result<store::Key, Error> {
        let (ns, name) = stored_name(info, object);
        let name = name.to_string();
        let Some(current) = self.state.get(info.key, ns, &name).map(|s| s.doc.clone()) else {
            return self.admit_create(info, object.clone(), None);
        };
        let id = id_of(info, ns, &name);
        if let Some(rv) = doc::at(object, &["metadata", "resourceVersion"]).and_then(Value::as_str)
        {
            let found = doc::str_at(&current, &["metadata", "resourceVersion"]);
            if rv != found {
                return Err(Error::Conflict {
                    id: Box::new(id),
                    resource: resource_word(info),
                    name,
                    expected: rv.into(),
                    found: found.into(),
                });
            }
        }
        let mut merged = merge_desired(&current, object);
        if finalizers == Finalizers::FromWriter {
            writers_finalizers(&current, object, &mut merged).map_err(|cause| Error::Invalid {
                id: Box::new(id.clone()),
                message: format!("{} \"{name}\" is invalid: {cause}", info.qualified()),
            })?;
        }
        // A custom resource's status is an ordinary field unless its CRD has the status
        // subresource (admission then keeps the stored one): a declared status is written,
        // `status: null` removes it (as in a merge patch), one left out stays as its writer
        // left it.
        if !kinds::is_builtin(info) {
            match object.get("status") {
                Some(Value::Null) => {
                    if let Some(fields) = merged.as_object_mut() {
                        fields.remove("status");
                    }
                }
                Some(status) => merged["status"] = status.clone(),
                None => {}
            }
        }
        let mut rng = self.state.rng;
        let mut warnings = Vec::new();
        let result = admission::admit(
            &self.state,
            &mut rng,
            info,
            Some(&current),
            &mut merged,
            &mut warnings,
        );
        self.state.rng = rng;
        self.keep_warnings(warnings);
        result.map_err(|message| Error::Invalid {
            id: Box::new(id),
            message,
        })?;
        self.state.update(info.key, merged);
        Ok((info.key, ns.to_string(), name))
    }

    /// Deletes an object. `Ok(false)` when it did not exist.
    pub fn delete(
        &mut self,
        kind: &str,
        namespace: &str,
        name: &str,
        propagation: Propagation,
    ) -> Result<bool, Error> {
        let info = kinds::lookup(kind).ok_or_else(|| Error::UnknownKind(kind.into()))?;
        let ns = if info.namespaced { namespace } else { "" };
        self.transact(|e| {
            let found = e.delete_in(info, ns, name, propagation);
            e.settle();
            Ok(found)
        })
    }

    fn delete_in(
        &mut self,
        info: &'static KindInfo,
        ns: &str,
        name: &str,
        propagation: Propagation,
    ) -> bool {
        let Some(current) = self.state.get(info.key, ns, name).map(|s| s.doc.clone()) else {
            return false;
        };
        if doc::is_deleting(&current) && info.kind != "Pod" {
            return true;
        }
        let now = rfc3339(self.state.now);
        if info.kind == crd::KIND {
            // Deleting a CRD deletes every object of the kind it defines.
            if let Some(defined) = crd::info_of(&current).map(kinds::register) {
                for (ns, name) in crd::instances(&self.state, &current) {
                    self.state.remove(defined.key, &ns, &name);
                }
            }
        }
        match info.kind {
            "Pod" => {
                let grace =
                    doc::i64_at(&current, &["spec", "terminationGracePeriodSeconds"]).unwrap_or(30);
                let bound = !doc::str_at(&current, &["spec", "nodeName"]).is_empty();
                if !bound || grace == 0 {
                    self.state.remove("Pod", ns, name);
                } else if !doc::is_deleting(&current) {
                    let mut updated = current;
                    let meta = doc::map_mut(&mut updated, &["metadata"]);
                    meta.insert(
                        "deletionTimestamp".into(),
                        json!(rfc3339(self.state.now + grace * SECOND)),
                    );
                    meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
                    self.state.update("Pod", updated);
                }
            }
            "Namespace" => {
                let mut updated = current;
                doc::map_mut(&mut updated, &["metadata"])
                    .insert("deletionTimestamp".into(), json!(now));
                doc::set(&mut updated, &["status", "phase"], json!("Terminating"));
                self.state.update("Namespace", updated);
                self.state.note_deletion();
            }
            _ => {
                if propagation == Propagation::Orphan {
                    self.orphan_dependents(doc::uid(&current));
                }
                let mut finalizers: Vec<Value> = controllers::gc::finalizers(&current)
                    .into_iter()
                    .map(Value::from)
                    .collect();
                if propagation == Propagation::Foreground
                    && !controllers::gc::has_finalizer(&current, controllers::gc::FOREGROUND)
                {
                    finalizers.push(Value::from(controllers::gc::FOREGROUND));
                }
                if finalizers.is_empty() {
                    self.state.remove(info.key, ns, name);
                } else {
                    // Finalizers hold the object, marked for deletion, until their
                    // controllers let go of it.
                    let mut updated = current;
                    let meta = doc::map_mut(&mut updated, &["metadata"]);
                    meta.insert("deletionTimestamp".into(), json!(now));
                    meta.insert("finalizers".into(), Value::Array(finalizers));
                    self.state.update(info.key, updated);
                    self.state.note_deletion();
                }
            }
        }
        true
    }

    /// Drops the owner reference to `uid` from every object that has one.
    fn orphan_dependents(&mut self, uid: &str) {
        let mut orphans = Vec::new();
        for (kind, map) in &self.state.objects {
            for s in map.values() {
                let refs =
                    doc::at(&s.doc, &["metadata", "ownerReferences"]).and_then(Value::as_array);
                if refs.is_some_and(|r| r.iter().any(|o| doc::str_at(o, &["uid"]) == uid)) {
                    let mut d = s.doc.clone();
                    if let Some(r) = d
                        .pointer_mut("/metadata/ownerReferences")
                        .and_then(Value::as_array_mut)
                    {
                        r.retain(|o| doc::str_at(o, &["uid"]) != uid);
                    }
                    orphans.push((*kind, d));
                }
            }
        }
        for (kind, d) in orphans {
            self.state.update(kind, d);
        }
    }

    /// One object.
    pub fn get(&mut self, kind: &str, namespace: &str, name: &str) -> Result<Option<Value>, Error> {
        let info = kinds::lookup(kind).ok_or_else(|| Error::UnknownKind(kind.into()))?;
        let ns = if info.namespaced { namespace } else { "" };
        self.read(|s| s.get(info.key, ns, name).map(|o| o.doc.clone()))
    }

    /// Sets an object's desired replicas through its `scale` subresource, as `kubectl scale`
    /// does, and answers its `autoscaling/v1` `Scale` (None: no such object).
    pub fn scale(
        &mut self,
        info: &'static KindInfo,
        namespace: &str,
        name: &str,
        replicas: i64,
    ) -> Result<Option<Value>, Error> {
        let ns = if info.namespaced { namespace } else { "" };
        self.transact(|e| {
            let paths = scale::paths(&e.state, info).ok_or_else(|| {
                Error::Usage(format!(
                    "{} \"{name}\" cannot be scaled: the {} kind has no scale subresource",
                    resource_word(info),
                    info.qualified()
                ))
            })?;
            let Some(current) = e.state.get(info.key, ns, name).map(|s| s.doc.clone()) else {
                return Ok(None);
            };
            scale::validate_replicas(name, replicas).map_err(|message| Error::Invalid {
                id: Box::new(id_of(info, ns, name)),
                message,
            })?;
            let key = e.apply_in(info, &paths.with_replicas(&current, replicas))?;
            e.settle();
            Ok(e.state
                .get(key.0, &key.1, &key.2)
                .map(|s| scale::scale_object(&paths, &s.doc)))
        })
    }

    /// Where `info`'s objects keep their scale (None: the kind has no scale subresource).
    pub fn scale_paths(&mut self, info: &KindInfo) -> Result<Option<scale::Paths>, Error> {
        self.read(|s| scale::paths(s, info))
    }

    /// Objects of a kind in a namespace (`None`: all namespaces) matching a selector.
    pub fn list(
        &mut self,
        kind: &str,
        namespace: Option<&str>,
        selector: Option<&str>,
    ) -> Result<Vec<Value>, Error> {
        let info = kinds::lookup(kind).ok_or_else(|| Error::UnknownKind(kind.into()))?;
        let sel = Selector::parse(selector.unwrap_or_default()).map_err(Error::Usage)?;
        self.read(|s| {
            let all: Box<dyn Iterator<Item = &store::Stored>> = match namespace {
                Some(ns) if info.namespaced => Box::new(s.in_namespace(info.key, ns)),
                _ => Box::new(s.kind(info.key).values()),
            };
            all.filter(|o| sel.matches(doc::labels(&o.doc)))
                .map(|o| o.doc.clone())
                .collect()
        })
    }

    /// The state as stored now: reloaded first when another process wrote meanwhile.
    pub fn fresh_state(&mut self) -> Result<&State, Error> {
        self.read(|_| ())?;
        Ok(&self.state)
    }

    /// [`Engine::fresh_state`] and the objects written or removed since the last call
    /// (`None`: everything may have changed, e.g. after a reload).
    pub fn fresh_changes(&mut self) -> Result<(&State, Option<store::Changed>), Error> {
        self.read(|_| ())?;
        let changed = self.state.take_changed();
        Ok((&self.state, changed))
    }

    /// A write through the `status` subresource: `written`'s `status` and
    /// `metadata.managedFields` replace the stored object's, nothing else does. `Ok(None)`
    /// when the object does not exist.
    pub fn replace_status(
        &mut self,
        kind: &str,
        namespace: &str,
        name: &str,
        written: &Value,
    ) -> Result<Option<Value>, Error> {
        let info = kinds::lookup(kind).ok_or_else(|| Error::UnknownKind(kind.into()))?;
        let ns = if info.namespaced { namespace } else { "" };
        self.transact(|e| {
            let Some(mut next) = e.state.get(info.key, ns, name).map(|s| s.doc.clone()) else {
                return Ok(None);
            };
            doc::set(
                &mut next,
                &["status"],
                written.get("status").cloned().unwrap_or_else(|| json!({})),
            );
            let meta = doc::map_mut(&mut next, &["metadata"]);
            match written.pointer("/metadata/managedFields") {
                Some(entries) => meta.insert("managedFields".into(), entries.clone()),
                None => meta.remove("managedFields"),
            };
            e.state.update(info.key, next);
            e.settle();
            Ok(e.state.get(info.key, ns, name).map(|s| s.doc.clone()))
        })
    }

    /// What [`Engine::apply`] would store (admission, defaults, names), without storing it
    /// or running controllers: the API server's `dryRun=All`.
    pub fn dry_run_apply(&mut self, object: &Value) -> Result<Value, Error> {
        let info = Engine::kind_of(object)?;
        self.read(|_| ())?;
        let saved = self.state.clone();
        let result = self.apply_in(info, object).map(|key| {
            let version = convert::version_of(doc::str_at(object, &["apiVersion"]));
            convert::to_version(info, &e_doc(&self.state, &key), version)
        });
        self.state = saved;
        result
    }

    /// What [`Engine::create`] would store, without storing it (`dryRun=All`).
    pub fn dry_run_create(&mut self, object: &Value) -> Result<Value, Error> {
        let info = Engine::kind_of(object)?;
        self.read(|_| ())?;
        let saved = self.state.clone();
        let result = self.admit_create(info, object.clone(), None).map(|key| {
            let version = convert::version_of(doc::str_at(object, &["apiVersion"]));
            convert::to_version(info, &e_doc(&self.state, &key), version)
        });
        self.state = saved;
        result
    }

    // ---- time ----

    /// Lets `duration` of virtual time pass, running controllers at every instant one of
    /// them asked for.
    pub fn advance(&mut self, duration: Millis) -> Result<Advanced, Error> {
        if duration < 0 {
            return Err(Error::Usage("cannot move time backwards".into()));
        }
        self.transact(|e| Ok(e.run_for(duration)))
    }

    fn run_for(&mut self, duration: Millis) -> Advanced {
        let from = self.state.now;
        let target = from + duration;
        let mut steps = 0;
        self.settle();
        steps += 1;
        while let Some(t) = self
            .next_wake
            .filter(|t| *t > self.state.now && *t <= target)
        {
            self.state.now = t;
            self.settle();
            steps += 1;
        }
        if self.state.now < target {
            self.state.now = target;
            self.settle();
            steps += 1;
        }
        Advanced {
            from,
            to: self.state.now,
            steps,
        }
    }

    /// From now until [`Engine::settle_deferred`], writes do not run the controllers: many
    /// applications applied in one pass are settled together, once, as if applied at the
    /// same instant (which they are: virtual time does not move in between).
    pub fn defer_settling(&mut self) {
        self.deferring = true;
    }

    /// Ends [`Engine::defer_settling`]: runs the controllers once if anything was written.
    pub fn settle_deferred(&mut self) -> Result<(), Error> {
        self.deferring = false;
        if !std::mem::take(&mut self.unsettled) {
            return Ok(());
        }
        self.transact(|e| {
            e.settle();
            Ok(())
        })
    }

    /// Runs the controllers at the current instant until nothing changes.
    fn settle(&mut self) {
        if self.deferring {
            self.unsettled = true;
            return;
        }
        let now = self.state.now;
        // Controllers are pure functions of the state: one whose inputs did not change since
        // it last ran at this instant would compute the same (already applied) result. The
        // memo outlives one settle (it lives in the state, until time moves or the state is
        // reloaded): a multi-app apply settles after every application's inventory write
        // too, and each of those re-ran the Deployment controller over the whole cluster.
        let inputs_of = |name: &str| -> &'static [&'static str] {
            const ADMISSION: [&str; 6] = [
                "Namespace",
                "ResourceQuota",
                "LimitRange",
                "PriorityClass",
                "RuntimeClass",
                "ServiceAccount",
            ];
            match name {
                "deployment" => &[
                    "Deployment",
                    "ReplicaSet",
                    "Pod",
                    ADMISSION[0],
                    ADMISSION[1],
                    ADMISSION[2],
                    ADMISSION[3],
                    ADMISSION[4],
                    ADMISSION[5],
                ],
                "replicaset" => &[
                    "ReplicaSet",
                    "Pod",
                    ADMISSION[0],
                    ADMISSION[1],
                    ADMISSION[2],
                    ADMISSION[3],
                    ADMISSION[4],
                    ADMISSION[5],
                ],
                "endpoints" => &["Service", "Pod", "Endpoints", "EndpointSlice"],
                "clusterrole" => &["ClusterRole"],
                _ => &[],
            }
        };
        for _ in 0..MAX_ROUNDS {
            let mut progressed = false;
            let mut wake: Option<Millis> = None;
            type Ctl = fn(&State, Millis, &mut Changes);
            let run: [(&'static str, Option<Ctl>); 11] = [
                ("namespace", Some(controllers::namespace::sync)),
                ("gc", Some(controllers::gc::sync)),
                ("rollout", Some(controllers::rollout::sync)),
                ("deployment", Some(controllers::deployment::sync)),
                ("replicaset", Some(controllers::replicaset::sync)),
                ("workloads", Some(controllers::workloads::sync)),
                ("scheduler", None),
                ("kubelet", Some(controllers::pod::sync)),
                ("node", Some(controllers::node::sync)),
                ("endpoints", Some(controllers::endpoints::sync)),
                ("clusterrole", Some(controllers::clusterrole::sync)),
            ];
            for (name, ctl) in run {
                let mut out = Changes::default();
                if name == "gc" {
                    // Dependents are orphaned, and foreground deletions progress, only when
                    // something was deleted: otherwise collecting would find nothing.
                    let epoch = self.state.deletion_epoch();
                    if self.gc_epoch == Some(epoch) {
                        continue;
                    }
                    self.gc_epoch = Some(epoch);
                }
                let inputs = inputs_of(name);
                let seen: Vec<u64> = inputs.iter().map(|k| self.state.writes(k)).collect();
                if !inputs.is_empty()
                    && let Some(last) = self.state.settle_memo.get(name)
                    && last.at == now
                    && last.inputs == seen
                {
                    if let Some(w) = last.wake.filter(|w| *w > now) {
                        wake = Some(wake.map_or(w, |x: Millis| x.min(w)));
                    }
                    continue;
                }
                match ctl {
                    Some(f) => f(&self.state, now, &mut out),
                    None => {
                        let mut rng = self.state.rng;
                        scheduler::sync(&self.state, now, &mut rng, &mut out);
                        self.state.rng = rng;
                    }
                }
                if let Some(w) = out.wake.filter(|w| *w > now) {
                    wake = Some(wake.map_or(w, |x: Millis| x.min(w)));
                }
                let ctl_wake = out.wake;
                progressed |= self.apply_changes(out.list);
                if !inputs.is_empty() {
                    let after: Vec<u64> = inputs.iter().map(|k| self.state.writes(k)).collect();
                    let run = store::ControllerRun {
                        at: now,
                        inputs: after,
                        wake: ctl_wake,
                    };
                    self.state.settle_memo.insert(name, run);
                }
            }
            if !progressed {
                self.next_wake = wake;
                return;
            }
        }
        self.next_wake = None;
    }

    fn apply_changes(&mut self, list: Vec<Change>) -> bool {
        let mut progressed = false;
        for change in list {
            match change {
                Change::Create {
                    kind,
                    doc: obj,
                    sim,
                    owner,
                } => {
                    let Some(info) = kinds::by_key(kind) else {
                        continue;
                    };
                    match self.admit_create(info, obj, sim) {
                        Ok(key) => {
                            progressed = true;
                            if let (Some((okind, ons, oname)), "Pod") = (&owner, kind) {
                                let source = controller_source(okind);
                                self.state.event(NewEvent::normal(
                                    source,
                                    okind,
                                    ons,
                                    oname,
                                    "SuccessfulCreate",
                                    format!("Created pod: {}", key.2),
                                ));
                            }
                        }
                        Err(err) => {
                            if let Some((okind, ons, oname)) = owner {
                                let source = controller_source(okind);
                                self.state.event(NewEvent::warning(
                                    source,
                                    okind,
                                    &ons,
                                    &oname,
                                    "FailedCreate",
                                    format!("Error creating: {err}"),
                                ));
                            }
                        }
                    }
                }
                Change::Apply { kind, doc: obj } => {
                    let Some(info) = kinds::by_key(kind) else {
                        continue;
                    };
                    let (ns, name) = (
                        doc::namespace(&obj).to_string(),
                        doc::name(&obj).to_string(),
                    );
                    let ns = if info.namespaced && ns.is_empty() {
                        "default".to_string()
                    } else {
                        ns
                    };
                    let before = self.state.get(kind, &ns, &name).map(|s| s.doc.clone());
                    match self.apply_in(info, &obj) {
                        Ok(_) => {
                            progressed |=
                                self.state.get(kind, &ns, &name).map(|s| &s.doc) != before.as_ref();
                        }
                        Err(err) => self.state.event(NewEvent::warning(
                            "rollout-controller",
                            info.kind,
                            &ns,
                            &name,
                            "FailedApply",
                            format!("Error applying: {err}"),
                        )),
                    }
                }
                Change::Update { kind, doc: obj } => {
                    if self.state.update(kind, obj) {
                        progressed = true;
                    }
                }
                Change::Status {
                    kind,
                    namespace,
                    name,
                    status,
                } => {
                    if self.state.set_status(kind, &namespace, &name, status, None) {
                        progressed = true;
                    }
                }
                Change::Bind {
                    namespace,
                    name,
                    node,
                    status,
                } => {
                    if self.state.set_status(
                        "Pod",
                        &namespace,
                        &name,
                        status,
                        Some(("nodeName", Value::String(node))),
                    ) {
                        progressed = true;
                    }
                }
                Change::Sim {
                    namespace,
                    name,
                    sim,
                } => {
                    if self.state.set_sim("Pod", &namespace, &name, sim) {
                        progressed = true;
                    }
                }
                Change::Delete {
                    kind,
                    namespace,
                    name,
                } => {
                    progressed |=
                        self.apply_delete(kind, &namespace, &name, Propagation::Background);
                }
                Change::DeleteForeground {
                    kind,
                    namespace,
                    name,
                } => {
                    progressed |=
                        self.apply_delete(kind, &namespace, &name, Propagation::Foreground);
                }
                Change::Remove {
                    kind,
                    namespace,
                    name,
                } => {
                    if self.state.remove(kind, &namespace, &name).is_some() {
                        progressed = true;
                    }
                }
                Change::Event(e) => self.state.event(e),
            }
        }
        progressed
    }

    // ---- nodes ----

    /// Adds a worker node.
    pub fn add_node(&mut self, name: &str, spec: &NodeSpec) -> Result<Value, Error> {
        let name = name.to_string();
        let spec = spec.clone();
        self.transact(move |e| {
            if e.state.get("Node", "", &name).is_some() {
                return Err(Error::AlreadyExists {
                    resource: "nodes".into(),
                    name,
                });
            }
            let node = node_doc(&e.state, &name, &spec);
            let info = kinds::by_kind("Node").ok_or_else(|| Error::UnknownKind("Node".into()))?;
            let key = e.admit_create(info, node, None)?;
            e.state.event(NewEvent::normal(
                "kubelet",
                "Node",
                "",
                &name,
                "Starting",
                "Starting kubelet.".into(),
            ));
            e.state.event(NewEvent::normal(
                "node-controller",
                "Node",
                "",
                &name,
                "RegisteredNode",
                format!("Node {name} event: Registered Node {name} in Controller"),
            ));
            e.settle();
            Ok(e.state
                .get(key.0, &key.1, &key.2)
                .map(|s| s.doc.clone())
                .unwrap_or(Value::Null))
        })
    }

    fn require_node(&self, name: &str) -> Result<(), Error> {
        if self.state.get("Node", "", name).is_none() {
            return Err(Error::NotFound {
                resource: "nodes".into(),
                name: name.into(),
            });
        }
        Ok(())
    }

    /// Removes a node; its pods are collected and replaced by their controllers.
    pub fn remove_node(&mut self, name: &str) -> Result<(), Error> {
        self.transact(|e| {
            e.require_node(name)?;
            e.state.remove("Node", "", name);
            e.state.down_nodes.remove(name);
            // Pod garbage collection: pods bound to a node that is gone are removed.
            let orphans: Vec<(String, String)> = e
                .state
                .kind("Pod")
                .values()
                .filter(|s| doc::str_at(&s.doc, &["spec", "nodeName"]) == name)
                .map(|s| {
                    (
                        doc::namespace(&s.doc).to_string(),
                        doc::name(&s.doc).to_string(),
                    )
                })
                .collect();
            for (ns, pod) in orphans {
                e.state.remove("Pod", &ns, &pod);
            }
            e.settle();
            Ok(())
        })
    }

    /// Marks a node unschedulable (or schedulable again).
    pub fn cordon(&mut self, name: &str, unschedulable: bool) -> Result<(), Error> {
        self.transact(|e| {
            e.require_node(name)?;
            e.set_unschedulable(name, unschedulable);
            e.settle();
            Ok(())
        })
    }

    fn set_unschedulable(&mut self, name: &str, unschedulable: bool) {
        let Some(mut node) = self.state.get("Node", "", name).map(|s| s.doc.clone()) else {
            return;
        };
        if unschedulable {
            doc::set(&mut node, &["spec", "unschedulable"], json!(true));
        } else if let Some(spec) = node.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("unschedulable");
        }
        let reason = if unschedulable {
            "NodeNotSchedulable"
        } else {
            "NodeSchedulable"
        };
        self.state.event(NewEvent::normal(
            "kubelet",
            "Node",
            "",
            name,
            reason,
            format!("Node {name} status is now: {reason}"),
        ));
        self.state.update("Node", node);
    }

    /// Cordons a node and evicts its pods as `kubectl drain --ignore-daemonsets` does:
    /// DaemonSet pods stay; pods without a controller are refused unless `force`; an
    /// eviction a PodDisruptionBudget forbids is retried every [`DRAIN_RETRY`] of virtual
    /// time (the controllers run meanwhile, so replacements elsewhere become ready) until
    /// `timeout` has passed. The cordon and the evictions made stay when it times out.
    pub fn drain(&mut self, name: &str, force: bool, timeout: Millis) -> Result<Drained, Error> {
        self.transact(|e| {
            e.require_node(name)?;
            let pods: Vec<Value> = e
                .state
                .kind("Pod")
                .values()
                .map(|s| s.doc.clone())
                .filter(|p| doc::str_at(p, &["spec", "nodeName"]) == name && !doc::is_deleting(p))
                .collect();
            let unmanaged: Vec<String> = pods
                .iter()
                .filter(|p| doc::controller_uid(p).is_none())
                .map(|p| format!("{}/{}", doc::namespace(p), doc::name(p)))
                .collect();
            if !unmanaged.is_empty() && !force {
                return Err(Error::Usage(format!(
                    "cannot delete Pods that declare no controller (use --force to override): {}",
                    unmanaged.join(", ")
                )));
            }
            e.set_unschedulable(name, true);
            e.settle();
            let start = e.state.now;
            let mut steps = Vec::new();
            let mut pending: Vec<(String, String)> = Vec::new();
            for p in &pods {
                let owner_kind = doc::at(p, &["metadata", "ownerReferences"])
                    .and_then(Value::as_array)
                    .and_then(|r| r.iter().find(|o| o.get("controller") == Some(&json!(true))))
                    .map(|o| doc::str_at(o, &["kind"]).to_string());
                if owner_kind.as_deref() == Some("DaemonSet") {
                    continue;
                }
                let pod = (doc::namespace(p).to_string(), doc::name(p).to_string());
                steps.push(DrainStep::Evicting(format!("{}/{}", pod.0, pod.1)));
                pending.push(pod);
            }
            loop {
                let mut blocked = Vec::new();
                for (ns, pn) in pending {
                    let Some(pod) = e.state.get("Pod", &ns, &pn).map(|s| s.doc.clone()) else {
                        continue;
                    };
                    if doc::is_deleting(&pod) {
                        continue;
                    }
                    if let Some(budget) =
                        controllers::disruption::eviction_blocked_by(&e.state, &pod)
                    {
                        steps.push(DrainStep::Blocked {
                            pod: format!("{ns}/{pn}"),
                            budget,
                        });
                        blocked.push((ns, pn));
                        continue;
                    }
                    e.state.event(NewEvent::normal(
                        "kubectl",
                        "Pod",
                        &ns,
                        &pn,
                        "Evicted",
                        format!("Evicted pod {ns}/{pn} for draining node {name}"),
                    ));
                    if let Some(info) = kinds::by_kind("Pod") {
                        e.delete_in(info, &ns, &pn, Propagation::Background);
                    }
                    e.settle();
                    steps.push(DrainStep::Evicted(format!("{ns}/{pn}")));
                }
                pending = blocked;
                if pending.is_empty() || e.state.now - start >= timeout {
                    break;
                }
                e.run_for(DRAIN_RETRY);
            }
            Ok(Drained {
                steps,
                remaining: pending
                    .into_iter()
                    .map(|(ns, pn)| format!("{ns}/{pn}"))
                    .collect(),
                waited: e.state.now - start,
            })
        })
    }

    /// Stops a node's kubelet (power failure): after the grace period the node is NotReady
    /// and its pods are evicted once their tolerations run out.
    pub fn fail_node(&mut self, name: &str) -> Result<(), Error> {
        self.transact(|e| {
            e.require_node(name)?;
            let now = e.state.now;
            e.state.down_nodes.entry(name.to_string()).or_insert(now);
            e.settle();
            Ok(())
        })
    }

    /// Restarts a failed node's kubelet.
    pub fn recover_node(&mut self, name: &str) -> Result<(), Error> {
        self.transact(|e| {
            e.require_node(name)?;
            if e.state.down_nodes.remove(name).is_some() {
                e.state.event(NewEvent::normal(
                    "kubelet",
                    "Node",
                    "",
                    name,
                    "Starting",
                    "Starting kubelet.".into(),
                ));
            }
            e.settle();
            Ok(())
        })
    }

    // ---- images ----

    /// Sets how containers of `image` behave (an image without a tag covers all its tags).
    pub fn set_image(&mut self, image: &str, behavior: ImageBehavior) -> Result<(), Error> {
        if image.trim().is_empty() {
            return Err(Error::Usage("image name is empty".into()));
        }
        self.transact(|e| {
            e.state.images.insert(image.to_string(), behavior);
            e.unsettle_pods();
            e.settle();
            Ok(())
        })
    }

    /// Forgets an image's configuration.
    pub fn unset_image(&mut self, image: &str) -> Result<bool, Error> {
        self.transact(|e| {
            let found = e.state.images.remove(image).is_some();
            e.unsettle_pods();
            e.settle();
            Ok(found)
        })
    }

    /// Makes the kubelet look at every pod again (their images may behave differently now).
    fn unsettle_pods(&mut self) {
        let pods: Vec<(String, String, controllers::pod::PodSim)> = self
            .state
            .kind("Pod")
            .values()
            .filter_map(|s| {
                s.sim.as_ref().filter(|x| x.settled).map(|x| {
                    (
                        doc::namespace(&s.doc).to_string(),
                        doc::name(&s.doc).to_string(),
                        x.clone(),
                    )
                })
            })
            .collect();
        for (ns, name, mut sim) in pods {
            sim.settled = false;
            self.state.set_sim("Pod", &ns, &name, sim);
        }
    }

    // ---- rollouts ----

    /// Rolls a Deployment back to a revision (default: the previous one) the way
    /// `kubectl rollout undo` does: the revision's pod template becomes the Deployment's,
    /// and the controller gives it a new revision number.
    pub fn rollout_undo(
        &mut self,
        namespace: &str,
        name: &str,
        to_revision: Option<i64>,
    ) -> Result<i64, Error> {
        self.transact(|e| {
            let d = e
                .state
                .get("Deployment", namespace, name)
                .map(|s| s.doc.clone())
                .ok_or_else(|| Error::NotFound {
                    resource: "deployments.apps".into(),
                    name: name.into(),
                })?;
            let uid = doc::uid(&d).to_string();
            let current: i64 = doc::annotation(&d, controllers::deployment::REVISION)
                .and_then(|r| r.parse().ok())
                .unwrap_or(0);
            let mut history: Vec<(i64, Value)> = e
                .state
                .in_namespace("ReplicaSet", namespace)
                .filter(|s| doc::controller_uid(&s.doc) == Some(uid.as_str()))
                .filter_map(|s| {
                    let rev = doc::annotation(&s.doc, controllers::deployment::REVISION)?
                        .parse()
                        .ok()?;
                    Some((rev, doc::at(&s.doc, &["spec", "template"])?.clone()))
                })
                .collect();
            history.sort_by_key(|(r, _)| *r);
            let target = match to_revision {
                Some(r) => history.iter().find(|(rev, _)| *rev == r).ok_or_else(|| {
                    Error::Usage(format!("unable to find specified revision {r} in history"))
                })?,
                None => history
                    .iter()
                    .rev()
                    .find(|(rev, _)| *rev < current)
                    .ok_or_else(|| {
                        Error::Usage(
                            "no rollout history found for deployment \"".to_string() + name + "\"",
                        )
                    })?,
            };
            let mut template = target.1.clone();
            if let Some(labels) = template
                .pointer_mut("/metadata/labels")
                .and_then(Value::as_object_mut)
            {
                labels.remove(controllers::deployment::POD_TEMPLATE_HASH);
            }
            let revision = target.0;
            let mut updated = d.clone();
            doc::set(&mut updated, &["spec", "template"], template);
            let info = kinds::by_kind("Deployment")
                .ok_or_else(|| Error::UnknownKind("Deployment".into()))?;
            e.apply_in(info, &updated)?;
            e.settle();
            Ok(revision)
        })
    }

    // ---- whole cluster ----

    /// Deletes everything and starts a fresh cluster with `nodes` workers.
    pub fn reset(&mut self, nodes: usize) -> Result<(), Error> {
        self.transact(|e| {
            e.db.wipe()?;
            let mut state = State::empty(DEFAULT_SEED);
            bootstrap(&mut state, nodes);
            state.commit_seq = e.state.commit_seq;
            e.state = state;
            e.served.clear();
            e.next_wake = None;
            Ok(())
        })
    }

    /// Removes the plan/apply lock whatever holds it (`reconcile unlock LOCK_ID`, for a lock
    /// left by a process whose pid was reused); `lock_id` must be the holder's pid, as the
    /// lock message shows it, so a lock taken since is never removed by mistake.
    pub fn force_unlock(&mut self, lock_id: &str) -> Result<(), Error> {
        let current = self.read(|s| s.lock.clone())?;
        let Some(lock) = current else {
            return Err(Error::Usage("the engine state is not locked".into()));
        };
        if lock.pid.to_string() != lock_id {
            return Err(Error::Usage(format!(
                "lock id {lock_id} does not match the lock held (lock id {}: {} since {})",
                lock.pid, lock.holder, lock.since
            )));
        }
        // Taken over only to be released.
        self.holds_lock = true;
        let result = self.transact(|e| {
            e.state.lock = None;
            Ok(())
        });
        self.holds_lock = false;
        result
    }

    /// Events, oldest first (all namespaces when `namespace` is `None`).
    pub fn events(&mut self, namespace: Option<&str>) -> Result<Vec<events::Event>, Error> {
        self.read(|s| {
            s.events
                .sorted()
                .into_iter()
                .filter(|e| namespace.is_none_or(|n| e.namespace == n))
                .cloned()
                .collect()
        })
    }

    /// Answers a metric query against the simulated traffic.
    pub fn metric_value(&mut self, query: &MetricQuery) -> Result<Option<f64>, Error> {
        let answer = self.read(|s| traffic::metric(s, query))?;
        answer.map_err(Error::Usage)
    }
}

fn controller_source(kind: &str) -> &'static str {
    match kind {
        "ReplicaSet" => "replicaset-controller",
        "Deployment" => "deployment-controller",
        "DaemonSet" => "daemonset-controller",
        "StatefulSet" => "statefulset-controller",
        "Job" => "job-controller",
        "CronJob" => "cronjob-controller",
        _ => "controller-manager",
    }
}

/// The new document for an update: the desired object with what the cluster owns kept.
fn e_doc(state: &State, key: &store::Key) -> Value {
    state
        .get(key.0, &key.1, &key.2)
        .map(|s| s.doc.clone())
        .unwrap_or(Value::Null)
}

/// Whose `metadata.finalizers` an update keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finalizers {
    /// The stored ones: the reconciler's applies leave finalizers to controllers.
    Kept,
    /// The writer's, as the API server takes them on an update.
    FromWriter,
}

/// Puts the writer's `metadata.finalizers` in `merged`; an object being deleted may lose
/// finalizers but gain none (the API server's `ValidateObjectMetaUpdate`).
fn writers_finalizers(current: &Value, desired: &Value, merged: &mut Value) -> Result<(), String> {
    let wanted = controllers::gc::finalizers(desired);
    if doc::is_deleting(current) {
        let held = controllers::gc::finalizers(current);
        let mut added: Vec<&str> = wanted
            .iter()
            .copied()
            .filter(|f| !held.contains(f))
            .collect();
        added.sort_unstable();
        added.dedup();
        if !added.is_empty() {
            let quoted: Vec<String> = added.iter().map(|f| format!("{f:?}")).collect();
            return Err(format!(
                "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                quoted.join(", ")
            ));
        }
    }
    let meta = doc::map_mut(merged, &["metadata"]);
    if wanted.is_empty() {
        meta.remove("finalizers");
    } else {
        meta.insert("finalizers".into(), json!(wanted));
    }
    Ok(())
}

fn merge_desired(current: &Value, desired: &Value) -> Value {
    let mut merged = desired.clone();
    let cur_meta = current
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let meta = doc::map_mut(&mut merged, &["metadata"]);
    for key in [
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "finalizers",
    ] {
        match cur_meta.get(key) {
            Some(v) => {
                meta.insert(key.into(), v.clone());
            }
            None => {
                meta.remove(key);
            }
        }
    }
    // Field ownership stays unless the writer sends its own (a server-side apply does).
    for key in ["ownerReferences", "managedFields"] {
        if !meta.contains_key(key)
            && let Some(v) = cur_meta.get(key)
        {
            meta.insert(key.into(), v.clone());
        }
    }
    // Controller-written annotations survive an apply that does not mention them: the
    // Deployment controller's, and the records the engine keeps in annotations (a failed
    // update's history, the autoscaler's recommendations).
    if let Some(cur_ann) = cur_meta.get("annotations").and_then(Value::as_object) {
        for (k, v) in cur_ann {
            if k.starts_with("deployment.kubernetes.io/")
                || k == crate::rollout::failure::UPDATE_STATUS_ANNOTATION
                || k == controllers::hpa::HISTORY_ANNOTATION
            {
                let ann = doc::map_mut(&mut merged, &["metadata", "annotations"]);
                ann.entry(k.clone()).or_insert(v.clone());
            }
        }
    }
    match current.get("status") {
        Some(s) => {
            merged["status"] = s.clone();
        }
        None => {
            if let Some(m) = merged.as_object_mut() {
                m.remove("status");
            }
        }
    }
    // Allocated addresses and ports stay unless the desired state names them.
    if current.get("kind").and_then(Value::as_str) == Some("Service") {
        for f in ["clusterIP", "clusterIPs"] {
            if doc::at(&merged, &["spec", f]).is_none()
                && let Some(v) = doc::at(current, &["spec", f])
            {
                doc::set(&mut merged, &["spec", f], v.clone());
            }
        }
    }
    merged
}

fn node_doc(state: &State, name: &str, spec: &NodeSpec) -> Value {
    let used: std::collections::BTreeSet<String> = state
        .kind("Node")
        .values()
        .map(|s| doc::str_at(&s.doc, &["spec", "podCIDR"]).to_string())
        .collect();
    let index = (1..=250)
        .find(|i| !used.contains(&format!("10.244.{i}.0/24")))
        .unwrap_or(251);
    let cidr = format!("10.244.{index}.0/24");
    let mut labels = json!({
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        "node-role.kubernetes.io/worker": "",
    });
    for (k, v) in &spec.labels {
        labels[k] = json!(v);
    }
    let resources = json!({
        "cpu": doc::format_cpu(spec.cpu_millis),
        "memory": doc::format_bytes(spec.memory),
        "pods": spec.pods.to_string(),
        "ephemeral-storage": "100Gi",
    });
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": controllers::node::ready_conditions(state.now),
            "addresses": [{"type": "InternalIP", "address": format!("172.18.0.{}", index + 1)}, {"type": "Hostname", "address": name}],
            "nodeInfo": {
                "architecture": "amd64", "operatingSystem": "linux", "osImage": "reconcile engine",
                "kernelVersion": "6.8.0", "kubeletVersion": "v1.31.0", "kubeProxyVersion": "v1.31.0",
                "containerRuntimeVersion": "containerd://1.7.22",
            },
        },
    })
}

/// Fills a fresh cluster: the system namespaces, `nodes` workers, the `kubernetes` Service.
fn bootstrap(state: &mut State, nodes: usize) {
    let ns_info = kinds::by_kind("Namespace");
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        if let Some(info) = ns_info {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
            state.create(info, obj, None);
        }
    }
    if let Some(info) = kinds::by_kind("Node") {
        for i in 1..=nodes {
            let name = format!("worker-{i}");
            let obj = node_doc(state, &name, &NodeSpec::default());
            state.create(info, obj, None);
        }
    }
    if let Some(info) = kinds::by_kind("Service") {
        let obj = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"], "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
                "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster"},
            "status": {"loadBalancer": {}}});
        state.create(info, obj, None);
    }
}

fn to_cluster_error(err: Error) -> cluster::Error {
    match err {
        Error::Invalid { id, message } => cluster::Error::Invalid { id, message },
        Error::Conflict {
            id,
            expected,
            found,
            ..
        } => cluster::Error::Conflict {
            id,
            expected,
            found,
        },
        Error::Locked { holder, pid, since } => cluster::Error::Locked {
            target: "engine".into(),
            holder: format!(
                "{holder} (lock id {pid}) since {since}; if that process is gone, `reconcile unlock {pid}` removes the lock"
            ),
        },
        other => cluster::Error::Backend(other.to_string()),
    }
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

impl Cluster for Engine {
    fn target_name(&self) -> String {
        format!("engine:{}", self.db.path())
    }

    fn take_warnings(&mut self) -> Vec<String> {
        Engine::take_warnings(self)
    }

    fn defer_settling(&mut self) {
        Engine::defer_settling(self);
    }

    fn settle_deferred(&mut self) -> Result<(), cluster::Error> {
        Engine::settle_deferred(self).map_err(to_cluster_error)
    }

    fn get(&self, id: &ResId) -> Result<Option<Value>, cluster::Error> {
        // A kind nothing serves yet (its CRD comes with it) has no objects.
        let Some(info) = kinds::by_group_kind(&id.gvk.group, &id.gvk.kind) else {
            return Ok(None);
        };
        let ns = if info.namespaced {
            if id.namespace.is_empty() {
                "default"
            } else {
                &id.namespace
            }
        } else {
            ""
        };
        if let Some(failure) = crd::conversion_failure(&self.state, info, &id.gvk.version, false) {
            return Err(cluster::Error::Backend(failure));
        }
        // Read in the version the caller names, as a GET on that version's URL.
        Ok(self
            .state
            .get(info.key, ns, &id.name)
            .map(|s| convert::to_version(info, &s.doc, &id.gvk.version)))
    }

    fn list(
        &self,
        gvk: &Gvk,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>, cluster::Error> {
        let Some(info) = kinds::by_group_kind(&gvk.group, &gvk.kind) else {
            return Ok(Vec::new());
        };
        if let Some(failure) = crd::conversion_failure(&self.state, info, &gvk.version, false) {
            return Err(cluster::Error::Backend(failure));
        }
        let sel =
            Selector::parse(label_selector.unwrap_or_default()).map_err(cluster::Error::Backend)?;
        let all: Box<dyn Iterator<Item = &store::Stored>> = match namespace {
            Some(ns) if info.namespaced => Box::new(self.state.in_namespace(info.key, ns)),
            _ => Box::new(self.state.kind(info.key).values()),
        };
        Ok(all
            .filter(|o| sel.matches(doc::labels(&o.doc)))
            .map(|o| convert::to_version(info, &o.doc, &gvk.version))
            .collect())
    }

    fn apply(&mut self, object: &Value) -> Result<Value, cluster::Error> {
        Engine::apply(self, object).map_err(to_cluster_error)
    }

    fn check_served(&self, objects: &[&Value]) -> Result<(), cluster::Error> {
        for object in objects {
            let api_version = doc::str_at(object, &["apiVersion"]);
            let kind = doc::str_at(object, &["kind"]);
            if let Err(err) = Engine::request_kind(object)
                && (matches!(err, Error::Invalid { .. })
                    || !crd::defined_by(objects.iter().copied(), api_version, kind))
            {
                return Err(match err {
                    Error::Invalid { id, message } => cluster::Error::Invalid { id, message },
                    other => cluster::Error::Invalid {
                        id: Box::new(ResId::of(object)),
                        message: other.to_string(),
                    },
                });
            }
        }
        // Custom resources by their CRD's schema and validation rules (the CRD of the same
        // apply when there is one, else the stored one): a refusal stops the plan before
        // anything is written, as it does for built-in kinds.
        for object in objects {
            if Engine::kind_of(object).is_ok_and(kinds::is_builtin) {
                continue;
            }
            if let Some((crd, old)) = self.crd_and_live(objects, object)
                && let Some(message) = crd::refusal(crd, object, old)
            {
                return Err(cluster::Error::Invalid {
                    id: Box::new(ResId::of(object)),
                    message,
                });
            }
        }
        Ok(())
    }

    /// One transaction and one settle for the whole batch: the controllers run once over the
    /// cluster instead of once per object. On a refusal the objects before it stay applied.
    fn apply_batch(
        &mut self,
        objects: Vec<std::borrow::Cow<'_, Value>>,
    ) -> Result<(), (usize, cluster::Error)> {
        if objects.is_empty() {
            return Ok(());
        }
        // Every object's kind is served, or defined by a CRD of the batch (applied before it).
        // The kinds found here are kept: a kind (and its schema check) is looked up once.
        let mut kinds = Vec::with_capacity(objects.len());
        for (index, object) in objects.iter().enumerate() {
            match Engine::request_kind(object) {
                Ok(info) => kinds.push(Some(info)),
                Err(err) => {
                    let api_version = doc::str_at(object, &["apiVersion"]);
                    let kind = doc::str_at(object, &["kind"]);
                    if !crd::defined_by(objects[..index].iter().map(|o| &**o), api_version, kind) {
                        return Err((index, to_cluster_error(err)));
                    }
                    kinds.push(None);
                }
            }
        }
        let outcome = self.transact(|e| {
            for (index, (object, kind)) in objects.into_iter().zip(&kinds).enumerate() {
                // A kind a CRD of the batch defines is known once that CRD is written.
                let applied = kind
                    .map_or_else(|| Engine::request_kind(&object), Ok)
                    .and_then(|info| e.apply_in_owned(info, object));
                if let Err(err) = applied {
                    e.settle();
                    return Ok(Some((index, err)));
                }
            }
            e.settle();
            Ok(None)
        });
        match outcome {
            Ok(None) => Ok(()),
            Ok(Some((index, err))) => Err((index, to_cluster_error(err))),
            Err(err) => Err((0, to_cluster_error(err))),
        }
    }

    fn delete(&mut self, id: &ResId) -> Result<bool, cluster::Error> {
        let ns = if id.namespace.is_empty() {
            "default"
        } else {
            &id.namespace
        };
        match kinds::by_group_kind(&id.gvk.group, &id.gvk.kind) {
            Some(info) => Engine::delete(self, info.key, ns, &id.name, Propagation::Background)
                .map_err(to_cluster_error),
            None => Ok(false),
        }
    }

    fn now(&self) -> String {
        rfc3339(self.state.now)
    }

    fn wait(&mut self, duration: Duration) -> Result<(), cluster::Error> {
        self.advance(duration.as_millis() as Millis)
            .map(|_| ())
            .map_err(to_cluster_error)
    }

    fn lock(&mut self, holder: &str) -> Result<(), cluster::Error> {
        let holder = holder.to_string();
        let result = self.transact(|e| {
            if let Some(l) = &e.state.lock {
                let ours = e.holds_lock && l.pid == std::process::id();
                if !ours && pid_alive(l.pid) {
                    return Err(Error::Locked {
                        holder: l.holder.clone(),
                        pid: l.pid,
                        since: l.since.clone(),
                    });
                }
            }
            // Wall-clock time: the lock is for people, who do not know the virtual clock.
            let wall = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as Millis)
                .unwrap_or_default();
            e.state.lock = Some(LockHolder {
                holder,
                pid: std::process::id(),
                since: rfc3339(wall),
            });
            e.holds_lock = true;
            Ok(())
        });
        result.map_err(to_cluster_error)
    }

    fn unlock(&mut self) -> Result<(), cluster::Error> {
        let result = self.transact(|e| {
            if e.holds_lock {
                e.state.lock = None;
                e.holds_lock = false;
            }
            Ok(())
        });
        result.map_err(to_cluster_error)
    }

    fn metric(&self, query: &MetricQuery) -> Result<Option<f64>, cluster::Error> {
        traffic::metric(&self.state, query).map_err(cluster::Error::Backend)
    }

    fn drives_rollouts(&self) -> bool {
        true
    }

    fn warnings(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<String>, cluster::Error> {
        Ok(events::warning_messages(
            &self.state.events,
            kind,
            namespace,
            name,
        ))
    }

    /// The state file's canonical path (its folder resolved), so `engine:a/../b.db` and
    /// `engine:b.db` are one target.
    fn identity(&self) -> String {
        let path = Path::new(self.db.path());
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        match (std::fs::canonicalize(parent), path.file_name()) {
            (Ok(dir), Some(name)) => format!("engine:{}", dir.join(name).display()),
            _ => self.target_name(),
        }
    }

    fn refresh(&mut self) -> Result<bool, cluster::Error> {
        Engine::refresh(self).map_err(to_cluster_error)
    }

    fn advance_clock(&mut self, by: Duration) -> Result<bool, cluster::Error> {
        self.advance(by.as_millis() as Millis)
            .map(|advanced| advanced.steps > 0)
            .map_err(to_cluster_error)
    }

    fn change_marker(&mut self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        if let Ok(state) = self.fresh_state() {
            state.rv.hash(&mut hasher);
            state.events.next_id.hash(&mut hasher);
            state.events.list.last().map(|e| e.count).hash(&mut hasher);
        }
        hasher.finish()
    }
}
