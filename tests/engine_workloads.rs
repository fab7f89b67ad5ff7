//! Scenarios for the workload and storage controllers: DaemonSet, StatefulSet, Job, CronJob,
//! HorizontalPodAutoscaler, PersistentVolume binding, ResourceQuota and LimitRange.
//!
//! Expected sequences are written as tables of (virtual time, what the API shows), worked
//! out by hand from Kubernetes' controllers and the engine's default image timing (pull 1 s,
//! startup 1 s, run-to-completion 2 s).

use reconcile::engine::images::ImageBehavior;
use reconcile::engine::{Engine, NodeSpec, doc};
use serde_json::{Value, json};

fn engine(nodes: usize) -> Engine {
    Engine::in_memory(nodes).expect("engine")
}

fn names(e: &mut Engine, kind: &str, selector: &str) -> Vec<String> {
    let mut v: Vec<String> = e
        .list(kind, Some("default"), Some(selector))
        .expect("list")
        .iter()
        .filter(|p| !doc::is_deleting(p))
        .map(|p| doc::name(p).to_string())
        .collect();
    v.sort();
    v
}

fn get(e: &mut Engine, kind: &str, name: &str) -> Value {
    e.get(kind, "default", name)
        .expect("get")
        .unwrap_or_else(|| panic!("{kind}/{name} missing"))
}

fn status_i64(obj: &Value, field: &str) -> i64 {
    doc::i64_at(obj, &["status", field]).unwrap_or(0)
}

fn pods(e: &mut Engine, selector: &str) -> Vec<Value> {
    e.list("pods", Some("default"), Some(selector))
        .expect("list")
}

// ---------------------------------------------------------------- DaemonSet

fn daemonset(image: &str, extra_spec: Value) -> Value {
    let mut ds = json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "agent", "image": image}]}}
        }
    });
    if let (Some(spec), Some(extra)) = (
        ds["spec"]["template"]["spec"].as_object_mut(),
        extra_spec.as_object(),
    ) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    ds
}

fn nodes_of(e: &mut Engine, selector: &str) -> Vec<String> {
    let mut v: Vec<String> = pods(e, selector)
        .iter()
        .filter(|p| !doc::is_deleting(p))
        .map(|p| doc::str_at(p, &["spec", "nodeName"]).to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn daemonset_runs_one_pod_per_node_including_nodes_added_later() {
    let mut e = engine(3);
    e.create(&daemonset("agent:1", json!({}))).expect("create");
    e.advance(10_000).expect("advance");
    assert_eq!(
        nodes_of(&mut e, "app=agent"),
        ["worker-1", "worker-2", "worker-3"]
    );
    let ds = get(&mut e, "ds", "agent");
    for (field, want) in [
        ("desiredNumberScheduled", 3),
        ("currentNumberScheduled", 3),
        ("numberReady", 3),
        ("numberAvailable", 3),
        ("updatedNumberScheduled", 3),
        ("numberMisscheduled", 0),
    ] {
        assert_eq!(status_i64(&ds, field), want, "{field}: {ds:#}");
    }
    e.add_node("worker-4", &NodeSpec::default())
        .expect("add node");
    e.advance(10_000).expect("advance");
    assert_eq!(
        nodes_of(&mut e, "app=agent"),
        ["worker-1", "worker-2", "worker-3", "worker-4"]
    );
    assert_eq!(status_i64(&get(&mut e, "ds", "agent"), "numberReady"), 4);
    // A removed node's pod goes with it; the count follows.
    e.remove_node("worker-2").expect("remove");
    e.advance(60_000).expect("advance");
    assert_eq!(
        nodes_of(&mut e, "app=agent"),
        ["worker-1", "worker-3", "worker-4"]
    );
    assert_eq!(
        status_i64(&get(&mut e, "ds", "agent"), "desiredNumberScheduled"),
        3
    );
}

#[test]
fn daemonset_respects_node_selector_and_taints() {
    let mut e = engine(2);
    e.add_node(
        "gpu-1",
        &NodeSpec {
            labels: vec![("accel".into(), "gpu".into())],
            ..NodeSpec::default()
        },
    )
    .expect("add");
    e.create(&daemonset(
        "agent:1",
        json!({"nodeSelector": {"accel": "gpu"}}),
    ))
    .expect("create");
    e.advance(10_000).expect("advance");
    assert_eq!(nodes_of(&mut e, "app=agent"), ["gpu-1"]);
    assert_eq!(
        status_i64(&get(&mut e, "ds", "agent"), "desiredNumberScheduled"),
        1
    );
    // A cordoned node keeps its daemon pod (daemon pods tolerate unschedulable).
    e.cordon("gpu-1", true).expect("cordon");
    e.advance(10_000).expect("advance");
    assert_eq!(nodes_of(&mut e, "app=agent"), ["gpu-1"]);
}

#[test]
fn daemonset_rolling_update_keeps_max_unavailable() {
    let mut e = engine(4);
    let mut ds = daemonset("agent:1", json!({}));
    ds["spec"]["updateStrategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}});
    e.create(&ds).expect("create");
    e.advance(10_000).expect("advance");
    ds["spec"]["template"]["spec"]["containers"][0]["image"] = json!("agent:2");
    e.apply(&ds).expect("apply");
    // Step through time: never more than 2 of 4 nodes without an available daemon pod,
    // never two pods on one node.
    let mut finished = false;
    for _ in 0..200 {
        e.advance(500).expect("advance");
        let all = pods(&mut e, "app=agent");
        let mut per_node: std::collections::BTreeMap<String, usize> = Default::default();
        let mut available = 0;
        for p in &all {
            *per_node
                .entry(doc::str_at(p, &["spec", "nodeName"]).to_string())
                .or_default() += 1;
            let ready = p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            if ready && !doc::is_deleting(p) {
                available += 1;
            }
        }
        assert!(available >= 2, "only {available} available");
        assert!(per_node.values().all(|n| *n <= 1), "{per_node:?}");
        let d = get(&mut e, "ds", "agent");
        if status_i64(&d, "updatedNumberScheduled") == 4 && status_i64(&d, "numberAvailable") == 4 {
            finished = true;
            break;
        }
    }
    assert!(finished, "rollout did not finish");
    for p in pods(&mut e, "app=agent") {
        assert_eq!(p["spec"]["containers"][0]["image"], "agent:2");
    }
}

// ---------------------------------------------------------------- StatefulSet

fn statefulset(replicas: i64, policy: &str, claims: bool) -> Value {
    let mut s = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web"},
        "spec": {
            "serviceName": "web",
            "replicas": replicas,
            "podManagementPolicy": policy,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:1"}]}}
        }
    });
    if claims {
        s["spec"]["volumeClaimTemplates"] = json!([{"metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]);
    }
    s
}

#[test]
fn statefulset_ordered_ready_creates_one_ordinal_at_a_time() {
    let mut e = engine(3);
    e.create(&statefulset(3, "OrderedReady", false))
        .expect("create");
    // Each pod is pulled in 1 s and Ready as it starts (no readiness probe); the next
    // ordinal is created at the instant the previous one turns Ready.
    let table: &[(i64, &[&str])] = &[
        (0, &["web-0"]),
        (999, &["web-0"]),
        (1_000, &["web-0", "web-1"]),
        (1_999, &["web-0", "web-1"]),
        (2_000, &["web-0", "web-1", "web-2"]),
        (20_000, &["web-0", "web-1", "web-2"]),
    ];
    let mut at = 0;
    for (t, want) in table {
        e.advance(t - at).expect("advance");
        at = *t;
        assert_eq!(names(&mut e, "pods", "app=web"), *want, "at {t} ms");
    }
    let s = get(&mut e, "sts", "web");
    assert_eq!(status_i64(&s, "readyReplicas"), 3, "{s:#}");
    // Scale down removes the highest ordinal first, one at a time.
    let mut scaled = statefulset(1, "OrderedReady", false);
    scaled["spec"]["replicas"] = json!(1);
    e.apply(&scaled).expect("apply");
    let live = names(&mut e, "pods", "app=web");
    assert_eq!(live, ["web-0", "web-1"], "web-2 goes first");
    e.advance(60_000).expect("advance");
    assert_eq!(names(&mut e, "pods", "app=web"), ["web-0"]);
}

#[test]
fn statefulset_parallel_creates_all_at_once_and_claims_follow_names() {
    let mut e = engine(3);
    for i in 0..3 {
        e.create(&json!({"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": format!("pv-{i}")},
            "spec": {"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": format!("/data/{i}")}}}))
            .expect("pv");
    }
    e.create(&statefulset(3, "Parallel", true)).expect("create");
    assert_eq!(
        names(&mut e, "pods", "app=web"),
        ["web-0", "web-1", "web-2"]
    );
    e.advance(10_000).expect("advance");
    for i in 0..3 {
        let pvc = get(&mut e, "pvc", &format!("data-web-{i}"));
        assert_eq!(doc::str_at(&pvc, &["status", "phase"]), "Bound", "{pvc:#}");
    }
    assert_eq!(status_i64(&get(&mut e, "sts", "web"), "readyReplicas"), 3);
    // Deleting a pod brings back the same name with the same claim.
    e.delete("pod", "default", "web-1", Default::default())
        .expect("delete");
    e.advance(60_000).expect("advance");
    let p = get(&mut e, "pod", "web-1");
    assert_eq!(
        p.pointer("/spec/volumes/0/persistentVolumeClaim/claimName"),
        Some(&json!("data-web-1"))
    );
}

#[test]
fn statefulset_rolling_update_goes_in_reverse_order_down_to_the_partition() {
    let mut e = engine(3);
    let mut s = statefulset(3, "OrderedReady", false);
    s["spec"]["updateStrategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 1}});
    e.create(&s).expect("create");
    e.advance(20_000).expect("advance");
    s["spec"]["template"]["spec"]["containers"][0]["image"] = json!("web:2");
    e.apply(&s).expect("apply");
    let mut order: Vec<String> = Vec::new();
    for _ in 0..400 {
        e.advance(500).expect("advance");
        for p in pods(&mut e, "app=web") {
            let n = doc::name(&p).to_string();
            if p["spec"]["containers"][0]["image"] == "web:2" && !order.contains(&n) {
                order.push(n);
            }
        }
    }
    assert_eq!(order, ["web-2", "web-1"], "web-0 is below the partition");
    let st = get(&mut e, "sts", "web");
    assert_eq!(status_i64(&st, "updatedReplicas"), 2, "{st:#}");
    assert_eq!(status_i64(&st, "currentReplicas"), 1, "{st:#}");
}

// ---------------------------------------------------------------- volumes

fn pv(name: &str, size: &str, modes: Value, class: Option<&str>) -> Value {
    let mut v = json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
        "spec": {"capacity": {"storage": size}, "accessModes": modes, "hostPath": {"path": format!("/data/{name}")}}});
    if let Some(c) = class {
        v["spec"]["storageClassName"] = json!(c);
    }
    v
}

fn pvc(name: &str, size: &str, modes: Value, class: Option<&str>) -> Value {
    let mut c = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
        "spec": {"accessModes": modes, "resources": {"requests": {"storage": size}}}});
    if let Some(cl) = class {
        c["spec"]["storageClassName"] = json!(cl);
    }
    c
}

fn pod_with_claim(name: &str, claim: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "app:1"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}})
}

#[test]
fn claims_bind_to_the_smallest_fitting_volume_of_their_class() {
    let mut e = engine(1);
    // (volume, capacity, access modes, class)
    let volumes = [
        ("small", "1Gi", json!(["ReadWriteOnce"]), None),
        ("medium", "5Gi", json!(["ReadWriteOnce"]), None),
        (
            "large",
            "20Gi",
            json!(["ReadWriteOnce", "ReadWriteMany"]),
            None,
        ),
        ("fast-5", "5Gi", json!(["ReadWriteOnce"]), Some("fast")),
        ("shared", "10Gi", json!(["ReadOnlyMany"]), None),
    ];
    for (n, size, modes, class) in volumes {
        e.create(&pv(n, size, modes, class)).expect("pv");
    }
    // (claim, request, modes, class, expected volume)
    let claims = [
        ("a", "2Gi", json!(["ReadWriteOnce"]), None, "medium"),
        ("b", "2Gi", json!(["ReadWriteOnce"]), Some("fast"), "fast-5"),
        ("c", "1Gi", json!(["ReadWriteMany"]), None, "large"),
        ("d", "1Gi", json!(["ReadOnlyMany"]), None, "shared"),
        ("e", "512Mi", json!(["ReadWriteOnce"]), None, "small"),
    ];
    for (n, size, modes, class, _) in &claims {
        e.create(&pvc(n, size, modes.clone(), *class)).expect("pvc");
    }
    e.advance(1_000).expect("advance");
    for (n, _, _, _, want) in &claims {
        let c = get(&mut e, "pvc", n);
        assert_eq!(doc::str_at(&c, &["status", "phase"]), "Bound", "{c:#}");
        assert_eq!(doc::str_at(&c, &["spec", "volumeName"]), *want, "claim {n}");
        let v = e.get("pv", "", want).expect("get").expect("pv");
        assert_eq!(doc::str_at(&v, &["status", "phase"]), "Bound");
        assert_eq!(doc::str_at(&v, &["spec", "claimRef", "name"]), *n);
    }
    // Nothing left that fits: the claim waits, with Kubernetes' event.
    e.create(&pvc("f", "50Gi", json!(["ReadWriteOnce"]), None))
        .expect("pvc");
    e.advance(1_000).expect("advance");
    assert_eq!(
        doc::str_at(&get(&mut e, "pvc", "f"), &["status", "phase"]),
        "Pending"
    );
    let events = e.events(Some("default")).expect("events");
    let ev = events
        .iter()
        .find(|ev| ev.object_name == "f" && ev.reason == "FailedBinding")
        .expect("FailedBinding event");
    assert_eq!(
        ev.message,
        "no persistent volumes available for this claim and no storage class is set"
    );
    assert_eq!(ev.count, 1, "reported once");
    // Deleting a bound claim releases a Retain volume.
    e.delete("pvc", "default", "a", Default::default())
        .expect("delete");
    e.advance(1_000).expect("advance");
    let v = e.get("pv", "", "medium").expect("get").expect("pv");
    assert_eq!(doc::str_at(&v, &["status", "phase"]), "Released");
}

#[test]
fn a_pod_with_an_unbound_claim_stays_pending_until_it_binds() {
    let mut e = engine(3);
    e.create(&pvc("data", "1Gi", json!(["ReadWriteOnce"]), None))
        .expect("pvc");
    e.create(&pod_with_claim("app", "data")).expect("pod");
    e.create(&pod_with_claim("lost", "nothing")).expect("pod");
    e.advance(5_000).expect("advance");
    let p = get(&mut e, "pod", "app");
    assert_eq!(doc::str_at(&p, &["status", "phase"]), "Pending");
    let cond = &p["status"]["conditions"][0];
    assert_eq!(cond["reason"], "Unschedulable");
    assert_eq!(
        cond["message"],
        "0/3 nodes are available: 3 pod has unbound immediate PersistentVolumeClaims."
    );
    let lost = get(&mut e, "pod", "lost");
    assert_eq!(
        lost["status"]["conditions"][0]["message"],
        "0/3 nodes are available: 3 persistentvolumeclaim \"nothing\" not found."
    );
    e.create(&pv("vol", "1Gi", json!(["ReadWriteOnce"]), None))
        .expect("pv");
    e.advance(10_000).expect("advance");
    let p = get(&mut e, "pod", "app");
    assert_eq!(doc::str_at(&p, &["status", "phase"]), "Running", "{p:#}");
}

#[test]
fn a_storage_class_with_a_provisioner_creates_the_volume() {
    let mut e = engine(1);
    e.create(&json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"}))
        .expect("class");
    e.create(&pvc("data", "3Gi", json!(["ReadWriteOnce"]), None))
        .expect("pvc");
    e.advance(1_000).expect("advance");
    let c = get(&mut e, "pvc", "data");
    assert_eq!(doc::str_at(&c, &["status", "phase"]), "Bound", "{c:#}");
    assert_eq!(doc::str_at(&c, &["spec", "storageClassName"]), "standard");
    let volume = doc::str_at(&c, &["spec", "volumeName"]).to_string();
    assert_eq!(volume, format!("pvc-{}", doc::uid(&c)));
    // Reclaim policy Delete: the volume goes with its claim.
    e.delete("pvc", "default", "data", Default::default())
        .expect("delete");
    e.advance(1_000).expect("advance");
    assert!(e.get("pv", "", &volume).expect("get").is_none());
}

// ---------------------------------------------------------------- Job and CronJob

fn job(name: &str, image: &str, spec: Value) -> Value {
    let mut j = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "work", "image": image}]}}}});
    if let (Some(s), Some(extra)) = (j["spec"].as_object_mut(), spec.as_object()) {
        for (k, v) in extra {
            s.insert(k.clone(), v.clone());
        }
    }
    j
}

fn condition(obj: &Value, kind: &str) -> Option<Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind && c["status"] == "True")
        .cloned()
}

#[test]
fn job_runs_completions_with_parallelism() {
    let mut e = engine(3);
    e.create(&job(
        "batch",
        "worker:1",
        json!({"completions": 5, "parallelism": 2}),
    ))
    .expect("create");
    // Each pod: pulled at +1 s, runs 2 s, Succeeded at +3 s; the next wave starts then.
    // (time ms, active, succeeded)
    let table = [
        (0, 2, 0),
        (2_999, 2, 0),
        (3_000, 2, 2),
        (6_000, 1, 4),
        (9_000, 0, 5),
    ];
    let mut at = 0;
    for (t, active, succeeded) in table {
        e.advance(t - at).expect("advance");
        at = t;
        let j = get(&mut e, "job", "batch");
        assert_eq!(
            (status_i64(&j, "active"), status_i64(&j, "succeeded")),
            (active, succeeded),
            "at {t} ms: {:#}",
            j["status"]
        );
    }
    let j = get(&mut e, "job", "batch");
    assert!(condition(&j, "Complete").is_some(), "{j:#}");
    assert!(j["status"]["completionTime"].is_string());
    let events = e.events(Some("default")).expect("events");
    assert!(
        events
            .iter()
            .any(|ev| ev.reason == "Completed" && ev.message == "Job completed")
    );
}

#[test]
fn job_fails_after_backoff_limit_with_kubernetes_backoff() {
    let mut e = engine(1);
    e.set_image(
        "flaky",
        ImageBehavior {
            crash: true,
            ..ImageBehavior::default()
        },
    )
    .expect("image");
    e.create(&job("flaky", "flaky:1", json!({"backoffLimit": 2})))
        .expect("create");
    // Pod 1 fails at 2 s; pod 2 starts 10 s later (12 s) and fails at 14 s; pod 3 starts
    // 20 s after that (34 s) and fails at 36 s: 3 failures > backoffLimit 2.
    // (time ms, pods created so far, failed, finished)
    let table = [
        (1_999, 1, 0, false),
        (2_000, 1, 1, false),
        (11_999, 1, 1, false),
        (12_000, 2, 1, false),
        (14_000, 2, 2, false),
        (33_999, 2, 2, false),
        (34_000, 3, 2, false),
        (36_000, 3, 3, true),
    ];
    let mut at = 0;
    for (t, created, failed, done) in table {
        e.advance(t - at).expect("advance");
        at = t;
        let j = get(&mut e, "job", "flaky");
        let count = pods(&mut e, "job-name=flaky").len();
        assert_eq!(
            (
                count,
                status_i64(&j, "failed"),
                condition(&j, "Failed").is_some()
            ),
            (created, failed, done),
            "at {t} ms: {:#}",
            j["status"]
        );
    }
    let j = get(&mut e, "job", "flaky");
    let c = condition(&j, "Failed").expect("failed");
    assert_eq!(c["reason"], "BackoffLimitExceeded");
    assert_eq!(c["message"], "Job has reached the specified backoff limit");
}

#[test]
fn job_active_deadline_stops_it() {
    let mut e = engine(1);
    e.set_image(
        "slow",
        ImageBehavior {
            run_ms: 600_000,
            ..ImageBehavior::default()
        },
    )
    .expect("image");
    e.create(&job(
        "slow",
        "slow:1",
        json!({"activeDeadlineSeconds": 30, "parallelism": 2, "completions": 2}),
    ))
    .expect("create");
    e.advance(29_999).expect("advance");
    assert!(condition(&get(&mut e, "job", "slow"), "Failed").is_none());
    e.advance(1).expect("advance");
    let j = get(&mut e, "job", "slow");
    let c = condition(&j, "Failed").expect("failed at the deadline");
    assert_eq!(c["reason"], "DeadlineExceeded");
    assert_eq!(
        c["message"],
        "Job was active longer than specified deadline"
    );
    let live: Vec<Value> = pods(&mut e, "job-name=slow")
        .into_iter()
        .filter(|p| !doc::is_deleting(p))
        .collect();
    assert!(live.is_empty(), "active pods are deleted");
}

fn cronjob(policy: &str, image: &str) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"},
        "spec": {"schedule": "* * * * *", "concurrencyPolicy": policy,
            "successfulJobsHistoryLimit": 2,
            "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure",
                "containers": [{"name": "tick", "image": image}]}}}}}})
}

fn jobs_of(e: &mut Engine) -> Vec<String> {
    names(e, "jobs", "")
}

#[test]
fn cronjob_runs_on_schedule_and_keeps_history() {
    let mut e = engine(1);
    e.create(&cronjob("Allow", "tick:1")).expect("create");
    let minute = 60_000;
    let base = reconcile::engine::clock::GENESIS / minute;
    e.advance(minute - 1).expect("advance");
    assert!(jobs_of(&mut e).is_empty());
    e.advance(1).expect("advance");
    assert_eq!(jobs_of(&mut e), [format!("tick-{}", base + 1)]);
    e.advance(3 * minute + 10_000).expect("advance");
    // Runs at minutes 1..4; history keeps the 2 newest successful Jobs.
    assert_eq!(
        jobs_of(&mut e),
        [format!("tick-{}", base + 3), format!("tick-{}", base + 4)]
    );
    let cj = get(&mut e, "cj", "tick");
    assert_eq!(cj["status"]["lastScheduleTime"], "2026-01-01T00:04:00Z");
    assert!(cj["status"]["lastSuccessfulTime"].is_string(), "{cj:#}");
    // Suspended: no new runs.
    let mut suspended = cronjob("Allow", "tick:1");
    suspended["spec"]["suspend"] = json!(true);
    e.apply(&suspended).expect("apply");
    e.advance(5 * minute).expect("advance");
    assert_eq!(
        get(&mut e, "cj", "tick")["status"]["lastScheduleTime"],
        "2026-01-01T00:04:00Z"
    );
}

#[test]
fn cronjob_concurrency_policies() {
    // (policy, most Jobs active at once, Jobs deleted by Replace)
    for (policy, max_active) in [("Allow", 3), ("Forbid", 1), ("Replace", 1)] {
        let mut e = engine(2);
        e.set_image(
            "long",
            ImageBehavior {
                run_ms: 150_000,
                ..ImageBehavior::default()
            },
        )
        .expect("image");
        e.create(&cronjob(policy, "long:1")).expect("create");
        let mut most = 0;
        for _ in 0..(5 * 12) {
            e.advance(5_000).expect("advance");
            let active = e
                .list("jobs", Some("default"), None)
                .expect("list")
                .iter()
                .filter(|j| !doc::is_deleting(j) && condition(j, "Complete").is_none())
                .count();
            most = most.max(active);
        }
        assert_eq!(most, max_active, "{policy}");
        let events = e.events(Some("default")).expect("events");
        match policy {
            "Forbid" => assert!(events.iter().any(|ev| ev.reason == "JobAlreadyActive")),
            "Replace" => assert!(
                events
                    .iter()
                    .any(|ev| ev.reason == "SuccessfulDelete" && ev.object_kind == "CronJob")
            ),
            _ => {}
        }
    }
}

// ---------------------------------------------------------------- HorizontalPodAutoscaler

#[test]
fn hpa_scales_with_kubernetes_formula_policies_and_stabilization() {
    let mut e = engine(3);
    // One pod carrying the whole Service load uses 1 CPU; requests are 200m, target 50 %:
    // with N ready pods each uses 1000/N m, so the formula asks for ceil(N·(500/N)/50) = 10.
    e.set_image(
        "php",
        ImageBehavior {
            cpu_millis: 1000,
            ..ImageBehavior::default()
        },
    )
    .expect("image");
    e.create(
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "php"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "php"}},
            "template": {"metadata": {"labels": {"app": "php"}}, "spec": {"containers": [
                {"name": "php", "image": "php:1", "resources": {"requests": {"cpu": "200m"}}}]}}}}),
    )
    .expect("deploy");
    e.create(
        &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "php"},
        "spec": {"selector": {"app": "php"}, "ports": [{"port": 80}]}}),
    )
    .expect("svc");
    e.advance(10_000).expect("advance");
    e.create(&json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "php"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "php"},
            "minReplicas": 1, "maxReplicas": 8,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]}}))
        .expect("hpa");
    // Evaluations every 15 s from t = 10 s. (t, replicas after): 10 s: 1 → 5 (+4 pods per
    // 15 s); 25 s: 5 → 8 (asks 10, capped by maxReplicas); load drops to 100m at 60 s;
    // the last high recommendation (55 s) leaves the 300 s window at 355 s: 8 → 1.
    let mut changes: Vec<(i64, i64)> = vec![(10, replicas_of(&mut e))];
    let mut t = 10;
    while t < 400 {
        e.advance(5_000).expect("advance");
        t += 5;
        if t == 60 {
            e.set_image(
                "php",
                ImageBehavior {
                    cpu_millis: 100,
                    ..ImageBehavior::default()
                },
            )
            .expect("image");
        }
        let r = replicas_of(&mut e);
        if changes.last().map(|c| c.1) != Some(r) {
            changes.push((t, r));
        }
    }
    assert_eq!(changes, [(10, 5), (25, 8), (355, 1)]);
    let hpa = get(&mut e, "hpa", "php");
    assert_eq!(status_i64(&hpa, "desiredReplicas"), 1, "{hpa:#}");
    let events = e.events(Some("default")).expect("events");
    let rescales: Vec<&str> = events
        .iter()
        .filter(|ev| ev.reason == "SuccessfulRescale")
        .map(|ev| ev.message.as_str())
        .collect();
    assert_eq!(
        rescales,
        [
            "New size: 5; reason: cpu resource utilization (percentage of request) above target",
            "New size: 8; reason: cpu resource utilization (percentage of request) above target",
            "New size: 1; reason: All metrics below target",
        ]
    );
}

fn replicas_of(e: &mut Engine) -> i64 {
    doc::i64_at(&get(e, "deploy", "php"), &["spec", "replicas"]).unwrap_or(0)
}

#[test]
fn hpa_without_cpu_requests_reports_kubernetes_error() {
    let mut e = engine(1);
    e.create(
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "php"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "php"}},
            "template": {"metadata": {"labels": {"app": "php"}}, "spec": {"containers": [
                {"name": "php", "image": "php:1"}]}}}}),
    )
    .expect("deploy");
    e.advance(5_000).expect("advance");
    e.create(&json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "php"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "php"}, "maxReplicas": 4}}))
        .expect("hpa");
    let hpa = get(&mut e, "hpa", "php");
    let active = hpa["status"]["conditions"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["type"] == "ScalingActive"))
        .cloned()
        .expect("condition");
    assert_eq!(active["status"], "False");
    assert!(
        active["message"].as_str().is_some_and(|m| m.starts_with(
            "failed to get cpu utilization: missing request for cpu in container php of Pod php-"
        )),
        "{active:#}"
    );
}

// ---------------------------------------------------------------- ResourceQuota and LimitRange

#[test]
fn quota_caps_pods_and_reports_usage() {
    let mut e = engine(3);
    e.create(
        &json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "small"},
        "spec": {"hard": {"pods": "2", "requests.cpu": "1", "count/configmaps": "5"}}}),
    )
    .expect("quota");
    e.create(
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "web", "image": "web:1", "resources": {"requests": {"cpu": "300m"}}}]}}}}),
    )
    .expect("deploy");
    e.advance(10_000).expect("advance");
    assert_eq!(pods(&mut e, "app=web").len(), 2);
    let q = get(&mut e, "quota", "small");
    assert_eq!(
        q["status"]["used"],
        json!({"pods": "2", "requests.cpu": "600m", "count/configmaps": "0"})
    );
    assert_eq!(q["status"]["hard"]["pods"], "2");
    let events = e.events(Some("default")).expect("events");
    let refused = events
        .iter()
        .find(|ev| ev.reason == "FailedCreate")
        .expect("FailedCreate");
    assert!(
        refused.message.contains(
            "is forbidden: exceeded quota: small, requested: pods=1, used: pods=2, limited: pods=2"
        ),
        "{}",
        refused.message
    );
}

#[test]
fn limit_range_defaults_and_bounds_apply_at_admission() {
    let mut e = engine(1);
    e.create(&json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "bounds"},
        "spec": {"limits": [{"type": "Container",
            "default": {"cpu": "500m", "memory": "256Mi"}, "defaultRequest": {"cpu": "200m", "memory": "128Mi"},
            "min": {"cpu": "100m"}, "max": {"cpu": "1", "memory": "1Gi"}}]}}))
        .expect("limits");
    let created = e
        .create(
            &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ok"},
            "spec": {"containers": [{"name": "c", "image": "app:1"}]}}),
        )
        .expect("defaults make it valid");
    assert_eq!(
        created["spec"]["containers"][0]["resources"],
        json!({
        "limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "200m", "memory": "128Mi"}})
    );
    // (requests cpu, limits cpu, error)
    let table = [
        (
            "50m",
            "500m",
            "pods \"small\" is forbidden: minimum cpu usage per Container is 100m, but request is 50m",
        ),
        (
            "500m",
            "2",
            "pods \"small\" is forbidden: maximum cpu usage per Container is 1, but limit is 2",
        ),
    ];
    for (req, lim, want) in table {
        let err = e
            .create(
                &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "small"},
                "spec": {"containers": [{"name": "c", "image": "app:1",
                    "resources": {"requests": {"cpu": req}, "limits": {"cpu": lim}}}]}}),
            )
            .expect_err("refused");
        assert_eq!(err.to_string(), want);
        assert!(
            e.get("pod", "default", "small").expect("get").is_none(),
            "nothing stored"
        );
    }
}

// ---------------------------------------------------------------- determinism and node failure

/// Every event as one comparable line.
fn event_lines(e: &mut Engine) -> Vec<String> {
    e.events(None)
        .expect("events")
        .iter()
        .map(|ev| {
            format!(
                "{} {} {} {}",
                ev.last, ev.reason, ev.object_name, ev.message
            )
        })
        .collect()
}

fn mixed_run() -> (Vec<String>, Vec<String>) {
    let mut e = engine(3);
    e.create(&daemonset("agent:1", json!({}))).expect("ds");
    e.create(&statefulset(2, "OrderedReady", false))
        .expect("sts");
    e.create(&job(
        "batch",
        "worker:1",
        json!({"completions": 3, "parallelism": 2}),
    ))
    .expect("job");
    e.create(&cronjob("Allow", "tick:1")).expect("cj");
    e.advance(5 * 60_000).expect("advance");
    let pods = names(&mut e, "pods", "");
    let events = event_lines(&mut e);
    (pods, events)
}

#[test]
fn the_same_scenario_gives_the_same_cluster() {
    assert_eq!(mixed_run(), mixed_run());
}

/// A cluster big enough that the kubelet pass and the save run on several threads.
fn big_rollout_run() -> (Vec<Value>, Vec<String>) {
    let mut e = Engine::in_memory(0).expect("engine");
    for i in 1..=8 {
        let spec = NodeSpec {
            cpu_millis: 64_000,
            memory: 256 << 30,
            pods: 250,
            labels: vec![],
        };
        e.add_node(&format!("worker-{i}"), &spec).expect("node");
    }
    let web = |image: &str| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 1500, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": image}]}}}})
    };
    e.create(&web("web:1")).expect("create");
    e.advance(10_000).expect("advance");
    e.apply(&web("web:2")).expect("update");
    e.advance(20_000).expect("advance");
    let pods = e.list("pods", Some("default"), None).expect("list");
    let events = event_lines(&mut e);
    (pods, events)
}

#[test]
fn a_big_cluster_is_as_deterministic_as_a_small_one() {
    let (pods, events) = big_rollout_run();
    assert!(pods.len() >= 1500, "{} pods", pods.len());
    assert_eq!((pods, events), big_rollout_run());
}

#[test]
fn daemon_pods_stay_on_a_failed_node_and_nothing_replaces_them() {
    let mut e = engine(3);
    e.create(&daemonset("agent:1", json!({}))).expect("ds");
    e.advance(10_000).expect("advance");
    e.fail_node("worker-2").expect("fail");
    // Past the grace period and the 300 s default toleration of ordinary pods.
    e.advance(10 * 60_000).expect("advance");
    assert_eq!(
        nodes_of(&mut e, "app=agent"),
        ["worker-1", "worker-2", "worker-3"]
    );
    let ds = get(&mut e, "ds", "agent");
    // The NotReady node no longer counts as a place to run (Kubernetes' not-ready taint).
    assert_eq!(
        status_i64(&ds, "desiredNumberScheduled"),
        2,
        "{:#}",
        ds["status"]
    );
    e.recover_node("worker-2").expect("recover");
    e.advance(60_000).expect("advance");
    assert_eq!(
        status_i64(&get(&mut e, "ds", "agent"), "desiredNumberScheduled"),
        3
    );
    assert_eq!(
        nodes_of(&mut e, "app=agent"),
        ["worker-1", "worker-2", "worker-3"]
    );
}

#[test]
fn statefulset_ordinal_start_and_claim_retention() {
    let mut e = engine(3);
    let mut s = statefulset(3, "Parallel", true);
    s["spec"]["ordinals"] = json!({"start": 1});
    s["spec"]["persistentVolumeClaimRetentionPolicy"] =
        json!({"whenDeleted": "Delete", "whenScaled": "Delete"});
    e.create(&json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "rancher.io/local-path"}))
        .expect("class");
    e.create(&s).expect("create");
    e.advance(10_000).expect("advance");
    assert_eq!(
        names(&mut e, "pods", "app=web"),
        ["web-1", "web-2", "web-3"]
    );
    assert_eq!(
        names(&mut e, "pvc", ""),
        ["data-web-1", "data-web-2", "data-web-3"]
    );
    s["spec"]["replicas"] = json!(1);
    e.apply(&s).expect("scale down");
    e.advance(60_000).expect("advance");
    assert_eq!(names(&mut e, "pods", "app=web"), ["web-1"]);
    assert_eq!(
        names(&mut e, "pvc", ""),
        ["data-web-1"],
        "whenScaled: Delete"
    );
    e.delete("sts", "default", "web", Default::default())
        .expect("delete");
    e.advance(60_000).expect("advance");
    assert!(names(&mut e, "pvc", "").is_empty(), "whenDeleted: Delete");
}

#[test]
fn indexed_job_runs_each_index_once() {
    let mut e = engine(2);
    e.create(&job(
        "idx",
        "worker:1",
        json!({"completions": 3, "parallelism": 2, "completionMode": "Indexed"}),
    ))
    .expect("create");
    // (time ms, completedIndexes, active)
    let table = [(0, "", 2), (3_000, "0-1", 1), (6_000, "0-2", 0)];
    let mut at = 0;
    for (t, indexes, active) in table {
        e.advance(t - at).expect("advance");
        at = t;
        let j = get(&mut e, "job", "idx");
        assert_eq!(
            (
                doc::str_at(&j, &["status", "completedIndexes"]),
                status_i64(&j, "active")
            ),
            (indexes, active),
            "at {t} ms: {:#}",
            j["status"]
        );
    }
    let j = get(&mut e, "job", "idx");
    assert!(condition(&j, "Complete").is_some());
    let mut hosts: Vec<String> = pods(&mut e, "job-name=idx")
        .iter()
        .map(|p| doc::str_at(p, &["spec", "hostname"]).to_string())
        .collect();
    hosts.sort();
    assert_eq!(hosts, ["idx-0", "idx-1", "idx-2"]);
}

#[test]
fn daemonset_surge_rollout_keeps_every_node_served() {
    let mut e = engine(4);
    let mut ds = daemonset("agent:1", json!({}));
    ds["spec"]["updateStrategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}});
    e.create(&ds).expect("create");
    e.advance(10_000).expect("advance");
    ds["spec"]["template"]["spec"]["containers"][0]["image"] = json!("agent:2");
    e.apply(&ds).expect("apply");
    let mut finished = false;
    let mut most_pods = 0;
    for _ in 0..200 {
        e.advance(500).expect("advance");
        let all: Vec<Value> = pods(&mut e, "app=agent")
            .into_iter()
            .filter(|p| !doc::is_deleting(p))
            .collect();
        most_pods = most_pods.max(all.len());
        let served: std::collections::BTreeSet<String> = all
            .iter()
            .filter(|p| {
                p["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
            .map(|p| doc::str_at(p, &["spec", "nodeName"]).to_string())
            .collect();
        assert_eq!(served.len(), 4, "a node lost its ready daemon pod");
        let d = get(&mut e, "ds", "agent");
        if status_i64(&d, "updatedNumberScheduled") == 4
            && all.len() == 4
            && all
                .iter()
                .all(|p| p["spec"]["containers"][0]["image"] == "agent:2")
        {
            finished = true;
            break;
        }
    }
    assert!(finished, "surge rollout did not finish");
    assert_eq!(most_pods, 5, "never more than one surge pod");
}

#[test]
fn cronjob_starting_deadline_skips_runs_that_are_too_late() {
    // (startingDeadlineSeconds, Jobs right after resuming 45 s past a scheduled minute)
    for (deadline, want_now) in [(None, 1), (Some(30), 0), (Some(60), 1)] {
        let mut e = engine(1);
        let mut cj = cronjob("Allow", "tick:1");
        cj["spec"]["suspend"] = json!(true);
        if let Some(d) = deadline {
            cj["spec"]["startingDeadlineSeconds"] = json!(d);
        }
        e.create(&cj).expect("create");
        e.advance(10 * 60_000 + 45_000).expect("advance");
        cj["spec"]["suspend"] = json!(false);
        e.apply(&cj).expect("resume");
        assert_eq!(jobs_of(&mut e).len(), want_now, "deadline {deadline:?}");
        // The next minute runs in every case.
        e.advance(15_000).expect("advance");
        assert_eq!(jobs_of(&mut e).len(), want_now + 1, "deadline {deadline:?}");
    }
}

#[test]
fn hpa_scales_a_custom_resource_through_its_scale_subresource() {
    let mut e = engine(3);
    // Pods of a Deployment stand for the custom resource's pods: the HPA finds them through
    // the selector the resource reports at its labelSelectorPath.
    e.set_image(
        "php",
        ImageBehavior {
            cpu_millis: 1000,
            ..ImageBehavior::default()
        },
    )
    .expect("image");
    e.create(
        &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "php"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "php"}},
            "template": {"metadata": {"labels": {"app": "php"}}, "spec": {"containers": [
                {"name": "php", "image": "php:1", "resources": {"requests": {"cpu": "200m"}}}]}}}}),
    )
    .expect("deploy");
    e.create(&json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "workers.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "workers", "singular": "worker", "kind": "Worker"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                    "statusReplicasPath": ".status.replicas", "labelSelectorPath": ".status.selector"}},
                "schema": {"openAPIV3Schema": {"type": "object",
                    "x-kubernetes-preserve-unknown-fields": true}}}]}}))
    .expect("crd");
    e.create(&json!({"apiVersion": "example.com/v1", "kind": "Worker",
        "metadata": {"name": "php"}, "spec": {"replicas": 2}}))
        .expect("worker");
    e.replace_status(
        "workers",
        "default",
        "php",
        &json!({"status": {"replicas": 2, "selector": "app=php"}}),
    )
    .expect("status");
    e.advance(10_000).expect("advance");
    e.create(&json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "php"},
        "spec": {"scaleTargetRef": {"apiVersion": "example.com/v1", "kind": "Worker", "name": "php"},
            "minReplicas": 1, "maxReplicas": 6,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]}}))
        .expect("hpa");
    e.advance(1_000).expect("advance");
    // 2 pods at 1000m of 200m requested: 500 % against 50 % asks for 20, capped at 6.
    let worker = get(&mut e, "workers", "php");
    assert_eq!(
        doc::i64_at(&worker, &["spec", "replicas"]),
        Some(6),
        "{worker:#}"
    );
    let hpa = get(&mut e, "hpa", "php");
    assert_eq!(status_i64(&hpa, "currentReplicas"), 2, "{hpa:#}");
    assert_eq!(status_i64(&hpa, "desiredReplicas"), 6, "{hpa:#}");
}

/// A failed update rolls back even when the Deployment is written again with a plain apply
/// (`engine apply -f`): the update record the engine keeps in an annotation survives a write
/// that does not mention it, so the earlier healthy revision is still known.
#[test]
fn a_failed_update_rolls_back_after_a_plain_apply_of_the_broken_image() {
    let mut e = engine(3);
    e.set_image(
        "nginx:broken",
        ImageBehavior {
            crash: true,
            ..Default::default()
        },
    )
    .expect("image");
    let with_policy = |image: &str| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "annotations": {
                "reconcile.dev/failure-action": "rollback", "reconcile.dev/monitor": "20s"}},
            "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": image}]}}}})
    };
    e.create(&with_policy("nginx:1.25")).expect("create");
    e.advance(60_000).expect("healthy and monitored");
    e.apply(&with_policy("nginx:broken")).expect("update");
    e.advance(120_000).expect("fail and roll back");
    let web = get(&mut e, "Deployment", "web");
    assert_eq!(
        web.pointer("/spec/template/spec/containers/0/image"),
        Some(&json!("nginx:1.25")),
        "{web}"
    );
    let record = doc::annotation(&web, "reconcile.dev/update-status").unwrap_or_default();
    assert!(
        record.contains(r#""action":"rolled back to revision 1""#),
        "{record}"
    );
}
