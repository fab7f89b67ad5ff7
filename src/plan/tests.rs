//! Plan/apply/prune and rollouts end to end on the in-memory cluster.

use serde_json::{Value, json};

use super::memory::MemoryCluster;
use super::*;
use crate::rollout::Phase;

fn app(name: &str) -> Application {
    Application {
        name: name.into(),
        path: ".".into(),
        ..Application::default()
    }
}

fn config_map(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "demo"},
           "data": {"value": value}})
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn service(name: &str, app: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "demo"},
           "spec": {"selector": {"app": app}, "ports": [{"port": 80, "targetPort": 8080}]}})
}

fn deployment(name: &str, image: &str, strategy: Value) -> Value {
    let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "demo", "labels": {"app": name}},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": name, "image": image, "ports": [{"containerPort": 8080}]}]}}}});
    if !strategy.is_null() {
        d["spec"]["strategy"] = strategy;
    }
    d
}

fn plan(cluster: &MemoryCluster, objects: &[Value], prune: bool) -> Result<Planned, Error> {
    make_plan(
        &app("demo"),
        "overlays/dev",
        objects,
        cluster,
        &PlanOptions {
            prune,
            allow_empty: false,
            create_namespace: false,
            adopt: false,
        },
    )
}

fn run(
    cluster: &mut MemoryCluster,
    objects: &[Value],
    prune: bool,
    wait: bool,
) -> (Planned, ApplyReport) {
    let planned = plan(cluster, objects, prune)
        .map_err(|e| e.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    let options = ApplyOptions {
        wait,
        timeout: Some(Duration::from_secs(1200)),
    };
    let report = apply(&planned, cluster, &options, &mut |_| {})
        .map_err(|e| e.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    (planned, report)
}

fn summary(planned: &Planned) -> (usize, usize, usize, usize) {
    let s = planned.plan.summary;
    (s.create, s.update, s.delete, s.unchanged)
}

fn live(cluster: &MemoryCluster, kind: &str, name: &str) -> Option<Value> {
    let api = if kind == "Deployment" {
        "apps/v1"
    } else {
        "v1"
    };
    let ns = if kind == "Namespace" { "" } else { "demo" };
    let id = ResId {
        gvk: Gvk::from_api_version(api, kind),
        name: name.into(),
        namespace: ns.into(),
    };
    cluster.get(&id).ok().flatten()
}

fn image(object: &Value) -> String {
    object
        .pointer("/spec/template/spec/containers/0/image")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[test]
fn apply_then_plan_again_shows_no_drift() {
    let mut cluster = MemoryCluster::new();
    let objects = vec![
        deployment("web", "web:1.0", Value::Null),
        service("web", "web"),
        config_map("settings", "a"),
        namespace("demo"),
    ];
    let (planned, report) = run(&mut cluster, &objects, false, true);
    assert_eq!(summary(&planned), (4, 0, 0, 0));
    assert!(report.succeeded(), "{report:?}");
    let kinds: Vec<&str> = planned
        .plan
        .actions
        .iter()
        .map(|a| a.kind.as_str())
        .collect();
    assert_eq!(kinds, ["Namespace", "ConfigMap", "Service", "Deployment"]);
    let again = plan(&cluster, &objects, false).map_err(|e| e.to_string());
    let again = again.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary(&again), (0, 0, 0, 4), "{:#?}", again.plan.actions);
    let web = live(&cluster, "Deployment", "web").unwrap_or_default();
    assert_eq!(
        web.pointer("/metadata/labels/app.kubernetes.io~1managed-by"),
        Some(&json!("reconcile"))
    );
    assert_eq!(
        web.pointer("/metadata/annotations/reconcile.dev~1owner"),
        Some(&json!("demo"))
    );
    assert!(
        cluster
            .get(&inventory::inventory_id("demo"))
            .ok()
            .flatten()
            .is_some()
    );
}

#[test]
fn an_image_change_is_one_update_with_a_readable_diff() {
    let mut cluster = MemoryCluster::new();
    run(
        &mut cluster,
        &[deployment("web", "web:1.0", Value::Null)],
        false,
        true,
    );
    let planned = plan(
        &cluster,
        &[deployment("web", "web:2.0", Value::Null)],
        false,
    )
    .map_err(|e| e.to_string());
    let planned = planned.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary(&planned), (0, 1, 0, 0));
    let diff = &planned.plan.actions[0].diff;
    assert!(
        diff.contains("-      - image: web:1.0\n+      - image: web:2.0"),
        "{diff}"
    );
    let (_, report) = run(
        &mut cluster,
        &[deployment("web", "web:2.0", Value::Null)],
        false,
        true,
    );
    assert!(report.succeeded());
    let web = live(&cluster, "Deployment", "web").unwrap_or_default();
    assert_eq!(image(&web), "web:2.0");
    let revisions = driver::history(&web);
    assert_eq!(
        revisions
            .iter()
            .map(|r| r.images[0].as_str())
            .collect::<Vec<_>>(),
        ["web:1.0", "web:2.0"]
    );
}

#[test]
fn prune_deletes_only_what_this_app_applied_and_stopped_rendering() {
    let mut cluster = MemoryCluster::new();
    let mut protected = config_map("protected", "p");
    protected["metadata"]["annotations"] = json!({"reconcile.dev/prune": "disabled"});
    let all = vec![config_map("a", "1"), config_map("b", "2"), protected];
    run(&mut cluster, &all, false, false);
    // A foreign object in the same namespace.
    cluster.apply(&config_map("foreign", "x")).ok();

    let fewer = vec![config_map("a", "1")];
    let without_prune = plan(&cluster, &fewer, false)
        .map_err(|e| e.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary(&without_prune).2, 0);
    assert_eq!(without_prune.plan.not_pruned.len(), 2);

    let (planned, report) = run(&mut cluster, &fewer, true, false);
    assert_eq!(summary(&planned), (0, 0, 1, 1));
    assert!(report.succeeded());
    assert!(live(&cluster, "ConfigMap", "b").is_none());
    assert!(live(&cluster, "ConfigMap", "protected").is_some());
    assert!(live(&cluster, "ConfigMap", "foreign").is_some());
    let kept = &planned.plan.not_pruned[0];
    assert_eq!(
        (kept.name.as_str(), kept.reason.as_str()),
        ("protected", "annotated reconcile.dev/prune: disabled")
    );
}

#[test]
fn a_namespace_holding_foreign_objects_is_not_pruned() {
    let mut cluster = MemoryCluster::new();
    run(
        &mut cluster,
        &[namespace("demo"), config_map("a", "1")],
        false,
        false,
    );
    cluster.apply(&config_map("foreign", "x")).ok();
    let (planned, _) = run(&mut cluster, &[config_map("other", "1")], true, false);
    // The ConfigMap goes; the Namespace stays because of the foreign object.
    assert_eq!(summary(&planned).2, 1);
    let reason = &planned.plan.not_pruned[0].reason;
    assert!(
        reason.contains("namespace still holds objects not pruned with it: ConfigMap foreign"),
        "{reason}"
    );
    assert!(live(&cluster, "Namespace", "demo").is_some());
}

#[test]
fn an_empty_render_refuses_to_prune_unless_allowed() {
    let mut cluster = MemoryCluster::new();
    run(&mut cluster, &[config_map("a", "1")], false, false);
    let err = plan(&cluster, &[], true)
        .map(|_| ())
        .map_err(|e| e.to_string())
        .unwrap_err();
    assert!(err.contains("pass --allow-empty"), "{err}");
    let allowed = make_plan(
        &app("demo"),
        ".",
        &[],
        &cluster,
        &PlanOptions {
            prune: true,
            allow_empty: true,
            create_namespace: false,
            adopt: false,
        },
    );
    assert_eq!(
        allowed
            .map(|p| p.plan.summary.delete)
            .map_err(|e| e.to_string()),
        Ok(1)
    );
}

#[test]
fn objects_of_another_application_are_refused() {
    let mut cluster = MemoryCluster::new();
    run(&mut cluster, &[config_map("shared", "1")], false, false);
    let err = make_plan(
        &app("other"),
        ".",
        &[config_map("shared", "2")],
        &cluster,
        &PlanOptions::default(),
    );
    let err = err.map(|_| ()).map_err(|e| e.to_string()).unwrap_err();
    assert!(err.contains("owned by application \"demo\""), "{err}");
}

#[test]
fn a_saved_plan_goes_stale_when_live_changes() {
    let mut cluster = MemoryCluster::new();
    run(&mut cluster, &[config_map("a", "1")], false, false);
    let saved = plan(&cluster, &[config_map("a", "2")], false)
        .map_err(|e| e.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    let json = serde_json::to_string(&PlanSet::new(vec![saved.plan.clone()])).unwrap_or_default();
    let reread: PlanSet = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
    let fresh = plan(&cluster, &[config_map("a", "2")], false)
        .map_err(|e| e.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(check_fresh(&reread.plans[0], &fresh.plan).is_ok());
    // Someone edits the object in between.
    let mut edited = live(&cluster, "ConfigMap", "a").unwrap_or_default();
    edited["data"]["value"] = json!("hand-edited");
    cluster.apply(&edited).ok();
    let fresh = plan(&cluster, &[config_map("a", "2")], false)
        .map_err(|e| e.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    let err = check_fresh(&reread.plans[0], &fresh.plan)
        .map_err(|e| e.to_string())
        .unwrap_err();
    assert!(
        err.starts_with("plan is stale: ConfigMap demo/a changed since the plan was made"),
        "{err}"
    );
    let other_source = plan(&cluster, &[config_map("a", "3")], false)
        .map_err(|e| e.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    let err = check_fresh(&reread.plans[0], &other_source.plan)
        .map_err(|e| e.to_string())
        .unwrap_err();
    assert!(err.contains("source of application demo changed"), "{err}");
}

#[test]
fn a_failure_mid_apply_reports_applied_and_not_applied() {
    let mut cluster = MemoryCluster::new();
    cluster.refuse.push("b".into());
    let (_, report) = run(
        &mut cluster,
        &[
            config_map("a", "1"),
            config_map("b", "2"),
            config_map("c", "3"),
        ],
        false,
        false,
    );
    assert!(!report.succeeded());
    assert_eq!(
        report
            .done
            .iter()
            .map(|(d, _)| d.as_str())
            .collect::<Vec<_>>(),
        ["ConfigMap demo/a"]
    );
    assert_eq!(report.not_applied, ["ConfigMap demo/b", "ConfigMap demo/c"]);
    assert!(
        report
            .failure
            .as_deref()
            .is_some_and(|f| f.contains("refused by the test"))
    );
    // The inventory still records what was applied, so a later prune sees it.
    let inventory = inventory::read(&cluster, "demo")
        .map_err(|e| e.to_string())
        .unwrap_or_default();
    assert_eq!(inventory.members.len(), 1);
}

#[test]
fn the_lock_keeps_two_applies_apart() {
    let mut cluster = MemoryCluster::new();
    cluster.lock("reconcile apply (pid 1)").ok();
    let err = locked(&mut cluster, "reconcile apply (pid 2)", |_| Ok(()))
        .map_err(|e| e.to_string())
        .unwrap_err();
    assert!(
        err.contains("locked by another reconcile process (reconcile apply (pid 1))"),
        "{err}"
    );
    cluster.unlock().ok();
    assert!(locked(&mut cluster, "x", |_| Ok(())).is_ok());
    assert!(cluster.lock("y").is_ok(), "the lock was released");
}

#[test]
fn secrets_never_reach_the_plan() {
    let mut cluster = MemoryCluster::new();
    let secret = |v: &str| {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "demo"},
        "stringData": {"password": v}})
    };
    run(&mut cluster, &[secret("first-plaintext")], false, false);
    let planned = plan(&cluster, &[secret("second-plaintext")], false)
        .map_err(|e| e.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary(&planned), (0, 1, 0, 0));
    let json = serde_json::to_string(&PlanSet::new(vec![planned.plan])).unwrap_or_default();
    for leak in [
        "first-plaintext",
        "second-plaintext",
        "Zmlyc3Qt",
        "c2Vjb25kLX",
    ] {
        assert!(!json.contains(leak), "{leak} leaked: {json}");
    }
    assert!(json.contains("password: ++++++++"), "{json}");
}

#[test]
fn ignore_differences_are_kept_live_on_apply() {
    let mut cluster = MemoryCluster::new();
    let mut application = app("demo");
    application.ignore_differences = vec![diff::IgnoreRule {
        kind: Some("Deployment".into()),
        json_pointers: vec!["/spec/replicas".into()],
        ..diff::IgnoreRule::default()
    }];
    let objects = [deployment("web", "web:1.0", Value::Null)];
    let first = make_plan(
        &application,
        ".",
        &objects,
        &cluster,
        &PlanOptions::default(),
    )
    .map_err(|e| e.to_string());
    apply(
        &first.unwrap_or_else(|e| panic!("{e}")),
        &mut cluster,
        &ApplyOptions::default(),
        &mut |_| {},
    )
    .ok();
    // An autoscaler changes replicas.
    let mut web = live(&cluster, "Deployment", "web").unwrap_or_default();
    web["spec"]["replicas"] = json!(9);
    cluster.apply(&web).ok();
    let second = make_plan(
        &application,
        ".",
        &[deployment("web", "web:2.0", Value::Null)],
        &cluster,
        &PlanOptions::default(),
    );
    let second = second
        .map_err(|e| e.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !second.plan.actions[0].diff.contains("replicas"),
        "{}",
        second.plan.actions[0].diff
    );
    apply(&second, &mut cluster, &ApplyOptions::default(), &mut |_| {}).ok();
    let web = live(&cluster, "Deployment", "web").unwrap_or_default();
    assert_eq!(
        (web["spec"]["replicas"].as_i64(), image(&web).as_str()),
        (Some(9), "web:2.0")
    );
}

fn canary_strategy() -> Value {
    json!({"type": "Canary", "canary": {"steps": [
        {"setWeight": 25},
        {"pause": {"duration": "30s"}},
        {"analysis": {"metric": "success-rate", "threshold": 0.99, "interval": "10s", "count": 3, "failureLimit": 1}},
        {"setWeight": 50},
        {"pause": {"duration": "10s"}}
    ]}})
}

#[test]
fn a_canary_with_a_healthy_version_is_promoted() {
    let mut cluster = MemoryCluster::new();
    let objects = |image: &str| {
        vec![
            deployment("web", image, canary_strategy()),
            service("web", "web"),
        ]
    };
    let (_, report) = run(&mut cluster, &objects("web:1.0"), false, true);
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(
        plan(&cluster, &objects("web:1.0"), false)
            .map(|p| p.plan.summary.has_changes())
            .ok(),
        Some(false)
    );
    cluster.set_metric("success-rate", "app=web,reconcile.dev/track=canary", 0.999);

    let planned = plan(&cluster, &objects("web:2.0"), false)
        .map_err(|e| e.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        planned.plan.actions[1].rollout.as_deref(),
        Some("Canary: 5 steps")
    );
    let report = apply(
        &planned,
        &mut cluster,
        &ApplyOptions {
            wait: true,
            timeout: None,
        },
        &mut |_| {},
    );
    let report = report
        .map_err(|e| e.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.succeeded(), "{report:?}");
    assert!(
        matches!(&report.rollouts[0].1, driver::Outcome::Healthy(_)),
        "{:?}",
        report.rollouts
    );
    let web = live(&cluster, "Deployment", "web").unwrap_or_default();
    assert_eq!(image(&web), "web:2.0");
    assert_eq!(
        web.pointer("/spec/strategy/type"),
        Some(&json!("RollingUpdate"))
    );
    assert!(live(&cluster, "Deployment", "web-canary").is_none());
    let state = driver::read_state(&web)
        .ok()
        .flatten()
        .map(|s| (s.phase, s.analysis_runs.len()));
    assert_eq!(state, Some((Phase::Healthy, 1)));
    // The canary was scaled to ceil(4 × 25%) = 1 then 2 replicas; the Service got the weights.
    let writes: Vec<&String> = cluster
        .log
        .iter()
        .filter(|l| l.contains("web-canary") || l.contains("Service"))
        .collect();
    assert!(
        writes
            .iter()
            .any(|l| l.starts_with("delete Deployment/demo/web-canary")),
        "{writes:?}"
    );
    assert_eq!(
        plan(&cluster, &objects("web:2.0"), false)
            .map(|p| p.plan.summary.has_changes())
            .ok(),
        Some(false)
    );
}

#[test]
fn a_canary_failing_its_analysis_is_aborted() {
    let mut cluster = MemoryCluster::new();
    let objects = |image: &str| {
        vec![
            deployment("web", image, canary_strategy()),
            service("web", "web"),
        ]
    };
    run(&mut cluster, &objects("web:1.0"), false, true);
    cluster.set_metric("success-rate", "app=web,reconcile.dev/track=canary", 0.62);
    let (_, report) = run(&mut cluster, &objects("web:2.0"), false, true);
    assert!(!report.succeeded());
    let driver::Outcome::Degraded(message) = &report.rollouts[0].1 else {
        panic!("{:?}", report.rollouts)
    };
    assert!(
        message.contains("analysis failed: success-rate 0.6200 is not ≥ 0.99"),
        "{message}"
    );
    let web = live(&cluster, "Deployment", "web").unwrap_or_default();
    assert_eq!(image(&web), "web:1.0");
    assert!(live(&cluster, "Deployment", "web-canary").is_none());
    let svc = live(&cluster, "Service", "web").unwrap_or_default();
    assert_eq!(
        svc.pointer("/metadata/annotations/reconcile.dev~1canary-weight"),
        None
    );
}

#[test]
fn blue_green_with_a_preview_and_manual_promotion() {
    let mut cluster = MemoryCluster::new();
    let strategy = json!({"type": "BlueGreen", "blueGreen": {"activeService": "web", "previewService": "web-preview",
        "autoPromotionEnabled": false, "scaleDownDelaySeconds": 30}});
    let objects = |image: &str| {
        vec![
            deployment("web", image, strategy.clone()),
            service("web", "web"),
            service("web-preview", "web"),
        ]
    };
    let (_, report) = run(&mut cluster, &objects("web:1.0"), false, true);
    assert!(report.succeeded(), "{report:?}");
    let selector = |cluster: &MemoryCluster, name: &str| {
        live(cluster, "Service", name)
            .and_then(|s| s.pointer("/spec/selector/reconcile.dev~1track").cloned())
    };
    assert_eq!(selector(&cluster, "web"), Some(json!("stable")));
    let (_, report) = run(&mut cluster, &objects("web:2.0"), false, true);
    assert!(
        matches!(&report.rollouts[0].1, driver::Outcome::Paused(m) if m.contains("rollout promote")),
        "{report:?}"
    );
    assert_eq!(selector(&cluster, "web-preview"), Some(json!("preview")));
    assert_eq!(selector(&cluster, "web"), Some(json!("stable")));
    let preview = live(&cluster, "Deployment", "web-preview").unwrap_or_default();
    assert_eq!(image(&preview), "web:2.0");

    let id = ResId {
        gvk: Gvk::from_api_version("apps/v1", "Deployment"),
        name: "web".into(),
        namespace: "demo".into(),
    };
    driver::promote(&mut cluster, &id, false)
        .map_err(|e| e.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    let outcome = driver::drive(
        &mut cluster,
        &id,
        DriveOptions {
            advance_time: false,
            timeout: None,
            ..Default::default()
        },
        &mut |_| {},
    );
    assert!(
        matches!(outcome, Ok(driver::Outcome::Waiting(_))),
        "{outcome:?}"
    );
    assert_eq!(
        selector(&cluster, "web"),
        Some(json!("preview")),
        "the switch is immediate"
    );
    let outcome = driver::drive(
        &mut cluster,
        &id,
        DriveOptions {
            advance_time: true,
            timeout: None,
            ..Default::default()
        },
        &mut |_| {},
    );
    assert!(
        matches!(outcome, Ok(driver::Outcome::Healthy(_))),
        "{outcome:?}"
    );
    assert_eq!(selector(&cluster, "web"), Some(json!("stable")));
    assert_eq!(
        image(&live(&cluster, "Deployment", "web").unwrap_or_default()),
        "web:2.0"
    );
    assert!(live(&cluster, "Deployment", "web-preview").is_none());
    assert_eq!(
        plan(&cluster, &objects("web:2.0"), false)
            .map(|p| p.plan.summary.has_changes())
            .ok(),
        Some(false)
    );
}

#[test]
fn invalid_strategies_and_missing_services_change_nothing() {
    let mut cluster = MemoryCluster::new();
    let bad_weight = json!({"type": "Canary", "canary": {"steps": [{"setWeight": 150}]}});
    let err = plan(&cluster, &[deployment("web", "web:1", bad_weight)], false)
        .map(|_| ())
        .map_err(|e| e.to_string());
    assert!(
        err.unwrap_err()
            .contains("setWeight: 150 is not a weight between 0 and 100")
    );
    let missing = json!({"type": "BlueGreen", "blueGreen": {"activeService": "nope"}});
    let err = plan(&cluster, &[deployment("web", "web:1", missing)], false)
        .map(|_| ())
        .map_err(|e| e.to_string());
    assert!(
        err.unwrap_err()
            .contains("blueGreen.activeService: Service \"nope\" not found")
    );
    assert!(cluster.objects().is_empty());
    cluster.unlock().ok();
}

#[test]
fn a_rolling_update_is_rolled_back_with_undo() {
    let mut cluster = MemoryCluster::new();
    run(
        &mut cluster,
        &[deployment("timecheck", "timecheck:1.0", Value::Null)],
        false,
        true,
    );
    run(
        &mut cluster,
        &[deployment("timecheck", "timecheck:2.0", Value::Null)],
        false,
        true,
    );
    let id = ResId {
        gvk: Gvk::from_api_version("apps/v1", "Deployment"),
        name: "timecheck".into(),
        namespace: "demo".into(),
    };
    let back = driver::undo(&mut cluster, &id, None)
        .map_err(|e| e.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back.revision, 1);
    let live = live(&cluster, "Deployment", "timecheck").unwrap_or_default();
    assert_eq!(image(&live), "timecheck:1.0");
    let causes: Vec<String> = driver::history(&live)
        .iter()
        .map(|r| format!("{} {}", r.revision, r.cause))
        .collect();
    assert_eq!(causes, ["1 apply", "2 apply", "3 rollback to 1"]);
    let err = driver::undo(&mut cluster, &id, Some(9))
        .map_err(|e| e.to_string())
        .unwrap_err();
    assert!(
        err.contains("revision 9 not found (history: 1, 2, 3)"),
        "{err}"
    );
}
