//! The picture of one Deployment's rollout that `reconcile rollout get` draws, as Argo
//! Rollouts' `kubectl argo rollouts get rollout` does: strategy, the step list with the
//! current step, set and actual weight, images per track, revisions → ReplicaSets → pods,
//! and analysis runs with their measurements against the threshold.
//!
//! Invariant: reads only, through the [`Cluster`] trait; the CLI renders it (a tree, or
//! JSON as it is).

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use super::driver::{self, get_deployment, pods_of, read_state, replica_sets, revision_of};
use super::{Error, Phase, Strategy, health};
use crate::cluster::{CANARY_WEIGHT_ANNOTATION, Cluster};
use crate::model::ResId;

/// Everything `rollout get` shows (`rollout get -o json`).
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutView {
    /// Deployment name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// `Healthy`, `Progressing`, `Paused`, `Degraded` (a driven rollout's phase, else the
    /// Deployment's health).
    pub status: String,
    /// Where the rollout is, or why it stopped.
    pub message: String,
    /// `RollingUpdate`, `Recreate`, `Canary` or `BlueGreen`.
    pub strategy: String,
    /// Canary: the steps, the current one marked.
    pub steps: Vec<StepView>,
    /// Canary: the current step (1-based) while steps remain.
    pub current_step: Option<usize>,
    /// Canary: the weight the current step set (%).
    pub set_weight: Option<u32>,
    /// Canary: the share of ready pods' traffic the canary gets now (%).
    pub actual_weight: Option<u32>,
    /// Images and the track each runs on (`stable`, `canary`, `preview`).
    pub images: Vec<ImageView>,
    /// Replica counts over both tracks.
    pub replicas: ReplicasView,
    /// Revisions, newest first, each with its ReplicaSets and their pods.
    pub revisions: Vec<RevisionView>,
    /// Analysis runs, oldest first.
    pub analysis_runs: Vec<AnalysisView>,
    /// Why pods of the new version fail, if they do.
    pub cause: Option<String>,
    /// Whether the rollout moves on its own as time passes (progressing, or a timed pause).
    pub active: bool,
    /// Cluster time of the picture (RFC 3339), for ages.
    pub now: String,
}

/// One canary step.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StepView {
    /// `setWeight: 20`, `pause: 30s`, `pause: {}`, `analysis: success-rate ≥ 0.95 …`.
    pub text: String,
    /// `done`, `current` or `pending`.
    pub state: String,
}

/// An image and its track.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ImageView {
    /// The image.
    pub image: String,
    /// `stable`, `canary` or `preview`.
    pub track: String,
}

/// Replica counts.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct ReplicasView {
    /// Declared on the Deployment.
    pub desired: i64,
    /// Pods that exist (both tracks).
    pub current: i64,
    /// Pods of the revision being rolled out.
    pub updated: i64,
    /// Ready pods.
    pub ready: i64,
    /// Available pods.
    pub available: i64,
}

/// One revision of the Deployment (or of its second track).
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionView {
    /// The ReplicaSet's revision number.
    pub revision: String,
    /// ReplicaSet name.
    pub replica_set: String,
    /// `stable`, `canary`, `preview`, or empty for an old revision.
    pub track: String,
    /// `Healthy` (all ready), `Progressing`, `ScaledDown`, `Degraded` (pods failing).
    pub status: String,
    /// Declared replicas.
    pub replicas: i64,
    /// Ready replicas.
    pub ready: i64,
    /// Creation time (RFC 3339).
    pub created: String,
    /// The pods.
    pub pods: Vec<PodView>,
}

/// One pod.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PodView {
    /// Name.
    pub name: String,
    /// `Running`, `Pending`, `Terminating`, or the failing container's reason
    /// (`CrashLoopBackOff`, `ErrImagePull`…).
    pub status: String,
    /// Ready containers / containers.
    pub ready: String,
    /// Container restarts.
    pub restarts: i64,
    /// Creation time (RFC 3339).
    pub created: String,
}

/// One analysis run.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AnalysisView {
    /// What it measures against which threshold.
    pub name: String,
    /// The step (1-based) or `prePromotion`.
    pub step: String,
    /// `Running`, `Successful`, `Failed`, `Inconclusive`.
    pub phase: String,
    /// Measured values (`None`: no data), oldest first.
    pub values: Vec<Option<f64>>,
    /// Measurements that passed / failed.
    pub passed: usize,
    /// Failed measurements.
    pub failed: usize,
    /// Why it ended as it did.
    pub message: String,
}

fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn pod_view(pod: &Value) -> PodView {
    let statuses: Vec<&Value> = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let ready = statuses
        .iter()
        .filter(|s| s.get("ready") == Some(&Value::Bool(true)))
        .count();
    let waiting = statuses.iter().find_map(|s| {
        s.pointer("/state/waiting/reason")
            .and_then(Value::as_str)
            .filter(|r| *r != "ContainerCreating")
    });
    let status = if pod.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating".to_string()
    } else if let Some(reason) = waiting {
        reason.to_string()
    } else {
        pod.pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("Pending")
            .to_string()
    };
    PodView {
        name: ResId::of(pod).name,
        status,
        ready: format!("{ready}/{containers}"),
        restarts: statuses.iter().map(|s| int(s, "/restartCount")).sum(),
        created: pod
            .pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    }
}

fn step_text(step: &super::CanaryStep) -> String {
    if let Some(weight) = step.set_weight {
        format!("setWeight: {weight}")
    } else if let Some(pause) = &step.pause {
        match pause.duration().ok().flatten() {
            Some(d) => format!("pause: {}", super::time::format_duration(d)),
            None => "pause: {} (until promoted)".to_string(),
        }
    } else if let Some(analysis) = &step.analysis {
        format!("analysis: {}", analysis.describe())
    } else {
        String::new()
    }
}

/// Reads the picture of a Deployment's rollout.
pub fn view(cluster: &dyn Cluster, id: &ResId) -> Result<RolloutView, Error> {
    let live = get_deployment(cluster, id)?;
    let strategy = Strategy::of(&live)?;
    let state = read_state(&live)?;
    let status = driver::status(cluster, id)?;
    let track_live = cluster
        .get(&driver::track_id(id, &strategy))
        .map_err(driver::cluster_err(id))?;
    let track_word = strategy.track();

    let mut revisions = Vec::new();
    let mut replicas = ReplicasView {
        desired: live
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1),
        ..ReplicasView::default()
    };
    let current_revision = revision_of(&live).map(str::to_string);
    let mut add = |owner: &Value, is_track: bool| -> Result<(), Error> {
        let owner_revision = revision_of(owner).map(str::to_string);
        for rs in replica_sets(cluster, owner)? {
            let pods = pods_of(cluster, &rs)?;
            let revision = revision_of(&rs).unwrap_or_default().to_string();
            let is_current = owner_revision.as_deref() == Some(revision.as_str());
            let track = match (is_track, is_current) {
                (true, true) => track_word.to_string(),
                (false, true) => "stable".to_string(),
                _ => String::new(),
            };
            let desired = int(&rs, "/spec/replicas");
            let ready = int(&rs, "/status/readyReplicas");
            let pod_views: Vec<PodView> = pods.iter().map(|(p, _)| pod_view(p)).collect();
            let failing = health::failing_count(&pods) > 0;
            let status = if failing {
                "Degraded"
            } else if desired == 0 && pod_views.is_empty() {
                "ScaledDown"
            } else if ready >= desired {
                "Healthy"
            } else {
                "Progressing"
            };
            for p in &pod_views {
                if p.status != "Terminating" {
                    replicas.current += 1;
                }
            }
            replicas.ready += ready;
            replicas.available += int(&rs, "/status/availableReplicas");
            let on_target = if state.is_some() && strategy.is_progressive() {
                is_track && is_current
                    || (!is_track
                        && is_current
                        && state.as_ref().is_some_and(|s| s.phase == Phase::Healthy))
            } else {
                is_current && current_revision.is_some()
            };
            if on_target {
                replicas.updated += int(&rs, "/status/availableReplicas");
            }
            // Old revisions scaled to zero with no pods left are history, not part of the
            // picture (Argo Rollouts shows them only with their pods).
            if status == "ScaledDown" && !is_current {
                continue;
            }
            revisions.push(RevisionView {
                revision,
                replica_set: ResId::of(&rs).name,
                track,
                status: status.to_string(),
                replicas: desired,
                ready,
                created: rs
                    .pointer("/metadata/creationTimestamp")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                pods: pod_views,
            });
        }
        Ok(())
    };
    if let Some(track) = &track_live {
        add(track, true)?;
    }
    add(&live, false)?;
    revisions.sort_by(|a, b| {
        let key = |r: &RevisionView| r.revision.parse::<u64>().unwrap_or(0);
        (b.track == track_word)
            .cmp(&(a.track == track_word))
            .then(key(b).cmp(&key(a)))
    });

    let mut images: Vec<ImageView> = status
        .images
        .iter()
        .map(|image| ImageView {
            image: image.clone(),
            track: "stable".into(),
        })
        .collect();
    images.extend(status.track_images.iter().map(|image| ImageView {
        image: image.clone(),
        track: track_word.into(),
    }));

    let (steps, current_step, set_weight, actual_weight) = match (&strategy, &state) {
        (Strategy::Canary(spec), Some(state)) => {
            let done_all = state.phase == Phase::Healthy || state.step >= spec.steps.len();
            let steps = spec
                .steps
                .iter()
                .enumerate()
                .map(|(i, step)| StepView {
                    text: step_text(step),
                    state: if done_all || i < state.step {
                        "done"
                    } else if i == state.step {
                        "current"
                    } else {
                        "pending"
                    }
                    .into(),
                })
                .collect();
            let set = if state.phase == Phase::Healthy {
                100
            } else {
                state.weight
            };
            let actual = actual_weight(cluster, &live, &track_live, state.phase, set)?;
            let current = (!done_all).then_some(state.step + 1);
            (steps, current, Some(set), Some(actual))
        }
        (Strategy::Canary(spec), None) => (
            spec.steps
                .iter()
                .map(|s| StepView {
                    text: step_text(s),
                    state: "pending".into(),
                })
                .collect(),
            None,
            None,
            None,
        ),
        _ => (Vec::new(), None, None, None),
    };

    let analysis_runs = state
        .iter()
        .flat_map(|s| {
            s.analysis_runs
                .iter()
                .chain(s.analysis.as_ref().map(|(run, _)| run))
        })
        .map(|run| AnalysisView {
            name: run.name.clone(),
            step: run
                .step
                .parse::<usize>()
                .map(|s| (s + 1).to_string())
                .unwrap_or_else(|_| run.step.clone()),
            phase: format!("{:?}", run.phase),
            values: run.measurements.iter().map(|m| m.value).collect(),
            passed: run
                .measurements
                .iter()
                .filter(|m| m.passed == Some(true))
                .count(),
            failed: run
                .measurements
                .iter()
                .filter(|m| m.passed == Some(false))
                .count(),
            message: run.message.clone(),
        })
        .collect();

    let (status_word, message) = match &state {
        Some(s) => (format!("{:?}", s.phase), s.message.clone()),
        None => (
            status.health.status.to_string(),
            status.health.message.clone(),
        ),
    };
    Ok(RolloutView {
        name: id.name.clone(),
        namespace: id.namespace.clone(),
        status: status_word,
        message,
        strategy: strategy.name().to_string(),
        steps,
        current_step,
        set_weight,
        actual_weight,
        images,
        replicas,
        revisions,
        analysis_runs,
        cause: status.cause.clone(),
        active: match &state {
            Some(s) => s.is_active(),
            None => status.health.status == health::Status::Progressing,
        },
        now: cluster.now(),
    })
}

/// The canary's share of the traffic now: the Service's weight while canary pods are
/// ready (the engine splits by it), else their share of the ready pods.
fn actual_weight(
    cluster: &dyn Cluster,
    stable: &Value,
    track: &Option<Value>,
    phase: Phase,
    set: u32,
) -> Result<u32, Error> {
    if phase == Phase::Healthy {
        return Ok(100);
    }
    let Some(track) = track else {
        return Ok(0);
    };
    let canary_ready = int(track, "/status/readyReplicas");
    if canary_ready == 0 {
        return Ok(0);
    }
    let stable_ready = int(stable, "/status/readyReplicas");
    let weighted = driver::services_of(cluster, stable)?.iter().any(|svc| {
        svc.pointer("/metadata/annotations")
            .and_then(|a| a.get(CANARY_WEIGHT_ANNOTATION))
            .is_some()
    });
    if weighted || stable_ready == 0 {
        return Ok(if stable_ready == 0 { 100 } else { set });
    }
    Ok(((canary_ready * 100) as f64 / (canary_ready + stable_ready) as f64).round() as u32)
}
