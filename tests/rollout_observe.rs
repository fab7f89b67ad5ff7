//! Seeing a rollout, end to end with the binary: `rollout get` (tree, JSON), `plan` naming
//! an unfinished rollout, `rollout status -o json` with the cause and the second track's
//! images, `engine logs` showing the version, `engine request` splitting traffic by the
//! canary's weight, `engine logs -f` and `engine get -w` letting virtual time pass, and
//! `failure-action` on a Canary (rollback, pause, continue).

mod plan_support;

use plan_support::{Repo, web};
use serde_json::Value;

const CANARY_20: &str = "    type: Canary
    canary:
      steps:
      - setWeight: 20
      - pause: {}
      - setWeight: 60
      - pause: {}";

const CANARY_ANALYSIS: &str = "    type: Canary
    canary:
      steps:
      - setWeight: 25
      - analysis: {metric: success-rate, threshold: 0.95, interval: 10s, count: 3, failureLimit: 0}
      - setWeight: 50
      - pause: {}";

fn to_version(repo: &Repo, from: &str, to: &str) {
    repo.edit(
        "app/kustomization.yaml",
        &format!("newTag: \"{from}\""),
        &format!("newTag: \"{to}\""),
    );
}

fn assert_has(text: &str, wanted: &[&str]) {
    for line in wanted {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A canary of web 1.0 → 2.0 paused at its 20 % step.
fn paused_canary() -> Repo {
    let repo = Repo::new();
    web(&repo, CANARY_20, "");
    repo.ok(&["apply", "app", "--wait"], 0);
    to_version(&repo, "1.0", "2.0");
    repo.ok(&["apply", "app"], 0);
    repo.ok(&["engine", "advance", "1m"], 0);
    repo
}

#[test]
fn rollout_get_draws_the_tree_and_plan_names_the_paused_rollout() {
    let repo = paused_canary();
    let get = repo.ok(&["rollout", "get", "web", "-n", "shop"], 0);
    assert_has(
        &get.stdout,
        &[
            "Name:            web",
            "Status:          ॥ Paused",
            "Strategy:        Canary",
            "  Step:          2/4",
            "  SetWeight:     20",
            "  ActualWeight:  20",
            "Images:          web:1.0 (stable)",
            "                 web:2.0 (canary)",
            "  Desired:       4",
            "  ✔ 1. setWeight: 20",
            "  ▶ 2. pause: {} (until promoted)",
            "    3. setWeight: 60",
            "⟳ web",
            "# revision:2",
            "# revision:1",
            "ReplicaSet",
            "canary",
            "stable",
            "ready:1/1",
        ],
    );
    let tree_pods = get.stdout.matches("□ ").count();
    assert_eq!(
        tree_pods, 5,
        "4 stable pods and 1 canary pod:\n{}",
        get.stdout
    );

    let out = repo.ok(&["rollout", "get", "web", "-n", "shop", "-o", "json"], 0);
    let view = json(&out.stdout);
    assert_eq!(view["status"], "Paused");
    assert_eq!(view["currentStep"], 2);
    assert_eq!(view["setWeight"], 20);
    assert_eq!(view["images"][1]["image"], "web:2.0");
    assert_eq!(view["images"][1]["track"], "canary");
    assert_eq!(view["revisions"][0]["track"], "canary");
    assert_eq!(
        view["revisions"][0]["pods"].as_array().map(Vec::len),
        Some(1)
    );

    // The plan has nothing to change but says the rollout waits, and how to go on.
    let plan = repo.ok(&["plan", "app"], 0);
    assert_has(
        &plan.stdout,
        &[
            "! rollout Deployment shop/web: rollout of revision 2 paused",
            "`reconcile rollout promote web` continues it",
        ],
    );
    let plan_json = json(&repo.ok(&["plan", "app", "-o", "json"], 0).stdout);
    let unfinished: Vec<&Value> = plan_json["plans"][0]["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a.get("unfinished").is_some())
        .collect();
    assert_eq!(unfinished.len(), 1, "{plan_json}");

    // Promoted to the end, the tree shows one healthy revision and the plan no note.
    repo.ok(
        &[
            "rollout", "promote", "web", "-n", "shop", "--full", "--wait",
        ],
        0,
    );
    let done = repo.ok(&["rollout", "get", "web", "-n", "shop"], 0);
    assert_has(
        &done.stdout,
        &["Status:          ✔ Healthy", "  ActualWeight:  100"],
    );
    assert!(!done.stdout.contains("(canary)"), "{}", done.stdout);
    let plan = repo.ok(&["plan", "app"], 0);
    assert!(!plan.stdout.contains("! rollout"), "{}", plan.stdout);

    // A missing Deployment is refused in kubectl's words.
    let missing = repo.ok(&["rollout", "get", "nope", "-n", "shop"], 1);
    assert_has(&missing.stderr, &["deployments.apps \"nope\" not found"]);
}

#[test]
fn rollout_get_watch_follows_a_rolling_update_to_the_end() {
    let repo = Repo::new();
    web(&repo, "    type: RollingUpdate", "");
    repo.ok(&["apply", "app", "--wait"], 0);
    to_version(&repo, "1.0", "2.0");
    repo.ok(&["apply", "app"], 0);
    let watched = repo.ok(&["rollout", "get", "web", "-n", "shop", "--watch"], 0);
    let frames: Vec<&str> = watched.stdout.split("Name:            web").collect();
    assert!(frames.len() > 2, "several pictures:\n{}", watched.stdout);
    let last = frames.last().copied().unwrap_or_default();
    assert_has(last, &["✔ Healthy", "Images:          web:2.0 (stable)"]);
}

#[test]
fn logs_show_the_version_and_a_twenty_percent_canary_answers_a_fifth_of_requests() {
    let repo = paused_canary();
    let logs = repo.ok(&["engine", "logs", "deploy/web-canary", "-n", "shop"], 0);
    assert_has(
        &logs.stdout,
        &["web version 2.0 starting (image web:2.0)", "version=2.0"],
    );
    assert_has(&logs.stderr, &[]);
    let tail = repo.ok(
        &["engine", "logs", "deploy/web", "-n", "shop", "--tail", "2"],
        0,
    );
    assert_eq!(tail.stdout.lines().count(), 2, "{}", tail.stdout);
    assert!(tail.stdout.lines().all(|l| l.contains("version=1.0")));

    let sent = repo.ok(
        &[
            "engine", "request", "web", "-n", "shop", "--count", "1000", "-o", "json",
        ],
        0,
    );
    let report = json(&sent.stdout);
    let canary = report["versions"]["2.0"].as_f64().unwrap_or(0.0);
    assert!(
        (15.0..=25.0).contains(&canary),
        "about 20 % to the canary: {report}"
    );
    assert_eq!(report["statuses"]["200"], 1000);
    let text = repo.ok(&["engine", "request", "web", "-n", "shop"], 0);
    assert_has(
        &text.stdout,
        &["100 requests to service/web", "versions: 1.0"],
    );

    // Bad input: an unknown Service, a pod that does not exist, a container not in the pod.
    let missing = repo.ok(&["engine", "request", "nope", "-n", "shop"], 1);
    assert_has(&missing.stderr, &["services \"nope\" not found"]);
    let missing = repo.ok(&["engine", "logs", "nope", "-n", "shop"], 1);
    assert_has(&missing.stderr, &["pods \"nope\" not found"]);
    let wrong = repo.ok(
        &[
            "engine",
            "logs",
            "deploy/web",
            "-n",
            "shop",
            "-c",
            "sidecar",
        ],
        1,
    );
    assert_has(
        &wrong.stderr,
        &["container sidecar is not valid for pod web-"],
    );
    let follow = repo.ok(
        &[
            "engine",
            "logs",
            "deploy/web",
            "-n",
            "shop",
            "-f",
            "--previous",
        ],
        1,
    );
    assert_has(&follow.stderr, &["--previous cannot be followed"]);
}

#[test]
fn logs_follow_prints_new_lines_as_virtual_time_passes() {
    let repo = paused_canary();
    let now = |repo: &Repo| repo.ok(&["engine", "now"], 0).stdout;
    let args = ["engine", "logs", "deploy/web", "-n", "shop", "--timestamps"];
    let before = repo.ok(&args, 0).stdout;
    let started = now(&repo);
    let mut follow_args = args.to_vec();
    follow_args.extend(["-f", "--timeout", "20s"]);
    let followed = repo.ok(&follow_args, 0).stdout;
    let after = repo.ok(&args, 0).stdout;
    assert_ne!(now(&repo), started, "following let virtual time pass");
    assert!(
        followed.starts_with(&before),
        "the lines so far come first:\n{followed}"
    );
    assert!(
        followed.lines().count() > before.lines().count(),
        "new lines were printed as the pod logged:\n{followed}"
    );
    // The newest lines are the ones a later `engine logs` ends with (older ones may have
    // rotated out of it), in time order.
    let tail: Vec<&str> = after.lines().rev().take(20).collect();
    let followed_tail: Vec<&str> = followed.lines().rev().take(20).collect();
    assert_eq!(tail, followed_tail, "-f printed what the container logged");
    let times: Vec<&str> = followed
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "in time order");
}

#[test]
fn get_watch_prints_the_rows_that_change_while_virtual_time_passes() {
    let repo = Repo::new();
    web(&repo, "    type: RollingUpdate", "");
    repo.ok(&["apply", "app", "--wait"], 0);
    to_version(&repo, "1.0", "2.0");
    repo.ok(&["apply", "app"], 0);
    let table = repo
        .ok(&["engine", "get", "deploy", "-n", "shop"], 0)
        .stdout;
    let watched = repo
        .ok(
            &[
                "engine",
                "get",
                "deploy",
                "-n",
                "shop",
                "-w",
                "--timeout",
                "2m",
            ],
            0,
        )
        .stdout;
    assert!(watched.starts_with(&table), "the table first:\n{watched}");
    let rows: Vec<&str> = watched
        .lines()
        .skip(table.lines().count())
        .filter(|l| l.starts_with("web "))
        .collect();
    assert!(!rows.is_empty(), "rows as the rollout moved:\n{watched}");
    assert!(
        rows.last()
            .is_some_and(|r| r.split_whitespace().nth(1) == Some("4/4")),
        "the last row shows the finished rollout:\n{watched}"
    );
    // Time passed for everyone: the rollout is done.
    let status = repo.ok(
        &["rollout", "status", "web", "-n", "shop", "--watch=false"],
        0,
    );
    assert_has(&status.stdout, &["web:2.0"]);
    let wrong = repo.ok(
        &["engine", "get", "deploy", "-n", "shop", "-w", "-o", "json"],
        1,
    );
    assert_has(&wrong.stderr, &["-w is supported with the table output"]);
}

#[test]
fn a_crash_looping_container_shows_its_previous_run_and_exit_code() {
    let repo = Repo::new();
    web(&repo, "    type: RollingUpdate", "");
    repo.ok(&["engine", "images", "set", "web:1.0", "--crash"], 0);
    repo.ok(&["apply", "app"], 0);
    repo.ok(&["engine", "advance", "2m"], 0);
    let previous = repo.ok(
        &["engine", "logs", "deploy/web", "-n", "shop", "--previous"],
        0,
    );
    assert_has(
        &previous.stdout,
        &["web version 1.0 starting", "failed: exit code 1 (Error)"],
    );
    let status = repo.ok(
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
        0,
    );
    let status = json(&status.stdout);
    assert!(
        status["cause"]
            .as_str()
            .is_some_and(|c| c.contains("CrashLoopBackOff")),
        "{status}"
    );
}

#[test]
fn rollout_status_json_carries_the_second_tracks_images() {
    let repo = paused_canary();
    let status = repo.ok(
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
        0,
    );
    let status = json(&status.stdout);
    assert_eq!(status["track"]["images"][0], "web:2.0", "{status}");
    assert_eq!(status["images"][0], "web:1.0", "{status}");
}

fn with_failure_action(repo: &Repo, action: &str) {
    repo.edit(
        "app/web.yaml",
        "kind: Deployment\nmetadata:\n  name: web\n",
        &format!(
            "kind: Deployment\nmetadata:\n  name: web\n  annotations:\n    reconcile.dev/failure-action: {action}\n"
        ),
    );
}

#[test]
fn a_failed_canary_with_failure_action_rollback_ends_healthy_on_the_old_revision() {
    let repo = Repo::new();
    web(&repo, CANARY_ANALYSIS, "");
    with_failure_action(&repo, "rollback");
    repo.ok(&["apply", "app", "--wait"], 0);
    repo.ok(
        &["engine", "images", "set", "web:2.0", "--error-rate", "0.4"],
        0,
    );
    to_version(&repo, "1.0", "2.0");
    repo.ok(&["apply", "app"], 0);
    repo.ok(&["engine", "advance", "3m"], 0);
    let status = repo.ok(
        &["rollout", "status", "web", "-n", "shop", "--watch=false"],
        0,
    );
    assert_has(
        &status.stdout,
        &[
            "Status:    Healthy",
            "Images:    web:1.0",
            "revision 2 failed (analysis failed",
            "rolled back to revision 1 (failure-action: rollback)",
        ],
    );
    let history = repo.ok(&["rollout", "history", "web", "-n", "shop"], 0);
    assert!(
        history
            .stdout
            .lines()
            .any(|l| l.starts_with('2') && l.contains("rolled back: analysis failed")),
        "{}",
        history.stdout
    );
    // Nothing is unfinished; the plan offers version 2.0 again.
    let plan = repo.ok(&["plan", "app"], 0);
    assert!(!plan.stdout.contains("! rollout"), "{}", plan.stdout);
    assert_has(&plan.stdout, &["~ update Deployment shop/web"]);
}

#[test]
fn a_failed_canary_with_failure_action_continue_goes_on_to_the_end() {
    let steps = "    type: Canary
    canary:
      steps:
      - setWeight: 25
      - analysis: {metric: success-rate, threshold: 0.95, interval: 10s, count: 3, failureLimit: 0}
      - setWeight: 50
      - pause: {duration: 30s}";
    let repo = Repo::new();
    web(&repo, steps, "");
    with_failure_action(&repo, "continue");
    repo.ok(&["apply", "app", "--wait"], 0);
    repo.ok(
        &["engine", "images", "set", "web:2.0", "--error-rate", "0.4"],
        0,
    );
    to_version(&repo, "1.0", "2.0");
    repo.ok(&["apply", "app"], 0);
    repo.ok(&["engine", "advance", "40s"], 0);
    let status = repo.ok(
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
        0,
    );
    let status = json(&status.stdout);
    // Past the failed analysis (without the annotation the canary would be aborted): at the
    // 50 % step's pause.
    assert_eq!(status["rollout"]["phase"], "Paused", "{status}");
    assert_eq!(status["rollout"]["weight"], 50, "{status}");
    assert!(
        status["rollout"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("step 4/4")),
        "{status}"
    );
    let get = repo.ok(&["rollout", "get", "web", "-n", "shop"], 0);
    assert_has(&get.stdout, &["AnalysisRun", "✖ Failed"]);
    repo.ok(&["engine", "advance", "3m"], 0);
    let status = repo.ok(
        &["rollout", "status", "web", "-n", "shop", "--watch=false"],
        0,
    );
    assert_has(
        &status.stdout,
        &["Status:    Healthy", "Images:    web:2.0"],
    );
    let history = repo.ok(&["rollout", "history", "web", "-n", "shop"], 0);
    assert!(
        !history.stdout.contains("rolled back"),
        "nothing was rolled back:\n{}",
        history.stdout
    );
}

#[test]
fn a_failed_canary_with_failure_action_pause_holds_both_tracks() {
    let repo = Repo::new();
    web(&repo, CANARY_ANALYSIS, "");
    with_failure_action(&repo, "pause");
    repo.ok(&["apply", "app", "--wait"], 0);
    repo.ok(
        &["engine", "images", "set", "web:2.0", "--error-rate", "0.4"],
        0,
    );
    to_version(&repo, "1.0", "2.0");
    repo.ok(&["apply", "app"], 0);
    repo.ok(&["engine", "advance", "3m"], 0);
    let get = repo.ok(&["rollout", "get", "web", "-n", "shop"], 0);
    assert_has(
        &get.stdout,
        &[
            "Status:          ॥ Paused",
            "paused on failure: analysis failed",
            "web:2.0 (canary)",
            "▶ 2. analysis",
            "AnalysisRun",
            "✖ Failed",
        ],
    );
    // The person decides: abort puts everything back on stable.
    repo.ok(&["rollout", "abort", "web", "-n", "shop"], 0);
    let status = repo.ok(
        &["rollout", "status", "web", "-n", "shop", "--watch=false"],
        1,
    );
    assert_has(&status.stdout, &["Status:    Degraded"]);
}
