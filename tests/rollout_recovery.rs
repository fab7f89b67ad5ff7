//! Rollouts that move on their own and recover from failure, end to end with the binary:
//! a canary carried by `engine advance` alone, Swarm-style automatic rollback of a
//! RollingUpdate, abort → fix → apply, retry, undo to the last healthy revision, kubectl's
//! history/undo on ReplicaSet revisions, and an interrupted rollout resumed by a later apply.

mod plan_support;

use plan_support::{Repo, web};

const CANARY: &str = "    type: Canary
    canary:
      steps:
      - setWeight: 25
      - pause: {duration: 30s}
      - analysis: {metric: success-rate, threshold: 0.95, interval: 10s, count: 3, failureLimit: 1}
      - setWeight: 50
      - pause: {}";

const ROLLING: &str = "    type: RollingUpdate";

fn to_version(repo: &Repo, from: &str, to: &str) {
    repo.edit(
        "app/kustomization.yaml",
        &format!("newTag: \"{from}\""),
        &format!("newTag: \"{to}\""),
    );
}

fn status(repo: &Repo, code: i32) -> String {
    repo.ok(
        &["rollout", "status", "web", "-n", "shop", "--watch=false"],
        code,
    )
    .stdout
}

fn assert_has(text: &str, wanted: &[&str]) {
    for line in wanted {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[test]
fn a_canary_moves_through_pauses_and_analysis_with_engine_advance_only() {
    let repo = Repo::new();
    web(&repo, CANARY, "");
    repo.ok(&["apply", "app", "--wait"], 0);
    to_version(&repo, "1.0", "2.0");
    repo.ok(&["apply", "app"], 0);
    let early = status(&repo, 0);
    assert_has(&early, &["Step:      1/5", "Status:    Progressing"]);
    // A promote on a step that is not paused is refused, not reported as done.
    let refused = repo.ok(&["rollout", "promote", "web", "-n", "shop"], 1);
    assert_has(
        &refused.stderr,
        &["cannot promote: step 1/5 (setWeight 25) is not paused"],
    );

    repo.ok(&["engine", "advance", "2m"], 0);
    let paused = status(&repo, 0);
    assert_has(
        &paused,
        &[
            "Images:    web:1.0 (stable), web:2.0 (canary)",
            "Status:    Paused",
            "Step:      5/5",
            "Weight:    50%",
            "Successful: 1.0000, 1.0000, 1.0000",
        ],
    );
    repo.ok(&["rollout", "promote", "web", "-n", "shop"], 0);
    repo.ok(&["engine", "advance", "1m"], 0);
    let done = status(&repo, 0);
    assert_has(
        &done,
        &[
            "Images:    web:2.0\n",
            "Status:    Healthy",
            "Weight:    100%",
            "revision 2 is stable; canary removed",
        ],
    );
    let history = repo.ok(&["rollout", "history", "web", "-n", "shop"], 0);
    assert!(
        history
            .stdout
            .lines()
            .any(|l| l.starts_with("2*") && l.ends_with("healthy")),
        "{}",
        history.stdout
    );
}

#[test]
fn an_interrupted_rollout_is_resumed_by_the_next_apply() {
    let repo = Repo::new();
    web(&repo, CANARY, "");
    repo.ok(&["apply", "app", "--wait"], 0);
    to_version(&repo, "1.0", "2.0");
    // Started but not waited for: as if `apply --wait` had been killed.
    repo.ok(&["apply", "app"], 0);
    let again = repo.ok(&["apply", "app", "--wait"], 0);
    assert_has(
        &again.stdout,
        &[
            "step 3/5: analysis passed",
            "rollout Deployment shop/web paused: step 5/5: paused until `reconcile rollout promote`",
        ],
    );
}

#[test]
fn abort_then_a_fixed_version_then_retry_and_undo_to_the_last_healthy_revision() {
    let repo = Repo::new();
    web(&repo, CANARY, "");
    repo.ok(&["apply", "app", "--wait"], 0);
    repo.ok(
        &["engine", "images", "set", "web:2.0", "--error-rate", "0.4"],
        0,
    );
    to_version(&repo, "1.0", "2.0");
    let failed = repo.ok(&["apply", "app", "--wait"], 1);
    assert_has(&failed.stderr, &["rollout aborted: analysis failed"]);
    let degraded = status(&repo, 1);
    assert_has(&degraded, &["Status:    Degraded", "Images:    web:1.0"]);
    let json = repo.ok(
        &[
            "rollout",
            "status",
            "web",
            "-n",
            "shop",
            "--watch=false",
            "-o",
            "json",
        ],
        1,
    );
    let parsed: serde_json::Value =
        serde_json::from_str(&json.stdout).unwrap_or_else(|e| panic!("{e}: {}", json.stdout));
    assert_eq!(parsed["rollout"]["phase"], "Degraded", "{parsed}");
    let history = repo.ok(&["rollout", "history", "web", "-n", "shop"], 0);
    assert!(
        history
            .stdout
            .lines()
            .any(|l| l.starts_with('2') && l.contains("aborted: rollout aborted: analysis failed")),
        "{}",
        history.stdout
    );

    // Retry restarts the same revision from its first step.
    let retry = repo.ok(&["rollout", "retry", "web", "-n", "shop"], 0);
    assert_has(&retry.stdout, &["retrying revision 2 from the first step"]);
    assert_has(&status(&repo, 0), &["Step:      1/5", "Revision:  2"]);
    repo.ok(&["rollout", "abort", "web", "-n", "shop"], 0);
    // Undo goes to the last healthy revision (1, on the stable track), not the aborted one.
    let undo = repo.ok(&["rollout", "undo", "web", "-n", "shop"], 0);
    assert_has(&undo.stdout, &["rolled back to revision 1 (web:1.0)"]);
    assert_has(&status(&repo, 0), &["Status:    Healthy", "Revision:  1"]);

    // A fixed version applied after the abort rolls out from stable.
    to_version(&repo, "2.0", "2.1");
    let fixed = repo.ok(&["apply", "app", "--wait"], 0);
    assert_has(&fixed.stdout, &["step 5/5: paused until"]);
    repo.ok(&["rollout", "promote", "web", "-n", "shop", "--wait"], 0);
    assert_has(
        &status(&repo, 0),
        &["Images:    web:2.1", "Status:    Healthy"],
    );
}

fn with_failure_policy(repo: &Repo, policy: &str) {
    repo.write(
        "reconcile.yaml",
        &format!("applications:\n- name: shop\n  path: app\n  failurePolicy:\n{policy}"),
    );
}

#[test]
fn a_crashing_rolling_update_rolls_back_by_itself_and_says_why() {
    let repo = Repo::new();
    web(&repo, ROLLING, "");
    with_failure_policy(&repo, "    action: rollback\n    monitor: 20s\n");
    repo.ok(&["apply", "shop", "--wait"], 0);
    repo.ok(&["engine", "images", "set", "web:2.0", "--crash"], 0);
    to_version(&repo, "1.0", "2.0");
    let apply = repo.ok(&["apply", "shop", "--wait"], 1);
    assert_has(
        &apply.stderr,
        &[
            "update to revision 2 failed",
            "CrashLoopBackOff: exit code 1",
            "rolled back to revision 1",
        ],
    );
    let deployments = repo.ok(
        &["engine", "get", "deployments", "-n", "shop", "-o", "wide"],
        0,
    );
    assert_has(&deployments.stdout, &["web:1.0"]);
    let history = repo.ok(&["rollout", "history", "web", "-n", "shop"], 0);
    assert_has(
        &history.stdout,
        &[
            "REVISION  CHANGE-CAUSE  FAILURE",
            "rolled back to revision 1: ",
        ],
    );
    let events = repo.ok(&["engine", "events", "-n", "shop"], 0);
    assert_has(&events.stdout, &["UpdateFailed"]);
}

#[test]
fn without_a_policy_a_crashing_update_stays_and_the_cause_is_named() {
    let repo = Repo::new();
    web(&repo, ROLLING, "");
    repo.ok(&["apply", "app", "--wait"], 0);
    repo.ok(&["engine", "images", "set", "web:2.0", "--missing"], 0);
    to_version(&repo, "1.0", "2.0");
    let apply = repo.ok(&["apply", "app", "--wait", "--timeout", "1m"], 1);
    assert_has(
        &apply.all(),
        &["2/4 new pods ErrImagePull: image web:2.0 not found"],
    );
    let now = status(&repo, 0);
    assert_has(
        &now,
        &["Failing:   ", "new pods", "image web:2.0 not found"],
    );
}

#[test]
fn bad_failure_policies_are_refused_naming_the_field_and_change_nothing() {
    let repo = Repo::new();
    web(&repo, ROLLING, "");
    with_failure_policy(&repo, "    action: explode\n");
    let refused = repo.ok(&["plan", "shop"], 1);
    assert_has(
        &refused.stderr,
        &["applications[0].failurePolicy.action: \"explode\" is not a failure action"],
    );
    with_failure_policy(&repo, "    action: rollback\n    maxFailureRatio: 3\n");
    let refused = repo.ok(&["apply", "shop"], 1);
    assert_has(
        &refused.stderr,
        &["maxFailureRatio: 3 is not between 0 and 1"],
    );
    repo.remove("reconcile.yaml");
    repo.edit(
        "app/web.yaml",
        "  name: web\nspec:\n  replicas",
        "  name: web\n  annotations:\n    reconcile.dev/monitor: soon\n    reconcile.dev/failure-action: rollback\nspec:\n  replicas",
    );
    let refused = repo.ok(&["apply", "app"], 1);
    assert_has(
        &refused.stderr,
        &["Deployment shop/web", "reconcile.dev/monitor"],
    );
    let nothing = repo.ok(&["engine", "get", "deployments", "-A", "-o", "name"], 0);
    assert!(!nothing.stdout.contains("web"), "{}", nothing.stdout);
}

#[test]
fn history_and_undo_of_a_rolling_update_follow_kubectl() {
    let repo = Repo::new();
    web(&repo, ROLLING, "");
    repo.ok(&["apply", "app", "--wait"], 0);
    for (from, to) in [("1.0", "2.0"), ("2.0", "3.0")] {
        to_version(&repo, from, to);
        repo.ok(&["apply", "app", "--wait"], 0);
    }
    let undo = repo.ok(&["rollout", "undo", "web", "-n", "shop"], 0);
    assert_eq!(undo.stdout, "deployment.apps/web rolled back\n");
    repo.ok(&["engine", "advance", "1m"], 0);
    let history = repo.ok(&["rollout", "history", "web", "-n", "shop"], 0);
    assert_eq!(
        history.stdout,
        "deployment.apps/web\nREVISION  CHANGE-CAUSE\n1         <none>\n3         <none>\n4         <none>\n\n"
    );
    let gone = repo.ok(
        &["rollout", "undo", "web", "-n", "shop", "--to-revision", "2"],
        1,
    );
    assert_has(
        &gone.stderr,
        &["unable to find specified revision 2 in history"],
    );
    let same = repo.ok(
        &["rollout", "undo", "web", "-n", "shop", "--to-revision", "4"],
        0,
    );
    assert_eq!(
        same.stdout,
        "deployment.apps/web skipped rollback (current template already matches revision 4)\n"
    );
    let missing = repo.ok(&["rollout", "status", "nope", "-n", "shop"], 1);
    assert_has(&missing.stderr, &["deployments.apps \"nope\" not found"]);
}
