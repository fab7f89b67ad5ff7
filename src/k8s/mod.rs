//! The Kubernetes backend: [`Cluster`] over a real API server through the `kube` crate, so
//! `plan`, `apply`, prune and the rollout driver run against any cluster with the code that
//! drives the engine.
//!
//! It owns the connection (kubeconfig as kubectl finds it, or the pod's service account;
//! timeouts; retries with backoff on throttling, server errors and broken connections),
//! discovery (cached per run, refreshed when a kind is missing, so CRDs applied in the same
//! run are found), server-side apply with field manager `reconcile`, CRDs and Namespaces
//! waited for before what lives in them, the lock as a Lease, and waits that wake on watch
//! events. The `Cluster` trait is synchronous: a small tokio runtime owned by the backend
//! runs every request.

mod errors;
mod lease;
mod metrics;
mod resources;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::params::{DeleteParams, GetParams, ListParams, Patch, PatchParams};
use serde_json::Value;

use crate::cluster::{self, Cluster, MetricQuery};
use crate::model::{Gvk, ResId};
use errors::Attempt;
pub use resources::Resources;

/// The field manager of everything reconcile applies.
pub const FIELD_MANAGER: &str = "reconcile";

/// How many times a request is tried when the cluster is throttling, failing or unreachable.
const ATTEMPTS: u32 = 5;
/// The first pause between tries; it doubles each time.
const BACKOFF: Duration = Duration::from_millis(250);
/// How long reading the server's clock may take before the local clock is trusted instead.
const CLOCK_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How old the reading of the server's clock may get before `now` reads it again.
const CLOCK_REREAD: Duration = Duration::from_secs(1);
/// How long a CRD may take to be established, or a Namespace to become active.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// Errors connecting to a cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig or the in-cluster configuration could not be used.
    #[error("{0}")]
    Config(String),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(String),
}

/// How to reach the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Options {
    /// The kubeconfig context; the current one when `None`.
    pub context: Option<String>,
    /// Take over fields another field manager owns (kubectl's `--force-conflicts`).
    pub force_conflicts: bool,
}

/// A Kubernetes cluster.
pub struct KubeCluster {
    /// Shared only to be dropped on a thread of its own (see `Drop`).
    runtime: Arc<tokio::runtime::Runtime>,
    client: kube::Client,
    name: String,
    force_conflicts: bool,
    resources: Mutex<Option<Arc<Resources>>>,
    changed: Arc<tokio::sync::Notify>,
    watchers: Vec<tokio::task::JoinHandle<()>>,
    /// Watches of the kinds a watcher observes ([`Cluster::observe`]), by group and kind.
    observers: HashMap<String, tokio::task::JoinHandle<()>>,
    /// What those watches saw since the last [`Cluster::observe`].
    observed: Arc<Mutex<Vec<cluster::Observed>>>,
    /// Counts every change any watch saw ([`Cluster::change_marker`]).
    marker: Arc<AtomicU64>,
    lease: Option<lease::Held>,
    /// The one-watcher Lease, while a `reconcile watch` of this process holds it.
    watch_lease: Option<lease::Held>,
    clock: Mutex<ServerClock>,
}

impl Drop for KubeCluster {
    fn drop(&mut self) {
        for watcher in self.watchers.iter().chain(self.observers.values()) {
            watcher.abort();
        }
        if self.lease.is_some() {
            let _ = self.unlock();
        }
        if let Some(held) = self.watch_lease.take() {
            let _ = lease::release(&self.runtime, &self.client, &self.name, held);
        }
        // Dropped within another runtime (the watcher's loop, the UI's tasks), the runtime's
        // shutdown may not block there: a thread of its own drops it once this handle's
        // reference is gone.
        if tokio::runtime::Handle::try_current().is_ok() {
            let runtime = self.runtime.clone();
            std::thread::spawn(move || {
                let started = std::time::Instant::now();
                while Arc::strong_count(&runtime) > 1 && started.elapsed() < Duration::from_secs(5)
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                drop(runtime);
            });
        }
    }
}

/// The contexts a kubeconfig defines, for error messages.
fn contexts(config: &Kubeconfig) -> String {
    let names: Vec<&str> = config.contexts.iter().map(|c| c.name.as_str()).collect();
    if names.is_empty() {
        "it defines none".to_string()
    } else {
        format!("it defines {}", names.join(", "))
    }
}

/// The configuration kubectl would use, and the context's name.
async fn load_config(context: Option<&str>) -> Result<(kube::Config, String), Error> {
    let file = Kubeconfig::read();
    match (context, file) {
        (Some(wanted), Ok(file)) => {
            if !file.contexts.iter().any(|c| c.name == wanted) {
                return Err(Error::Config(format!(
                    "kubeconfig has no context {wanted:?} ({})",
                    contexts(&file)
                )));
            }
            let options = KubeConfigOptions {
                context: Some(wanted.to_string()),
                ..Default::default()
            };
            let config = kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| {
                    Error::Config(errors::redact(&format!(
                        "kubeconfig context {wanted:?}: {e}"
                    )))
                })?;
            Ok((config, wanted.to_string()))
        }
        (None, Ok(file)) => {
            let Some(current) = file.current_context.clone().filter(|c| !c.is_empty()) else {
                return Err(Error::Config(format!(
                    "the kubeconfig has no current context; name one with --target kube:CONTEXT ({})",
                    contexts(&file)
                )));
            };
            let config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(|e| {
                    Error::Config(errors::redact(&format!(
                        "kubeconfig context {current:?}: {e}"
                    )))
                })?;
            Ok((config, current))
        }
        (Some(wanted), Err(e)) => Err(Error::Config(errors::redact(&format!(
            "cannot read the kubeconfig for context {wanted:?} (KUBECONFIG or ~/.kube/config): {e}"
        )))),
        (None, Err(file_error)) => match kube::Config::incluster() {
            Ok(config) => Ok((config, "in-cluster".to_string())),
            Err(_) => Err(Error::Config(errors::redact(&format!(
                "no kubeconfig (KUBECONFIG or ~/.kube/config: {file_error}) and not running in a pod"
            )))),
        },
    }
}

/// Runs `attempt` until it succeeds, fails for good, or has been tried [`ATTEMPTS`] times,
/// with a pause doubling from [`BACKOFF`] while the failure is transient (throttling, server
/// errors, a connection refused or dropped): at most about 4 s of pauses in all.
pub(crate) async fn retrying<T, F, Fut>(mut attempt: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut pause = BACKOFF;
    let mut tried = 1;
    loop {
        match attempt().await {
            Err(e) if tried < ATTEMPTS && errors::transient(&e) => {
                tokio::time::sleep(pause).await;
                pause *= 2;
                tried += 1;
            }
            other => return other,
        }
    }
}

/// Runs `future` on the backend's runtime from synchronous code, also when that code runs on
/// a thread of another tokio runtime (the watcher's loop, the web UI's handlers): the thread
/// is then handed over to blocking work first, as a nested `block_on` may not run there.
pub(crate) fn block_on<F: std::future::Future>(
    runtime: &tokio::runtime::Runtime,
    future: F,
) -> F::Output {
    if tokio::runtime::Handle::try_current().is_ok() {
        tokio::task::block_in_place(|| runtime.block_on(future))
    } else {
        runtime.block_on(future)
    }
}

/// Sends a request, trying it again with backoff while the failure is transient
/// (throttling, server errors, a broken connection).
pub(crate) async fn request_retrying(
    client: &kube::Client,
    request: http::Request<Vec<u8>>,
) -> Result<Value, kube::Error> {
    let (parts, body) = request.into_parts();
    retrying(|| {
        let mut again = http::Request::builder()
            .method(parts.method.clone())
            .uri(parts.uri.clone());
        for (name, value) in &parts.headers {
            again = again.header(name, value);
        }
        let request = again.body(body.clone()).map_err(kube::Error::HttpError);
        async move { client.request::<Value>(request?).await }
    })
    .await
}

/// Connects to the cluster of a kubeconfig context (or the current one, or the pod's).
pub fn connect(options: &Options) -> Result<KubeCluster, Error> {
    if tokio::runtime::Handle::try_current().is_ok() {
        // Called from within another runtime (a watcher opening an application's target):
        // connect on a thread of its own, where this backend's runtime may start and, when
        // connecting fails, stop.
        return std::thread::scope(|scope| scope.spawn(|| connect_here(options)).join())
            .unwrap_or_else(|_| Err(Error::Runtime("the connecting thread panicked".into())));
    }
    connect_here(options)
}

fn connect_here(options: &Options) -> Result<KubeCluster, Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime(e.to_string()))?;
    // On an error the runtime is shut down without waiting: `connect` may run inside another
    // runtime (the watcher's), where dropping one would block.
    let (mut config, context) = match block_on(&runtime, load_config(options.context.as_deref())) {
        Ok(loaded) => loaded,
        Err(error) => {
            runtime.shutdown_background();
            return Err(error);
        }
    };
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(Duration::from_secs(60));
    config.write_timeout = Some(Duration::from_secs(60));
    config.reset_reader_on_write = true;
    let client = match block_on(&runtime, async { kube::Client::try_from(config) }) {
        Ok(client) => client,
        Err(e) => {
            runtime.shutdown_background();
            return Err(Error::Config(errors::redact(&format!(
                "context {context:?}: {e}"
            ))));
        }
    };
    let cluster = KubeCluster {
        runtime: Arc::new(runtime),
        client,
        name: format!("kube:{context}"),
        force_conflicts: options.force_conflicts,
        resources: Mutex::new(None),
        changed: Arc::new(tokio::sync::Notify::new()),
        watchers: Vec::new(),
        observers: HashMap::new(),
        observed: Arc::new(Mutex::new(Vec::new())),
        marker: Arc::new(AtomicU64::new(0)),
        lease: None,
        watch_lease: None,
        clock: Mutex::new(ServerClock {
            at_ms: wall_ms(),
            read: std::time::Instant::now(),
            tried: std::time::Instant::now(),
        }),
    };
    cluster.read_server_clock();
    Ok(cluster)
}

/// This machine's wall clock, in milliseconds since the epoch.
fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The API server's time as this process last saw it: the `Date` header of a response
/// (whole seconds) and the local instant it was read, moved on by the local clock in between.
/// Pauses and analysis intervals of the rollout driver follow it, so they follow the server
/// even when this machine's clock is off (or the server's time runs faster, as `engine serve
/// --speed` does).
#[derive(Debug, Clone, Copy)]
struct ServerClock {
    at_ms: u64,
    read: std::time::Instant,
    /// When the `Date` was last asked for (read or not).
    tried: std::time::Instant,
}

impl ServerClock {
    fn now_ms(&self) -> u64 {
        self.at_ms + self.read.elapsed().as_millis() as u64
    }

    /// Takes a new reading of the server's `Date` (`date_ms`, truncated to the second): the
    /// estimate keeps its sub-second part when it agrees with the reading, and never goes
    /// back within that second.
    fn observe(&mut self, date_ms: u64) {
        let estimate = self.now_ms();
        self.at_ms = estimate.clamp(date_ms, date_ms + 999);
        self.read = std::time::Instant::now();
    }
}

/// The object as it may be sent with server-side apply: without what the server owns.
fn applied_configuration(object: &Value) -> Value {
    let mut sent = object.clone();
    if let Some(map) = sent.as_object_mut() {
        map.remove("status");
    }
    if let Some(meta) = sent.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
            "managedFields",
            "selfLink",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            meta.remove(key);
        }
    }
    sent
}

impl KubeCluster {
    /// The server's time as last read, moved on by the local clock (ms since the epoch).
    fn server_ms(&self) -> u64 {
        self.clock
            .lock()
            .map(|clock| clock.now_ms())
            .unwrap_or_else(|_| wall_ms())
    }

    /// Breaks the target's lock held by process `lock_id` (`reconcile unlock`).
    pub fn force_unlock(&self, lock_id: &str) -> Result<(), cluster::Error> {
        lease::force_release(&self.runtime, &self.client, &self.name, lock_id)
    }

    /// Reads the server's `Date` from a cheap request; without one (a server that sends no
    /// `Date`, an error) the estimate goes on with the local clock.
    fn read_server_clock(&self) {
        if let Ok(mut clock) = self.clock.lock() {
            clock.tried = std::time::Instant::now();
        }
        let client = self.client.clone();
        let date = block_on(&self.runtime, async move {
            let request = http::Request::get("/version")
                .body(kube::client::Body::empty())
                .ok()?;
            let response = tokio::time::timeout(CLOCK_READ_TIMEOUT, client.send(request))
                .await
                .ok()?
                .ok()?;
            let text = response.headers().get(http::header::DATE)?.to_str().ok()?;
            let at = httpdate::parse_http_date(text).ok()?;
            at.duration_since(std::time::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_millis() as u64)
        });
        if let (Some(date_ms), Ok(mut clock)) = (date, self.clock.lock()) {
            clock.observe(date_ms);
        }
    }

    /// Discovery, run once per process and again when asked for a kind it did not know.
    fn resources(&self, refresh: bool) -> Result<Arc<Resources>, cluster::Error> {
        let mut cached = self
            .resources
            .lock()
            .map_err(|_| cluster::Error::Backend("discovery cache poisoned".into()))?;
        if let Some(found) = cached.as_ref()
            && !refresh
        {
            return Ok(found.clone());
        }
        let client = self.client.clone();
        let fresh =
            block_on(&self.runtime, async { Resources::discover(client).await }).map_err(|e| {
                cluster::Error::Backend(errors::redact(&format!(
                    "{}: API discovery failed: {e}",
                    self.name
                )))
            })?;
        let fresh = Arc::new(fresh);
        *cached = Some(fresh.clone());
        Ok(fresh)
    }

    /// The resource serving a kind, rediscovering once when it is not known yet.
    fn resource_of(&self, gvk: &Gvk) -> Result<Option<resources::Resource>, cluster::Error> {
        if let Some(found) = self.resources(false)?.find(gvk) {
            return Ok(Some(found));
        }
        Ok(self.resources(true)?.find(gvk))
    }

    /// Sends a request, retrying with backoff when the failure is transient.
    fn send(
        &self,
        make: &dyn Fn() -> Result<http::Request<Vec<u8>>, kube::core::request::Error>,
    ) -> Result<Value, kube::Error> {
        let request = make().map_err(kube::Error::BuildRequest)?;
        block_on(&self.runtime, request_retrying(&self.client, request))
    }

    fn not_served(&self, id: &ResId) -> cluster::Error {
        cluster::Error::Invalid {
            id: Box::new(id.clone()),
            message: format!(
                "the server has no resource type for kind {} in apiVersion {} (cluster {}; is its CRD installed?)",
                id.gvk.kind,
                id.gvk.api_version(),
                self.name
            ),
        }
    }

    /// Applies one object with server-side apply; `dry_run` asks what the server would make
    /// of it without storing anything.
    fn server_side_apply(&self, object: &Value, dry_run: bool) -> Result<Value, cluster::Error> {
        let mut id = ResId::of(object);
        let resource = self
            .resource_of(&id.gvk)?
            .ok_or_else(|| self.not_served(&id))?;
        let mut sent = applied_configuration(object);
        if resource.namespaced && id.namespace.is_empty() {
            id.namespace = "default".into();
            sent["metadata"]["namespace"] = Value::String(id.namespace.clone());
        }
        let mut params = PatchParams::apply(FIELD_MANAGER);
        if self.force_conflicts {
            params = params.force();
        }
        if dry_run {
            params = params.dry_run();
        }
        let request = resource.request(&id.namespace);
        let patch = Patch::Apply(&sent);
        let word = resource.word();
        self.send(&|| request.patch(&id.name, &params, &patch))
            .map_err(|e| {
                errors::to_cluster(
                    e,
                    Attempt {
                        verb: "patch",
                        resource: &word,
                        id: &id,
                        target: &self.name,
                    },
                )
            })
            .map(|live| resource.typed(live))
    }

    /// Waits until a CRD is established (its kind then served) or a Namespace is active.
    fn wait_ready(&mut self, applied: &Value) -> Result<(), cluster::Error> {
        let id = ResId::of(applied);
        let ready = |live: &Value| match id.gvk.kind.as_str() {
            "CustomResourceDefinition" => live
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|conditions| {
                    conditions.iter().any(|c| {
                        c.get("type").and_then(Value::as_str) == Some("Established")
                            && c.get("status").and_then(Value::as_str) == Some("True")
                    })
                }),
            "Namespace" => {
                live.pointer("/status/phase").and_then(Value::as_str) != Some("Terminating")
            }
            _ => true,
        };
        if !matches!(
            id.gvk.kind.as_str(),
            "CustomResourceDefinition" | "Namespace"
        ) {
            return Ok(());
        }
        let started = std::time::Instant::now();
        loop {
            if let Some(live) = self.get(&id)?
                && ready(&live)
            {
                if id.gvk.kind == "CustomResourceDefinition" {
                    self.resources(true)?;
                }
                return Ok(());
            }
            if started.elapsed() > ESTABLISH_TIMEOUT {
                return Err(cluster::Error::Invalid {
                    id: Box::new(id.clone()),
                    message: format!(
                        "not {} after {}s",
                        if id.gvk.kind == "Namespace" {
                            "active"
                        } else {
                            "established"
                        },
                        ESTABLISH_TIMEOUT.as_secs()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Starts watching the objects whose changes end a wait early (once per process).
    fn ensure_watching(&mut self) -> Result<(), cluster::Error> {
        if !self.watchers.is_empty() {
            return Ok(());
        }
        let resources = self.resources(false)?;
        for (api_version, kind) in [
            ("v1", "Pod"),
            ("apps/v1", "Deployment"),
            ("apps/v1", "ReplicaSet"),
            ("v1", "Service"),
        ] {
            let Some(resource) = resources.find(&Gvk::from_api_version(api_version, kind)) else {
                continue;
            };
            let client = self.client.clone();
            let changed = self.changed.clone();
            let marker = self.marker.clone();
            let handle = self
                .runtime
                .spawn(resources::watch_changes(client, resource, changed, marker));
            self.watchers.push(handle);
        }
        Ok(())
    }
}

impl Cluster for KubeCluster {
    fn target_name(&self) -> String {
        self.name.clone()
    }

    fn get(&self, id: &ResId) -> Result<Option<Value>, cluster::Error> {
        // A kind nothing serves yet (its CRD comes with it) has no objects.
        let Some(resource) = self.resource_of(&id.gvk)? else {
            return Ok(None);
        };
        let namespace = match (resource.namespaced, id.namespace.as_str()) {
            (true, "") => "default",
            (true, ns) => ns,
            (false, _) => "",
        };
        let request = resource.request(namespace);
        let word = resource.word();
        match self.send(&|| request.get(&id.name, &GetParams::default())) {
            Ok(live) => Ok(Some(resource.typed(live))),
            Err(e) if errors::code(&e) == 404 => Ok(None),
            Err(e) => Err(errors::to_cluster(
                e,
                Attempt {
                    verb: "get",
                    resource: &word,
                    id,
                    target: &self.name,
                },
            )),
        }
    }

    fn list(
        &self,
        gvk: &Gvk,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>, cluster::Error> {
        let Some(resource) = self.resource_of(gvk)? else {
            return Ok(Vec::new());
        };
        let namespace = if resource.namespaced {
            namespace.unwrap_or_default()
        } else {
            ""
        };
        let mut params = ListParams::default();
        if let Some(selector) = label_selector.filter(|s| !s.is_empty()) {
            params = params.labels(selector);
        }
        let request = resource.request(namespace);
        let word = resource.word();
        let id = ResId {
            gvk: gvk.clone(),
            name: String::new(),
            namespace: namespace.to_string(),
        };
        let listed = self.send(&|| request.list(&params)).map_err(|e| {
            errors::to_cluster(
                e,
                Attempt {
                    verb: "list",
                    resource: &word,
                    id: &id,
                    target: &self.name,
                },
            )
        })?;
        // List items carry no apiVersion/kind; the rest of reconcile expects them.
        Ok(listed
            .get("items")
            .and_then(Value::as_array)
            .map(|items| items.iter().cloned().map(|i| resource.typed(i)).collect())
            .unwrap_or_default())
    }

    fn apply(&mut self, object: &Value) -> Result<Value, cluster::Error> {
        let applied = self.server_side_apply(object, false)?;
        self.wait_ready(&applied)?;
        Ok(applied)
    }

    fn delete(&mut self, id: &ResId) -> Result<bool, cluster::Error> {
        let Some(resource) = self.resource_of(&id.gvk)? else {
            return Ok(false);
        };
        let namespace = match (resource.namespaced, id.namespace.as_str()) {
            (true, "") => "default",
            (true, ns) => ns,
            (false, _) => "",
        };
        let request = resource.request(namespace);
        let word = resource.word();
        match self.send(&|| request.delete(&id.name, &DeleteParams::background())) {
            Ok(_) => Ok(true),
            Err(e) if errors::code(&e) == 404 => Ok(false),
            Err(e) => Err(errors::to_cluster(
                e,
                Attempt {
                    verb: "delete",
                    resource: &word,
                    id,
                    target: &self.name,
                },
            )),
        }
    }

    fn check_served(&self, objects: &[&Value]) -> Result<(), cluster::Error> {
        for object in objects {
            let id = ResId::of(object);
            let api_version = id.gvk.api_version();
            if self.resource_of(&id.gvk)?.is_none()
                && !crate::engine::crd::defined_by(
                    objects.iter().copied(),
                    &api_version,
                    &id.gvk.kind,
                )
            {
                return Err(self.not_served(&id));
            }
        }
        Ok(())
    }

    fn check_writes(&self, objects: &[&Value]) -> Result<(), (usize, cluster::Error)> {
        // Namespaces this apply creates: what goes into them cannot be dry-run there before
        // they exist, so it is dry-run in `default` instead (fields are judged the same way).
        let created: HashSet<&str> = objects
            .iter()
            .filter(|o| o.get("kind").and_then(Value::as_str) == Some("Namespace"))
            .filter_map(|o| o.pointer("/metadata/name").and_then(Value::as_str))
            .collect();
        let mut absent: HashMap<String, bool> = HashMap::new();
        for (index, object) in objects.iter().enumerate() {
            let id = ResId::of(object);
            // A kind not served yet is defined by a CRD of the same apply (`check_served`
            // refused the others): it is judged when it is written.
            let Some(resource) = self.resource_of(&id.gvk).map_err(|e| (index, e))? else {
                continue;
            };
            // Nor is a kind whose CRD the apply (re)defines: its schema may change with it.
            if crate::engine::crd::defined_by(
                objects.iter().copied(),
                &id.gvk.api_version(),
                &id.gvk.kind,
            ) {
                continue;
            }
            let mut sent = Value::clone(object);
            if resource.namespaced && created.contains(id.namespace.as_str()) {
                let missing = match absent.get(&id.namespace) {
                    Some(missing) => *missing,
                    None => {
                        let namespace = ResId {
                            gvk: Gvk::from_api_version("v1", "Namespace"),
                            name: id.namespace.clone(),
                            namespace: String::new(),
                        };
                        let missing = self.get(&namespace).map_err(|e| (index, e))?.is_none();
                        absent.insert(id.namespace.clone(), missing);
                        missing
                    }
                };
                if missing {
                    let stand_in = ResId {
                        namespace: "default".into(),
                        ..id.clone()
                    };
                    // A namesake in `default` would be merged with: no honest judgement.
                    if self.get(&stand_in).map_err(|e| (index, e))?.is_some() {
                        continue;
                    }
                    sent["metadata"]["namespace"] = Value::String("default".into());
                }
            }
            self.server_side_apply(&sent, true).map_err(|e| {
                // The object is named as declared, whatever namespace the dry run used.
                let e = match e {
                    cluster::Error::Invalid { message, .. } => cluster::Error::Invalid {
                        id: Box::new(id.clone()),
                        message,
                    },
                    other => other,
                };
                (index, e)
            })?;
        }
        Ok(())
    }

    fn applies_server_side(&self) -> bool {
        true
    }

    fn dry_run_apply(&self, object: &Value) -> Option<Value> {
        self.server_side_apply(object, true).ok()
    }

    fn now(&self) -> String {
        // A caller that never waits (the watcher) still follows the server's clock: read
        // again once a second at most.
        let stale = self
            .clock
            .lock()
            .is_ok_and(|clock| clock.tried.elapsed() >= CLOCK_REREAD);
        if stale {
            self.read_server_clock();
        }
        crate::rollout::time::rfc3339(self.server_ms())
    }

    fn wait(&mut self, duration: Duration) -> Result<(), cluster::Error> {
        self.ensure_watching()?;
        // `duration` is server time: the wait ends when the server's clock has moved that far
        // (read again every second at most, so a server whose time runs faster is followed),
        // when a watch sees a change (not before a short pause, so a busy cluster does not
        // turn callers' loops into a busy wait), or after `duration` of local time at most.
        let until = self.server_ms() + duration.as_millis() as u64;
        let started = std::time::Instant::now();
        loop {
            let left = until.saturating_sub(self.server_ms());
            if left == 0 || started.elapsed() >= duration {
                return Ok(());
            }
            let slice = Duration::from_millis(left.min(1000));
            let least = slice.min(Duration::from_millis(100));
            let changed = self.changed.clone();
            let woke = block_on(&self.runtime, async {
                tokio::time::sleep(least).await;
                tokio::time::timeout(slice - least, changed.notified())
                    .await
                    .is_ok()
            });
            self.read_server_clock();
            if woke {
                return Ok(());
            }
        }
    }

    fn lock(&mut self, holder: &str) -> Result<(), cluster::Error> {
        if self.lease.is_some() {
            return Ok(());
        }
        let held = lease::acquire(
            &self.runtime,
            &self.client,
            &self.name,
            holder,
            &lease::APPLY,
        )?;
        self.lease = Some(held);
        Ok(())
    }

    fn unlock(&mut self) -> Result<(), cluster::Error> {
        match self.lease.take() {
            Some(held) => lease::release(&self.runtime, &self.client, &self.name, held),
            None => Ok(()),
        }
    }

    fn metric(&self, query: &MetricQuery) -> Result<Option<f64>, cluster::Error> {
        let Some(provider) = &query.provider else {
            return Err(cluster::Error::Backend(format!(
                "{}: analysis of {} on a Kubernetes target needs a metrics provider: add \
                 `provider: {{prometheus: {{address: http://…, query: …}}}}` to the analysis",
                self.name, query.metric
            )));
        };
        let prometheus = &provider.prometheus;
        let secret = |name: &str, key: &str| -> Result<Option<Vec<u8>>, String> {
            let id = ResId {
                gvk: Gvk::from_api_version("v1", "Secret"),
                name: name.to_string(),
                namespace: query.namespace.clone(),
            };
            let found = self.get(&id).map_err(|e| e.to_string())?;
            Ok(found
                .and_then(|s| s.pointer(&format!("/data/{key}")).cloned())
                .and_then(|v| v.as_str().map(str::to_string))
                .and_then(|text| {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD.decode(text).ok()
                }))
        };
        metrics::headers(prometheus, &secret)
            .and_then(|headers| {
                block_on(
                    &self.runtime,
                    metrics::prometheus(prometheus, query, headers),
                )
            })
            .map_err(|e| {
                cluster::Error::Backend(errors::redact(&format!(
                    "{}: analysis of {}: Prometheus at {}: {e}",
                    self.name,
                    query.metric,
                    crate::source::git::redact_url(&prometheus.address)
                )))
            })
    }

    fn warnings(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<String>, cluster::Error> {
        let events = self.list(
            &Gvk::from_api_version("v1", "Event"),
            Some(if namespace.is_empty() {
                "default"
            } else {
                namespace
            }),
            None,
        )?;
        let mut found: Vec<(String, String)> = events
            .iter()
            .filter(|e| e.get("type").and_then(Value::as_str) == Some("Warning"))
            .filter(|e| {
                e.pointer("/involvedObject/kind").and_then(Value::as_str) == Some(kind)
                    && e.pointer("/involvedObject/name").and_then(Value::as_str) == Some(name)
            })
            .map(|e| {
                let at = [
                    "/lastTimestamp",
                    "/eventTime",
                    "/metadata/creationTimestamp",
                ]
                .iter()
                .find_map(|p| e.pointer(p).and_then(Value::as_str))
                .unwrap_or_default()
                .to_string();
                let message = e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                (at, message)
            })
            .collect();
        found.sort();
        Ok(found.into_iter().map(|(_, m)| m).collect())
    }

    fn observe(&mut self, kinds: &[Gvk]) -> Result<Option<Vec<cluster::Observed>>, cluster::Error> {
        let resources = self.resources(false)?;
        for gvk in kinds {
            let key = format!("{}.{}", gvk.kind, gvk.group);
            if self.observers.contains_key(&key) {
                continue;
            }
            // A kind not served (yet) is looked for again on a later call, without a
            // discovery per call: what is applied through this handle refreshes discovery.
            let Some(resource) = resources.find(gvk) else {
                continue;
            };
            let handle = self.runtime.spawn(resources::observe_changes(
                self.client.clone(),
                resource,
                self.observed.clone(),
                self.marker.clone(),
            ));
            self.observers.insert(key, handle);
        }
        let seen = self
            .observed
            .lock()
            .map(|mut seen| std::mem::take(&mut *seen))
            .map_err(|_| cluster::Error::Backend("watch buffer poisoned".into()))?;
        Ok(Some(seen))
    }

    fn change_marker(&mut self) -> u64 {
        // The watches of `wait` (pods, Deployments, ReplicaSets, Services) count changes.
        let _ = self.ensure_watching();
        self.marker.load(Ordering::Relaxed)
    }

    fn lock_watcher(&mut self, holder: &str) -> Result<bool, cluster::Error> {
        if self.watch_lease.is_none() {
            let held = lease::acquire(
                &self.runtime,
                &self.client,
                &self.name,
                "reconcile watch",
                &lease::Kind {
                    holder_note: Some(holder),
                    ..lease::WATCH
                },
            )?;
            self.watch_lease = Some(held);
        }
        Ok(true)
    }

    fn watcher(&self) -> Result<Option<String>, cluster::Error> {
        lease::current_note(&self.runtime, &self.client, &self.name, &lease::WATCH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_clock_follows_its_date_and_never_goes_back_within_a_second() {
        let mut clock = ServerClock {
            at_ms: 1_000_500,
            read: std::time::Instant::now(),
            tried: std::time::Instant::now(),
        };
        // A Date one minute ahead (a faster or skewed server) is taken as it is.
        clock.observe(1_060_000);
        assert!((1_060_000..1_061_000).contains(&clock.now_ms()));
        // A Date of the same second keeps the estimate's fraction.
        let before = clock.now_ms();
        clock.observe(1_060_000);
        assert!(clock.now_ms() >= before);
        // A Date behind the estimate by more than a second wins: the server is the clock.
        clock.observe(1_000_000);
        assert!((1_000_000..1_001_000).contains(&clock.now_ms()));
    }
}
