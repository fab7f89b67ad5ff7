//! Bad input fails clearly, exits 1 and changes nothing.

mod plan_support;

use plan_support::{Repo, web};

/// Applies `strategy` to a fresh repo and returns stderr, checking nothing was created.
fn refused(strategy: &str, extra: &str) -> String {
    let repo = Repo::new();
    web(&repo, strategy, extra);
    let run = repo.ok(&["apply", "app", "--wait"], 1);
    let left = repo.ok(&["engine", "get", "namespaces", "-o", "name"], 0);
    assert!(
        !left.stdout.contains("shop"),
        "something was applied:\n{}",
        left.stdout
    );
    run.stderr
}

#[test]
fn invalid_weights_and_unknown_fields_are_refused_before_anything_is_applied() {
    let err = refused(
        "    type: Canary\n    canary:\n      steps:\n      - setWeight: 120",
        "",
    );
    assert!(err.contains("Deployment shop/web: spec.strategy: canary.steps[0].setWeight: 120 is not a weight between 0 and 100"), "{err}");
    let err = refused("    type: Canary\n    canary:\n      stepz: []", "");
    assert!(
        err.contains(
            "unknown field `stepz`, expected one of `steps`, `maxSurge`, `maxUnavailable`"
        ),
        "{err}"
    );
    let err = refused("    type: Blue", "");
    assert!(err.contains("unknown strategy \"Blue\""), "{err}");
    let err = refused(
        "    type: Canary\n    canary:\n      steps:\n      - analysis: {metric: vibes, threshold: 1}",
        "",
    );
    assert!(
        err.contains("canary.steps[0].analysis.metric: unknown metric \"vibes\""),
        "{err}"
    );
}

#[test]
fn a_blue_green_without_its_service_is_refused() {
    let err = refused(
        "    type: BlueGreen\n    blueGreen:\n      activeService: web\n      previewService: web-preview",
        "",
    );
    assert!(
        err.contains("spec.strategy.blueGreen.previewService: Service \"web-preview\" not found in namespace \"shop\""),
        "{err}"
    );
}

#[test]
fn broken_yaml_and_unknown_targets_fail_clearly() {
    let repo = Repo::new();
    web(&repo, "    type: RollingUpdate", "");
    repo.write(
        "app/web.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: [shop\n",
    );
    let run = repo.ok(&["plan", "app"], 1);
    assert!(
        run.stderr.lines().any(|l| l.starts_with("error: ")),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
    let run = repo.ok(&["plan", "app", "--target", "kube"], 1);
    // No kubeconfig in the fixture's home: the kube target says so and changes nothing.
    assert!(
        run.stderr.starts_with("error: no kubeconfig"),
        "{}",
        run.stderr
    );
    let run = repo.ok(&["apply", "nowhere"], 1);
    assert!(
        run.stderr
            .contains("nowhere: neither an application of reconcile.yaml nor a directory"),
        "{}",
        run.stderr
    );
    let run = repo.ok(&["apply", "app", "--timeout", "soon"], 1);
    assert!(
        run.stderr.contains("--timeout: invalid duration \"soon\""),
        "{}",
        run.stderr
    );
}

#[test]
fn a_timeout_names_what_is_not_healthy() {
    let repo = Repo::new();
    web(&repo, "    type: RollingUpdate", "");
    repo.ok(
        &["engine", "images", "set", "web:1.0", "--fail-readiness"],
        0,
    );
    let run = repo.ok(&["apply", "app", "--wait", "--timeout", "30s"], 1);
    assert!(
        run.stderr.contains("error: timed out waiting for "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("Deployment shop/web (Progressing: 0 of 4 updated replicas are available"),
        "{}",
        run.stderr
    );
}
