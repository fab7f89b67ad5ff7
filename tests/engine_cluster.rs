//! Cluster-level behaviour: node failure, Services, admission, persistence, namespaces, GC,
//! the Cluster trait.

mod engine_common;

use std::time::Duration;

use engine_common::*;
use reconcile::engine::images::ImageBehavior;
use reconcile::engine::{Engine, Propagation, doc};
use reconcile::model::{Gvk, ResId};
use serde_json::{Value, json};

#[test]
fn node_failure_evicts_after_grace_and_toleration_then_recovers() {
    let mut e = engine(4);
    e.create(&deployment("web", "app:1", 8)).expect("create");
    e.advance(5_000).expect("advance");
    let on_node = |e: &mut Engine| {
        pods(e, "web")
            .into_iter()
            .filter(|p| doc::str_at(p, &["spec", "nodeName"]) == "worker-2")
            .collect::<Vec<_>>()
    };
    let victims = on_node(&mut e);
    assert_eq!(victims.len(), 2);
    e.fail_node("worker-2").expect("fail");
    // Within the 40 s grace period nothing changes.
    e.advance(39_000).expect("advance");
    assert_eq!(ready(&mut e, "web").len(), 8);
    e.advance(1_000).expect("advance");
    let node = e.get("node", "", "worker-2").expect("get").expect("exists");
    assert!(!reconcile::engine::scheduler::node_ready(&node));
    let taints: Vec<&str> = node
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| doc::str_at(t, &["key"]))
        .collect();
    assert_eq!(
        taints,
        vec![
            "node.kubernetes.io/unreachable",
            "node.kubernetes.io/unreachable"
        ]
    );
    assert_eq!(
        ready(&mut e, "web").len(),
        6,
        "pods on the lost node are not ready"
    );
    // As upstream `MarkPodsNotReady`: Ready turns False; ContainersReady, the kubelet's, stays.
    for pod in on_node(&mut e) {
        let status = |kind: &str| {
            pod.pointer("/status/conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|c| doc::str_at(c, &["type"]) == kind)
                .map(|c| doc::str_at(c, &["status"]).to_string())
        };
        assert_eq!(status("Ready").as_deref(), Some("False"), "{pod}");
        assert_eq!(status("ContainersReady").as_deref(), Some("True"), "{pod}");
    }
    // Evicted 300 s after the taint, replaced elsewhere.
    e.advance(299_000).expect("advance");
    assert_eq!(active(&mut e, "web").len(), 8);
    e.advance(1_000).expect("advance");
    e.advance(3_000).expect("advance");
    let running = ready(&mut e, "web");
    assert_eq!(running.len(), 8);
    assert!(
        running
            .iter()
            .all(|p| doc::str_at(p, &["spec", "nodeName"]) != "worker-2")
    );
    // The evicted pods stay Terminating while their node is unreachable.
    assert_eq!(on_node(&mut e).len(), 2);
    assert!(on_node(&mut e).iter().all(doc::is_deleting));
    e.recover_node("worker-2").expect("recover");
    e.advance(5_000).expect("advance");
    assert!(on_node(&mut e).is_empty());
    let node = e.get("node", "", "worker-2").expect("get").expect("exists");
    assert!(reconcile::engine::scheduler::node_ready(&node));
    assert!(node.pointer("/spec/taints").is_none());
    let reasons: Vec<String> = e
        .events(None)
        .expect("events")
        .into_iter()
        .filter(|ev| ev.object_kind == "Node")
        .map(|ev| ev.reason)
        .collect();
    assert!(
        reasons.contains(&"NodeNotReady".to_string()) && reasons.contains(&"NodeReady".to_string()),
        "{reasons:?}"
    );
}

#[test]
fn toleration_seconds_of_the_pod_are_honoured() {
    let mut e = engine(2);
    let mut d = deployment("quick", "app:1", 2);
    d["spec"]["template"]["spec"]["tolerations"] = json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}]);
    d["spec"]["template"]["spec"]["affinity"] = Value::Null;
    e.create(&d).expect("create");
    e.advance(5_000).expect("advance");
    e.fail_node("worker-1").expect("fail");
    e.advance(40_000 + 10_000 + 3_000).expect("advance");
    let running = ready(&mut e, "quick");
    assert_eq!(running.len(), 2);
    assert!(
        running
            .iter()
            .all(|p| doc::str_at(p, &["spec", "nodeName"]) == "worker-2")
    );
}

fn service(name: &str, kind: &str, ports: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"type": kind, "selector": {"app": "web"}, "ports": ports}})
}

#[test]
fn services_allocate_addresses_and_list_ready_endpoints() {
    let mut e = engine(3);
    e.create(&deployment("web", "app:1", 3)).expect("deploy");
    let svc = e
        .create(&service(
            "web",
            "ClusterIP",
            json!([{"port": 80, "targetPort": 8080}]),
        ))
        .expect("svc");
    let ip = doc::str_at(&svc, &["spec", "clusterIP"]).to_string();
    let octets: Vec<u32> = ip.split('.').filter_map(|o| o.parse().ok()).collect();
    assert_eq!(
        (octets[0], octets[1] & 0xF0),
        (10, 96),
        "{ip} is in 10.96.0.0/12"
    );
    e.advance(5_000).expect("advance");
    let ep = e
        .get("endpoints", "default", "web")
        .expect("get")
        .expect("exists");
    let addrs = ep
        .pointer("/subsets/0/addresses")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    assert_eq!(addrs, 3);
    assert_eq!(ep.pointer("/subsets/0/ports/0/port"), Some(&json!(8080)));
    let slices = e
        .list(
            "endpointslices",
            Some("default"),
            Some("kubernetes.io/service-name=web"),
        )
        .expect("slices");
    assert_eq!(slices.len(), 1);

    let np = e
        .create(&service(
            "web-np",
            "NodePort",
            json!([{"port": 80, "nodePort": 30080}]),
        ))
        .expect("nodeport");
    assert_eq!(np.pointer("/spec/ports/0/nodePort"), Some(&json!(30080)));
    let clash = e
        .create(&service(
            "web-np2",
            "NodePort",
            json!([{"port": 80, "nodePort": 30080}]),
        ))
        .expect_err("collision");
    assert!(
        clash.to_string().contains(
            "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
        ),
        "{clash}"
    );
    let range = e
        .create(&service(
            "web-np3",
            "NodePort",
            json!([{"port": 80, "nodePort": 80}]),
        ))
        .expect_err("range");
    assert!(
        range.to_string().contains(
            "provided port is not in the valid range. The range of valid ports is 30000-32767"
        ),
        "{range}"
    );
    let auto = e
        .create(&service("web-np4", "NodePort", json!([{"port": 80}])))
        .expect("auto nodeport");
    let port = auto
        .pointer("/spec/ports/0/nodePort")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    assert!((30000..=32767).contains(&port));

    e.create(&service("web-lb", "LoadBalancer", json!([{"port": 80}])))
        .expect("lb");
    let lb = e
        .get("svc", "default", "web-lb")
        .expect("get")
        .expect("exists");
    assert!(
        doc::str_at(&lb, &["status", "loadBalancer", "ingress", "0", "ip"]).is_empty()
            || lb.pointer("/status/loadBalancer/ingress/0/ip").is_some()
    );
    assert!(
        lb.pointer("/status/loadBalancer/ingress/0/ip")
            .and_then(Value::as_str)
            .is_some_and(|ip| ip.starts_with("172.18.255."))
    );

    let mut headless = service("web-headless", "ClusterIP", json!([{"port": 80}]));
    headless["spec"]["clusterIP"] = json!("None");
    let h = e.create(&headless).expect("headless");
    assert_eq!(h.pointer("/spec/clusterIP"), Some(&json!("None")));

    // clusterIP is immutable; an apply without it keeps the allocated one.
    let mut changed = service(
        "web",
        "ClusterIP",
        json!([{"port": 80, "targetPort": 8080}]),
    );
    changed["spec"]["clusterIP"] = json!("10.96.0.77");
    let err = e.apply(&changed).expect_err("immutable");
    assert!(err.to_string().contains("may not change once set"), "{err}");
    let same = e
        .apply(&service(
            "web",
            "ClusterIP",
            json!([{"port": 81, "targetPort": 8080}]),
        ))
        .expect("apply");
    assert_eq!(doc::str_at(&same, &["spec", "clusterIP"]), ip);
}

#[test]
fn admission_refuses_invalid_objects_and_changes_nothing() {
    let mut e = engine(1);
    let mut bad_name = deployment("Web", "app:1", 1);
    bad_name["metadata"]["name"] = json!("Web_1");
    let err = e.create(&bad_name).expect_err("name");
    assert!(err.to_string().starts_with("Deployment.apps \"Web_1\" is invalid: metadata.name: Invalid value: \"Web_1\": a lowercase RFC 1123 subdomain"), "{err}");

    let mut mismatch = deployment("web", "app:1", 1);
    mismatch["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"});
    let err = e.create(&mismatch).expect_err("selector");
    assert!(err.to_string().contains("spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`"), "{err}");

    let mut no_image = deployment("web", "", 1);
    no_image["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .map(|c| c.remove("image"));
    let err = e.create(&no_image).expect_err("image");
    assert!(
        err.to_string()
            .contains("spec.template.spec.containers[0].image: Required value"),
        "{err}"
    );

    let both_zero = with_strategy(
        deployment("web", "app:1", 1),
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}),
    );
    let err = e.create(&both_zero).expect_err("fenceposts");
    assert!(
        err.to_string()
            .contains("may not be 0 when `maxSurge` is 0"),
        "{err}"
    );

    let err = e
        .create(
            &json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}),
        )
        .expect_err("kind");
    assert_eq!(
        err.to_string(),
        "no matches for kind \"Widget\" in version \"example.com/v1\": install its CustomResourceDefinition first"
    );

    let err = e.create(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "nowhere"}})).expect_err("ns");
    assert_eq!(err.to_string(), "namespaces \"nowhere\" not found");

    assert!(e.list("deploy", None, None).expect("list").is_empty());

    e.create(&deployment("web", "app:1", 1)).expect("create");
    let err = e
        .create(&deployment("web", "app:1", 1))
        .expect_err("exists");
    assert_eq!(err.to_string(), "deployments.apps \"web\" already exists");
    let mut new_selector = deployment("web", "app:1", 1);
    new_selector["spec"]["selector"] = json!({"matchLabels": {"app": "web", "v": "2"}});
    new_selector["spec"]["template"]["metadata"]["labels"] = json!({"app": "web", "v": "2"});
    let err = e.apply(&new_selector).expect_err("immutable selector");
    assert!(
        err.to_string().contains("spec.selector: Invalid value"),
        "{err}"
    );
    assert!(err.to_string().contains("field is immutable"), "{err}");
}

#[test]
fn quotas_and_limit_ranges_apply_at_admission() {
    let mut e = engine(1);
    e.create(&json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "defaults"},
        "spec": {"limits": [{"type": "Container", "defaultRequest": {"cpu": "100m"}, "default": {"cpu": "200m"}}]}})).expect("limits");
    e.create(
        &json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "small"},
        "spec": {"hard": {"pods": "2", "requests.cpu": "1"}}}),
    )
    .expect("quota");
    e.create(&deployment("web", "app:1", 3)).expect("deploy");
    e.advance(5_000).expect("advance");
    let all = pods(&mut e, "web");
    assert_eq!(all.len(), 2);
    assert_eq!(
        all[0].pointer("/spec/containers/0/resources/requests/cpu"),
        Some(&json!("100m"))
    );
    let failures: Vec<String> = e
        .events(None)
        .expect("events")
        .into_iter()
        .filter(|ev| ev.reason == "FailedCreate")
        .map(|ev| ev.message)
        .collect();
    assert!(failures[0].starts_with("Error creating: pods \"") && failures[0].contains("is forbidden: exceeded quota: small, requested: pods=1, used: pods=2, limited: pods=2"), "{failures:?}");
}

#[test]
fn state_survives_reopening_and_a_second_writer_waits_then_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(".reconcile/engine.db");
    {
        let mut e = Engine::open(&path).expect("open");
        e.create(&deployment("web", "app:1", 2)).expect("create");
        e.advance(60_000).expect("advance");
    }
    let mut e = Engine::open(&path).expect("reopen");
    assert_eq!(ready(&mut e, "web").len(), 2);
    assert_eq!(
        reconcile::engine::clock::rfc3339(e.now_millis()),
        "2026-01-01T00:01:00Z"
    );
    // A second process writing meanwhile is seen by the first.
    let mut other = Engine::open(&path).expect("second");
    other.apply(&deployment("web", "app:1", 3)).expect("scale");
    other.advance(10_000).expect("advance");
    assert_eq!(ready(&mut e, "web").len(), 3);
    // A writer holding the file makes the other wait, then fail clearly.
    let conn = rusqlite::Connection::open(&path).expect("raw");
    conn.execute_batch("BEGIN IMMEDIATE").expect("lock");
    let err = e.advance(1_000).expect_err("busy");
    assert!(
        err.to_string()
            .contains("is in use by another reconcile process"),
        "{err}"
    );
    conn.execute_batch("ROLLBACK").expect("unlock");
    e.advance(1_000).expect("works again");
}

#[test]
fn namespaces_cascade_and_owners_collect_dependents() {
    let mut e = engine(2);
    e.create(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}))
        .expect("ns");
    let mut d = deployment("api", "app:1", 2);
    d["metadata"]["namespace"] = json!("team");
    e.create(&d).expect("deploy");
    e.create(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "team"}})).expect("cm");
    e.advance(5_000).expect("advance");
    assert_eq!(e.list("pods", Some("team"), None).expect("pods").len(), 2);
    // The service-account controller gives every namespace its `default` account.
    assert!(e.get("sa", "team", "default").expect("get").is_some());
    assert!(e.get("sa", "default", "default").expect("get").is_some());
    e.delete("namespace", "", "team", Propagation::Background)
        .expect("delete ns");
    let err = e.create(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d", "namespace": "team"}})).expect_err("terminating");
    assert!(
        err.to_string().contains("because it is being terminated"),
        "{err}"
    );
    e.advance(5_000).expect("advance");
    assert!(e.get("namespace", "", "team").expect("get").is_none());
    assert!(e.list("pods", Some("team"), None).expect("pods").is_empty());
    assert!(e.get("sa", "team", "default").expect("get").is_none());

    // Background: the Deployment goes at once, its ReplicaSet and pods after.
    e.create(&deployment("web", "app:1", 2)).expect("deploy");
    e.advance(5_000).expect("advance");
    e.delete("deploy", "default", "web", Propagation::Background)
        .expect("delete");
    e.advance(5_000).expect("advance");
    assert!(
        e.list("rs", Some("default"), Some("app=web"))
            .expect("rs")
            .is_empty()
    );
    assert!(pods(&mut e, "web").is_empty());

    // Orphan: the ReplicaSet stays, without owner.
    e.create(&deployment("keep", "app:1", 1)).expect("deploy");
    e.advance(5_000).expect("advance");
    e.delete("deploy", "default", "keep", Propagation::Orphan)
        .expect("delete");
    e.advance(5_000).expect("advance");
    let rs = e.list("rs", Some("default"), Some("app=keep")).expect("rs");
    assert_eq!(rs.len(), 1);
    assert!(
        rs[0]
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .is_none_or(|r| r.is_empty())
    );

    // Foreground: the Deployment waits for its dependents.
    e.create(&deployment("fg", "app:1", 1)).expect("deploy");
    e.advance(5_000).expect("advance");
    e.delete("deploy", "default", "fg", Propagation::Foreground)
        .expect("delete");
    let d = e
        .get("deploy", "default", "fg")
        .expect("get")
        .expect("still there");
    assert!(doc::is_deleting(&d));
    e.advance(5_000).expect("advance");
    assert!(e.get("deploy", "default", "fg").expect("get").is_none());
}

#[test]
fn the_cluster_trait_drives_the_engine() {
    use reconcile::cluster::{CANARY_WEIGHT_ANNOTATION, Cluster, MetricQuery, TRACK_LABEL};
    let mut e = engine(3);
    let c: &mut dyn Cluster = &mut e;
    assert_eq!(c.now(), "2026-01-01T00:00:00Z");
    c.apply(&deployment("web", "app:1", 3)).expect("apply");
    let mut canary = deployment("web-canary", "app:2", 1);
    canary["metadata"]["labels"] = json!({TRACK_LABEL: "canary"});
    canary["spec"]["selector"]["matchLabels"] = json!({"app": "web", TRACK_LABEL: "canary"});
    canary["spec"]["template"]["metadata"]["labels"] = json!({"app": "web", TRACK_LABEL: "canary"});
    c.apply(&canary).expect("canary");
    let mut svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "annotations": {CANARY_WEIGHT_ANNOTATION: "25"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
    c.apply(&svc).expect("svc");
    c.wait(Duration::from_secs(60)).expect("wait");
    assert_eq!(c.now(), "2026-01-01T00:01:00Z");
    let id = ResId {
        gvk: Gvk::from_api_version("apps/v1", "Deployment"),
        name: "web".into(),
        namespace: "default".into(),
    };
    let live = c.get(&id).expect("get").expect("exists");
    assert_eq!(live.pointer("/status/availableReplicas"), Some(&json!(3)));
    let listed = c
        .list(
            &Gvk::from_api_version("v1", "Pod"),
            Some("default"),
            Some(&format!("{TRACK_LABEL}=canary")),
        )
        .expect("list");
    assert_eq!(listed.len(), 1);
    let q = |sel: &str, metric: &str| MetricQuery {
        namespace: "default".into(),
        selector: sel.into(),
        metric: metric.into(),
        window: Duration::from_secs(30),
        app: "web".into(),
        track: "canary".into(),
        provider: None,
    };
    assert_eq!(
        c.metric(&q(&format!("app=web,{TRACK_LABEL}=canary"), "success-rate"))
            .expect("metric"),
        Some(1.0)
    );
    let rate = c
        .metric(&q(&format!("app=web,{TRACK_LABEL}=canary"), "request-rate"))
        .expect("metric")
        .expect("some");
    assert!(
        (rate - 5.0).abs() < 0.5,
        "25% of 20 rps goes to the canary, got {rate}"
    );
    let p99 = c
        .metric(&q("app=web", "latency-p99"))
        .expect("metric")
        .expect("some");
    assert!(p99 > 20.0 && p99 < 80.0, "{p99}");
    assert!(
        c.metric(&q("app=none", "success-rate"))
            .expect("metric")
            .is_none()
    );
    assert!(c.metric(&q("app=web", "bogus")).is_err());
    // Weight 0: the canary gets nothing.
    svc["metadata"]["annotations"][CANARY_WEIGHT_ANNOTATION] = json!("0");
    c.apply(&svc).expect("svc");
    c.wait(Duration::from_secs(1)).expect("wait");
    assert!(
        c.metric(&q(&format!("app=web,{TRACK_LABEL}=canary"), "success-rate"))
            .expect("metric")
            .is_none()
    );
    // A failing canary image shows in its success rate (the `&mut dyn Cluster` borrow of `e`
    // ends here).
    e.set_image(
        "app:2",
        ImageBehavior {
            error_rate: 0.2,
            ..Default::default()
        },
    )
    .expect("image");
    let c: &mut dyn Cluster = &mut e;
    svc["metadata"]["annotations"][CANARY_WEIGHT_ANNOTATION] = json!("50");
    c.apply(&svc).expect("svc");
    c.wait(Duration::from_secs(60)).expect("wait");
    let sr = c
        .metric(&q(&format!("app=web,{TRACK_LABEL}=canary"), "success-rate"))
        .expect("metric")
        .expect("some");
    assert!((sr - 0.8).abs() < 0.05, "{sr}");
    c.lock("test").expect("lock");
    c.unlock().expect("unlock");
    assert!(c.delete(&id).expect("delete"));
    assert!(!c.delete(&id).expect("delete again"));
}
