//! Deployment rollouts against hand-computed Kubernetes sequences, with the rolling-update
//! invariants checked at every step.

mod engine_common;

use engine_common::*;
use reconcile::engine::doc;
use serde_json::json;

/// Rolls `web` from nginx:1 to nginx:2 and checks at every 100 ms of virtual time that the
/// pods never exceed replicas + surge and the available ones never drop below
/// replicas − unavailable. Returns the scaling events with OLD/NEW in place of the names.
fn roll(
    replicas: i64,
    surge: serde_json::Value,
    unavailable: serde_json::Value,
    max_total: usize,
    min_available: usize,
) -> Vec<String> {
    let mut e = engine(3);
    let strategy = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}});
    e.create(&with_strategy(
        deployment("web", "nginx:1", replicas),
        strategy.clone(),
    ))
    .expect("create");
    e.advance(10_000).expect("advance");
    assert_eq!(ready(&mut e, "web").len(), replicas as usize);
    let old = replica_sets(&mut e, "web")[0].0.clone();
    e.apply(&with_strategy(
        deployment("web", "nginx:2", replicas),
        strategy,
    ))
    .expect("update");
    for _ in 0..600 {
        let rs_total: i64 = replica_sets(&mut e, "web").iter().map(|r| r.1).sum();
        let active = active(&mut e, "web").len();
        let available = ready(&mut e, "web").len();
        assert!(
            rs_total as usize <= max_total,
            "ReplicaSets ask for {rs_total} pods, more than {max_total}"
        );
        assert!(active <= max_total, "{active} pods, more than {max_total}");
        assert!(
            available >= min_available,
            "{available} available, fewer than {min_available}"
        );
        e.advance(100).expect("advance");
    }
    let pods = ready(&mut e, "web");
    assert_eq!(pods.len(), replicas as usize);
    assert!(pods.iter().all(|p| image(p) == "nginx:2"));
    let new = replica_sets(&mut e, "web")[1].0.clone();
    scaling_events(&mut e, &[(&new, "NEW"), (&old, "OLD")])
        .into_iter()
        .skip(1)
        .collect()
}

#[test]
fn rolling_update_25_percent_of_10() {
    // maxSurge 25% of 10 rounds up to 3, maxUnavailable 25% rounds down to 2.
    // t0: new 0→3 (13 = 10 + surge), old 10→8 (8 available kept), new 3→5 (the spec total
    // is 13 again). t1, the 5 new pods (all started together) are ready: 13 available, so
    // old 8→3; the spec total is 8, new 5→10. t2, all 10 new ready: old 3→0.
    let events = roll(10, json!("25%"), json!("25%"), 13, 8);
    assert_eq!(
        events,
        vec![
            "Scaled up replica set NEW from 0 to 3",
            "Scaled down replica set OLD from 10 to 8",
            "Scaled up replica set NEW from 3 to 5",
            "Scaled down replica set OLD from 8 to 3",
            "Scaled up replica set NEW from 5 to 10",
            "Scaled down replica set OLD from 3 to 0",
        ]
    );
}

#[test]
fn rolling_update_without_surge_goes_one_by_one() {
    let events = roll(3, json!(0), json!(1), 3, 2);
    assert_eq!(
        events,
        vec![
            "Scaled down replica set OLD from 3 to 2",
            "Scaled up replica set NEW from 0 to 1",
            "Scaled down replica set OLD from 2 to 1",
            "Scaled up replica set NEW from 1 to 2",
            "Scaled down replica set OLD from 1 to 0",
            "Scaled up replica set NEW from 2 to 3",
        ]
    );
}

#[test]
fn rolling_update_surge_only_never_loses_capacity() {
    // maxSurge 1, maxUnavailable 0: one extra pod at a time, never below 4 available.
    let events = roll(4, json!(1), json!(0), 5, 4);
    assert_eq!(
        events,
        vec![
            "Scaled up replica set NEW from 0 to 1",
            "Scaled down replica set OLD from 4 to 3",
            "Scaled up replica set NEW from 1 to 2",
            "Scaled down replica set OLD from 3 to 2",
            "Scaled up replica set NEW from 2 to 3",
            "Scaled down replica set OLD from 2 to 1",
            "Scaled up replica set NEW from 3 to 4",
            "Scaled down replica set OLD from 1 to 0",
        ]
    );
}

#[test]
fn recreate_never_overlaps_old_and_new_pods() {
    let mut e = engine(3);
    let strategy = json!({"type": "Recreate"});
    e.create(&with_strategy(
        deployment("web", "nginx:1", 3),
        strategy.clone(),
    ))
    .expect("create");
    e.advance(10_000).expect("advance");
    e.apply(&with_strategy(deployment("web", "nginx:2", 3), strategy))
        .expect("update");
    let old_rs = replica_sets(&mut e, "web")[0].0.clone();
    for _ in 0..200 {
        let all = pods(&mut e, "web");
        let old = all.iter().filter(|p| image(p) == "nginx:1").count();
        let new = all.iter().filter(|p| image(p) == "nginx:2").count();
        assert!(
            old == 0 || new == 0,
            "old and new pods at once: {old} old, {new} new"
        );
        e.advance(100).expect("advance");
    }
    let new_rs = replica_sets(&mut e, "web")[1].0.clone();
    let events = scaling_events(&mut e, &[(&new_rs, "NEW"), (&old_rs, "OLD")]);
    assert_eq!(
        events[1..],
        [
            "Scaled down replica set OLD from 3 to 0",
            "Scaled up replica set NEW from 0 to 3"
        ]
    );
    assert_eq!(
        ready(&mut e, "web")
            .iter()
            .filter(|p| image(p) == "nginx:2")
            .count(),
        3
    );
}

#[test]
fn timecheck_update_and_rollback_make_revisions() {
    // The course's timecheck app: one replica of 1.0, update to 2.0, roll back to 1.0.
    let mut e = engine(3);
    e.create(&deployment("timecheck", "diamol/ch12-timecheck:1.0", 1))
        .expect("create");
    e.advance(10_000).expect("advance");
    e.apply(&deployment("timecheck", "diamol/ch12-timecheck:2.0", 1))
        .expect("update");
    e.advance(10_000).expect("advance");
    let pods = ready(&mut e, "timecheck");
    assert_eq!(pods.len(), 1);
    assert_eq!(image(&pods[0]), "diamol/ch12-timecheck:2.0");
    let d = e
        .get("deploy", "default", "timecheck")
        .expect("get")
        .expect("exists");
    assert_eq!(
        doc::annotation(&d, "deployment.kubernetes.io/revision"),
        Some("2")
    );

    let back_to = e.rollout_undo("default", "timecheck", None).expect("undo");
    assert_eq!(back_to, 1);
    e.advance(10_000).expect("advance");
    let pods = ready(&mut e, "timecheck");
    assert_eq!(pods.len(), 1);
    assert_eq!(image(&pods[0]), "diamol/ch12-timecheck:1.0");
    // The 1.0 ReplicaSet is reused and becomes revision 3, remembering it was revision 1.
    let d = e
        .get("deploy", "default", "timecheck")
        .expect("get")
        .expect("exists");
    assert_eq!(
        doc::annotation(&d, "deployment.kubernetes.io/revision"),
        Some("3")
    );
    let sets = e
        .list("rs", Some("default"), Some("app=timecheck"))
        .expect("rs");
    assert_eq!(sets.len(), 2);
    let v1 = sets
        .iter()
        .find(|r| {
            r.pointer("/spec/template/spec/containers/0/image")
                == Some(&json!("diamol/ch12-timecheck:1.0"))
        })
        .expect("1.0 rs");
    assert_eq!(
        doc::annotation(v1, "deployment.kubernetes.io/revision"),
        Some("3")
    );
    assert_eq!(
        doc::annotation(v1, "deployment.kubernetes.io/revision-history"),
        Some("1")
    );
    assert_eq!(doc::i64_at(v1, &["spec", "replicas"]), Some(1));
}

#[test]
fn scaling_mid_rollout_is_proportional() {
    let mut e = engine(3);
    e.create(&deployment("web", "nginx:1", 10)).expect("create");
    e.advance(10_000).expect("advance");
    e.apply(&deployment("web", "nginx:2", 10)).expect("update");
    // Now old 8, new 5 (new pods not yet available); scale to 15.
    let sets = replica_sets(&mut e, "web");
    assert_eq!((sets[0].1, sets[1].1), (8, 5));
    e.apply(&deployment("web", "nginx:2", 15)).expect("scale");
    let sets = replica_sets(&mut e, "web");
    // allowed 15 + ceil(25% of 15) = 19; 6 more to spread by the max-replicas annotation
    // (13): old 8·19/13 → 12 (+4), new 5·19/13 → 7 (+2), no leftover.
    assert_eq!((sets[0].1, sets[1].1), (12, 7));
    e.advance(120_000).expect("advance");
    assert_eq!(
        ready(&mut e, "web")
            .iter()
            .filter(|p| image(p) == "nginx:2")
            .count(),
        15
    );
}

#[test]
fn progress_deadline_marks_a_stuck_rollout() {
    let mut e = engine(3);
    let mut d = deployment("web", "nginx:1", 2);
    d["spec"]["progressDeadlineSeconds"] = json!(30);
    e.create(&d).expect("create");
    e.advance(10_000).expect("advance");
    e.set_image(
        "broken",
        reconcile::engine::images::ImageBehavior {
            fail_readiness: true,
            ..Default::default()
        },
    )
    .expect("image");
    let mut d2 = deployment("web", "broken:1", 2);
    d2["spec"]["progressDeadlineSeconds"] = json!(30);
    d2["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] =
        json!({"httpGet": {"path": "/", "port": 80}});
    e.apply(&d2).expect("update");
    e.advance(20_000).expect("advance");
    let now = e
        .get("deploy", "default", "web")
        .expect("get")
        .expect("exists");
    assert_eq!(
        condition(&now, "Progressing"),
        Some(("True".into(), "ReplicaSetUpdated".into()))
    );
    e.advance(20_000).expect("advance");
    let now = e
        .get("deploy", "default", "web")
        .expect("get")
        .expect("exists");
    assert_eq!(
        condition(&now, "Progressing"),
        Some(("False".into(), "ProgressDeadlineExceeded".into()))
    );
    // Kubernetes sets the condition only: no event of that reason.
    let reasons: Vec<String> = e
        .events(None)
        .expect("events")
        .into_iter()
        .map(|ev| ev.reason)
        .collect();
    assert!(
        !reasons.iter().any(|r| r == "ProgressDeadlineExceeded"),
        "{reasons:?}"
    );
    // The old pods keep serving: maxUnavailable 25% of 2 rounds down to 0.
    assert_eq!(ready(&mut e, "web").len(), 2);
}

#[test]
fn paused_deployments_do_not_roll_until_resumed() {
    let mut e = engine(3);
    e.create(&deployment("web", "nginx:1", 2)).expect("create");
    e.advance(10_000).expect("advance");
    let mut paused = deployment("web", "nginx:2", 2);
    paused["spec"]["paused"] = json!(true);
    e.apply(&paused).expect("pause");
    e.advance(30_000).expect("advance");
    assert_eq!(replica_sets(&mut e, "web").len(), 1);
    let d = e
        .get("deploy", "default", "web")
        .expect("get")
        .expect("exists");
    assert_eq!(
        condition(&d, "Progressing"),
        Some(("Unknown".into(), "DeploymentPaused".into()))
    );
    e.apply(&deployment("web", "nginx:2", 2)).expect("resume");
    e.advance(30_000).expect("advance");
    assert!(ready(&mut e, "web").iter().all(|p| image(p) == "nginx:2"));
    let d = e
        .get("deploy", "default", "web")
        .expect("get")
        .expect("exists");
    assert_eq!(
        condition(&d, "Progressing"),
        Some(("True".into(), "NewReplicaSetAvailable".into()))
    );
    assert_eq!(
        condition(&d, "Available"),
        Some(("True".into(), "MinimumReplicasAvailable".into()))
    );
}

#[test]
fn revision_history_limit_prunes_old_replica_sets() {
    let mut e = engine(3);
    let mut d = deployment("web", "nginx:1", 1);
    d["spec"]["revisionHistoryLimit"] = json!(2);
    e.create(&d).expect("create");
    e.advance(10_000).expect("advance");
    for v in 2..=5 {
        let mut next = deployment("web", &format!("nginx:{v}"), 1);
        next["spec"]["revisionHistoryLimit"] = json!(2);
        e.apply(&next).expect("update");
        e.advance(15_000).expect("advance");
    }
    let revisions: Vec<String> = replica_sets(&mut e, "web")
        .into_iter()
        .map(|r| r.2)
        .collect();
    assert_eq!(revisions, vec!["3", "4", "5"]);
}

#[test]
fn min_ready_seconds_delays_availability() {
    let mut e = engine(3);
    let mut d = deployment("web", "nginx:1", 2);
    d["spec"]["minReadySeconds"] = json!(10);
    e.create(&d).expect("create");
    e.advance(5_000).expect("advance");
    let now = e
        .get("deploy", "default", "web")
        .expect("get")
        .expect("exists");
    assert_eq!(doc::i64_at(&now, &["status", "readyReplicas"]), Some(2));
    assert_eq!(doc::i64_at(&now, &["status", "availableReplicas"]), None);
    e.advance(10_000).expect("advance");
    let now = e
        .get("deploy", "default", "web")
        .expect("get")
        .expect("exists");
    assert_eq!(doc::i64_at(&now, &["status", "availableReplicas"]), Some(2));
}

#[test]
fn canary_and_blue_green_deployments_roll_their_own_pods() {
    let mut e = engine(3);
    let canary = json!({"type": "Canary", "canary": {"steps": [{"setWeight": 20}, {"pause": {"duration": "30s"}},
        {"analysis": {"metric": "success-rate", "threshold": 0.99, "interval": "10s", "count": 3}}], "maxSurge": "25%", "maxUnavailable": 0}});
    e.create(&with_strategy(
        deployment("web", "nginx:1", 4),
        canary.clone(),
    ))
    .expect("canary accepted");
    e.advance(10_000).expect("advance");
    e.apply(&with_strategy(deployment("web", "nginx:2", 4), canary))
        .expect("update");
    e.advance(60_000).expect("advance");
    assert!(ready(&mut e, "web").iter().all(|p| image(p) == "nginx:2"));
    let bg = json!({"type": "BlueGreen", "blueGreen": {"activeService": "api", "previewService": "api-preview", "autoPromotionEnabled": false}});
    e.create(&with_strategy(deployment("api", "nginx:1", 2), bg))
        .expect("blue-green accepted");
    let bad = json!({"type": "Canary", "canary": {"steps": [{"setWeight": 120}]}});
    let err = e
        .create(&with_strategy(deployment("bad", "nginx:1", 1), bad))
        .expect_err("invalid weight");
    assert!(
        err.to_string()
            .contains("spec.strategy.canary.steps[0].setWeight"),
        "{err}"
    );
    let no_active = json!({"type": "BlueGreen", "blueGreen": {}});
    let err = e
        .create(&with_strategy(deployment("bad", "nginx:1", 1), no_active))
        .expect_err("missing activeService");
    assert!(
        err.to_string()
            .contains("spec.strategy.blueGreen.activeService: Required value"),
        "{err}"
    );
}
