//! Progressive delivery: the rollout driver for Deployments with a Canary or BlueGreen
//! strategy (RollingUpdate and Recreate are the cluster's own).
//!
//! The strategy is read and validated once ([`Strategy::of`]); each step is a pure function
//! of (spec, state, [`Observation`]) → [`Decision`] ([`canary::step`], [`bluegreen::step`]);
//! the [`driver`] observes the cluster, runs the step and executes its [`Action`]s through
//! the [`Cluster`](crate::cluster::Cluster) primitives: a second `<name>-canary` /
//! `<name>-preview` Deployment labelled [`TRACK_LABEL`](crate::cluster::TRACK_LABEL), a
//! Service weight annotation, a Service selector switch. The state lives in annotations of
//! the stable Deployment, so `rollout status|promote|abort …` work across processes.
//!
//! Invariant: `canary`, `bluegreen`, `analysis` and `health` do no IO; only `driver` does,
//! and only through the `Cluster` trait.

pub mod analysis;
pub mod bluegreen;
pub mod canary;
pub mod driver;
pub mod failure;
pub mod health;
pub mod time;
pub mod view;

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::ResId;

pub use analysis::{AnalysisRun, AnalysisSpec};

/// Errors of the rollout driver.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Deployment's `spec.strategy` is invalid; nothing was applied.
    #[error("{}: spec.strategy: {message}", crate::diff::display_id(id))]
    InvalidStrategy {
        /// The Deployment.
        id: ResId,
        /// What is wrong, naming the field.
        message: String,
    },
    /// The cluster failed.
    #[error("{}: {source}", crate::diff::display_id(id))]
    Cluster {
        /// The object being read or written.
        id: ResId,
        /// The cause.
        source: Box<crate::cluster::Error>,
    },
    /// The Deployment does not exist (kubectl's words: `deployments.apps "web" not found`).
    #[error("{0}")]
    NotFound(String),
    /// The operation is refused (no rollout to promote, unknown revision …); the message says why.
    #[error("{}: {}", crate::diff::display_id(.0), .1)]
    Refused(ResId, String),
    /// The rollout state annotation cannot be read.
    #[error("{}: rollout state is corrupt: {message}", crate::diff::display_id(id))]
    CorruptState {
        /// The Deployment.
        id: ResId,
        /// What is wrong.
        message: String,
    },
}

/// `spec.strategy` of a Deployment, with the BlueGreen and Canary extensions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StrategySpec {
    /// `RollingUpdate` (default), `Recreate`, `BlueGreen` or `Canary`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Kubernetes' rolling update parameters (maxSurge, maxUnavailable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<Value>,
    /// Canary parameters (with `type: Canary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanarySpec>,
    /// BlueGreen parameters (with `type: BlueGreen`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenSpec>,
}

/// A Canary strategy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanarySpec {
    /// The steps, in order.
    #[serde(default)]
    pub steps: Vec<CanaryStep>,
    /// Canary pods added at a time (count or percentage of replicas, rounded up). Default 25%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<Value>,
    /// Pods that may be unavailable during the final update of the stable track. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<Value>,
}

/// One canary step: exactly one of its fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryStep {
    /// Percentage of traffic (0–100) to send to the canary; replicas follow, rounded up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_weight: Option<i64>,
    /// Wait: `{duration: 30s}` on the cluster clock, `{}` until `rollout promote`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<PauseSpec>,
    /// Measure the canary's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisSpec>,
}

/// A pause step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PauseSpec {
    /// How long (`30s`, `5m`, or seconds); absent: until promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Value>,
}

impl PauseSpec {
    /// The duration, if any.
    pub fn duration(&self) -> Result<Option<Duration>, String> {
        match &self.duration {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(|secs| Some(Duration::from_secs(secs)))
                .ok_or_else(|| format!("duration: {n} is not a whole number of seconds")),
            Some(Value::String(text)) => time::parse_duration(text)
                .map(Some)
                .map_err(|e| format!("duration: {e}")),
            Some(other) => Err(format!("duration: {other} is not a duration")),
        }
    }
}

/// A BlueGreen strategy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlueGreenSpec {
    /// The Service users reach; switched to the new version on promotion.
    pub active_service: String,
    /// A Service reaching the new version before promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_service: Option<String>,
    /// Promote without a person (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion_enabled: Option<bool>,
    /// With auto promotion, wait this long after the preview is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion_seconds: Option<u64>,
    /// Keep the old version this long after the switch (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_seconds: Option<u64>,
    /// Analysis of the preview pods before promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion_analysis: Option<AnalysisSpec>,
}

/// The strategy of a Deployment, read once.
#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    /// The cluster's own rolling update.
    RollingUpdate,
    /// The cluster's own recreate.
    Recreate,
    /// Driven by [`canary::step`].
    Canary(CanarySpec),
    /// Driven by [`bluegreen::step`].
    BlueGreen(BlueGreenSpec),
}

impl Strategy {
    /// Reads and validates a Deployment's strategy (as declared, or as recorded by reconcile
    /// when the Deployment went out as a RollingUpdate stand-in).
    pub fn of(deployment: &Value) -> Result<Strategy, Error> {
        let id = ResId::of(deployment);
        let invalid = |message: String| Error::InvalidStrategy {
            id: id.clone(),
            message,
        };
        let recorded = deployment
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(crate::diff::normalize::STRATEGY_ANNOTATION))
            .and_then(Value::as_str)
            .and_then(|text| serde_json::from_str::<Value>(text).ok());
        let Some(raw) = recorded.or_else(|| deployment.pointer("/spec/strategy").cloned()) else {
            return Ok(Strategy::RollingUpdate);
        };
        let spec: StrategySpec = serde_json::from_value(raw).map_err(|e| invalid(e.to_string()))?;
        let kind = spec.kind.as_deref().unwrap_or("RollingUpdate");
        let extra = |field: &str| {
            invalid(format!(
                "{field} is only allowed with type {}",
                match field {
                    "canary" => "Canary",
                    "blueGreen" => "BlueGreen",
                    _ => "RollingUpdate",
                }
            ))
        };
        if spec.canary.is_some() && kind != "Canary" {
            return Err(extra("canary"));
        }
        if spec.blue_green.is_some() && kind != "BlueGreen" {
            return Err(extra("blueGreen"));
        }
        if spec.rolling_update.is_some() && kind != "RollingUpdate" {
            return Err(extra("rollingUpdate"));
        }
        match kind {
            "RollingUpdate" => Ok(Strategy::RollingUpdate),
            "Recreate" => Ok(Strategy::Recreate),
            "Canary" => {
                let canary = spec.canary.ok_or_else(|| {
                    invalid("type Canary needs a canary: {steps: …} field".into())
                })?;
                canary::validate(&canary).map_err(invalid)?;
                Ok(Strategy::Canary(canary))
            }
            "BlueGreen" => {
                let blue_green = spec.blue_green.ok_or_else(|| {
                    invalid("type BlueGreen needs a blueGreen: {activeService: …} field".into())
                })?;
                bluegreen::validate(&blue_green).map_err(invalid)?;
                Ok(Strategy::BlueGreen(blue_green))
            }
            other => Err(invalid(format!(
                "type: unknown strategy {other:?} (expected RollingUpdate, Recreate, BlueGreen or Canary)"
            ))),
        }
    }

    /// True for the strategies the driver carries out.
    pub fn is_progressive(&self) -> bool {
        matches!(self, Strategy::Canary(_) | Strategy::BlueGreen(_))
    }

    /// `canary` or `preview`: the second track's name.
    pub fn track(&self) -> &'static str {
        match self {
            Strategy::BlueGreen(_) => "preview",
            _ => "canary",
        }
    }

    /// `Canary` / `BlueGreen` / `RollingUpdate` / `Recreate`.
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::RollingUpdate => "RollingUpdate",
            Strategy::Recreate => "Recreate",
            Strategy::Canary(_) => "Canary",
            Strategy::BlueGreen(_) => "BlueGreen",
        }
    }
}

/// Phase of a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    /// Steps are being carried out.
    Progressing,
    /// Waiting (a pause step, an inconclusive analysis, or `rollout pause`).
    Paused,
    /// Done: the stable track runs the new version.
    Healthy,
    /// Aborted: the stable track runs the old version; the message says why.
    Degraded,
}

/// Where a rollout is; persisted as JSON in the stable Deployment's annotation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// The revision being rolled out.
    pub revision: u64,
    /// Canary or BlueGreen.
    pub strategy: String,
    /// Phase.
    pub phase: Phase,
    /// Canary: index of the current step (= steps.len() once all are done).
    pub step: usize,
    /// Sub-stage of the current strategy (see each strategy's module).
    pub stage: String,
    /// Canary: current traffic weight.
    pub weight: u32,
    /// The pod template being rolled out.
    pub target_template: Value,
    /// When the rollout started (cluster time).
    pub started_at: String,
    /// A timed pause or a delay ends then (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_until_ms: Option<u64>,
    /// Since when the current step has waited for pods (ms), for the progress deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_since_ms: Option<u64>,
    /// The analysis in progress and when its next measurement is due (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<(AnalysisRun, u64)>,
    /// Finished analysis runs.
    #[serde(default)]
    pub analysis_runs: Vec<AnalysisRun>,
    /// Paused by `rollout pause` (a resume continues the current step).
    #[serde(default)]
    pub paused_by_user: bool,
    /// Human summary of where the rollout is or why it stopped.
    pub message: String,
    /// The last messages, numbered, so an observer that polls now and then (a foreground
    /// `rollout status`, `apply --wait`) can print every step the driver took in between.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Note>,
    /// When the driver wants to look again (ms), so observers know how far to let time pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_step_ms: Option<u64>,
    /// Driven by the client process that started it (a Kubernetes target: `apply --wait`,
    /// `rollout status`), never by the cluster's own controller, even when the cluster is
    /// the engine behind `engine serve`: one driver per rollout, as on a real API server.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub driven_by_client: bool,
}

/// One message of a rollout's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Note {
    /// 1, 2, 3 … over the rollout's life.
    pub seq: u64,
    /// The message.
    pub text: String,
}

/// How many notes a rollout keeps.
const NOTES_KEPT: usize = 20;

impl State {
    /// Appends the current message to the notes when it is new.
    pub fn note(&mut self) {
        if self.notes.last().is_some_and(|n| n.text == self.message) {
            return;
        }
        let seq = self.notes.last().map_or(1, |n| n.seq + 1);
        self.notes.push(Note {
            seq,
            text: self.message.clone(),
        });
        if self.notes.len() > NOTES_KEPT {
            self.notes.drain(..self.notes.len() - NOTES_KEPT);
        }
    }

    /// The newest note number (0 when none).
    pub fn last_seq(&self) -> u64 {
        self.notes.last().map_or(0, |n| n.seq)
    }

    /// True while the rollout still has work to do (not done, aborted or waiting for a person).
    pub fn is_active(&self) -> bool {
        match self.phase {
            Phase::Progressing => true,
            Phase::Paused => !self.paused_by_user && self.wait_until_ms.is_some(),
            Phase::Healthy | Phase::Degraded => false,
        }
    }
}

/// A track's live state, as the driver observed it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrackStatus {
    /// `spec.replicas`.
    pub replicas: i64,
    /// Available replicas of the current template.
    pub available: i64,
    /// True when its pod template is the rollout's target.
    pub on_target: bool,
    /// Healthy by the Deployment health rules.
    pub healthy: bool,
    /// The health message.
    pub message: String,
}

/// What the driver saw before a step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    /// Cluster time (ms since the epoch).
    pub now_ms: u64,
    /// Declared replicas of the Deployment.
    pub replicas: i64,
    /// `progressDeadlineSeconds` of the Deployment (default 600).
    pub progress_deadline: Duration,
    /// The stable Deployment.
    pub stable: TrackStatus,
    /// The second track, if it exists.
    pub track: Option<TrackStatus>,
    /// The metric the step asked for (see `wants_metric`): `Some(None)` means no data.
    pub metric: Option<Option<f64>>,
}

/// Which track a Service should select.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// The stable Deployment's pods.
    Stable,
    /// The second track's pods.
    Preview,
}

/// One change the driver makes through the cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create or scale the second track (target template) to this many replicas.
    ScaleTrack(i64),
    /// Send this percentage of traffic to the canary (Service annotation).
    SetWeight(u32),
    /// Point the active Service at a track.
    PointActive(Track),
    /// Point the preview Service at a track.
    PointPreview(Track),
    /// Update the stable Deployment to the target template.
    UpdateStable,
    /// Delete the second track.
    RemoveTrack,
}

/// When to run the next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// At once.
    Now,
    /// After this much cluster time.
    After(Duration),
    /// Not before someone acts (paused), or never (done).
    Stop,
}

/// A step's result: the actions to execute, then when to step again.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// In order.
    pub actions: Vec<Action>,
    /// When to step again.
    pub next: Next,
}

impl Decision {
    pub(crate) fn new(actions: Vec<Action>, next: Next) -> Decision {
        Decision { actions, next }
    }
}

/// How often the driver looks again while pods come up.
pub const POLL: Duration = Duration::from_secs(1);

/// Resolves a count-or-percentage (`2`, `"25%"`) against a total, rounding up (as Argo
/// Rollouts and Kubernetes' maxSurge do).
pub fn resolve_count(value: Option<&Value>, total: i64, default: &str) -> Result<i64, String> {
    let fallback = Value::String(default.to_string());
    match value.unwrap_or(&fallback) {
        Value::Number(n) => n
            .as_i64()
            .filter(|v| *v >= 0)
            .ok_or_else(|| format!("{n} is not a count ≥ 0")),
        Value::String(text) => match text.strip_suffix('%') {
            Some(percent) => {
                let p: i64 = percent
                    .trim()
                    .parse()
                    .map_err(|_| format!("{text:?} is not a percentage"))?;
                if !(0..=100).contains(&p) {
                    return Err(format!("{text:?} is not between 0% and 100%"));
                }
                Ok((total * p + 99) / 100)
            }
            None => text
                .trim()
                .parse::<i64>()
                .map_err(|_| format!("{text:?} is not a count or a percentage")),
        },
        other => Err(format!("{other} is not a count or a percentage")),
    }
}

/// The analysis a step wants measured now, if any (the driver then reads the metric).
pub fn wants_metric<'a>(
    strategy: &'a Strategy,
    state: &State,
    now_ms: u64,
) -> Option<&'a AnalysisSpec> {
    let (_, due) = state.analysis.as_ref()?;
    if now_ms < *due || state.phase != Phase::Progressing {
        return None;
    }
    match strategy {
        Strategy::Canary(spec) => spec.steps.get(state.step).and_then(|s| s.analysis.as_ref()),
        Strategy::BlueGreen(spec) => spec.pre_promotion_analysis.as_ref(),
        _ => None,
    }
}

/// Runs one step of the strategy.
pub fn step(strategy: &Strategy, state: &mut State, observation: &Observation) -> Decision {
    match strategy {
        Strategy::Canary(spec) => canary::step(spec, state, observation),
        Strategy::BlueGreen(spec) => bluegreen::step(spec, state, observation),
        _ => Decision::new(Vec::new(), Next::Stop),
    }
}

/// A new rollout's state.
pub fn start_state(strategy: &Strategy, revision: u64, target_template: Value, now: &str) -> State {
    State {
        revision,
        strategy: strategy.name().to_string(),
        phase: Phase::Progressing,
        step: 0,
        stage: match strategy {
            Strategy::BlueGreen(_) => bluegreen::STAGE_PREVIEW.to_string(),
            _ => canary::STAGE_STEPS.to_string(),
        },
        weight: 0,
        target_template,
        started_at: now.to_string(),
        wait_until_ms: None,
        waiting_since_ms: None,
        analysis: None,
        analysis_runs: Vec::new(),
        paused_by_user: false,
        message: "rollout started".to_string(),
        notes: Vec::new(),
        next_step_ms: None,
        driven_by_client: false,
    }
}

/// Ends a running analysis into the finished runs.
fn finish_analysis(state: &mut State) -> Option<AnalysisRun> {
    let (run, _) = state.analysis.take()?;
    state.analysis_runs.push(run.clone());
    Some(run)
}

/// Advances an analysis with the observation; returns the run once it is no longer running.
fn advance_analysis(
    spec: &AnalysisSpec,
    step_name: &str,
    state: &mut State,
    observation: &Observation,
) -> Result<Option<AnalysisRun>, Duration> {
    let now = observation.now_ms;
    let interval = spec.interval().as_millis() as u64;
    let (run, due) = state
        .analysis
        .get_or_insert_with(|| (AnalysisRun::start(spec, step_name), now + interval));
    if let Some(value) = observation.metric
        && now >= *due
    {
        run.record(spec, &time::rfc3339(now), value);
        *due = now + interval;
    }
    if run.phase == analysis::RunPhase::Running {
        return Err(Duration::from_millis(due.saturating_sub(now).max(1)));
    }
    Ok(finish_analysis(state))
}

/// Checks the progress deadline while a step waits for pods: `Some(message)` when exceeded.
fn check_deadline(
    state: &mut State,
    observation: &Observation,
    waiting_for: &str,
) -> Option<String> {
    let since = *state.waiting_since_ms.get_or_insert(observation.now_ms);
    let waited = observation.now_ms.saturating_sub(since);
    if waited >= observation.progress_deadline.as_millis() as u64 {
        return Some(format!(
            "progress deadline exceeded: {waiting_for} after {}",
            time::format_duration(Duration::from_millis(waited))
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strategy(value: Value) -> Result<Strategy, String> {
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"}, "spec": {"strategy": value}});
        Strategy::of(&deployment).map_err(|e| e.to_string())
    }

    #[test]
    fn strategy_errors_name_the_field() {
        let err = strategy(json!({"type": "Canary", "canary": {"steps": [{"setWeight": 120}]}}))
            .unwrap_err();
        assert!(
            err.contains("steps[0].setWeight: 120 is not a weight between 0 and 100"),
            "{err}"
        );
        let err = strategy(json!({"type": "Canary", "canary": {"stepz": []}})).unwrap_err();
        assert!(err.contains("unknown field `stepz`"), "{err}");
        let err = strategy(json!({"type": "Blue"})).unwrap_err();
        assert!(err.contains("unknown strategy \"Blue\""), "{err}");
        let err = strategy(json!({"type": "BlueGreen"})).unwrap_err();
        assert!(err.contains("needs a blueGreen"), "{err}");
        let err = strategy(
            json!({"type": "Canary", "canary": {"steps": [{"setWeight": 5, "pause": {}}]}}),
        )
        .unwrap_err();
        assert!(err.contains("steps[0]: a step has exactly one of"), "{err}");
        assert_eq!(
            strategy(json!({"type": "Recreate"})),
            Ok(Strategy::Recreate)
        );
    }

    #[test]
    fn counts_round_up() {
        assert_eq!(resolve_count(None, 10, "25%"), Ok(3));
        assert_eq!(resolve_count(Some(&json!("25%")), 1, "0"), Ok(1));
        assert_eq!(resolve_count(Some(&json!(2)), 10, "0"), Ok(2));
        assert!(resolve_count(Some(&json!("150%")), 10, "0").is_err());
    }
}
