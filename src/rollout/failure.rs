//! Failure handling of the cluster's own strategies (RollingUpdate, Recreate), as Docker
//! Swarm's `update_config`: `reconcile.dev/failure-action: rollback | pause | continue`,
//! `reconcile.dev/monitor` (default 30 s) and `reconcile.dev/max-failure-ratio` (default 0).
//!
//! An update is watched from the moment the Deployment's revision changes until it has been
//! healthy for the monitor window. Updated pods that crash, fail to pull, or fail readiness
//! for a whole monitor window count as failed; more than the ratio of them, or the progress
//! deadline, trigger the action. Decisions are pure ([`judge`]); the driver observes and acts.
//! The record of the last update lives in [`UPDATE_STATUS_ANNOTATION`] on the Deployment.
//!
//! Canary and BlueGreen keep their own failure detection (analysis, progress deadline) and
//! abort; the driver then applies the same policy: `rollback` finishes the rollout on the
//! last healthy revision and marks the failed one rolled back, `pause` holds the rollout at
//! the failed step instead of aborting, `continue` records the failure and goes on.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::time;

/// `rollback`, `pause` or `continue`; absent: Kubernetes' behaviour (nothing happens).
pub const FAILURE_ACTION_ANNOTATION: &str = "reconcile.dev/failure-action";
/// How long an updated pod is watched (`30s`, `2m`).
pub const MONITOR_ANNOTATION: &str = "reconcile.dev/monitor";
/// Fraction (0..1) of updated pods that may fail without triggering the action.
pub const MAX_FAILURE_RATIO_ANNOTATION: &str = "reconcile.dev/max-failure-ratio";
/// The record of the Deployment's last update (JSON), written by the driver.
pub const UPDATE_STATUS_ANNOTATION: &str = "reconcile.dev/update-status";
/// On a ReplicaSet whose update failed: what happened and why.
pub const FAILURE_ANNOTATION: &str = "reconcile.dev/failure";

/// Default monitor window.
pub const DEFAULT_MONITOR: Duration = Duration::from_secs(30);

/// What to do when an update fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FailureAction {
    /// Return to the last revision that became healthy.
    Rollback,
    /// Pause the Deployment (`spec.paused`) where it is.
    Pause,
    /// Record the failure and let the update go on.
    Continue,
}

impl std::str::FromStr for FailureAction {
    type Err = String;

    fn from_str(text: &str) -> Result<FailureAction, String> {
        match text.trim() {
            "rollback" => Ok(FailureAction::Rollback),
            "pause" => Ok(FailureAction::Pause),
            "continue" => Ok(FailureAction::Continue),
            other => Err(format!(
                "{other:?} is not a failure action (expected rollback, pause or continue)"
            )),
        }
    }
}

/// A Deployment's failure policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// The action.
    pub action: FailureAction,
    /// The monitor window.
    pub monitor: Duration,
    /// Failed fraction tolerated.
    pub max_failure_ratio: f64,
}

fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

impl Policy {
    /// The policy a Deployment's annotations declare (`Ok(None)`: none). The error names the
    /// annotation and the cause.
    pub fn of(deployment: &Value) -> Result<Option<Policy>, String> {
        let Some(action) = annotation(deployment, FAILURE_ACTION_ANNOTATION) else {
            return Ok(None);
        };
        let action = action
            .parse()
            .map_err(|e| format!("{FAILURE_ACTION_ANNOTATION}: {e}"))?;
        let monitor = match annotation(deployment, MONITOR_ANNOTATION) {
            Some(text) => {
                time::parse_duration(text).map_err(|e| format!("{MONITOR_ANNOTATION}: {e}"))?
            }
            None => DEFAULT_MONITOR,
        };
        let max_failure_ratio = match annotation(deployment, MAX_FAILURE_RATIO_ANNOTATION) {
            Some(text) => text
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| {
                    format!(
                        "{MAX_FAILURE_RATIO_ANNOTATION}: {text:?} is not a ratio between 0 and 1"
                    )
                })?,
            None => 0.0,
        };
        Ok(Some(Policy {
            action,
            monitor,
            max_failure_ratio,
        }))
    }
}

/// Where the watched update is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum UpdatePhase {
    /// Being watched.
    Monitoring,
    /// Healthy for the monitor window: a revision rollbacks may return to.
    Completed,
    /// Failed and rolled back.
    RolledBack,
    /// Failed and paused.
    Paused,
    /// Failed; the update went on (`continue`).
    Continued,
    /// Failed with no healthy revision to roll back to.
    Failed,
}

/// A failed update, kept until the next one fails.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// The Deployment's generation that failed.
    pub generation: i64,
    /// Its revision.
    pub revision: String,
    /// What was done (`rolled back to revision 1`, `paused` …).
    pub action: String,
    /// Why, from the pods.
    pub reason: String,
}

/// The record of a Deployment's last update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateRecord {
    /// The Deployment's revision (`deployment.kubernetes.io/revision`).
    pub revision: String,
    /// The `pod-template-hash` of its ReplicaSet (revision numbers move on a rollback;
    /// the hash names the template).
    #[serde(default)]
    pub hash: String,
    /// Its generation when the update was first seen.
    pub generation: i64,
    /// Phase.
    pub phase: UpdatePhase,
    /// When the update was first seen (ms).
    pub since_ms: u64,
    /// Since when all updated pods are available (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_since_ms: Option<u64>,
    /// The `pod-template-hash` of the last revision that completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_healthy: Option<String>,
    /// The last failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<Failure>,
}

impl UpdateRecord {
    /// True once the update of `revision` needs no more watching (completed, or failed and
    /// handled).
    pub fn settled(&self, revision: &str) -> bool {
        self.revision == revision && self.phase != UpdatePhase::Monitoring
    }

    /// The record a Deployment carries, if any (an unreadable one counts as none).
    pub fn of(deployment: &Value) -> Option<UpdateRecord> {
        annotation(deployment, UPDATE_STATUS_ANNOTATION).and_then(|t| serde_json::from_str(t).ok())
    }
}

/// What the driver saw of an update.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UpdateObservation {
    /// Cluster time (ms).
    pub now_ms: u64,
    /// The Deployment's revision.
    pub revision: String,
    /// The `pod-template-hash` of its ReplicaSet.
    pub hash: String,
    /// Its generation.
    pub generation: i64,
    /// Healthy by the Deployment rules (all updated replicas available, old ones gone).
    pub healthy: bool,
    /// The Progressing condition says ProgressDeadlineExceeded.
    pub deadline_exceeded: bool,
    /// Wanted replicas.
    pub desired: i64,
    /// Updated pods counted as failed.
    pub failing: usize,
    /// Why they fail ([`super::health::pod_failures`]).
    pub cause: Option<String>,
}

/// A judgement: the record to keep, the action to take now (with its reason), and when to
/// look again.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// The record after this observation.
    pub record: UpdateRecord,
    /// The action to carry out now, and why.
    pub act: Option<(FailureAction, String)>,
    /// When to look again (`None`: not before the revision changes).
    pub next: Option<Duration>,
}

/// Judges an update: pure function of (policy, previous record, observation).
pub fn judge(
    policy: &Policy,
    previous: Option<&UpdateRecord>,
    seen: &UpdateObservation,
) -> Judgement {
    let poll = Some(super::POLL);
    let mut record = match previous {
        Some(p) if p.revision == seen.revision => p.clone(),
        _ => {
            let last_healthy = match previous {
                // A revision that was fully available when it was replaced counts as healthy
                // even if nobody let its monitor window run out.
                Some(p)
                    if p.phase == UpdatePhase::Completed
                        || (p.phase == UpdatePhase::Monitoring && p.healthy_since_ms.is_some()) =>
                {
                    Some(p.hash.clone())
                }
                Some(p) => p.last_healthy.clone(),
                None => None,
            };
            let phase = if previous.is_none() && seen.healthy {
                // First sight of a Deployment already running well: nothing to watch.
                UpdatePhase::Completed
            } else {
                UpdatePhase::Monitoring
            };
            UpdateRecord {
                revision: seen.revision.clone(),
                hash: seen.hash.clone(),
                generation: seen.generation,
                phase,
                since_ms: seen.now_ms,
                healthy_since_ms: None,
                last_healthy,
                last_failure: previous.and_then(|p| p.last_failure.clone()),
            }
        }
    };
    if record.phase != UpdatePhase::Monitoring {
        return Judgement {
            record,
            act: None,
            next: None,
        };
    }
    let ratio = seen.failing as f64 / seen.desired.max(1) as f64;
    let failed = (seen.failing > 0 && ratio > policy.max_failure_ratio) || seen.deadline_exceeded;
    if failed {
        let reason = match (&seen.cause, seen.deadline_exceeded) {
            (Some(cause), _) => cause.clone(),
            (None, _) => "progress deadline exceeded".to_string(),
        };
        let (phase, action) = match (policy.action, &record.last_healthy) {
            (FailureAction::Rollback, Some(_)) => (
                UpdatePhase::RolledBack,
                "rolled back to the last healthy revision".to_string(),
            ),
            (FailureAction::Rollback, None) => (
                UpdatePhase::Failed,
                "not rolled back: no earlier revision became healthy".to_string(),
            ),
            (FailureAction::Pause, _) => (UpdatePhase::Paused, "paused".to_string()),
            (FailureAction::Continue, _) => (UpdatePhase::Continued, "continued".to_string()),
        };
        record.phase = phase;
        record.last_failure = Some(Failure {
            generation: record.generation.max(seen.generation),
            revision: record.revision.clone(),
            action,
            reason: reason.clone(),
        });
        let act = match phase {
            UpdatePhase::RolledBack => Some((FailureAction::Rollback, reason)),
            UpdatePhase::Paused => Some((FailureAction::Pause, reason)),
            _ => None,
        };
        return Judgement {
            record,
            act,
            next: None,
        };
    }
    if !seen.healthy {
        record.healthy_since_ms = None;
        return Judgement {
            record,
            act: None,
            next: poll,
        };
    }
    let since = *record.healthy_since_ms.get_or_insert(seen.now_ms);
    let monitor = policy.monitor.as_millis() as u64;
    if seen.now_ms >= since + monitor {
        record.phase = UpdatePhase::Completed;
        return Judgement {
            record,
            act: None,
            next: None,
        };
    }
    Judgement {
        record,
        act: None,
        next: Some(Duration::from_millis(since + monitor - seen.now_ms)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(action: FailureAction) -> Policy {
        Policy {
            action,
            monitor: Duration::from_secs(30),
            max_failure_ratio: 0.25,
        }
    }

    fn seen(now_ms: u64, revision: &str, healthy: bool, failing: usize) -> UpdateObservation {
        UpdateObservation {
            now_ms,
            revision: revision.into(),
            hash: format!("h{revision}"),
            generation: revision.parse().unwrap_or(0),
            healthy,
            deadline_exceeded: false,
            desired: 4,
            failing,
            cause: (failing > 0)
                .then(|| format!("{failing}/4 new pods CrashLoopBackOff: exit code 1")),
        }
    }

    #[test]
    fn policies_are_read_from_annotations_with_errors_naming_them() {
        let d = |a: Value| json!({"metadata": {"annotations": a}});
        assert_eq!(Policy::of(&d(json!({}))), Ok(None));
        let p = Policy::of(&d(
            json!({FAILURE_ACTION_ANNOTATION: "rollback", MONITOR_ANNOTATION: "1m", MAX_FAILURE_RATIO_ANNOTATION: "0.5"}),
        ));
        assert_eq!(
            p,
            Ok(Some(Policy {
                action: FailureAction::Rollback,
                monitor: Duration::from_secs(60),
                max_failure_ratio: 0.5
            }))
        );
        let err = Policy::of(&d(json!({FAILURE_ACTION_ANNOTATION: "explode"}))).unwrap_err();
        assert!(
            err.contains("reconcile.dev/failure-action: \"explode\" is not a failure action"),
            "{err}"
        );
        let err = Policy::of(&d(
            json!({FAILURE_ACTION_ANNOTATION: "pause", MAX_FAILURE_RATIO_ANNOTATION: "2"}),
        ))
        .unwrap_err();
        assert!(err.contains("max-failure-ratio"), "{err}");
    }

    #[test]
    fn an_update_completes_after_the_monitor_window_and_a_failing_one_rolls_back() {
        let p = policy(FailureAction::Rollback);
        let j = judge(&p, None, &seen(0, "1", true, 0));
        assert_eq!(j.record.phase, UpdatePhase::Completed);
        let j = judge(&p, Some(&j.record), &seen(1_000, "2", false, 0));
        assert_eq!(
            (j.record.phase, j.next),
            (UpdatePhase::Monitoring, Some(super::super::POLL))
        );
        assert_eq!(j.record.last_healthy.as_deref(), Some("h1"));
        // One of four failing is within the ratio; two is not.
        let j = judge(&p, Some(&j.record), &seen(2_000, "2", false, 1));
        assert_eq!(j.act, None);
        let j = judge(&p, Some(&j.record), &seen(3_000, "2", false, 2));
        assert_eq!(
            j.act,
            Some((
                FailureAction::Rollback,
                "2/4 new pods CrashLoopBackOff: exit code 1".to_string()
            ))
        );
        assert_eq!(j.record.phase, UpdatePhase::RolledBack);
        let failure = j
            .record
            .last_failure
            .clone()
            .unwrap_or_else(|| panic!("no failure"));
        assert_eq!(failure.action, "rolled back to the last healthy revision");
        // The rollback is a new revision, watched in turn; it completes after the window.
        let j = judge(&p, Some(&j.record), &seen(4_000, "3", true, 0));
        assert_eq!(j.next, Some(Duration::from_secs(30)));
        let j = judge(&p, Some(&j.record), &seen(34_000, "3", true, 0));
        assert_eq!(j.record.phase, UpdatePhase::Completed);
        assert_eq!(
            j.record.last_failure.map(|f| f.revision),
            Some("2".to_string())
        );
    }

    #[test]
    fn pause_continue_and_no_healthy_revision() {
        let j = judge(&policy(FailureAction::Pause), None, &seen(0, "1", false, 4));
        assert_eq!(j.record.phase, UpdatePhase::Paused);
        assert!(matches!(j.act, Some((FailureAction::Pause, _))));
        let j = judge(
            &policy(FailureAction::Continue),
            None,
            &seen(0, "1", false, 4),
        );
        assert_eq!((j.record.phase, j.act), (UpdatePhase::Continued, None));
        let j = judge(
            &policy(FailureAction::Rollback),
            None,
            &seen(0, "1", false, 4),
        );
        assert_eq!((j.record.phase, j.act), (UpdatePhase::Failed, None));
        let mut deadline = seen(0, "1", false, 0);
        deadline.deadline_exceeded = true;
        let j = judge(&policy(FailureAction::Pause), None, &deadline);
        assert_eq!(
            j.act,
            Some((
                FailureAction::Pause,
                "progress deadline exceeded".to_string()
            ))
        );
    }
}
