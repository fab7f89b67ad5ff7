//! The disruption controller: keeps every PodDisruptionBudget's status (`expectedPods`,
//! `currentHealthy`, `desiredHealthy`, `disruptionsAllowed`, the `DisruptionAllowed`
//! condition) up to date, and answers whether evicting a pod is allowed now
//! ([`eviction_blocked_by`]), as the API server's eviction subresource does.
//!
//! Rules, from Kubernetes' `pkg/controller/disruption`: with an integer `minAvailable` the
//! expected count is the number of selected pods; with a percentage or `maxUnavailable` it is
//! the sum of the scale (`spec.replicas`) of the selected pods' controllers, a pod without a
//! controller counting one. Percentages round up. A pod is healthy while it is Ready and not
//! terminating. Simplified: the API server's `disruptedPods` bookkeeping is not kept; the
//! engine recomputes the status after every eviction instead, which has the same effect
//! because an evicted pod is terminating at once.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Change, Changes};
use crate::engine::clock::{Millis, rfc3339};
use crate::engine::doc;
use crate::engine::labels::Selector;
use crate::engine::store::State;

/// The message of a refused eviction (the API server's 429 answer).
pub const BLOCKED: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// The budget's numbers, as its status carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Pods the budget expects (its controllers' scale, or the selected pods).
    pub expected: i64,
    /// Selected pods that are Ready and not terminating.
    pub current_healthy: i64,
    /// Healthy pods the budget wants at least.
    pub desired_healthy: i64,
    /// How many more pods may be disrupted now.
    pub disruptions_allowed: i64,
}

fn selector_of(pdb: &Value) -> Option<Selector> {
    // policy/v1: a null selector selects nothing, an empty one every pod in the namespace.
    let sel = doc::at(pdb, &["spec", "selector"])?;
    Selector::from_label_selector(sel).ok()
}

fn healthy(pod: &Value) -> bool {
    !doc::is_deleting(pod)
        && crate::engine::scheduler::pod_condition(pod, "Ready")
            .is_some_and(|c| doc::str_at(c, &["status"]) == "True")
}

/// `value` of an int-or-percent against `total`, rounded up.
fn scaled(value: &Value, total: i64) -> Option<i64> {
    if let Some(n) = value.as_i64() {
        return Some(n);
    }
    let pct: i64 = value.as_str()?.strip_suffix('%')?.trim().parse().ok()?;
    Some((pct * total + 99) / 100)
}

/// The scale of the controller owning `pod` (uid, replicas), if it has one the engine knows.
fn controller_scale(state: &State, pod: &Value) -> Option<(String, i64)> {
    let owner = doc::at(pod, &["metadata", "ownerReferences"])
        .and_then(Value::as_array)?
        .iter()
        .find(|o| o.get("controller") == Some(&json!(true)))?;
    let kind = doc::str_at(owner, &["kind"]);
    let name = doc::str_at(owner, &["name"]);
    let ns = doc::namespace(pod);
    let replicas = match kind {
        "ReplicaSet" | "StatefulSet" | "ReplicationController" => state
            .get(kind, ns, name)
            .and_then(|s| doc::i64_at(&s.doc, &["spec", "replicas"]))?,
        _ => return None,
    };
    Some((doc::str_at(owner, &["uid"]).to_string(), replicas))
}

/// The budget's numbers over the pods it selects now.
pub fn compute(state: &State, pdb: &Value) -> Budget {
    let ns = doc::namespace(pdb);
    let selected: Vec<&Value> = match selector_of(pdb) {
        Some(sel) => state
            .in_namespace("Pod", ns)
            .map(|s| &s.doc)
            .filter(|p| sel.matches(doc::labels(p)))
            .filter(|p| {
                let phase = doc::str_at(p, &["status", "phase"]);
                phase != "Succeeded" && phase != "Failed"
            })
            .collect(),
        None => Vec::new(),
    };
    let current_healthy = selected.iter().filter(|p| healthy(p)).count() as i64;
    let min_available = doc::at(pdb, &["spec", "minAvailable"]);
    let max_unavailable = doc::at(pdb, &["spec", "maxUnavailable"]);
    let scale_of_controllers = || {
        let mut by_controller: BTreeMap<String, i64> = BTreeMap::new();
        let mut loose = 0;
        for p in &selected {
            match controller_scale(state, p) {
                Some((uid, replicas)) => {
                    by_controller.insert(uid, replicas);
                }
                None => loose += 1,
            }
        }
        by_controller.values().sum::<i64>() + loose
    };
    let (expected, desired_healthy) = match (min_available, max_unavailable) {
        (_, Some(max)) => {
            let expected = scale_of_controllers();
            let unavailable = scaled(max, expected).unwrap_or(0);
            (expected, (expected - unavailable).max(0))
        }
        (Some(min), None) if min.is_i64() => (selected.len() as i64, min.as_i64().unwrap_or(0)),
        (Some(min), None) => {
            let expected = scale_of_controllers();
            (expected, scaled(min, expected).unwrap_or(0))
        }
        (None, None) => (selected.len() as i64, 0),
    };
    Budget {
        expected,
        current_healthy,
        desired_healthy,
        disruptions_allowed: if expected == 0 {
            0
        } else {
            (current_healthy - desired_healthy).max(0)
        },
    }
}

/// One pass: every budget's status follows its pods.
pub fn sync(state: &State, now: Millis, out: &mut Changes) {
    for stored in state.kind("PodDisruptionBudget").values() {
        let pdb = &stored.doc;
        let budget = compute(state, pdb);
        let allowed = budget.disruptions_allowed > 0;
        let (status_word, reason) = if allowed {
            ("True", "SufficientPods")
        } else {
            ("False", "InsufficientPods")
        };
        let generation = doc::i64_at(pdb, &["metadata", "generation"]).unwrap_or(1);
        let previous = doc::at(pdb, &["status", "conditions"])
            .and_then(Value::as_array)
            .and_then(|c| {
                c.iter()
                    .find(|c| doc::str_at(c, &["type"]) == "DisruptionAllowed")
            });
        let since = match previous {
            Some(c) if doc::str_at(c, &["status"]) == status_word => {
                doc::str_at(c, &["lastTransitionTime"]).to_string()
            }
            _ => rfc3339(now),
        };
        let status = json!({
            "observedGeneration": generation,
            "disruptionsAllowed": budget.disruptions_allowed,
            "currentHealthy": budget.current_healthy,
            "desiredHealthy": budget.desired_healthy,
            "expectedPods": budget.expected,
            "conditions": [{
                "type": "DisruptionAllowed",
                "status": status_word,
                "reason": reason,
                "message": "",
                "observedGeneration": generation,
                "lastTransitionTime": since,
            }],
        });
        if pdb.get("status") != Some(&status) {
            out.push(Change::Status {
                kind: "PodDisruptionBudget",
                namespace: doc::namespace(pdb).to_string(),
                name: doc::name(pdb).to_string(),
                status,
            });
        }
    }
}

/// The budget that forbids evicting `pod` now, if one does: a budget selecting the pod with
/// no disruption left, while the pod is healthy (evicting an unhealthy pod disrupts
/// nothing, as with `unhealthyPodEvictionPolicy: AlwaysAllow`).
pub fn eviction_blocked_by(state: &State, pod: &Value) -> Option<String> {
    if !healthy(pod) {
        return None;
    }
    state
        .in_namespace("PodDisruptionBudget", doc::namespace(pod))
        .map(|s| &s.doc)
        .filter(|pdb| selector_of(pdb).is_some_and(|sel| sel.matches(doc::labels(pod))))
        .find(|pdb| compute(state, pdb).disruptions_allowed <= 0)
        .map(|pdb| doc::name(pdb).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_up() {
        assert_eq!(scaled(&json!("50%"), 3), Some(2));
        assert_eq!(scaled(&json!("10%"), 10), Some(1));
        assert_eq!(scaled(&json!(2), 10), Some(2));
        assert_eq!(scaled(&json!("x"), 10), None);
    }
}
