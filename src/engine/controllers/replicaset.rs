//! The ReplicaSet controller: keeps `spec.replicas` pods, as Kubernetes' `replica_set.go`.
//!
//! Kubernetes creates at most 500 pods per sync (`burstReplicas`) and syncs again at once;
//! at one virtual instant those syncs follow each other with nothing in between, so the
//! engine does them in one pass. Deletes the lowest-ranked pods first
//! (unscheduled, pending, not ready, doubled-up, recently ready, restarted, young), and
//! reports replicas / ready / available (ready for `minReadySeconds`).

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{Change, Changes};
use crate::engine::clock::{Millis, SECOND, parse_rfc3339};
use crate::engine::doc;
use crate::engine::events::NewEvent;
use crate::engine::labels::Selector;
use crate::engine::scheduler::pod_condition;
use crate::engine::store::{State, Stored};

/// Whether a pod counts toward its controller: not terminating and not finished.
pub fn is_active(pod: &Value) -> bool {
    active(
        doc::is_deleting(pod),
        doc::str_at(pod, &["status", "phase"]),
    )
}

/// [`is_active`] from the two facts it depends on.
pub fn active(deleting: bool, phase: &str) -> bool {
    !deleting && phase != "Succeeded" && phase != "Failed"
}

/// When the pod last became Ready, if it is Ready.
pub fn ready_since(pod: &Value) -> Option<Millis> {
    let c = pod_condition(pod, "Ready")?;
    if doc::str_at(c, &["status"]) != "True" {
        return None;
    }
    Some(parse_rfc3339(doc::str_at(c, &["lastTransitionTime"])).unwrap_or(0))
}

/// Kubernetes' `IsPodAvailable`: Ready, and Ready for longer than `min_ready_seconds`.
pub fn is_available(pod: &Value, min_ready_seconds: i64, now: Millis) -> bool {
    available(ready_since(pod), min_ready_seconds, now)
}

/// [`is_available`] from the instant the pod became Ready.
pub fn available(ready_since: Option<Millis>, min_ready_seconds: i64, now: Millis) -> bool {
    match ready_since {
        None => false,
        Some(_) if min_ready_seconds == 0 => true,
        Some(t) => t + min_ready_seconds * SECOND < now,
    }
}

/// Pods (all of them, active or not) grouped by the uid of their controller.
pub fn pods_by_owner(state: &State) -> HashMap<&str, Vec<&Value>> {
    stored_pods_by_owner(state)
        .into_iter()
        .map(|(owner, pods)| (owner, pods.into_iter().map(|s| &s.doc).collect()))
        .collect()
}

/// [`pods_by_owner`] with each pod's stored record (its [`PodFacts`](crate::engine::store::PodFacts)
/// answer the common questions without JSON lookups).
pub fn stored_pods_by_owner(state: &State) -> HashMap<&str, Vec<&Stored>> {
    let mut map: HashMap<&str, Vec<&Stored>> = HashMap::new();
    for s in state.kind("Pod").values() {
        if let Some(owner) = s.facts.controller_uid.as_deref() {
            map.entry(owner).or_default().push(s);
        }
    }
    map
}

/// The pod a controller creates from its template.
pub fn pod_from_template(owner: &Value, template: &Value, name_prefix: &str) -> Value {
    let mut meta = json!({
        "generateName": format!("{name_prefix}-"),
        "namespace": doc::namespace(owner),
        "ownerReferences": [doc::controller_ref(owner)],
    });
    for field in ["labels", "annotations"] {
        if let Some(v) = doc::at(template, &["metadata", field]) {
            meta[field] = v.clone();
        }
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    })
}

/// One pass over every ReplicaSet.
pub fn sync(state: &State, now: Millis, out: &mut Changes) {
    let by_owner = stored_pods_by_owner(state);
    for stored in state.kind("ReplicaSet").values() {
        let rs = &stored.doc;
        if doc::is_deleting(rs) {
            continue;
        }
        let pods: Vec<&Stored> = by_owner
            .get(doc::uid(rs))
            .map(|v| v.iter().copied().filter(|p| p.facts.is_active()).collect())
            .unwrap_or_default();
        sync_one(state, rs, &pods, &by_owner, now, out);
    }
}

fn sync_one(
    state: &State,
    rs: &Value,
    stored_pods: &[&Stored],
    by_owner: &HashMap<&str, Vec<&Stored>>,
    now: Millis,
    out: &mut Changes,
) {
    let pods: Vec<&Value> = stored_pods.iter().map(|s| &s.doc).collect();
    let pods = pods.as_slice();
    let (ns, name) = (doc::namespace(rs), doc::name(rs));
    let replicas = doc::i64_at(rs, &["spec", "replicas"]).unwrap_or(1).max(0) as usize;
    let min_ready = doc::i64_at(rs, &["spec", "minReadySeconds"]).unwrap_or(0);
    let event = |reason: &str, msg: String| {
        NewEvent::normal("replicaset-controller", "ReplicaSet", ns, name, reason, msg)
    };
    if pods.len() < replicas {
        let template = doc::at(rs, &["spec", "template"]).unwrap_or(&Value::Null);
        let pod = pod_from_template(rs, template, name);
        out.list
            .extend(
                std::iter::repeat_n(pod, replicas - pods.len()).map(|doc| Change::Create {
                    kind: "Pod",
                    doc,
                    sim: None,
                    owner: Some(("ReplicaSet", ns.to_string(), name.to_string())),
                }),
            );
    } else if pods.len() > replicas {
        let diff = pods.len() - replicas;
        // Pods of sibling ReplicaSets (same Deployment) count when ranking doubled-up nodes.
        let mut related: Vec<&Value> = pods.to_vec();
        if let Some(owner) = doc::controller_uid(rs) {
            for sibling in state
                .in_namespace("ReplicaSet", ns)
                .filter(|s| doc::controller_uid(&s.doc) == Some(owner))
            {
                if doc::uid(&sibling.doc) != doc::uid(rs) {
                    related.extend(
                        by_owner
                            .get(doc::uid(&sibling.doc))
                            .into_iter()
                            .flatten()
                            .filter(|p| p.facts.is_active())
                            .map(|p| &p.doc),
                    );
                }
            }
        }
        for pod in pods_to_delete(pods, &related, diff, now) {
            out.push(Change::Delete {
                kind: "Pod",
                namespace: ns.to_string(),
                name: doc::name(pod).to_string(),
            });
            out.event(event(
                "SuccessfulDelete",
                format!("Deleted pod: {}", doc::name(pod)),
            ));
        }
    }
    // Status reflects the pods seen at the start of the pass, as in Kubernetes.
    let selector = doc::at(rs, &["spec", "selector"])
        .map(Selector::from_label_selector)
        .and_then(Result::ok)
        .unwrap_or_default();
    let template_labels = doc::at(rs, &["spec", "template", "metadata", "labels"]);
    let mut ready = 0;
    let mut available = 0;
    let mut fully_labeled = 0;
    for stored in stored_pods {
        let facts = &stored.facts;
        if let Some(t) = facts.ready_since {
            ready += 1;
            if facts.is_available(min_ready, now) {
                available += 1;
            } else {
                out.wake_at(t + min_ready * SECOND + 1);
            }
        }
        let labels = doc::labels(&stored.doc);
        let labels_ok = template_labels.and_then(Value::as_object).is_none_or(|tl| {
            tl.iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        });
        if labels_ok && selector.matches(labels) {
            fully_labeled += 1;
        }
    }
    let mut status = json!({"replicas": pods.len()});
    if fully_labeled > 0 {
        status["fullyLabeledReplicas"] = json!(fully_labeled);
    }
    if ready > 0 {
        status["readyReplicas"] = json!(ready);
    }
    if available > 0 {
        status["availableReplicas"] = json!(available);
    }
    status["observedGeneration"] = json!(doc::i64_at(rs, &["metadata", "generation"]).unwrap_or(1));
    if rs.get("status") != Some(&status) {
        out.push(Change::Status {
            kind: "ReplicaSet",
            namespace: ns.to_string(),
            name: name.to_string(),
            status,
        });
    }
}

/// The pods to delete when scaling down: Kubernetes' `ActivePodsWithRanks` order.
pub fn pods_to_delete<'a>(
    pods: &[&'a Value],
    related: &[&Value],
    diff: usize,
    now: Millis,
) -> Vec<&'a Value> {
    let mut per_node: HashMap<&str, i64> = HashMap::new();
    for p in related {
        let node = doc::str_at(p, &["spec", "nodeName"]);
        if !node.is_empty() {
            *per_node.entry(node).or_default() += 1;
        }
    }
    let mut ranked: Vec<(&Value, i64)> = pods
        .iter()
        .map(|p| {
            let node = doc::str_at(p, &["spec", "nodeName"]);
            (
                *p,
                if node.is_empty() {
                    0
                } else {
                    *per_node.get(node).unwrap_or(&0)
                },
            )
        })
        .collect();
    ranked.sort_by(|(a, ra), (b, rb)| rank_order(a, *ra, b, *rb, now));
    ranked.into_iter().take(diff).map(|(p, _)| p).collect()
}

fn rank_order(a: &Value, ra: i64, b: &Value, rb: i64, now: Millis) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let assigned = |p: &Value| !doc::str_at(p, &["spec", "nodeName"]).is_empty();
    if assigned(a) != assigned(b) {
        return assigned(a).cmp(&assigned(b));
    }
    let phase_rank = |p: &Value| match doc::str_at(p, &["status", "phase"]) {
        "Pending" | "" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    };
    if phase_rank(a) != phase_rank(b) {
        return phase_rank(a).cmp(&phase_rank(b));
    }
    let (ready_a, ready_b) = (ready_since(a), ready_since(b));
    if ready_a.is_some() != ready_b.is_some() {
        return ready_a.is_some().cmp(&ready_b.is_some());
    }
    if ra != rb {
        return rb.cmp(&ra);
    }
    let uid_order = || doc::uid(a).cmp(doc::uid(b));
    if let (Some(ta), Some(tb)) = (ready_a, ready_b)
        && ta != tb
    {
        let diff = log_rank(ta, now) - log_rank(tb, now);
        return if diff == 0 { uid_order() } else { diff.cmp(&0) };
    }
    let restarts = |p: &Value| {
        doc::at(p, &["status", "containerStatuses"])
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|c| doc::i64_at(c, &["restartCount"]).unwrap_or(0))
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    };
    if restarts(a) != restarts(b) {
        return restarts(b).cmp(&restarts(a));
    }
    let created =
        |p: &Value| parse_rfc3339(doc::str_at(p, &["metadata", "creationTimestamp"])).unwrap_or(0);
    if created(a) != created(b) {
        let diff = log_rank(created(a), now) - log_rank(created(b), now);
        return if diff == 0 { uid_order() } else { diff.cmp(&0) };
    }
    match uid_order() {
        Ordering::Equal => doc::name(a).cmp(doc::name(b)),
        o => o,
    }
}

/// `int(log2(now - t))` with the duration in nanoseconds, as Kubernetes' LogarithmicScaleDown.
fn log_rank(t: Millis, now: Millis) -> i64 {
    let d = (now - t) as f64 * 1e6;
    if d > 0.0 { d.log2() as i64 } else { -1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: &str, phase: &str, ready_at: Option<&str>) -> Value {
        let mut p = json!({"metadata": {"name": name, "uid": name, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"nodeName": node}, "status": {"phase": phase}});
        if let Some(t) = ready_at {
            p["status"]["conditions"] =
                json!([{"type": "Ready", "status": "True", "lastTransitionTime": t}]);
        }
        p
    }

    #[test]
    fn scale_down_removes_unscheduled_then_pending_then_unready() {
        let a = pod("a", "n1", "Running", Some("2026-01-01T00:00:10Z"));
        let b = pod("b", "", "Pending", None);
        let c = pod("c", "n1", "Pending", None);
        let d = pod("d", "n2", "Running", None);
        let pods = vec![&a, &b, &c, &d];
        let now = parse_rfc3339("2026-01-01T01:00:00Z").unwrap_or(0);
        let order: Vec<&str> = pods_to_delete(&pods, &pods, 4, now)
            .iter()
            .map(|p| doc::name(p))
            .collect();
        assert_eq!(order, vec!["b", "c", "d", "a"]);
    }

    #[test]
    fn availability_needs_min_ready_seconds_to_pass() {
        let p = pod("a", "n1", "Running", Some("2026-01-01T00:00:10Z"));
        let t = parse_rfc3339("2026-01-01T00:00:20Z").unwrap_or(0);
        assert!(is_available(&p, 0, t));
        assert!(!is_available(&p, 10, t));
        assert!(is_available(&p, 10, t + 1));
    }
}
