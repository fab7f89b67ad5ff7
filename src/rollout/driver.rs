//! The driver: observes the cluster, runs a strategy step, executes its actions through the
//! [`Cluster`] primitives and persists the state in the stable Deployment's annotations.
//!
//! Also the operations of `reconcile rollout …`: status, history, undo, promote, abort,
//! pause, resume.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{
    Action, Decision, Error, Next, Observation, Phase, State, Strategy, Track, TrackStatus,
    bluegreen, canary, failure, health, start_state, step, time, wants_metric,
};
use crate::cluster::{CANARY_WEIGHT_ANNOTATION, Cluster, MetricQuery, TRACK_LABEL};
use crate::diff::normalize::{
    MANAGED_BY_LABEL, MANAGED_BY_VALUE, OWNER_ANNOTATION, ROLLOUT_HISTORY_ANNOTATION,
    ROLLOUT_STATE_ANNOTATION, STRATEGY_ANNOTATION, align_numbers, drop_empty, project, shape,
};
use crate::model::{Gvk, ResId};

/// The revision annotation of Deployments and ReplicaSets.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// The label tying a ReplicaSet's pods to its template.
const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// Most steps one drive takes without time passing; more means a bug, reported as an error.
const MAX_IMMEDIATE_STEPS: usize = 1_000;

/// One revision of a Deployment's pod template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    /// 1, 2, 3 …
    pub revision: u64,
    /// Container images of the template.
    pub images: Vec<String>,
    /// The pod template.
    pub template: Value,
    /// When it was recorded (cluster time).
    pub at: String,
    /// Why (`apply`, `rollback to 2` …).
    pub cause: String,
    /// How its rollout ended, once it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<RevisionOutcome>,
}

/// How the rollout of a revision ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RevisionOutcome {
    /// It became healthy (a revision `undo` may return to).
    Healthy,
    /// It was aborted (by an analysis, a deadline, a person); why.
    Aborted(String),
    /// It failed and was rolled back automatically; why.
    RolledBack(String),
}

impl std::fmt::Display for RevisionOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RevisionOutcome::Healthy => f.write_str("healthy"),
            RevisionOutcome::Aborted(why) => write!(f, "aborted: {why}"),
            RevisionOutcome::RolledBack(why) => write!(f, "rolled back: {why}"),
        }
    }
}

/// Marks revision `revision` of the history carried by `object` with how it ended.
pub fn mark_revision(object: &mut Value, revision: u64, outcome: RevisionOutcome) {
    let mut revisions = history(object);
    let Some(entry) = revisions.iter_mut().find(|r| r.revision == revision) else {
        return;
    };
    entry.outcome = Some(outcome);
    set_annotation(
        object,
        ROLLOUT_HISTORY_ANNOTATION,
        serde_json::to_string(&revisions).ok(),
    );
}

/// How a drive ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done, or nothing to do.
    Healthy(String),
    /// Aborted; the message says why.
    Degraded(String),
    /// Waiting for a person.
    Paused(String),
    /// Needs cluster time to pass and the caller did not ask to wait.
    Waiting(String),
    /// The timeout passed first.
    TimedOut(String),
}

/// How far to drive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriveOptions {
    /// Let cluster time pass ([`Cluster::wait`]); otherwise stop at the first wait.
    pub advance_time: bool,
    /// Give up after this much cluster time.
    pub timeout: Option<Duration>,
    /// Report every message the rollout recorded, not only those after the drive began
    /// (for a rollout the caller just started).
    pub all_notes: bool,
}

pub(crate) fn cluster_err(id: &ResId) -> impl Fn(crate::cluster::Error) -> Error + '_ {
    move |source| Error::Cluster {
        id: id.clone(),
        source: Box::new(source),
    }
}

fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

fn set_annotation(object: &mut Value, key: &str, value: Option<String>) {
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(map) = annotations {
        match value {
            Some(v) => {
                map.insert(key.to_string(), Value::String(v));
            }
            None => {
                map.remove(key);
            }
        }
    }
}

fn set_label(object: &mut Value, pointer: &str, key: &str, value: &str) {
    let mut current = object;
    for token in pointer.split('/').filter(|t| !t.is_empty()) {
        if !current.is_object() {
            *current = Value::Object(Map::new());
        }
        let Value::Object(map) = current else { return };
        current = map
            .entry(token.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if !current.is_object() {
        *current = Value::Object(Map::new());
    }
    if let Value::Object(map) = current {
        map.insert(key.to_string(), Value::String(value.to_string()));
    }
}

/// The rollout state recorded on a live Deployment, if any.
pub fn read_state(live: &Value) -> Result<Option<State>, Error> {
    let Some(text) = annotation(live, ROLLOUT_STATE_ANNOTATION) else {
        return Ok(None);
    };
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| Error::CorruptState {
            id: ResId::of(live),
            message: e.to_string(),
        })
}

/// The revision history recorded on a Deployment (oldest first).
pub fn history(object: &Value) -> Vec<Revision> {
    annotation(object, ROLLOUT_HISTORY_ANNOTATION)
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default()
}

/// The images of a pod template, in container order.
pub fn images(template: &Value) -> Vec<String> {
    ["containers", "initContainers"]
        .iter()
        .flat_map(|field| {
            template
                .pointer(&format!("/spec/{field}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| c.get("image").and_then(Value::as_str).map(str::to_string))
        })
        .collect()
}

/// True when a live pod template is the target one (cluster defaults and track labels aside).
pub fn same_template(live: Option<&Value>, target: &Value) -> bool {
    let Some(live) = live else { return false };
    let clean = |t: &Value| {
        let mut t = t.clone();
        if let Some(Value::Object(labels)) = t.pointer_mut("/metadata/labels") {
            labels.remove(TRACK_LABEL);
        }
        drop_empty(&mut t);
        t
    };
    let target = clean(target);
    let mut live = project(&clean(live), &shape(&target));
    align_numbers(&target, &mut live);
    drop_empty(&mut live);
    live == target
}

/// Appends a revision for `template` to the history carried by `object` (the Deployment
/// about to be sent), unless the newest revision already is that template; keeps at most
/// `revisionHistoryLimit` (default 10) entries. Returns the revision number.
pub fn record_revision(object: &mut Value, template: &Value, now: &str, cause: &str) -> u64 {
    let mut revisions = history(object);
    if let Some(last) = revisions.last()
        && (same_template(Some(&last.template), template)
            || same_template(Some(template), &last.template))
    {
        return last.revision;
    }
    let revision = revisions.last().map(|r| r.revision + 1).unwrap_or(1);
    revisions.push(Revision {
        revision,
        images: images(template),
        template: template.clone(),
        at: now.to_string(),
        cause: cause.to_string(),
        outcome: None,
    });
    let limit = object
        .pointer("/spec/revisionHistoryLimit")
        .and_then(Value::as_u64)
        .unwrap_or(10)
        .max(1) as usize;
    if revisions.len() > limit {
        revisions.drain(..revisions.len() - limit);
    }
    set_annotation(
        object,
        ROLLOUT_HISTORY_ANNOTATION,
        serde_json::to_string(&revisions).ok(),
    );
    revision
}

/// Rewrites a desired BlueGreen/Canary Deployment into what a cluster accepts: a
/// RollingUpdate (the declared strategy kept in [`STRATEGY_ANNOTATION`]); BlueGreen stable
/// pods are labelled `track: stable` so Services can tell them from the preview's.
pub fn stand_in(desired: &mut Value, strategy: &Strategy) {
    if !strategy.is_progressive() {
        return;
    }
    let declared = desired
        .pointer("/spec/strategy")
        .cloned()
        .unwrap_or(Value::Null);
    set_annotation(desired, STRATEGY_ANNOTATION, Some(declared.to_string()));
    let rolling = match strategy {
        Strategy::Canary(spec) => json!({
            "maxSurge": spec.max_surge.clone().unwrap_or(json!("25%")),
            "maxUnavailable": spec.max_unavailable.clone().unwrap_or(json!(0)),
        }),
        _ => json!({"maxSurge": "25%", "maxUnavailable": 0}),
    };
    if let Some(spec) = desired.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert(
            "strategy".into(),
            json!({"type": "RollingUpdate", "rollingUpdate": rolling}),
        );
    }
    if matches!(strategy, Strategy::BlueGreen(_)) {
        set_label(
            desired,
            "/spec/template/metadata/labels",
            TRACK_LABEL,
            "stable",
        );
    }
}

/// `<name>-canary` or `<name>-preview`.
pub fn track_id(stable: &ResId, strategy: &Strategy) -> ResId {
    ResId {
        gvk: Gvk::from_api_version("apps/v1", "Deployment"),
        name: format!("{}-{}", stable.name, strategy.track()),
        namespace: stable.namespace.clone(),
    }
}

/// The second track's Deployment: the stable one's labels and selector plus the track label,
/// the target template, `replicas` pods.
pub fn track_object(stable: &Value, strategy: &Strategy, target: &Value, replicas: i64) -> Value {
    let id = track_id(&ResId::of(stable), strategy);
    let track = strategy.track();
    let mut labels = stable
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or_else(|| json!({}));
    set_label(&mut labels, "", TRACK_LABEL, track);
    set_label(&mut labels, "", MANAGED_BY_LABEL, MANAGED_BY_VALUE);
    let mut selector = stable
        .pointer("/spec/selector")
        .cloned()
        .unwrap_or_else(|| json!({}));
    set_label(&mut selector, "/matchLabels", TRACK_LABEL, track);
    let mut template = target.clone();
    set_label(&mut template, "/metadata/labels", TRACK_LABEL, track);
    let mut spec = json!({
        "replicas": replicas,
        "selector": selector,
        "template": template,
        "strategy": {"type": "RollingUpdate"},
    });
    for field in ["progressDeadlineSeconds", "minReadySeconds"] {
        if let Some(value) = stable.pointer(&format!("/spec/{field}")) {
            spec[field] = value.clone();
        }
    }
    let owner = annotation(stable, OWNER_ANNOTATION).unwrap_or_default();
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": id.name,
            "namespace": id.namespace,
            "labels": labels,
            "annotations": {OWNER_ANNOTATION: owner},
        },
        "spec": spec,
    })
}

fn track_status(live: Option<&Value>, target: &Value) -> Option<TrackStatus> {
    let live = live?;
    let h = health::health(Some(live), None);
    Some(TrackStatus {
        replicas: live
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1),
        available: live
            .pointer("/status/availableReplicas")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        on_target: same_template(live.pointer("/spec/template"), target),
        healthy: h.status == health::Status::Healthy,
        message: h.message,
    })
}

/// The label selector of the stable Deployment's pods, `k=v,…` (matchLabels, track label
/// removed) with `extra` pairs appended.
fn pod_selector(stable: &Value, extra: &[(&str, &str)]) -> String {
    let mut pairs: Vec<String> = stable
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != TRACK_LABEL)
        .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
        .collect();
    pairs.extend(extra.iter().map(|(k, v)| format!("{k}={v}")));
    pairs.join(",")
}

fn observe(
    cluster: &dyn Cluster,
    stable: &Value,
    strategy: &Strategy,
    state: &State,
) -> Result<Observation, Error> {
    let id = ResId::of(stable);
    let track_live = cluster
        .get(&track_id(&id, strategy))
        .map_err(cluster_err(&id))?;
    let stable_status = track_status(Some(stable), &state.target_template).unwrap_or_default();
    let now_ms = time::parse_rfc3339(&cluster.now()).unwrap_or(0);
    let mut observation = Observation {
        now_ms,
        replicas: stable
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1),
        progress_deadline: Duration::from_secs(
            stable
                .pointer("/spec/progressDeadlineSeconds")
                .and_then(Value::as_u64)
                .unwrap_or(600),
        ),
        stable: stable_status,
        track: track_status(track_live.as_ref(), &state.target_template),
        metric: None,
    };
    if let Some(analysis) = wants_metric(strategy, state, now_ms) {
        let query = MetricQuery {
            namespace: id.namespace.clone(),
            selector: pod_selector(stable, &[(TRACK_LABEL, strategy.track())]),
            metric: analysis.metric.clone(),
            window: analysis.interval(),
            app: id.name.clone(),
            track: strategy.track().to_string(),
            provider: analysis.provider.clone(),
        };
        observation.metric = Some(cluster.metric(&query).map_err(cluster_err(&id))?);
    }
    Ok(observation)
}

/// Services in the Deployment's namespace whose selector picks its pods.
pub(crate) fn services_of(cluster: &dyn Cluster, stable: &Value) -> Result<Vec<Value>, Error> {
    let id = ResId::of(stable);
    let labels = stable
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let services = cluster
        .list(
            &Gvk::from_api_version("v1", "Service"),
            Some(&id.namespace),
            None,
        )
        .map_err(cluster_err(&id))?;
    Ok(services
        .into_iter()
        .filter(|svc| {
            svc.pointer("/spec/selector")
                .and_then(Value::as_object)
                .is_some_and(|selector| {
                    !selector.is_empty()
                        && selector
                            .iter()
                            .all(|(k, v)| k == TRACK_LABEL || labels.get(k) == Some(v))
                })
        })
        .collect())
}

fn write(cluster: &mut dyn Cluster, object: &Value) -> Result<Value, Error> {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    let id = ResId::of(&object);
    cluster.apply(&object).map_err(cluster_err(&id))
}

fn point_service(
    cluster: &mut dyn Cluster,
    namespace: &str,
    name: &str,
    track: Track,
) -> Result<(), Error> {
    let id = ResId {
        gvk: Gvk::from_api_version("v1", "Service"),
        name: name.to_string(),
        namespace: namespace.to_string(),
    };
    let Some(mut svc) = cluster.get(&id).map_err(cluster_err(&id))? else {
        return Err(Error::Refused(
            id,
            "Service not found; BlueGreen needs it".to_string(),
        ));
    };
    let value = match track {
        Track::Stable => "stable",
        Track::Preview => "preview",
    };
    if svc
        .pointer("/spec/selector")
        .and_then(|s| s.get(TRACK_LABEL))
        .and_then(Value::as_str)
        == Some(value)
    {
        return Ok(());
    }
    set_label(&mut svc, "/spec/selector", TRACK_LABEL, value);
    write(cluster, &svc).map(|_| ())
}

fn execute(
    cluster: &mut dyn Cluster,
    stable: &Value,
    strategy: &Strategy,
    state: &State,
    action: &Action,
) -> Result<(), Error> {
    let id = ResId::of(stable);
    match action {
        Action::ScaleTrack(replicas) => write(
            cluster,
            &track_object(stable, strategy, &state.target_template, *replicas),
        )
        .map(|_| ()),
        Action::SetWeight(weight) => {
            for mut svc in services_of(cluster, stable)? {
                let current = annotation(&svc, CANARY_WEIGHT_ANNOTATION).map(str::to_string);
                let wanted = (*weight > 0).then(|| weight.to_string());
                if current != wanted {
                    set_annotation(&mut svc, CANARY_WEIGHT_ANNOTATION, wanted);
                    write(cluster, &svc)?;
                }
            }
            Ok(())
        }
        Action::PointActive(track) | Action::PointPreview(track) => {
            let Strategy::BlueGreen(spec) = strategy else {
                return Ok(());
            };
            let name = match action {
                Action::PointActive(_) => Some(spec.active_service.as_str()),
                _ => spec.preview_service.as_deref(),
            };
            match name {
                Some(name) => point_service(cluster, &id.namespace, name, *track),
                None => Ok(()),
            }
        }
        Action::UpdateStable => {
            let Some(mut live) = cluster.get(&id).map_err(cluster_err(&id))? else {
                return Err(Error::NotFound(crate::cluster::not_found_message(&id)));
            };
            let mut template = state.target_template.clone();
            if matches!(strategy, Strategy::BlueGreen(_)) {
                set_label(&mut template, "/metadata/labels", TRACK_LABEL, "stable");
            }
            if same_template(live.pointer("/spec/template"), &template)
                && live
                    .pointer("/spec/template/metadata/labels")
                    .and_then(|l| l.get(TRACK_LABEL))
                    == template
                        .pointer("/metadata/labels")
                        .and_then(|l| l.get(TRACK_LABEL))
            {
                return Ok(());
            }
            live["spec"]["template"] = template;
            write(cluster, &live).map(|_| ())
        }
        Action::RemoveTrack => {
            let track = track_id(&id, strategy);
            cluster
                .delete(&track)
                .map_err(cluster_err(&track))
                .map(|_| ())
        }
    }
}

/// True when `id` is a Deployment whose Canary/BlueGreen rollout has not ended (it goes on
/// by itself, or waits for a person).
pub fn unfinished(cluster: &dyn Cluster, id: &ResId) -> Result<bool, Error> {
    if id.gvk.kind != "Deployment" {
        return Ok(false);
    }
    let Some(live) = cluster.get(id).map_err(cluster_err(id))? else {
        return Ok(false);
    };
    Ok(read_state(&live)?.is_some_and(|s| matches!(s.phase, Phase::Progressing | Phase::Paused)))
}

/// Why an aborted rollout's state says it stopped (`rollout aborted: WHY; …` → WHY).
fn abort_reason(state: &State) -> String {
    let text = state
        .message
        .strip_prefix("rollout aborted: ")
        .unwrap_or(&state.message);
    text.split("; ").next().unwrap_or(text).to_string()
}

/// The revision an aborted rollout with `failure-action: rollback` returns to: the newest
/// one of the history other than the aborted one that was not itself aborted or rolled back
/// (as `undo` picks).
fn last_healthy(live: &Value, aborted: &State) -> Option<Revision> {
    history(live)
        .into_iter()
        .rev()
        .filter(|r| r.revision != aborted.revision)
        .find(|r| matches!(r.outcome, None | Some(RevisionOutcome::Healthy)))
}

/// `failure-action: rollback` after a Canary/BlueGreen abort: the abort already put every
/// pod and all traffic back on the stable track; the rollout is then finished on the last
/// healthy revision (as Swarm's automatic rollback ends), and the failed revision is marked
/// rolled back with the reason, so `rollout history` shows it and `undo` skips it.
fn roll_back_after_abort(
    cluster: &mut dyn Cluster,
    id: &ResId,
    state: &mut State,
    target: &Revision,
) -> Result<(), Error> {
    let why = abort_reason(state);
    let failed = state.revision;
    let mut live = get_deployment(cluster, id)?;
    mark_revision(&mut live, failed, RevisionOutcome::RolledBack(why.clone()));
    state.phase = Phase::Healthy;
    state.revision = target.revision;
    state.target_template = target.template.clone();
    state.weight = 0;
    state.analysis = None;
    state.wait_until_ms = None;
    state.next_step_ms = None;
    state.message = format!(
        "revision {failed} failed ({why}); rolled back to revision {} (failure-action: rollback)",
        target.revision
    );
    state.note();
    set_annotation(
        &mut live,
        ROLLOUT_STATE_ANNOTATION,
        serde_json::to_string(&*state).ok(),
    );
    write(cluster, &live)?;
    Ok(())
}

/// `failure-action: pause`: instead of aborting, the rollout holds where it failed, both
/// tracks kept for inspection; `rollout promote` goes on, `rollout abort` stops it.
fn pause_on_failure(before: &State, state: &mut State) -> Decision {
    let why = abort_reason(state);
    let runs = std::mem::take(&mut state.analysis_runs);
    let failed_run = state.analysis.take();
    *state = before.clone();
    state.analysis_runs = runs;
    if let Some((run, _)) = failed_run
        && !state.analysis_runs.contains(&run)
    {
        state.analysis_runs.push(run);
    }
    state.analysis = None;
    state.phase = Phase::Paused;
    state.paused_by_user = true;
    state.wait_until_ms = None;
    state.waiting_since_ms = None;
    state.message = format!(
        "paused on failure: {why} (failure-action: pause; `rollout promote` goes on, `rollout abort` stops)"
    );
    Decision::new(Vec::new(), Next::Stop)
}

/// `failure-action: continue`: the failure is recorded and the rollout goes on: past a
/// failed analysis to the next step (BlueGreen: to promotion), or on waiting for pods.
fn continue_on_failure(strategy: &Strategy, before: &State, state: &mut State) -> Decision {
    let why = abort_reason(state);
    let runs = std::mem::take(&mut state.analysis_runs);
    let failed_run = state.analysis.take();
    *state = before.clone();
    state.analysis_runs = runs;
    if let Some((run, _)) = failed_run
        && !state.analysis_runs.contains(&run)
    {
        state.analysis_runs.push(run);
    }
    let at_analysis = before.analysis.is_some();
    state.analysis = None;
    state.waiting_since_ms = None;
    state.phase = Phase::Progressing;
    if at_analysis {
        match strategy {
            Strategy::BlueGreen(_) => bluegreen::promote(state),
            _ => state.step += 1,
        }
    }
    state.message = format!("{why}; going on (failure-action: continue)");
    Decision::new(Vec::new(), Next::Now)
}

/// Why a live Deployment's rollout is not finished, for `plan`: a Canary/BlueGreen paused,
/// progressing or aborted, or a Deployment paused or degraded; `None` when it is done.
pub fn unfinished_note(live: &Value) -> Option<String> {
    if live.get("kind").and_then(Value::as_str) != Some("Deployment") {
        return None;
    }
    let name = ResId::of(live).name;
    if let Ok(Some(state)) = read_state(live) {
        return match state.phase {
            Phase::Healthy => None,
            Phase::Paused => Some(format!(
                "rollout of revision {} paused: {} (`reconcile rollout promote {name}` continues it)",
                state.revision, state.message
            )),
            Phase::Progressing => Some(format!(
                "rollout of revision {} in progress: {}",
                state.revision, state.message
            )),
            Phase::Degraded => Some(format!(
                "rollout of revision {} aborted: {} (`reconcile rollout retry {name}` restarts it; applying a new version starts a new rollout)",
                state.revision, state.message
            )),
        };
    }
    if live.pointer("/spec/paused") == Some(&Value::Bool(true)) {
        return Some(format!(
            "rollout paused (spec.paused; `reconcile rollout resume {name}` continues it)"
        ));
    }
    let health = health::health(Some(live), None);
    (health.status == health::Status::Degraded)
        .then(|| format!("rollout degraded: {}", health.message))
}

/// Saves the state; with `ended`, also marks the rollout's revision in the history as
/// healthy or aborted (with the reason), so `rollout history` and `undo` know.
fn save_state_marking(
    cluster: &mut dyn Cluster,
    id: &ResId,
    state: &State,
    ended: bool,
) -> Result<Value, Error> {
    let Some(mut live) = cluster.get(id).map_err(cluster_err(id))? else {
        return Err(Error::NotFound(crate::cluster::not_found_message(id)));
    };
    if ended {
        let outcome = match state.phase {
            Phase::Healthy => RevisionOutcome::Healthy,
            _ => RevisionOutcome::Aborted(state.message.clone()),
        };
        mark_revision(&mut live, state.revision, outcome);
    }
    set_annotation(
        &mut live,
        ROLLOUT_STATE_ANNOTATION,
        serde_json::to_string(state).ok(),
    );
    write(cluster, &live)
}

pub(crate) fn get_deployment(cluster: &dyn Cluster, id: &ResId) -> Result<Value, Error> {
    cluster
        .get(id)
        .map_err(cluster_err(id))?
        .ok_or_else(|| Error::NotFound(crate::cluster::not_found_message(id)))
}

/// Starts rolling `live` (the stable Deployment) out to `target_template`. A rollout in
/// progress towards another template is abandoned (its second track replaced).
pub fn start(
    cluster: &mut dyn Cluster,
    id: &ResId,
    target_template: &Value,
    cause: &str,
) -> Result<State, Error> {
    let mut live = get_deployment(cluster, id)?;
    let strategy = Strategy::of(&live)?;
    if !strategy.is_progressive() {
        return Err(Error::Refused(
            id.clone(),
            format!("strategy {} is carried out by the cluster", strategy.name()),
        ));
    }
    // The same target again: a rollout in progress continues; an aborted one stays aborted
    // (retrying it on every apply would expose users to the bad version again and again).
    if let Some(state) = read_state(&live)?
        && matches!(
            state.phase,
            Phase::Progressing | Phase::Paused | Phase::Degraded
        )
        && same_template(Some(&state.target_template), target_template)
    {
        return Ok(state);
    }
    let now = cluster.now();
    // The template being replaced is the current revision; make sure history has it.
    if let Some(current) = live.pointer("/spec/template").cloned()
        && !history(&live).iter().any(|r| {
            same_template(Some(&current), &r.template) || same_template(Some(&r.template), &current)
        })
    {
        record_revision(&mut live, &current, &now, "apply");
    }
    let revision = record_revision(&mut live, target_template, &now, cause);
    let mut state = start_state(&strategy, revision, target_template.clone(), &now);
    state.driven_by_client = !cluster.drives_rollouts();
    set_annotation(
        &mut live,
        ROLLOUT_STATE_ANNOTATION,
        serde_json::to_string(&state).ok(),
    );
    write(cluster, &live)?;
    Ok(state)
}

/// Runs the strategy's steps on a Deployment until one needs time to pass: executes each
/// decision's actions, records the state. Returns how long until the next step is due, or
/// `None` when there is nothing to do (no active rollout, done, aborted, waiting for a
/// person). This is the one driver: the engine calls it from its controller loop, a
/// foreground `rollout status`/`apply --wait` calls it on clusters that do not
/// ([`Cluster::drives_rollouts`]).
pub fn tick(cluster: &mut dyn Cluster, id: &ResId) -> Result<Option<Duration>, Error> {
    for _ in 0..MAX_IMMEDIATE_STEPS {
        let live = get_deployment(cluster, id)?;
        let strategy = Strategy::of(&live)?;
        let Some(mut state) = read_state(&live)?.filter(|_| strategy.is_progressive()) else {
            return Ok(None);
        };
        if matches!(state.phase, Phase::Healthy | Phase::Degraded) {
            return Ok(None);
        }
        let observation = observe(cluster, &live, &strategy, &state)?;
        let phase_before = state.phase;
        let before = state.clone();
        let mut decision = step(&strategy, &mut state, &observation);
        let mut rolled_back = None;
        if state.phase == Phase::Degraded
            && phase_before != Phase::Degraded
            && let Ok(Some(policy)) = failure::Policy::of(&live)
        {
            match policy.action {
                failure::FailureAction::Rollback => rolled_back = last_healthy(&live, &state),
                failure::FailureAction::Pause => decision = pause_on_failure(&before, &mut state),
                failure::FailureAction::Continue => {
                    decision = continue_on_failure(&strategy, &before, &mut state);
                }
            }
        }
        for action in &decision.actions {
            let fresh = get_deployment(cluster, id)?;
            execute(cluster, &fresh, &strategy, &state, action)?;
        }
        state.next_step_ms = match decision.next {
            Next::After(wait) => Some(observation.now_ms + wait.as_millis() as u64),
            _ => None,
        };
        state.note();
        let ended =
            state.phase != phase_before && matches!(state.phase, Phase::Healthy | Phase::Degraded);
        if let Some(target) = rolled_back {
            roll_back_after_abort(cluster, id, &mut state, &target)?;
        } else {
            save_state_marking(cluster, id, &state, ended)?;
        }
        match decision.next {
            Next::Now => continue,
            Next::After(wait) => return Ok(Some(wait)),
            Next::Stop => return Ok(None),
        }
    }
    let message = get_deployment(cluster, id)
        .ok()
        .and_then(|live| read_state(&live).ok().flatten())
        .map(|s| s.message)
        .unwrap_or_default();
    Err(Error::Refused(
        id.clone(),
        format!("rollout made no progress: {message}"),
    ))
}

/// Carries a rollout forward until it is done, paused, aborted or (without
/// `advance_time`) needs time to pass. `progress` receives each new status line. On a
/// cluster that drives rollouts itself this only lets time pass and reports what happened.
pub fn drive(
    cluster: &mut dyn Cluster,
    id: &ResId,
    options: DriveOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Outcome, Error> {
    let started = time::parse_rfc3339(&cluster.now()).unwrap_or(0);
    let mut printed = match options.all_notes {
        true => 0,
        false => read_state(&get_deployment(cluster, id)?)?.map_or(0, |s| s.last_seq()),
    };
    loop {
        let live = get_deployment(cluster, id)?;
        let strategy = Strategy::of(&live)?;
        if !strategy.is_progressive() || read_state(&live)?.is_none() {
            return wait_for_health(cluster, id, options, started, progress);
        }
        let next = if cluster.drives_rollouts() {
            None
        } else {
            tick(cluster, id)?
        };
        let Some(state) = read_state(&get_deployment(cluster, id)?)? else {
            return wait_for_health(cluster, id, options, started, progress);
        };
        for note in state.notes.iter().filter(|n| n.seq > printed) {
            progress(&format!("{}: {}", crate::diff::display_id(id), note.text));
        }
        printed = state.last_seq();
        match state.phase {
            Phase::Healthy => return Ok(Outcome::Healthy(state.message)),
            Phase::Degraded => return Ok(Outcome::Degraded(state.message)),
            _ if !state.is_active() => return Ok(Outcome::Paused(state.message)),
            _ => {}
        }
        if !options.advance_time {
            return Ok(Outcome::Waiting(state.message));
        }
        let now = time::parse_rfc3339(&cluster.now()).unwrap_or(0);
        let mut wait = next
            .or_else(|| {
                state
                    .next_step_ms
                    .map(|at| Duration::from_millis(at.saturating_sub(now)))
            })
            .unwrap_or(super::POLL)
            .max(Duration::from_millis(1));
        if let Some(timeout) = options.timeout {
            let deadline = started + timeout.as_millis() as u64;
            if now >= deadline {
                return Ok(Outcome::TimedOut(state.message));
            }
            wait = wait.min(Duration::from_millis(deadline - now));
        }
        cluster.wait(wait).map_err(cluster_err(id))?;
    }
}

/// Carries a Deployment the cluster rolls out itself (RollingUpdate, Recreate) to health.
/// With a failure policy, a failed update ends the wait as Degraded with what was done and
/// why; progress lines name the cause from the pods.
fn wait_for_health(
    cluster: &mut dyn Cluster,
    id: &ResId,
    options: DriveOptions,
    started: u64,
    progress: &mut dyn FnMut(&str),
) -> Result<Outcome, Error> {
    let mut last = String::new();
    let first = get_deployment(cluster, id)?;
    let generation = first
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    loop {
        let guarded = if cluster.drives_rollouts() {
            None
        } else {
            guard(cluster, id)?.next
        };
        let live = get_deployment(cluster, id)?;
        let h = deployment_health(cluster, &live, generation)?;
        let message = h.message.clone();
        match h.status {
            health::Status::Healthy => {
                return Ok(Outcome::Healthy(format!(
                    "{} is healthy",
                    crate::diff::display_id(id)
                )));
            }
            health::Status::Degraded => return Ok(Outcome::Degraded(message)),
            health::Status::Suspended => return Ok(Outcome::Paused(message)),
            _ => {}
        }
        if message != last {
            progress(&format!("{}: {message}", crate::diff::display_id(id)));
            last = message.clone();
        }
        if !options.advance_time {
            return Ok(Outcome::Waiting(message));
        }
        let now = time::parse_rfc3339(&cluster.now()).unwrap_or(0);
        let mut wait = guarded.unwrap_or(super::POLL).min(super::POLL);
        if let Some(timeout) = options.timeout {
            let deadline = started + timeout.as_millis() as u64;
            if now >= deadline {
                return Ok(Outcome::TimedOut(message));
            }
            wait = wait.min(Duration::from_millis(deadline - now));
        }
        cluster.wait(wait).map_err(cluster_err(id))?;
    }
}

/// The health of a Deployment the cluster rolls out itself, for `apply --wait`, `rollout
/// status` and `watch`: the Argo CD rules, plus the cause from the pods when it is not
/// healthy, plus its failure policy — an update watched for its monitor window is still
/// progressing, and a failed update of generation `since_generation` or later is Degraded
/// with what was done and why.
pub fn deployment_health(
    cluster: &dyn Cluster,
    live: &Value,
    since_generation: i64,
) -> Result<health::Health, Error> {
    let degraded = |message: String| health::Health {
        status: health::Status::Degraded,
        message,
    };
    if let Some(failure) = failure::UpdateRecord::of(live)
        .and_then(|r| r.last_failure)
        .filter(|f| f.generation >= since_generation && f.action != "continued")
    {
        return Ok(degraded(format!(
            "update to revision {} failed ({}); {}",
            failure.revision, failure.reason, failure.action
        )));
    }
    let mut h = health::health(Some(live), None);
    let cause = failure_cause(cluster, live)?;
    let policy = failure::Policy::of(live).ok().flatten();
    let watched = policy.is_some_and(|_| {
        revision_of(live).is_some_and(|revision| {
            !failure::UpdateRecord::of(live).is_some_and(|r| r.settled(revision))
        })
    });
    match (&cause, h.status) {
        (Some(cause), health::Status::Healthy) if watched => {
            h.status = health::Status::Progressing;
            h.message = cause.clone();
        }
        (None, health::Status::Healthy) if watched => {
            h.status = health::Status::Progressing;
            h.message = format!(
                "available; watching the updated pods for {} (failure policy)",
                time::format_duration(policy.map_or(failure::DEFAULT_MONITOR, |p| p.monitor))
            );
        }
        (Some(cause), health::Status::Progressing | health::Status::Degraded) => {
            h.message = format!("{}: {cause}", h.message);
        }
        _ => {}
    }
    Ok(h)
}

fn owned_by(object: &Value, uid: &str) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
}

pub(crate) fn revision_of(object: &Value) -> Option<&str> {
    annotation(object, REVISION_ANNOTATION)
}

/// The Deployment's ReplicaSets, oldest revision first.
pub fn replica_sets(cluster: &dyn Cluster, deployment: &Value) -> Result<Vec<Value>, Error> {
    let id = ResId::of(deployment);
    let uid = deployment
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut sets: Vec<Value> = cluster
        .list(
            &Gvk::from_api_version("apps/v1", "ReplicaSet"),
            Some(&id.namespace),
            None,
        )
        .map_err(cluster_err(&id))?
        .into_iter()
        .filter(|rs| !uid.is_empty() && owned_by(rs, uid))
        .collect();
    sets.sort_by_key(|rs| {
        revision_of(rs)
            .and_then(|r| r.parse::<u64>().ok())
            .unwrap_or(0)
    });
    Ok(sets)
}

/// The pods of a ReplicaSet, each with its recent warning messages.
pub(crate) fn pods_of(
    cluster: &dyn Cluster,
    rs: &Value,
) -> Result<Vec<(Value, Vec<String>)>, Error> {
    let id = ResId::of(rs);
    let uid = rs
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let pods = cluster
        .list(
            &Gvk::from_api_version("v1", "Pod"),
            Some(&id.namespace),
            None,
        )
        .map_err(cluster_err(&id))?;
    pods.into_iter()
        .filter(|pod| !uid.is_empty() && owned_by(pod, uid))
        .map(|pod| {
            let warnings = cluster
                .warnings("Pod", &id.namespace, &ResId::of(&pod).name)
                .map_err(cluster_err(&id))?;
            Ok((pod, warnings))
        })
        .collect()
}

/// The pods of the Deployment's current revision, with their warnings.
/// The pods of a Deployment's current revision, each with its warning events.
pub fn new_pods(
    cluster: &dyn Cluster,
    deployment: &Value,
) -> Result<Vec<(Value, Vec<String>)>, Error> {
    let Some(revision) = revision_of(deployment) else {
        return Ok(Vec::new());
    };
    match replica_sets(cluster, deployment)?
        .into_iter()
        .find(|rs| revision_of(rs) == Some(revision))
    {
        Some(rs) => pods_of(cluster, &rs),
        None => Ok(Vec::new()),
    }
}

/// Why the pods of a Deployment's current revision fail (`2/4 new pods CrashLoopBackOff:
/// exit code 1`), if they do. For `apply --wait`, `rollout status` and `watch`.
pub fn failure_cause(cluster: &dyn Cluster, deployment: &Value) -> Result<Option<String>, Error> {
    let pods = new_pods(cluster, deployment)?;
    let desired = deployment
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    Ok(health::pod_failures(&pods, desired, "new"))
}

/// What one [`guard`] pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Guarded {
    /// When to look again.
    pub next: Option<Duration>,
    /// The action taken and why, when one was.
    pub acted: Option<String>,
}

/// Watches an update of a RollingUpdate/Recreate Deployment with a failure policy
/// ([`failure`]) and carries out the action when it fails. Does nothing for Deployments
/// without a policy or driven by Canary/BlueGreen.
pub fn guard(cluster: &mut dyn Cluster, id: &ResId) -> Result<Guarded, Error> {
    let live = get_deployment(cluster, id)?;
    if Strategy::of(&live)?.is_progressive() {
        return Ok(Guarded::default());
    }
    let policy =
        failure::Policy::of(&live).map_err(|message| Error::Refused(id.clone(), message))?;
    let Some(policy) = policy else {
        return Ok(Guarded::default());
    };
    let Some(revision) = revision_of(&live).map(str::to_string) else {
        return Ok(Guarded {
            next: Some(super::POLL),
            acted: None,
        });
    };
    let now_ms = time::parse_rfc3339(&cluster.now()).unwrap_or(0);
    let previous = failure::UpdateRecord::of(&live);
    if previous
        .as_ref()
        .is_some_and(|p| p.revision == revision && p.phase != failure::UpdatePhase::Monitoring)
    {
        return Ok(Guarded::default());
    }
    let h = health::health(Some(&live), None);
    let desired = live
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let sets = replica_sets(cluster, &live)?;
    let hash_of = |rs: &Value| {
        rs.pointer("/metadata/labels")
            .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let hash = sets
        .iter()
        .find(|rs| revision_of(rs) == Some(revision.as_str()))
        .map(&hash_of)
        .unwrap_or_default();
    let pods = new_pods(cluster, &live)?;
    // A pod failing readiness counts once it has had the whole monitor window to get ready.
    let monitor_ms = policy.monitor.as_millis() as u64;
    let counted: Vec<(Value, Vec<String>)> = pods
        .into_iter()
        .filter(|(pod, warnings)| match health::pod_failure(pod, warnings) {
            Some(cause) if cause.contains("probe failed") => pod
                .pointer("/status/startTime")
                .and_then(Value::as_str)
                .and_then(time::parse_rfc3339)
                .is_some_and(|start| now_ms >= start + monitor_ms),
            Some(_) => true,
            None => false,
        })
        .collect();
    let seen = failure::UpdateObservation {
        now_ms,
        revision: revision.clone(),
        hash,
        generation: live
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        healthy: h.status == health::Status::Healthy,
        deadline_exceeded: h.status == health::Status::Degraded,
        desired,
        failing: counted.len(),
        cause: health::pod_failures(&counted, desired, "new"),
    };
    let mut judgement = failure::judge(&policy, previous.as_ref(), &seen);
    // Name the revision rolled back to, or say why there is none.
    let target = judgement
        .record
        .last_healthy
        .as_ref()
        .and_then(|h| sets.iter().find(|rs| hash_of(rs) == *h));
    if let (Some((failure::FailureAction::Rollback, _)), Some(failed)) =
        (&judgement.act, judgement.record.last_failure.as_mut())
    {
        match target.and_then(revision_of) {
            Some(number) => failed.action = format!("rolled back to revision {number}"),
            None => {
                failed.action =
                    "not rolled back: the last healthy revision's ReplicaSet is gone".to_string();
                judgement.record.phase = failure::UpdatePhase::Failed;
                judgement.act = None;
            }
        }
    }
    if previous.as_ref() == Some(&judgement.record) && judgement.act.is_none() {
        return Ok(Guarded {
            next: judgement.next,
            acted: None,
        });
    }
    let mut updated = live.clone();
    set_annotation(
        &mut updated,
        failure::UPDATE_STATUS_ANNOTATION,
        serde_json::to_string(&judgement.record).ok(),
    );
    let mut acted = None;
    if let Some(failed) = &judgement.record.last_failure
        && judgement.record.phase != failure::UpdatePhase::Monitoring
        && judgement.record.phase != failure::UpdatePhase::Completed
        && failed.revision == revision
    {
        acted = Some(format!(
            "update to revision {revision} failed ({}); {}",
            failed.reason, failed.action
        ));
        if let Some(mut failed_set) = sets
            .iter()
            .find(|rs| revision_of(rs) == Some(revision.as_str()))
            .cloned()
        {
            set_annotation(
                &mut failed_set,
                failure::FAILURE_ANNOTATION,
                Some(format!("{}: {}", failed.action, failed.reason)),
            );
            write(cluster, &failed_set)?;
        }
        match &judgement.act {
            Some((failure::FailureAction::Rollback, _)) => {
                if let Some(rs) = target {
                    let mut template = rs.pointer("/spec/template").cloned().unwrap_or(Value::Null);
                    if let Some(Value::Object(labels)) = template.pointer_mut("/metadata/labels") {
                        labels.remove(POD_TEMPLATE_HASH_LABEL);
                    }
                    updated["spec"]["template"] = template;
                }
            }
            Some((failure::FailureAction::Pause, _)) => {
                updated["spec"]["paused"] = Value::Bool(true);
            }
            _ => {}
        }
    }
    write(cluster, &updated)?;
    Ok(Guarded {
        next: judgement.next,
        acted,
    })
}

fn with_state(
    cluster: &mut dyn Cluster,
    id: &ResId,
    change: impl FnOnce(&Strategy, &mut State) -> Result<Vec<Action>, Error>,
) -> Result<State, Error> {
    let live = get_deployment(cluster, id)?;
    let strategy = Strategy::of(&live)?;
    let Some(mut state) = read_state(&live)? else {
        return Err(Error::Refused(
            id.clone(),
            "no rollout has been started by reconcile".to_string(),
        ));
    };
    let phase_before = state.phase;
    let actions = change(&strategy, &mut state)?;
    // A person changed the rollout: the driver looks again at once.
    state.next_step_ms = None;
    for action in &actions {
        let fresh = get_deployment(cluster, id)?;
        execute(cluster, &fresh, &strategy, &state, action)?;
    }
    state.note();
    let ended =
        state.phase != phase_before && matches!(state.phase, Phase::Healthy | Phase::Degraded);
    save_state_marking(cluster, id, &state, ended)?;
    Ok(state)
}

fn refuse_when_done(id: &ResId, state: &State, verb: &str) -> Result<(), Error> {
    if matches!(state.phase, Phase::Healthy | Phase::Degraded) {
        return Err(Error::Refused(
            id.clone(),
            format!(
                "cannot {verb}: the rollout of revision {} is {:?} ({})",
                state.revision, state.phase, state.message
            ),
        ));
    }
    Ok(())
}

/// `rollout promote`: ends a pause (skipping the pause or inconclusive step); with `full`,
/// skips all remaining steps.
pub fn promote(cluster: &mut dyn Cluster, id: &ResId, full: bool) -> Result<State, Error> {
    with_state(cluster, id, |strategy, state| {
        refuse_when_done(id, state, "promote")?;
        match strategy {
            Strategy::BlueGreen(_) => bluegreen::promote(state),
            Strategy::Canary(spec) => {
                if full {
                    state.stage = canary::STAGE_PROMOTING.to_string();
                } else if state.phase == Phase::Paused || state.analysis.is_some() {
                    state.step += 1;
                } else {
                    return Err(Error::Refused(
                        id.clone(),
                        format!(
                            "cannot promote: {} is not paused; the rollout moves on by itself \
                             (`--full` skips all remaining steps)",
                            canary::describe_step(spec, state)
                        ),
                    ));
                }
                state.analysis = None;
                state.wait_until_ms = None;
                state.phase = Phase::Progressing;
                state.paused_by_user = false;
            }
            _ => {}
        }
        state.message = if full {
            "promoted fully".to_string()
        } else {
            "promoted".to_string()
        };
        Ok(Vec::new())
    })
}

/// `rollout abort`: the second track goes away, all traffic back to stable, Degraded.
pub fn abort(cluster: &mut dyn Cluster, id: &ResId) -> Result<State, Error> {
    with_state(cluster, id, |strategy, state| {
        refuse_when_done(id, state, "abort")?;
        Ok(match strategy {
            Strategy::BlueGreen(_) => {
                bluegreen::abort_now(state, "aborted by `reconcile rollout abort`").actions
            }
            _ => canary::abort_now(state, "aborted by `reconcile rollout abort`").actions,
        })
    })
}

/// `rollout pause`: holds the rollout at its current step.
pub fn pause(cluster: &mut dyn Cluster, id: &ResId) -> Result<State, Error> {
    with_state(cluster, id, |_, state| {
        refuse_when_done(id, state, "pause")?;
        state.phase = Phase::Paused;
        state.paused_by_user = true;
        state.message = format!("paused by `reconcile rollout pause` ({})", state.message);
        Ok(Vec::new())
    })
}

/// `rollout resume`: continues a rollout paused by `rollout pause`; at an indefinite pause
/// step it is the same as `promote`.
pub fn resume(cluster: &mut dyn Cluster, id: &ResId) -> Result<State, Error> {
    let live = get_deployment(cluster, id)?;
    match read_state(&live)? {
        Some(state) if state.paused_by_user => with_state(cluster, id, |_, state| {
            state.paused_by_user = false;
            state.phase = if state.wait_until_ms.is_some() {
                Phase::Paused
            } else {
                Phase::Progressing
            };
            state.message = "resumed".to_string();
            Ok(Vec::new())
        }),
        _ => promote(cluster, id, false),
    }
}

/// `rollout retry`: restarts an aborted rollout of the same revision from its first step.
pub fn retry(cluster: &mut dyn Cluster, id: &ResId) -> Result<State, Error> {
    let mut live = get_deployment(cluster, id)?;
    let strategy = Strategy::of(&live)?;
    let Some(old) = read_state(&live)?.filter(|_| strategy.is_progressive()) else {
        return Err(Error::Refused(
            id.clone(),
            "no rollout has been started by reconcile".to_string(),
        ));
    };
    if old.phase != Phase::Degraded {
        return Err(Error::Refused(
            id.clone(),
            format!(
                "cannot retry: the rollout of revision {} is {:?}, not aborted",
                old.revision, old.phase
            ),
        ));
    }
    let now = cluster.now();
    let mut state = start_state(&strategy, old.revision, old.target_template.clone(), &now);
    state.driven_by_client = !cluster.drives_rollouts();
    state.message = format!(
        "retrying revision {} from the first step (`reconcile rollout retry`)",
        old.revision
    );
    state.notes = old.notes;
    state.note();
    let mut revisions = history(&live);
    if let Some(entry) = revisions.iter_mut().find(|r| r.revision == old.revision) {
        entry.outcome = None;
    }
    set_annotation(
        &mut live,
        ROLLOUT_HISTORY_ANNOTATION,
        serde_json::to_string(&revisions).ok(),
    );
    set_annotation(
        &mut live,
        ROLLOUT_STATE_ANNOTATION,
        serde_json::to_string(&state).ok(),
    );
    write(cluster, &live)?;
    Ok(state)
}

/// One revision of a RollingUpdate/Recreate Deployment, as `kubectl rollout history` lists
/// them: its ReplicaSets.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaSetRevision {
    /// The revision number.
    pub revision: u64,
    /// `kubernetes.io/change-cause`, if recorded.
    pub change_cause: Option<String>,
    /// Why the update to it failed and what was done ([`failure::FAILURE_ANNOTATION`]).
    pub failure: Option<String>,
    /// The pod template (without `pod-template-hash`).
    pub template: Value,
}

/// The revisions of a RollingUpdate/Recreate Deployment, oldest first (kubectl's rules: one
/// per ReplicaSet; a rolled-back-to ReplicaSet moves to a new number).
pub fn replica_set_history(
    cluster: &dyn Cluster,
    deployment: &Value,
) -> Result<Vec<ReplicaSetRevision>, Error> {
    Ok(replica_sets(cluster, deployment)?
        .into_iter()
        .filter_map(|rs| {
            let revision = revision_of(&rs)?.parse().ok()?;
            let mut template = rs.pointer("/spec/template").cloned().unwrap_or(Value::Null);
            if let Some(Value::Object(labels)) = template.pointer_mut("/metadata/labels") {
                labels.remove(POD_TEMPLATE_HASH_LABEL);
            }
            Some(ReplicaSetRevision {
                revision,
                change_cause: annotation(&rs, "kubernetes.io/change-cause").map(str::to_string),
                failure: annotation(&rs, failure::FAILURE_ANNOTATION).map(str::to_string),
                template,
            })
        })
        .collect())
}

/// `rollout undo` of a RollingUpdate/Recreate Deployment, as `kubectl rollout undo`: the
/// revision's template becomes the Deployment's. Returns kubectl's line.
pub fn undo_replica_sets(
    cluster: &mut dyn Cluster,
    id: &ResId,
    to_revision: Option<u64>,
) -> Result<String, Error> {
    let mut live = get_deployment(cluster, id)?;
    let name = format!("deployment.apps/{}", id.name);
    if live.pointer("/spec/paused").and_then(Value::as_bool) == Some(true) {
        return Err(Error::Refused(
            id.clone(),
            format!(
                "you cannot rollback a paused deployment; resume it first with `reconcile rollout resume {}` and try again",
                id.name
            ),
        ));
    }
    let revisions = replica_set_history(cluster, &live)?;
    let current: u64 = revision_of(&live).and_then(|r| r.parse().ok()).unwrap_or(0);
    let wanted = match to_revision {
        Some(n) => revisions.iter().find(|r| r.revision == n).ok_or_else(|| {
            Error::Refused(
                id.clone(),
                format!("unable to find specified revision {n} in history"),
            )
        })?,
        None => revisions
            .iter()
            .rev()
            .find(|r| r.revision < current)
            .ok_or_else(|| {
                Error::Refused(
                    id.clone(),
                    format!("no rollout history found for deployment {:?}", id.name),
                )
            })?,
    };
    let template = live
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    if same_template(Some(&template), &wanted.template)
        && same_template(Some(&wanted.template), &template)
    {
        return Ok(format!(
            "{name} skipped rollback (current template already matches revision {})",
            wanted.revision
        ));
    }
    live["spec"]["template"] = wanted.template.clone();
    write(cluster, &live)?;
    Ok(format!("{name} rolled back"))
}

/// `rollout undo [--to-revision N]` of a Canary/BlueGreen Deployment: rolls back to
/// revision N, by default to the last revision that became healthy (an aborted or
/// rolled-back one is never a target by default). Returns the revision rolled back to.
pub fn undo(
    cluster: &mut dyn Cluster,
    id: &ResId,
    to_revision: Option<u64>,
) -> Result<Revision, Error> {
    let mut live = get_deployment(cluster, id)?;
    let revisions = history(&live);
    let state = read_state(&live)?;
    let stable = live
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    let current = state
        .as_ref()
        .map(|s| s.target_template.clone())
        .unwrap_or_else(|| stable.clone());
    let same = |a: &Value, b: &Value| same_template(Some(a), b) || same_template(Some(b), a);
    let wanted = match to_revision {
        Some(n) => revisions
            .iter()
            .find(|r| r.revision == n)
            .cloned()
            .ok_or_else(|| {
                let known: Vec<String> = revisions.iter().map(|r| r.revision.to_string()).collect();
                Error::Refused(
                    id.clone(),
                    format!(
                        "revision {n} not found (history: {})",
                        if known.is_empty() {
                            "empty".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                )
            })?,
        None => revisions
            .iter()
            .rev()
            .filter(|r| !same(&current, &r.template))
            .find(|r| matches!(r.outcome, None | Some(RevisionOutcome::Healthy)))
            .cloned()
            .ok_or_else(|| {
                Error::Refused(
                    id.clone(),
                    "no earlier healthy revision to roll back to".to_string(),
                )
            })?,
    };
    let strategy = Strategy::of(&live)?;
    let cause = format!("rollback to {}", wanted.revision);
    if !strategy.is_progressive() {
        let now = cluster.now();
        let mut template = wanted.template.clone();
        if let Some(Value::Object(labels)) = template.pointer_mut("/metadata/labels") {
            labels.remove(TRACK_LABEL);
        }
        live["spec"]["template"] = template.clone();
        record_revision(&mut live, &template, &now, &cause);
        write(cluster, &live)?;
    } else if let Some(mut state) = state.filter(|_| same(&stable, &wanted.template)) {
        // The stable track already runs it (after an abort): the rollout ends there.
        if matches!(state.phase, Phase::Progressing | Phase::Paused) {
            let fresh = get_deployment(cluster, id)?;
            execute(cluster, &fresh, &strategy, &state, &Action::SetWeight(0))?;
            let fresh = get_deployment(cluster, id)?;
            execute(cluster, &fresh, &strategy, &state, &Action::RemoveTrack)?;
            live = get_deployment(cluster, id)?;
        }
        state.revision = wanted.revision;
        state.target_template = wanted.template.clone();
        state.phase = Phase::Healthy;
        state.weight = 0;
        state.paused_by_user = false;
        state.analysis = None;
        state.wait_until_ms = None;
        state.next_step_ms = None;
        state.message = format!(
            "rolled back to revision {} (the stable track runs it)",
            wanted.revision
        );
        state.note();
        set_annotation(
            &mut live,
            ROLLOUT_STATE_ANNOTATION,
            serde_json::to_string(&state).ok(),
        );
        write(cluster, &live)?;
    } else {
        start(cluster, id, &wanted.template, &cause)?;
    }
    Ok(wanted)
}

/// Status of a Deployment's rollout, for `rollout status`.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutStatus {
    /// The Deployment.
    pub id: ResId,
    /// Its strategy.
    pub strategy: String,
    /// The rollout state, when reconcile drives it.
    pub state: Option<State>,
    /// Health of the stable Deployment.
    pub health: health::Health,
    /// Images of the stable Deployment.
    pub images: Vec<String>,
    /// Replicas: declared, updated, available.
    pub replicas: (i64, i64, i64),
    /// Replicas of the second track: declared, available.
    pub track: Option<(String, i64, i64)>,
    /// Images of the second track.
    pub track_images: Vec<String>,
    /// Canary: the number of steps.
    pub steps: Option<usize>,
    /// `step 2/5 (pause 30s)` for a canary in progress.
    pub step_text: Option<String>,
    /// Why pods of the new version fail, if they do.
    pub cause: Option<String>,
}

/// Reads the status of a Deployment's rollout.
pub fn status(cluster: &dyn Cluster, id: &ResId) -> Result<RolloutStatus, Error> {
    let live = get_deployment(cluster, id)?;
    let strategy = Strategy::of(&live)?;
    let int = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let track_live = cluster
        .get(&track_id(id, &strategy))
        .map_err(cluster_err(id))?;
    let state = read_state(&live)?;
    Ok(RolloutStatus {
        id: id.clone(),
        strategy: strategy.name().to_string(),
        health: health::health(Some(&live), None),
        images: images(live.pointer("/spec/template").unwrap_or(&Value::Null)),
        replicas: (
            live.pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1),
            int(&live, "/status/updatedReplicas"),
            int(&live, "/status/availableReplicas"),
        ),
        track_images: track_live
            .as_ref()
            .map(|t| images(t.pointer("/spec/template").unwrap_or(&Value::Null)))
            .unwrap_or_default(),
        track: track_live.as_ref().map(|t| {
            (
                ResId::of(t).name,
                int(t, "/spec/replicas"),
                int(t, "/status/availableReplicas"),
            )
        }),
        steps: match &strategy {
            Strategy::Canary(spec) => Some(spec.steps.len()),
            _ => None,
        },
        step_text: match (&strategy, &state) {
            (Strategy::Canary(spec), Some(state)) => Some(canary::describe_step(spec, state)),
            _ => None,
        },
        cause: match &track_live {
            Some(track) => {
                let pods = new_pods(cluster, track)?;
                health::pod_failures(&pods, int(track, "/spec/replicas"), strategy.track())
            }
            None => failure_cause(cluster, &live)?,
        },
        state,
    })
}
