//! The endpoints and EndpointSlice controllers, and the load-balancer IP allocator.
//!
//! Each Service with a selector gets an `Endpoints` object and one `EndpointSlice` listing
//! the pods it selects: ready pods as addresses, others as not-ready addresses (terminating
//! pods are left out). A `LoadBalancer` Service gets an ingress IP.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Value, json};

use super::{Change, Changes};
use crate::engine::clock::Millis;
use crate::engine::doc;
use crate::engine::labels::Selector;
use crate::engine::store::State;

/// Label the engine's endpoints controller puts on the Endpoints it manages.
pub const MANAGED_BY: &str = "endpoints.kubernetes.io/managed-by";
/// First address of the simulated load-balancer pool.
pub const LB_POOL: &str = "172.18.255.";

/// One pass over every Service.
pub fn sync(state: &State, _now: Millis, out: &mut Changes) {
    let services = state.kind("Service");
    let needs_pods = services.values().any(|s| {
        doc::at(&s.doc, &["spec", "selector"])
            .is_some_and(|sel| sel.as_object().is_some_and(|m| !m.is_empty()))
    });
    let managed_endpoints = state
        .kind("Endpoints")
        .values()
        .any(|e| doc::at(&e.doc, &["metadata", "labels", MANAGED_BY]).is_some());
    let needs_lb = services.values().any(|s| {
        doc::str_at(&s.doc, &["spec", "type"]) == "LoadBalancer"
            || doc::at(&s.doc, &["status", "loadBalancer", "ingress"]).is_some()
    });
    if !needs_pods && !managed_endpoints && !needs_lb {
        return;
    }
    let mut pods_by_ns: HashMap<&str, Vec<&Value>> = HashMap::new();
    for s in state.kind("Pod").values().filter(|_| needs_pods) {
        pods_by_ns
            .entry(doc::namespace(&s.doc))
            .or_default()
            .push(&s.doc);
    }
    let mut used_lb: BTreeSet<String> = BTreeSet::new();
    for s in state.kind("Service").values() {
        if let Some(ip) = doc::at(&s.doc, &["status", "loadBalancer", "ingress"])
            .and_then(|i| i.get(0))
            .and_then(|i| i.get("ip"))
            .and_then(Value::as_str)
        {
            used_lb.insert(ip.to_string());
        }
    }
    for stored in state.kind("Service").values() {
        let svc = &stored.doc;
        let (ns, name) = (doc::namespace(svc), doc::name(svc));
        load_balancer(svc, &mut used_lb, out);
        let Some(selector) = doc::at(svc, &["spec", "selector"])
            .filter(|s| s.as_object().is_some_and(|m| !m.is_empty()))
        else {
            continue;
        };
        let selector = Selector::from_map(selector);
        let mut pods: Vec<&Value> = pods_by_ns
            .get(ns)
            .into_iter()
            .flatten()
            .copied()
            .filter(|p| selector.matches(doc::labels(p)))
            .filter(|p| !doc::is_deleting(p) && !doc::str_at(p, &["status", "podIP"]).is_empty())
            .filter(|p| !matches!(doc::str_at(p, &["status", "phase"]), "Succeeded" | "Failed"))
            .collect();
        pods.sort_by(|a, b| {
            doc::str_at(a, &["status", "podIP"]).cmp(doc::str_at(b, &["status", "podIP"]))
        });
        let ports = service_ports(svc, pods.first().copied());
        let addr = |p: &Value| {
            json!({"ip": doc::str_at(p, &["status", "podIP"]), "nodeName": doc::str_at(p, &["spec", "nodeName"]),
                "targetRef": {"kind": "Pod", "name": doc::name(p), "namespace": ns, "uid": doc::uid(p)}})
        };
        let ready: Vec<Value> = pods
            .iter()
            .filter(|p| pod_ready(p))
            .map(|p| addr(p))
            .collect();
        let not_ready: Vec<Value> = pods
            .iter()
            .filter(|p| !pod_ready(p))
            .map(|p| addr(p))
            .collect();
        let mut subset = json!({});
        if !ready.is_empty() {
            subset["addresses"] = Value::Array(ready);
        }
        if !not_ready.is_empty() {
            subset["notReadyAddresses"] = Value::Array(not_ready);
        }
        let mut endpoints = json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": name, "namespace": ns, "labels": {MANAGED_BY: "endpoint-controller"}},
        });
        if !pods.is_empty() {
            subset["ports"] = Value::Array(
                ports
                    .iter()
                    .map(|(n, _, t, proto)| port_json(n, *t, proto))
                    .collect(),
            );
            endpoints["subsets"] = json!([subset]);
        }
        write(state, "Endpoints", endpoints, out);
        let slice_name = format!(
            "{name}-{}",
            &crate::engine::controllers::deployment::template_hash(&json!(doc::uid(svc)), None)
                [..5]
        );
        let slice_endpoints: Vec<Value> = pods
            .iter()
            .map(|p| {
                let r = pod_ready(p);
                json!({"addresses": [doc::str_at(p, &["status", "podIP"])],
                    "conditions": {"ready": r, "serving": r, "terminating": false},
                    "nodeName": doc::str_at(p, &["spec", "nodeName"]),
                    "targetRef": {"kind": "Pod", "name": doc::name(p), "namespace": ns, "uid": doc::uid(p)}})
            })
            .collect();
        let slice = json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": slice_name, "namespace": ns,
                "labels": {"kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
                "ownerReferences": [doc::controller_ref(svc)]},
            "addressType": "IPv4",
            "endpoints": slice_endpoints,
            "ports": ports.iter().map(|(n, _, t, proto)| port_json(n, *t, proto)).collect::<Vec<_>>(),
        });
        write(state, "EndpointSlice", slice, out);
    }
    // Endpoints of Services that are gone.
    for s in state.kind("Endpoints").values() {
        let e = &s.doc;
        if doc::at(e, &["metadata", "labels", MANAGED_BY]).is_some()
            && state
                .get("Service", doc::namespace(e), doc::name(e))
                .is_none()
        {
            out.push(Change::Remove {
                kind: "Endpoints",
                namespace: doc::namespace(e).into(),
                name: doc::name(e).into(),
            });
        }
    }
}

fn port_json(name: &str, port: i64, protocol: &str) -> Value {
    let mut p = json!({"port": port, "protocol": protocol});
    if !name.is_empty() {
        p["name"] = json!(name);
    }
    p
}

fn pod_ready(pod: &Value) -> bool {
    crate::engine::scheduler::pod_condition(pod, "Ready")
        .is_some_and(|c| doc::str_at(c, &["status"]) == "True")
}

/// (name, port, resolved target port, protocol) of each Service port.
fn service_ports(svc: &Value, sample: Option<&Value>) -> Vec<(String, i64, i64, String)> {
    doc::at(svc, &["spec", "ports"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let port = doc::i64_at(p, &["port"]).unwrap_or(0);
            let target = match p.get("targetPort") {
                Some(Value::Number(n)) => n.as_i64().unwrap_or(port),
                Some(Value::String(named)) => sample
                    .and_then(|pod| named_port(pod, named))
                    .unwrap_or(port),
                _ => port,
            };
            let proto = match doc::str_at(p, &["protocol"]) {
                "" => "TCP",
                other => other,
            };
            (
                doc::str_at(p, &["name"]).to_string(),
                port,
                target,
                proto.to_string(),
            )
        })
        .collect()
}

fn named_port(pod: &Value, name: &str) -> Option<i64> {
    doc::at(pod, &["spec", "containers"])?
        .as_array()?
        .iter()
        .find_map(|c| {
            c.get("ports")?
                .as_array()?
                .iter()
                .find(|p| doc::str_at(p, &["name"]) == name)
                .and_then(|p| doc::i64_at(p, &["containerPort"]))
        })
}

fn write(state: &State, kind: &'static str, mut desired: Value, out: &mut Changes) {
    let (ns, name) = (
        doc::namespace(&desired).to_string(),
        doc::name(&desired).to_string(),
    );
    match state.get(kind, &ns, &name) {
        None => out.push(Change::Create {
            kind,
            doc: desired,
            sim: None,
            owner: None,
        }),
        Some(current) => {
            // Keep the store's bookkeeping; compare the rest.
            if let Some(meta) = current.doc.get("metadata") {
                for k in ["uid", "resourceVersion", "creationTimestamp", "generation"] {
                    if let Some(v) = meta.get(k) {
                        desired["metadata"][k] = v.clone();
                    }
                }
            }
            if desired != current.doc {
                out.update(kind, desired);
            }
        }
    }
}

fn load_balancer(svc: &Value, used: &mut BTreeSet<String>, out: &mut Changes) {
    let is_lb = doc::str_at(svc, &["spec", "type"]) == "LoadBalancer";
    let has = doc::at(svc, &["status", "loadBalancer", "ingress"]).is_some();
    if is_lb == has {
        return;
    }
    let mut updated = svc.clone();
    if is_lb {
        let Some(ip) = (200..255)
            .map(|h| format!("{LB_POOL}{h}"))
            .find(|ip| !used.contains(ip))
        else {
            return;
        };
        used.insert(ip.clone());
        doc::set(
            &mut updated,
            &["status", "loadBalancer"],
            json!({"ingress": [{"ip": ip, "ipMode": "VIP"}]}),
        );
    } else {
        doc::set(&mut updated, &["status", "loadBalancer"], json!({}));
    }
    out.update("Service", updated);
}
