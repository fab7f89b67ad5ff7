//! The DaemonSet controller: one pod on every eligible node, as Kubernetes' `daemon_controller.go`.
//!
//! A node is eligible when it matches the template's nodeSelector and required node affinity
//! and the pod (with the tolerations every daemon pod gets) tolerates its NoSchedule and
//! NoExecute taints. A pod is created on an eligible node that has none (only once any
//! previous pod there is fully gone), extra pods on a node are deleted (the oldest stays),
//! pods on nodes that are no longer eligible are deleted, and failed pods are replaced.
//! Pods are pinned with the `metadata.name` node-affinity term Kubernetes uses.
//!
//! RollingUpdate deletes old pods while at most `maxUnavailable` (rounded up, default 1)
//! daemon pods are unavailable; with `maxSurge` it instead starts the new pod beside the old
//! one on up to maxSurge nodes and deletes the old pod once the new one is available.
//! OnDelete replaces only pods the user deletes.
//! The template's revision is the `controller-revision-hash` label.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::deployment::{scaled_value, template_hash};
use super::replicaset::{is_available, pod_from_template, pods_by_owner, ready_since};
use super::{Change, Changes};
use crate::engine::clock::{Millis, SECOND, parse_rfc3339};
use crate::engine::doc;
use crate::engine::events::NewEvent;
use crate::engine::scheduler::{node_ready, tolerates};
use crate::engine::store::State;

/// The label carrying the template revision of a daemon or stateful pod.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// The tolerations the DaemonSet controller adds to every daemon pod.
pub fn default_tolerations() -> Vec<Value> {
    let t = |key: &str, effect: &str| json!({"key": key, "operator": "Exists", "effect": effect});
    vec![
        t("node.kubernetes.io/not-ready", "NoExecute"),
        t("node.kubernetes.io/unreachable", "NoExecute"),
        t("node.kubernetes.io/disk-pressure", "NoSchedule"),
        t("node.kubernetes.io/memory-pressure", "NoSchedule"),
        t("node.kubernetes.io/pid-pressure", "NoSchedule"),
        t("node.kubernetes.io/unschedulable", "NoSchedule"),
    ]
}

/// Whether a node satisfies a pod spec's required node affinity (`matchExpressions` on
/// labels, `matchFields` on `metadata.name`); terms are ORed, requirements in a term ANDed.
pub fn affinity_allows(pod_spec: &Value, node: &Value) -> bool {
    let Some(terms) = doc::at(
        pod_spec,
        &[
            "affinity",
            "nodeAffinity",
            "requiredDuringSchedulingIgnoredDuringExecution",
            "nodeSelectorTerms",
        ],
    )
    .and_then(Value::as_array) else {
        return true;
    };
    if terms.is_empty() {
        return true;
    }
    terms.iter().any(|term| {
        let exprs = |field: &str| {
            term.get(field)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let labels_ok = exprs("matchExpressions").iter().all(|e| {
            let key = doc::str_at(e, &["key"]);
            requirement_holds(e, doc::at(node, &["metadata", "labels", key]))
        });
        let fields_ok = exprs("matchFields").iter().all(|e| {
            let value = match doc::str_at(e, &["key"]) {
                "metadata.name" => doc::at(node, &["metadata", "name"]),
                _ => None,
            };
            requirement_holds(e, value)
        });
        labels_ok && fields_ok
    })
}

fn requirement_holds(expr: &Value, actual: Option<&Value>) -> bool {
    let values: Vec<&str> = expr
        .get("values")
        .and_then(Value::as_array)
        .map(|v| v.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let actual = actual.and_then(Value::as_str);
    let number = |s: &str| s.parse::<i64>().ok();
    match doc::str_at(expr, &["operator"]) {
        "In" => actual.is_some_and(|a| values.contains(&a)),
        "NotIn" => actual.is_none_or(|a| !values.contains(&a)),
        "Exists" => actual.is_some(),
        "DoesNotExist" => actual.is_none(),
        "Gt" | "Lt" => {
            let (Some(a), Some(v)) = (
                actual.and_then(number),
                values.first().and_then(|v| number(v)),
            ) else {
                return false;
            };
            if doc::str_at(expr, &["operator"]) == "Gt" {
                a > v
            } else {
                a < v
            }
        }
        _ => false,
    }
}

/// Kubernetes' `NodeShouldRunDaemonPod`: (should a new pod be placed, may an existing one
/// keep running).
pub fn node_should_run(template_spec: &Value, node: &Value) -> (bool, bool) {
    let selector_ok = doc::at(template_spec, &["nodeSelector"])
        .and_then(Value::as_object)
        .is_none_or(|sel| {
            sel.iter()
                .all(|(k, v)| doc::at(node, &["metadata", "labels", k]) == Some(v))
        });
    if !selector_ok || !affinity_allows(template_spec, node) {
        return (false, false);
    }
    let mut tolerations: Vec<Value> = doc::at(template_spec, &["tolerations"])
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    tolerations.extend(default_tolerations());
    let tolerations = Value::Array(tolerations);
    let taints: Vec<&Value> = doc::at(node, &["spec", "taints"])
        .and_then(Value::as_array)
        .map(|t| t.iter().collect())
        .unwrap_or_default();
    let mut should_run = true;
    let mut keep = true;
    for taint in taints {
        if tolerates(Some(&tolerations), taint) {
            continue;
        }
        match doc::str_at(taint, &["effect"]) {
            "NoSchedule" => should_run = false,
            "NoExecute" => {
                should_run = false;
                keep = false;
            }
            _ => {}
        }
    }
    // A node whose Ready condition is not True carries the not-ready NoSchedule taint in
    // Kubernetes; daemon pods do not tolerate it, so no new pod goes there.
    if !node_ready(node) {
        should_run = false;
    }
    (should_run, keep)
}

/// The pod a DaemonSet creates for `node`.
pub fn daemon_pod(ds: &Value, template: &Value, node: &str, revision: &str) -> Value {
    let mut pod = pod_from_template(ds, template, doc::name(ds));
    doc::map_mut(&mut pod, &["metadata", "labels"]).insert(REVISION_LABEL.into(), json!(revision));
    let spec = doc::map_mut(&mut pod, &["spec"]);
    let mut tolerations: Vec<Value> = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for t in default_tolerations() {
        if !tolerations.contains(&t) {
            tolerations.push(t);
        }
    }
    spec.insert("tolerations".into(), Value::Array(tolerations));
    // Kubernetes replaces any node affinity with the term that pins the pod to its node.
    doc::set(
        &mut pod,
        &[
            "spec",
            "affinity",
            "nodeAffinity",
            "requiredDuringSchedulingIgnoredDuringExecution",
        ],
        json!({"nodeSelectorTerms": [{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": [node]}]}]}),
    );
    pod
}

/// The node a daemon pod is bound or pinned to.
pub fn pod_node(pod: &Value) -> String {
    let bound = doc::str_at(pod, &["spec", "nodeName"]);
    if !bound.is_empty() {
        return bound.to_string();
    }
    doc::at(
        pod,
        &[
            "spec",
            "affinity",
            "nodeAffinity",
            "requiredDuringSchedulingIgnoredDuringExecution",
            "nodeSelectorTerms",
        ],
    )
    .and_then(Value::as_array)
    .and_then(|t| t.first())
    .and_then(|t| t.get("matchFields"))
    .and_then(Value::as_array)
    .and_then(|f| {
        f.iter()
            .find(|e| doc::str_at(e, &["key"]) == "metadata.name")
    })
    .and_then(|e| e.get("values"))
    .and_then(Value::as_array)
    .and_then(|v| v.first())
    .and_then(Value::as_str)
    .unwrap_or_default()
    .to_string()
}

/// The template revision of a controller's pod template (pod labels carry it).
pub fn revision_of(template: &Value) -> String {
    template_hash(template, None)
}

/// One pass over every DaemonSet.
pub fn sync(state: &State, now: Millis, out: &mut Changes) {
    // Most clusters have none: skip indexing every pod.
    if state.kind("DaemonSet").is_empty() {
        return;
    }
    let by_owner = pods_by_owner(state);
    for stored in state.kind("DaemonSet").values() {
        let ds = &stored.doc;
        if doc::is_deleting(ds) {
            continue;
        }
        let pods: Vec<&Value> = by_owner.get(doc::uid(ds)).cloned().unwrap_or_default();
        sync_one(state, ds, &pods, now, out);
    }
}

fn created(p: &Value) -> (Millis, String) {
    (
        parse_rfc3339(doc::str_at(p, &["metadata", "creationTimestamp"])).unwrap_or(0),
        doc::name(p).to_string(),
    )
}

fn sync_one(state: &State, ds: &Value, pods: &[&Value], now: Millis, out: &mut Changes) {
    let (ns, name) = (doc::namespace(ds), doc::name(ds));
    let template = doc::at(ds, &["spec", "template"])
        .cloned()
        .unwrap_or(Value::Null);
    let template_spec = template.get("spec").cloned().unwrap_or(Value::Null);
    let revision = revision_of(&template);
    let min_ready = doc::i64_at(ds, &["spec", "minReadySeconds"]).unwrap_or(0);
    let event = |reason: &str, msg: String| {
        NewEvent::normal("daemonset-controller", "DaemonSet", ns, name, reason, msg)
    };
    let delete = |out: &mut Changes, pod: &Value| {
        out.push(Change::Delete {
            kind: "Pod",
            namespace: ns.to_string(),
            name: doc::name(pod).to_string(),
        });
        out.event(event(
            "SuccessfulDelete",
            format!("Deleted pod: {}", doc::name(pod)),
        ));
    };
    let mut on_node: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for p in pods {
        on_node.entry(pod_node(p)).or_default().push(p);
    }
    let mut desired = 0i64;
    let mut current = 0i64;
    let mut misscheduled = 0i64;
    let mut ready = 0i64;
    let mut available = 0i64;
    let mut updated = 0i64;
    // (node, the live pod) of nodes that should run a pod and have one, for the rollout.
    let mut live: Vec<(&str, Vec<&Value>)> = Vec::new();
    let surge_field = doc::at(ds, &["spec", "updateStrategy", "rollingUpdate", "maxSurge"]);
    let surge_allowed = doc::str_at(ds, &["spec", "updateStrategy", "type"]) != "OnDelete"
        && surge_field.is_some_and(|s| s != &json!(0) && s != &json!("0%") && s != &json!("0"));
    let is_new = |p: &Value| doc::str_at(p, &["metadata", "labels", REVISION_LABEL]) == revision;
    let mut missing = 0i64;
    for node_stored in state.kind("Node").values() {
        let node = &node_stored.doc;
        let node_name = doc::name(node);
        let (should_run, keep) = node_should_run(&template_spec, node);
        let mut here: Vec<&Value> = on_node.remove(node_name).unwrap_or_default();
        here.sort_by_key(|p| created(p));
        let alive: Vec<&Value> = here
            .iter()
            .copied()
            .filter(|p| !doc::is_deleting(p))
            .collect();
        if should_run {
            desired += 1;
        }
        if !keep {
            if !alive.is_empty() {
                misscheduled += 1;
            }
            for p in &alive {
                delete(out, p);
            }
            continue;
        }
        let mut running: Vec<&Value> = Vec::new();
        for p in &alive {
            if doc::str_at(p, &["status", "phase"]) == "Failed" {
                out.event(NewEvent::warning(
                    "daemonset-controller",
                    "DaemonSet",
                    ns,
                    name,
                    "FailedDaemonPod",
                    format!(
                        "Found failed daemon pod {ns}/{} on node {node_name}, will try to kill it",
                        doc::name(p)
                    ),
                ));
                delete(out, p);
            } else {
                running.push(p);
            }
        }
        if running.is_empty() {
            if should_run {
                missing += 1;
                if here.is_empty() {
                    out.push(Change::Create {
                        kind: "Pod",
                        doc: daemon_pod(ds, &template, node_name, &revision),
                        sim: None,
                        owner: Some(("DaemonSet", ns.to_string(), name.to_string())),
                    });
                }
            }
            continue;
        }
        // The oldest pod stays and extra copies go; while surging, the oldest old and the
        // oldest new pod both stay.
        let kept: Vec<&Value> = if surge_allowed {
            let newest = running.iter().copied().find(|p| is_new(p));
            let oldest_old = running.iter().copied().find(|p| !is_new(p));
            oldest_old.into_iter().chain(newest).collect()
        } else {
            vec![running[0]]
        };
        for extra in running
            .iter()
            .filter(|p| !kept.iter().any(|k| std::ptr::eq(*k, **p)))
        {
            delete(out, extra);
        }
        let pod = kept
            .iter()
            .copied()
            .find(|p| is_available(p, min_ready, now))
            .unwrap_or(kept[0]);
        if !should_run {
            // Allowed to keep running, but not counted as scheduled where it should not be.
            misscheduled += 1;
            continue;
        }
        current += 1;
        if ready_since(pod).is_some() {
            ready += 1;
            if is_available(pod, min_ready, now) {
                available += 1;
            } else if let Some(t) = ready_since(pod) {
                out.wake_at(t + min_ready * SECOND + 1);
            }
        }
        if kept.iter().any(|p| is_new(p)) {
            updated += 1;
        }
        live.push((node_name, kept));
    }
    // Pods on nodes that no longer exist are collected with the node by the pod GC; delete
    // them here so the set heals at once.
    for (node, rest) in on_node {
        if node.is_empty() {
            continue;
        }
        for p in rest.into_iter().filter(|p| !doc::is_deleting(p)) {
            delete(out, p);
        }
    }
    let strategy = doc::str_at(ds, &["spec", "updateStrategy", "type"]);
    if surge_allowed {
        // Kubernetes' surge rollout: a new pod starts beside the old one on up to maxSurge
        // nodes at a time; the old pod goes once the new one is available. A node whose old
        // pod is unavailable gets its new pod at once.
        let max_surge = scaled_value(surge_field, "0", desired, true).unwrap_or(0);
        let mut surging = 0i64;
        let mut candidates: Vec<&str> = Vec::new();
        for (node, kept) in &live {
            let new_pod = kept.iter().copied().find(|p| is_new(p));
            let old_pod = kept.iter().copied().find(|p| !is_new(p));
            match (new_pod, old_pod) {
                (None, Some(old)) if !is_available(old, min_ready, now) => {
                    out.push(Change::Create {
                        kind: "Pod",
                        doc: daemon_pod(ds, &template, node, &revision),
                        sim: None,
                        owner: Some(("DaemonSet", ns.to_string(), name.to_string())),
                    });
                }
                (None, Some(_)) => candidates.push(node),
                (Some(new), Some(old)) => {
                    if is_available(new, min_ready, now) {
                        delete(out, old);
                    } else {
                        surging += 1;
                    }
                }
                _ => {}
            }
        }
        for node in candidates
            .into_iter()
            .take((max_surge - surging).max(0) as usize)
        {
            out.push(Change::Create {
                kind: "Pod",
                doc: daemon_pod(ds, &template, node, &revision),
                sim: None,
                owner: Some(("DaemonSet", ns.to_string(), name.to_string())),
            });
        }
    } else if strategy != "OnDelete" {
        let max_unavailable = scaled_value(
            doc::at(
                ds,
                &["spec", "updateStrategy", "rollingUpdate", "maxUnavailable"],
            ),
            "1",
            desired,
            true,
        )
        .unwrap_or(1)
        .max(if desired > 0 { 1 } else { 0 });
        let pods_now: Vec<&Value> = live.iter().map(|(_, k)| k[0]).collect();
        let old: Vec<&Value> = pods_now.iter().copied().filter(|p| !is_new(p)).collect();
        let mut unavailable = missing
            + pods_now
                .iter()
                .filter(|p| !is_available(p, min_ready, now))
                .count() as i64;
        // Old pods that are not available go at once; available ones within the budget.
        for p in old.iter().filter(|p| !is_available(p, min_ready, now)) {
            delete(out, p);
        }
        for p in old.iter().filter(|p| is_available(p, min_ready, now)) {
            if unavailable >= max_unavailable {
                break;
            }
            delete(out, p);
            unavailable += 1;
        }
    }
    let generation = doc::i64_at(ds, &["metadata", "generation"]).unwrap_or(1);
    let mut status = json!({
        "currentNumberScheduled": current,
        "desiredNumberScheduled": desired,
        "numberMisscheduled": misscheduled,
        "numberReady": ready,
        "observedGeneration": generation,
        "updatedNumberScheduled": updated,
    });
    if available > 0 {
        status["numberAvailable"] = json!(available);
    }
    if desired - available > 0 {
        status["numberUnavailable"] = json!(desired - available);
    }
    if ds.get("status") != Some(&status) {
        let mut next = ds.clone();
        doc::set(&mut next, &["status"], status);
        out.update("DaemonSet", next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, labels: Value, taints: Value, ready: bool) -> Value {
        json!({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints},
            "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}})
    }

    #[test]
    fn eligibility_follows_selector_taints_and_readiness() {
        let spec = json!({"nodeSelector": {"disk": "ssd"}});
        let ssd = node("a", json!({"disk": "ssd"}), json!([]), true);
        let hdd = node("b", json!({"disk": "hdd"}), json!([]), true);
        assert_eq!(node_should_run(&spec, &ssd), (true, true));
        assert_eq!(node_should_run(&spec, &hdd), (false, false));
        let tainted = node(
            "c",
            json!({"disk": "ssd"}),
            json!([{"key": "gpu", "effect": "NoSchedule"}]),
            true,
        );
        assert_eq!(node_should_run(&spec, &tainted), (false, true));
        let evicting = node(
            "d",
            json!({"disk": "ssd"}),
            json!([{"key": "gpu", "effect": "NoExecute"}]),
            true,
        );
        assert_eq!(node_should_run(&spec, &evicting), (false, false));
        let tolerant = json!({"nodeSelector": {"disk": "ssd"}, "tolerations": [{"key": "gpu", "operator": "Exists"}]});
        assert_eq!(node_should_run(&tolerant, &evicting), (true, true));
        // Cordoned and unreachable nodes keep their daemon pods: the defaults tolerate them.
        let cordoned = node(
            "e",
            json!({"disk": "ssd"}),
            json!([{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
            true,
        );
        assert_eq!(node_should_run(&spec, &cordoned), (true, true));
        let down = node(
            "f",
            json!({"disk": "ssd"}),
            json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]),
            false,
        );
        assert_eq!(node_should_run(&spec, &down), (false, true));
    }

    #[test]
    fn daemon_pods_are_pinned_by_node_affinity() {
        let ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "default", "uid": "u1"}});
        let template = json!({"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "a", "image": "agent"}]}});
        let pod = daemon_pod(&ds, &template, "worker-2", "abc");
        assert_eq!(pod_node(&pod), "worker-2");
        let spec = pod.get("spec").cloned().unwrap_or(Value::Null);
        assert!(affinity_allows(
            &spec,
            &node("worker-2", json!({}), json!([]), true)
        ));
        assert!(!affinity_allows(
            &spec,
            &node("worker-1", json!({}), json!([]), true)
        ));
        assert_eq!(
            doc::str_at(&pod, &["metadata", "labels", REVISION_LABEL]),
            "abc"
        );
    }

    #[test]
    fn affinity_operators() {
        let spec = |op: &str, values: Value| json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": op, "values": values}]}]}}}});
        let n = node("a", json!({"zone": "3"}), json!([]), true);
        assert!(affinity_allows(&spec("In", json!(["3", "4"])), &n));
        assert!(!affinity_allows(&spec("NotIn", json!(["3"])), &n));
        assert!(affinity_allows(&spec("Exists", json!([])), &n));
        assert!(!affinity_allows(&spec("DoesNotExist", json!([])), &n));
        assert!(affinity_allows(&spec("Gt", json!(["2"])), &n));
        assert!(!affinity_allows(&spec("Lt", json!(["2"])), &n));
    }
}
