//! The workload and storage controllers the engine runs as one step: DaemonSet,
//! StatefulSet, Job, CronJob, HorizontalPodAutoscaler, volume binding, quota status and
//! PodDisruptionBudget status.
//!
//! Each is a pure function of (state, now); their changes are applied together, and the
//! engine repeats the round until nothing changes, so a CronJob's Job is seen by the Job
//! controller in the next round at the same instant.

use super::Changes;
use crate::engine::clock::Millis;
use crate::engine::store::State;

/// Runs every workload and storage controller once.
pub fn sync(state: &State, now: Millis, out: &mut Changes) {
    super::volume::sync(state, now, out);
    super::daemonset::sync(state, now, out);
    super::statefulset::sync(state, now, out);
    super::cronjob::sync(state, now, out);
    super::job::sync(state, now, out);
    super::hpa::sync(state, now, out);
    crate::engine::quota::sync(state, now, out);
    super::disruption::sync(state, now, out);
}

/// Whether an event with this reason was already recorded about the object: conditions that
/// persist (an unsupported field, an unparseable schedule) are reported once, not at every
/// pass of the engine.
pub fn already_reported(
    state: &State,
    kind: &str,
    namespace: &str,
    name: &str,
    reason: &str,
) -> bool {
    state
        .events
        .about(kind, namespace, name)
        .iter()
        .any(|e| e.reason == reason)
}
