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
    Action, Error, Next, Observation, Phase, State, Strategy, Track, TrackStatus, bluegreen,
    canary, health, start_state, step, time, wants_metric,
};
use crate::cluster::{CANARY_WEIGHT_ANNOTATION, Cluster, MetricQuery, TRACK_LABEL};
use crate::diff::normalize::{
    MANAGED_BY_LABEL, MANAGED_BY_VALUE, OWNER_ANNOTATION, ROLLOUT_HISTORY_ANNOTATION,
    ROLLOUT_STATE_ANNOTATION, STRATEGY_ANNOTATION, align_numbers, drop_empty, project, shape,
};
use crate::model::{Gvk, ResId};

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
}

fn cluster_err(id: &ResId) -> impl Fn(crate::cluster::Error) -> Error + '_ {
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
        };
        observation.metric = Some(cluster.metric(&query).map_err(cluster_err(&id))?);
    }
    Ok(observation)
}

/// Services in the Deployment's namespace whose selector picks its pods.
fn services_of(cluster: &dyn Cluster, stable: &Value) -> Result<Vec<Value>, Error> {
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

fn save_state(cluster: &mut dyn Cluster, id: &ResId, state: &State) -> Result<Value, Error> {
    let Some(mut live) = cluster.get(id).map_err(cluster_err(id))? else {
        return Err(Error::NotFound(crate::cluster::not_found_message(&id)));
    };
    set_annotation(
        &mut live,
        ROLLOUT_STATE_ANNOTATION,
        serde_json::to_string(state).ok(),
    );
    write(cluster, &live)
}

fn get_deployment(cluster: &dyn Cluster, id: &ResId) -> Result<Value, Error> {
    cluster
        .get(id)
        .map_err(cluster_err(id))?
        .ok_or_else(|| Error::NotFound(crate::cluster::not_found_message(&id)))
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
    if let Some(current) = live.pointer("/spec/template").cloned() {
        record_revision(&mut live, &current, &now, "apply");
    }
    let revision = record_revision(&mut live, target_template, &now, cause);
    let state = start_state(&strategy, revision, target_template.clone(), &now);
    set_annotation(
        &mut live,
        ROLLOUT_STATE_ANNOTATION,
        serde_json::to_string(&state).ok(),
    );
    write(cluster, &live)?;
    Ok(state)
}

/// Carries a rollout forward until it is done, paused, aborted or (without
/// `advance_time`) needs time to pass. `progress` receives each new status line.
pub fn drive(
    cluster: &mut dyn Cluster,
    id: &ResId,
    options: DriveOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Outcome, Error> {
    let started = time::parse_rfc3339(&cluster.now()).unwrap_or(0);
    let mut immediate = 0usize;
    loop {
        let live = get_deployment(cluster, id)?;
        let strategy = Strategy::of(&live)?;
        let Some(mut state) = read_state(&live)?.filter(|_| strategy.is_progressive()) else {
            return wait_for_health(cluster, id, options, started, progress);
        };
        match state.phase {
            Phase::Healthy => return Ok(Outcome::Healthy(state.message)),
            Phase::Degraded => return Ok(Outcome::Degraded(state.message)),
            _ => {}
        }
        let observation = observe(cluster, &live, &strategy, &state)?;
        let before = state.message.clone();
        let decision = step(&strategy, &mut state, &observation);
        for action in &decision.actions {
            let fresh = get_deployment(cluster, id)?;
            execute(cluster, &fresh, &strategy, &state, action)?;
        }
        save_state(cluster, id, &state)?;
        if state.message != before {
            progress(&format!(
                "{}: {}",
                crate::diff::display_id(id),
                state.message
            ));
        }
        match decision.next {
            Next::Now => {
                immediate += 1;
                if immediate > MAX_IMMEDIATE_STEPS {
                    return Err(Error::Refused(
                        id.clone(),
                        format!("rollout made no progress: {}", state.message),
                    ));
                }
            }
            Next::Stop => {
                return Ok(match state.phase {
                    Phase::Healthy => Outcome::Healthy(state.message),
                    Phase::Degraded => Outcome::Degraded(state.message),
                    _ => Outcome::Paused(state.message),
                });
            }
            Next::After(wait) => {
                immediate = 0;
                if !options.advance_time {
                    return Ok(Outcome::Waiting(state.message));
                }
                let now = time::parse_rfc3339(&cluster.now()).unwrap_or(0);
                let mut wait = wait;
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
    }
}

/// Carries a Deployment the cluster rolls out itself (RollingUpdate, Recreate) to health.
fn wait_for_health(
    cluster: &mut dyn Cluster,
    id: &ResId,
    options: DriveOptions,
    started: u64,
    progress: &mut dyn FnMut(&str),
) -> Result<Outcome, Error> {
    let mut last = String::new();
    loop {
        let live = get_deployment(cluster, id)?;
        let h = health::health(Some(&live), None);
        match h.status {
            health::Status::Healthy => {
                return Ok(Outcome::Healthy(format!(
                    "{} is healthy",
                    crate::diff::display_id(id)
                )));
            }
            health::Status::Degraded => return Ok(Outcome::Degraded(h.message)),
            health::Status::Suspended => return Ok(Outcome::Paused(h.message)),
            _ => {}
        }
        if h.message != last {
            progress(&format!("{}: {}", crate::diff::display_id(id), h.message));
            last = h.message.clone();
        }
        if !options.advance_time {
            return Ok(Outcome::Waiting(h.message));
        }
        let now = time::parse_rfc3339(&cluster.now()).unwrap_or(0);
        let mut wait = super::POLL;
        if let Some(timeout) = options.timeout {
            let deadline = started + timeout.as_millis() as u64;
            if now >= deadline {
                return Ok(Outcome::TimedOut(h.message));
            }
            wait = wait.min(Duration::from_millis(deadline - now));
        }
        cluster.wait(wait).map_err(cluster_err(id))?;
    }
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
    let actions = change(&strategy, &mut state)?;
    for action in &actions {
        let fresh = get_deployment(cluster, id)?;
        execute(cluster, &fresh, &strategy, &state, action)?;
    }
    save_state(cluster, id, &state)?;
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
            _ => {
                if full {
                    state.stage = canary::STAGE_PROMOTING.to_string();
                } else if state.phase == Phase::Paused || state.analysis.is_some() {
                    state.step += 1;
                }
                state.analysis = None;
                state.wait_until_ms = None;
                state.phase = Phase::Progressing;
                state.paused_by_user = false;
            }
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

/// `rollout undo [--to-revision N]`: rolls back to revision N (default: the one before the
/// current). Canary/BlueGreen Deployments roll back through their strategy; others are
/// updated directly. Returns the revision rolled back to.
pub fn undo(
    cluster: &mut dyn Cluster,
    id: &ResId,
    to_revision: Option<u64>,
) -> Result<Revision, Error> {
    let mut live = get_deployment(cluster, id)?;
    let revisions = history(&live);
    let current = live
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
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
            .find(|r| {
                !same_template(Some(&current), &r.template)
                    && !same_template(Some(&r.template), &current)
            })
            .cloned()
            .ok_or_else(|| {
                Error::Refused(
                    id.clone(),
                    "no previous revision to roll back to".to_string(),
                )
            })?,
    };
    let strategy = Strategy::of(&live)?;
    let cause = format!("rollback to {}", wanted.revision);
    if strategy.is_progressive() {
        start(cluster, id, &wanted.template, &cause)?;
    } else {
        let now = cluster.now();
        let mut template = wanted.template.clone();
        if let Some(Value::Object(labels)) = template.pointer_mut("/metadata/labels") {
            labels.remove(TRACK_LABEL);
        }
        live["spec"]["template"] = template.clone();
        record_revision(&mut live, &template, &now, &cause);
        write(cluster, &live)?;
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
}

/// Reads the status of a Deployment's rollout.
pub fn status(cluster: &dyn Cluster, id: &ResId) -> Result<RolloutStatus, Error> {
    let live = get_deployment(cluster, id)?;
    let strategy = Strategy::of(&live)?;
    let int = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let track_live = cluster
        .get(&track_id(id, &strategy))
        .map_err(cluster_err(id))?;
    Ok(RolloutStatus {
        id: id.clone(),
        strategy: strategy.name().to_string(),
        state: read_state(&live)?,
        health: health::health(Some(&live), None),
        images: images(live.pointer("/spec/template").unwrap_or(&Value::Null)),
        replicas: (
            live.pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1),
            int(&live, "/status/updatedReplicas"),
            int(&live, "/status/availableReplicas"),
        ),
        track: track_live.map(|t| {
            (
                ResId::of(&t).name,
                int(&t, "/spec/replicas"),
                int(&t, "/status/availableReplicas"),
            )
        }),
    })
}
