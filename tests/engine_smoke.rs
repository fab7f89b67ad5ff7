//! First end-to-end checks of the engine: a Deployment comes up, pods run, endpoints fill.

use reconcile::engine::{Engine, doc};
use serde_json::{Value, json};

fn deployment(name: &str, image: &str, replicas: i64) -> Value {
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

#[test]
fn a_deployment_comes_up() {
    let mut e = Engine::in_memory(3).expect("engine");
    e.create(&deployment("web", "nginx:1.25", 3))
        .expect("create");
    e.advance(30_000).expect("advance");
    let pods = e
        .list("pods", Some("default"), Some("app=web"))
        .expect("list");
    assert_eq!(pods.len(), 3);
    for p in &pods {
        assert_eq!(doc::str_at(p, &["status", "phase"]), "Running", "{p:#}");
    }
    let d = e
        .get("deploy", "default", "web")
        .expect("get")
        .expect("exists");
    assert_eq!(
        doc::i64_at(&d, &["status", "availableReplicas"]),
        Some(3),
        "{d:#}"
    );
    let events = e.events(None).expect("events");
    for ev in events.iter().take(40) {
        eprintln!(
            "{} {} {}/{} {}",
            ev.reason, ev.object_kind, ev.namespace, ev.object_name, ev.message
        );
    }
}
