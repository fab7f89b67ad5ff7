//! Pods on the engine: probes, back-offs, config errors, init containers, scheduling.

mod engine_common;

use engine_common::*;
use reconcile::engine::images::ImageBehavior;
use reconcile::engine::{NodeSpec, doc};
use serde_json::{Value, json};

fn pod_state(e: &mut reconcile::engine::Engine, app: &str) -> (String, i64) {
    let p = pods(e, app).into_iter().next().expect("a pod");
    let status = container_state(&p);
    let restarts = doc::i64_at(&p, &["status", "containerStatuses", "0", "restartCount"])
        .unwrap_or_else(|| {
            p.pointer("/status/containerStatuses/0/restartCount")
                .and_then(Value::as_i64)
                .unwrap_or(0)
        });
    (status, restarts)
}

fn container_state(p: &Value) -> String {
    let s = p
        .pointer("/status/containerStatuses/0/state")
        .cloned()
        .unwrap_or_default();
    if let Some(w) = s.get("waiting") {
        return doc::str_at(w, &["reason"]).to_string();
    }
    if s.get("running").is_some() {
        return "Running".into();
    }
    if let Some(t) = s.get("terminated") {
        return doc::str_at(t, &["reason"]).to_string();
    }
    "?".into()
}

#[test]
fn crashing_containers_back_off_like_the_kubelet() {
    let mut e = engine(1);
    e.set_image(
        "crasher",
        ImageBehavior {
            crash: true,
            startup_ms: 1000,
            ..Default::default()
        },
    )
    .expect("image");
    e.create(&deployment("c", "crasher:1", 1)).expect("create");
    // Pull 1 s, crash 1 s after start (t=2 s) and restart at once; crash again at 3 s,
    // then back-off 10 s (restart at 13 s), crash at 14 s, back-off 20 s (restart at 34 s).
    e.advance(2_500).expect("advance");
    assert_eq!(pod_state(&mut e, "c"), ("Running".into(), 1));
    e.advance(1_000).expect("advance");
    assert_eq!(pod_state(&mut e, "c"), ("CrashLoopBackOff".into(), 1));
    e.advance(10_000).expect("advance");
    assert_eq!(pod_state(&mut e, "c"), ("Running".into(), 2));
    e.advance(1_000).expect("advance");
    assert_eq!(pod_state(&mut e, "c"), ("CrashLoopBackOff".into(), 2));
    // While it waits, the status still names the container that ended, in both places.
    let waiting = pods(&mut e, "c").remove(0);
    let id = |path: &str| {
        waiting
            .pointer(&format!("/status/containerStatuses/0/{path}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    assert!(id("containerID").starts_with("containerd://"), "{waiting}");
    assert_eq!(id("containerID"), id("lastState/terminated/containerID"));
    e.advance(19_000).expect("advance");
    assert_eq!(pod_state(&mut e, "c"), ("CrashLoopBackOff".into(), 2));
    e.advance(1_000).expect("advance");
    assert_eq!(pod_state(&mut e, "c"), ("Running".into(), 3));
    let p = pods(&mut e, "c").remove(0);
    assert_eq!(
        p.pointer("/status/containerStatuses/0/lastState/terminated/reason"),
        Some(&json!("Error"))
    );
    // Running again: a new container, the ended one in lastState.
    assert_ne!(
        p.pointer("/status/containerStatuses/0/containerID"),
        p.pointer("/status/containerStatuses/0/lastState/terminated/containerID")
    );
    assert!(
        p.pointer("/status/containerStatuses/0/lastState/terminated/containerID")
            .is_some()
    );
    let backoffs = e
        .events(None)
        .expect("events")
        .into_iter()
        .filter(|ev| ev.reason == "BackOff")
        .map(|ev| ev.count)
        .sum::<u64>();
    assert_eq!(backoffs, 2);
}

#[test]
fn missing_images_back_off_pulling() {
    let mut e = engine(1);
    e.set_image(
        "ghost",
        ImageBehavior {
            missing: true,
            ..Default::default()
        },
    )
    .expect("image");
    e.create(&deployment("g", "ghost:1", 1)).expect("create");
    e.advance(2_000).expect("advance");
    assert_eq!(pod_state(&mut e, "g").0, "ImagePullBackOff");
    let reasons: Vec<String> = e
        .events(None)
        .expect("events")
        .into_iter()
        .map(|ev| format!("{} {}", ev.reason, ev.message))
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("Failed Failed to pull image \"ghost:1\"")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r == "Failed Error: ImagePullBackOff"),
        "{reasons:?}"
    );
    // Once the image exists the next pull succeeds.
    e.unset_image("ghost").expect("unset");
    e.advance(30_000).expect("advance");
    assert_eq!(pod_state(&mut e, "g").0, "Running");
}

#[test]
fn missing_config_maps_block_containers_until_created() {
    let mut e = engine(1);
    let mut d = deployment("cfg", "app:1", 1);
    d["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}}]);
    e.create(&d).expect("create");
    e.advance(5_000).expect("advance");
    let p = pods(&mut e, "cfg").remove(0);
    assert_eq!(container_state(&p), "CreateContainerConfigError");
    assert_eq!(
        p.pointer("/status/containerStatuses/0/state/waiting/message"),
        Some(&json!("configmap \"settings\" not found"))
    );
    e.create(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "fast"}})).expect("cm");
    e.advance(1_000).expect("advance");
    assert_eq!(pod_state(&mut e, "cfg").0, "Running");
}

#[test]
fn missing_volume_sources_keep_pods_creating() {
    let mut e = engine(1);
    let mut d = deployment("vol", "app:1", 1);
    d["spec"]["template"]["spec"]["volumes"] =
        json!([{"name": "creds", "secret": {"secretName": "db"}}]);
    e.create(&d).expect("create");
    e.advance(5_000).expect("advance");
    assert_eq!(pod_state(&mut e, "vol").0, "ContainerCreating");
    let msgs: Vec<String> = e
        .events(None)
        .expect("events")
        .into_iter()
        .filter(|ev| ev.reason == "FailedMount")
        .map(|ev| ev.message)
        .collect();
    assert_eq!(
        msgs,
        vec!["MountVolume.SetUp failed for volume \"creds\" : secret \"db\" not found"]
    );
    e.create(&json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "stringData": {"password": "x"}})).expect("secret");
    e.advance(3_000).expect("advance");
    assert_eq!(pod_state(&mut e, "vol").0, "Running");
    let secret = e
        .get("secret", "default", "db")
        .expect("get")
        .expect("exists");
    assert_eq!(secret.pointer("/data/password"), Some(&json!("eA==")));
}

#[test]
fn init_containers_run_first() {
    let mut e = engine(1);
    e.set_image(
        "migrate",
        ImageBehavior {
            run_ms: 5_000,
            ..Default::default()
        },
    )
    .expect("image");
    let mut d = deployment("init", "app:1", 1);
    d["spec"]["template"]["spec"]["initContainers"] =
        json!([{"name": "migrate", "image": "migrate:1"}]);
    e.create(&d).expect("create");
    e.advance(2_000).expect("advance");
    let p = pods(&mut e, "init").remove(0);
    assert!(
        p.pointer("/status/initContainerStatuses/0/state/running")
            .is_some(),
        "{p:#}"
    );
    assert_eq!(container_state(&p), "PodInitializing");
    e.advance(5_000).expect("advance");
    let p = pods(&mut e, "init").remove(0);
    assert_eq!(
        p.pointer("/status/initContainerStatuses/0/state/terminated/reason"),
        Some(&json!("Completed"))
    );
    assert_eq!(container_state(&p), "Running");
}

#[test]
fn readiness_probes_shape_readiness_and_liveness_restarts() {
    let mut e = engine(1);
    e.set_image(
        "slow",
        ImageBehavior {
            startup_ms: 25_000,
            ..Default::default()
        },
    )
    .expect("image");
    let mut d = deployment("slow", "slow:1", 1);
    d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] =
        json!({"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 5});
    d["spec"]["template"]["spec"]["containers"][0]["livenessProbe"] = json!({"httpGet": {"path": "/", "port": 8080}, "initialDelaySeconds": 5, "periodSeconds": 5, "failureThreshold": 3});
    e.create(&d).expect("create");
    // Started at 1 s; liveness probes at 6, 11, 16 s all fail (program up at 26 s): killed.
    e.advance(15_500).expect("advance");
    assert_eq!(pod_state(&mut e, "slow"), ("Running".into(), 0));
    e.advance(1_000).expect("advance");
    assert_eq!(pod_state(&mut e, "slow").1, 1);
    let kills = e
        .events(None)
        .expect("events")
        .into_iter()
        .filter(|ev| ev.reason == "Killing")
        .count();
    assert_eq!(kills, 1);
    assert!(ready(&mut e, "slow").is_empty());

    // A program that comes up in time is ready at the first probe after it serves.
    e.set_image(
        "fast",
        ImageBehavior {
            startup_ms: 7_000,
            ..Default::default()
        },
    )
    .expect("image");
    let mut d = deployment("fast", "fast:1", 1);
    d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] =
        json!({"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 5});
    e.create(&d).expect("create");
    // Start at +1 s, probes at +1, +6, +11 s; program up at +8 s: ready at +11 s.
    e.advance(10_500).expect("advance");
    assert!(ready(&mut e, "fast").is_empty());
    e.advance(1_000).expect("advance");
    assert_eq!(ready(&mut e, "fast").len(), 1);
}

#[test]
fn unschedulable_pods_report_like_kube_scheduler() {
    let mut e = engine(3);
    let mut d = deployment("big", "app:1", 1);
    d["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"requests": {"cpu": "64"}});
    e.create(&d).expect("create");
    e.advance(1_000).expect("advance");
    let p = pods(&mut e, "big").remove(0);
    assert_eq!(doc::str_at(&p, &["status", "phase"]), "Pending");
    let msgs: Vec<String> = e
        .events(None)
        .expect("events")
        .into_iter()
        .filter(|ev| ev.reason == "FailedScheduling")
        .map(|ev| ev.message)
        .collect();
    assert_eq!(msgs, vec!["0/3 nodes are available: 3 Insufficient cpu."]);
    // A big enough node fixes it.
    e.add_node(
        "huge",
        &NodeSpec {
            cpu_millis: 128_000,
            ..NodeSpec::default()
        },
    )
    .expect("node");
    e.advance(5_000).expect("advance");
    let p = pods(&mut e, "big").remove(0);
    assert_eq!(doc::str_at(&p, &["spec", "nodeName"]), "huge");
}

#[test]
fn cordoned_nodes_take_no_pods_and_drain_moves_them() {
    let mut e = engine(2);
    e.cordon("worker-1", true).expect("cordon");
    e.create(&deployment("web", "app:1", 4)).expect("create");
    e.advance(5_000).expect("advance");
    assert!(
        pods(&mut e, "web")
            .iter()
            .all(|p| doc::str_at(p, &["spec", "nodeName"]) == "worker-2")
    );
    e.cordon("worker-1", false).expect("uncordon");
    let drained = e.drain("worker-2", false, 60_000).expect("drain");
    assert!(drained.remaining.is_empty());
    let evicted = drained
        .steps
        .iter()
        .filter(|s| matches!(s, reconcile::engine::DrainStep::Evicted(_)))
        .count();
    assert_eq!(evicted, 4);
    e.advance(10_000).expect("advance");
    let running = ready(&mut e, "web");
    assert_eq!(running.len(), 4);
    assert!(
        running
            .iter()
            .all(|p| doc::str_at(p, &["spec", "nodeName"]) == "worker-1")
    );
}

#[test]
fn pods_spread_over_nodes() {
    let mut e = engine(3);
    e.create(&deployment("web", "app:1", 10)).expect("create");
    e.advance(5_000).expect("advance");
    let mut per = std::collections::BTreeMap::new();
    for p in ready(&mut e, "web") {
        *per.entry(doc::str_at(&p, &["spec", "nodeName"]).to_string())
            .or_insert(0) += 1;
    }
    let mut counts: Vec<i32> = per.values().copied().collect();
    counts.sort();
    assert_eq!(counts, vec![3, 3, 4]);
}
