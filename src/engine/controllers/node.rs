//! The node lifecycle controller and the taint-based eviction manager.
//!
//! A node whose kubelet stopped posting status is marked `Ready=Unknown` after the node
//! monitor grace period (40 s), tainted `node.kubernetes.io/unreachable` (NoSchedule and
//! NoExecute), and its pods are marked not ready. Pods are evicted once they have tolerated
//! the NoExecute taint for their `tolerationSeconds` (300 s, added by admission, unless the
//! pod says otherwise). A recovered node is marked Ready and untainted. Cordoned nodes get
//! the `node.kubernetes.io/unschedulable` taint. Pods of a removed node are collected when
//! the node is removed (`Engine::remove_node`), as Kubernetes' pod GC does.

use serde_json::{Value, json};

use super::pod::PodSim;
use super::{Change, Changes};
use crate::engine::clock::{Millis, SECOND, parse_rfc3339, rfc3339};
use crate::engine::doc;
use crate::engine::events::NewEvent;
use crate::engine::scheduler::{node_ready, tolerates};
use crate::engine::store::State;

/// How long a node may stay silent before it is marked unknown (`--node-monitor-grace-period`).
pub const NODE_MONITOR_GRACE: Millis = 40 * SECOND;

/// Taint of a node whose kubelet is unreachable.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// Taint of a cordoned node.
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// The Ready condition of a healthy node.
pub fn ready_conditions(now: Millis) -> Value {
    let t = rfc3339(now);
    let c = |kind: &str, status: &str, reason: &str, message: &str| json!({"type": kind, "status": status, "lastHeartbeatTime": t, "lastTransitionTime": t, "reason": reason, "message": message});
    json!([
        c(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available"
        ),
        c(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure"
        ),
        c(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available"
        ),
        c(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status"
        ),
    ])
}

fn unknown_conditions(node: &Value, now: Millis) -> Value {
    let t = rfc3339(now);
    let mut conds = doc::at(node, &["status", "conditions"])
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for c in &mut conds {
        c["status"] = json!("Unknown");
        c["reason"] = json!("NodeStatusUnknown");
        c["message"] = json!("Kubelet stopped posting node status.");
        c["lastTransitionTime"] = json!(t);
    }
    Value::Array(conds)
}

fn taints(node: &Value) -> Vec<Value> {
    doc::at(node, &["spec", "taints"])
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn set_taints(node: &mut Value, list: Vec<Value>) {
    if list.is_empty() {
        if let Some(spec) = node.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("taints");
        }
    } else {
        doc::set(node, &["spec", "taints"], Value::Array(list));
    }
}

/// One pass over every node and the pods on failed ones.
pub fn sync(state: &State, now: Millis, out: &mut Changes) {
    for stored in state.kind("Node").values() {
        let node = &stored.doc;
        let name = doc::name(node);
        // The node is copied only when it changes: this runs after every write, over every
        // node.
        let held = taints(node);
        let mut list = held.clone();
        let mut conditions: Option<Value> = None;
        let cordoned =
            doc::at(node, &["spec", "unschedulable"]).and_then(Value::as_bool) == Some(true);
        let has = |l: &[Value], key: &str| l.iter().any(|t| doc::str_at(t, &["key"]) == key);
        if cordoned && !has(&list, UNSCHEDULABLE) {
            list.push(
                json!({"key": UNSCHEDULABLE, "effect": "NoSchedule", "timeAdded": rfc3339(now)}),
            );
        } else if !cordoned && has(&list, UNSCHEDULABLE) {
            list.retain(|t| doc::str_at(t, &["key"]) != UNSCHEDULABLE);
        }
        match state.down_nodes.get(name) {
            Some(&since) if now >= since + NODE_MONITOR_GRACE => {
                if node_ready(node) {
                    conditions = Some(unknown_conditions(node, now));
                    out.event(NewEvent::normal(
                        "node-controller",
                        "Node",
                        "",
                        name,
                        "NodeNotReady",
                        format!("Node {name} status is now: NodeNotReady"),
                    ));
                }
                if !has(&list, UNREACHABLE) {
                    for effect in ["NoSchedule", "NoExecute"] {
                        list.push(json!({"key": UNREACHABLE, "effect": effect, "timeAdded": rfc3339(now)}));
                    }
                }
                mark_pods_not_ready(state, name, now, out);
            }
            Some(&since) => out.wake_at(since + NODE_MONITOR_GRACE),
            None => {
                if !node_ready(node) {
                    conditions = Some(ready_conditions(now));
                    out.event(NewEvent::normal(
                        "node-controller",
                        "Node",
                        "",
                        name,
                        "NodeReady",
                        format!("Node {name} status is now: NodeReady"),
                    ));
                }
                list.retain(|t| doc::str_at(t, &["key"]) != UNREACHABLE);
            }
        }
        if conditions.is_some() || list != held {
            let mut updated = node.clone();
            if let Some(conditions) = conditions {
                doc::set(&mut updated, &["status", "conditions"], conditions);
            }
            set_taints(&mut updated, list.clone());
            if &updated != node {
                out.update("Node", updated);
            }
        }
        evict(state, name, &list, now, out);
    }
}

fn mark_pods_not_ready(state: &State, node: &str, now: Millis, out: &mut Changes) {
    for stored in state.kind("Pod").values() {
        let pod = &stored.doc;
        if doc::str_at(pod, &["spec", "nodeName"]) != node {
            continue;
        }
        let Some(sim) = &stored.sim else { continue };
        if sim.node_lost {
            continue;
        }
        let mut updated = pod.clone();
        if let Some(conds) = updated
            .pointer_mut("/status/conditions")
            .and_then(Value::as_array_mut)
        {
            for c in conds.iter_mut() {
                // Upstream `MarkPodsNotReady` flips Ready only; ContainersReady is the
                // kubelet's, which is unreachable.
                if doc::str_at(c, &["type"]) == "Ready" && doc::str_at(c, &["status"]) == "True" {
                    c["status"] = json!("False");
                    c["lastTransitionTime"] = json!(rfc3339(now));
                }
            }
        }
        let ns = doc::namespace(pod).to_string();
        let name = doc::name(pod).to_string();
        out.event(NewEvent::warning(
            "node-controller",
            "Pod",
            &ns,
            &name,
            "NodeNotReady",
            "Node is not ready".into(),
        ));
        out.update("Pod", updated);
        let sim = PodSim {
            node_lost: true,
            ready: false,
            ready_changed_at: Some(now),
            ..sim.clone()
        };
        out.push(Change::Sim {
            namespace: ns,
            name,
            sim,
        });
    }
}

/// Taint-based eviction: pods on a node with NoExecute taints are deleted once their
/// toleration runs out (at once for an untolerated taint).
/// Evicts the pods of node `name` that do not tolerate its NoExecute `taints`.
fn evict(state: &State, name: &str, taints: &[Value], now: Millis, out: &mut Changes) {
    let no_execute: Vec<&Value> = taints
        .iter()
        .filter(|t| doc::str_at(t, &["effect"]) == "NoExecute")
        .collect();
    if no_execute.is_empty() {
        return;
    }
    for stored in state.kind("Pod").values() {
        let pod = &stored.doc;
        if doc::str_at(pod, &["spec", "nodeName"]) != name || doc::is_deleting(pod) {
            continue;
        }
        let tolerations = doc::at(pod, &["spec", "tolerations"]);
        let mut deadline: Option<Millis> = None;
        let mut immediate = false;
        for taint in &no_execute {
            if !tolerates(tolerations, taint) {
                immediate = true;
                break;
            }
            let added = parse_rfc3339(doc::str_at(taint, &["timeAdded"])).unwrap_or(now);
            let seconds = tolerations
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|t| tolerates(Some(&json!([t])), taint))
                .filter_map(|t| t.get("tolerationSeconds").and_then(Value::as_i64))
                .min();
            if let Some(s) = seconds {
                let at = added + s.max(0) * SECOND;
                deadline = Some(deadline.map_or(at, |d| d.min(at)));
            }
        }
        let due = immediate || deadline.is_some_and(|d| d <= now);
        if due {
            let (ns, pname) = (doc::namespace(pod), doc::name(pod));
            out.event(NewEvent::normal(
                "taint-eviction-controller",
                "Pod",
                ns,
                pname,
                "TaintManagerEviction",
                format!("Marking for deletion Pod {ns}/{pname}"),
            ));
            out.push(Change::Delete {
                kind: "Pod",
                namespace: ns.into(),
                name: pname.into(),
            });
        } else if let Some(d) = deadline {
            out.wake_at(d);
        }
    }
}
