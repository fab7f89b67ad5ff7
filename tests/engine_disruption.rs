//! Disruption and priority on the engine: PodDisruptionBudget status, drains that honour
//! budgets (and time out), PriorityClass admission and scheduler preemption.

mod engine_common;

use engine_common::*;
use reconcile::engine::{DrainStep, Engine, NodeSpec, doc};
use serde_json::{Value, json};

fn pdb(name: &str, app: &str, field: &str, value: Value) -> Value {
    json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": name},
        "spec": {field: value, "selector": {"matchLabels": {"app": app}}}})
}

fn status(e: &mut Engine, name: &str) -> Value {
    e.get("PodDisruptionBudget", "default", name)
        .expect("get")
        .and_then(|p| p.get("status").cloned())
        .unwrap_or(Value::Null)
}

fn with_cpu(mut d: Value, cpu: &str) -> Value {
    d["spec"]["template"]["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": cpu}});
    d
}

fn priority_class(name: &str, value: i64, global_default: bool) -> Value {
    json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
        "metadata": {"name": name}, "value": value, "globalDefault": global_default})
}

#[test]
fn budget_status_follows_the_pods() {
    let mut e = engine(3);
    e.create(&deployment("web", "web:1", 4)).expect("create");
    e.create(&pdb("min", "web", "minAvailable", json!(3)))
        .expect("pdb");
    e.create(&pdb("max", "web", "maxUnavailable", json!("50%")))
        .expect("pdb");
    e.advance(10_000).expect("advance");
    let min = status(&mut e, "min");
    assert_eq!(min["currentHealthy"], 4, "{min}");
    assert_eq!(min["desiredHealthy"], 3, "{min}");
    assert_eq!(min["expectedPods"], 4, "{min}");
    assert_eq!(min["disruptionsAllowed"], 1, "{min}");
    assert_eq!(min["conditions"][0]["reason"], "SufficientPods", "{min}");
    // 50 % of 4 unavailable → 2 healthy wanted, 2 disruptions allowed.
    let max = status(&mut e, "max");
    assert_eq!(max["desiredHealthy"], 2, "{max}");
    assert_eq!(max["disruptionsAllowed"], 2, "{max}");

    // A budget wanting every pod allows no disruption.
    e.create(&pdb("all", "web", "minAvailable", json!("100%")))
        .expect("pdb");
    e.advance(1_000).expect("advance");
    let min = status(&mut e, "all");
    assert_eq!(min["desiredHealthy"], 4, "{min}");
    assert_eq!(min["disruptionsAllowed"], 0, "{min}");
    assert_eq!(min["conditions"][0]["reason"], "InsufficientPods", "{min}");
}

#[test]
fn both_min_available_and_max_unavailable_are_refused() {
    let mut e = engine(1);
    let mut both = pdb("both", "web", "minAvailable", json!(1));
    both["spec"]["maxUnavailable"] = json!(1);
    let err = e.create(&both).expect_err("refused");
    assert!(
        err.to_string()
            .contains("minAvailable and maxUnavailable cannot be both set"),
        "{err}"
    );
    assert!(
        e.get("PodDisruptionBudget", "default", "both")
            .expect("get")
            .is_none()
    );
}

#[test]
fn a_drain_waits_for_replacements_when_a_budget_allows_one_disruption() {
    let mut e = engine(2);
    e.cordon("worker-2", true).expect("cordon");
    e.create(&deployment("web", "web:1", 3)).expect("create");
    e.create(&pdb("web", "web", "minAvailable", json!(2)))
        .expect("pdb");
    e.advance(10_000).expect("advance");
    e.cordon("worker-2", false).expect("uncordon");
    let before = e.now_millis();
    let drained = e.drain("worker-1", false, 300_000).expect("drain");
    assert!(drained.remaining.is_empty(), "{drained:?}");
    let blocked = drained
        .steps
        .iter()
        .filter(|s| matches!(s, DrainStep::Blocked { budget, .. } if budget == "web"))
        .count();
    assert!(blocked >= 2, "two evictions had to wait: {drained:?}");
    assert!(drained.waited >= 5_000, "{drained:?}");
    assert!(e.now_millis() > before);
    e.advance(60_000).expect("advance");
    let running = ready(&mut e, "web");
    assert_eq!(running.len(), 3);
    assert!(
        running
            .iter()
            .all(|p| doc::str_at(p, &["spec", "nodeName"]) == "worker-2")
    );
}

#[test]
fn a_drain_a_budget_never_allows_times_out_and_keeps_the_node_cordoned() {
    let mut e = engine(1);
    e.create(&deployment("web", "web:1", 2)).expect("create");
    e.create(&pdb("web", "web", "minAvailable", json!(2)))
        .expect("pdb");
    e.advance(10_000).expect("advance");
    let drained = e.drain("worker-1", false, 30_000).expect("drain");
    assert_eq!(drained.remaining.len(), 2, "{drained:?}");
    assert!(drained.waited >= 30_000);
    let node = e.get("Node", "", "worker-1").expect("get").expect("node");
    assert_eq!(node["spec"]["unschedulable"], true);
    assert_eq!(ready(&mut e, "web").len(), 2, "no pod was evicted");
    // A node that does not exist is refused, changing nothing.
    let err = e.drain("nope", false, 1_000).expect_err("refused");
    assert_eq!(err.to_string(), "nodes \"nope\" not found");
}

#[test]
fn priority_class_names_resolve_at_admission() {
    let mut e = engine(1);
    e.create(&priority_class("high", 1000, false)).expect("pc");
    e.create(&priority_class("default-low", 5, true))
        .expect("pc");
    // Only one global default.
    let err = e
        .create(&priority_class("other", 7, true))
        .expect_err("refused");
    assert!(
        err.to_string()
            .contains("PriorityClass default-low is already marked as default"),
        "{err}"
    );
    let pod = |name: &str, spec: Value| {
        let mut spec = spec;
        spec["containers"] = json!([{"name": "a", "image": "a:1"}]);
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})
    };
    let high = e
        .create(&pod("h", json!({"priorityClassName": "high"})))
        .expect("pod");
    assert_eq!(high["spec"]["priority"], 1000);
    assert_eq!(high["spec"]["preemptionPolicy"], "PreemptLowerPriority");
    let plain = e.create(&pod("p", json!({}))).expect("pod");
    assert_eq!(plain["spec"]["priority"], 5);
    assert_eq!(plain["spec"]["priorityClassName"], "default-low");
    let system = e
        .create(&pod(
            "s",
            json!({"priorityClassName": "system-cluster-critical"}),
        ))
        .expect("pod");
    assert_eq!(system["spec"]["priority"], 2_000_000_000);
    let err = e
        .create(&pod("x", json!({"priorityClassName": "nope"})))
        .expect_err("refused");
    assert_eq!(
        err.to_string(),
        "pods \"x\" is forbidden: no PriorityClass with name nope was found"
    );
    let err = e
        .create(&pod(
            "y",
            json!({"priorityClassName": "high", "priority": 3}),
        ))
        .expect_err("refused");
    assert!(
        err.to_string()
            .contains("the integer value of priority (3) must not be provided")
    );
    assert!(e.get("Pod", "default", "x").expect("get").is_none());
}

#[test]
fn a_higher_priority_pod_preempts_lower_ones_when_it_does_not_fit() {
    let mut e = engine(0);
    e.add_node(
        "small",
        &NodeSpec {
            cpu_millis: 4000,
            memory: 8 << 30,
            pods: 110,
            labels: Vec::new(),
        },
    )
    .expect("node");
    e.create(&priority_class("high", 1000, false)).expect("pc");
    e.create(&with_cpu(deployment("batch", "batch:1", 2), "1500m"))
        .expect("batch");
    e.advance(10_000).expect("advance");
    assert_eq!(ready(&mut e, "batch").len(), 2);
    let mut api = with_cpu(deployment("api", "api:1", 1), "2");
    api["spec"]["template"]["spec"]["priorityClassName"] = json!("high");
    e.create(&api).expect("api");
    e.advance(60_000).expect("advance");
    assert_eq!(ready(&mut e, "api").len(), 1, "the api pod runs");
    assert_eq!(
        ready(&mut e, "batch").len(),
        1,
        "one batch pod was preempted"
    );
    let events = e.events(Some("default")).expect("events");
    assert!(
        events
            .iter()
            .any(|ev| ev.reason == "Preempted" && ev.message.contains("on node small")),
        "{events:?}"
    );
    // The replacement of the preempted pod waits; it cannot preempt the api pod back.
    let pending: Vec<Value> = active(&mut e, "batch")
        .into_iter()
        .filter(|p| doc::str_at(p, &["status", "phase"]) == "Pending")
        .collect();
    assert_eq!(pending.len(), 1);
    // A pod of a class with preemptionPolicy Never waits instead.
    let mut class = priority_class("polite", 2000, false);
    class["preemptionPolicy"] = json!("Never");
    e.create(&class).expect("pc");
    let mut polite = with_cpu(deployment("polite", "p:1", 1), "3");
    polite["spec"]["template"]["spec"]["priorityClassName"] = json!("polite");
    e.create(&polite).expect("polite");
    e.advance(30_000).expect("advance");
    assert_eq!(ready(&mut e, "polite").len(), 0);
    assert_eq!(ready(&mut e, "batch").len(), 1);
}
