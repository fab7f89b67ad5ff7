//! Profiling aid: 10,000 pods on 100 nodes.
use reconcile::engine::{Engine, NodeSpec};
use serde_json::json;
fn main() {
    let mut e = Engine::in_memory(0).expect("engine");
    for i in 1..=100 {
        e.add_node(
            &format!("worker-{i}"),
            &NodeSpec {
                cpu_millis: 16_000,
                memory: 64 << 30,
                pods: 110,
                labels: vec![],
            },
        )
        .expect("node");
    }
    let t = std::time::Instant::now();
    e.create(&json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "big"},
        "spec": {"replicas": 10000, "selector": {"matchLabels": {"app": "big"}},
        "template": {"metadata": {"labels": {"app": "big"}}, "spec": {"containers": [{"name": "app", "image": "nginx"}]}}}})).expect("create");
    eprintln!("create {:?}", t.elapsed());
    e.advance(30_000).expect("advance");
    eprintln!("total {:?}", t.elapsed());
}
