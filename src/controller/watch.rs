//! The loop that owns time and IO: each cycle it lets the engine's virtual clock follow the
//! wall clock, notices writes from other processes (drift: the engine's commits, a
//! Kubernetes target's watches of the applications' kinds plus a periodic resync), reads new
//! revisions, renders the applications they touch, asks [`decide`](super::decide::decide)
//! what to do, applies through `crate::plan`, carries rollouts forward (on targets that do not
//! drive their own, every Canary/BlueGreen it sees), and publishes and persists statuses.
//!
//! Invariants: every decision is made by `decide`; this module only observes and executes;
//! targets are reached only through [`Cluster`], whatever backend the command line picked.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::decide::{self, Action, Comparison, Policy, SyncStatus};
use super::http::{Command, Shared};
use super::source::{self, Reads, Recording, Snapshot, Source};
use super::status::{self, AppStatus, Revision, SyncRecord};
use crate::cluster::{Cluster, Observed};
use crate::diff::Change;
use crate::model::{Gvk, ResId};
use crate::plan::config::Application;
use crate::plan::status::StatusRules;
use crate::plan::{self, ApplyOptions, PlanOptions};
use crate::rollout::Phase;
use crate::rollout::driver::{self, DriveOptions, Outcome};
use crate::rollout::health::{self, Status as Health};

/// Errors that stop the watcher (anything about one application goes into its status).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The source cannot be read at all.
    #[error(transparent)]
    Source(#[from] source::Error),
    /// The engine's state file failed.
    #[error("engine: {0}")]
    Engine(#[from] crate::engine::Error),
    /// The watcher lock of the watcher's own target.
    #[error(transparent)]
    Lock(#[from] super::lock::Error),
    /// The target refused a write the loop needs (its lock).
    #[error(transparent)]
    Target(#[from] crate::cluster::Error),
}

/// How the watcher runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// How often the repository's ref is read.
    pub interval: Duration,
    /// Virtual seconds per wall second on the engine.
    pub speed: f64,
    /// Who takes the target's apply lock (`reconcile watch (pid N)`).
    pub holder: String,
    /// Where applications' own `target:` lead.
    pub targets: Targets,
}

/// Opens the targets applications name in their `target:` (the command line picks the
/// backend).
pub trait Connector: Send + Sync {
    /// Opens the target `text` names (`engine:PATH`, relative to where the watcher started;
    /// `kube:CONTEXT`): the cluster, and the engine state file its watcher lock lies beside
    /// (`None`: the target keeps its own, [`Cluster::lock_watcher`]).
    fn open(&self, text: &str) -> Result<(Box<dyn Cluster + Send>, Option<PathBuf>), String>;
}

/// How an application's `target:` in reconcile.yaml is honoured.
#[derive(Clone, Default)]
pub struct Targets {
    /// `--target` (or `RECONCILE_TARGET`) was given: it overrides every application's own.
    pub forced: bool,
    /// Where a relative `engine:PATH` starts (the directory the watcher was started in, as
    /// for `plan` and `apply`).
    pub base_dir: std::path::PathBuf,
    /// Who holds the watcher lock of every target used (a second watcher on any of them is
    /// refused); `None` takes no lock (benchmarks).
    pub holder: Option<super::lock::Holder>,
    /// Opens other targets; `None`: applications naming one are not synced (benchmarks).
    pub connector: Option<Arc<dyn Connector>>,
}

impl std::fmt::Debug for Targets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Targets")
            .field("forced", &self.forced)
            .field("base_dir", &self.base_dir)
            .field("holder", &self.holder)
            .field("connector", &self.connector.is_some())
            .finish()
    }
}

/// How often every application on a target seen through watches is compared again anyway
/// (Argo CD's default reconciliation timeout): a change a watch missed is healed by then.
const RESYNC: Duration = Duration::from_secs(180);

/// How often a rollout this process drives on a real cluster is stepped when nothing
/// about it changed (its pauses and analysis intervals are seconds at least).
const DRIVE_EVERY: Duration = Duration::from_secs(1);

/// One target the watcher writes to.
struct Target {
    cluster: Box<dyn Cluster + Send>,
    /// The target's watcher lock, when this controller took it.
    _lock: Option<super::lock::Held>,
    /// What the watches last saw of the applications' objects (their health is read from it).
    live: HashMap<String, Value>,
    /// A fingerprint of each such object without status and bookkeeping: a change of it is
    /// drift, a change of status only is not.
    fingerprints: HashMap<String, u64>,
    /// Canary/BlueGreen rollouts seen through watches that no application's sync started
    /// (applied by another process), which this process drives; when each was last driven.
    rollouts: BTreeMap<ResId, Option<Instant>>,
    last_resync: Instant,
}

impl Target {
    fn new(cluster: Box<dyn Cluster + Send>, lock: Option<super::lock::Held>) -> Target {
        Target {
            cluster,
            _lock: lock,
            live: HashMap::new(),
            fingerprints: HashMap::new(),
            rollouts: BTreeMap::new(),
            last_resync: Instant::now(),
        }
    }
}

/// The key of an object whatever version it was read in (`apps/Deployment/ns/name`), a
/// namespaced object declared without a namespace being in `default`.
fn object_key(id: &ResId) -> String {
    let namespace = match (
        id.namespace.as_str(),
        crate::engine::kinds::by_group_kind(&id.gvk.group, &id.gvk.kind),
    ) {
        ("", Some(info)) if info.namespaced => "default",
        (ns, _) => ns,
    };
    format!("{}/{}/{namespace}/{}", id.gvk.group, id.gvk.kind, id.name)
}

/// What an object declares, without bookkeeping (reconcile's and the server's) and without
/// status unless `status_is_field` (a CRD without the status subresource).
fn fingerprint(object: &Value, status_is_field: bool) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut declared = object.clone();
    crate::diff::normalize::strip_bookkeeping_as(&mut declared, status_is_field);
    if let Some(annotations) = declared
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(crate::rollout::failure::UPDATE_STATUS_ANNOTATION);
        annotations.remove("deployment.kubernetes.io/revision");
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    declared.to_string().hash(&mut hasher);
    hasher.finish()
}

/// A line of the watcher's log (the command line prints it).
pub type Log = Box<dyn FnMut(&str) + Send>;

struct AppState {
    app: Application,
    policy: Policy,
    /// Which of the controller's targets the application's target is.
    target: usize,
    /// Why the application's `target:` cannot be used (it is then never synced).
    target_error: Option<String>,
    status: AppStatus,
    saved: Option<AppStatus>,
    reads: Option<Reads>,
    desired: Option<Result<Desired, String>>,
    render: bool,
    compare: bool,
    requested: bool,
    attempted: bool,
    check_health: bool,
    ids: Vec<ResId>,
    rollouts: Vec<ResId>,
    /// When its rollouts were last stepped by this process (targets that do not drive their
    /// own are stepped every [`DRIVE_EVERY`] at most).
    last_drive: Option<Instant>,
    /// Whose `status` is declared (CRDs without the status subresource, by its tree's and its
    /// target's CRDs), for drift fingerprints; made again when the tree changes.
    status_rules: Option<StatusRules>,
}

struct Desired {
    objects: Vec<Value>,
    digest: String,
}

/// The controller: a source, a target, the applications and their state.
pub struct Controller {
    source: Source,
    /// The targets written to: the watcher's own first, then those applications name in
    /// their `target:`, each with the watcher lock held on it.
    targets: Vec<Target>,
    /// The targets opened for a `target:` text, by that text.
    opened: HashMap<String, usize>,
    options: Options,
    shared: Arc<Shared>,
    log: Log,
    apps: Vec<AppState>,
    sha: Option<String>,
    last_poll: Option<Instant>,
    last_tick: Instant,
    virtual_debt: f64,
    refresh: bool,
    rediscover: bool,
    stopping: Arc<AtomicBool>,
}

fn wall_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The digest of what a revision renders for an application (the revision of a directory
/// source).
pub(crate) fn digest(objects: &[Value]) -> String {
    let mut hasher = Sha256::new();
    for object in objects {
        hasher.update(object.to_string().as_bytes());
        hasher.update(b"\n");
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// Argo CD's order of badness: the worst health of an application's objects is its health.
fn badness(health: Health) -> u8 {
    match health {
        Health::Healthy => 0,
        Health::Suspended => 1,
        Health::Progressing => 2,
        Health::Missing => 3,
        Health::Degraded => 4,
    }
}

impl Controller {
    /// A controller over `source` and `cluster` (the watcher's own target, whose watcher lock
    /// the caller holds); statuses persisted earlier are picked up.
    pub fn new(
        source: Source,
        cluster: Box<dyn Cluster + Send>,
        options: Options,
        shared: Arc<Shared>,
        log: Log,
        stopping: Arc<AtomicBool>,
    ) -> Result<Controller, Error> {
        let mut controller = Controller {
            source,
            targets: vec![Target::new(cluster, None)],
            opened: HashMap::new(),
            options,
            shared,
            log,
            apps: Vec::new(),
            sha: None,
            last_poll: None,
            last_tick: Instant::now(),
            virtual_debt: 0.0,
            refresh: true,
            rediscover: true,
            stopping,
        };
        controller.poll()?;
        controller.publish();
        Ok(controller)
    }

    /// The statuses of the applications, in order.
    pub fn statuses(&self) -> Vec<AppStatus> {
        self.apps.iter().map(|a| a.status.clone()).collect()
    }

    /// The watcher's own target (benchmarks and tests look at it).
    pub fn cluster(&mut self) -> &mut dyn Cluster {
        &mut *self.targets[0].cluster
    }

    /// The target of an application's `target:`: the watcher's own unless the application
    /// names another (and `--target` does not override it), opened and watch-locked the
    /// first time.
    fn target_for(&mut self, app: &Application) -> Result<usize, String> {
        let targets = &self.options.targets;
        let text = match app.target.as_deref() {
            _ if targets.forced => return Ok(0),
            None | Some("engine") => return Ok(0),
            Some(text) => text.to_string(),
        };
        if let Some(index) = self.opened.get(&text) {
            return Ok(*index);
        }
        let Some(connector) = targets.connector.clone() else {
            return Err(format!("target {text}: cannot be opened by this watcher"));
        };
        let (mut cluster, state) = connector.open(&text)?;
        let identity = cluster.identity();
        if let Some(index) = self
            .targets
            .iter()
            .position(|t| t.cluster.identity() == identity)
        {
            self.opened.insert(text, index);
            return Ok(index);
        }
        let lock = match &targets.holder {
            Some(holder) => Some(
                super::lock::acquire(&mut *cluster, state.as_deref(), holder)
                    .map_err(|e| format!("target {text}: {e}"))?,
            ),
            None => None,
        };
        (self.log)(&format!("{}: on its own target {text}", app.name));
        self.targets.push(Target::new(cluster, lock));
        let index = self.targets.len() - 1;
        self.opened.insert(text, index);
        Ok(index)
    }

    /// Handles a command from the HTTP side.
    pub fn command(&mut self, command: Command) {
        match command {
            Command::Sync(name) => {
                if let Some(app) = self.apps.iter_mut().find(|a| a.app.name == name) {
                    (self.log)(&format!("{name}: sync requested"));
                    app.requested = true;
                }
            }
            Command::Refresh(why) => {
                (self.log)(&format!("refresh: {why}"));
                self.refresh = true;
            }
        }
    }

    /// The directory source changed on disk.
    pub fn files_changed(&mut self) {
        self.rediscover = true;
        self.refresh = true;
    }

    /// True once the first sync of every application has been attempted.
    pub fn ready(&self) -> bool {
        !self.apps.is_empty() && self.apps.iter().all(|a| a.attempted)
    }

    /// One cycle: time, drift, source, applications, rollouts, health, statuses.
    pub fn cycle(&mut self) -> Result<(), Error> {
        for index in 0..self.targets.len() {
            if self.targets[index].cluster.refresh()? {
                for app in self.apps.iter_mut().filter(|a| a.target == index) {
                    app.compare = true;
                    app.check_health = true;
                }
            }
        }
        self.observe();
        self.follow_wall_clock()?;
        let due = self
            .last_poll
            .is_none_or(|at| at.elapsed() >= self.options.interval);
        if due || self.refresh {
            self.poll()?;
        }
        self.reconcile_apps()?;
        self.drive_rollouts();
        self.check_health();
        self.publish();
        Ok(())
    }

    /// Advances the virtual clock by the wall time since the last cycle, times `speed`.
    fn follow_wall_clock(&mut self) -> Result<(), Error> {
        let elapsed = self.last_tick.elapsed();
        self.last_tick = Instant::now();
        self.virtual_debt += elapsed.as_secs_f64() * 1000.0 * self.options.speed;
        // A slow cycle must not make the next one replay minutes at once.
        self.virtual_debt = self.virtual_debt.min(60_000.0);
        let step = self.virtual_debt.floor();
        if step < 1.0 {
            return Ok(());
        }
        self.virtual_debt -= step;
        let mut moved = false;
        for target in &mut self.targets {
            moved |= target
                .cluster
                .advance_clock(Duration::from_millis(step as u64))?;
        }
        if moved {
            for app in &mut self.apps {
                if app.status.health != Some(Health::Healthy) || !app.rollouts.is_empty() {
                    app.check_health = true;
                }
            }
        }
        Ok(())
    }

    /// Reads the ref (or the directory) and marks the applications a new revision touches.
    fn poll(&mut self) -> Result<(), Error> {
        self.last_poll = Some(Instant::now());
        self.refresh = false;
        let repo = self.source.describe();
        let head = match self.source.head() {
            Ok(head) => {
                if self.source.reference().is_some() {
                    self.shared.metrics.git_fetch(&repo, true);
                }
                head
            }
            Err(e) => {
                self.shared.metrics.git_fetch(&repo, false);
                (self.log)(&format!("error: {e}"));
                return Ok(());
            }
        };
        let new_commit = head.is_some() && head != self.sha;
        if !new_commit && !self.rediscover {
            return Ok(());
        }
        let changed = match (&self.sha, &head) {
            (Some(old), Some(new)) if !self.rediscover => self.source.changed_paths(old, new),
            _ => None,
        };
        let config_changed = changed.as_ref().is_none_or(|paths| {
            paths
                .iter()
                .any(|p| p == &self.source.root().join(crate::plan::config::CONFIG_FILE))
        });
        if let Some(sha) = &head {
            (self.log)(&format!(
                "revision {} of {}",
                decide::short(sha),
                self.source.reference().unwrap_or("HEAD")
            ));
        }
        self.sha = head;
        let snapshot = self.source.snapshot(self.sha.as_deref())?;
        if config_changed || self.rediscover {
            self.rediscover = false;
            self.discover(&snapshot)?;
        }
        for app in &mut self.apps {
            app.status.revision.sha = self.sha.clone();
            let touched = match (&changed, &app.reads) {
                (Some(paths), Some(reads)) => reads.touched_by(paths),
                _ => true,
            };
            if touched {
                app.render = true;
            }
        }
        self.render(&snapshot);
        Ok(())
    }

    /// (Re)reads the application list; applications that stay keep their state.
    fn discover(&mut self, snapshot: &Snapshot) -> Result<(), Error> {
        let root = self.source.root().to_path_buf();
        let found = source::applications(snapshot.fs.as_ref(), &root)?;
        let mut previous: Vec<AppState> = std::mem::take(&mut self.apps);
        for app in found {
            let (on, target_error) = match self.target_for(&app) {
                Ok(index) => (index, None),
                Err(e) => (0, Some(e)),
            };
            let target = self.targets[on].cluster.target_name();
            if let Some(index) = previous
                .iter()
                .position(|p| p.app.name == app.name && p.target == on)
            {
                let mut state = previous.swap_remove(index);
                state.target_error = target_error;
                state.policy = Policy::of(&app);
                state.status.path = app.path.clone();
                state.app = app;
                state.render = true;
                self.apps.push(state);
                continue;
            }
            let saved = status::load(&*self.targets[on].cluster, &app.name)
                .ok()
                .flatten();
            let mut status = saved.clone().unwrap_or_default();
            status.name = app.name.clone();
            status.path = app.path.clone();
            status.target = target.clone();
            status.revision = Revision {
                repo: self.source.describe(),
                reference: self.source.reference().map(str::to_string),
                sha: self.sha.clone(),
                digest: status.revision.digest.clone(),
            };
            self.apps.push(AppState {
                target: on,
                target_error,
                policy: Policy::of(&app),
                app,
                status,
                saved,
                reads: None,
                desired: None,
                render: true,
                compare: true,
                requested: false,
                attempted: false,
                check_health: true,
                ids: Vec::new(),
                rollouts: Vec::new(),
                last_drive: None,
                status_rules: None,
            });
        }
        Ok(())
    }

    /// Renders the applications marked, on every core, recording the files each read.
    fn render(&mut self, snapshot: &Snapshot) {
        use rayon::prelude::*;
        let root = self.source.root().to_path_buf();
        let prefix = format!("{}/", root.display());
        let fs = snapshot.fs.as_ref();
        let results: Vec<(usize, Reads, Result<Desired, String>)> = self
            .apps
            .par_iter()
            .enumerate()
            .filter(|(_, a)| a.render)
            .map(|(index, a)| {
                let recording = Recording::new(fs);
                let dir = crate::source::clean(&root.join(&a.app.path));
                let rendered = crate::render::render(&recording, &dir)
                    .map(|r| crate::render::to_values(&r))
                    .map(|objects| Desired {
                        digest: digest(&objects),
                        objects,
                    })
                    .map_err(|e| e.to_string().replace(&prefix, ""));
                (index, recording.reads(), rendered)
            })
            .collect();
        for (index, reads, rendered) in results {
            let app = &mut self.apps[index];
            app.render = false;
            app.reads = Some(reads);
            let same = match (&app.desired, &rendered) {
                (Some(Ok(old)), Ok(new)) => old.digest == new.digest,
                (Some(Err(old)), Err(new)) => old == new,
                _ => false,
            };
            if !same {
                app.compare = true;
                if let Err(e) = &rendered {
                    (self.log)(&format!("{}: not applied: {e}", app.app.name));
                }
                app.desired = Some(rendered);
                app.status_rules = None;
            }
        }
    }

    /// Compares and syncs the applications that need it, holding the apply lock once.
    fn reconcile_apps(&mut self) -> Result<(), Error> {
        let now = wall_millis();
        let mut locked = vec![false; self.targets.len()];
        // Every application synced in this pass is settled once at its end, not once per
        // write: a cold start of N applications stays linear in N.
        for target in &mut self.targets {
            target.cluster.defer_settling();
        }
        let result = self.reconcile_apps_deferred(now, &mut locked);
        for target in &mut self.targets {
            target.cluster.settle_deferred()?;
        }
        result?;
        for (target, locked) in self.targets.iter_mut().zip(locked) {
            if locked {
                target.cluster.unlock()?;
            }
        }
        Ok(())
    }

    fn reconcile_apps_deferred(&mut self, now: u64, locked: &mut [bool]) -> Result<(), Error> {
        for index in 0..self.apps.len() {
            if self.stopping.load(Ordering::Relaxed) {
                break;
            }
            let app = &self.apps[index];
            let retry_due = app.status.retry.retry_at.is_some_and(|at| at <= now);
            if !(app.compare || app.requested || retry_due) {
                continue;
            }
            let Some(desired) = &app.desired else {
                continue;
            };
            let cluster = &*self.targets[app.target].cluster;
            let (revision, comparison, planned) = match (desired, &app.target_error) {
                (_, Some(error)) => (
                    self.sha.clone().unwrap_or_default(),
                    Comparison::Broken {
                        error: error.clone(),
                    },
                    None,
                ),
                (Err(error), None) => (
                    self.sha.clone().unwrap_or_default(),
                    Comparison::Broken {
                        error: error.clone(),
                    },
                    None,
                ),
                (Ok(desired), None) => {
                    let options = PlanOptions {
                        prune: app.policy.prune,
                        allow_empty: app.policy.allow_empty,
                        create_namespace: app.app.creates_namespaces(),
                        // A watcher never takes over objects it did not create.
                        adopt: false,
                    };
                    match plan::make_plan(
                        &app.app,
                        &app.app.path,
                        &desired.objects,
                        cluster,
                        &options,
                    ) {
                        Ok(planned) => {
                            let s = planned.plan.summary;
                            (
                                desired.digest.clone(),
                                Comparison::Compared {
                                    changes: s.create + s.update + s.delete,
                                },
                                Some(planned),
                            )
                        }
                        Err(e) => (
                            desired.digest.clone(),
                            Comparison::Broken {
                                error: e.to_string(),
                            },
                            None,
                        ),
                    }
                }
            };
            let decision = decide::decide(
                &app.policy,
                &revision,
                &comparison,
                &app.status.retry,
                app.requested,
                now,
            );
            let app = &mut self.apps[index];
            app.compare = false;
            app.requested = false;
            app.status.revision.digest = match &app.desired {
                Some(Ok(d)) => Some(d.digest.clone()),
                _ => app.status.revision.digest.clone(),
            };
            if let Some(planned) = &planned {
                if let Ok(mut plans) = self.shared.plans.write() {
                    let changes = planned
                        .plan
                        .actions
                        .iter()
                        .filter(|a| a.action != Change::Unchanged)
                        .cloned()
                        .collect();
                    plans.insert(app.app.name.clone(), changes);
                }
                app.ids = planned
                    .plan
                    .actions
                    .iter()
                    .filter(|a| a.action != Change::Delete)
                    .map(|a| a.id())
                    .collect();
            }
            app.status.sync = decision.status;
            match (&comparison, &decision.action) {
                (Comparison::Broken { error }, _) => {
                    app.status.last_error = Some(error.clone());
                    app.attempted = true;
                }
                (Comparison::Compared { changes }, Action::Wait(reason)) => {
                    app.status.drift_objects = *changes;
                    app.status.message = reason.clone();
                    if *changes == 0 {
                        app.status.last_error = None;
                        if app.status.retry.synced_revision.as_deref() != Some(revision.as_str()) {
                            app.status.retry = app.status.retry.in_sync(&revision);
                        }
                        app.attempted = true;
                    } else if !app.policy.automated {
                        app.attempted = true;
                    }
                }
                (Comparison::Compared { changes }, Action::Sync(reason)) => {
                    app.status.drift_objects = *changes;
                    let Some(planned) = planned else { continue };
                    let on = app.target;
                    if !locked[on] {
                        match self.targets[on].cluster.lock(&self.options.holder) {
                            Ok(()) => locked[on] = true,
                            Err(e) => {
                                let app = &mut self.apps[index];
                                app.status.message = Some(format!("not synced: {e}"));
                                app.compare = true;
                                continue;
                            }
                        }
                    }
                    let reason = reason.clone();
                    self.sync(index, &planned, &revision, &reason);
                }
            }
        }
        Ok(())
    }

    /// Applies one application's plan and records the sync.
    fn sync(&mut self, index: usize, planned: &plan::Planned, revision: &str, reason: &str) {
        let started = Instant::now();
        let started_at = crate::rollout::time::rfc3339(wall_millis());
        let options = ApplyOptions {
            wait: false,
            timeout: None,
        };
        let cluster = &mut self.targets[self.apps[index].target].cluster;
        // A rollout starts from a settled world (its ReplicaSets as the controllers left
        // them), so an application with one is applied outside the deferred pass.
        let rollout = planned.starts_rollouts();
        let flushed = if rollout {
            cluster.settle_deferred()
        } else {
            Ok(())
        };
        let outcome = flushed.map_err(|e| e.to_string()).and_then(|()| {
            plan::apply(planned, &mut **cluster, &options, &mut |_| {}).map_err(|e| e.to_string())
        });
        if rollout {
            if let Err(e) = cluster.settle_deferred() {
                (self.log)(&format!("{}: {e}", cluster.target_name()));
            }
            cluster.defer_settling();
        }
        let app = &mut self.apps[index];
        let name = app.app.name.clone();
        if let Ok(report) = &outcome
            && report.succeeded()
        {
            for (display, outcome) in &report.rollouts {
                if matches!(outcome, Outcome::Waiting(_) | Outcome::Paused(_))
                    && let Some(id) = report
                        .applied
                        .iter()
                        .find(|id| crate::diff::display_id(id) == *display)
                    && !app.rollouts.contains(id)
                {
                    app.rollouts.push(id.clone());
                }
            }
        }
        let (ok, message) = super::sync_outcome(reason, &outcome);
        let duration = started.elapsed();
        let now = wall_millis();
        app.status.retry = app.status.retry.after_sync(&app.policy, revision, ok, now);
        app.status.record(SyncRecord {
            revision: app
                .status
                .revision
                .sha
                .clone()
                .unwrap_or_else(|| revision.to_string()),
            started_at,
            duration_ms: duration.as_millis() as u64,
            result: if ok { "Succeeded" } else { "Failed" }.to_string(),
            message: message.clone(),
        });
        app.attempted = true;
        app.check_health = true;
        if ok {
            if let Ok(mut plans) = self.shared.plans.write() {
                plans.remove(&name);
            }
            app.status.sync = SyncStatus::Synced;
            app.status.drift_objects = 0;
            app.status.last_error = None;
            app.status.message = None;
            app.status.last_synced_at = Some(crate::rollout::time::rfc3339(now));
        } else {
            app.status.last_error = Some(message.clone());
        }
        self.shared
            .metrics
            .sync(&name, ok, duration.as_secs_f64(), now as f64 / 1000.0);
        (self.log)(&format!(
            "{name}: sync {}: {message}",
            if ok { "succeeded" } else { "failed" }
        ));
    }

    /// Carries the rollouts started by syncs one step further (the clock moves them).
    fn drive_rollouts(&mut self) {
        for index in 0..self.apps.len() {
            let app = &self.apps[index];
            if app.rollouts.is_empty() {
                continue;
            }
            if !self.targets[app.target].cluster.drives_rollouts()
                && app.last_drive.is_some_and(|at| at.elapsed() < DRIVE_EVERY)
            {
                continue;
            }
            self.apps[index].last_drive = Some(Instant::now());
            let ids = std::mem::take(&mut self.apps[index].rollouts);
            let mut still = Vec::new();
            let mut lines = Vec::new();
            for id in ids {
                let options = DriveOptions {
                    advance_time: false,
                    timeout: None,
                    all_notes: false,
                };
                let cluster = &mut *self.targets[self.apps[index].target].cluster;
                match driver::drive(cluster, &id, options, &mut |l| lines.push(l.to_string())) {
                    Ok(Outcome::Waiting(_)) | Ok(Outcome::Paused(_)) => still.push(id),
                    Ok(Outcome::Degraded(m)) | Ok(Outcome::TimedOut(m)) => {
                        self.apps[index].status.last_error = Some(format!(
                            "rollout of {} is Degraded: {m}",
                            crate::diff::display_id(&id)
                        ));
                    }
                    Ok(Outcome::Healthy(_)) => {}
                    Err(e) => {
                        self.apps[index].status.last_error = Some(e.to_string());
                    }
                }
            }
            let app = &mut self.apps[index];
            app.rollouts = still;
            app.check_health = true;
            for line in lines {
                (self.log)(&format!("{}: {line}", app.app.name));
            }
        }
        self.drive_seen_rollouts();
    }

    /// Carries forward the rollouts watches found that no application here started (a
    /// `reconcile apply` of another process started them), on targets that do not drive
    /// their own: the same driver and decisions as `rollout status`, a step when it is due.
    fn drive_seen_rollouts(&mut self) {
        for target in &mut self.targets {
            let due: Vec<ResId> = target
                .rollouts
                .iter()
                .filter(|(_, at)| at.is_none_or(|at| at.elapsed() >= DRIVE_EVERY))
                .map(|(id, _)| id.clone())
                .collect();
            for id in due {
                let options = DriveOptions {
                    advance_time: false,
                    timeout: None,
                    all_notes: false,
                };
                let mut lines = Vec::new();
                let outcome = driver::drive(&mut *target.cluster, &id, options, &mut |l| {
                    lines.push(l.to_string())
                });
                for line in lines {
                    (self.log)(&line);
                }
                match outcome {
                    Ok(Outcome::Waiting(_)) => {
                        target.rollouts.insert(id, Some(Instant::now()));
                    }
                    Ok(_) => {
                        target.rollouts.remove(&id);
                    }
                    Err(e) => {
                        (self.log)(&format!("{}: {e}", crate::diff::display_id(&id)));
                        target.rollouts.remove(&id);
                    }
                }
            }
        }
    }

    /// Takes in what the targets' watches saw: a change of an application's object beyond
    /// its status is drift (compared again), any change of it or of its Service's Endpoints
    /// may change health, and a Canary/BlueGreen in progress on a target that does not drive
    /// rollouts is driven here. Every [`RESYNC`] every application on a watched target is
    /// compared again anyway.
    fn observe(&mut self) {
        let deployment = Gvk::from_api_version("apps/v1", "Deployment");
        let endpoints = Gvk::from_api_version("v1", "Endpoints");
        for index in 0..self.targets.len() {
            let mut members: HashMap<String, Vec<usize>> = HashMap::new();
            let mut kinds: Vec<Gvk> = Vec::new();
            for (app_index, app) in self.apps.iter().enumerate() {
                if app.target != index {
                    continue;
                }
                for id in &app.ids {
                    members.entry(object_key(id)).or_default().push(app_index);
                    if !kinds.contains(&id.gvk) {
                        kinds.push(id.gvk.clone());
                    }
                }
            }
            let target = &mut self.targets[index];
            let drives = !target.cluster.drives_rollouts();
            if drives && !kinds.contains(&deployment) {
                kinds.push(deployment.clone());
            }
            if kinds
                .iter()
                .any(|k| k.kind == "Service" && k.group.is_empty())
            {
                kinds.push(endpoints.clone());
            }
            let seen = match target.cluster.observe(&kinds) {
                Ok(Some(seen)) => seen,
                Ok(None) => continue,
                Err(e) => {
                    (self.log)(&format!("watching {}: {e}", target.cluster.target_name()));
                    continue;
                }
            };
            for app in self.apps.iter_mut().filter(|a| a.target == index) {
                if app.status_rules.is_none()
                    && let Some(Ok(desired)) = &app.desired
                {
                    // A failed list of the live CRDs leaves the tree's own rules.
                    let rules = StatusRules::of(&desired.objects, target.cluster.as_ref())
                        .unwrap_or_else(|_| StatusRules::of_tree(&desired.objects));
                    app.status_rules = Some(rules);
                }
            }
            for Observed { object, deleted } in seen {
                let mut id = ResId::of(&object);
                let is_endpoints = id.gvk.kind == "Endpoints" && id.gvk.group.is_empty();
                if is_endpoints {
                    id.gvk = Gvk::from_api_version("v1", "Service");
                }
                let key = object_key(&id);
                let owners = members.get(&key).cloned().unwrap_or_default();
                if drives && !is_endpoints && id.gvk.kind == "Deployment" {
                    let in_progress = !deleted
                        && driver::read_state(&object)
                            .ok()
                            .flatten()
                            .is_some_and(|s| matches!(s.phase, Phase::Progressing | Phase::Paused));
                    match (in_progress, owners.first()) {
                        (true, Some(owner)) => {
                            let app = &mut self.apps[*owner];
                            if !app.rollouts.contains(&id) {
                                app.rollouts.push(id.clone());
                            }
                        }
                        (true, None) => {
                            // Stepped at once when new, else when due.
                            target.rollouts.entry(id.clone()).or_insert(None);
                        }
                        (false, _) => {
                            target.rollouts.remove(&id);
                        }
                    }
                }
                if owners.is_empty() {
                    continue;
                }
                let drifted = if is_endpoints {
                    false
                } else {
                    let status_is_field = owners.iter().any(|o| {
                        self.apps[*o]
                            .status_rules
                            .as_ref()
                            .is_some_and(|r| r.object_status_is_field(&object))
                    });
                    let print = if deleted {
                        0
                    } else {
                        fingerprint(&object, status_is_field)
                    };
                    let before = target.fingerprints.insert(key.clone(), print);
                    before.is_some_and(|b| b != print) || deleted
                };
                if !is_endpoints {
                    if deleted {
                        target.live.remove(&key);
                    } else {
                        target.live.insert(key.clone(), object);
                    }
                }
                for owner in owners {
                    let app = &mut self.apps[owner];
                    app.check_health = true;
                    if drifted {
                        app.compare = true;
                    }
                }
            }
            if target.last_resync.elapsed() >= RESYNC {
                target.last_resync = Instant::now();
                for app in self.apps.iter_mut().filter(|a| a.target == index) {
                    app.compare = true;
                    app.check_health = true;
                }
            }
        }
    }

    /// Recomputes the health of the applications whose objects may have changed.
    fn check_health(&mut self) {
        for app in &mut self.apps {
            if !app.check_health || app.ids.is_empty() {
                continue;
            }
            app.check_health = false;
            let mut worst = (Health::Healthy, String::new());
            let target = &self.targets[app.target];
            for id in &app.ids {
                // What the watches saw last, when they see it; else read now.
                let live = match target.live.get(&object_key(id)) {
                    Some(seen) => Some(seen.clone()),
                    None => target.cluster.get(id).ok().flatten(),
                };
                let endpoints = (id.gvk.kind == "Service")
                    .then(|| {
                        let ep = ResId {
                            gvk: crate::model::Gvk::from_api_version("v1", "Endpoints"),
                            ..id.clone()
                        };
                        target.cluster.get(&ep).ok().flatten()
                    })
                    .flatten();
                let h = health::health(live.as_ref(), endpoints.as_ref());
                if badness(h.status) > badness(worst.0) {
                    let message = if h.message.is_empty() {
                        format!("{} is {}", crate::diff::display_id(id), h.status)
                    } else {
                        format!("{}: {}", crate::diff::display_id(id), h.message)
                    };
                    worst = (h.status, message);
                }
            }
            if app.status.health != Some(worst.0) {
                (self.log)(&format!("{}: {}", app.app.name, worst.0));
            }
            app.status.health = Some(worst.0);
            app.status.health_message = worst.1;
        }
    }

    /// Publishes statuses to the HTTP side and metrics; persists those that changed.
    fn publish(&mut self) {
        let mut changed = Vec::new();
        for app in &mut self.apps {
            self.shared.metrics.app(&app.status);
            if app.saved.as_ref() != Some(&app.status) {
                changed.push((app.target, app.status.clone()));
                app.saved = Some(app.status.clone());
            }
        }
        for target in &mut self.targets {
            target.cluster.defer_settling();
        }
        for (on, status) in &changed {
            if let Err(e) = status::save(&mut *self.targets[*on].cluster, status) {
                (self.log)(&format!("{}: status not saved: {e}", status.name));
            }
        }
        for target in &mut self.targets {
            if let Err(e) = target.cluster.settle_deferred() {
                (self.log)(&format!("statuses not settled: {e}"));
            }
        }
        if let Ok(mut apps) = self.shared.apps.write() {
            *apps = self.statuses();
        }
        self.shared.ready.store(self.ready(), Ordering::Relaxed);
    }
}

/// Runs the controller until `stopping` is set: a cycle every `tick`, at once on a command
/// or a change of the watched directory (debounced by `debounce`).
pub async fn run(
    mut controller: Controller,
    mut commands: tokio::sync::mpsc::UnboundedReceiver<Command>,
    mut file_events: tokio::sync::mpsc::UnboundedReceiver<()>,
    stopping: Arc<AtomicBool>,
    stop_signal: Arc<tokio::sync::Notify>,
) -> Result<(), Error> {
    const TICK: Duration = Duration::from_millis(250);
    const DEBOUNCE: Duration = Duration::from_millis(200);
    loop {
        if stopping.load(Ordering::Relaxed) {
            break;
        }
        tokio::select! {
            _ = stop_signal.notified() => {}
            Some(command) = commands.recv() => controller.command(command),
            Some(()) = file_events.recv() => {
                // Editors write in bursts: wait for quiet, then read once.
                tokio::time::sleep(DEBOUNCE).await;
                while file_events.try_recv().is_ok() {}
                controller.files_changed();
            }
            _ = tokio::time::sleep(TICK) => {}
        }
        while let Ok(command) = commands.try_recv() {
            controller.command(command);
        }
        if stopping.load(Ordering::Relaxed) {
            break;
        }
        controller.cycle()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "demo", "resourceVersion": "7",
                         "annotations": {"keep": "1"}},
            "spec": {"replicas": 2},
            "status": {"readyReplicas": 1},
        })
    }

    #[test]
    fn only_a_change_beyond_status_and_bookkeeping_is_drift() {
        let before = fingerprint(&deployment(), false);
        let mut moved = deployment();
        moved["status"]["readyReplicas"] = json!(2);
        moved["metadata"]["resourceVersion"] = json!("8");
        moved["metadata"]["annotations"]["reconcile.dev/rollout"] = json!("{}");
        moved["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = json!("2");
        assert_eq!(fingerprint(&moved, false), before);
        let mut scaled = deployment();
        scaled["spec"]["replicas"] = json!(5);
        assert_ne!(fingerprint(&scaled, false), before);
        let mut annotated = deployment();
        annotated["metadata"]["annotations"]["keep"] = json!("2");
        assert_ne!(fingerprint(&annotated, false), before);
        // A status that is an ordinary field (a CRD without the subresource) is declared.
        let mut declared = deployment();
        declared["status"]["readyReplicas"] = json!(2);
        assert_ne!(
            fingerprint(&declared, true),
            fingerprint(&deployment(), true)
        );
    }

    #[test]
    fn objects_are_keyed_whatever_their_version_and_namespaced_ones_default() {
        let v1 = ResId {
            gvk: Gvk::from_api_version("autoscaling/v1", "HorizontalPodAutoscaler"),
            name: "web".into(),
            namespace: String::new(),
        };
        let v2 = ResId {
            gvk: Gvk::from_api_version("autoscaling/v2", "HorizontalPodAutoscaler"),
            namespace: "default".into(),
            ..v1.clone()
        };
        assert_eq!(object_key(&v1), object_key(&v2));
        let namespace = ResId {
            gvk: Gvk::from_api_version("v1", "Namespace"),
            name: "demo".into(),
            namespace: String::new(),
        };
        assert_eq!(object_key(&namespace), "/Namespace//demo");
    }
}
