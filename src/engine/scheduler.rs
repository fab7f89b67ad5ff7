//! The scheduler: binds pending pods to nodes.
//!
//! Filters as kube-scheduler's default plugins do (unschedulable nodes, taints and
//! tolerations, nodeSelector, resource requests against allocatable, pod count), then scores
//! the feasible nodes: least allocated resources (with Kubernetes' default requests of 100m
//! CPU and 200Mi for containers that state none) plus spreading the pods of one controller.
//! Ties are broken by the seeded random source, so runs are reproducible.
//!
//! Pending pods are taken by priority (`spec.priority`, resolved from the PriorityClass at
//! admission), then age. A pod that fits nowhere preempts, as kube-scheduler's
//! DefaultPreemption does, simplified: on each node where only resources block it, the
//! lowest-priority pods below its own are chosen as victims until it fits; the node whose
//! highest victim priority, then victim count, is lowest wins. Victims are deleted
//! gracefully (event `Preempted`), the pod gets `status.nominatedNodeName` and waits, without
//! preempting again, until they are gone. PodDisruptionBudgets are not consulted.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use super::clock::{Millis, Rng, rfc3339};
use super::controllers::pod::PodSim;
use super::controllers::{Change, Changes};
use super::doc;
use super::events::NewEvent;
use super::store::State;

/// Default CPU request used for scoring a container that states none (millicores).
pub const DEFAULT_CPU_REQUEST: i64 = 100;
/// Default memory request used for scoring a container that states none (bytes).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 << 20;

/// A pod's resource requests: (cpu millicores, memory bytes), summed over containers, with
/// init containers counted as their maximum (as Kubernetes does).
pub fn pod_requests(pod: &Value, nonzero: bool) -> (i64, i64) {
    let sum = |field: &str, max: bool| {
        let mut acc = (0i64, 0i64);
        for c in doc::at(pod, &["spec", field])
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let req = |res: &str| {
                doc::at(c, &["resources", "requests", res])
                    .or_else(|| doc::at(c, &["resources", "limits", res]))
            };
            let mut cpu = req("cpu").and_then(doc::cpu_millis).unwrap_or(0);
            let mut mem = req("memory").and_then(doc::bytes).unwrap_or(0);
            if nonzero {
                if cpu == 0 {
                    cpu = DEFAULT_CPU_REQUEST;
                }
                if mem == 0 {
                    mem = DEFAULT_MEMORY_REQUEST;
                }
            }
            if max {
                acc = (acc.0.max(cpu), acc.1.max(mem));
            } else {
                acc = (acc.0 + cpu, acc.1 + mem);
            }
        }
        acc
    };
    let main = sum("containers", false);
    let init = sum("initContainers", true);
    (main.0.max(init.0), main.1.max(init.1))
}

/// Whether a toleration list tolerates a taint.
pub fn tolerates(tolerations: Option<&Value>, taint: &Value) -> bool {
    let key = doc::str_at(taint, &["key"]);
    let value = doc::str_at(taint, &["value"]);
    let effect = doc::str_at(taint, &["effect"]);
    tolerations
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|t| {
            let t_effect = doc::str_at(t, &["effect"]);
            if !t_effect.is_empty() && t_effect != effect {
                return false;
            }
            let t_key = doc::str_at(t, &["key"]);
            match doc::str_at(t, &["operator"]) {
                "Exists" => t_key.is_empty() || t_key == key,
                _ => t_key == key && doc::str_at(t, &["value"]) == value,
            }
        })
}

struct NodeInfo<'a> {
    name: &'a str,
    doc: &'a Value,
    ready: bool,
    cidr: String,
    alloc_cpu: i64,
    alloc_mem: i64,
    alloc_pods: i64,
    used_cpu: i64,
    used_mem: i64,
    score_cpu: i64,
    score_mem: i64,
    pods: i64,
    used_ips: Vec<bool>,
    unschedulable: bool,
    taints: Vec<&'a Value>,
}

/// One scheduling pass over every pending pod, oldest first.
pub fn sync(state: &State, now: Millis, rng: &mut Rng, out: &mut Changes) {
    let mut pending: Vec<&Value> = state
        .kind("Pod")
        .values()
        .filter(|s| s.facts.node.is_empty() && !s.facts.deleting)
        .map(|s| &s.doc)
        .filter(|p| {
            let sched = doc::str_at(p, &["spec", "schedulerName"]);
            sched.is_empty() || sched == "default-scheduler"
        })
        .collect();
    if pending.is_empty() {
        return;
    }
    pending.sort_by_key(|p| {
        (
            std::cmp::Reverse(priority(p)),
            doc::str_at(p, &["metadata", "creationTimestamp"]).to_string(),
            doc::str_at(p, &["metadata", "resourceVersion"])
                .parse::<u64>()
                .unwrap_or(0),
        )
    });
    let mut nodes: Vec<NodeInfo> = state
        .kind("Node")
        .values()
        .map(|s| {
            let n = &s.doc;
            let alloc = |r: &str| doc::at(n, &["status", "allocatable", r]);
            NodeInfo {
                name: doc::name(n),
                doc: n,
                ready: node_ready(n),
                cidr: doc::str_at(n, &["spec", "podCIDR"]).to_string(),
                alloc_cpu: alloc("cpu").and_then(doc::cpu_millis).unwrap_or(0),
                alloc_mem: alloc("memory").and_then(doc::bytes).unwrap_or(0),
                alloc_pods: alloc("pods").and_then(doc::bytes).unwrap_or(110),
                used_cpu: 0,
                used_mem: 0,
                score_cpu: 0,
                score_mem: 0,
                pods: 0,
                used_ips: vec![false; 256],
                unschedulable: doc::at(n, &["spec", "unschedulable"]).and_then(Value::as_bool)
                    == Some(true),
                taints: doc::at(n, &["spec", "taints"])
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|t| matches!(doc::str_at(t, &["effect"]), "NoSchedule" | "NoExecute"))
                    .collect(),
            }
        })
        .collect();
    let index: HashMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.name, i)).collect();
    // Pods per node of each controller, for spreading a controller's pods.
    let mut owned: HashMap<&str, Vec<i64>> = HashMap::new();
    let mut on_node: Vec<Vec<&Value>> = vec![Vec::new(); nodes.len()];
    for s in state.kind("Pod").values() {
        let Some(&i) = index.get(s.facts.node.as_str()) else {
            continue;
        };
        if s.facts.phase == "Succeeded" || s.facts.phase == "Failed" {
            continue;
        }
        account(&mut nodes[i], &s.doc, s.sim.as_ref());
        on_node[i].push(&s.doc);
        if let Some(owner) = s.facts.controller_uid.as_deref() {
            owned.entry(owner).or_insert_with(|| vec![0; nodes.len()])[i] += 1;
        }
    }
    let node_count = nodes.len();
    let cordon_taint = json!({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"});
    for pod in pending {
        let (cpu, mem) = pod_requests(pod, false);
        let (score_cpu, score_mem) = pod_requests(pod, true);
        let tolerations = doc::at(pod, &["spec", "tolerations"]);
        let selector = doc::at(pod, &["spec", "nodeSelector"]).and_then(Value::as_object);
        let pinned = doc::str_at(pod, &["spec", "nodeName"]);
        let has_affinity = doc::at(pod, &["spec", "affinity", "nodeAffinity"]).is_some();
        let claim_block = super::controllers::volume::unschedulable_reason(state, pod);
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        let mut feasible: Vec<usize> = Vec::new();
        let mut short_of_resources: Vec<usize> = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            let mut why: Vec<String> = Vec::new();
            if let Some(r) = &claim_block {
                why.push(r.clone());
            } else if n.unschedulable && !tolerates(tolerations, &cordon_taint) {
                why.push("node(s) were unschedulable".into());
            } else if let Some(t) = n.taints.iter().find(|t| !tolerates(tolerations, t)) {
                why.push(format!(
                    "node(s) had untolerated taint {{{}: {}}}",
                    doc::str_at(t, &["key"]),
                    doc::str_at(t, &["value"])
                ));
            } else if !pinned.is_empty() && pinned != n.name {
                why.push("node(s) didn't match the requested node name".into());
            } else if selector.is_some_and(|sel| {
                sel.iter()
                    .any(|(k, v)| doc::at(n.doc, &["metadata", "labels", k]) != Some(v))
            }) || has_affinity
                && !super::controllers::daemonset::affinity_allows(
                    doc::at(pod, &["spec"]).unwrap_or(&Value::Null),
                    n.doc,
                )
            {
                why.push("node(s) didn't match Pod's node affinity/selector".into());
            } else {
                if n.pods + 1 > n.alloc_pods {
                    why.push("Too many pods".into());
                }
                if cpu > 0 && n.used_cpu + cpu > n.alloc_cpu {
                    why.push("Insufficient cpu".into());
                }
                if mem > 0 && n.used_mem + mem > n.alloc_mem {
                    why.push("Insufficient memory".into());
                }
            }
            if why.is_empty() && !n.ready {
                // The node-lifecycle controller taints NotReady nodes; until it does the
                // node still looks usable, as in Kubernetes.
            }
            if why.is_empty() {
                feasible.push(i);
            } else if why.iter().all(|w| {
                matches!(
                    w.as_str(),
                    "Too many pods" | "Insufficient cpu" | "Insufficient memory"
                )
            }) {
                short_of_resources.push(i);
            }
            for w in why {
                *reasons.entry(w).or_default() += 1;
            }
        }
        let (ns, name) = (doc::namespace(pod), doc::name(pod));
        if feasible.is_empty() {
            let mut parts: Vec<String> = reasons.iter().map(|(r, c)| format!("{c} {r}")).collect();
            parts.sort();
            let message = if node_count == 0 {
                "no nodes available to schedule pods".to_string()
            } else {
                format!("0/{node_count} nodes are available: {}.", parts.join(", "))
            };
            let nominated = doc::str_at(pod, &["status", "nominatedNodeName"]);
            let mut nominate: Option<&str> = None;
            if priority(pod) > 0 && doc::str_at(pod, &["spec", "preemptionPolicy"]) != "Never" {
                let waiting_for_victims = index
                    .get(nominated)
                    .is_some_and(|&i| on_node[i].iter().any(|p| doc::is_deleting(p)));
                if waiting_for_victims {
                    continue;
                }
                let request = (cpu, mem);
                if let Some((i, victims)) =
                    preemption(&nodes, &on_node, &short_of_resources, pod, request)
                {
                    let node_name = nodes[i].name;
                    for victim in victims {
                        let (vns, vname) = (doc::namespace(victim), doc::name(victim));
                        out.push(Change::Delete {
                            kind: "Pod",
                            namespace: vns.to_string(),
                            name: vname.to_string(),
                        });
                        out.event(NewEvent::normal(
                            "default-scheduler",
                            "Pod",
                            vns,
                            vname,
                            "Preempted",
                            format!("Preempted by pod {} on node {node_name}", doc::uid(pod)),
                        ));
                    }
                    nominate = Some(node_name);
                }
            }
            if let Some(node_name) = nominate {
                let mut updated = pod.clone();
                doc::set(
                    &mut updated,
                    &["status", "nominatedNodeName"],
                    json!(node_name),
                );
                out.update("Pod", updated);
                continue;
            }
            let current = pod_condition(pod, "PodScheduled");
            if current
                .and_then(|c| c.get("message"))
                .and_then(Value::as_str)
                != Some(message.as_str())
            {
                let mut updated = pod.clone();
                let status = doc::map_mut(&mut updated, &["status"]);
                status.insert("phase".into(), json!("Pending"));
                status.insert(
                    "conditions".into(),
                    json!([{"type": "PodScheduled", "status": "False", "lastProbeTime": null,
                        "lastTransitionTime": rfc3339(now), "reason": "Unschedulable", "message": message}]),
                );
                out.update("Pod", updated);
                out.event(NewEvent::warning(
                    "default-scheduler",
                    "Pod",
                    ns,
                    name,
                    "FailedScheduling",
                    message,
                ));
            }
            continue;
        }
        let owned = owned
            .entry(doc::controller_uid(pod).unwrap_or_default())
            .or_insert_with(|| vec![0; node_count]);
        let max_owned = feasible.iter().map(|&i| owned[i]).max().unwrap_or(0);
        let mut best: Option<(i64, usize)> = None;
        let mut ties = 0u64;
        for &i in &feasible {
            let n = &nodes[i];
            let free = |alloc: i64, used: i64| {
                if alloc <= 0 {
                    0
                } else {
                    ((alloc - used).max(0) * 100) / alloc
                }
            };
            let least = (free(n.alloc_cpu, n.score_cpu + score_cpu)
                + free(n.alloc_mem, n.score_mem + score_mem))
                / 2;
            let spread = if max_owned == 0 {
                100
            } else {
                (max_owned - owned[i]) * 100 / max_owned
            };
            let score = least + 2 * spread;
            match best {
                Some((b, _)) if score < b => {}
                Some((b, _)) if score == b => {
                    ties += 1;
                    if rng.below(ties + 1) == 0 {
                        best = Some((score, i));
                    }
                }
                _ => {
                    best = Some((score, i));
                    ties = 0;
                }
            }
        }
        let Some((_, chosen)) = best else { continue };
        let node = &mut nodes[chosen];
        let host = (2..255).find(|h| !node.used_ips[*h]).unwrap_or(254);
        node.used_ips[host] = true;
        let ip = pod_ip(&node.cidr, host);
        let host_ip = doc::at(node.doc, &["status", "addresses"])
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|x| doc::str_at(x, &["type"]) == "InternalIP"))
            .map(|x| doc::str_at(x, &["address"]).to_string())
            .unwrap_or_default();
        node.used_cpu += cpu;
        node.used_mem += mem;
        node.score_cpu += score_cpu;
        node.score_mem += score_mem;
        node.pods += 1;
        owned[chosen] += 1;
        let node_name = node.name.to_string();
        out.push(Change::Bind {
            namespace: ns.to_string(),
            name: name.to_string(),
            node: node_name.clone(),
            status: json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": rfc3339(now)}]}),
        });
        let sim = PodSim {
            scheduled_at: Some(now),
            ip,
            host_ip,
            ..PodSim::default()
        };
        out.push(Change::Sim {
            namespace: ns.to_string(),
            name: name.to_string(),
            sim,
        });
        out.event(NewEvent::normal(
            "default-scheduler",
            "Pod",
            ns,
            name,
            "Scheduled",
            format!("Successfully assigned {ns}/{name} to {node_name}"),
        ));
    }
}

/// A pod's priority (`spec.priority`, 0 when unset).
pub fn priority(pod: &Value) -> i64 {
    doc::i64_at(pod, &["spec", "priority"]).unwrap_or(0)
}

/// Where `pod` fits by preempting lower-priority pods: the node and the victims, lowest
/// priority (then newest) first, fewest needed; the node whose highest victim priority, then
/// victim count, is lowest.
fn preemption<'a>(
    nodes: &[NodeInfo<'_>],
    on_node: &[Vec<&'a Value>],
    candidates: &[usize],
    pod: &Value,
    (cpu, mem): (i64, i64),
) -> Option<(usize, Vec<&'a Value>)> {
    let own = priority(pod);
    let mut best: Option<((i64, usize), usize, Vec<&'a Value>)> = None;
    for &i in candidates {
        let n = &nodes[i];
        let mut lower: Vec<&Value> = on_node[i]
            .iter()
            .copied()
            .filter(|p| !doc::is_deleting(p) && priority(p) < own)
            .collect();
        lower.sort_by_key(|p| {
            (
                priority(p),
                std::cmp::Reverse(doc::str_at(p, &["metadata", "creationTimestamp"]).to_string()),
            )
        });
        let (mut free_cpu, mut free_mem, mut free_pods) = (
            n.alloc_cpu - n.used_cpu,
            n.alloc_mem - n.used_mem,
            n.alloc_pods - n.pods,
        );
        let fits =
            |c: i64, m: i64, p: i64| p >= 1 && (cpu == 0 || c >= cpu) && (mem == 0 || m >= mem);
        let mut victims = Vec::new();
        for victim in lower {
            if fits(free_cpu, free_mem, free_pods) {
                break;
            }
            let (vc, vm) = pod_requests(victim, false);
            free_cpu += vc;
            free_mem += vm;
            free_pods += 1;
            victims.push(victim);
        }
        if victims.is_empty() || !fits(free_cpu, free_mem, free_pods) {
            continue;
        }
        let rank = (
            victims.iter().map(|v| priority(v)).max().unwrap_or(0),
            victims.len(),
        );
        if best.as_ref().is_none_or(|(r, _, _)| rank < *r) {
            best = Some((rank, i, victims));
        }
    }
    best.map(|(_, i, victims)| (i, victims))
}

fn account(node: &mut NodeInfo, pod: &Value, sim: Option<&PodSim>) {
    let (cpu, mem) = pod_requests(pod, false);
    let (scpu, smem) = pod_requests(pod, true);
    node.used_cpu += cpu;
    node.used_mem += mem;
    node.score_cpu += scpu;
    node.score_mem += smem;
    node.pods += 1;
    let ip = sim
        .map(|s| s.ip.as_str())
        .unwrap_or_else(|| doc::str_at(pod, &["status", "podIP"]));
    if let Some(h) = ip.rsplit('.').next().and_then(|h| h.parse::<usize>().ok())
        && h < 256
    {
        node.used_ips[h] = true;
    }
}

fn pod_ip(cidr: &str, host: usize) -> String {
    let base = cidr.split('/').next().unwrap_or("10.244.0.0");
    let prefix: Vec<&str> = base.split('.').take(3).collect();
    format!("{}.{host}", prefix.join("."))
}

/// A pod condition by type.
pub fn pod_condition<'a>(pod: &'a Value, kind: &str) -> Option<&'a Value> {
    doc::at(pod, &["status", "conditions"])?
        .as_array()?
        .iter()
        .find(|c| doc::str_at(c, &["type"]) == kind)
}

/// Whether a node's Ready condition is True.
pub fn node_ready(node: &Value) -> bool {
    doc::at(node, &["status", "conditions"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| doc::str_at(c, &["type"]) == "Ready" && doc::str_at(c, &["status"]) == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerations_match_like_kubernetes() {
        let taint = json!({"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"});
        assert!(tolerates(Some(&json!([{"operator": "Exists"}])), &taint));
        assert!(tolerates(
            Some(
                &json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}])
            ),
            &taint
        ));
        assert!(!tolerates(
            Some(&json!([{"key": "x", "operator": "Exists"}])),
            &taint
        ));
        assert!(!tolerates(None, &taint));
    }

    #[test]
    fn requests_sum_containers_and_max_init() {
        let pod = json!({"spec": {
            "initContainers": [{"resources": {"requests": {"cpu": "2"}}}],
            "containers": [{"resources": {"requests": {"cpu": "500m", "memory": "64Mi"}}}, {}]}});
        assert_eq!(pod_requests(&pod, false), (2000, 64 << 20));
        assert_eq!(
            pod_requests(&pod, true).1,
            (64 << 20) + DEFAULT_MEMORY_REQUEST
        );
    }
}
