//! `engine serve` benchmark, through the API router in-process (no socket, no TLS: the
//! server's own work) over a state file as `serve` keeps it: LIST of 10,000 pods as JSON and
//! as Table, 1,000 sequential creates, and how long a watch takes to deliver an event after
//! the write.
//!
//! Run with `cargo bench --bench serve`. Targets: LIST < 300 ms, 1,000 creates < 2 s,
//! watch event < 50 ms. Each figure is the median of 5 runs.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use reconcile::api::{self, worker};
use reconcile::engine::{Engine, NodeSpec};
use serde_json::json;
use tokio_stream::StreamExt;
use tower::ServiceExt;

const TOKEN: &str = "bench-token";

fn request(method: &str, uri: &str, accept: &str, body: String) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("accept", accept)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap_or_else(|e| panic!("request: {e}"))
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn main() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let mut engine =
        Engine::open(&dir.path().join("engine.db")).unwrap_or_else(|e| panic!("engine: {e}"));
    for i in 1..=100 {
        let node = NodeSpec {
            cpu_millis: 16_000,
            memory: 64 << 30,
            pods: 110,
            labels: vec![],
        };
        engine
            .add_node(&format!("bench-{i}"), &node)
            .unwrap_or_else(|e| panic!("node: {e}"));
    }
    engine
        .create(&json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "big", "namespace": "default"},
            "spec": {"replicas": 10000, "selector": {"matchLabels": {"app": "big"}},
            "template": {"metadata": {"labels": {"app": "big"}}, "spec": {"containers": [{"name": "app", "image": "nginx"}]}}}}))
        .unwrap_or_else(|e| panic!("create: {e}"));
    engine
        .advance(30_000)
        .unwrap_or_else(|e| panic!("advance: {e}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    runtime.block_on(async move {
        let worker = worker::Worker::start(engine, worker::Clock::Frozen);
        let router = api::router(worker, TOKEN, "127.0.0.1:6443");
        for (label, accept) in [
            ("LIST 10,000 pods, JSON", "application/json"),
            (
                "LIST 10,000 pods, Table",
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
            ),
        ] {
            let mut runs = Vec::new();
            let mut bytes = 0;
            for _ in 0..5 {
                let t = Instant::now();
                let response = router
                    .clone()
                    .oneshot(request(
                        "GET",
                        "/api/v1/namespaces/default/pods",
                        accept,
                        String::new(),
                    ))
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                runs.push(t.elapsed());
                bytes = body.len();
            }
            println!(
                "{label}: {:?} (median of 5, {} MB); target < 300 ms",
                median(runs),
                bytes / 1_000_000
            );
        }

        let mut runs = Vec::new();
        for round in 0..5 {
            let t = Instant::now();
            for i in 0..1000 {
                let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("cm-{round}-{i}")}, "data": {"k": "v"}});
                let response = router
                    .clone()
                    .oneshot(request(
                        "POST",
                        "/api/v1/namespaces/default/configmaps",
                        "application/json",
                        cm.to_string(),
                    ))
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(response.status(), 201);
            }
            runs.push(t.elapsed());
        }
        println!(
            "1,000 sequential creates: {:?} (median of 5); target < 2 s",
            median(runs)
        );

        let mut runs = Vec::new();
        for round in 0..5 {
            let response = router
                .clone()
                .oneshot(request(
                    "GET",
                    "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=",
                    "application/json",
                    String::new(),
                ))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let mut stream = response.into_body().into_data_stream();
            // Drain the initial ADDED events.
            let mut seen = 0;
            while seen < 5000 {
                match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
                    Ok(Some(Ok(chunk))) => seen += chunk.iter().filter(|b| **b == b'\n').count(),
                    _ => panic!("watch ended early"),
                }
            }
            let name = format!("watched-{round}");
            let t = Instant::now();
            let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
            router
                .clone()
                .oneshot(request(
                    "POST",
                    "/api/v1/namespaces/default/configmaps",
                    "application/json",
                    cm.to_string(),
                ))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            loop {
                match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
                    Ok(Some(Ok(chunk))) if String::from_utf8_lossy(&chunk).contains(&name) => break,
                    Ok(Some(Ok(_))) => {}
                    _ => panic!("no watch event"),
                }
            }
            runs.push(t.elapsed());
        }
        println!(
            "watch event after the write: {:?} (median of 5); target < 50 ms",
            median(runs)
        );
    });
}
