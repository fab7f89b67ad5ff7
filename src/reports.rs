//! The machine-readable outputs CI reads (`-o json` of `apply`, `rollout status`, `validate`,
//! `engine events`): their types, built from the library's results, and their JSON Schemas
//! (committed under `schemas/`, printed by `reconcile schema NAME`).
//!
//! Invariant: these shapes are a documented contract; a change shows as a stale schema.

use schemars::JsonSchema;
use serde::Serialize;

use crate::diff::Change;
use crate::plan::{ApplyReport, Plan};
use crate::rollout::driver::{Outcome, RolloutStatus};

/// `reconcile apply -o json`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplyOutput {
    /// Every application applied (or planned, under `--dry-run`), in order.
    pub applications: Vec<ApplyApplication>,
    /// True when every application succeeded.
    pub succeeded: bool,
}

/// One application of an apply.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplyApplication {
    /// Application name.
    pub application: String,
    /// Its source (a path).
    pub source: String,
    /// The target (`engine`, `engine:PATH`).
    pub target: String,
    /// True under `--dry-run`: nothing was changed.
    pub dry_run: bool,
    /// Every object of the plan and what happened to it.
    pub objects: Vec<ObjectResult>,
    /// Rollouts carried by the driver and how each ended.
    pub rollouts: Vec<RolloutResult>,
    /// Health when the apply ended.
    pub health: HealthVerdict,
    /// Objects not healthy when the wait ended.
    pub unhealthy: Vec<Unhealthy>,
    /// The failure that stopped the apply, if any.
    pub failure: Option<String>,
    /// True when the apply did everything asked.
    pub succeeded: bool,
}

/// What happened to one object.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectResult {
    /// `Deployment gallery-dev/web`.
    pub object: String,
    /// `apps/v1`.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The outcome.
    pub result: ObjectOutcome,
}

/// The outcome for one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ObjectOutcome {
    /// Created.
    Created,
    /// Updated.
    Updated,
    /// Deleted (prune).
    Deleted,
    /// Already as declared.
    Unchanged,
    /// Planned but not done: a failure stopped the apply first.
    NotApplied,
    /// `--dry-run`: would be created.
    WouldCreate,
    /// `--dry-run`: would be updated.
    WouldUpdate,
    /// `--dry-run`: would be deleted.
    WouldDelete,
}

/// How a rollout ended.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutResult {
    /// The Deployment.
    pub object: String,
    /// `healthy`, `degraded`, `paused`, `waiting` or `timedOut`.
    pub outcome: String,
    /// Why.
    pub message: String,
}

/// The health verdict of an apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub enum HealthVerdict {
    /// `--wait` checked every object: all healthy.
    Healthy,
    /// Some object is not healthy (see `unhealthy`), or a rollout failed.
    Unhealthy,
    /// Not checked (no `--wait`, or `--dry-run`).
    NotChecked,
}

/// An object not healthy, and why.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Unhealthy {
    /// The object.
    pub object: String,
    /// Its health message.
    pub message: String,
}

fn outcome_word(outcome: &Outcome) -> (&'static str, &str) {
    match outcome {
        Outcome::Healthy(m) => ("healthy", m),
        Outcome::Degraded(m) => ("degraded", m),
        Outcome::Paused(m) => ("paused", m),
        Outcome::Waiting(m) => ("waiting", m),
        Outcome::TimedOut(m) => ("timedOut", m),
    }
}

impl ApplyApplication {
    /// What an apply did, object by object: `plan` is what it set out to do.
    pub fn applied(plan: &Plan, report: &ApplyReport, waited: bool) -> ApplyApplication {
        // The first change recorded for each object, looked up once per action.
        let mut done: std::collections::HashMap<&str, Change> =
            std::collections::HashMap::with_capacity(report.done.len());
        for (name, change) in &report.done {
            done.entry(name.as_str()).or_insert(*change);
        }
        let objects = plan
            .actions
            .iter()
            .map(|action| {
                let done = done.get(action.display().as_str()).copied();
                let result = match (done, action.action) {
                    (Some(Change::Create), _) => ObjectOutcome::Created,
                    (Some(Change::Update), _) => ObjectOutcome::Updated,
                    (Some(Change::Delete), _) => ObjectOutcome::Deleted,
                    (_, Change::Unchanged) | (Some(Change::Unchanged), _) => {
                        ObjectOutcome::Unchanged
                    }
                    (None, _) => ObjectOutcome::NotApplied,
                };
                ObjectResult::of(action, result)
            })
            .collect();
        let succeeded = report.succeeded();
        ApplyApplication {
            application: plan.application.clone(),
            source: plan.source.clone(),
            target: plan.target.clone(),
            dry_run: false,
            objects,
            rollouts: report
                .rollouts
                .iter()
                .map(|(object, outcome)| {
                    let (word, message) = outcome_word(outcome);
                    RolloutResult {
                        object: object.clone(),
                        outcome: word.to_string(),
                        message: message.to_string(),
                    }
                })
                .collect(),
            health: if !succeeded {
                HealthVerdict::Unhealthy
            } else if waited {
                HealthVerdict::Healthy
            } else {
                HealthVerdict::NotChecked
            },
            unhealthy: report
                .unhealthy
                .iter()
                .map(|(object, message)| Unhealthy {
                    object: object.clone(),
                    message: message.clone(),
                })
                .collect(),
            failure: report.failure.clone(),
            succeeded,
        }
    }

    /// What a `--dry-run` would do: the plan, nothing changed.
    pub fn dry_run(plan: &Plan) -> ApplyApplication {
        let objects = plan
            .actions
            .iter()
            .map(|action| {
                let result = match action.action {
                    Change::Create => ObjectOutcome::WouldCreate,
                    Change::Update => ObjectOutcome::WouldUpdate,
                    Change::Delete => ObjectOutcome::WouldDelete,
                    Change::Unchanged => ObjectOutcome::Unchanged,
                };
                ObjectResult::of(action, result)
            })
            .collect();
        ApplyApplication {
            application: plan.application.clone(),
            source: plan.source.clone(),
            target: plan.target.clone(),
            dry_run: true,
            objects,
            rollouts: Vec::new(),
            health: HealthVerdict::NotChecked,
            unhealthy: Vec::new(),
            failure: None,
            succeeded: true,
        }
    }
}

impl ObjectResult {
    fn of(action: &crate::plan::PlannedAction, result: ObjectOutcome) -> ObjectResult {
        ObjectResult {
            object: action.display(),
            api_version: action.api_version.clone(),
            kind: action.kind.clone(),
            namespace: action.namespace.clone(),
            name: action.name.clone(),
            result,
        }
    }
}

/// `reconcile rollout status -o json`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatusOutput {
    /// Namespace of the Deployment.
    pub namespace: String,
    /// Name of the Deployment.
    pub name: String,
    /// `RollingUpdate`, `Recreate`, `BlueGreen` or `Canary`.
    pub strategy: String,
    /// Images of the stable Deployment.
    pub images: Vec<String>,
    /// Replicas of the stable Deployment.
    pub replicas: Replicas,
    /// The second track (`canary`, `preview`) while one exists.
    pub track: Option<TrackOutput>,
    /// Health of the stable Deployment: status and why.
    pub health: HealthOutput,
    /// The rollout reconcile drives (Canary, BlueGreen), if any.
    pub rollout: Option<RolloutStateOutput>,
    /// Why pods of the new version fail (`2/4 new pods CrashLoopBackOff: exit code 1`), if
    /// they do.
    pub cause: Option<String>,
}

/// Replica counts.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Replicas {
    /// Declared.
    pub desired: i64,
    /// Of the current template.
    pub updated: i64,
    /// Available.
    pub available: i64,
}

/// The second track of a rollout.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TrackOutput {
    /// `canary` or `preview`.
    pub track: String,
    /// Declared replicas.
    pub desired: i64,
    /// Available replicas.
    pub available: i64,
    /// Its images (the version being rolled out).
    pub images: Vec<String>,
}

/// A health status and its reason.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct HealthOutput {
    /// `Healthy`, `Progressing`, `Degraded`, `Suspended` or `Missing`.
    pub status: String,
    /// Why (empty when healthy).
    pub message: String,
}

/// Where a driven rollout is.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStateOutput {
    /// `Progressing`, `Paused`, `Healthy`, `Degraded`…
    pub phase: String,
    /// The revision being rolled out.
    pub revision: u64,
    /// Canary: the current step (0-based; = number of steps when done).
    pub step: usize,
    /// Canary: traffic weight of the new version (%).
    pub weight: u32,
    /// The strategy's sub-stage.
    pub stage: String,
    /// Where it is or why it stopped.
    pub message: String,
}

impl RolloutStatusOutput {
    /// The JSON view of a rollout status.
    pub fn of(status: &RolloutStatus) -> RolloutStatusOutput {
        let (desired, updated, available) = status.replicas;
        RolloutStatusOutput {
            namespace: status.id.namespace.clone(),
            name: status.id.name.clone(),
            strategy: status.strategy.clone(),
            images: status.images.clone(),
            replicas: Replicas {
                desired,
                updated,
                available,
            },
            track: status
                .track
                .as_ref()
                .map(|(track, desired, available)| TrackOutput {
                    track: track.clone(),
                    desired: *desired,
                    available: *available,
                    images: status.track_images.clone(),
                }),
            health: HealthOutput {
                status: status.health.status.to_string(),
                message: status.health.message.clone(),
            },
            rollout: status.state.as_ref().map(|state| RolloutStateOutput {
                phase: format!("{:?}", state.phase),
                revision: state.revision,
                step: state.step,
                weight: state.weight,
                stage: state.stage.clone(),
                message: state.message.clone(),
            }),
            cause: status.cause.clone(),
        }
    }
}

/// `reconcile validate -o json`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ValidateOutput {
    /// The directory validated.
    pub path: String,
    /// True when no problem was found.
    pub valid: bool,
    /// Every problem found, one sentence each (file, object and cause).
    pub problems: Vec<String>,
}

/// `reconcile engine events -o json`: events oldest first.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct EventsOutput {
    /// The events.
    pub items: Vec<EventOutput>,
}

/// One event, in the words of a Kubernetes Event.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventOutput {
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Machine-readable reason (`Scheduled`, `BackOff`).
    pub reason: String,
    /// The object the event is about.
    pub involved_object: InvolvedObject,
    /// Human message.
    pub message: String,
    /// Reporting component.
    pub source: String,
    /// How many times it happened.
    pub count: u64,
    /// First occurrence (RFC 3339, cluster time).
    pub first_timestamp: String,
    /// Last occurrence (RFC 3339, cluster time).
    pub last_timestamp: String,
}

/// The object an event is about.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct InvolvedObject {
    /// Kind.
    pub kind: String,
    /// Namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl EventOutput {
    /// The JSON view of an engine event.
    pub fn of(event: &crate::engine::events::Event) -> EventOutput {
        EventOutput {
            kind: event.kind.clone(),
            reason: event.reason.clone(),
            involved_object: InvolvedObject {
                kind: event.object_kind.clone(),
                namespace: event.namespace.clone(),
                name: event.object_name.clone(),
            },
            message: event.message.clone(),
            source: event.source.clone(),
            count: event.count,
            first_timestamp: crate::engine::clock::rfc3339(event.first),
            last_timestamp: crate::engine::clock::rfc3339(event.last),
        }
    }
}

/// The names `reconcile schema` knows for these outputs, with their committed file names.
pub const SCHEMAS: [(&str, &str); 5] = [
    ("apply", "apply.json"),
    ("rollout-status", "rollout-status.json"),
    ("rollout-get", "rollout-get.json"),
    ("validate", "validate.json"),
    ("events", "events.json"),
];

/// The JSON Schema of an output (`apply`, `rollout-status`, `validate`, `events`).
pub fn schema(name: &str) -> Option<String> {
    let schema = match name {
        "apply" => schemars::schema_for!(ApplyOutput),
        "rollout-status" => schemars::schema_for!(RolloutStatusOutput),
        "rollout-get" => schemars::schema_for!(crate::rollout::view::RolloutView),
        "validate" => schemars::schema_for!(ValidateOutput),
        "events" => schemars::schema_for!(EventsOutput),
        _ => return None,
    };
    Some(serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n")
}
