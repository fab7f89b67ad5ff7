//! Plans and applies: what to create, update, delete or leave, computed from the render and
//! the live state, then carried out in a safe order.
//!
//! [`make_plan`] is a function of (application, rendered objects, live state read through
//! [`Cluster`]); [`apply`] executes a plan through the same trait: waves in order, kinds in
//! dependency order ([`order`]), deletions reversed ([`prune`]), the inventory written last
//! ([`inventory`]), progressive Deployments handed to the rollout driver, and with `wait`
//! everything carried to health.
//!
//! Invariant: only [`Plan`] (masked diffs, ids, digests, resourceVersions) is ever
//! serialized; the prepared objects, which may hold Secret values, never leave memory.

pub mod config;
pub mod file;
pub mod inventory;
#[cfg(test)]
pub mod memory;
pub mod order;
pub mod ownership;
pub mod prune;
mod restarts;
pub mod seal;
pub mod status;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::cluster::{self, CANARY_WEIGHT_ANNOTATION, Cluster, TRACK_LABEL};
use crate::diff::normalize::{
    APPLIED_FIELDS_ANNOTATION, MANAGED_BY_LABEL, MANAGED_BY_VALUE, OWNER_ANNOTATION,
    ROLLOUT_HISTORY_ANNOTATION, ROLLOUT_STATE_ANNOTATION, project, restore_declared_strategy,
    shape,
};
use crate::diff::{self, Change};
use crate::model::{Gvk, ResId};
use crate::rollout::driver::{self, DriveOptions, Outcome};
use crate::rollout::health::{self, Status};
use crate::rollout::{self, Strategy, time};

pub use config::{Application, Config};

/// Errors of planning and applying.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cluster failed on an object.
    #[error("{}: {source}", crate::diff::display_id(id))]
    Cluster {
        /// The object.
        id: Box<ResId>,
        /// The cause.
        source: Box<cluster::Error>,
    },
    /// The target does not take the object (its kind or fields); nothing was applied.
    #[error("{}: {message}", crate::diff::display_id(id))]
    NotServed {
        /// The object.
        id: Box<ResId>,
        /// The API server's words.
        message: String,
    },
    /// The target's lock could not be taken or released.
    #[error("{0}")]
    Lock(Box<cluster::Error>),
    /// The target failed on no object in particular (letting time pass, a full disk).
    #[error("{0}")]
    Target(Box<cluster::Error>),
    /// The inventory cannot be read.
    #[error(transparent)]
    Inventory(#[from] inventory::Error),
    /// Prune with nothing rendered would delete the whole application.
    #[error(
        "application {app}: the render is empty and prune would delete every object of the application; pass --allow-empty if that is what you want"
    )]
    EmptyRender {
        /// The application.
        app: String,
    },
    /// A rendered object exists and belongs to another application.
    #[error(
        "{}: owned by application {owner:?}, not {app:?}; refusing to take it over",
        crate::diff::display_id(id)
    )]
    OwnedByOther {
        /// The object.
        id: Box<ResId>,
        /// Its owner.
        owner: String,
        /// The application planning.
        app: String,
    },
    /// A rendered object exists live and was not created by reconcile.
    #[error(
        "{}: exists and was not created by reconcile; refusing to take it over without an explicit opt-in (pass --adopt, or annotate it {ADOPT_ANNOTATION}: \"true\" in the manifests)",
        crate::diff::display_id(id)
    )]
    NotOwned {
        /// The object.
        id: Box<ResId>,
    },
    /// A sync-wave annotation is not an integer.
    #[error(transparent)]
    InvalidWave(#[from] order::InvalidWave),
    /// A Deployment's strategy is invalid, or the rollout driver failed.
    #[error(transparent)]
    Rollout(#[from] rollout::Error),
    /// A BlueGreen Deployment names a Service that is neither rendered nor live.
    #[error(
        "{}: spec.strategy.blueGreen.{field}: Service {service:?} not found in namespace {namespace:?} (neither rendered nor live)",
        crate::diff::display_id(id)
    )]
    MissingService {
        /// The Deployment.
        id: Box<ResId>,
        /// `activeService` or `previewService`.
        field: String,
        /// The Service's name.
        service: String,
        /// The namespace looked in.
        namespace: String,
    },
    /// The live object's field ownership (`managedFields`) cannot be read.
    #[error("{}: {source}", crate::diff::display_id(id))]
    Ownership {
        /// The object.
        id: Box<ResId>,
        /// The cause.
        source: crate::fields::Error,
    },
    /// A saved plan no longer matches the source or the live state.
    #[error("plan is stale: {reason}; run `reconcile plan` again")]
    Stale {
        /// What changed.
        reason: String,
    },
}

fn cluster_err(id: &ResId) -> impl Fn(cluster::Error) -> Error + '_ {
    move |source| Error::Cluster {
        id: Box::new(id.clone()),
        source: Box::new(source),
    }
}

/// Options of a plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Plan deletions of inventory members no longer rendered.
    pub prune: bool,
    /// Allow prune when nothing is rendered.
    pub allow_empty: bool,
    /// Create the namespaces objects go to that neither exist nor are rendered.
    pub create_namespace: bool,
    /// Take over live objects reconcile did not create (`--adopt`).
    pub adopt: bool,
}

/// Annotation on a declared object (`"true"`) allowing reconcile to take over a live object
/// of that name that it did not create.
pub const ADOPT_ANNOTATION: &str = "reconcile.dev/adopt";

/// One planned action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlannedAction {
    /// create, update, delete or unchanged.
    pub action: Change,
    /// `apps/v1`.
    pub api_version: String,
    /// `Deployment`.
    pub kind: String,
    /// Namespace (absent for cluster-scoped objects).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Sync wave.
    #[serde(default)]
    pub wave: i64,
    /// resourceVersion of the live object the plan was computed from (absent: no object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_resource_version: Option<String>,
    /// Unified diff (live → desired) of the normalised YAML, Secret values masked.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub diff: String,
    /// Set when the update is carried out by the rollout driver (`Canary: 5 steps`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<String>,
    /// True when the update takes over a live object reconcile did not create.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopt: bool,
    /// The live Deployment's rollout has not finished (paused mid-canary, aborted,
    /// degraded): where it stands and what moves it on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unfinished: Option<String>,
}

impl PlannedAction {
    /// The object's id.
    pub fn id(&self) -> ResId {
        ResId {
            gvk: Gvk::from_api_version(&self.api_version, &self.kind),
            name: self.name.clone(),
            namespace: self.namespace.clone(),
        }
    }

    /// True when both name the same object.
    pub fn same_object(&self, other: &PlannedAction) -> bool {
        prune::key(&self.id()) == prune::key(&other.id())
    }

    /// `Deployment demo/web`.
    pub fn display(&self) -> String {
        diff::display_id(&self.id())
    }
}

/// An inventory member left in place, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotPruned {
    /// `apps/v1`.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Why it is kept.
    pub reason: String,
}

/// Counts of actions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    /// Objects to create.
    pub create: usize,
    /// Objects to update.
    pub update: usize,
    /// Objects to delete.
    pub delete: usize,
    /// Objects left as they are.
    pub unchanged: usize,
}

impl Summary {
    /// True when something would change.
    pub fn has_changes(&self) -> bool {
        self.create + self.update + self.delete > 0
    }

    fn add(&mut self, other: &Summary) {
        self.create += other.create;
        self.update += other.update;
        self.delete += other.delete;
        self.unchanged += other.unchanged;
    }

    /// `Plan: 3 to create, 1 to update, 0 to delete.`
    pub fn line(&self) -> String {
        format!(
            "Plan: {} to create, {} to update, {} to delete.",
            self.create, self.update, self.delete
        )
    }
}

/// The plan of one application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Application name.
    pub application: String,
    /// The rendered directory, as given.
    pub source: String,
    /// Digest of the rendered objects and the application's settings (Secrets masked).
    pub source_digest: String,
    /// Keyed digest of the same, Secret values included, with the target's plan key (saved
    /// plans only; see [`seal`]): a Secret value changed since makes the plan stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_mac: Option<String>,
    /// The git revision the objects were rendered from (absent: files on disk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<Revision>,
    /// The target (`engine:.reconcile/engine.db`).
    pub target: String,
    /// Whether deletions were planned.
    pub prune: bool,
    /// resourceVersion of the inventory the plan read (absent: none yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory_resource_version: Option<String>,
    /// Actions in execution order: creates and updates by wave and kind, then deletes.
    pub actions: Vec<PlannedAction>,
    /// Inventory members no longer rendered that are kept, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_pruned: Vec<NotPruned>,
    /// Counts.
    pub summary: Summary,
}

/// A git revision a plan was rendered from; applying a saved plan renders this commit again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Revision {
    /// The repository: a local path, or a URL with its user info redacted.
    pub repo: String,
    /// The ref as given (`main`, `v1.2`, `HEAD~1`).
    #[serde(rename = "ref")]
    pub reference: String,
    /// The commit it resolved to.
    pub sha: String,
}

/// What `plan -o json` prints and `--out` saves: the plans of one or more applications.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanSet {
    /// Format version (1).
    pub format_version: u32,
    /// One plan per application.
    pub plans: Vec<Plan>,
    /// Totals over all plans.
    pub summary: Summary,
    /// Seals of a saved plan, one per target (`plan --out`; see [`seal`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seals: Vec<seal::Seal>,
}

impl PlanSet {
    /// Wraps plans, summing their counts.
    pub fn new(plans: Vec<Plan>) -> PlanSet {
        let mut summary = Summary::default();
        for plan in &plans {
            summary.add(&plan.summary);
        }
        PlanSet {
            format_version: file::FORMAT_VERSION,
            plans,
            summary,
            seals: Vec::new(),
        }
    }
}

/// A plan plus what applying it needs (never serialized).
#[derive(Debug, Clone)]
pub struct Planned {
    /// The plan.
    pub plan: Plan,
    /// The object to send for each create/update action (same index as `plan.actions`).
    objects: Vec<Option<Value>>,
    /// For an update carried out by the rollout driver: the pod template to roll out.
    rollouts: Vec<Option<Value>>,
    /// Unchanged objects whose reconcile bookkeeping (owner, applied fields) is missing.
    bookkeeping: Vec<bool>,
    /// Inventory members after a successful apply (before deletions are subtracted).
    members: Vec<inventory::Member>,
    /// Members of the previous inventory.
    previous_members: Vec<inventory::Member>,
}

impl Planned {
    /// True when applying it starts a Canary or BlueGreen rollout.
    pub fn starts_rollouts(&self) -> bool {
        self.rollouts.iter().any(Option::is_some)
    }
}

/// Kinds that have no namespace.
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "Node",
    "PersistentVolume",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "StorageClass",
    "PriorityClass",
    "IngressClass",
    "RuntimeClass",
    "CSIDriver",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "PodSecurityPolicy",
];

/// True for a cluster-scoped kind.
pub fn is_cluster_scoped(kind: &str) -> bool {
    crate::engine::kinds::by_kind(kind).map_or(CLUSTER_SCOPED.contains(&kind), |k| !k.namespaced)
}

fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

fn meta_map<'a>(object: &'a mut Value, field: &str) -> Option<&'a mut Map<String, Value>> {
    let meta = object
        .as_object_mut()?
        .entry("metadata")
        .or_insert_with(|| json!({}));
    let map = meta
        .as_object_mut()?
        .entry(field.to_string())
        .or_insert_with(|| json!({}));
    if !map.is_object() {
        *map = json!({});
    }
    map.as_object_mut()
}

/// The settings that shape a plan besides the objects (part of the source digest).
fn settings(app: &Application, prune: bool) -> Value {
    json!({"name": app.name, "namespace": app.namespace, "prune": prune, "ignoreDifferences": app.ignore_differences})
}

/// The keyed digest of a plan's source (see [`seal::source_mac`]) with a target's plan key.
pub fn source_mac(
    app: &Application,
    rendered: &[Value],
    prune: bool,
    key_hex: &str,
) -> Result<String, seal::Error> {
    seal::source_mac(key_hex, rendered, &settings(app, prune))
}

/// Rendered objects with the application's default namespace filled in.
pub fn with_namespaces<'a>(app: &Application, rendered: &'a [Value]) -> Vec<Cow<'a, Value>> {
    let namespace = app.namespace.as_deref().unwrap_or("default");
    rendered
        .iter()
        .map(|object| {
            let kind = object
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let has_namespace = object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .is_some_and(|ns| !ns.is_empty());
            if is_cluster_scoped(kind)
                || has_namespace
                || !object.get("metadata").is_some_and(Value::is_object)
            {
                // Copied only when a namespace is added.
                return Cow::Borrowed(object);
            }
            let mut object = object.clone();
            if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("namespace".into(), Value::String(namespace.to_string()));
            }
            Cow::Owned(object)
        })
        .collect()
}

/// Namespace objects for the namespaces `objects` go to that are neither rendered nor live.
fn missing_namespaces(
    objects: &[Cow<'_, Value>],
    cluster: &dyn Cluster,
) -> Result<Vec<Value>, Error> {
    let rendered: HashSet<String> = objects
        .iter()
        .filter(|o| o.get("kind").and_then(Value::as_str) == Some("Namespace"))
        .filter_map(|o| o.pointer("/metadata/name").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    let mut wanted: Vec<String> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for object in objects {
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if namespace.is_empty()
            || is_cluster_scoped(kind)
            || rendered.contains(namespace)
            || !seen.insert(namespace)
        {
            continue;
        }
        wanted.push(namespace.to_string());
    }
    let mut missing = Vec::new();
    for name in wanted {
        let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        let id = ResId::of(&object);
        if cluster.get(&id).map_err(cluster_err(&id))?.is_none() {
            missing.push(object);
        }
    }
    Ok(missing)
}

/// Names of the Services BlueGreen Deployments select with a track label, by namespace.
fn blue_green_services(objects: &[Cow<'_, Value>]) -> Result<HashSet<(String, String)>, Error> {
    let mut services = HashSet::new();
    for object in objects
        .iter()
        .filter(|o| o.get("kind").and_then(Value::as_str) == Some("Deployment"))
    {
        if let Strategy::BlueGreen(spec) = Strategy::of(object)? {
            let namespace = ResId::of(object).namespace;
            services.insert((namespace.clone(), spec.active_service.clone()));
            if let Some(preview) = spec.preview_service {
                services.insert((namespace, preview));
            }
        }
    }
    Ok(services)
}

/// Checks every Deployment's strategy and that BlueGreen Services exist; nothing is applied
/// when this fails.
fn validate(objects: &[Cow<'_, Value>], cluster: &dyn Cluster) -> Result<(), Error> {
    let rendered: HashSet<_> = objects.iter().map(|o| prune::key(&ResId::of(o))).collect();
    // The cluster checks what it will be sent: a Canary/BlueGreen Deployment goes out as its
    // RollingUpdate stand-in, whose strategy a strict API server accepts. Only those are
    // copied.
    let stand_ins: Vec<Option<Value>> = objects
        .iter()
        .map(|object| {
            if object.get("kind").and_then(Value::as_str) != Some("Deployment") {
                return None;
            }
            let strategy = Strategy::of(object).ok()?;
            let mut sent = Value::clone(object);
            driver::stand_in(&mut sent, &strategy);
            Some(sent)
        })
        .collect();
    let sent: Vec<&Value> = objects
        .iter()
        .zip(&stand_ins)
        .map(|(object, stand_in)| stand_in.as_ref().unwrap_or(object))
        .collect();
    match cluster.check_served(&sent) {
        Ok(()) => {}
        Err(cluster::Error::Invalid { id, message }) => {
            return Err(Error::NotServed { id, message });
        }
        Err(other) => return Err(Error::Lock(Box::new(other))),
    }
    for object in objects.iter().map(|o| &**o) {
        order::sync_wave(object)?;
        if object.get("kind").and_then(Value::as_str) != Some("Deployment") {
            continue;
        }
        let id = ResId::of(object);
        if let Strategy::BlueGreen(spec) = Strategy::of(object)? {
            let wanted = [
                ("activeService", Some(spec.active_service.clone())),
                ("previewService", spec.preview_service.clone()),
            ];
            for (field, name) in wanted {
                let Some(name) = name else { continue };
                let service = ResId {
                    gvk: Gvk::from_api_version("v1", "Service"),
                    name: name.clone(),
                    namespace: id.namespace.clone(),
                };
                if rendered.contains(&prune::key(&service)) {
                    continue;
                }
                if cluster
                    .get(&service)
                    .map_err(cluster_err(&service))?
                    .is_none()
                {
                    return Err(Error::MissingService {
                        id: Box::new(id.clone()),
                        field: field.to_string(),
                        service: name,
                        namespace: id.namespace.clone(),
                    });
                }
            }
        }
    }
    Ok(())
}

/// The object to send: the declared one plus reconcile's label and annotations, the live
/// bookkeeping it must keep, live values of ignored fields, and a stand-in strategy.
fn prepare(
    app: &Application,
    declared: &Value,
    live: Option<&Value>,
    bg_services: &HashSet<(String, String)>,
    now: &str,
    status_is_field: bool,
) -> Result<Value, Error> {
    let id = ResId::of(declared);
    let mut object = declared.clone();
    let (normalized, _) = diff::normalized_pair(
        Some(declared),
        None,
        &app.ignore_differences,
        status_is_field,
    );
    let fields = normalized.as_ref().map(shape).unwrap_or(Value::Null);
    if let Some(labels) = meta_map(&mut object, "labels") {
        labels.insert(MANAGED_BY_LABEL.into(), json!(MANAGED_BY_VALUE));
    }
    if let Some(annotations) = meta_map(&mut object, "annotations") {
        annotations.insert(OWNER_ANNOTATION.into(), json!(app.name));
        annotations.insert(APPLIED_FIELDS_ANNOTATION.into(), json!(fields.to_string()));
        // State the rollout driver keeps on live objects survives a re-apply.
        for key in [
            ROLLOUT_STATE_ANNOTATION,
            ROLLOUT_HISTORY_ANNOTATION,
            CANARY_WEIGHT_ANNOTATION,
            rollout::failure::UPDATE_STATUS_ANNOTATION,
        ] {
            if let Some(value) = live.and_then(|l| annotation(l, key)) {
                annotations.insert(key.into(), json!(value));
            }
        }
    }
    // Respect ignoreDifferences: ignored fields keep their live values.
    if let Some(live) = live {
        for pointer in diff::ignored_pointers(&app.ignore_differences, &id) {
            diff::remove_pointers(&mut object, std::slice::from_ref(&pointer));
            if let Some(value) = live.pointer(&pointer) {
                set_pointer(&mut object, &pointer, value.clone());
            }
        }
    }
    match id.gvk.kind.as_str() {
        "Deployment" => {
            let strategy = Strategy::of(declared)?;
            if let Some(template) = object.pointer("/spec/template").cloned() {
                let live_template = live.and_then(|l| l.pointer("/spec/template"));
                if !strategy.is_progressive() && !driver::same_template(live_template, &template) {
                    if let Some(current) = live_template {
                        driver::record_revision(&mut object, current, now, "apply");
                    }
                    driver::record_revision(&mut object, &template, now, "apply");
                }
            }
            driver::stand_in(&mut object, &strategy);
            app.failure_policy.annotate(&mut object);
            rollout::failure::Policy::of(&object)
                .map_err(|message| rollout::Error::Refused(id.clone(), message))?;
        }
        "Service" => {
            let live_track = live
                .and_then(|l| l.pointer("/spec/selector"))
                .and_then(|s| s.get(TRACK_LABEL))
                .and_then(Value::as_str)
                .map(str::to_string);
            let track = live_track.or_else(|| {
                bg_services
                    .contains(&(id.namespace.clone(), id.name.clone()))
                    .then(|| "stable".to_string())
            });
            if let (Some(track), Some(selector)) = (
                track,
                object
                    .pointer_mut("/spec/selector")
                    .and_then(Value::as_object_mut),
            ) {
                selector.insert(TRACK_LABEL.into(), json!(track));
            }
        }
        _ => {}
    }
    Ok(object)
}

/// Sets a value at a JSON pointer, creating maps on the way.
fn set_pointer(object: &mut Value, pointer: &str, value: Value) {
    let tokens: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let Some((last, parents)) = tokens.split_last() else {
        return;
    };
    let mut current = object;
    for token in parents {
        current = match current {
            Value::Object(map) => map.entry(token.clone()).or_insert_with(|| json!({})),
            Value::Array(items) => match token.parse::<usize>().ok().and_then(|i| items.get_mut(i))
            {
                Some(item) => item,
                None => return,
            },
            _ => return,
        };
    }
    match current {
        Value::Object(map) => {
            map.insert(last.clone(), value);
        }
        Value::Array(items) => {
            if let Some(slot) = last.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                *slot = value;
            }
        }
        _ => {}
    }
}

fn resource_version(live: Option<&Value>) -> Option<String> {
    live.map(|l| {
        l.pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    })
}

fn action_of(
    id: &ResId,
    change: Change,
    wave: i64,
    live: Option<&Value>,
    diff: String,
) -> PlannedAction {
    PlannedAction {
        action: change,
        api_version: id.gvk.api_version(),
        kind: id.gvk.kind.clone(),
        namespace: id.namespace.clone(),
        name: id.name.clone(),
        wave,
        live_resource_version: resource_version(live),
        diff,
        rollout: None,
        adopt: false,
        unfinished: live.and_then(driver::unfinished_note),
    }
}

/// A plan entry: the action, the object to write, the template a rollout carries out, and
/// whether an unchanged object's bookkeeping must be written.
type PlanEntry = (PlannedAction, Option<Value>, Option<Value>, bool);

/// Objects planned per task on the thread pool: enough to pay for the hand-off.
const PARALLEL_CHUNK: usize = 256;

/// What every object's plan shares.
struct ObjectContext<'a> {
    app: &'a Application,
    adopt: bool,
    bg_services: &'a HashSet<(String, String)>,
    now: &'a str,
    status_rules: &'a status::StatusRules,
}

/// The plan of one declared object against its live version. `dry_run` is the target when
/// it applies server-side (its dry run shows what it would store).
fn plan_object(
    context: &ObjectContext<'_>,
    declared: &Value,
    live: Option<Value>,
    dry_run: Option<&dyn Cluster>,
) -> Result<PlanEntry, Error> {
    let ObjectContext {
        app,
        adopt: adopt_all,
        bg_services,
        now,
        status_rules,
    } = *context;
    let id = ResId::of(declared);
    if let Some(owner) = live.as_ref().and_then(|l| annotation(l, OWNER_ANNOTATION))
        && owner != app.name
    {
        return Err(Error::OwnedByOther {
            id: Box::new(id),
            owner: owner.to_string(),
            app: app.name.clone(),
        });
    }
    // Taking over an object someone else created needs an explicit opt-in.
    let adopt = live
        .as_ref()
        .is_some_and(|l| annotation(l, OWNER_ANNOTATION).is_none());
    if adopt && !adopt_all && annotation(declared, ADOPT_ANNOTATION) != Some("true") {
        return Err(Error::NotOwned { id: Box::new(id) });
    }
    let status_is_field = status_rules.status_is_field(&id.gvk);
    let mut prepared = prepare(
        app,
        declared,
        live.as_ref(),
        bg_services,
        now,
        status_is_field,
    )?;
    let ownership_err = |source| Error::Ownership {
        id: Box::new(id.clone()),
        source,
    };
    // The diff compares what the apply will write (foreign fields kept, only fields
    // reconcile owned and dropped removed), over the declared and previously applied fields.
    // A server-side-apply target merges the applied configuration itself; otherwise
    // the merge is made here, with the same semantics.
    let server_side = dry_run.is_some();
    let merge = |live: Option<&Value>, prepared: &Value| {
        if server_side {
            Ok(prepared.clone())
        } else {
            ownership::merge_for_apply(live, prepared, now, status_is_field).map_err(ownership_err)
        }
    };
    let mut written = merge(live.as_ref(), &prepared)?;
    let compared = match &live {
        Some(live_object) => {
            let shape = ownership::compared_shape(declared, Some(live_object));
            let seen = |written: &Value| {
                let mut view = written.clone();
                restore_declared_strategy(&mut view);
                diff::compare_object(
                    Some(&project(&view, &shape)),
                    Some(live_object),
                    &app.ignore_differences,
                    status_is_field,
                )
            };
            // What the API server would store (its merge, defaults, webhooks) is compared,
            // so the plan shows real changes only; without a dry run, the local merge.
            match dry_run.and_then(|cluster| cluster.dry_run_apply(&written)) {
                Some(server) => seen(&server),
                None => seen(&written),
            }
        }
        None => diff::compare_object(
            Some(declared),
            None,
            &app.ignore_differences,
            status_is_field,
        ),
    };
    let mut rollout_target = None;
    let mut description = None;
    if let (Some(live), "Deployment") = (&live, id.gvk.kind.as_str()) {
        let strategy = Strategy::of(declared)?;
        let target = declared
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(Value::Null);
        if strategy.is_progressive()
            && !driver::same_template(live.pointer("/spec/template"), &target)
        {
            // The stable track keeps its template; the driver rolls the new one out.
            if let Some(current) = live.pointer("/spec/template") {
                prepared["spec"]["template"] = current.clone();
            }
            written = merge(Some(live), &prepared)?;
            description = Some(match &strategy {
                Strategy::Canary(spec) => format!("Canary: {} steps", spec.steps.len()),
                _ => "BlueGreen".to_string(),
            });
            rollout_target = Some(target);
        }
    }
    let bookkeeping_missing = live.as_ref().is_some_and(|l| {
        ownership::lacks_ownership(l)
            || annotation(l, OWNER_ANNOTATION) != Some(app.name.as_str())
            || annotation(l, APPLIED_FIELDS_ANNOTATION)
                != annotation(&prepared, APPLIED_FIELDS_ANNOTATION)
    });
    let mut action = action_of(
        &id,
        compared.change,
        order::sync_wave(declared)?,
        live.as_ref(),
        compared.diff,
    );
    action.rollout = description;
    if adopt {
        action.adopt = true;
        if action.action == Change::Unchanged {
            action.action = Change::Update;
        }
    }
    Ok((action, Some(written), rollout_target, bookkeeping_missing))
}

/// Computes what applying `rendered` for `app` would do on `cluster`.
pub fn make_plan(
    app: &Application,
    source: &str,
    rendered: &[Value],
    cluster: &dyn Cluster,
    options: &PlanOptions,
) -> Result<Planned, Error> {
    let prune_enabled = options.prune || app.prune;
    if rendered.is_empty() && prune_enabled && !options.allow_empty {
        return Err(Error::EmptyRender {
            app: app.name.clone(),
        });
    }
    let mut objects = with_namespaces(app, rendered);
    let created_namespaces = if options.create_namespace || app.creates_namespaces() {
        missing_namespaces(&objects, cluster)?
    } else {
        Vec::new()
    };
    let created_ids: HashSet<ResId> = created_namespaces.iter().map(ResId::of).collect();
    objects.splice(0..0, created_namespaces.into_iter().map(Cow::Owned));
    validate(&objects, cluster)?;
    let bg_services = blue_green_services(&objects)?;
    let now = cluster.now();
    let status_rules =
        status::StatusRules::of(&objects, cluster).map_err(|(id, source)| Error::Cluster {
            id: Box::new(id),
            source: Box::new(source),
        })?;

    // Creates, updates and unchanged objects, in apply order. The live objects are read in
    // order; each object's plan is then a pure function of (declared, live), made on all cores
    // unless the target's dry run takes part. The first error in object order wins, as one
    // pass would have it.
    let context = ObjectContext {
        app,
        adopt: options.adopt,
        bg_services: &bg_services,
        now: &now,
        status_rules: &status_rules,
    };
    let mut lives = Vec::with_capacity(objects.len());
    let mut read_error = None;
    for declared in &objects {
        let id = ResId::of(declared);
        match cluster.get(&id) {
            Ok(live) => lives.push(live),
            Err(e) => {
                read_error = Some(cluster_err(&id)(e));
                break;
            }
        }
    }
    let mut entries = Vec::with_capacity(lives.len());
    if cluster.applies_server_side() {
        for (declared, live) in objects.iter().zip(lives) {
            entries.push(plan_object(&context, declared, live, Some(cluster))?);
        }
    } else {
        use rayon::prelude::*;
        let planned: Vec<Result<PlanEntry, Error>> = objects[..lives.len()]
            .par_iter()
            .zip(lives.into_par_iter())
            .with_min_len(PARALLEL_CHUNK)
            .map(|(declared, live)| plan_object(&context, declared, live, None))
            .collect();
        for entry in planned {
            entries.push(entry?);
        }
    }
    if let Some(e) = read_error {
        return Err(e);
    }
    let items: Vec<(i64, &str)> = entries
        .iter()
        .map(|(a, ..)| (a.wave, a.kind.as_str()))
        .collect();
    let apply_order = order::apply_order(&items);
    let mut entries: Vec<_> = {
        let mut slots: Vec<Option<_>> = entries.into_iter().map(Some).collect();
        apply_order
            .into_iter()
            .filter_map(|i| slots[i].take())
            .collect()
    };

    // Deletions: inventory members no longer rendered.
    let previous = inventory::read(cluster, &app.name)?;
    let rendered_keys: HashSet<_> = objects.iter().map(|o| prune::key(&ResId::of(o))).collect();
    let candidates: Vec<ResId> = previous
        .members
        .iter()
        .map(inventory::Member::id)
        .filter(|id| !rendered_keys.contains(&prune::key(id)))
        .collect();
    let candidate_keys: HashSet<_> = candidates.iter().map(prune::key).collect();
    let mut deletions = Vec::new();
    let mut not_pruned = Vec::new();
    let mut kept_members = Vec::new();
    for id in &candidates {
        let Some(live) = cluster.get(id).map_err(cluster_err(id))? else {
            continue;
        };
        let id = ResId::of(&live);
        let reason = if prune_enabled {
            prune::keep_reason(cluster, &app.name, &live, &candidate_keys)
                .map_err(cluster_err(&id))?
        } else {
            Some("no longer rendered; `apply --prune` deletes it".to_string())
        };
        match reason {
            Some(reason) => {
                if !reason.starts_with("owned by") && !reason.starts_with("not applied by") {
                    kept_members.push(inventory::Member::of(&id));
                }
                not_pruned.push(NotPruned {
                    api_version: id.gvk.api_version(),
                    kind: id.gvk.kind.clone(),
                    namespace: id.namespace.clone(),
                    name: id.name.clone(),
                    reason,
                });
            }
            None => {
                let compared = diff::compare(None, Some(&live), &app.ignore_differences);
                let wave = order::sync_wave(&live).unwrap_or(0);
                deletions.push(action_of(
                    &id,
                    Change::Delete,
                    wave,
                    Some(&live),
                    compared.diff,
                ));
            }
        }
    }
    let items: Vec<(i64, &str)> = deletions
        .iter()
        .map(|a| (a.wave, a.kind.as_str()))
        .collect();
    let delete_order = order::delete_order(&items);
    let mut slots: Vec<Option<PlannedAction>> = deletions.into_iter().map(Some).collect();
    for index in delete_order {
        if let Some(action) = slots[index].take() {
            entries.push((action, None, None, false));
        }
    }

    let mut summary = Summary::default();
    for (action, ..) in &entries {
        match action.action {
            Change::Create => summary.create += 1,
            Change::Update => summary.update += 1,
            Change::Delete => summary.delete += 1,
            Change::Unchanged => summary.unchanged += 1,
        }
    }
    // Namespaces created for the application are not its own: pruning never deletes them
    // (Argo CD's CreateNamespace leaves them too).
    let mut members: Vec<inventory::Member> = objects
        .iter()
        .map(|object| ResId::of(object))
        .filter(|id| !created_ids.contains(id))
        .map(|id| inventory::Member::of(&id))
        .collect();
    members.extend(kept_members);
    // Moved, not copied: the actions carry every object's diff.
    let mut actions = Vec::with_capacity(entries.len());
    let mut objects_out = Vec::with_capacity(entries.len());
    let mut rollouts = Vec::with_capacity(entries.len());
    let mut bookkeeping = Vec::with_capacity(entries.len());
    for (action, object, rollout_target, missing) in entries {
        actions.push(action);
        objects_out.push(object);
        rollouts.push(rollout_target);
        bookkeeping.push(missing);
    }
    let plan = Plan {
        application: app.name.clone(),
        source: source.to_string(),
        source_digest: file::source_digest(rendered, &settings(app, prune_enabled)),
        source_mac: None,
        revision: None,
        target: cluster.target_name(),
        prune: prune_enabled,
        inventory_resource_version: previous.resource_version.clone(),
        actions,
        not_pruned,
        summary,
    };
    Ok(Planned {
        plan,
        objects: objects_out,
        rollouts,
        bookkeeping,
        members,
        previous_members: previous.members,
    })
}

/// Options of an apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Carry every applied object to health (advancing the cluster clock), wave by wave.
    pub wait: bool,
    /// Give up waiting after this much cluster time (default 10 minutes).
    pub timeout: Option<Duration>,
}

/// What an apply did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplyReport {
    /// Application name.
    pub application: String,
    /// Objects written or deleted, with the change made, in order.
    pub done: Vec<(String, Change)>,
    /// Objects of the plan not applied because of the failure.
    pub not_applied: Vec<String>,
    /// The failure that stopped the apply, if any.
    pub failure: Option<String>,
    /// Rollouts carried out by the driver and how each ended.
    pub rollouts: Vec<(String, Outcome)>,
    /// Objects not healthy when the wait ended (name, health message).
    pub unhealthy: Vec<(String, String)>,
    /// Objects created or updated (what a later [`wait_all`] waits for).
    pub applied: Vec<ResId>,
    /// Objects rendered and already as declared: `--wait` checks their health too (sync and
    /// health are apart, as in Argo CD: a retry with nothing to change still reports a broken
    /// Deployment).
    pub unchanged: Vec<ResId>,
    /// The target's warnings about the writes (a CRD validation rule it could not evaluate).
    pub warnings: Vec<String>,
}

impl ApplyReport {
    /// True when the apply did everything it was asked to (a paused rollout is not a failure).
    pub fn succeeded(&self) -> bool {
        self.failure.is_none()
            && self.unhealthy.is_empty()
            && self
                .rollouts
                .iter()
                .all(|(_, o)| !matches!(o, Outcome::Degraded(_) | Outcome::TimedOut(_)))
    }
}

/// Runs `f` holding the target's lock; the lock is released whatever happens.
pub fn locked<T>(
    cluster: &mut dyn Cluster,
    holder: &str,
    f: impl FnOnce(&mut dyn Cluster) -> Result<T, Error>,
) -> Result<T, Error> {
    cluster.lock(holder).map_err(|e| Error::Lock(Box::new(e)))?;
    let result = f(cluster);
    let released = cluster.unlock().map_err(|e| Error::Lock(Box::new(e)));
    let value = result?;
    released?;
    Ok(value)
}

/// Applies a plan: creates and updates wave by wave (carried to health with `wait`), then
/// deletions, then the inventory. Stops at the first failure, reporting what was applied
/// and what was not. `progress` receives status lines.
pub fn apply(
    planned: &Planned,
    cluster: &mut dyn Cluster,
    options: &ApplyOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<ApplyReport, Error> {
    apply_writes(
        planned,
        Writes::Borrowed(&planned.objects),
        cluster,
        options,
        progress,
    )
}

/// [`apply`], handing the objects to write to the cluster instead of copies (a large
/// application's objects are not held twice). `planned` keeps its plan; it cannot be applied
/// again.
pub fn apply_moving(
    planned: &mut Planned,
    cluster: &mut dyn Cluster,
    options: &ApplyOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<ApplyReport, Error> {
    let objects = std::mem::take(&mut planned.objects);
    apply_writes(planned, Writes::Owned(objects), cluster, options, progress)
}

/// The objects an apply writes: the plan's own, or taken from it.
enum Writes<'a> {
    Borrowed(&'a [Option<Value>]),
    Owned(Vec<Option<Value>>),
}

impl<'a> Writes<'a> {
    fn get(&self, index: usize) -> Option<&Value> {
        match self {
            Writes::Borrowed(objects) => objects.get(index)?.as_ref(),
            Writes::Owned(objects) => objects.get(index)?.as_ref(),
        }
    }

    /// The object to send (taken, when owned: each is written once).
    fn take(&mut self, index: usize) -> Option<Cow<'a, Value>> {
        match self {
            Writes::Borrowed(objects) => objects.get(index)?.as_ref().map(Cow::Borrowed),
            Writes::Owned(objects) => objects.get_mut(index)?.take().map(Cow::Owned),
        }
    }
}

fn apply_writes(
    planned: &Planned,
    mut sent: Writes<'_>,
    cluster: &mut dyn Cluster,
    options: &ApplyOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<ApplyReport, Error> {
    let plan = &planned.plan;
    let mut report = ApplyReport {
        application: plan.application.clone(),
        ..ApplyReport::default()
    };
    let started = time::parse_rfc3339(&cluster.now()).unwrap_or(0);
    let timeout = options.timeout.unwrap_or(Duration::from_secs(600));
    let deadline = started + timeout.as_millis() as u64;
    let mut deleted = HashSet::new();
    let mut failed_at = None;

    // Every object the apply writes is shown to the target first (a server-side dry run on
    // Kubernetes): one it refuses stops the apply before anything, inventory included, is
    // written.
    let checked: Vec<usize> = (0..plan.actions.len())
        .filter(|i| {
            matches!(plan.actions[*i].action, Change::Create | Change::Update)
                || planned.bookkeeping[*i]
        })
        .filter(|i| sent.get(*i).is_some())
        .collect();
    let objects: Vec<&Value> = checked.iter().filter_map(|i| sent.get(*i)).collect();
    if let Err((at, e)) = cluster.check_writes(&objects) {
        return Err(Error::NotServed {
            id: Box::new(plan.actions[checked[at]].id()),
            message: format!("{}; nothing was applied", reason(&e)),
        });
    }

    // Intent first (as cli-utils does): before any object is written, the inventory lists
    // every object about to be applied, so an apply killed at any point leaves nothing a later
    // prune cannot find. It is trimmed to what exists at the end.
    let inventory_id = inventory::inventory_id(&plan.application);
    let mut recorded = planned.previous_members.clone();
    let mut listed: HashSet<_> = recorded.iter().map(|m| prune::key(&m.id())).collect();
    for member in &planned.members {
        if listed.insert(prune::key(&member.id())) {
            recorded.push(member.clone());
        }
    }
    let mut inventory_written = plan.inventory_resource_version.is_some();
    if recorded != planned.previous_members || !inventory_written {
        let object = inventory::to_object(
            &plan.application,
            &recorded,
            &plan.source_digest,
            &cluster.now(),
        );
        cluster.apply(&object).map_err(cluster_err(&inventory_id))?;
        inventory_written = true;
    } else {
        recorded = planned.previous_members.clone();
    }

    let writes: Vec<usize> = (0..plan.actions.len())
        .filter(|i| plan.actions[*i].action != Change::Delete)
        .collect();
    let mut waves: Vec<i64> = writes.iter().map(|i| plan.actions[*i].wave).collect();
    waves.dedup();
    // An error of the target in the middle (a full disk, a failed rollout step) ends the
    // apply as a failure with its report (what was applied and what was not), never as a bare
    // error: the caller still prints the report and releases the lock.
    macro_rules! stop_on_error {
        ($label:lifetime, $result:expr) => {
            match $result {
                Ok(value) => value,
                Err(e) => {
                    report.failure = Some(Error::from(e).to_string());
                    failed_at = Some(usize::MAX);
                    break $label;
                }
            }
        };
    }
    'waves: for wave in waves {
        let mut written = Vec::new();
        let mut rollouts = Vec::new();
        // One batch per wave: the cluster may settle once for all of it.
        let batch: Vec<usize> = writes
            .iter()
            .copied()
            .filter(|i| plan.actions[*i].wave == wave)
            .filter(|i| {
                matches!(plan.actions[*i].action, Change::Create | Change::Update)
                    || planned.bookkeeping[*i]
            })
            .filter(|i| sent.get(*i).is_some())
            .collect();
        let objects: Vec<Cow<'_, Value>> = batch.iter().filter_map(|i| sent.take(*i)).collect();
        let (succeeded, failure) = match cluster.apply_batch(objects) {
            Ok(_) => (batch.len(), None),
            Err((at, e)) => (at, Some((batch[at], e))),
        };
        report.warnings.extend(cluster.take_warnings());
        for &index in &batch[..succeeded] {
            let action = &plan.actions[index];
            let id = action.id();
            if action.action != Change::Unchanged {
                report.done.push((action.display(), action.action));
                progress(&format!("{}: {}", action.display(), past(action.action)));
                written.push(id.clone());
                report.applied.push(id.clone());
            }
            if let Some(target) = &planned.rollouts[index] {
                let cause = format!("apply {}", driver::images(target).join(", "));
                stop_on_error!('waves, driver::start(cluster, &id, target, &cause));
                rollouts.push(id);
            } else if stop_on_error!('waves, driver::unfinished(cluster, &id)) {
                // A rollout an earlier run left behind (killed, timed out) goes on from
                // where it stopped.
                rollouts.push(id);
            }
        }
        if let Some((index, e)) = failure {
            report.failure = Some(format!("{}: {}", plan.actions[index].display(), reason(&e)));
            failed_at = Some(index);
            break 'waves;
        }
        for id in &rollouts {
            let remaining = Duration::from_millis(
                deadline.saturating_sub(time::parse_rfc3339(&cluster.now()).unwrap_or(0)),
            );
            let drive = DriveOptions {
                advance_time: options.wait,
                timeout: Some(remaining),
                all_notes: true,
            };
            let outcome = stop_on_error!('waves, driver::drive(cluster, id, drive, progress));
            let failure = match &outcome {
                Outcome::Degraded(message) => Some(format!(
                    "rollout of {} is Degraded: {message}",
                    diff::display_id(id)
                )),
                Outcome::TimedOut(message) => Some(format!(
                    "rollout of {} did not finish in time: {message}",
                    diff::display_id(id)
                )),
                _ => None,
            };
            report.rollouts.push((diff::display_id(id), outcome));
            if failure.is_some() {
                report.failure = failure;
                failed_at = Some(usize::MAX);
                break 'waves;
            }
        }
        // Objects of the wave already as declared are waited for too: nothing to write does
        // not mean healthy.
        let mut waited: HashSet<_> = written.iter().map(prune::key).collect();
        for action in plan
            .actions
            .iter()
            .filter(|a| a.wave == wave && a.action == Change::Unchanged)
        {
            let id = action.id();
            if waited.insert(prune::key(&id)) {
                written.push(id.clone());
                report.unchanged.push(id);
            }
        }
        if options.wait
            && !stop_on_error!('waves, wait_healthy(
                cluster,
                &written,
                deadline,
                &mut report,
                progress
            ))
        {
            failed_at = Some(usize::MAX);
            break 'waves;
        }
    }

    if failed_at.is_none() {
        for action in plan.actions.iter().filter(|a| a.action == Change::Delete) {
            let id = action.id();
            match cluster.delete(&id) {
                Ok(_) => {
                    deleted.insert(prune::key(&id));
                    report.done.push((action.display(), Change::Delete));
                    progress(&format!("{}: deleted", action.display()));
                }
                Err(e) => {
                    report.failure = Some(format!("{}: {}", action.display(), reason(&e)));
                    break;
                }
            }
        }
    }
    if report.failure.is_some() {
        let done: HashSet<&str> = report.done.iter().map(|(d, _)| d.as_str()).collect();
        report.not_applied = plan
            .actions
            .iter()
            .filter(|a| a.action != Change::Unchanged && !done.contains(a.display().as_str()))
            .map(PlannedAction::display)
            .collect();
    }

    // The inventory: everything rendered that exists, plus what was not deleted. Sets keep
    // this linear in the number of objects.
    let done: HashSet<&str> = report.done.iter().map(|(d, _)| d.as_str()).collect();
    let existing: HashSet<_> = plan
        .actions
        .iter()
        .filter(|a| a.action == Change::Unchanged || done.contains(a.display().as_str()))
        .map(|a| prune::key(&a.id()))
        .collect();
    let mut members: Vec<inventory::Member> = if report.failure.is_none() {
        planned.members.clone()
    } else {
        // After a failure, keep everything that might exist so a later prune still sees it.
        let mut members = planned.previous_members.clone();
        let mut listed: HashSet<_> = members.iter().map(|m| prune::key(&m.id())).collect();
        for member in &planned.members {
            let key = prune::key(&member.id());
            if existing.contains(&key) && listed.insert(key) {
                members.push(member.clone());
            }
        }
        members
    };
    members.retain(|m| !deleted.contains(&prune::key(&m.id())));
    if members != recorded || !inventory_written {
        let object = inventory::to_object(
            &plan.application,
            &members,
            &plan.source_digest,
            &cluster.now(),
        );
        if let Err(e) = cluster.apply(&object) {
            let e = cluster_err(&inventory_id)(e);
            if report.failure.is_none() {
                return Err(e);
            }
            // The apply failed already (a full disk fails this write too): the inventory
            // written first still lists everything that may exist, so nothing is lost.
        }
    }
    Ok(report)
}

/// A cluster error's words without the object id (the caller names the object).
fn reason(error: &cluster::Error) -> String {
    match error {
        cluster::Error::Invalid { message, .. } => message.clone(),
        cluster::Error::NotFound(_) => "not found".to_string(),
        cluster::Error::Conflict {
            expected, found, ..
        } => format!(
            "conflict: the object has been modified (resourceVersion {expected} expected, {found} found)"
        ),
        other => other.to_string(),
    }
}

/// Carries what several applications applied without waiting to health, together: their
/// rollouts first, then every object. Failures are recorded in the report of the
/// application whose object failed. Applying many applications one after the other and
/// waiting once costs one wait instead of one per application.
pub fn wait_all(
    cluster: &mut dyn Cluster,
    reports: &mut [ApplyReport],
    timeout: Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<(), Error> {
    let started = time::parse_rfc3339(&cluster.now()).unwrap_or(0);
    let deadline = started + timeout.as_millis() as u64;
    for report in reports.iter_mut() {
        for (name, outcome) in report.rollouts.iter_mut() {
            if !matches!(outcome, Outcome::Waiting(_)) {
                continue;
            }
            let Some(id) = report
                .applied
                .iter()
                .find(|id| diff::display_id(id) == *name)
                .cloned()
            else {
                continue;
            };
            let remaining = Duration::from_millis(
                deadline.saturating_sub(time::parse_rfc3339(&cluster.now()).unwrap_or(0)),
            );
            *outcome = driver::drive(
                cluster,
                &id,
                DriveOptions {
                    advance_time: true,
                    timeout: Some(remaining),
                    ..Default::default()
                },
                progress,
            )?;
            match outcome {
                Outcome::Degraded(message) => {
                    report.failure = Some(format!("rollout of {name} is Degraded: {message}"));
                }
                Outcome::TimedOut(message) => {
                    report.failure = Some(format!(
                        "rollout of {name} did not finish in time: {message}"
                    ));
                }
                _ => {}
            }
        }
    }
    let ids: Vec<ResId> = reports
        .iter()
        .filter(|r| r.failure.is_none())
        .flat_map(|r| r.applied.iter().chain(&r.unchanged).cloned())
        .collect();
    let mut scratch = ApplyReport::default();
    if wait_healthy(cluster, &ids, deadline, &mut scratch, progress)? {
        return Ok(());
    }
    for report in reports.iter_mut() {
        let mine: Vec<String> = report
            .applied
            .iter()
            .chain(&report.unchanged)
            .map(diff::display_id)
            .collect();
        let unhealthy: Vec<(String, String)> = scratch
            .unhealthy
            .iter()
            .filter(|(name, _)| mine.contains(name))
            .cloned()
            .collect();
        if !unhealthy.is_empty() {
            let what: Vec<String> = unhealthy
                .iter()
                .map(|(n, m)| format!("{n} ({m})"))
                .collect();
            report.failure = Some(format!("not healthy in time: {}", what.join(", ")));
            report.unhealthy = unhealthy;
        }
    }
    Ok(())
}

/// The number of distinct sync waves of a plan's creates and updates.
pub fn wave_count(plan: &Plan) -> usize {
    let mut waves: Vec<i64> = plan
        .actions
        .iter()
        .filter(|a| a.action != Change::Delete)
        .map(|a| a.wave)
        .collect();
    waves.sort_unstable();
    waves.dedup();
    waves.len()
}

fn past(change: Change) -> &'static str {
    match change {
        Change::Create => "created",
        Change::Update => "updated",
        Change::Delete => "deleted",
        Change::Unchanged => "unchanged",
    }
}

/// Waits until every object is healthy; `false` (with the report filled) on Degraded or
/// timeout.
fn wait_healthy(
    cluster: &mut dyn Cluster,
    ids: &[ResId],
    deadline: u64,
    report: &mut ApplyReport,
    progress: &mut dyn FnMut(&str),
) -> Result<bool, Error> {
    let mut last: HashMap<String, String> = HashMap::new();
    // The generation each Deployment was written with: a failure of that update (or a later
    // one) ends the wait.
    let mut generations: HashMap<String, i64> = HashMap::new();
    loop {
        let mut pending = Vec::new();
        for id in ids {
            let live = cluster.get(id).map_err(cluster_err(id))?;
            let plain_deployment = match (&live, id.gvk.kind.as_str()) {
                (Some(live), "Deployment") => !Strategy::of(live)?.is_progressive(),
                _ => false,
            };
            let h = match &live {
                Some(live) if plain_deployment => {
                    let written = *generations.entry(diff::display_id(id)).or_insert_with(|| {
                        live.pointer("/metadata/generation")
                            .and_then(Value::as_i64)
                            .unwrap_or(0)
                    });
                    if !cluster.drives_rollouts() {
                        driver::guard(cluster, id)?;
                    }
                    let mut h = driver::deployment_health(cluster, live, written)?;
                    if h.status == Status::Healthy {
                        // Available now, but its pods keep restarting: not healthy.
                        let pods: Vec<Value> = driver::new_pods(cluster, live)?
                            .into_iter()
                            .map(|(pod, _)| pod)
                            .collect();
                        let now = time::parse_rfc3339(&cluster.now()).unwrap_or(0);
                        if let Some(why) =
                            restarts::crash_looping(&pods, now, restarts::window_ms(live))
                        {
                            h.status = Status::Progressing;
                            h.message = why;
                        }
                    }
                    h
                }
                _ => {
                    let endpoints = if id.gvk.kind == "Service" {
                        let ep = ResId {
                            gvk: Gvk::from_api_version("v1", "Endpoints"),
                            ..id.clone()
                        };
                        cluster.get(&ep).ok().flatten()
                    } else {
                        None
                    };
                    health::health(live.as_ref(), endpoints.as_ref())
                }
            };
            let name = diff::display_id(id);
            match h.status {
                Status::Healthy | Status::Suspended => {
                    if last.get(&name).is_some_and(|m| m != "healthy") {
                        progress(&format!("{name}: healthy"));
                    }
                    last.insert(name, "healthy".into());
                }
                Status::Degraded => {
                    report.unhealthy.push((name.clone(), h.message.clone()));
                    report.failure = Some(format!("{name} is Degraded: {}", h.message));
                    return Ok(false);
                }
                _ => {
                    if last.get(&name) != Some(&h.message) {
                        progress(&format!("{name}: {}", h.message));
                    }
                    last.insert(name.clone(), h.message.clone());
                    pending.push((name, format!("{}: {}", h.status, h.message)));
                }
            }
        }
        if pending.is_empty() {
            return Ok(true);
        }
        let now = time::parse_rfc3339(&cluster.now()).unwrap_or(0);
        if now >= deadline {
            report.failure = Some(format!(
                "timed out waiting for {}",
                pending
                    .iter()
                    .map(|(n, m)| format!("{n} ({m})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            report.unhealthy = pending;
            return Ok(false);
        }
        let step = Duration::from_millis((deadline - now).min(1000));
        cluster.wait(step).map_err(|e| Error::Target(Box::new(e)))?;
    }
}

/// Checks a saved plan against a fresh one: `Err(Stale)` when the source or the live state
/// changed since.
pub fn check_fresh(saved: &Plan, fresh: &Plan) -> Result<(), Error> {
    match file::staleness(saved, fresh) {
        Some(reason) => Err(Error::Stale { reason }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;

fn pretty_schema(schema: &schemars::Schema) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}

/// The JSON Schema of `plan -o json` and of plan files (committed as `schemas/plan.json`).
pub fn plan_schema() -> String {
    pretty_schema(&schemars::schema_for!(PlanSet))
}

/// The JSON Schema of `reconcile.yaml` (committed as `schemas/config.json`).
pub fn config_schema() -> String {
    pretty_schema(&schemars::schema_for!(Config))
}

/// The JSON Schema of a Deployment's `spec.strategy` with the BlueGreen and Canary
/// extensions (committed as `schemas/strategy.json`).
pub fn strategy_schema() -> String {
    pretty_schema(&schemars::schema_for!(rollout::StrategySpec))
}
