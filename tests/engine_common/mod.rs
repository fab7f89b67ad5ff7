//! Helpers shared by the engine tests.
#![allow(dead_code)]

use reconcile::engine::controllers::replicaset::ready_since;
use reconcile::engine::{Engine, doc};
use serde_json::{Value, json};

/// A Deployment with one container.
pub fn deployment(name: &str, image: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]}}
        }
    })
}

/// Sets `spec.strategy`.
pub fn with_strategy(mut d: Value, strategy: Value) -> Value {
    d["spec"]["strategy"] = strategy;
    d
}

/// A fresh in-memory cluster.
pub fn engine(nodes: usize) -> Engine {
    Engine::in_memory(nodes).expect("engine")
}

/// Pods of an app.
pub fn pods(e: &mut Engine, app: &str) -> Vec<Value> {
    e.list("pods", Some("default"), Some(&format!("app={app}")))
        .expect("list")
}

/// Pods not being deleted.
pub fn active(e: &mut Engine, app: &str) -> Vec<Value> {
    pods(e, app)
        .into_iter()
        .filter(|p| !doc::is_deleting(p))
        .collect()
}

/// Ready pods not being deleted.
pub fn ready(e: &mut Engine, app: &str) -> Vec<Value> {
    active(e, app)
        .into_iter()
        .filter(|p| ready_since(p).is_some())
        .collect()
}

/// The image of a pod's first container.
pub fn image(p: &Value) -> &str {
    p.pointer("/spec/containers/0/image")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Messages of the `ScalingReplicaSet` events of a Deployment, with hashes replaced by
/// `OLD`/`NEW` as given.
pub fn scaling_events(e: &mut Engine, names: &[(&str, &str)]) -> Vec<String> {
    e.events(Some("default"))
        .expect("events")
        .into_iter()
        .filter(|ev| ev.reason == "ScalingReplicaSet")
        .map(|ev| {
            let mut m = ev.message.clone();
            for (from, to) in names {
                m = m.replace(from, to);
            }
            m
        })
        .collect()
}

/// ReplicaSets of a Deployment, oldest first: (name, spec.replicas, revision).
pub fn replica_sets(e: &mut Engine, app: &str) -> Vec<(String, i64, String)> {
    let mut list = e
        .list("rs", Some("default"), Some(&format!("app={app}")))
        .expect("rs");
    list.sort_by_key(|r| {
        (
            doc::str_at(r, &["metadata", "creationTimestamp"]).to_string(),
            doc::i64_at(r, &["metadata", "resourceVersion"]).unwrap_or(0),
        )
    });
    list.iter()
        .map(|r| {
            (
                doc::name(r).to_string(),
                doc::i64_at(r, &["spec", "replicas"]).unwrap_or(0),
                doc::annotation(r, "deployment.kubernetes.io/revision")
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

/// A Deployment's condition (status, reason).
pub fn condition(d: &Value, kind: &str) -> Option<(String, String)> {
    d.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| doc::str_at(c, &["type"]) == kind)
        .map(|c| {
            (
                doc::str_at(c, &["status"]).to_string(),
                doc::str_at(c, &["reason"]).to_string(),
            )
        })
}
